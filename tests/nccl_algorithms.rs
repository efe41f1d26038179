//! NCCL's algorithms beyond ring / tree / NVLS all-reduce (issue 13): NVLS all-gather and
//! reduce-scatter (NCCL 2.19+), PAT (NCCL 2.23+, one GPU per node) and InfiniBand SHARP
//! (CollNetDirect / CollNetChain). Each: its time alone against the α–β closed form derived
//! by hand from `src/network/nccl.rs`'s cited constants (NVIDIA/nccl v2.23.4-1
//! `src/graph/tuning.cc`) and the link capacities, the tuner's automatic choice, and the
//! analytic mode agreeing with the contention mode on it.

use clustersim::fixtures::cluster;
use clustersim::hardware::{ClusterSpec, FabricKind};
use clustersim::network::nccl::{Algorithm, NIC_EFFICIENCY, NVLINK_EFFICIENCY, Protocol};
use clustersim::network::{AlgorithmChoice, AnalyticNetwork, FlowNetwork, NetworkSettings};
use clustersim::schedule::Collective;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn h100(nodes: u64, nic_gbps: f64) -> ClusterSpec {
    cluster(
        "h100-sxm",
        nodes,
        8,
        450.0,
        nic_gbps,
        FabricKind::RailOptimized,
        1.0,
    )
}

fn net(spec: &ClusterSpec, a: AlgorithmChoice) -> FlowNetwork {
    FlowNetwork::new(
        spec,
        NetworkSettings {
            algorithm: a,
            ..Default::default()
        },
    )
}

/// Time alone in both modes; they must agree (same plan, idle fabric).
fn both(spec: &ClusterSpec, a: AlgorithmChoice, c: Collective, s: u64, m: &[u32]) -> f64 {
    let t = net(spec, a).time_alone_s(c, s, m);
    let fast = AnalyticNetwork::with_algorithm(spec, a).collective_time_s(c, s, m);
    assert!(
        (fast / t - 1.0).abs() < 1e-6,
        "{c:?} {a:?}: analytic {fast} vs contention {t}"
    );
    t
}

fn close(t: f64, expected: f64, what: &str) {
    assert!(
        (t / expected - 1.0).abs() < 1e-6,
        "{what}: {:.3} us vs closed form {:.3} us",
        t * 1e6,
        expected * 1e6
    );
}

#[test]
fn nvls_all_gather_and_reduce_scatter_follow_their_closed_form_and_lose_to_ring() {
    let spec = h100(1, 400.0);
    let m: Vec<u32> = (0..8).collect();
    let s = GIB as f64;
    // NVLS at the all-reduce-calibrated efficiency (0.6038 of 450 GB/s): all-gather
    // receives S on each downlink (sends S/8), reduce-scatter sends S (receives S/8);
    // latency hwLat[NVLINK][NVLS][Simple] = 25 us.
    let nvls_bw = 450e9 * 0.6038;
    let ring_bw = 450e9 * NVLINK_EFFICIENCY;
    for c in [Collective::AllGather, Collective::ReduceScatter] {
        let t = both(&spec, AlgorithmChoice::Nvls, c, GIB, &m);
        close(t, 25e-6 + s / nvls_bw, &format!("{c:?} nvls"));
        let mut n = net(&spec, AlgorithmChoice::Nvls);
        let ch = n.choice(c, GIB, &m);
        assert_eq!(
            (ch.algorithm, ch.protocol),
            (Algorithm::Nvls, Protocol::Simple)
        );
        // Ring: (n-1)/n S each way; latency 8.4 + 7 x 3.4 us (Simple).
        let ring = both(&spec, AlgorithmChoice::Ring, c, GIB, &m);
        close(
            ring,
            (8.4 + 7.0 * 3.4) * 1e-6 + 7.0 / 8.0 * s / ring_bw,
            "ring",
        );
        assert!(ring < t, "ring moves fewer bytes on the busiest link");
        // The tuner keeps ring for these (NVIDIA/nccl issue 1670), at 1 MB and 1 GiB.
        let mut auto = net(&spec, AlgorithmChoice::Auto);
        for size in [MIB, GIB] {
            assert_eq!(
                auto.choice(c, size, &m).algorithm,
                Algorithm::Ring,
                "{size}"
            );
        }
    }
    // Forcing NVLS across nodes does not apply (NVLS all-gather is one domain): ring.
    let spec = h100(2, 400.0);
    let m: Vec<u32> = (0..16).collect();
    let mut n = net(&spec, AlgorithmChoice::Nvls);
    assert_eq!(
        n.choice(Collective::AllGather, GIB, &m).algorithm,
        Algorithm::Ring
    );
}

