//! `--timeline all` is sized before the step runs: the estimate is close to the file
//! written, a timeline above `--max-timeline-gb` is refused (exit 2) with the estimate and
//! how to narrow the ranks, and `--gzip-timeline` writes the same trace gzipped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clustersim::engine::TraceRanks;
use clustersim::plan::RankGrid;
use clustersim::report::trace::estimate_timeline_bytes;

fn clustersim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .output()
        .expect("the binary starts")
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn the_estimate_is_within_ten_percent_of_the_written_file() {
    let s = clustersim::config::load_scenario(None, &[]).unwrap();
    let grid = RankGrid::new(&s.parallelism);
    let graph = clustersim::sim::build_graph(&s);
    for (arg, ranks) in [
        ("all", TraceRanks::All),
        ("0,17,40", TraceRanks::Some(vec![0, 17, 40])),
    ] {
        let dir = scratch(&format!("timeline-size-{}", arg.len()));
        let out = clustersim(&["run", "--timeline", arg, "--out", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = std::fs::metadata(dir.join("timeline.json")).unwrap().len();
        let estimate = estimate_timeline_bytes(&graph, &grid, 8, &ranks);
        let ratio = estimate as f64 / written as f64;
        assert!(
            (0.9..1.1).contains(&ratio),
            "--timeline {arg}: estimated {estimate}, wrote {written}"
        );
    }
}

#[test]
fn a_timeline_above_the_limit_is_refused_before_simulating() {
    let dir = scratch("timeline-refused");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/llama3-405b-16k.yaml"
    );
    let out = clustersim(&[
        "run",
        scenario,
        "--timeline",
        "all",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for want in [
        "16384 ranks would write about ",
        " GB",
        "--max-timeline-gb 4",
        "--timeline representative",
        "--gzip-timeline",
    ] {
        assert!(stderr.contains(want), "`{want}` missing from: {stderr}");
    }
    assert!(!dir.exists(), "nothing is written");
    // A lower limit applies to a small scenario too.
    let out = clustersim(&["run", "--timeline", "all", "--max-timeline-gb", "0.001"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn gzip_timeline_writes_the_same_trace_compressed_and_reproducibly() {
    let (plain, gz, gz2) = (
        scratch("timeline-plain"),
        scratch("timeline-gz"),
        scratch("timeline-gz2"),
    );
    for (dir, extra) in [
        (&plain, None),
        (&gz, Some("--gzip-timeline")),
        (&gz2, Some("--gzip-timeline")),
    ] {
        let mut args = vec!["run", "--timeline", "0,8", "--out", dir.to_str().unwrap()];
        args.extend(extra);
        let out = clustersim(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!gz.join("timeline.json").exists());
    let compressed = std::fs::read(gz.join("timeline.json.gz")).unwrap();
    assert_eq!(
        compressed,
        std::fs::read(gz2.join("timeline.json.gz")).unwrap()
    );
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(text, std::fs::read(plain.join("timeline.json")).unwrap());
    assert!(compressed.len() * 4 < text.len());
    // Writing the plain timeline again removes the gzipped one (one run's files only).
    let out = clustersim(&["run", "--timeline", "0,8", "--out", gz.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(gz.join("timeline.json").exists() && !gz.join("timeline.json.gz").exists());
}
