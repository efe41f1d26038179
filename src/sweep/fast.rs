//! Fast mode: a closed-form step time for one plan, for ranking thousands of plans.
//!
//! Mirrors the schedule generator (`schedule::build_step`) without building a graph:
//! - compute per micro-batch and layer from the same `model::kernels` lists and
//!   `hardware::ComputeModel` the generator uses;
//! - tensor-parallel collectives around every attention and MLP block (all-gather +
//!   reduce-scatter with sequence parallel, else all-reduce), chained or overlapped with the
//!   block's GEMMs as the plan says, timed by `network::analytic`; MoE all-to-alls chained;
//! - the pipeline as `m · max_s X_s + (Σ_s X_s − max_s X_s) / v` with `X_s` a stage's
//!   forward + backward per micro-batch (the `(p−1)/v` bubble for balanced stages), plus
//!   blocking sends without p2p overlap and the fill/drain hops with it;
//! - zero-bubble schedules (ZB-H1/H2, arXiv 2401.10241) split backward into input- and
//!   weight-gradient passes; the weight passes fill the bubble, which becomes
//!   `Σ_{s≠crit} (X_s − 2W_s)` (H1) or `Σ_{s≠crit} max(X_s − 3W_s, F_s)` (H2), the closed
//!   forms `sim`'s tests check; gradients are reduced after the last weight pass;
//! - data-parallel buckets as the generator forms them: parameter all-gathers at the start
//!   (delaying the first forwards that need them), gradient reduction overlapped with the
//!   last backward of each chunk, then the optimizer; under ZeRO-2 every micro-batch's
//!   gradient pass reduce-scatters (blocking without overlap — inside the weight pass that
//!   fills the bubble under zero-bubble schedules — else queued on the in-order DP stream as
//!   the stage's passes, walked in schedule order back to back, issue them);
//! - ZeRO-3 (FSDP): every layer's parameters all-gathered on the DP stream in each forward
//!   and backward pass, prefetched one layer ahead, and every micro-batch's reduce-scatters
//!   between the backward's gathers, as the generator issues them ([`fsdp_pass`] replays
//!   one pass; [`apply_fsdp`] walks each stage's passes in schedule order, carrying the DP
//!   stream's queue from pass to pass);
//! - hybrid sharding (`zero_group`): gathers and reduce-scatters over the shard group, then
//!   each bucket's gradient shard all-reduced across the replica groups once per step.
//!
//! Deterministic and allocation-light; it never runs the engine. Context parallelism has
//! no communication here because the generator has none yet.

use serde::Serialize;

use crate::config::Scenario;
use crate::hardware::ComputeModel;
use crate::model::{self, Kernel};
use crate::network::AnalyticNetwork;
use crate::plan::{GroupMask, RankGrid, Recompute, ScheduleKind, ZeroGroups, hybrid_shard_ranks};
use crate::schedule::pipeline::{self, Pass};
use crate::schedule::{Collective, StepInputs};

/// A fast-mode step estimate, seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FastEstimate {
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    pub mfu: f64,
    /// Pipeline fill and drain on the critical stage.
    pub bubble_s: f64,
    /// Tensor-parallel and expert-parallel communication on the critical path.
    pub tp_exposed_s: f64,
    pub ep_exposed_s: f64,
    pub pp_exposed_s: f64,
    pub dp_exposed_s: f64,
    pub optimizer_s: f64,
}

/// Per-micro-batch compute of one GPU, seconds.
struct Costs {
    attn_f: f64,
    attn_b: f64,
    mlp_f: f64,
    mlp_b: f64,
    moe_f: f64,
    moe_b: f64,
    sel: f64,
    emb_f: f64,
    emb_b: f64,
    logits_f: f64,
    logits_b: f64,
    /// Weight-gradient parts of the backward times, split off under zero-bubble schedules.
    attn_w: f64,
    mlp_w: f64,
    moe_w: f64,
}

fn t(cm: &ComputeModel, ks: &[Kernel]) -> f64 {
    // The generator rounds each op to whole nanoseconds; so do we.
    (cm.kernels_time_s(ks) * 1e9).round() * 1e-9
}

impl Costs {
    /// The generator's own op durations ([`crate::schedule::OpCosts`]), in seconds: fast
    /// mode and replay time compute identically.
    fn new(inp: &StepInputs) -> Self {
        let c = crate::schedule::OpCosts::new(inp);
        let s = |ns: u64| ns as f64 * 1e-9;
        Costs {
            attn_f: s(c.attn_fwd),
            attn_b: s(c.attn_bwd),
            mlp_f: s(c.mlp_fwd),
            mlp_b: s(c.mlp_bwd),
            moe_f: s(c.moe_fwd),
            moe_b: s(c.moe_bwd),
            attn_w: s(c.attn_wgrad),
            mlp_w: s(c.mlp_wgrad),
            moe_w: s(c.moe_wgrad),
            sel: s(c.selective_recompute),
            emb_f: s(c.embedding_fwd),
            emb_b: s(c.embedding_bwd),
            logits_f: s(c.logits_fwd),
            logits_b: s(c.logits_bwd),
        }
    }
}