#[test]
fn pat_follows_its_closed_form_and_the_tuner_takes_it_for_small_messages_at_one_gpu_per_node() {
    // 16 nodes, GPU 0 of each: rail 0, one leaf (1 switch hop).
    let spec = h100(16, 400.0);
    let m: Vec<u32> = (0..16).map(|i| i * 8).collect();
    let s = GIB as f64;
    let nic = 50e9 * NIC_EFFICIENCY;
    // Latency 8 + log2(16) x (14 + 1)/3.5 + 16 x 2.8 us; the four steps send 1+2+4+8 =
    // 15 shards of S/16 through every NIC, at 0.85 of its rate.
    let alpha = (8.0 + 4.0 * 15.0 / 3.5 + 16.0 * 2.8) * 1e-6;
    for c in [Collective::AllGather, Collective::ReduceScatter] {
        let t = both(&spec, AlgorithmChoice::Pat, c, GIB, &m);
        close(
            t,
            alpha + 15.0 / 16.0 * s / (0.85 * nic),
            &format!("{c:?} pat"),
        );
        let mut auto = net(&spec, AlgorithmChoice::Auto);
        let small = auto.choice(c, MIB, &m);
        assert_eq!(
            (small.algorithm, small.protocol),
            (Algorithm::Pat, Protocol::Simple)
        );
        close(small.latency_s, alpha, "pat latency");
        // At 1 GiB the ring's bandwidth (no 0.85) outweighs its 15 network steps.
        assert_eq!(auto.choice(c, GIB, &m).algorithm, Algorithm::Ring);
    }
    // Not at 8 GPUs per node (NCCL: nNodes != nRanks), nor for all-reduce.
    let all: Vec<u32> = (0..128).collect();
    let mut pat = net(&spec, AlgorithmChoice::Pat);
    assert_eq!(
        pat.choice(Collective::AllGather, MIB, &all).algorithm,
        Algorithm::Ring
    );
    assert_ne!(
        pat.choice(Collective::AllReduce, MIB, &m).algorithm,
        Algorithm::Pat
    );
}

