//! Activation memory: the bytes one transformer layer keeps for its backward pass
//! (Korthikanti et al., arXiv 2205.05198, Table 2, generalised from shapes: GQA, SwiGLU,
//! MoE, CP) and the peak a stage holds under its actual pipeline order.
//!
//! Must not know about time: it walks the pipeline order ([`crate::plan::pipeline`]) only
//! to count the micro-batches in flight.

use crate::model::ModelSpec;
use crate::plan::pipeline::{self, Pass};
use crate::plan::{Recompute, ScheduleKind};

/// Activation recompute and sharding options that decide bytes per layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivationShard {
    /// Tokens per sequence this rank holds (`s / cp`).
    pub seq_local: u64,
    /// Full sequence length (keys a query attends to).
    pub seq_len: u64,
    pub micro_batch: u64,
    pub tp: u64,
    pub sequence_parallel: bool,
    pub recompute: Recompute,
    pub flash_attention: bool,
    /// Expert-parallel ranks (the hottest one holds the most routed tokens).
    pub ep: u64,
    /// Bytes of a stored activation element: 2 (16-bit, and FP8 training, which keeps
    /// activations in BF16), 4 in fp32 training (every term but the 1-byte dropout masks
    /// doubles).
    pub elem_bytes: f64,
    /// What DeepSeek-V3 does not store ([`StoredActivations`]).
    pub stored: StoredActivations,
}

/// Activations DeepSeek-V3 keeps out of memory (arXiv 2412.19437): recomputed RMSNorms and
/// MLA up-projections (§3.2.3), FP8-cached Linear and SwiGLU inputs (§3.3.3). All off:
/// Korthikanti et al.'s accounting as it stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredActivations {
    /// `training.recompute_norms`: the norm outputs (the QKV and MLP inputs, MLA's
    /// normalised latents) are recomputed from the norm inputs.
    pub recompute_norms: bool,
    /// `training.recompute_mla_up_proj`: Q, K and V are recomputed from the latents.
    pub recompute_mla_up_proj: bool,
    /// `training.fp8_activations`: Linear inputs kept in FP8 (1 byte), the attention
    /// output (the output projection's input) in E5M6 (1.5 bytes), SwiGLU inputs in FP8
    /// and its output (the down-projection's input) recomputed, not stored.
    pub fp8: bool,
}

/// Bytes per token over `h` (as `layer_activation_bytes`'s terms) that
/// [`StoredActivations`] saves: `(sharded, replicated, latents)`.
fn stored_savings(model: &ModelSpec, layer: u64, sh: &ActivationShard) -> (f64, f64, f64) {
    let st = sh.stored;
    let h = model.hidden as f64;
    let w = sh.elem_bytes / 2.0;
    let (mut sharded, mut replicated, mut latents) = (0.0, 0.0, 0.0);
    let width = model.mla_latent_width() as f64 / h;
    // A cached Linear input: 2w bytes, 1 in FP8.
    let fp8_cut = if st.fp8 { 2.0 * w - 1.0 } else { 0.0 };
    // The two norm outputs (QKV and MLP inputs) and the normalised latents.
    if st.recompute_norms {
        replicated += 2.0 * 2.0 * w;
        latents += 2.0 * w * width;
    } else {
        replicated += 2.0 * fp8_cut;
        latents += fp8_cut * width;
    }
    let n = model.heads as f64;
    let d_v = model.v_head_dim() as f64;
    if st.recompute_mla_up_proj && model.mla.is_some() {
        let kv = model.attended_kv_heads() as f64;
        let d_qk = model.qk_head_dim() as f64;
        sharded += 2.0 * w * (n * d_qk + kv * d_qk + kv * d_v) / h;
    }
    if st.fp8 {
        // The attention output in E5M6: 1.5 bytes of 2w.
        let out = if model.mla.is_some() {
            n * d_v / h
        } else {
            1.0
        };
        sharded += (2.0 * w - 1.5) * out;
        // SwiGLU (activation) inputs in FP8, its output not stored; each routed copy's
        // input in FP8.
        let k = model.ffn.matrices() as f64;
        let act = |f: f64| ((k - 1.0) * fp8_cut + 2.0 * w) * f / h;
        sharded += match &model.moe {
            Some(m) if model.is_moe_layer(layer) => {
                let copies = m.top_k as f64 * m.hottest_rank_load(sh.ep);
                let fe = m.expert_ffn_hidden as f64;
                copies * (fp8_cut + act(fe)) + m.shared_experts as f64 * act(fe)
            }
            _ => act(model.ffn_hidden as f64),
        };
    }
    (sharded, replicated, latents)
}

