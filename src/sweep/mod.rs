//! Decision tools: plan search, sweeps over scenarios, comparison tables, sharding and
//! merging of sweep outputs.
//!
//! Owns the expansion of sweep files into scenario points (`(path, overrides)` pairs),
//! running points in parallel (rayon) with an optional progress bar, the closed-form fast
//! mode used to rank parallelism plans ([`fast`]), the memory filter ([`memory`], the
//! simulator's own `pricing::memory` model through its lean entry point), goodput from the
//! run simulation ([`compare::goodput_of`]) and the table rows the CLI prints and writes
//! (their charts are drawn by `report::charts::compare`). It reuses `sim` for full
//! replays, `run` for goodput and `cost` for money and energy; it must not re-define step
//! metrics, parse scenario YAML itself (that is `config`'s job) or draw.

pub mod compare;
pub mod fast;
#[doc(hidden)]
pub mod fixtures;
pub mod memory;
pub mod plan;
pub mod spec;
