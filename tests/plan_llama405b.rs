//! Plan search on Llama 3 405B / 16,384 H100 (scenarios/llama3-405b-16k.yaml): pipeline
//! degrees that do not divide the 126 layers are searched (the scenario's embedding and
//! loss slots make PP16 interleaved split evenly), the search proposes Meta's PP16 layout
//! first, and fast mode agrees with the full replay within 1 % on the top ten — including
//! zero-bubble plans with fewer micro-batches than their weight passes need to fill the
//! bubble, which the closed form alone priced 12-19 % fast.

use std::path::Path;

use clustersim::config::load_scenario;
use clustersim::plan::ScheduleKind;
use clustersim::sweep::plan;

#[test]
fn search_proposes_pp16_and_fast_mode_agrees_with_replay() {
    let s = load_scenario(Some(Path::new("scenarios/llama3-405b-16k.yaml")), &[]).unwrap();
    let opts = plan::PlanOptions::for_scenario(&s, 10);
    let report = plan::search(&s, &opts).expect("search");
    assert_eq!(report.replayed, 10);
    let top: Vec<_> = report.rows.iter().take(10).collect();
    let first = &top[0].point;
    assert_eq!(
        (first.tp, first.pp, first.dp),
        (8, 16, 128),
        "{}",
        first.label()
    );
    assert_eq!(first.schedule, ScheduleKind::Interleaved);
    let mut best = f64::MAX;
    for r in &top {
        let replay = r.replay.as_ref().expect("top ten replayed").step_time_s;
        let err = (r.fast.step_time_s / replay - 1.0).abs();
        assert!(
            err < 0.01,
            "{}: fast {} vs replay {replay}",
            r.point.label(),
            r.fast.step_time_s
        );
        best = best.min(replay);
    }
    // The plan ranked first is the best by replay.
    assert_eq!(top[0].replay.as_ref().unwrap().step_time_s, best);
}
