//! The parallelism plan: degrees, micro-batching, and the map between ranks, their
//! (tp, cp, ep, edp, pp) coordinates, process groups and physical GPUs.
//!
//! Hybrid sharding (`zero_group`) splits the data-parallel axis into an inner shard-group
//! axis ([`Axis::EdpInner`]) and the replica groups (`Edp`), addressed by
//! [`GroupMask::DP_SHARD`] and [`GroupMask::DP_REPLICA`] ([`ZeroGroups`] picks them); the
//! inner axis has size 1 otherwise, so every other group and its index are unchanged.
//!
//! Rank order follows Megatron-LM: TP fastest, then CP, then DP (whose fastest part is EP),
//! then PP. So a TP group is 8 consecutive ranks that share a node, and a pipeline stage
//! is a contiguous block of `tp * cp * dp` ranks. Rank `r` runs on GPU `r` (node
//! `r / gpus_per_node`). Pure arithmetic; no allocation on the hot lookups.

pub mod pipeline;
pub mod stack;

pub use stack::{ResolvedStack, StackSpec};

use serde::{Deserialize, Serialize};

use crate::hardware::Precision;

/// Pipeline schedule of the forward and backward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    Gpipe,
    #[default]
    #[serde(rename = "1f1b")]
    OneFOneB,
    Interleaved,
    ZbH1,
    ZbH2,
    Dualpipe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Recompute {
    None,
    #[default]
    Selective,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    #[default]
    Adam,
    /// AdamW with BF16 first and second moments (DeepSeek-V3, arXiv 2412.19437 §3.3.3:
    /// "we adopt the BF16 data format instead of FP32 to track the first and second
    /// moments"), FP32 master weights kept.
    #[serde(rename = "adam-bf16")]
    AdamBf16,
    Adam8bit,
    Sgd,
}

/// What is trained: every weight, or low-rank adapters on frozen base weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Finetune {
    /// Full training (pre-training or full fine-tuning).
    #[default]
    Full,
    /// LoRA (Hu et al., arXiv 2106.09685): frozen 16-bit base weights, trainable rank-`r`
    /// adapters on the attention and MLP projections.
    Lora,
    /// QLoRA (Dettmers et al., arXiv 2305.14314): as LoRA with 4-bit NF4 base weights
    /// (double-quantised constants) dequantised to 16 bits before each GEMM.
    Qlora,
}

impl Finetune {
    pub fn is_adapter(self) -> bool {
        self != Finetune::Full
    }
}

/// What one optimizer step processes and at which precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSpec {
    pub seq_len: u64,
    /// Sequences per optimizer step.
    pub global_batch: u64,
    /// Sequences per micro-batch.
    pub micro_batch: u64,
    pub precision: Precision,
    pub recompute: Recompute,
    pub optimizer: Optimizer,
    pub flash_attention: bool,
    /// Full training or LoRA / QLoRA fine-tuning.
    #[serde(default)]
    pub finetune: Finetune,
    /// Rank `r` of the LoRA adapters.
    #[serde(default = "default_lora_rank")]
    pub lora_rank: u64,
    /// Optimizer state (fp32 master weights and moments) lives in host memory; the step
    /// runs on the CPU, gradients go down and updated weights come back over PCIe.
    #[serde(default)]
    pub offload_optimizer: bool,
    /// Parameters live in host memory too (ZeRO-Infinity style, with ZeRO-3): each layer's
    /// weights are fetched over PCIe before use.
    #[serde(default)]
    pub offload_params: bool,
    /// Per-GPU memory kept free for the CUDA context, workspaces and fragmentation, GB.
    #[serde(default = "default_memory_reserve_gb")]
    pub memory_reserve_gb: f64,
    /// DeepSeek-V3 §3.2.3: every RMSNorm recomputed in backward, so norm outputs are not
    /// stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recompute_norms: bool,
    /// DeepSeek-V3 §3.2.3: MLA's up-projections recomputed in backward from the stored
    /// latents, so the queries, keys and values are not stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recompute_mla_up_proj: bool,
    /// DeepSeek-V3 §3.3.3: Linear inputs cached in FP8 (the attention output projection's
    /// in E5M6), SwiGLU inputs in FP8 with its output recomputed in backward.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fp8_activations: bool,
}