/// Communication times of one micro-batch, seconds.
struct Comms {
    /// TP collectives around one block (sum of the before and after collectives).
    tp_block: f64,
    /// The collective after a block (a layer's gradients are complete that much before the
    /// layer ends, without TP overlap).
    tp_after: f64,
    tp_overlap: bool,
    /// One MoE all-to-all.
    a2a: f64,
    p2p: f64,
    /// Zero-bubble schedules: weight gradients are a separate pass.
    split: bool,
}

/// Time of one block with its TP collectives, and the part of it that is exposed TP.
fn block(c: &Comms, compute: f64) -> (f64, f64) {
    if c.tp_overlap {
        let total = compute.max(c.tp_block);
        (total, total - compute)
    } else {
        (compute + c.tp_block, c.tp_block)
    }
}

/// One layer per micro-batch: (fwd, bwd, tp exposed, ep exposed, weight-gradient pass);
/// under zero-bubble schedules `bwd` is the input-gradient pass only.
fn layer_times(s: &Scenario, c: &Costs, comms: &Comms, layer: u64) -> [f64; 5] {
    let moe = s.model.is_moe_layer(layer);
    let (mlp_f, mut mlp_b, mlp_w) = if moe {
        (c.moe_f, c.moe_b, c.moe_w)
    } else {
        (c.mlp_f, c.mlp_b, c.mlp_w)
    };
    let (mut attn_b, mut w) = (c.attn_b, 0.0);
    if comms.split {
        mlp_b -= mlp_w;
        attn_b -= c.attn_w;
        w = mlp_w + c.attn_w;
    }
    let ep = if moe { 2.0 * comms.a2a } else { 0.0 };
    let (af, af_tp) = block(comms, c.attn_f);
    let (mf, mf_tp) = block(comms, mlp_f);
    let (ab, ab_tp) = block(comms, attn_b);
    let (mb, mb_tp) = block(comms, mlp_b);
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
        Recompute::Selective => bwd += c.sel,
        Recompute::None => {}
    }
    [fwd, bwd, tp, ep_total, w]
}

/// One pass of a chunk under ZeRO-3, relative to the start of its layers, as the generator
/// issues it on the in-order DP stream (busy until `carry` when the pass starts): layer `j`
/// (time `layers[j]`, in pass order) waits for its parameter all-gather `gathers[j]`,
/// issued once layer `j − 2` has finished (the first two at the pass start), so each gather
/// prefetches while the previous layer computes. In backward, `reduces[j]` is the
/// reduce-scatter of the bucket layer `j` completes (0 if none), ready `lead` before the
/// layer ends (ahead of its closing TP collective) and queued right after the gather of
/// layer `j + 1`, as FSDP's post-backward hook issues it. Returns the end of the last
/// layer and of the DP stream.
pub fn fsdp_pass(
    layers: &[f64],
    gathers: &[f64],
    reduces: &[f64],
    lead: f64,
    carry: f64,
) -> (f64, f64) {
    let (mut dp, mut end) = (carry, 0.0f64);
    let (mut end_1, mut end_2) = (0.0f64, 0.0f64);
    let reduce = |dp: f64, end: f64, j: usize| match reduces.get(j) {
        Some(&r) if r > 0.0 => dp.max(end - lead) + r,
        _ => dp,
    };
    for (j, (l, g)) in layers.iter().zip(gathers).enumerate() {
        dp = dp.max(end_2) + g;
        let gathered = dp;
        if j > 0 {
            dp = reduce(dp, end, j - 1);
        }
        end = end.max(gathered) + l;
        end_2 = end_1;
        end_1 = end;
    }
    if !layers.is_empty() {
        dp = reduce(dp, end, layers.len() - 1);
    }
    (end, dp)
}

/// Per-stage quantities the pipeline and DP formulas need.
#[derive(Default, Clone)]
struct Stage {
    /// Forward and backward per micro-batch over all chunks, blocking sends included.
    fwd: f64,
    /// Forward as the pipeline fill runs it (ZeRO-3: with no reductions queued ahead).
    fill_fwd: f64,
    bwd: f64,
    /// Weight-gradient passes (zero-bubble schedules), per micro-batch.
    w: f64,
    tp: f64,
    ep: f64,
    pp: f64,
    /// Per chunk: (forward, backward) per micro-batch, and per-layer backward prefix.
    chunks: Vec<Chunk>,
    params: u64,
    /// ZeRO-3: what the DP stream still has queued when the stage's last pass ends.
    fsdp_tail: f64,
}

#[derive(Default, Clone)]
struct Chunk {
    fwd: f64,
    bwd: f64,
    /// Layers of the chunk (lo..hi) and each layer's forward/backward time.
    lo: u64,
    layer_fwd: Vec<f64>,
    layer_bwd: Vec<f64>,
    /// Backward time spent before the layers (logits on the last virtual stage).
    bwd_head: f64,
    fwd_head: f64,
    /// Weight-gradient pass per micro-batch (zero-bubble schedules).
    w: f64,
    /// ZeRO-3 parameter gathers (and in-pass reduce-scatters) exposed in the forward and
    /// backward pass.
    fsdp_f: f64,
    fsdp_b: f64,
}

