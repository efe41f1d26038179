//! Replica folding is exact for every fault kind: a folded replay (the replicas that differ
//! plus one stand-in per placement class) equals the full replay rank by rank, through the
//! network every command builds (`sim::build_network`).

use clustersim::config::Scenario;
use clustersim::engine::{self, RankSpeeds, Replay, TraceRanks};
use clustersim::faults::{self, FaultsSpec, LinkFaultSpec, LinkFaults, StepState, StragglerSpec};
use clustersim::fixtures::toy_scenario;
use clustersim::hardware::FabricKind;
use clustersim::network::NetworkMode;
use clustersim::plan::RankGrid;
use clustersim::sim;

fn replays(
    s: &Scenario,
    speeds: &RankSpeeds,
    links: &LinkFaults,
    trace: &TraceRanks,
) -> (Replay, Replay) {
    let graph = sim::build_graph(s);
    let grid = RankGrid::new(&s.parallelism);
    let folded = engine::replay(
        &graph,
        &grid,
        &mut sim::build_network(s, links),
        speeds,
        trace,
    )
    .unwrap();
    let full = engine::replay_all(
        &graph,
        &grid,
        &mut sim::build_network(s, links),
        speeds,
        trace,
    )
    .unwrap();
    assert_eq!(full.events, engine::event_count(&graph, &grid));
    assert_eq!(full.events, full.replayed_events);
    (folded, full)
}

/// Folded equals full (step time, every rank's stats, trace, event count) and folding
/// actually happened.
fn assert_exact(s: &Scenario, speeds: &RankSpeeds, links: &LinkFaults, trace: &TraceRanks) {
    let (folded, full) = replays(s, speeds, links, trace);
    assert!(
        folded.replayed_events < full.replayed_events,
        "folding did not happen ({} events)",
        folded.replayed_events
    );
    assert_eq!(folded.step_time, full.step_time);
    assert_eq!(folded.events, full.events);
    assert_eq!(folded.ranks, full.ranks);
    let sorted = |mut t: Vec<engine::TraceEvent>| {
        t.sort_by_key(|e| (e.rank, e.start, e.op));
        t
    };
    assert_eq!(sorted(folded.trace), sorted(full.trace));
}

/// 8 replicas of TP2 PP4 on 64 GPUs.
fn scenario() -> Scenario {
    toy_scenario(2, 4, 8, 8, 64)
}

fn step_faults(s: &Scenario, spec: FaultsSpec) -> (RankSpeeds, LinkFaults) {
    faults::step_faults(&spec, s.parallelism.world_size() as u32).unwrap()
}

#[test]
fn stragglers_fold_exactly() {
    let s = scenario();
    let (speeds, links) = step_faults(
        &s,
        FaultsSpec {
            seed: 3,
            stragglers: vec![StragglerSpec {
                ranks: vec![5, 37],
                slowdown: 1.4,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(speeds.slow_ranks().count(), 2);
    assert_exact(&s, &speeds, &links, &TraceRanks::None);
    assert_exact(&s, &speeds, &links, &TraceRanks::Some(vec![0, 9]));
}

#[test]
fn degraded_nics_and_nvlinks_fold_exactly() {
    let s = scenario();
    let (speeds, links) = step_faults(
        &s,
        FaultsSpec {
            links: vec![
                LinkFaultSpec {
                    ranks: vec![18],
                    nic_factor: 0.5,
                    ..Default::default()
                },
                LinkFaultSpec {
                    ranks: vec![50],
                    nvlink_factor: 0.25,
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
    );
    assert_eq!(links.degraded_gpus(), vec![18, 50]);
    assert_exact(&s, &speeds, &links, &TraceRanks::None);
}

#[test]
fn flapping_links_fold_exactly() {
    let s = scenario();
    let (speeds, links) = step_faults(
        &s,
        FaultsSpec {
            links: vec![LinkFaultSpec {
                ranks: vec![33],
                nic_factor: 0.8,
                flap_period: Some("10m".into()),
                flap_down: Some("2m".into()),
                ..Default::default()
            }],
            stragglers: vec![StragglerSpec {
                ranks: vec![2],
                slowdown: 1.2,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert!((links.nic_factor(33) - 0.64).abs() < 1e-6);
    assert_exact(&s, &speeds, &links, &TraceRanks::None);
}

/// The run-level cluster states (`run::simulate_state`) fold too: one representative rank
/// per stage carries the stage's slowest GPU and worst links.
#[test]
fn run_states_fold_exactly() {
    let s = scenario();
    let grid = RankGrid::new(&s.parallelism);
    let mut lf = LinkFaults::none();
    lf.set_nic(64, 20, 0.5);
    let state = StepState::new([(3, 1.2), (40, 1.5)], &lf, &grid);
    assert_exact(
        &s,
        &state.rank_speeds(&grid),
        &state.link_faults(&grid),
        &TraceRanks::None,
    );
}

/// Replicas placed differently on the fabric are not stand-ins for each other: with 16
/// NICs per leaf and 10 ranks per stage, some pipeline hops stay under one leaf and others
/// cross to the spine, so replicas fall into placement classes. The full replay shows
/// they differ; the folded one simulates one per class and still matches rank by rank.
#[test]
fn placement_classes_fold_exactly() {
    let mut s = toy_scenario(1, 4, 10, 8, 40);
    s.cluster.fabric.kind = FabricKind::FatTree;
    s.cluster.fabric.switch_radix = 32;
    let (folded, full) = replays(
        &s,
        &RankSpeeds::uniform(),
        &LinkFaults::none(),
        &TraceRanks::None,
    );
    let grid = RankGrid::new(&s.parallelism);
    // Rank 0 (replica 0) and rank 2 (replica 2) of stage 0 see different hop latencies.
    assert_ne!(full.ranks[0], full.ranks[2], "placement should matter here");
    let stand_ins = folded.replayed_events as f64 / (full.events as f64 / 10.0);
    assert!(stand_ins < 9.0, "no folding: {stand_ins} replicas replayed");
    assert_eq!(folded.ranks, full.ranks);
    assert_eq!(folded.step_time, full.step_time);
    assert_eq!(grid.replicas(), 10);
}

/// Contention: every replica's flows share the fabric, so nothing folds (and the result
/// is the full replay's).
#[test]
fn contention_never_folds() {
    let mut s = toy_scenario(2, 2, 4, 4, 16);
    s.network.mode = NetworkMode::Contention;
    let (folded, full) = replays(
        &s,
        &RankSpeeds::uniform(),
        &LinkFaults::none(),
        &TraceRanks::None,
    );
    assert_eq!(folded.replayed_events, full.replayed_events);
    assert_eq!(folded.ranks, full.ranks);
}
