//! The YAML schema as written by users: scenario and topology files, and the preset
//! catalogs in `data/`. Every struct denies unknown keys; optional keys are `Option` so
//! that [`super::resolve`] applies (and documents) the defaults in one place.
//!
//! These types mirror the files, not the simulator: they are never used outside `config`.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::run_spec::{CheckpointSpec, RunSpec};
use crate::faults::FaultsSpec;
use crate::hardware::{FabricKind, Precision};
use crate::model::FfnKind;
use crate::network::{AlgorithmChoice, Ecmp, NetworkMode};
use crate::plan::stack::{GradReduceDtype, P2p, TpOverlap, Zero3Gather};
use crate::plan::{Finetune, Optimizer, Recompute, ScheduleKind};

/// A whole scenario file, after preset names (`model`, `cluster.gpu`) and topology paths
/// (`cluster`) have been expanded into mappings in the tree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<String>,
    pub model: RawModel,
    pub cluster: RawTopology,
    pub training: RawTraining,
    #[serde(default)]
    pub parallelism: RawParallelism,
    pub faults: Option<FaultsSpec>,
    pub checkpoint: Option<CheckpointSpec>,
    pub run: Option<RunSpec>,
    #[serde(default)]
    pub outputs: RawOutputs,
    #[serde(default)]
    pub network: RawNetwork,
    pub stack: Option<RawStack>,
    /// Several jobs sharing the cluster ([`super::jobs`]).
    pub jobs: Option<Vec<super::jobs::RawJob>>,
    pub placement: Option<super::jobs::Placement>,
    pub background: Option<super::jobs::RawBackground>,
}

/// `stack:`: a preset from `data/stacks.yaml` and any field overridden on its own.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStack {
    pub preset: Option<String>,
    pub tp_comm_overlap: Option<TpOverlap>,
    pub overlap_grad_reduce: Option<bool>,
    pub overlap_param_gather: Option<bool>,
    pub pp_p2p: Option<P2p>,
    pub grad_accum_fusion: Option<bool>,
    pub grad_reduce_dtype: Option<GradReduceDtype>,
    pub align_grad_reduce: Option<bool>,
    pub fp8_attention: Option<bool>,
    pub zero3: Option<RawZero3>,
}

/// `stack.zero3:`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZero3 {
    pub gather: Option<Zero3Gather>,
    pub bucket_params: Option<u64>,
    pub prefetch: Option<u64>,
    pub sync_per_gather: Option<bool>,
    pub recompute_regathers: Option<bool>,
    pub persist_below: Option<u64>,
    pub host_us: Option<f64>,
    pub host_us_per_rank: Option<f64>,
}

/// `network: { mode: analytic | contention, algorithm: auto | ring | tree | nvls | hierarchical,
/// routing: { ecmp, seed, flows_per_connection, adaptive } }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub mode: Option<NetworkMode>,
    pub algorithm: Option<AlgorithmChoice>,
    pub routing: Option<RawRouting>,
}

/// `network.routing`: how switches choose among equal-cost uplinks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub ecmp: Option<Ecmp>,
    pub seed: Option<u64>,
    pub flows_per_connection: Option<u32>,
    pub adaptive: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a model preset name or a mapping")]
