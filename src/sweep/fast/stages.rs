//! Fast mode's per-stage composition: each layer's forward, backward and weight-gradient
//! time per micro-batch with its TP collectives (chained, or overlapped with the block's
//! GEMMs), MoE all-to-alls and recompute, summed into chunks and stages, with blocking
//! pipeline sends without p2p overlap.
//!
//! Must not price: durations come from [`OpCosts`] and communication times from the
//! priced collectives ([`Comms`]).

use super::Ctx;
use crate::config::Scenario;
use crate::plan::Recompute;
use crate::plan::stack::TpOverlap;
use crate::pricing::{ColumnGemms, OpCosts};

/// Communication times of one micro-batch, seconds.
pub(super) struct Comms {
    /// TP collectives around one block (sum of the before and after collectives).
    pub(super) tp_block: f64,
    /// The collectives before (sequence-parallel all-gather) and after a block (a
    /// layer's gradients are complete that much before the layer ends, without TP
    /// overlap).
    pub(super) tp_before: f64,
    pub(super) tp_after: f64,
    pub(super) tp_overlap: TpOverlap,
    /// One MoE all-to-all.
    pub(super) a2a: f64,
    pub(super) p2p: f64,
    /// Zero-bubble schedules: weight gradients are a separate pass.
    pub(super) split: bool,
}

/// Per-stage quantities the pipeline and DP formulas need.
#[derive(Default, Clone)]
pub(super) struct Stage {
    /// Forward and backward per micro-batch over all chunks, blocking sends included.
    pub(super) fwd: f64,
    /// Forward as the pipeline fill runs it (ZeRO-3: with no reductions queued ahead).
    pub(super) fill_fwd: f64,
    pub(super) bwd: f64,
    /// Weight-gradient passes (zero-bubble schedules), per micro-batch.
    pub(super) w: f64,
    pub(super) tp: f64,
    pub(super) ep: f64,
    pub(super) pp: f64,
    /// Per chunk: (forward, backward) per micro-batch, and per-layer backward prefix.
    pub(super) chunks: Vec<Chunk>,
    /// ZeRO-3: what the DP stream still has queued when the stage's last pass ends.
    pub(super) fsdp_tail: f64,
}

impl Stage {
    /// Exposed ZeRO-3 gathers per micro-batch over all chunks.
    pub(super) fn fsdp(&self) -> f64 {
        self.chunks.iter().map(|c| c.fsdp_f + c.fsdp_b).sum()
    }
}

#[derive(Default, Clone)]
pub(super) struct Chunk {
    pub(super) fwd: f64,
    pub(super) bwd: f64,
    /// Layers of the chunk (lo..hi) and each layer's forward/backward time.
    pub(super) lo: u64,
    pub(super) layer_fwd: Vec<f64>,
    pub(super) layer_bwd: Vec<f64>,
    /// Backward time spent before the layers (logits on the last virtual stage).
    pub(super) bwd_head: f64,
    pub(super) fwd_head: f64,
    /// Weight-gradient pass per micro-batch (zero-bubble schedules).
    pub(super) w: f64,
    /// ZeRO-3 parameter gathers (and in-pass reduce-scatters) exposed in the forward and
    /// backward pass.
    pub(super) fsdp_f: f64,
    pub(super) fsdp_b: f64,
}

/// Time of one block with its TP collectives, and the part of it that is exposed TP.
fn block(c: &Comms, compute: f64) -> (f64, f64) {
    if c.tp_overlap == TpOverlap::Full {
        let total = compute.max(c.tp_block);
        (total, total - compute)
    } else {
        (compute + c.tp_block, c.tp_block)
    }
}

/// A backward block: under backward TP overlap the sequence-parallel output-gradient
/// all-gather stays blocking, the all-gather of the saved input runs behind the
/// column-parallel input-gradient GEMM and the input gradient's reduction behind its
/// weight-gradient GEMM (as `schedule::tp` places them); otherwise as [`block`].
pub(super) fn block_bwd(c: &Comms, compute: f64, col: ColumnGemms<f64>) -> (f64, f64) {
    if c.tp_overlap != TpOverlap::Backward || c.tp_block == 0.0 {
        return block(c, compute);
    }
    let rest = (compute - col.dgrad - col.wgrad).max(0.0);
    let exposed =
        c.tp_before + (c.tp_before - col.dgrad).max(0.0) + (c.tp_after - col.wgrad).max(0.0);
    (
        c.tp_before + rest + col.dgrad.max(c.tp_before) + col.wgrad.max(c.tp_after),
        exposed,
    )
}