fn default_lora_rank() -> u64 {
    16
}

fn default_memory_reserve_gb() -> f64 {
    2.0
}

impl Default for TrainingSpec {
    fn default() -> Self {
        TrainingSpec {
            seq_len: 4096,
            global_batch: 1024,
            micro_batch: 1,
            precision: Precision::Bf16,
            recompute: Recompute::Selective,
            optimizer: Optimizer::Adam,
            flash_attention: true,
            finetune: Finetune::Full,
            lora_rank: default_lora_rank(),
            offload_optimizer: false,
            offload_params: false,
            memory_reserve_gb: default_memory_reserve_gb(),
            recompute_norms: false,
            recompute_mla_up_proj: false,
            fp8_activations: false,
        }
    }
}

/// How the model is split across GPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelismSpec {
    pub tp: u64,
    pub pp: u64,
    pub dp: u64,
    pub ep: u64,
    pub cp: u64,
    pub sequence_parallel: bool,
    pub schedule: ScheduleKind,
    pub virtual_stages: u64,
    pub zero: u8,
    pub overlap_grad_reduce: bool,
    /// Overlap TP collectives with the GEMMs they feed (Transformer Engine userbuffers).
    pub tp_comm_overlap: bool,
    /// Overlap pipeline sends with compute (Megatron-Core `--overlap-p2p-comm`); without it
    /// the sending stage waits for each send to complete.
    pub pp_comm_overlap: bool,
    /// Layers per pipeline stage (`pp` entries; under the interleaved schedule split evenly
    /// over the stage's chunks) or per virtual stage (`pp * v` entries, in virtual-stage
    /// order `chunk * pp + stage`); `None` derives the split from `split`.
    pub stage_layers: Option<Vec<u64>>,
    /// Megatron's uneven-split and slot switches (used when `stage_layers` is `None`).
    #[serde(default)]
    pub split: PipelineSplit,
    /// Parameters per data-parallel gradient bucket (Megatron default 40M).
    pub bucket_params: u64,
    /// Hybrid sharding (FSDP `HYBRID_SHARD`, ZeRO++ hpZ): ZeRO shards over groups of this
    /// many data-parallel ranks and replicates across groups; `None` shards over all of DP.
    #[serde(default)]
    pub zero_group: Option<u64>,
    /// The software stack's remaining fields (`stack:`).
    #[serde(default)]
    pub stack: StackSpec,
    /// DualPipe with expert parallelism: share of the GPU's SMs given to the
    /// communication kernels that overlap a chunk pair's all-to-alls with its compute;
    /// `None` is DeepSeek-V3's 20 of 132 (arXiv 2412.19437 §3.2.2).
    #[serde(default)]
    pub overlap_sm_share: Option<f64>,
}

impl Default for ParallelismSpec {
    fn default() -> Self {
        ParallelismSpec {
            tp: 1,
            pp: 1,
            dp: 1,
            ep: 1,
            cp: 1,
            sequence_parallel: true,
            schedule: ScheduleKind::OneFOneB,
            virtual_stages: 1,
            zero: 1,
            overlap_grad_reduce: true,
            tp_comm_overlap: false,
            pp_comm_overlap: true,
            stage_layers: None,
            split: PipelineSplit::default(),
            bucket_params: 40_000_000,
            zero_group: None,
            stack: StackSpec::default(),
            overlap_sm_share: None,
        }
    }
}

impl ParallelismSpec {
    pub fn world_size(&self) -> u64 {
        self.tp * self.pp * self.dp * self.cp
    }

