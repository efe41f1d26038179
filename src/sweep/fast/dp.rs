//! Fast mode's data-parallel composition: each stage's gradient buckets timed on the
//! network, the parameter all-gathers at the step start and how long the first forwards
//! wait for them, the reductions after the pipeline (overlapped with the last backward of
//! each chunk, one per micro-batch on the in-order DP stream under ZeRO-2, or blocking
//! without overlap), hybrid sharding's replica all-reduces, and the optimizer step: the
//! step ends when the last stage's optimizer does ([`data_parallel`]).
//!
//! Must not price: buckets, sizes, groups and the optimizer step come from
//! [`crate::pricing::dp`] and [`crate::pricing::optimizer`].

use super::pipeline::{first_forward_at, stage_lead};
use super::stages::{Comms, Stage};
use super::{Ctx, secs};
use crate::plan::GroupMask;
use crate::plan::pipeline::{self, Pass};
use crate::pricing::dp::{self, NO_LAYER};
use crate::pricing::{Coverage, optimizer};

/// A DP bucket as fast mode times it: the chunk, the lowest layer (it completes the
/// bucket in backward) and the time of each of its collectives.
pub(super) struct TimedBucket {
    pub(super) chunk: usize,
    pub(super) lowest: u64,
    pub(super) time_rs: f64,
    pub(super) time_ag: f64,
    /// Hybrid sharding: all-reduce of this rank's gradient shard across replica groups.
    pub(super) time_ar: f64,
}

/// The priced buckets of stage `si` fast mode composes: those of its `chunks` chunks.
fn stage_buckets(ctx: &Ctx, si: usize, chunks: usize) -> Vec<dp::Bucket> {
    let mut bs = dp::buckets(&ctx.inp, si as u32, Coverage::FAST);
    bs.retain(|b| (b.chunk as usize) < chunks);
    bs
}

/// Stage `si`'s buckets (backward order per chunk) with their collectives timed; a chunk
/// without layers has no bucket here.
pub(super) fn timed_buckets(ctx: &mut Ctx, si: usize, chunks: usize) -> Vec<TimedBucket> {
    let inp = ctx.inp;
    let sharded = dp::sharded(inp.parallelism);
    let mut out = Vec::new();
    for b in stage_buckets(ctx, si, chunks) {
        if b.lowest == NO_LAYER {
            continue;
        }
        let time_rs = ctx.time(dp::grad_reduce(&inp, &b));
        let (time_ag, time_ar) = if sharded {
            let ag = ctx.time(dp::param_gather(&inp, &b));
            let ar = dp::replica_reduce(&inp, &b).map_or(0.0, |c| ctx.time(c));
            (ag, ar)
        } else {
            (0.0, 0.0)
        };
        out.push(TimedBucket {
            chunk: b.chunk as usize,
            lowest: b.lowest,
            time_rs,
            time_ag,
            time_ar,
        });
    }
    out
}

/// ZeRO-2/3 without gradient-reduce overlap under zero-bubble schedules: each weight pass
/// ends with a blocking reduction of its chunk's buckets (the last one's at the step's
/// end), which fills the bubble as the weight pass does, so it counts as part of it.
pub(super) fn blocking_after_weight_passes(ctx: &mut Ctx, st: &mut [Stage], comms: &Comms) {
    let p = &ctx.s.parallelism;
    if !(comms.split && !p.overlap_grad_reduce && dp::reduces_every_micro_batch(p)) {
        return;
    }
    for (si, stage) in st.iter_mut().enumerate() {
        for b in timed_buckets(ctx, si, stage.chunks.len()) {
            stage.chunks[b.chunk].w += b.time_rs;
            stage.w += b.time_rs;
        }
    }
}

/// Data-parallel tail of a step and the ZeRO parameter gathers at its start.
pub(super) struct DpTail {
    pub(super) end: f64,
    pub(super) gather_delay: f64,
    pub(super) crit_dp: f64,
    pub(super) crit_opt: f64,
}

/// When each stage's optimizer step ends after the pipeline `span`; the latest is the step.
pub(super) fn data_parallel(
    ctx: &mut Ctx,
    st: &[Stage],
    comms: &Comms,
    span: f64,
    ends: Option<&[f64]>,
) -> DpTail {
    let p = &ctx.s.parallelism;
    let v = ctx.inp.chunks() as f64;
    let dp_group = ctx.grid.group_size(GroupMask::DP);
    let gathers_at_start = dp::sharded(p) && !dp::fsdp(p);
    let (overlap, kind) = (p.overlap_grad_reduce, p.schedule);
    let hop = if p.p2p_overlapped() { comms.p2p } else { 0.0 };
    let mut out = DpTail {
        end: 0.0,
        gather_delay: 0.0,
        crit_dp: 0.0,
        crit_opt: 0.0,
    };
    for (si, stage) in st.iter().enumerate() {
        let chunks = stage.chunks.len();
        let bs = if dp_group > 1 {
            timed_buckets(ctx, si, chunks)
        } else {
            Vec::new()
        };
        let local = optimizer::local_params(&ctx.inp, &stage_buckets(ctx, si, chunks));
        let opt = secs(optimizer::step_time(&ctx.inp, local, Coverage::FAST));
        let stage_end = match ends {
            Some(e) => e[si],
            None => span - stage_lead(kind, stage, si, v, hop),
        };
        if gathers_at_start && overlap {
            out.gather_delay = out.gather_delay.max(gather_wait(st, si, &bs));
        }
        let dp_end = reductions_end(ctx, st, si, &bs, comms, stage_end);
        let mut e = dp_end.max(stage_end) + opt;
        if gathers_at_start && !overlap {
            e += bs.iter().map(|b| b.time_ag).sum::<f64>();
        }
        if e > out.end {
            out.end = e;
            // `e >= stage_end + opt` by construction: clamp the rounding of the subtraction.
            out.crit_dp = (e - opt - stage_end).max(0.0);
            out.crit_opt = opt;
        }
    }
    out
}

