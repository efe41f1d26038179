//! Raw YAML structs → domain types, applying every default in one place.
//!
//! Defaults (documented in design.md terms):
//! - model: `kv_heads` = `heads`, `ffn` = gelu, `ffn_hidden` = 4 × `hidden`,
//!   `tied_embeddings` = false; moe: `shared_experts` 0, `capacity_factor` 1.0
//!   (`null` or `dropless: true`: dropless), `dense_layers` 0, `skew` 0,
//!   `max_nodes_per_token` unlimited; `mla` none (multi-head attention), `mtp_depth` 0, `dropout` 0.1
//!   (Megatron's default), `norm` rmsnorm.
//! - training: `micro_batch` 1, `precision` bf16, `recompute` selective, `optimizer` adam,
//!   `flash_attention` true (`seq_len` and `global_batch` are required).
//! - parallelism: `tp`, `pp`, `ep`, `cp` 1; `dp` = GPUs / (tp·pp·cp) where GPUs = nodes ×
//!   node.gpus; `sequence_parallel` true when tp > 1 (and always false at tp = 1, where it
//!   means nothing); `schedule` 1f1b; `virtual_stages` 1; `zero` 1;
//!   `overlap_grad_reduce` true; `stage_layers` even split
//!   (Megatron's `decoder_first/last_pipeline_num_layers` unset,
//!   `account_for_embedding/loss_in_pipeline_split` false); `bucket_params` 40M (Megatron).
//! - outputs: `timeline` representative, `charts` true; network: `mode` analytic
//!   (closed form, no contention; `contention` runs the flow-level model), `algorithm` auto.
//! - topology: `node.nvlink_domain` = `node.gpus`; `node.pcie_gbs` from the GPU catalog
//!   (32 for PCIe Gen4 parts, 64 for Gen5), else 32; fabric `tiers` 2,
//!   `oversubscription` 1.0, `hop_latency_us` 1.0, `pod_oversubscription` 1.0,
//!   `switch_radix` 64; storage 100 GB/s write, 200 GB/s read; cost `gpu_hour_usd` 2.0,
//!   `power_kw_per_node` = 1.8 × GPUs × GPU power (DGX A100 6.5 kW / 3.2 kW of GPUs,
//!   DGX H100 10.2 kW / 5.6 kW), `pue` 1.3, `usd_per_kwh` 0.08.
//! - GPU mapping: `price_usd` 0 (unknown); efficiencies are the H100's measured ratios
//!   (`gemm_efficiency` 0.807, `fp8_gemm_efficiency` 0.652, `hbm_efficiency` 0.866).

use crate::config::{OutputsSpec, Scenario, TimelineRanks};
use crate::hardware::{
    ClusterSpec, CostSpec, FabricSpec, GpuSpec, NodeSpec, PeakTflops, Precision, StorageSpec,
};
use crate::model::{FfnKind, ModelSpec, MoeSpec};
use crate::network::{NetworkSpec, Routing};
use crate::plan::{
    Optimizer, ParallelismSpec, PipelineSplit, Recompute, ScheduleKind, TrainingSpec,
};

use super::ConfigError;
use super::raw::*;
use super::tree::Node;

pub const DEFAULT_BUCKET_PARAMS: u64 = 40_000_000;
pub const DEFAULT_GEMM_EFFICIENCY: f64 = 0.807;
pub const DEFAULT_FP8_GEMM_EFFICIENCY: f64 = 0.652;
pub const DEFAULT_HBM_EFFICIENCY: f64 = 0.866;
const NODE_POWER_PER_GPU_POWER: f64 = 1.8;

/// Builds the domain scenario from the raw one; `root` locates errors, `fallback_name`
/// names a scenario without `name:`.
pub fn scenario(
    raw: RawScenario,
    root: &Node,
    fallback_name: &str,
    source: Option<std::path::PathBuf>,
) -> Result<Scenario, ConfigError> {
    let cluster = cluster(raw.cluster);
    let network = network(raw.network, &cluster.fabric);
    let model = model(raw.model, root)?;
    let training = training(raw.training);
    let rp = raw.parallelism;
    let (stack_raw, rp_flags) = (raw.stack, flags(&rp));
    let mut parallelism = parallelism(rp, &cluster, root)?;
    let plan_only = super::stack::resolve(stack_raw, &rp_flags, &mut parallelism, root)?;
    Ok(Scenario {
        name: raw.name.unwrap_or_else(|| fallback_name.to_string()),
        source,
        model,
        cluster,
        training,
        parallelism,
        faults: raw.faults.unwrap_or_default(),
        checkpoint: raw.checkpoint,
        run: raw.run,
        outputs: outputs(raw.outputs, root)?,
        network,
        origins: Default::default(),
        plan_only,
        jobs: None,
    })
}

