//! Run-level behaviour: Daly's optimum, 1/N MTBF scaling, reproducibility, accounting.

use clustersim::config::Scenario;
use clustersim::faults::{ClassSpec, FaultsSpec};
use clustersim::fixtures::toy_scenario;
use clustersim::run::sweep::{log_grid, quadratic_fit};
use clustersim::run::{
    self, CheckpointSpec, RunOptions, RunSetup, RunSpec, ScaledStepTime, daly_interval,
};

/// A scenario whose only failure process is `class` with per-component MTBF `mtbf`.
fn scenario_with(gpus: u64, mtbf: &str, gpu_class: bool) -> Scenario {
    let mut s = toy_scenario(8, 1, gpus / 8, 8, 8 * gpus / 8);
    let off = ClassSpec {
        per_1000_node_days: Some(0.0),
        ..Default::default()
    };
    let on = ClassSpec {
        mtbf: Some(mtbf.into()),
        ..Default::default()
    };
    let mut f = FaultsSpec::default();
    f.failures.gpu = if gpu_class { on.clone() } else { off.clone() };
    f.failures.node = if gpu_class { off.clone() } else { on };
    f.failures.gpu_memory = off.clone();
    f.failures.nic = off.clone();
    f.failures.link = off.clone();
    f.failures.switch = off;
    f.failures.detection = "1m".into();
    f.failures.restart = "4m".into();
    s.faults = f;
    s.checkpoint = Some(CheckpointSpec {
        write_time: Some("2m".into()),
        load_time: Some("1m".into()),
        ..Default::default()
    });
    s
}

/// With exponential failures and synchronous checkpoints, the goodput-maximising interval
/// found by simulation is within 5 % of Daly's formula, for job MTBF from 15 minutes to a
/// day. Noise control: every interval sees the same failure times (common random numbers),
/// each MTBF gets ~6000 failures (16 replicas x 375 MTBFs), and the optimum is the vertex of
/// a parabola fitted in ln(interval) to 13 points from 0.5x to 2x Daly's interval. Daly's
/// formula is within 0.1 % of the exact optimum of this model (a renewal model with failures
/// also during checkpoints and restarts), so a 5 % miss means the simulator is wrong.
#[test]
fn simulated_optimum_matches_daly() {
    for mtbf in ["15m", "1h", "4h", "1d"] {
        let mut s = scenario_with(8, mtbf, false);
        let m = clustersim::units::parse_duration_s(mtbf).unwrap();
        s.run = Some(RunSpec {
            duration: Some(format!("{}s", 375.0 * m)),
            ..Default::default()
        });
        let setup = RunSetup::new(&s, &RunOptions::default()).unwrap();
        assert_eq!(setup.mtbi_s(), m);
        let daly = daly_interval(120.0, m);
        let grid = log_grid(daly / 2.0, daly * 2.0, 13);
        let curve =
            run::sweep::goodput_curve(&setup, &ScaledStepTime(1.0), &grid, 16, false).unwrap();
        let u: Vec<f64> = grid.iter().map(|x| x.ln()).collect();
        let y: Vec<f64> = curve.iter().map(|p| p.goodput.mean).collect();
        let (a, b, _) = quadratic_fit(&u, &y);
        assert!(a < 0.0, "{mtbf}: goodput curve is not concave: {y:?}");
        let optimum = (-b / (2.0 * a)).exp();
        let err = optimum / daly - 1.0;
        eprintln!(
            "MTBF {mtbf}: simulated optimum {optimum:.0} s, Daly {daly:.0} s, error {:+.2} %",
            err * 100.0
        );
        assert!(err.abs() < 0.05, "{mtbf}: optimum {optimum} vs Daly {daly}");
    }
}

