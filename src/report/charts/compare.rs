//! Comparison charts: one bar per design for time to train, cost, energy, MFU and goodput,
//! as PNG and SVG, titled and labelled in the embedded font (`report::fonts`).
//!
//! Time, cost and energy show a second, lighter bar per design with the goodput-adjusted
//! figure when the point simulated a run. Each metric gets its own file
//! (`compare-time.png`, ...) and an overview (`compare.png` / `compare.svg`) holds every
//! panel. Must not compute results: it only draws what the [`CompareTable`] holds.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Chart, DrawResult, render};
use crate::report::{ReportError, fonts};
use crate::sweep::compare::{CompareTable, Figures};

const GREY: RGBColor = RGBColor(110, 110, 110);

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One charted quantity: file stem, title, axis label, raw and goodput-adjusted values.
struct Metric {
    stem: &'static str,
    title: &'static str,
    unit: &'static str,
    raw: fn(&Figures) -> Option<f64>,
    effective: Option<fn(&Figures) -> Option<f64>>,
}

const METRICS: [Metric; 5] = [
    Metric {
        stem: "compare-time",
        title: "Time to train",
        unit: "days",
        raw: |f| Some(f.time_to_train_days),
        effective: Some(|f| f.effective_time_to_train_days),
    },
    Metric {
        stem: "compare-cost",
        title: "Cost to train",
        unit: "million USD",
        raw: |f| Some(f.cost_usd / 1e6),
        effective: Some(|f| f.effective_cost_usd.map(|c| c / 1e6)),
    },
    Metric {
        stem: "compare-energy",
        title: "Energy to train",
        unit: "MWh (facility)",
        raw: |f| Some(f.energy_mwh),
        effective: Some(|f| f.effective_energy_mwh),
    },
    Metric {
        stem: "compare-mfu",
        title: "Model FLOPs utilisation",
        unit: "MFU (%)",
        raw: |f| Some(f.mfu * 100.0),
        effective: None,
    },
    Metric {
        stem: "compare-goodput",
        title: "Goodput (run simulation)",
        unit: "goodput (%)",
        raw: |f| f.goodput.map(|g| g * 100.0),
        effective: None,
    },
];

/// Values of one metric per row: `(raw, adjusted)`; failed points give `None`.
fn values(t: &CompareTable, m: &Metric) -> Vec<(Option<f64>, Option<f64>)> {
    t.rows
        .iter()
        .map(|r| match &r.figures {
            Some(f) => ((m.raw)(f), m.effective.and_then(|e| e(f))),
            None => (None, None),
        })
        .collect()
}

fn has_data(t: &CompareTable, m: &Metric) -> bool {
    values(t, m).iter().any(|v| v.0.is_some())
}

fn short(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    let head: String = name.chars().take(max - 1).collect();
    head + "…"
}

fn human_count(x: f64) -> String {
    match x {
        x if x >= 1e12 => format!("{}T", fmt_value(x / 1e12)),
        x if x >= 1e9 => format!("{}B", fmt_value(x / 1e9)),
        x if x >= 1e6 => format!("{}M", fmt_value(x / 1e6)),
        x => format!("{x:.0}"),
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws one metric's bars on `area`.
fn draw_metric<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    t: &CompareTable,
    m: &Metric,
    scale: f64,
) -> DrawResult<DB> {
    let vals = values(t, m);
    let paired = vals.iter().any(|v| v.1.is_some());
    let n = vals.len().max(1);
    let max = vals
        .iter()
        .flat_map(|v| [v.0, v.1])
        .flatten()
        .fold(0.0f64, f64::max);
    let ymax = if max > 0.0 { max * 1.18 } else { 1.0 };
    let px = |x: f64| (x * scale).round() as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(m.title, (fonts::FAMILY, 22.0 * scale))
        .margin(px(12.0))
        .x_label_area_size(px(58.0))
        .y_label_area_size(px(72.0))
        // A segmented `0..k` range has k + 1 segments.
        .build_cartesian_2d((0..(n as i32 - 1).max(0)).into_segmented(), 0.0..ymax)?;
    let (w, _) = chart.plotting_area().dim_in_pixel();
    let seg = w as f64 / n as f64;
    // Design names fit their slot: shrink the font, then shorten the name.
    let label_size = (14.0 * scale).min(seg / 8.0).max(9.0);
    let fit = ((seg / (label_size * 0.56)) as usize).max(4);
    let names: Vec<String> = t.rows.iter().map(|r| short(&r.name, fit)).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.15))
        .y_labels(8)
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("design")
        .y_desc(m.unit)
        .label_style((fonts::FAMILY, label_size))
        .axis_desc_style((fonts::FAMILY, 15.0 * scale))
        .draw()?;
    let layout = Layout { seg, scale, paired };
    for (i, &v) in vals.iter().enumerate() {
        draw_design(&mut chart, i, v, &layout)?;
    }
    if paired {
        let note = "solid: step-level   light: goodput-adjusted (failures, restarts, checkpoints)";
        area.draw(&Text::new(
            note,
            (px(90.0), px(34.0)),
            (fonts::FAMILY, 12.0 * scale)
                .into_font()
                .color(&BLACK.mix(0.7)),
        ))?;
    }
    Ok(())
}

