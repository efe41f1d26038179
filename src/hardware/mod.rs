//! GPUs and the cluster they sit in, as plain data, plus the compute-time model.
//!
//! The compute model is a roofline: a kernel takes `max(FLOPs / (peak x efficiency),
//! bytes / (HBM bandwidth x efficiency))` plus a launch overhead. Efficiencies come from
//! `../shared/calibration/kernels.csv` (see [`compute`]). This module knows nothing about
//! graphs, schedules or YAML.

pub mod compute;

pub use compute::ComputeModel;

use serde::{Deserialize, Serialize};

/// Numeric precision of the training run's matmuls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
    #[default]
    Bf16,
    Fp8,
    /// 4-bit GEMMs on Blackwell tensor cores: NVFP4 (E2M1 elements, an FP8 E4M3 scale per
    /// 16, NVIDIA's recipe, arXiv 2509.25149) or MXFP4 (an E8M0 scale per 32; OCP MX
    /// v1.0), priced as NVFP4's 4.5 bits per operand; activations stay 16-bit.
    Fp4,
}

impl Precision {
    /// Bytes of one activation element moved between kernels (FP8 GEMMs still exchange
    /// 16-bit activations in Transformer Engine; only GEMM operands shrink).
    pub fn activation_bytes(self) -> f64 {
        match self {
            Precision::Fp32 => 4.0,
            _ => 2.0,
        }
    }

    pub fn gemm_operand_bytes(self) -> f64 {
        match self {
            Precision::Fp32 => 4.0,
            Precision::Fp8 => 1.0,
            // 4-bit elements and one 8-bit scale per 16 (NVFP4).
            Precision::Fp4 => 4.5 / 8.0,
            _ => 2.0,
        }
    }

    /// Bytes of a gradient element reduced across data parallel ranks.
    pub fn grad_bytes(self) -> f64 {
        match self {
            Precision::Fp32 => 4.0,
            _ => 2.0,
        }
    }
}

/// Dense peak throughput per precision, TFLOP/s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakTflops {
    #[serde(default)]
    pub fp32: Option<f64>,
    #[serde(default)]
    pub tf32: Option<f64>,
    pub bf16: f64,
    #[serde(default)]
    pub fp16: Option<f64>,
    #[serde(default)]
    pub fp8: Option<f64>,
    /// Dense FP4 (NVFP4/MXFP4) tensor-core peak: Blackwell parts.
    #[serde(default)]
    pub fp4: Option<f64>,
}

/// One GPU model: peaks, memory, power, price and calibrated efficiencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSpec {
    pub name: String,
    pub peak_tflops: PeakTflops,
    pub memory_gb: f64,
    pub memory_bw_gbs: f64,
    pub power_w: f64,
    pub price_usd: f64,
    /// Fraction of peak a large (8192^3) GEMM reaches, per precision; from kernels.csv.
    pub gemm_efficiency: f64,
    #[serde(default)]
    pub fp8_gemm_efficiency: Option<f64>,
    /// Fraction of HBM bandwidth a large copy reaches; from kernels.csv.
    pub hbm_efficiency: f64,
    /// Fraction of kernel-benchmark throughput a training framework sustains end to end
    /// (clocks under sustained load, kernels too small to model one by one). Fitted once per
    /// GPU generation to the end-to-end tables in calibration/ (`cargo run --release
    /// --example calibrate`); 1.0 means "runs at microbenchmark speed".
    pub sustained_efficiency: f64,
    /// The calibration table its `sustained_efficiency` was fitted to
    /// (`megatron-sc21-a100`, `megatron-core-h100`), whose error (`clustersim validate`)
    /// is the uncertainty band of its predictions; `None` for an uncalibrated GPU.
    #[serde(default)]
    pub calibration: Option<String>,
}

