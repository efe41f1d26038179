//! One training step end to end: scenario → op graph → replay → step metrics.
//!
//! The glue between the pure stages, in rooms of one concept each:
//! - `step`: scenario → op graph → network → replay ([`simulate_step`] and its variants,
//!   [`build_network`], the one place a scenario's network is built);
//! - `metrics`: the headline metrics (step time, MFU, HFU, bubble fraction, breakdown),
//!   defined once here so every command reports them the same way;
//! - `memory`: a scenario's memory per rank and the `--strict-memory` check;
//! - [`jobs`]: several jobs on one cluster (placement, each step alone and shared, the
//!   links where they meet).
//!
//! Must not do file I/O (writers live in `report`) or orchestrate commands (that is
//! `api`). Paths are flat: everything public is re-exported here as `sim::Item`.

pub mod jobs;
mod memory;
mod metrics;
mod step;

pub use memory::{check_memory, memory_report};
pub use metrics::{Breakdown, StepMetrics, bubble_fraction, recompute_flops};
pub use step::{
    StepOptions, StepResult, analytic_network, build_graph, build_network, compute_model,
    simulate_step, simulate_step_faulty, simulate_step_on, simulate_step_recorded, step_inputs,
};

#[cfg(test)]
mod tests;