/// When stage `si`'s gradient reductions `bs` end, its last pass ending at `stage_end`.
fn reductions_end(
    ctx: &Ctx,
    st: &[Stage],
    si: usize,
    bs: &[TimedBucket],
    comms: &Comms,
    stage_end: f64,
) -> f64 {
    let p = &ctx.s.parallelism;
    let every = dp::reduces_every_micro_batch(p);
    if !p.overlap_grad_reduce {
        let reduce_all: f64 = bs.iter().map(|b| b.time_rs).sum();
        let replica_all: f64 = bs.iter().map(|b| b.time_ar).sum();
        // One blocking reduction at the end, or one per micro-batch (in the weight
        // passes under zero-bubble schedules, [`blocking_after_weight_passes`]).
        let blocking = match (every, comms.split) {
            (false, _) => 1.0,
            (true, false) => ctx.inp.micro_batches() as f64,
            (true, true) => 0.0,
        };
        stage_end + reduce_all * blocking + replica_all
    } else if dp::fsdp(p) {
        // ZeRO-3 reduces inside its passes (`fsdp::apply_fsdp`); the last one's remain.
        stage_end + st[si].fsdp_tail
    } else if every {
        reduce_every_micro_batch(ctx, &st[si], si, bs, stage_end)
    } else {
        let chunks = st[si].chunks.len();
        let ready = if comms.split {
            // After the last weight pass (zero-bubble schedules).
            vec![stage_end; bs.len()]
        } else if dp::aligned_reduce(p) && (chunks > 1 || si > 0) {
            aligned_ready(&st[si], bs, stage_end, st.len(), si)
        } else {
            overlapped_ready(&st[si], bs, stage_end, st.len())
        };
        let last: Vec<(f64, f64)> = ready
            .iter()
            .zip(bs)
            .map(|(&at, b)| (at, b.time_rs + b.time_ar))
            .collect();
        drain(&last)
    }
}

/// How long the first forwards of stage `si` wait for their parameter all-gathers, which
/// the generator issues on the DP stream at the step start in the order the forward pass
/// needs them (chunk by chunk, lowest layers first).
fn gather_wait(st: &[Stage], si: usize, bs: &[TimedBucket]) -> f64 {
    let mut done = 0.0;
    let mut wait = 0.0f64;
    let mut in_need_order: Vec<&TimedBucket> = bs.iter().collect();
    in_need_order.sort_by_key(|b| (b.chunk, b.lowest));
    for b in in_need_order {
        done += b.time_ag;
        let need = first_forward_at(st, si, b.chunk, b.lowest);
        wait = wait.max(done - need);
    }
    wait
}

/// When each bucket of a stage's last backward is ready for its overlapped reduction: when
/// the last backward of its chunk passes its lowest layer.
fn overlapped_ready(stage: &Stage, bs: &[TimedBucket], stage_end: f64, pp: usize) -> Vec<f64> {
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

/// Aligned reduction (`stack.align_grad_reduce`, as the op graph's walk issues it): a
/// chunk's buckets all at once, `si` backward passes after the chunk's last backward
/// (the interleaved cooldown runs chunk v-1's last backwards first, chunk 0's last), or
/// at the stage's end if it has no more; a non-interleaved stage after its last backward.
fn aligned_ready(
    stage: &Stage,
    bs: &[TimedBucket],
    stage_end: f64,
    pp: usize,
    si: usize,
) -> Vec<f64> {
    let chunks = stage.chunks.len();
    bs.iter()
        .map(|b| {
            let ch = &stage.chunks[b.chunk];
            let chunk_end = stage_end - (b.chunk * pp) as f64 * ch.bwd;
            let passes_left = b.chunk * pp * (chunks > 1) as usize;
            if si < passes_left {
                chunk_end + si as f64 * ch.bwd
            } else {
                stage_end
            }
        })
        .collect()
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
    bs: &[TimedBucket],
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
    let offset = ready_offsets(stage, bs);
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

/// Each bucket's readiness after its backward pass starts: once the pass is past its
/// lowest layer.
fn ready_offsets(stage: &Stage, bs: &[TimedBucket]) -> Vec<f64> {
    bs.iter()
        .map(|b| {
            let ch = &stage.chunks[b.chunk];
            let n = ch.layer_bwd.len();
            ch.bwd_head
                + ch.layer_bwd[(b.lowest - ch.lo) as usize..n]
                    .iter()
                    .sum::<f64>()
        })
        .collect()
}

/// When the in-order DP stream finishes reductions `(ready, time)`, run in ready order.
fn drain(reductions: &[(f64, f64)]) -> f64 {
    let mut order = reductions.to_vec();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    order
        .iter()
        .fold(0.0f64, |done, &(ready, time)| done.max(ready) + time)
}
