//! Comparison charts: one bar per design for time to train, cost, energy, MFU and goodput,
//! as PNG and SVG, titled and labelled in the embedded font (`report::fonts`).
//!
//! Time, cost and energy show a second, lighter bar per design with the goodput-adjusted
//! figure when the point simulated a run. Each metric gets its own file
//! (`compare-time.png`, ...) and an overview (`compare.png` / `compare.svg`) holds every
//! panel. Designs are told apart by colour and by a legend with their full names (the axis
//! shows the names when all fit, else numbers); value labels never overprint each other
//! or a bar; goodput, which differs by fractions of a percent between designs, gets an
//! axis that starts near its smallest value (and says so). Must not compute results: it
//! only draws what the [`CompareTable`] holds.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::layout::{TextBox, nice_step, place_clear, text_size};
use super::{Chart, DrawErr, DrawResult, draw_legend, legend_height, render, tick};
use crate::report::{ReportError, fonts};
use crate::sweep::compare::{CompareTable, Figures};

const GREY: RGBColor = RGBColor(110, 110, 110);

/// Ten well-separated colours (Tableau 10); designs beyond them get hues spread by the
/// golden angle ([`design_color`]).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Opacity of the goodput-adjusted bar over white.
const LIGHT: f64 = 0.45;

/// Space above the tallest bar for its value labels, as a share of the axis range.
const HEADROOM: f64 = 0.2;

/// The colour of design `i` (0-based).
pub(crate) fn design_color(i: usize) -> RGBColor {
    if let Some(&c) = PALETTE.get(i) {
        return c;
    }
    let hue = (i - PALETTE.len()) as f64 * 137.508 + 15.0;
    let lightness = if i.is_multiple_of(2) { 0.32 } else { 0.55 };
    let (r, g, b) = HSLColor(hue.rem_euclid(360.0) / 360.0, 0.75, lightness)
        .to_rgba()
        .rgb();
    RGBColor(r, g, b)
}

/// One charted quantity: file stem, title, axis label, raw and goodput-adjusted values.
struct Metric {
    stem: &'static str,
    title: &'static str,
    unit: &'static str,
    raw: fn(&Figures) -> Option<f64>,
    effective: Option<fn(&Figures) -> Option<f64>>,
    /// The axis starts near the smallest value instead of at zero (see [`value_axis`]).
    zoom: bool,
}

const METRICS: [Metric; 5] = [
    Metric {
        stem: "compare-time",
        title: "Time to train",
        unit: "days",
        raw: |f| Some(f.time_to_train_days),
        effective: Some(|f| f.effective_time_to_train_days),
        zoom: false,
    },
    Metric {
        stem: "compare-cost",
        title: "Cost to train",
        unit: "million USD",
        raw: |f| Some(f.cost_usd / 1e6),
        effective: Some(|f| f.effective_cost_usd.map(|c| c / 1e6)),
        zoom: false,
    },
    Metric {
        stem: "compare-energy",
        title: "Energy to train",
        unit: "MWh (facility)",
        raw: |f| Some(f.energy_mwh),
        effective: Some(|f| f.effective_energy_mwh),
        zoom: false,
    },
    Metric {
        stem: "compare-mfu",
        title: "Model FLOPs utilisation",
        unit: "MFU (%)",
        raw: |f| Some(f.mfu * 100.0),
        effective: None,
        zoom: false,
    },
    Metric {
        stem: "compare-goodput",
        title: "Goodput (run simulation)",
        unit: "goodput (%)",
        raw: |f| f.goodput.map(|g| g * 100.0),
        effective: None,
        zoom: true,
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

/// The value axis `(low, high)`: from zero, or for a zoomed metric from a round value below
/// the smallest (so that a difference of a percent fills the panel instead of a pixel),
/// up to the largest plus [`HEADROOM`] for the labels.
fn value_axis(values: &[f64], zoom: bool) -> (f64, f64) {
    let finite = || values.iter().copied().filter(|v| v.is_finite());
    let max = finite().fold(0.0f64, f64::max);
    let min = finite().fold(f64::INFINITY, f64::min);
    if max <= 0.0 {
        return (0.0, 1.0);
    }
    let low = if zoom && min > 0.0 {
        let span = max - min;
        let pad = (span * 0.5).max(max * 0.005);
        let step = nice_step((span + 2.0 * pad) / 5.0);
        (((min - pad) / step).floor() * step).max(0.0)
    } else {
        0.0
    };
    (low, max + (max - low) * HEADROOM)
}

/// Whether every design name fits its slot of `slot` pixels as an axis label at `size` px.
fn names_fit(names: &[String], slot: f64, size: f64) -> bool {
    names
        .iter()
        .all(|n| text_size(n, size).0 as f64 <= slot - 6.0)
}

/// Axis labels of the designs: their names, or `1`, `2`, ... when `numbered`.
fn design_ticks(t: &CompareTable, numbered: bool) -> Vec<String> {
    (0..t.rows.len())
        .map(|i| match numbered {
            true => (i + 1).to_string(),
            false => t.rows[i].name.clone(),
        })
        .collect()
}

/// The legend: every design's colour and full name (numbered when the axis shows
/// numbers), then what solid and light bars mean when designs have both.
fn legend_entries(t: &CompareTable, numbered: bool, paired: bool) -> Vec<(String, RGBColor)> {
    let mut out: Vec<(String, RGBColor)> = t
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut label = match numbered {
                true => format!("{}: {}", i + 1, r.name),
                false => r.name.clone(),
            };
            if r.figures.is_none() {
                label += " (no result)";
            }
            (label, design_color(i))
        })
        .collect();
    if paired {
        let light = blend_on_white(GREY, LIGHT);
        out.push((String::new(), GREY));
        out.push(("solid: step-level".into(), GREY));
        out.push((
            "light: goodput-adjusted (failures, restarts, checkpoints)".into(),
            light,
        ));
    }
    out
}

