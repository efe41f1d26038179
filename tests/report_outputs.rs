//! End to end through the binary: `clustersim run --out DIR` writes the contract files,
//! and running it twice gives byte-identical files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clustersim-outputs-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn run(out: &Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .arg("run")
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("the binary starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

const CHARTS: [&str; 3] = ["gpu_utilization", "pipeline_schedule", "step_breakdown"];

#[test]
fn run_writes_contract_files() {
    let dir = scratch("contract");
    let stdout = run(&dir, &[]);
    for want in [
        "step time",
        "tokens/s",
        "MFU",
        "HFU",
        "bubble",
        "tp_exposed",
        "summary.json",
    ] {
        assert!(stdout.contains(want), "stdout lacks `{want}`:\n{stdout}");
    }

    let summary: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for k in [
        "step_time_s",
        "tokens_per_s",
        "tflops_per_gpu",
        "mfu",
        "hfu",
        "bubble_fraction",
    ] {
        assert!(
            summary[k]
                .as_f64()
                .is_some_and(|v| v.is_finite() && v >= 0.0),
            "{k}"
        );
    }
    let b = &summary["breakdown_s"];
    let parts = [
        "compute",
        "recompute",
        "optimizer",
        "tp_exposed",
        "cp_exposed",
        "ep_exposed",
        "pp_exposed",
        "dp_exposed",
        "idle",
    ];
    let total: f64 = parts.iter().map(|k| b[*k].as_f64().expect(k)).sum();
    let step = summary["step_time_s"].as_f64().unwrap();
    assert!(
        (total / step - 1.0).abs() < 1e-6,
        "breakdown {total} vs step {step}"
    );
    assert!(summary["scenario"]["name"].is_string());
    assert!(summary["scenario"]["micro_batches"].as_u64().unwrap() > 0);

    let timeline: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("timeline.json")).unwrap()).unwrap();
    let events = timeline["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e["ph"] == "X"));

    for stem in CHARTS {
        let png = fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{stem}.png"
        );
        let svg = fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("<text") && svg.len() > 5_000,
            "{stem}.svg"
        );
    }
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn same_inputs_give_byte_identical_files() {
    let (a, b) = (scratch("det-a"), scratch("det-b"));
    run(&a, &["--timeline", "0,33,127"]);
    run(&b, &["--timeline", "0,33,127"]);
    let mut names: Vec<String> = fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 8, "{names:?}");
    for name in &names {
        let (x, y) = (
            fs::read(a.join(name)).unwrap(),
            fs::read(b.join(name)).unwrap(),
        );
        assert!(x == y, "{name} differs between two identical runs");
    }
    fs::remove_dir_all(&a).ok();
    fs::remove_dir_all(&b).ok();
}

#[test]
fn timeline_none_writes_no_trace_and_bad_ranks_are_rejected() {
    let dir = scratch("none");
    run(&dir, &["--timeline", "none"]);
    assert!(dir.join("summary.json").is_file());
    assert!(!dir.join("timeline.json").exists());
    assert!(dir.join("pipeline_schedule.png").is_file());

    let output = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(["run", "--timeline", "100000", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("rank 100000"));
    fs::remove_dir_all(&dir).ok();
}
