//! Memory per rank: model states, activations, buffers and reserve, per pipeline stage.
//!
//! Owns the footprint arithmetic (pure functions of model, training and parallelism specs):
//! - model states with mixed-precision Adam are `2 + 2 + 12` bytes per parameter (ZeRO,
//!   arXiv 1910.02054; bytes per state in [`super::params`]); ZeRO-1 shards the 12 over
//!   data parallel, ZeRO-2 also the gradients, ZeRO-3 also the weights. Expert parameters
//!   are split over EP and their sharding group is expert-DP; dense ones shard over DP x CP
//!   (or a `zero_group` under hybrid sharding);
//! - activations per layer ([`activations`]) follow Korthikanti et al. (arXiv 2205.05198,
//!   Table 2), times the activations a stage holds at its peak under the actual pipeline
//!   order (1F1B: `p - i` micro-batches on stage `i`; GPipe `m`; interleaved
//!   `1 + (p-1)/(pv)`; ZB-H2 about 2x);
//! - LoRA/QLoRA freeze base weights (no gradients or optimizer state for them), 8-bit Adam
//!   keeps 6 bytes (fp32 master + two 1-byte moments), offload moves state to the host.
//!
//! Must not: know about time, graphs or the engine.

pub mod activations;

use serde::Serialize;

use super::inputs::{layer_ranges, model_chunks, virtual_stage_layers};
use super::params::{
    StateBytes, frozen_weight_bytes, lora_layer_params, model_state_bytes, trainable_state_bytes,
};
use crate::model::ModelSpec;
use crate::plan::{Finetune, ParallelismSpec, ScheduleKind, TrainingSpec};
use activations::peak_activations;
pub use activations::{ActivationShard, StoredActivations, layer_activation_bytes};

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
    // Key/value projections replicated over TP when there are fewer heads than ranks.
    let replicated_kv = if model.mla.is_none() {
        let extra_heads = model.kv_heads_over_tp(p.tp) - model.kv_heads;
        (model.hidden * 2 * model.head_dim() * extra_heads) as f64
    } else {
        0.0
    };
    for l in layers.0..layers.1 {
        dense += replicated_kv;
        let total = model.layer_params(l) as f64;
        let routed = model.routed_expert_params(l) as f64;
        dense += total - routed;
        expert += routed;
    }
    if first {
        dense += model.embedding_params() as f64;
    }
    if last {
        // The output head (a copy of the embedding when tied and pipelined; one parameter
        // when tied on one stage, as `pricing::compute` prices its gradient) + final norm.
        let one_copy = model.tied_embeddings && p.pp <= 1;
        if !one_copy {
            dense += model.embedding_params() as f64;
        }
        dense += model.norm.params(model.hidden) as f64;
    }
    (dense / t, expert / (t * ep))
}

/// Layer ranges `[lo, hi)` of every model chunk a stage holds, from the ranges of every
/// virtual stage.
fn stage_chunks(ranges: &[(u64, u64)], pp: u64, chunks: u64, stage: u64) -> Vec<(u64, u64)> {
    (0..chunks)
        .map(|c| ranges[(c * pp + stage) as usize])
        .collect()
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
            ep: p.ep.max(1),
            elem_bytes: t.precision.activation_bytes(),
            stored: activations::StoredActivations {
                recompute_norms: t.recompute_norms,
                recompute_mla_up_proj: t.recompute_mla_up_proj,
                fp8: t.fp8_activations,
            },
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
        let base = model_state_bytes(dense, frozen, p.zero, d_shards)
            + model_state_bytes(expert, frozen, p.zero, e_shards);
        base + model_state_bytes(lora, bytes, p.zero, d_shards)
    } else {
        model_state_bytes(dense, bytes, p.zero, d_shards)
            + model_state_bytes(expert, bytes, p.zero, e_shards)
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
    /// Layer range of every virtual stage.
    ranges: Vec<(u64, u64)>,
    chunks: u64,
    sh: ActivationShard,
    mb: u32,
}

impl StageCtx {
    fn new(inp: &MemoryInputs) -> Self {
        let p = inp.parallelism;
        StageCtx {
            ranges: layer_ranges(&virtual_stage_layers(inp.model, p)),
            chunks: model_chunks(p),
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
    let ranges = stage_chunks(&ctx.ranges, pp, ctx.chunks, stage);
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
    use super::activations::tests::{close, gpt3, shard};
    use super::*;
    use crate::plan::Recompute;

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
        // Tied embeddings on one stage: one copy, as `total_params` counts them.
        assert!(m.tied_embeddings);
        let params = m.total_params() as f64;
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
