//! Transformer shapes: parameter counts, per-op FLOPs and bytes, model FLOPs per step.
//!
//! Plain data in, plain data out. This module knows nothing about time, GPUs or graphs:
//! it says *how much work* a layer is (as a list of [`Kernel`]s), never how long it takes.

pub mod kernels;

pub use kernels::{Kernel, KernelClass, LayerShard, Phase};

use serde::{Deserialize, Serialize};

/// Feed-forward flavour: GELU MLP (two matrices) or SwiGLU (three matrices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FfnKind {
    Gelu,
    Swiglu,
}

impl FfnKind {
    /// Number of `h x f` weight matrices in the MLP.
    pub fn matrices(self) -> u64 {
        match self {
            FfnKind::Gelu => 2,
            FfnKind::Swiglu => 3,
        }
    }
}

/// Mixture-of-experts block replacing the dense MLP in MoE layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeSpec {
    pub experts: u64,
    pub top_k: u64,
    pub expert_ffn_hidden: u64,
    #[serde(default)]
    pub shared_experts: u64,
    /// Tokens an expert accepts, relative to a perfectly even split (Switch Transformer).
    #[serde(default = "default_capacity_factor")]
    pub capacity_factor: f64,
    /// Leading layers that keep a dense MLP (DeepSeek-V3 keeps 3).
    #[serde(default)]
    pub dense_layers: u64,
    /// Token imbalance across experts: expert popularity follows a Zipf law with this
    /// exponent (0 = perfectly balanced routing). The most loaded expert-parallel rank
    /// sets the pace of every MoE layer.
    #[serde(default)]
    pub skew: f64,
}

fn default_capacity_factor() -> f64 {
    1.0
}

impl MoeSpec {
    /// Share of routed tokens each expert receives, hottest first: a Zipf law with
    /// exponent `skew` (all equal at 0).
    pub fn expert_shares(&self) -> Vec<f64> {
        let w: Vec<f64> = (0..self.experts)
            .map(|e| ((e + 1) as f64).powf(-self.skew))
            .collect();
        let sum: f64 = w.iter().sum();
        w.into_iter().map(|x| x / sum).collect()
    }

    /// Load of the most loaded of `ep` expert-parallel ranks over the balanced load, with
    /// experts placed round-robin (expert `e` on rank `e mod ep`), so the hottest expert's
    /// rank is the critical path. With a capacity factor (> 0) experts are padded to their
    /// capacity and excess tokens dropped, so compute is `capacity_factor` whatever the
    /// skew; `capacity_factor: 0` is dropless routing (Megatron's default).
    pub fn hottest_rank_load(&self, ep: u64) -> f64 {
        if self.capacity_factor > 0.0 {
            return self.capacity_factor;
        }
        let ep = ep.clamp(1, self.experts.max(1));
        let shares = self.expert_shares();
        let rank0: f64 = shares.iter().step_by(ep as usize).sum();
        rank0 * ep as f64
    }
}

/// A transformer decoder: the shapes every cost in the simulator derives from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub layers: u64,
    pub hidden: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub ffn_hidden: u64,
    pub ffn: FfnKind,
    pub vocab: u64,
    pub moe: Option<MoeSpec>,
    /// Input embedding and output head share one matrix (GPT-2/3 style).
    pub tied_embeddings: bool,
}

impl ModelSpec {
    pub fn head_dim(&self) -> u64 {
        self.hidden / self.heads
    }

    /// Width of the K (or V) projection under grouped-query attention.
    pub fn kv_width(&self) -> u64 {
        self.kv_heads * self.head_dim()
    }

    pub fn is_moe_layer(&self, layer: u64) -> bool {
        self.moe.as_ref().is_some_and(|m| layer >= m.dense_layers)
    }

    pub fn attention_params(&self) -> u64 {
        let h = self.hidden;
        h * (h + 2 * self.kv_width()) + h * h + 2 * h
    }

    pub fn dense_mlp_params(&self) -> u64 {
        self.ffn.matrices() * self.hidden * self.ffn_hidden
    }

    /// Parameters of one expert (an MLP of width `expert_ffn_hidden`).
    pub fn expert_params(&self) -> u64 {
        self.moe.as_ref().map_or(0, |m| {
            self.ffn.matrices() * self.hidden * m.expert_ffn_hidden
        })
    }

