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
