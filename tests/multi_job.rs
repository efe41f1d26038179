//! Several jobs on one fabric (`jobs:`): jobs whose traffic meets on no link run exactly
//! as fast as alone; jobs whose rings share an oversubscribed leaf uplink slow each other
//! by what max-min sharing of that uplink predicts (derived by hand from the link
//! capacities and the number of flows on it); placement policies and the scenario in
//! `scenarios/two-jobs-shared-spine.yaml`.

use std::path::Path;

use clustersim::config::{self, Scenario};
use clustersim::engine::{SharedJob, TraceRanks, replay_shared};
use clustersim::faults::RankSpeeds;
use clustersim::fixtures::{dgx_h100_ndr, toy_scenario};
use clustersim::hardware::FabricKind;
use clustersim::network::topology::LinkKind;
use clustersim::network::{AlgorithmChoice, FlowNetwork, NetworkSettings};
use clustersim::plan::{GroupMask, RankGrid};
use clustersim::schedule::{Comm, GroupRef, Op, StageProgram, StepGraph, Stream};
use clustersim::sim::StepOptions;
use clustersim::sim::jobs::{JobsResult, simulate_jobs};
use clustersim::vocab::{Category, Collective};

const SCENARIO: &str = "scenarios/two-jobs-shared-spine.yaml";

fn load(overrides: &[&str]) -> Scenario {
    let ov: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    config::load_scenario(Some(Path::new(SCENARIO)), &ov).unwrap_or_else(|e| panic!("{e}"))
}

fn run(s: &Scenario) -> JobsResult {
    let spec = s.jobs.as_ref().expect("a jobs scenario");
    simulate_jobs(s, spec, &StepOptions::default(), false).unwrap()
}

#[test]
fn jobs_on_disjoint_leaves_do_not_slow_each_other() {
    // Packed: each job fills two whole leaves (two nodes per leaf), so no link carries
    // both jobs' traffic, and each job's every flow sees exactly what it sees alone.
    let s = load(&["placement=packed"]);
    let r = run(&s);
    assert_eq!(r.jobs[0].nodes, vec![0, 1, 2, 3]);
    assert_eq!(r.jobs[1].nodes, vec![4, 5, 6, 7]);
    assert_eq!(r.shared_link_count, 0);
    for j in &r.jobs {
        println!(
            "{}: alone {:.6} s, shared {:.6} s",
            j.name, j.alone.step_time_s, j.shared.step_time_s
        );
        assert_eq!(j.alone.step_time_s, j.shared.step_time_s, "{}", j.name);
        assert_eq!(j.alone.breakdown_s, j.shared.breakdown_s, "{}", j.name);
    }
}

#[test]
fn jobs_spread_over_shared_leaves_slow_each_other_on_the_uplinks() {
    let s = load(&[]);
    let r = run(&s);
    // Spread: node k of every leaf before node k + 1 of any.
    assert_eq!(r.jobs[0].nodes, vec![0, 2, 4, 6]);
    assert_eq!(r.jobs[1].nodes, vec![1, 3, 5, 7]);
    assert!(r.shared_link_count > 0);
    assert!(
        r.shared_links
            .iter()
            .all(|l| l.kind == LinkKind::LeafSpine && l.bytes.iter().all(|&b| b > 0.0))
    );
    for j in &r.jobs {
        println!(
            "{}: alone {:.4} s, shared {:.4} s ({:.3}x); DP exposed {:.4} -> {:.4} s",
            j.name,
            j.alone.step_time_s,
            j.shared.step_time_s,
            j.slowdown(),
            j.alone.breakdown_s.dp_exposed,
            j.shared.breakdown_s.dp_exposed
        );
        assert!(j.slowdown() > 1.01, "{} slowed by {}", j.name, j.slowdown());
        // Compute is the same; what grows is exposed communication.
        assert_eq!(j.alone.breakdown_s.compute, j.shared.breakdown_s.compute);
    }
    // Background traffic on the uplinks slows both jobs further.
    let b = run(&load(&["background.leaf_spine=0.5"]));
    for (a, b) in r.jobs.iter().zip(&b.jobs) {
        assert!(b.shared.step_time_s > a.shared.step_time_s, "{}", a.name);
    }
}

