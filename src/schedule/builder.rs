//! The stage builder core: the state shared while building a step ([`Builder`]: the
//! priced op costs, the step's comms, the pipeline layout), the op-graph primitives
//! (compute ops, comm ops, the dependency chain of one stage: [`StageBuilder`]), and the
//! assembly of one stage's program ([`Builder::build_stage`]) from the per-slot walk
//! (`walk`), the data-parallel tail (`dp`) and the optimizer step.
//!
//! Must not price anything (durations and bytes come from `crate::pricing`) nor measure
//! time: it only places ops and their dependencies.

use std::collections::HashMap;

use petgraph::graph::NodeIndex;

use super::graph::{Category, Collective, Comm, GroupRef, Op, OpGraph, StageProgram, Stream};
use super::pipeline::{self, Pass, Slot};
use crate::plan::ScheduleKind;
use crate::pricing::{CollectiveCost, Coverage, OpCosts, StepInputs, dp, optimizer};
use crate::units::Nanos;

/// What building every stage of one step shares.
pub(super) struct Builder<'a> {
    pub(super) inp: StepInputs<'a>,
    pub(super) costs: OpCosts,
    pub(super) comms: Vec<Comm>,
    /// Pipeline hops by `(forward?, micro-batch, from virtual stage)`.
    pub(super) p2p: HashMap<(bool, u32, u32), u32>,
    /// Receives posted ahead in the sender's order (DualPipe), by p2p key.
    pub(super) posted: HashMap<(bool, u32, u32), NodeIndex>,
    /// DualPipe: the all-reduce of each bucket between the two copies of its piece, by
    /// `(piece, lowest layer)`.
    pub(super) mirror: HashMap<(u32, u64), u32>,
    /// Layers `[lo, hi)` of every piece of the model.
    pieces: Vec<(u64, u64)>,
    pub(super) pp: u32,
    /// Model chunks each stage holds (see [`pipeline::chunks_per_stage`]).
    pub(super) chunks: u32,
    pub(super) kind: ScheduleKind,
    pub(super) m: u32,
    /// Backward split into input- and weight-gradient passes (zero-bubble schedules).
    pub(super) split: bool,
    /// DualPipe with expert parallelism: the compute slowdown of an overlapped chunk pair
    /// ([`crate::pricing::compute::dualpipe_overlap_slowdown`]).
    pub(super) overlap_slowdown: Option<f64>,
    /// While a DualPipe chunk pair is built: its all-to-alls, which the pair's compute does
    /// not wait for and its sends do.
    pub(super) pair_comms: Option<Vec<NodeIndex>>,
}

/// Builds one stage's program.
pub(super) struct StageBuilder {
    pub(super) stage: u32,
    pub(super) graph: OpGraph,
    /// The last op of the current dependency chain (compute or blocking collective).
    pub(super) frontier: Option<NodeIndex>,
    /// Ops besides the frontier that the next chain op must wait for (a pipeline receive,
    /// a blocking send, overlapped collectives).
    pub(super) also_wait_for: Vec<NodeIndex>,
    /// The last op issued on the DP stream (a ZeRO-3 fetch that synchronises the device
    /// waits for it).
    pub(super) last_dp: Option<NodeIndex>,
    /// ZeRO-3: the chain's frontier before each compute unit of the current pass, in
    /// order (the op a gather `prefetch` units ahead is issued after).
    pub(super) unit_starts: Vec<Option<NodeIndex>>,
}

impl StageBuilder {
    pub(super) fn chain_deps(&mut self) -> Vec<NodeIndex> {
        let mut deps: Vec<NodeIndex> = self.frontier.into_iter().collect();
        deps.append(&mut self.also_wait_for);
        deps
    }

    pub(super) fn push(&mut self, op: Op, deps: &[NodeIndex]) -> NodeIndex {
        let stream = op.stream;
        let n = self.graph.add_node(op);
        if stream == Stream::Dp {
            self.last_dp = Some(n);
        }
        for &d in deps {
            if self.graph[d].stream != stream {
                self.graph.add_edge(d, n, ());
            }
        }
        n
    }

    /// Appends an op to the main chain: it waits for the previous chain op.
    pub(super) fn chain(&mut self, op: Op) -> NodeIndex {
        let deps = self.chain_deps();
        let n = self.push(op, &deps);
        self.frontier = Some(n);
        n
    }
}

pub(super) fn compute_op(
    category: Category,
    duration: Nanos,
    slot: Slot,
    layers: (u64, u64),
    label: &'static str,
) -> Op {
    Op {
        category,
        stream: Stream::Compute,
        duration,
        comm: None,
        micro_batch: slot.micro_batch,
        chunk: slot.chunk as u16,
        layers: (
            layers.0.min(u16::MAX as u64) as u16,
            layers.1.min(u16::MAX as u64) as u16,
        ),
        label,
    }
}

pub(super) const NO_LAYERS: (u64, u64) = (u16::MAX as u64, u16::MAX as u64);

/// The slot of ops that belong to no micro-batch (step start and end).
pub(super) const NO_SLOT: Slot = Slot::new(Pass::Forward, u32::MAX, 0);

