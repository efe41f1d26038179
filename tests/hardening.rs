//! Issue 17 regression cases: inputs that used to panic, hang, exhaust memory or give
//! nonsense are refused with exit 2 and a message naming the field; interrupted or killed
//! commands leave no partial file under a final name and no staging folder behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clustersim");
const S70B: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/llama3-70b-1k.yaml");
const TOY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/checkpoint-toy.yaml"
);

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hardening-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the binary with a 60 s limit (a hang fails the test instead of blocking it).
fn clustersim(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("clustersim {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Exit 2 with every `needle` in the message.
fn refused(args: &[&str], needles: &[&str]) {
    let out = clustersim(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` missing from: {err}");
    }
    assert!(
        err.len() < 2_000,
        "{args:?}: message too long: {} bytes",
        err.len()
    );
}

#[test]
fn huge_counts_are_refused_by_range() {
    let o = tmp("counts").display().to_string();
    let run = |set: &'static str| ["run", S70B, "--set", set, "--out", o.as_str()];
    let cases: [(&str, &str); 8] = [
        ("training.global_batch=1000000000", "training.global_batch"),
        ("training.seq_len=1e9", "training.seq_len"),
        ("training.seq_len=1000000000", "training.seq_len"),
        ("cluster.nodes=100000000000", "cluster.nodes"),
        ("model.layers=1000000", "model.layers"),
        ("cluster.node.nvlink_gbs=1e-300", "cluster.node.nvlink_gbs"),
        ("cluster.node.nvlink_gbs=5e-324", "cluster.node.nvlink_gbs"),
        ("cluster.node.nic_gbps=1e-300", "cluster.node.nic_gbps"),
    ];
    for (set, field) in cases {
        let out = clustersim(&run(set));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{set}: {err}");
        assert!(err.contains(field), "{set}: {err}");
    }
}

#[test]
fn denormal_bandwidth_message_is_short() {
    let o = tmp("denormal").display().to_string();
    refused(
        &[
            "run",
            S70B,
            "--set",
            "cluster.node.nvlink_gbs=1e-300",
            "--out",
            &o,
        ],
        &["must be between 0.001", "got 1e-300"],
    );
}

#[test]
fn moe_with_a_billion_experts_is_refused() {
    let o = tmp("experts").display().to_string();
    let f = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/frontier-moe-25k-h100.yaml"
    );
    refused(
        &[
            "run",
            f,
            "--set",
            "model.moe.experts=1000000000",
            "--out",
            &o,
        ],
        &["model.moe.experts", "supported maximum"],
    );
}

#[test]
fn checkpoint_replicas_u64_max_is_refused_not_a_panic() {
    let o = tmp("ck-replicas").display().to_string();
    refused(
        &[
            "checkpoint",
            TOY,
            "--replicas",
            "18446744073709551615",
            "--out",
            &o,
        ],
        &["--replicas", "100000"],
    );
}

#[test]
fn collective_size_range_past_2_63_ends() {
    let o = tmp("coll").display().to_string();
    refused(
        &[
            "collective",
            "--topology",
            "dgx-h100-ndr",
            "--op",
            "all-reduce",
            "--gpus",
            "16",
            "--sizes",
            "1:9223372036854775807",
            "--out",
            &o,
        ],
        &["--sizes", "1P"],
    );
    // The largest allowed range ends (checked doubling) with 51 rows.
    let out = clustersim(&[
        "collective",
        "--topology",
        "dgx-h100-ndr",
        "--op",
        "all-reduce",
        "--gpus",
        "16",
        "--sizes",
        "1:1P",
        "--out",
        &o,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prices_and_tokens_out_of_range_are_refused() {
    let o = tmp("prices").display().to_string();
    refused(
        &["compare", S70B, "--price", "node_usd=1e308", "--out", &o],
        &["node_usd", "1e308", "1000000000"],
    );
    refused(
        &["compare", S70B, "--tokens", "1e300T", "--out", &o],
        &["tokens", "1e17"],
    );
}

#[test]
fn special_files_are_refused_before_reading() {
    let o = tmp("special").display().to_string();
    refused(
        &["run", "/dev/urandom", "--out", &o],
        &["not a regular file"],
    );
    let dir = tmp("fifo");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("scenario.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        refused(
            &["run", &fifo.display().to_string(), "--out", &o],
            &["not a regular file"],
        );
    }
}

#[test]
fn references_outside_the_scenario_tree_are_refused() {
    let dir = tmp("paths");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("s.yaml");
    std::fs::write(
        &f,
        "model: llama3-8b\ncluster: { from: /etc/passwd }\ntraining: { seq_len: 4096, global_batch: 8 }\n",
    )
    .unwrap();
    let o = dir.join("out").display().to_string();
    let out = clustersim(&["run", &f.display().to_string(), "--out", &o]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("s.yaml:2") && err.contains("--allow-path"),
        "{err}"
    );
    assert!(
        !err.contains("root:"),
        "the file's content must not be quoted: {err}"
    );
    refused(
        &[
            "run",
            S70B,
            "--set",
            "cluster.from=/etc/passwd",
            "--out",
            &o,
        ],
        &["--allow-path"],
    );
}

#[test]
fn durations_in_exponent_form_parse_or_are_refused_clearly() {
    let o = tmp("durations").display().to_string();
    refused(
        &[
            "checkpoint",
            TOY,
            "--intervals",
            "1e308d:1e309d",
            "--out",
            &o,
        ],
        &["10,000 years"],
    );
    let out = clustersim(&[
        "checkpoint",
        TOY,
        "--intervals",
        "3e2s:1.44e4s:4",
        "--out",
        &o,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn checkpoint_grids_are_bounded() {
    let o = tmp("grid").display().to_string();
    refused(
        &[
            "checkpoint",
            TOY,
            "--intervals",
            "5m:4h:100000000000",
            "--out",
            &o,
        ],
        &["--intervals", "10000 points"],
    );
    refused(
        &["checkpoint", TOY, "--intervals", "1ns:1us", "--out", &o],
        &["--intervals", "1s"],
    );
}

#[test]
fn long_values_are_shortened_in_messages() {
    let o = tmp("long").display().to_string();
    let long = format!("node_usd={}", "9".repeat(100_000));
    let out = clustersim(&["compare", S70B, "--price", &long, "--out", &o]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", &err[..err.len().min(300)]);
    assert!(err.len() < 1_000, "{} bytes", err.len());
}

fn staging_folders(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".clustersim-tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a `run` writing a few hundred MB of timeline and waits until it is writing
/// into its staging folder; `None` if it finished first.
fn start_slow_run(out: &Path) -> Option<std::process::Child> {
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--set",
            "training.global_batch=1024",
            "--timeline",
            "all",
            "--out",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let start = Instant::now();
    loop {
        if !staging_folders(out).is_empty() {
            std::thread::sleep(Duration::from_millis(30));
            return Some(child);
        }
        if child.try_wait().expect("wait").is_some() || start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn killed_run_leaves_no_partial_file_and_the_next_run_sweeps_its_staging() {
    let out = tmp("kill9");
    let child = start_slow_run(&out).expect("the run was seen writing");
    let mut child = child;
    child.kill().expect("SIGKILL"); // by its PID
    child.wait().unwrap();
    assert!(
        !out.join("timeline.json").exists(),
        "no partial file under a final name"
    );
    assert!(!out.join("summary.json").exists());
    assert_eq!(staging_folders(&out).len(), 1, "SIGKILL cannot clean up");
    // The next command writing there removes the dead process's folder.
    let o = out.display().to_string();
    let next = clustersim(&[
        "collective",
        "--topology",
        "dgx-h100-ndr",
        "--op",
        "all-reduce",
        "--gpus",
        "8",
        "--sizes",
        "1K:4K",
        "--out",
        &o,
    ]);
    assert!(next.status.success());
    assert!(
        staging_folders(&out).is_empty(),
        "{:?}",
        staging_folders(&out)
    );
}

#[test]
fn sigterm_and_sigint_remove_the_staging_folder() {
    for signal in ["-TERM", "-INT"] {
        let out = tmp(&format!("sig{signal}"));
        let mut child = start_slow_run(&out).expect("the run was seen writing");
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{signal}");
        assert!(!out.join("timeline.json").exists(), "{signal}");
        assert!(
            staging_folders(&out).is_empty(),
            "{signal}: {:?}",
            staging_folders(&out)
        );
    }
}

/// Final files under `dir` (relative paths, sorted), staging folders left out.
fn final_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".clustersim-tmp-") {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every command, killed by its PID (SIGKILL) at several moments, leaves either none of its
/// files under their final names or all of them (what an uninterrupted run writes), and
/// the next run of the command in that folder sweeps the dead process's staging folder.
#[test]
fn every_command_killed_at_any_moment_leaves_whole_outputs_or_none() {
    let root = env!("CARGO_MANIFEST_DIR");
    let fabrics = format!("{root}/scenarios/sweeps/fabrics.yaml");
    let shards = tmp("kill-shards");
    let (s0, s1) = (shards.join("0"), shards.join("1"));
    for (i, d) in [&s0, &s1].iter().enumerate() {
        let shard = format!("{i}/2");
        let o = d.display().to_string();
        assert!(
            clustersim(&["compare", &fabrics, "--shard", &shard, "--out", &o])
                .status
                .success()
        );
    }
    let (s0, s1) = (s0.display().to_string(), s1.display().to_string());
    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("run", vec!["run", TOY]),
        ("checkpoint", vec!["checkpoint", TOY, "--replicas", "4"]),
        ("compare", vec!["compare", &fabrics]),
        ("plan", vec!["plan", TOY, "--top", "3"]),
        (
            "collective",
            vec![
                "collective",
                "--topology",
                "dgx-h100-ndr",
                "--op",
                "all-reduce",
                "--gpus",
                "64",
            ],
        ),
        ("merge", vec!["merge", &s0, &s1]),
    ];
    for (name, args) in commands {
        let whole_dir = tmp(&format!("kill-{name}-whole"));
        let mut full = args.clone();
        let o = whole_dir.display().to_string();
        full.extend(["--out", &o]);
        let done = clustersim(&full);
        assert!(
            done.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let whole = final_files(&whole_dir);
        assert!(!whole.is_empty(), "{name} writes files");
        for delay_ms in [0, 5, 15, 40, 100, 250] {
            let out = tmp(&format!("kill-{name}-{delay_ms}"));
            let mut child = Command::new(BIN)
                .args(&args)
                .arg("--out")
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the binary starts");
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = child.kill(); // SIGKILL by PID (a no-op if it already finished)
            child.wait().unwrap();
            let left = final_files(&out);
            assert!(
                left.is_empty() || left == whole,
                "{name} killed after {delay_ms} ms left a partial set: {left:?}"
            );
            let o = out.display().to_string();
            let mut again = args.clone();
            again.extend(["--out", &o]);
            assert!(clustersim(&again).status.success(), "{name} reruns");
            assert!(
                staging_folders(&out).is_empty(),
                "{name}: {:?}",
                staging_folders(&out)
            );
            assert_eq!(final_files(&out), whole, "{name}");
        }
    }
}