#[test]
fn placement_policies() {
    let nodes = |r: &JobsResult| r.jobs.iter().map(|j| j.nodes.clone()).collect::<Vec<_>>();
    // Random: drawn from the seed, reproducible, and a different seed draws differently.
    let a = nodes(&run(&load(&["placement=random", "faults.seed=1"])));
    let a2 = nodes(&run(&load(&["placement=random", "faults.seed=1"])));
    assert_eq!(a, a2);
    let others: Vec<_> = (2..6)
        .map(|seed| {
            nodes(&run(&load(&[
                "placement=random",
                &format!("faults.seed={seed}"),
            ])))
        })
        .collect();
    assert!(others.iter().any(|o| *o != a), "{a:?} {others:?}");
    let mut all: Vec<u32> = a.concat();
    all.sort();
    assert_eq!(all, (0..8).collect::<Vec<u32>>());
    // Explicit lists are kept in rank order; the other jobs take what is left.
    let e = nodes(&run(&load(&[
        "jobs=[{name: a, nodes: [7, 5, 3, 1]}, {name: b, gpus: 32}]",
        "placement=packed",
    ])));
    assert_eq!(e, vec![vec![7, 5, 3, 1], vec![0, 2, 4, 6]]);
}

/// A step of one data-parallel all-reduce of `bytes` over `dp` ranks, nothing else.
fn one_all_reduce(bytes: u64, dp: u64) -> (StepGraph, RankGrid) {
    let mut stage = StageProgram::default();
    stage.graph.add_node(Op {
        category: Category::Dp,
        stream: Stream::Dp,
        duration: 0,
        comm: Some(0),
        micro_batch: 0,
        chunk: 0,
        layers: (u16::MAX, u16::MAX),
        label: "all-reduce",
    });
    let graph = StepGraph {
        stages: vec![stage],
        comms: vec![Comm {
            collective: Collective::AllReduce,
            group: GroupRef::Axes(GroupMask::DP),
            bytes,
            category: Category::Dp,
            ops: vec![(0, 0)],
        }],
        micro_batches: 1,
    };
    let grid = RankGrid::new(&toy_scenario(1, 1, dp, 2, dp).parallelism);
    (graph, grid)
}

#[test]
fn rings_sharing_an_oversubscribed_uplink_slow_by_max_min() {
    // One GPU and one 400 Gb/s NIC per node; 8-port leaves: 4 nodes down, and at 4:1
    // oversubscription one uplink of 4 x port / 4 = one port's bandwidth. Job A rings
    // nodes 0 and 4, job B nodes 1 and 5: both rings cross leaf 0's and leaf 1's single
    // uplink (both directions), each on its own NIC links.
    let mut c = dgx_h100_ndr(8);
    c.node.gpus = 1;
    c.node.nics = 1;
    c.node.nvlink_domain = 1;
    c.fabric.kind = FabricKind::FatTree;
    c.fabric.tiers = 2;
    c.fabric.switch_radix = 8;
    c.fabric.oversubscription = 4.0;
    let settings = NetworkSettings {
        algorithm: AlgorithmChoice::Ring,
        ..Default::default()
    };
    let mut net = FlowNetwork::new(&c, settings);
    let bytes: u64 = 1 << 30;
    let (graph, grid) = one_all_reduce(bytes, 2);
    let speeds = RankSpeeds::uniform();
    let none = TraceRanks::None;
    let (a, b) = ([0u32, 4], [1u32, 5]);
    let job = |gpus: &'static [u32]| SharedJob {
        step: &graph,
        grid: &grid,
        speeds: &speeds,
        trace: &none,
        gpus,
    };
    let a: &'static [u32] = Box::leak(Box::new(a));
    let b: &'static [u32] = Box::leak(Box::new(b));

    // The hand derivation, from the links' capacities.
    let topo = net.topology().clone();
    let nic = topo.nic_port_links(0).unwrap().0 as usize;
    assert_eq!(topo.kind[nic], LinkKind::NicLeaf);
    let up = (0..topo.links())
        .find(|&l| topo.kind[l] == LinkKind::LeafSpine)
        .unwrap();
    assert_eq!(topo.fabric.leaf_up, 1, "one uplink per leaf");
    let (cap_nic, cap_up) = (topo.cap[nic], topo.cap[up]);
    // A 2-rank ring all-reduce moves 2 (n - 1) / n x S = S through every ring edge
    // (nccl-tests' bus bytes), over the protocol's efficiency; plus its latency.
    let choice = net.choice(Collective::AllReduce, bytes, &[0, 4]);
    let edge_bytes = bytes as f64 / choice.bw_factor;
    // Alone: the ring's bottleneck is the slower of its NIC port and the uplink.
    // Shared: max-min gives each of the two rings half the uplink (both are limited
    // there: half the uplink is below the NIC port), the NIC ports stay their own.
    let alone_rate = cap_nic.min(cap_up);
    let shared_rate = cap_nic.min(cap_up / 2.0);
    let expect = |rate: f64| choice.latency_s + edge_bytes / rate;
    let (e_alone, e_shared) = (expect(alone_rate), expect(shared_rate));

    let alone_a = replay_shared(&[job(a)], &mut net.clone()).unwrap();
    let alone_b = replay_shared(&[job(b)], &mut net.clone()).unwrap();
    let shared = replay_shared(&[job(a), job(b)], &mut net).unwrap();
    let secs = |t: u64| t as f64 * 1e-9;
    println!(
        "uplink {:.1} GB/s, NIC {:.1} GB/s: alone {:.6} s (expected {e_alone:.6}), shared {:.6} s (expected {e_shared:.6})",
        cap_up / 1e9,
        cap_nic / 1e9,
        secs(alone_a[0].step_time),
        secs(shared[0].step_time)
    );
    for (r, e) in [
        (&alone_a[0], e_alone),
        (&alone_b[0], e_alone),
        (&shared[0], e_shared),
        (&shared[1], e_shared),
    ] {
        assert!(
            (secs(r.step_time) - e).abs() < 3e-9,
            "{} s vs {e} s",
            secs(r.step_time)
        );
    }
    assert!(shared[0].step_time > alone_a[0].step_time);
}

