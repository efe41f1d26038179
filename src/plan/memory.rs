//! Memory per rank: model states, activations, buffers and reserve, per pipeline stage.
//!
//! Owns the footprint arithmetic (pure functions of model, training and parallelism specs):
//! - model states with mixed-precision Adam are `2 + 2 + 12` bytes per parameter (ZeRO,
//!   arXiv 1910.02054); ZeRO-1 shards the 12 over data parallel, ZeRO-2 also the gradients,
//!   ZeRO-3 also the weights. Expert parameters are split over EP and their sharding group
//!   is expert-DP; dense ones shard over DP x CP (or a `zero_group` under hybrid sharding);
//! - activations per layer follow Korthikanti et al. (arXiv 2205.05198, Table 2),
//!   generalised from shapes (GQA, SwiGLU, MoE) and CP, times the activations a stage
//!   holds at its peak under the actual pipeline order (1F1B: `p - i` micro-batches on
//!   stage `i`; GPipe `m`; interleaved `1 + (p-1)/(pv)`; ZB-H2 about 2x);
//! - LoRA/QLoRA freeze base weights (no gradients or optimizer state for them), 8-bit Adam
//!   keeps 6 bytes (fp32 master + two 1-byte moments), offload moves state to the host.
//!
//! Must not: know about time, graphs or the engine. It reads the pipeline order from
//! [`super::pipeline`] only to count micro-batches in flight.

use serde::Serialize;

use super::pipeline::{self, Pass};
use super::{Finetune, Optimizer, ParallelismSpec, Recompute, ScheduleKind, TrainingSpec};
use crate::hardware::Precision;
use crate::model::ModelSpec;

const GB: f64 = 1e9;

/// Bytes per element of the 4-bit NF4 base weights of QLoRA, with double-quantised
/// constants (0.127 bits per parameter, Dettmers et al. §3).
pub const NF4_BYTES: f64 = (4.0 + 0.127) / 8.0;

/// Memory of one rank of one pipeline stage, GB (10^9 bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageMemory {
    pub stage: u32,
    pub weights: f64,
    pub grads: f64,
    pub optimizer: f64,
    pub activations: f64,
    pub buffers: f64,
    pub reserve: f64,
    pub total: f64,
}

/// Memory of the most loaded rank, with every stage's figures, GB.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryReport {
    pub weights: f64,
    pub grads: f64,
    pub optimizer: f64,
    pub activations: f64,
    pub buffers: f64,
    pub reserve: f64,
    pub total: f64,
    pub capacity: f64,
    pub fits: bool,
    /// The most loaded rank (the first rank of the most loaded stage).
    pub rank: u32,
    pub stage: u32,
    pub stages: Vec<StageMemory>,
    /// Micro-batches whose activations the most loaded stage holds at its peak (in units
    /// of the stage's full layer count).
    pub in_flight: f64,
}

/// A plan that does not fit, with its breakdown (the `--strict-memory` error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "plan does not fit in GPU memory: rank {rank} (pipeline stage {stage}) needs {total:.1} GB \
     of {capacity:.1} GB: weights {weights:.1}, gradients {grads:.1}, optimizer {optimizer:.1}, \
     activations {activations:.1}, buffers {buffers:.1}, reserve {reserve:.1} GB"
)]
pub struct OutOfMemory {
    pub rank: u32,
    pub stage: u32,
    pub total: f64,
    pub capacity: f64,
    pub weights: f64,
    pub grads: f64,
    pub optimizer: f64,
    pub activations: f64,
    pub buffers: f64,
    pub reserve: f64,
}

