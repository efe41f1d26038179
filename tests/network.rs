//! Closed-form and property tests of the detailed (flow) network and its agreement with the
//! fast analytic mode.

use clustersim::fixtures::cluster;
use clustersim::hardware::{ClusterSpec, FabricKind};
use clustersim::network::flows::FlowSolver;
use clustersim::network::nccl::{self, NIC_EFFICIENCY, NVLINK_EFFICIENCY, Protocol};
use clustersim::network::{
    AlgorithmChoice, AnalyticNetwork, Completion, FlowNetwork, Network, NetworkSettings, Topology,
    Transfer,
};
use clustersim::schedule::{Category, Collective};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;

fn h100(nodes: u64) -> ClusterSpec {
    cluster(
        "h100-sxm",
        nodes,
        8,
        450.0,
        400.0,
        FabricKind::RailOptimized,
        1.0,
    )
}

fn forced(spec: &ClusterSpec, a: AlgorithmChoice) -> FlowNetwork {
    FlowNetwork::new(
        spec,
        NetworkSettings {
            algorithm: a,
            ..Default::default()
        },
    )
}

fn busbw(coll: Collective, bytes: u64, n: usize, t: f64) -> f64 {
    bytes as f64 / t * nccl::busbw_factor(coll, n as u32) / 1e9
}

#[test]
fn ring_all_reduce_without_contention_equals_alpha_beta() {
    let spec = h100(1);
    let mut net = forced(&spec, AlgorithmChoice::Ring);
    let members: Vec<u32> = (0..8).collect();
    let s = GIB;
    let t = net.time_alone_s(Collective::AllReduce, s, &members);
    let c = net.choice(Collective::AllReduce, s, &members);
    assert_eq!(c.protocol, Protocol::Simple);
    let b = 450e9 * NVLINK_EFFICIENCY;
    // alpha: NCCL ring latency 8.4 us + 2(n-1) steps x 3.4 us on NVLink.
    let alpha = (8.4 + 14.0 * 3.4) * 1e-6;
    let expected = alpha + 2.0 * 7.0 / 8.0 * s as f64 / b;
    assert!((t / expected - 1.0).abs() < 1e-6, "{t} vs {expected}");

    // One GPU per node on one leaf: the NIC is the beta term.
    let spec = h100(8);
    let mut net = forced(&spec, AlgorithmChoice::Ring);
    let members: Vec<u32> = (0..8).map(|i| i * 8).collect();
    let t = net.time_alone_s(Collective::AllReduce, s, &members);
    let b = 50e9 * NIC_EFFICIENCY;
    let alpha = (8.4 + 14.0 * (14.0 + 1.0)) * 1e-6;
    let expected = alpha + 2.0 * 7.0 / 8.0 * s as f64 / b;
    assert!((t / expected - 1.0).abs() < 1e-6, "{t} vs {expected}");
}

#[test]
fn small_messages_are_latency_bound() {
    let spec = h100(4);
    let mut net = FlowNetwork::new(&spec, NetworkSettings::default());
    let members: Vec<u32> = (0..32).collect();
    let c = net.choice(Collective::AllReduce, 1024, &members);
    let t = net.time_alone_s(Collective::AllReduce, 1024, &members);
    assert_ne!(c.protocol, Protocol::Simple, "small messages use LL/LL128");
    assert!(
        c.latency_s / t > 0.9,
        "latency {:.1} us of {:.1} us",
        c.latency_s * 1e6,
        t * 1e6
    );
    let big = net.choice(Collective::AllReduce, 4 * GIB, &members);
    assert_eq!(big.protocol, Protocol::Simple);
}

#[test]
fn two_equal_sends_sharing_a_nic_get_half_each() {
    let spec = h100(3);
    let mut net = FlowNetwork::new(&spec, NetworkSettings::default());
    let alone = net.time_alone_s(Collective::SendRecv, GIB, &[0, 8]);
    let (m1, m2) = ([0u32, 8], [0u32, 16]);
    let mut done = Vec::new();
    for (id, m) in [(1u64, &m1[..]), (2, &m2[..])] {
        let t = Transfer {
            id,
            collective: Collective::SendRecv,
            bytes: GIB,
            members: m,
            category: Category::Pp,
        };
        assert_eq!(net.begin(0, &t), Completion::Pending);
    }
    let mut end = 0;
    while done.len() < 2 {
        end = net.next_event().unwrap();
        net.advance(end, &mut done);
    }
    let lat = net.choice(Collective::SendRecv, GIB, &m1).latency_s;
    let shared = end as f64 * 1e-9;
    let ratio = (shared - lat) / (alone - lat);
    assert!((ratio - 2.0).abs() < 1e-6, "ratio {ratio}");
}

