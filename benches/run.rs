//! A 54-day run on 16,384 GPUs (Llama-3-405B-like: TP8 PP16 DP128) with default failure
//! rates, persistent and transient stragglers, a degraded NIC and async checkpoints.
//!
//! `cargo bench --bench run` prints the wall time of the run loop and the peak RSS (VmHWM).
//! By default step times come from a fixed 20 s healthy step scaled by the slowest GPU, so
//! the figure is the run simulation alone. With `CLUSTERSIM_BENCH_SIMULATE=1` every distinct
//! cluster state is simulated by the step engine at full scale (16,384 ranks) behind the
//! cache; the bench then reports the step simulations' time separately (each state once)
//! from the run loop's.

use std::time::Instant;

use clustersim::faults::{LinkFaultSpec, StragglerSpec};
use clustersim::fixtures::toy_scenario;
use clustersim::model::FfnKind;
use clustersim::run::{self, CheckpointMode, CheckpointSpec, RunOptions, RunSetup, RunSpec};

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "VmHWM: n/a".into())
}

/// User + system CPU seconds of this process, all threads (`/proc/self/stat`, 100 Hz).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn scenario() -> clustersim::config::Scenario {
    let mut s = toy_scenario(8, 16, 128, 128, 2048);
    s.name = "bench-16k".into();
    s.model.hidden = 16_384;
    s.model.heads = 128;
    s.model.kv_heads = 8;
    s.model.ffn_hidden = 53_248;
    s.model.ffn = FfnKind::Swiglu;
    s.model.vocab = 128_256;
    s.training.seq_len = 8192;
    s.faults.seed = 2024;
    s.faults.stragglers = vec![
        StragglerSpec {
            fraction: 0.005,
            slowdown: 1.1,
            slowdown_max: Some(1.3),
            ..Default::default()
        },
        StragglerSpec {
            rate_per_gpu_day: 0.01,
            duration: "20m".into(),
            slowdown: 1.5,
            ..Default::default()
        },
    ];
    s.faults.links = vec![LinkFaultSpec {
        ranks: vec![4321],
        nic_factor: 0.5,
        ..Default::default()
    }];
    s.checkpoint = Some(CheckpointSpec {
        every: Some("1h".into()),
        mode: CheckpointMode::Async,
        ..Default::default()
    });
    s.run = Some(RunSpec {
        duration: Some("54d".into()),
        ..Default::default()
    });
    s
}

fn main() {
    let s = scenario();
    let setup = RunSetup::new(&s, &RunOptions::default()).expect("setup");
    let fixed = std::env::var_os("CLUSTERSIM_BENCH_SIMULATE").is_none();
    let report = if fixed {
        let t0 = Instant::now();
        let r = run::simulate_setup(&setup, &run::ScaledStepTime(20.0), false).expect("run");
        println!(
            "run loop (fixed step time): {:.3} s",
            t0.elapsed().as_secs_f64()
        );
        r
    } else {
        let grid = clustersim::plan::RankGrid::new(&s.parallelism);
        let steps = run::CachedStepTimes::new(|st: &clustersim::faults::StepState| {
            let t = Instant::now();
            let step = run::simulate_state(&s, &grid, st);
            eprintln!(
                "  state {st:?}: {:.2} s to simulate",
                t.elapsed().as_secs_f64()
            );
            step
        });
        // First pass fills the step-time cache (one step simulation per distinct state, the
        // states simulated in parallel)...
        let (t0, c0) = (Instant::now(), cpu_s());
        run::simulate_setup(&setup, &steps, false).expect("run");
        let (first, first_cpu) = (t0.elapsed().as_secs_f64(), cpu_s() - c0);
        // ...the second pass is the run loop alone.
        let (t1, c1) = (Instant::now(), cpu_s());
        let r = run::simulate_setup(&setup, &steps, false).expect("run");
        let (loop_s, loop_cpu) = (t1.elapsed().as_secs_f64(), cpu_s() - c1);
        println!(
            "step simulations: {} distinct states, {:.2} s wall, {:.2} s CPU ({} threads)",
            steps.len(),
            first - loop_s,
            first_cpu - loop_cpu,
            rayon::current_num_threads()
        );
        println!(
            "run loop (cached step times): {loop_s:.3} s; first run incl. step sims: {first:.2} s wall, {first_cpu:.2} s CPU"
        );
        r
    };
    let m = &report.summary;
    println!(
        "16,384 GPUs, 54 d: {} interruptions, {} events, goodput {:.4}, healthy step {:.2} s, {} checkpoints",
        m.interruptions,
        report.events.len(),
        m.goodput,
        m.step_time_s,
        m.checkpoints
    );
    println!("{}", vm_hwm());
}
