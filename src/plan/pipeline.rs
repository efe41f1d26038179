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
    /// A forward that runs overlapped with the backward in the next slot (DualPipe's F&B
    /// chunks): it starts once both passes' inputs are in.
    pub paired: bool,
    /// How many of the following slots run before this slot's output is sent to the
    /// neighbouring stage (0: at once). DualPipe's reference implementation sends the
    /// outputs of an overlapped F&B chunk when the whole chunk is done, the input gradient
    /// of a full backward after its weight-gradient part, and holds a few warm-up sends
    /// back by one chunk (see [`dualpipe`]).
    pub send_after: u8,
    /// `(micro-batch, chunk)` of a later forward pass whose input this slot also waits for
    /// before it starts: DualPipe's reference posts some receives a chunk early, and each
    /// chunk's `batch_isend_irecv` + wait waits for every receive posted so far.
    pub recv_ahead: Option<(u32, u32)>,
}

impl Slot {
    pub const fn new(pass: Pass, micro_batch: u32, chunk: u32) -> Slot {
        Slot {
            pass,
            micro_batch,
            chunk,
            paired: false,
            send_after: 0,
            recv_ahead: None,
        }
    }
}

fn slot(pass: Pass, micro_batch: u32, chunk: u32) -> Slot {
    Slot::new(pass, micro_batch, chunk)
}

/// The slot order of `stage` out of `stages`, with `m` micro-batches and `v` chunks.
pub fn stage_order(kind: ScheduleKind, stage: u32, stages: u32, m: u32, v: u32) -> Vec<Slot> {
    match kind {
        ScheduleKind::Gpipe => gpipe(m),
        ScheduleKind::Interleaved => interleaved(stage, stages, m, v),
        ScheduleKind::ZbH1 => zb_h1(stage, stages, m),
        ScheduleKind::ZbH2 => zb_h2(stage, stages, m),
        ScheduleKind::Dualpipe => dualpipe(stage, stages, m),
        ScheduleKind::OneFOneB => one_f_one_b(stage, stages, m),
    }
}

/// Whether a schedule splits backward into input-gradient (`B`) and weight-gradient (`W`)
/// passes.
pub fn splits_backward(kind: ScheduleKind) -> bool {
    matches!(
        kind,
        ScheduleKind::ZbH1 | ScheduleKind::ZbH2 | ScheduleKind::Dualpipe
    )
}

/// Model chunks one stage holds: `v` under the interleaved schedule, two under DualPipe
/// (its own and the mirrored one), otherwise one.
pub fn chunks_per_stage(kind: ScheduleKind, v: u32) -> u32 {
    match kind {
        ScheduleKind::Interleaved => v.max(1),
        ScheduleKind::Dualpipe => 2,
        _ => 1,
    }
}

/// Where one model chunk of a stage sits on the path its micro-batches take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Virtual stage: the chunk's position on its path, unique over all paths. A forward
    /// pass goes from `vs` to `vs + 1`, a backward pass from `vs` to `vs - 1`.
    pub vs: u32,
    /// Index of the chunk's layers in the schedule's layer split.
    pub piece: u32,
    /// First position of the path (embedding) and last (logits and loss).
    pub first: bool,
    pub last: bool,
    /// Forward passes of this chunk flow from higher to lower stages (DualPipe's second
    /// direction): sends go to the previous stage, receives come from the next.
    pub reversed: bool,
}

/// The [`Place`] of chunk `chunk` of `stage` with `pp` stages and `v` chunks per stage.
///
/// Megatron's schedules run one path through `pp * v` virtual stages, `vs = chunk * pp +
/// stage`. DualPipe runs two paths of `pp` positions over the same `pp` pieces of the
/// model: chunk 0 of stage `i` is position `i` of the path fed at stage 0, chunk 1 is
/// position `pp - 1 - i` of the path fed at stage `pp - 1` (so it holds piece `pp - 1 - i`).
pub fn place(kind: ScheduleKind, stage: u32, chunk: u32, pp: u32, v: u32) -> Place {
    if kind == ScheduleKind::Dualpipe {
        let pos = if chunk == 0 { stage } else { pp - 1 - stage };
        return Place {
            vs: chunk * pp + pos,
            piece: pos,
            first: pos == 0,
            last: pos + 1 == pp,
            reversed: chunk == 1,
        };
    }
    let vs = chunk * pp + stage;
    Place {
        vs,
        piece: vs,
        first: vs == 0,
        last: vs + 1 == pp * v.max(1),
        reversed: false,
    }
}