/// The capacity factor: `dropless: true` or `capacity_factor: null` is dropless (`None`),
/// a number is that factor, neither the default 1.0; both at once is refused.
fn capacity_factor(e: &RawMoe, root: &Node) -> Result<Option<f64>, ConfigError> {
    match (e.dropless, e.capacity_factor) {
        (Some(true), Some(Some(c))) => Err(super::error_at(
            root,
            "model.moe.dropless",
            format!(
                "dropless: true routes every token, but capacity_factor: {c} drops tokens \
                 above capacity; set one of them (capacity_factor: null is dropless)"
            ),
        )),
        (Some(true), _) | (_, Some(None)) => Ok(None),
        (_, Some(Some(c))) => Ok(Some(c)),
        (_, None) => Ok(Some(1.0)),
    }
}

fn model(m: RawModel, root: &Node) -> Result<ModelSpec, ConfigError> {
    let moe = match &m.moe {
        Some(e) => Some(MoeSpec {
            experts: e.experts,
            top_k: e.top_k,
            expert_ffn_hidden: e.expert_ffn_hidden,
            shared_experts: e.shared_experts.unwrap_or(0),
            capacity_factor: capacity_factor(e, root)?,
            dense_layers: e.dense_layers.unwrap_or(0),
            skew: e.skew.unwrap_or(0.0),
            max_nodes_per_token: e.max_nodes_per_token,
        }),
        None => None,
    };
    Ok(ModelSpec {
        name: m.name.unwrap_or_else(|| "custom".into()),
        layers: m.layers,
        hidden: m.hidden,
        heads: m.heads,
        kv_heads: m.kv_heads.unwrap_or(m.heads),
        ffn_hidden: m.ffn_hidden.unwrap_or(m.hidden.saturating_mul(4)),
        ffn: m.ffn.unwrap_or(FfnKind::Gelu),
        vocab: m.vocab,
        moe,
        tied_embeddings: m.tied_embeddings.unwrap_or(false),
        mla: m.mla,
        mtp_depth: m.mtp_depth.unwrap_or(0),
        dropout: m.dropout.unwrap_or(0.1),
        norm: m.norm.unwrap_or_default(),
    })
}

fn training(t: RawTraining) -> TrainingSpec {
    TrainingSpec {
        seq_len: t.seq_len,
        global_batch: t.global_batch,
        micro_batch: t.micro_batch.unwrap_or(1),
        precision: t.precision.unwrap_or(Precision::Bf16),
        recompute: t.recompute.unwrap_or(Recompute::Selective),
        optimizer: t.optimizer.unwrap_or(Optimizer::Adam),
        flash_attention: t.flash_attention.unwrap_or(true),
        finetune: t.finetune.unwrap_or_default(),
        lora_rank: t.lora_rank.unwrap_or(16),
        offload_optimizer: t.offload_optimizer.unwrap_or(false),
        offload_params: t.offload_params.unwrap_or(false),
        memory_reserve_gb: t.memory_reserve_gb.unwrap_or(2.0),
        recompute_norms: t.recompute_norms.unwrap_or(false),
        recompute_mla_up_proj: t.recompute_mla_up_proj.unwrap_or(false),
        fp8_activations: t.fp8_activations.unwrap_or(false),
    }
}