#[test]
fn the_binary_refuses_what_jobs_do_not_model_and_respects_the_budget() {
    let out = std::env::temp_dir().join(format!("clustersim-jobs-{}", std::process::id()));
    let o = out.to_str().unwrap();
    let bin = |args: &[&str], env: Option<(&str, &str)>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_clustersim"));
        c.args(args);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        c.output().expect("the binary starts")
    };
    // Analytic mode cannot show jobs slowing each other: refused, flag or file.
    let r = bin(
        &["run", SCENARIO, "--out", o, "--network", "analytic"],
        None,
    );
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("contention"));
    // The other commands work on one job's scenario.
    let r = bin(&["plan", SCENARIO, "--out", o], None);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("jobs:"));
    // Both jobs' replays (alone and shared) count against the step budget.
    let small = Some(("CLUSTERSIM_MAX_STEP_EVENTS", "1000"));
    let r = bin(&["run", SCENARIO, "--out", o], small);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("too large"));
    let r = bin(&["run", SCENARIO, "--out", o, "--replay", "all"], small);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["jobs"]["jobs"].as_array().unwrap().len(), 2);
    assert!(summary["jobs"]["shared_links"].as_u64().unwrap() > 0);
    assert!(out.join("links-timeseries.csv").is_file());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_checkpoint_background_writes_its_bytes_to_storage_and_slows_the_jobs() {
    // Ten nodes: the jobs take eight, node 9 is storage; every job GPU writes its share
    // of 20 GB per node to the GPU of the same index on node 9.
    let plain = run(&load(&["cluster.nodes=10"]));
    let s = load(&[
        "cluster.nodes=10",
        "background={checkpoint_gb_per_node: 20, storage_nodes: [9]}",
    ]);
    let r = run(&s);
    assert!(r.jobs.iter().all(|j| !j.nodes.contains(&9)));
    let topo = r.network.topology();
    let counters = r.network.counters();
    let per_gpu = 20e9 / 8.0;
    let mut probe = FlowNetwork::new(&s.cluster, NetworkSettings::default());
    let factor = probe
        .choice(Collective::SendRecv, per_gpu as u64, &[0, 72])
        .bw_factor;
    // Into storage: 64 job GPUs' writes, and nothing else goes to node 9.
    let into_storage: f64 = (72..80)
        .map(|g| counters.bytes[topo.nic_port_links(g).unwrap().1 as usize])
        .sum();
    let expected = 64.0 * per_gpu / factor;
    assert!(
        (into_storage / expected - 1.0).abs() < 1e-9,
        "{into_storage} vs {expected}"
    );
    for (a, b) in plain.jobs.iter().zip(&r.jobs) {
        println!(
            "{}: alone {:.4} -> {:.4} s with the checkpoint write",
            a.name, a.alone.step_time_s, b.alone.step_time_s
        );
        assert!(b.alone.step_time_s > a.alone.step_time_s, "{}", a.name);
    }
    // The jobs' shared links count their own traffic only, not the background's.
    assert_eq!(r.shared_link_count, plain.shared_link_count);
}
