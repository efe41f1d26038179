//! Replica folding is exact: the folded replay equals the full one (step time, per-rank
//! stats, trace) under stragglers, degraded links and every schedule the search uses.
#![cfg(test)]

use crate::config::Scenario;
use crate::engine::{self, RankSpeeds, TraceRanks};
use crate::faults::LinkFaults;
use crate::fixtures::toy_scenario;
use crate::network::AnalyticNetwork;
use crate::plan::RankGrid;
use crate::sim::build_graph;

/// Folded and full replays of the same step: identical step time, per-rank stats and
/// trace.
fn assert_fold_exact(s: &Scenario, speeds: &RankSpeeds, links: &LinkFaults, trace: &TraceRanks) {
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