    /// Tensor-parallel overlap: `Full` when `tp_comm_overlap` is set, else the stack's
    /// (`None` or Megatron's backward overlap).
    pub fn tp_overlap(&self) -> stack::TpOverlap {
        match (self.tp_comm_overlap, self.stack.tp_comm_overlap) {
            (true, _) => stack::TpOverlap::Full,
            (false, stack::TpOverlap::Backward) => stack::TpOverlap::Backward,
            (false, _) => stack::TpOverlap::None,
        }
    }
}

/// Axes of the rank grid; the discriminant is the axis's bit in a [`GroupMask`], [`ORDER`]
/// their rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Tp = 0,
    Cp = 1,
    Ep = 2,
    /// Data parallel across expert replicas: `dp / ep`; under hybrid sharding
    /// (`zero_group`), across the replica groups only: `dp / zero_group`.
    Edp = 3,
    Pp = 4,
    /// Hybrid sharding: data-parallel ranks inside one shard group, `zero_group / ep`;
    /// size 1 (changing no group or rank) when `zero_group` is not set.
    EdpInner = 5,
}

const AXES: usize = 6;

/// Axes fastest-varying first: the shard-group axis sits inside DP, just below `Edp`.
const ORDER: [usize; AXES] = [
    Axis::Tp as usize,
    Axis::Cp as usize,
    Axis::Ep as usize,
    Axis::EdpInner as usize,
    Axis::Edp as usize,
    Axis::Pp as usize,
];

/// A process group kind: the set of axes its members vary along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct GroupMask(pub u8);

impl GroupMask {
    pub const TP: GroupMask = GroupMask(1 << Axis::Tp as u8);
    pub const CP: GroupMask = GroupMask(1 << Axis::Cp as u8);
    pub const EP: GroupMask = GroupMask(1 << Axis::Ep as u8);
    pub const PP: GroupMask = GroupMask(1 << Axis::Pp as u8);
    /// Dense-gradient data parallel group: DP x CP (Megatron reduces over both).
    pub const DP: GroupMask = GroupMask(Self::DP_SHARD.0 | (1 << Axis::Edp as u8));
    /// Expert-gradient data parallel group.
    pub const EXPERT_DP: GroupMask = GroupMask(Self::EXPERT_DP_SHARD.0 | (1 << Axis::Edp as u8));
    /// Hybrid sharding: the dense shard group (`zero_group` DP ranks, x CP).
    pub const DP_SHARD: GroupMask =
        GroupMask((1 << Axis::Cp as u8) | (1 << Axis::Ep as u8) | (1 << Axis::EdpInner as u8));
    /// Hybrid sharding: the expert shard group.
    pub const EXPERT_DP_SHARD: GroupMask =
        GroupMask((1 << Axis::Cp as u8) | (1 << Axis::EdpInner as u8));
    /// Hybrid sharding: the same shard held by every replica group.
    pub const DP_REPLICA: GroupMask = GroupMask(1 << Axis::Edp as u8);

    fn has(self, axis: usize) -> bool {
        self.0 & (1 << axis) != 0
    }
}

/// The rank grid of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankGrid {
    sizes: [u32; AXES],
    strides: [u32; AXES],
    world: u32,
}

impl RankGrid {
    pub fn new(p: &ParallelismSpec) -> Self {
        let ep = p.ep.max(1);
        let inner = hybrid_shard_ranks(p).map_or(1, |g| g / ep);
        let sizes = [p.tp, p.cp, ep, p.dp / ep / inner, p.pp, inner].map(|v| v.max(1) as u32);
        Self::with_sizes(sizes)
    }

    fn with_sizes(sizes: [u32; AXES]) -> Self {
        let mut strides = [1u32; AXES];
        let mut stride = 1;
        for a in ORDER {
            strides[a] = stride;
            stride *= sizes[a];
        }
        RankGrid {
            sizes,
            strides,
            world: stride,
        }
    }

    pub fn world(&self) -> u32 {
        self.world
    }

    /// Data-parallel replicas of the expert layout (`dp / ep`): the axis replica folding
    /// collapses.
    pub fn replicas(&self) -> u32 {
        self.sizes[Axis::Edp as usize]
    }

