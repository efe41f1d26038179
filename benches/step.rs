//! Step-simulation scale benchmark: the 16,384-GPU Llama-3 405B step, every rank replayed.
//!
//! `cargo bench --bench step` prints wall time per phase, events per second and peak RSS.
//! `CLUSTERSIM_BENCH_DP=1024 cargo bench --bench step` runs the same plan on 131,072 GPUs
//! (DP1024, 16,384 sequences per step, so every replica keeps 16 sequences), and
//! `CLUSTERSIM_BENCH_DP=8192` on 1,048,576 GPUs. `CLUSTERSIM_BENCH_FOLDED=1` skips the full
//! replay (the folded one alone, as `clustersim run` does by default).

use std::time::Instant;

use clustersim::engine::{self, RankSpeeds, ReplayMode, TraceRanks};
use clustersim::fixtures;
use clustersim::network::AnalyticNetwork;
use clustersim::plan::RankGrid;
use clustersim::sim;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process (robust to other load on the machine).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // Fields after the command: state is 0, utime is 11, stime is 12; 100 ticks per second.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut scenario = fixtures::llama3_405b_16k();
    let dp: u64 = std::env::var("CLUSTERSIM_BENCH_DP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let full = std::env::var_os("CLUSTERSIM_BENCH_FOLDED").is_none();
    scenario.parallelism.dp = dp;
    scenario.training.global_batch = 16 * dp;
    scenario.cluster.nodes = (8 * 16 * dp).div_ceil(8);
    let t0 = Instant::now();
    let graph = sim::build_graph(&scenario);
    let build_s = t0.elapsed().as_secs_f64();
    let grid = RankGrid::new(&scenario.parallelism);
    let speeds = RankSpeeds::uniform();
    let est = |mode| {
        let mut net = AnalyticNetwork::new(&scenario.cluster);
        engine::plan(&graph, &grid, &mut net, &speeds, &TraceRanks::None, mode).estimate
    };
    let ops_per_rank: usize = graph.stages.iter().map(|s| s.len()).max().unwrap_or(0);
    println!(
        "llama3-405b step on {} GPUs (TP8 PP16 DP{dp}), analytic network",
        grid.world()
    );
    println!(
        "  ops per stage program (max): {ops_per_rank}; op instances: {}",
        graph.op_count() as u64 * grid.stage_size() as u64
    );
    println!("  graph build:          {build_s:.3} s");
    let mut full_time = None;
    if full {
        let e = est(ReplayMode::All);
        println!(
            "  estimate before the full replay: {} events, {:.0} MB of engine state",
            e.events,
            e.bytes as f64 / 1e6
        );
        let (t1, c1) = (Instant::now(), cpu_seconds());
        let mut net = AnalyticNetwork::new(&scenario.cluster);
        // Every rank replayed: no folding of identical data-parallel replicas.
        let replay = engine::replay_all(&graph, &grid, &mut net, &speeds, &TraceRanks::None)
            .expect("replay");
        let (wall, cpu) = (t1.elapsed().as_secs_f64(), cpu_seconds() - c1);
        println!(
            "  simulated step time:  {:.3} s",
            replay.step_time as f64 / 1e9
        );
        println!(
            "  full replay (every rank): {wall:.3} s wall, {cpu:.3} s CPU, {} events, {:.1} M events/s of CPU",
            replay.events,
            replay.events as f64 / cpu / 1e6
        );
        println!("  peak RSS after the full replay: {:.0} MB", peak_rss_mb());
        full_time = Some(replay.step_time);
    }
    let e = est(ReplayMode::Folded);
    let (t2, c2) = (Instant::now(), cpu_seconds());
    let mut net = AnalyticNetwork::new(&scenario.cluster);
    let folded =
        engine::replay(&graph, &grid, &mut net, &speeds, &TraceRanks::None).expect("folded replay");
    let (wall, cpu) = (t2.elapsed().as_secs_f64(), cpu_seconds() - c2);
    let replica = grid.world() as u64 / grid.replicas() as u64;
    println!(
        "  folded replay ({} of {dp} replicas simulated): {wall:.3} s wall, {cpu:.3} s CPU, {} events (estimated {}), simulated step time {:.3} s{}",
        e.replayed_ranks / replica,
        folded.replayed_events,
        e.events,
        folded.step_time as f64 / 1e9,
        match full_time {
            Some(t) => format!(", same as the full replay: {}", t == folded.step_time),
            None => String::new(),
        }
    );
    println!(
        "  total wall:           {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    println!("  CPU time:             {:.3} s", cpu_seconds());
    println!("  peak RSS:             {:.0} MB", peak_rss_mb());
}
