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
        ScheduleKind::ZbH1 => zb_h1(stage, stages, m),
        ScheduleKind::ZbH2 => zb_h2(stage, stages, m),
        // DualPipe's bidirectional order is not generated yet: it runs as 1F1B (config
        // validation refuses it); memory accounting already models its 2x parameters.
        _ => one_f_one_b(stage, stages, m),
    }
}

/// Whether a schedule splits backward into input-gradient (`B`) and weight-gradient (`W`)
/// passes.
pub fn splits_backward(kind: ScheduleKind) -> bool {
    matches!(kind, ScheduleKind::ZbH1 | ScheduleKind::ZbH2)
}

/// Counters of the passes a zero-bubble order has emitted so far.
struct ZbOrder {
    out: Vec<Slot>,
    f: u32,
    b: u32,
    w: u32,
    m: u32,
}

impl ZbOrder {
    fn new(m: u32) -> Self {
        ZbOrder {
            out: Vec::with_capacity(3 * m as usize),
            f: 0,
            b: 0,
            w: 0,
            m,
        }
    }

    fn forward(&mut self) {
        if self.f < self.m {
            self.out.push(slot(Pass::Forward, self.f, 0));
            self.f += 1;
        }
    }

    fn input_grad(&mut self) {
        if self.b < self.f {
            self.out.push(slot(Pass::Backward, self.b, 0));
            self.b += 1;
        }
    }

    fn weight_grad(&mut self) {
        if self.w < self.b {
            self.out.push(slot(Pass::Weight, self.w, 0));
            self.w += 1;
        }
    }

    /// Warm-up forwards, then `deferred` F-B pairs that postpone their W, then F-B-W
    /// cycles, then B-W, then the postponed Ws fill the cool-down.
    fn build(mut self, warmup: u32, deferred: u32) -> Vec<Slot> {
        for _ in 0..warmup {
            self.forward();
        }
        for _ in 0..deferred {
            self.forward();
            self.input_grad();
        }
        while self.f < self.m {
            self.forward();
            self.input_grad();
            self.weight_grad();
        }
        while self.b < self.m {
            self.input_grad();
            self.weight_grad();
        }
        while self.w < self.m {
            self.weight_grad();
        }
        self.out
    }
}

/// ZB-H1 (Qi et al., arXiv 2401.10241, §3.1): 1F1B's warm-up and peak of `p` micro-batches
/// in flight, with stage `i` postponing `i` weight-gradient passes into the cool-down.
/// Bubble `(p-1)(T_F + T_B - T_W)`.
pub fn zb_h1(stage: u32, stages: u32, m: u32) -> Vec<Slot> {
    ZbOrder::new(m).build(stages - stage - 1, stage)
}

/// ZB-H2: twice 1F1B's warm-up forwards (about 2x the activation memory) and `2i`
/// postponed weight passes on stage `i`; the pipeline becomes a parallelogram whose
/// per-stage bubble is `(p-1)(T_F + T_B - 2T_W)` (the first stage's idle time between its
/// first and last pass; the head/tail offset of `(p-1)T_F` is hidden only when the
/// optimizer step skips its global synchronisation, as the paper's post-validation does).
pub fn zb_h2(stage: u32, stages: u32, m: u32) -> Vec<Slot> {
    ZbOrder::new(m).build(2 * (stages - stage - 1), 2 * stage)
}

/// Peak micro-batches whose activations a stage holds at once under `order` (forwards
/// whose backward — weight pass under zero-bubble schedules — has not run yet).
pub fn peak_in_flight(order: &[Slot], split: bool) -> u32 {
    let release = if split { Pass::Weight } else { Pass::Backward };
    let (mut live, mut peak) = (0i64, 0i64);
    for s in order {
        if s.pass == Pass::Forward {
            live += 1;
        } else if s.pass == release {
            live -= 1;
        }
        peak = peak.max(live);
    }
    peak as u32
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
    fn zero_bubble_orders_are_complete_and_causal() {
        for (p, m) in [(4, 8), (4, 3), (8, 16), (2, 5)] {
            for stage in 0..p {
                for order in [zb_h1(stage, p, m), zb_h2(stage, p, m)] {
                    check_complete(&order, m, 1);
                    let mut ws: Vec<u32> = order
                        .iter()
                        .filter(|s| s.pass == Pass::Weight)
                        .map(|s| s.micro_batch)
                        .collect();
                    ws.sort();
                    assert_eq!(ws, (0..m).collect::<Vec<_>>());
                    let pos = |pass, mb| {
                        order
                            .iter()
                            .position(|s| s.pass == pass && s.micro_batch == mb)
                    };
                    for mb in 0..m {
                        assert!(pos(Pass::Forward, mb) < pos(Pass::Backward, mb));
                        assert!(pos(Pass::Backward, mb) < pos(Pass::Weight, mb));
                    }
                }
            }
        }
    }

    #[test]
    fn zero_bubble_memory_matches_1f1b_and_twice() {
        let (p, m) = (8, 32);
        assert_eq!(peak_in_flight(&one_f_one_b(0, p, m), false), p);
        assert_eq!(peak_in_flight(&zb_h1(0, p, m), true), p);
        assert_eq!(peak_in_flight(&zb_h2(0, p, m), true), 2 * p - 1);
        for stage in 0..p {
            assert!(peak_in_flight(&zb_h1(stage, p, m), true) <= p);
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
