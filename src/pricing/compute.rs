//! What compute costs: the duration of every compute op of one micro-batch on one GPU
//! ([`OpCosts`], from `model::kernels` and the roofline `hardware::ComputeModel`),
//! including MoE routing and the hottest expert rank, QLoRA's dequantisation and frozen
//! weights; per layer, which of them apply and how zero-bubble schedules split a backward
//! into input- and weight-gradient passes ([`LayerCosts`]); the steps of ring attention.
//!
//! Both the op-graph builder (in nanoseconds) and fast mode (in seconds, via
//! [`OpCosts::map`]) read these; neither recomputes them. Must not decide order or overlap.

use std::ops::{Add, Sub};

use super::StepInputs;
use super::params::NF4_BYTES;
use crate::hardware::ComputeModel;
use crate::model::{self, Kernel, LayerShard, ModelSpec};
use crate::plan::Finetune;
use crate::units::{Nanos, secs_to_ns};

/// Durations of the compute ops of one micro-batch on one GPU (nanoseconds, or seconds
/// after [`OpCosts::map`]).
#[derive(Debug, Clone, Default)]
pub struct OpCosts<T = Nanos> {
    pub attn_fwd: T,
    pub attn_bwd: T,
    pub mlp_fwd: T,
    pub mlp_bwd: T,
    pub moe_fwd: T,
    pub moe_bwd: T,
    pub selective_recompute: T,
    pub embedding_fwd: T,
    pub embedding_bwd: T,
    pub logits_fwd: T,
    pub logits_bwd: T,
    /// Weight-gradient parts of the backward durations above (split off by zero-bubble
    /// schedules): `(attention, dense MLP, MoE)`.
    pub attn_wgrad: T,
    pub mlp_wgrad: T,
    pub moe_wgrad: T,
    /// The block's column-parallel linear (QKV, MLP up-projection): its input-gradient
    /// and weight-gradient GEMMs, the compute Megatron's backward TP overlap hides the
    /// sequence-parallel all-gather and the input-gradient reduction behind
    /// ([`ColumnGemms`]).
    pub attn_col: ColumnGemms<T>,
    pub mlp_col: ColumnGemms<T>,
    pub moe_col: ColumnGemms<T>,
}

/// The backward GEMMs of a block's column-parallel linear (`LinearWithGradAccumulation
/// AndAsyncCommunication.backward`, megatron/core/tensor_parallel/layers.py): the
/// input-gradient GEMM (`dgrad`), which the sequence-parallel all-gather of the saved
/// input runs behind, then the weight-gradient GEMM (`wgrad`), which the input
/// gradient's all-reduce (reduce-scatter under sequence parallel) runs behind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColumnGemms<T> {
    pub dgrad: T,
    pub wgrad: T,
}

/// Bytes one unfused gradient accumulation moves per local parameter: Megatron without
/// `gradient_accumulation_fusion` adds each micro-batch's 16-bit `param.grad` into the
/// `main_grad` buffer in a backward hook (`param.main_grad.add_(grad)`,
/// megatron/model/distributed.py v2.x, megatron/core/distributed/ v0.x): it reads the
/// gradient and the buffer and writes the buffer, which is FP32 when gradients are
/// reduced in FP32 (`accumulate_allreduce_grads_in_fp32`) and else the training dtype.
pub fn unfused_accum_bytes_per_param(inp: &StepInputs) -> f64 {
    let buffer = super::dp::grad_element_bytes(inp);
    inp.training.precision.grad_bytes() + 2.0 * buffer
}

/// The unfused accumulation pass over `params` parameters (before TP) of a block, or
/// nothing when accumulation is fused into the weight-gradient GEMM or there are no
/// weight gradients.
fn accum_kernel(inp: &StepInputs, params: u64) -> Option<Kernel> {
    let fused = inp.parallelism.stack.grad_accum_fusion;
    if fused || inp.training.finetune.is_adapter() || params == 0 {
        return None;
    }
    let local = params as f64 / inp.parallelism.tp.max(1) as f64;
    Some(Kernel {
        name: "grad_accum",
        class: model::KernelClass::Memory,
        flops: 0.0,
        bytes: local * unfused_accum_bytes_per_param(inp),
        phase: model::Phase::BackwardWeight,
    })
}

/// Input- and weight-gradient time of the column-parallel GEMMs (`qkv`, `mlp_up`) of a
/// backward list.
fn column_gemms(cm: &ComputeModel, bwd: &[Kernel]) -> ColumnGemms<Nanos> {
    let col = |phase| {
        let ks: Vec<Kernel> = bwd
            .iter()
            .filter(|k| matches!(k.name, "qkv" | "mlp_up") && k.phase == phase)
            .cloned()
            .collect();
        kernels_time(cm, &ks)
    };
    ColumnGemms {
        dgrad: col(model::Phase::BackwardInput),
        wgrad: col(model::Phase::BackwardWeight),
    }
}

