//! The up-front replay estimate: exact events (folded or not), memory that grows with the
//! ranks replayed and the trace, and the refusal above the budget (exit 2 with the
//! estimate and what shrinks it) that `--replay all` overrides.

use std::process::Command;

use clustersim::engine::{self, RankSpeeds, ReplayBudget, ReplayMode, TraceRanks};
use clustersim::faults::LinkFaults;
use clustersim::fixtures::toy_scenario;
use clustersim::plan::RankGrid;
use clustersim::sim;

#[test]
fn estimate_counts_the_events_the_replay_processes() {
    let s = toy_scenario(2, 4, 8, 8, 64);
    let graph = sim::build_graph(&s);
    let grid = RankGrid::new(&s.parallelism);
    let speeds = RankSpeeds::uniform();
    for mode in [ReplayMode::Folded, ReplayMode::All] {
        let mut net = sim::build_network(&s, &LinkFaults::none());
        let plan = engine::plan(&graph, &grid, &mut net, &speeds, &TraceRanks::None, mode);
        let est = plan.estimate.clone();
        let r = engine::replay_planned(plan, &graph, &grid, &mut net, &speeds, &TraceRanks::None)
            .unwrap();
        assert_eq!(est.events, r.replayed_events, "{mode:?}");
        assert_eq!(est.folded, mode == ReplayMode::Folded);
        assert_eq!(est.world, 64);
        assert!(est.replayed_ranks <= est.world);
    }
}

#[test]
fn memory_grows_with_ranks_and_trace() {
    let s = toy_scenario(2, 4, 8, 8, 64);
    let graph = sim::build_graph(&s);
    let grid = RankGrid::new(&s.parallelism);
    let speeds = RankSpeeds::uniform();
    let est = |mode, trace: &TraceRanks| {
        let mut net = sim::build_network(&s, &LinkFaults::none());
        engine::plan(&graph, &grid, &mut net, &speeds, trace, mode).estimate
    };
    let folded = est(ReplayMode::Folded, &TraceRanks::None);
    let all = est(ReplayMode::All, &TraceRanks::None);
    let traced = est(ReplayMode::All, &TraceRanks::All);
    assert!(folded.bytes < all.bytes);
    assert!(traced.trace_bytes > 0 && traced.bytes > all.bytes + traced.trace_bytes / 2);
    let tight = ReplayBudget {
        max_events: all.events - 1,
        max_bytes: u64::MAX,
        max_flow_work: u64::MAX,
    };
    let e = all.check(&tight).unwrap_err().to_string();
    assert!(e.contains("--replay all"), "{e}");
    assert!(folded.check(&tight).is_ok());
    let e = traced
        .check(&ReplayBudget {
            max_events: u64::MAX,
            max_bytes: all.bytes,
            max_flow_work: u64::MAX,
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("--timeline"), "{e}");
}

fn run(args: &[&str], max_events: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("clustersim-budget-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(["run", "scenarios/llama3-70b-1k.yaml", "--out"])
        .arg(&dir)
        .args(args)
        .env("CLUSTERSIM_MAX_STEP_EVENTS", max_events)
        .output()
        .unwrap()
}

#[test]
fn over_budget_replays_are_refused_unless_forced() {
    // Contention mode cannot fold: the full replay is far above 1,000 events.
    let out = run(&["--network", "contention"], "1000");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too large"), "{err}");
    assert!(err.contains("--network analytic"), "{err}");
    assert!(err.contains("--replay all"), "{err}");
    // Analytic: the replicas fold and the folded replay still exceeds 1,000 events...
    assert_eq!(run(&[], "1000").status.code(), Some(2));
    // ...but fits 10^6, and `--replay all` forces any replay.
    assert_eq!(run(&[], "1e6").status.code(), Some(0));
    let forced = run(&["--replay", "all"], "1000");
    assert_eq!(forced.status.code(), Some(0), "{forced:?}");
    // A malformed budget is bad input too.
    assert_eq!(run(&[], "lots").status.code(), Some(2));
}

/// A valid contention replay whose flow work is above the budget is refused before it
/// starts (in well under a second), with the estimate, the variable and the keys that
/// shrink it; raising the variable lets the same replay run.
#[test]
fn slow_contention_replays_are_refused_with_the_estimate() {
    let s = toy_scenario(2, 4, 8, 8, 64);
    let graph = sim::build_graph(&s);
    let grid = RankGrid::new(&s.parallelism);
    // The closed form: TP all-reduces over n=2 ranks, pipeline sends, DP all-reduces over
    // n=8, each times its groups and instances; an all-to-all would count n^2.
    let work = engine::flow_work(&graph, &grid);
    assert!(work > 0);
    let mut net = sim::build_network(&s, &LinkFaults::none());
    let est = engine::plan(
        &graph,
        &grid,
        &mut net,
        &RankSpeeds::uniform(),
        &TraceRanks::None,
        ReplayMode::Folded,
    )
    .estimate;
    assert_eq!(
        est.flow_work, 0,
        "the analytic network has no contention work"
    );

    let dir = std::env::temp_dir().join(format!("clustersim-flow-{}", std::process::id()));
    let go = |limit: &str| {
        Command::new(env!("CARGO_BIN_EXE_clustersim"))
            .args([
                "run",
                "scenarios/llama3-70b-1k.yaml",
                "--network",
                "contention",
            ])
            .args(["--timeline", "none", "--set", "run=null", "--out"])
            .arg(&dir)
            .env("CLUSTERSIM_MAX_CONTENTION_WORK", limit)
            .output()
            .unwrap()
    };
    let t0 = std::time::Instant::now();
    let out = go("1e6");
    assert!(t0.elapsed().as_secs_f64() < 20.0, "refused up front");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "units of contention work",
        "CLUSTERSIM_MAX_CONTENTION_WORK",
        "--network analytic",
        "parallelism.ep",
        "training.global_batch",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(!dir.join("summary.json").exists());
    let out = go("1e9");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