fn parallelism(
    p: RawParallelism,
    cluster: &ClusterSpec,
    root: &Node,
) -> Result<ParallelismSpec, ConfigError> {
    let (tp, pp, cp) = (p.tp.unwrap_or(1), p.pp.unwrap_or(1), p.cp.unwrap_or(1));
    let dp = match p.dp {
        Some(dp) => dp,
        None => derive_dp(tp, pp, cp, cluster, root)?,
    };
    let zero = p.zero.unwrap_or(1);
    let zero = u8::try_from(zero).ok().filter(|z| *z <= 3).ok_or_else(|| {
        super::error_at(
            root,
            "parallelism.zero",
            format!("zero={zero} is not a ZeRO stage; allowed: 0, 1, 2, 3 (3 = FSDP)"),
        )
    })?;
    Ok(ParallelismSpec {
        tp,
        pp,
        dp,
        ep: p.ep.unwrap_or(1),
        cp,
        sequence_parallel: p.sequence_parallel.unwrap_or(true) && tp > 1,
        schedule: p.schedule.unwrap_or(ScheduleKind::OneFOneB),
        virtual_stages: p.virtual_stages.unwrap_or(1),
        zero,
        overlap_grad_reduce: p.overlap_grad_reduce.unwrap_or(true),
        tp_comm_overlap: p.tp_comm_overlap.unwrap_or(false),
        pp_comm_overlap: p.pp_comm_overlap.unwrap_or(true),
        stage_layers: p.stage_layers,
        split: PipelineSplit {
            first: p.decoder_first_pipeline_num_layers,
            last: p.decoder_last_pipeline_num_layers,
            embedding_slot: p.account_for_embedding_in_pipeline_split.unwrap_or(false),
            loss_slot: p.account_for_loss_in_pipeline_split.unwrap_or(false),
        },
        bucket_params: p.bucket_params.unwrap_or(DEFAULT_BUCKET_PARAMS),
        zero_group: p.zero_group,
        stack: Default::default(),
        overlap_sm_share: p.overlap_sm_share,
    })
}

/// The plan keys `stack:` also spells, as the scenario set them.
fn flags(p: &RawParallelism) -> RawParallelism {
    RawParallelism {
        overlap_grad_reduce: p.overlap_grad_reduce,
        tp_comm_overlap: p.tp_comm_overlap,
        pp_comm_overlap: p.pp_comm_overlap,
        ..RawParallelism::default()
    }
}

/// `dp` when not given: every GPU of the cluster is used.
fn derive_dp(
    tp: u64,
    pp: u64,
    cp: u64,
    cluster: &ClusterSpec,
    root: &Node,
) -> Result<u64, ConfigError> {
    let gpus = cluster.nodes.saturating_mul(cluster.node.gpus);
    let per_replica = tp.saturating_mul(pp).saturating_mul(cp);
    if per_replica == 0 || gpus == 0 || !gpus.is_multiple_of(per_replica) {
        return Err(super::error_at(
            root,
            "parallelism.dp",
            format!(
                "dp is not given and cannot be derived: the cluster has {} nodes x {} GPUs = \
                 {gpus}, which tp*pp*cp = {tp}*{pp}*{cp} = {per_replica} does not divide",
                cluster.nodes, cluster.node.gpus
            ),
        ));
    }
    Ok(gpus / per_replica)
}

fn outputs(o: RawOutputs, root: &Node) -> Result<OutputsSpec, ConfigError> {
    let timeline = match o.timeline {
        None | Some(RawTimeline::Representative) => TimelineRanks::Representative,
        Some(RawTimeline::All) => TimelineRanks::All,
        Some(RawTimeline::None) => TimelineRanks::None,
        Some(RawTimeline::Ranks(ranks)) => {
            let ranks: Result<Vec<u32>, _> = ranks.into_iter().map(u32::try_from).collect();
            TimelineRanks::List(ranks.map_err(|_| {
                super::error_at(root, "outputs.timeline", "a rank is larger than 2^32 - 1")
            })?)
        }
    };
    Ok(OutputsSpec {
        timeline,
        charts: o.charts.unwrap_or(true),
    })
}

fn network(n: RawNetwork, fabric: &FabricSpec) -> NetworkSpec {
    let r = n.routing.unwrap_or_default();
    let d = Routing::for_fabric(fabric.transport, fabric.kind);
    // A stated ECMP policy, seed or split asks for static routing: adaptive routing then
    // stays off unless stated too (it would make those keys moot, which validation refuses).
    let static_asked = r.ecmp.is_some() || r.seed.is_some() || r.flows_per_connection.is_some();
    NetworkSpec {
        mode: n.mode.unwrap_or_default(),
        algorithm: n.algorithm.unwrap_or_default(),
        routing: Routing {
            ecmp: r.ecmp.unwrap_or(d.ecmp),
            seed: r.seed.unwrap_or(d.seed),
            flows_per_connection: r.flows_per_connection.unwrap_or(d.flows_per_connection),
            adaptive: r.adaptive.unwrap_or(d.adaptive && !static_asked),
        },
    }
}

