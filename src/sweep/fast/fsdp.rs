//! Fast mode's ZeRO-3 (FSDP) composition: per pass, each layer's parameter all-gather on
//! the in-order DP stream, prefetched one layer ahead, and in backward each bucket's
//! reduce-scatter queued between the gathers ([`fsdp_pass`]); per stage, its passes walked
//! in schedule order back to back, the DP stream's queue carried from pass to pass
//! ([`apply_fsdp`]).
//!
//! Must not price: gather times come from [`crate::pricing::dp::layer_gathers`] and
//! reduce-scatter times from the stage's priced buckets.

use super::Ctx;
use super::dp::{TimedBucket, timed_buckets};
use super::stages::{Comms, Stage};
use crate::plan::pipeline::{self, Pass, Slot};
use crate::plan::stack::TpOverlap;
use crate::pricing::OpCosts;

/// How a ZeRO-3 stack fetches: gathers issued `prefetch` units ahead, and whether each
/// fetch synchronises the device (`stack.zero3`).
#[derive(Debug, Clone, Copy)]
pub struct Fetch {
    pub prefetch: usize,
    pub sync: bool,
}

/// One pass of a chunk under ZeRO-3, relative to the start of its compute units, as the
/// generator issues it on the in-order DP stream (busy until `carry` when the pass
/// starts): unit `j` (time `units[j]`, in pass order: a layer, or under re-gathering
/// recompute a layer's recompute and its backward) waits for its parameter all-gathers
/// `gathers[j]`, issued once unit `j − 1 − prefetch` has finished (the first ones at the
/// pass start), so each gather prefetches while earlier units compute; a fetch that
/// synchronises waits for everything on the DP stream before it. In backward,
/// `reduces[j]` is the reduce-scatter of the bucket unit `j` completes (0 if none), ready
/// `lead` before the unit ends (ahead of its closing TP collective) and queued right after
/// the gather of unit `j + 1`, as FSDP's post-backward hook issues it. Returns the end of
/// the last unit and of the DP stream.
pub fn fsdp_pass(
    units: &[f64],
    gathers: &[f64],
    reduces: &[f64],
    lead: f64,
    carry: f64,
    fetch: Fetch,
) -> (f64, f64) {
    let (mut dp, mut end) = (carry, 0.0f64);
    let mut ends: Vec<f64> = Vec::with_capacity(units.len());
    let reduce = |dp: f64, end: f64, j: usize| match reduces.get(j) {
        Some(&r) if r > 0.0 => dp.max(end - lead) + r,
        _ => dp,
    };
    for (j, (l, g)) in units.iter().zip(gathers).enumerate() {
        let issue = match j.checked_sub(1 + fetch.prefetch) {
            Some(i) => ends[i],
            None => 0.0,
        };
        dp = dp.max(issue) + g;
        let gathered = dp;
        if j > 0 {
            dp = reduce(dp, end, j - 1);
        }
        let ready = if fetch.sync { dp } else { gathered };
        end = end.max(ready) + l;
        ends.push(end);
    }
    if !units.is_empty() {
        dp = reduce(dp, end, units.len() - 1);
    }
    (end, dp)
}

/// One chunk's passes as [`fsdp_pass`] replays them: compute units and their gathers in
/// forward and backward order (the embedding forward, the logits forward and backward are
/// units of their own where their weights are gathered), and the reduce-scatters by
/// backward position, plain and with the replica all-reduces.
struct ChunkWalk {
    f: Vec<f64>,
    g: Vec<f64>,
    rg: Vec<f64>,
    bwd: Vec<f64>,
    rs: [Vec<f64>; 2],
    /// Compute before the units: the embedding forward, the logits backward, where their
    /// weights are not gathered.
    fwd_in: f64,
    bwd_in: f64,
}

/// Head units' times: embedding forward, logits forward, logits backward, and the gather
/// of their weights (`None`: not gathered).
struct Heads {
    embedding_fwd: f64,
    logits_fwd: f64,
    logits_bwd: f64,
    gather: Option<f64>,
}

fn chunk_walks(
    stage: &Stage,
    si: usize,
    bs: &[TimedBucket],
    gathers: &[f64],
    (in_pass, regather): (bool, bool),
    heads: &Heads,
) -> Vec<ChunkWalk> {
    let chunk_walk = |(ci, ch): (usize, &super::stages::Chunk)| {
        let n = ch.layer_fwd.len();
        let hi = ch.lo + n as u64;
        let first_vs = si == 0 && ci == 0;
        // Only the last virtual stage runs the logits (`stages` gives it their backward).
        let last_vs = ch.bwd_head > 0.0;
        let head = |on: bool| heads.gather.filter(|_| on);
        let g_layers = &gathers[ch.lo as usize..ch.lo as usize + n];
        let (mut f, mut g) = (Vec::new(), Vec::new());
        let mut fwd_in = 0.0;
        if first_vs {
            match head(true) {
                Some(h) => {
                    f.push(heads.embedding_fwd);
                    g.push(h);
                }
                None => fwd_in = heads.embedding_fwd,
            }
        }
        f.extend(&ch.layer_fwd);
        g.extend(g_layers);
        if let Some(h) = head(last_vs) {
            f.push(heads.logits_fwd);
            g.push(h);
        }
        // Backward units: the logits, then each layer in reverse, split into its recompute
        // and its backward when the recompute gathers on its own.
        let (mut bwd, mut rg) = (Vec::new(), Vec::new());
        let mut bwd_in = ch.bwd_head;
        if let Some(h) = head(last_vs) {
            bwd.push(heads.logits_bwd);
            rg.push(h);
            bwd_in = ch.bwd_head - heads.logits_bwd;
        }
        let off = bwd.len();
        for j in (0..n).rev() {
            if regather {
                bwd.extend([ch.layer_fwd[j], ch.layer_bwd[j] - ch.layer_fwd[j]]);
                rg.extend([g_layers[j], g_layers[j]]);
            } else {
                bwd.push(ch.layer_bwd[j]);
                rg.push(g_layers[j]);
            }
        }
        let per = if regather { 2 } else { 1 };
        let mut rs = [vec![0.0; bwd.len()], vec![0.0; bwd.len()]];
        for b in bs.iter().filter(|b| b.chunk == ci && in_pass) {
            let j = off + (hi - 1 - b.lowest) as usize * per + per - 1;
            rs[0][j] += b.time_rs;
            rs[1][j] += b.time_rs + b.time_ar;
        }
        ChunkWalk {
            f,
            g,
            rg,
            bwd,
            rs,
            fwd_in,
            bwd_in,
        }
    };
    stage.chunks.iter().enumerate().map(chunk_walk).collect()
}

