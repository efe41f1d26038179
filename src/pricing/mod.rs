//! What a plan costs, priced once: the duration of every compute op ([`compute`]), what
//! every collective moves and over which group ([`collectives`] for TP, CP, EP and PP,
//! [`dp`] for data parallelism and ZeRO), the optimizer step ([`optimizer`]), parameters
//! and their bytes ([`params`]) and the memory of every rank ([`memory`]).
//!
//! Two consumers compose these prices: the op-graph builder (`schedule`), which places
//! them as ops on streams for the engine to replay, and fast mode (`sweep::fast`), which
//! composes them into a closed-form critical path. A new mechanism is priced here, once,
//! and both see it. This module must not build graphs, time collectives (the network
//! does) or decide what runs when and what overlaps what; it sits below `schedule` and
//! `sweep` and imports neither.

pub mod collectives;
pub mod compute;
pub mod dp;
pub mod inputs;
pub mod memory;
pub mod optimizer;
pub mod params;

pub use compute::{ColumnGemms, LayerBackward, LayerCosts, OpCosts};
pub use inputs::StepInputs;

use crate::plan::GroupMask;
use crate::vocab::Collective;

/// One collective as priced: what it does, over which process group, and how many bytes
/// each rank contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectiveCost {
    pub collective: Collective,
    pub group: GroupMask,
    pub bytes: u64,
}

/// The mechanisms a consumer prices. The op-graph builder prices every one
/// ([`Coverage::FULL`]); fast mode still leaves some out ([`Coverage::FAST`]), known gaps
/// kept as they were so that moving the pricing here changed no result. Closing one is a
/// change of one flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// LoRA/QLoRA: only adapters receive gradients (buckets, optimizer), embeddings are
    /// frozen, and ZeRO-3 gathers frozen weights in their stored precision (NF4).
    pub adapters: bool,
    /// `offload_optimizer`: the step moves gradients and weights over PCIe and runs on the
    /// CPU. (`offload_params`' PCIe copies before ZeRO-3 gathers are priced for both.)
    pub offload: bool,
    /// All-to-all bytes sized for the hottest EP rank (routing imbalance).
    pub routing_imbalance: bool,
}

impl Coverage {
    pub const FULL: Coverage = Coverage {
        adapters: true,
        offload: true,
        routing_imbalance: true,
    };

    /// What fast mode prices today.
    pub const FAST: Coverage = Coverage {
        adapters: false,
        offload: false,
        routing_imbalance: true,
    };
}