struct Ctx<'a> {
    s: &'a Scenario,
    inp: StepInputs<'a>,
    grid: RankGrid,
    net: &'a mut AnalyticNetwork,
    /// Members of group 0 per mask, built once.
    members: Vec<(GroupMask, Vec<u32>)>,
    /// Collective times already computed: buckets mostly share one size.
    memo: Vec<(Collective, u64, GroupMask, f64)>,
}

/// ZeRO-3 / FSDP: parameters are sharded and gathered per layer (as the generator decides).
fn fsdp(s: &Scenario) -> bool {
    s.parallelism.zero >= 3 && s.parallelism.dp * s.parallelism.cp > 1
}

impl Ctx<'_> {
    fn coll(&mut self, c: Collective, bytes: u64, mask: GroupMask) -> f64 {
        if self.grid.group_size(mask) <= 1 {
            return 0.0;
        }
        if let Some(&(.., t)) = self
            .memo
            .iter()
            .find(|m| m.0 == c && m.1 == bytes && m.2 == mask)
        {
            return t;
        }
        let i = match self.members.iter().position(|(m, _)| *m == mask) {
            Some(i) => i,
            None => {
                let mut v = Vec::new();
                self.grid.members_into(mask, 0, &mut v);
                self.members.push((mask, v));
                self.members.len() - 1
            }
        };
        let t = self.net.collective_time_s(c, bytes, &self.members[i].1);
        self.memo.push((c, bytes, mask, t));
        t
    }

    fn comms(&mut self) -> Comms {
        let p = self.s.parallelism.clone();
        let t = &self.s.training;
        let act = (t.micro_batch * t.seq_len / p.cp.max(1) * self.s.model.hidden)
            * t.precision.activation_bytes() as u64;
        let (tp_block, tp_after) = if p.tp <= 1 {
            (0.0, 0.0)
        } else if self.inp.layer_shard().sequence_parallel {
            let rs = self.coll(Collective::ReduceScatter, act, GroupMask::TP);
            (
                self.coll(Collective::AllGather, act, GroupMask::TP) + rs,
                rs,
            )
        } else {
            let ar = self.coll(Collective::AllReduce, act, GroupMask::TP);
            (ar, ar)
        };
        let top_k = self.s.model.moe.as_ref().map_or(1, |m| m.top_k);
        let a2a = if p.ep > 1 {
            self.coll(Collective::AllToAll, act * top_k, GroupMask::EP)
        } else {
            0.0
        };
        let p2p = if p.pp > 1 {
            let stage = self.grid.stage_size();
            self.net
                .collective_time_s(Collective::SendRecv, act / p.tp.max(1), &[0, stage])
        } else {
            0.0
        };
        Comms {
            tp_block,
            tp_after,
            tp_overlap: p.tp_comm_overlap,
            a2a,
            p2p,
            split: crate::schedule::pipeline::splits_backward(p.schedule),
        }
    }

    /// ZeRO-3 parameter all-gather time of every layer (dense over DP, experts over
    /// expert-DP, in their stored precision), or nothing without ZeRO-3.
    fn fsdp_gathers(&mut self) -> Vec<f64> {
        let s = self.s;
        if !fsdp(s) {
            return Vec::new();
        }
        let (m, p) = (&s.model, &s.parallelism);
        let tp = p.tp.max(1);
        let bytes_per = s.training.precision.grad_bytes();
        let zg = ZeroGroups::of(p);
        (0..m.layers)
            .map(|layer| {
                let routed = match &m.moe {
                    Some(moe) if m.is_moe_layer(layer) => moe.experts * m.expert_params(),
                    _ => 0,
                };
                let dense = (m.layer_params(layer) - routed) / tp;
                let expert = routed / tp / p.ep.max(1);
                let b = |params: u64| (params as f64 * bytes_per) as u64;
                let mut g = 0.0;
                if dense > 0 {
                    g += self.coll(Collective::AllGather, b(dense), zg.dense);
                }
                if expert > 0 {
                    g += self.coll(Collective::AllGather, b(expert), zg.expert);
                }
                g
            })
            .collect()
    }
}

