//! Charts of one step, each written as PNG and SVG with plotters:
//! GPU utilization over time (heat strip of the traced ranks' compute streams), the
//! pipeline schedule (one row per stage, the classic 1F1B picture) and the step breakdown
//! (one stacked bar).
//!
//! Data preparation ([`utilization`], [`pipeline_rows`]) is pure and separate from drawing.
//! Drawing is generic over the plotters backend so both formats come from one code path.
//! Text uses the embedded font ([`super::fonts`]), so output does not depend on the
//! machine. Reads results; changes nothing.

use std::fs;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::fonts::{self, FAMILY};
use super::summary::{Summary, breakdown_parts};
use super::trace::representative_ranks;
use crate::schedule::{Category, Op, Stream};
use crate::sim::StepResult;
use crate::units::Nanos;

pub const UTILIZATION: &str = "gpu_utilization";
pub const PIPELINE: &str = "pipeline_schedule";
pub const BREAKDOWN: &str = "step_breakdown";

/// Time bins of the utilization chart.
pub const UTILIZATION_BINS: usize = 200;
/// Most rows the utilization chart shows; more traced ranks are sampled evenly.
pub const MAX_UTILIZATION_ROWS: usize = 48;

/// Every file name the charts may produce.
pub fn file_names() -> Vec<String> {
    [UTILIZATION, PIPELINE, BREAKDOWN]
        .iter()
        .flat_map(|s| [format!("{s}.png"), format!("{s}.svg")])
        .collect()
}

/// Draws every chart the result has data for into `dir`; returns the file names.
pub fn write_charts(
    dir: &Path,
    summary: &Summary,
    result: &StepResult,
) -> Result<Vec<String>, ReportError> {
    fonts::ensure_registered().map_err(|message| ReportError::Chart {
        path: dir.to_path_buf(),
        message,
    })?;
    let unit = TimeUnit::for_step(result.replay.step_time);
    let mut names = Vec::new();
    if let Some(u) = utilization(result, UTILIZATION_BINS, MAX_UTILIZATION_ROWS) {
        names.extend(render(
            dir,
            UTILIZATION,
            &UtilizationChart { data: u, unit },
        )?);
    }
    let mut rows = pipeline_rows(result);
    // Half a pixel of the ~1400 px wide plot.
    let gap = result.replay.step_time / 2800;
    for row in &mut rows {
        row.spans = merge_spans(&row.spans, gap);
    }
    if !rows.is_empty() {
        let chunks = rows
            .iter()
            .flat_map(|r| &r.blocks)
            .map(|b| b.chunk + 1)
            .max()
            .unwrap_or(1);
        let chart = PipelineChart {
            rows,
            chunks,
            step: result.replay.step_time,
            unit,
            title: format!(
                "Pipeline schedule — {} ({}, pp={}, {} micro-batches; upper lane compute, lower lane communication)",
                summary.scenario.name,
                schedule_name(summary),
                summary.scenario.pp,
                summary.scenario.micro_batches
            ),
        };
        names.extend(render(dir, PIPELINE, &chart)?);
    }
    names.extend(render(dir, BREAKDOWN, &BreakdownChart::new(summary))?);
    Ok(names)
}

