//! Fast mode's DualPipe (DeepSeek-V3, arXiv 2412.19437 §3.2.1; `deepseek-ai/DualPipe`
//! `DualPipe.step`): every stage's order from [`crate::plan::pipeline::dualpipe`] walked
//! pass by pass, as the op graph places it (`schedule::walk`, `schedule::pp`,
//! `schedule::ep`):
//! - a pass starts when the stage is free and its inputs have arrived: the forward's
//!   activations, the backward's gradient, the receives [`Slot::recv_ahead`] waits on early
//!   and, for an overlapped forward-and-backward chunk pair, both passes' inputs;
//! - a pass is the op sequence of its layers on two resources, the compute chain and the
//!   in-order TP/EP stream: TP collectives chained (or beside their block's GEMMs as the
//!   plan's TP overlap says), expert all-to-alls chained, except inside a chunk pair,
//!   where they run beside the chain (each after the compute that feeds it) while the
//!   pair's block compute runs slowed by
//!   [`crate::pricing::compute::dualpipe_overlap_slowdown`], and what follows the pair
//!   waits for them;
//! - sends leave [`Slot::send_after`] slots later on the in-order stream towards their
//!   neighbour, arriving one hop after they start, blocking the chain without p2p overlap;
//! - the data-parallel tail: each chunk's buckets reduced over DP after its last gradient
//!   pass (every one under ZeRO-2), then summed with the piece's other copy
//!   ([`crate::pricing::dp::mirror_reduce_bytes`], a 2-rank all-reduce that starts when
//!   both holders reach it on their in-order DP streams), the optimizer, and the ZeRO-1
//!   parameter gathers at the start (or after the optimizer without overlap).
//!
//! Not composed: ZeRO-3's per-layer gathers under DualPipe (the plan search does not
//! propose that combination) and the CP ring exchange (as for every schedule).
//! Must not price: durations come from [`OpCosts`], collective sizes from
//! [`crate::pricing`].

use super::stages::{Comms, Stage};
use super::{Ctx, FastEstimate, secs};
use crate::plan::pipeline::{self, Pass, Slot};
use crate::plan::stack::TpOverlap;
use crate::plan::{GroupMask, Recompute, ScheduleKind};
use crate::pricing::compute::{dualpipe_overlap_slowdown, slowed};
use crate::pricing::dp::{self, NO_LAYER};
use crate::pricing::{Coverage, OpCosts, collectives, optimizer};
use crate::units::Nanos;
use crate::vocab::Collective;

/// One op of a pass, as the op graph places it.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Block compute (`schedule::tp`'s `block_compute`): slowed inside a chunk pair.
    Block(Nanos),
    /// A layer's first forward op also waits for the parameter all-gather issued for it
    /// at the step start (ZeRO-1/2 with overlap: `schedule::dp`'s `gathers_at_start`).
    Gate(u64),
    /// Chain compute a pair does not slow (embedding, logits, selective recompute).
    Plain(Nanos),
    /// A TP collective the chain waits for, on the in-order TP/EP stream (seconds).
    Chained(f64),
    /// An expert all-to-all: chained outside a pair, beside the chain inside one.
    A2a(f64),
    /// A block whose TP collectives (`comms`, seconds, in order) run beside its compute.
    Overlapped { compute: Nanos, comms: f64 },
    /// A backward block under backward TP overlap: its compute up to the column-parallel
    /// linear, the saved input's all-gather beside the input-gradient GEMM, the input
    /// gradient's reduction beside the weight-gradient GEMM.
    BwdOverlapped {
        rest: Nanos,
        gather: Option<f64>,
        dgrad: Nanos,
        reduce: f64,
        wgrad: Nanos,
    },
}

/// A stage's two resources while its passes run, and what it exposed.
#[derive(Debug, Clone, Copy, Default)]
struct Lane {
    /// When the compute chain is free.
    c: f64,
    /// When the in-order TP/EP stream is free.
    q: f64,
    tp: f64,
    ep: f64,
    pp: f64,
    idle: f64,
}

