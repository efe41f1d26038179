//! A slow GPU acts through the engine: its stage, its collectives, the whole job.

use clustersim::engine::RankSpeeds;
use clustersim::faults::{LinkFaults, StepState};
use clustersim::fixtures::toy_scenario;
use clustersim::plan::RankGrid;
use clustersim::schedule::Category;
use clustersim::sim::{StepOptions, simulate_step};
use clustersim::units::ns_to_secs;

/// One GPU 1.5x slower in a TP8 PP4 DP8 job (256 GPUs, 1F1B, 32 micro-batches per
/// pipeline).
///
/// Derivation. Put the slow GPU in the last stage (rank 200: stage 3 of the 4, since a stage
/// holds tp x dp = 64 ranks). Under 1F1B the last stage runs F0 B0 F1 B1 ... with no
/// warm-up, and it carries the logits, so it is the heaviest stage: upstream stages deliver
/// F(j+1) before it finishes B(j), and it never waits after F0 arrives. Its whole forward
/// and backward compute is therefore on the critical path, healthy or slow:
///   step = [F0 reaches stage 3] + [stage 3's compute + its exposed TP/PP communication]
///        + [B(m-1) flowing back through stages 2, 1, 0] + [DP reduction + optimizer tail].
/// The slow GPU multiplies only its own compute; its 7 TP peers wait for it at every TP
/// collective (the collective starts when the last member arrives and lasts as long as
/// before), so the stage advances at the slow GPU's pace; the other 7 pipelines wait for it
/// at the DP gradient reduction, so the job finishes with the slow pipeline. The first and
/// last terms are unchanged (upstream stages are healthy; stage 0 finishes last, so stage 3's
/// slower optimizer is off the critical path). Hence
///   step_slow = step_healthy + (1.5 - 1) x C,
/// where C is rank 200's forward + backward compute time in the healthy replay.
#[test]
fn slow_gpu_raises_step_time_by_its_critical_path_share() {
    let s = toy_scenario(8, 4, 8, 32, 256);
    let healthy = simulate_step(&s, &StepOptions::default()).unwrap();
    let slow_rank = 200;
    let mut speeds = RankSpeeds::uniform();
    speeds.set(256, slow_rank, 1.5);
    let slow = simulate_step(
        &s,
        &StepOptions {
            speeds,
            ..Default::default()
        },
    )
    .unwrap();
    let busy = &healthy.replay.ranks[slow_rank as usize].busy;
    let c = ns_to_secs(busy[Category::Forward as usize] + busy[Category::Backward as usize]);
    let want = healthy.metrics.step_time_s + 0.5 * c;
    let got = slow.metrics.step_time_s;
    eprintln!(
        "healthy {:.4} s, slow {got:.4} s, predicted {want:.4} s (C = {c:.4} s)",
        healthy.metrics.step_time_s
    );
    assert!((got / want - 1.0).abs() < 0.005, "{got} vs {want}");
    // A naive "whole job 1.5x slower" would be far off: the slowdown is the critical path's.
    assert!(got < 1.4 * healthy.metrics.step_time_s);
}

/// The run-level cache key simulates the same thing: one representative rank per stage.
#[test]
fn step_state_reproduces_the_slow_rank() {
    let s = toy_scenario(8, 4, 2, 32, 64);
    let grid = RankGrid::new(&s.parallelism);
    let state = StepState::new([(53, 1.5)], &LinkFaults::none(), &grid);
    let via_state = clustersim::run::simulate_state(&s, &grid, &state).unwrap();
    let mut speeds = RankSpeeds::uniform();
    speeds.set(64, 53, 1.5);
    let direct = simulate_step(
        &s,
        &StepOptions {
            speeds,
            ..Default::default()
        },
    )
    .unwrap();
    let rel = via_state / direct.metrics.step_time_s - 1.0;
    assert!(
        rel.abs() < 1e-3,
        "{via_state} vs {}",
        direct.metrics.step_time_s
    );
}

/// A degraded NIC slows the collectives its GPU joins (analytic network), so the step.
#[test]
fn degraded_nic_slows_the_step() {
    let s = toy_scenario(8, 4, 8, 32, 256);
    let grid = RankGrid::new(&s.parallelism);
    let healthy = clustersim::run::simulate_state(&s, &grid, &StepState::healthy()).unwrap();
    let mut lf = LinkFaults::none();
    lf.set_nic(256, 0, 0.1);
    let state = StepState::new([], &lf, &grid);
    let degraded = clustersim::run::simulate_state(&s, &grid, &state).unwrap();
    assert!(degraded > healthy * 1.001, "{degraded} vs {healthy}");
}