impl MemoryReport {
    /// `Ok` when the plan fits, else the error a `--strict-memory` run exits with.
    pub fn check(&self) -> Result<(), OutOfMemory> {
        if self.fits {
            return Ok(());
        }
        Err(OutOfMemory {
            rank: self.rank,
            stage: self.stage,
            total: self.total,
            capacity: self.capacity,
            weights: self.weights,
            grads: self.grads,
            optimizer: self.optimizer,
            activations: self.activations,
            buffers: self.buffers,
            reserve: self.reserve,
        })
    }
}

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
    if sh.recompute == Recompute::Full {
        // Only the layer input is kept (sharded over TP with sequence parallel).
        return if sh.sequence_parallel {
            2.0 * sbh / t
        } else {
            2.0 * sbh
        };
    }
    let r = model.kv_width() as f64 / h;
    let k = model.ffn.matrices() as f64;
    let mlp_sharded = match &model.moe {
        Some(m) if model.is_moe_layer(layer) => {
            // Routed copies of the token plus per-expert hidden activations.
            // Dropless routing (capacity 0) holds the mean load.
            let copies = m.top_k as f64
                * if m.capacity_factor > 0.0 {
                    m.capacity_factor
                } else {
                    1.0
                };
            let fe = m.expert_ffn_hidden as f64 / h;
            copies * (2.0 + (2.0 * (k - 1.0) + 2.0) * fe)
                + m.shared_experts as f64 * (2.0 * (k - 1.0) + 2.0) * fe
        }
        _ => (2.0 * (k - 1.0) + 2.0) * model.ffn_hidden as f64 / h,
    };
    // Q, K, V (K and V shrink with GQA), the projection input.
    let sharded = 2.0 + 4.0 * r + 2.0 + mlp_sharded;
    // Two norms' inputs, two dropout masks, the QKV and MLP inputs.
    let replicated = 10.0;
    let scores = if sh.flash_attention || sh.recompute == Recompute::Selective {
        0.0
    } else {
        // Softmax output, dropout mask and dropout output: 5 bytes per score.
        5.0 * model.heads as f64 * sh.seq_len as f64 / h
    };
    let per_sbh = if sh.sequence_parallel {
        (replicated + sharded + scores) / t
    } else {
        replicated + (sharded + scores) / t
    };
    per_sbh * sbh
}

/// Bytes per parameter of each model state, before sharding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateBytes {
    pub weights: f64,
    pub grads: f64,
    pub optimizer: f64,
}