#[test]
fn two_to_one_oversubscription_halves_cross_leaf_all_reduce() {
    // One node per leaf (16-port switches: 8 NICs down), so every inter-node ring edge
    // crosses the leaf uplinks.
    let fabric = |os: f64| {
        let mut c = cluster("h100-sxm", 2, 8, 450.0, 400.0, FabricKind::FatTree, os);
        c.fabric.switch_radix = 16;
        c
    };
    let members: Vec<u32> = (0..16).collect();
    let s = 4 * GIB;
    let bw = |os| {
        let mut net = forced(&fabric(os), AlgorithmChoice::Ring);
        busbw(
            Collective::AllReduce,
            s,
            16,
            net.time_alone_s(Collective::AllReduce, s, &members),
        )
    };
    let (full, half) = (bw(1.0), bw(2.0));
    println!("full bisection {full:.1} GB/s, 2:1 {half:.1} GB/s");
    assert!((full / half - 2.0).abs() < 0.02, "{full} / {half}");
    // The analytic mode sees the same halving.
    let fast = |os| {
        let mut net = AnalyticNetwork::with_algorithm(&fabric(os), AlgorithmChoice::Ring);
        net.collective_time_s(Collective::AllReduce, s, &members)
    };
    assert!((fast(2.0) / fast(1.0) - 2.0).abs() < 0.02);
}

fn nvl72(racks: u64) -> ClusterSpec {
    let mut c = cluster(
        "gb200",
        racks * 18,
        4,
        900.0,
        400.0,
        FabricKind::RailOptimized,
        1.0,
    );
    c.node.nvlink_domain = 72;
    c
}

#[test]
fn nvl72_beats_8_gpu_nodes_on_all_to_all_by_the_bandwidth_ratio() {
    let members: Vec<u32> = (0..64).collect();
    let s = GIB;
    let mut big = FlowNetwork::new(&nvl72(1), NetworkSettings::default());
    let t72 = big.time_alone_s(Collective::AllToAll, s, &members);
    let mut small_nodes = cluster("gb200", 8, 8, 900.0, 400.0, FabricKind::RailOptimized, 1.0);
    small_nodes.node.nvlink_domain = 8;
    let mut net8 = FlowNetwork::new(&small_nodes, NetworkSettings::default());
    let t8 = net8.time_alone_s(Collective::AllToAll, s, &members);
    // Bottlenecks: 63/64 of S over NVLink vs 56/64 of S over one NIC.
    let nvl = 900e9 * NVLINK_EFFICIENCY;
    let nic = 50e9 * NIC_EFFICIENCY;
    let expected = (56.0 / nic) / (63.0 / nvl);
    let ratio = t8 / t72;
    println!(
        "NVL72 {:.2} ms, 8-GPU nodes {:.2} ms, ratio {ratio:.2} (bandwidth ratio {expected:.2})",
        t72 * 1e3,
        t8 * 1e3
    );
    assert!(
        (ratio / expected - 1.0).abs() < 0.05,
        "{ratio} vs {expected}"
    );
}

#[test]
fn fast_mode_agrees_with_detailed_mode_without_contention() {
    // Tolerance: 5 % (the two differ only where ECMP routing or uneven groups bite).
    let cases: Vec<(ClusterSpec, Collective, Vec<u32>)> = vec![
        (h100(1), Collective::AllReduce, (0..8).collect()),
        (h100(16), Collective::AllReduce, (0..128).collect()),
        (
            h100(16),
            Collective::AllReduce,
            (0..16).map(|i| i * 8).collect(),
        ),
        (h100(4), Collective::AllGather, (0..32).collect()),
        (h100(4), Collective::ReduceScatter, (0..32).collect()),
        (h100(8), Collective::AllToAll, (0..64).collect()),
        (h100(2), Collective::SendRecv, vec![3, 11]),
        (nvl72(2), Collective::AllReduce, (0..144).collect()),
    ];
    for (spec, coll, members) in cases {
        for bytes in [64 << 10, 16 << 20, GIB] {
            let mut detailed = FlowNetwork::new(&spec, NetworkSettings::default());
            let td = detailed.time_alone_s(coll, bytes, &members);
            let tf = AnalyticNetwork::new(&spec).collective_time_s(coll, bytes, &members);
            let c = detailed.choice(coll, bytes, &members);
            assert!(
                (tf / td - 1.0).abs() < 0.05,
                "{} {coll:?} n={} {bytes} B ({}): fast {tf:e} s vs detailed {td:e} s",
                spec.name,
                members.len(),
                c.algorithm.label()
            );
        }
    }
}