/// The schedule as users write it (`1f1b`, `interleaved`, ...).
fn schedule_name(s: &Summary) -> String {
    serde_json::to_value(s.scenario.schedule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Colours and units

const IDLE: RGBColor = RGBColor(225, 225, 225);
/// Background of the communication lane of the pipeline chart.
const COMM_LANE: RGBColor = RGBColor(246, 246, 246);
pub(super) const TEXT: RGBColor = RGBColor(30, 30, 30);

/// What a span of the pipeline chart shows; also the colour and legend entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    // Communication first: drawn beneath compute, so only exposed parts show.
    DpComm,
    PpComm,
    Comm,
    Forward,
    Backward,
    BackwardWeight,
    Recompute,
    Optimizer,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::DpComm,
        Kind::PpComm,
        Kind::Comm,
        Kind::Forward,
        Kind::Backward,
        Kind::BackwardWeight,
        Kind::Recompute,
        Kind::Optimizer,
    ];

    pub fn of(c: Category) -> Kind {
        match c {
            Category::Forward => Kind::Forward,
            Category::Backward => Kind::Backward,
            Category::BackwardWeight => Kind::BackwardWeight,
            Category::Recompute => Kind::Recompute,
            Category::Optimizer => Kind::Optimizer,
            Category::Tp | Category::Cp | Category::Ep => Kind::Comm,
            Category::Pp => Kind::PpComm,
            Category::Dp => Kind::DpComm,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Forward => "forward",
            Kind::Backward => "backward",
            Kind::BackwardWeight => "backward (weights)",
            Kind::Recompute => "recompute",
            Kind::Optimizer => "optimizer",
            Kind::Comm => "TP/CP/EP comm",
            Kind::PpComm => "PP send/recv",
            Kind::DpComm => "DP comm",
        }
    }

    /// Okabe–Ito palette (distinguishable with colour-vision deficiency).
    pub fn color(self) -> RGBColor {
        match self {
            Kind::Forward => RGBColor(0, 114, 178),
            Kind::Backward => RGBColor(0, 158, 115),
            Kind::BackwardWeight => RGBColor(86, 180, 233),
            Kind::Recompute => RGBColor(230, 159, 0),
            Kind::Optimizer => RGBColor(204, 121, 167),
            Kind::Comm => RGBColor(213, 94, 0),
            Kind::PpComm => RGBColor(240, 228, 66),
            Kind::DpComm => RGBColor(140, 140, 140),
        }
    }

    pub fn is_comm(self) -> bool {
        matches!(self, Kind::Comm | Kind::PpComm | Kind::DpComm)
    }

    /// Passes outlined as one block per micro-batch in the pipeline chart.
    fn pass(self) -> Option<u8> {
        match self {
            Kind::Forward => Some(0),
            Kind::Backward | Kind::Recompute => Some(1),
            Kind::BackwardWeight => Some(2),
            _ => None,
        }
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

    fn of(self, t: Nanos) -> f64 {
        t as f64 / self.ns
    }
}

// ---------------------------------------------------------------------------------------
// Data

/// Compute-stream busy fraction per time bin for some traced ranks.
#[derive(Debug, Clone, PartialEq)]
pub struct Utilization {
    pub ranks: Vec<u32>,
    /// `rows[i][b]`: busy fraction of rank `ranks[i]` in bin `b`, in `[0, 1]`.
    pub rows: Vec<Vec<f64>>,
    /// Mean over the step per rank.
    pub mean: Vec<f64>,
    pub bin_ns: f64,
    pub traced: usize,
    pub stage_size: u32,
}

/// Ops of the trace on the compute stream, per traced rank (ascending).
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

/// Evenly samples at most `max` of `items`, keeping the first and last.
fn sample<T: Copy>(items: &[T], max: usize) -> Vec<T> {
    if items.len() <= max || max < 2 {
        return items.iter().copied().take(max).collect();
    }
    (0..max)
        .map(|i| items[i * (items.len() - 1) / (max - 1)])
        .collect()
}

/// At most `max` of `traced` (sorted): the traced representatives first, the rest sampled
/// evenly; returned sorted.
fn pick_rows(traced: &[u32], representatives: &[u32], max: usize) -> Vec<u32> {
    if traced.len() <= max {
        return traced.to_vec();
    }
    let mut rows: Vec<u32> = representatives
        .iter()
        .copied()
        .filter(|r| traced.binary_search(r).is_ok())
        .take(max)
        .collect();
    let others: Vec<u32> = traced
        .iter()
        .copied()
        .filter(|r| !rows.contains(r))
        .collect();
    rows.extend(sample(&others, max - rows.len()));
    rows.sort_unstable();
    rows
}

/// Busy fraction of the compute stream of traced ranks over `bins` time bins; `None` when
/// nothing was traced.
pub fn utilization(result: &StepResult, bins: usize, max_rows: usize) -> Option<Utilization> {
    let step = result.replay.step_time;
    let all = traced_ranks(result);
    if all.is_empty() || step == 0 || bins == 0 {
        return None;
    }
    let ranks = pick_rows(&all, &representative_ranks(&result.grid), max_rows);
    let bin_ns = step as f64 / bins as f64;
    let mut rows = vec![vec![0.0; bins]; ranks.len()];
    for e in &result.replay.trace {
        let Ok(i) = ranks.binary_search(&e.rank) else {
            continue;
        };
        if op_of(result, e.rank, e.op).is_some_and(|op| op.stream == Stream::Compute) {
            add_busy(&mut rows[i], e.start as f64, e.end as f64, bin_ns);
        }
    }
    let mean = rows
        .iter()
        .map(|r| r.iter().sum::<f64>() / bins as f64)
        .collect();
    Some(Utilization {
        ranks,
        rows,
        mean,
        bin_ns,
        traced: all.len(),
        stage_size: result.grid.stage_size(),
    })
}

/// Adds the overlap of `[start, end)` with each bin, as a fraction of the bin.
fn add_busy(row: &mut [f64], start: f64, end: f64, bin_ns: f64) {
    if end <= start {
        return;
    }
    let first = (start / bin_ns).floor() as usize;
    let last = ((end / bin_ns).ceil() as usize).min(row.len());
    for (b, cell) in row.iter_mut().enumerate().take(last).skip(first) {
        let (lo, hi) = (b as f64 * bin_ns, (b + 1) as f64 * bin_ns);
        let overlap = end.min(hi) - start.max(lo);
        if overlap > 0.0 {
            *cell = (*cell + overlap / bin_ns).min(1.0);
        }
    }
}

/// One executed op drawn in the pipeline chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub start: Nanos,
    pub end: Nanos,
    pub kind: Kind,
}

