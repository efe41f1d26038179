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

/// Normalisation layers: RMSNorm (a gain per feature: Llama, Mixtral, DeepSeek) or
/// LayerNorm (a gain and a bias per feature: GPT-2/3, Megatron's GPT default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    #[default]
    Rmsnorm,
    Layernorm,
}

impl Norm {
    /// Parameters of one norm over `hidden` features.
    pub fn params(self, hidden: u64) -> u64 {
        match self {
            Norm::Rmsnorm => hidden,
            Norm::Layernorm => 2 * hidden,
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
    /// Tokens an expert accepts, relative to a perfectly even split (Switch Transformer,
    /// arXiv 2101.03961 §2.2): tokens routed above it are dropped. `None` is dropless
    /// routing (MegaBlocks, arXiv 2211.15841; Megatron-Core's default
    /// `moe_expert_capacity_factor: None`): every token is computed, so the hottest
    /// expert's rank sets the pace.
    #[serde(default = "default_capacity_factor")]
    pub capacity_factor: Option<f64>,
    /// Leading layers that keep a dense MLP (DeepSeek-V3 keeps 3).
    #[serde(default)]
    pub dense_layers: u64,
    /// Token imbalance across experts: expert popularity follows a Zipf law with this
    /// exponent (0 = perfectly balanced routing). The most loaded expert-parallel rank
    /// sets the pace of every MoE layer.
    #[serde(default)]
    pub skew: f64,
    /// Node-limited routing (DeepSeek-V3, arXiv 2412.19437 §2.1.2): each token's experts
    /// lie on at most this many nodes, and each token crosses the scale-out fabric once
    /// per target node (§3.2.2). `None`: unlimited.
    #[serde(default)]
    pub max_nodes_per_token: Option<u64>,
}

fn default_capacity_factor() -> Option<f64> {
    Some(1.0)
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

    /// Each expert's load relative to an even split (`share * experts`), hottest first,
    /// after the capacity factor drops what is routed above capacity (no padding to
    /// capacity: Megatron-Core's default `moe_pad_expert_input_to_capacity: False`).
    pub fn expert_loads(&self) -> Vec<f64> {
        let e = self.experts.max(1) as f64;
        self.expert_shares()
            .into_iter()
            .map(|s| match self.capacity_factor {
                Some(c) => (s * e).min(c),
                None => s * e,
            })
            .collect()
    }

    /// Fraction of routed tokens dropped because their expert was full: 0 when dropless.
    pub fn dropped_fraction(&self) -> f64 {
        let Some(c) = self.capacity_factor else {
            return 0.0;
        };
        let e = self.experts.max(1) as f64;
        self.expert_shares()
            .into_iter()
            .map(|s| (s * e - c).max(0.0) / e)
            .sum()
    }

    /// Load of the most loaded of `ep` expert-parallel ranks over the balanced load, with
    /// experts placed round-robin (expert `e` on rank `e mod ep`), so the hottest expert's
    /// rank is the critical path: what it computes, and what it receives in the dispatch
    /// and sends back in the combine. A capacity factor caps every expert at its capacity
    /// (the excess is dropped), so the load never exceeds `capacity_factor`; dropless
    /// routing keeps every token.
    pub fn hottest_rank_load(&self, ep: u64) -> f64 {
        let ep = ep.clamp(1, self.experts.max(1));
        let loads = self.expert_loads();
        let per_rank = loads.len() as f64 / ep as f64;
        let rank0: f64 = loads.iter().step_by(ep as usize).sum();
        rank0 / per_rank
    }

    /// What the most loaded expert-parallel rank moves in one dispatch (or combine)
    /// all-to-all, over the balanced volume: it receives `hottest_rank_load` and sends its
    /// own tokens' copies less those dropped, whichever is more.
    pub fn hottest_rank_traffic(&self, ep: u64) -> f64 {
        self.hottest_rank_load(ep)
            .max(1.0 - self.dropped_fraction())
    }

    /// Copies of a token an all-to-all moves: `top_k`, or under node-limited routing one
    /// per target node (at most `max_nodes_per_token`; DeepSeek-V3 §3.2.2 sends a token
    /// once over InfiniBand to each target node and forwards it on NVLink there).
    pub fn dispatch_copies(&self) -> u64 {
        match self.max_nodes_per_token {
            Some(n) => self.top_k.min(n),
            None => self.top_k,
        }
    }
}

/// Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434 §2.1; DeepSeek-V3, arXiv
/// 2412.19437 §2.1.1): queries and keys/values are projected down to low-rank latents,
/// normalised, and projected up per head; a decoupled RoPE key of `qk_rope_head_dim` is
/// shared by all heads. DeepSeek-V3: `q_lora_rank` 1536, `kv_lora_rank` 512,
/// `qk_nope_head_dim` 128, `qk_rope_head_dim` 64, `v_head_dim` 128 over 128 heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlaSpec {
    /// Query latent width; `None`: full-rank query projection (DeepSeek-V2-Lite).
    pub q_lora_rank: Option<u64>,
    pub kv_lora_rank: u64,
    pub qk_nope_head_dim: u64,
    pub qk_rope_head_dim: u64,
    pub v_head_dim: u64,
}

/// How an attention projection is split over tensor parallelism (Megatron-Core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpSplit {
    /// Output features split (column parallel: QKV, MLA up-projections).
    Column,
    /// Input features split (row parallel: the output projection).
    Row,
    /// Not split: every TP rank computes it (MLA's down-projections).
    Replicated,
}

