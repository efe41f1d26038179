//! Fast mode's pipeline composition: the span of a step's passes over all stages in
//! closed form (`m · max_s X_s` plus every other stage's bubble share plus overlapped
//! hops), how much earlier than stage 0 each stage finishes, and when a layer's first
//! forward starts (the parameter gathers at the step start race it).
//!
//! Must not price: it composes the per-stage times of [`super::stages`].

use super::stages::{Comms, Stage};
use crate::config::Scenario;
use crate::plan::ScheduleKind;

/// The pipeline part of a step: when the critical stage's last pass ends.
pub(super) struct Pipe {
    pub(super) span: f64,
    pub(super) bubble: f64,
    pub(super) hops: f64,
    pub(super) crit: usize,
    /// When each stage's last pass ends, where the closed form's stage leads do not hold
    /// (zero-bubble schedules with too few micro-batches to defer weight passes into the
    /// bubble): from [`walk_passes`].
    pub(super) ends: Option<Vec<f64>>,
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
pub(super) fn pipeline(s: &Scenario, st: &[Stage], comms: &Comms, v: f64, m: f64) -> Pipe {
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
    let hops = if p.p2p_overlapped() && pp > 1 {
        2.0 * (pp as f64 * v - 1.0) * comms.p2p
    } else {
        0.0
    };
    let span = m * xmax + bubble + hops;
    // The zero-bubble closed form assumes every stage has the weight passes its order
    // defers (`i` on stage `i` under H1, `2i` under H2, `plan::pipeline::zb_h1`/`zb_h2`)
    // to fill its bubble: m >= p (H1) or m >= 2p - 1 (H2). With fewer micro-batches the
    // last weight passes end the pipeline instead; the walk of the stages' orders is exact
    // for the pipeline with these pass times, and the later of the two stands.
    let deferring = match p.schedule {
        ScheduleKind::ZbH1 => pp,
        ScheduleKind::ZbH2 => 2 * pp - 1,
        _ => 0,
    };
    if pp > 1 && (m as usize) < deferring {
        let hop = if p.p2p_overlapped() { comms.p2p } else { 0.0 };
        let ends = walk_passes(p.schedule, st, m as u32, hop);
        let walked = ends.iter().copied().fold(0.0f64, f64::max);
        if walked > span * (1.0 + 1e-9) {
            let extra = walked - span;
            return Pipe {
                span: walked,
                bubble: bubble + hops + extra,
                hops,
                crit,
                ends: Some(ends),
            };
        }
    }
    Pipe {
        span,
        bubble: bubble + hops,
        hops,
        crit,
        ends: None,
    }
}

/// The pipeline's passes walked in each stage's schedule order (one chunk per stage):
/// a forward starts when the stage is free and the previous stage's forward of the
/// micro-batch has arrived (`hop` later), a backward when the next stage's backward has,
/// a weight pass when the stage is free. Returns when each stage's last pass ends.
pub(super) fn walk_passes(kind: ScheduleKind, st: &[Stage], m: u32, hop: f64) -> Vec<f64> {
    use crate::plan::pipeline::{Pass, stage_order};
    let pp = st.len();
    let orders: Vec<_> = (0..pp)
        .map(|s| stage_order(kind, s as u32, pp as u32, m, 1))
        .collect();
    let mut next = vec![0usize; pp];
    let mut free = vec![0.0f64; pp];
    let nan = f64::NAN;
    let mut fwd_done = vec![vec![nan; m as usize]; pp];
    let mut bwd_done = vec![vec![nan; m as usize]; pp];
    loop {
        let mut progress = false;
        for s in 0..pp {
            while let Some(slot) = orders[s].get(next[s]) {
                let mb = slot.micro_batch as usize;
                let ready = match slot.pass {
                    Pass::Forward if s > 0 => fwd_done[s - 1][mb] + hop,
                    Pass::Backward if s + 1 < pp => bwd_done[s + 1][mb] + hop,
                    _ => 0.0,
                };
                if ready.is_nan() {
                    break;
                }
                let dur = match slot.pass {
                    Pass::Forward => st[s].fwd,
                    Pass::Backward => st[s].bwd,
                    Pass::Weight => st[s].w,
                };
                let end = free[s].max(ready) + dur;
                free[s] = end;
                match slot.pass {
                    Pass::Forward => fwd_done[s][mb] = end,
                    Pass::Backward => bwd_done[s][mb] = end,
                    Pass::Weight => {}
                }
                next[s] += 1;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    free
}

/// How much earlier than stage 0 stage `si` finishes its last pass: one input-gradient
/// pass (+ hop) per stage under 1F1B and interleaving; under zero-bubble schedules the
/// stage then still runs the weight passes it deferred (`si + 1` under H1, `2si + 1` under
/// H2), so it ends `si · (B − W)` (H1) or `si · (B − 2W)` (H2) earlier.
pub(super) fn stage_lead(kind: ScheduleKind, st: &Stage, si: usize, v: f64, hop: f64) -> f64 {
    let b = st.bwd / v + hop;
    let lead = match kind {
        ScheduleKind::ZbH1 => b - st.w,
        ScheduleKind::ZbH2 => b - 2.0 * st.w,
        _ => b,
    };
    si as f64 * lead.max(0.0)
}

/// Start of the forward of `layer` (chunk `ci`) for micro-batch 0 on stage `si`, relative to
/// the step start, with free communication.
pub(super) fn first_forward_at(stages: &[Stage], si: usize, ci: usize, layer: u64) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(f: f64, b: f64, w: f64) -> Stage {
        Stage {
            fwd: f,
            fill_fwd: f,
            bwd: b,
            w,
            ..Stage::default()
        }
    }

    /// One micro-batch through two stages under ZB-H1, by hand: F F B B W on the first
    /// stage's clock (its weight pass cannot hide: there is no later pass to fill), so
    /// the pipeline ends at `2F + 2B + W` where the closed form says `2F + 2B`; the second
    /// stage ends `B` earlier.
    #[test]
    fn zero_bubble_walk_with_one_micro_batch() {
        let (f, b, w) = (3.0, 2.0, 1.5);
        let st = vec![stage(f, b, w), stage(f, b, w)];
        let ends = walk_passes(ScheduleKind::ZbH1, &st, 1, 0.0);
        assert_eq!(ends, vec![2.0 * f + 2.0 * b + w, 2.0 * f + b + w]);
        // With m >= p the walk and the closed form agree: m X + (X - 2W).
        let m = 4.0;
        let ends = walk_passes(ScheduleKind::ZbH1, &st, 4, 0.0);
        let x = f + b + w;
        assert_eq!(ends[0].max(ends[1]), m * x + (x - 2.0 * w));
    }
}