/// The stage holding virtual stage `vs` (inverse of [`place`]).
pub fn stage_of(kind: ScheduleKind, vs: u32, pp: u32) -> u32 {
    let pos = vs % pp;
    if kind == ScheduleKind::Dualpipe && vs >= pp {
        pp - 1 - pos
    } else {
        pos
    }
}

/// DualPipe order builder: per-direction counters of the passes emitted so far and the
/// FIFO of postponed weight passes (DualPipe's `WeightGradStore`).
struct DualOrder {
    out: Vec<Slot>,
    /// Micro-batches per direction.
    half: u32,
    /// Ranks of the second half run the first half's program with directions swapped.
    swap: u32,
    f: [u32; 2],
    b: [u32; 2],
    deferred: std::collections::VecDeque<Slot>,
}

impl DualOrder {
    fn dir(&self, phase: u32) -> usize {
        (phase ^ self.swap) as usize
    }

    /// A forward chunk whose output is sent after the next `send_after` slots.
    fn forward(&mut self, phase: u32, send_after: u8) {
        let d = self.dir(phase);
        self.out.push(Slot {
            send_after,
            ..slot(Pass::Forward, d as u32 * self.half + self.f[d], d as u32)
        });
        self.f[d] += 1;
    }

    /// Input-gradient pass. Without `zero_bubble` it is a full backward: its weight pass
    /// follows at once and the input gradient is sent after it (the reference computes both
    /// in one autograd call); with it, the weight pass waits for a later
    /// [`DualOrder::weight`] and the gradient leaves at once.
    fn backward(&mut self, phase: u32, zero_bubble: bool) {
        let d = self.dir(phase);
        let mb = d as u32 * self.half + self.b[d];
        self.b[d] += 1;
        let b = slot(Pass::Backward, mb, d as u32);
        let w = slot(Pass::Weight, mb, d as u32);
        if zero_bubble {
            self.out.push(b);
            self.deferred.push_back(w);
        } else {
            self.out.push(Slot { send_after: 1, ..b });
            self.out.push(w);
        }
    }

    fn weight(&mut self) {
        self.out.extend(self.deferred.pop_front());
    }

    /// Makes the last slot wait for the input of the next forward of `phase` too.
    fn recv_ahead(&mut self, phase: u32) {
        let d = self.dir(phase);
        let next = (d as u32 * self.half + self.f[d], d as u32);
        if let Some(s) = self.out.last_mut() {
            s.recv_ahead = Some(next);
        }
    }

    /// An overlapped forward-and-backward chunk (full backward): one unit that starts once
    /// both inputs are in and sends both outputs when it ends.
    fn pair(&mut self, forward: u32, backward: u32) {
        self.forward(forward, 2);
        if let Some(f) = self.out.last_mut() {
            f.paired = true;
        }
        self.backward(backward, false);
    }
}

