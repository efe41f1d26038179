//! Issue 13: ring all-reduce bus bandwidth on every shipped fat tree (each topology in
//! `topologies/` with a switched fabric, grown to at least 1,024 GPUs) never rises with the
//! GPU count from 16 to 1,024 (powers of two), measured as users see it: `clustersim
//! collective`'s library call ([`CollectiveSweep`], the flow-level model, the fabric's
//! default destination-mod-k routing), 1 GiB, `--algorithm ring`.
//!
//! One exception, not a routing effect: on GB200 NVL72 (72-GPU NVLink domains) a power of
//! two above 72 leaves a partial rack (512 = 7 x 72 + 8, 1,024 = 14 x 72 + 16). The
//! ring crosses every domain once per rail, so all 72 rail rings pass through the partial
//! rack's NICs: 9 per NIC at 512 GPUs, 5 at 1,024, and 512 GPUs run slower than 1,024. The
//! test allows a rise only where the point before it has a partial domain whose busiest
//! NIC carries more rail rings than the next point's (counted from the plan) and the same
//! rise shows under adaptive (collision-free) routing.
//!
//! Under hashed ECMP (as on RoCE fabrics) a step count can collide where its neighbours do
//! not, so the bandwidth may dip and recover. Every such dip must be a hash collision: the
//! same traffic under adaptive routing (collision-free) is monotone, and the hashed point
//! of the dip is slower than its adaptive twin. The table is printed.

use clustersim::CollectiveSweep;
use clustersim::hardware::{ClusterSpec, FabricKind};
use clustersim::network::collectives::{FlowPlan, Planner};
use clustersim::network::nccl::busbw_factor;
use clustersim::network::topology::LinkKind;
use clustersim::network::{
    Algorithm, AlgorithmChoice, Ecmp, FlowNetwork, NetworkSettings, Routing, Topology,
};
use clustersim::schedule::Collective;

const GIB: u64 = 1 << 30;

fn fat_trees() -> Vec<(String, ClusterSpec)> {
    let mut out = Vec::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("topologies/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for p in files {
        let mut spec = clustersim::config::load_topology(&p.to_string_lossy()).expect("loads");
        if spec.fabric.kind == FabricKind::SingleSwitch {
            continue;
        }
        spec.nodes = spec.nodes.max(1024u64.div_ceil(spec.node.gpus));
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        out.push((name, spec));
    }
    out
}

fn sizes() -> Vec<u32> {
    (4..=10).map(|k| 1u32 << k).collect()
}

/// What `clustersim collective --algorithm ring --sizes 1G:1G --gpus N` reports.
fn user_busbw(spec: &ClusterSpec, n: u32) -> f64 {
    let out = CollectiveSweep::from_cluster(spec.clone())
        .with_op(Collective::AllReduce)
        .with_gpus(n)
        .expect("enough GPUs")
        .with_sizes(GIB, GIB)
        .with_algorithm(AlgorithmChoice::Ring)
        .run();
    out.rows[0].busbw_gbs
}

fn routed_busbw(spec: &ClusterSpec, n: u32, routing: Routing) -> f64 {
    let mut net = FlowNetwork::new(
        spec,
        NetworkSettings {
            algorithm: AlgorithmChoice::Ring,
            routing,
        },
    );
    let members: Vec<u32> = (0..n).collect();
    let t = net.time_alone_s(Collective::AllReduce, GIB, &members);
    GIB as f64 / t * busbw_factor(Collective::AllReduce, n) / 1e9
}

/// Most ring flows on one NIC port in the ring plan over the first `n` GPUs.
fn rails_on_busiest_nic(spec: &ClusterSpec, n: u32) -> u32 {
    let topo = Topology::new(spec);
    let members: Vec<u32> = (0..n).collect();
    let mut plan = FlowPlan::default();
    Planner::default().unit_plan(&topo, Algorithm::Ring, &members, &mut plan);
    let mut count = vec![0u32; topo.links()];
    for f in &plan.flows {
        for &l in plan.flow_links(f) {
            count[l as usize] += 1;
        }
    }
    (0..topo.links())
        .filter(|&l| topo.kind[l] == LinkKind::NicLeaf)
        .map(|l| count[l])
        .max()
        .unwrap_or(0)
}