/// Forward kernels DeepSeek-V3's memory savings run again in backward (arXiv 2412.19437):
/// `(attention, MLP)` kernel names. `recompute_norms` (§3.2.3) every RMSNorm (and MLA's
/// latent norms), `recompute_mla_up_proj` (§3.2.3) MLA's query and key/value
/// up-projections, `fp8_activations` (§3.3.3) the SwiGLU whose output it does not store.
fn recomputed_in_backward(t: &crate::plan::TrainingSpec) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut attn, mut mlp) = (Vec::new(), Vec::new());
    if t.recompute_norms {
        attn.extend(["layernorm", "latent_norm"]);
        mlp.push("layernorm");
    }
    if t.recompute_mla_up_proj {
        attn.extend(["q_up", "kv_up"]);
    }
    if t.fp8_activations {
        mlp.push("activation");
    }
    (attn, mlp)
}

/// The kernels of `forward` named in `names`, run again (in the input-gradient pass).
fn forward_again(forward: &[Kernel], names: &[&str]) -> Vec<Kernel> {
    forward
        .iter()
        .filter(|k| names.contains(&k.name))
        .map(|k| Kernel {
            phase: model::Phase::BackwardInput,
            ..k.clone()
        })
        .collect()
}

/// Duration of a kernel list, rounded to whole nanoseconds.
pub fn kernels_time(cm: &ComputeModel, ks: &[Kernel]) -> Nanos {
    secs_to_ns(cm.kernels_time_s(ks))
}

/// Time of the weight-gradient kernels of a backward list.
fn wgrad_time(cm: &ComputeModel, bwd: &[Kernel]) -> Nanos {
    let w: Vec<Kernel> = bwd
        .iter()
        .filter(|k| k.phase == model::Phase::BackwardWeight)
        .cloned()
        .collect();
    kernels_time(cm, &w)
}

impl OpCosts {
    /// Durations of one micro-batch's compute ops on one healthy GPU.
    pub fn new(inp: &StepInputs) -> Self {
        let (m, cm) = (inp.model, inp.compute);
        let sh = inp.layer_shard();
        let attn = model::kernels::attention_forward(m, &sh);
        let mlp = model::kernels::mlp_forward(m, &sh);
        let moe = moe_forward(inp, &sh);
        let emb = model::kernels::embedding_forward(m, &sh);
        let mut logits = model::kernels::logits_forward(m, &sh);
        logits.extend(model::kernels::mtp_heads_forward(m, &sh));
        let frozen = inp.training.finetune.is_adapter();
        // Frozen base weights (LoRA/QLoRA): backward computes input gradients only.
        let bwd = |ks: &[Kernel]| {
            let mut b = model::kernels::backward(ks);
            if frozen {
                b.retain(|k| k.phase != model::Phase::BackwardWeight);
            }
            b
        };
        let (attn, mlp, moe) = (
            with_dequant(inp, attn, m.attention_params()),
            with_dequant(inp, mlp, m.dense_mlp_params()),
            with_dequant(inp, moe, moe_local_params(inp)),
        );
        let with_accum = |mut ks: Vec<Kernel>, params: u64| {
            if !ks.is_empty() {
                ks.extend(accum_kernel(inp, params));
            }
            ks
        };
        let (mut attn_b, mut mlp_b, mut moe_b) = (
            with_accum(
                with_dequant(inp, bwd(&attn), m.attention_params()),
                m.attention_params(),
            ),
            with_accum(
                with_dequant(inp, bwd(&mlp), m.dense_mlp_params()),
                m.dense_mlp_params(),
            ),
            with_accum(
                with_dequant(inp, bwd(&moe), moe_local_params(inp)),
                moe_local_params(inp),
            ),
        );
        let (again_attn, again_mlp) = recomputed_in_backward(inp.training);
        attn_b.extend(forward_again(&attn, &again_attn));
        mlp_b.extend(forward_again(&mlp, &again_mlp));
        moe_b.extend(forward_again(&moe, &again_mlp));
        // The word embeddings: the output layer's weight on the last stage, the input
        // embedding's on the first (one parameter, one hook, when tied on one stage).
        let words = m.vocab * m.hidden;
        let one_copy = m.tied_embeddings && inp.parallelism.pp <= 1;
        let emb_b = with_accum(bwd(&emb), if one_copy { 0 } else { words });
        let logits_b = with_accum(bwd(&logits), words);
        let time = |ks: &[Kernel]| kernels_time(cm, ks);
        OpCosts {
            attn_fwd: time(&attn),
            attn_bwd: time(&attn_b),
            mlp_fwd: time(&mlp),
            mlp_bwd: time(&mlp_b),
            moe_fwd: time(&moe),
            moe_bwd: time(&moe_b),
            attn_wgrad: wgrad_time(cm, &attn_b),
            mlp_wgrad: wgrad_time(cm, &mlp_b),
            moe_wgrad: wgrad_time(cm, &moe_b),
            selective_recompute: time(&model::kernels::selective_recompute(&attn)),
            embedding_fwd: time(&emb),
            embedding_bwd: time(&emb_b),
            logits_fwd: time(&logits),
            logits_bwd: time(&logits_b),
            attn_col: column_gemms(cm, &attn_b),
            mlp_col: column_gemms(cm, &mlp_b),
            moe_col: column_gemms(cm, &moe_b),
        }
    }
}

