//! One training step end to end: scenario → op graph → replay → step metrics.
//!
//! The glue between the pure stages. Owns the definitions of the headline metrics
//! (step time, MFU, HFU, bubble fraction, breakdown) so every command reports them the same
//! way. No file I/O here: writers live in `report`.

use serde::Serialize;

use crate::config::Scenario;
use crate::engine::{self, EngineError, RankSpeeds, Replay, TraceRanks};
use crate::hardware::ComputeModel;
use crate::network::{AnalyticNetwork, Network};
use crate::plan::{RankGrid, Recompute};
use crate::schedule::{self, Category, StepGraph, StepInputs};
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
}

/// Options that do not come from the scenario file.
#[derive(Debug, Clone)]
pub struct StepOptions {
    pub trace: TraceRanks,
    pub speeds: RankSpeeds,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            trace: TraceRanks::None,
            speeds: RankSpeeds::uniform(),
        }
    }
}

/// Everything one simulated step produced.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub metrics: StepMetrics,
    pub graph: StepGraph,
    pub grid: RankGrid,
    pub replay: Replay,
}

/// Builds the op graph of a scenario's step.
pub fn build_graph(s: &Scenario) -> StepGraph {
    let compute = ComputeModel::new(&s.cluster.gpu, s.training.precision);
    schedule::build_step(StepInputs {
        model: &s.model,
        training: &s.training,
        parallelism: &s.parallelism,
        compute: &compute,
    })
}

/// Simulates one step of `s` with the contention-free analytic network.
pub fn simulate_step(s: &Scenario, opts: &StepOptions) -> Result<StepResult, EngineError> {
    let mut net = AnalyticNetwork::new(&s.cluster);
    simulate_step_on(s, opts, &mut net)
}

/// Simulates one step of `s` over a given network model.
pub fn simulate_step_on<N: Network>(
    s: &Scenario,
    opts: &StepOptions,
    net: &mut N,
) -> Result<StepResult, EngineError> {
    let graph = build_graph(s);
    let grid = RankGrid::new(&s.parallelism);
    let replay = engine::replay(&graph, &grid, net, &opts.speeds, &opts.trace)?;
    let metrics = metrics(s, &graph, &grid, &replay);
    Ok(StepResult {
        metrics,
        graph,
        grid,
        replay,
    })
}

/// Extra forward FLOPs recompute executes per step.
pub fn recompute_flops(s: &Scenario) -> f64 {
    let (seq, gb) = (s.training.seq_len as f64, s.training.global_batch as f64);
    let m = &s.model;
    match s.training.recompute {
        Recompute::None => 0.0,
        Recompute::Selective => 4.0 * seq * seq * m.hidden as f64 * m.layers as f64 * gb,
        Recompute::Full => {
            let logits = 2.0 * seq * m.hidden as f64 * m.vocab as f64;
            (m.forward_flops_per_sequence(s.training.seq_len) - logits) * gb
        }
    }
}

fn metrics(s: &Scenario, graph: &StepGraph, grid: &RankGrid, replay: &Replay) -> StepMetrics {
    let step = ns_to_secs(replay.step_time).max(1e-12);
    let gpus = grid.world() as u64;
    let model_flops = s
        .model
        .model_flops_per_step(s.training.seq_len, s.training.global_batch);
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

fn breakdown(replay: &Replay) -> Breakdown {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;
    use crate::network::analytic::FreeNetwork;
    use crate::plan::*;

    /// Replays with free communication and only layer work (no embedding, logits or
    /// optimizer), so stages are balanced as the closed forms assume.
    fn balanced_bubble(s: &Scenario) -> f64 {
        let mut graph = build_graph(s);
        for st in &mut graph.stages {
            for w in st.graph.node_weights_mut() {
                if w.layers.0 == u16::MAX {
                    w.duration = 0;
                }
            }
        }
        let grid = RankGrid::new(&s.parallelism);
        let r = engine::replay(
            &graph,
            &grid,
            &mut FreeNetwork,
            &RankSpeeds::uniform(),
            &TraceRanks::None,
        )
        .unwrap();
        bubble_fraction(&grid, &r)
    }

    #[test]
    fn gpipe_and_1f1b_bubble_equals_closed_form() {
        for (kind, p, m) in [
            (ScheduleKind::Gpipe, 4, 8),
            (ScheduleKind::OneFOneB, 4, 8),
            (ScheduleKind::OneFOneB, 8, 3),
            (ScheduleKind::OneFOneB, 2, 16),
        ] {
            let mut s = toy_scenario(1, p, 1, 8 * p, m);
            s.parallelism.schedule = kind;
            let got = balanced_bubble(&s);
            let want = (p - 1) as f64 / (m + p - 1) as f64;
            assert!(
                (got / want - 1.0).abs() < 1e-9,
                "{kind:?} p={p} m={m}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn interleaved_bubble_equals_closed_form() {
        for (p, m, v) in [(4, 8, 2), (4, 4, 2), (2, 8, 4), (8, 16, 3)] {
            let mut s = toy_scenario(1, p, 1, p * v * 2, m);
            s.parallelism.schedule = ScheduleKind::Interleaved;
            s.parallelism.virtual_stages = v;
            let got = balanced_bubble(&s);
            let want = (p - 1) as f64 / (m * v + p - 1) as f64;
            assert!(
                (got / want - 1.0).abs() < 1e-9,
                "p={p} m={m} v={v}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn breakdown_adds_up_to_step_time() {
        let s = toy_scenario(8, 4, 4, 32, 64);
        let r = simulate_step(&s, &StepOptions::default()).unwrap();
        let b = &r.metrics.breakdown_s;
        assert!(
            (b.total() / r.metrics.step_time_s - 1.0).abs() < 1e-9,
            "{b:?} vs {}",
            r.metrics.step_time_s
        );
        assert!(b.tp_exposed > 0.0 && b.compute > 0.0);
        assert!(
            r.metrics.mfu > 0.1 && r.metrics.mfu < 1.0,
            "{}",
            r.metrics.mfu
        );
    }
}
