//! What the optimizer step costs on one rank: the parameters it updates (its stage's
//! trainable parameters after TP and, under ZeRO, its shard) and the time to update them:
//! Adam on the GPU, or with the optimizer offloaded, gradients down and weights up over
//! PCIe around a CPU Adam step.
//!
//! Must not decide when the step runs (after the stage's last gradient reduction).

use super::dp::{self, Bucket};
use super::{Coverage, StepInputs};
use crate::model;
use crate::units::{Nanos, secs_to_ns};

/// CPU Adam throughput per GPU's share of the host, parameters per second (DeepSpeed's
/// vectorised CPU-Adam updates on the order of 10^9 parameters/s per socket).
pub const CPU_ADAM_PARAMS_PER_S: f64 = 1.0e9;

/// Parameters the optimizer updates on one rank of a stage whose gradient buckets are
/// `buckets` ([`dp::buckets`]): all its trainable parameters over TP, and over the ZeRO
/// shard group when states are sharded.
pub fn local_params(inp: &StepInputs, buckets: &[Bucket]) -> u64 {
    let p = inp.parallelism;
    let stage_params: u64 = buckets.iter().map(|b| b.params).sum();
    let shards = if dp::sharded(p) {
        dp::shard_ranks(p)
    } else {
        1
    };
    stage_params / p.tp.max(1) / shards
}

/// Optimizer step time on one rank updating `local_params` parameters: Adam on the GPU,
/// or (offloaded, where `cov` prices offload) gradients down and weights up over PCIe
/// around a CPU Adam step.
pub fn step_time(inp: &StepInputs, local_params: u64, cov: Coverage) -> Nanos {
    let t = inp.training;
    if !(cov.offload && t.offload_optimizer) {
        return super::compute::kernels_time(inp.compute, &model::kernels::adam_step(local_params));
    }
    let p = local_params as f64;
    let pcie = inp.pcie_gbs.max(1e-3) * 1e9;
    let transfers = 2.0 * p * t.precision.grad_bytes() / pcie;
    secs_to_ns(transfers + p / CPU_ADAM_PARAMS_PER_S)
}