/// DualPipe (DeepSeek-V3, arXiv 2412.19437 §3.2.1; `deepseek-ai/DualPipe`,
/// `DualPipe.step`): half the micro-batches enter at stage 0 (chunk 0), half at stage
/// `p - 1` (chunk 1). The eight phases of the reference implementation, for a rank at
/// distance `h` from its end (`r = p/2 - h - 1`):
/// 1. `2r` F0;
/// 2. `h+1` F0 F1;
/// 3. `r` B1 W F1 (zero bubble: B1 input gradient only, W the weight pass just deferred);
/// 4. `m/2 - p + h + 1` F0&B1 F1&B0 (overlapped forward-and-backward chunks, full backward);
/// 5. `r` B1 F1&B0 (full backward);
/// 6. `h+1` B1 B0 (full, then zero bubble from the middle of the phase on);
/// 7. `r` W B0 (zero bubble);
/// 8. `h+1` W.
///
/// Communication follows the reference's `batch_isend_irecv` batching: an F&B chunk sends
/// both outputs when it ends, a full backward its gradient after its weight part; in
/// phase 2 the outer ranks send each F0 together with the F1 after it, and the two middle
/// ranks (which run their first phase-4 pair unoverlapped, "to further reduce bubble
/// size") send their last phase-2 F1 after that F0, and that F0 after the B1 (and W) that
/// follows it. Receives posted a chunk early hold up the chunk that waits on them: each
/// phase-2 F1 waits for the next F0's input, each phase-3 W for the next F1's.
/// Needs an even `p` and an even `m >= 2p` (the config validation checks).
pub fn dualpipe(stage: u32, p: u32, m: u32) -> Vec<Slot> {
    let (ph, h) = (p / 2, stage.min(p - 1 - stage));
    let middle = h + 1 == ph;
    let mut o = DualOrder {
        out: Vec::with_capacity(3 * m as usize),
        half: m / 2,
        swap: u32::from(stage >= ph),
        f: [0; 2],
        b: [0; 2],
        deferred: Default::default(),
    };
    let rest = ph - h - 1;
    for _ in 0..2 * rest {
        o.forward(0, 0);
    }
    for i in 0..=h {
        o.forward(0, u8::from(!middle));
        o.forward(1, u8::from(middle && i == h));
        o.recv_ahead(0);
    }
    for _ in 0..rest {
        o.backward(1, true);
        o.weight();
        o.recv_ahead(1);
        o.forward(1, 0);
    }
    for i in 0..(m / 2 + h + 1).saturating_sub(p) {
        if i == 0 && middle {
            o.forward(0, 2);
            o.backward(1, false);
        } else {
            o.pair(0, 1);
        }
        o.pair(1, 0);
    }
    for _ in 0..rest {
        o.backward(1, false);
        o.pair(1, 0);
    }
    // The reference switches to zero-bubble backwards at `i == (h + 1) / 2` (step_6 // 2):
    // before B1 on odd `h`, between B1 and B0 on even `h`.
    let (switch, mut zero_bubble) = (h.div_ceil(2), false);
    for i in 0..=h {
        if i == switch && h % 2 == 1 {
            zero_bubble = true;
        }
        o.backward(1, zero_bubble);
        if i == switch && h % 2 == 0 {
            zero_bubble = true;
        }
        o.backward(0, zero_bubble);
    }
    for _ in 0..rest {
        o.weight();
        o.backward(0, true);
    }
    while !o.deferred.is_empty() {
        o.weight();
    }
    o.out
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
    fn dualpipe_is_complete_causal_and_symmetric() {
        for (p, m) in [(2, 4), (4, 8), (4, 10), (8, 16), (8, 40), (6, 12)] {
            for stage in 0..p {
                let order = dualpipe(stage, p, m);
                assert_eq!(order.len(), 3 * m as usize);
                for pass in [Pass::Forward, Pass::Backward, Pass::Weight] {
                    for d in 0..2 {
                        let mut mbs: Vec<u32> = order
                            .iter()
                            .filter(|s| s.pass == pass && s.chunk == d)
                            .map(|s| s.micro_batch)
                            .collect();
                        mbs.sort();
                        let want: Vec<u32> = (d * m / 2..(d + 1) * m / 2).collect();
                        assert_eq!(mbs, want, "p={p} m={m} stage={stage} {pass:?}");
                    }
                }
                let pos = |pass, mb| {
                    order
                        .iter()
                        .position(|s| s.pass == pass && s.micro_batch == mb)
                };
                for mb in 0..m {
                    assert!(pos(Pass::Forward, mb) < pos(Pass::Backward, mb));
                    assert!(pos(Pass::Backward, mb) < pos(Pass::Weight, mb));
                }
                // Stage p-1-i runs stage i's program with the directions swapped.
                let mirror = dualpipe(p - 1 - stage, p, m);
                for (a, b) in order.iter().zip(&mirror) {
                    assert_eq!((a.pass, a.chunk), (b.pass, 1 - b.chunk));
                }
            }
        }
    }

    /// The sends follow `DualPipe.step`'s `batch_isend_irecv` batching: F&B chunks and
    /// full backwards send when the whole chunk is done, phase 2 holds F0 (outer ranks) or
    /// the last F1 (middle ranks) back by one chunk.
    #[test]
    fn dualpipe_sends_when_the_reference_does() {
        for (p, m) in [(4, 8), (8, 20), (6, 14)] {
            for stage in 0..p {
                let order = dualpipe(stage, p, m);
                let h = stage.min(p - 1 - stage);
                let middle = h + 1 == p / 2;
                let same =
                    |a: &Slot, b: &Slot| (a.micro_batch, a.chunk) == (b.micro_batch, b.chunk);
                for (i, s) in order.iter().enumerate() {
                    let next = order.get(i + 1);
                    match (s.pass, s.send_after) {
                        (Pass::Forward, 2) => {
                            let b = next.unwrap();
                            assert!(b.pass == Pass::Backward && b.send_after == 1);
                            assert!(s.paired || (middle && !order[..i].iter().any(|x| x.paired)));
                        }
                        (Pass::Forward, 1) => {
                            // Phase 2: F0 goes out with the next F1 (outer ranks); the middle
                            // ranks' last F1 with the F0 after it.
                            let n = next.unwrap();
                            assert_eq!((n.pass, n.paired), (Pass::Forward, false));
                            assert_eq!(n.send_after, if middle { 2 } else { 0 });
                        }
                        (Pass::Backward, 1) => {
                            let w = next.unwrap();
                            assert!(w.pass == Pass::Weight && same(s, w));
                        }
                        (_, 0) => assert!(!s.paired),
                        other => panic!("p={p} stage={stage} slot {i}: {other:?}"),
                    }
                }
                // Early receives: every phase-2 F1 waits for the next F0's input, every
                // phase-3 W for the next F1's; both forwards come later in the order.
                let ahead: Vec<(usize, (u32, u32))> = order
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.recv_ahead.map(|a| (i, a)))
                    .collect();
                assert_eq!(ahead.len(), (h + 1 + (p / 2 - h - 1)) as usize);
                for &(i, (mb, chunk)) in &ahead {
                    assert!(matches!(order[i].pass, Pass::Forward | Pass::Weight));
                    let f = order.iter().position(|s| {
                        s.pass == Pass::Forward && (s.micro_batch, s.chunk) == (mb, chunk)
                    });
                    assert!(f.is_some_and(|f| f > i), "p={p} stage={stage} slot {i}");
                }
                let held = |after| {
                    order
                        .iter()
                        .filter(|s| s.pass == Pass::Forward && s.send_after == after)
                        .count()
                };
                let pairs = order.iter().filter(|s| s.paired).count();
                assert_eq!(held(2), pairs + usize::from(middle));
                assert_eq!(held(1), if middle { 1 } else { h as usize + 1 });
            }
        }
    }

    #[test]
    fn dualpipe_places_mirror_each_other() {
        let p = 8;
        for stage in 0..p {
            let down = place(ScheduleKind::Dualpipe, stage, 0, p, 1);
            let up = place(ScheduleKind::Dualpipe, stage, 1, p, 1);
            assert_eq!(down.piece, stage);
            assert_eq!(up.piece, p - 1 - stage);
            assert!(up.reversed && !down.reversed);
            assert_eq!(stage_of(ScheduleKind::Dualpipe, down.vs, p), stage);
            assert_eq!(stage_of(ScheduleKind::Dualpipe, up.vs, p), stage);
        }
        assert!(place(ScheduleKind::Dualpipe, p - 1, 1, p, 1).first);
        assert!(place(ScheduleKind::Dualpipe, 0, 1, p, 1).last);
        let inter = place(ScheduleKind::Interleaved, 3, 1, 4, 2);
        assert_eq!((inter.vs, inter.piece, inter.last), (7, 7, true));
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
