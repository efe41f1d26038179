//! The kernels one transformer layer launches per micro-batch on one GPU, with their FLOPs
//! and HBM bytes, after tensor / sequence / context parallel sharding.
//!
//! Shapes follow Megatron-LM's layer (arXiv 2104.04473 §3, arXiv 2205.05198 §4): layer norm,
//! QKV projection (grouped-query aware), attention core (FlashAttention or the unfused
//! softmax/dropout path), output projection, dropout + residual, layer norm, MLP (GELU or
//! SwiGLU), dropout + residual. Backward kernels are derived from forward ones.

use super::ModelSpec;

/// How a kernel's time is modeled by the hardware module.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KernelClass {
    /// A matrix multiply `m x k` by `k x n`: compute bound when large.
    Gemm { m: u64, n: u64, k: u64 },
    /// A fused attention kernel (FlashAttention): compute bound at a lower efficiency.
    Attention,
    /// Element-wise or reduction work: bound by HBM bandwidth.
    Memory,
}

/// Which pass a kernel belongs to; zero-bubble schedules split backward into input and
/// weight gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Forward,
    BackwardInput,
    BackwardWeight,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub name: &'static str,
    pub class: KernelClass,
    pub flops: f64,
    pub bytes: f64,
    pub phase: Phase,
}

/// How one layer's work is split across GPUs and how big a micro-batch is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerShard {
    pub micro_batch: u64,
    pub seq_len: u64,
    pub tp: u64,
    pub cp: u64,
    pub sequence_parallel: bool,
    pub flash_attention: bool,
    /// Bytes per activation / weight element (2 for 16-bit, 1 for FP8 GEMM inputs).
    pub elem_bytes: f64,
}

impl LayerShard {
    /// Tokens this GPU's GEMMs see (context parallel splits the sequence).
    pub fn tokens(&self) -> u64 {
        self.micro_batch * self.seq_len / self.cp.max(1)
    }

    /// Tokens element-wise ops see: sequence parallel also splits them over TP.
    fn elementwise_tokens(&self) -> f64 {
        let t = self.tokens() as f64;
        if self.sequence_parallel {
            t / self.tp as f64
        } else {
            t
        }
    }
}

fn gemm(name: &'static str, m: u64, n: u64, k: u64, elem: f64) -> Kernel {
    let (mf, nf, kf) = (m as f64, n as f64, k as f64);
    Kernel {
        name,
        class: KernelClass::Gemm { m, n, k },
        flops: 2.0 * mf * nf * kf,
        bytes: (mf * kf + kf * nf + mf * nf) * elem,
        phase: Phase::Forward,
    }
}

fn memory(name: &'static str, bytes: f64) -> Kernel {
    Kernel {
        name,
        class: KernelClass::Memory,
        flops: 0.0,
        bytes,
        phase: Phase::Forward,
    }
}

/// One attention projection on this GPU: column-parallel ones split their outputs over
/// TP, row-parallel ones their inputs, replicated ones run whole on every TP rank.
fn projection(model: &ModelSpec, p: &super::Projection, tokens: u64, t: u64, e: f64) -> Kernel {
    if p.name == "qkv" && model.kv_heads < t {
        // Fewer key/value heads than TP ranks: each rank computes its queries and one
        // replicated key/value head.
        let n = model.hidden / t + 2 * model.head_dim() * model.kv_heads_per_rank(t);
        return gemm(p.name, tokens, n, p.inputs, e);
    }
    let (n, k) = match p.split {
        super::TpSplit::Column => (p.outputs / t, p.inputs),
        super::TpSplit::Row => (p.outputs, p.inputs / t),
        super::TpSplit::Replicated => (p.outputs, p.inputs),
    };
    gemm(p.name, tokens, n, k, e)
}

