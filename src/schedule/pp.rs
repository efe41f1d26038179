//! Pipeline parallelism in the op graph: the p2p sends and receives between adjacent
//! stages at chunk boundaries (four p2p streams, so fills and drains cannot deadlock),
//! sends held until their unit ends and blocking without p2p overlap, and DualPipe's
//! receives posted ahead in each sender's order and early waits on F&B chunks.
//!
//! Must not price: a message's size comes from [`crate::pricing::collectives`].

use petgraph::graph::NodeIndex;

use super::builder::{Builder, StageBuilder};
use super::graph::{Category, Collective, GroupRef, Stream};
use super::pipeline::{self, Pass, Slot};
use crate::plan::ScheduleKind;
use crate::pricing::collectives;

/// A pipeline send waiting for the end of its slot's unit ([`Slot::send_after`]).
pub(super) struct PendingSend {
    comm: u32,
    stream: Stream,
    slot: Slot,
    label: &'static str,
}

/// `(send, receive)` streams of a pipeline pass: forward activations flow to the next
/// stage and gradients to the previous one, the other way round on a reversed chunk.
pub(super) fn p2p_streams(reversed: bool, forward: bool) -> (Stream, Stream) {
    if reversed == forward {
        (Stream::SendPrev, Stream::RecvNext)
    } else {
        (Stream::SendNext, Stream::RecvPrev)
    }
}

fn recv_label(forward: bool) -> &'static str {
    if forward {
        "pp recv fwd"
    } else {
        "pp recv bwd"
    }
}

impl Builder<'_> {
    /// Without p2p overlap (Megatron's default `batch_isend_irecv` + wait), compute resumes
    /// only once the send has completed; receives are still posted early, as Megatron
    /// batches them with the sends, so this cannot deadlock.
    fn block_on_send(&self, sb: &mut StageBuilder, send: NodeIndex) {
        if !self.inp.parallelism.p2p_overlapped() {
            sb.also_wait_for.push(send);
        }
    }

    /// The comm of the pipeline hop `(forward?, micro-batch, from virtual stage)`.
    fn p2p_comm(&mut self, forward: bool, mb: u32, from_vs: u32) -> u32 {
        if let Some(&c) = self.p2p.get(&(forward, mb, from_vs)) {
            return c;
        }
        let to_vs = if forward { from_vs + 1 } else { from_vs - 1 };
        let group = GroupRef::P2p {
            from: pipeline::stage_of(self.kind, from_vs, self.pp),
            to: pipeline::stage_of(self.kind, to_vs, self.pp),
        };
        let bytes = collectives::pp_p2p_bytes(&self.inp);
        let c = self.new_comm(Collective::SendRecv, group, bytes, Category::Pp);
        self.p2p.insert((forward, mb, from_vs), c);
        c
    }

    /// The send that ends a pass of `slot` through virtual stage `vs`, on `stream`.
    pub(super) fn pending_send(
        &mut self,
        forward: bool,
        slot: Slot,
        vs: u32,
        stream: Stream,
    ) -> PendingSend {
        PendingSend {
            comm: self.p2p_comm(forward, slot.micro_batch, vs),
            stream,
            slot,
            label: if forward {
                "pp send fwd"
            } else {
                "pp send bwd"
            },
        }
    }

    /// The receive of p2p hop `key` (`(forward?, micro-batch, from virtual stage)`): the
    /// one posted ahead, or a new op with no dependencies.
    pub(super) fn recv_op(
        &mut self,
        sb: &mut StageBuilder,
        key: (bool, u32, u32),
        stream: Stream,
        slot: Slot,
    ) -> NodeIndex {
        if let Some(&r) = self.posted.get(&key) {
            return r;
        }
        let c = self.p2p_comm(key.0, key.1, key.2);
        self.comm_op(sb, c, stream, slot, recv_label(key.0), &[])
    }

    /// DualPipe: posts every receive of `sb`'s stage up front, on each stream in the order
    /// its sender sends. Each physical p2p stream then carries the messages of one
    /// neighbour in one order on both ends, although the two directions' activations and
    /// gradients share it in an order the receiver consumes differently (in-order streams
    /// would otherwise deadlock).
    pub(super) fn post_receives(&mut self, sb: &mut StageBuilder) {
        self.posted.clear();
        if self.kind != ScheduleKind::Dualpipe {
            return;
        }
        let stage = sb.stage;
        for sender in (0..self.pp).filter(|&st| st.abs_diff(stage) == 1) {
            let order = pipeline::stage_order(self.kind, sender, self.pp, self.m, self.chunks);
            for s in order {
                let at = self.place(sender, s.chunk);
                let (forward, to_vs) = match s.pass {
                    Pass::Forward if !at.last => (true, at.vs + 1),
                    Pass::Backward if !at.first => (false, at.vs - 1),
                    _ => continue,
                };
                if pipeline::stage_of(self.kind, to_vs, self.pp) != sb.stage {
                    continue;
                }
                let mine = self.place(sb.stage, to_vs / self.pp);
                let recv = p2p_streams(mine.reversed, forward).1;
                let key = (forward, s.micro_batch, at.vs);
                let slot = Slot {
                    chunk: to_vs / self.pp,
                    paired: false,
                    send_after: 0,
                    recv_ahead: None,
                    ..s
                };
                let c = self.p2p_comm(forward, s.micro_batch, at.vs);
                let r = self.comm_op(sb, c, recv, slot, recv_label(forward), &[]);
                self.posted.insert(key, r);
            }
        }
    }

    /// The next chain op also waits for the input of the forward pass of micro-batch `mb`
    /// through `chunk` ([`Slot::recv_ahead`]).
    pub(super) fn wait_for_forward_input(&mut self, sb: &mut StageBuilder, mb: u32, chunk: u32) {
        let at = self.place(sb.stage, chunk);
        if !at.first {
            let recv = p2p_streams(at.reversed, true).1;
            let slot = Slot::new(Pass::Forward, mb, chunk);
            let r = self.recv_op(sb, (true, mb, at.vs - 1), recv, slot);
            sb.also_wait_for.push(r);
        }
    }

    /// An overlapped F&B chunk starts once the backward's gradient has arrived too.
    pub(super) fn wait_for_pair(&mut self, sb: &mut StageBuilder, backward: Option<&Slot>) {
        let Some(b) = backward else { return };
        let at = self.place(sb.stage, b.chunk);
        if !at.last {
            let recv = p2p_streams(at.reversed, false).1;
            let r = self.recv_op(sb, (false, b.micro_batch, at.vs + 1), recv, *b);
            sb.also_wait_for.push(r);
        }
    }

    /// Emits `sends` after the chain so far, in order.
    pub(super) fn emit_sends(
        &mut self,
        sb: &mut StageBuilder,
        sends: impl IntoIterator<Item = PendingSend>,
    ) {
        let mut deps: Option<Vec<NodeIndex>> = None;
        for s in sends {
            let deps = deps.get_or_insert_with(|| sb.chain_deps());
            let n = self.comm_op(sb, s.comm, s.stream, s.slot, s.label, deps);
            self.block_on_send(sb, n);
        }
    }
}
