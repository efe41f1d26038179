//! Kernel time from FLOPs and bytes: a roofline with a shape-aware efficiency.
//!
//! Calibration (done once, from `../shared/calibration/kernels.csv`, never per scenario):
//! - `GpuSpec::gemm_efficiency` is the measured 8192^3 GEMM rate over the dense peak, so a
//!   8192^3 GEMM reproduces the measurement exactly;
//! - smaller GEMMs lose efficiency to tile quantisation: each dimension `d` contributes a
//!   factor `d / (d + GEMM_HALF_DIM)`, normalised to 1 at 8192;
//! - `GpuSpec::hbm_efficiency` is the measured large-copy bandwidth over the HBM peak;
//! - every kernel pays `LAUNCH_OVERHEAD_S` of launch and tail latency.

use super::{GpuSpec, Precision};
use crate::model::{Kernel, KernelClass};

/// Dimension at which a GEMM loses half its efficiency to tile quantisation and
/// under-filled waves (CUTLASS/cuBLAS tiles are 64-256 wide).
pub const GEMM_HALF_DIM: f64 = 48.0;
/// Dimension of the calibration GEMM in kernels.csv.
const REFERENCE_DIM: f64 = 8192.0;
/// Launch plus tail latency of one kernel, seconds.
pub const LAUNCH_OVERHEAD_S: f64 = 3.0e-6;
/// FlashAttention reaches this fraction of the GEMM efficiency (FlashAttention-2 reports
/// 50-73 % of peak on A100 against ~80 % for cuBLAS GEMMs).
pub const ATTENTION_RELATIVE_EFFICIENCY: f64 = 0.75;

/// The compute-time model for one GPU type at one precision.
#[derive(Debug, Clone)]
pub struct ComputeModel {
    peak_flops: f64,
    gemm_efficiency: f64,
    hbm_bytes_per_s: f64,
    /// The attention core (FlashAttention, or the unfused score and value GEMMs) at the
    /// 16-bit peak and GEMM efficiency, when FP8 training keeps dot-product attention out
    /// of FP8 ([`ComputeModel::for_training`]); `None`: the training precision's.
    attention_16bit: Option<Box<ComputeModel>>,
}

fn dim_factor(d: f64) -> f64 {
    d / (d + GEMM_HALF_DIM)
}

impl ComputeModel {
    pub fn new(gpu: &GpuSpec, precision: Precision) -> Self {
        let gemm_efficiency = match precision {
            // FP4 GEMMs: the FP8 ratio (assumed: no FP4 measurement in kernels.csv).
            Precision::Fp8 | Precision::Fp4 => {
                gpu.fp8_gemm_efficiency.unwrap_or(gpu.gemm_efficiency)
            }
            _ => gpu.gemm_efficiency,
        };
        let sustained = if gpu.sustained_efficiency > 0.0 {
            gpu.sustained_efficiency
        } else {
            1.0
        };
        ComputeModel {
            peak_flops: gpu.peak_flops(precision) * sustained,
            gemm_efficiency,
            hbm_bytes_per_s: gpu.memory_bw_gbs * 1e9 * gpu.hbm_efficiency * sustained,
            attention_16bit: None,
        }
    }

    /// The model a training run sees: [`ComputeModel::new`], except that under FP8
    /// training without `fp8_attention` the attention core runs at the 16-bit peak and
    /// efficiency (Transformer Engine keeps `DotProductAttention` in BF16 unless the
    /// recipe sets `fp8_dpa`; transformer_engine/pytorch/attention.py, TE 1.x).
    pub fn for_training(gpu: &GpuSpec, precision: Precision, fp8_attention: bool) -> Self {
        let mut cm = Self::new(gpu, precision);
        if precision == Precision::Fp8 && !fp8_attention {
            cm.attention_16bit = Some(Box::new(Self::new(gpu, Precision::Bf16)));
        }
        cm
    }

    /// Efficiency of a GEMM of this shape relative to the dense peak.
    pub fn gemm_efficiency(&self, m: u64, n: u64, k: u64) -> f64 {
        let shape = dim_factor(m as f64) * dim_factor(n as f64) * dim_factor(k as f64);
        let reference = dim_factor(REFERENCE_DIM).powi(3);
        (self.gemm_efficiency * shape / reference).min(1.0)
    }

    /// Seconds one kernel takes on an otherwise idle GPU.
    pub fn kernel_time_s(&self, k: &Kernel) -> f64 {
        if let Some(a) = &self.attention_16bit {
            let core = matches!(k.class, KernelClass::Attention)
                || matches!(k.name, "attn_scores" | "attn_values");
            if core {
                return a.kernel_time_s(k);
            }
        }
        let memory_s = k.bytes / self.hbm_bytes_per_s;
        let compute_s = match k.class {
            KernelClass::Gemm { m, n, k: kd } => {
                k.flops / (self.peak_flops * self.gemm_efficiency(m, n, kd))
            }
            KernelClass::Attention => {
                k.flops / (self.peak_flops * self.gemm_efficiency * ATTENTION_RELATIVE_EFFICIENCY)
            }
            KernelClass::Memory => 0.0,
        };
        compute_s.max(memory_s) + LAUNCH_OVERHEAD_S
    }

    pub fn kernels_time_s(&self, ks: &[Kernel]) -> f64 {
        ks.iter().map(|k| self.kernel_time_s(k)).sum()
    }

    pub fn peak_flops(&self) -> f64 {
        self.peak_flops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::PeakTflops;
    use crate::model::Phase;

    fn h100() -> GpuSpec {
        GpuSpec {
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
            gemm_efficiency: 798.0 / 989.0,
            fp8_gemm_efficiency: Some(1290.0 / 1979.0),
            hbm_efficiency: 2900.0 / 3350.0,
            sustained_efficiency: 1.0,
            calibration: None,
        }
    }

    fn gemm(d: u64) -> Kernel {
        let f = d as f64;
        Kernel {
            name: "g",
            class: KernelClass::Gemm { m: d, n: d, k: d },
            flops: 2.0 * f * f * f,
            bytes: 3.0 * f * f * 2.0,
            phase: Phase::Forward,
        }
    }

    #[test]
    fn reference_gemm_reproduces_kernels_csv() {
        let cm = ComputeModel::new(&h100(), Precision::Bf16);
        let k = gemm(8192);
        let t = cm.kernel_time_s(&k) - LAUNCH_OVERHEAD_S;
        let tflops = k.flops / t / 1e12;
        assert!((tflops - 798.0).abs() < 1e-6, "{tflops}");
        let cm8 = ComputeModel::new(&h100(), Precision::Fp8);
        let t8 = cm8.kernel_time_s(&k) - LAUNCH_OVERHEAD_S;
        assert!((k.flops / t8 / 1e12 - 1290.0).abs() < 1e-6);
    }

    #[test]
    fn smaller_gemms_are_less_efficient() {
        let cm = ComputeModel::new(&h100(), Precision::Bf16);
        assert!(cm.gemm_efficiency(512, 512, 512) < cm.gemm_efficiency(4096, 4096, 4096));
        assert!(cm.gemm_efficiency(1 << 16, 1 << 16, 1 << 16) <= 1.0);
    }

    #[test]
    fn memory_kernels_run_at_measured_hbm_rate() {
        let cm = ComputeModel::new(&h100(), Precision::Bf16);
        let k = Kernel {
            name: "copy",
            class: KernelClass::Memory,
            flops: 0.0,
            bytes: 2.9e12,
            phase: Phase::Forward,
        };
        assert!((cm.kernel_time_s(&k) - LAUNCH_OVERHEAD_S - 1.0).abs() < 1e-9);
    }
}
