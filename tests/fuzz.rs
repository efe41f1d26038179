//! Structure-aware fuzzing of the `clustersim` binary (issue 17).
//!
//! Each case is generated from a seeded stream: a command line over the shipped inputs
//! with `--set` overrides drawn from the scenario keys and a pool of hostile values
//! (zero, negative, denormal, huge, NaN, exponent durations, wrong types, long strings);
//! a shipped scenario, topology or sweep file mutated line by line (a value replaced, a
//! line dropped or repeated, an alias added); a generated sweep file (axes of any length);
//! or flags of `checkpoint`, `collective`, `plan` and `compare`. The binary runs with a
//! per-case timeout. A case fails on a panic (exit 101), an abort (134), any signal, a
//! hang, an internal error (exit 1), an exit-2 message that is empty, very long or not an
//! `error:` line, a staging folder left behind, or an output that breaks a numeric
//! invariant (a non-finite or negative time, a fraction outside [0, 1], `inf`/`NaN` in a
//! CSV).
//!
//! `cargo test --release --test fuzz -- --ignored` runs it for `CLUSTERSIM_FUZZ_SECS`
//! seconds (default 60) from `CLUSTERSIM_FUZZ_SEED` (default 1); `.ci/run` runs a short
//! pass. Failing cases are written to `target/fuzz-findings/` (`case-N.txt`: the command
//! line, the files, the exit and the message) and the test fails listing them.
//! `CLUSTERSIM_FUZZ_BIN` runs another copy of the binary (a long pass while the tree is
//! being rebuilt). The always-run regression corpus is `tests/fuzz_corpus.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Scenarios that simulate in well under a second (the fuzzer's base inputs).
const SCENARIOS: &[&str] = &[
    "tests/data/checkpoint-toy.yaml",
    "scenarios/default.yaml",
    "scenarios/llama7b-8x4090-fsdp.yaml",
    "scenarios/llama405b-qlora-8xh100.yaml",
    "scenarios/llama3-70b-1k.yaml",
];

const TOPOLOGIES: &[&str] = &[
    "topologies/dgx-h100-ndr.yaml",
    "topologies/dgx-a100-hdr.yaml",
    "topologies/gb200-nvl72.yaml",
    "topologies/rtx4090-pcie-workstation.yaml",
    "topologies/fat-tree-a100-hdr-2to1.yaml",
];

const SWEEPS: &[&str] = &["scenarios/sweeps/fabrics.yaml"];

/// Keys `--set` reaches (scenario schema in the README).
const KEYS: &[&str] = &[
    "model.layers",
    "model.hidden",
    "model.heads",
    "model.kv_heads",
    "model.ffn_hidden",
    "model.vocab",
    "model.experts",
    "model.top_k",
    "model.dropout",
    "cluster.nodes",
    "cluster.node.gpus",
    "cluster.node.nvlink_gbs",
    "cluster.node.nics",
    "cluster.node.nic_gbps",
    "cluster.fabric.oversubscription",
    "cluster.fabric.hop_latency_us",
    "cluster.fabric.tiers",
    "cluster.fabric.kind",
    "cluster.storage.write_gbs",
    "cluster.storage.read_gbs",
    "cluster.gpu",
    "training.seq_len",
    "training.global_batch",
    "training.micro_batch",
    "training.precision",
    "training.recompute",
    "parallelism.tp",
    "parallelism.pp",
    "parallelism.dp",
    "parallelism.cp",
    "parallelism.ep",
    "parallelism.zero",
    "parallelism.schedule",
    "parallelism.virtual_stages",
    "network.mode",
    "faults.seed",
    "faults.failures.node.mtbf",
    "faults.failures.gpu.mtbf",
    "faults.failures.gpu.per_1000_node_days",
    "faults.failures.switch.per_1000_node_days",
    "faults.failures.detection",
    "faults.failures.restart",
    "faults.failures.repair",
    "faults.failures.spares",
    "faults.failures.lemons.fraction",
    "faults.failures.lemons.rate_multiplier",
    "checkpoint.every",
    "checkpoint.mode",
    "checkpoint.write_time",
    "checkpoint.size",
    "run.duration",
    "run.steps",
    "run.tokens",
    "run.replicas",
    "outputs.timeline",
];

