//! One training step end to end: scenario → op graph → replay → step metrics.
//!
//! The glue between the pure stages. Owns the definitions of the headline metrics
//! (step time, MFU, HFU, bubble fraction, breakdown) so every command reports them the same
//! way. No file I/O here: writers live in `report`.

use serde::Serialize;

use crate::config::Scenario;
use crate::engine::{self, EngineError, RankSpeeds, Replay, TraceRanks};
use crate::faults::LinkFaults;
use crate::hardware::ComputeModel;
use crate::network::{
    AnalyticNetwork, AnyNetwork, FlowNetwork, Network, NetworkMode, NetworkSettings,
};
use crate::plan::memory::{self as mem, MemoryInputs, MemoryReport};
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
    /// Memory of the most loaded rank, with every stage's figures.
    pub memory: MemoryReport,
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
        pcie_gbs: s.cluster.node.pcie_gbs,
    })
}

/// The network `s` runs on (its `network:` section: analytic or contention, and the
/// algorithm choice), with `link_faults` slowing GPUs' NIC and NVLink ports in either.
/// Every command that replays a scenario builds its network here.
pub fn build_network(s: &Scenario, link_faults: &LinkFaults) -> AnyNetwork {
    match s.network.mode {
        NetworkMode::Analytic => {
            let net = analytic_network(s).with_link_faults(link_faults.clone());
            AnyNetwork::Analytic(Box::new(net))
        }
        NetworkMode::Contention => {
            let settings = NetworkSettings {
                algorithm: s.network.algorithm,
            };
            let net = FlowNetwork::new(&s.cluster, settings).with_link_faults(link_faults);
            AnyNetwork::Contention(Box::new(net))
        }
    }
}

/// The fast-mode network of `s` (healthy links, the scenario's algorithm choice), which
/// the plan search's estimator uses whatever `network.mode` says.
pub fn analytic_network(s: &Scenario) -> AnalyticNetwork {
    AnalyticNetwork::with_algorithm(&s.cluster, s.network.algorithm)
}

/// Simulates one step of `s` on its own network ([`build_network`], healthy links).
pub fn simulate_step(s: &Scenario, opts: &StepOptions) -> Result<StepResult, EngineError> {
    simulate_step_faulty(s, opts, &LinkFaults::none()).map(|(r, _)| r)
}

