//! Small in-code scenarios for unit tests, benchmarks and doc examples: no files needed.

use crate::config::{OutputsSpec, Scenario};
use crate::hardware::*;
use crate::model::{FfnKind, ModelSpec, MoeSpec};
use crate::plan::*;

/// Storage of every fixture cluster: 500 GB/s write, 1 TB/s read.
const FIXTURE_STORAGE: StorageSpec = StorageSpec {
    write_gbs: 500.0,
    read_gbs: 1000.0,
};

/// Prices of every fixture cluster.
const FIXTURE_COST: CostSpec = CostSpec {
    gpu_hour_usd: 2.5,
    power_kw_per_node: 10.2,
    pue: 1.3,
    usd_per_kwh: 0.08,
};

/// A two-tier fabric of 64-port switches with 1 µs hops.
fn two_tier_fabric(kind: FabricKind, oversubscription: f64) -> FabricSpec {
    FabricSpec {
        kind,
        tiers: 2,
        oversubscription,
        hop_latency_us: 1.0,
        pod_gpus: None,
        pod_oversubscription: 1.0,
        switch_radix: 64,
        spine_oversubscription: 1.0,
        transport: Default::default(),
        sharp: false,
    }
}

/// The toy scenario with a node MTBF of 2,000 h, 90 s synchronous checkpoints and a
/// 60-day run: what checkpoint-interval tests sweep.
pub fn toy_checkpoint_scenario() -> Scenario {
    let mut s = toy_scenario(8, 4, 32, 32, 64);
    s.faults.failures.node.mtbf = Some("2000h".into());
    s.checkpoint = Some(crate::config::run_spec::CheckpointSpec {
        write_time: Some("90s".into()),
        ..Default::default()
    });
    s.run = Some(crate::config::run_spec::RunSpec {
        duration: Some("60d".into()),
        ..Default::default()
    });
    s
}

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
            mla: None,
            mtp_depth: 0,
            dropout: 0.1,
            norm: Default::default(),
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
                    fp4: None,
                },
                memory_gb: 80.0,
                memory_bw_gbs: 3350.0,
                power_w: 700.0,
                price_usd: 30000.0,
                gemm_efficiency: 0.8,
                fp8_gemm_efficiency: None,
                hbm_efficiency: 0.87,
                sustained_efficiency: 1.0,
                calibration: None,
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
            fabric: two_tier_fabric(FabricKind::RailOptimized, 1.0),
            storage: FIXTURE_STORAGE,
            cost: FIXTURE_COST,
        },
        training: TrainingSpec {
            seq_len: 2048,
            global_batch,
            micro_batch: 1,
            precision: Precision::Bf16,
            recompute: Recompute::None,
            optimizer: Optimizer::Adam,
            flash_attention: true,
            ..TrainingSpec::default()
        },
        parallelism: ParallelismSpec {
            tp,
            pp,
            dp,
            ..ParallelismSpec::default()
        },
        faults: Default::default(),
        checkpoint: None,
        run: None,
        outputs: OutputsSpec::default(),
        network: Default::default(),
        origins: Default::default(),
        plan_only: Vec::new(),
        jobs: None,
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
        mla: None,
        mtp_depth: 0,
        dropout: 0.1,
        norm: Default::default(),
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
            fp4: None,
        },
        memory_gb: 80.0,
        memory_bw_gbs: 2039.0,
        power_w: 400.0,
        price_usd: 15000.0,
        gemm_efficiency: 253.7 / 312.0,
        fp8_gemm_efficiency: None,
        hbm_efficiency: 1610.0 / 2039.0,
        sustained_efficiency: 0.875,
        calibration: None,
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
    c.gpu.sustained_efficiency = 0.675;
    c.nodes = nodes;
    c
}

/// A small MoE (8 routed experts, top-2, dropless) on `ep`-way expert parallel with the
/// given routing skew (Zipf exponent): TP1 PP2, DP = EP.
pub fn toy_moe(ep: u64, skew: f64) -> Scenario {
    let mut s = toy_scenario(1, 2, ep, 4, 8 * ep);
    s.name = "toy-moe".into();
    s.model.ffn = FfnKind::Swiglu;
    s.model.moe = Some(MoeSpec {
        experts: 8,
        top_k: 2,
        expert_ffn_hidden: 4096,
        shared_experts: 0,
        capacity_factor: None,
        dense_layers: 0,
        skew,
        max_nodes_per_token: None,
    });
    s.parallelism.ep = ep;
    s
}