impl Lane {
    fn chained(&mut self, t: f64) -> f64 {
        let start = self.c.max(self.q);
        let exposed = start + t - self.c;
        self.c = start + t;
        self.q = self.c;
        exposed
    }

    /// Runs `ops`; `slow` inside a chunk pair with expert parallelism.
    fn run(&mut self, ops: &[Op], slow: Option<f64>, gates: &[(u64, f64)]) {
        let dur = |d: Nanos| secs(slow.map_or(d, |s| slowed(d, s)));
        for op in ops {
            match *op {
                Op::Gate(layer) => {
                    let gate = gates.iter().find(|g| g.0 == layer).map_or(0.0, |g| g.1);
                    if gate > self.c {
                        self.idle += gate - self.c;
                        self.c = gate;
                    }
                }
                Op::Block(d) => self.c += dur(d),
                Op::Plain(d) => self.c += secs(d),
                Op::Chained(t) => self.tp += self.chained(t),
                Op::A2a(t) if slow.is_some() => self.q = self.c.max(self.q) + t,
                Op::A2a(t) => self.ep += self.chained(t),
                Op::Overlapped { compute, comms } => {
                    self.q = self.c.max(self.q) + comms;
                    let done = self.c + dur(compute);
                    self.tp += (self.q - done).max(0.0);
                    self.c = done.max(self.q);
                }
                Op::BwdOverlapped {
                    rest,
                    gather,
                    dgrad,
                    reduce,
                    wgrad,
                } => {
                    let r = self.c + dur(rest);
                    let g = gather.map(|t| {
                        self.q = r.max(self.q) + t;
                        self.q
                    });
                    let d = r + secs(dgrad);
                    self.q = d.max(self.q) + reduce;
                    let w = d.max(g.unwrap_or(d)) + secs(wgrad);
                    let end = w.max(self.q);
                    self.tp += (end - (d + secs(wgrad))).max(0.0);
                    self.c = end;
                }
            }
        }
    }
}

/// The op sequences of one piece of the model: forward and input-gradient passes.
struct PieceOps {
    fwd: Vec<Op>,
    bwd: Vec<Op>,
}

/// Builds the passes' op sequences from the priced costs, as `schedule::passes` does.
struct OpsBuilder<'a> {
    costs: &'a OpCosts,
    tp: Option<(Option<f64>, f64)>,
    overlap: TpOverlap,
    a2a: Option<f64>,
    recompute: Recompute,
}

impl OpsBuilder<'_> {
    fn block(&self, out: &mut Vec<Op>, d: Nanos, col: Option<crate::pricing::ColumnGemms<Nanos>>) {
        let Some((before, after)) = self.tp else {
            out.push(Op::Block(d));
            return;
        };
        match (self.overlap, col) {
            (TpOverlap::Full, _) => out.push(Op::Overlapped {
                compute: d,
                comms: before.unwrap_or(0.0) + after,
            }),
            (TpOverlap::Backward, Some(col)) => {
                out.extend(before.map(Op::Chained));
                out.push(Op::BwdOverlapped {
                    rest: d.saturating_sub(col.dgrad + col.wgrad),
                    gather: before,
                    dgrad: col.dgrad,
                    reduce: after,
                    wgrad: col.wgrad,
                });
            }
            _ => {
                out.extend(before.map(Op::Chained));
                out.push(Op::Block(d));
                out.push(Op::Chained(after));
            }
        }
    }

    fn around_moe(&self, out: &mut Vec<Op>, moe: bool, f: impl FnOnce(&mut Vec<Op>)) {
        let a2a = self.a2a.filter(|_| moe);
        out.extend(a2a.map(Op::A2a));
        f(out);
        out.extend(a2a.map(Op::A2a));
    }

    fn piece(
        &self,
        model: &crate::model::ModelSpec,
        (lo, hi): (u64, u64),
        first: bool,
        last: bool,
    ) -> PieceOps {
        let c = self.costs;
        let mut fwd = Vec::new();
        if first {
            fwd.push(Op::Plain(c.embedding_fwd));
        }
        for layer in lo..hi {
            let l = c.layer(model, layer);
            fwd.push(Op::Gate(layer));
            self.block(&mut fwd, l.attn_fwd, None);
            self.around_moe(&mut fwd, l.moe, |o| self.block(o, l.mlp_fwd, None));
        }
        if last {
            fwd.push(Op::Plain(c.logits_fwd));
        }
        let mut bwd = Vec::new();
        if last {
            bwd.push(Op::Plain(c.logits_bwd));
        }
        for layer in (lo..hi).rev() {
            let l = c.layer(model, layer);
            if self.recompute == Recompute::Full {
                self.block(&mut bwd, l.attn_fwd, None);
                self.around_moe(&mut bwd, l.moe, |o| self.block(o, l.mlp_fwd, None));
            }
            let b = l.backward(true);
            self.around_moe(&mut bwd, l.moe, |o| self.block(o, b.mlp, Some(b.mlp_col)));
            if self.recompute == Recompute::Selective && c.selective_recompute > 0 {
                bwd.push(Op::Plain(c.selective_recompute));
            }
            self.block(&mut bwd, b.attn, Some(b.attn_col));
        }
        if first {
            bwd.push(Op::Plain(c.embedding_bwd));
        }
        PieceOps { fwd, bwd }
    }
}

