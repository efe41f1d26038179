//! The headline metrics of one step, defined once: step time, throughput, MFU and HFU,
//! the bubble fraction and the exposed-time breakdown.
//!
//! Reads a finished [`Replay`]; must not simulate, build graphs or write files.

use serde::Serialize;

use super::memory::memory_report;
use crate::config::Scenario;
use crate::engine::Replay;
use crate::plan::{RankGrid, Recompute};
use crate::pricing::memory::MemoryReport;
use crate::schedule::{Category, StepGraph};
use crate::units::ns_to_secs;

/// Where a rank's step time went, seconds, averaged over ranks. Communication counts only
/// where no compute ran at the same time (exposed); the parts add up to the step time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Breakdown {
    pub compute: f64,
    pub recompute: f64,
    pub optimizer: f64,
    pub tp_exposed: f64,
    pub cp_exposed: f64,
    pub ep_exposed: f64,
    pub pp_exposed: f64,
    pub dp_exposed: f64,
    pub idle: f64,
}

impl Breakdown {
    pub fn total(&self) -> f64 {
        self.compute
            + self.recompute
            + self.optimizer
            + self.tp_exposed
            + self.cp_exposed
            + self.ep_exposed
            + self.pp_exposed
            + self.dp_exposed
            + self.idle
    }
}

/// Headline metrics of one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepMetrics {
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    /// Model FLOPs per step (no recompute; attention counted in full, as Korthikanti eq. 7).
    pub model_flops: f64,
    /// FLOPs the GPUs execute, recompute included.
    pub hardware_flops: f64,
    /// Model TFLOP/s per GPU (the MFU numerator).
    pub tflops_per_gpu: f64,
    pub mfu: f64,
    pub hfu: f64,
    /// Mean over ranks of pipeline idle time over the pipeline's span.
    pub bubble_fraction: f64,
    pub breakdown_s: Breakdown,
    pub gpus: u64,
    pub micro_batches: u64,
    pub events: u64,
    /// Memory of the most loaded rank, with every stage's figures.
    pub memory: MemoryReport,
}

/// Relative slack of the breakdown's sum against the step time (the parts are means over
/// ranks of integer-nanosecond spans, so they sum to the step time up to float rounding,
/// about 1e-14 relative on the shipped scenarios).
pub const BREAKDOWN_SUM_TOLERANCE: f64 = 1e-9;

impl StepMetrics {
    /// The numeric invariants every written step result holds: times finite and
    /// non-negative (the step time positive), fractions in [0, 1], breakdown parts summing
    /// to the step time. `Err` names the broken invariant and the values.
    pub fn check_invariants(&self) -> Result<(), String> {
        let b = &self.breakdown_s;
        let times = [
            ("step_time_s", self.step_time_s),
            ("breakdown_s.compute", b.compute),
            ("breakdown_s.recompute", b.recompute),
            ("breakdown_s.optimizer", b.optimizer),
            ("breakdown_s.tp_exposed", b.tp_exposed),
            ("breakdown_s.cp_exposed", b.cp_exposed),
            ("breakdown_s.ep_exposed", b.ep_exposed),
            ("breakdown_s.pp_exposed", b.pp_exposed),
            ("breakdown_s.dp_exposed", b.dp_exposed),
            ("breakdown_s.idle", b.idle),
            ("tokens_per_s", self.tokens_per_s),
            ("tflops_per_gpu", self.tflops_per_gpu),
        ];
        for (name, v) in times {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} = {v} is not a finite, non-negative number"));
            }
        }
        if self.step_time_s <= 0.0 {
            return Err("step_time_s is not positive".into());
        }
        for (name, v) in [
            ("mfu", self.mfu),
            ("hfu", self.hfu),
            ("bubble_fraction", self.bubble_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} = {v} is outside [0, 1]"));
            }
        }
        let sum = b.total();
        if (sum - self.step_time_s).abs() > BREAKDOWN_SUM_TOLERANCE * self.step_time_s {
            return Err(format!(
                "the breakdown parts sum to {sum} s, not the step time {} s",
                self.step_time_s
            ));
        }
        Ok(())
    }
}

