//! Every chart clustersim draws, each written as PNG and SVG with plotters.
//!
//! This module owns the one way a chart reaches disk, [`render`]: it registers the embedded
//! font ([`super::fonts`]), draws the same [`Chart`] on the bitmap and the SVG backend,
//! names the files `<stem>.png` / `<stem>.svg` and maps drawing errors to
//! [`ReportError::Chart`]. It also holds what the charts share: text style, legend
//! swatches, tick labels, row axes and time units. One file per chart family:
//!
//! - [`utilization`]: GPU utilization of one step (heat strip per traced rank);
//! - [`pipeline`]: the pipeline schedule of one step (one row per stage);
//! - [`breakdown`]: the step breakdown (one stacked bar);
//! - [`heatmap`]: link utilization of a contention-mode step;
//! - [`link_timeline`]: link utilization over time of a contention-mode step (tier or
//!   link x time);
//! - [`compare`]: one bar per design of a comparison table (`clustersim compare`);
//! - [`run`]: run progress, goodput against checkpoint interval, MTBF against GPU count.
//!
//! [`layout`] holds the pure placement rules they share (legends that wrap, labels that do
//! not overprint, nice axis steps).
//!
//! Data preparation is pure and separate from drawing, so it is tested without pixels;
//! drawing is generic over the backend, so both formats come from one code path. Charts
//! read results of lower modules (`sim`, `sweep`, `run`); they must not compute metrics or
//! change results, and lower modules must not call into them.

pub mod breakdown;
pub mod compare;
pub mod heatmap;
pub(crate) mod layout;
pub mod link_timeline;
pub mod pipeline;
pub mod run;
pub mod utilization;

use std::fs;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::fonts::{self, FAMILY};
use super::summary::Summary;
use crate::schedule::Op;
use crate::sim::StepResult;
use crate::units::Nanos;

pub use breakdown::BREAKDOWN;
pub use pipeline::{Block, Kind, PIPELINE, PipelineRow, Span, merge_spans, pipeline_rows};
pub use utilization::{
    MAX_UTILIZATION_ROWS, UTILIZATION, UTILIZATION_BINS, Utilization, heat, utilization,
};

// ---------------------------------------------------------------------------------------
// The step's charts

/// Every file name the step charts may produce.
pub fn file_names() -> Vec<String> {
    [UTILIZATION, PIPELINE, BREAKDOWN]
        .iter()
        .flat_map(|s| [format!("{s}.png"), format!("{s}.svg")])
        .collect()
}

/// Draws every step chart the result has data for into `dir`; returns the file names.
pub fn write_charts(
    dir: &Path,
    summary: &Summary,
    result: &StepResult,
) -> Result<Vec<String>, ReportError> {
    let unit = TimeUnit::for_step(result.replay.step_time);
    let mut names = Vec::new();
    if let Some(chart) = utilization::chart(result, unit) {
        names.extend(render(dir, UTILIZATION, &chart)?);
    }
    if let Some(chart) = pipeline::chart(summary, result, unit) {
        names.extend(render(dir, PIPELINE, &chart)?);
    }
    names.extend(render(
        dir,
        BREAKDOWN,
        &breakdown::BreakdownChart::new(summary),
    )?);
    Ok(names)
}

// ---------------------------------------------------------------------------------------
// Trace data the step charts share

/// The ranks the trace holds (ascending).
fn traced_ranks(result: &StepResult) -> Vec<u32> {
    let mut ranks: Vec<u32> = result.replay.trace.iter().map(|e| e.rank).collect();
    ranks.sort_unstable();
    ranks.dedup();
    ranks
}

fn op_of(result: &StepResult, rank: u32, op: u32) -> Option<&Op> {
    let stage = result.grid.stage_of(rank) as usize;
    let program = result.graph.stages.get(stage)?;
    ((op as usize) < program.len()).then(|| program.op(op))
}

// ---------------------------------------------------------------------------------------
// Drawing to PNG and SVG

/// A drawing error of backend `DB`.
pub(crate) type DrawErr<DB> = DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>;
pub(crate) type DrawResult<DB> = Result<(), DrawErr<DB>>;

/// A chart drawable on any plotters backend.
pub(crate) trait Chart {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole chart on `root` (which [`render`] presents afterwards).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Renders `chart` as `<stem>.png` and `<stem>.svg` in `dir` with the embedded font;
/// returns the two file names.
pub(crate) fn render<C: Chart>(
    dir: &Path,
    stem: &str,
    chart: &C,
) -> Result<Vec<String>, ReportError> {
    let err = |path: &Path, message: String| ReportError::Chart {
        path: path.to_path_buf(),
        message,
    };
    fonts::ensure_registered().map_err(|message| err(dir, message))?;
    let png = dir.join(format!("{stem}.png"));
    {
        let root = BitMapBackend::new(&png, chart.size()).into_drawing_area();
        chart.draw(&root).map_err(|e| err(&png, e.to_string()))?;
        root.present().map_err(|e| err(&png, e.to_string()))?;
    }
    let svg = dir.join(format!("{stem}.svg"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, chart.size()).into_drawing_area();
        chart.draw(&root).map_err(|e| err(&svg, e.to_string()))?;
        root.present().map_err(|e| err(&svg, e.to_string()))?;
    }
    fs::write(&svg, text).map_err(|e| ReportError::io(&svg, e))?;
    Ok(vec![format!("{stem}.png"), format!("{stem}.svg")])
}

// ---------------------------------------------------------------------------------------
// Shared style

/// Background of idle time (pipeline, breakdown).
pub(crate) const IDLE: RGBColor = RGBColor(225, 225, 225);
pub(crate) const TEXT: RGBColor = RGBColor(30, 30, 30);

/// The embedded font at `size` px in the text colour.
pub(crate) fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(&TEXT)
}

