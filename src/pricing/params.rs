//! Parameters a plan holds and trains, and the bytes each takes: bytes per parameter of
//! every model state (weights, gradients, optimizer) by precision and optimizer, frozen
//! base weights under LoRA/QLoRA (NF4), ZeRO's sharding of the states, and the adapter
//! parameters that replace a layer's trainable ones.
//!
//! Shared by the memory model (footprints), the gradient buckets and parameter gathers
//! (what data parallelism moves) and the compute model (QLoRA's dequantisation). Must not
//! know about time or graphs.

use super::Coverage;
use crate::hardware::Precision;
use crate::model::ModelSpec;
use crate::plan::{Finetune, Optimizer, TrainingSpec};

/// Bytes per element of the 4-bit NF4 base weights of QLoRA, with double-quantised
/// constants (0.127 bits per parameter, Dettmers et al. §3).
pub const NF4_BYTES: f64 = (4.0 + 0.127) / 8.0;

/// Bytes per parameter of each model state, before sharding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateBytes {
    pub weights: f64,
    pub grads: f64,
    pub optimizer: f64,
}

impl std::ops::Add for StateBytes {
    type Output = StateBytes;

    fn add(self, b: StateBytes) -> StateBytes {
        StateBytes {
            weights: self.weights + b.weights,
            grads: self.grads + b.grads,
            optimizer: self.optimizer + b.optimizer,
        }
    }
}

/// Bytes per trainable parameter: 16-bit weights and gradients; Adam keeps fp32 master,
/// momentum and variance (12 bytes), Adam with BF16 moments fp32 master + two 2-byte
/// moments (8; DeepSeek-V3 §3.3.3), 8-bit Adam fp32 master + two 1-byte moments (6),
/// SGD fp32 master + momentum (8). FP8 training adds a 1-byte FP8 weight copy, FP4 a
/// 4.5-bit NVFP4 copy; fp32
/// training needs no separate master copy.
pub fn trainable_state_bytes(precision: Precision, optimizer: Optimizer) -> StateBytes {
    let (weights, grads) = match precision {
        Precision::Fp32 => (4.0, 4.0),
        Precision::Fp8 => (3.0, 2.0),
        // 16-bit weights plus the NVFP4 copy the GEMMs read (4.5 bits).
        Precision::Fp4 => (2.0 + 4.5 / 8.0, 2.0),
        _ => (2.0, 2.0),
    };
    let master = if precision == Precision::Fp32 {
        0.0
    } else {
        4.0
    };
    let moments = match optimizer {
        Optimizer::Adam => 8.0,
        Optimizer::AdamBf16 => 4.0,
        Optimizer::Adam8bit => 2.0,
        Optimizer::Sgd => 4.0,
    };
    StateBytes {
        weights,
        grads,
        optimizer: master + moments,
    }
}

/// Bytes per frozen base parameter under adapter fine-tuning.
pub fn frozen_weight_bytes(finetune: Finetune, precision: Precision) -> f64 {
    match finetune {
        Finetune::Qlora => NF4_BYTES,
        _ if precision == Precision::Fp32 => 4.0,
        _ => 2.0,
    }
}

/// Model-state bytes of `params` parameters under a ZeRO stage sharded `shards` ways.
pub fn model_state_bytes(params: f64, b: StateBytes, zero: u8, shards: f64) -> StateBytes {
    let over = |stage: u8| if zero >= stage { shards.max(1.0) } else { 1.0 };
    StateBytes {
        weights: params * b.weights / over(3),
        grads: params * b.grads / over(2),
        optimizer: params * b.optimizer / over(1),
    }
}

/// LoRA adapter parameters of one layer: `r (in + out)` per adapted projection (QKV,
/// output, every MLP matrix; every expert's MLP in MoE layers).
pub fn lora_layer_params(model: &ModelSpec, layer: u64, rank: u64) -> u64 {
    let h = model.hidden;
    let attn = rank * (h + h + 2 * model.kv_width()) + rank * (2 * h);
    let k = model.ffn.matrices();
    let mlp = match &model.moe {
        Some(m) if model.is_moe_layer(layer) => {
            (m.experts + m.shared_experts) * k * rank * (h + m.expert_ffn_hidden)
        }
        _ => k * rank * (h + model.ffn_hidden),
    };
    attn + mlp
}