/// ZeRO-3: adds each stage's exposed parameter gathers to its passes, with gradient-reduce
/// overlap its reduce-scatters too, by walking the stage's passes in schedule order, back
/// to back, with the generator's in-order DP stream: [`fsdp_pass`] replays each pass's
/// gathers (and a backward pass's reduce-scatters), a weight pass (zero-bubble schedules)
/// queues its chunk's reduce-scatters when it ends, and a pass starts with the DP stream
/// still busy with what the passes before it queued. The exposure is spread evenly over
/// the micro-batches; what the DP stream still has queued when the stage's last pass ends
/// (the last reductions, with the replica all-reduces under hybrid sharding) is its tail.
fn apply_fsdp(ctx: &mut Ctx, st: &mut [Stage], gathers: &[f64], comms: &Comms, c: &Costs) {
    let s = ctx.s;
    let p = &s.parallelism;
    let pp = st.len();
    let m = ctx.inp.micro_batches() as u32;
    let in_pass = p.dp > 1 && p.overlap_grad_reduce;
    let split = comms.split;
    // Gradients of a layer are complete when its attention backward ends, before the TP
    // collective that closes the layer.
    let lead = if comms.tp_overlap {
        c.attn_b.max(comms.tp_block) - c.attn_b
    } else {
        comms.tp_after
    };
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    for (si, stage) in st.iter_mut().enumerate() {
        let v = stage.chunks.len();
        let bs = if p.dp > 1 {
            buckets(ctx, stage, si == 0, si == (pp * v - 1) % pp)
        } else {
            Vec::new()
        };
        // Per chunk: gathers in forward and backward order, backward layer times, and the
        // reduce-scatters by backward position, plain and with the replica all-reduces.
        struct Walk {
            g: Vec<f64>,
            rg: Vec<f64>,
            bwd: Vec<f64>,
            rs: [Vec<f64>; 2],
            fwd_in: f64,
            bwd_in: f64,
        }
        let walks: Vec<Walk> = stage
            .chunks
            .iter()
            .enumerate()
            .map(|(ci, ch)| {
                let n = ch.layer_fwd.len();
                let hi = ch.lo + n as u64;
                let g = gathers[ch.lo as usize..ch.lo as usize + n].to_vec();
                let mut rs = [vec![0.0; n], vec![0.0; n]];
                for b in bs.iter().filter(|b| b.chunk == ci && in_pass) {
                    let j = (hi - 1 - b.lowest) as usize;
                    rs[0][j] += b.time_rs;
                    rs[1][j] += b.time_rs + b.time_ar;
                }
                let first_vs = si == 0 && ci == 0;
                Walk {
                    rg: g.iter().rev().copied().collect(),
                    g,
                    bwd: ch.layer_bwd.iter().rev().copied().collect(),
                    rs,
                    // Compute before the layers: the embedding, the logits backward.
                    fwd_in: if first_vs { c.emb_f } else { 0.0 },
                    bwd_in: ch.bwd_head,
                }
            })
            .collect();
        let order = pipeline::stage_order(p.schedule, si as u32, pp as u32, m, v as u32);
        let grads = if split { Pass::Weight } else { Pass::Backward };
        let mut last = vec![usize::MAX; v];
        for (i, slot) in order.iter().enumerate() {
            if slot.pass == grads {
                last[slot.chunk as usize] = i;
            }
        }
        // Compute clock, DP stream free time, exposed time per chunk and pass.
        let (mut t, mut dp) = (0.0f64, 0.0f64);
        let mut exposed = vec![(0.0f64, 0.0f64); v];
        // The last result per chunk and pass (forward, backward, last backward) by carry:
        // passes in a steady state repeat theirs.
        let mut memo = vec![[(f64::NAN, (0.0, 0.0)); 3]; v];
        let mut pass = |ci: usize, k: usize, carry: f64, run: &dyn Fn(f64) -> (f64, f64)| {
            let slot = &mut memo[ci][k];
            if slot.0 != carry {
                *slot = (carry, run(carry));
            }
            slot.1
        };
        for (i, slot) in order.iter().enumerate() {
            let ci = slot.chunk as usize;
            let (ch, w) = (&stage.chunks[ci], &walks[ci]);
            let is_last = i == last[ci];
            let r = &w.rs[is_last as usize];
            match slot.pass {
                Pass::Forward => {
                    let start = t + w.fwd_in;
                    let (end, d) = pass(ci, 0, (dp - start).max(0.0), &|carry| {
                        fsdp_pass(&ch.layer_fwd, &w.g, &[], 0.0, carry)
                    });
                    let x = end - sum(&ch.layer_fwd);
                    exposed[ci].0 += x;
                    t += ch.fwd + x;
                    dp = dp.max(start + d);
                }
                Pass::Backward => {
                    let start = t + w.bwd_in;
                    let rs: &[f64] = if split { &[] } else { r };
                    let (end, d) =
                        pass(ci, 1 + is_last as usize, (dp - start).max(0.0), &|carry| {
                            fsdp_pass(&w.bwd, &w.rg, rs, lead, carry)
                        });
                    let x = end - sum(&w.bwd);
                    exposed[ci].1 += x;
                    t += ch.bwd + x;
                    dp = dp.max(start + d);
                }
                Pass::Weight => {
                    t += ch.w;
                    if split && in_pass {
                        dp = dp.max(t) + sum(r);
                    }
                }
            }
        }
        stage.fsdp_tail = (dp - t).max(0.0);
        for (ch, w) in stage.chunks.iter().zip(&walks) {
            let fill = fsdp_pass(&ch.layer_fwd, &w.g, &[], 0.0, 0.0).0 - sum(&ch.layer_fwd);
            stage.fill_fwd += fill;
        }
        for (ch, (f, b)) in stage.chunks.iter_mut().zip(exposed) {
            ch.fsdp_f = f / m as f64;
            ch.fsdp_b = b / m as f64;
            ch.fwd += ch.fsdp_f;
            ch.bwd += ch.fsdp_b;
            stage.fwd += ch.fsdp_f;
            stage.bwd += ch.fsdp_b;
        }
    }
}