    /// The same grid with only `k` data-parallel replicas.
    pub fn with_replicas(&self, k: u32) -> RankGrid {
        let mut sizes = self.sizes;
        sizes[Axis::Edp as usize] = k.max(1);
        Self::with_sizes(sizes)
    }

    /// `rank` of this grid moved to replica `replica` of `other` (same other coordinates).
    pub fn rank_in(&self, rank: u32, other: &RankGrid, replica: u32) -> u32 {
        (0..AXES)
            .map(|a| {
                let c = if a == Axis::Edp as usize {
                    replica
                } else {
                    (rank / self.strides[a]) % self.sizes[a]
                };
                c * other.strides[a]
            })
            .sum()
    }

    /// Whether groups of this kind span data-parallel replicas.
    pub fn spans_replicas(mask: GroupMask) -> bool {
        mask.has(Axis::Edp as usize)
    }

    pub fn coord(&self, rank: u32, axis: Axis) -> u32 {
        let a = axis as usize;
        (rank / self.strides[a]) % self.sizes[a]
    }

    pub fn stage_of(&self, rank: u32) -> u32 {
        self.coord(rank, Axis::Pp)
    }

    /// Ranks per pipeline stage.
    pub fn stage_size(&self) -> u32 {
        self.strides[Axis::Pp as usize]
    }

    pub fn group_size(&self, mask: GroupMask) -> u32 {
        (0..AXES)
            .filter(|&a| mask.has(a))
            .map(|a| self.sizes[a])
            .product()
    }

    pub fn group_count(&self, mask: GroupMask) -> u32 {
        self.world / self.group_size(mask)
    }

    /// Index of `rank`'s group of this kind, in `0..group_count(mask)`.
    pub fn group_index(&self, rank: u32, mask: GroupMask) -> u32 {
        let mut index = 0;
        let mut radix = 1;
        for a in ORDER {
            if !mask.has(a) {
                index += ((rank / self.strides[a]) % self.sizes[a]) * radix;
                radix *= self.sizes[a];
            }
        }
        index
    }

    /// Position of `rank` inside its group, in `0..group_size(mask)`.
    pub fn position_in_group(&self, rank: u32, mask: GroupMask) -> u32 {
        let mut index = 0;
        let mut radix = 1;
        for a in ORDER {
            if mask.has(a) {
                index += ((rank / self.strides[a]) % self.sizes[a]) * radix;
                radix *= self.sizes[a];
            }
        }
        index
    }

    /// The `i`-th member (in group order) of group `group` of kind `mask`.
    pub fn member(&self, mask: GroupMask, group: u32, i: u32) -> u32 {
        let (mut g, mut m) = (group, i);
        let mut rank = 0;
        for a in ORDER {
            let size = self.sizes[a];
            let c = if mask.has(a) {
                let c = m % size;
                m /= size;
                c
            } else {
                let c = g % size;
                g /= size;
                c
            };
            rank += c * self.strides[a];
        }
        rank
    }

    /// Appends all members of a group to `out` (cleared first).
    pub fn members_into(&self, mask: GroupMask, group: u32, out: &mut Vec<u32>) {
        out.clear();
        out.extend((0..self.group_size(mask)).map(|i| self.member(mask, group, i)));
    }

    /// The rank at the same position as `rank` in pipeline stage `stage`.
    pub fn rank_in_stage(&self, rank: u32, stage: u32) -> u32 {
        rank % self.stage_size() + stage * self.stage_size()
    }
}

/// Hybrid sharding: data-parallel ranks in one shard group, when `zero_group` is set, ZeRO
/// shards, and the group splits DP evenly into several groups of whole expert-parallel
/// groups; `None` (shard over all of DP) otherwise.
pub fn hybrid_shard_ranks(p: &ParallelismSpec) -> Option<u64> {
    let (dp, ep) = (p.dp.max(1), p.ep.max(1));
    p.zero_group
        .filter(|&g| p.zero >= 1 && g >= ep && g < dp && dp % g == 0 && g % ep == 0)
}

