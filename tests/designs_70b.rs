//! The four-design Llama 3 70B comparison end to end (`scenarios/sweeps/70b-designs.yaml`):
//! 1,024 H100 NDR rail-optimized, the same on a 2:1 oversubscribed fabric, 512 B200 and
//! 1,024 H200, each with its best plan; the table, the goodput-adjusted columns (the base
//! scenario has `faults:`/`checkpoint:`/`run:`) and every chart.
//!
//! Four plan searches with full 1,024-GPU replays and run simulations: about ten seconds in
//! release, many minutes in debug, so debug builds skip it (CI runs `cargo test --release`).

use std::path::Path;

use clustersim::config;
use clustersim::cost::Prices;
use clustersim::report::charts;
use clustersim::sweep::{compare, spec};

#[test]
#[cfg_attr(debug_assertions, ignore = "slow in debug builds; run with --release")]
fn seventy_b_designs_produce_table_and_charts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sweeps");
    let sw = spec::SweepSpec::load(&dir.join("70b-designs.yaml")).unwrap();
    let points = spec::expand(&sw, &dir);
    let opts = compare::CompareOptions {
        tokens: sw.tokens().unwrap().unwrap(),
        plan: sw.plan,
        top: sw.top.unwrap_or(3),
        prices: Prices::with_overrides(&sw.prices).unwrap(),
        progress: false,
    };
    let rows = compare::run_points(
        &points,
        |p| config::load_scenario(p.scenario.as_deref(), &p.overrides),
        &opts,
    )
    .unwrap();
    let table = compare::CompareTable {
        name: sw.name.clone(),
        points: points.len(),
        tokens: opts.tokens,
        shard: None,
        rows,
    };
    let names: Vec<&str> = table.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["h100-ndr-rail", "h100-ndr-2to1", "b200-512", "h200-1k"]
    );
    let fig = |name: &str| {
        let row = table.rows.iter().find(|r| r.name == name).unwrap();
        row.figures
            .clone()
            .unwrap_or_else(|| panic!("{name}: {:?}", row.error))
    };
    for r in &table.rows {
        let f = fig(&r.name);
        let g = f.goodput.expect("the base scenario simulates a run");
        assert!(g > 0.5 && g < 1.0, "{}: goodput {g}", r.name);
        // Goodput-adjusted = raw / goodput, for time, cost and energy.
        let eff_days = f.effective_time_to_train_days.unwrap();
        assert!((eff_days * g / f.time_to_train_days - 1.0).abs() < 1e-6);
        assert!((f.effective_energy_mwh.unwrap() * g / f.energy_mwh - 1.0).abs() < 1e-6);
        assert!(f.effective_cost_usd.unwrap() > f.cost_usd);
        assert!(f.mfu > 0.2 && f.mfu < 0.9, "{}: MFU {}", r.name, f.mfu);
        assert!(f.memory_gb > 0.0);
    }
    assert_eq!(table.rows[2].gpus, 512);
    // Same GPUs on a 2:1 fabric are never faster; H200 (same compute, more HBM) is at
    // least as fast as H100 on the full fabric.
    let (rail, over) = (fig("h100-ndr-rail"), fig("h100-ndr-2to1"));
    assert!(over.step_time_s >= rail.step_time_s * (1.0 - 1e-9));
    assert!(fig("h200-1k").step_time_s <= rail.step_time_s * (1.0 + 1e-9));

    let out = std::env::temp_dir().join(format!("clustersim-70b-{}", std::process::id()));
    compare::write_table(&out, &table).unwrap();
    let written = charts::compare::compare_charts(&table, &out).unwrap();
    assert_eq!(written.len(), 12);
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with(compare::COMPARE_CSV_HEADER));
    assert_eq!(compare::read_table(&out).unwrap(), table);
    for stem in ["compare", "compare-time", "compare-cost", "compare-energy"] {
        for ext in ["png", "svg"] {
            let p = out.join(format!("{stem}.{ext}"));
            assert!(
                std::fs::metadata(&p).unwrap().len() > 1000,
                "{}",
                p.display()
            );
        }
    }
    for stem in ["compare-mfu", "compare-goodput"] {
        assert!(out.join(format!("{stem}.png")).is_file());
    }
    let _ = std::fs::remove_dir_all(&out);
}
