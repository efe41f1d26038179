//! Tensor parallelism in the op graph: the collectives around each attention and MLP
//! block (all-gather before and reduce-scatter after with sequence parallel, else one
//! all-reduce after), chained on the TP stream between compute ops, or overlapped with
//! the block's GEMMs (Transformer Engine's userbuffers) when the plan says so.
//!
//! Must not price: what each collective moves comes from [`crate::pricing::collectives`].

use petgraph::graph::NodeIndex;

use super::builder::{Builder, StageBuilder, compute_op};
use super::graph::{Category, Collective, Op, Stream};
use super::pipeline::Slot;
use crate::pricing::CollectiveCost;
use crate::pricing::collectives::{self, TpBlock};
use crate::units::Nanos;

fn tp_label(c: Collective) -> &'static str {
    match c {
        Collective::AllGather => "tp all-gather",
        Collective::ReduceScatter => "tp reduce-scatter",
        _ => "tp all-reduce",
    }
}

impl Builder<'_> {
    /// A blocking collective on the TP stream, chained between compute ops.
    pub(super) fn chained_collective(
        &mut self,
        sb: &mut StageBuilder,
        (cost, category): (CollectiveCost, Category),
        slot: Slot,
        label: &'static str,
    ) {
        let comm = self.priced_comm(cost, category);
        let deps = sb.chain_deps();
        let n = self.comm_op(sb, comm, Stream::Tp, slot, label, &deps);
        sb.frontier = Some(n);
    }

    /// One block (attention or MLP) of one pass: collectives before and after its compute.
    pub(super) fn block(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        category: Category,
        duration: Nanos,
        label: &'static str,
    ) -> NodeIndex {
        let Some(tp) = collectives::tp_block(&self.inp) else {
            let deps = sb.chain_deps();
            let op = compute_op(category, duration, slot, (layer, layer), label);
            let n = self.block_compute(sb, op, &deps);
            sb.frontier = Some(n);
            return n;
        };
        if self.inp.parallelism.tp_comm_overlap {
            return self.overlapped_block(sb, slot, layer, (category, duration, label), tp);
        }
        if let Some(before) = tp.before {
            let label = tp_label(before.collective);
            self.chained_collective(sb, (before, Category::Tp), slot, label);
        }
        let deps = sb.chain_deps();
        let op = compute_op(category, duration, slot, (layer, layer), label);
        let n = self.block_compute(sb, op, &deps);
        sb.frontier = Some(n);
        let label = tp_label(tp.after.collective);
        self.chained_collective(sb, (tp.after, Category::Tp), slot, label);
        n
    }

    /// A block whose TP collectives overlap its GEMMs (Transformer Engine's userbuffers):
    /// compute and the collectives start together; the next op waits for all of them.
    fn overlapped_block(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        (category, duration, label): (Category, Nanos, &'static str),
        tp: TpBlock,
    ) -> NodeIndex {
        let deps = sb.chain_deps();
        let mut last = None;
        for cost in tp.before.into_iter().chain([tp.after]) {
            let c = self.priced_comm(cost, Category::Tp);
            let label = tp_label(cost.collective);
            last = Some(self.comm_op(sb, c, Stream::Tp, slot, label, &deps));
        }
        let op = compute_op(category, duration, slot, (layer, layer), label);
        let n = self.block_compute(sb, op, &deps);
        sb.frontier = Some(n);
        sb.also_wait_for.extend(last);
        n
    }

    /// A block's compute op after `deps`; attention under context parallelism runs as ring
    /// attention. Returns the op (or the last ring step) that completes the block.
    fn block_compute(
        &mut self,
        sb: &mut StageBuilder,
        mut op: Op,
        deps: &[NodeIndex],
    ) -> NodeIndex {
        if let (Some(slow), Some(_)) = (self.overlap_slowdown, &self.pair_comms) {
            // A DualPipe chunk pair's compute runs on the SMs communication leaves it.
            op.duration = crate::pricing::compute::slowed(op.duration, slow);
        }
        let cp = self.inp.parallelism.cp.max(1) as u32;
        if cp == 1 || !matches!(op.label, "attn fwd" | "attn bwd" | "recompute attn") {
            return sb.push(op, deps);
        }
        self.ring_attention(sb, op, deps, cp)
    }
}
