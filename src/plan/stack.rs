//! The software stack a plan runs on: how the training framework issues its kernels and
//! collectives (`stack:` in a scenario, presets in `data/stacks.yaml`). The fields that
//! duplicate older plan keys (`tp_comm_overlap`, `overlap_grad_reduce`,
//! `pp_comm_overlap`) stay on [`super::ParallelismSpec`], which the mechanisms read;
//! [`StackSpec`] holds the rest and [`ResolvedStack`] is the whole stack as reported.

use serde::{Deserialize, Serialize};

/// Tensor-parallel communication overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TpOverlap {
    /// Every TP collective on the critical path.
    #[default]
    None,
    /// Megatron's asynchronous input-gradient reduction behind the weight-gradient GEMM.
    Backward,
    /// Userbuffers-style overlap of forward and backward (Transformer Engine).
    Full,
}

/// Pipeline point-to-point communication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum P2p {
    /// Sends and receives overlap compute.
    #[default]
    Async,
    /// The stage waits for each send/receive to complete.
    Sync,
    /// Asynchronous under the interleaved schedule, synchronising otherwise: Megatron-Core
    /// turns p2p overlap off without interleaving (megatron/training/arguments.py,
    /// core_r0.8.0: "non-interleaved schedule does not support overlapping p2p
    /// communication", and `batch_p2p_comm` then synchronises).
    InterleavedOnly,
}

/// The dtype gradients are reduced in across data-parallel ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GradReduceDtype {
    /// The training dtype (2 bytes under BF16/FP16/FP8).
    #[default]
    Training,
    /// FP32 (4 bytes per element).
    Fp32,
}

/// ZeRO-3 parameter-gather granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Zero3Gather {
    /// One all-gather per parameter tensor.
    Tensor,
    /// One all-gather per transformer layer (FSDP2 `fully_shard` per block).
    #[default]
    Layer,
    /// Consecutive tensors of a layer coalesced into all-gathers of at least
    /// `bucket_params` parameters (DeepSpeed's `allgather_bucket_size`).
    Bucket,
}

/// ZeRO-3 / FSDP behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zero3Stack {
    pub gather: Zero3Gather,
    /// `gather: bucket`: parameters per coalesced all-gather (0 otherwise).
    pub bucket_params: u64,
    /// Layers whose gathers are issued ahead: the gathers of compute unit `u` (a layer's
    /// pass; in a backward that re-gathers, its recompute and its backward are two units)
    /// start once unit `u - 1 - prefetch` has ended; 0 = each gather waits for the unit
    /// before it, nothing overlaps.
    pub prefetch: u64,
    /// Whether each fetch synchronises the device: a unit's compute also waits for every
    /// data-parallel collective issued before it (reduce-scatters in flight included).
    pub sync_per_gather: bool,
    /// Whether full recomputation gathers the parameters again in backward.
    pub recompute_regathers: bool,
    /// Tensors with fewer parameters stay whole on every rank and are never gathered
    /// (DeepSpeed's `param_persistence_threshold`; 0 = every tensor is sharded).
    pub persist_below: u64,
    /// Host time per gather collective issued, µs, plus `host_us_per_rank` × the ranks
    /// of the shard group; it holds the DP stream ahead of the collective.
    pub host_us: f64,
    pub host_us_per_rank: f64,
}

impl Default for Zero3Stack {
    fn default() -> Self {
        Zero3Stack {
            gather: Zero3Gather::Layer,
            bucket_params: 0,
            prefetch: 1,
            sync_per_gather: false,
            recompute_regathers: false,
            persist_below: 0,
            host_us: 0.0,
            host_us_per_rank: 0.0,
        }
    }
}

/// The stack fields the plan keys do not already hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StackSpec {
    /// The preset the stack started from (`default` when none was named).
    pub preset: String,
    /// Tensor-parallel overlap as resolved; `Full` is mirrored by
    /// [`super::ParallelismSpec::tp_comm_overlap`], which wins when the two disagree (a
    /// plan edited after resolution).
    pub tp_comm_overlap: TpOverlap,
    /// Distributed-optimizer parameter all-gathers overlap the next forward.
    pub overlap_param_gather: bool,
    /// Weight gradients accumulate in the GEMM (`gradient_accumulation_fusion`).
    pub grad_accum_fusion: bool,
    pub grad_reduce_dtype: GradReduceDtype,
    /// Megatron-Core's aligned gradient reduction under pipeline parallelism
    /// (`--no-align-grad-reduce` unset; `--delay-grad-reduce` in r0.8): only the first
    /// stage of a non-interleaved pipeline reduces its buckets during its last backward;
    /// every other stage reduces after its last backward, and under the interleaved
    /// schedule a chunk's buckets are reduced together `pipeline rank` gradient passes
    /// after the chunk's last one, so that all stages launch together
    /// (`pricing::dp::aligned_reduce` says where it acts).
    pub align_grad_reduce: bool,
    /// Dot-product attention in FP8 under FP8 training.
    pub fp8_attention: bool,
    /// `pp_p2p: interleaved-only`: [`super::ParallelismSpec::pp_comm_overlap`] applies
    /// under the interleaved schedule only ([`super::ParallelismSpec::p2p_overlapped`]).
    pub p2p_interleaved_only: bool,
    pub zero3: Zero3Stack,
}

impl Default for StackSpec {
    fn default() -> Self {
        StackSpec {
            preset: "default".into(),
            tp_comm_overlap: TpOverlap::None,
            overlap_param_gather: true,
            grad_accum_fusion: true,
            grad_reduce_dtype: GradReduceDtype::Training,
            align_grad_reduce: false,
            fp8_attention: true,
            p2p_interleaved_only: false,
            zero3: Zero3Stack::default(),
        }
    }
}

/// The whole stack as resolved and reported in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedStack {
    pub preset: String,
    pub tp_comm_overlap: TpOverlap,
    pub overlap_grad_reduce: bool,
    pub overlap_param_gather: bool,
    pub pp_p2p: P2p,
    pub grad_accum_fusion: bool,
    pub grad_reduce_dtype: GradReduceDtype,
    pub align_grad_reduce: bool,
    pub fp8_attention: bool,
    pub zero3: Zero3Stack,
}

impl ResolvedStack {
    pub fn of(p: &super::ParallelismSpec) -> Self {
        let s = &p.stack;
        ResolvedStack {
            preset: s.preset.clone(),
            tp_comm_overlap: p.tp_overlap(),
            overlap_grad_reduce: p.overlap_grad_reduce,
            overlap_param_gather: p.overlap_grad_reduce && s.overlap_param_gather,
            pp_p2p: match (p.pp_comm_overlap, s.p2p_interleaved_only) {
                (false, _) => P2p::Sync,
                (true, true) => P2p::InterleavedOnly,
                (true, false) => P2p::Async,
            },
            grad_accum_fusion: s.grad_accum_fusion,
            grad_reduce_dtype: s.grad_reduce_dtype,
            align_grad_reduce: s.align_grad_reduce,
            fp8_attention: s.fp8_attention,
            zero3: s.zero3.clone(),
        }
    }
}