/// A micro-batch's forward (or backward, or weight-gradient) pass on one stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    pub start: Nanos,
    pub end: Nanos,
    pub micro_batch: u32,
    pub chunk: u16,
    pub kind: Kind,
}

/// One pipeline stage as its representative rank ran it.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRow {
    pub stage: u32,
    pub rank: u32,
    pub spans: Vec<Span>,
    pub blocks: Vec<Block>,
}

/// Rows of the pipeline chart: per stage, the first rank of the stage (or the first traced
/// rank of it); stages with no traced rank are left out.
pub fn pipeline_rows(result: &StepResult) -> Vec<PipelineRow> {
    let traced = traced_ranks(result);
    let size = result.grid.stage_size().max(1);
    let mut rows: Vec<PipelineRow> = representative_ranks(&result.grid)
        .into_iter()
        .enumerate()
        .filter_map(|(stage, first)| {
            let rank = traced
                .iter()
                .copied()
                .find(|&r| r >= first && r < first + size)?;
            Some(PipelineRow {
                stage: stage as u32,
                rank,
                spans: Vec::new(),
                blocks: Vec::new(),
            })
        })
        .collect();
    let index: std::collections::HashMap<u32, usize> =
        rows.iter().enumerate().map(|(i, r)| (r.rank, i)).collect();
    for e in &result.replay.trace {
        let Some(&i) = index.get(&e.rank) else {
            continue;
        };
        if let Some(op) = op_of(result, e.rank, e.op) {
            add_to_row(&mut rows[i], e.start, e.end, op);
        }
    }
    for row in &mut rows {
        row.spans.sort_by_key(|s| (s.kind, s.start, s.end));
        row.blocks.sort_by_key(|b| (b.start, b.end, b.micro_batch));
    }
    rows
}

fn add_to_row(row: &mut PipelineRow, start: Nanos, end: Nanos, op: &Op) {
    let kind = Kind::of(op.category);
    row.spans.push(Span { start, end, kind });
    if op.micro_batch != u32::MAX && op.stream == Stream::Compute {
        extend_block(&mut row.blocks, start, end, op, kind);
    }
}

/// Merges spans of one kind (sorted by kind, start) separated by at most `gap` ns: what a
/// pixel cannot separate anyway, and it keeps SVGs of long steps small.
pub fn merge_spans(spans: &[Span], gap: Nanos) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if last.kind == s.kind && s.start <= last.end.saturating_add(gap) => {
                last.end = last.end.max(s.end);
            }
            _ => out.push(*s),
        }
    }
    out
}

