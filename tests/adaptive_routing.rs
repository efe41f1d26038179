//! Adaptive routing (`network.routing.adaptive`, issue 13): every flow spreads evenly over
//! the equal-cost uplinks (InfiniBand adaptive routing, Spectrum-X), so no two flows
//! collide. For the same traffic, in both network modes: adaptive equals the
//! collision-free closed form (the bytes that cross a tier over the tier's total
//! bandwidth) and is never slower than hashed ECMP for any seed.

use clustersim::fixtures::cluster;
use clustersim::hardware::{ClusterSpec, FabricKind};
use clustersim::network::nccl::NIC_EFFICIENCY;
use clustersim::network::{
    AlgorithmChoice, AnalyticNetwork, Completion, Ecmp, FlowNetwork, Network, NetworkSettings,
    Routing, Transfer,
};
use clustersim::schedule::{Category, Collective};

const GIB: u64 = 1 << 30;

fn adaptive() -> Routing {
    Routing {
        adaptive: true,
        ..Routing::default()
    }
}

fn hashed(seed: u64) -> Routing {
    Routing {
        ecmp: Ecmp::Hash,
        seed,
        ..Routing::default()
    }
}

/// Contention mode: every group runs `coll` at once; the time the last one finishes.
fn together(spec: &ClusterSpec, routing: Routing, coll: Collective, groups: &[Vec<u32>]) -> f64 {
    let mut net = FlowNetwork::new(
        spec,
        NetworkSettings {
            algorithm: AlgorithmChoice::Ring,
            routing,
        },
    );
    for (i, g) in groups.iter().enumerate() {
        let t = Transfer {
            id: i as u64,
            collective: coll,
            bytes: GIB,
            members: g,
            category: Category::Dp,
        };
        assert_eq!(net.begin(0, &t), Completion::Pending);
    }
    let (mut done, mut end) = (Vec::new(), 0);
    while done.len() < groups.len() {
        end = net.next_event().expect("pending");
        net.advance(end, &mut done);
    }
    end as f64 * 1e-9
}

/// Analytic mode: each group with its stage's siblings (the other groups) counted; the
/// slowest.
fn analytic(spec: &ClusterSpec, routing: Routing, coll: Collective, groups: &[Vec<u32>]) -> f64 {
    let gpus = (spec.nodes * spec.node.gpus) as u32;
    let mut net = AnalyticNetwork::with_algorithm(spec, AlgorithmChoice::Ring)
        .with_routing(routing)
        .with_stage_size(gpus, gpus);
    groups
        .iter()
        .map(|g| net.collective_time_s(coll, GIB, g))
        .fold(0.0, f64::max)
}

fn latency(spec: &ClusterSpec, coll: Collective, group: &[u32]) -> f64 {
    let mut net = FlowNetwork::new(
        spec,
        NetworkSettings {
            algorithm: AlgorithmChoice::Ring,
            routing: adaptive(),
        },
    );
    net.choice(coll, GIB, group).latency_s
}

fn close(t: f64, expected: f64, what: &str) {
    assert!(
        (t / expected - 1.0).abs() < 1e-6,
        "{what}: {t} s vs closed form {expected} s"
    );
}

/// Checks both modes against `closed` under adaptive routing, and hashed ECMP (seeds 0 to
/// 63) against adaptive; returns how many seeds were strictly slower.
fn check(spec: &ClusterSpec, coll: Collective, groups: &[Vec<u32>], closed: f64) -> usize {
    let a = together(spec, adaptive(), coll, groups);
    close(a, closed, "contention, adaptive");
    let f = analytic(spec, adaptive(), coll, groups);
    close(f, closed, "analytic, adaptive");
    let mut slower = 0;
    for seed in 0..64 {
        let h = together(spec, hashed(seed), coll, groups);
        let hf = analytic(spec, hashed(seed), coll, groups);
        assert!(
            h >= a * (1.0 - 1e-9),
            "seed {seed}: hashed {h} < adaptive {a}"
        );
        assert!(
            hf >= f * (1.0 - 1e-9),
            "seed {seed}: analytic hashed {hf} < {f}"
        );
        slower += usize::from(h > a * (1.0 + 1e-6));
    }
    slower
}