/// Values that break things.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "3",
    "7",
    "64",
    "0.5",
    "1e308",
    "-1e308",
    "5e-324",
    "1e-300",
    "NaN",
    ".nan",
    ".inf",
    "-.inf",
    "18446744073709551615",
    "9223372036854775807",
    "4294967297",
    "1000000000",
    "1e9",
    "1ns",
    "0s",
    "1s",
    "1e308d",
    "1e-9s",
    "999999999h",
    "30d",
    "1000y",
    "''",
    "abc",
    "[]",
    "{}",
    "[1, 2]",
    "null",
    "true",
    "1T",
    "1e300T",
    "-0",
    "0x10",
    "1_000",
    "contention",
    "interleaved",
    "zb-h2",
    "fp8",
];

/// One generated case: arguments, files to create in the case folder, and its label.
struct Case {
    args: Vec<String>,
    files: Vec<(String, String)>,
    kind: &'static str,
}

fn pick<'a, R: Rng>(rng: &mut R, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn value<R: Rng>(rng: &mut R) -> String {
    match rng.random_range(0..20) {
        0 => "9".repeat(rng.random_range(20..400)),
        1 => format!("{}", rng.random::<u64>()),
        2 => format!(
            "{:e}",
            rng.random::<f64>() * 10f64.powi(rng.random_range(-320..308))
        ),
        3 => format!("{}", rng.random_range(0..100_000u64)),
        _ => pick(rng, VALUES).to_string(),
    }
}

fn sets<R: Rng>(rng: &mut R, args: &mut Vec<String>) {
    for _ in 0..rng.random_range(0..4) {
        args.push("--set".into());
        args.push(format!("{}={}", pick(rng, KEYS), value(rng)));
    }
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).expect("shipped input reads")
}