/// `c` at opacity `alpha` over white, as one opaque colour.
fn blend_on_white(c: RGBColor, alpha: f64) -> RGBColor {
    let mix = |v: u8| (255.0 - (255.0 - v as f64) * alpha).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// Whether any design of `t` has a goodput-adjusted figure for a metric that has one.
fn any_paired(t: &CompareTable, metrics: &[&Metric]) -> bool {
    metrics
        .iter()
        .any(|m| values(t, m).iter().any(|v| v.1.is_some()))
}

/// Pixel geometry of one panel's plot, shared by its bars and labels.
struct Panel {
    /// Pixels per design slot.
    seg: f64,
    /// Text and margin scale of the panel.
    scale: f64,
    /// Whether designs have a goodput-adjusted bar beside the raw one.
    paired: bool,
    /// Bottom of the value axis.
    low: f64,
    /// Per design: whether its point failed (no figures at all).
    failed: Vec<bool>,
}

impl Panel {
    fn px(&self, x: f64) -> i32 {
        (x * self.scale).round() as i32
    }

    /// Left and right margins inside the slot of the raw (`0`) or adjusted (`1`) bar.
    fn margins(&self, bar: usize) -> (u32, u32) {
        let side = (self.seg * 0.14) as u32;
        let half = (self.seg * 0.5) as u32;
        match (bar, self.paired) {
            (0, true) => (side, half + 1),
            (0, false) => (side, side),
            _ => (half + 1, side),
        }
    }
}

type BarCoord = Cartesian2d<SegmentedCoord<RangedCoordi32>, RangedCoordf64>;

/// Draws one metric's panel on `area`: axes, bars and value labels.
fn draw_metric<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    t: &CompareTable,
    m: &Metric,
    scale: f64,
    numbered: bool,
) -> DrawResult<DB> {
    let (mut chart, panel, vals) = axes(area, t, m, scale, numbered)?;
    draw_bars(&mut chart, &vals, &panel)?;
    draw_value_labels(area, &chart, &vals, &panel, m.zoom)
}

/// Per design, the metric's raw and goodput-adjusted values.
type Values = Vec<(Option<f64>, Option<f64>)>;