/// Forward kernels of the attention block (norm through residual add); under MLA the
/// down-projections, latent RMSNorms and up-projections replace the QKV projection.
pub fn attention_forward(model: &ModelSpec, sh: &LayerShard) -> Vec<Kernel> {
    let (h, t) = (model.hidden, sh.tp);
    let tokens = sh.tokens();
    let e = sh.elem_bytes;
    let act = sh.elementwise_tokens() * h as f64 * 2.0;
    let heads_local = (model.heads / t) as f64;
    let (s_q, s_kv) = (sh.seq_len as f64 / sh.cp as f64, sh.seq_len as f64);
    let b = sh.micro_batch as f64;
    let projections = model.attention_projections();
    let (out_proj, in_proj) = projections.split_last().expect("an output projection");
    let mut ks = vec![memory("layernorm", 2.0 * act)];
    for p in in_proj {
        ks.push(projection(model, p, tokens, t, e));
        if p.split == super::TpSplit::Replicated {
            // MLA's latent RMSNorm: reads and writes the latent (16-bit).
            ks.push(memory(
                "latent_norm",
                2.0 * tokens as f64 * p.outputs as f64 * 2.0,
            ));
        }
    }
    let (d_qk, d_v) = (model.qk_head_dim() as f64, model.v_head_dim() as f64);
    if sh.flash_attention {
        // Causal FlashAttention skips the masked half of the score matrix. It reads Q, K
        // and V and writes the output (16-bit).
        let (flops, io) = if model.mla.is_none() {
            (
                4.0 * b * s_q * s_kv * (h / t) as f64 * 0.5,
                4.0 * tokens as f64 * (h / t) as f64 * 2.0,
            )
        } else {
            (
                2.0 * b * s_q * s_kv * heads_local * (d_qk + d_v) * 0.5,
                tokens as f64 * heads_local * (2.0 * d_qk + 2.0 * d_v) * 2.0,
            )
        };
        ks.push(Kernel {
            name: "flash_attn",
            class: KernelClass::Attention,
            flops,
            bytes: io,
            phase: Phase::Forward,
        });
    } else {
        let batch = (b * heads_local) as u64;
        let mut qk = gemm(
            "attn_scores",
            s_q as u64,
            s_kv as u64,
            model.qk_head_dim(),
            2.0,
        );
        let mut av = gemm(
            "attn_values",
            s_q as u64,
            model.v_head_dim(),
            s_kv as u64,
            2.0,
        );
        for k in [&mut qk, &mut av] {
            k.flops *= batch as f64;
            k.bytes *= batch as f64;
        }
        ks.push(qk);
        // Megatron's fused scale-mask-softmax reads and writes the scores (4 bytes each);
        // attention dropout reads them and writes the dropped scores and a mask (5 bytes).
        // The score GEMMs' own reads and writes are in their roofline.
        let scores = b * heads_local * s_q * s_kv;
        ks.push(memory(
            "softmax_dropout",
            SOFTMAX_DROPOUT_FWD_BYTES * scores,
        ));
        ks.push(av);
    }
    ks.push(projection(model, out_proj, tokens, t, e));
    ks.push(memory("dropout_residual", 3.0 * act));
    ks
}

/// Forward kernels of a dense MLP block (norm through residual add).
pub fn mlp_forward(model: &ModelSpec, sh: &LayerShard) -> Vec<Kernel> {
    mlp_kernels(model.hidden, model.ffn_hidden, model.ffn.matrices(), sh)
}

fn mlp_kernels(h: u64, f: u64, matrices: u64, sh: &LayerShard) -> Vec<Kernel> {
    let t = sh.tp;
    let tokens = sh.tokens();
    let e = sh.elem_bytes;
    let act = sh.elementwise_tokens() * h as f64 * 2.0;
    let up = (matrices - 1) * f / t;
    vec![
        memory("layernorm", 2.0 * act),
        gemm("mlp_up", tokens, up, h, e),
        memory("activation", tokens as f64 * up as f64 * 2.0 * 1.5),
        gemm("mlp_down", tokens, h, f / t, e),
        memory("dropout_residual", 3.0 * act),
    ]
}

