//! clustersim: a discrete-event simulator of large GPU training clusters.
//!
//! Data flows one way: [`config`] → ([`model`], [`hardware`], [`plan`]) → [`schedule`]
//! (op graph) → [`engine`] (replay over a [`network`]) → [`report`]. See ARCHITECTURE.md.
//!
//! Programs drive it through [`api`] (re-exported here), as the `clustersim` CLI does:
//!
//! ```no_run
//! let out = clustersim::Simulation::from_file("scenarios/llama3-70b-1k.yaml")?
//!     .with_overrides(&["parallelism.tp=4", "parallelism.dp=64"])?
//!     .run()?;
//! println!("{:.3} s per step", out.metrics().step_time_s);
//! # Ok::<(), clustersim::Error>(())
//! ```

pub mod api;
pub mod cli;
pub mod config;
pub mod cost;
pub mod engine;
pub mod faults;
#[doc(hidden)]
pub mod fixtures;
pub mod hardware;
pub mod model;
pub mod network;
pub mod plan;
pub mod pricing;
pub mod report;
pub mod run;
pub mod schedule;
pub mod sim;
pub mod sweep;
pub mod units;
pub mod validate;
pub mod vocab;

pub use api::{
    CheckpointOutputs, CheckpointSweep, CollectiveOutputs, CollectiveSweep, CompareOutputs,
    Comparison, Error, PlanOutputs, PlanSearch, RunOutputs, ScenarioInput, Simulation, Validation,
    ValidationOutputs,
};
pub use network::NetworkMode;
