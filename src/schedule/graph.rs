//! The op graph of one training step.
//!
//! A step is SPMD: every rank of a pipeline stage runs the same program, so the graph is
//! stored once per stage ([`StageProgram`], a petgraph `DiGraph` of [`Op`]s whose edges are
//! the dependencies between streams) and instantiated per rank by the engine. Ranks meet in
//! collectives: a [`Comm`] names the process group and the ops (one per participating
//! stage) that join it. Memory is `O(stages x ops)`, independent of the GPU count, which is
//! what lets the engine replay 131,072 ranks.

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

pub use crate::vocab::{CATEGORIES, Category, Collective};

use crate::plan::GroupMask;
use crate::units::Nanos;

/// An in-order queue of work on one GPU, like a CUDA stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[repr(u8)]
pub enum Stream {
    Compute = 0,
    /// Tensor, context and expert parallel collectives (on the critical path).
    Tp = 1,
    SendNext = 2,
    RecvPrev = 3,
    SendPrev = 4,
    RecvNext = 5,
    /// Data-parallel gradient reduction and parameter gathering.
    Dp = 6,
}

pub const STREAMS: usize = 7;

impl Stream {
    pub const ALL: [Stream; STREAMS] = [
        Stream::Compute,
        Stream::Tp,
        Stream::SendNext,
        Stream::RecvPrev,
        Stream::SendPrev,
        Stream::RecvNext,
        Stream::Dp,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stream::Compute => "compute",
            Stream::Tp => "tp/cp/ep comm",
            Stream::SendNext => "pp send next",
            Stream::RecvPrev => "pp recv prev",
            Stream::SendPrev => "pp send prev",
            Stream::RecvNext => "pp recv next",
            Stream::Dp => "dp comm",
        }
    }
}

/// The process group a comm runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum GroupRef {
    /// Ranks varying along these axes (TP, DP, ...): members all in one stage unless the
    /// mask contains the PP axis.
    Axes(GroupMask),
    /// A pipeline hop: the rank at the same position in stage `from` sends to stage `to`.
    P2p { from: u32, to: u32 },
}

/// One collective (or send/recv pair) of the step, shared by all groups of its kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comm {
    pub collective: Collective,
    pub group: GroupRef,
    /// Message size as nccl-tests counts it: the whole buffer (all-reduce), the gathered
    /// output (all-gather), the input (reduce-scatter, all-to-all), or the payload (p2p).
    pub bytes: u64,
    pub category: Category,
    /// The op joining this comm in each participating stage: `(stage, op index)`.
    pub ops: Vec<(u32, u32)>,
}

/// One unit of work in a stage program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    pub category: Category,
    pub stream: Stream,
    /// Duration on a healthy GPU (compute ops); comm ops are timed by the network.
    pub duration: Nanos,
    /// Index into [`StepGraph::comms`] for comm ops.
    pub comm: Option<u32>,
    pub micro_batch: u32,
    /// Model chunk (virtual stage) for interleaved schedules.
    pub chunk: u16,
    /// First and last layer (global indices) this op covers; `u16::MAX` when none.
    pub layers: (u16, u16),
    pub label: &'static str,
}

pub type OpGraph = DiGraph<Op, ()>;

/// The program every rank of one pipeline stage runs. Node indices are op indices;
/// node order is issue order, and within a stream it is execution order.
#[derive(Debug, Clone, Default)]
pub struct StageProgram {
    pub graph: OpGraph,
}

impl StageProgram {
    pub fn op(&self, index: u32) -> &Op {
        &self.graph[NodeIndex::new(index as usize)]
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }
}

/// The whole step: one program per stage plus the comms that tie ranks together.
#[derive(Debug, Clone, Default)]
pub struct StepGraph {
    pub stages: Vec<StageProgram>,
    pub comms: Vec<Comm>,
    /// Micro-batches per pipeline per step.
    pub micro_batches: u32,
}

impl StepGraph {
    pub fn op_count(&self) -> usize {
        self.stages.iter().map(StageProgram::len).sum()
    }
}
