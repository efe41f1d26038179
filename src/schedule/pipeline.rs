//! Pipeline schedules as per-stage orders of forward and backward passes.
//!
//! Each function returns, for one stage, the sequence of [`Slot`]s it executes. The op
//! graph builder turns slots into ops; the engine, not this module, decides when they run.

use crate::plan::ScheduleKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Forward,
    /// Full backward, or only the input-gradient half under zero-bubble schedules.
    Backward,
    /// Weight-gradient half of backward (zero-bubble schedules only).
    Weight,
}

/// One pass of one micro-batch through one model chunk of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub pass: Pass,
    pub micro_batch: u32,
    pub chunk: u32,
}

fn slot(pass: Pass, micro_batch: u32, chunk: u32) -> Slot {
    Slot {
        pass,
        micro_batch,
        chunk,
    }
}

/// The slot order of `stage` out of `stages`, with `m` micro-batches and `v` chunks.
pub fn stage_order(kind: ScheduleKind, stage: u32, stages: u32, m: u32, v: u32) -> Vec<Slot> {
    match kind {
        ScheduleKind::Gpipe => gpipe(m),
        ScheduleKind::Interleaved => interleaved(stage, stages, m, v),
        // Zero-bubble and DualPipe orders arrive with the memory/parallelism work; until
        // then they run as 1F1B (validation refuses them).
        _ => one_f_one_b(stage, stages, m),
    }
}

/// GPipe: all forwards, then all backwards.
pub fn gpipe(m: u32) -> Vec<Slot> {
    let mut out: Vec<Slot> = (0..m).map(|i| slot(Pass::Forward, i, 0)).collect();
    out.extend((0..m).map(|i| slot(Pass::Backward, i, 0)));
    out
}

/// 1F1B (PipeDream-Flush): `p - stage - 1` warm-up forwards, then alternate.
pub fn one_f_one_b(stage: u32, stages: u32, m: u32) -> Vec<Slot> {
    let warmup = (stages - stage - 1).min(m);
    let mut out = Vec::with_capacity(2 * m as usize);
    out.extend((0..warmup).map(|i| slot(Pass::Forward, i, 0)));
    for i in 0..(m - warmup) {
        out.push(slot(Pass::Forward, warmup + i, 0));
        out.push(slot(Pass::Backward, i, 0));
    }
    out.extend((m - warmup..m).map(|i| slot(Pass::Backward, i, 0)));
    out
}

/// Megatron-LM's interleaved 1F1B (`forward_backward_pipelining_with_interleaving`):
/// virtual micro-batch `k` maps to chunk `(k mod pv) / p` (reversed for backward) and
/// micro-batch `(k / pv) * p + k mod p`.
pub fn interleaved(stage: u32, p: u32, m: u32, v: u32) -> Vec<Slot> {
    let total = m * v;
    let chunk_of = |k: u32, forward: bool| {
        let c = (k % (p * v)) / p;
        if forward { c } else { v - 1 - c }
    };
    let mb_of = |k: u32| (k / (p * v)) * p + k % p;
    let warmup = if m == p {
        total
    } else {
        ((p - stage - 1) * 2 + (v - 1) * p).min(total)
    };
    let f = |k: u32| slot(Pass::Forward, mb_of(k), chunk_of(k, true));
    let b = |k: u32| slot(Pass::Backward, mb_of(k), chunk_of(k, false));
    let mut out = Vec::with_capacity(2 * total as usize);
    out.extend((0..warmup).map(f));
    for k in 0..(total - warmup) {
        out.push(f(warmup + k));
        out.push(b(k));
    }
    out.extend((total - warmup..total).map(b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_complete(order: &[Slot], m: u32, v: u32) {
        for pass in [Pass::Forward, Pass::Backward] {
            for c in 0..v {
                let mut mbs: Vec<u32> = order
                    .iter()
                    .filter(|s| s.pass == pass && s.chunk == c)
                    .map(|s| s.micro_batch)
                    .collect();
                mbs.sort();
                assert_eq!(mbs, (0..m).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn every_schedule_runs_every_pass_once() {
        for stage in 0..4 {
            check_complete(&gpipe(8), 8, 1);
            check_complete(&one_f_one_b(stage, 4, 8), 8, 1);
            check_complete(&one_f_one_b(stage, 4, 2), 2, 1);
            check_complete(&interleaved(stage, 4, 8, 2), 8, 2);
            check_complete(&interleaved(stage, 4, 4, 3), 4, 3);
        }
    }

    #[test]
    fn backward_of_a_microbatch_follows_its_forward() {
        for stage in 0..4 {
            let order = interleaved(stage, 4, 8, 2);
            for (i, s) in order.iter().enumerate() {
                if s.pass == Pass::Backward {
                    let f = order.iter().position(|x| {
                        x.pass == Pass::Forward
                            && x.micro_batch == s.micro_batch
                            && x.chunk == s.chunk
                    });
                    assert!(f.is_some_and(|f| f < i));
                }
            }
        }
    }

    #[test]
    fn one_f_one_b_warmup_depth() {
        let o = one_f_one_b(0, 4, 8);
        assert!(o[..3].iter().all(|s| s.pass == Pass::Forward));
        assert_eq!(o[4].pass, Pass::Backward);
        let last = one_f_one_b(3, 4, 8);
        assert_eq!(last[1].pass, Pass::Backward);
    }
}