pub struct RawModel {
    pub name: Option<String>,
    pub layers: u64,
    pub hidden: u64,
    pub heads: u64,
    pub kv_heads: Option<u64>,
    pub ffn_hidden: Option<u64>,
    pub ffn: Option<FfnKind>,
    pub vocab: u64,
    pub moe: Option<RawMoe>,
    pub tied_embeddings: Option<bool>,
    pub mla: Option<crate::model::MlaSpec>,
    pub mtp_depth: Option<u64>,
    pub dropout: Option<f64>,
    pub norm: Option<crate::model::Norm>,
    /// Where the figures come from (catalog entries); free text, ignored by the simulator.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMoe {
    pub experts: u64,
    pub top_k: u64,
    pub expert_ffn_hidden: u64,
    pub shared_experts: Option<u64>,
    /// Absent: the default; `null`: dropless; a number: that capacity factor.
    #[serde(default, deserialize_with = "explicit_null")]
    pub capacity_factor: Option<Option<f64>>,
    pub dropless: Option<bool>,
    pub dense_layers: Option<u64>,
    pub skew: Option<f64>,
    pub max_nodes_per_token: Option<u64>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent key (`None`, via `default`).
fn explicit_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraining {
    pub seq_len: u64,
    pub global_batch: u64,
    pub micro_batch: Option<u64>,
    pub precision: Option<Precision>,
    pub recompute: Option<Recompute>,
    pub optimizer: Option<Optimizer>,
    pub flash_attention: Option<bool>,
    pub finetune: Option<Finetune>,
    pub lora_rank: Option<u64>,
    pub offload_optimizer: Option<bool>,
    pub offload_params: Option<bool>,
    pub memory_reserve_gb: Option<f64>,
    pub recompute_norms: Option<bool>,
    pub recompute_mla_up_proj: Option<bool>,
    pub fp8_activations: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParallelism {
    pub tp: Option<u64>,
    pub pp: Option<u64>,
    pub dp: Option<u64>,
    pub ep: Option<u64>,
    pub cp: Option<u64>,
    pub sequence_parallel: Option<bool>,
    pub schedule: Option<ScheduleKind>,
    pub virtual_stages: Option<u64>,
    pub zero: Option<u64>,
    pub overlap_grad_reduce: Option<bool>,
    #[serde(default)]
    pub tp_comm_overlap: Option<bool>,
    #[serde(default)]
    pub pp_comm_overlap: Option<bool>,
    pub stage_layers: Option<Vec<u64>>,
    pub decoder_first_pipeline_num_layers: Option<u64>,
    pub decoder_last_pipeline_num_layers: Option<u64>,
    pub account_for_embedding_in_pipeline_split: Option<bool>,
    pub account_for_loss_in_pipeline_split: Option<bool>,
    pub bucket_params: Option<u64>,
    pub zero_group: Option<u64>,
    pub overlap_sm_share: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutputs {
    pub timeline: Option<RawTimeline>,
    pub charts: Option<bool>,
}

/// `representative | all | none | [rank, ...]`.
#[derive(Debug)]
pub enum RawTimeline {
    Representative,
    All,
    None,
    Ranks(Vec<u64>),
}

impl<'de> Deserialize<'de> for RawTimeline {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTimeline;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`representative`, `all`, `none` or a list of ranks")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTimeline, E> {
                match v {
                    "representative" => Ok(RawTimeline::Representative),
                    "all" => Ok(RawTimeline::All),
                    "none" => Ok(RawTimeline::None),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawTimeline, A::Error> {
                let mut ranks = Vec::new();
                while let Some(r) = seq.next_element::<u64>()? {
                    ranks.push(r);
                }
                Ok(RawTimeline::Ranks(ranks))
            }
        }
        d.deserialize_any(V)
    }
}

/// A topology file (or an inline `cluster:` mapping).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a topology file path or a mapping")]
pub struct RawTopology {
    pub name: Option<String>,
    pub gpu: RawGpu,
    pub nodes: u64,
    pub node: RawNode,
    pub fabric: RawFabric,
    pub storage: Option<RawStorage>,
    pub cost: Option<RawCost>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a GPU catalog name or a mapping")]
pub struct RawGpu {
    pub name: Option<String>,
    pub peak_tflops: RawPeak,
    pub memory_gb: f64,
    pub memory_bw_gbs: f64,
    pub power_w: f64,
    pub price_usd: Option<f64>,
    pub gemm_efficiency: Option<f64>,
    pub fp8_gemm_efficiency: Option<f64>,
    pub hbm_efficiency: Option<f64>,
    #[serde(default)]
    pub sustained_efficiency: Option<f64>,
    /// The calibration table whose error bands this GPU's predictions
    /// (`megatron-sc21-a100` or `megatron-core-h100`).
    pub calibration: Option<String>,
    /// PCIe bandwidth per GPU per direction (the default for `node.pcie_gbs`).
    pub pcie_gbs: Option<f64>,
    /// Where the figures come from; free text, ignored by the simulator.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeak {
    pub fp32: Option<f64>,
    pub tf32: Option<f64>,
    pub bf16: f64,
    pub fp16: Option<f64>,
    pub fp8: Option<f64>,
    pub fp4: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub gpus: u64,
    pub nvlink_gbs: f64,
    pub nics: u64,
    pub nic_gbps: f64,
    pub nvlink_domain: Option<u64>,
    pub pcie_gbs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFabric {
    pub kind: FabricKind,
    pub tiers: Option<u64>,
    pub oversubscription: Option<f64>,
    pub hop_latency_us: Option<f64>,
    pub pod_gpus: Option<u64>,
    pub pod_oversubscription: Option<f64>,
    pub switch_radix: Option<u64>,
    pub spine_oversubscription: Option<f64>,
    pub transport: Option<crate::hardware::Transport>,
    pub sharp: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub write_gbs: f64,
    pub read_gbs: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCost {
    pub gpu_hour_usd: Option<f64>,
    pub power_kw_per_node: Option<f64>,
    pub pue: Option<f64>,
    pub usd_per_kwh: Option<f64>,
}
