//! The `clustersim checkpoint` binary.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clustersim"))
}

#[test]
fn missing_scenario_is_bad_input() {
    let out = bin()
        .args(["checkpoint", "/nonexistent/scenario.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Runs once `config::load_scenario` reads YAML files (the config branch).
#[test]
fn checkpoint_command_writes_json() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-checkpoint");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/checkpoint-toy.yaml"
    );
    let out = bin()
        .args([
            "checkpoint",
            scenario,
            "--intervals",
            "5m:4h:8",
            "--replicas",
            "4",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(dir.join("checkpoint.json")).unwrap();
    assert!(json.contains("daly_interval_s"));
}

fn checkpoint(args: &[&str], out: &std::path::Path) -> (std::process::Output, serde_json::Value) {
    let o = bin()
        .arg("checkpoint")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = std::fs::read_to_string(out.join("checkpoint.json")).unwrap();
    (o, serde_json::from_str(&json).unwrap())
}

/// With async checkpoints the optimum is about a minute; the default grid (around Daly's
/// interval) finds it instead of reporting the edge of a fixed 5 min..4 h grid.
#[test]
fn default_grid_is_centred_on_daly_and_finds_the_async_optimum() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-checkpoint-daly");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/llama3-70b-1k.yaml");
    let (o, j) = checkpoint(
        &[scenario, "--set", "run.duration=10d", "--replicas", "4"],
        &dir,
    );
    let (opt, young, daly) = (
        j["optimum_interval_s"].as_f64().unwrap(),
        j["young_interval_s"].as_f64().unwrap(),
        j["daly_interval_s"].as_f64().unwrap(),
    );
    assert!(opt < 300.0, "optimum {opt} s: still the 5-minute edge");
    assert!(
        opt > young / 2.0 && opt < young * 2.0,
        "optimum {opt} s vs Young {young} s"
    );
    assert_eq!(j["optimum_at_edge"], false);
    assert_eq!(j["default_grid"], true);
    let curve = j["curve"].as_array().unwrap();
    let first = curve[0]["interval_s"].as_f64().unwrap();
    let last = curve[curve.len() - 1]["interval_s"].as_f64().unwrap();
    let floor = j["grid_floor_s"].as_f64().unwrap();
    assert!(
        (first - (daly / 20.0).max(floor)).abs() < 1e-6 * first,
        "{first} vs {daly}"
    );
    assert!(last >= daly * 20.0 * (1.0 - 1e-9), "{last} vs {daly}");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A user grid whose best point is an edge: flagged in the table, the JSON and a warning
/// line on stderr; the exit code stays 0 (the numbers are right, only incomplete).
#[test]
fn an_optimum_on_the_edge_of_a_given_grid_is_flagged() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-checkpoint-edge");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/llama3-70b-1k.yaml");
    let (o, j) = checkpoint(
        &[
            scenario,
            "--set",
            "run.duration=10d",
            "--replicas",
            "4",
            "--intervals",
            "5m:4h:6",
        ],
        &dir,
    );
    assert_eq!(j["optimum_at_edge"], true);
    assert_eq!(j["default_grid"], false);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stdout.contains("5.0 min") && stdout.contains("<- best, at the edge of the grid"),
        "{stdout}"
    );
    assert!(stdout.contains("AT THE EDGE OF THE GRID"), "{stdout}");
    assert!(
        stderr.starts_with("warning: the best interval is the grid's shortest (5.0 min)"),
        "{stderr}"
    );
    assert!(stderr.contains("--intervals"), "{stderr}");
}
