//! Context parallelism in the op graph: Megatron-Core's ring attention. The attention
//! compute runs in `cp` equal steps; while step `k` works on the K/V chunk in hand, the
//! next chunk moves one hop around the CP ring (`cp - 1` hops on the TP/CP stream), and
//! step `k + 1` needs step `k` and hop `k`.
//!
//! Must not price: the steps' durations and the K/V bytes come from `crate::pricing`.

use petgraph::graph::NodeIndex;

use super::builder::{Builder, StageBuilder};
use super::graph::{Category, Op, Stream};
use super::pipeline::{Pass, Slot};
use crate::pricing::{collectives, compute};

impl Builder<'_> {
    /// The ring-attention steps of attention op `op` after `deps`; returns the last step.
    pub(super) fn ring_attention(
        &mut self,
        sb: &mut StageBuilder,
        op: Op,
        deps: &[NodeIndex],
        cp: u32,
    ) -> NodeIndex {
        let hop = collectives::cp_ring_step(&self.inp, op.category == Category::Backward);
        let slot = Slot::new(Pass::Forward, op.micro_batch, op.chunk as u32);
        let mut step_deps = deps.to_vec();
        let mut last = None;
        for (k, duration) in compute::ring_steps(op.duration, cp).enumerate() {
            let n = sb.push(
                Op {
                    duration,
                    ..op.clone()
                },
                &step_deps,
            );
            let mut next = vec![n];
            if k as u32 + 1 < cp {
                let c = self.priced_comm(hop, Category::Cp);
                next.push(self.comm_op(sb, c, Stream::Tp, slot, "cp ring k/v", &step_deps));
            }
            step_deps = next;
            last = Some(n);
        }
        last.unwrap_or_else(|| sb.push(op, deps))
    }
}
