//! Plan-search fast-mode throughput: plans evaluated per second (memory model + closed
//! form step time), sequentially and with rayon, for GPT-3 175B on 1,024 A100 and Llama-3
//! 70B on 1,024 H100. Target: >= 2,000 plans/s on a 2-core machine.
//!
//! `cargo bench --bench plan`

use std::time::Instant;

use clustersim::config::Scenario;
use clustersim::network::AnalyticNetwork;
use clustersim::sweep::{fixtures, plan};

fn bench(name: &str, s: &Scenario) {
    let opts = plan::PlanOptions::for_scenario(s, 0);
    let gpus = s.cluster.total_gpus();
    let points = plan::candidates(s, &opts.space, gpus);
    let mut net = AnalyticNetwork::new(&s.cluster);
    let rounds = 5;
    let t = Instant::now();
    let mut sink = 0.0;
    for _ in 0..rounds {
        for p in &points {
            sink += plan::evaluate_fast(s, p, &mut net).fast.step_time_s;
        }
    }
    let seq = (rounds * points.len()) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut fits = 0;
    for _ in 0..rounds {
        fits = plan::search_fast(s, &opts).expect("search").rows.len();
    }
    let par = (rounds * points.len()) as f64 / t.elapsed().as_secs_f64();
    println!(
        "{name}: {} plans ({fits} fit): {seq:.0} plans/s sequential, {par:.0} plans/s with \
         rayon ({} threads) [checksum {sink:.3}]",
        points.len(),
        rayon::current_num_threads()
    );
}

fn main() {
    println!("plan search fast mode (target >= 2,000 plans/s)");
    bench("gpt3-175b on 1024 a100", &fixtures::gpt3_175b_1k_a100());
    bench("llama3-70b on 1024 h100", &fixtures::llama3_70b_1k());
}