/// A send held until its unit ends: `(due slot, forward?, micro-batch, from virtual stage)`.
type Held = (usize, bool, u32, u32);

/// When each stage's passes ran.
struct Walked {
    lanes: Vec<Lane>,
    /// Per stage: `(chunk, end)` of every weight pass, in order.
    weights: Vec<Vec<(u32, f64)>>,
}

/// What the walk of DualPipe's orders reads: each piece's passes, priced.
struct WalkInputs<'a> {
    pp: u32,
    m: u32,
    /// Forward and input-gradient passes of every piece of the model.
    pieces: &'a [PieceOps],
    /// Weight pass of every piece, seconds.
    weight: &'a [f64],
    /// Compute slowdown inside a chunk pair (expert parallelism).
    slow: Option<f64>,
    /// One pipeline hop, seconds; sends block the chain without p2p overlap.
    hop: f64,
    blocking: bool,
    /// Per stage: `(layer, when its parameter gather ends)`.
    gates: &'a [Vec<(u64, f64)>],
}

/// Prices the walk's inputs and walks every stage's DualPipe order.
fn walk(
    ctx: &Ctx,
    st: &[Stage],
    comms: &Comms,
    costs: &OpCosts,
    gates: &[Vec<(u64, f64)>],
) -> Walked {
    let (s, inp) = (ctx.s, &ctx.inp);
    let tp =
        collectives::tp_block(inp).map(|b| (b.before.map(|_| comms.tp_before), comms.tp_after));
    let builder = OpsBuilder {
        costs,
        tp,
        overlap: comms.tp_overlap,
        a2a: collectives::ep_all_to_all(inp, Coverage::FAST).map(|_| comms.a2a),
        recompute: s.training.recompute,
    };
    let ranges = inp.piece_layers();
    let pieces: Vec<PieceOps> = ranges
        .iter()
        .enumerate()
        .map(|(i, &r)| builder.piece(&s.model, r, i == 0, i + 1 == ranges.len()))
        .collect();
    // Piece `i` is chunk 0 of stage `i`.
    let weight: Vec<f64> = st.iter().map(|stage| stage.chunks[0].w).collect();
    walk_orders(&WalkInputs {
        pp: st.len() as u32,
        m: inp.micro_batches() as u32,
        pieces: &pieces,
        weight: &weight,
        slow: dualpipe_overlap_slowdown(inp),
        hop: comms.p2p,
        blocking: !s.parallelism.pp_comm_overlap,
        gates,
    })
}