fn extend_block(blocks: &mut Vec<Block>, start: Nanos, end: Nanos, op: &Op, kind: Kind) {
    let Some(pass) = kind.pass() else { return };
    let found = blocks.iter_mut().find(|b| {
        b.micro_batch == op.micro_batch && b.chunk == op.chunk && b.kind.pass() == Some(pass)
    });
    match found {
        Some(b) => {
            b.start = b.start.min(start);
            b.end = b.end.max(end);
        }
        None => blocks.push(Block {
            start,
            end,
            micro_batch: op.micro_batch,
            chunk: op.chunk,
            kind: if pass == 1 { Kind::Backward } else { kind },
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Rendering

pub(super) type DrawResult<DB> =
    Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A chart drawable on any plotters backend.
pub(super) trait Chart {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Renders `chart` as `<stem>.png` and `<stem>.svg` in `dir`.
pub(super) fn render<C: Chart>(
    dir: &Path,
    stem: &str,
    chart: &C,
) -> Result<Vec<String>, ReportError> {
    let png = dir.join(format!("{stem}.png"));
    let err = |path: &Path, e: &dyn std::fmt::Display| ReportError::Chart {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    {
        let root = BitMapBackend::new(&png, chart.size()).into_drawing_area();
        chart.draw(&root).map_err(|e| err(&png, &e))?;
        root.present().map_err(|e| err(&png, &e))?;
    }
    let svg = dir.join(format!("{stem}.svg"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, chart.size()).into_drawing_area();
        chart.draw(&root).map_err(|e| err(&svg, &e))?;
        root.present().map_err(|e| err(&svg, &e))?;
    }
    fs::write(&svg, text).map_err(|e| ReportError::io(&svg, e))?;
    Ok(vec![format!("{stem}.png"), format!("{stem}.svg")])
}

pub(super) fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(&TEXT)
}

/// Lays out `(label, colour)` swatches left to right, wrapping lines.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
    left: i32,
) -> DrawResult<DB> {
    let style = font(17.0).pos(Pos::new(HPos::Left, VPos::Center));
    let width = area.dim_in_pixel().0 as i32;
    let (mut x, mut y) = (left, 14);
    for (label, color) in entries {
        let text_w = area.estimate_text_size(label, &style)?.0 as i32;
        let w = 22 + text_w + 24;
        if x + w > width - 10 && x > left {
            x = left;
            y += 24;
        }
        area.draw(&Rectangle::new(
            [(x, y - 7), (x + 16, y + 7)],
            color.filled(),
        ))?;
        area.draw(&Rectangle::new(
            [(x, y - 7), (x + 16, y + 7)],
            BLACK.stroke_width(1),
        ))?;
        area.draw(&Text::new(label.clone(), (x + 22, y), style.clone()))?;
        x += w;
    }
    Ok(())
}

/// A tick label without trailing zeros: `10`, `2.5`, `0.125`.
pub(super) fn tick(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Whether dark text reads better than white on `bg`.
fn dark_text_on(bg: RGBColor) -> bool {
    0.299 * bg.0 as f64 + 0.587 * bg.1 as f64 + 0.114 * bg.2 as f64 > 140.0
}

/// `c` lightened for model chunk `chunk` of `chunks` (chunk 0 unchanged).
fn shade(c: RGBColor, chunk: u16, chunks: u16) -> RGBColor {
    if chunks <= 1 {
        return c;
    }
    let t = 0.45 * chunk.min(chunks - 1) as f64 / (chunks - 1) as f64;
    let mix = |v: u8| (v as f64 + (255.0 - v as f64) * t).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// Sequential white-to-blue colour map for utilization in `[0, 1]`.
pub fn heat(v: f64) -> RGBColor {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * v).round() as u8;
    RGBColor(lerp(247, 8), lerp(251, 48), lerp(255, 107))
}

struct UtilizationChart {
    data: Utilization,
    unit: TimeUnit,
}

impl UtilizationChart {
    fn row_label(&self, i: usize) -> String {
        let r = self.data.ranks[i];
        format!(
            "rank {r} (stage {}) {:.0}%",
            r / self.data.stage_size.max(1),
            self.data.mean[i] * 100.0
        )
    }
}

impl Chart for UtilizationChart {
    fn size(&self) -> (u32, u32) {
        (1400, 200 + 22 * self.data.ranks.len().max(3) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (w, _) = root.dim_in_pixel();
        let (main, bar) = root.split_horizontally(w - 110);
        let u = &self.data;
        let n = u.ranks.len();
        let bins = u.rows.first().map_or(0, Vec::len);
        let t_end = self.unit.of((u.bin_ns * bins as f64) as Nanos);
        let shown = if u.traced > n {
            format!(", {n} of {} traced ranks", u.traced)
        } else {
            String::new()
        };
        let mut chart = ChartBuilder::on(&main)
            .caption(
                format!(
                    "GPU utilization — compute stream busy per {} bin{shown}",
                    seconds(u.bin_ns / 1e9)
                ),
                font(24.0),
            )
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..t_end, row_axis(n))?;
        let labels: Vec<String> = (0..n).map(|i| self.row_label(n - 1 - i)).collect();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("time ({})", self.unit.name))
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|y| row_label(&labels, *y))
            .draw()?;
        let bin_w = u.bin_ns / self.unit.ns;
        for (i, row) in u.rows.iter().enumerate() {
            let y = row_center(n, i);
            chart.draw_series(row.iter().enumerate().map(|(b, &v)| {
                let x = b as f64 * bin_w;
                Rectangle::new([(x, y - 45), (x + bin_w, y + 45)], heat(v).filled())
            }))?;
        }
        draw_color_bar(&bar)
    }
}

/// Vertical units per row of the row charts (rows are integers so ticks sit on centres).
pub(super) const ROW: i32 = 100;

pub(super) type RowCoord = Cartesian2d<RangedCoordf64, WithKeyPoints<RangedCoordi32>>;

/// The y axis of a chart with `n` rows, ticks at row centres.
pub(super) fn row_axis(n: usize) -> WithKeyPoints<RangedCoordi32> {
    let n = n as i32;
    (-ROW / 2..n * ROW - ROW / 2).with_key_points((0..n).map(|i| i * ROW).collect())
}

/// Centre of row `i` (counted from the top) of `n`.
pub(super) fn row_center(n: usize, i: usize) -> i32 {
    (n - 1 - i) as i32 * ROW
}

/// The label of the row whose centre is at `y` (`labels` bottom-up), or nothing.
pub(super) fn row_label(labels: &[String], y: i32) -> String {
    if y < 0 || y % ROW != 0 {
        return String::new();
    }
    labels.get((y / ROW) as usize).cloned().unwrap_or_default()
}

fn draw_color_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(60)
        .margin_bottom(60)
        .margin_right(10)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1.0, 0f64..1.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .label_style(font(16.0))
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .draw()?;
    let steps = 50;
    chart.draw_series((0..steps).map(|i| {
        let (lo, hi) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
        Rectangle::new([(0.0, lo), (1.0, hi)], heat((lo + hi) / 2.0).filled())
    }))?;
    Ok(())
}

struct PipelineChart {
    rows: Vec<PipelineRow>,
    /// Model chunks per stage (virtual stages); later chunks are drawn lighter.
    chunks: u16,
    step: Nanos,
    unit: TimeUnit,
    title: String,
}

impl PipelineChart {
    fn legend(&self) -> Vec<(String, RGBColor)> {
        let mut present = [false; Kind::ALL.len()];
        for s in self.rows.iter().flat_map(|r| &r.spans) {
            present[s.kind as usize] = true;
        }
        let order = [
            Kind::Forward,
            Kind::Backward,
            Kind::BackwardWeight,
            Kind::Recompute,
            Kind::Optimizer,
            Kind::Comm,
            Kind::PpComm,
            Kind::DpComm,
        ];
        let mut out: Vec<(String, RGBColor)> = order
            .iter()
            .filter(|k| present[**k as usize])
            .map(|k| (k.label().to_string(), k.color()))
            .collect();
        if self.chunks > 1 {
            let light = shade(Kind::Forward.color(), self.chunks - 1, self.chunks);
            out.push(("lighter: later model chunk".to_string(), light));
        }
        out.push(("idle".to_string(), IDLE));
        out
    }

    /// One stage: an upper lane with the passes of each micro-batch (compute ops drawn
    /// over their block, so recompute shows inside backward) and a lower lane with the
    /// communication streams.
    fn draw_row<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<DB, RowCoord>,
        row: &PipelineRow,
        y: i32,
    ) -> DrawResult<DB> {
        let u = self.unit;
        let t_end = u.of(self.step);
        let (main, comm) = ((y - 4, y + 42), (y - 42, y - 12));
        let rect = |a: Nanos, b: Nanos, lane: (i32, i32)| [(u.of(a), lane.0), (u.of(b), lane.1)];
        chart.draw_series([
            Rectangle::new([(0.0, main.0), (t_end, main.1)], IDLE.filled()),
            Rectangle::new([(0.0, comm.0), (t_end, comm.1)], COMM_LANE.filled()),
        ])?;
        chart.draw_series(row.blocks.iter().map(|b| {
            let color = shade(b.kind.color(), b.chunk, self.chunks);
            Rectangle::new(rect(b.start, b.end, main), color.filled())
        }))?;
        // Passes are drawn as their blocks; other compute (recompute inside backward, the
        // optimizer) and communication as executed.
        chart.draw_series(
            row.spans
                .iter()
                .filter(|s| {
                    !matches!(
                        s.kind,
                        Kind::Forward | Kind::Backward | Kind::BackwardWeight
                    )
                })
                .map(|s| {
                    let lane = if s.kind.is_comm() { comm } else { main };
                    Rectangle::new(rect(s.start, s.end, lane), s.kind.color().filled())
                }),
        )?;
        chart.draw_series(
            row.blocks.iter().map(|b| {
                Rectangle::new(rect(b.start, b.end, main), BLACK.mix(0.6).stroke_width(1))
            }),
        )?;
        self.draw_block_labels(chart, row, (main.0 + main.1) / 2)
    }

    /// Micro-batch numbers inside blocks wide enough to hold them.
    fn draw_block_labels<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<DB, RowCoord>,
        row: &PipelineRow,
        y: i32,
    ) -> DrawResult<DB> {
        let u = self.unit;
        let style = TextStyle::from((FAMILY, 17.0).into_font())
            .color(&WHITE)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let mut labels = Vec::new();
        for b in &row.blocks {
            let (x0, _) = chart.backend_coord(&(u.of(b.start), y));
            let (x1, _) = chart.backend_coord(&(u.of(b.end), y));
            let text = b.micro_batch.to_string();
            if x1 - x0 >= 11 * text.len() as i32 + 4 {
                let mid = u.of(b.start) + (u.of(b.end) - u.of(b.start)) / 2.0;
                labels.push(Text::new(text, (mid, y), style.clone()));
            }
        }
        chart.draw_series(labels)?;
        Ok(())
    }
}

