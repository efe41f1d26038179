//! The words every layer shares: what a collective does ([`Collective`]) and what a span
//! of a rank's time counts as ([`Category`]).
//!
//! It sits below both `network` (which times collectives and labels link traffic) and
//! `schedule` (which builds ops out of them), so neither has to import the other. It holds
//! names and labels only: no pricing, no graph.

use serde::Serialize;

/// What an op's time counts as in the step breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[repr(u8)]
pub enum Category {
    Forward = 0,
    Backward = 1,
    /// Weight-gradient pass split off backward by zero-bubble schedules.
    BackwardWeight = 2,
    Recompute = 3,
    Optimizer = 4,
    Tp = 5,
    Cp = 6,
    Ep = 7,
    Pp = 8,
    Dp = 9,
}

pub const CATEGORIES: usize = 10;

impl Category {
    pub const ALL: [Category; CATEGORIES] = [
        Category::Forward,
        Category::Backward,
        Category::BackwardWeight,
        Category::Recompute,
        Category::Optimizer,
        Category::Tp,
        Category::Cp,
        Category::Ep,
        Category::Pp,
        Category::Dp,
    ];

    pub fn is_compute(self) -> bool {
        (self as u8) <= Category::Optimizer as u8
    }

    /// Forward and backward passes of micro-batches: the work a pipeline bubble is
    /// measured against.
    pub fn is_pipeline_compute(self) -> bool {
        matches!(
            self,
            Category::Forward | Category::Backward | Category::BackwardWeight | Category::Recompute
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Category::Forward => "forward",
            Category::Backward => "backward",
            Category::BackwardWeight => "backward_weight",
            Category::Recompute => "recompute",
            Category::Optimizer => "optimizer",
            Category::Tp => "tp_comm",
            Category::Cp => "cp_comm",
            Category::Ep => "ep_comm",
            Category::Pp => "pp_comm",
            Category::Dp => "dp_comm",
        }
    }
}

/// The collective algorithm family a comm op performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Collective {
    AllReduce,
    AllGather,
    ReduceScatter,
    AllToAll,
    /// Point-to-point: member 0 sends `bytes` to member 1; over a larger group, a ring
    /// shift in which every member sends `bytes` to the next (context-parallel K/V).
    SendRecv,
}

impl Collective {
    pub const ALL: [Collective; 5] = [
        Collective::AllReduce,
        Collective::AllGather,
        Collective::ReduceScatter,
        Collective::AllToAll,
        Collective::SendRecv,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Collective::AllReduce => "all-reduce",
            Collective::AllGather => "all-gather",
            Collective::ReduceScatter => "reduce-scatter",
            Collective::AllToAll => "all-to-all",
            Collective::SendRecv => "send/recv",
        }
    }
}

/// A set of collective kinds: what a group of ranks is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CollectiveSet(u8);

impl CollectiveSet {
    /// Every kind.
    pub const ALL: CollectiveSet = CollectiveSet((1 << Collective::ALL.len()) - 1);

    /// This set and `c`.
    #[must_use]
    pub fn with(self, c: Collective) -> Self {
        CollectiveSet(self.0 | 1 << c as u8)
    }

    pub fn contains(self, c: Collective) -> bool {
        self.0 & 1 << c as u8 != 0
    }

    /// The kinds in the set, in [`Collective::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Collective> {
        Collective::ALL
            .into_iter()
            .filter(move |&c| self.contains(c))
    }

    /// One bit per kind, as in [`Collective::ALL`].
    pub fn bits(self) -> u8 {
        self.0
    }
}
