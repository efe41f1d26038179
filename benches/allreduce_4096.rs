//! 64 MB all-reduce over 4,096 GPUs (512 nodes x 8) on the flow-level network, alone and
//! with 8 concurrent DP-style all-reduces contending for the fabric. Prints wall times.
//! Run: `cargo bench --bench allreduce_4096`.

use std::time::Instant;

use clustersim::fixtures::cluster;
use clustersim::hardware::FabricKind;
use clustersim::network::{
    AlgorithmChoice, Completion, FlowNetwork, Network, NetworkSettings, Transfer,
};
use clustersim::schedule::{Category, Collective};

fn main() {
    let spec = cluster(
        "h100-sxm",
        512,
        8,
        450.0,
        400.0,
        FabricKind::RailOptimized,
        1.0,
    );
    let members: Vec<u32> = (0..4096).collect();
    let bytes = 64 << 20;
    for alg in [AlgorithmChoice::Auto, AlgorithmChoice::Ring] {
        let t0 = Instant::now();
        let mut net = FlowNetwork::new(
            &spec,
            NetworkSettings {
                algorithm: alg,
                ..Default::default()
            },
        );
        let built = t0.elapsed();
        let t1 = Instant::now();
        let sim = net.time_alone_s(Collective::AllReduce, bytes, &members);
        let run = t1.elapsed();
        let c = net.choice(Collective::AllReduce, bytes, &members);
        println!(
            "64 MB all-reduce, 4096 GPUs, {:?} -> {}/{}: simulated {:.1} us; wall {:.1} ms (+ {:.1} ms topology build)",
            alg,
            c.algorithm.label(),
            c.protocol.label(),
            sim * 1e6,
            run.as_secs_f64() * 1e3,
            built.as_secs_f64() * 1e3
        );
    }
    // Contention: eight 512-GPU rail-strided groups (one GPU per node, like DP groups under
    // TP8) all-reduce 64 MB at once, sharing leaves and spines.
    let mut net = FlowNetwork::new(&spec, NetworkSettings::default());
    let groups: Vec<Vec<u32>> = (0..8)
        .map(|r| (0..512).map(|n| n * 8 + r).collect())
        .collect();
    let t1 = Instant::now();
    for (i, g) in groups.iter().enumerate() {
        let t = Transfer {
            id: i as u64,
            collective: Collective::AllReduce,
            bytes,
            members: g,
            category: Category::Dp,
        };
        assert_eq!(net.begin(0, &t), Completion::Pending);
    }
    let mut done = Vec::new();
    let mut end = 0;
    while done.len() < groups.len() {
        end = net.next_event().expect("pending");
        net.advance(end, &mut done);
    }
    println!(
        "8 concurrent 64 MB all-reduces over 512 GPUs each (4096 GPUs): simulated {:.1} us; wall {:.1} ms",
        end as f64 * 1e-3,
        t1.elapsed().as_secs_f64() * 1e3
    );
}