impl Chart for PipelineChart {
    fn size(&self) -> (u32, u32) {
        (1600, 240 + 90 * self.rows.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (_, h) = root.dim_in_pixel();
        let (main, legend_area) = root.split_vertically(h - 64);
        let n = self.rows.len();
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, font(24.0))
            .margin(12)
            .margin_right(30)
            .x_label_area_size(48)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..self.unit.of(self.step), row_axis(n))?;
        let labels: Vec<String> = (0..n)
            .map(|i| {
                let r = &self.rows[n - 1 - i];
                format!("stage {} (rank {})", r.stage, r.rank)
            })
            .collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(format!("time ({})", self.unit.name))
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|y| row_label(&labels, *y))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        for (i, row) in self.rows.iter().enumerate() {
            self.draw_row(&mut chart, row, row_center(n, i))?;
        }
        draw_legend(&legend_area, &self.legend(), 182)
    }
}

/// Colours of the breakdown parts, in [`breakdown_parts`] order.
const BREAKDOWN_COLORS: [RGBColor; 9] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(204, 121, 167),
    RGBColor(213, 94, 0),
    RGBColor(160, 40, 40),
    RGBColor(120, 80, 30),
    RGBColor(240, 228, 66),
    RGBColor(140, 140, 140),
    IDLE,
];