/// The panel's title, axes and grid; returns the chart, its geometry and the values.
fn axes<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    t: &CompareTable,
    m: &Metric,
    scale: f64,
    numbered: bool,
) -> Result<(ChartContext<'a, DB, BarCoord>, Panel, Values), DrawErr<DB>> {
    let vals = values(t, m);
    let flat: Vec<f64> = vals.iter().flat_map(|v| [v.0, v.1]).flatten().collect();
    let (low, high) = value_axis(&flat, m.zoom);
    let n = vals.len().max(1);
    let px = |x: f64| (x * scale).round() as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(m.title, (fonts::FAMILY, 22.0 * scale))
        .margin(px(12.0))
        .x_label_area_size(px(58.0))
        .y_label_area_size(px(72.0))
        // A segmented `0..k` range has k + 1 segments.
        .build_cartesian_2d((0..(n as i32 - 1).max(0)).into_segmented(), low..high)?;
    let (w, _) = chart.plotting_area().dim_in_pixel();
    let ticks = design_ticks(t, numbered);
    let y_desc = match low > 0.0 {
        true => format!("{}, axis from {}", m.unit, tick(low)),
        false => m.unit.to_string(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.15))
        .y_labels(8)
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => ticks.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| tick((v * 1e6).round() / 1e6))
        .x_desc("design")
        .y_desc(y_desc)
        .label_style((fonts::FAMILY, 14.0 * scale))
        .axis_desc_style((fonts::FAMILY, 15.0 * scale))
        .draw()?;
    let panel = Panel {
        seg: w as f64 / n as f64,
        scale,
        paired: vals.iter().any(|v| v.1.is_some()),
        low,
        failed: t.rows.iter().map(|r| r.figures.is_none()).collect(),
    };
    Ok((chart, panel, vals))
}

/// Every design's bars: raw solid, goodput-adjusted light beside it.
fn draw_bars<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, BarCoord>,
    vals: &[(Option<f64>, Option<f64>)],
    p: &Panel,
) -> DrawResult<DB> {
    for (i, &(raw, eff)) in vals.iter().enumerate() {
        let color = design_color(i);
        let styles = [color.filled(), color.mix(LIGHT).filled()];
        for (bar, (v, style)) in [raw, eff].into_iter().zip(styles).enumerate() {
            let Some(v) = v else { continue };
            let (x0, x1) = (
                SegmentValue::Exact(i as i32),
                SegmentValue::Exact(i as i32 + 1),
            );
            let mut rect = Rectangle::new([(x0, p.low), (x1, v)], style);
            let (left, right) = p.margins(bar);
            rect.set_margin(0, 0, left, right);
            chart.draw_series([rect])?;
        }
    }
    Ok(())
}

/// A text to draw at a placed box.
struct Label {
    text: String,
    at: TextBox,
    grey: bool,
}

/// The value label of every bar ("no result" for failed designs, "not simulated" where a
/// design has no such figure, e.g. goodput without a `run:`), placed above its
/// bar and clear of every other label and bar (see [`place_clear`]); pixel coordinates
/// relative to `area`. Also returns the bars' boxes.
fn value_labels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, BarCoord>,
    vals: &[(Option<f64>, Option<f64>)],
    p: &Panel,
    size: f64,
    zoom: bool,
) -> (Vec<Label>, Vec<TextBox>) {
    let (bx, by) = area.get_base_pixel();
    let at = |x: SegmentValue<i32>, v: f64| {
        let (x, y) = chart.backend_coord(&(x, v));
        (x - bx, y - by)
    };
    let (mut texts, mut wanted, mut bars) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &(raw, eff)) in vals.iter().enumerate() {
        let i32_ = i as i32;
        let ((x0, base), x1) = (
            at(SegmentValue::Exact(i32_), p.low),
            at(SegmentValue::Exact(i32_ + 1), p.low).0,
        );
        if raw.is_none() {
            let text = match p.failed.get(i) {
                Some(true) => "no result",
                _ => "not simulated",
            };
            texts.push((text.to_string(), true));
            wanted.push(TextBox::above(
                (x0 + x1) / 2,
                base - p.px(6.0),
                text_size(text, size),
            ));
        }
        for (bar, v) in [raw, eff].into_iter().enumerate() {
            let Some(v) = v else { continue };
            let (left, right) = p.margins(bar);
            let top = at(SegmentValue::Exact(i32_), v).1;
            let b = TextBox {
                x0: x0 + left as i32,
                y0: top,
                x1: x1 - right as i32,
                y1: base,
            };
            let text = if zoom {
                format!("{v:.2}")
            } else {
                fmt_value(v)
            };
            wanted.push(TextBox::above(
                (b.x0 + b.x1) / 2,
                top - p.px(5.0),
                text_size(&text, size),
            ));
            texts.push((text, false));
            bars.push(b);
        }
    }
    let placed = place_clear(&wanted, &bars, true, 2);
    let labels = texts
        .into_iter()
        .zip(placed)
        .map(|((text, grey), at)| Label { text, at, grey })
        .collect();
    (labels, bars)
}