/// One weight matrix of the attention block: `inputs x outputs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    pub name: &'static str,
    pub inputs: u64,
    pub outputs: u64,
    pub split: TpSplit,
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
    /// Multi-head latent attention instead of (grouped-query) multi-head attention.
    pub mla: Option<MlaSpec>,
    /// Multi-token prediction modules (DeepSeek-V3 §2.2: depth 1): each is one more
    /// transformer layer after the main model, with a `2h -> h` projection and two
    /// RMSNorms, sharing the embedding and output head, and its own prediction loss.
    /// They run on the last pipeline stage (DeepSeek-V3 §3.2.1; Megatron-Core places
    /// `mtp_num_layers` there too).
    pub mtp_depth: u64,
    /// Dropout probability on attention scores and hidden states (Megatron's
    /// `attention_dropout`/`hidden_dropout`, default 0.1). At 0 no dropout masks are kept
    /// for backward (PyTorch's `dropout` with `p = 0` returns its input): Llama, Mixtral
    /// and DeepSeek train without dropout. Changes activation memory only.
    pub dropout: f64,
    /// The normalisation layers (their parameters; both are one fused memory-bound kernel).
    pub norm: Norm,
}

impl ModelSpec {
    pub fn head_dim(&self) -> u64 {
        self.hidden / self.heads
    }

    /// Width of the K (or V) projection under grouped-query attention.
    pub fn kv_width(&self) -> u64 {
        self.kv_heads * self.head_dim()
    }

    /// Key/value heads one of `tp` tensor-parallel ranks holds: `kv_heads / tp`, or one
    /// when there are fewer heads than ranks (Megatron-Core replicates each of them over
    /// `tp / kv_heads` ranks).
    pub fn kv_heads_per_rank(&self, tp: u64) -> u64 {
        (self.kv_heads / tp.max(1)).max(1)
    }

    /// Key/value heads summed over `tp` ranks: `kv_heads`, more when replicated.
    pub fn kv_heads_over_tp(&self, tp: u64) -> u64 {
        self.kv_heads.max(tp.max(1))
    }

    /// Per-head width of queries and keys (MLA: no-RoPE part + decoupled RoPE part).
    pub fn qk_head_dim(&self) -> u64 {
        self.mla
            .map_or(self.head_dim(), |a| a.qk_nope_head_dim + a.qk_rope_head_dim)
    }

    /// Per-head width of values (and of the attention output).
    pub fn v_head_dim(&self) -> u64 {
        self.mla.map_or(self.head_dim(), |a| a.v_head_dim)
    }

    /// Heads of the keys and values attention reads (MLA projects them up per head).
    pub fn attended_kv_heads(&self) -> u64 {
        if self.mla.is_some() {
            self.heads
        } else {
            self.kv_heads
        }
    }

    /// Transformer layers a step runs: the model's and its multi-token prediction
    /// modules' (layer indices `layers..layers + mtp_depth`).
    pub fn stack_layers(&self) -> u64 {
        self.layers + self.mtp_depth
    }

    pub fn is_moe_layer(&self, layer: u64) -> bool {
        self.moe.as_ref().is_some_and(|m| layer >= m.dense_layers)
    }

