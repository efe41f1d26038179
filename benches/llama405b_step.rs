//! One training step of Llama-3-405B on 16,384 H100s (TP8 PP16 DP128, seq 8192, global
//! batch 2048) replayed over the contention network (the fabric's default, adaptive
//! routing on this InfiniBand fabric; destination-mod-k; hashed ECMP as on RoCE: issue
//! 13's budget is 10 s for that one), and over the analytic fast mode for comparison. Prints wall and CPU times and step times. Run: `cargo bench
//! --bench llama405b_step`.

use std::time::Instant;

use clustersim::faults::LinkFaults;
use clustersim::network::{AnalyticNetwork, Ecmp, NetworkMode, Routing};
use clustersim::sim::{StepOptions, simulate_step_faulty, simulate_step_on};

/// CPU seconds this process has used (Linux `/proc/self/stat` utime + stime, 100 Hz
/// ticks): wall time is unreliable on a shared machine.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    let mut s = clustersim::fixtures::llama3_405b_16k();
    s.cluster.nodes = 2048;
    s.cluster.name = "dgx-h100-16k".into();
    let opts = StepOptions::default();

    let (t, c0) = (Instant::now(), cpu_s());
    let mut fast = AnalyticNetwork::new(&s.cluster);
    let r = simulate_step_on(&s, &opts, &mut fast).expect("fast mode");
    println!(
        "analytic network: step {:.3} s, MFU {:.1} %, {} events; wall {:.2} s, cpu {:.2} s",
        r.metrics.step_time_s,
        r.metrics.mfu * 100.0,
        r.metrics.events,
        t.elapsed().as_secs_f64(),
        cpu_s() - c0
    );

    // The contention network as `clustersim run` builds it for `network: {mode: contention}`,
    // then with `routing: {ecmp: dest-mod}` and `routing: {ecmp: hash}`.
    s.network.mode = NetworkMode::Contention;
    let static_routing = |ecmp| Routing {
        ecmp,
        adaptive: false,
        ..s.network.routing
    };
    let routings = [
        Routing::for_fabric(s.cluster.fabric.transport, s.cluster.fabric.kind),
        static_routing(Ecmp::DestMod),
        static_routing(Ecmp::Hash),
    ];
    for routing in routings {
        s.network.routing = routing;
        let (t, c0) = (Instant::now(), cpu_s());
        let (r, net) = simulate_step_faulty(&s, &opts, &LinkFaults::none()).expect("detailed mode");
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_s() - c0;
        let flows = net.flows().expect("contention mode");
        let counts: Vec<String> = clustersim::network::contention::ALGORITHMS
            .iter()
            .zip(flows.algorithm_counts)
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| format!("{}={n}", a.label()))
            .collect();
        println!(
            "contention network, routing {}: step {:.3} s, MFU {:.1} %, {} events, collectives [{}]; wall {wall:.2} s, cpu {cpu:.2} s",
            routing.label(),
            r.metrics.step_time_s,
            r.metrics.mfu * 100.0,
            r.metrics.events,
            counts.join(" ")
        );
    }
}
