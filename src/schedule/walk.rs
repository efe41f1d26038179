//! The per-slot walk of one stage: its slots in schedule order ([`pipeline::stage_order`]),
//! each forward, backward or weight pass built in turn (`passes`), the receives a slot
//! waits on early, the sends held until their unit ends ([`Slot::send_after`]), and the
//! gradient reductions each gradient pass triggers (overlapped as each bucket completes,
//! or, for a ZeRO-2/3 micro-batch without overlap, blocking the chain).
//!
//! Must not price anything or decide what a reduction moves (`crate::pricing::dp` does).

use std::collections::{HashMap, VecDeque};

use petgraph::graph::NodeIndex;

use super::builder::{Builder, StageBuilder};
use super::pipeline::{self, Pass, Slot};
use super::pp::PendingSend;
use crate::pricing::dp::{self, Bucket};

/// What the walk over a stage's slots carries from slot to slot.
pub(super) struct Walk {
    /// The first forward op of each layer (parameter gathers at the step start feed it).
    pub(super) first_fwd: HashMap<u64, NodeIndex>,
    /// The op that completes each layer's gradients in the current gradient pass.
    pub(super) grads_done: HashMap<u64, NodeIndex>,
    /// Every gradient reduction issued so far, in issue order.
    pub(super) reduce_ops: Vec<NodeIndex>,
    /// Sends waiting for the end of their unit: (index of the slot they follow, send).
    held: Vec<(usize, PendingSend)>,
    /// A ZeRO-2/3 micro-batch's reductions without overlap, issued once its sends are.
    blocking: Vec<Bucket>,
    /// Aligned reduction (`stack.align_grad_reduce`): chunks whose reduction is due after
    /// the gradient pass of this position in the stage's gradient passes.
    aligned_due: Vec<(usize, u32)>,
}

/// Gradient reductions a backward pass issues: its chunk's buckets not issued yet, in
/// backward order.
pub(super) struct PassReduce {
    pub(super) pending: VecDeque<Bucket>,
    /// The chunk's last backward (hybrid sharding then all-reduces shards across replicas).
    pub(super) last: bool,
}

