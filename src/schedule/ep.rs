//! Expert parallelism in the op graph: the dispatch all-to-all before an MoE block and the
//! combine after it, chained on the TP/EP stream (every rank waits for the most loaded
//! one).
//!
//! Must not price: what each all-to-all moves comes from [`crate::pricing::collectives`].

use super::builder::{Builder, StageBuilder};
use super::graph::Category;
use super::pipeline::Slot;
use crate::pricing::{Coverage, collectives};

impl Builder<'_> {
    fn moe_dispatch(&mut self, sb: &mut StageBuilder, slot: Slot, label: &'static str) {
        if let Some(a2a) = collectives::ep_all_to_all(&self.inp, Coverage::FULL) {
            self.chained_collective(sb, (a2a, Category::Ep), slot, label);
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