pub(crate) fn cluster(t: RawTopology) -> ClusterSpec {
    let gpu_pcie = t.gpu.pcie_gbs;
    let gpu = gpu(t.gpu);
    let node = NodeSpec {
        gpus: t.node.gpus,
        nvlink_gbs: t.node.nvlink_gbs,
        nics: t.node.nics,
        nic_gbps: t.node.nic_gbps,
        nvlink_domain: t.node.nvlink_domain.unwrap_or(t.node.gpus),
        pcie_gbs: t.node.pcie_gbs.or(gpu_pcie).unwrap_or(32.0),
    };
    let cost = cost(t.cost, &gpu, node.gpus);
    ClusterSpec {
        name: t.name.unwrap_or_else(|| "custom".into()),
        gpu,
        nodes: t.nodes,
        node,
        fabric: fabric(t.fabric),
        storage: t.storage.map_or(
            StorageSpec {
                write_gbs: 100.0,
                read_gbs: 200.0,
            },
            |s| StorageSpec {
                write_gbs: s.write_gbs,
                read_gbs: s.read_gbs,
            },
        ),
        cost,
    }
}

fn gpu(g: RawGpu) -> GpuSpec {
    GpuSpec {
        name: g.name.unwrap_or_else(|| "custom".into()),
        peak_tflops: PeakTflops {
            fp32: g.peak_tflops.fp32,
            tf32: g.peak_tflops.tf32,
            bf16: g.peak_tflops.bf16,
            fp16: g.peak_tflops.fp16,
            fp8: g.peak_tflops.fp8,
            fp4: g.peak_tflops.fp4,
        },
        memory_gb: g.memory_gb,
        memory_bw_gbs: g.memory_bw_gbs,
        power_w: g.power_w,
        price_usd: g.price_usd.unwrap_or(0.0),
        gemm_efficiency: g.gemm_efficiency.unwrap_or(DEFAULT_GEMM_EFFICIENCY),
        fp8_gemm_efficiency: g.fp8_gemm_efficiency.or(Some(DEFAULT_FP8_GEMM_EFFICIENCY)),
        hbm_efficiency: g.hbm_efficiency.unwrap_or(DEFAULT_HBM_EFFICIENCY),
        sustained_efficiency: g.sustained_efficiency.unwrap_or(1.0),
        calibration: g.calibration,
    }
}

fn fabric(f: RawFabric) -> FabricSpec {
    FabricSpec {
        kind: f.kind,
        tiers: f.tiers.unwrap_or(2),
        oversubscription: f.oversubscription.unwrap_or(1.0),
        hop_latency_us: f.hop_latency_us.unwrap_or(1.0),
        pod_gpus: f.pod_gpus,
        pod_oversubscription: f.pod_oversubscription.unwrap_or(1.0),
        switch_radix: f.switch_radix.unwrap_or(64),
        spine_oversubscription: f.spine_oversubscription.unwrap_or(1.0),
        transport: f.transport.unwrap_or_default(),
        sharp: f.sharp.unwrap_or(false),
    }
}

fn cost(c: Option<RawCost>, gpu: &GpuSpec, gpus_per_node: u64) -> CostSpec {
    let c = c.unwrap_or(RawCost {
        gpu_hour_usd: None,
        power_kw_per_node: None,
        pue: None,
        usd_per_kwh: None,
    });
    let node_kw = NODE_POWER_PER_GPU_POWER * gpus_per_node as f64 * gpu.power_w / 1000.0;
    CostSpec {
        gpu_hour_usd: c.gpu_hour_usd.unwrap_or(2.0),
        power_kw_per_node: c.power_kw_per_node.unwrap_or(node_kw),
        pue: c.pue.unwrap_or(1.3),
        usd_per_kwh: c.usd_per_kwh.unwrap_or(0.08),
    }
}