/// Independent GPU failures: job MTBF = per-GPU MTBF / N. Measured over ~3000 failures per
/// size (relative error ~2 %); also draws the log-log chart.
#[test]
fn job_mtbf_falls_as_one_over_n() {
    let per_gpu_h = 50_000.0;
    let mut points = Vec::new();
    for gpus in [8u64, 64, 512, 4096] {
        let mut s = scenario_with(gpus, "50000h", true);
        let job_mtbf_s = per_gpu_h * 3600.0 / gpus as f64;
        s.run = Some(RunSpec {
            duration: Some(format!("{}s", 3000.0 * job_mtbf_s)),
            ..Default::default()
        });
        s.checkpoint.as_mut().unwrap().every = Some("never".into());
        let r = run::simulate_run(&s, &ScaledStepTime(1.0), &RunOptions::default()).unwrap();
        let mtbf_h = r.summary.mean_time_between_interruptions_h.unwrap();
        let ratio = mtbf_h * gpus as f64 / per_gpu_h;
        eprintln!("{gpus} GPUs: job MTBF {mtbf_h:.1} h, x N / per-GPU MTBF = {ratio:.3}");
        assert!((ratio - 1.0).abs() < 0.08, "{gpus} GPUs: {ratio}");
        points.push((gpus as f64, mtbf_h));
    }
    let x: Vec<f64> = points.iter().map(|p| p.0.ln()).collect();
    let y: Vec<f64> = points.iter().map(|p| p.1.ln()).collect();
    let (xm, ym) = (x.iter().sum::<f64>() / 4.0, y.iter().sum::<f64>() / 4.0);
    let slope = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - xm) * (b - ym))
        .sum::<f64>()
        / x.iter().map(|a| (a - xm).powi(2)).sum::<f64>();
    assert!((slope + 1.0).abs() < 0.03, "log-log slope {slope}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    clustersim::report::charts::run::mtbf_chart(dir, &points).unwrap();
    assert!(dir.join("mtbf_vs_gpus.png").exists());
}

fn busy_scenario(every: &str) -> Scenario {
    let mut s = toy_scenario(8, 4, 8, 32, 64);
    s.faults.seed = 11;
    s.faults.failures.spares = Some(2);
    s.faults.failures.lemons.fraction = 0.1;
    s.faults.stragglers = vec![clustersim::faults::StragglerSpec {
        rate_per_gpu_day: 0.05,
        duration: "30m".into(),
        slowdown: 1.2,
        slowdown_max: Some(2.0),
        ..Default::default()
    }];
    s.checkpoint = Some(CheckpointSpec {
        every: Some(every.into()),
        ..Default::default()
    });
    s.run = Some(RunSpec {
        duration: Some("60d".into()),
        ..Default::default()
    });
    s
}