/// Walks every stage's DualPipe order (see the module docs).
fn walk_orders(w: &WalkInputs) -> Walked {
    let (pp, m, slow, hop, blocking, gates) = (w.pp, w.m, w.slow, w.hop, w.blocking, w.gates);
    let kind = ScheduleKind::Dualpipe;
    let orders: Vec<Vec<Slot>> = (0..pp).map(|si| pipeline::dualpipe(si, pp, m)).collect();
    let nan = f64::NAN;
    // Arrivals by (stage, chunk, micro-batch): forward inputs and backward gradients.
    let idx = |stage: u32, chunk: u32, mb: u32| ((stage * 2 + chunk) * m + mb) as usize;
    let mut fwd_in = vec![nan; (pp * 2 * m) as usize];
    let mut bwd_in = vec![nan; (pp * 2 * m) as usize];
    let mut lanes = vec![Lane::default(); pp as usize];
    let mut next = vec![0usize; pp as usize];
    let mut held: Vec<Vec<Held>> = vec![Vec::new(); pp as usize];
    // Per stage: when its stream towards the next and the previous stage is free.
    let mut send_free = vec![[0.0f64; 2]; pp as usize];
    let mut weights = vec![Vec::new(); pp as usize];
    // Per stage and chunk: whether its first forward has run.
    let mut started = vec![[false; 2]; pp as usize];
    let mut in_pair = vec![false; pp as usize];
    let place = |stage: u32, chunk: u32| pipeline::place(kind, stage, chunk, pp, 2);
    let fwd_input = |fwd_in: &[f64], stage: u32, chunk: u32, mb: u32| {
        if place(stage, chunk).first {
            0.0
        } else {
            fwd_in[idx(stage, chunk, mb)]
        }
    };
    loop {
        let mut progress = false;
        for si in 0..pp {
            let su = si as usize;
            while let Some(&slot) = orders[su].get(next[su]) {
                let i = next[su];
                let at = place(si, slot.chunk);
                // Every input the slot waits for (NaN: not sent yet; `f64::max` would
                // drop it, so the NaN check comes first).
                let mut inputs = [0.0f64; 3];
                if let Some((mb, ch)) = slot.recv_ahead {
                    inputs[0] = fwd_input(&fwd_in, si, ch, mb);
                }
                match slot.pass {
                    Pass::Forward => {
                        inputs[1] = fwd_input(&fwd_in, si, slot.chunk, slot.micro_batch);
                        let pair = orders[su].get(i + 1).filter(|_| slot.paired);
                        if let Some(b) = pair.filter(|b| !place(si, b.chunk).last) {
                            inputs[2] = bwd_in[idx(si, b.chunk, b.micro_batch)];
                        }
                    }
                    Pass::Backward if !at.last => {
                        inputs[1] = bwd_in[idx(si, slot.chunk, slot.micro_batch)];
                    }
                    _ => {}
                }
                if inputs.iter().any(|x| x.is_nan()) {
                    break;
                }
                let ready = inputs.iter().copied().fold(0.0f64, f64::max);
                let lane = &mut lanes[su];
                if ready > lane.c {
                    lane.idle += ready - lane.c;
                    lane.c = ready;
                }
                if slot.paired {
                    in_pair[su] = true;
                }
                let pair_slow = slow.filter(|_| in_pair[su]);
                let piece = &w.pieces[at.piece as usize];
                match slot.pass {
                    Pass::Forward => {
                        // Only a chunk's first forward can wait for a gather.
                        let first = !std::mem::replace(&mut started[su][slot.chunk as usize], true);
                        let g: &[(u64, f64)] = if first { &gates[su] } else { &[] };
                        lane.run(&piece.fwd, pair_slow, g);
                    }
                    Pass::Backward => {
                        lane.run(&piece.bwd, pair_slow, &[]);
                        if in_pair[su] {
                            // The pair ends: what follows waits for its all-to-alls.
                            if lane.q > lane.c {
                                lane.ep += lane.q - lane.c;
                                lane.c = lane.q;
                            }
                            in_pair[su] = false;
                        }
                    }
                    Pass::Weight => {
                        lane.c += w.weight[at.piece as usize];
                        weights[su].push((slot.chunk, lane.c));
                    }
                }
                let sends = match slot.pass {
                    Pass::Forward if !at.last => Some((true, at.vs)),
                    Pass::Backward if !at.first => Some((false, at.vs)),
                    _ => None,
                };
                if let Some((forward, vs)) = sends {
                    held[su].push((i + slot.send_after as usize, forward, slot.micro_batch, vs));
                }
                let due: Vec<Held> = held[su].iter().copied().filter(|h| h.0 <= i).collect();
                held[su].retain(|h| h.0 > i);
                let last = i + 1 == orders[su].len();
                let rest: Vec<Held> = if last {
                    std::mem::take(&mut held[su])
                } else {
                    Vec::new()
                };
                let emit_at = lanes[su].c;
                let mut resume = emit_at;
                for (_, forward, mb, vs) in due.into_iter().chain(rest) {
                    let to_vs = if forward { vs + 1 } else { vs - 1 };
                    let to = pipeline::stage_of(kind, to_vs, pp);
                    let dir = usize::from(to < si);
                    let start = emit_at.max(send_free[su][dir]);
                    let end = start + hop;
                    send_free[su][dir] = end;
                    let arrivals = if forward { &mut fwd_in } else { &mut bwd_in };
                    arrivals[idx(to, to_vs / pp, mb)] = end;
                    resume = resume.max(end);
                }
                if blocking && resume > emit_at {
                    lanes[su].pp += resume - emit_at;
                    lanes[su].c = resume;
                }
                next[su] += 1;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    Walked { lanes, weights }
}

/// One op of a stage's in-order DP stream: a reduction over DP ranks, or the all-reduce
/// with the piece's other copy (`key`: piece and lowest layer), which starts when both
/// holders reach it.
#[derive(Debug, Clone, Copy)]
struct DpOp {
    ready: f64,
    time: f64,
    mirror: Option<(u32, u64)>,
}

/// Runs two mirrored stages' DP streams (`a` and `b` hold the same two pieces) from
/// `free`; returns when each ends. Mirror all-reduces start when both reach the same one.
fn drain_pair(a: &[DpOp], b: &[DpOp], free: [f64; 2]) -> [f64; 2] {
    let (mut i, mut j, mut fa, mut fb) = (0, 0, free[0], free[1]);
    loop {
        while let Some(op) = a.get(i).filter(|o| o.mirror.is_none()) {
            fa = fa.max(op.ready) + op.time;
            i += 1;
        }
        while let Some(op) = b.get(j).filter(|o| o.mirror.is_none()) {
            fb = fb.max(op.ready) + op.time;
            j += 1;
        }
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.mirror == y.mirror => {
                let start = fa.max(fb).max(x.ready).max(y.ready);
                fa = start + x.time;
                fb = start + y.time;
                i += 1;
                j += 1;
            }
            // Issued in different orders (the op graph's mirrored programs do not): each
            // side as if alone.
            (Some(x), _) => {
                fa = fa.max(x.ready) + x.time;
                i += 1;
            }
            (None, Some(y)) => {
                fb = fb.max(y.ready) + y.time;
                j += 1;
            }
            (None, None) => return [fa, fb],
        }
    }
}

/// A bucket of a stage as the DualPipe tail times it, seconds.
#[derive(Debug, Clone, Copy)]
struct TailBucket {
    chunk: u32,
    /// The layer whose first forward waits for its gather ([`NO_LAYER`]: none).
    lowest: u64,
    reduce: f64,
    replica: f64,
    gather: f64,
    mirror: f64,
    /// `(piece, lowest layer)`: what the mirror all-reduce pairs on.
    key: (u32, u64),
}

/// Stage `si`'s buckets with their collectives timed.
fn tail_buckets(ctx: &mut Ctx, si: usize, pp: usize) -> Vec<TailBucket> {
    let inp = ctx.inp;
    let p = inp.parallelism;
    let over_dp = ctx.grid.group_size(GroupMask::DP) > 1;
    let sharded = dp::sharded(p);
    let stage_size = ctx.grid.stage_size();
    let members = [si as u32 * stage_size, (pp - 1 - si) as u32 * stage_size];
    let mut out = Vec::new();
    for b in dp::buckets(&inp, si as u32, Coverage::FAST) {
        let time = |ctx: &mut Ctx, c| if over_dp { ctx.time(c) } else { 0.0 };
        let reduce = time(ctx, dp::grad_reduce(&inp, &b));
        let (gather, replica) = if sharded {
            let ag = time(ctx, dp::param_gather(&inp, &b));
            let ar = dp::replica_reduce(&inp, &b).map_or(0.0, |c| time(ctx, c));
            (ag, ar)
        } else {
            (0.0, 0.0)
        };
        let bytes = dp::mirror_reduce_bytes(&inp, &b);
        let mirror = ctx
            .net
            .collective_time_s(Collective::AllReduce, bytes, &members);
        let piece = pipeline::place(p.schedule, si as u32, b.chunk, pp as u32, 2).piece;
        out.push(TailBucket {
            chunk: b.chunk,
            lowest: b.lowest,
            reduce,
            replica,
            gather,
            mirror,
            key: (piece, b.lowest),
        });
    }
    out
}

/// Fast-mode estimate of a DualPipe step (`pp >= 2`, even).
pub(super) fn estimate(
    ctx: &mut Ctx,
    st: &[Stage],
    comms: &Comms,
    costs: &OpCosts,
) -> FastEstimate {
    let p = &ctx.s.parallelism;
    let pp = st.len();
    let over_dp = ctx.grid.group_size(GroupMask::DP) > 1;
    let every = dp::reduces_every_micro_batch(p);
    let gathers = dp::sharded(p) && !dp::fsdp(p);
    let (at_start, overlap) = (gathers && p.overlap_grad_reduce, p.overlap_grad_reduce);
    let buckets: Vec<Vec<TailBucket>> = (0..pp).map(|si| tail_buckets(ctx, si, pp)).collect();
    // ZeRO-1/2 with overlap: the DP stream starts with the parameter all-gathers, in the
    // order the forwards need them (chunk by chunk, lowest layers first); each gates the
    // first forward of its lowest layer.
    let mut free = vec![0.0f64; pp];
    let mut gates = vec![Vec::new(); pp];
    if at_start {
        for si in 0..pp {
            let mut in_need: Vec<&TailBucket> = buckets[si].iter().collect();
            in_need.sort_by_key(|b| (b.chunk, b.lowest));
            for b in in_need {
                free[si] += b.gather;
                if b.lowest != NO_LAYER {
                    gates[si].push((b.lowest, free[si]));
                }
            }
        }
    }
    let walked = walk(ctx, st, comms, costs, &gates);
    let inp = ctx.inp;
    let mut streams: Vec<Vec<DpOp>> = Vec::with_capacity(pp);
    let mut opt = vec![0.0f64; pp];
    let mut after_opt = vec![0.0f64; pp];
    for si in 0..pp {
        let local_buckets = dp::buckets(&inp, si as u32, Coverage::FAST);
        let local = optimizer::local_params(&inp, &local_buckets);
        opt[si] = secs(optimizer::step_time(&inp, local, Coverage::FAST));
        if gathers && !overlap {
            after_opt[si] = buckets[si].iter().map(|b| b.gather).sum();
        }
        // A bucket's reduction over DP (and, with the step's last one, the replica
        // all-reduce of hybrid sharding and the all-reduce with the piece's other copy).
        let dp_ops = |ready: f64, b: &TailBucket, last: bool| {
            let mut v = Vec::new();
            if over_dp {
                let time = b.reduce + if last { b.replica } else { 0.0 };
                v.push(DpOp {
                    ready,
                    time,
                    mirror: None,
                });
            }
            if last {
                v.push(DpOp {
                    ready,
                    time: b.mirror,
                    mirror: Some(b.key),
                });
            }
            v
        };
        let mut ops = Vec::new();
        if overlap {
            let ws = &walked.weights[si];
            for (k, &(chunk, end)) in ws.iter().enumerate() {
                let last = !ws[k + 1..].iter().any(|w| w.0 == chunk);
                if last || every {
                    for b in buckets[si].iter().filter(|b| b.chunk == chunk) {
                        ops.extend(dp_ops(end, b, last));
                    }
                }
            }
        } else {
            let mut in_order: Vec<&TailBucket> = buckets[si].iter().collect();
            in_order.sort_by_key(|b| b.key.0);
            for b in in_order {
                ops.extend(dp_ops(walked.lanes[si].c, b, true));
            }
        }
        streams.push(ops);
    }
    let mut dp_end = vec![0.0f64; pp];
    for si in 0..pp / 2 {
        let partner = pp - 1 - si;
        let [a, b] = drain_pair(&streams[si], &streams[partner], [free[si], free[partner]]);
        dp_end[si] = a;
        dp_end[partner] = b;
    }
    let (mut end, mut crit) = (0.0f64, 0usize);
    for si in 0..pp {
        let e = dp_end[si].max(walked.lanes[si].c) + opt[si] + after_opt[si];
        if e > end {
            end = e;
            crit = si;
        }
    }
    let lane = &walked.lanes[crit];
    let (tokens_per_s, mfu) = super::rates(ctx, end);
    FastEstimate {
        step_time_s: end,
        tokens_per_s,
        mfu,
        bubble_s: lane.idle,
        tp_exposed_s: lane.tp,
        ep_exposed_s: lane.ep,
        pp_exposed_s: lane.pp,
        dp_exposed_s: (end - opt[crit] - lane.c).max(0.0),
        optimizer_s: opt[crit],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `p` balanced pieces (forward `f`, input-gradient `b`, weight `w` ns) with
    /// free communication; returns every stage's (idle, end), seconds.
    fn balanced(p: u32, m: u32, (f, b, w): (Nanos, Nanos, Nanos)) -> Vec<(f64, f64)> {
        let pieces: Vec<PieceOps> = (0..p)
            .map(|_| PieceOps {
                fwd: vec![Op::Block(f)],
                bwd: vec![Op::Block(b)],
            })
            .collect();
        let weight = vec![secs(w); p as usize];
        let gates = vec![Vec::new(); p as usize];
        let walked = walk_orders(&WalkInputs {
            pp: p,
            m,
            pieces: &pieces,
            weight: &weight,
            slow: None,
            hop: 0.0,
            blocking: false,
            gates: &gates,
        });
        walked.lanes.iter().map(|l| (l.idle, l.c)).collect()
    }

    fn close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= 1e-12 + 1e-9 * want.abs(),
            "{what}: {got} vs {want}"
        );
    }

    /// DualPipe's bubble by hand, against the `deepseek-ai/DualPipe` README (commit
    /// 3da1bbe, "Pipeline Bubbles and Memory Usage Comparison"; DeepSeek-V3 Table 2):
    /// `(PP/2 - 1)(F&B + B - 3W)` with `B` the full backward (our input-gradient pass
    /// `b` plus the weight pass `w`) and `F&B` a forward-and-backward pair, which costs
    /// `f + b + w` with free communication. The derivation (`sim::tests::bubbles`,
    /// `dualpipe_bubble_equals_table_2`, which holds the replay to the same): the
    /// pipeline spans `m(f + b + w)` plus `(p/2 - 1)(F&B + f - 2w)`, and every rank idles
    /// that much within the span (the middle ranks partly after their last weight pass),
    /// which is the table's figure exactly when `f = b` (the README's `F = B - W`) and
    /// `(p/2 - 1)(b - f)` under it when `f < b`.
    #[test]
    fn walk_gives_the_dualpipe_bubble() {
        for (p, m) in [(2, 4), (4, 8), (4, 16), (6, 12), (8, 20)] {
            for (f, b, w) in [(6000, 6000, 3000), (6000, 6000, 6000), (5000, 6000, 3000)] {
                let (fs, bs, ws) = (secs(f), secs(b), secs(w));
                let (fb, full) = (fs + bs + ws, bs + ws);
                let half = (p / 2 - 1) as f64;
                let bubble = half * (fb + fs - 2.0 * ws);
                if f == b {
                    close(bubble, half * (fb + full - 3.0 * ws), "the README's form");
                }
                let stages = balanced(p, m, (f, b, w));
                let span = stages.iter().map(|s| s.1).fold(0.0, f64::max);
                close(span, m as f64 * fb + bubble, &format!("p={p} m={m} span"));
                // Idle over the span: waiting for inputs, and after its last pass.
                for (stage, (idle, end)) in stages.into_iter().enumerate() {
                    let what = format!("p={p} m={m} f={f} b={b} w={w} stage {stage}");
                    close(idle + span - end, bubble, &what);
                }
            }
        }
    }
}
