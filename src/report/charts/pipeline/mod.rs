//! The pipeline schedule of one step: one row per stage (its representative rank), an
//! upper lane with each micro-batch's forward, backward and weight-gradient passes as
//! outlined blocks (recompute and the optimizer drawn over them as executed), a lower lane
//! with the communication streams; later model chunks lighter. The classic 1F1B picture.
//!
//! This file prepares the data ([`pipeline_rows`], pure); [`draw`] draws it in whole
//! pixel columns. Must not read anything but the step's trace and graph.

mod draw;

use draw::PipelineChart;
pub use draw::{columns, labelled_blocks, thin_spans};

use plotters::style::RGBColor;

use super::{TimeUnit, op_of, traced_ranks};
use crate::report::summary::Summary;
use crate::report::trace::representative_ranks;
use crate::schedule::{Category, Op, Stream};
use crate::sim::StepResult;
use crate::units::Nanos;

pub const PIPELINE: &str = "pipeline_schedule";

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

    /// The pass a kind is drawn as (forward, backward, weight gradient), when it is drawn
    /// as its micro-batch's block rather than as executed.
    fn pass_drawn_as_block(self) -> Option<u8> {
        match self {
            Kind::Forward | Kind::Backward | Kind::BackwardWeight => self.pass(),
            _ => None,
        }
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

#[cfg(test)]
mod tests;