#[test]
fn topology_builds_for_131072_gpus_compactly() {
    let mut spec = cluster(
        "h100-sxm",
        16384,
        8,
        450.0,
        400.0,
        FabricKind::ClosPods,
        1.0,
    );
    spec.fabric.pod_gpus = Some(3072);
    spec.fabric.pod_oversubscription = 7.0;
    spec.fabric.tiers = 3;
    let start = std::time::Instant::now();
    let topo = Topology::new(&spec);
    let el = start.elapsed();
    println!(
        "131072 GPUs: {} links, {} pods, {} leaves, built in {el:?}",
        topo.links(),
        topo.fabric.pods,
        topo.fabric.leaves
    );
    assert_eq!(topo.gpus, 131072);
    assert!(topo.fabric.pods > 1);
    assert!(topo.links() < 2_000_000);
    let mut path = Vec::new();
    topo.route(0, 131071, &mut path);
    assert_eq!(
        path.len(),
        6,
        "NIC, leaf, spine, core, spine, leaf: {path:?}"
    );
    // Crossing pods costs a 1:7 tier: cross-pod all-reduce bandwidth drops accordingly.
    let g = topo.graph();
    assert_eq!(g.edge_count(), topo.links());
}

#[test]
fn pcie_workstation_routes_through_the_host() {
    let mut spec = cluster("rtx-4090", 1, 8, 0.0, 100.0, FabricKind::SingleSwitch, 1.0);
    spec.node.pcie_gbs = 32.0;
    let mut net = FlowNetwork::new(&spec, NetworkSettings::default());
    let members: Vec<u32> = (0..8).collect();
    let t = net.time_alone_s(Collective::AllReduce, GIB, &members);
    let bw = busbw(Collective::AllReduce, GIB, 8, t);
    assert!(bw > 20.0 && bw < 26.0, "PCIe ring busbw {bw}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn max_min_respects_capacities_and_starves_no_flow(
        caps in prop::collection::vec(1.0f64..100.0, 1..12),
        flows in prop::collection::vec(prop::collection::vec(0usize..12, 1..6), 1..30),
    ) {
        let n = caps.len();
        let mut s = FlowSolver::new(caps.iter().map(|c| c * 1e9).collect());
        let mut ids = Vec::new();
        for f in &flows {
            let path: Vec<u32> = f.iter().map(|&l| (l % n) as u32).collect();
            ids.push((s.add_flow(0, &path, 1e6, 0), path));
        }
        s.recompute(0);
        let mut load = vec![0.0; n];
        for (id, path) in &ids {
            let r = s.rate(*id);
            prop_assert!(r > 0.0, "flow {id} starved");
            for &l in path {
                load[l as usize] += r;
            }
        }
        for (l, &used) in load.iter().enumerate() {
            prop_assert!(used <= s.capacity(l as u32) * (1.0 + 1e-9), "link {l} over capacity");
        }
        // Max-min: every flow is bottlenecked on a saturated link where it has the top rate.
        for (id, path) in &ids {
            let r = s.rate(*id);
            let ok = path.iter().any(|&l| {
                let sat = load[l as usize] >= s.capacity(l) * (1.0 - 1e-9);
                let top = ids.iter().filter(|(_, p)| p.contains(&l)).all(|(o, _)| s.rate(*o) <= r * (1.0 + 1e-9));
                sat && top
            });
            prop_assert!(ok, "flow {id} has no bottleneck link");
        }
    }

    #[test]
    fn more_bandwidth_never_slows_a_collective(
        nodes in 1u64..6,
        coll_i in 0usize..5,
        log_bytes in 10u32..31,
        scale in 1.0f64..4.0,
        which in 0usize..2,
    ) {
        let coll = [Collective::AllReduce, Collective::AllGather, Collective::ReduceScatter,
                    Collective::AllToAll, Collective::SendRecv][coll_i];
        let n = nodes * 8;
        let members: Vec<u32> = if coll == Collective::SendRecv {
            vec![0, (n - 1) as u32]
        } else {
            (0..n as u32).collect()
        };
        let base = h100(nodes);
        let mut faster = base.clone();
        if which == 0 { faster.node.nic_gbps *= scale } else { faster.node.nvlink_gbs *= scale }
        let bytes = 1u64 << log_bytes;
        let t0 = FlowNetwork::new(&base, NetworkSettings::default()).time_alone_s(coll, bytes, &members);
        let t1 = FlowNetwork::new(&faster, NetworkSettings::default()).time_alone_s(coll, bytes, &members);
        prop_assert!(t1 <= t0 * (1.0 + 1e-6), "{coll:?} {bytes} B: {t1} > {t0}");
    }
}

