//! Every result records what produced it (`provenance`): clustersim version, catalog hash,
//! each input file as given with its SHA-256, every `--set`, the seed, the network mode,
//! the command's settings, and a `stack` hook. Two different results are told apart by it;
//! the same command writes the same bytes; shards merge into the unsharded sweep's files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clustersim::config::provenance::sha256_hex;
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("provenance-{name}"));
    let _ = fs::remove_dir_all(&d);
    d
}

/// Runs the binary from the repository root (so relative paths are as a user gives them).
fn clustersim(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary starts");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn sha(path: &str) -> String {
    sha256_hex(&fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap())
}

fn run_summary(name: &str, extra: &[&str]) -> (PathBuf, Value) {
    let dir = scratch(name);
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "run",
        "scenarios/llama3-70b-1k.yaml",
        "--timeline",
        "none",
        "--out",
        d,
    ];
    args.extend(extra);
    clustersim(&args);
    let v = json(&dir.join("summary.json"));
    (dir, v)
}

#[test]
fn summary_json_records_what_produced_it() {
    let args = [
        "--set",
        "parallelism.tp=4",
        "--set",
        "parallelism.dp=64",
        "--seed",
        "11",
    ];
    let (dir, a) = run_summary("run-a", &args);
    let p = &a["provenance"];
    assert_eq!(p["clustersim"], env!("CARGO_PKG_VERSION"));
    assert_eq!(p["command"], "run");
    assert_eq!(p["catalog_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        p["overrides"],
        serde_json::json!(["parallelism.tp=4", "parallelism.dp=64"])
    );
    assert_eq!(p["seed"], serde_json::json!([11]));
    // The mode and the routing the fabric defaults to (NDR InfiniBand: adaptive).
    assert_eq!(p["network"], serde_json::json!(["analytic, adaptive"]));
    assert!(p["stack"].is_null(), "the stack hook exists: {p}");
    // The scenario file and the topology it names, as given, with their hashes.
    let inputs = p["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["path"], "scenarios/llama3-70b-1k.yaml");
    assert_eq!(inputs[0]["sha256"], sha("scenarios/llama3-70b-1k.yaml"));
    assert!(
        inputs.iter().any(|i| i["path"]
            .as_str()
            .unwrap()
            .ends_with("topologies/dgx-h100-ndr.yaml")
            && i["sha256"] == sha("topologies/dgx-h100-ndr.yaml")),
        "{inputs:?}"
    );
    // The same command twice: the same bytes (no time stamps, no host paths).
    let (dir2, _) = run_summary("run-a2", &args);
    assert_eq!(
        fs::read(dir.join("summary.json")).unwrap(),
        fs::read(dir2.join("summary.json")).unwrap()
    );
    // Results that differ only in seed or network mode are told apart.
    let (_, b) = run_summary("run-b", &[&args[..4], &["--seed", "12"]].concat());
    assert_ne!(a["provenance"], b["provenance"]);
    let (_, c) = run_summary("run-c", &[&args[..], &["--network", "contention"]].concat());
    assert_eq!(
        c["provenance"]["network"],
        serde_json::json!(["contention, adaptive"])
    );
}

#[test]
fn checkpoint_plan_and_compare_outputs_record_it_too() {
    let ck = scratch("checkpoint");
    clustersim(&[
        "checkpoint",
        "tests/data/checkpoint-toy.yaml",
        "--intervals",
        "10m:2h:4",
        "--replicas",
        "2",
        "--out",
        ck.to_str().unwrap(),
    ]);
    let p = &json(&ck.join("checkpoint.json"))["provenance"];
    assert_eq!(p["command"], "checkpoint");
    assert_eq!(p["settings"]["intervals"], "10m:2h:4");
    assert_eq!(p["settings"]["replicas"], "2");
    assert_eq!(
        p["inputs"][0]["sha256"],
        sha("tests/data/checkpoint-toy.yaml")
    );

    let plan = scratch("plan");
    clustersim(&[
        "plan",
        "--top",
        "1",
        "--tp",
        "2",
        "--out",
        plan.to_str().unwrap(),
    ]);
    let side = json(&plan.join("plans.provenance.json"));
    assert_eq!(json(&plan.join("plans.json"))["provenance"], side);
    assert_eq!(side["settings"]["top"], "1");
    assert_eq!(side["settings"]["tp"], "2");
    assert_eq!(side["inputs"][0]["path"], "<built-in default scenario>");

    let cmp = scratch("compare");
    clustersim(&[
        "compare",
        "scenarios/sweeps/fabrics.yaml",
        "--set",
        "training.global_batch=512",
        "--out",
        cmp.to_str().unwrap(),
    ]);
    let side = json(&cmp.join("compare.provenance.json"));
    assert_eq!(json(&cmp.join("compare.json"))["provenance"], side);
    assert_eq!(
        side["overrides"],
        serde_json::json!(["training.global_batch=512"])
    );
    assert_eq!(side["inputs"][0]["path"], "scenarios/sweeps/fabrics.yaml");
    assert_eq!(
        side["inputs"][0]["sha256"],
        sha("scenarios/sweeps/fabrics.yaml")
    );
    assert!(
        side["inputs"].as_array().unwrap().len() >= 3,
        "sweep, base scenario, topology"
    );

    // Shards record the sweep's provenance, not their shard: the merge writes the
    // unsharded files byte for byte.
    let mut shards = Vec::new();
    for i in 0..2 {
        let d = cmp.join(format!("shard-{i}"));
        clustersim(&[
            "compare",
            "scenarios/sweeps/fabrics.yaml",
            "--set",
            "training.global_batch=512",
            "--shard",
            &format!("{i}/2"),
            "--out",
            d.to_str().unwrap(),
        ]);
        shards.push(d);
    }
    let merged = cmp.join("merged");
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(|d| d.to_str().unwrap()));
    args.extend(["--out", merged.to_str().unwrap()]);
    clustersim(&args);
    for f in ["compare.csv", "compare.json", "compare.provenance.json"] {
        assert!(
            fs::read(cmp.join(f)).unwrap() == fs::read(merged.join(f)).unwrap(),
            "{f} differs"
        );
    }
    // Shards of different inputs do not merge.
    let other = cmp.join("other");
    clustersim(&[
        "compare",
        "scenarios/sweeps/fabrics.yaml",
        "--shard",
        "1/2",
        "--out",
        other.to_str().unwrap(),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args([
            "merge",
            shards[0].to_str().unwrap(),
            other.to_str().unwrap(),
            "--out",
        ])
        .arg(cmp.join("bad"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("provenance"));
}
