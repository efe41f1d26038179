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