/// Forward kernels of the routed experts one GPU runs for `tokens_per_expert` tokens each.
pub fn experts_forward(
    model: &ModelSpec,
    sh: &LayerShard,
    local_experts: u64,
    tokens_per_expert: u64,
) -> Vec<Kernel> {
    let Some(moe) = &model.moe else {
        return Vec::new();
    };
    let shard = LayerShard {
        micro_batch: 1,
        seq_len: tokens_per_expert.max(1),
        cp: 1,
        ..*sh
    };
    let one = mlp_kernels(
        model.hidden,
        moe.expert_ffn_hidden,
        model.ffn.matrices(),
        &shard,
    );
    // Grouped GEMMs: the experts' kernels run back to back; norms belong to the block.
    one.into_iter()
        .filter(|k| matches!(k.class, KernelClass::Gemm { .. }) || k.name == "activation")
        .map(|mut k| {
            k.flops *= local_experts as f64;
            k.bytes *= local_experts as f64;
            k
        })
        .collect()
}

/// Input embedding lookup (first pipeline stage).
pub fn embedding_forward(model: &ModelSpec, sh: &LayerShard) -> Vec<Kernel> {
    vec![memory(
        "embedding",
        sh.tokens() as f64 * model.hidden as f64 * 2.0 * 2.0,
    )]
}

/// Final norm, output projection to the vocabulary and cross-entropy (last stage).
pub fn logits_forward(model: &ModelSpec, sh: &LayerShard) -> Vec<Kernel> {
    let tokens = sh.tokens();
    let v_local = model.vocab / sh.tp;
    vec![
        memory(
            "final_layernorm",
            2.0 * sh.elementwise_tokens() * model.hidden as f64 * 2.0,
        ),
        gemm("logits", tokens, v_local, model.hidden, sh.elem_bytes),
        // Softmax cross-entropy in fp32 over the local vocabulary shard.
        memory("cross_entropy", tokens as f64 * v_local as f64 * 4.0 * 3.0),
    ]
}

/// The multi-token prediction modules' work outside their transformer layer, on the last
/// stage (DeepSeek-V3 §2.2): per module, the shared embedding looked up again for the
/// shifted tokens, two RMSNorms, the `2h -> h` projection of their concatenation, and one
/// more output head and loss ([`logits_forward`]).
pub fn mtp_heads_forward(model: &ModelSpec, sh: &LayerShard) -> Vec<Kernel> {
    let mut ks = Vec::new();
    let tokens = sh.tokens();
    let h = model.hidden;
    for _ in 0..model.mtp_depth {
        ks.extend(embedding_forward(model, sh));
        ks.push(memory(
            "mtp_norms",
            2.0 * 2.0 * sh.elementwise_tokens() * h as f64 * 2.0,
        ));
        ks.push(gemm("mtp_proj", tokens, h / sh.tp, 2 * h, sh.elem_bytes));
        ks.extend(logits_forward(model, sh));
    }
    ks
}

/// Bytes per attention score the unfused softmax and dropout move in forward:
/// Megatron's fused scale-mask-softmax reads and writes the 16-bit scores (4), attention
/// dropout reads them and writes the dropped scores and a one-byte mask (5).
pub const SOFTMAX_DROPOUT_FWD_BYTES: f64 = 9.0;
/// ... and in backward: `torch.nn.Dropout`'s `native_dropout_backward` reads the gradient
/// and the mask and writes the gradient (2 + 1 + 2), then Megatron's fused softmax
/// backward (`scaled_upper_triang_masked_softmax_cuda.backward(output_grads,
/// softmax_results, scale)`, megatron/model/fused_softmax.py, NVIDIA/Megatron-LM
/// d898a8991d, 2022-05) reads the gradient and the saved probabilities and writes the
/// input gradient (2 + 2 + 2): 11 bytes, not twice the forward's 9.
pub const SOFTMAX_DROPOUT_BWD_BYTES: f64 = 11.0;