/// What every design's bars of one panel share.
struct Layout {
    /// Pixels per design slot.
    seg: f64,
    /// Text and margin scale of the panel.
    scale: f64,
    /// Whether designs have a goodput-adjusted bar beside the raw one.
    paired: bool,
}

type BarCoord = Cartesian2d<SegmentedCoord<RangedCoordi32>, RangedCoordf64>;

/// Design `i`'s bars (raw, then goodput-adjusted) with their values, or "no result".
fn draw_design<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, BarCoord>,
    i: usize,
    (raw, eff): (Option<f64>, Option<f64>),
    l: &Layout,
) -> DrawResult<DB> {
    let px = |x: f64| (x * l.scale).round() as i32;
    let value_font = (fonts::FAMILY, 13.0 * l.scale).into_font();
    let color = PALETTE[i % PALETTE.len()];
    let x0 = SegmentValue::Exact(i as i32);
    let x1 = SegmentValue::Exact(i as i32 + 1);
    let side = (l.seg * 0.14) as u32;
    let half = (l.seg * 0.5) as u32;
    let bars = [
        (
            raw,
            color.filled(),
            if l.paired {
                (side, half + 1)
            } else {
                (side, side)
            },
        ),
        (eff, color.mix(0.45).filled(), (half + 1, side)),
    ];
    if raw.is_none() {
        let text = EmptyElement::at((SegmentValue::CenterOf(i as i32), 0.0))
            + Text::new(
                "no result",
                (0, -px(6.0)),
                TextStyle::from(value_font.clone())
                    .color(&GREY)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            );
        chart.draw_series([text])?;
    }
    for (v, style, (left, right)) in bars {
        let Some(v) = v else { continue };
        let mut rect = Rectangle::new([(x0.clone(), 0.0), (x1.clone(), v)], style);
        rect.set_margin(0, 0, left, right);
        chart.draw_series([rect])?;
        let dx = (left as i32 - right as i32) / 2;
        let text = EmptyElement::at((SegmentValue::CenterOf(i as i32), v))
            + Text::new(
                fmt_value(v),
                (dx, -px(6.0)),
                TextStyle::from(value_font.clone()).pos(Pos::new(HPos::Center, VPos::Bottom)),
            );
        chart.draw_series([text])?;
    }
    Ok(())
}

/// One metric's chart (`compare-time.png`, ...).
struct Single<'a> {
    table: &'a CompareTable,
    metric: &'a Metric,
}

impl Chart for Single<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        draw_metric(root, self.table, self.metric, 1.0)
    }
}

/// Every metric's panel, three to a row (`compare.png`).
struct Overview<'a> {
    table: &'a CompareTable,
    metrics: &'a [&'a Metric],
}

impl Chart for Overview<'_> {
    fn size(&self) -> (u32, u32) {
        (
            1500,
            440 * self.metrics.len().div_ceil(3).max(1) as u32 + 50,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let t = self.table;
        root.fill(&WHITE)?;
        let title = format!("{}: training {} tokens", t.name, human_count(t.tokens));
        let root = root.titled(&title, (fonts::FAMILY, 26))?;
        let cols = 3;
        let rows = self.metrics.len().div_ceil(cols);
        let panels = root.split_evenly((rows, cols));
        for (panel, m) in panels.iter().zip(self.metrics) {
            draw_metric(panel, t, m, 0.9)?;
        }
        Ok(())
    }
}

/// Writes every chart of the comparison into `dir`: `compare.png` / `compare.svg` (all
/// panels) and one PNG + SVG per metric that has data (goodput only when a run was
/// simulated). Returns the paths written.
pub fn compare_charts(t: &CompareTable, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let metrics: Vec<&Metric> = METRICS.iter().filter(|m| has_data(t, m)).collect();
    let overview = Overview {
        table: t,
        metrics: &metrics,
    };
    let mut names = render(dir, "compare", &overview)?;
    for metric in &metrics {
        names.extend(render(dir, metric.stem, &Single { table: t, metric })?);
    }
    Ok(names.iter().map(|n| dir.join(n)).collect())
}

#[cfg(test)]
mod tests {
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
        if std::env::var_os("CLUSTERSIM_KEEP_CHARTS").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            println!("charts in {}", dir.display());
        }
    }
}