#[test]
fn sharp_collnet_follows_its_closed_form_and_only_where_the_fabric_reduces() {
    // 16 nodes with 100 Gb/s NICs (so the NIC, not NVLink, is the bottleneck of SHARP).
    let mut spec = h100(16, 100.0);
    let m: Vec<u32> = (0..128).collect();
    let s = GIB as f64;
    let nic = 12.5e9 * NIC_EFFICIENCY;
    let nvl = 450e9 * NVLINK_EFFICIENCY;
    // Without SHARP the algorithms do not apply (forcing falls back to ring).
    let mut plain = net(&spec, AlgorithmChoice::CollnetDirect);
    assert_eq!(
        plain.choice(Collective::AllReduce, GIB, &m).algorithm,
        Algorithm::Ring
    );
    let mut auto = net(&spec, AlgorithmChoice::Auto);
    for size in [MIB, GIB] {
        let a = auto.choice(Collective::AllReduce, size, &m).algorithm;
        assert!(!matches!(
            a,
            Algorithm::CollNetDirect | Algorithm::CollNetChain
        ));
    }
    spec.fabric.sharp = true;
    // Rails cross leaves: 3 switch hops of 1 us. CollNetDirect: latency 2 (3.7 + 7 x 0.4)
    // + 31 + 3 us; each GPU's shard S/8 goes up and down its NIC once (the switches
    // reduce), at 0.85 (Hopper); the domain's reduce-scatter + all-gather (2 x 7/8 S on
    // NVLink) is faster.
    let t = both(
        &spec,
        AlgorithmChoice::CollnetDirect,
        Collective::AllReduce,
        GIB,
        &m,
    );
    let direct_alpha = (2.0 * (3.7 + 7.0 * 0.4) + 31.0 + 3.0) * 1e-6;
    assert!(2.0 * 7.0 / 8.0 * s / nvl < s / 8.0 / nic);
    close(t, direct_alpha + s / 8.0 / nic / 0.85, "collnet-direct");
    // CollNetChain: latency 2 x 7 x 2.8 + 30 + 3 us, the same NIC term at full rate.
    let t = both(
        &spec,
        AlgorithmChoice::CollnetChain,
        Collective::AllReduce,
        GIB,
        &m,
    );
    let chain_alpha = (2.0 * 7.0 * 2.8 + 30.0 + 3.0) * 1e-6;
    close(t, chain_alpha + s / 8.0 / nic, "collnet-chain");
    // The ring's NIC term is 2 (N-1)/N x S/8 per NIC: SHARP halves it (almost).
    let ring = both(&spec, AlgorithmChoice::Ring, Collective::AllReduce, GIB, &m);
    assert!(t < ring * 0.6, "sharp {t} vs ring {ring}");
    // The tuner: SHARP at 1 MB (direct: lowest latency) and at 1 GiB (chain: no 0.85).
    let mut auto = net(&spec, AlgorithmChoice::Auto);
    let small = auto.choice(Collective::AllReduce, MIB, &m);
    assert_eq!(small.algorithm, Algorithm::CollNetDirect);
    close(small.latency_s, direct_alpha, "collnet-direct latency");
    assert_eq!(
        auto.choice(Collective::AllReduce, GIB, &m).algorithm,
        Algorithm::CollNetChain
    );
    // Inside one node nothing crosses the switches: no CollNet.
    let node: Vec<u32> = (0..8).collect();
    let a = auto.choice(Collective::AllReduce, GIB, &node).algorithm;
    assert!(!matches!(
        a,
        Algorithm::CollNetDirect | Algorithm::CollNetChain
    ));
}

#[test]
fn sharp_trees_climb_only_as_high_as_the_group_spans() {
    use clustersim::network::Topology;
    use clustersim::network::topology::LinkKind;
    // A three-tier fat tree of 8-port switches: 4 NICs per leaf, 4 leaves per pod.
    let mut spec = h100(8, 400.0);
    spec.fabric.kind = FabricKind::FatTree;
    spec.fabric.tiers = 3;
    spec.fabric.switch_radix = 8;
    spec.fabric.sharp = true;
    let topo = Topology::new(&spec);
    let mut scratch = Vec::new();
    let kinds = |gpus: &[u32]| {
        let mut out = Vec::new();
        topo.sharp_tree(gpus, 0, &mut scratch.clone(), &mut out);
        let mut k: Vec<LinkKind> = out.iter().map(|&l| topo.kind[l as usize]).collect();
        k.dedup();
        (out.len(), k)
    };
    // Two NICs on one leaf: their cables only.
    let (n, k) = kinds(&[0, 1]);
    assert_eq!((n, k), (4, vec![LinkKind::NicLeaf]));
    // Two leaves of one pod: plus each leaf's cable to the tree's spine.
    let (n, k) = kinds(&[0, 4]);
    assert_eq!((n, k), (8, vec![LinkKind::NicLeaf, LinkKind::LeafSpine]));
    // Two pods: plus each pod's spine cable to the tree's core.
    let (n, _) = kinds(&[0, 16]);
    assert_eq!(n, 12);
    scratch.clear();
}