/// DeepSeek-V3 shapes (arXiv 2412.19437, §4.2): 61 layers (3 dense), hidden 7168, 256
/// routed experts of width 2048 + 1 shared, top-8; MLA approximated as 128-head MHA.
pub fn deepseek_v3() -> ModelSpec {
    ModelSpec {
        name: "deepseek-v3".into(),
        layers: 61,
        hidden: 7168,
        heads: 128,
        kv_heads: 128,
        ffn_hidden: 18432,
        ffn: FfnKind::Swiglu,
        vocab: 129280,
        moe: Some(MoeSpec {
            experts: 256,
            top_k: 8,
            expert_ffn_hidden: 2048,
            shared_experts: 1,
            capacity_factor: None,
            dense_layers: 3,
            skew: 0.0,
            max_nodes_per_token: None,
        }),
        tied_embeddings: false,
        mla: None,
        mtp_depth: 0,
        dropout: 0.1,
        norm: Default::default(),
    }
}

/// DeepSeek-V3's training layout on 2048 H800-class GPUs: PP16 (DualPipe), EP64 across 8
/// nodes, ZeRO-1 data parallel, no TP.
pub fn deepseek_v3_2048() -> Scenario {
    let mut s = toy_scenario(1, 16, 128, 61, 15360 / 4);
    s.name = "deepseek-v3-2048".into();
    s.model = deepseek_v3();
    s.cluster = dgx_h100_ndr(256);
    s.training.seq_len = 4096;
    s.training.recompute = Recompute::Selective;
    s.training.precision = Precision::Fp8;
    s.parallelism.ep = 64;
    s.parallelism.schedule = ScheduleKind::Dualpipe;
    s
}

/// Mixtral 8x7B shapes (arXiv 2401.04088): 32 layers, 8 experts top-2, GQA 8 KV heads.
pub fn mixtral_8x7b() -> ModelSpec {
    ModelSpec {
        name: "mixtral-8x7b".into(),
        layers: 32,
        hidden: 4096,
        heads: 32,
        kv_heads: 8,
        ffn_hidden: 14336,
        ffn: FfnKind::Swiglu,
        vocab: 32000,
        moe: Some(MoeSpec {
            experts: 8,
            top_k: 2,
            expert_ffn_hidden: 14336,
            shared_experts: 0,
            capacity_factor: None,
            dense_layers: 0,
            skew: 0.0,
            max_nodes_per_token: None,
        }),
        tied_embeddings: false,
        mla: None,
        mtp_depth: 0,
        dropout: 0.1,
        norm: Default::default(),
    }
}

/// Llama-2 7B shapes (arXiv 2307.09288): 32 layers, hidden 4096, SwiGLU 11008, vocab 32000.
pub fn llama2_7b() -> ModelSpec {
    ModelSpec {
        name: "llama2-7b".into(),
        layers: 32,
        hidden: 4096,
        heads: 32,
        kv_heads: 32,
        ffn_hidden: 11008,
        ffn: FfnKind::Swiglu,
        vocab: 32000,
        moe: None,
        tied_embeddings: false,
        mla: None,
        mtp_depth: 0,
        dropout: 0.1,
        norm: Default::default(),
    }
}

/// GeForce RTX 4090: 165.2 dense BF16 TFLOP/s (FP32 accumulate, Ada whitepaper), 24 GB
/// GDDR6X at 1008 GB/s, 450 W. Efficiencies are assumptions (no calibration row).
pub fn rtx_4090() -> GpuSpec {
    GpuSpec {
        name: "rtx-4090".into(),
        peak_tflops: PeakTflops {
            fp32: Some(82.6),
            tf32: Some(82.6),
            bf16: 165.2,
            fp16: Some(165.2),
            fp8: Some(330.3),
            fp4: None,
        },
        memory_gb: 24.0,
        memory_bw_gbs: 1008.0,
        power_w: 450.0,
        price_usd: 1600.0,
        gemm_efficiency: 0.7,
        fp8_gemm_efficiency: None,
        sustained_efficiency: 1.0,
        calibration: None,
        hbm_efficiency: 0.85,
    }
}

/// One workstation with 8 RTX 4090 on PCIe Gen4 x16 (no NVLink), one 100 Gb/s NIC.
pub fn rtx4090_box() -> ClusterSpec {
    let mut c = toy_scenario(8, 1, 1, 1, 1).cluster;
    c.name = "8x-rtx-4090".into();
    c.gpu = rtx_4090();
    c.nodes = 1;
    c.node.nvlink_gbs = 0.0;
    c.node.pcie_gbs = 25.0;
    c.node.nics = 1;
    c.node.nic_gbps = 100.0;
    c.fabric.kind = FabricKind::SingleSwitch;
    c.fabric.tiers = 1;
    c
}