impl GpuSpec {
    /// Dense peak FLOP/s for a precision; FP8 falls back to BF16 on GPUs without it.
    pub fn peak_flops(&self, precision: Precision) -> f64 {
        let p = &self.peak_tflops;
        let t = match precision {
            Precision::Fp32 => p.tf32.or(p.fp32).unwrap_or(p.bf16 / 8.0),
            Precision::Fp16 => p.fp16.unwrap_or(p.bf16),
            Precision::Bf16 => p.bf16,
            Precision::Fp8 => p.fp8.unwrap_or(p.bf16),
            Precision::Fp4 => p.fp4.or(p.fp8).unwrap_or(p.bf16),
        };
        t * 1e12
    }
}

/// The fabric joining nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FabricKind {
    FatTree,
    RailOptimized,
    ClosPods,
    SingleSwitch,
}

/// The scale-out fabric's link layer: what in-network features its switches can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// InfiniBand (Quantum switches can reduce in the network: SHARP).
    #[default]
    Infiniband,
    /// RDMA over Converged Ethernet (no in-switch reduction).
    Roce,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Infiniband => "infiniband",
            Transport::Roce => "roce",
        }
    }
}

/// A node: GPUs, their NVLink/NVSwitch domain and NICs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub gpus: u64,
    /// NVLink bandwidth per GPU per direction, GB/s; 0 means the GPUs talk over PCIe.
    pub nvlink_gbs: f64,
    pub nics: u64,
    pub nic_gbps: f64,
    /// GPUs sharing one NVSwitch domain (8 on DGX, 72 on GB200 NVL72). Defaults to `gpus`.
    pub nvlink_domain: u64,
    /// PCIe bandwidth per GPU per direction, GB/s.
    pub pcie_gbs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FabricSpec {
    pub kind: FabricKind,
    pub tiers: u64,
    /// Downlink : uplink bandwidth ratio at the leaf (1.0 = full bisection).
    pub oversubscription: f64,
    pub hop_latency_us: f64,
    /// GPUs per pod for `clos-pods` fabrics (pods joined by an oversubscribed tier).
    pub pod_gpus: Option<u64>,
    pub pod_oversubscription: f64,
    /// Ports per switch (radix); decides how many nodes share a leaf.
    pub switch_radix: u64,
    /// Downlink : uplink bandwidth ratio at the spine, for 3-tier fabrics other than
    /// `clos-pods` (which use `pod_oversubscription`). 1.0 = full bisection.
    #[serde(default = "one")]
    pub spine_oversubscription: f64,
    /// Link layer (InfiniBand or RoCE).
    #[serde(default)]
    pub transport: Transport,
    /// The switches reduce in the network (InfiniBand SHARP): NCCL's CollNet all-reduce
    /// applies across NVLink domains.
    #[serde(default)]
    pub sharp: bool,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageSpec {
    pub write_gbs: f64,
    pub read_gbs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostSpec {
    pub gpu_hour_usd: f64,
    pub power_kw_per_node: f64,
    pub pue: f64,
    pub usd_per_kwh: f64,
}

/// A whole cluster, resolved from a topology file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub gpu: GpuSpec,
    pub nodes: u64,
    pub node: NodeSpec,
    pub fabric: FabricSpec,
    pub storage: StorageSpec,
    pub cost: CostSpec,
}

impl ClusterSpec {
    pub fn total_gpus(&self) -> u64 {
        self.nodes * self.node.gpus
    }

    /// Bytes per second one GPU can push into the scale-out fabric.
    pub fn nic_bytes_per_gpu(&self) -> f64 {
        let per_node = self.node.nics as f64 * self.node.nic_gbps * 1e9 / 8.0;
        per_node / self.node.gpus as f64
    }

    /// Bytes per second between two GPUs of one node (NVLink, else PCIe).
    pub fn intra_node_bytes_per_gpu(&self) -> f64 {
        if self.node.nvlink_gbs > 0.0 {
            self.node.nvlink_gbs * 1e9
        } else {
            self.node.pcie_gbs * 1e9
        }
    }
}