    /// The attention block's weight matrices, in forward order: Megatron's fused QKV
    /// (grouped-query aware) and output projection, or MLA's down- and up-projections
    /// (DeepSeek-V3's `wq_a`, `wq_b`, `wkv_a` with the RoPE key, `wkv_b`, `wo`).
    pub fn attention_projections(&self) -> Vec<Projection> {
        let (h, n) = (self.hidden, self.heads);
        let p = |name, inputs, outputs, split| Projection {
            name,
            inputs,
            outputs,
            split,
        };
        let Some(a) = self.mla else {
            return vec![
                p("qkv", h, h + 2 * self.kv_width(), TpSplit::Column),
                p("attn_out", h, h, TpSplit::Row),
            ];
        };
        let qk = self.qk_head_dim();
        let mut out = match a.q_lora_rank {
            Some(r) => vec![
                p("q_down", h, r, TpSplit::Replicated),
                p("q_up", r, n * qk, TpSplit::Column),
            ],
            None => vec![p("q_proj", h, n * qk, TpSplit::Column)],
        };
        out.extend([
            p(
                "kv_down",
                h,
                a.kv_lora_rank + a.qk_rope_head_dim,
                TpSplit::Replicated,
            ),
            p(
                "kv_up",
                a.kv_lora_rank,
                n * (a.qk_nope_head_dim + a.v_head_dim),
                TpSplit::Column,
            ),
            p("attn_out", n * a.v_head_dim, h, TpSplit::Row),
        ]);
        out
    }

    /// Widths of MLA's normalised latents (query and key/value), 0 without MLA.
    pub fn mla_latent_width(&self) -> u64 {
        self.mla
            .map_or(0, |a| a.q_lora_rank.unwrap_or(0) + a.kv_lora_rank)
    }

    pub fn attention_params(&self) -> u64 {
        let h = self.hidden;
        let gemms: u64 = self
            .attention_projections()
            .iter()
            .map(|p| p.inputs * p.outputs)
            .sum();
        // Two norms (attention and MLP inputs), and MLA's latent RMSNorms.
        gemms + 2 * self.norm.params(h) + self.mla_latent_width()
    }

    /// Forward FLOPs of the attention core over one sequence of `seq` tokens, counted in
    /// full (no causal discount): `2 s^2 n (d_qk + d_v)`, `4 s^2 h` for multi-head
    /// attention.
    pub fn attention_core_flops(&self, seq: u64) -> f64 {
        let s = seq as f64;
        if self.mla.is_none() {
            return 4.0 * s * s * self.hidden as f64;
        }
        2.0 * s * s * self.heads as f64 * (self.qk_head_dim() + self.v_head_dim()) as f64
    }

