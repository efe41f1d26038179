//! Moving bytes between GPUs: the interface the engine times collectives through, and its
//! implementations.
//!
//! The engine hands a ready collective (all members arrived) to a [`Network`] as a
//! [`Transfer`]; the network answers with its completion time, or later through
//! [`Network::advance`] when concurrent traffic shares links. [`analytic`] is the
//! closed-form, contention-free model (alpha-beta per algorithm, as nccl-tests reports it);
//! [`contention::FlowNetwork`] is the detailed model: collectives decomposed into flows
//! ([`collectives`]) over routed paths ([`topology`], [`routing`]) sharing links max-min
//! fairly ([`flows`]), with NCCL's algorithm and protocol choice ([`nccl`]) and per-link
//! statistics ([`links`], [`heatmap`]) and link use over time ([`timeseries`]). A scenario picks one through its `network:` section
//! ([`spec::NetworkSpec`]); [`spec::AnyNetwork`] runs either.

pub mod analytic;
pub mod collectives;
pub mod contention;
pub mod flows;
pub mod heatmap;
pub mod links;
pub mod nccl;
pub mod routing;
pub mod spec;
pub mod timeseries;
pub mod topology;

pub use analytic::AnalyticNetwork;
pub use contention::{FlowNetwork, NetworkSettings};
pub use nccl::{Algorithm, AlgorithmChoice, Protocol};
pub use routing::{Ecmp, Routing};
pub use spec::{AnyNetwork, NetworkMode, NetworkSpec};
pub use topology::Topology;

use crate::units::Nanos;
use crate::vocab::{Category, Collective, CollectiveSet};

/// One collective instance ready to run.
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    /// Identifies the instance when it completes.
    pub id: u64,
    pub collective: Collective,
    pub bytes: u64,
    /// Member ranks (= GPU indices), in group order; `[sender, receiver]` for send/recv.
    pub members: &'a [u32],
    pub category: Category,
}

/// When a transfer finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Known now: no other traffic can change it.
    At(Nanos),
    /// Reported later by [`Network::advance`].
    Pending,
}

/// A model of the cluster's interconnect.
pub trait Network {
    /// Starts a transfer at `now`.
    fn begin(&mut self, now: Nanos, transfer: &Transfer<'_>) -> Completion;

    /// Earliest time a pending transfer may complete (or its rates change).
    fn next_event(&self) -> Option<Nanos> {
        None
    }

    /// Advances to `now`, appending the ids of transfers that completed.
    fn advance(&mut self, _now: Nanos, _completed: &mut Vec<u64>) {}

    /// Whether a collective's time depends only on its own members (no contention with other
    /// traffic), so identical data-parallel replicas may be simulated once. Returns the GPUs
    /// whose links differ from the rest (degraded links), or `None` when it cannot fold.
    /// Required (no default), so a wrapper cannot silently turn folding off by forgetting to
    /// delegate it.
    fn folding(&self) -> Option<Vec<u32>>;

    /// Appends to `key` words that identify how this network times a collective over
    /// `members`: two groups with equal keys take equal time for every collective of
    /// `kinds` and every size (the engine passes the kinds a group's comms perform, so a
    /// key need not tell groups apart by algorithms that never run on them).
    /// Folding compares replicas by these keys (a replica placed differently on the fabric,
    /// say across a leaf boundary, is not a stand-in for one that is not), and the engine
    /// reuses a collective's duration for every group with an equal key instead of calling
    /// [`Network::begin`] again. So a network whose `folding` is `Some` must answer `begin`
    /// with `Completion::At(now + d)`, `d` a function of the collective, its size and this
    /// key alone, and nothing else may depend on the calls. Only called when
    /// [`Network::folding`] is `Some`.
    fn group_key(&mut self, members: &[u32], kinds: CollectiveSet, key: &mut Vec<u64>);
}
