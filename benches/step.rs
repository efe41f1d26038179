//! Step-simulation scale benchmark: the 16,384-GPU Llama-3 405B step, every rank replayed.
//!
//! `cargo bench --bench step` prints wall time per phase, events per second and peak RSS.
//! `CLUSTERSIM_BENCH_DP=1024 cargo bench --bench step` runs the same plan on 131,072 GPUs
//! (DP1024, 16,384 sequences per step, so every replica keeps 16 sequences).

use std::time::Instant;

use clustersim::engine::{self, RankSpeeds, TraceRanks};
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
    scenario.parallelism.dp = dp;
    scenario.training.global_batch = 16 * dp;
    scenario.cluster.nodes = (8 * 16 * dp).div_ceil(8);
    let t0 = Instant::now();
    let graph = sim::build_graph(&scenario);
    let build_s = t0.elapsed().as_secs_f64();
    let grid = RankGrid::new(&scenario.parallelism);
    let mut net = AnalyticNetwork::new(&scenario.cluster);
    let t1 = Instant::now();
    // Every rank replayed: no folding of identical data-parallel replicas.
    let replay = engine::replay_all(
        &graph,
        &grid,
        &mut net,
        &RankSpeeds::uniform(),
        &TraceRanks::None,
    )
    .expect("replay");
    let replay_s = t1.elapsed().as_secs_f64();
    let total = t0.elapsed().as_secs_f64();
    let ops_per_rank: usize = graph.stages.iter().map(|s| s.len()).max().unwrap_or(0);
    println!(
        "llama3-405b step on {} GPUs (TP8 PP16 DP{dp}), analytic network",
        grid.world()
    );
    println!(
        "  ops per stage program (max): {ops_per_rank}; op instances: {}",
        graph.op_count() as u64 * grid.stage_size() as u64
    );
    println!(
        "  simulated step time:  {:.3} s",
        replay.step_time as f64 / 1e9
    );
    println!("  graph build:          {build_s:.3} s");
    println!(
        "  replay:               {replay_s:.3} s ({} events, {:.1} M events/s)",
        replay.events,
        replay.events as f64 / replay_s / 1e6
    );
    let target = if dp == 128 { " (target <= 5 s)" } else { "" };
    println!("  total wall:           {total:.3} s{target}");
    println!("  CPU time:             {:.3} s", cpu_seconds());
    let t2 = Instant::now();
    let folded = engine::replay(
        &graph,
        &grid,
        &mut net,
        &RankSpeeds::uniform(),
        &TraceRanks::None,
    )
    .expect("folded replay");
    println!(
        "  folded replay (one DP replica standing for {dp}): {:.3} s, {} events, same step time: {}",
        t2.elapsed().as_secs_f64(),
        folded.replayed_events,
        folded.step_time == replay.step_time
    );
    println!(
        "  peak RSS:             {:.0} MB (target <= 4096 MB)",
        peak_rss_mb()
    );
}