/// The process groups ZeRO shards over: all of (expert-)DP, or under hybrid sharding the
/// shard groups, whose gradient shards are then all-reduced across the replica groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroGroups {
    pub dense: GroupMask,
    pub expert: GroupMask,
    pub replica: Option<GroupMask>,
}

impl ZeroGroups {
    pub fn of(p: &ParallelismSpec) -> Self {
        match hybrid_shard_ranks(p) {
            Some(_) => ZeroGroups {
                dense: GroupMask::DP_SHARD,
                expert: GroupMask::EXPERT_DP_SHARD,
                replica: Some(GroupMask::DP_REPLICA),
            },
            None => ZeroGroups {
                dense: GroupMask::DP,
                expert: GroupMask::EXPERT_DP,
                replica: None,
            },
        }
    }
}

/// Layers of each pipeline stage: explicit, or as even as possible with the remainder
/// given to the middle stages (the first and last carry the embedding and the logits).
/// How Megatron-Core splits the decoder over pipeline ranks when `stage_layers` is not
/// given (`get_num_layers_to_build`, megatron/core/transformer/transformer_block.py,
/// core_r0.12): the first and last ranks may hold a set number of layers
/// (`--decoder-first/last-pipeline-num-layers`, the rest split evenly), or the embedding
/// and the loss/output layer each take one layer's slot in an even split
/// (`--account-for-embedding/loss-in-pipeline-split`): the first chunk of the first rank
/// and the last chunk of the last rank then hold one layer less.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PipelineSplit {
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub embedding_slot: bool,
    pub loss_slot: bool,
}

impl PipelineSplit {
    pub fn is_default(&self) -> bool {
        *self == PipelineSplit::default()
    }
}