struct BreakdownChart {
    /// `(label, seconds, colour)` of the non-zero parts.
    parts: Vec<(String, f64, RGBColor)>,
    step: f64,
    unit: TimeUnit,
    title: String,
}

impl BreakdownChart {
    fn new(s: &Summary) -> Self {
        let step = s.step_time_s.max(f64::MIN_POSITIVE);
        let parts = breakdown_parts(&s.breakdown_s)
            .iter()
            .zip(BREAKDOWN_COLORS)
            .filter(|((_, v), _)| v.is_finite() && *v > 0.0)
            .map(|((k, v), c)| (k.to_string(), *v, c))
            .collect();
        BreakdownChart {
            parts,
            step,
            unit: TimeUnit::for_step(crate::units::secs_to_ns(step)),
            title: format!(
                "Step breakdown — {}: {} per step, MFU {:.1}%",
                s.scenario.name,
                seconds(s.step_time_s),
                s.mfu * 100.0
            ),
        }
    }

    fn legend(&self) -> Vec<(String, RGBColor)> {
        self.parts
            .iter()
            .map(|(k, v, c)| {
                (
                    format!("{k} {} ({:.1}%)", seconds(*v), v / self.step * 100.0),
                    *c,
                )
            })
            .collect()
    }
}

/// Seconds with a precision that suits the magnitude.
fn seconds(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.2} s")
    } else if v >= 1e-3 {
        format!("{:.1} ms", v * 1e3)
    } else {
        format!("{:.0} µs", v * 1e6)
    }
}