fn failure_times(csv: &str) -> Vec<String> {
    csv.lines()
        .filter(|l| l.contains(",failure,") || l.contains(",straggler_start,"))
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn same_seed_same_bytes_and_interval_keeps_failure_times() {
    let src = ScaledStepTime(2.0);
    let csv = |every: &str| {
        let r = run::simulate_run(&busy_scenario(every), &src, &RunOptions::default()).unwrap();
        run::report::events_csv(&r.events)
    };
    let a = csv("1h");
    assert_eq!(a, csv("1h"), "same seed, different bytes");
    let b = csv("20m");
    assert_ne!(a, b);
    let (fa, fb) = (failure_times(&a), failure_times(&b));
    assert!(fa.len() > 50, "{} failures", fa.len());
    assert_eq!(fa, fb, "changing the checkpoint interval moved failures");
    let mut s = busy_scenario("1h");
    s.faults.seed = 12;
    let r = run::simulate_run(&s, &src, &RunOptions::default()).unwrap();
    assert_ne!(failure_times(&run::report::events_csv(&r.events)), fa);
}

#[test]
fn time_adds_up_and_replicas_ignore_thread_count() {
    let s = busy_scenario("1h");
    let src = ScaledStepTime(2.0);
    let r = run::simulate_run(&s, &src, &RunOptions::default()).unwrap();
    let m = &r.summary;
    let parts =
        m.productive_time_h + m.rework_hours + m.checkpoint_overhead_hours + m.restart_hours;
    assert!((parts / m.wall_time_h - 1.0).abs() < 1e-9, "{m:?}");
    assert!((m.wall_time_h - 60.0 * 24.0).abs() < 1e-6);
    assert!(m.goodput > 0.5 && m.goodput < 1.0, "{}", m.goodput);
    assert!(m.straggler_overhead_hours > 0.0);
    assert_eq!(
        m.interruptions,
        m.interruptions_by_cause.values().sum::<u64>()
    );
    let opts = RunOptions {
        replicas: Some(6),
        ..Default::default()
    };
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let one = pool(1).install(|| run::simulate_run(&s, &src, &opts).unwrap());
    let two = pool(3).install(|| run::simulate_run(&s, &src, &opts).unwrap());
    assert_eq!(one.stats, two.stats);
    let st = one.stats.unwrap();
    assert!(st.goodput.ci95_low < st.goodput.mean && st.goodput.mean < st.goodput.ci95_high);
}

#[test]
fn no_failures_costs_only_checkpoints_and_tokens_report_time() {
    let mut s = scenario_with(8, "1h", false);
    s.faults.failures.enabled = false;
    s.checkpoint = Some(CheckpointSpec {
        every: Some("1h".into()),
        write_time: Some("60s".into()),
        ..Default::default()
    });
    let tokens_per_step = (s.training.global_batch * s.training.seq_len) as f64;
    s.run = Some(RunSpec {
        tokens: Some(tokens_per_step * 36_000.0),
        ..Default::default()
    });
    // 36,000 steps of 1 s = 10 h of training, 9 full checkpoints in between (the tenth is
    // due at the very end and not taken).
    let r = run::simulate_run(&s, &ScaledStepTime(1.0), &RunOptions::default()).unwrap();
    let m = &r.summary;
    assert_eq!(m.interruptions, 0);
    assert_eq!(m.checkpoints, 9);
    assert!(
        (m.time_to_train_tokens_h.unwrap() - (10.0 + 9.0 / 60.0)).abs() < 1e-6,
        "{m:?}"
    );
    assert!((m.goodput - 10.0 / (10.0 + 0.15)).abs() < 1e-9);
}

#[test]
fn async_checkpoints_stall_less_and_spares_avoid_repair_waits() {
    let mut s = busy_scenario("1h");
    s.faults.stragglers.clear();
    let src = ScaledStepTime(2.0);
    let sync = run::simulate_run(&s, &src, &RunOptions::default())
        .unwrap()
        .summary;
    s.checkpoint.as_mut().unwrap().mode = run::CheckpointMode::Async;
    let asy = run::simulate_run(&s, &src, &RunOptions::default())
        .unwrap()
        .summary;
    assert!(asy.checkpoint_overhead_hours < sync.checkpoint_overhead_hours);
    s.faults.failures.spares = Some(0);
    let none = run::simulate_run(&s, &src, &RunOptions::default())
        .unwrap()
        .summary;
    // Without spares every failure waits the 24 h repair.
    assert!(none.restart_hours > asy.restart_hours + 20.0 * (none.interruptions as f64 - 5.0));
}

/// The run-level event estimate by hand: 64 GPUs = 8 nodes with a 100 h node MTBF fail
/// 8/100 per hour; a 1000 h run has 80 failures, 2 x 1000 checkpoint events at 1 h and
/// 1002 samples. Over the event limit it is refused before any run, naming the keys.
#[test]
fn run_event_estimate_by_hand() {
    let mut s = scenario_with(64, "100h", false);
    s.run = Some(RunSpec {
        duration: Some("1000h".into()),
        ..Default::default()
    });
    let setup = RunSetup::new(&s, &RunOptions::default()).unwrap();
    let e = setup.expected_events(1.0, 3600.0);
    assert!((e.wall_s - 3.6e6).abs() < 1e-6, "{e:?}");
    assert!((e.failures - 80.0).abs() < 1e-9, "{e:?}");
    assert!((e.checkpoints - 2000.0).abs() < 1e-9, "{e:?}");
    assert_eq!(e.episodes, 0.0);
    assert!((e.total() - (80.0 + 2000.0 + 1002.0)).abs() < 1e-9);
    // 1,000,000 replicas x 3082 events = 3.082e9, above the default 1e9.
    let mut many = setup.clone();
    let err = many
        .check_work(1.0, &[3600.0], 1_000_000, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3082000000") && err.contains("CLUSTERSIM_MAX_RUN_EVENTS"),
        "{err}"
    );
    assert!(
        err.contains("run.duration") && err.contains("checkpoint.every"),
        "{err}"
    );
    // 10,000 replicas fit; each run's share of the budget is 1e9 / 10,000 = 100,000
    // (twice the expected 3082 events is less).
    let mut some = setup.clone();
    some.check_work(1.0, &[3600.0], 10_000, false).unwrap();
    assert_eq!(some.max_events_per_run, 100_000);
    // The recorded run keeps its events: above 2e6 of them it is refused.
    let err = setup
        .clone()
        .check_work(1.0, &[1.0], 1, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CLUSTERSIM_MAX_RUN_CSV_ROWS"), "{err}");
    // A duration shorter than one step is refused.
    let err = setup
        .clone()
        .check_work(3.6e7, &[3600.0], 1, true)
        .unwrap_err();
    assert!(err.to_string().contains("shorter than one step"), "{err}");
}

/// A run of steps that failures outpace is refused before it starts (Daly's expected wall
/// time is unbounded), where it used to run until its share of the event budget; a run
/// whose events outgrow its share (an estimate gone wrong) still stops with that message.
#[test]
fn runs_that_failures_outpace_are_refused_up_front_and_overruns_stop() {
    let mut s = scenario_with(64, "1m", false);
    s.run = Some(RunSpec {
        steps: Some(1000),
        ..Default::default()
    });
    let mut setup = RunSetup::new(&s, &RunOptions::default()).unwrap();
    // 8 nodes failing every minute each: one failure every 7.5 s, each costing more.
    assert!(
        setup.expected_wall_s(1.0, 3600.0).is_infinite()
            || setup.expected_wall_s(1.0, 3600.0) > 1e12
    );
    let err = setup
        .check_work(1.0, &[3600.0], 1, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failures arrive faster than the job makes progress"),
        "{err}"
    );
    // Where checkpoints and restarts are short against the MTBF, Daly's expected wall time
    // is Young's first-order one: W (1 + δ/τ + (τ/2 + R)/M).
    let mut s1 = scenario_with(64, "100h", false);
    s1.run = Some(RunSpec {
        steps: Some(1_000_000),
        ..Default::default()
    });
    let calm = RunSetup::new(&s1, &RunOptions::default()).unwrap();
    let (work, tau) = (1e6, 600.0);
    let m = 100.0 * 3600.0 / 8.0;
    let r = calm.model.detection_s + calm.model.restart_s + calm.cost.load_s;
    let young = work * (1.0 + calm.cost.stall_s() / tau + (tau / 2.0 + r) / m);
    let daly = calm.expected_wall_s(1.0, tau);
    assert!(
        (daly / young - 1.0).abs() < 0.01,
        "Daly {daly} vs Young {young}"
    );
    let mut s2 = scenario_with(64, "100h", false);
    s2.run = Some(RunSpec {
        duration: Some("1000h".into()),
        ..Default::default()
    });
    let mut tight = RunSetup::new(&s2, &RunOptions::default()).unwrap();
    tight.check_work(1.0, &[3600.0], 1, false).unwrap();
    tight.max_events_per_run = 10;
    let err = tight
        .simulate_one(&ScaledStepTime(1.0), 0, 3600.0, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("its share of the limit"), "{err}");
}
