//! What data parallelism moves, and over which group: the gradient buckets of a stage
//! (layers reduced together, formed in backward order up to `bucket_params`), each
//! bucket's reduction (all-reduce, or reduce-scatter when ZeRO shards the gradients) and
//! parameter all-gather, hybrid sharding's all-reduce of a gradient shard across replica
//! groups, DualPipe's all-reduce between the two copies of a piece, and ZeRO-3/FSDP's
//! per-layer parameter gathers (dense weights over DP, expert weights over expert-DP).
//!
//! Also the ZeRO facts both modes branch on ([`sharded`], [`reduces_every_micro_batch`],
//! [`fsdp`], [`shard_ranks`]). Must not decide when a reduction is issued or what it
//! overlaps: that is the builder's graph and fast mode's composition.

use super::params::{adapters_only, gathered_weight_bytes, trainable_layer_params};
use super::{CollectiveCost, Coverage, StepInputs};
use crate::plan::pipeline;
use crate::plan::stack::{GradReduceDtype, Zero3Gather};
use crate::plan::{ParallelismSpec, ZeroGroups, hybrid_shard_ranks};
use crate::vocab::Collective;

/// The lowest layer of a bucket that holds no layer (an embedding-only chunk).
pub const NO_LAYER: u64 = u64::MAX;

/// ZeRO-1 and above with more than one data-parallel rank: optimizer states (and from
/// ZeRO-2 gradients) are sharded, so gradients are reduce-scattered and parameters
/// all-gathered.
pub fn sharded(p: &ParallelismSpec) -> bool {
    p.zero >= 1 && p.dp > 1
}

/// ZeRO-2 and ZeRO-3: gradients are sharded, so they cannot accumulate whole across
/// micro-batches; every micro-batch's backward reduce-scatters its buckets (ZeRO-1
/// reduces only the accumulated gradients, after the last micro-batch). FSDP does the
/// same unless `no_sync` keeps whole gradients, which ZeRO-3's memory does not allow.
pub fn reduces_every_micro_batch(p: &ParallelismSpec) -> bool {
    p.zero >= 2 && p.dp > 1
}

/// Whether Megatron-Core's aligned gradient reduction (`stack.align_grad_reduce`;
/// megatron/core/pipeline_parallel/schedules.py, core_r0.8.0: 797-805, 1487-1489,
/// 1502-1506) decides when buckets are reduced: a pipeline (`pp > 1`) under Megatron's
/// 1F1B or interleaved schedule whose overlapped reductions run once per step (ZeRO below
/// 2, more than one data-parallel rank). Elsewhere the field has nothing to act on.
pub fn aligned_reduce(p: &ParallelismSpec) -> bool {
    p.stack.align_grad_reduce
        && p.overlap_grad_reduce
        && p.pp > 1
        && p.dp > 1
        && p.zero < 2
        && matches!(
            p.schedule,
            crate::plan::ScheduleKind::OneFOneB | crate::plan::ScheduleKind::Interleaved
        )
}

/// ZeRO-3 / FSDP: whether parameters are sharded and gathered per layer.
pub fn fsdp(p: &ParallelismSpec) -> bool {
    p.zero >= 3 && p.dp * p.cp > 1
}

/// Data-parallel ranks ZeRO shards the model states over (the shard group under hybrid
/// sharding).
pub fn shard_ranks(p: &ParallelismSpec) -> u64 {
    hybrid_shard_ranks(p).unwrap_or(p.dp)
}

/// A data-parallel gradient bucket: layers whose gradients are reduced together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The stage's model chunk it belongs to.
    pub chunk: u32,
    /// Parameters that receive gradients (embeddings included where the chunk has them).
    pub params: u64,
    /// The layer whose backward completes the bucket: its lowest, backward runs in
    /// reverse; [`NO_LAYER`] for an embedding-only bucket of a chunk without layers.
    pub lowest: u64,
}