impl<T: Copy> OpCosts<T> {
    /// The same durations in another unit (fast mode: seconds).
    pub fn map<U>(&self, f: impl Fn(T) -> U) -> OpCosts<U> {
        OpCosts {
            attn_fwd: f(self.attn_fwd),
            attn_bwd: f(self.attn_bwd),
            mlp_fwd: f(self.mlp_fwd),
            mlp_bwd: f(self.mlp_bwd),
            moe_fwd: f(self.moe_fwd),
            moe_bwd: f(self.moe_bwd),
            selective_recompute: f(self.selective_recompute),
            embedding_fwd: f(self.embedding_fwd),
            embedding_bwd: f(self.embedding_bwd),
            logits_fwd: f(self.logits_fwd),
            logits_bwd: f(self.logits_bwd),
            attn_wgrad: f(self.attn_wgrad),
            mlp_wgrad: f(self.mlp_wgrad),
            moe_wgrad: f(self.moe_wgrad),
            attn_col: self.attn_col.map(&f),
            mlp_col: self.mlp_col.map(&f),
            moe_col: self.moe_col.map(&f),
        }
    }

    /// The compute of transformer layer `layer`: attention, and the MoE block on MoE
    /// layers, else the dense MLP.
    pub fn layer(&self, model: &ModelSpec, layer: u64) -> LayerCosts<T> {
        let moe = model.is_moe_layer(layer);
        let (mlp_fwd, mlp_bwd, mlp_wgrad, mlp_col) = if moe {
            (self.moe_fwd, self.moe_bwd, self.moe_wgrad, self.moe_col)
        } else {
            (self.mlp_fwd, self.mlp_bwd, self.mlp_wgrad, self.mlp_col)
        };
        LayerCosts {
            moe,
            attn_fwd: self.attn_fwd,
            attn_bwd: self.attn_bwd,
            attn_wgrad: self.attn_wgrad,
            mlp_fwd,
            mlp_bwd,
            mlp_wgrad,
            attn_col: self.attn_col,
            mlp_col,
        }
    }
}

impl<T: Copy> ColumnGemms<T> {
    fn map<U>(&self, f: impl Fn(T) -> U) -> ColumnGemms<U> {
        ColumnGemms {
            dgrad: f(self.dgrad),
            wgrad: f(self.wgrad),
        }
    }
}

/// One transformer layer's compute (its MLP block is the MoE block on MoE layers).
#[derive(Debug, Clone, Copy)]
pub struct LayerCosts<T> {
    pub moe: bool,
    pub attn_fwd: T,
    pub attn_bwd: T,
    pub attn_wgrad: T,
    pub mlp_fwd: T,
    pub mlp_bwd: T,
    pub mlp_wgrad: T,
    pub attn_col: ColumnGemms<T>,
    pub mlp_col: ColumnGemms<T>,
}

/// A layer's backward as a schedule runs it.
#[derive(Debug, Clone, Copy)]
pub struct LayerBackward<T> {
    /// Attention and MLP backward passes (input gradients only when split).
    pub attn: T,
    pub mlp: T,
    /// The layer's share of the separate weight-gradient pass (zero when not split).
    pub weight: T,
    /// The column-parallel GEMMs inside `attn` and `mlp` (no weight-gradient GEMM when
    /// split: it runs in the weight pass).
    pub attn_col: ColumnGemms<T>,
    pub mlp_col: ColumnGemms<T>,
}

impl<T: Copy + Default + Add<Output = T> + Sub<Output = T>> LayerCosts<T> {
    /// The backward, with the weight gradients moved into their own pass when `split`
    /// (zero-bubble schedules).
    pub fn backward(&self, split: bool) -> LayerBackward<T> {
        if split {
            LayerBackward {
                attn: self.attn_bwd - self.attn_wgrad,
                mlp: self.mlp_bwd - self.mlp_wgrad,
                weight: self.mlp_wgrad + self.attn_wgrad,
                attn_col: ColumnGemms {
                    dgrad: self.attn_col.dgrad,
                    wgrad: T::default(),
                },
                mlp_col: ColumnGemms {
                    dgrad: self.mlp_col.dgrad,
                    wgrad: T::default(),
                },
            }
        } else {
            LayerBackward {
                attn: self.attn_bwd,
                mlp: self.mlp_bwd,
                weight: T::default(),
                attn_col: self.attn_col,
                mlp_col: self.mlp_col,
            }
        }
    }
}