/// One part of the breakdown bar, in the chart's time unit.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    start: f64,
    width: f64,
    color: RGBColor,
    /// Percent of the step, on parts wide enough to hold it.
    label: Option<String>,
}

impl BreakdownChart {
    fn segments(&self) -> Vec<Segment> {
        let scale = 1e9 / self.unit.ns;
        let total: f64 = self.parts.iter().map(|p| p.1).sum::<f64>().max(self.step);
        let mut start = 0.0;
        let mut out = Vec::with_capacity(self.parts.len());
        for (_, secs, color) in &self.parts {
            let label = (secs / total > 0.06).then(|| format!("{:.0}%", secs / self.step * 100.0));
            out.push(Segment {
                start,
                width: secs * scale,
                color: *color,
                label,
            });
            start += secs * scale;
        }
        out
    }
}

impl Chart for BreakdownChart {
    fn size(&self) -> (u32, u32) {
        (1400, 300)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (main, legend_area) = root.split_vertically(220);
        let scale = 1e9 / self.unit.ns;
        let total = self.parts.iter().map(|p| p.1).sum::<f64>().max(self.step) * scale;
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, font(24.0))
            .margin(12)
            .margin_right(30)
            .x_label_area_size(48)
            .y_label_area_size(20)
            .build_cartesian_2d(0f64..total, 0f64..1.0)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc(format!("time ({}), mean over ranks", self.unit.name))
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .x_label_formatter(&|v| tick(*v))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let mut bars = Vec::new();
        let mut labels = Vec::new();
        let dark = font(18.0).pos(Pos::new(HPos::Center, VPos::Center));
        let light = dark.clone().color(&WHITE);
        for seg in self.segments() {
            let (x0, x1) = (seg.start, seg.start + seg.width);
            bars.push(Rectangle::new([(x0, 0.2), (x1, 0.8)], seg.color.filled()));
            if let Some(text) = seg.label {
                let style = if dark_text_on(seg.color) {
                    &dark
                } else {
                    &light
                };
                labels.push(Text::new(text, ((x0 + x1) / 2.0, 0.5), style.clone()));
            }
        }
        chart.draw_series(bars)?;
        chart.draw_series(labels)?;
        draw_legend(&legend_area, &self.legend(), 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TraceRanks;
    use crate::fixtures::toy_scenario;
    use crate::sim::{StepOptions, simulate_step};

    fn traced(trace: TraceRanks) -> StepResult {
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
    fn add_busy_splits_over_bins() {
        let mut row = vec![0.0; 4];
        add_busy(&mut row, 5.0, 25.0, 10.0);
        assert_eq!(row, vec![0.5, 1.0, 0.5, 0.0]);
        add_busy(&mut row, 30.0, 30.0, 10.0);
        assert_eq!(row[3], 0.0);
    }

    #[test]
    fn sample_keeps_ends() {
        let v: Vec<u32> = (0..100).collect();
        let s = sample(&v, 5);
        assert_eq!(s.len(), 5);
        assert_eq!((s[0], s[4]), (0, 99));
        assert_eq!(sample(&v[..3], 5), vec![0, 1, 2]);
    }

    #[test]
    fn utilization_is_a_fraction_and_matches_busy_time() {
        let r = traced(TraceRanks::All);
        let u = utilization(&r, 50, 48).unwrap();
        assert_eq!(u.ranks, vec![0, 1, 2, 3]);
        for (i, row) in u.rows.iter().enumerate() {
            assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
            let rank = u.ranks[i] as usize;
            let busy: Nanos = (0..=Category::Optimizer as usize)
                .map(|c| r.replay.ranks[rank].busy[c])
                .sum();
            let want = busy as f64 / r.replay.step_time as f64;
            assert!((u.mean[i] - want).abs() < 1e-6, "{} vs {want}", u.mean[i]);
        }
        assert!(utilization(&traced(TraceRanks::None), 50, 48).is_none());
    }

    #[test]
    fn pipeline_rows_have_one_block_per_micro_batch_and_pass() {
        let r = traced(TraceRanks::Some(vec![0, 2]));
        let rows = pipeline_rows(&r);
        assert_eq!(rows.iter().map(|r| r.rank).collect::<Vec<_>>(), vec![0, 2]);
        let m = r.graph.micro_batches as usize;
        for row in &rows {
            assert_eq!(row.blocks.len(), 2 * m, "stage {}", row.stage);
            for w in row.blocks.windows(2) {
                assert!(w[0].end <= w[1].start, "blocks overlap: {w:?}");
            }
        }
        // Stage 0 starts with forward of micro-batch 0; the last stage's first backward
        // follows its first forward directly (1F1B).
        assert_eq!(rows[0].blocks[0].kind, Kind::Forward);
        assert_eq!(rows[1].blocks[1].kind, Kind::Backward);
    }

    #[test]
    fn pick_rows_keeps_representatives() {
        let traced: Vec<u32> = (0..128).collect();
        let rows = pick_rows(&traced, &[0, 32, 64, 96], 10);
        assert_eq!(rows.len(), 10);
        for r in [0, 32, 64, 96] {
            assert!(rows.contains(&r), "{rows:?}");
        }
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(pick_rows(&[1, 2], &[0], 10), vec![1, 2]);
    }

    #[test]
    fn merge_spans_joins_close_spans_of_one_kind() {
        let s = |start, end, kind| Span { start, end, kind };
        let spans = [
            s(0, 10, Kind::Comm),
            s(11, 20, Kind::Comm),
            s(40, 50, Kind::Comm),
            s(50, 60, Kind::Forward),
        ];
        let merged = merge_spans(&spans, 1);
        assert_eq!(
            merged,
            vec![
                s(0, 20, Kind::Comm),
                s(40, 50, Kind::Comm),
                s(50, 60, Kind::Forward)
            ]
        );
        assert_eq!(merge_spans(&spans, 0).len(), 4);
    }

    #[test]
    fn breakdown_segments_are_in_time_units_and_label_percent_of_step() {
        let s = toy_scenario(2, 2, 1, 4, 4);
        let r = simulate_step(&s, &StepOptions::default()).unwrap();
        let summary = Summary::new(&s, &r.metrics);
        let chart = BreakdownChart::new(&summary);
        let segs = chart.segments();
        let end = segs.last().map(|s| s.start + s.width).unwrap();
        let step = summary.step_time_s * 1e9 / chart.unit.ns;
        assert!((end / step - 1.0).abs() < 1e-6, "{end} vs {step}");
        for seg in segs.iter().filter(|s| s.label.is_some()) {
            let pct: f64 = seg
                .label
                .as_ref()
                .unwrap()
                .trim_end_matches('%')
                .parse()
                .unwrap();
            assert!((pct - seg.width / step * 100.0).abs() <= 0.5, "{seg:?}");
        }
        assert!(segs.iter().any(|s| s.label.is_some()));
    }

    #[test]
    fn heat_map_ends() {
        assert_eq!(heat(0.0), RGBColor(247, 251, 255));
        assert_eq!(heat(1.0), RGBColor(8, 48, 107));
        assert_eq!(heat(f64::NAN), heat(0.0));
    }
}