/// Index in `order` of each chunk's last gradient pass (the weight pass when `split`).
fn last_gradient_passes(order: &[Slot], split: bool, chunks: usize) -> Vec<usize> {
    let grads = if split { Pass::Weight } else { Pass::Backward };
    let mut last = vec![usize::MAX; chunks];
    for (i, slot) in order.iter().enumerate() {
        if slot.pass == grads {
            last[slot.chunk as usize] = i;
        }
    }
    last
}

fn sum(v: &[f64]) -> f64 {
    v.iter().sum::<f64>()
}

/// Walks a stage's passes in schedule order, back to back, with the in-order DP stream.
/// Returns the exposed gather time per chunk (forward, backward) over all micro-batches,
/// the compute clock and the DP stream's end.
fn walk_passes(
    ctx: &Ctx,
    stage: &Stage,
    si: usize,
    walks: &[ChunkWalk],
    (split, in_pass, lead, fetch): (bool, bool, f64, Fetch),
) -> (Vec<(f64, f64)>, f64, f64) {
    let p = &ctx.s.parallelism;
    let v = stage.chunks.len();
    let m = ctx.inp.micro_batches() as u32;
    let order = pipeline::stage_order(p.schedule, si as u32, p.pp.max(1) as u32, m, v as u32);
    let last = last_gradient_passes(&order, split, v);
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
                    fsdp_pass(&w.f, &w.g, &[], 0.0, carry, fetch)
                });
                let x = end - sum(&w.f);
                exposed[ci].0 += x;
                t += ch.fwd + x;
                dp = dp.max(start + d);
            }
            Pass::Backward => {
                let start = t + w.bwd_in;
                let rs: &[f64] = if split { &[] } else { r };
                let (end, d) = pass(ci, 1 + is_last as usize, (dp - start).max(0.0), &|carry| {
                    fsdp_pass(&w.bwd, &w.rg, rs, lead, carry, fetch)
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
    (exposed, t, dp)
}

/// ZeRO-3: adds each stage's exposed parameter gathers to its passes, with gradient-reduce
/// overlap its reduce-scatters too, by walking the stage's passes in schedule order, back
/// to back, with the generator's in-order DP stream: [`fsdp_pass`] replays each pass's
/// gathers (and a backward pass's reduce-scatters), a weight pass (zero-bubble schedules)
/// queues its chunk's reduce-scatters when it ends, and a pass starts with the DP stream
/// still busy with what the passes before it queued. The exposure is spread evenly over
/// the micro-batches; what the DP stream still has queued when the stage's last pass ends
/// (the last reductions, with the replica all-reduces under hybrid sharding) is its tail.
pub(super) fn apply_fsdp(
    ctx: &mut Ctx,
    st: &mut [Stage],
    (gathers, head_gather): (&[f64], Option<f64>),
    comms: &Comms,
    c: &OpCosts<f64>,
) {
    let p = &ctx.s.parallelism;
    let m = ctx.inp.micro_batches() as u32;
    let in_pass = p.dp > 1 && p.overlap_grad_reduce;
    let dp_ranks = p.dp;
    let regather = crate::pricing::dp::regathers(&ctx.inp);
    let heads = Heads {
        embedding_fwd: c.embedding_fwd,
        logits_fwd: c.logits_fwd,
        logits_bwd: c.logits_bwd,
        gather: head_gather,
    };
    let fetch = Fetch {
        prefetch: p.stack.zero3.prefetch as usize,
        sync: p.stack.zero3.sync_per_gather,
    };
    // Gradients of a layer are complete when its attention backward ends, before the TP
    // collective that closes the layer (under backward overlap: when the column-parallel
    // weight-gradient GEMM ends, beside the reduction).
    let lead = match comms.tp_overlap {
        TpOverlap::Full => c.attn_bwd.max(comms.tp_block) - c.attn_bwd,
        TpOverlap::Backward if comms.tp_block > 0.0 => {
            let w = c
                .layer(&ctx.s.model, 0)
                .backward(comms.split)
                .attn_col
                .wgrad;
            (comms.tp_after - w).max(0.0)
        }
        _ => comms.tp_after,
    };
    for (si, stage) in st.iter_mut().enumerate() {
        let bs = if dp_ranks > 1 {
            timed_buckets(ctx, si, stage.chunks.len())
        } else {
            Vec::new()
        };
        let walks = chunk_walks(stage, si, &bs, gathers, (in_pass, regather), &heads);
        let (exposed, t, dp) =
            walk_passes(ctx, stage, si, &walks, (comms.split, in_pass, lead, fetch));
        stage.fsdp_tail = (dp - t).max(0.0);
        for (ch, w) in stage.chunks.iter().zip(&walks) {
            let fill = fsdp_pass(&ch.layer_fwd, &w.g, &[], 0.0, 0.0, fetch).0 - sum(&ch.layer_fwd);
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