fn stages(ctx: &Ctx, c: &Costs, comms: &Comms) -> Vec<Stage> {
    let s = ctx.s;
    let pp = s.parallelism.pp.max(1) as usize;
    let vs_layers = ctx.inp.virtual_stage_layers();
    let total_vs = vs_layers.len();
    let blocking = !s.parallelism.pp_comm_overlap && pp > 1;
    let mut out = vec![Stage::default(); pp];
    let mut lo = 0;
    for (vs, &n) in vs_layers.iter().enumerate() {
        let st = &mut out[vs % pp];
        let mut ch = Chunk {
            lo,
            ..Chunk::default()
        };
        for layer in lo..lo + n {
            let [f, b, tp, ep, w] = layer_times(s, c, comms, layer);
            ch.layer_fwd.push(f);
            ch.layer_bwd.push(b);
            ch.w += w;
            st.w += w;
            st.tp += tp;
            st.ep += ep;
            st.params += s.model.layer_params(layer);
        }
        if vs == 0 {
            ch.fwd_head += c.emb_f;
            st.params += s.model.embedding_params();
        }
        if vs + 1 == total_vs {
            ch.fwd_head += c.logits_f;
            ch.bwd_head += c.logits_b;
            if !s.model.tied_embeddings {
                st.params += s.model.embedding_params();
            }
        }
        ch.fwd = ch.fwd_head + ch.layer_fwd.iter().sum::<f64>();
        ch.bwd =
            ch.bwd_head + ch.layer_bwd.iter().sum::<f64>() + if vs == 0 { c.emb_b } else { 0.0 };
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
        lo += n;
    }
    out
}

/// ZeRO-2/3 without gradient-reduce overlap under zero-bubble schedules: each weight pass
/// ends with a blocking reduction of its chunk's buckets (the last one's at the step's
/// end), which fills the bubble as the weight pass does, so it counts as part of it.
fn blocking_after_weight_passes(ctx: &mut Ctx, st: &mut [Stage], comms: &Comms) {
    let p = &ctx.s.parallelism;
    if !(comms.split && !p.overlap_grad_reduce && p.zero >= 2 && p.dp > 1) {
        return;
    }
    let pp = st.len();
    for (si, stage) in st.iter_mut().enumerate() {
        let v = stage.chunks.len();
        for b in buckets(ctx, stage, si == 0, si == (pp * v - 1) % pp) {
            stage.chunks[b.chunk].w += b.time_rs;
            stage.w += b.time_rs;
        }
    }
}

/// A DP bucket: the chunk, the first layer (lowest, completes it in backward) and its time.
struct Bucket {
    chunk: usize,
    lowest: u64,
    highest: u64,
    time_rs: f64,
    time_ag: f64,
    /// Hybrid sharding: all-reduce of this rank's gradient shard across replica groups.
    time_ar: f64,
}

/// Buckets of one stage as the generator forms them (backward order per chunk).
fn buckets(ctx: &mut Ctx, stage: &Stage, first_vs: bool, last_vs_stage: bool) -> Vec<Bucket> {
    let s = ctx.s;
    let p = &s.parallelism;
    let tp = p.tp.max(1);
    let target = p.bucket_params.max(1);
    let grad = s.training.precision.grad_bytes();
    let sharded = p.zero >= 1 && p.dp > 1;
    let reduce = if sharded {
        Collective::ReduceScatter
    } else {
        Collective::AllReduce
    };
    let chunks = stage.chunks.len();
    let zg = ZeroGroups::of(p);
    let shard_bytes_div = hybrid_shard_ranks(p).unwrap_or(p.dp) * p.cp.max(1);
    let mut out = Vec::new();
    let mut sizes = Vec::new();
    for (ci, ch) in stage.chunks.iter().enumerate() {
        let mut extra = 0;
        if last_vs_stage && ci + 1 == chunks && !s.model.tied_embeddings {
            extra += s.model.embedding_params();
        }
        if first_vs && ci == 0 {
            extra += s.model.embedding_params();
        }
        let hi = ch.lo + ch.layer_fwd.len() as u64;
        let mut cur: Option<(u64, u64, u64)> = None;
        for layer in (ch.lo..hi).rev() {
            let b = cur.get_or_insert((extra, layer, layer));
            extra = 0;
            b.0 += s.model.layer_params(layer);
            b.1 = layer;
            if b.0 >= target {
                sizes.push((ci, cur.take().unwrap()));
            }
        }
        if let Some(b) = cur.take() {
            sizes.push((ci, b));
        }
    }
    for (ci, (params, lowest, highest)) in sizes {
        let bytes = ((params / tp) as f64 * grad) as u64;
        let time_rs = ctx.coll(reduce, bytes, zg.dense);
        let (time_ag, time_ar) = match (sharded, zg.replica) {
            (false, _) => (0.0, 0.0),
            (true, None) => (ctx.coll(Collective::AllGather, bytes, zg.dense), 0.0),
            (true, Some(replica)) => (
                ctx.coll(Collective::AllGather, bytes, zg.dense),
                ctx.coll(Collective::AllReduce, bytes / shard_bytes_div, replica),
            ),
        };
        out.push(Bucket {
            chunk: ci,
            lowest,
            highest,
            time_rs,
            time_ag,
            time_ar,
        });
    }
    out
}

