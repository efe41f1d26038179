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
                spine_oversubscription: 1.0,
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

/// A few catalog GPUs for tests, benchmarks and the interim topology loader (the full
/// catalog lives in `config`). Figures from vendor spec tables (reference.md "Hardware").
pub fn gpu_preset(name: &str) -> Option<GpuSpec> {
    let (bf16, fp8, mem, bw, power, price) = match name {
        "a100-sxm-40gb" => (312.0, None, 40.0, 1555.0, 400.0, 10000.0),
        "a100-sxm-80gb" | "a100" => (312.0, None, 80.0, 2039.0, 400.0, 15000.0),
        "h100-sxm" | "h100" => (989.0, Some(1979.0), 80.0, 3350.0, 700.0, 30000.0),
        "h200-sxm" | "h200" => (989.0, Some(1979.0), 141.0, 4800.0, 700.0, 35000.0),
        "b200" => (2250.0, Some(4500.0), 180.0, 8000.0, 1000.0, 40000.0),
        "gb200" => (2500.0, Some(5000.0), 186.0, 8000.0, 1200.0, 45000.0),
        "rtx-4090" => (165.0, Some(330.0), 24.0, 1008.0, 450.0, 1800.0),
        _ => return None,
    };
    Some(GpuSpec {
        name: name.into(),
        peak_tflops: PeakTflops {
            fp32: None,
            tf32: None,
            bf16,
            fp16: None,
            fp8,
        },
        memory_gb: mem,
        memory_bw_gbs: bw,
        power_w: power,
        price_usd: price,
        gemm_efficiency: 0.75,
        fp8_gemm_efficiency: None,
        hbm_efficiency: 0.85,
    })
}

/// A cluster of `nodes` nodes of `gpus` GPUs of a catalog type, one NIC per GPU
/// (`nic_gbps` each), NVLink at `nvlink_gbs` (0 = PCIe only), on a fabric of `kind` with
/// leaf oversubscription `oversubscription` and 64-port switches.
pub fn cluster(
    gpu: &str,
    nodes: u64,
    gpus: u64,
    nvlink_gbs: f64,
    nic_gbps: f64,
    kind: FabricKind,
    oversubscription: f64,
) -> ClusterSpec {
    ClusterSpec {
        name: format!("{gpu}-{nodes}x{gpus}"),
        gpu: gpu_preset(gpu).unwrap_or_else(|| panic!("unknown GPU preset {gpu}")),
        nodes,
        node: NodeSpec {
            gpus,
            nvlink_gbs,
            nics: gpus,
            nic_gbps,
            nvlink_domain: gpus,
            pcie_gbs: 64.0,
        },
        fabric: FabricSpec {
            kind,
            tiers: 2,
            oversubscription,
            hop_latency_us: 1.0,
            pod_gpus: None,
            pod_oversubscription: 1.0,
            switch_radix: 64,
            spine_oversubscription: 1.0,
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
    }
}
