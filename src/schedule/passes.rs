//! One pass of one micro-batch through one model chunk: the forward (embedding, each
//! layer's attention and MLP or MoE block, logits and loss), the backward (recompute as
//! the plan says, each layer in reverse, ZeRO-3's per-layer gathers and reduce-scatters
//! interleaved) and the zero-bubble weight pass; each returns the pipeline send it ends
//! with.
//!
//! Must not price anything: every duration is a field of [`crate::pricing::OpCosts`] as
//! [`crate::pricing::LayerCosts`] selects it for a layer.

use std::collections::HashMap;

use petgraph::graph::NodeIndex;

use super::builder::{Builder, NO_LAYERS, StageBuilder, compute_op};
use super::graph::Category;
use super::pipeline::Slot;
use super::pp::{PendingSend, p2p_streams};
use super::walk::{PassReduce, Walk};
use crate::plan::Recompute;
use crate::units::Nanos;

impl Builder<'_> {
    /// One forward pass; returns its send to the next stage, which the caller emits when
    /// the slot's unit ends ([`Slot::send_after`]).
    pub(super) fn forward_slot(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        first_fwd: &mut HashMap<u64, NodeIndex>,
    ) -> Option<PendingSend> {
        let at = self.place(sb.stage, slot.chunk);
        let (vs, (send, recv)) = (at.vs, p2p_streams(at.reversed, true));
        if !at.first {
            let r = self.recv_op(sb, (true, slot.micro_batch, vs - 1), recv, slot);
            // The next op waits for both the receive and the chain so far: TP collectives
            // block the compute stream as NCCL kernels on Megatron's main stream do.
            sb.also_wait_for.push(r);
        }
        self.fsdp_pass_start(sb);
        if at.first {
            self.fsdp_head(sb, slot);
            sb.chain(compute_op(
                Category::Forward,
                self.costs.embedding_fwd,
                slot,
                NO_LAYERS,
                "embedding fwd",
            ));
        }
        let (lo, hi) = self.layers_of(at);
        for layer in lo..hi {
            self.fsdp_prefetch(sb, slot, layer);
            self.fsdp_sync(sb);
            let a = self.block(
                sb,
                slot,
                layer,
                Category::Forward,
                self.costs.attn_fwd,
                "attn fwd",
                None,
            );
            first_fwd.entry(layer).or_insert(a);
            self.mlp_block(sb, slot, layer, true);
        }
        if at.last {
            self.fsdp_head(sb, slot);
            sb.chain(compute_op(
                Category::Forward,
                self.costs.logits_fwd,
                slot,
                NO_LAYERS,
                "logits+loss fwd",
            ));
            None
        } else {
            Some(self.pending_send(true, slot, vs, send))
        }
    }

    /// One backward (input-gradient) pass; returns its send to the previous stage, as
    /// [`Builder::forward_slot`] does.
    pub(super) fn backward_slot(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        walk: &mut Walk,
        reduce: &mut PassReduce,
    ) -> Option<PendingSend> {
        let at = self.place(sb.stage, slot.chunk);
        let (vs, (send, recv)) = (at.vs, p2p_streams(at.reversed, false));
        self.fsdp_pass_start(sb);
        if !at.last {
            let r = self.recv_op(sb, (false, slot.micro_batch, vs + 1), recv, slot);
            sb.also_wait_for.push(r);
        } else {
            self.fsdp_head(sb, slot);
            sb.chain(compute_op(
                Category::Backward,
                self.costs.logits_bwd,
                slot,
                NO_LAYERS,
                "logits+loss bwd",
            ));
        }
        let (lo, hi) = self.layers_of(at);
        for layer in (lo..hi).rev() {
            self.fsdp_prefetch(sb, slot, layer);
            if self.fsdp() {
                self.fsdp_reduce_completed(sb, layer, walk, reduce);
            }
            self.fsdp_sync(sb);
            let n = self.layer_backward(sb, slot, layer);
            walk.grads_done.insert(layer, n);
        }
        if at.first {
            sb.chain(compute_op(
                Category::Backward,
                self.costs.embedding_bwd,
                slot,
                NO_LAYERS,
                "embedding bwd",
            ));
            None
        } else {
            Some(self.pending_send(false, slot, vs, send))
        }
    }

    /// One layer's backward: its recompute, the MLP block, the selective recompute of the
    /// attention core, the attention block. Returns the op that completes the layer.
    fn layer_backward(&mut self, sb: &mut StageBuilder, slot: Slot, layer: u64) -> NodeIndex {
        let recompute = self.inp.training.recompute;
        if recompute == Recompute::Full {
            self.block(
                sb,
                slot,
                layer,
                Category::Recompute,
                self.costs.attn_fwd,
                "recompute attn",
                None,
            );
            self.mlp_recompute(sb, slot, layer);
            // ZeRO-3 that re-gathers: the recompute released the parameters; the
            // backward is its own unit, gathered again.
            if crate::pricing::dp::regathers(&self.inp) {
                self.fsdp_prefetch(sb, slot, layer);
                self.fsdp_sync(sb);
            }
        }
        self.mlp_block(sb, slot, layer, false);
        if recompute == Recompute::Selective && self.costs.selective_recompute > 0 {
            sb.chain(compute_op(
                Category::Recompute,
                self.costs.selective_recompute,
                slot,
                (layer, layer),
                "recompute attn core",
            ));
        }
        let b = self.costs.layer(self.inp.model, layer).backward(self.split);
        let col = Some(b.attn_col);
        self.block(sb, slot, layer, Category::Backward, b.attn, "attn bwd", col)
    }

    /// The weight-gradient pass of one micro-batch through one chunk (zero-bubble
    /// schedules): one compute op covering every layer of the chunk, no communication.
    pub(super) fn weight_slot(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        grads_done: &mut HashMap<u64, NodeIndex>,
    ) {
        let (lo, hi) = self.layers_of(self.place(sb.stage, slot.chunk));
        let duration: Nanos = (lo..hi)
            .map(|l| self.costs.layer(self.inp.model, l).backward(true).weight)
            .sum();
        let layers = if hi > lo { (lo, hi - 1) } else { NO_LAYERS };
        let n = sb.chain(compute_op(
            Category::BackwardWeight,
            duration,
            slot,
            layers,
            "weight grad",
        ));
        for l in lo..hi {
            grads_done.insert(l, n);
        }
    }

    /// A layer's MLP block (the MoE block, between its dispatch and combine all-to-alls,
    /// on MoE layers) in one pass.
    fn mlp_block(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        forward: bool,
    ) -> NodeIndex {
        let l = self.costs.layer(self.inp.model, layer);
        let b = l.backward(self.split);
        let (cat, dur, label, col) = match (l.moe, forward) {
            (false, true) => (Category::Forward, l.mlp_fwd, "mlp fwd", None),
            (false, false) => (Category::Backward, b.mlp, "mlp bwd", Some(b.mlp_col)),
            (true, true) => (Category::Forward, l.mlp_fwd, "moe fwd", None),
            (true, false) => (Category::Backward, b.mlp, "moe bwd", Some(b.mlp_col)),
        };
        self.around_moe(sb, slot, l.moe, |b, sb| {
            b.block(sb, slot, layer, cat, dur, label, col)
        })
    }

    /// The MLP block's forward again, before its backward (full recompute).
    fn mlp_recompute(&mut self, sb: &mut StageBuilder, slot: Slot, layer: u64) {
        let l = self.costs.layer(self.inp.model, layer);
        self.around_moe(sb, slot, l.moe, |b, sb| {
            b.block(
                sb,
                slot,
                layer,
                Category::Recompute,
                l.mlp_fwd,
                "recompute mlp",
                None,
            )
        });
    }
}