impl Builder<'_> {
    /// Builds every slot of `sb`'s stage in schedule order.
    pub(super) fn walk_stage(&mut self, sb: &mut StageBuilder, buckets: &[Bucket]) -> Walk {
        let order = pipeline::stage_order(self.kind, sb.stage, self.pp, self.m, self.chunks);
        // The pass that completes a chunk's weight gradients triggers its reduction.
        let grads_pass = self.grads_pass();
        let mut last_backward: HashMap<u32, usize> = HashMap::new();
        for (i, s) in order.iter().enumerate() {
            if s.pass == grads_pass {
                last_backward.insert(s.chunk, i);
            }
        }
        let mut walk = Walk {
            first_fwd: HashMap::new(),
            grads_done: HashMap::new(),
            reduce_ops: Vec::new(),
            held: Vec::new(),
            blocking: Vec::new(),
            aligned_due: Vec::new(),
        };
        let aligned = self.aligned(sb.stage);
        let mut grads_seen = 0usize;
        for (i, &slot) in order.iter().enumerate() {
            if let Some((mb, chunk)) = slot.recv_ahead {
                self.wait_for_forward_input(sb, mb, chunk);
            }
            let send = match slot.pass {
                Pass::Forward => {
                    if slot.paired {
                        self.wait_for_pair(sb, order.get(i + 1));
                        if self.overlap_slowdown.is_some() {
                            self.pair_comms = Some(Vec::new());
                        }
                    }
                    self.forward_slot(sb, slot, &mut walk.first_fwd)
                }
                Pass::Backward | Pass::Weight => {
                    let last = last_backward.get(&slot.chunk) == Some(&i);
                    let send = self.gradient_slot(sb, slot, last, buckets, &mut walk);
                    if aligned && slot.pass == grads_pass {
                        if last {
                            // Megatron-Core: `pipeline rank` gradient passes later.
                            let due = grads_seen + sb.stage as usize;
                            walk.aligned_due.push((due, slot.chunk));
                        }
                        self.reduce_aligned(sb, buckets, &mut walk, Some(grads_seen));
                        grads_seen += 1;
                    }
                    // The pair ends: what follows (its sends first) waits for its
                    // all-to-alls.
                    if let Some(comms) = self.pair_comms.take() {
                        sb.also_wait_for.extend(comms);
                    }
                    send
                }
            };
            self.hold_send(sb, &mut walk, i, slot, send);
            // After the pass's sends: the chain, not the send, waits for these.
            if !walk.blocking.is_empty() {
                self.blocking_reduce(sb, &walk.blocking);
                walk.blocking.clear();
            }
        }
        let held = std::mem::take(&mut walk.held);
        self.emit_sends(sb, held.into_iter().map(|(_, s)| s));
        // What is due after the last gradient pass: after the walk, as Megatron-Core
        // launches "any remaining grad reductions".
        self.reduce_aligned(sb, buckets, &mut walk, None);
        walk
    }

    /// Whether stage `stage`'s reductions follow Megatron-Core's aligned schedule
    /// ([`dp::aligned_reduce`]) rather than bucket by bucket as each completes: every
    /// stage but the first of a non-interleaved pipeline, and every stage interleaved
    /// (schedules.py, core_r0.8.0: the first stage of a 1F1B pipeline reduces during its
    /// last backward, 1487-1489; the others after it, 1502-1506; interleaved, after the
    /// backward `pipeline rank` passes past a chunk's last, 797-805, and the rest after
    /// the last backward, 1120-1126).
    fn aligned(&self, stage: u32) -> bool {
        dp::aligned_reduce(self.inp.parallelism) && (self.chunks > 1 || stage > 0)
    }

    /// Aligned reduction: reduces, all buckets of a chunk at once once the chain's current
    /// op is done, the chunks due by gradient position `upto` (every one left if `None`).
    fn reduce_aligned(
        &mut self,
        sb: &mut StageBuilder,
        buckets: &[Bucket],
        walk: &mut Walk,
        upto: Option<usize>,
    ) {
        let (due, later): (Vec<_>, Vec<_>) = walk
            .aligned_due
            .drain(..)
            .partition(|&(d, _)| upto.is_none_or(|u| d <= u));
        walk.aligned_due = later;
        let dep = sb.frontier;
        for (_, chunk) in due {
            for b in buckets.iter().filter(|b| b.chunk == chunk) {
                let r = self.reduce_bucket(sb, b, true, dep);
                walk.reduce_ops.push(r);
            }
        }
    }

    /// The pass that completes a chunk's weight gradients: the weight pass under
    /// zero-bubble schedules, else the backward.
    fn grads_pass(&self) -> Pass {
        if self.split {
            Pass::Weight
        } else {
            Pass::Backward
        }
    }

    /// Holds a pass's send until its unit ends and emits the sends now due.
    fn hold_send(
        &mut self,
        sb: &mut StageBuilder,
        walk: &mut Walk,
        i: usize,
        slot: Slot,
        send: Option<PendingSend>,
    ) {
        walk.held
            .extend(send.map(|s| (i + slot.send_after as usize, s)));
        if walk.held.iter().any(|&(due, _)| due <= i) {
            let (due, later): (Vec<_>, Vec<_>) = walk.held.drain(..).partition(|&(d, _)| d <= i);
            walk.held = later;
            self.emit_sends(sb, due.into_iter().map(|(_, s)| s));
        }
    }

    /// A backward or weight pass and the gradient reductions it triggers; returns its send.
    fn gradient_slot(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        last: bool,
        buckets: &[Bucket],
        walk: &mut Walk,
    ) -> Option<PendingSend> {
        let par = self.inp.parallelism;
        walk.grads_done.clear();
        let chunk_buckets = buckets.iter().filter(|b| b.chunk == slot.chunk);
        // Under zero-bubble schedules the weight pass completes the gradients, so it, not
        // the input-gradient pass before it, reduces them.
        let every = dp::reduces_every_micro_batch(par) && slot.pass == self.grads_pass();
        let overlapped = self.reduces_gradients()
            && par.overlap_grad_reduce
            && (last || every)
            && !self.aligned(sb.stage);
        let mut pass_reduce = PassReduce {
            pending: if overlapped {
                chunk_buckets.clone().cloned().collect()
            } else {
                VecDeque::new()
            },
            last,
        };
        let send = if slot.pass == Pass::Weight {
            self.weight_slot(sb, slot, &mut walk.grads_done);
            None
        } else {
            self.backward_slot(sb, slot, walk, &mut pass_reduce)
        };
        // The buckets the pass has not issued yet (all of them but under ZeRO-3), as each
        // completes.
        while let Some(b) = pass_reduce.pending.pop_front() {
            let dep = walk.grads_done.get(&b.lowest).copied().or(sb.frontier);
            let r = self.reduce_bucket(sb, &b, last, dep);
            walk.reduce_ops.push(r);
        }
        if !par.overlap_grad_reduce && !last && every {
            walk.blocking.extend(chunk_buckets.cloned());
        }
        send
    }
}