/// Draws `(label, colour)` swatches left to right from `left`, wrapping lines (see
/// [`layout::legend_layout`]).
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
    left: i32,
) -> DrawResult<DB> {
    let width = area.dim_in_pixel().0 as i32;
    let (items, _) = layout::legend_layout(entries, width, left, legend_text_width);
    let style = font(layout::LEGEND_FONT).pos(Pos::new(HPos::Left, VPos::Center));
    for item in items {
        let (x, y) = (item.x, item.y);
        let swatch = [(x, y - 7), (x + 16, y + 7)];
        area.draw(&Rectangle::new(swatch, item.color.filled()))?;
        area.draw(&Rectangle::new(swatch, BLACK.stroke_width(1)))?;
        for (k, line) in item.lines.into_iter().enumerate() {
            let at = (x + 22, y + k as i32 * layout::LEGEND_LINE);
            area.draw(&Text::new(line, at, style.clone()))?;
        }
    }
    Ok(())
}

/// Height in pixels of the legend [`draw_legend`] draws for `entries` in `width`.
pub(crate) fn legend_height(entries: &[(String, RGBColor)], width: u32, left: i32) -> u32 {
    let (_, h) = layout::legend_layout(entries, width as i32, left, legend_text_width);
    h.max(0) as u32
}

fn legend_text_width(text: &str) -> i32 {
    layout::text_size(text, layout::LEGEND_FONT).0
}

/// A tick label without trailing zeros: `10`, `2.5`, `0.125`.
pub(crate) fn tick(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Whether dark text reads better than white on `bg`.
pub(crate) fn dark_text_on(bg: RGBColor) -> bool {
    0.299 * bg.0 as f64 + 0.587 * bg.1 as f64 + 0.114 * bg.2 as f64 > 140.0
}

/// Seconds with a precision that suits the magnitude.
pub(crate) fn seconds(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.2} s")
    } else if v >= 1e-3 {
        format!("{:.1} ms", v * 1e3)
    } else {
        format!("{:.0} µs", v * 1e6)
    }
}

/// The unit time axes are labelled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeUnit {
    pub name: &'static str,
    pub ns: f64,
}

impl TimeUnit {
    pub fn for_step(step: Nanos) -> TimeUnit {
        let (name, ns) = match step {
            s if s >= 10_000_000_000 => ("s", 1e9),
            s if s >= 10_000_000 => ("ms", 1e6),
            _ => ("µs", 1e3),
        };
        TimeUnit { name, ns }
    }

    pub(crate) fn of(self, t: Nanos) -> f64 {
        t as f64 / self.ns
    }
}

// ---------------------------------------------------------------------------------------
// Row charts (utilization, pipeline, link heat map)

/// Vertical units per row of the row charts (rows are integers so ticks sit on centres).
pub(crate) const ROW: i32 = 100;

pub(crate) type RowCoord = Cartesian2d<RangedCoordf64, WithKeyPoints<RangedCoordi32>>;

/// The y axis of a chart with `n` rows, ticks at row centres.
pub(crate) fn row_axis(n: usize) -> WithKeyPoints<RangedCoordi32> {
    let n = n as i32;
    (-ROW / 2..n * ROW - ROW / 2).with_key_points((0..n).map(|i| i * ROW).collect())
}

/// Centre of row `i` (counted from the top) of `n`.
pub(crate) fn row_center(n: usize, i: usize) -> i32 {
    (n - 1 - i) as i32 * ROW
}

/// The label of the row whose centre is at `y` (`labels` bottom-up), or nothing.
pub(crate) fn row_label(labels: &[String], y: i32) -> String {
    if y < 0 || y % ROW != 0 {
        return String::new();
    }
    labels.get((y / ROW) as usize).cloned().unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::engine::TraceRanks;
    use crate::fixtures::toy_scenario;
    use crate::sim::{StepOptions, StepResult, simulate_step};

    /// The toy 2-stage step with `trace` recorded.
    pub(crate) fn traced(trace: TraceRanks) -> StepResult {
        let s = toy_scenario(2, 2, 1, 4, 4);
        simulate_step(
            &s,
            &StepOptions {
                trace,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!(super::tick(10.0), "10");
        assert_eq!(super::tick(2.5), "2.5");
        assert_eq!(super::tick(-0.0), "0");
    }
}
