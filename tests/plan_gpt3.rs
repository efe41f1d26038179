//! Plan search on GPT-3 175B / 1,024 A100 80GB: the search beats Megatron's published
//! layout, and the fast mode ranks the top plans as the full replay does.
//!
//! Ten 1,024-GPU replays: seconds in release, minutes in debug, so debug builds skip it
//! (CI runs `cargo test --release`).

use clustersim::sweep::{fixtures, plan};

#[test]
#[cfg_attr(debug_assertions, ignore = "slow in debug builds; run with --release")]
fn gpt3_search_beats_megatron_and_fast_mode_agrees_with_replay() {
    let s = fixtures::gpt3_175b_1k_a100();
    let opts = plan::PlanOptions::for_scenario(&s, 10);
    let report = plan::search(&s, &opts).expect("search");
    assert_eq!(report.replayed, 10);

    // Megatron's layout (TP 8, PP 8, interleaved, as in the SC'21 paper), replayed in full.
    let megatron = plan::replay(&s, &plan::PlanPoint::of(&s)).unwrap();
    let mut pp16 = plan::PlanPoint::of(&s);
    pp16.pp = 16;
    pp16.dp = 8;
    pp16.virtual_stages = 3;
    let megatron16 = plan::replay(&s, &pp16).unwrap();
    let best = report.best_replayed().unwrap();
    let best_t = best.replay.as_ref().unwrap().step_time_s;
    assert!(
        best_t <= megatron.step_time_s && best_t <= megatron16.step_time_s,
        "best {} at {best_t} s vs Megatron TP8 PP8 {} s, PP16 {} s",
        best.point.label(),
        megatron.step_time_s,
        megatron16.step_time_s
    );

    // Fast mode vs replay over the top 10. Measured: Spearman 1.0, |error| <= 0.05 %.
    let top = &report.rows[..10];
    let fast: Vec<f64> = top.iter().map(|r| r.fast.step_time_s).collect();
    let full: Vec<f64> = top
        .iter()
        .map(|r| r.replay.as_ref().unwrap().step_time_s)
        .collect();
    let rho = plan::spearman(&fast, &full);
    assert!(rho >= 0.8, "Spearman {rho}: fast {fast:?} replay {full:?}");
    for (f, r) in fast.iter().zip(&full) {
        assert!((f / r - 1.0).abs() <= 0.01, "fast {f} vs replay {r}");
    }
}

#[test]
fn fast_mode_matches_replay_on_a_small_pipeline() {
    use clustersim::fixtures::toy_scenario;
    use clustersim::network::AnalyticNetwork;
    use clustersim::plan::{Recompute, ScheduleKind};
    let mut s = toy_scenario(2, 4, 2, 16, 32);
    s.parallelism.schedule = ScheduleKind::Interleaved;
    s.parallelism.virtual_stages = 2;
    s.training.recompute = Recompute::Full;
    let mut net = AnalyticNetwork::new(&s.cluster);
    for zero in [0, 1] {
        for overlap in [false, true] {
            s.parallelism.zero = zero;
            s.parallelism.overlap_grad_reduce = overlap;
            s.parallelism.pp_comm_overlap = overlap;
            let p = plan::PlanPoint::of(&s);
            let fast = plan::evaluate_fast(&s, &p, &mut net).fast.step_time_s;
            let full = plan::replay(&s, &p).unwrap().step_time_s;
            assert!(
                (fast / full - 1.0).abs() < 0.03,
                "zero {zero} overlap {overlap}: fast {fast} replay {full}"
            );
        }
    }
}
