//! The discrete-event core: replays a [`StepGraph`] on every rank of the plan.
//!
//! Each rank runs its stage's program on in-order streams (as CUDA streams do): an op starts
//! when it heads its stream, the stream is idle, and its cross-stream dependencies are done.
//! A comm op occupies its stream from arrival; the collective itself starts when every
//! member has arrived and is timed by the [`Network`]. Time is integer nanoseconds; events
//! live in a [`queue::RadixHeap`] and pop in a canonical order. Per-rank state is one
//! record of a few cache lines (`core`), so memory is `O(ranks + ops per stage)` and there
//! is no allocation per event. Identical data-parallel replicas fold (`fold`).
//!
//! The engine knows nothing about YAML or reports: it returns a [`Replay`].

mod core;

pub use core::{SharedJob, replay_shared};
mod estimate;
mod fold;
pub mod queue;

pub use estimate::{
    EVENTS_ENV, FLOW_WORK_ENV, MEMORY_ENV, ReplayBudget, ReplayEstimate, ReplayMode, ReplayPlan,
    flow_work, plan,
};

/// Stragglers' compute slowdown per rank, decided by `faults`, applied here.
pub use crate::faults::RankSpeeds;

use thiserror::Error;

use crate::network::Network;
use crate::plan::{GroupMask, RankGrid};
use crate::schedule::{CATEGORIES, GroupRef, StepGraph};
use crate::units::Nanos;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(
        "the op graph deadlocked at t={time_ns} ns: rank {rank} stopped at op {op} ({label}) of {ops}; \
         a collective's members reached it in different orders"
    )]
    Deadlock {
        time_ns: Nanos,
        rank: u32,
        op: u32,
        ops: u32,
        label: &'static str,
    },
    #[error("the plan has {grid} ranks but the op graph has {stages} stages for pp={pp}")]
    Shape { grid: u32, stages: usize, pp: u32 },
    /// The replay is above the [`ReplayBudget`] (bad input: exit 2); the message names the
    /// estimate and what shrinks it.
    #[error("{0}")]
    OverBudget(String),
}

/// An executed op of a traced rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEvent {
    pub rank: u32,
    pub op: u32,
    pub start: Nanos,
    pub end: Nanos,
}

/// What one rank did during the step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankStats {
    /// Time attributed to each category (compute first, then exposed communication by
    /// priority TP > CP > EP > PP > DP), indexed by `Category as usize`.
    pub attributed: [Nanos; CATEGORIES],
    pub idle: Nanos,
    /// Total busy time per category, overlapped or not.
    pub busy: [Nanos; CATEGORIES],
    pub pipeline_first_start: Nanos,
    pub pipeline_last_end: Nanos,
    /// Time with nothing active on any stream: the rank waits on its pipeline peers.
    pub stall: Nanos,
    pub stall_at_first_start: Nanos,
    pub stall_at_last_end: Nanos,
    pub end: Nanos,
}

/// The outcome of replaying one step.
#[derive(Debug, Clone)]
pub struct Replay {
    pub step_time: Nanos,
    pub ranks: Vec<RankStats>,
    pub trace: Vec<TraceEvent>,
    /// Events of the step: one per compute-op instance and one per collective instance
    /// (what a full replay processes; [`event_count`] knows it before replaying).
    pub events: u64,
    /// Events this replay actually processed (fewer than `events` when replicas were folded).
    pub replayed_events: u64,
}

/// Which ranks to record op by op.
#[derive(Debug, Clone)]
pub enum TraceRanks {
    None,
    Some(Vec<u32>),
    All,
}

/// Replays one step of `step` on every rank of `grid` over `net`.
///
/// Data-parallel replicas that are provably identical — same speeds, same links, and a
/// network whose collective times depend only on their members (no contention) — are
/// simulated once and their results copied: the replay then covers the replicas holding
/// slow GPUs, degraded links or traced ranks, plus one healthy replica standing for all the
/// others. Results equal the full replay (tested); [`replay_all`] forces the full one.
pub fn replay<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Result<Replay, EngineError> {
    match fold::plan_fold(step, grid, net, speeds, trace_ranks) {
        Some(fold) => fold::replay_folded(step, fold, net, speeds, trace_ranks),
        None => core::replay_grid(step, grid, net, speeds, trace_ranks, None),
    }
}

/// Runs a replay decided by [`plan`] (after, say, checking its estimate against a budget).
pub fn replay_planned<N: Network>(
    plan: ReplayPlan,
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Result<Replay, EngineError> {
    match plan.fold {
        Some(fold) => fold::replay_folded(step, fold, net, speeds, trace_ranks),
        None => core::replay_grid(step, grid, net, speeds, trace_ranks, None),
    }
}

/// Replays every rank, never folding replicas.
pub fn replay_all<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Result<Replay, EngineError> {
    core::replay_grid(step, grid, net, speeds, trace_ranks, None)
}

/// Events a full replay of `step` on `grid` processes: one per compute-op instance (every
/// rank of a stage runs its stage's program) and one per collective instance (one per
/// group). It depends only on the graph and the grid, not on timing, so it is known before
/// replaying.
pub fn event_count(step: &StepGraph, grid: &RankGrid) -> u64 {
    let stage_size = grid.stage_size() as u64;
    let ops: u64 = step
        .stages
        .iter()
        .map(|sp| sp.graph.node_weights().filter(|o| o.comm.is_none()).count() as u64)
        .sum();
    let pp = step.stages.len().max(1) as u64;
    let collectives: u64 = step
        .comms
        .iter()
        .map(|c| match c.group {
            GroupRef::Axes(mask) if mask.0 & GroupMask::PP.0 != 0 => grid.group_count(mask) as u64,
            GroupRef::Axes(mask) => grid.group_count(mask) as u64 / pp,
            GroupRef::P2p { .. } => stage_size,
        })
        .sum();
    ops * stage_size + collectives
}