impl<'a> Builder<'a> {
    pub(super) fn new(inp: StepInputs<'a>) -> Self {
        Builder {
            costs: OpCosts::new(&inp),
            comms: Vec::new(),
            p2p: HashMap::new(),
            posted: HashMap::new(),
            mirror: HashMap::new(),
            pieces: inp.piece_layers(),
            pp: inp.parallelism.pp as u32,
            chunks: pipeline::chunks_per_stage(inp.parallelism.schedule, inp.chunks() as u32),
            kind: inp.parallelism.schedule,
            m: inp.micro_batches() as u32,
            split: pipeline::splits_backward(inp.parallelism.schedule),
            overlap_slowdown: crate::pricing::compute::dualpipe_overlap_slowdown(&inp),
            pair_comms: None,
            inp,
        }
    }

    /// Where chunk `chunk` of `stage` sits on its micro-batches' path.
    pub(super) fn place(&self, stage: u32, chunk: u32) -> pipeline::Place {
        pipeline::place(self.kind, stage, chunk, self.pp, self.chunks)
    }

    /// Layers `[lo, hi)` of a chunk.
    pub(super) fn layers_of(&self, place: pipeline::Place) -> (u64, u64) {
        self.pieces[place.piece as usize]
    }

    pub(super) fn new_comm(
        &mut self,
        collective: Collective,
        group: GroupRef,
        bytes: u64,
        category: Category,
    ) -> u32 {
        self.comms.push(Comm {
            collective,
            group,
            bytes,
            category,
            ops: Vec::with_capacity(1),
        });
        (self.comms.len() - 1) as u32
    }

    /// A new comm for a priced collective over a group of the rank grid.
    pub(super) fn priced_comm(&mut self, cost: CollectiveCost, category: Category) -> u32 {
        self.new_comm(
            cost.collective,
            GroupRef::Axes(cost.group),
            cost.bytes,
            category,
        )
    }

    pub(super) fn comm_op(
        &mut self,
        sb: &mut StageBuilder,
        comm: u32,
        stream: Stream,
        slot: Slot,
        label: &'static str,
        deps: &[NodeIndex],
    ) -> NodeIndex {
        let c = &self.comms[comm as usize];
        let op = Op {
            category: c.category,
            stream,
            duration: 0,
            comm: Some(comm),
            micro_batch: slot.micro_batch,
            chunk: slot.chunk as u16,
            layers: (u16::MAX, u16::MAX),
            label,
        };
        let n = sb.push(op, deps);
        self.comms[comm as usize]
            .ops
            .push((sb.stage, n.index() as u32));
        n
    }

    /// One stage's program: the parameter gathers a distributed optimizer issues at the
    /// step start, the walk over the stage's slots, the gradient reductions left for the
    /// end, the optimizer step and the gathers that follow it.
    pub(super) fn build_stage(&mut self, stage: u32) -> StageProgram {
        let mut sb = StageBuilder {
            stage,
            graph: OpGraph::default(),
            frontier: None,
            also_wait_for: Vec::new(),
            last_dp: None,
            unit_starts: Vec::new(),
        };
        let par = self.inp.parallelism;
        let buckets = dp::buckets(&self.inp, stage, Coverage::FULL);
        let gather_before = self.gathers_at_start(&mut sb, &buckets);
        self.post_receives(&mut sb);
        let mut walk = self.walk_stage(&mut sb, &buckets);
        for (layer, ag) in gather_before {
            if let Some(&f) = walk.first_fwd.get(&layer) {
                sb.graph.add_edge(ag, f, ());
            }
        }
        if self.reduces_gradients() && !par.overlap_grad_reduce {
            self.reduce_at_end(&mut sb, &buckets, &mut walk.reduce_ops);
        }
        let opt = self.optimizer_step(&mut sb, &buckets, &walk.reduce_ops);
        self.gathers_at_end(&mut sb, &buckets, opt);
        StageProgram { graph: sb.graph }
    }

    /// Gradients to reduce: over data parallelism, and under DualPipe between the two
    /// copies of each piece of the model (see [`Builder::mirror_reduce`]).
    pub(super) fn reduces_gradients(&self) -> bool {
        self.inp.parallelism.dp > 1 || self.kind == ScheduleKind::Dualpipe
    }

    /// The optimizer step, once the last gradient reduction and the chain are done.
    fn optimizer_step(
        &mut self,
        sb: &mut StageBuilder,
        buckets: &[dp::Bucket],
        reduce_ops: &[NodeIndex],
    ) -> NodeIndex {
        let local_params = optimizer::local_params(&self.inp, buckets);
        let opt = compute_op(
            Category::Optimizer,
            optimizer::step_time(&self.inp, local_params, Coverage::FULL),
            NO_SLOT,
            NO_LAYERS,
            "optimizer",
        );
        // The DP stream runs in order, so its last reduction finishing means all have (and
        // the engine counts an op's dependencies in a byte: ZeRO-2 makes hundreds).
        let mut deps: Vec<NodeIndex> = reduce_ops.last().copied().into_iter().collect();
        deps.extend(sb.frontier);
        let opt = sb.push(opt, &deps);
        sb.frontier = Some(opt);
        opt
    }
}
