//! The library API gives what the binary gives: each command run through `clustersim::api`
//! writes byte-identical files to `clustersim <command>`, and its errors carry the CLI's
//! messages and say bad input where the CLI exits 2.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clustersim::sweep::spec::Shard;
use clustersim::vocab::Collective;
use clustersim::{
    CheckpointSweep, CollectiveSweep, Comparison, Error, NetworkMode, PlanSearch, Simulation,
};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clustersim-api-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

/// Runs the binary; returns (exit code, stderr).
fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .output()
        .expect("the binary starts");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(args: &[&str]) {
    let (code, stderr) = cli(args);
    assert_eq!(code, 0, "clustersim {args:?}:\n{stderr}");
}

/// Every file under `a` equals the file of the same name under `b`, and both hold the same
/// names.
fn assert_same_files(a: &Path, b: &Path) {
    let names = |d: &Path| {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let (na, nb) = (names(a), names(b));
    assert_eq!(na, nb);
    assert!(!na.is_empty());
    for n in na {
        assert!(
            fs::read(a.join(&n)).unwrap() == fs::read(b.join(&n)).unwrap(),
            "{n} differs"
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn default_scenario_writes_what_clustersim_run_writes() {
    let (api, bin) = (scratch("run-api"), scratch("run-bin"));
    let out = Simulation::default_scenario().run().unwrap();
    let files = out.write_to(&api).unwrap();
    assert!(files.iter().any(|f| f.ends_with("summary.json")));
    cli_ok(&["run", "--out", s(&bin)]);
    assert_same_files(&api, &bin);
    // The summary value is the file's content.
    let json = out.summary().to_json().unwrap();
    assert_eq!(json.as_bytes(), fs::read(bin.join("summary.json")).unwrap());
    assert!(out.metrics().step_time_s > 0.0 && out.memory().fits);
    assert!(out.run.is_none() && out.links.is_none());
}

#[test]
fn overrides_seed_network_and_timeline_match_the_flags() {
    let (api, bin) = (scratch("flags-api"), scratch("flags-bin"));
    let out = Simulation::from_file("scenarios/default.yaml")
        .unwrap()
        .with_overrides(&["training.global_batch=64"])
        .unwrap()
        .with_seed(3)
        .with_network(NetworkMode::Contention)
        .with_timeline(clustersim::config::TimelineRanks::List(vec![0, 9]))
        .run()
        .unwrap();
    out.write_to(&api).unwrap();
    cli_ok(&[
        "run",
        "scenarios/default.yaml",
        "--set",
        "training.global_batch=64",
        "--seed",
        "3",
        "--network",
        "contention",
        "--timeline",
        "0,9",
        "--out",
        s(&bin),
    ]);
    assert!(out.links.is_some() && bin.join("links.csv").is_file());
    assert_same_files(&api, &bin);
}

#[test]
fn a_long_run_writes_run_csv_as_the_cli_does() {
    let (api, bin) = (scratch("long-api"), scratch("long-bin"));
    let out = Simulation::from_file("scenarios/llama3-70b-1k.yaml")
        .unwrap()
        .run()
        .unwrap();
    let run = out.run.as_ref().expect("the scenario has run:");
    assert!(run.summary.goodput > 0.0 && run.summary.goodput < 1.0);
    out.write_to(&api).unwrap();
    cli_ok(&["run", "scenarios/llama3-70b-1k.yaml", "--out", s(&bin)]);
    assert!(api.join("run.csv").is_file());
    assert_same_files(&api, &bin);
}

#[test]
fn plan_search_matches_the_cli() {
    let (api, bin) = (scratch("plan-api"), scratch("plan-bin"));
    let plan = PlanSearch::default_scenario()
        .with_top(2)
        .with_tp(&[2])
        .run()
        .unwrap();
    assert_eq!(plan.report.replayed, 2);
    plan.write_to(api.join("plan")).unwrap();
    cli_ok(&[
        "plan",
        "--top",
        "2",
        "--tp",
        "2",
        "--out",
        s(&bin.join("plan")),
    ]);
    assert_same_files(&api.join("plan"), &bin.join("plan"));
}

#[test]
fn checkpoint_sweep_matches_the_cli() {
    let (api, bin) = (scratch("ckpt-api"), scratch("ckpt-bin"));
    let ckpt = CheckpointSweep::from_file("scenarios/llama3-70b-1k.yaml")
        .unwrap()
        .with_intervals("5m:4h:4")
        .unwrap()
        .with_replicas(1)
        .run()
        .unwrap();
    assert_eq!(ckpt.curve.curve.len(), 4);
    ckpt.write_to(api.join("checkpoint")).unwrap();
    cli_ok(&[
        "checkpoint",
        "scenarios/llama3-70b-1k.yaml",
        "--intervals",
        "5m:4h:4",
        "--replicas",
        "1",
        "--out",
        s(&bin.join("checkpoint")),
    ]);
    assert_same_files(&api.join("checkpoint"), &bin.join("checkpoint"));
}

#[test]
fn comparison_matches_the_cli() {
    let (api, bin) = (scratch("cmp-api"), scratch("cmp-bin"));
    let files = [
        "scenarios/default.yaml",
        "scenarios/llama7b-8x4090-fsdp.yaml",
    ];
    let cmp = Comparison::from_files(&files)
        .unwrap()
        .with_tokens("300B")
        .run()
        .unwrap();
    assert_eq!(cmp.table.rows.len(), 2);
    let written = cmp.write_to(api.join("compare")).unwrap();
    assert!(written.warnings.is_empty(), "{:?}", written.warnings);
    let cmp_dir = bin.join("compare");
    let mut args = vec!["compare"];
    args.extend(files);
    args.extend(["--tokens", "300B", "--out", s(&cmp_dir)]);
    cli_ok(&args);
    assert_same_files(&api.join("compare"), &bin.join("compare"));
}

#[test]
fn collective_sweep_matches_the_cli() {
    let (api, bin) = (scratch("coll-api"), scratch("coll-bin"));
    let topo = "topologies/dgx-h100-ndr.yaml";
    let coll = CollectiveSweep::from_topology(topo)
        .unwrap()
        .with_op(Collective::AllToAll)
        .with_gpus(32)
        .unwrap()
        .with_sizes(1 << 10, 1 << 24)
        .run();
    assert_eq!(coll.rows.len(), 15);
    coll.write_to(api.join("collective")).unwrap();
    cli_ok(&[
        "collective",
        "--topology",
        topo,
        "--op",
        "all-to-all",
        "--gpus",
        "32",
        "--sizes",
        "1K:16M",
        "--out",
        s(&bin.join("collective")),
    ]);
    assert_same_files(&api.join("collective"), &bin.join("collective"));
}

#[test]
fn shards_merge_into_the_whole_sweep() {
    let dir = scratch("shards");
    let sweep = "scenarios/sweeps/fabrics.yaml";
    let whole = Comparison::from_files(&[sweep]).unwrap().run().unwrap();
    let mut dirs = Vec::new();
    for i in 0..2 {
        let shard: Shard = format!("{i}/2").parse().unwrap();
        let part = Comparison::from_files(&[sweep])
            .unwrap()
            .with_shard(shard)
            .run()
            .unwrap();
        let d = dir.join(format!("shard{i}"));
        part.write_to(&d).unwrap();
        dirs.push(d);
    }
    let merged = clustersim::api::merge(&dirs).unwrap();
    assert_eq!(merged.table, whole.table);
}

/// The API's error for `args`, and what the binary prints for the same input.
fn same_error(api: Error, args: &[&str]) {
    let (code, stderr) = cli(args);
    let prefix = if api.is_bad_input() {
        "error"
    } else {
        "internal error"
    };
    assert_eq!(code, if api.is_bad_input() { 2 } else { 1 }, "{args:?}");
    assert_eq!(stderr, format!("{prefix}: {api}\n"), "{args:?}");
}

#[test]
fn run_errors_carry_the_cli_messages_and_exit_codes() {
    let e = Simulation::default_scenario()
        .with_overrides(&["parallelism.tp=3"])
        .unwrap()
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)));
    same_error(e, &["run", "--set", "parallelism.tp=3"]);

    let e = Simulation::default_scenario()
        .with_overrides(&["parallelism.tp"])
        .unwrap_err();
    same_error(e, &["run", "--set", "parallelism.tp"]);

    let e = Simulation::from_file("/nonexistent/scenario.yaml").unwrap_err();
    same_error(e, &["run", "/nonexistent/scenario.yaml"]);

    let e = Simulation::default_scenario()
        .with_overrides(&["cluster.gpu.memory_gb=1"])
        .unwrap()
        .strict_memory(true)
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::OutOfMemory(_)));
    same_error(
        e,
        &["run", "--strict-memory", "--set", "cluster.gpu.memory_gb=1"],
    );

    let out = Simulation::default_scenario().run().unwrap();
    let blocked = scratch("blocked");
    fs::write(&blocked, "a file where a folder should be").unwrap();
    let e = out.write_to(&blocked).unwrap_err();
    assert!(!e.is_bad_input(), "{e}");
    same_error(e, &["run", "--out", s(&blocked)]);
    fs::remove_file(&blocked).ok();
}