/// Layers of every virtual stage, in virtual-stage order (`chunk * pp + stage`), for
/// `chunks` model chunks per stage; `Err((field, why))` names the parallelism field that
/// makes the layout impossible. Without explicit counts or Megatron switches the split is
/// as even as [`split_layers`] makes it.
pub fn pipeline_layout(
    layers: u64,
    p: &ParallelismSpec,
    chunks: u64,
) -> Result<Vec<u64>, (&'static str, String)> {
    let pp = p.pp.max(1);
    let chunks = chunks.max(1);
    let n = (pp * chunks) as usize;
    // Per-rank counts → per-virtual-stage counts (a rank's layers split evenly over its
    // chunks, as Megatron requires).
    let spread =
        |per_rank: &[u64], field: &'static str| -> Result<Vec<u64>, (&'static str, String)> {
            let mut out = vec![0; n];
            for (stage, &l) in per_rank.iter().enumerate() {
                if !l.is_multiple_of(chunks) {
                    return Err((
                        field,
                        format!(
                            "pipeline stage {stage} holds {l} layers, not divisible by its \
                         virtual_stages={chunks} chunks"
                        ),
                    ));
                }
                for c in 0..chunks as usize {
                    out[c * pp as usize + stage] = l / chunks;
                }
            }
            Ok(out)
        };
    let layout = if let Some(explicit) = &p.stage_layers {
        let field = "parallelism.stage_layers";
        if explicit.len() == n {
            explicit.clone()
        } else if explicit.len() as u64 == pp {
            spread(explicit, field)?
        } else {
            let per_vs = if chunks > 1 {
                format!(" or one per virtual stage (pp*virtual_stages = {n})")
            } else {
                String::new()
            };
            return Err((
                field,
                format!(
                    "has {} entries but pp={pp}: give one per stage{per_vs}",
                    explicit.len()
                ),
            ));
        }
    } else if p.split.first.is_some() || p.split.last.is_some() {
        let field = uneven_field(&p.split);
        if p.split.embedding_slot || p.split.loss_slot {
            return Err((
                field,
                "an uneven first/last stage cannot be combined with \
                 account_for_embedding/loss_in_pipeline_split (as in Megatron-Core); remove one"
                    .into(),
            ));
        }
        let (first, last) = (p.split.first, p.split.last);
        let mut rest = layers;
        let mut left = pp;
        for x in [first, last].into_iter().flatten() {
            rest = rest.checked_sub(x).ok_or_else(|| {
                (
                    field,
                    format!("first and last stages hold more than model.layers={layers}"),
                )
            })?;
            left = left.saturating_sub(1);
        }
        if pp == 1 || (first.is_some() && last.is_some() && pp == 2 && rest != 0) {
            return Err((field, format!("needs more pipeline stages than pp={pp}")));
        }
        if left > 0 && !rest.is_multiple_of(left) {
            return Err((
                field,
                format!("the {rest} layers left for the {left} middle stages do not divide evenly"),
            ));
        }
        let mid = rest.checked_div(left).unwrap_or(0);
        let mut per_rank = vec![mid; pp as usize];
        if let Some(f) = first {
            per_rank[0] = f;
        }
        if let Some(l) = last {
            per_rank[pp as usize - 1] = l;
        }
        spread(&per_rank, field)?
    } else if p.split.embedding_slot || p.split.loss_slot {
        let field = "parallelism.account_for_embedding_in_pipeline_split";
        let slots = u64::from(p.split.embedding_slot) + u64::from(p.split.loss_slot);
        let total = layers + slots;
        if !total.is_multiple_of(pp * chunks) {
            return Err((
                field,
                format!(
                    "model.layers + {slots} slot(s) = {total} is not divisible by \
                     pp*virtual_stages = {}",
                    pp * chunks
                ),
            ));
        }
        let mut out = vec![total / (pp * chunks); n];
        if p.split.embedding_slot {
            out[0] -= 1;
        }
        if p.split.loss_slot {
            out[n - 1] -= 1;
        }
        out
    } else if chunks > 1 && !layers.is_multiple_of(pp * chunks) {
        // Megatron-Core's even split asserts this; the switches above are the way out.
        return Err((
            "parallelism.virtual_stages",
            format!(
                "interleaved: model.layers={layers} is not divisible by pp*virtual_stages = \
                 {pp}*{chunks} = {}; give stage_layers, decoder_first/last_pipeline_num_layers \
                 or account_for_embedding/loss_in_pipeline_split for an uneven split",
                pp * chunks
            ),
        ));
    } else {
        return Ok(split_layers(layers, pp * chunks));
    };
    let field = if p.stage_layers.is_some() {
        "parallelism.stage_layers"
    } else if p.split.first.is_some() || p.split.last.is_some() {
        uneven_field(&p.split)
    } else {
        "parallelism.account_for_embedding_in_pipeline_split"
    };
    if let Some(i) = layout.iter().position(|&l| l == 0) {
        return Err((
            field,
            format!("virtual stage {i} would hold no layer; every chunk needs at least 1"),
        ));
    }
    let sum = layout.iter().try_fold(0u64, |a, n| a.checked_add(*n));
    if sum != Some(layers) {
        let sum = sum.map_or("more than 2^64".into(), |s| s.to_string());
        return Err((field, format!("sums to {sum} but model.layers={layers}")));
    }
    Ok(layout)
}

fn uneven_field(s: &PipelineSplit) -> &'static str {
    if s.first.is_some() {
        "parallelism.decoder_first_pipeline_num_layers"
    } else {
        "parallelism.decoder_last_pipeline_num_layers"
    }
}