/// Extra forward FLOPs recompute executes per step.
pub fn recompute_flops(s: &Scenario) -> f64 {
    let (seq, gb) = (s.training.seq_len as f64, s.training.global_batch as f64);
    let m = &s.model;
    // MLA's up-projections run again in backward (`training.recompute_mla_up_proj`).
    let up = if s.training.recompute_mla_up_proj {
        let per_token: f64 = m
            .attention_projections()
            .iter()
            .filter(|p| matches!(p.name, "q_up" | "kv_up"))
            .map(|p| 2.0 * (p.inputs * p.outputs) as f64)
            .sum();
        per_token * seq * m.stack_layers() as f64 * gb
    } else {
        0.0
    };
    match s.training.recompute {
        Recompute::None => up,
        Recompute::Selective => {
            m.attention_core_flops(s.training.seq_len) * m.stack_layers() as f64 * gb + up
        }
        Recompute::Full => {
            // Output heads (the main one and each prediction module's) are not recomputed.
            let logits = (1 + m.mtp_depth) as f64 * (2.0 * seq * m.hidden as f64 * m.vocab as f64);
            (m.forward_flops_per_sequence(s.training.seq_len) - logits) * gb
        }
    }
}

/// The metrics of a replayed step of `s`.
pub(crate) fn step_metrics(
    s: &Scenario,
    graph: &StepGraph,
    grid: &RankGrid,
    replay: &Replay,
) -> StepMetrics {
    let step = ns_to_secs(replay.step_time).max(1e-12);
    let gpus = grid.world() as u64;
    let model_flops = crate::pricing::params::model_flops_per_step(&s.model, &s.training);
    let hardware_flops = model_flops + recompute_flops(s);
    let peak = s.cluster.gpu.peak_flops(s.training.precision) * gpus as f64;
    StepMetrics {
        step_time_s: step,
        tokens_per_s: (s.training.global_batch * s.training.seq_len) as f64 / step,
        model_flops,
        hardware_flops,
        tflops_per_gpu: model_flops / step / gpus as f64 / 1e12,
        mfu: model_flops / step / peak,
        hfu: hardware_flops / step / peak,
        bubble_fraction: bubble_fraction(grid, replay),
        breakdown_s: breakdown(replay),
        gpus,
        micro_batches: graph.micro_batches as u64,
        events: replay.events,
        memory: memory_report(s),
    }
}

/// Mean over ranks of the time a rank waits on its pipeline (nothing active on any stream)
/// within its pipeline's span, over that span. The span runs from the first
/// forward of the pipeline to its last backward. With balanced stages and free
/// communication this is the textbook bubble `(p-1)/(m+p-1)`.
pub fn bubble_fraction(grid: &RankGrid, replay: &Replay) -> f64 {
    let world = grid.world();
    let stage_size = grid.stage_size();
    let pp = world / stage_size;
    let mut total = 0.0;
    for pos in 0..stage_size {
        let ranks = (0..pp).map(|st| (pos + st * stage_size) as usize);
        let first = ranks
            .clone()
            .map(|r| replay.ranks[r].pipeline_first_start)
            .min()
            .unwrap_or(0);
        let last = ranks
            .clone()
            .map(|r| replay.ranks[r].pipeline_last_end)
            .max()
            .unwrap_or(0);
        let span = last.saturating_sub(first) as f64;
        if span <= 0.0 {
            continue;
        }
        for r in ranks {
            let st = &replay.ranks[r];
            let before = st.pipeline_first_start.saturating_sub(first);
            let within = st.stall_at_last_end - st.stall_at_first_start;
            let after = last.saturating_sub(st.pipeline_last_end);
            total += (before + within + after) as f64 / span;
        }
    }
    total / world as f64
}

/// Exposed time per category, averaged over ranks.
pub(crate) fn breakdown(replay: &Replay) -> Breakdown {
    let n = replay.ranks.len().max(1) as f64;
    let mut b = Breakdown::default();
    for r in &replay.ranks {
        let a = |c: Category| ns_to_secs(r.attributed[c as usize]) / n;
        b.compute += a(Category::Forward) + a(Category::Backward) + a(Category::BackwardWeight);
        b.recompute += a(Category::Recompute);
        b.optimizer += a(Category::Optimizer);
        b.tp_exposed += a(Category::Tp);
        b.cp_exposed += a(Category::Cp);
        b.ep_exposed += a(Category::Ep);
        b.pp_exposed += a(Category::Pp);
        b.dp_exposed += a(Category::Dp);
        b.idle += ns_to_secs(r.idle) / n;
    }
    b
}