#[test]
fn ring_busbw_never_rises_with_gpu_count_on_shipped_fat_trees() {
    let trees = fat_trees();
    assert!(trees.len() >= 6, "{} fat trees", trees.len());
    let mut failures = Vec::new();
    for (name, spec) in &trees {
        let bws: Vec<f64> = sizes().iter().map(|&n| user_busbw(spec, n)).collect();
        let row: Vec<String> = bws.iter().map(|b| format!("{b:7.1}")).collect();
        println!("{name:<26} {}", row.join(" "));
        for (k, w) in bws.windows(2).enumerate() {
            let (lo, hi) = (sizes()[k], sizes()[k + 1]);
            let domain = spec.node.nvlink_domain as u32;
            let partial = lo > domain && !lo.is_multiple_of(domain);
            if w[1] > w[0] * (1.0 + 1e-9) && partial {
                let (r_lo, r_hi) = (
                    rails_on_busiest_nic(spec, lo),
                    rails_on_busiest_nic(spec, hi),
                );
                let adaptive = Routing {
                    adaptive: true,
                    ..Routing::default()
                };
                let (a_lo, a_hi) = (
                    routed_busbw(spec, lo, adaptive),
                    routed_busbw(spec, hi, adaptive),
                );
                println!(
                    "{name}: {hi} GPUs above {lo}: partial NVLink domain ({} GPUs) at {lo}, \
                     {r_lo} rail rings on its busiest NIC vs {r_hi} at {hi}; adaptive \
                     routing {a_lo:.1} vs {a_hi:.1} GB/s",
                    lo % domain
                );
                if r_lo > r_hi && a_hi > a_lo {
                    continue;
                }
            }
            if w[1] > w[0] * (1.0 + 1e-9) {
                failures.push(format!(
                    "{name}: {} GPUs {:.2} GB/s > {} GPUs {:.2} GB/s",
                    sizes()[k + 1],
                    w[1],
                    sizes()[k],
                    w[0]
                ));
            }
        }
    }
    println!("GPUs: {:?}", sizes());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn under_hashed_ecmp_every_dip_is_a_collision_that_adaptive_routing_removes() {
    let adaptive = Routing {
        adaptive: true,
        ..Routing::default()
    };
    let mut dips = 0;
    for (name, spec) in &fat_trees() {
        for seed in [0u64, 1] {
            let hashed = Routing {
                ecmp: Ecmp::Hash,
                seed,
                ..Routing::default()
            };
            let h: Vec<f64> = sizes()
                .iter()
                .map(|&n| routed_busbw(spec, n, hashed))
                .collect();
            let a: Vec<f64> = sizes()
                .iter()
                .map(|&n| routed_busbw(spec, n, adaptive))
                .collect();
            let domain = spec.node.nvlink_domain as u32;
            // The partial-rack points of the first test (not routing): a rise there shows
            // under adaptive routing too.
            let partial = |k: usize| {
                let n = sizes()[k];
                n > domain && !n.is_multiple_of(domain) && k + 1 < a.len() && a[k + 1] > a[k]
            };
            for k in 0..a.len() {
                assert!(
                    h[k] <= a[k] * (1.0 + 1e-9),
                    "{name} seed {seed}: hashed faster than adaptive at {} GPUs",
                    sizes()[k]
                );
                if k > 0 && !partial(k - 1) {
                    assert!(
                        a[k] <= a[k - 1] * (1.0 + 1e-9),
                        "{name}: adaptive rises at {} GPUs",
                        sizes()[k]
                    );
                }
                // A dip: lower than the next point.
                if k + 1 < a.len() && h[k] < h[k + 1] * (1.0 - 1e-9) && !partial(k) {
                    dips += 1;
                    println!(
                        "{name} seed {seed}: dip at {} GPUs, hashed {:.1} GB/s vs adaptive \
                         {:.1} (next point hashed {:.1}): a hash collision",
                        sizes()[k],
                        h[k],
                        a[k],
                        h[k + 1]
                    );
                    assert!(
                        h[k] < a[k] * (1.0 - 1e-6),
                        "{name} seed {seed}: dip at {} GPUs not explained by a collision",
                        sizes()[k]
                    );
                }
            }
        }
    }
    println!("{dips} dips under hashed ECMP, each a collision");
}
