//! The shipped million-GPU scenario (`scenarios/frontier-dense-1m-b200.yaml`: 1,048,576
//! B200s, a ~1.1T dense model, TP8 CP2 PP16 DP4096) through the library, as `clustersim
//! run` does it: folded by default (one replica stands for 4,096), and with
//! `CLUSTERSIM_BENCH_FULL=1` also every rank replayed (`--replay all`). Prints wall and CPU
//! time, events and peak RSS (VmHWM) after each.

use std::time::Instant;

use clustersim::api::Simulation;
use clustersim::config::TimelineRanks;
use clustersim::engine::ReplayMode;

fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let path = "scenarios/frontier-dense-1m-b200.yaml";
    let modes: &[ReplayMode] = if std::env::var_os("CLUSTERSIM_BENCH_FULL").is_some() {
        &[ReplayMode::Folded, ReplayMode::All]
    } else {
        &[ReplayMode::Folded]
    };
    for &mode in modes {
        let (t, c) = (Instant::now(), cpu_s());
        let out = Simulation::from_file(path)
            .expect("scenario")
            .with_timeline(TimelineRanks::None)
            .with_replay(mode)
            .run()
            .expect("step");
        let r = &out.step.replay;
        println!(
            "{path} ({:?}): {} GPUs, step {:.4} s, {} of {} events replayed; {:.2} s wall, {:.2} s CPU; peak RSS {:.0} MB",
            mode,
            out.scenario.parallelism.world_size(),
            out.metrics().step_time_s,
            r.replayed_events,
            r.events,
            t.elapsed().as_secs_f64(),
            cpu_s() - c,
            peak_rss_mb()
        );
    }
}