#[test]
fn other_commands_errors_carry_the_cli_messages_and_exit_codes() {
    let e = PlanSearch::default_scenario().with_zero(&[5]).unwrap_err();
    same_error(e, &["plan", "--zero", "5"]);

    let e = PlanSearch::default_scenario()
        .with_gpus(7)
        .run()
        .unwrap_err();
    same_error(e, &["plan", "--gpus", "7"]);

    let e = Comparison::from_files(&["scenarios/default.yaml"])
        .unwrap()
        .with_prices(&["bad=1"])
        .run()
        .unwrap_err();
    same_error(
        e,
        &["compare", "scenarios/default.yaml", "--price", "bad=1"],
    );

    let e = Comparison::from_files(&["scenarios/default.yaml"])
        .unwrap()
        .with_overrides(&["parallelism.tp=3"])
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Point { index: 0, .. }));
    same_error(
        e,
        &[
            "compare",
            "scenarios/default.yaml",
            "--set",
            "parallelism.tp=3",
        ],
    );

    let e = CheckpointSweep::default_scenario()
        .with_intervals("4h:5m")
        .unwrap_err();
    same_error(
        e,
        &[
            "checkpoint",
            "scenarios/llama3-70b-1k.yaml",
            "--intervals",
            "4h:5m",
        ],
    );

    let e = CollectiveSweep::from_topology("topologies/dgx-h100-ndr.yaml")
        .unwrap()
        .with_gpus(1)
        .unwrap_err();
    same_error(
        e,
        &[
            "collective",
            "--topology",
            "topologies/dgx-h100-ndr.yaml",
            "--op",
            "all-reduce",
            "--gpus",
            "1",
        ],
    );
}

#[test]
fn a_resolved_scenario_takes_no_overrides() {
    let s = clustersim::ScenarioInput::default_scenario()
        .resolve()
        .unwrap();
    let e = Simulation::from_scenario(s.clone())
        .with_overrides(&["parallelism.tp=4"])
        .unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    let sim = Simulation::from_scenario(s).with_seed(11);
    assert_eq!(sim.scenario().unwrap().faults.seed, 11);
}