pub fn split_layers(layers: u64, stages: u64) -> Vec<u64> {
    let base = layers / stages;
    let extra = layers % stages;
    let mut out = vec![base; stages as usize];
    // Hand extra layers to stages from the middle outwards so ends stay lighter.
    let mut order: Vec<u64> = (0..stages).collect();
    let mid = (stages as f64 - 1.0) / 2.0;
    order.sort_by(|a, b| {
        let da = (*a as f64 - mid).abs();
        let db = (*b as f64 - mid).abs();
        da.partial_cmp(&db)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    });
    for &s in order.iter().take(extra as usize) {
        out[s as usize] += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tp: u64, cp: u64, dp: u64, ep: u64, pp: u64) -> ParallelismSpec {
        ParallelismSpec {
            tp,
            pp,
            dp,
            ep,
            cp,
            ..ParallelismSpec::default()
        }
    }

    #[test]
    fn megatron_rank_order() {
        let g = RankGrid::new(&spec(8, 1, 4, 1, 2));
        assert_eq!(g.world(), 64);
        assert_eq!(g.coord(13, Axis::Tp), 5);
        assert_eq!(g.stage_of(31), 0);
        assert_eq!(g.stage_of(32), 1);
        let mut m = Vec::new();
        g.members_into(GroupMask::TP, g.group_index(13, GroupMask::TP), &mut m);
        assert_eq!(m, (8..16).collect::<Vec<_>>());
        g.members_into(GroupMask::DP, g.group_index(13, GroupMask::DP), &mut m);
        assert_eq!(m, vec![5, 13, 21, 29]);
        g.members_into(GroupMask::PP, g.group_index(13, GroupMask::PP), &mut m);
        assert_eq!(m, vec![13, 45]);
    }

    #[test]
    fn every_rank_is_in_exactly_one_group_of_each_kind() {
        let g = RankGrid::new(&spec(2, 2, 4, 2, 3));
        for mask in [
            GroupMask::TP,
            GroupMask::CP,
            GroupMask::EP,
            GroupMask::DP,
            GroupMask::PP,
        ] {
            let mut seen = vec![0; g.world() as usize];
            let mut m = Vec::new();
            for gi in 0..g.group_count(mask) {
                g.members_into(mask, gi, &mut m);
                for &r in &m {
                    seen[r as usize] += 1;
                    assert_eq!(g.group_index(r, mask), gi);
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{mask:?}");
        }
    }

    #[test]
    fn hybrid_sharding_splits_dp_and_keeps_other_groups() {
        let flat = RankGrid::new(&spec(2, 1, 8, 2, 2));
        let mut p = spec(2, 1, 8, 2, 2);
        p.zero_group = Some(4);
        let g = RankGrid::new(&p);
        assert_eq!(g.world(), flat.world());
        for mask in [GroupMask::TP, GroupMask::EP, GroupMask::DP, GroupMask::PP] {
            for r in 0..g.world() {
                assert_eq!(
                    g.group_index(r, mask),
                    flat.group_index(r, mask),
                    "{mask:?}"
                );
                assert_eq!(
                    g.position_in_group(r, mask),
                    flat.position_in_group(r, mask)
                );
            }
        }
        let mut m = Vec::new();
        // Rank 2 = tp 0, dp 1: its shard group is DP ranks 0..4, its replica the same shard
        // in the other group of 4 (DP rank 5).
        g.members_into(
            GroupMask::DP_SHARD,
            g.group_index(2, GroupMask::DP_SHARD),
            &mut m,
        );
        assert_eq!(m, vec![0, 2, 4, 6]);
        g.members_into(
            GroupMask::DP_REPLICA,
            g.group_index(2, GroupMask::DP_REPLICA),
            &mut m,
        );
        assert_eq!(m, vec![2, 10]);
        // Experts: same EP coordinate (dp 1 and 3) inside the shard group.
        let e = GroupMask::EXPERT_DP_SHARD;
        g.members_into(e, g.group_index(2, e), &mut m);
        assert_eq!(m, vec![2, 6]);
        assert_eq!(g.group_count(GroupMask::DP_SHARD), 2 * 2 * 2);
        assert_eq!(ZeroGroups::of(&p).replica, Some(GroupMask::DP_REPLICA));
        // Without `zero_group`, or with one that does not split DP, shard = all of DP.
        p.zero_group = Some(3);
        assert_eq!(RankGrid::new(&p), flat);
        let z = ZeroGroups::of(&p);
        assert_eq!(
            (z.dense, z.expert, z.replica),
            (GroupMask::DP, GroupMask::EXPERT_DP, None)
        );
    }

    #[test]
    fn uneven_split_keeps_all_layers() {
        let s = split_layers(126, 16);
        assert_eq!(s.iter().sum::<u64>(), 126);
        assert!(s.iter().all(|&l| l == 7 || l == 8));
        assert_eq!(s[0], 7);
        assert_eq!(s[15], 7);
    }

    fn layout_plan(pp: u64, v: u64) -> ParallelismSpec {
        ParallelismSpec {
            pp,
            schedule: if v > 1 {
                ScheduleKind::Interleaved
            } else {
                ScheduleKind::OneFOneB
            },
            virtual_stages: v,
            ..ParallelismSpec::default()
        }
    }

    /// Llama 3 405B as Meta ran it: 126 layers + embedding and loss slots = 128 slots over
    /// 16 stages x 4 chunks; the first chunk of stage 0 and the last chunk of stage 15 hold
    /// one layer, every other chunk two (Megatron-Core `get_num_layers_to_build`).
    #[test]
    fn embedding_and_loss_slots_shorten_the_end_chunks() {
        let mut p = layout_plan(16, 4);
        p.split.embedding_slot = true;
        p.split.loss_slot = true;
        let l = pipeline_layout(126, &p, 4).unwrap();
        assert_eq!(l.len(), 64);
        assert_eq!(l[0], 1, "chunk 0 of stage 0 (the embedding's slot)");
        assert_eq!(l[63], 1, "chunk 3 of stage 15 (the loss's slot)");
        assert!(l[1..63].iter().all(|&n| n == 2), "{l:?}");
        assert_eq!(l.iter().sum::<u64>(), 126);
        // Only one slot: 127 + 1 = 128 as well.
        p.split.loss_slot = false;
        assert!(
            pipeline_layout(126, &p, 4).is_err(),
            "126 + 1 does not divide"
        );
        let l = pipeline_layout(127, &p, 4).unwrap();
        assert_eq!((l[0], l[63]), (1, 2));
        // v = 8: the first chunk would hold no layer.
        p.split.loss_slot = true;
        let (field, why) = pipeline_layout(126, &layout_plan(16, 8), 8).unwrap_err();
        assert_eq!(field, "parallelism.virtual_stages", "{why}");
        let mut p8 = layout_plan(16, 8);
        p8.split = p.split;
        let (_, why) = pipeline_layout(126, &p8, 8).unwrap_err();
        assert!(why.contains("no layer"), "{why}");
    }

    #[test]
    fn first_and_last_stage_counts_and_explicit_lists() {
        let mut p = layout_plan(4, 2);
        p.split.first = Some(2);
        p.split.last = Some(4);
        // 2 + 4 on the ends, (20 - 6) / 2 = 7 per middle stage: 7 is odd, not v=2 chunks.
        assert!(pipeline_layout(20, &p, 2).is_err());
        let l = pipeline_layout(18, &p, 2).unwrap();
        // chunk-major: stage s chunk c at c*pp + s.
        assert_eq!(l, vec![1, 3, 3, 2, 1, 3, 3, 2]);
        p.split = PipelineSplit::default();
        p.stage_layers = Some(vec![2, 6, 6, 4]);
        assert_eq!(
            pipeline_layout(18, &p, 2).unwrap(),
            vec![1, 3, 3, 2, 1, 3, 3, 2]
        );
        p.stage_layers = Some(vec![1, 3, 3, 2, 1, 3, 3, 3]);
        assert_eq!(pipeline_layout(19, &p, 2).unwrap()[7], 3);
        p.stage_layers = Some(vec![1, 3, 3]);
        assert!(pipeline_layout(7, &p, 2).is_err());
        // Without interleaving the default split stays as even as possible.
        assert_eq!(
            pipeline_layout(126, &layout_plan(16, 1), 1).unwrap(),
            split_layers(126, 16)
        );
    }
}