/// Simulates one step of `s` on its own network with degraded links; returns the network
/// too, its link accounting closed at the step's end (for `links.csv` and the heat map).
pub fn simulate_step_faulty(
    s: &Scenario,
    opts: &StepOptions,
    link_faults: &LinkFaults,
) -> Result<(StepResult, AnyNetwork), EngineError> {
    let mut net = build_network(s, link_faults);
    let r = simulate_step_on(s, opts, &mut net)?;
    net.finish_accounting(r.replay.step_time);
    Ok((r, net))
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

/// Memory per rank of a scenario's plan (no simulation needed).
pub fn memory_report(s: &Scenario) -> MemoryReport {
    mem::memory_report(&MemoryInputs {
        model: &s.model,
        training: &s.training,
        parallelism: &s.parallelism,
        capacity_gb: s.cluster.gpu.memory_gb,
    })
}

/// `--strict-memory`: an error naming the most loaded rank and its breakdown when the plan
/// does not fit.
pub fn check_memory(s: &Scenario) -> Result<MemoryReport, mem::OutOfMemory> {
    let r = memory_report(s);
    r.check().map(|()| r)
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
        balanced_replay(s).0
    }

    /// As [`balanced_bubble`], also returning the replay and the per-micro-batch
    /// `(T_F, T_B, T_W)` of one stage (`T_B` the input-gradient pass alone under split
    /// schedules).
    fn balanced_replay(s: &Scenario) -> (f64, Replay, (f64, f64, f64)) {
        cell_replay(s, None)
    }

    /// As [`balanced_replay`]; with `cells = Some((f, b, w))` every forward and
    /// input-gradient op of a layer block lasts `f` and `b` ns and every weight pass `w`
    /// ns, so that passes take the ratios a paper's figure assumes (e.g. `T_F = T_B`).
    fn cell_replay(s: &Scenario, cells: Option<(u64, u64, u64)>) -> (f64, Replay, (f64, f64, f64)) {
        let mut graph = build_graph(s);
        for st in &mut graph.stages {
            for w in st.graph.node_weights_mut() {
                if w.layers.0 == u16::MAX {
                    w.duration = 0;
                } else if let Some((f, b, wt)) = cells {
                    w.duration = match w.category {
                        Category::Forward => f,
                        Category::Backward => b,
                        Category::BackwardWeight => wt,
                        _ => w.duration,
                    };
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
        let mut t = (0.0, 0.0, 0.0);
        for w in graph.stages[0].graph.node_weights() {
            if w.micro_batch != 0 || w.chunk != 0 {
                continue;
            }
            let d = w.duration as f64;
            match w.category {
                Category::Forward => t.0 += d,
                Category::Backward => t.1 += d,
                Category::BackwardWeight => t.2 += d,
                _ => {}
            }
        }
        (bubble_fraction(&grid, &r), r, t)
    }

    /// Per rank (one rank per stage): time without pipeline work over the whole pipeline
    /// span (first pass of any stage to last pass of any stage), and idle time between the
    /// rank's own first and last pass.
    fn idle_times(r: &Replay) -> Vec<(f64, f64)> {
        let first = r
            .ranks
            .iter()
            .map(|s| s.pipeline_first_start)
            .min()
            .unwrap();
        let last = r.ranks.iter().map(|s| s.pipeline_last_end).max().unwrap();
        r.ranks
            .iter()
            .map(|s| {
                let own = (s.stall_at_last_end - s.stall_at_first_start) as f64;
                let edges = (s.pipeline_first_start - first) + (last - s.pipeline_last_end);
                (own + edges as f64, own)
            })
            .collect()
    }

    fn assert_close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{what}: {got} vs {want}"
        );
    }

    /// ZB-H1 (arXiv 2401.10241 Table 2): every stage idles `(p-1)(T_F + T_B - T_W)` over
    /// the pipeline span, both with the model's own pass times and with the paper's
    /// `T_F = T_B = T_W`.
    #[test]
    fn zb_h1_bubble_equals_closed_form() {
        for cells in [None, Some((1000, 1000, 8000))] {
            for (p, m) in [(4, 8), (8, 16), (2, 8), (4, 4), (6, 18)] {
                let mut s = toy_scenario(1, p, 1, 4 * p, m);
                s.parallelism.schedule = ScheduleKind::ZbH1;
                let (got, r, (f, b, w)) = cell_replay(&s, cells);
                assert!(w > 0.0 && w <= f && w <= b);
                let bubble = (p - 1) as f64 * (f + b - w);
                for (rank, (idle, _)) in idle_times(&r).into_iter().enumerate() {
                    assert_close(idle, bubble, &format!("p={p} m={m} rank {rank}"));
                }
                let want = bubble / (m as f64 * (f + b + w) + bubble);
                assert_close(got, want, &format!("p={p} m={m} fraction"));
                // Strictly below 1F1B's (p-1)/(m+p-1).
                assert!(got < (p - 1) as f64 / (m + p - 1) as f64);
            }
        }
    }

    /// ZB-H2 (arXiv 2401.10241 §3.1, Table 2): the paper's bubble `(p-1)(T_F + T_B - 2T_W)`
    /// is that of its parallelogram — each stage's idle time between its own first and
    /// last pass, the largest on stage 0; stage `i` starts `i T_F` after stage 0, and the
    /// paper hides that offset by letting the next iteration start without the optimizer's
    /// global synchronisation (its post-validation). Zero under the paper's
    /// `T_F = T_B = T_W`. Over one step's pipeline span, the head offset `(p-1)T_F` stays:
    /// every stage idles `max((p-1)(T_F + T_B - 2T_W), (p-1)T_F)` there.
    #[test]
    fn zb_h2_bubble_equals_closed_form() {
        for cells in [None, Some((1000, 1000, 8000))] {
            for (p, m) in [(4, 8), (8, 16), (2, 8), (6, 18)] {
                let mut s = toy_scenario(1, p, 1, 4 * p, m);
                s.parallelism.schedule = ScheduleKind::ZbH2;
                let (got, r, (f, b, w)) = cell_replay(&s, cells);
                assert!(w <= f && w <= b);
                let closed = (p - 1) as f64 * (f + b - 2.0 * w);
                if cells.is_some() {
                    assert_eq!(closed, 0.0);
                }
                let idle = idle_times(&r);
                for (i, &(whole, own)) in idle.iter().enumerate() {
                    // The parallelogram: stage i idles (p-1-i)/(p-1) of stage 0's bubble.
                    let want = closed * (p - 1 - i as u64) as f64 / (p - 1) as f64;
                    assert_close(own, want, &format!("p={p} m={m} stage {i} own"));
                    let offset = (p - 1) as f64 * f;
                    assert_close(whole, closed.max(offset), &format!("p={p} m={m} stage {i}"));
                }
                let bubble = closed.max((p - 1) as f64 * f);
                let want = bubble / (m as f64 * (f + b + w) + bubble);
                assert_close(got, want, &format!("p={p} m={m} fraction"));
            }
        }
    }

    /// DualPipe against DeepSeek-V3 Table 2 (and the `deepseek-ai/DualPipe` README):
    /// bubble `(p/2 - 1)(F&B + B - 3W)`, with `F` a forward chunk, `B` a full backward chunk
    /// (input and weight gradients, our `T_B + T_W`), `W` its weight part and `F&B` an
    /// overlapped forward-and-backward pair.
    ///
    /// What the table measures. The schedule is `DualPipe.step` phase by phase
    /// ([`crate::schedule::pipeline::dualpipe`]); with free communication and balanced
    /// stages every rank runs `m` forward and `m` backward chunks, `m - P_r` of them as
    /// `P_r` overlapped pairs, and in our model a pair costs `F&B = F + B` (the overlap
    /// hides communication, not compute, and communication is free here). So every rank
    /// computes `m(F + B)`, the pipeline span `T` is the same for all, and the bubble —
    /// `T` minus a rank's compute, i.e. its idle time over the span, as for 1F1B's
    /// `(p-1)(F+B)` and ZB1P's `(p-1)(F+B-2W)` in the same table — is one number.
    ///
    /// Deriving `T` on a middle rank (`h = p/2 - 1`, no phases 1, 3, 5, 7): its first F0
    /// waits for micro-batch 0 to cross the `p/2 - 1` stages before it, `(p/2-1)F`;
    /// in phase 6 each of the `p/2 - 1` gradients it waits for from the outer ranks
    /// arrives `F&B - B` after it could have started; and its last W ends `(p/2-1)(B - 2W)`
    /// before the outer ranks' last W passes. So
    /// `T - m(F+B) = (p/2-1)(F + F&B - 2W)`, which is Table 2's `(p/2-1)(F&B + B - 3W)`
    /// exactly when `F = B - W` — the equal forward and input-gradient cells of the
    /// paper's figure (and of the zero-bubble paper's `T_F = T_B = T_W`); the table writes
    /// `B - W` where the schedule waits for forwards. Away from `F = B - W` the bubble is
    /// piecewise linear in `(F, B - W, W)`: with the toy model's times (`F` a little under
    /// `B - W`) it is `(p/2-1)(F&B + F - 2W)`, `(p/2-1)(B - W - F)` under the table; with
    /// `W <= B - W <= F` the middle ranks, which hold their last phase-2 F1 back by one
    /// chunk, add one more `F - (B - W)`. Were compute overlapped inside a pair
    /// (`F&B < F + B`), ranks would differ by the pairs they run and the table's figure
    /// would be the middle ranks' (they run the most pairs); here `F&B = F + B`.
    /// (All of this checked against an independent replay of `DualPipe.step`, with
    /// `batch_isend_irecv` + wait and free communication: same times, rank by rank, over
    /// random `F`, `B`, `W`, `p`, `m`.)
    #[test]
    fn dualpipe_bubble_equals_table_2() {
        let cases = [
            (2, 4),
            (4, 8),
            (4, 16),
            (6, 12),
            (6, 24),
            (8, 16),
            (8, 20),
            (8, 40),
        ];
        // The table's assumption F = B - W, with W < F and with W = F.
        for w in [4800, 8000] {
            for (p, m) in cases {
                let mut s = toy_scenario(1, p, 1, 4 * p, m);
                s.parallelism.schedule = ScheduleKind::Dualpipe;
                let (got, r, (f, b, wt)) = cell_replay(&s, Some((1000, 1000, w)));
                assert_eq!((f, b, wt), (8000.0, 8000.0, w as f64));
                let (full, fb) = (b + wt, f + b + wt);
                let table = (p / 2 - 1) as f64 * (fb + full - 3.0 * wt);
                for (rank, (idle, _)) in idle_times(&r).into_iter().enumerate() {
                    assert_close(idle, table, &format!("p={p} m={m} W={w} rank {rank}"));
                }
                let want = table / (m as f64 * fb + table);
                assert_close(got, want, &format!("p={p} m={m} W={w} fraction"));
            }
        }
        // The model's own pass times: F < B - W, and the replay sits (p/2-1)(B-W-F) under
        // the table (p=8, m=20: F=1.501 ms, B-W=1.859 ms, W=1.129 ms; 11.196 ms of bubble
        // against the table's 12.270 ms).
        for (p, m) in cases {
            let mut s = toy_scenario(1, p, 1, 4 * p, m);
            s.parallelism.schedule = ScheduleKind::Dualpipe;
            let (_, r, (f, b, w)) = balanced_replay(&s);
            assert!(w < f && f < b);
            let (full, fb) = (b + w, f + b + w);
            let table = (p / 2 - 1) as f64 * (fb + full - 3.0 * w);
            let replay = (p / 2 - 1) as f64 * (fb + f - 2.0 * w);
            assert_close(table - replay, (p / 2 - 1) as f64 * (b - f), "difference");
            for (rank, (idle, _)) in idle_times(&r).into_iter().enumerate() {
                assert_close(idle, replay, &format!("p={p} m={m} rank {rank}"));
            }
            // Below ZB-H1's (p-1)(F+B-W) for p > 2.
            if p > 2 {
                assert!(replay < (p - 1) as f64 * (f + b - w));
            }
        }
        // F > B - W >= W: one F - (B - W) more than the schedule's own piece, and p/2 of
        // them over the table (p = 2, two middle ranks and no bubble, aside).
        for (p, m) in cases.into_iter().filter(|&(p, _)| p > 2) {
            let mut s = toy_scenario(1, p, 1, 4 * p, m);
            s.parallelism.schedule = ScheduleKind::Dualpipe;
            let (_, r, (f, b, w)) = cell_replay(&s, Some((1000, 800, 3000)));
            let (full, fb) = (b + w, f + b + w);
            let table = (p / 2 - 1) as f64 * (fb + full - 3.0 * w);
            let replay = (p / 2 - 1) as f64 * (fb + f - 2.0 * w) + (f - b);
            for (rank, (idle, _)) in idle_times(&r).into_iter().enumerate() {
                assert_close(idle, replay, &format!("p={p} m={m} rank {rank}"));
            }
            assert_close(replay - table, (p / 2) as f64 * (f - b), "over the table");
        }
    }

    /// DualPipe holds each piece of the model on two ranks (chunk 0 of stage `i`, chunk 1
    /// of stage `p-1-i`); their gradients are summed by an all-reduce between the two,
    /// after the DP reduction (on its `1/dp` shard under a distributed optimizer), before
    /// the optimizer step.
    #[test]
    fn dualpipe_sums_the_gradients_of_both_copies() {
        let mut per_stage = Vec::new();
        for (dp, zero) in [(1, 0), (2, 1), (2, 0)] {
            let mut s = toy_scenario(1, 4, dp, 16, 8 * dp);
            s.parallelism.schedule = ScheduleKind::Dualpipe;
            s.parallelism.zero = zero;
            let g = build_graph(&s);
            let mirror: Vec<&schedule::Comm> = g
                .comms
                .iter()
                .filter(|c| c.collective == schedule::Collective::AllReduce)
                .filter(|c| matches!(c.group, schedule::GroupRef::P2p { .. }))
                .collect();
            assert!(!mirror.is_empty());
            let sharded = zero >= 1 && dp > 1;
            for stage in 0..4u32 {
                let mine: Vec<&&schedule::Comm> = mirror
                    .iter()
                    .filter(|c| c.ops.iter().any(|&(st, _)| st == stage))
                    .collect();
                for c in &mine {
                    let schedule::GroupRef::P2p { from, to } = c.group else {
                        unreachable!()
                    };
                    assert_eq!((from + to, c.ops.len()), (3, 2));
                    let stages: Vec<u32> = c.ops.iter().map(|&(st, _)| st).collect();
                    assert!(stages.contains(&from) && stages.contains(&to));
                    assert_eq!(c.category, Category::Dp);
                }
                // Both chunks' gradients: the stage's parameters once (its share after the
                // DP reduce-scatter under ZeRO).
                let bytes: u64 = mine.iter().map(|c| c.bytes).sum();
                per_stage.push(((dp, zero), stage, bytes));
                let reduce: u64 = g
                    .comms
                    .iter()
                    .filter(|c| c.ops.iter().any(|&(st, _)| st == stage))
                    .filter(
                        |c| matches!(c.group, schedule::GroupRef::Axes(m) if m == GroupMask::DP),
                    )
                    .filter(|c| c.collective != schedule::Collective::AllGather)
                    .map(|c| c.bytes)
                    .sum();
                if dp > 1 {
                    let shard = if sharded { dp } else { 1 };
                    let want = reduce as f64 / shard as f64;
                    assert!(
                        (bytes as f64 / want - 1.0).abs() < 1e-6,
                        "{bytes} vs {want}"
                    );
                }
                // The optimizer waits for every mirror all-reduce of its stage: they run on
                // the in-order DP stream, and the optimizer depends on that stream's last
                // reduction, issued no earlier than any of them.
                let sg = &g.stages[stage as usize].graph;
                let opt = sg
                    .node_indices()
                    .find(|&n| sg[n].category == Category::Optimizer)
                    .unwrap();
                let last_dp = sg
                    .neighbors_directed(opt, petgraph::Direction::Incoming)
                    .filter(|&n| sg[n].stream == schedule::Stream::Dp)
                    .map(|n| n.index())
                    .max()
                    .expect("the optimizer waits on the DP stream");
                for c in &mine {
                    let &(_, op) = c.ops.iter().find(|&&(st, _)| st == stage).unwrap();
                    let node = petgraph::graph::NodeIndex::new(op as usize);
                    assert_eq!(sg[node].stream, schedule::Stream::Dp);
                    assert!(op as usize <= last_dp, "mirror op {op} after {last_dp}");
                }
            }
            // The step replays (no stream-order deadlock between mirrored ranks) and the
            // all-reduces cost time on a real network.
            let r = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
            s.parallelism.overlap_grad_reduce = false;
            s.parallelism.tp = 2;
            s.cluster.nodes *= 2;
            simulate_step(&s, &StepOptions::default()).unwrap();
            if dp == 1 {
                assert!(r.breakdown_s.dp_exposed > 0.0, "{:?}", r.breakdown_s);
            }
        }
        // Whole buckets without a distributed optimizer, halves with ZeRO-1 over dp=2.
        let of = |k| per_stage.iter().filter(move |x| x.0 == k).map(|x| x.2);
        for ((full, dp2), half) in of((1, 0)).zip(of((2, 0))).zip(of((2, 1))) {
            assert_eq!(full, dp2);
            assert!(full.abs_diff(2 * half) <= 2 * 4, "{full} vs {half}");
        }
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

    /// Ring attention: `cp - 1` K/V hops per attention pass of `2 b (s/cp) h_kv elem`
    /// bytes (twice that in backward, with the gradients); with free communication they
    /// hide completely, and on a slow network they show up as exposed CP time.
    #[test]
    fn context_parallel_ring_attention_traffic_and_overlap() {
        let mut s = toy_scenario(1, 1, 4, 4, 8);
        s.parallelism.cp = 4;
        s.parallelism.dp = 1;
        s.training.recompute = Recompute::None;
        let g = build_graph(&s);
        let (t, m) = (&s.training, &s.model);
        let h_kv = m.kv_heads * (m.hidden / m.heads);
        assert_eq!(h_kv, 2048);
        // K and V of the local quarter of the sequence, bf16.
        let kv = 2 * t.micro_batch * (t.seq_len / 4) * h_kv * 2;
        let hops: Vec<&schedule::Comm> = g
            .comms
            .iter()
            .filter(|c| c.category == Category::Cp)
            .collect();
        // 4 layers x 8 micro-batches x (forward + backward) x (cp - 1) hops.
        assert_eq!(hops.len(), 4 * 8 * 2 * 3);
        assert!(hops.iter().all(|c| c.bytes == kv || c.bytes == 2 * kv));
        assert_eq!(hops.iter().filter(|c| c.bytes == kv).count(), 4 * 8 * 3);
        // The attention steps add up to the block's time: a quarter each.
        let attn: Vec<u64> = g.stages[0]
            .graph
            .node_weights()
            .filter(|o| o.label == "attn fwd" && o.micro_batch == 0 && o.layers.0 == 0)
            .map(|o| o.duration)
            .collect();
        assert_eq!(attn.len(), 4);
        assert!(attn.iter().max().unwrap() - attn.iter().min().unwrap() <= 3);
        // Free network: no CP time shows, and the step equals the compute on one rank.
        let grid = RankGrid::new(&s.parallelism);
        let free = engine::replay(
            &g,
            &grid,
            &mut FreeNetwork,
            &RankSpeeds::uniform(),
            &TraceRanks::None,
        )
        .unwrap();
        let compute: u64 = g.stages[0].graph.node_weights().map(|o| o.duration).sum();
        assert_eq!(free.step_time, compute);
        let bd = breakdown(&free);
        assert_eq!(bd.cp_exposed, 0.0);
        // A slow scale-up fabric exposes the hops.
        s.cluster.node.nvlink_gbs = 1.0;
        let slow = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
        assert!(slow.breakdown_s.cp_exposed > 0.0, "{:?}", slow.breakdown_s);
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

    #[test]
    fn expert_skew_slows_the_step_as_the_hottest_rank_predicts() {
        let run = |skew| {
            let s = crate::fixtures::toy_moe(8, skew);
            let moe_fwd = build_graph(&s).stages[0]
                .graph
                .node_weights()
                .find(|o| o.label == "moe fwd")
                .map(|o| o.duration as f64)
                .unwrap();
            let step = simulate_step(&s, &StepOptions::default())
                .unwrap()
                .metrics
                .step_time_s;
            (moe_fwd, step)
        };
        let (even, step_even) = run(0.0);
        let (hot, step_hot) = run(1.2);
        let load = crate::fixtures::toy_moe(8, 1.2)
            .model
            .moe
            .unwrap()
            .hottest_rank_load(8);
        assert!(load > 2.0, "{load}");
        // Expert GEMMs scale with the hottest rank's tokens (router and launch overheads
        // do not), and the step grows with them.
        let ratio = hot / even;
        assert!(
            ratio > 0.8 * load && ratio < 1.05 * load,
            "{ratio} vs {load}"
        );
        assert!(step_hot > 1.3 * step_even, "{step_hot} vs {step_even}");
    }

    #[test]
    fn deepseek_v3_and_mixtral_layouts_are_expressible() {
        let s = crate::fixtures::deepseek_v3_2048();
        let grid = RankGrid::new(&s.parallelism);
        assert_eq!(grid.world(), 2048);
        assert_eq!(grid.group_size(crate::plan::GroupMask::EP), 64);
        assert_eq!(grid.group_size(crate::plan::GroupMask::EXPERT_DP), 2);
        let g = build_graph(&s);
        assert_eq!(g.stages.len(), 16);
        // Model states fit comfortably; the reported total also holds TP1 MoE activations
        // of 16 micro-batches in flight without DeepSeek's FP8/recompute tricks.
        let mem = memory_report(&s);
        assert!(mem.weights + mem.grads + mem.optimizer < 40.0, "{mem:?}");
        let mut m = toy_scenario(1, 1, 8, 32, 64);
        m.model = crate::fixtures::mixtral_8x7b();
        m.parallelism.ep = 8;
        m.parallelism.pp = 4;
        m.parallelism.dp = 2;
        m.parallelism.ep = 2;
        m.parallelism.tp = 1;
        m.cluster.nodes = 1;
        let r = simulate_step(&m, &StepOptions::default()).unwrap();
        assert!(r.metrics.breakdown_s.ep_exposed > 0.0);
    }

    #[test]
    fn fsdp_gathers_every_layer_twice_and_overlaps_with_compute() {
        let mut s = toy_scenario(1, 1, 8, 8, 16);
        s.parallelism.zero = 3;
        let g = build_graph(&s);
        let gathers = g.stages[0]
            .graph
            .node_weights()
            .filter(|o| o.label == "fsdp param all-gather")
            .count();
        // Forward and backward of 2 micro-batches over 8 layers.
        assert_eq!(gathers, 2 * 2 * 8);
        let z3 = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
        s.parallelism.zero = 1;
        let z1 = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
        // Prefetch hides most gathers: the step grows by far less than the gather time.
        assert!(z3.step_time_s >= z1.step_time_s * 0.99);
        assert!(
            z3.step_time_s < z1.step_time_s * 1.5,
            "{} vs {}",
            z3.step_time_s,
            z1.step_time_s
        );
        assert!(z3.memory.weights < z1.memory.weights / 7.0);
    }

    #[test]
    fn zero2_reduce_scatters_every_micro_batch() {
        let mut s = toy_scenario(2, 2, 4, 8, 32);
        let m = 32 / 4;
        let count = |s: &Scenario| {
            let g = build_graph(s);
            g.stages
                .iter()
                .flat_map(|st| st.graph.node_weights())
                .filter(|o| o.label == "dp grad reduce-scatter")
                .count()
        };
        // Under zero-bubble schedules the weight pass reduces, not the input-gradient pass.
        for (schedule, overlap) in [
            (ScheduleKind::OneFOneB, false),
            (ScheduleKind::OneFOneB, true),
            (ScheduleKind::ZbH1, false),
            (ScheduleKind::ZbH1, true),
        ] {
            s.parallelism.schedule = schedule;
            s.parallelism.overlap_grad_reduce = overlap;
            s.parallelism.zero = 1;
            let (n1, z1) = (count(&s), simulate_step(&s, &StepOptions::default()));
            s.parallelism.zero = 2;
            let (n2, z2) = (count(&s), simulate_step(&s, &StepOptions::default()));
            assert!(n1 > 0);
            assert_eq!(n2, m * n1, "{schedule:?} overlap {overlap}");
            let (t1, t2) = (
                z1.unwrap().metrics.step_time_s,
                z2.unwrap().metrics.step_time_s,
            );
            assert!(
                t2 >= t1,
                "overlap {overlap}: ZeRO-2 {t2} s vs ZeRO-1 {t1} s"
            );
        }
        // More reductions (64 micro-batches x 9 buckets) than a byte counts still replay.
        let mut s = toy_scenario(1, 1, 2, 8, 128);
        s.parallelism.zero = 2;
        assert!(simulate_step(&s, &StepOptions::default()).is_ok());
    }

    #[test]
    fn zero3_reduce_scatters_every_micro_batch_between_its_gathers() {
        use crate::engine::TraceRanks;
        let mut s = toy_scenario(1, 1, 8, 8, 16);
        let m = 16 / 8;
        s.parallelism.zero = 1;
        let per_step = build_graph(&s)
            .comms
            .iter()
            .filter(|c| c.collective == crate::schedule::Collective::ReduceScatter)
            .count();
        s.parallelism.zero = 3;
        let g = build_graph(&s);
        // The DP stream in issue order: each backward pass's reduce-scatters sit between its
        // gathers (FSDP's post-backward hooks), not queued behind all of them.
        let dp: Vec<&str> = g.stages[0]
            .graph
            .node_weights()
            .filter(|o| o.stream == crate::schedule::Stream::Dp)
            .map(|o| o.label)
            .collect();
        let rs = "dp grad reduce-scatter";
        assert_eq!(dp.iter().filter(|&&l| l == rs).count(), m * per_step);
        let first_rs = dp.iter().position(|&l| l == rs).unwrap();
        assert_eq!(dp[first_rs + 1], "fsdp param all-gather", "{dp:?}");
        // So the last backward's reductions overlap its compute.
        let opts = StepOptions {
            trace: TraceRanks::Some(vec![0]),
            ..StepOptions::default()
        };
        let r = simulate_step(&s, &opts).unwrap();
        let op = |e: &crate::engine::TraceEvent| {
            &g.stages[0].graph[petgraph::graph::NodeIndex::new(e.op as usize)]
        };
        let last_rs = r
            .replay
            .trace
            .iter()
            .filter(|e| op(e).label == "dp grad reduce-scatter")
            .map(|e| e.start)
            .nth((m - 1) * per_step)
            .unwrap();
        let backward_end = r
            .replay
            .trace
            .iter()
            .filter(|e| op(e).category == Category::Backward)
            .map(|e| e.end)
            .max()
            .unwrap();
        assert!(last_rs < backward_end, "{last_rs} vs {backward_end}");
    }

    #[test]
    fn hybrid_sharding_gathers_in_shard_groups_and_all_reduces_shards() {
        use crate::schedule::{Collective, GroupRef};
        let mut s = toy_scenario(1, 1, 8, 8, 16);
        s.parallelism.zero = 3;
        let flat = build_graph(&s);
        s.parallelism.zero_group = Some(4);
        let g = build_graph(&s);
        let of = |c: Collective, mask| {
            g.comms
                .iter()
                .filter(|k| k.collective == c && k.group == GroupRef::Axes(mask))
                .map(|k| k.bytes)
                .collect::<Vec<_>>()
        };
        let rs = of(Collective::ReduceScatter, GroupMask::DP_SHARD);
        let ar = of(Collective::AllReduce, GroupMask::DP_REPLICA);
        let ag = of(Collective::AllGather, GroupMask::DP_SHARD);
        // The same buckets and gathers as full sharding, over shard groups of 4 only (none
        // over all 8 DP ranks); each of the 2 micro-batches reduce-scatters every bucket,
        // and the last one's 1/4 shards are then all-reduced across the 2 replica groups.
        assert!(!rs.is_empty());
        assert!(of(Collective::AllGather, GroupMask::DP).is_empty());
        assert!(of(Collective::ReduceScatter, GroupMask::DP).is_empty());
        assert_eq!(g.comms.len(), flat.comms.len() + ar.len());
        assert_eq!(ag.len(), 2 * 2 * 8);
        assert_eq!(rs.len(), 2 * ar.len());
        let last: Vec<u64> = rs[ar.len()..].iter().map(|b| b / 4).collect();
        assert_eq!(ar, last);
        let grid = RankGrid::new(&s.parallelism);
        assert_eq!(grid.group_size(GroupMask::DP_SHARD), 4);
        assert_eq!(grid.group_size(GroupMask::DP_REPLICA), 2);
        // Ring traffic per rank and bucket of B bytes: (g-1)/g B reduce-scattered inside the
        // group, 2 (r-1)/r B/g all-reduced across groups: 3/4 B + 1/8 B vs 7/8 B flat.
        let hsdp = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
        assert!(hsdp.step_time_s > 0.0);
    }

    #[test]
    fn worked_case_7b_on_8_rtx4090_fits_and_runs() {
        let s = crate::fixtures::llama7b_8x4090_fsdp();
        let r = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
        assert!(r.memory.fits, "{:?}", r.memory);
        assert!(
            r.memory.total < 24.0 && r.memory.optimizer < 6.0,
            "{:?}",
            r.memory
        );
        assert!(r.mfu > 0.05 && r.mfu < 0.8, "{}", r.mfu);
        assert!(r.breakdown_s.dp_exposed > 0.0);
    }

    #[test]
    fn worked_case_405b_qlora_fits_and_bf16_adam_does_not() {
        let q = crate::fixtures::llama405b_qlora_8xh100();
        let r = simulate_step(&q, &StepOptions::default()).unwrap().metrics;
        assert!(r.memory.fits, "{:?}", r.memory);
        assert!(
            r.memory.weights < 30.0 && r.memory.optimizer < 5.0,
            "{:?}",
            r.memory
        );
        let full = crate::fixtures::llama405b_bf16_8xh100();
        let err = check_memory(&full).unwrap_err();
        // 405.9B x 16 bytes / 8 GPUs = 812 GB of model state per GPU against 80 GB.
        let states = err.weights + err.grads + err.optimizer;
        assert!(states > 800.0 && states < 830.0, "{err}");
        assert!(err.to_string().contains("does not fit"));
    }

    #[test]
    fn worked_case_frontier_moe_fits_at_25k_and_one_replica_runs() {
        let full = crate::fixtures::frontier_moe_h100(12);
        assert_eq!(RankGrid::new(&full.parallelism).world(), 24_576);
        assert_eq!(
            RankGrid::new(&full.parallelism).group_size(crate::plan::GroupMask::EXPERT_DP),
            12
        );
        let mem = memory_report(&full);
        assert!(mem.fits, "{mem:?}");
        let one = crate::fixtures::frontier_moe_h100(1);
        let r = simulate_step(&one, &StepOptions::default())
            .unwrap()
            .metrics;
        assert!(r.mfu > 0.1 && r.mfu < 0.7, "{}", r.mfu);
    }
}

#[cfg(test)]
mod folding_tests {
    use super::*;
    use crate::engine::{self, RankSpeeds, TraceRanks};
    use crate::faults::LinkFaults;
    use crate::fixtures::toy_scenario;

    /// Folded and full replays of the same step: identical step time, per-rank stats and
    /// trace.
    fn assert_fold_exact(
        s: &Scenario,
        speeds: &RankSpeeds,
        links: &LinkFaults,
        trace: &TraceRanks,
    ) {
        let graph = build_graph(s);
        let grid = RankGrid::new(&s.parallelism);
        let net = || AnalyticNetwork::new(&s.cluster).with_link_faults(links.clone());
        let folded = engine::replay(&graph, &grid, &mut net(), speeds, trace).unwrap();
        let full = engine::replay_all(&graph, &grid, &mut net(), speeds, trace).unwrap();
        assert!(
            folded.replayed_events < full.replayed_events,
            "folding did not happen"
        );
        assert_eq!(folded.events, full.events);
        assert_eq!(full.events, full.replayed_events);
        assert_eq!(full.events, engine::event_count(&graph, &grid));
        assert_eq!(folded.step_time, full.step_time);
        assert_eq!(folded.ranks, full.ranks);
        let sorted = |mut t: Vec<engine::TraceEvent>| {
            t.sort_by_key(|e| (e.rank, e.start, e.op));
            t
        };
        assert_eq!(sorted(folded.trace), sorted(full.trace));
    }

    #[test]
    fn folded_replicas_equal_the_full_replay() {
        let s = toy_scenario(2, 4, 8, 8, 64);
        let world = 64;
        assert_fold_exact(
            &s,
            &RankSpeeds::uniform(),
            &LinkFaults::none(),
            &TraceRanks::Some(vec![0, 16, 32, 48]),
        );
        let mut slow = RankSpeeds::uniform();
        slow.set(world, 21, 1.5);
        assert_fold_exact(&s, &slow, &LinkFaults::none(), &TraceRanks::None);
        let mut links = LinkFaults::none();
        links.set_nic(world, 42, 0.5);
        assert_fold_exact(&s, &slow, &links, &TraceRanks::Some(vec![5]));
    }

    #[test]
    fn folding_covers_zero_bubble_and_interleaved_plans() {
        let mut s = toy_scenario(1, 2, 16, 8, 64);
        s.parallelism.schedule = crate::plan::ScheduleKind::Interleaved;
        s.parallelism.virtual_stages = 2;
        s.parallelism.overlap_grad_reduce = false;
        assert_fold_exact(
            &s,
            &RankSpeeds::uniform(),
            &LinkFaults::none(),
            &TraceRanks::None,
        );
        s.parallelism.schedule = crate::plan::ScheduleKind::ZbH1;
        s.parallelism.virtual_stages = 1;
        s.parallelism.zero = 3;
        assert_fold_exact(
            &s,
            &RankSpeeds::uniform(),
            &LinkFaults::none(),
            &TraceRanks::None,
        );
        // Hybrid sharding: shard groups of 4, all-reduces across the 4 replica groups.
        s.parallelism.schedule = crate::plan::ScheduleKind::OneFOneB;
        s.parallelism.overlap_grad_reduce = true;
        s.parallelism.zero_group = Some(4);
        for zero in [2, 3] {
            s.parallelism.zero = zero;
            assert_fold_exact(
                &s,
                &RankSpeeds::uniform(),
                &LinkFaults::none(),
                &TraceRanks::None,
            );
        }
    }
}
