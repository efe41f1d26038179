//! `timeline.json` of a tiny scenario against a checked-in golden file, and the structural
//! invariants every Chrome trace we write must satisfy.
//!
//! Regenerate the golden file after an intended change with
//! `UPDATE_GOLDEN=1 cargo test --test report_golden`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use clustersim::engine::TraceRanks;
use clustersim::fixtures::toy_scenario;
use clustersim::plan::RankGrid;
use clustersim::report::{ReportOptions, TIMELINE_FILE, write_step_outputs};
use clustersim::sim::{StepOptions, simulate_step};
use serde_json::Value;

const GOLDEN: &str = "tests/golden/toy_2x2x1_timeline.json";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clustersim-golden-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

/// `timeline.json` of toy_scenario(tp=2, pp=2, dp=1, 4 layers, 4 sequences), all ranks.
fn toy_timeline(name: &str) -> String {
    let s = toy_scenario(2, 2, 1, 4, 4);
    let grid = RankGrid::new(&s.parallelism);
    let opts = ReportOptions {
        timeline: TraceRanks::All,
        charts: false,
        ..Default::default()
    };
    let step = StepOptions {
        trace: opts.required_trace(&grid),
        ..Default::default()
    };
    let result = simulate_step(&s, &step).expect("toy scenario simulates");
    let dir = scratch(name);
    write_step_outputs(&dir, &s, &result, &opts).expect("outputs are written");
    let text = fs::read_to_string(dir.join(TIMELINE_FILE)).expect("timeline.json exists");
    fs::remove_dir_all(&dir).ok();
    text
}

#[test]
fn timeline_matches_golden() {
    let got = toy_timeline("golden");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, &got).expect("golden file is writable");
        return;
    }
    let want = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "timeline.json differs from {GOLDEN} at line {}:\n  got:  {}\n  want: {}\n\
             If the change is intended, rerun with UPDATE_GOLDEN=1.",
            line + 1,
            got.lines().nth(line).unwrap_or("<end>"),
            want.lines().nth(line).unwrap_or("<end>")
        );
    }
}

/// Integer nanoseconds of a microsecond field printed with three decimals.
fn ns(v: &Value) -> i64 {
    (v.as_f64().expect("a number") * 1000.0).round() as i64
}

#[test]
fn timeline_is_a_well_formed_chrome_trace() {
    let v: Value = serde_json::from_str(&toy_timeline("invariants")).expect("valid JSON");
    assert_eq!(v["displayTimeUnit"], "ms");
    let events = v["traceEvents"].as_array().expect("traceEvents array");
    let mut processes = BTreeSet::new();
    let mut threads = BTreeSet::new();
    for e in events.iter().filter(|e| e["ph"] == "M") {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        match e["name"].as_str().unwrap() {
            "process_name" => assert!(processes.insert(key.0), "pid {} named twice", key.0),
            "thread_name" => assert!(threads.insert(key), "thread {key:?} named twice"),
            "process_sort_index" | "thread_sort_index" => {}
            other => panic!("unexpected metadata {other}"),
        }
    }
    let mut per_thread: BTreeMap<(u64, u64), Vec<(i64, i64)>> = BTreeMap::new();
    let mut ranks = BTreeSet::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        assert!(processes.contains(&key.0), "pid of {e} has no process_name");
        assert!(threads.contains(&key), "tid of {e} has no thread_name");
        let (ts, dur) = (ns(&e["ts"]), ns(&e["dur"]));
        assert!(ts >= 0 && dur >= 0, "{e}");
        assert!(!e["name"].as_str().unwrap().is_empty());
        assert!(!e["cat"].as_str().unwrap().is_empty());
        ranks.insert(e["args"]["rank"].as_u64().unwrap());
        per_thread.entry(key).or_default().push((ts, ts + dur));
    }
    assert_eq!(ranks.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    for (key, mut spans) in per_thread {
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "thread {key:?}: {:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
    }
    let names: BTreeSet<&str> = events.iter().filter_map(|e| e["name"].as_str()).collect();
    for want in [
        "attn fwd L0 mb0",
        "tp all-gather mb0",
        "pp send fwd mb0",
        "optimizer",
    ] {
        assert!(names.contains(want), "no event named `{want}`");
    }
}