#[test]
fn adaptive_sends_across_an_oversubscribed_leaf_take_the_collision_free_time() {
    // One GPU and NIC per node, 8-port switches: 4 nodes per leaf, 2 uplinks (2:1), each
    // uplink one NIC's rate. Four sends leaf 0 -> leaf 1 share the two uplinks: S over half
    // a NIC each.
    let mut spec = cluster("h100-sxm", 8, 1, 0.0, 400.0, FabricKind::FatTree, 2.0);
    spec.fabric.switch_radix = 8;
    let groups: Vec<Vec<u32>> = (0..4).map(|i| vec![i, 4 + i]).collect();
    let nic = 50e9 * NIC_EFFICIENCY;
    let lat = latency(&spec, Collective::SendRecv, &groups[0]);
    let closed = lat + GIB as f64 / (2.0 * nic / 4.0);
    let slower = check(&spec, Collective::SendRecv, &groups, closed);
    println!("sends: hashed ECMP slower than adaptive for {slower} of 64 seeds");
    assert!(slower > 0, "some seed puts three sends on one uplink");
}

#[test]
fn adaptive_ring_all_reduces_across_a_three_tier_fabric_take_the_collision_free_time() {
    // 32 nodes of 8 H100s, one node per leaf (16-port switches: 8 NICs, 8 uplinks at
    // 1:1), 8 leaves per pod, pods joined 2:1 (a pod's 64 spine uplinks carry half its
    // leaves' bandwidth). The 8 rail rings of a TP-8 plan's data-parallel groups run at
    // once; every ring edge leaves its leaf (8 flows over a leaf's 8 uplinks), and one edge
    // per ring leaves each pod (8 flows over spine uplinks worth 32 NICs): spread evenly,
    // neither tier is the bottleneck, so each ring moves at its NICs' rate, 2 (n-1)/n x S
    // over each.
    let mut spec = cluster("h100-sxm", 32, 8, 450.0, 400.0, FabricKind::FatTree, 1.0);
    spec.fabric.switch_radix = 16;
    spec.fabric.tiers = 3;
    spec.fabric.spine_oversubscription = 2.0;
    let groups: Vec<Vec<u32>> = (0..8)
        .map(|r| (0..32).map(|n| n * 8 + r).collect())
        .collect();
    let nic = 50e9 * NIC_EFFICIENCY;
    let lat = latency(&spec, Collective::AllReduce, &groups[0]);
    let closed = lat + 2.0 * 31.0 / 32.0 * GIB as f64 / nic;
    let slower = check(&spec, Collective::AllReduce, &groups, closed);
    println!("rings: hashed ECMP slower than adaptive for {slower} of 64 seeds");
    assert!(slower > 0, "hashing collides somewhere");
}

/// The routing a scenario gets without a `routing:` section is its fabric's
/// (`Routing::for_fabric`): adaptive on InfiniBand (NVIDIA's subnet manager and NCCL both
/// default to it), hashed ECMP on RoCE (seed 0), destination-mod-k on a single switch
/// (which has no uplinks to choose among); stating a static key
/// (`ecmp`, `seed`, `flows_per_connection`) turns the adaptive default off, and stating
/// `adaptive` wins.
#[test]
fn each_fabric_routes_as_its_kind_does_by_default() {
    let routing = |cluster: &str, network: &str| {
        let text = format!(
            "model: llama3-8b\ncluster: {cluster}\ntraining: {{ seq_len: 2048, global_batch: 16 }}\n\
             parallelism: {{ tp: 8, pp: 1, dp: 2 }}\n{network}"
        );
        clustersim::config::load_scenario_str("t", &text, &[])
            .unwrap_or_else(|e| panic!("{cluster} {network}: {e}"))
            .network
            .routing
    };
    let ib = "{ from: dgx-h100-ndr, nodes: 2 }";
    let roce = "{ from: dgx-h100-ndr, nodes: 2, fabric: { transport: roce } }";
    let single = "{ from: dgx-h100-ndr, nodes: 2, fabric: { kind: single-switch } }";
    assert_eq!(routing(ib, ""), adaptive());
    assert_eq!(routing(roce, ""), hashed(0));
    assert_eq!(
        routing(roce, "network: { routing: { ecmp: dest-mod } }"),
        Routing::default()
    );
    assert_eq!(routing(single, ""), Routing::default());
    let dest_mod = "network: { routing: { ecmp: dest-mod } }";
    assert_eq!(routing(ib, dest_mod), Routing::default());
    assert_eq!(
        routing(ib, "network: { routing: { ecmp: hash, seed: 3 } }"),
        {
            Routing {
                seed: 3,
                ..hashed(3)
            }
        }
    );
    let off = "network: { routing: { adaptive: false } }";
    assert_eq!(routing(ib, off), Routing::default());
    let on = "network: { routing: { adaptive: true } }";
    // Adaptive routing replaces the ECMP policy (RoCE's hash stays recorded, unread).
    let roce_adaptive = routing(roce, on);
    assert!(roce_adaptive.adaptive, "{roce_adaptive:?}");
    assert_eq!(roce_adaptive.label(), "adaptive");
}