/// One layer per micro-batch: (fwd, bwd, tp exposed, ep exposed, weight-gradient pass);
/// under zero-bubble schedules `bwd` is the input-gradient pass only.
fn layer_times(s: &Scenario, c: &OpCosts<f64>, comms: &Comms, layer: u64) -> [f64; 5] {
    let l = c.layer(&s.model, layer);
    let b = l.backward(comms.split);
    let ep = if l.moe { 2.0 * comms.a2a } else { 0.0 };
    let (af, af_tp) = block(comms, l.attn_fwd);
    let (mf, mf_tp) = block(comms, l.mlp_fwd);
    let (ab, ab_tp) = block_bwd(comms, b.attn, b.attn_col);
    let (mb, mb_tp) = block_bwd(comms, b.mlp, b.mlp_col);
    let fwd = af + mf + ep;
    let mut bwd = ab + mb + ep;
    let mut tp = af_tp + mf_tp + ab_tp + mb_tp;
    let mut ep_total = 2.0 * ep;
    match s.training.recompute {
        Recompute::Full => {
            bwd += fwd;
            tp += af_tp + mf_tp;
            ep_total += ep;
        }
        Recompute::Selective => bwd += c.selective_recompute,
        Recompute::None => {}
    }
    [fwd, bwd, tp, ep_total, b.weight]
}

/// Every stage's chunks, layer by layer, in virtual-stage order.
pub(super) fn stages(ctx: &Ctx, c: &OpCosts<f64>, comms: &Comms) -> Vec<Stage> {
    let s = ctx.s;
    let pp = s.parallelism.pp.max(1) as usize;
    let pieces = ctx.inp.piece_layers();
    let total_vs = pieces.len();
    let blocking = !s.parallelism.pp_comm_overlap && pp > 1;
    let mut out = vec![Stage::default(); pp];
    for (vs, &(lo, hi)) in pieces.iter().enumerate() {
        let st = &mut out[vs % pp];
        let mut ch = Chunk {
            lo,
            ..Chunk::default()
        };
        for layer in lo..hi {
            let [f, b, tp, ep, w] = layer_times(s, c, comms, layer);
            ch.layer_fwd.push(f);
            ch.layer_bwd.push(b);
            ch.w += w;
            st.w += w;
            st.tp += tp;
            st.ep += ep;
        }
        if vs == 0 {
            ch.fwd_head += c.embedding_fwd;
        }
        if vs + 1 == total_vs {
            ch.fwd_head += c.logits_fwd;
            ch.bwd_head += c.logits_bwd;
        }
        ch.fwd = ch.fwd_head + ch.layer_fwd.iter().sum::<f64>();
        ch.bwd = ch.bwd_head
            + ch.layer_bwd.iter().sum::<f64>()
            + if vs == 0 { c.embedding_bwd } else { 0.0 };
        if blocking && vs + 1 < total_vs {
            ch.fwd += comms.p2p;
            st.pp += comms.p2p;
        }
        if blocking && vs > 0 {
            ch.bwd += comms.p2p;
            st.pp += comms.p2p;
        }
        st.fwd += ch.fwd;
        st.fill_fwd += ch.fwd;
        st.bwd += ch.bwd;
        st.chunks.push(ch);
    }
    if s.parallelism.schedule == crate::plan::ScheduleKind::Dualpipe && pp > 1 {
        // DualPipe: stage `i` also holds piece `pp - 1 - i` as its chunk 1
        // (`plan::pipeline::place`).
        let own: Vec<Chunk> = out.iter().map(|st| st.chunks[0].clone()).collect();
        for (si, st) in out.iter_mut().enumerate() {
            let ch = own[pp - 1 - si].clone();
            st.fwd += ch.fwd;
            st.fill_fwd += ch.fwd;
            st.bwd += ch.bwd;
            st.w += ch.w;
            st.chunks.push(ch);
        }
    }
    out
}