#[test]
fn step_traffic_is_recorded_per_link() {
    use clustersim::fixtures::toy_scenario;
    use clustersim::sim::{StepOptions, simulate_step_on};
    let s = toy_scenario(8, 2, 4, 8, 16);
    let mut net = FlowNetwork::new(&s.cluster, NetworkSettings::default());
    let r = simulate_step_on(&s, &StepOptions::default(), &mut net).unwrap();
    let fast = clustersim::sim::simulate_step(&s, &StepOptions::default()).unwrap();
    let (td, tf) = (r.metrics.step_time_s, fast.metrics.step_time_s);
    println!("toy step: detailed {td:.4} s, fast {tf:.4} s");
    assert!((td / tf - 1.0).abs() < 0.10, "detailed {td} vs fast {tf}");
    let step = r.replay.step_time;
    net.finish_accounting(step);
    let mut csv = Vec::new();
    net.write_links_csv(step, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    assert!(text.starts_with(
        "id,kind,src,dst,capacity_gbs,bytes,busy_fraction,utilization,peak_flows,peak_utilization"
    ));
    assert!(
        text.lines().count() > 64,
        "NVLink and NIC links carried traffic"
    );
    assert!(text.contains(",nvlink,gpu:0,domain:0,"));
    assert!(
        text.contains(",nic-leaf,"),
        "PP/DP traffic crossed the fabric"
    );
    for line in text.lines().skip(1) {
        let busy: f64 = line.split(',').nth(6).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&busy));
    }
    let m = net.utilization_matrix(step, 16);
    assert!(m.iter().any(|(_, row)| row.iter().any(|&u| u > 0.0)));
    let mut buf = vec![0u8; 200 * 100 * 3];
    {
        use plotters::prelude::*;
        let area = BitMapBackend::with_buffer(&mut buf, (200, 100)).into_drawing_area();
        clustersim::network::heatmap::draw_heatmap(&area, &m).unwrap();
        area.present().unwrap();
    }
    assert!(buf.iter().any(|&b| b != 255), "heat map drew something");
}

