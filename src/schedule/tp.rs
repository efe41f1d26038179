//! Tensor parallelism in the op graph: the collectives around each attention and MLP
//! block (all-gather before and reduce-scatter after with sequence parallel, else one
//! all-reduce after), chained on the TP stream between compute ops; overlapped with the
//! block's GEMMs (Transformer Engine's userbuffers) under `tp_comm_overlap: full`; or,
//! under `backward` (Megatron's `LinearWithGradAccumulationAndAsyncCommunication`), in
//! the backward the input gradient's all-reduce / reduce-scatter runs behind the
//! column-parallel linear's weight-gradient GEMM and, with sequence parallel, the
//! all-gather of its saved input behind its input-gradient GEMM.
//!
//! Must not price: what each collective moves comes from [`crate::pricing::collectives`].

use petgraph::graph::NodeIndex;

use super::builder::{Builder, StageBuilder, compute_op};
use super::graph::{Category, Collective, Op, Stream};
use super::pipeline::Slot;
use crate::plan::stack::TpOverlap;
use crate::pricing::collectives::{self, TpBlock};
use crate::pricing::{CollectiveCost, ColumnGemms};
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
    /// `col`: the column-parallel GEMMs inside a backward block's `duration` (None in
    /// forward and recompute passes).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn block(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        category: Category,
        duration: Nanos,
        label: &'static str,
        col: Option<ColumnGemms<Nanos>>,
    ) -> NodeIndex {
        let Some(tp) = collectives::tp_block(&self.inp) else {
            let deps = sb.chain_deps();
            let op = compute_op(category, duration, slot, (layer, layer), label);
            let n = self.block_compute(sb, op, &deps);
            sb.frontier = Some(n);
            return n;
        };
        match (self.inp.parallelism.tp_overlap(), col) {
            (TpOverlap::Full, _) => {
                return self.overlapped_block(sb, slot, layer, (category, duration, label), tp);
            }
            (TpOverlap::Backward, Some(col)) => {
                return self.backward_overlapped_block(
                    sb,
                    slot,
                    layer,
                    (category, duration, label),
                    tp,
                    col,
                );
            }
            _ => {}
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

    /// A backward block under Megatron's backward TP overlap: the synchronous all-gather of
    /// the output gradient (sequence parallel), the block's compute up to its
    /// column-parallel linear, then that linear's input-gradient GEMM with the all-gather
    /// of its saved input beside it (sequence parallel), then its weight-gradient GEMM
    /// (after both) with the input gradient's reduction beside it. The next op waits for
    /// the GEMM and the reduction, so exactly `min(reduction, wgrad GEMM)` is hidden.
    fn backward_overlapped_block(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        (category, duration, label): (Category, Nanos, &'static str),
        tp: TpBlock,
        col: ColumnGemms<Nanos>,
    ) -> NodeIndex {
        if let Some(before) = tp.before {
            let l = tp_label(before.collective);
            self.chained_collective(sb, (before, Category::Tp), slot, l);
        }
        let rest = duration.saturating_sub(col.dgrad + col.wgrad);
        let deps = sb.chain_deps();
        let op = compute_op(category, rest, slot, (layer, layer), label);
        let r = self.block_compute(sb, op, &deps);
        let input_gather = tp.before.map(|before| {
            let c = self.priced_comm(before, Category::Tp);
            self.comm_op(sb, c, Stream::Tp, slot, "tp all-gather (input)", &[r])
        });
        let dgrad = compute_op(category, col.dgrad, slot, (layer, layer), "column dgrad");
        let d = sb.push(dgrad, &[r]);
        let c = self.priced_comm(tp.after, Category::Tp);
        let reduce = self.comm_op(sb, c, Stream::Tp, slot, tp_label(tp.after.collective), &[d]);
        let mut deps = vec![d];
        deps.extend(input_gather);
        let wgrad = compute_op(category, col.wgrad, slot, (layer, layer), "column wgrad");
        let w = sb.push(wgrad, &deps);
        sb.frontier = Some(w);
        sb.also_wait_for.push(reduce);
        w
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
