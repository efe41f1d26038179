//! Tests of the comparison charts: names, colours, label placement, the goodput axis.

use super::*;
use crate::sweep::compare::CompareRow;

fn figures(days: f64, goodput: Option<f64>) -> Figures {
    let g = goodput.unwrap_or(1.0);
    Figures {
        plan: "tp8 pp4 dp32 mb1 1f1b selective z1".into(),
        step_time_s: 10.0,
        tokens_per_s: 1e6,
        mfu: 0.42,
        tflops_per_gpu: 400.0,
        memory_gb: 60.0,
        bubble_fraction: 0.1,
        tp_exposed_s: 0.1,
        pp_exposed_s: 0.1,
        dp_exposed_s: 0.1,
        ep_exposed_s: 0.0,
        time_to_train_days: days,
        gpu_hours: days * 24.0 * 1024.0,
        energy_mwh: days * 30.0,
        cost_usd: days * 24.0 * 1024.0 * 2.5,
        usd_per_million_tokens: 1.0,
        capital_usd: 4e8,
        facility_kw: 1400.0,
        goodput,
        effective_time_to_train_days: goodput.map(|_| days / g),
        effective_cost_usd: goodput.map(|_| days * 24.0 * 1024.0 * 2.5 / g),
        effective_energy_mwh: goodput.map(|_| days * 30.0 / g),
    }
}

/// A four-design table (one failed point), as the 70B designs sweep gives.
pub(crate) fn table(goodput: bool) -> CompareTable {
    let names = [
        "h100-ndr-rail",
        "h100-ndr-2to1",
        "b200-512",
        "h200-1k",
        "broken",
    ];
    let days = [31.0, 33.5, 22.0, 29.0, 0.0];
    let rows = names
        .iter()
        .zip(days)
        .enumerate()
        .map(|(i, (name, d))| CompareRow {
            index: i,
            name: name.to_string(),
            gpu: "h100".into(),
            gpus: 1024,
            fabric: "rail-optimized 8x400G 1:1".into(),
            figures: (d > 0.0).then(|| figures(d, goodput.then_some(0.9 - 0.02 * i as f64))),
            error: (d == 0.0).then(|| "no plan fits".into()),
        })
        .collect();
    CompareTable {
        name: "70b-designs".into(),
        points: 5,
        tokens: 1e12,
        shard: None,
        rows,
    }
}

/// `n` designs with long names and close, paired values (the fabrics sweep, widened).
fn crowded(n: usize) -> CompareTable {
    let mut t = table(true);
    t.rows = (0..n)
        .map(|i| CompareRow {
            index: i,
            name: format!(
                "cluster.node.nic_gbps={} cluster.fabric.oversubscription={}",
                200 * (1 + i / 3),
                1 << (i % 3)
            ),
            gpu: "h100".into(),
            gpus: 1024,
            fabric: "fat tree".into(),
            figures: Some(figures(
                15.2 - 0.01 * i as f64,
                Some(0.978 + 0.0001 * i as f64),
            )),
            error: None,
        })
        .collect();
    t
}