/// Parameters of one MoE block on one GPU (local routed experts + shared), before TP.
fn moe_local_params(inp: &StepInputs) -> u64 {
    inp.model.moe.as_ref().map_or(0, |m| {
        let local = (m.experts / inp.parallelism.ep.max(1)).max(1);
        (local + m.shared_experts) * inp.model.expert_params()
    })
}

/// QLoRA dequantises a block's 4-bit weights to 16 bits before its GEMMs (each pass):
/// reads NF4, writes bf16 (memory bound). Other modes return `ks` unchanged.
fn with_dequant(inp: &StepInputs, mut ks: Vec<Kernel>, params: u64) -> Vec<Kernel> {
    if inp.training.finetune == Finetune::Qlora && params > 0 && !ks.is_empty() {
        let local = params as f64 / inp.parallelism.tp.max(1) as f64;
        ks.push(Kernel {
            name: "nf4_dequant",
            class: model::KernelClass::Memory,
            flops: 0.0,
            bytes: local * (NF4_BYTES + 2.0),
            phase: model::Phase::Forward,
        });
    }
    ks
}

/// Routed + shared experts of one MoE layer on one GPU, with tokens spread evenly.
fn moe_forward(inp: &StepInputs, sh: &LayerShard) -> Vec<Kernel> {
    let Some(moe) = &inp.model.moe else {
        return Vec::new();
    };
    let ep = inp.parallelism.ep.max(1);
    let tokens = sh.tokens();
    let local_experts = (moe.experts / ep).max(1);
    // Tokens per local expert on the most loaded EP rank (every rank waits for it in the
    // combine all-to-all, so its time is the layer's time).
    let per_expert = ((tokens * moe.top_k * ep) as f64 / moe.experts as f64
        * moe.hottest_rank_load(ep))
    .ceil() as u64;
    let mut ks = vec![Kernel {
        name: "router",
        class: model::KernelClass::Gemm {
            m: tokens,
            n: moe.experts,
            k: inp.model.hidden,
        },
        flops: 2.0 * (tokens * moe.experts * inp.model.hidden) as f64,
        bytes: (tokens * inp.model.hidden) as f64 * 2.0,
        phase: model::Phase::Forward,
    }];
    ks.extend(model::kernels::experts_forward(
        inp.model,
        sh,
        local_experts,
        per_expert,
    ));
    if moe.shared_experts > 0 {
        ks.extend(model::kernels::experts_forward(
            inp.model,
            sh,
            moe.shared_experts,
            tokens,
        ));
    }
    ks
}

/// DeepSeek-V3's SM split for DualPipe's overlapped chunk pairs: 20 of the H800's 132 SMs
/// run the all-to-all kernels (arXiv 2412.19437 §3.2.2).
pub const DUALPIPE_COMM_SM_SHARE: f64 = 20.0 / 132.0;

/// DualPipe's overlap of expert all-to-alls with compute (arXiv 2412.19437 §3.2.1,
/// Figure 4; `deepseek-ai/DualPipe`): in each forward-and-backward chunk pair the dispatch
/// and combine of one micro-batch run while the other micro-batch computes, on SMs taken
/// from compute. Returns the factor by which the pair's compute slows (`1 / (1 - share)`),
/// `None` where nothing is overlapped (no DualPipe, no expert parallelism).
pub fn dualpipe_overlap_slowdown(inp: &StepInputs) -> Option<f64> {
    let p = inp.parallelism;
    if p.schedule != crate::plan::ScheduleKind::Dualpipe || p.ep <= 1 || inp.model.moe.is_none() {
        return None;
    }
    let share = p.overlap_sm_share.unwrap_or(DUALPIPE_COMM_SM_SHARE);
    Some(1.0 / (1.0 - share))
}

/// A compute op's duration when it runs on the SMs communication leaves it.
pub fn slowed(duration: Nanos, slowdown: f64) -> Nanos {
    (duration as f64 * slowdown).round() as Nanos
}

/// Ring attention's compute in `cp` equal steps (the last takes the remainder), for a
/// block of `duration` (Megatron-Core's load-balanced causal split: every step does the
/// same work).
pub fn ring_steps(duration: Nanos, cp: u32) -> impl Iterator<Item = Nanos> {
    let piece = duration / cp as Nanos;
    (0..cp).map(move |k| {
        if k + 1 == cp {
            duration - piece * (cp as Nanos - 1)
        } else {
            piece
        }
    })
}