    pub fn layer_params(&self, layer: u64) -> u64 {
        let mlp = match &self.moe {
            Some(m) if self.is_moe_layer(layer) => {
                (m.experts + m.shared_experts) * self.expert_params() + self.hidden * m.experts
            }
            _ => self.dense_mlp_params(),
        };
        self.attention_params() + mlp
    }

    /// Parameters of a layer's routed experts, all of them (before expert parallelism);
    /// 0 for a dense layer. The rest of the layer is dense (replicated over EP).
    pub fn routed_expert_params(&self, layer: u64) -> u64 {
        match &self.moe {
            Some(m) if self.is_moe_layer(layer) => m.experts * self.expert_params(),
            _ => 0,
        }
    }

    pub fn embedding_params(&self) -> u64 {
        self.vocab * self.hidden
    }

    /// Total parameters, embeddings included.
    pub fn total_params(&self) -> u64 {
        let layers: u64 = (0..self.layers).map(|l| self.layer_params(l)).sum();
        let head = if self.tied_embeddings {
            0
        } else {
            self.embedding_params()
        };
        layers + self.embedding_params() + head + self.hidden
    }

    /// Parameters a token actually multiplies through (MoE: top-k plus shared experts only).
    pub fn active_params(&self) -> u64 {
        let Some(m) = &self.moe else {
            return self.total_params();
        };
        let moe_layers = self.layers.saturating_sub(m.dense_layers);
        let inactive = (m.experts - m.top_k) * self.expert_params();
        self.total_params() - moe_layers * inactive
    }

    /// Model FLOPs of one forward pass over one sequence of `seq` tokens: every matmul once,
    /// attention scores counted in full (no causal discount), as Korthikanti et al. eq. 7 does.
    pub fn forward_flops_per_sequence(&self, seq: u64) -> f64 {
        let (s, h) = (seq as f64, self.hidden as f64);
        let attn_proj = 2.0 * s * h * (h + 2.0 * self.kv_width() as f64) + 2.0 * s * h * h;
        let attn_core = 4.0 * s * s * h;
        let mut total = 0.0;
        for layer in 0..self.layers {
            let mlp = match &self.moe {
                Some(m) if self.is_moe_layer(layer) => {
                    let per_expert = 2.0 * s * self.expert_params() as f64;
                    per_expert * (m.top_k + m.shared_experts) as f64
                        + 2.0 * s * h * m.experts as f64
                }
                _ => 2.0 * s * self.dense_mlp_params() as f64,
            };
            total += attn_proj + attn_core + mlp;
        }
        total + 2.0 * s * h * self.vocab as f64
    }

    /// Model FLOPs of one training step (forward + backward = 3x forward), no recompute.
    pub fn model_flops_per_step(&self, seq: u64, global_batch: u64) -> f64 {
        3.0 * self.forward_flops_per_sequence(seq) * global_batch as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn gpt(layers: u64, hidden: u64, heads: u64, vocab: u64) -> ModelSpec {
        ModelSpec {
            name: "gpt".into(),
            layers,
            hidden,
            heads,
            kv_heads: heads,
            ffn_hidden: 4 * hidden,
            ffn: FfnKind::Gelu,
            vocab,
            moe: None,
            tied_embeddings: true,
        }
    }

    #[test]
    fn gpt_model_flops_match_korthikanti_eq7() {
        let m = gpt(96, 12288, 96, 51200);
        let (s, b) = (2048.0, 1536.0);
        let (l, h, v) = (96.0, 12288.0, 51200.0);
        let eq7 = 72.0 * b * l * s * h * h * (1.0 + s / (6.0 * h) + v / (12.0 * h * l));
        let ours = m.model_flops_per_step(2048, 1536);
        assert!((ours / eq7 - 1.0).abs() < 1e-12, "{ours} vs {eq7}");
    }

    #[test]
    fn gpt3_has_175b_parameters() {
        let m = gpt(96, 12288, 96, 50257);
        let p = m.total_params() as f64 / 1e9;
        assert!((p - 175.0).abs() < 1.0, "{p}");
    }

    #[test]
    fn llama3_70b_parameter_count() {
        let m = ModelSpec {
            name: "llama3-70b".into(),
            layers: 80,
            hidden: 8192,
            heads: 64,
            kv_heads: 8,
            ffn_hidden: 28672,
            ffn: FfnKind::Swiglu,
            vocab: 128256,
            moe: None,
            tied_embeddings: false,
        };
        let p = m.total_params() as f64 / 1e9;
        assert!((p - 70.6).abs() < 0.2, "{p}");
    }
}