    /// Parameters a multi-token prediction module adds besides its transformer layer:
    /// the `2h -> h` projection and its two input RMSNorms (embedding and output head
    /// are shared with the main model).
    pub fn mtp_extra_params(&self) -> u64 {
        let h = self.hidden;
        2 * h * h + 2 * self.norm.params(h)
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
        let mtp = if layer >= self.layers {
            self.mtp_extra_params()
        } else {
            0
        };
        self.attention_params() + mlp + mtp
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

    /// Total parameters, embeddings and multi-token prediction modules included.
    pub fn total_params(&self) -> u64 {
        let layers: u64 = (0..self.stack_layers()).map(|l| self.layer_params(l)).sum();
        let head = if self.tied_embeddings {
            0
        } else {
            self.embedding_params()
        };
        layers + self.embedding_params() + head + self.norm.params(self.hidden)
    }

    /// Parameters a token actually multiplies through (MoE: top-k plus shared experts only).
    pub fn active_params(&self) -> u64 {
        let Some(m) = &self.moe else {
            return self.total_params();
        };
        let moe_layers = self.stack_layers().saturating_sub(m.dense_layers);
        let inactive = (m.experts - m.top_k) * self.expert_params();
        self.total_params() - moe_layers * inactive
    }

    /// Model FLOPs of one forward pass over one sequence of `seq` tokens: every matmul once,
    /// attention scores counted in full (no causal discount), as Korthikanti et al. eq. 7 does;
    /// multi-token prediction modules (a layer, the `2h -> h` projection and one more output
    /// head each) included.
    pub fn forward_flops_per_sequence(&self, seq: u64) -> f64 {
        let (s, h) = (seq as f64, self.hidden as f64);
        let attn = if self.mla.is_some() {
            let gemms: u64 = self
                .attention_projections()
                .iter()
                .map(|p| p.inputs * p.outputs)
                .sum();
            2.0 * s * gemms as f64
        } else {
            2.0 * s * h * (h + 2.0 * self.kv_width() as f64) + 2.0 * s * h * h
        } + self.attention_core_flops(seq);
        let mut total = 0.0;
        for layer in 0..self.stack_layers() {
            let mlp = match &self.moe {
                Some(m) if self.is_moe_layer(layer) => {
                    let per_expert = 2.0 * s * self.expert_params() as f64;
                    per_expert * (m.top_k + m.shared_experts) as f64
                        + 2.0 * s * h * m.experts as f64
                }
                _ => 2.0 * s * self.dense_mlp_params() as f64,
            };
            total += attn + mlp;
        }
        let mtp = self.mtp_depth as f64 * (2.0 * s * 2.0 * h * h);
        let heads = (1 + self.mtp_depth) as f64;
        total + mtp + heads * 2.0 * s * h * self.vocab as f64
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
            mla: None,
            mtp_depth: 0,
            dropout: 0.1,
            norm: Default::default(),
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

    fn four_experts(skew: f64, capacity_factor: Option<f64>) -> MoeSpec {
        MoeSpec {
            experts: 4,
            top_k: 1,
            expert_ffn_hidden: 8,
            shared_experts: 0,
            capacity_factor,
            dense_layers: 0,
            skew,
            max_nodes_per_token: None,
        }
    }

    /// Zipf 1 over 4 experts: shares 12/25, 6/25, 4/25, 3/25, so loads over an even split
    /// are 1.92, 0.96, 0.64, 0.48 (by hand).
    #[test]
    fn capacity_caps_the_hottest_expert_and_drops_the_excess() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let dropless = four_experts(1.0, None);
        let loads = dropless.expert_loads();
        for (got, want) in loads.iter().zip([1.92, 0.96, 0.64, 0.48]) {
            assert!(close(*got, want), "{loads:?}");
        }
        assert_eq!(dropless.dropped_fraction(), 0.0);
        assert!(close(dropless.hottest_rank_load(4), 1.92));
        // EP 2: experts 0 and 2 on rank 0.
        assert!(close(dropless.hottest_rank_load(2), (1.92 + 0.64) / 2.0));
        let capped = four_experts(1.0, Some(1.25));
        assert!(close(capped.hottest_rank_load(4), 1.25));
        assert!(close(capped.hottest_rank_load(2), (1.25 + 0.64) / 2.0));
        // Expert 0 receives 1.92 of its 1.25 capacity: 0.67 of a quarter of the tokens.
        assert!(close(capped.dropped_fraction(), 0.67 / 4.0));
        // The hottest rank receives 1.25 and sends what was not dropped.
        assert!(close(capped.hottest_rank_traffic(4), 1.25));
        let tight = four_experts(1.0, Some(0.5));
        assert!(close(tight.hottest_rank_load(4), 0.5));
        assert!(close(tight.dropped_fraction(), (1.42 + 0.46 + 0.14) / 4.0));
        // It receives 0.5 and sends its tokens less the 50.5 % dropped: 0.495.
        assert!(close(tight.hottest_rank_traffic(4), 0.5));
        // Balanced routing under capacity 1 drops nothing and is not padded.
        assert!(close(
            four_experts(0.0, Some(1.5)).hottest_rank_load(4),
            1.0
        ));
        assert_eq!(four_experts(0.0, Some(1.0)).dropped_fraction(), 0.0);
    }

    #[test]
    fn node_limited_routing_sends_one_copy_per_node() {
        let mut m = four_experts(0.0, None);
        m.top_k = 8;
        assert_eq!(m.dispatch_copies(), 8);
        m.max_nodes_per_token = Some(4);
        assert_eq!(m.dispatch_copies(), 4);
        m.top_k = 2;
        assert_eq!(m.dispatch_copies(), 2);
    }

    /// LayerNorm adds a bias to each norm's gain: `h` more parameters per norm, two per
    /// layer and the final one (by hand).
    #[test]
    fn layernorm_has_a_bias_per_feature() {
        let rms = gpt(4, 1024, 8, 32000);
        let ln = ModelSpec {
            norm: Norm::Layernorm,
            ..rms.clone()
        };
        assert_eq!(ln.total_params() - rms.total_params(), (2 * 4 + 1) * 1024);
        assert_eq!(ln.attention_params() - rms.attention_params(), 2 * 1024);
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
            mla: None,
            mtp_depth: 0,
            dropout: 0.1,
            norm: Default::default(),
        };
        let p = m.total_params() as f64 / 1e9;
        assert!((p - 70.6).abs() < 0.2, "{p}");
    }
}