/// Gradient buckets of a stage, per chunk, formed in backward (reverse layer) order.
pub fn buckets(inp: &StepInputs, stage: u32, cov: Coverage) -> Vec<Bucket> {
    let (m, t, p) = (inp.model, inp.training, inp.parallelism);
    let target = p.bucket_params.max(1);
    let pp = p.pp as u32;
    let chunks = pipeline::chunks_per_stage(p.schedule, inp.chunks() as u32);
    let pieces = inp.piece_layers();
    let embeddings_train = !adapters_only(t, cov);
    let mut out = Vec::new();
    for chunk in 0..chunks {
        let at = pipeline::place(p.schedule, stage, chunk, pp, chunks);
        let (lo, hi) = pieces[at.piece as usize];
        let mut extra = 0;
        if at.last && !m.tied_embeddings && embeddings_train {
            extra += m.embedding_params();
        }
        if at.first && embeddings_train {
            extra += m.embedding_params();
        }
        let mut current: Option<Bucket> = None;
        for layer in (lo..hi).rev() {
            let b = current.get_or_insert(Bucket {
                chunk,
                params: extra,
                lowest: layer,
            });
            extra = 0;
            b.params += trainable_layer_params(m, t, layer, cov);
            b.lowest = layer;
            if b.params >= target {
                out.extend(current.take());
            }
        }
        out.extend(current.take());
        if hi == lo && extra > 0 {
            out.push(Bucket {
                chunk,
                params: extra,
                lowest: NO_LAYER,
            });
        }
    }
    out
}

/// Bytes of one gradient element as reduced across data-parallel ranks: the training
/// dtype's, or 4 when the stack reduces in FP32 (`stack.grad_reduce_dtype`).
pub fn grad_element_bytes(inp: &StepInputs) -> f64 {
    match inp.parallelism.stack.grad_reduce_dtype {
        GradReduceDtype::Fp32 => 4.0,
        GradReduceDtype::Training => inp.training.precision.grad_bytes(),
    }
}

/// Bytes of a bucket's gradients on one rank (after TP), in the reduction dtype.
fn grad_bytes(inp: &StepInputs, b: &Bucket) -> u64 {
    let tp = inp.parallelism.tp.max(1);
    ((b.params / tp) as f64 * grad_element_bytes(inp)) as u64
}

/// Bytes of a bucket's updated parameters on one rank (after TP), in the training dtype.
fn param_bytes(inp: &StepInputs, b: &Bucket) -> u64 {
    let tp = inp.parallelism.tp.max(1);
    ((b.params / tp) as f64 * inp.training.precision.grad_bytes()) as u64
}

/// A bucket's gradient reduction over DP (the shard group under hybrid sharding): a
/// reduce-scatter when ZeRO shards gradients, else an all-reduce.
pub fn grad_reduce(inp: &StepInputs, b: &Bucket) -> CollectiveCost {
    let p = inp.parallelism;
    CollectiveCost {
        collective: if sharded(p) {
            Collective::ReduceScatter
        } else {
            Collective::AllReduce
        },
        group: ZeroGroups::of(p).dense,
        bytes: grad_bytes(inp, b),
    }
}

/// Hybrid sharding: the all-reduce of this rank's shard of a bucket's gradients across
/// the replica groups (once per step: the shards accumulate locally); `None` unless ZeRO
/// shards over a `zero_group`.
pub fn replica_reduce(inp: &StepInputs, b: &Bucket) -> Option<CollectiveCost> {
    let p = inp.parallelism;
    let replica = ZeroGroups::of(p).replica.filter(|_| sharded(p))?;
    Some(CollectiveCost {
        collective: Collective::AllReduce,
        group: replica,
        bytes: grad_bytes(inp, b) / (shard_ranks(p) * p.cp.max(1)),
    })
}

/// The distributed optimizer's all-gather of a bucket's updated parameters (ZeRO-1/2),
/// over the group its gradients were reduce-scattered over.
pub fn param_gather(inp: &StepInputs, b: &Bucket) -> CollectiveCost {
    CollectiveCost {
        collective: Collective::AllGather,
        group: ZeroGroups::of(inp.parallelism).dense,
        bytes: param_bytes(inp, b),
    }
}

