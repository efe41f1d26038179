//! Every key the scenario loader accepts changes the result it claims to (issue 12: "no
//! parsed-and-ignored keys").
//!
//! The keys come from the loader itself (`common::accepted_keys`, the probe
//! `tests/readme_reference.rs` checks the README schema with). Each leaf key has an entry
//! in [`AUDIT`]: a base scenario where the key can matter, `--set` overrides that perturb
//! it, and the part of the output that must move (a JSON pointer into `summary.json` —
//! step time, memory, MoE routing, the long run, the uncertainty band — or into the
//! cluster's cost, or the set of files a run writes). A key without an entry, or whose
//! perturbation leaves its output unchanged, fails the test by name. Free-text keys
//! (`source`) are the only exemption, and their README rows must say they are ignored.

mod common;

use std::collections::BTreeSet;

use clustersim::Simulation;
use rayon::prelude::*;
use serde_json::{Value, json};

/// Where a key can matter: the default scenario with these overrides first.
#[derive(Clone, Copy)]
enum Base {
    /// The built-in default scenario (Llama 3 8B, TP2 PP4 DP8, ZeRO-1, 1F1B, 64 H100).
    Default,
    /// A small MoE (16 experts, top-2, skew 1) with EP16 across two nodes.
    Moe,
    /// The MoE under DualPipe (PP2 EP8).
    DualPipe,
    /// Multi-head latent attention.
    Mla,
    /// ZeRO-3 over 16 data-parallel ranks (PP1 TP4).
    Zero3,
    /// Interleaved 1F1B with two chunks per stage.
    Interleaved,
    /// The default scenario with a 30-day long run (failures on).
    Run,
    /// FP8 training.
    Fp8,
    /// LoRA fine-tuning.
    Lora,
    /// A `clos-pods` fabric (two pods of 32 GPUs) under the contention model.
    Pods,
    /// A three-tier fat tree under the contention model.
    ThreeTier,
    /// Two jobs of 32 GPUs spread over a 4:1 oversubscribed fat tree (contention).
    Jobs,
}

/// Two pods' worth of nodes for the MoE bases.
const MOE: &[&str] = &[
    "model={name: toy-moe, layers: 8, hidden: 2048, heads: 16, ffn_hidden: 5632, vocab: 32000, moe: {experts: 16, top_k: 2, expert_ffn_hidden: 1408, skew: 1.0}}",
    "cluster.nodes=2",
    "parallelism={tp: 1, pp: 1, dp: 16, ep: 16, zero: 1}",
    "training.global_batch=64",
];

impl Base {
    fn overrides(self) -> Vec<String> {
        let v: Vec<&str> = match self {
            Base::Default => vec![],
            Base::Moe => MOE.to_vec(),
            Base::DualPipe => {
                let mut v = MOE.to_vec();
                v.extend(["parallelism={tp: 1, pp: 2, dp: 8, ep: 8, zero: 1, schedule: dualpipe}"]);
                v
            }
            Base::Mla => vec![
                "model={name: toy-mla, layers: 8, hidden: 2048, heads: 16, ffn_hidden: 5632, vocab: 32000, mla: {q_lora_rank: 768, kv_lora_rank: 256, qk_nope_head_dim: 64, qk_rope_head_dim: 32, v_head_dim: 64}}",
            ],
            Base::Zero3 => vec!["parallelism={tp: 4, pp: 1, dp: 16, zero: 3}"],
            Base::Interleaved => vec![
                "parallelism.schedule=interleaved",
                "parallelism.virtual_stages=2",
            ],
            Base::Run => vec!["run.duration=30d"],
            Base::Fp8 => vec!["training.precision=fp8"],
            Base::Lora => vec!["training.finetune=lora", "training.lora_rank=16"],
            Base::Pods => vec![
                "cluster.fabric={kind: clos-pods, tiers: 2, pod_gpus: 32, pod_oversubscription: 2.0}",
                "network.mode=contention",
                "parallelism={tp: 2, pp: 1, dp: 32, zero: 1}",
            ],
            Base::Jobs => vec![
                "network.mode=contention",
                "cluster.fabric={kind: fat-tree, tiers: 2, switch_radix: 32, oversubscription: 4.0}",
                "parallelism={tp: 2, pp: 4, zero: 1}",
                "jobs=[{name: a, gpus: 32}, {name: b, gpus: 32}]",
                "placement=spread",
            ],
            Base::ThreeTier => vec![
                "cluster.fabric={kind: fat-tree, tiers: 3, switch_radix: 8, oversubscription: 1.0, spine_oversubscription: 2.0}",
                "network.mode=contention",
                "parallelism={tp: 1, pp: 1, dp: 64, zero: 1}",
            ],
        };
        v.into_iter().map(str::to_string).collect()
    }
}