/// Bytes of activations one transformer layer stores for backward, one micro-batch on one
/// rank: Korthikanti et al. Table 2 with GPT shapes (`34 s b h` + `5 a s² b`), generalised:
/// attention `4 + 2 + 2 + 4r + 2 + 1` (norm, QKV input, Q, K and V with `r = h_kv/h`,
/// projection input, dropout mask), MLP `2 + 1 + (2(k-1) + 2) f/h` (input, mask,
/// up-projection outputs and activation output, `k` matrices), norm `2`. Without sequence
/// parallel the norms, masks and block inputs (`10 s b h`) are replicated over TP.
pub fn layer_activation_bytes(model: &ModelSpec, layer: u64, sh: &ActivationShard) -> f64 {
    let h = model.hidden as f64;
    let sbh = (sh.seq_local * sh.micro_batch) as f64 * h;
    let t = sh.tp as f64;
    // Korthikanti's coefficients count 16-bit elements; wider ones scale them.
    let w = sh.elem_bytes / 2.0;
    if sh.recompute == Recompute::Full {
        // Only the layer input is kept (sharded over TP with sequence parallel).
        return if sh.sequence_parallel {
            2.0 * w * sbh / t
        } else {
            2.0 * w * sbh
        };
    }
    // Q, K and V as attention reads them, and its output (the projection input), per
    // token over h: `2 + 4r + 2` for (grouped-query) multi-head attention.
    let attn_sharded = if model.mla.is_none() {
        // Key/value heads replicated over TP when fewer than its ranks: `tp` of them.
        let r = (model.kv_heads_over_tp(sh.tp) * model.head_dim()) as f64 / h;
        2.0 + 4.0 * r + 2.0
    } else {
        let (n, kv) = (model.heads as f64, model.attended_kv_heads() as f64);
        let (d_qk, d_v) = (model.qk_head_dim() as f64, model.v_head_dim() as f64);
        2.0 * (n * d_qk + kv * d_qk + kv * d_v + n * d_v) / h
    };
    // MLA's latents, each stored before and after its RMSNorm (16-bit), on every TP rank.
    let latents = 2.0 * 2.0 * model.mla_latent_width() as f64 / h;
    let k = model.ffn.matrices() as f64;
    let mlp_sharded = match &model.moe {
        Some(m) if model.is_moe_layer(layer) => {
            // Routed copies of the token plus per-expert hidden activations, on the most
            // loaded expert-parallel rank (capped at capacity, or the hottest dropless).
            let copies = m.top_k as f64 * m.hottest_rank_load(sh.ep);
            let fe = m.expert_ffn_hidden as f64 / h;
            copies * (2.0 + (2.0 * (k - 1.0) + 2.0) * fe)
                + m.shared_experts as f64 * (2.0 * (k - 1.0) + 2.0) * fe
        }
        _ => (2.0 * (k - 1.0) + 2.0) * model.ffn_hidden as f64 / h,
    };
    let sharded = (attn_sharded + mlp_sharded) * w;
    // Two norms' inputs, two dropout masks (none without dropout), the QKV and MLP inputs.
    let dropout = model.dropout > 0.0;
    let replicated = 8.0 * w + if dropout { 2.0 } else { 0.0 };
    let scores = if sh.flash_attention || sh.recompute == Recompute::Selective {
        0.0
    } else {
        // Softmax output, dropout mask and dropout output: 5 bytes per score (the softmax
        // output alone, 2 bytes, without dropout).
        let per_score = if dropout { 4.0 * w + 1.0 } else { 2.0 * w };
        per_score * model.heads as f64 * sh.seq_len as f64 / h
    };
    let per_sbh = if sh.sequence_parallel {
        (replicated + sharded + scores) / t
    } else {
        replicated + (sharded + scores) / t
    };
    let full = (per_sbh + latents * w) * sbh;
    if sh.stored == StoredActivations::default() {
        return full;
    }
    let (cut_sharded, cut_replicated, cut_latents) = stored_savings(model, layer, sh);
    let cut = if sh.sequence_parallel {
        (cut_replicated + cut_sharded) / t
    } else {
        cut_replicated + cut_sharded / t
    };
    full - (cut + cut_latents) * sbh
}