/// DualPipe: bytes of the all-reduce that sums a bucket's gradients between the two
/// copies of its piece of the model, after the DP reduction: what that leaves on the
/// rank, the whole bucket or its shard-group share under a distributed optimizer.
pub fn mirror_reduce_bytes(inp: &StepInputs, b: &Bucket) -> u64 {
    let p = inp.parallelism;
    let shard = if sharded(p) { shard_ranks(p) } else { 1 };
    let whole = (b.params / p.tp.max(1)) as f64 * grad_element_bytes(inp);
    (whole / shard as f64) as u64
}

/// `offload_params` (ZeRO-Infinity's `offload_param`, FSDP's `CPUOffload(offload_params)`):
/// the rank's shard of a layer's parameters lives in host memory and is copied to the GPU
/// over PCIe before each all-gather of the layer, on the same in-order stream as the
/// gathers (prefetched with them, so hidden while the compute of the layer ahead lasts
/// longer). Returns the copy's duration, `None` without parameter offload or ZeRO-3.
pub fn param_upload_time(
    inp: &StepInputs,
    layer: u64,
    cov: Coverage,
) -> Option<crate::units::Nanos> {
    if !inp.training.offload_params || !fsdp(inp.parallelism) {
        return None;
    }
    let grid = crate::plan::RankGrid::new(inp.parallelism);
    let shard_bytes: f64 = layer_gathers(inp, layer, cov)
        .into_iter()
        .map(|g| g.bytes as f64 / grid.group_size(g.group).max(1) as f64)
        .sum();
    let pcie = inp.pcie_gbs.max(1e-3) * 1e9;
    Some(crate::units::secs_to_ns(shard_bytes / pcie))
}

/// The parameter tensors of one layer, in forward order, as `(parameters, routed)`:
/// attention projections, the two input norms (weight, and bias under LayerNorm), MLA's
/// latent norms, the MLP matrices (a MoE layer's router, shared experts and routed
/// experts, the latter flagged), a multi-token-prediction module's projection and norms.
/// They add up to [`crate::model::ModelSpec::layer_params`].
pub fn layer_tensors(m: &crate::model::ModelSpec, layer: u64) -> Vec<(u64, bool)> {
    let h = m.hidden;
    let norm = |out: &mut Vec<(u64, bool)>| {
        for _ in 0..m.norm.params(h) / h {
            out.push((h, false));
        }
    };
    let mut out: Vec<(u64, bool)> = m
        .attention_projections()
        .iter()
        .map(|p| (p.inputs * p.outputs, false))
        .collect();
    norm(&mut out);
    norm(&mut out);
    if let Some(a) = m.mla {
        out.extend(a.q_lora_rank.map(|q| (q, false)));
        out.push((a.kv_lora_rank, false));
    }
    let mats = m.ffn.matrices();
    match &m.moe {
        Some(moe) if m.is_moe_layer(layer) => {
            let e = m.expert_params() / mats;
            out.push((h * moe.experts, false));
            for _ in 0..moe.shared_experts * mats {
                out.push((e, false));
            }
            for _ in 0..moe.experts * mats {
                out.push((e, true));
            }
        }
        _ => {
            for _ in 0..mats {
                out.push((h * m.ffn_hidden, false));
            }
        }
    }
    if layer >= m.layers {
        out.push((2 * h * h, false));
        norm(&mut out);
        norm(&mut out);
    }
    out
}

/// Tensors a ZeRO-3 stack keeps whole on every rank, never gathered: fewer parameters
/// than `stack.zero3.persist_below` (DeepSpeed's `param_persistence_threshold`).
fn persistent(p: &ParallelismSpec, params: u64) -> bool {
    params < p.stack.zero3.persist_below
}