/// The value-label font size: 13 px (scaled), smaller where labels would be wider than
/// the share of a slot their bar has, 8 px at the least.
fn value_font_size(vals: &[(Option<f64>, Option<f64>)], p: &Panel, zoom: bool) -> f64 {
    let share = if p.paired { 0.36 } else { 0.72 };
    let widest = vals
        .iter()
        .flat_map(|v| [v.0, v.1])
        .flatten()
        .map(|v| {
            if zoom {
                format!("{v:.2}")
            } else {
                fmt_value(v)
            }
        })
        .max_by_key(|s| s.len())
        .unwrap_or_default();
    let mut size = 13.0 * p.scale;
    while size > 8.0 && text_size(&widest, size).0 as f64 > p.seg * share {
        size -= 0.5;
    }
    size
}

fn draw_value_labels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, BarCoord>,
    vals: &[(Option<f64>, Option<f64>)],
    p: &Panel,
    zoom: bool,
) -> DrawResult<DB> {
    let size = value_font_size(vals, p, zoom);
    let style =
        TextStyle::from((fonts::FAMILY, size).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
    for l in value_labels(area, chart, vals, p, size, zoom).0 {
        let style = if l.grey {
            style.color(&GREY)
        } else {
            style.clone()
        };
        area.draw(&Text::new(l.text, (l.at.x0, l.at.y0), style))?;
    }
    Ok(())
}

/// Left edge of the legend under a chart.
const LEGEND_LEFT: i32 = 20;

/// One metric's chart (`compare-time.png`, ...).
struct Single<'a> {
    table: &'a CompareTable,
    metric: &'a Metric,
}

impl Single<'_> {
    const W: u32 = 900;
    const H: u32 = 520;

    /// Whether the axis shows numbers: the names do not fit a slot of the ~800 px plot.
    fn numbered(&self) -> bool {
        let names: Vec<String> = self.table.rows.iter().map(|r| r.name.clone()).collect();
        !names_fit(&names, 800.0 / names.len().max(1) as f64, 14.0)
    }

    fn legend(&self) -> Vec<(String, RGBColor)> {
        legend_entries(
            self.table,
            self.numbered(),
            any_paired(self.table, &[self.metric]),
        )
    }
}

impl Chart for Single<'_> {
    fn size(&self) -> (u32, u32) {
        let legend = legend_height(&self.legend(), Self::W, LEGEND_LEFT);
        (Self::W, Self::H + legend)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_vertically(Self::H);
        draw_metric(&plot, self.table, self.metric, 1.0, self.numbered())?;
        draw_legend(&legend, &self.legend(), LEGEND_LEFT)
    }
}

/// Every metric's panel, three to a row (`compare.png`), one legend under them.
struct Overview<'a> {
    table: &'a CompareTable,
    metrics: &'a [&'a Metric],
}

impl Overview<'_> {
    const W: u32 = 1500;
    const PANEL_H: u32 = 440;

    /// Whether the axes show numbers: the names do not fit a slot of a ~410 px panel plot.
    fn numbered(&self) -> bool {
        let names: Vec<String> = self.table.rows.iter().map(|r| r.name.clone()).collect();
        !names_fit(&names, 410.0 / names.len().max(1) as f64, 14.0 * 0.9)
    }

    fn legend(&self) -> Vec<(String, RGBColor)> {
        legend_entries(
            self.table,
            self.numbered(),
            any_paired(self.table, self.metrics),
        )
    }

    fn panels_height(&self) -> u32 {
        Self::PANEL_H * self.metrics.len().div_ceil(3).max(1) as u32 + 50
    }
}

impl Chart for Overview<'_> {
    fn size(&self) -> (u32, u32) {
        let legend = legend_height(&self.legend(), Self::W, LEGEND_LEFT);
        (Self::W, self.panels_height() + legend)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let t = self.table;
        root.fill(&WHITE)?;
        let (top, legend) = root.split_vertically(self.panels_height());
        let title = format!("{}: training {} tokens", t.name, human_count(t.tokens));
        let top = top.titled(&title, (fonts::FAMILY, 26))?;
        let cols = 3;
        let rows = self.metrics.len().div_ceil(cols);
        let panels = top.split_evenly((rows, cols));
        let numbered = self.numbered();
        for (panel, m) in panels.iter().zip(self.metrics) {
            draw_metric(panel, t, m, 0.9, numbered)?;
        }
        draw_legend(&legend, &self.legend(), LEGEND_LEFT)
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
mod tests;
