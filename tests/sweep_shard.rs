//! Sweeps end to end with in-code scenarios: expansion, parallel execution, and sharded
//! runs merging into the unsharded sweep's files byte for byte.

use std::path::{Path, PathBuf};

use clustersim::config::Scenario;
use clustersim::fixtures::toy_scenario;
use clustersim::sweep::compare::{self, CompareOptions, CompareTable};
use clustersim::sweep::spec::{self, PlanChoice, Shard, SweepPoint, SweepSpec};

const SWEEP: &str = "\
name: toy-designs
tokens: 10B
designs:
  - { name: ndr, set: [] }
  - { name: hdr-2to1, set: [cluster.node.nic_gbps=200, cluster.fabric.oversubscription=2] }
axes:
  cluster.nodes: [2, 4]
  training.global_batch: [32, 64]
";

/// Stands in for `config::load_scenario` until it lands: a toy scenario with the few keys
/// this sweep uses applied by hand (DP follows the node count).
fn load(p: &SweepPoint) -> Result<Scenario, String> {
    let mut s = toy_scenario(2, 2, 2, 8, 32);
    for o in &p.overrides {
        let (k, v) = o.split_once('=').ok_or("bad override")?;
        let num: f64 = v.parse().map_err(|_| o.to_string())?;
        match k {
            "cluster.nodes" => s.cluster.nodes = num as u64,
            "cluster.node.nic_gbps" => s.cluster.node.nic_gbps = num,
            "cluster.fabric.oversubscription" => s.cluster.fabric.oversubscription = num,
            "training.global_batch" => s.training.global_batch = num as u64,
            _ => return Err(format!("unknown key {k}")),
        }
    }
    let gpus = s.cluster.total_gpus();
    s.parallelism.dp = gpus / (s.parallelism.tp * s.parallelism.pp);
    Ok(s)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clustersim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(
    points: &[SweepPoint],
    total: usize,
    shard: Option<Shard>,
    opts: &CompareOptions,
) -> CompareTable {
    let pts = spec::shard(points.to_vec(), shard);
    CompareTable {
        name: "toy-designs".into(),
        points: total,
        tokens: opts.tokens,
        shard,
        rows: compare::run_points(&pts, load, opts).unwrap(),
    }
}

fn files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join("compare.csv")).unwrap(),
        std::fs::read(dir.join("compare.json")).unwrap(),
    )
}

#[test]
fn shards_merge_into_the_unsharded_sweep_byte_for_byte() {
    let sw = SweepSpec::parse(Path::new("toy.yaml"), SWEEP).unwrap();
    let points = spec::expand(&sw, Path::new("."));
    assert_eq!(points.len(), 8);
    let opts = CompareOptions {
        tokens: sw.tokens().unwrap().unwrap(),
        ..CompareOptions::default()
    };
    let full = run(&points, 8, None, &opts);
    assert!(full.rows.iter().all(|r| r.figures.is_some()), "{full:?}");
    let full_dir = tmp("full");
    compare::write_table(&full_dir, &full).unwrap();

    let mut shard_dirs = Vec::new();
    for i in 0..3 {
        let t = run(&points, 8, Some(Shard { index: i, count: 3 }), &opts);
        let d = tmp(&format!("shard{i}"));
        compare::write_table(&d, &t).unwrap();
        shard_dirs.push(d);
    }
    // Merge in a scrambled order: the result must not depend on it.
    shard_dirs.reverse();
    let tables = shard_dirs
        .iter()
        .map(|d| compare::read_table(d).unwrap())
        .collect();
    let merged = compare::merge(tables).unwrap();
    let merged_dir = tmp("merged");
    compare::write_table(&merged_dir, &merged).unwrap();
    assert_eq!(files(&merged_dir), files(&full_dir));

    // A missing shard is an error, not a silently short table.
    let partial = vec![compare::read_table(&shard_dirs[0]).unwrap()];
    assert!(compare::merge(partial).is_err());
    for d in shard_dirs.iter().chain([&full_dir, &merged_dir]) {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn designs_rank_as_expected_and_cost_follows_time() {
    let sw = SweepSpec::parse(Path::new("toy.yaml"), SWEEP).unwrap();
    let points = spec::expand(&sw, Path::new("."));
    let t = run(&points, 8, None, &CompareOptions::default());
    let f = |i: usize| t.rows[i].figures.clone().unwrap();
    // Same plan and batch, slower fabric: never faster.
    assert!(f(4).step_time_s >= f(0).step_time_s);
    // Rental cost = rate x GPU-hours for the training time.
    for r in &t.rows {
        let x = r.figures.as_ref().unwrap();
        let hours = x.time_to_train_days * 24.0;
        let want = 2.5 * r.gpus as f64 * hours;
        assert!(
            (x.cost_usd / want - 1.0).abs() < 1e-6,
            "{} vs {want}",
            x.cost_usd
        );
    }
    let csv = compare::to_csv(&t);
    let header = compare::COMPARE_CSV_HEADER.split(',').count();
    assert!(csv.lines().all(|l| l.split(',').count() == header), "{csv}");
    let mut failed = t.clone();
    failed.rows[0].figures = None;
    failed.rows[0].error = Some("no plan fits".into());
    let csv = compare::to_csv(&failed);
    assert!(csv.lines().all(|l| l.split(',').count() == header), "{csv}");
    let text = compare::table_text(&t);
    assert!(text.contains("ndr cluster.nodes=2"), "{text}");
}

#[test]
fn best_plan_per_point_is_never_slower_than_the_stated_plan() {
    let p = SweepPoint {
        index: 0,
        name: "toy".into(),
        scenario: None,
        overrides: vec!["cluster.nodes=1".into()],
        origins: Vec::new(),
    };
    let as_is =
        compare::run_points(std::slice::from_ref(&p), load, &CompareOptions::default()).unwrap();
    let best_opts = CompareOptions {
        plan: PlanChoice::Best,
        top: 2,
        ..CompareOptions::default()
    };
    let best = compare::run_points(&[p], load, &best_opts).unwrap();
    let (a, b) = (
        as_is[0].figures.as_ref().unwrap(),
        best[0].figures.as_ref().unwrap(),
    );
    assert!(b.step_time_s <= a.step_time_s, "{} vs {}", b.plan, a.plan);
}
