//! Decision tools: plan search, sweeps over scenarios, comparison tables, sharding and
//! merging of sweep outputs.
//!
//! Owns the expansion of sweep files into scenario points (`(path, overrides)` pairs),
//! running points in parallel (rayon) with an optional progress bar, the closed-form fast
//! mode used to rank parallelism plans ([`fast`]), a conservative memory estimate
//! ([`memory`], to be swapped for `model::memory`), and the table rows the CLI prints and
//! writes. It reuses `sim` for full replays and `cost` for money and energy; it must not
//! re-define step metrics or parse scenario YAML itself (that is `config`'s job).

pub mod charts;
pub mod compare;
pub mod fast;
#[doc(hidden)]
pub mod fixtures;
pub mod memory;
pub mod plan;
pub mod spec;