/// Start of the forward of `layer` (chunk `ci`) for micro-batch 0 on stage `si`, relative to
/// the step start, with free communication.
fn first_forward_at(stages: &[Stage], si: usize, ci: usize, layer: u64) -> f64 {
    let pp = stages.len();
    // Micro-batch 0 visits virtual stages in order: all earlier virtual stages first.
    let mut t = 0.0;
    for vs in 0..ci * pp + si {
        t += stages[vs % pp].chunks[vs / pp].fwd;
    }
    let ch = &stages[si].chunks[ci];
    t += ch.fwd_head * if ci * pp + si == 0 { 1.0 } else { 0.0 };
    t + ch.layer_fwd[..(layer - ch.lo) as usize].iter().sum::<f64>()
}

/// Estimates the step time of the scenario's plan in closed form.
pub fn estimate(s: &Scenario, net: &mut AnalyticNetwork) -> FastEstimate {
    let compute = ComputeModel::new(&s.cluster.gpu, s.training.precision);
    let inp = StepInputs {
        model: &s.model,
        training: &s.training,
        parallelism: &s.parallelism,
        compute: &compute,
        pcie_gbs: s.cluster.node.pcie_gbs,
    };
    let mut ctx = Ctx {
        s,
        inp,
        grid: RankGrid::new(&s.parallelism),
        net,
        members: Vec::new(),
        memo: Vec::new(),
    };
    let costs = Costs::new(&inp);
    let comms = ctx.comms();
    let gathers = ctx.fsdp_gathers();
    let mut st = stages(&ctx, &costs, &comms);
    blocking_after_weight_passes(&mut ctx, &mut st, &comms);
    if !gathers.is_empty() {
        apply_fsdp(&mut ctx, &mut st, &gathers, &comms, &costs);
    }
    let pipe = pipeline(
        s,
        &st,
        &comms,
        inp.chunks() as f64,
        inp.micro_batches() as f64,
    );
    let dp = data_parallel(&mut ctx, &st, &comms, &compute, pipe.span);
    let step = dp.end + dp.gather_delay;
    let tokens = (s.training.global_batch * s.training.seq_len) as f64;
    let gpus = ctx.grid.world() as f64;
    let flops = s
        .model
        .model_flops_per_step(s.training.seq_len, s.training.global_batch);
    let c = &st[pipe.crit];
    let m = inp.micro_batches() as f64;
    FastEstimate {
        step_time_s: step,
        tokens_per_s: tokens / step,
        mfu: flops / step / (gpus * s.cluster.gpu.peak_flops(s.training.precision)),
        bubble_s: pipe.bubble,
        tp_exposed_s: m * c.tp,
        ep_exposed_s: m * c.ep,
        pp_exposed_s: m * c.pp + pipe.hops,
        dp_exposed_s: dp.crit_dp + dp.gather_delay + m * (c.fsdp()),
        optimizer_s: dp.crit_opt,
    }
}

impl Stage {
    /// Exposed ZeRO-3 gathers per micro-batch over all chunks.
    fn fsdp(&self) -> f64 {
        self.chunks.iter().map(|c| c.fsdp_f + c.fsdp_b).sum()
    }
}

/// The pipeline part of a step: when the critical stage's last pass ends.
struct Pipe {
    span: f64,
    bubble: f64,
    hops: f64,
    crit: usize,
}

/// Idle time a non-critical stage adds to the pipeline span: its whole forward + backward
/// spread over `v` chunks (1F1B, interleaved), less the weight passes that fill the bubble
/// (ZB-H1 `X − 2W`, ZB-H2 `max(X − 3W, F)`).
fn bubble_share(kind: ScheduleKind, st: &Stage, v: f64) -> f64 {
    // The fill's forwards follow forwards: no ZeRO-3 reductions queued before them.
    let x = st.fill_fwd + st.bwd + st.w;
    match kind {
        ScheduleKind::ZbH1 => x - 2.0 * st.w,
        ScheduleKind::ZbH2 => (x - 3.0 * st.w).max(st.fill_fwd),
        _ => x / v,
    }
}

