//! The pipeline schedule of one step: one row per stage (its representative rank), an
//! upper lane with each micro-batch's forward, backward and weight-gradient passes as
//! outlined blocks (recompute and the optimizer drawn over them as executed), a lower lane
//! with the communication streams; later model chunks lighter. The classic 1F1B picture.
//!
//! [`pipeline_rows`] prepares the data (pure); [`PipelineChart`] only draws it. Must not
//! read anything but the step's trace and graph.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    Chart, DrawResult, IDLE, RowCoord, TimeUnit, draw_legend, font, op_of, row_axis, row_center,
    row_label, tick, traced_ranks,
};
use crate::report::fonts::FAMILY;
use crate::report::summary::Summary;
use crate::report::trace::representative_ranks;
use crate::schedule::{Category, Op, Stream};
use crate::sim::StepResult;
use crate::units::Nanos;

pub const PIPELINE: &str = "pipeline_schedule";

/// Background of the communication lane of the pipeline chart.
const COMM_LANE: RGBColor = RGBColor(246, 246, 246);

/// The chart of `result`'s stage representatives, time in `unit`; `None` when no stage
/// was traced.
pub(super) fn chart(
    summary: &Summary,
    result: &StepResult,
    unit: TimeUnit,
) -> Option<PipelineChart> {
    let mut rows = pipeline_rows(result);
    // Half a pixel of the ~1400 px wide plot.
    let gap = result.replay.step_time / 2800;
    for row in &mut rows {
        row.spans = merge_spans(&row.spans, gap);
    }
    if rows.is_empty() {
        return None;
    }
    let chunks = rows
        .iter()
        .flat_map(|r| &r.blocks)
        .map(|b| b.chunk + 1)
        .max()
        .unwrap_or(1);
    Some(PipelineChart {
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
    })
}

/// The schedule as users write it (`1f1b`, `interleaved`, ...).
fn schedule_name(s: &Summary) -> String {
    serde_json::to_value(s.scenario.schedule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

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

/// `c` lightened for model chunk `chunk` of `chunks` (chunk 0 unchanged).
fn shade(c: RGBColor, chunk: u16, chunks: u16) -> RGBColor {
    if chunks <= 1 {
        return c;
    }
    let t = 0.45 * chunk.min(chunks - 1) as f64 / (chunks - 1) as f64;
    let mix = |v: u8| (v as f64 + (255.0 - v as f64) * t).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

pub(super) struct PipelineChart {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TraceRanks;
    use crate::report::charts::tests::traced;

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
}
