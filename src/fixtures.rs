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
                sustained_efficiency: 1.0,
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
            tp_comm_overlap: false,
            pp_comm_overlap: true,
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

/// Llama-3 405B shapes (Meta, "The Llama 3 Herd of Models", Table 3).
pub fn llama3_405b() -> ModelSpec {
    ModelSpec {
        name: "llama3-405b".into(),
        layers: 126,
        hidden: 16384,
        heads: 128,
        kv_heads: 8,
        ffn_hidden: 53248,
        ffn: FfnKind::Swiglu,
        vocab: 128256,
        moe: None,
        tied_embeddings: false,
    }
}

/// The 16,384-GPU Llama-3 405B step: TP8 PP16 DP128, sequence 8192, 2048 sequences.
pub fn llama3_405b_16k() -> Scenario {
    let mut s = toy_scenario(8, 16, 128, 126, 2048);
    s.name = "llama3-405b-16k".into();
    s.model = llama3_405b();
    s.training.seq_len = 8192;
    s.training.recompute = Recompute::Selective;
    s
}

/// An A100 80GB as in `data/gpus.yaml` (efficiencies from calibration/kernels.csv).
pub fn a100_80gb() -> GpuSpec {
    GpuSpec {
        name: "a100-sxm-80gb".into(),
        peak_tflops: PeakTflops {
            fp32: Some(19.5),
            tf32: Some(156.0),
            bf16: 312.0,
            fp16: Some(312.0),
            fp8: None,
        },
        memory_gb: 80.0,
        memory_bw_gbs: 2039.0,
        power_w: 400.0,
        price_usd: 15000.0,
        gemm_efficiency: 253.7 / 312.0,
        fp8_gemm_efficiency: None,
        hbm_efficiency: 1610.0 / 2039.0,
        sustained_efficiency: env_factor("CS_A100", 1.0),
    }
}

/// DGX A100 nodes on 8x HDR 200 Gb/s InfiniBand (Selene-like fat tree).
pub fn dgx_a100_hdr(nodes: u64) -> ClusterSpec {
    let mut c = toy_scenario(8, 1, 1, 1, 1).cluster;
    c.name = "dgx-a100-hdr".into();
    c.gpu = a100_80gb();
    c.nodes = nodes;
    c.node.nvlink_gbs = 300.0;
    c.node.nic_gbps = 200.0;
    c.fabric.kind = FabricKind::FatTree;
    c.fabric.tiers = 3;
    c
}

/// DGX H100 nodes on 8x NDR 400 Gb/s InfiniBand, rail-optimized.
pub fn dgx_h100_ndr(nodes: u64) -> ClusterSpec {
    let mut c = toy_scenario(8, 1, 1, 1, 1).cluster;
    c.name = "dgx-h100-ndr".into();
    c.gpu.gemm_efficiency = 798.0 / 989.0;
    c.gpu.fp8_gemm_efficiency = Some(1290.0 / 1979.0);
    c.gpu.hbm_efficiency = 2900.0 / 3350.0;
    c.gpu.sustained_efficiency = env_factor("CS_H100", 1.0);
    c.nodes = nodes;
    c
}

fn env_factor(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