/// `m · max_s X_s` plus every other stage's bubble share plus overlapped hops.
fn pipeline(s: &Scenario, st: &[Stage], comms: &Comms, v: f64, m: f64) -> Pipe {
    let p = &s.parallelism;
    let pp = st.len();
    let x: Vec<f64> = st.iter().map(|s| s.fwd + s.bwd + s.w).collect();
    let (xmax, crit) =
        x.iter().enumerate().fold(
            (0.0f64, 0),
            |acc, (i, &xi)| if xi > acc.0 { (xi, i) } else { acc },
        );
    let bubble: f64 = st
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != crit)
        .map(|(_, stage)| bubble_share(p.schedule, stage, v))
        .sum();
    let hops = if p.pp_comm_overlap && pp > 1 {
        2.0 * (pp as f64 * v - 1.0) * comms.p2p
    } else {
        0.0
    };
    Pipe {
        span: m * xmax + bubble + hops,
        bubble: bubble + hops,
        hops,
        crit,
    }
}

/// How much earlier than stage 0 stage `si` finishes its last pass: one input-gradient
/// pass (+ hop) per stage under 1F1B and interleaving; under zero-bubble schedules the
/// stage then still runs the weight passes it deferred (`si + 1` under H1, `2si + 1` under
/// H2), so it ends `si · (B − W)` (H1) or `si · (B − 2W)` (H2) earlier.
fn stage_lead(kind: ScheduleKind, st: &Stage, si: usize, v: f64, hop: f64) -> f64 {
    let b = st.bwd / v + hop;
    let lead = match kind {
        ScheduleKind::ZbH1 => b - st.w,
        ScheduleKind::ZbH2 => b - 2.0 * st.w,
        _ => b,
    };
    si as f64 * lead.max(0.0)
}

/// Data-parallel tail of a step and the ZeRO parameter gathers at its start.
struct DpTail {
    end: f64,
    gather_delay: f64,
    crit_dp: f64,
    crit_opt: f64,
}

fn data_parallel(
    ctx: &mut Ctx,
    st: &[Stage],
    comms: &Comms,
    compute: &ComputeModel,
    span: f64,
) -> DpTail {
    let s = ctx.s;
    let p = &s.parallelism;
    let pp = st.len();
    let v = ctx.inp.chunks() as f64;
    let dp_group = ctx.grid.group_size(GroupMask::DP);
    let sharded = p.zero >= 1 && p.dp > 1;
    let gathers_at_start = sharded && !fsdp(s);
    // ZeRO-2 and ZeRO-3 reduce every micro-batch's gradients.
    let every = p.zero >= 2 && p.dp > 1;
    let m = ctx.inp.micro_batches() as f64;
    let mut out = DpTail {
        end: 0.0,
        gather_delay: 0.0,
        crit_dp: 0.0,
        crit_opt: 0.0,
    };
    for si in 0..pp {
        let bs = if dp_group > 1 {
            buckets(ctx, &st[si], si == 0, si == (pp * v as usize - 1) % pp)
        } else {
            Vec::new()
        };
        let shards = hybrid_shard_ranks(p).unwrap_or(p.dp);
        let local = st[si].params / p.tp.max(1) / if sharded { shards } else { 1 };
        let opt = t(compute, &model::kernels::adam_step(local));
        let hop = if p.pp_comm_overlap { comms.p2p } else { 0.0 };
        let stage_end = span - stage_lead(p.schedule, &st[si], si, v, hop);
        if gathers_at_start && p.overlap_grad_reduce {
            out.gather_delay = out.gather_delay.max(gather_wait(st, si, &bs));
        }
        let reduce_all: f64 = bs.iter().map(|b| b.time_rs).sum();
        let replica_all: f64 = bs.iter().map(|b| b.time_ar).sum();
        let dp_end = if !p.overlap_grad_reduce {
            // One blocking reduction at the end, or one per micro-batch (in the weight
            // passes under zero-bubble schedules, [`blocking_after_weight_passes`]).
            let blocking = match (every, comms.split) {
                (false, _) => 1.0,
                (true, false) => m,
                (true, true) => 0.0,
            };
            stage_end + reduce_all * blocking + replica_all
        } else if fsdp(s) {
            // ZeRO-3 reduces inside its passes ([`apply_fsdp`]); the last one's remain.
            stage_end + st[si].fsdp_tail
        } else if every {
            reduce_every_micro_batch(ctx, &st[si], si, &bs, stage_end)
        } else {
            let ready = if comms.split {
                // After the last weight pass (zero-bubble schedules).
                vec![stage_end; bs.len()]
            } else {
                overlapped_ready(&st[si], &bs, stage_end, pp)
            };
            let last: Vec<(f64, f64)> = ready
                .iter()
                .zip(&bs)
                .map(|(&at, b)| (at, b.time_rs + b.time_ar))
                .collect();
            drain(&last)
        };
        let mut e = dp_end.max(stage_end) + opt;
        if gathers_at_start && !p.overlap_grad_reduce {
            e += bs.iter().map(|b| b.time_ag).sum::<f64>();
        }
        if e > out.end {
            out.end = e;
            out.crit_dp = e - opt - stage_end;
            out.crit_opt = opt;
        }
    }
    out
}