/// Worked case: a 7B model trained from scratch on 8 RTX 4090 with FSDP (ZeRO-3), full
/// activation checkpointing, 8-bit Adam and FlashAttention (`scenarios/llama7b-8x4090-fsdp.yaml`).
pub fn llama7b_8x4090_fsdp() -> Scenario {
    let mut s = toy_scenario(1, 1, 8, 32, 64);
    s.name = "llama7b-8x4090-fsdp".into();
    s.model = llama2_7b();
    s.cluster = rtx4090_box();
    s.training.seq_len = 4096;
    s.training.micro_batch = 1;
    s.training.global_batch = 64;
    s.training.recompute = Recompute::Full;
    s.training.optimizer = Optimizer::Adam8bit;
    s.training.flash_attention = true;
    s.parallelism.zero = 3;
    s
}

/// Worked case: Llama 3.1 405B fine-tuned with QLoRA (rank 64) on one 8x H100 node, FSDP
/// over the 8 GPUs, full checkpointing (`scenarios/llama405b-qlora-8xh100.yaml`).
pub fn llama405b_qlora_8xh100() -> Scenario {
    let mut s = toy_scenario(1, 1, 8, 126, 32);
    s.name = "llama405b-qlora-8xh100".into();
    s.model = llama3_405b();
    s.cluster = dgx_h100_ndr(1);
    s.training.seq_len = 4096;
    s.training.recompute = Recompute::Full;
    s.training.finetune = Finetune::Qlora;
    s.training.lora_rank = 64;
    s.parallelism.zero = 3;
    s
}

/// The same model and GPUs trained in BF16 with Adam: cannot fit (6.5 TB of model state
/// against 640 GB of HBM).
pub fn llama405b_bf16_8xh100() -> Scenario {
    let mut s = llama405b_qlora_8xh100();
    s.name = "llama405b-bf16-adam-8xh100".into();
    s.training.finetune = Finetune::Full;
    s
}

/// A frontier-scale MoE of about 1.8T parameters (GPT-4-like rumour shapes: 120 layers,
/// hidden 12288, 16 experts of width 24576, top-2).
pub fn frontier_moe_1_8t() -> ModelSpec {
    ModelSpec {
        name: "frontier-moe-1.8t".into(),
        layers: 120,
        hidden: 12288,
        heads: 96,
        kv_heads: 8,
        ffn_hidden: 49152,
        ffn: FfnKind::Swiglu,
        vocab: 128256,
        moe: Some(MoeSpec {
            experts: 16,
            top_k: 2,
            expert_ffn_hidden: 24576,
            shared_experts: 0,
            capacity_factor: Some(1.0),
            dense_layers: 0,
            skew: 0.0,
            max_nodes_per_token: None,
        }),
        tied_embeddings: false,
        mla: None,
        mtp_depth: 0,
        dropout: 0.1,
        norm: Default::default(),
    }
}

/// Worked case: the frontier MoE on 24,576 H100 (3,072 DGX nodes, NDR rail-optimized):
/// TP8 x PP16 x DP192 with EP16 inside DP, i.e. 12 expert-data-parallel replicas
/// (`scenarios/frontier-moe-25k-h100.yaml`). `edp` shrinks the replica count (tests
/// simulate one replica; DP replicas are identical).
pub fn frontier_moe_h100(edp: u64) -> Scenario {
    let (tp, pp, ep) = (8, 16, 16);
    let dp = ep * edp;
    let mut s = toy_scenario(tp, pp, dp, 120, dp * 32);
    s.name = "frontier-moe-25k-h100".into();
    s.model = frontier_moe_1_8t();
    s.cluster = dgx_h100_ndr(tp * pp * dp / 8);
    s.training.seq_len = 4096;
    s.training.recompute = Recompute::Selective;
    s.training.precision = Precision::Fp8;
    s.parallelism.ep = ep;
    s.parallelism.schedule = ScheduleKind::Interleaved;
    s.parallelism.virtual_stages = 3;
    s.parallelism.stage_layers = None;
    s
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
            fp4: None,
        },
        memory_gb: mem,
        memory_bw_gbs: bw,
        power_w: power,
        price_usd: price,
        gemm_efficiency: 0.75,
        fp8_gemm_efficiency: None,
        sustained_efficiency: 1.0,
        calibration: None,
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
        fabric: two_tier_fabric(kind, oversubscription),
        storage: FIXTURE_STORAGE,
        cost: FIXTURE_COST,
    }
}