/// Backward bytes of a memory-bound kernel over its forward bytes: the unfused attention
/// softmax and dropout as their backward kernels move them
/// ([`SOFTMAX_DROPOUT_BWD_BYTES`]); other element-wise work twice its forward (a
/// backward reads the gradient and the saved input and writes a gradient; how many
/// passes a norm's backward takes depends on its implementation, which is not modelled).
pub fn memory_backward_factor(name: &str) -> f64 {
    match name {
        "softmax_dropout" => SOFTMAX_DROPOUT_BWD_BYTES / SOFTMAX_DROPOUT_FWD_BYTES,
        _ => 2.0,
    }
}

/// Backward kernels of a forward list: every GEMM yields an input-gradient and a
/// weight-gradient GEMM of the same size; attention backward costs 2.5x its forward
/// (FlashAttention recomputes the scores); element-wise work per
/// [`memory_backward_factor`].
pub fn backward(forward: &[Kernel]) -> Vec<Kernel> {
    let mut out = Vec::with_capacity(forward.len() * 2);
    for k in forward.iter().rev() {
        match k.class {
            KernelClass::Gemm { m, n, k: kd } => {
                let is_weight_gemm = !matches!(k.name, "attn_scores" | "attn_values");
                let dgrad = Kernel {
                    class: KernelClass::Gemm { m, n: kd, k: n },
                    phase: Phase::BackwardInput,
                    ..k.clone()
                };
                let wgrad = Kernel {
                    class: KernelClass::Gemm { m: kd, n, k: m },
                    phase: if is_weight_gemm {
                        Phase::BackwardWeight
                    } else {
                        Phase::BackwardInput
                    },
                    ..k.clone()
                };
                out.push(dgrad);
                out.push(wgrad);
            }
            KernelClass::Attention => out.push(Kernel {
                flops: 2.5 * k.flops,
                bytes: 2.5 * k.bytes,
                phase: Phase::BackwardInput,
                ..k.clone()
            }),
            KernelClass::Memory => out.push(Kernel {
                bytes: memory_backward_factor(k.name) * k.bytes,
                phase: Phase::BackwardInput,
                ..k.clone()
            }),
        }
    }
    out
}

/// The forward kernels that selective recompute replays in backward: the attention core
/// (the `s^2` part Korthikanti et al. chose not to store).
pub fn selective_recompute(attention_fwd: &[Kernel]) -> Vec<Kernel> {
    attention_fwd
        .iter()
        .filter(|k| {
            matches!(
                k.name,
                "attn_scores" | "softmax_dropout" | "attn_values" | "flash_attn"
            )
        })
        .cloned()
        .collect()
}

/// Mixed-precision Adam over `params` local parameters: reads fp32 master, m, v and the
/// gradient, writes them back plus the 16-bit copy (memory bound).
pub fn adam_step(params: u64) -> Vec<Kernel> {
    vec![memory("adam", params as f64 * 30.0)]
}

