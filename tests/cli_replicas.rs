//! `--replicas`: `run` repeats the long run and prints every figure as the mean over
//! replicas with its 95 % CI; zero replicas is refused (exit 2) by `run` and `checkpoint`.

use std::process::{Command, Output};

fn clustersim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .output()
        .expect("the binary starts")
}

const TOY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/checkpoint-toy.yaml"
);

fn out_dir(name: &str) -> String {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(name)
        .display()
        .to_string()
}

#[test]
fn run_with_replicas_prints_means_with_their_ci() {
    let dir = out_dir("cli-replicas");
    let out = clustersim(&[
        "run",
        TOY,
        "--replicas",
        "4",
        "--timeline",
        "none",
        "--out",
        &dir,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("long run"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(stdout.contains("long run (4 replicas"), "{stdout}");
    assert!(table.len() >= 8, "{stdout}");
    for line in &table {
        assert!(
            line.contains("95% CI"),
            "`{line}` is not a mean with its CI:\n{stdout}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/summary.json")).unwrap())
            .unwrap();
    let stats = &summary["run"]["stats"];
    assert_eq!(stats["replicas"], 4);
    for key in [
        "interruptions",
        "mean_time_between_interruptions_h",
        "lost_hours",
        "productive_time_h",
    ] {
        assert!(stats[key]["mean"].is_number(), "stats.{key}: {stats}");
    }
}

#[test]
fn zero_replicas_is_refused() {
    for args in [
        vec!["run", TOY, "--replicas", "0"],
        vec!["run", TOY, "--set", "run.replicas=0"],
        vec![
            "checkpoint",
            TOY,
            "--replicas",
            "0",
            "--intervals",
            "5m:1h:3",
        ],
    ] {
        let out = clustersim(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("replicas") && stderr.contains("at least 1"),
            "{stderr}"
        );
    }
    // A scenario without `run:` has no long run to repeat.
    let out = clustersim(&[
        "run",
        "--replicas",
        "2",
        "--out",
        &out_dir("cli-replicas-none"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `run:` section"));
}