/// Peak activation bytes a stage holds: walks the stage's pipeline order and tracks the
/// micro-batch chunks whose activations are alive (forward done, backward — the weight
/// pass under zero-bubble schedules — not yet). Returns (bytes, peak in-flight micro-batches
/// in units of the stage's layers).
pub(super) fn peak_activations(
    kind: ScheduleKind,
    stage: u32,
    (pp, m, v): (u32, u32, u32),
    chunk_bytes: &[f64],
) -> (f64, f64) {
    // DualPipe: Table 2's `p + 1` micro-batches of a stage's layers, scaled from 1F1B's
    // peak below (its two chunks hold half the micro-batches each).
    let walk = if kind == ScheduleKind::Dualpipe {
        ScheduleKind::OneFOneB
    } else {
        kind
    };
    let order = pipeline::stage_order(walk, stage, pp, m, v);
    let release = if pipeline::splits_backward(walk) {
        Pass::Weight
    } else {
        Pass::Backward
    };
    let (mut live, mut peak) = (0.0f64, 0.0f64);
    for s in &order {
        let b = chunk_bytes.get(s.chunk as usize).copied().unwrap_or(0.0);
        if s.pass == Pass::Forward {
            live += b;
        } else if s.pass == release {
            live -= b;
        }
        peak = peak.max(live);
    }
    let all: f64 = chunk_bytes.iter().sum();
    let factor = if all > 0.0 { peak / all } else { 0.0 };
    if kind == ScheduleKind::Dualpipe {
        // DualPipe holds activations of `p + 1` micro-batches (DeepSeek-V3 Table 2).
        let dual = factor * (pp as f64 + 1.0) / pp as f64;
        return (dual * all, dual);
    }
    (peak, factor)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::FfnKind;

    /// GPT-3 175B shapes: the model of Korthikanti et al.'s Table 2 (MHA, GELU, f = 4h).
    pub(in crate::pricing::memory) fn gpt3() -> ModelSpec {
        ModelSpec {
            name: "gpt3".into(),
            layers: 96,
            hidden: 12288,
            heads: 96,
            kv_heads: 96,
            ffn_hidden: 4 * 12288,
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

    pub(in crate::pricing::memory) fn shard(
        tp: u64,
        sp: bool,
        recompute: Recompute,
        flash: bool,
    ) -> ActivationShard {
        ActivationShard {
            seq_local: 2048,
            seq_len: 2048,
            micro_batch: 1,
            tp,
            sequence_parallel: sp,
            recompute,
            flash_attention: flash,
            ep: 1,
            elem_bytes: 2.0,
            stored: Default::default(),
        }
    }

    pub(in crate::pricing::memory) fn close(a: f64, b: f64) -> bool {
        (a / b - 1.0).abs() < 1e-12
    }

    #[test]
    fn korthikanti_table2_every_recompute_and_sp_combination() {
        let m = gpt3();
        let (s, b, h, a) = (2048.0, 1.0, 12288.0, 96.0);
        let sbh = s * b * h;
        let t = 8.0;
        let cases = [
            // (tp, sp, recompute, flash) -> Table 2 row
            ((1, false, Recompute::None), sbh * (34.0 + 5.0 * a * s / h)),
            (
                (8, false, Recompute::None),
                sbh * (10.0 + 24.0 / t + 5.0 * a * s / (h * t)),
            ),
            (
                (8, true, Recompute::None),
                sbh * (34.0 / t + 5.0 * a * s / (h * t)),
            ),
            ((8, false, Recompute::Selective), sbh * (10.0 + 24.0 / t)),
            ((8, true, Recompute::Selective), sbh * 34.0 / t),
            ((1, false, Recompute::Selective), sbh * 34.0),
            ((1, false, Recompute::Full), 2.0 * sbh),
            ((8, false, Recompute::Full), 2.0 * sbh),
            // Megatron keeps the checkpointed input sharded under sequence parallel.
            ((8, true, Recompute::Full), 2.0 * sbh / t),
        ];
        for ((tp, sp, rc), want) in cases {
            let got = layer_activation_bytes(&m, 0, &shard(tp, sp, rc, false));
            assert!(close(got, want), "tp={tp} sp={sp} {rc:?}: {got} vs {want}");
        }
    }

    #[test]
    fn flash_attention_drops_the_score_term() {
        let m = gpt3();
        let sbh = 2048.0 * 12288.0;
        let cases = [
            ((1, false), sbh * 34.0),
            ((8, false), sbh * (10.0 + 24.0 / 8.0)),
            ((8, true), sbh * 34.0 / 8.0),
        ];
        for ((tp, sp), want) in cases {
            let got = layer_activation_bytes(&m, 0, &shard(tp, sp, Recompute::None, true));
            assert!(close(got, want), "tp={tp} sp={sp}: {got} vs {want}");
        }
    }

    #[test]
    fn fp32_doubles_every_term_but_the_dropout_masks() {
        let mut m = gpt3();
        let sbh = 2048.0 * 12288.0;
        for (tp, sp, rc) in [
            (8, true, Recompute::Selective),
            (1, false, Recompute::None),
            (8, false, Recompute::Full),
        ] {
            let half = shard(tp, sp, rc, false);
            let wide = ActivationShard {
                elem_bytes: 4.0,
                ..half
            };
            let (a, b) = (
                layer_activation_bytes(&m, 0, &half),
                layer_activation_bytes(&m, 0, &wide),
            );
            // Masks: two of sbh (replicated without SP) and, unfused, one per score.
            let masks = match (rc, sp) {
                (Recompute::Full, _) => 0.0,
                (Recompute::Selective, true) => 2.0 * sbh / tp as f64,
                (_, _) => (2.0 + 96.0 * 2048.0 / 12288.0) * sbh,
            };
            assert!(close(b, 2.0 * a - masks), "tp={tp} {rc:?}: {b} vs {a}");
        }
        m.dropout = 0.0;
        let half = shard(8, true, Recompute::Selective, true);
        let wide = ActivationShard {
            elem_bytes: 4.0,
            ..half
        };
        assert!(close(
            layer_activation_bytes(&m, 0, &wide),
            2.0 * layer_activation_bytes(&m, 0, &half)
        ));
    }

    #[test]
    fn context_parallel_divides_activations() {
        let m = gpt3();
        let one = layer_activation_bytes(&m, 0, &shard(8, true, Recompute::Selective, true));
        let cp4 = ActivationShard {
            seq_local: 512,
            ..shard(8, true, Recompute::Selective, true)
        };
        assert!(close(one / layer_activation_bytes(&m, 0, &cp4), 4.0));
    }
}
