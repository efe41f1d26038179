//! The library API: each `clustersim` command as a builder a program (the CLI, a test, a
//! notebook's binding) sets up and runs, and an outputs value it can inspect or write.
//!
//! | command | builder | outputs |
//! |---|---|---|
//! | `run` | [`Simulation`] | [`RunOutputs`] (step, metrics, memory, long run) |
//! | `checkpoint` | [`CheckpointSweep`] | [`CheckpointOutputs`] |
//! | `compare`, `merge` | [`Comparison`], [`merge`] | [`CompareOutputs`] |
//! | `plan` | [`PlanSearch`] | [`PlanOutputs`] |
//! | `collective` | [`CollectiveSweep`] | [`CollectiveOutputs`] |
//! | `validate` | [`Validation`] | [`ValidationOutputs`] |
//!
//! Scenario-driven builders start from a file, the built-in default or a resolved
//! [`Scenario`](crate::config::Scenario) ([`ScenarioInput`]) and take `path=value`
//! overrides. Every failure is an [`Error`] that says whether the input is bad
//! ([`Error::is_bad_input`]).
//!
//! ```no_run
//! use clustersim::Simulation;
//!
//! let out = Simulation::default_scenario()
//!     .with_overrides(&["training.global_batch=256"])?
//!     .run()?;
//! println!("step {:.3} s, MFU {:.1} %", out.metrics().step_time_s, out.metrics().mfu * 100.0);
//! out.write_to("output/default-gb256")?;
//! # Ok::<(), clustersim::Error>(())
//! ```
//!
//! This layer orchestrates (load, check, simulate, collect); it must not print, exit, or
//! hold simulation logic of its own: that lives in the modules below it.

mod checkpoint;
mod collective;
mod compare;
mod error;
mod input;
mod plan;
mod simulation;
mod validate;

pub use checkpoint::{CheckpointOutputs, CheckpointSweep, DEFAULT_INTERVALS, DEFAULT_POINTS};
pub use collective::{CollectiveOutputs, CollectiveSweep, SweepRow};
pub use compare::{CompareOutputs, Comparison, Written, merge};
pub use error::{Error, Result};
pub use input::ScenarioInput;
pub use plan::{PlanOutputs, PlanSearch};
pub use simulation::{RunOutputs, Simulation};
pub use validate::{SOURCES, Validation, ValidationOutputs};