/// Model FLOPs of one training step, the MFU numerator: forward and backward of every
/// matmul (`3 x` forward, [`ModelSpec::model_flops_per_step`]). Under LoRA/QLoRA the
/// frozen base weights get no weight gradients, so only the work done counts: the
/// forward, the input-gradient half of the backward (`2 x` forward), the attention
/// core's second backward GEMM (it has no weights to freeze), and the adapters' forward
/// and backward (`6 s` FLOPs per adapter parameter and token). QLoRA's dequantisation is
/// memory traffic, no FLOPs: its time is in the compute ops.
pub fn model_flops_per_step(model: &ModelSpec, t: &TrainingSpec) -> f64 {
    if !t.finetune.is_adapter() {
        return model.model_flops_per_step(t.seq_len, t.global_batch);
    }
    let seq = t.seq_len;
    let adapters: u64 = (0..model.stack_layers())
        .map(|l| lora_layer_params(model, l, t.lora_rank))
        .sum();
    let per_sequence = 2.0 * model.forward_flops_per_sequence(seq)
        + model.attention_core_flops(seq) * model.stack_layers() as f64
        + 6.0 * seq as f64 * adapters as f64;
    per_sequence * t.global_batch as f64
}

/// Whether only adapters train (LoRA/QLoRA), as `cov` prices it.
pub fn adapters_only(t: &TrainingSpec, cov: Coverage) -> bool {
    cov.adapters && t.finetune.is_adapter()
}

/// Parameters of a layer that receive gradients (LoRA: the adapters only).
pub fn trainable_layer_params(
    model: &ModelSpec,
    t: &TrainingSpec,
    layer: u64,
    cov: Coverage,
) -> u64 {
    if adapters_only(t, cov) {
        lora_layer_params(model, layer, t.lora_rank)
    } else {
        model.layer_params(layer)
    }
}

/// Bytes per parameter of the weights ZeRO-3 gathers: the frozen base weights' own
/// precision under adapter fine-tuning, else the 16-bit (gradient-precision) copy.
pub fn gathered_weight_bytes(t: &TrainingSpec, cov: Coverage) -> f64 {
    if adapters_only(t, cov) {
        frozen_weight_bytes(t.finetune, t.precision)
    } else {
        t.precision.grad_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a / b - 1.0).abs() < 1e-12
    }

    #[test]
    fn model_states_are_2_2_12_bytes_sharded_by_zero_stage() {
        let params = 1e9;
        let adam = trainable_state_bytes(Precision::Bf16, Optimizer::Adam);
        assert_eq!((adam.weights, adam.grads, adam.optimizer), (2.0, 2.0, 12.0));
        let d = 8.0;
        let want = [
            (0, 2.0, 2.0, 12.0),
            (1, 2.0, 2.0, 12.0 / d),
            (2, 2.0, 2.0 / d, 12.0 / d),
            (3, 2.0 / d, 2.0 / d, 12.0 / d),
        ];
        for (zero, w, g, o) in want {
            let s = model_state_bytes(params, adam, zero, d);
            assert!(close(s.weights, w * params), "zero {zero}");
            assert!(close(s.grads, g * params), "zero {zero}");
            assert!(close(s.optimizer, o * params), "zero {zero}");
        }
        // 8-bit Adam: fp32 master (4) + two 1-byte moments.
        let a8 = trainable_state_bytes(Precision::Bf16, Optimizer::Adam8bit);
        assert_eq!(a8.optimizer, 6.0);
        // BF16 moments (DeepSeek-V3): fp32 master (4) + two 2-byte moments.
        let bf16 = trainable_state_bytes(Precision::Bf16, Optimizer::AdamBf16);
        assert_eq!(bf16.optimizer, 8.0);
        // FP8 training adds a 1-byte FP8 weight copy.
        assert_eq!(
            trainable_state_bytes(Precision::Fp8, Optimizer::Adam).weights,
            3.0
        );
    }
}