/// Bytes per trainable parameter: 16-bit weights and gradients; Adam keeps fp32 master,
/// momentum and variance (12 bytes), 8-bit Adam fp32 master + two 1-byte moments (6),
/// SGD fp32 master + momentum (8). FP8 training adds a 1-byte FP8 weight copy; fp32
/// training needs no separate master copy.
pub fn trainable_state_bytes(precision: Precision, optimizer: Optimizer) -> StateBytes {
    let (weights, grads) = match precision {
        Precision::Fp32 => (4.0, 4.0),
        Precision::Fp8 => (3.0, 2.0),
        _ => (2.0, 2.0),
    };
    let master = if precision == Precision::Fp32 {
        0.0
    } else {
        4.0
    };
    let moments = match optimizer {
        Optimizer::Adam => 8.0,
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

/// Parameters one rank of a stage holds, split into (dense, expert), after TP and EP.
fn stage_params(
    model: &ModelSpec,
    p: &ParallelismSpec,
    layers: (u64, u64),
    first: bool,
    last: bool,
) -> (f64, f64) {
    let (t, ep) = (p.tp.max(1) as f64, p.ep.max(1) as f64);
    let mut dense = 0.0;
    let mut expert = 0.0;
    for l in layers.0..layers.1 {
        let total = model.layer_params(l) as f64;
        let routed = match &model.moe {
            Some(m) if model.is_moe_layer(l) => (m.experts * model.expert_params()) as f64,
            _ => 0.0,
        };
        dense += total - routed;
        expert += routed;
    }
    if first {
        dense += model.embedding_params() as f64;
    }
    if last {
        // The output head (a copy of the embedding when tied and pipelined) + final norm.
        dense += model.embedding_params() as f64 + model.hidden as f64;
    }
    (dense / t, expert / (t * ep))
}

/// Layer ranges `[lo, hi)` of every model chunk a stage holds.
fn stage_chunks(vs_layers: &[u64], pp: u64, chunks: u64, stage: u64) -> Vec<(u64, u64)> {
    let mut starts = Vec::with_capacity(vs_layers.len() + 1);
    let mut acc = 0;
    for &l in vs_layers {
        starts.push(acc);
        acc += l;
    }
    starts.push(acc);
    (0..chunks)
        .map(|c| {
            let vs = (c * pp + stage) as usize;
            (starts[vs], starts[vs + 1])
        })
        .collect()
}

/// Peak activation bytes a stage holds: walks the stage's pipeline order and tracks the
/// micro-batch chunks whose activations are alive (forward done, backward — the weight
/// pass under zero-bubble schedules — not yet). Returns (bytes, peak in-flight micro-batches
/// in units of the stage's layers).
fn peak_activations(
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

/// Everything the memory model reads.
#[derive(Debug, Clone, Copy)]
pub struct MemoryInputs<'a> {
    pub model: &'a ModelSpec,
    pub training: &'a TrainingSpec,
    pub parallelism: &'a ParallelismSpec,
    /// GPU memory capacity, GB.
    pub capacity_gb: f64,
}

impl MemoryInputs<'_> {
    fn chunks(&self) -> u64 {
        if self.parallelism.schedule == ScheduleKind::Interleaved {
            self.parallelism.virtual_stages.max(1)
        } else {
            1
        }
    }

    fn micro_batches(&self) -> u64 {
        let p = self.parallelism;
        (self.training.global_batch / (p.dp.max(1) * self.training.micro_batch.max(1))).max(1)
    }

    fn shard(&self) -> ActivationShard {
        let (t, p) = (self.training, self.parallelism);
        ActivationShard {
            seq_local: t.seq_len / p.cp.max(1),
            seq_len: t.seq_len,
            micro_batch: t.micro_batch,
            tp: p.tp.max(1),
            sequence_parallel: p.sequence_parallel && p.tp > 1,
            recompute: t.recompute,
            flash_attention: t.flash_attention,
        }
    }

    /// Ranks the dense and expert model states are sharded over by ZeRO.
    fn zero_shards(&self) -> (f64, f64) {
        let p = self.parallelism;
        let dense = (p.dp * p.cp).max(1);
        let expert = (p.dp / p.ep.max(1) * p.cp).max(1);
        match p.zero_group {
            Some(g) if g > 0 => (g.min(dense) as f64, g.min(expert) as f64),
            _ => (dense as f64, expert as f64),
        }
    }
}

/// Model states of one rank: (weights, grads, optimizer) bytes.
fn stage_model_states(
    inp: &MemoryInputs,
    chunks: &[(u64, u64)],
    first: bool,
    last: bool,
) -> StateBytes {
    let (m, t, p) = (inp.model, inp.training, inp.parallelism);
    let (mut dense, mut expert, mut lora) = (0.0, 0.0, 0.0);
    for (i, &(lo, hi)) in chunks.iter().enumerate() {
        let is_first = first && i == 0;
        let is_last = last && i + 1 == chunks.len();
        let (d, e) = stage_params(m, p, (lo, hi), is_first, is_last);
        dense += d;
        expert += e;
        lora += (lo..hi)
            .map(|l| lora_layer_params(m, l, t.lora_rank) as f64)
            .sum::<f64>()
            / p.tp.max(1) as f64;
    }
    let (d_shards, e_shards) = inp.zero_shards();
    let bytes = trainable_state_bytes(t.precision, t.optimizer);
    let mut out = if t.finetune.is_adapter() {
        let frozen = StateBytes {
            weights: frozen_weight_bytes(t.finetune, t.precision),
            grads: 0.0,
            optimizer: 0.0,
        };
        let base = add(
            model_state_bytes(dense, frozen, p.zero, d_shards),
            model_state_bytes(expert, frozen, p.zero, e_shards),
        );
        add(base, model_state_bytes(lora, bytes, p.zero, d_shards))
    } else {
        add(
            model_state_bytes(dense, bytes, p.zero, d_shards),
            model_state_bytes(expert, bytes, p.zero, e_shards),
        )
    };
    if t.offload_optimizer {
        out.optimizer = 0.0;
    }
    if t.offload_params && p.zero >= 3 {
        out.weights = 0.0;
    }
    if p.schedule == ScheduleKind::Dualpipe {
        // Each rank holds its own chunk and the mirrored one (DeepSeek-V3 Table 2).
        out = StateBytes {
            weights: 2.0 * out.weights,
            grads: 2.0 * out.grads,
            optimizer: 2.0 * out.optimizer,
        };
    }
    out
}

fn add(a: StateBytes, b: StateBytes) -> StateBytes {
    StateBytes {
        weights: a.weights + b.weights,
        grads: a.grads + b.grads,
        optimizer: a.optimizer + b.optimizer,
    }
}

/// Communication and working buffers: two gradient buckets in flight, ZeRO-3's gathered
/// current and prefetched layer, the TP all-gather of one block input, QLoRA's dequantised
/// layer.
fn buffer_bytes(inp: &MemoryInputs, chunks: &[(u64, u64)]) -> f64 {
    let (m, t, p) = (inp.model, inp.training, inp.parallelism);
    let tp = p.tp.max(1) as f64;
    let grad = t.precision.grad_bytes();
    let max_layer = chunks
        .iter()
        .flat_map(|&(lo, hi)| lo..hi)
        .map(|l| m.layer_params(l) as f64)
        .fold(0.0, f64::max)
        / tp;
    let mut bytes = 0.0;
    if p.dp > 1 && !t.finetune.is_adapter() {
        bytes += 2.0 * (p.bucket_params as f64 / tp) * grad;
    }
    if p.zero >= 3 {
        // The gathered current and prefetched layer, in their stored precision.
        let stored = if t.finetune.is_adapter() {
            frozen_weight_bytes(t.finetune, t.precision)
        } else {
            2.0
        };
        bytes += 2.0 * max_layer * stored;
    }
    if t.finetune == Finetune::Qlora {
        bytes += max_layer * 2.0;
    }
    if p.tp > 1 {
        let tokens = (t.micro_batch * t.seq_len / p.cp.max(1)) as f64;
        bytes += tokens * m.hidden as f64 * 2.0;
    }
    bytes
}

/// Logits and their fp32 softmax copy on the last stage: `6 s b V / t` bytes, one
/// micro-batch at a time (loss and its gradient are computed back to back).
fn logits_bytes(inp: &MemoryInputs) -> f64 {
    let (t, p) = (inp.training, inp.parallelism);
    let tokens = (t.micro_batch * t.seq_len / p.cp.max(1)) as f64;
    6.0 * tokens * inp.model.vocab as f64 / p.tp.max(1) as f64
}

/// What every stage shares: layer split, activation sharding, micro-batches.
struct StageCtx {
    vs_layers: Vec<u64>,
    chunks: u64,
    sh: ActivationShard,
    mb: u32,
}

impl StageCtx {
    fn new(inp: &MemoryInputs) -> Self {
        let p = inp.parallelism;
        let chunks = inp.chunks();
        let vs_layers = match &p.stage_layers {
            Some(explicit) if chunks == 1 => explicit.clone(),
            _ => super::split_layers(inp.model.layers, p.pp.max(1) * chunks),
        };
        StageCtx {
            vs_layers,
            chunks,
            sh: inp.shard(),
            mb: inp.micro_batches() as u32,
        }
    }
}

/// One stage's memory (GB) and its peak in-flight factor.
fn stage_memory(inp: &MemoryInputs, ctx: &StageCtx, stage: u64) -> (StageMemory, f64) {
    let (m, t, p) = (inp.model, inp.training, inp.parallelism);
    let pp = p.pp.max(1);
    let sh = &ctx.sh;
    let ranges = stage_chunks(&ctx.vs_layers, pp, ctx.chunks, stage);
    let (first, last) = (stage == 0, stage + 1 == pp);
    let states = stage_model_states(inp, &ranges, first, last);
    let chunk_bytes: Vec<f64> = ranges
        .iter()
        .map(|&(lo, hi)| (lo..hi).map(|l| layer_activation_bytes(m, l, sh)).sum())
        .collect();
    let (mut act, factor) = peak_activations(
        p.schedule,
        stage as u32,
        (pp as u32, ctx.mb, ctx.chunks as u32),
        &chunk_bytes,
    );
    if first {
        // The embedding output feeding the first layer, per micro-batch in flight.
        act += factor * 2.0 * (sh.seq_local * sh.micro_batch * m.hidden) as f64;
    }
    if last {
        act += logits_bytes(inp);
    }
    let buffers = buffer_bytes(inp, &ranges);
    let reserve = t.memory_reserve_gb * GB;
    let total = states.weights + states.grads + states.optimizer + act + buffers + reserve;
    let mem = StageMemory {
        stage: stage as u32,
        weights: states.weights / GB,
        grads: states.grads / GB,
        optimizer: states.optimizer / GB,
        activations: act / GB,
        buffers: buffers / GB,
        reserve: reserve / GB,
        total: total / GB,
    };
    (mem, factor)
}

/// The most loaded stage's memory (the last of equal maxima, as [`memory_report`]) and its in-flight
/// factor, without keeping every stage: the lean entry point the plan search calls once per
/// candidate. Equals the `stages[stage]` entry of [`memory_report`].
pub fn most_loaded_stage(inp: &MemoryInputs) -> (StageMemory, f64) {
    let ctx = StageCtx::new(inp);
    let mut worst: Option<(StageMemory, f64)> = None;
    for stage in 0..inp.parallelism.pp.max(1) {
        let cur = stage_memory(inp, &ctx, stage);
        if worst.as_ref().is_none_or(|w| cur.0.total >= w.0.total) {
            worst = Some(cur);
        }
    }
    worst.unwrap_or_default()
}

/// The memory of every stage and of the most loaded rank.
pub fn memory_report(inp: &MemoryInputs) -> MemoryReport {
    let p = inp.parallelism;
    let ctx = StageCtx::new(inp);
    let (stages, factors): (Vec<StageMemory>, Vec<f64>) = (0..p.pp.max(1))
        .map(|stage| stage_memory(inp, &ctx, stage))
        .unzip();
    let mut worst = 0;
    for (i, s) in stages.iter().enumerate() {
        if s.total >= stages[worst].total {
            worst = i;
        }
    }
    report_of(inp, stages[worst].clone(), factors[worst], stages)
}

/// A report from the most loaded stage (and every stage's figures, when kept).
pub fn report_of(
    inp: &MemoryInputs,
    w: StageMemory,
    in_flight: f64,
    stages: Vec<StageMemory>,
) -> MemoryReport {
    let p = inp.parallelism;
    let stage_size = (p.tp * p.cp * p.dp).max(1) as u32;
    MemoryReport {
        weights: w.weights,
        grads: w.grads,
        optimizer: w.optimizer,
        activations: w.activations,
        buffers: w.buffers,
        reserve: w.reserve,
        total: w.total,
        capacity: inp.capacity_gb,
        fits: w.total <= inp.capacity_gb,
        rank: w.stage * stage_size,
        stage: w.stage,
        in_flight,
        stages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FfnKind;

    /// GPT-3 175B shapes: the model of Korthikanti et al.'s Table 2 (MHA, GELU, f = 4h).
    fn gpt3() -> ModelSpec {
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
        }
    }

    fn shard(tp: u64, sp: bool, recompute: Recompute, flash: bool) -> ActivationShard {
        ActivationShard {
            seq_local: 2048,
            seq_len: 2048,
            micro_batch: 1,
            tp,
            sequence_parallel: sp,
            recompute,
            flash_attention: flash,
        }
    }

    fn close(a: f64, b: f64) -> bool {
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
    fn context_parallel_divides_activations() {
        let m = gpt3();
        let one = layer_activation_bytes(&m, 0, &shard(8, true, Recompute::Selective, true));
        let cp4 = ActivationShard {
            seq_local: 512,
            ..shard(8, true, Recompute::Selective, true)
        };
        assert!(close(one / layer_activation_bytes(&m, 0, &cp4), 4.0));
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
        // FP8 training adds a 1-byte FP8 weight copy.
        assert_eq!(
            trainable_state_bytes(Precision::Fp8, Optimizer::Adam).weights,
            3.0
        );
    }

    fn inputs<'a>(
        m: &'a ModelSpec,
        t: &'a TrainingSpec,
        p: &'a ParallelismSpec,
    ) -> MemoryInputs<'a> {
        MemoryInputs {
            model: m,
            training: t,
            parallelism: p,
            capacity_gb: 80.0,
        }
    }

    fn plan(pp: u64, dp: u64, schedule: ScheduleKind, v: u64) -> ParallelismSpec {
        ParallelismSpec {
            tp: 8,
            pp,
            dp,
            schedule,
            virtual_stages: v,
            ..ParallelismSpec::default()
        }
    }

    #[test]
    fn whole_model_states_match_parameter_count() {
        let m = gpt3();
        let t = TrainingSpec {
            seq_len: 2048,
            global_batch: 64,
            ..TrainingSpec::default()
        };
        // ZeRO-0, no TP/PP/DP: every parameter on one rank at 16 bytes.
        let p = ParallelismSpec {
            zero: 0,
            ..ParallelismSpec::default()
        };
        let r = memory_report(&inputs(&m, &t, &p));
        let params = (m.total_params() + m.embedding_params()) as f64; // head copy (tied)
        assert!(close(
            (r.weights + r.grads + r.optimizer) * GB,
            16.0 * params
        ));
        assert!(!r.fits);
        assert!(r.check().unwrap_err().to_string().contains("does not fit"));
    }

    #[test]
    fn micro_batches_in_flight_follow_the_schedule() {
        let m = gpt3();
        let t = TrainingSpec {
            seq_len: 2048,
            global_batch: 64,
            ..TrainingSpec::default()
        };
        let (p, mb) = (8u64, 64u64);
        let stage0 = |sched, v| {
            let par = plan(p, 1, sched, v);
            let r = memory_report(&inputs(&m, &t, &par));
            r.stages[0].clone()
        };
        let per_layer = layer_activation_bytes(&m, 0, &shard(8, true, Recompute::Selective, true));
        let stage_layers = (m.layers / p) as f64;
        let emb = 2.0 * 2048.0 * 12288.0;
        let one_f_one_b = stage0(ScheduleKind::OneFOneB, 1).activations * GB;
        assert!(close(
            one_f_one_b,
            p as f64 * (stage_layers * per_layer + emb)
        ));
        let gpipe = stage0(ScheduleKind::Gpipe, 1).activations * GB;
        assert!(close(gpipe, mb as f64 * (stage_layers * per_layer + emb)));
        let v = 3;
        let inter = memory_report(&inputs(&m, &t, &plan(p, 1, ScheduleKind::Interleaved, v)));
        let factor = 1.0 + (p - 1) as f64 / (p * v) as f64;
        assert!(
            (inter.stages[0].activations * GB
                / (factor * p as f64 * stage_layers * per_layer + factor * p as f64 * emb)
                - 1.0)
                .abs()
                < 1e-9
        );
        let h1 = stage0(ScheduleKind::ZbH1, 1).activations;
        assert!(close(h1 * GB, one_f_one_b));
        let h2 = stage0(ScheduleKind::ZbH2, 1).activations * GB;
        assert!(close(h2 / one_f_one_b, (2 * p - 1) as f64 / p as f64));
        // DualPipe: 2x parameters.
        let dual = stage0(ScheduleKind::Dualpipe, 1);
        let base = stage0(ScheduleKind::OneFOneB, 1);
        assert!(close(dual.weights, 2.0 * base.weights));
    }

    #[test]
    fn lora_freezes_base_weights() {
        let m = gpt3();
        let full = TrainingSpec::default();
        let lora = TrainingSpec {
            finetune: Finetune::Lora,
            ..TrainingSpec::default()
        };
        let qlora = TrainingSpec {
            finetune: Finetune::Qlora,
            ..TrainingSpec::default()
        };
        let p = plan(8, 1, ScheduleKind::OneFOneB, 1);
        let f = memory_report(&inputs(&m, &full, &p));
        let l = memory_report(&inputs(&m, &lora, &p));
        let q = memory_report(&inputs(&m, &qlora, &p));
        assert!(l.optimizer < f.optimizer / 50.0);
        assert!(l.grads < f.grads / 50.0);
        assert!(q.weights < l.weights / 3.0);
    }
}