/// A shipped YAML file mutated line by line: a value replaced (block or flow style), a
/// line dropped, repeated or indented, an anchor and alias added.
fn mutate<R: Rng>(rng: &mut R, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..rng.random_range(1..4) {
        if lines.is_empty() {
            break;
        }
        let i = rng.random_range(0..lines.len());
        match rng.random_range(0..8) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => lines[i] = format!("  {}", lines[i]),
            3 => lines.push(format!("extra_{}: {}", rng.random_range(0..9), value(rng))),
            _ => {
                // Replace the value after one of the line's `key:`.
                let l = lines[i].clone();
                let colons: Vec<usize> = l.match_indices(": ").map(|(p, _)| p).collect();
                if colons.is_empty() {
                    continue;
                }
                let at = colons[rng.random_range(0..colons.len())] + 2;
                let rest = &l[at..];
                let end = rest
                    .find([',', '}'])
                    .filter(|_| l.contains('{'))
                    .unwrap_or(rest.len());
                lines[i] = format!("{}{}{}", &l[..at], value(rng), &rest[end..]);
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn with_base(text: &str, base: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("base:") {
                format!("base: {base}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn generate<R: Rng>(rng: &mut R) -> Case {
    let s = |rel: &str| format!("{ROOT}/{rel}");
    let mut args: Vec<String> = Vec::new();
    let mut files = Vec::new();
    let kind = match rng.random_range(0..10) {
        0..=2 => {
            let scenario = pick(rng, SCENARIOS);
            args.extend(["run".into(), s(scenario)]);
            sets(rng, &mut args);
            if rng.random_bool(0.2) {
                args.extend(["--replicas".into(), value(rng)]);
            }
            // Flow-level contention on the 1,024-GPU scenario is valid work of tens of
            // seconds on a loaded machine: only the small scenarios take it here.
            if !scenario.contains("70b") && rng.random_bool(0.2) {
                args.extend(["--network".into(), "contention".into()]);
            }
            if rng.random_bool(0.1) {
                args.extend(["--seed".into(), value(rng)]);
            }
            "run --set"
        }
        3 => {
            let base = pick(rng, SCENARIOS);
            files.push(("s.yaml".into(), mutate(rng, &read(base))));
            args.extend(["run".into(), "s.yaml".into()]);
            "run mutated scenario"
        }
        4 => {
            let topo = pick(rng, TOPOLOGIES);
            files.push(("t.yaml".into(), mutate(rng, &read(topo))));
            let base = read("tests/data/checkpoint-toy.yaml");
            let (head, _) = base.split_once("cluster:").unwrap_or((&base, ""));
            let rest = base.split_once("training:").map_or("", |(_, r)| r);
            let scenario = format!("{head}cluster: {{ from: t.yaml }}\ntraining:{rest}");
            files.push(("s.yaml".into(), scenario));
            args.extend(["run".into(), "s.yaml".into()]);
            "run mutated topology"
        }
        5 => {
            args.extend(["checkpoint".into(), s("tests/data/checkpoint-toy.yaml")]);
            if rng.random_bool(0.6) {
                let lo = pick(rng, &["1s", "1ns", "5m", "1e308d", "0s", "1h", "abc"]);
                let hi = pick(rng, &["4h", "1e308d", "2s", "1000y", "30d", "1m"]);
                let n = pick(
                    rng,
                    &["", ":3", ":2", ":24", ":10000", ":100000000000", ":x"],
                );
                args.push(format!("--intervals={lo}:{hi}{n}"));
            }
            args.extend([
                "--replicas".into(),
                pick(rng, &["1", "2", "0", "100000", "18446744073709551615", "x"]).into(),
            ]);
            sets(rng, &mut args);
            "checkpoint"
        }
        6 => {
            args.extend([
                "collective".into(),
                "--topology".into(),
                s(pick(rng, TOPOLOGIES)),
                "--op".into(),
                pick(
                    rng,
                    &[
                        "all-reduce",
                        "all-gather",
                        "reduce-scatter",
                        "all-to-all",
                        "x",
                    ],
                )
                .into(),
                "--gpus".into(),
                pick(rng, &["8", "16", "1", "0", "1000000", "4294967297", "72"]).into(),
                "--algorithm".into(),
                pick(rng, &["auto", "ring", "tree", "nvls", "hierarchical"]).into(),
                "--sizes".into(),
                format!(
                    "{}:{}",
                    pick(rng, &["1K", "1", "0", "8", "1G", "1P", "1e308"]),
                    pick(rng, &["16G", "1K", "9223372036854775807", "1P", "2P", "1M"])
                ),
            ]);
            "collective"
        }
        7 => {
            args.extend([
                "plan".into(),
                s(pick(rng, &SCENARIOS[1..4])),
                "--top".into(),
                pick(rng, &["1", "2", "0"]).into(),
            ]);
            if rng.random_bool(0.3) {
                args.extend(["--gpus".into(), value(rng)]);
            }
            if rng.random_bool(0.3) {
                args.extend(["--tp".into(), pick(rng, &["1,2", "0", "3", "1024"]).into()]);
            }
            sets(rng, &mut args);
            "plan"
        }
        8 => {
            // A generated sweep file: a few axes of any length.
            let mut y = format!("name: gen\nbase: {ROOT}/tests/data/checkpoint-toy.yaml\n");
            if rng.random_bool(0.3) {
                y.push_str(&format!("tokens: {}\n", value(rng)));
            }
            y.push_str("axes:\n");
            for _ in 0..rng.random_range(1..4) {
                let n = match rng.random_range(0..6) {
                    0 => rng.random_range(1000..40_000),
                    _ => rng.random_range(0..4),
                };
                let vs: Vec<String> = (0..n).map(|_| value(rng)).collect();
                y.push_str(&format!("  {}: [{}]\n", pick(rng, KEYS), vs.join(", ")));
            }
            files.push(("sweep.yaml".into(), y));
            args.extend(["compare".into(), "sweep.yaml".into()]);
            "compare generated sweep"
        }
        _ => {
            let sw = pick(rng, SWEEPS);
            let text = with_base(&read(sw), &format!("{ROOT}/scenarios/llama3-70b-1k.yaml"));
            files.push(("sweep.yaml".into(), mutate(rng, &text)));
            args.extend(["compare".into(), "sweep.yaml".into()]);
            if rng.random_bool(0.3) {
                args.extend(["--price".into(), format!("node_usd={}", value(rng))]);
            }
            if rng.random_bool(0.3) {
                args.extend(["--tokens".into(), value(rng)]);
            }
            "compare mutated sweep"
        }
    };
    if !args.iter().any(|a| a == "--allow-path") {
        args.extend(["--allow-path".into(), ROOT.into()]);
    }
    Case { args, files, kind }
}

/// Why a finished case is a finding, if it is one.
fn judge(code: Option<i32>, stderr: &str, out: &Path) -> Option<String> {
    match code {
        None => return Some("killed by a signal".into()),
        Some(0) => {}
        Some(2) => {
            let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if !first.starts_with("error:") {
                return Some(format!("exit 2 without an `error:` line: {first}"));
            }
            if stderr.len() > 4_000 {
                return Some(format!("exit-2 message of {} bytes", stderr.len()));
            }
        }
        Some(c) => return Some(format!("exit {c}")),
    }
    let entries = std::fs::read_dir(out).map(|d| d.flatten().collect::<Vec<_>>());
    for e in entries.unwrap_or_default() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".clustersim-tmp") {
            return Some(format!("staging folder left: {name}"));
        }
        let path = e.path();
        if name.ends_with(".csv") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for cell in text.split([',', '\n']) {
                let c = cell.trim().to_ascii_lowercase();
                if c == "inf" || c == "-inf" || c == "nan" {
                    return Some(format!("{name}: `{cell}`"));
                }
            }
        }
        if name.ends_with(".json") && !name.starts_with("timeline") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(why) = invariant(&v, &name)
            {
                return Some(why);
            }
        }
    }
    None
}

/// The first numeric invariant `v` breaks: times (`*_s`, `*_h`, `*_hours`, breakdown parts)
/// finite and non-negative, fractions (`mfu`, `hfu`, `goodput`, `*fraction*`) in [0, 1].
fn invariant(v: &serde_json::Value, path: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            let p = format!("{path}.{k}");
            if let Some(n) = x.as_f64() {
                let time = k.ends_with("_s") || k.ends_with("_h") || k.ends_with("_hours");
                let frac = k == "mfu" || k == "hfu" || k == "goodput" || k.contains("fraction");
                if !n.is_finite() || (time && n < 0.0) {
                    return Some(format!("{p} = {n}"));
                }
                if frac && !(0.0..=1.0).contains(&n) {
                    return Some(format!("{p} = {n} outside [0, 1]"));
                }
                if path.ends_with("breakdown_s") && n < 0.0 {
                    return Some(format!("{p} = {n}"));
                }
            }
            invariant(x, &p)
        }),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| invariant(x, &format!("{path}[{i}]"))),
        _ => None,
    }
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
#[ignore = "long: `.ci/run` runs a bounded pass; CLUSTERSIM_FUZZ_SECS sets its length"]
fn fuzz_the_binary() {
    let secs: u64 = std::env::var("CLUSTERSIM_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("CLUSTERSIM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // A case is a hang past 90 s: the work budgets admit about a minute of valid work
    // (CLUSTERSIM_MAX_RUN_EVENTS 1e9; `run scenarios/llama3-70b-1k.yaml --replicas 60000`
    // takes 12 s on 2 quiet cores and over 30 s on a loaded machine).
    let case_timeout = Duration::from_secs(
        std::env::var("CLUSTERSIM_FUZZ_CASE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(90),
    );
    let bin = std::env::var("CLUSTERSIM_FUZZ_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_clustersim").to_string());
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{seed}"));
    let findings_dir = PathBuf::from(ROOT).join("target/fuzz-findings");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let start = Instant::now();
    let (mut executed, mut by_exit) = (0u64, std::collections::BTreeMap::<String, u64>::new());
    let mut findings: Vec<String> = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        let case = generate(&mut rng);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("case folder");
        for (name, text) in &case.files {
            std::fs::write(work.join(name), text).expect("case file");
        }
        let out = work.join("out");
        let mut args = case.args.clone();
        if !matches!(args[0].as_str(), "merge") {
            args.extend(["--out".into(), out.display().to_string()]);
        }
        let began = Instant::now();
        let mut child = Command::new(&bin)
            .args(&args)
            .current_dir(&work)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let mut hung = false;
        while child.try_wait().expect("wait").is_none() {
            if began.elapsed() > case_timeout {
                let _ = child.kill();
                hung = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let output = child.wait_with_output().expect("output");
        executed += 1;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let code = output.status.code();
        *by_exit
            .entry(if hung {
                "hang".into()
            } else {
                format!("{code:?}")
            })
            .or_default() += 1;
        let why = if hung {
            Some(format!("hang (over {} s)", case_timeout.as_secs()))
        } else {
            judge(code, &stderr, &out)
        };
        if let Some(why) = why {
            std::fs::create_dir_all(&findings_dir).expect("findings folder");
            let mut report = format!(
                "kind: {}\nwhy: {why}\ncommand: clustersim {}\nstderr:\n{}\n",
                case.kind,
                shell_words(&args),
                stderr.chars().take(3_000).collect::<String>()
            );
            for (name, text) in &case.files {
                report.push_str(&format!("--- {name}\n{text}\n"));
            }
            let file = findings_dir.join(format!("seed{seed}-case{executed}.txt"));
            std::fs::write(&file, report).expect("finding written");
            findings.push(format!("{} ({why}): {}", case.kind, file.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "fuzz: seed {seed}, {executed} executions in {:.0} s, exits {by_exit:?}, {} findings",
        start.elapsed().as_secs_f64(),
        findings.len()
    );
    assert!(findings.is_empty(), "findings:\n{}", findings.join("\n"));
}
