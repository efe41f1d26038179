//! Small in-code scenarios for unit tests, benchmarks and doc examples: no files needed.

use crate::config::{OutputsSpec, Scenario};
use crate::hardware::*;
use crate::model::{FfnKind, ModelSpec};
use crate::plan::*;

/// A 2048-hidden GPT-like model on DGX-H100-like nodes with the given plan.
pub fn toy_scenario(tp: u64, pp: u64, dp: u64, layers: u64, global_batch: u64) -> Scenario {
    let gpus = tp * pp * dp;
    Scenario {
        name: "toy".into(),
        source: None,
        model: ModelSpec {
            name: "toy".into(),
            layers,
            hidden: 2048,
            heads: 16,
            kv_heads: 16,
            ffn_hidden: 8192,
            ffn: FfnKind::Gelu,
            vocab: 32000,
            moe: None,
            tied_embeddings: false,
        },
        cluster: ClusterSpec {
            name: "toy".into(),
            gpu: GpuSpec {
                name: "h100-sxm".into(),
                peak_tflops: PeakTflops {
                    fp32: None,
                    tf32: None,
                    bf16: 989.0,
                    fp16: None,
                    fp8: Some(1979.0),
                },
                memory_gb: 80.0,
                memory_bw_gbs: 3350.0,
                power_w: 700.0,
                price_usd: 30000.0,
                gemm_efficiency: 0.8,
                fp8_gemm_efficiency: None,
                hbm_efficiency: 0.87,
            },
            nodes: gpus.div_ceil(8),
            node: NodeSpec {
                gpus: 8,
                nvlink_gbs: 450.0,
                nics: 8,
                nic_gbps: 400.0,
                nvlink_domain: 8,
                pcie_gbs: 64.0,
            },
            fabric: FabricSpec {
                kind: FabricKind::RailOptimized,
                tiers: 2,
                oversubscription: 1.0,
                hop_latency_us: 1.0,
                pod_gpus: None,
                pod_oversubscription: 1.0,
                switch_radix: 64,
            },
            storage: StorageSpec {
                write_gbs: 500.0,
                read_gbs: 1000.0,
            },
            cost: CostSpec {
                gpu_hour_usd: 2.5,
                power_kw_per_node: 10.2,
                pue: 1.3,
                usd_per_kwh: 0.08,
            },
        },
        training: TrainingSpec {
            seq_len: 2048,
            global_batch,
            micro_batch: 1,
            precision: Precision::Bf16,
            recompute: Recompute::None,
            optimizer: Optimizer::Adam,
            flash_attention: true,
        },
        parallelism: ParallelismSpec {
            tp,
            pp,
            dp,
            ep: 1,
            cp: 1,
            sequence_parallel: true,
            schedule: ScheduleKind::OneFOneB,
            virtual_stages: 1,
            zero: 1,
            overlap_grad_reduce: true,
            stage_layers: None,
            bucket_params: 40_000_000,
        },
        steps: 1,
        faults: Default::default(),
        checkpoint: None,
        run: None,
        outputs: OutputsSpec::default(),
    }
}