/// How long the first forwards of stage `si` wait for their parameter all-gathers, which
/// the generator issues on the DP stream at the step start in the order the forward pass
/// needs them (chunk by chunk, lowest layers first).
fn gather_wait(st: &[Stage], si: usize, bs: &[Bucket]) -> f64 {
    let mut done = 0.0;
    let mut wait = 0.0f64;
    let mut in_need_order: Vec<&Bucket> = bs.iter().collect();
    in_need_order.sort_by_key(|b| (b.chunk, b.lowest.min(b.highest)));
    for b in in_need_order {
        done += b.time_ag;
        let need = first_forward_at(st, si, b.chunk, b.highest.min(b.lowest));
        wait = wait.max(done - need);
    }
    wait
}

/// When each bucket of a stage's last backward is ready for its overlapped reduction: when
/// the last backward of its chunk passes its lowest layer.
fn overlapped_ready(stage: &Stage, bs: &[Bucket], stage_end: f64, pp: usize) -> Vec<f64> {
    let chunks = stage.chunks.len();
    let mut ready = Vec::with_capacity(bs.len());
    for b in bs {
        let ch = &stage.chunks[b.chunk];
        // Interleaved cooldown runs chunk v-1's last backwards first, chunk 0's last.
        let chunk_end =
            stage_end - (b.chunk as f64) * pp as f64 * ch.bwd * (chunks > 1) as u8 as f64;
        let start = chunk_end - ch.bwd;
        let hi = ch.lo + ch.layer_bwd.len() as u64;
        let before: f64 = ch.layer_bwd[(b.lowest - ch.lo) as usize..(hi - ch.lo) as usize]
            .iter()
            .sum();
        ready.push(start + ch.bwd_head + before);
    }
    ready
}

/// When the in-order DP stream finishes stage `si`'s gradient reductions if each
/// micro-batch reduces (ZeRO-2): the stage's passes in its schedule order laid back to
/// back, ending at `stage_end` (so the cooldown's backward passes, with no forwards between,
/// issue theirs densely); a backward pass issues each bucket as its lowest layer completes,
/// a weight pass (zero-bubble schedules) all of its chunk's at its end; a chunk's last pass
/// also all-reduces the shards across replica groups (hybrid sharding). Run in ready order,
/// the stream ends at `max_k (ready_k + Σ_{j ≥ k} time_j)`, which the walk back from the
/// end accumulates, stopping once no earlier reduction can end later.
fn reduce_every_micro_batch(
    ctx: &Ctx,
    stage: &Stage,
    si: usize,
    bs: &[Bucket],
    stage_end: f64,
) -> f64 {
    let p = &ctx.s.parallelism;
    let chunks = stage.chunks.len();
    let m = ctx.inp.micro_batches();
    let order = pipeline::stage_order(
        p.schedule,
        si as u32,
        p.pp.max(1) as u32,
        m as u32,
        chunks as u32,
    );
    let split = pipeline::splits_backward(p.schedule);
    let grads = if split { Pass::Weight } else { Pass::Backward };
    // Each bucket's readiness after its backward pass starts.
    let offset: Vec<f64> = bs
        .iter()
        .map(|b| {
            let ch = &stage.chunks[b.chunk];
            let n = ch.layer_bwd.len();
            ch.bwd_head
                + ch.layer_bwd[(b.lowest - ch.lo) as usize..n]
                    .iter()
                    .sum::<f64>()
        })
        .collect();
    // All the reductions' time: what any earlier one can still add.
    let mut left: f64 = bs.iter().map(|b| m as f64 * b.time_rs + b.time_ar).sum();
    let mut seen = vec![false; chunks];
    let (mut after, mut end) = (0.0f64, 0.0f64);
    let mut t = stage_end;
    for slot in order.iter().rev() {
        if t + after + left <= end {
            break;
        }
        let c = slot.chunk as usize;
        let ch = &stage.chunks[c];
        let start = t - match slot.pass {
            Pass::Forward => ch.fwd,
            Pass::Backward => ch.bwd,
            Pass::Weight => ch.w,
        };
        if slot.pass == grads {
            let last = !std::mem::replace(&mut seen[c], true);
            // Buckets are in backward order: latest first.
            for (b, off) in bs.iter().zip(&offset).rev().filter(|(b, _)| b.chunk == c) {
                let ready = if split { t } else { start + off };
                let time = b.time_rs + if last { b.time_ar } else { 0.0 };
                after += time;
                left -= time;
                end = end.max(ready + after);
            }
        }
        t = start;
    }
    end
}

/// When the in-order DP stream finishes reductions `(ready, time)`, run in ready order.
fn drain(reductions: &[(f64, f64)]) -> f64 {
    let mut order = reductions.to_vec();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    order
        .iter()
        .fold(0.0f64, |done, &(ready, time)| done.max(ready) + time)
}
