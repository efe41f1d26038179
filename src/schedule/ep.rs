//! Expert parallelism in the op graph: the dispatch all-to-all before an MoE block and the
//! combine after it, chained on the TP/EP stream (every rank waits for the most loaded
//! one); inside a DualPipe forward-and-backward chunk pair they run under the other
//! micro-batch's compute instead, and the pair's sends wait for them (DeepSeek-V3 §3.2.1).
//!
//! Must not price: what each all-to-all moves comes from [`crate::pricing::collectives`].

use super::builder::{Builder, StageBuilder};
use super::graph::{Category, Stream};
use super::pipeline::Slot;
use crate::pricing::{Coverage, collectives};

impl Builder<'_> {
    fn moe_dispatch(&mut self, sb: &mut StageBuilder, slot: Slot, label: &'static str) {
        let Some(a2a) = collectives::ep_all_to_all(&self.inp, Coverage::FULL) else {
            return;
        };
        if self.pair_comms.is_none() {
            self.chained_collective(sb, (a2a, Category::Ep), slot, label);
            return;
        }
        // Inside a DualPipe chunk pair: the all-to-all follows the compute that produced
        // its tokens, and the chain goes on with the other micro-batch's work.
        let comm = self.priced_comm(a2a, Category::Ep);
        let mut deps: Vec<_> = sb.frontier.into_iter().collect();
        deps.extend(sb.also_wait_for.iter().copied());
        let n = self.comm_op(sb, comm, Stream::Tp, slot, label, &deps);
        if let Some(c) = self.pair_comms.as_mut() {
            c.push(n);
        }
    }

    /// Runs `block` (an MLP block) between the MoE dispatch and combine all-to-alls when
    /// `moe`, else alone.
    pub(super) fn around_moe<R>(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        moe: bool,
        block: impl FnOnce(&mut Self, &mut StageBuilder) -> R,
    ) -> R {
        if moe {
            self.moe_dispatch(sb, slot, "ep dispatch");
        }
        let r = block(self, sb);
        if moe {
            self.moe_dispatch(sb, slot, "ep combine");
        }
        r
    }
}
