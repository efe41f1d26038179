//! Data parallelism in the op graph, on the in-order DP stream: gradient buckets reduced
//! as they complete (after each chunk's last gradient pass, or every micro-batch's under
//! ZeRO-2/3) or at the end without overlap; hybrid sharding's replica all-reduce of each
//! gradient shard; DualPipe's all-reduce between the two copies of a piece; the
//! distributed optimizer's parameter all-gathers (at the step start, each ahead of the
//! first forward that needs it, with overlap; after the optimizer without); ZeRO-3/FSDP's
//! per-layer parameter gathers, prefetched one layer ahead, with each backward's
//! reduce-scatters issued between them as FSDP does.
//!
//! Must not price: buckets, sizes and groups come from [`crate::pricing::dp`].

use petgraph::graph::NodeIndex;

use super::builder::{Builder, NO_SLOT, StageBuilder};
use super::graph::{Category, Collective, GroupRef, Op, Stream};
use super::pipeline::{Pass, Slot};
use super::walk::{PassReduce, Walk};
use crate::plan::ScheduleKind;
use crate::pricing::Coverage;
use crate::pricing::dp::{self, Bucket, NO_LAYER};

impl Builder<'_> {
    /// ZeRO-3 / FSDP: whether parameters are sharded and gathered per layer.
    pub(super) fn fsdp(&self) -> bool {
        dp::fsdp(self.inp.parallelism)
    }

    /// Whether a distributed optimizer (ZeRO-1/2) all-gathers updated parameters by bucket.
    fn gathers_buckets(&self) -> bool {
        dp::sharded(self.inp.parallelism) && !self.fsdp()
    }

    /// A distributed optimizer with overlap: last step's parameter all-gathers run at the
    /// start of this step, in the order the forward pass needs them (chunk by chunk, lowest
    /// layers first). Returns each gather with the layer whose first forward waits for it.
    pub(super) fn gathers_at_start(
        &mut self,
        sb: &mut StageBuilder,
        buckets: &[Bucket],
    ) -> Vec<(u64, NodeIndex)> {
        let mut gather_before = Vec::new();
        if !(self.gathers_buckets() && self.inp.parallelism.overlap_grad_reduce) {
            return gather_before;
        }
        let mut in_need_order: Vec<&Bucket> = buckets.iter().collect();
        in_need_order.sort_by_key(|b| (b.chunk, b.lowest));
        for b in in_need_order {
            let c = self.priced_comm(dp::param_gather(&self.inp, b), Category::Dp);
            let slot = Slot {
                chunk: b.chunk,
                ..NO_SLOT
            };
            let n = self.comm_op(sb, c, Stream::Dp, slot, "dp param all-gather", &[]);
            gather_before.push((b.lowest, n));
        }
        gather_before
    }

    /// A distributed optimizer without overlap: the parameter all-gathers after the
    /// optimizer step `opt`.
    pub(super) fn gathers_at_end(
        &mut self,
        sb: &mut StageBuilder,
        buckets: &[Bucket],
        opt: NodeIndex,
    ) {
        if !self.gathers_buckets() || self.inp.parallelism.overlap_grad_reduce {
            return;
        }
        for b in buckets {
            let c = self.priced_comm(dp::param_gather(&self.inp, b), Category::Dp);
            self.comm_op(sb, c, Stream::Dp, NO_SLOT, "dp param all-gather", &[opt]);
        }
    }

    /// Without gradient-reduce overlap: every bucket reduced once the chain is done, piece
    /// by piece, so that the two holders of a DualPipe piece (where it is chunk 0 on one
    /// and chunk 1 on the other) queue their all-reduces alike.
    pub(super) fn reduce_at_end(
        &mut self,
        sb: &mut StageBuilder,
        buckets: &[Bucket],
        reduce_ops: &mut Vec<NodeIndex>,
    ) {
        let dep = sb.frontier;
        let mut in_order: Vec<&Bucket> = buckets.iter().collect();
        in_order.sort_by_key(|b| self.place(sb.stage, b.chunk).piece);
        for b in in_order {
            let r = self.reduce_bucket(sb, b, true, dep);
            reduce_ops.push(r);
        }
    }

    /// Reduces one bucket's gradients once `dep` is done: over data parallelism, then
    /// (DualPipe) with the other copy of the piece. Returns the last op.
    ///
    /// The copies' all-reduce runs once, with the step's `last_reduce`: what earlier
    /// per-micro-batch reductions leave accumulates on the rank until then.
    pub(super) fn reduce_bucket(
        &mut self,
        sb: &mut StageBuilder,
        b: &Bucket,
        last_reduce: bool,
        dep: Option<NodeIndex>,
    ) -> NodeIndex {
        let mut last = dep;
        if self.inp.parallelism.dp > 1 {
            last = Some(self.grad_reduce(sb, b, last_reduce, dep));
        }
        if self.kind == ScheduleKind::Dualpipe && last_reduce {
            last = Some(self.mirror_reduce(sb, b, last));
        }
        last.expect("a bucket is reduced over DP or between DualPipe copies")
    }

    /// DualPipe holds every piece of the model twice: piece `i` is chunk 0 of stage `i`
    /// (the direction fed at stage 0) and chunk 1 of stage `p - 1 - i` (the one fed at stage
    /// `p - 1`). Each copy accumulates the gradients of its own direction's micro-batches,
    /// so the two are summed before the optimizer step, by an all-reduce between the two
    /// ranks at the same position of stages `i` and `p - 1 - i` (`deepseek-ai/DualPipe`'s
    /// example adds the mirrored rank's gradients the same way). It runs after the
    /// data-parallel reduction, on what that leaves on the rank.
    fn mirror_reduce(
        &mut self,
        sb: &mut StageBuilder,
        b: &Bucket,
        dep: Option<NodeIndex>,
    ) -> NodeIndex {
        let piece = self.place(sb.stage, b.chunk).piece;
        let c = match self.mirror.get(&(piece, b.lowest)) {
            Some(&c) => c,
            None => {
                let bytes = dp::mirror_reduce_bytes(&self.inp, b);
                let (a, z) = (sb.stage, self.pp - 1 - sb.stage);
                let group = GroupRef::P2p {
                    from: a.min(z),
                    to: a.max(z),
                };
                let c = self.new_comm(Collective::AllReduce, group, bytes, Category::Dp);
                self.mirror.insert((piece, b.lowest), c);
                c
            }
        };
        let slot = Slot::new(Pass::Backward, u32::MAX, b.chunk);
        let deps: Vec<NodeIndex> = dep.into_iter().collect();
        self.comm_op(
            sb,
            c,
            Stream::Dp,
            slot,
            "dualpipe mirror grad all-reduce",
            &deps,
        )
    }

    /// Reduce-scatters `buckets` once the chain's current op is done, and holds the chain
    /// until they finish (a ZeRO-2 micro-batch without gradient-reduce overlap).
    pub(super) fn blocking_reduce(&mut self, sb: &mut StageBuilder, buckets: &[Bucket]) {
        let dep = sb.frontier;
        let mut last = None;
        for b in buckets {
            last = Some(self.grad_reduce(sb, b, false, dep));
        }
        // In-order DP stream: the last reduction ends after the others.
        sb.also_wait_for.extend(last);
    }

    /// Reduces a bucket's gradients over DP (reduce-scatter when sharded); with
    /// `last_reduce` under hybrid sharding, then all-reduces this rank's gradient shard
    /// across the replica groups (once per step: the shards accumulate locally). Returns
    /// the last op.
    fn grad_reduce(
        &mut self,
        sb: &mut StageBuilder,
        b: &Bucket,
        last_reduce: bool,
        dep: Option<NodeIndex>,
    ) -> NodeIndex {
        let cost = dp::grad_reduce(&self.inp, b);
        let label = if cost.collective == Collective::ReduceScatter {
            "dp grad reduce-scatter"
        } else {
            "dp grad all-reduce"
        };
        let c = self.priced_comm(cost, Category::Dp);
        let slot = Slot::new(Pass::Backward, u32::MAX, b.chunk);
        let deps: Vec<NodeIndex> = dep.into_iter().collect();
        let n = self.comm_op(sb, c, Stream::Dp, slot, label, &deps);
        match dp::replica_reduce(&self.inp, b) {
            Some(shard) if last_reduce => {
                let c = self.priced_comm(shard, Category::Dp);
                self.comm_op(sb, c, Stream::Dp, slot, "dp shard all-reduce", &[n])
            }
            _ => n,
        }
    }

    /// ZeRO-3 / FSDP parameter all-gathers of one layer on the DP stream, issued when `deps`
    /// are done so that they prefetch while earlier units compute; each collective behind
    /// its host issue time (`stack.zero3.host_us`). Returns the last.
    fn fsdp_gather(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        deps: &[NodeIndex],
    ) -> Option<NodeIndex> {
        let inp = self.inp;
        let mut last = None;
        let dp_op = |duration, label| Op {
            category: Category::Dp,
            stream: Stream::Dp,
            duration,
            comm: None,
            micro_batch: slot.micro_batch,
            chunk: slot.chunk as u16,
            layers: (layer as u16, layer as u16),
            label,
        };
        if let Some(d) = dp::param_upload_time(&inp, layer, Coverage::FULL) {
            // The shard's host-to-GPU copy, ahead of the gathers on the DP stream.
            last = Some(sb.push(dp_op(d, "param h2d (offload)"), deps));
        }
        let host = dp::gather_host_time(inp.parallelism);
        for cost in dp::layer_gathers(&inp, layer, Coverage::FULL) {
            if host > 0 {
                // In order on the DP stream: the collective after it waits for it.
                sb.push(dp_op(host, "fsdp gather issue (host)"), deps);
            }
            let c = self.priced_comm(cost, Category::Dp);
            last = Some(self.comm_op(sb, c, Stream::Dp, slot, "fsdp param all-gather", deps));
        }
        last
    }

    /// ZeRO-3 / FSDP: gathers the embedding (or output layer) for the head unit about to be
    /// built (the embedding forward, the logits forward or backward), issued as a layer's
    /// gathers are (`stack.zero3.prefetch` units ahead).
    pub(super) fn fsdp_head(&mut self, sb: &mut StageBuilder, slot: Slot) {
        let Some(cost) = dp::head_gather(&self.inp, Coverage::FULL) else {
            return;
        };
        sb.unit_starts.push(sb.frontier);
        let u = sb.unit_starts.len() - 1;
        let k = self.inp.parallelism.stack.zero3.prefetch as usize;
        let deps: Vec<NodeIndex> = sb.unit_starts[u.saturating_sub(k)].into_iter().collect();
        let host = dp::gather_host_time(self.inp.parallelism);
        if host > 0 {
            let op = Op {
                category: Category::Dp,
                stream: Stream::Dp,
                duration: host,
                comm: None,
                micro_batch: slot.micro_batch,
                chunk: slot.chunk as u16,
                layers: (u16::MAX, u16::MAX),
                label: "fsdp gather issue (host)",
            };
            sb.push(op, &deps);
        }
        let c = self.priced_comm(cost, Category::Dp);
        let g = self.comm_op(sb, c, Stream::Dp, slot, "fsdp embedding all-gather", &deps);
        sb.also_wait_for.push(g);
        self.fsdp_sync(sb);
    }

    /// ZeRO-3 / FSDP: starts a pass's walk over its compute units.
    pub(super) fn fsdp_pass_start(&self, sb: &mut StageBuilder) {
        sb.unit_starts.clear();
    }

    /// ZeRO-3 / FSDP: gathers `layer` for the compute unit about to be built, issued
    /// `stack.zero3.prefetch` units ahead: once the unit `1 + prefetch` before it has
    /// ended (the op on the chain then), the pass start for the first units. The unit's
    /// first op waits for the gathers.
    pub(super) fn fsdp_prefetch(&mut self, sb: &mut StageBuilder, slot: Slot, layer: u64) {
        if !self.fsdp() {
            return;
        }
        sb.unit_starts.push(sb.frontier);
        let u = sb.unit_starts.len() - 1;
        let k = self.inp.parallelism.stack.zero3.prefetch as usize;
        let issue_after = sb.unit_starts[u.saturating_sub(k)];
        let deps = issue_after.into_iter().collect::<Vec<_>>();
        if let Some(g) = self.fsdp_gather(sb, slot, layer, &deps) {
            sb.also_wait_for.push(g);
        }
    }

    /// ZeRO-3 / FSDP with `stack.zero3.sync_per_gather`: the next compute op also waits for
    /// every op issued on the DP stream so far (the device synchronises in the fetch).
    pub(super) fn fsdp_sync(&mut self, sb: &mut StageBuilder) {
        if self.fsdp() && self.inp.parallelism.stack.zero3.sync_per_gather {
            sb.also_wait_for.extend(sb.last_dp);
        }
    }

    /// ZeRO-3 / FSDP: reduce-scatters the buckets that layers above `layer` completed, on
    /// the DP stream right after `layer`'s prefetch gather, as FSDP issues them (each
    /// layer's post-backward hook, between the prefetches of the next layers); queued behind
    /// the whole pass's gathers instead they would all wait for its end.
    pub(super) fn fsdp_reduce_completed(
        &mut self,
        sb: &mut StageBuilder,
        layer: u64,
        walk: &mut Walk,
        reduce: &mut PassReduce,
    ) {
        while let Some(b) = reduce
            .pending
            .front()
            .filter(|b| b.lowest != NO_LAYER && b.lowest > layer)
            .cloned()
        {
            reduce.pending.pop_front();
            let dep = walk.grads_done.get(&b.lowest).copied().or(sb.frontier);
            let r = self.reduce_bucket(sb, &b, reduce.last, dep);
            walk.reduce_ops.push(r);
        }
    }
}