/// One key's audit: on `base`, the overrides `set` must change the output at `at`.
struct Entry {
    key: &'static str,
    base: Base,
    set: &'static [&'static str],
    at: &'static str,
}

const fn e(key: &'static str, base: Base, set: &'static [&'static str], at: &'static str) -> Entry {
    Entry { key, base, set, at }
}

use Base::*;

const STEP: &str = "/step_time_s";
const MEM: &str = "/memory_gb";
const RUN: &str = "/run";
const COST: &str = "/cost";
const FILES: &str = "/files";
/// The perturbation is refused (exit 2) with an error naming the key: a value the
/// simulator does not model.
const REFUSED: &str = "!refused";

/// Keys whose value is free text for the reader of the file; their README rows say so.
const FREE_TEXT: &[&str] = &["model.source", "cluster.gpu.source"];

#[rustfmt::skip]
const AUDIT: &[Entry] = &[
    e("name", Default, &["name=other"], "/scenario/name"),
    e("model.name", Default, &["model.name=other"], "/scenario/model"),
    e("model.layers", Default, &["model.layers=16"], STEP),
    e("model.hidden", Default, &["model.hidden=2048"], STEP),
    e("model.heads", Default, &["model.heads=16"], STEP),
    e("model.vocab", Default, &["model.vocab=32000"], STEP),
    e("model.kv_heads", Default, &["model.kv_heads=32"], STEP),
    e("model.ffn_hidden", Default, &["model.ffn_hidden=8192"], STEP),
    e("model.ffn", Default, &["model.ffn=gelu"], STEP),
    e("model.tied_embeddings", Default, &["^parallelism.pp=1", "^parallelism.dp=32", "model.tied_embeddings=true"], MEM),
    e("model.norm", Default, &["model.norm=layernorm"], MEM),
    e("model.dropout", Default, &["model.dropout=0.1"], MEM),
    e("model.mtp_depth", Default, &["model.mtp_depth=1"], STEP),
    e("model.moe.experts", Moe, &["model.moe.experts=32"], STEP),
    e("model.moe.top_k", Moe, &["model.moe.top_k=4"], STEP),
    e("model.moe.expert_ffn_hidden", Moe, &["model.moe.expert_ffn_hidden=2816"], STEP),
    e("model.moe.shared_experts", Moe, &["model.moe.shared_experts=1"], STEP),
    e("model.moe.capacity_factor", Moe, &["model.moe.capacity_factor=1.25"], "/moe/dropped_fraction"),
    e("model.moe.dropless", Moe, &["model.moe.dropless=true"], "/moe/dropped_fraction"),
    e("model.moe.dense_layers", Moe, &["model.moe.dense_layers=2"], STEP),
    e("model.moe.skew", Moe, &["^model.moe.dropless=true", "model.moe.skew=0"], STEP),
    e("model.moe.max_nodes_per_token", Moe, &["model.moe.max_nodes_per_token=1"], STEP),
    e("model.mla.q_lora_rank", Mla, &["model.mla.q_lora_rank=1536"], STEP),
    e("model.mla.kv_lora_rank", Mla, &["model.mla.kv_lora_rank=512"], STEP),
    e("model.mla.qk_nope_head_dim", Mla, &["model.mla.qk_nope_head_dim=128"], STEP),
    e("model.mla.qk_rope_head_dim", Mla, &["model.mla.qk_rope_head_dim=64"], STEP),
    e("model.mla.v_head_dim", Mla, &["model.mla.v_head_dim=128"], STEP),
    e("cluster", Default, &["cluster={from: dgx-a100-hdr, nodes: 8}"], STEP),
    e("training.seq_len", Default, &["training.seq_len=4096"], STEP),
    e("training.global_batch", Default, &["training.global_batch=256"], STEP),
    e("training.micro_batch", Default, &["training.micro_batch=2"], STEP),
    e("training.precision", Default, &["training.precision=fp8"], STEP),
    e("training.recompute", Default, &["training.recompute=full"], STEP),
    e("training.optimizer", Default, &["training.optimizer=sgd"], MEM),
    e("training.flash_attention", Default, &["training.flash_attention=false"], STEP),
    e("training.finetune", Default, &["training.finetune=lora"], STEP),
    e("training.lora_rank", Lora, &["training.lora_rank=256"], STEP),
    e("training.offload_optimizer", Default, &["training.offload_optimizer=true"], STEP),
    e("training.offload_params", Zero3, &["training.offload_params=true"], STEP),
    e("training.memory_reserve_gb", Default, &["training.memory_reserve_gb=9"], MEM),
    e("training.recompute_norms", Default, &["training.recompute_norms=true"], MEM),
    e("training.recompute_mla_up_proj", Mla, &["training.recompute_mla_up_proj=true"], MEM),
    e("training.fp8_activations", Fp8, &["training.fp8_activations=true"], MEM),
    e("parallelism.tp", Default, &["parallelism.tp=4", "parallelism.dp=4"], STEP),
    e("parallelism.pp", Default, &["parallelism.pp=2", "parallelism.dp=16"], STEP),
    e("parallelism.dp", Default, &["parallelism.dp=4", "cluster.nodes=4"], STEP),
    e("parallelism.ep", Moe, &["parallelism.ep=4"], STEP),
    e("parallelism.cp", Default, &["parallelism.cp=2", "parallelism.dp=4"], STEP),
    e("parallelism.sequence_parallel", Default, &["parallelism.sequence_parallel=false"], MEM),
    e("parallelism.schedule", Default, &["parallelism.schedule=zb-h1"], STEP),
    e("parallelism.virtual_stages", Interleaved, &["parallelism.virtual_stages=4"], STEP),
    e("parallelism.stage_layers", Default, &["parallelism.stage_layers=[5, 9, 9, 9]"], STEP),
    e("parallelism.decoder_first_pipeline_num_layers", Default, &["parallelism.decoder_first_pipeline_num_layers=5"], STEP),
    e("parallelism.decoder_last_pipeline_num_layers", Default, &["parallelism.decoder_last_pipeline_num_layers=5"], STEP),
    e("parallelism.account_for_embedding_in_pipeline_split", Default, &["^parallelism.pp=3", "^cluster.nodes=6", "~parallelism.stage_layers=[11, 11, 10]", "parallelism.account_for_embedding_in_pipeline_split=true"], STEP),
    e("parallelism.account_for_loss_in_pipeline_split", Default, &["^parallelism.pp=3", "^cluster.nodes=6", "~parallelism.stage_layers=[10, 11, 11]", "parallelism.account_for_loss_in_pipeline_split=true"], STEP),
    e("parallelism.zero", Default, &["parallelism.zero=3"], STEP),
    e("parallelism.zero_group", Zero3, &["parallelism.zero_group=4"], STEP),
    e("parallelism.overlap_grad_reduce", Default, &["parallelism.overlap_grad_reduce=false"], STEP),
    e("parallelism.tp_comm_overlap", Default, &["parallelism.tp_comm_overlap=true"], STEP),
    e("parallelism.pp_comm_overlap", Default, &["parallelism.pp_comm_overlap=false"], STEP),
    e("parallelism.bucket_params", Default, &["parallelism.bucket_params=1000000000"], STEP),
    e("parallelism.overlap_sm_share", DualPipe, &["parallelism.overlap_sm_share=0.5"], STEP),
    e("stack.preset", Default, &["stack.preset=megatron-core"], STEP),
    e("stack.tp_comm_overlap", Default, &["stack.tp_comm_overlap=full"], STEP),
    e("stack.overlap_grad_reduce", Zero3, &["stack.overlap_grad_reduce=false"], STEP),
    e("stack.overlap_param_gather", Zero3, &["stack.overlap_param_gather=false"], REFUSED),
    e("stack.pp_p2p", Default, &["stack.pp_p2p=sync"], STEP),
    e("stack.grad_accum_fusion", Default, &["stack.grad_accum_fusion=false"], STEP),
    e("stack.grad_reduce_dtype", Default, &["stack.grad_reduce_dtype=fp32"], STEP),
    e("stack.align_grad_reduce", Interleaved, &["stack.align_grad_reduce=true"], STEP),
    e("stack.fp8_attention", Fp8, &["stack.fp8_attention=false"], STEP),
    e("stack.zero3.gather", Zero3, &["stack.zero3.gather=tensor"], STEP),
    e("stack.zero3.prefetch", Zero3, &["stack.zero3.prefetch=0"], STEP),
    e("stack.zero3.sync_per_gather", Zero3, &["stack.zero3.sync_per_gather=true"], STEP),
    e("stack.zero3.recompute_regathers", Zero3, &["^training.recompute=full", "stack.zero3.recompute_regathers=true"], STEP),
    e("stack.zero3.host_us", Zero3, &["stack.zero3.host_us=500"], STEP),
    e("stack.zero3.host_us_per_rank", Zero3, &["stack.zero3.host_us_per_rank=50"], STEP),
    e("stack.zero3.bucket_params", Zero3, &["^stack.zero3.gather=bucket", "~stack.zero3.bucket_params=1000000", "stack.zero3.bucket_params=100000000"], STEP),
    e("stack.zero3.persist_below", Zero3, &["stack.zero3.persist_below=1000000000"], STEP),
    e("network.mode", Default, &["network.mode=contention", "cluster.fabric.oversubscription=4"], STEP),
    e("network.algorithm", Default, &["^parallelism.zero=0", "network.algorithm=ring"], STEP),
    e("network.routing.ecmp", ThreeTier, &["network.routing.ecmp=hash"], STEP),
    e("network.routing.seed", ThreeTier, &["^network.routing.ecmp=hash", "network.routing.seed=7"], STEP),
    e("network.routing.flows_per_connection", ThreeTier, &["^network.routing.ecmp=hash", "network.routing.flows_per_connection=16"], STEP),
    e("jobs.name", Jobs, &["jobs=[{name: x, gpus: 32}, {name: b, gpus: 32}]"], "/jobs/jobs/0/name"),
    e("jobs.model", Jobs, &["jobs=[{name: a, gpus: 32, model: gpt-1.7b}, {name: b, gpus: 32}]"], "/jobs/jobs/0/alone_step_s"),
    e("jobs.training", Jobs, &["jobs=[{name: a, gpus: 32, training: {seq_len: 4096, global_batch: 128}}, {name: b, gpus: 32}]"], "/jobs/jobs/0/alone_step_s"),
    e("jobs.parallelism", Jobs, &["jobs=[{name: a, gpus: 32, parallelism: {tp: 4, pp: 2, zero: 1}}, {name: b, gpus: 32}]"], "/jobs/jobs/0/alone_step_s"),
    e("jobs.stack", Jobs, &["jobs=[{name: a, gpus: 32, stack: {preset: megatron-core}}, {name: b, gpus: 32}]"], "/jobs/jobs/0/alone_step_s"),
    e("jobs.gpus", Jobs, &["jobs=[{name: a, gpus: 16}, {name: b, gpus: 32}]"], "/jobs/jobs/0/gpus"),
    e("jobs.nodes", Jobs, &["jobs=[{name: a, nodes: [7, 6, 5, 4]}, {name: b, gpus: 32}]"], "/jobs/jobs/0/nodes"),
    e("placement", Jobs, &["placement=packed"], "/jobs/jobs/0/shared_step_s"),
    e("background.nic_leaf", Jobs, &["background.nic_leaf=0.9"], "/jobs/jobs/0/shared_step_s"),
    e("background.leaf_spine", Jobs, &["background.leaf_spine=0.5"], "/jobs/jobs/0/shared_step_s"),
    e("background.spine_core", Jobs, &["cluster.fabric={kind: fat-tree, tiers: 3, switch_radix: 8, oversubscription: 1.0, spine_oversubscription: 2.0}", "background.spine_core=0.5"], "/jobs/jobs/0/shared_step_s"),
    e("background.checkpoint_gb_per_node", Jobs, &["^cluster.nodes=10", "^background.storage_nodes=[9]", "~background.checkpoint_gb_per_node=1", "background.checkpoint_gb_per_node=50"], "/jobs/jobs/0/alone_step_s"),
    e("background.storage_nodes", Jobs, &["^cluster.nodes=10", "^background.checkpoint_gb_per_node=50", "~background.storage_nodes=[9]", "background.storage_nodes=[8, 9]"], "/jobs/jobs/1/alone_step_s"),
    e("network.routing.adaptive", ThreeTier, &["~network.routing.ecmp=hash", "network.routing.adaptive=true"], STEP),
    e("outputs.timeline", Default, &["outputs.timeline=none"], FILES),
    e("outputs.charts", Default, &["outputs.charts=false"], FILES),
    e("faults.seed", Run, &["faults.seed=7"], RUN),
    e("faults.failures.enabled", Run, &["faults.failures.enabled=false"], RUN),
    e("faults.failures.lemons.fraction", Run, &["faults.failures.lemons={fraction: 0.25, rate_multiplier: 20}"], RUN),
    e("faults.failures.lemons.rate_multiplier", Run, &["faults.failures.lemons={fraction: 0.25, rate_multiplier: 20}"], RUN),
    e("faults.failures.lemons.removed_after", Run, &["faults.failures.lemons={fraction: 0.25, rate_multiplier: 50, removed_after: 1}"], RUN),
    e("faults.failures.detection", Run, &["faults.failures.detection=1h"], RUN),
    e("faults.failures.restart", Run, &["faults.failures.restart=2h"], RUN),
    e("faults.failures.repair", Run, &["^faults.failures.spares=0", "faults.failures.repair=30d"], RUN),
    e("faults.failures.spares", Run, &["faults.failures.repair=30d", "faults.failures.spares=0"], RUN),
    e("faults.stragglers.ranks", Default, &["faults.stragglers=[{ranks: [0], slowdown: 1.5}]"], STEP),
    e("faults.stragglers.fraction", Default, &["faults.stragglers=[{fraction: 0.5, slowdown: 1.5}]"], STEP),
    e("faults.stragglers.slowdown", Default, &["faults.stragglers=[{ranks: [0], slowdown: 2}]"], STEP),
    e("faults.stragglers.slowdown_max", Default, &["faults.stragglers=[{fraction: 0.5, slowdown: 1.1, slowdown_max: 3}]"], STEP),
    e("faults.stragglers.rate_per_gpu_day", Run, &["faults.stragglers=[{fraction: 1.0, slowdown: 2, rate_per_gpu_day: 0.5, duration: 2h}]"], RUN),
    e("faults.stragglers.duration", Run, &["faults.stragglers=[{fraction: 1.0, slowdown: 2, rate_per_gpu_day: 0.5, duration: 12h}]"], RUN),
    e("faults.links.ranks", Default, &["faults.links=[{ranks: [0], nic_factor: 0.1}]"], STEP),
    e("faults.links.fraction", Default, &["faults.links=[{fraction: 1.0, nic_factor: 0.1}]"], STEP),
    e("faults.links.nic_factor", Default, &["faults.links=[{ranks: [0], nic_factor: 0.01}]"], STEP),
    e("faults.links.nvlink_factor", Default, &["faults.links=[{ranks: [0], nvlink_factor: 0.1}]"], STEP),
    e("faults.links.flap_period", Default, &["faults.links=[{ranks: [0], flap_period: 10ms, flap_down: 5ms}]"], STEP),
    e("faults.links.flap_down", Default, &["faults.links=[{ranks: [0], flap_period: 10ms, flap_down: 9ms}]"], STEP),
    e("checkpoint.every", Run, &["checkpoint.every=10m"], RUN),
    e("checkpoint.mode", Run, &["checkpoint.mode=async"], RUN),
    e("checkpoint.bytes_per_param", Run, &["checkpoint.bytes_per_param=100"], RUN),
    e("checkpoint.node_write_gbs", Run, &["checkpoint.node_write_gbs=0.1"], RUN),
    e("checkpoint.node_read_gbs", Run, &["checkpoint.node_read_gbs=0.01"], RUN),
    e("checkpoint.snapshot_gbs", Run, &["checkpoint.mode=async", "checkpoint.snapshot_gbs=0.1"], RUN),
    e("checkpoint.write_time", Run, &["checkpoint.write_time=10m"], RUN),
    e("checkpoint.load_time", Run, &["checkpoint.load_time=1h"], RUN),
    e("run.duration", Run, &["run.duration=60d"], RUN),
    e("run.steps", Default, &["run.steps=100000"], RUN),
    e("run.tokens", Default, &["run.tokens=1e12"], RUN),
    e("run.replicas", Run, &["run.replicas=3"], RUN),
    // The topology (`cluster:`).
    e("cluster.name", Default, &["cluster.name=other"], "/scenario/cluster"),
    e("cluster.gpu", Default, &["cluster.gpu=h200-sxm"], STEP),
    e("cluster.gpu.name", Default, &["cluster.gpu.name=my-gpu"], "/scenario/gpu"),
    e("cluster.gpu.peak_tflops.fp32", Default, &["training.precision=fp32", "cluster.gpu.peak_tflops.tf32=100"], STEP),
    e("cluster.gpu.peak_tflops.tf32", Default, &["training.precision=fp32", "cluster.gpu.peak_tflops.tf32=100"], STEP),
    e("cluster.gpu.peak_tflops.bf16", Default, &["cluster.gpu.peak_tflops.bf16=500"], STEP),
    e("cluster.gpu.peak_tflops.fp16", Default, &["training.precision=fp16", "cluster.gpu.peak_tflops.fp16=500"], STEP),
    e("cluster.gpu.peak_tflops.fp8", Fp8, &["cluster.gpu.peak_tflops.fp8=1000"], STEP),
    e("cluster.gpu.peak_tflops.fp4", Default, &["cluster.gpu=b200", "training.precision=fp4", "cluster.gpu.peak_tflops.fp4=4000"], STEP),
    e("cluster.gpu.memory_gb", Default, &["cluster.gpu.memory_gb=40"], "/memory_gb/capacity"),
    e("cluster.gpu.memory_bw_gbs", Default, &["cluster.gpu.memory_bw_gbs=1000"], STEP),
    e("cluster.gpu.power_w", Default, &["cluster.cost.power_kw_per_node=0", "cluster.gpu.power_w=1000"], COST),
    e("cluster.gpu.price_usd", Default, &["cluster.gpu.price_usd=1"], COST),
    e("cluster.gpu.pcie_gbs", Zero3, &["training.offload_params=true", "cluster.node.pcie_gbs=null", "cluster.gpu.pcie_gbs=4"], STEP),
    e("cluster.gpu.gemm_efficiency", Default, &["cluster.gpu.gemm_efficiency=0.5"], STEP),
    e("cluster.gpu.fp8_gemm_efficiency", Fp8, &["cluster.gpu.fp8_gemm_efficiency=0.4"], STEP),
    e("cluster.gpu.hbm_efficiency", Default, &["cluster.gpu.hbm_efficiency=0.4"], STEP),
    e("cluster.gpu.sustained_efficiency", Default, &["cluster.gpu.sustained_efficiency=0.5"], STEP),
    e("cluster.gpu.calibration", Default, &["cluster.gpu.calibration=megatron-sc21-a100"], "/uncertainty"),
    e("cluster.nodes", Default, &["cluster.nodes=16", "parallelism.dp=16"], COST),
    e("cluster.node.gpus", Default, &["cluster.node.gpus=4", "cluster.node.nics=4", "cluster.nodes=16"], STEP),
    e("cluster.node.nics", Default, &["cluster.node.nics=2"], STEP),
    e("cluster.node.nic_gbps", Default, &["cluster.node.nic_gbps=100"], STEP),
    e("cluster.node.nvlink_gbs", Default, &["cluster.node.nvlink_gbs=50"], STEP),
    e("cluster.node.nvlink_domain", Default, &["cluster.node.nvlink_domain=1"], STEP),
    e("cluster.node.pcie_gbs", Zero3, &["training.offload_params=true", "cluster.node.pcie_gbs=4"], STEP),
    e("cluster.fabric.kind", Default, &["network.mode=contention", "cluster.fabric.kind=single-switch"], STEP),
    e("cluster.fabric.tiers", ThreeTier, &["cluster.fabric.tiers=2", "cluster.fabric.switch_radix=64"], STEP),
    e("cluster.fabric.oversubscription", Default, &["network.mode=contention", "cluster.fabric.oversubscription=8"], STEP),
    e("cluster.fabric.hop_latency_us", Default, &["cluster.fabric.hop_latency_us=100"], STEP),
    e("cluster.fabric.switch_radix", Default, &["cluster.fabric.switch_radix=8"], COST),
    e("cluster.fabric.spine_oversubscription", ThreeTier, &["cluster.fabric.spine_oversubscription=8"], STEP),
    e("cluster.fabric.pod_gpus", Pods, &["cluster.fabric.pod_gpus=64"], STEP),
    e("cluster.fabric.sharp", Default, &["^parallelism.zero=0", "cluster.fabric.sharp=true"], STEP),
    e("cluster.fabric.transport", Default, &["^cluster.fabric.sharp=true", "cluster.fabric.transport=roce"], REFUSED),
    e("cluster.fabric.pod_oversubscription", Pods, &["cluster.fabric.pod_oversubscription=8"], STEP),
    e("cluster.storage.write_gbs", Run, &["cluster.storage.write_gbs=1"], RUN),
    e("cluster.storage.read_gbs", Run, &["cluster.storage.read_gbs=0.1"], RUN),
    e("cluster.cost.gpu_hour_usd", Default, &["cluster.cost.gpu_hour_usd=9"], COST),
    e("cluster.cost.power_kw_per_node", Default, &["cluster.cost.power_kw_per_node=20"], COST),
    e("cluster.cost.pue", Default, &["cluster.cost.pue=2"], COST),
    e("cluster.cost.usd_per_kwh", Default, &["cluster.cost.usd_per_kwh=1"], COST),
];

/// Failure classes: each has the same four keys.
const CLASSES: [&str; 6] = ["gpu", "gpu_memory", "node", "nic", "link", "switch"];

/// The entries for `faults.failures.<class>.*`, built per class.
fn class_entries() -> Vec<(String, Base, Vec<String>, &'static str)> {
    let mut out = Vec::new();
    for c in CLASSES {
        let k = |f: &str| format!("faults.failures.{c}.{f}");
        out.push((k("mtbf"), Run, vec![format!("{}=2d", k("mtbf"))], RUN));
        out.push((
            k("per_1000_node_days"),
            Run,
            vec![format!("{}=500", k("per_1000_node_days"))],
            RUN,
        ));
        out.push((
            k("distribution"),
            Run,
            vec![
                format!("{}=2d", k("mtbf")),
                format!("{}=weibull", k("distribution")),
                format!("{}=0.5", k("shape")),
            ],
            RUN,
        ));
        out.push((
            k("shape"),
            Run,
            vec![
                format!("{}=2d", k("mtbf")),
                format!("{}=weibull", k("distribution")),
                format!("{}=0.3", k("shape")),
            ],
            RUN,
        ));
    }
    out
}

/// What a scenario produces: `summary.json`, the cluster's cost over one day at the
/// default prices, and (for `/files`) the names of the files a run writes.
fn observe(set: &[String], files: bool) -> Result<Value, String> {
    let out = Simulation::default_scenario()
        .with_overrides(set)
        .and_then(|s| s.run())
        .map_err(|e| e.to_string())?;
    let mut v = serde_json::to_value(out.summary()).map_err(|e| e.to_string())?;
    let prices = clustersim::cost::Prices::default();
    let cost = clustersim::cost::cluster_cost(&out.scenario.cluster, &prices);
    v["cost"] = json!({
        "capital": serde_json::to_value(&cost.capital).map_err(|e| e.to_string())?,
        "day": serde_json::to_value(cost.spend(86_400.0)).map_err(|e| e.to_string())?,
    });
    if files {
        let dir = std::env::temp_dir().join(format!(
            "clustersim-key-audit-{}-{}",
            std::process::id(),
            set.join(",").len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let written = out.write_to(&dir).map_err(|e| e.to_string())?;
        let names: BTreeSet<String> = written
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        v["files"] = json!(names);
    }
    Ok(v)
}

/// Checks one key: the base and the perturbed scenario both run, and differ at `at`. In
/// `set`, `^x` applies to both scenarios, `~x` to the base only, anything else to the
/// perturbed one only.
fn audit(key: &str, base: Base, set: &[String], at: &str) -> Result<(), String> {
    let mut base_set = base.overrides();
    let mut perturbed = base_set.clone();
    for s in set {
        if let Some(both) = s.strip_prefix('^') {
            base_set.push(both.to_string());
            perturbed.push(both.to_string());
        } else if let Some(only) = s.strip_prefix('~') {
            base_set.push(only.to_string());
        } else {
            perturbed.push(s.clone());
        }
    }
    let files = at == FILES;
    let a = observe(&base_set, files).map_err(|e| format!("{key}: base scenario: {e}"))?;
    let b = observe(&perturbed, files);
    if at == REFUSED {
        return match b {
            Err(e) if e.contains(key) => Ok(()),
            Err(e) => Err(format!(
                "{key}: {set:?} is refused without naming the key: {e}"
            )),
            Ok(_) => Err(format!(
                "{key}: {set:?} is accepted, but the audit expects it refused"
            )),
        };
    }
    let b = b.map_err(|e| format!("{key}: {set:?}: {e}"))?;
    let (x, y) = (a.pointer(at), b.pointer(at));
    if x.is_none() && y.is_none() {
        return Err(format!("{key}: `{at}` is in neither output"));
    }
    if x == y {
        return Err(format!("{key}: {set:?} leaves `{at}` unchanged ({x:?})"));
    }
    Ok(())
}

#[test]
fn every_accepted_key_changes_the_output() {
    let accepted = common::accepted_keys();
    let is_leaf = |k: &String| !accepted.iter().any(|o| o.starts_with(&format!("{k}.")));
    let mut entries: Vec<(String, Base, Vec<String>, &str)> = AUDIT
        .iter()
        .map(|e| {
            (
                e.key.to_string(),
                e.base,
                e.set.iter().map(|s| s.to_string()).collect(),
                e.at,
            )
        })
        .collect();
    entries.extend(class_entries());
    let audited: BTreeSet<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|k| is_leaf(k) && !audited.contains(k.as_str()))
        .filter(|k| !FREE_TEXT.contains(&k.as_str()))
        .collect();
    let stale: Vec<&&str> = audited.iter().filter(|k| !accepted.contains(**k)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "keys the loader accepts without an audit entry: {missing:?}; entries for keys it does not accept: {stale:?}"
    );
    let failures: Vec<String> = entries
        .par_iter()
        .filter_map(|(key, base, set, at)| audit(key, *base, set, at).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} keys change nothing they claim to:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The free-text keys are documented as ignored.
#[test]
fn free_text_keys_are_documented_as_ignored() {
    let readme = include_str!("../README.md");
    for key in FREE_TEXT {
        let leaf = key.trim_start_matches("cluster.");
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{leaf}`")))
            .unwrap_or_else(|| panic!("README has no row for `{leaf}`"));
        assert!(row.contains("free text, ignored"), "{row}");
    }
}

/// Tied embeddings on one pipeline stage hold one copy: the 16-bit weights shrink by the
/// vocabulary × hidden matrix over TP (Llama 3 8B: 128,256 × 4,096, TP2, 2 bytes).
#[test]
fn tied_embeddings_on_one_stage_hold_one_copy() {
    let weights = |tied: &str| {
        let set = [
            "parallelism.pp=1".to_string(),
            "parallelism.dp=32".to_string(),
            format!("model.tied_embeddings={tied}"),
        ];
        let v = observe(&set, false).unwrap();
        v.pointer("/memory_gb/weights").unwrap().as_f64().unwrap()
    };
    let saved = weights("false") - weights("true");
    let by_hand = 128_256.0 * 4_096.0 / 2.0 * 2.0 / 1e9;
    assert!((saved / by_hand - 1.0).abs() < 1e-9, "{saved} vs {by_hand}");
}