#[test]
fn full_design_names_are_in_the_legend_and_the_svg() {
    let t = crowded(6);
    let single = Single {
        table: &t,
        metric: &METRICS[0],
    };
    assert!(single.numbered(), "these names cannot fit their slots");
    let legend = single.legend();
    for (i, r) in t.rows.iter().enumerate() {
        assert_eq!(legend[i].0, format!("{}: {}", i + 1, r.name));
    }
    assert!(
        legend
            .iter()
            .any(|e| e.0.starts_with("light: goodput-adjusted"))
    );
    // Short names label the axis themselves.
    let short = table(true);
    let s = Single {
        table: &short,
        metric: &METRICS[0],
    };
    assert!(!s.numbered());
    assert_eq!(s.legend()[0].0, "h100-ndr-rail");
    assert_eq!(s.legend()[4].0, "broken (no result)");

    let dir = std::env::temp_dir().join(format!("clustersim-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    compare_charts(&t, &dir).unwrap();
    for stem in ["compare", "compare-time", "compare-goodput"] {
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        for r in &t.rows {
            assert!(svg.contains(&r.name), "{stem}: {} missing", r.name);
        }
    }
    keep_or_remove(&dir);
}

#[test]
fn designs_get_distinct_colours() {
    let colours: Vec<RGBColor> = (0..16).map(design_color).collect();
    for (i, a) in colours.iter().enumerate() {
        for (j, b) in colours.iter().enumerate().skip(i + 1) {
            let d = [(a.0, b.0), (a.1, b.1), (a.2, b.2)]
                .iter()
                .map(|&(x, y)| (x as f64 - y as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(d > 40.0, "designs {i} and {j}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn value_labels_never_overprint_each_other_or_a_bar() {
    // Ten paired designs in an overview-sized panel, and one in a wide chart.
    for (n, w, scale) in [(10, 500, 0.9), (12, 500, 0.9), (3, 900, 1.0)] {
        let t = crowded(n);
        let mut buf = vec![0u8; (w * 440 * 3) as usize];
        let root = BitMapBackend::with_buffer(&mut buf, (w, 440)).into_drawing_area();
        let (chart, panel, vals) = axes(&root, &t, &METRICS[0], scale, true).unwrap();
        let size = value_font_size(&vals, &panel, false);
        let (labels, bars) = value_labels(&root, &chart, &vals, &panel, size, false);
        assert_eq!(labels.len(), 2 * n);
        for (i, a) in labels.iter().enumerate() {
            for b in &bars {
                assert!(
                    !a.at.overlaps(b),
                    "{n}: `{}` {:?} on bar {b:?}",
                    a.text,
                    a.at
                );
            }
            for b in &labels[i + 1..] {
                assert!(
                    !a.at.overlaps(&b.at),
                    "{n}: `{}` and `{}` overprint",
                    a.text,
                    b.text
                );
            }
            // Inside the panel.
            assert!(
                a.at.y0 >= 0 && a.at.x0 >= 0 && a.at.x1 <= w as i32,
                "{:?}",
                a.at
            );
        }
    }
}

#[test]
fn goodput_axis_shows_a_one_percent_difference() {
    let (low, high) = value_axis(&[97.8, 98.8], true);
    assert!((95.0..=97.8).contains(&low), "{low}");
    assert!(high < 101.0, "{high}");
    // One percent is at least a third of the axis, not 1 % of it.
    assert!(1.0 / (high - low) > 0.3, "{low}..{high}");
    // Equal values still get a readable range; other metrics start at zero.
    let (low, high) = value_axis(&[97.83; 4], true);
    assert!(low > 95.0 && high > 97.83 && high < 99.0, "{low}..{high}");
    assert_eq!(value_axis(&[15.2, 15.5], false).0, 0.0);
    assert!(
        METRICS
            .iter()
            .filter(|m| m.zoom)
            .all(|m| m.stem == "compare-goodput")
    );
}

fn keep_or_remove(dir: &Path) {
    if std::env::var_os("CLUSTERSIM_KEEP_CHARTS").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        println!("charts in {}", dir.display());
    }
}

#[test]
fn every_metric_is_charted_as_png_and_svg() {
    let dir = std::env::temp_dir().join(format!("clustersim-charts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Without a run there is no goodput chart.
    let files = compare_charts(&table(false), &dir).unwrap();
    assert_eq!(files.len(), 10);
    let files = compare_charts(&table(true), &dir).unwrap();
    // Overview + 5 metrics, PNG and SVG each.
    assert_eq!(files.len(), 12);
    for f in &files {
        assert!(
            std::fs::metadata(f).unwrap().len() > 1000,
            "{}",
            f.display()
        );
    }
    let svg = std::fs::read_to_string(dir.join("compare-time.svg")).unwrap();
    assert!(svg.contains("Time to train") && svg.contains("h100-ndr-rail"));
    assert!(svg.contains("days"));
    keep_or_remove(&dir);
}