#[test]
fn ring_busbw_on_shipped_fat_trees_never_rises_with_gpu_count() {
    // 16 to 1,024 GPUs on each shipped fat tree (resized to 128 nodes), forced ring, 1 GiB.
    // Before whole nodes were cabled per leaf, a node straddling two leaves made two rail
    // flows share one destination-mod-k uplink at 64 GPUs (93 GB/s between 187 and 183).
    for name in ["fat-tree-a100-hdr-2to1", "dgx-a100-hdr"] {
        let path = format!("{}/topologies/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let mut spec = clustersim::config::load_topology(&path).unwrap();
        spec.nodes = 128;
        let mut last = f64::INFINITY;
        let mut n = 16u32;
        while n <= 1024 {
            let members: Vec<u32> = (0..n).collect();
            let mut net = forced(&spec, AlgorithmChoice::Ring);
            let t = net.time_alone_s(Collective::AllReduce, GIB, &members);
            let bw = busbw(Collective::AllReduce, GIB, n as usize, t);
            println!("{name} {n:>5} GPUs ring busbw {bw:.1} GB/s");
            assert!(
                bw <= last * (1.0 + 1e-9),
                "{name}: {n} GPUs {bw:.1} > {last:.1} GB/s"
            );
            last = bw;
            n *= 2;
        }
    }
}

/// With step concurrency counted (a stage's siblings), a pipeline send to a lower stage is
/// priced on the links it uses, as one to a higher stage: the backward pass's sends used
/// to be keyed by sorted member offsets, priced on the reverse links where the siblings put
/// no load, and cost only their latency (replay 1.3 % under fast mode on Llama 3 405B).
#[test]
fn pipeline_sends_cost_their_bandwidth_in_both_directions_under_stage_concurrency() {
    for kind in [FabricKind::RailOptimized, FabricKind::FatTree] {
        let spec = cluster("h100-sxm", 8, 8, 450.0, 400.0, kind, 2.0);
        let mut net = AnalyticNetwork::new(&spec).with_stage_size(16, 64);
        let bytes = 64 << 20;
        let nic_s = bytes as f64 / (400e9 / 8.0);
        for (a, b) in [(0, 16), (5, 21), (16, 48), (3, 51)] {
            let fwd = net.collective_time_s(Collective::SendRecv, bytes, &[a, b]);
            let bwd = net.collective_time_s(Collective::SendRecv, bytes, &[b, a]);
            assert!(
                fwd >= nic_s,
                "{kind:?} {a}->{b}: {fwd} s under the NIC's {nic_s} s"
            );
            assert_eq!(fwd.to_bits(), bwd.to_bits(), "{kind:?} {a}<->{b}");
        }
    }
}

/// Link multiplicity of a set of routes: the most sub-flows (weighted `1/k` each) any link
/// carries.
fn max_link_load(topo: &Topology, pairs: &[(u32, u32)], k: u32) -> f64 {
    let mut load = std::collections::HashMap::<u32, f64>::new();
    let mut path = Vec::new();
    for &(a, b) in pairs {
        for sub in 0..k {
            path.clear();
            topo.route_sub(a, b, sub, &mut path);
            for &l in &path {
                *load.entry(l).or_default() += 1.0 / k as f64;
            }
        }
    }
    load.values().copied().fold(0.0, f64::max)
}

/// Two leaves of two 8-GPU nodes each (32-port switches: 16 NICs down, 16 uplinks). A
/// cross-leaf shift permutation (GPU i to GPU i + 16) under destination-mod-k crosses 16
/// distinct uplinks: no link carries two flows. Hashed ECMP draws each flow's uplink: 16
/// flows in 16 bins collide unless the draw is a permutation (probability 16!/16^16 ≈
/// 1e-6), so every seed puts at least two flows on some uplink, the same one for the same
/// seed. Splitting each connection into 16 hashed flows spreads the load toward one
/// flow's worth per uplink (balls in bins: the heaviest of 16 bins holding 256 balls of
/// 1/16 is far below two whole flows): on average over seeds the heaviest link carries
/// less than with one flow per connection.
#[test]
fn hashed_ecmp_collides_where_destination_mod_k_does_not_and_split_flows_spread() {
    use clustersim::network::{Ecmp, Routing};
    let mut spec = h100(4);
    spec.fabric.kind = FabricKind::FatTree;
    spec.fabric.switch_radix = 32;
    let pairs: Vec<(u32, u32)> = (0..16).map(|i| (i, i + 16)).collect();
    let base = Topology::new(&spec);
    assert_eq!(max_link_load(&base, &pairs, 1), 1.0);
    let hashed = |seed, flows_per_connection| {
        Topology::new(&spec).with_routing(Routing {
            ecmp: Ecmp::Hash,
            seed,
            flows_per_connection,
            adaptive: false,
        })
    };
    let (mut one, mut split) = (0.0, 0.0);
    for seed in 0..20 {
        let m1 = max_link_load(&hashed(seed, 1), &pairs, 1);
        assert!(m1 >= 2.0, "seed {seed}: no collision among 16 hashed flows");
        assert_eq!(
            m1,
            max_link_load(&hashed(seed, 1), &pairs, 1),
            "reproducible"
        );
        one += m1;
        split += max_link_load(&hashed(seed, 16), &pairs, 16);
    }
    assert!(split < one, "16 flows per connection {split} vs one {one}");
    assert!(split / 20.0 < 2.0, "{}", split / 20.0);
}
