//! Issue 13: the analytic (fast) network and the contention network agree on the same
//! traffic. For every shipped scenario and for every shipped topology (the default
//! scenario's model and plan spread over the whole topology), both models time one step;
//! the test prints the table and fails naming every case where they differ by more than
//! 5 %. Also the case the issue reported (Llama 3 70B, TP8 PP4 DP512 on the RoCE multi-pod
//! fabric: analytic 4.88 s vs contention 3.73 s before the analytic mode counted a stage's
//! concurrent flows on the links it shares).
//!
//! The plan search (issue 13): for two shipped scenarios, the top 10 plans as `clustersim
//! plan` ranks them (default grid) replayed in each mode, within the same 5 %.
//!
//! Not here: `frontier-dense-1m-b200` (contention cannot fold and is refused up front at a
//! million GPUs, `tests/million.rs`) and `frontier-moe-25k-h100` (about 120 s of CPU in
//! contention mode: the ignored test below, `cargo test --release --test
//! network_agreement -- --ignored`).

use std::path::Path;

use clustersim::config::{load_scenario, load_topology};
use clustersim::sim::{StepOptions, simulate_step};
use rayon::prelude::*;

/// Largest relative difference allowed between the two models' step times.
const BOUND: f64 = 0.05;

struct Case {
    name: String,
    file: String,
    sets: Vec<String>,
}

fn step_s(case: &Case, mode: &str) -> f64 {
    let mut sets = case.sets.clone();
    sets.push(format!("network.mode={mode}"));
    let s = load_scenario(Some(Path::new(&case.file)), &sets)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    simulate_step(&s, &StepOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
        .metrics
        .step_time_s
}

/// Runs every case in both modes, prints the table, returns the failures.
fn compare(cases: &[Case]) -> Vec<String> {
    let rows: Vec<(f64, f64)> = cases
        .par_iter()
        .map(|c| (step_s(c, "analytic"), step_s(c, "contention")))
        .collect();
    println!(
        "{:<66} {:>12} {:>12} {:>8}",
        "case", "analytic s", "contention s", "diff"
    );
    let mut failures = Vec::new();
    for (c, &(a, k)) in cases.iter().zip(&rows) {
        let diff = a / k - 1.0;
        println!("{:<66} {a:>12.4} {k:>12.4} {:>+7.2}%", c.name, diff * 100.0);
        if diff.abs() > BOUND {
            failures.push(format!(
                "{}: analytic {a:.4} s vs contention {k:.4} s ({:+.2} %)",
                c.name,
                diff * 100.0
            ));
        }
    }
    failures
}

fn shipped(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("shipped folder")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "yaml").then(|| p.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    v
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "simulates steps of up to 16,384 GPUs in contention mode; run with --release"
)]
fn analytic_and_contention_agree_within_5_percent_on_every_shipped_case() {
    let mut cases = Vec::new();
    for file in shipped("scenarios") {
        if file.contains("frontier-dense-1m") || file.contains("frontier-moe-25k") {
            continue;
        }
        // Several jobs on one fabric (`jobs:`) run in contention mode only: analytic mode
        // cannot show jobs slowing each other, so such a scenario refuses it.
        if std::fs::read_to_string(&file).is_ok_and(|t| t.contains("\njobs:")) {
            continue;
        }
        cases.push(Case {
            name: file.clone(),
            file,
            sets: Vec::new(),
        });
    }
    for topo in shipped("topologies") {
        let gpus = load_topology(&topo).expect("topology loads").total_gpus();
        let dp = gpus / 8;
        cases.push(Case {
            name: format!("default plan on {topo} ({gpus} GPUs)"),
            file: "scenarios/default.yaml".into(),
            sets: vec![
                format!("cluster={topo}"),
                format!("parallelism.dp={dp}"),
                format!("training.global_batch={}", dp * 16),
            ],
        });
    }
    cases.push(Case {
        name: "llama3-70b TP8 PP4 DP512 on roce-multipod-h100 (issue 13)".into(),
        file: "scenarios/llama3-70b-1k.yaml".into(),
        sets: vec![
            "cluster=topologies/roce-multipod-h100.yaml".into(),
            "parallelism.dp=512".into(),
            "training.global_batch=2048".into(),
        ],
    });
    assert!(cases.len() >= 16, "{} cases", cases.len());
    let failures = compare(&cases);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The top 10 plans of `clustersim plan SCENARIO [--set network.mode=MODE]`: (label,
/// replayed step time).
fn top_plans(file: &str, mode: &str) -> Vec<(String, f64)> {
    let out = clustersim::PlanSearch::from_file(file)
        .and_then(|p| p.with_overrides(&[format!("network.mode={mode}")]))
        .and_then(|p| p.run())
        .unwrap_or_else(|e| panic!("{file} ({mode}): {e}"));
    out.report
        .rows
        .iter()
        .filter_map(|r| Some((r.point.label(), r.replay.as_ref()?.step_time_s)))
        .collect()
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "replays 10 plans of up to 1,024 GPUs in contention mode; run with --release"
)]
fn the_plan_searchs_top_10_agree_within_5_percent() {
    let mut failures = Vec::new();
    for file in [
        "scenarios/default.yaml",
        "scenarios/llama3-70b-1k.yaml",
        "scenarios/gpt3-175b-1k-a100.yaml",
    ] {
        let (a, k) = rayon::join(
            || top_plans(file, "analytic"),
            || top_plans(file, "contention"),
        );
        assert_eq!(a.len(), 10, "{file}: {} replayed plans", a.len());
        println!("{file}");
        println!(
            "{:>4} {:<48} {:>12} {:>12} {:>8}",
            "rank", "plan", "analytic s", "contention s", "diff"
        );
        for (i, ((la, ta), (lk, tk))) in a.iter().zip(&k).enumerate() {
            // Both searches rank by the same fast mode: the same plans, in the same order.
            assert_eq!(la, lk, "{file}: rank {} differs between the modes", i + 1);
            let diff = ta / tk - 1.0;
            println!(
                "{:>4} {la:<48} {ta:>12.4} {tk:>12.4} {:>+7.2}%",
                i + 1,
                diff * 100.0
            );
            if diff.abs() > BOUND {
                failures.push(format!(
                    "{file} rank {} {la}: analytic {ta:.4} s vs contention {tk:.4} s",
                    i + 1
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "about 120 s of CPU in contention mode: cargo test --release --test network_agreement -- --ignored"]
fn analytic_and_contention_agree_on_the_25k_gpu_moe_scenario() {
    let cases = [Case {
        name: "scenarios/frontier-moe-25k-h100.yaml".into(),
        file: "scenarios/frontier-moe-25k-h100.yaml".into(),
        sets: Vec::new(),
    }];
    let failures = compare(&cases);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