/// ZeRO-3 / FSDP parameter all-gathers of one layer, in issue order, in the precision
/// the weights are stored in as `cov` prices it: with `stack.zero3.gather: layer` one
/// collective for its dense weights over DP and one for its expert weights (after EP)
/// over expert-DP (FSDP's `fully_shard` unit, DeepSpeed's coalesced fetch); with
/// `gather: tensor` one collective per parameter tensor (DeepSpeed v0.3's per-parameter
/// `all_gather`). Tensors below `persist_below` parameters are not gathered.
pub fn layer_gathers(inp: &StepInputs, layer: u64, cov: Coverage) -> Vec<CollectiveCost> {
    let (m, p) = (inp.model, inp.parallelism);
    let tp = p.tp.max(1);
    let ep = p.ep.max(1);
    let bytes_per = gathered_weight_bytes(inp.training, cov);
    let zg = ZeroGroups::of(p);
    let cost = |params: u64, group| CollectiveCost {
        collective: Collective::AllGather,
        group,
        bytes: (params as f64 * bytes_per) as u64,
    };
    let tensors = layer_tensors(m, layer);
    match p.stack.zero3.gather {
        Zero3Gather::Layer => {
            let (mut dense, mut routed) = (0, 0);
            for &(n, r) in tensors.iter().filter(|t| !persistent(p, t.0)) {
                if r {
                    routed += n;
                } else {
                    dense += n;
                }
            }
            [(dense / tp, zg.dense), (routed / tp / ep, zg.expert)]
                .into_iter()
                .filter(|&(params, _)| params > 0)
                .map(|(params, group)| cost(params, group))
                .collect()
        }
        Zero3Gather::Tensor | Zero3Gather::Bucket => {
            // Each EP rank holds experts / ep of the routed tensors.
            let routed_here = tensors.iter().filter(|t| t.1).count() as u64 / ep;
            let mut seen_routed = 0u64;
            let mut units: Vec<(u64, bool)> = Vec::new();
            for (n, r) in tensors {
                if persistent(p, n) || n / tp == 0 {
                    continue;
                }
                if r {
                    seen_routed += 1;
                    if seen_routed > routed_here {
                        continue;
                    }
                }
                // `gather: bucket`: coalesced into the open bucket of its group until that
                // holds `bucket_params`.
                let bucket = p.stack.zero3.bucket_params;
                match units.last_mut() {
                    Some(last)
                        if p.stack.zero3.gather == Zero3Gather::Bucket
                            && last.1 == r
                            && last.0 < bucket =>
                    {
                        last.0 += n / tp
                    }
                    _ => units.push((n / tp, r)),
                }
            }
            units
                .into_iter()
                .map(|(n, r)| cost(n, if r { zg.expert } else { zg.dense }))
                .collect()
        }
    }
}

/// ZeRO-3 / FSDP: the all-gather of the input embedding before the first stage's
/// embedding forward, and of the output layer (the embedding again when tied) before the
/// last stage's logits forward and backward: a `vocab x hidden` matrix (vocab-parallel
/// over TP) over DP, in the precision weights are gathered in; `None` without ZeRO-3 or
/// when the stack keeps it whole (`persist_below`).
pub fn head_gather(inp: &StepInputs, cov: Coverage) -> Option<CollectiveCost> {
    let (m, p) = (inp.model, inp.parallelism);
    let params = m.embedding_params();
    if !fsdp(p) || persistent(p, params) {
        return None;
    }
    Some(CollectiveCost {
        collective: Collective::AllGather,
        group: ZeroGroups::of(p).dense,
        bytes: ((params / p.tp.max(1)) as f64 * gathered_weight_bytes(inp.training, cov)) as u64,
    })
}

/// Host time to issue one ZeRO-3 gather collective: `stack.zero3.host_us` plus
/// `host_us_per_rank` × the ranks it spans (the shard group). It occupies the DP stream
/// ahead of the collective.
pub fn gather_host_time(p: &ParallelismSpec) -> crate::units::Nanos {
    let z = &p.stack.zero3;
    let us = z.host_us + z.host_us_per_rank * shard_ranks(p) as f64;
    crate::units::secs_to_ns(us * 1e-6)
}

/// ZeRO-3: whether the backward gathers each layer twice, once for its full recompute
/// and once for its backward (`stack.zero3.recompute_regathers`: DeepSpeed's checkpointed
/// forward re-enters the pre-forward hook, and the parameters are released after it).
pub fn regathers(inp: &StepInputs) -> bool {
    fsdp(inp.parallelism)
        && inp.training.recompute == crate::plan::Recompute::Full
        && inp.parallelism.stack.zero3.recompute_regathers
}
