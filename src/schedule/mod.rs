//! The schedule generator: model + plan + prices → the op graph of one step.
//!
//! Turns each pipeline stage's slot order ([`pipeline`]) into a [`StageProgram`]: per layer,
//! compute ops with tensor-parallel collectives between them (`tp`), ring attention under
//! context parallelism (`cp`), MoE all-to-alls (`ep`), pipeline sends and receives at chunk
//! boundaries (`pp`), data-parallel gradient buckets, ZeRO's parameter gathers and
//! hybrid sharding's replica reductions (`dp`), and the optimizer step; the stage builder
//! core and the per-slot walk live in `builder`, `walk` and `passes`.
//!
//! Every duration, size and group comes from `crate::pricing`, which fast mode
//! (`sweep::fast`) composes too; this module decides only which op follows which, on
//! which stream. Communication is timed by the network, not here. Deterministic: same
//! inputs, same graph. Measures no time itself.

mod builder;
mod cp;
mod dp;
mod ep;
pub mod graph;
mod passes;
mod pp;
mod tp;
mod walk;

/// Pipeline orders are part of the plan; re-exported where the op graph uses them.
pub use crate::plan::pipeline;
/// What the generator reads and what compute costs: priced in `crate::pricing`.
pub use crate::pricing::{OpCosts, StepInputs};

pub use graph::{
    CATEGORIES, Category, Collective, Comm, GroupRef, Op, OpGraph, STREAMS, StageProgram,
    StepGraph, Stream,
};

/// Generates the op graph of one training step.
pub fn build_step(inp: StepInputs) -> StepGraph {
    let mut b = builder::Builder::new(inp);
    let stages = (0..b.pp).map(|s| b.build_stage(s)).collect();
    StepGraph {
        stages,
        comms: b.comms,
        micro_batches: b.m,
    }
}