pub fn total_flops(kernels: &[Kernel]) -> f64 {
    kernels.iter().map(|k| k.flops).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FfnKind;

    fn gpt() -> ModelSpec {
        ModelSpec {
            name: "t".into(),
            layers: 1,
            hidden: 4096,
            heads: 32,
            kv_heads: 32,
            ffn_hidden: 16384,
            ffn: FfnKind::Gelu,
            vocab: 51200,
            moe: None,
            tied_embeddings: true,
            mla: None,
            mtp_depth: 0,
            dropout: 0.1,
            norm: Default::default(),
        }
    }

    fn shard(flash: bool) -> LayerShard {
        LayerShard {
            micro_batch: 2,
            seq_len: 2048,
            tp: 1,
            cp: 1,
            sequence_parallel: false,
            flash_attention: flash,
            elem_bytes: 2.0,
        }
    }

    #[test]
    fn unfused_layer_flops_match_reference_formula() {
        let m = gpt();
        let sh = shard(false);
        let f = total_flops(&attention_forward(&m, &sh)) + total_flops(&mlp_forward(&m, &sh));
        let (b, s, h) = (2.0, 2048.0, 4096.0);
        let reference = 24.0 * b * s * h * h + 4.0 * b * s * s * h;
        assert!((f / reference - 1.0).abs() < 1e-12, "{f} vs {reference}");
    }

    #[test]
    fn backward_is_twice_forward_for_gemms() {
        let m = gpt();
        let fwd = mlp_forward(&m, &shard(true));
        let bwd = backward(&fwd);
        assert!((total_flops(&bwd) / total_flops(&fwd) - 2.0).abs() < 1e-12);
    }

    /// MLA with DeepSeek-V3's ranks: the unfused layer's kernels add up to the model's
    /// attention FLOPs (`2 s` per projection weight + `2 s^2 n (d_qk + d_v)`), and the
    /// causal FlashAttention kernel does half the core.
    #[test]
    fn mla_kernels_match_the_model_flops() {
        let m = ModelSpec {
            hidden: 7168,
            heads: 128,
            kv_heads: 128,
            mla: Some(crate::model::MlaSpec {
                q_lora_rank: Some(1536),
                kv_lora_rank: 512,
                qk_nope_head_dim: 128,
                qk_rope_head_dim: 64,
                v_head_dim: 128,
            }),
            ..gpt()
        };
        let sh = LayerShard {
            micro_batch: 1,
            ..shard(false)
        };
        let s = 2048.0;
        let weights: u64 = m
            .attention_projections()
            .iter()
            .map(|p| p.inputs * p.outputs)
            .sum();
        let core = 2.0 * s * s * 128.0 * (192.0 + 128.0);
        let want = 2.0 * s * weights as f64 + core;
        let got = total_flops(&attention_forward(&m, &sh));
        assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        assert_eq!(m.attention_core_flops(2048), core);
        let flash = total_flops(&attention_forward(
            &m,
            &LayerShard {
                flash_attention: true,
                ..sh
            },
        ));
        assert!((flash / (want - core / 2.0) - 1.0).abs() < 1e-12);
    }

    /// GQA with 8 KV heads on TP 16: each rank computes its 2 query heads and one
    /// replicated KV head (Megatron-Core), not 1/16 of the KV projection.
    #[test]
    fn kv_heads_replicate_when_tp_exceeds_them() {
        let m = ModelSpec {
            hidden: 8192,
            heads: 64,
            kv_heads: 8,
            ..gpt()
        };
        let sh = LayerShard {
            tp: 16,
            ..shard(true)
        };
        let qkv = attention_forward(&m, &sh)
            .into_iter()
            .find(|k| k.name == "qkv")
            .unwrap();
        assert_eq!(
            qkv.class,
            KernelClass::Gemm {
                m: 4096,
                n: 8192 / 16 + 2 * 128,
                k: 8192
            }
        );
        let tp8 = attention_forward(&m, &LayerShard { tp: 8, ..sh })
            .into_iter()
            .find(|k| k.name == "qkv")
            .unwrap();
        assert_eq!(
            tp8.class,
            KernelClass::Gemm {
                m: 4096,
                n: (8192 + 2 * 1024) / 8,
                k: 8192
            }
        );
    }

    #[test]
    fn tensor_parallel_divides_gemm_flops() {
        let m = gpt();
        let one = total_flops(&mlp_forward(&m, &shard(true)));
        let eight = total_flops(&mlp_forward(
            &m,
            &LayerShard {
                tp: 8,
                ..shard(true)
            },
        ));
        assert!((one / eight - 8.0).abs() < 1e-12);
    }
}
