//! The shipped 1,048,576-GPU scenario builds its fabric, routes across it and replays
//! (folded: one of 4,096 identical replicas stands for all); its contention-mode replay,
//! which cannot fold, is refused up front with the estimate. The full replay of every rank
//! is a benchmark (`cargo bench --bench million`), not a test.

use clustersim::api::Simulation;
use clustersim::engine::{self, RankSpeeds, ReplayBudget, ReplayMode, TraceRanks};
use clustersim::network::NetworkMode;
use clustersim::network::topology::Topology;
use clustersim::plan::RankGrid;
use clustersim::sim;

const SCENARIO: &str = "scenarios/frontier-dense-1m-b200.yaml";

#[test]
fn a_million_gpus_build_route_and_replay() {
    let out = Simulation::from_file(SCENARIO)
        .unwrap()
        .with_timeline(clustersim::config::TimelineRanks::None)
        .run()
        .unwrap();
    let s = &out.scenario;
    assert_eq!(s.parallelism.world_size(), 1 << 20);
    let m = out.metrics();
    assert!(
        m.step_time_s > 1.0 && m.step_time_s < 60.0,
        "{}",
        m.step_time_s
    );
    assert!(m.memory.fits);
    // Every rank has its results; the replay simulated one replica.
    assert_eq!(out.step.replay.ranks.len(), 1 << 20);
    let grid = RankGrid::new(&s.parallelism);
    assert!(out.step.replay.replayed_events * 1000 < out.step.replay.events);
    assert_eq!(grid.replicas(), 4096);

    // The fabric: every GPU reaches every other one; a rail's leaf joins the same GPU of
    // 64 nodes (one hop), the farthest pairs cross the core tier.
    let topo = Topology::new(&s.cluster);
    assert_eq!(topo.gpus, 1 << 20);
    assert!(topo.links() > 4_000_000, "{} links", topo.links());
    let mut path = Vec::new();
    topo.route(0, (1 << 20) - 1, &mut path);
    assert!(!path.is_empty());
    assert_eq!(topo.switch_hops(0, 8), 1);
    assert_eq!(topo.switch_hops(0, (1 << 20) - 8), 5);
}

#[test]
fn contention_at_a_million_gpus_is_refused_up_front() {
    let s = Simulation::from_file(SCENARIO)
        .unwrap()
        .with_network(NetworkMode::Contention)
        .scenario()
        .unwrap();
    let graph = sim::build_graph(&s);
    let grid = RankGrid::new(&s.parallelism);
    // The analytic network plans the same replay shape without building the flow model.
    let mut net = sim::analytic_network(&s);
    let folded = engine::plan(
        &graph,
        &grid,
        &mut net,
        &RankSpeeds::uniform(),
        &TraceRanks::None,
        ReplayMode::Folded,
    )
    .estimate;
    assert!(folded.folded && folded.events < 1_000_000);
    let all = engine::plan(
        &graph,
        &grid,
        &mut net,
        &RankSpeeds::uniform(),
        &TraceRanks::None,
        ReplayMode::All,
    )
    .estimate;
    assert_eq!(all.events, engine::event_count(&graph, &grid));
    assert!(all.events > 1_000_000_000 && all.bytes < 2_000_000_000);
    let err = all.check(&ReplayBudget::default()).unwrap_err().to_string();
    assert!(err.contains("--replay all"), "{err}");
    // Through the API: the contention replay is refused as bad input before it starts.
    let e = Simulation::from_file(SCENARIO)
        .unwrap()
        .with_network(NetworkMode::Contention)
        .run()
        .unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    assert!(e.to_string().contains("--network analytic"), "{e}");
}
