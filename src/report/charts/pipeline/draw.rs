//! Drawing the pipeline chart: per stage a compute lane (blocks per micro-batch pass,
//! recompute and the optimizer over them) and a communication lane, in whole pixel
//! columns so that the PNG and the SVG show the same thing. Sub-pixel spans are thinned
//! ([`thin_spans`]) rather than dropped or inflated; block numbers are shown per pass and
//! number length ([`labelled_blocks`]). Must not compute anything beyond layout.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Block, Kind, PipelineRow, Span};
use crate::report::charts::{
    Chart, DrawResult, IDLE, RowCoord, TimeUnit, draw_legend, font, row_axis, row_center,
    row_label, tick,
};
use crate::report::fonts::FAMILY;
use crate::units::Nanos;

/// Background of the communication lane of the pipeline chart.
const COMM_LANE: RGBColor = RGBColor(246, 246, 246);

/// `c` lightened for model chunk `chunk` of `chunks` (chunk 0 unchanged).
fn shade(c: RGBColor, chunk: u16, chunks: u16) -> RGBColor {
    if chunks <= 1 {
        return c;
    }
    let t = 0.45 * chunk.min(chunks - 1) as f64 / (chunks - 1) as f64;
    let mix = |v: u8| (v as f64 + (255.0 - v as f64) * t).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

pub(in crate::report::charts) struct PipelineChart {
    pub rows: Vec<PipelineRow>,
    /// Model chunks per stage (virtual stages); later chunks are drawn lighter.
    pub chunks: u16,
    pub step: Nanos,
    pub unit: TimeUnit,
    pub title: String,
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
    /// communication streams. Drawn in whole pixel columns ([`columns`]), so a span
    /// shorter than a pixel still shows, the same in the PNG and the SVG.
    fn draw_row<DB: DrawingBackend>(
        &self,
        chart: &ChartContext<DB, RowCoord>,
        row: &PipelineRow,
        y: i32,
    ) -> DrawResult<DB> {
        let px = Pixels::of(chart, self.step);
        let area = chart.plotting_area().strip_coord_spec();
        let (main, comm) = (
            px.lane(chart, y - 4, y + 42),
            px.lane(chart, y - 42, y - 12),
        );
        let rect = |a: Nanos, b: Nanos, (top, bottom): (i32, i32)| {
            let (x0, x1) = columns(px.x(a), px.x(b));
            [(x0, top), (x1, bottom)]
        };
        area.draw(&Rectangle::new(rect(0, self.step, main), IDLE.filled()))?;
        area.draw(&Rectangle::new(
            rect(0, self.step, comm),
            COMM_LANE.filled(),
        ))?;
        for b in &row.blocks {
            let color = shade(b.kind.color(), b.chunk, self.chunks);
            area.draw(&Rectangle::new(rect(b.start, b.end, main), color.filled()))?;
        }
        // Passes are drawn as their blocks; other compute (recompute inside backward, the
        // optimizer) and communication as executed, thinned to the pixel grid.
        let executed: Vec<Span> = row
            .spans
            .iter()
            .filter(|s| s.kind.pass_drawn_as_block().is_none())
            .copied()
            .collect();
        for s in &thin_spans(&executed, &row.blocks, px.ns_per_px()) {
            let lane = if s.kind.is_comm() { comm } else { main };
            area.draw(&Rectangle::new(
                rect(s.start, s.end, lane),
                s.kind.color().filled(),
            ))?;
        }
        // Outlines only where a block is wide enough to show colour inside them.
        let outline = BLACK.mix(0.6).stroke_width(1);
        for b in &row.blocks {
            let [(x0, top), (x1, bottom)] = rect(b.start, b.end, main);
            if x1 - x0 >= MIN_OUTLINED {
                area.draw(&Rectangle::new([(x0, top), (x1, bottom)], outline))?;
            }
        }
        self.draw_block_labels(&area, &px, row, (main.0 + main.1) / 2)
    }

    /// Micro-batch numbers inside blocks wide enough to hold them ([`labelled_blocks`]).
    fn draw_block_labels<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        px: &Pixels,
        row: &PipelineRow,
        y: i32,
    ) -> DrawResult<DB> {
        let style = TextStyle::from((FAMILY, 17.0).into_font())
            .color(&WHITE)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let widths: Vec<f64> = row
            .blocks
            .iter()
            .map(|b| px.x(b.end) - px.x(b.start))
            .collect();
        let shown = labelled_blocks(&row.blocks, &widths);
        for (b, show) in row.blocks.iter().zip(shown) {
            if show {
                let mid = ((px.x(b.start) + px.x(b.end)) / 2.0).round() as i32;
                area.draw(&Text::new(
                    b.micro_batch.to_string(),
                    (mid, y),
                    style.clone(),
                ))?;
            }
        }
        Ok(())
    }
}

/// Blocks narrower than this many pixels are drawn without an outline, which would hide
/// their colour.
const MIN_OUTLINED: i32 = 4;

/// Pixels a micro-batch number of `digits` needs inside its block.
fn label_width(digits: usize) -> f64 {
    11.0 * digits as f64 + 4.0
}

/// Which blocks of a row show their micro-batch number, given each block's width in
/// pixels. Decided per pass and number length, not per block, so that sub-pixel
/// differences between equal blocks leave no gaps: numbers of a length are shown on a pass
/// when its median block holds one, on every block at least 70 % as wide as its number.
pub fn labelled_blocks(blocks: &[Block], widths: &[f64]) -> Vec<bool> {
    let mut shown = vec![false; blocks.len()];
    for pass in 0..3u8 {
        let idx: Vec<usize> = (0..blocks.len())
            .filter(|&i| blocks[i].kind.pass() == Some(pass))
            .collect();
        let mut w: Vec<f64> = idx.iter().map(|&i| widths[i]).collect();
        if w.is_empty() {
            continue;
        }
        w.sort_by(f64::total_cmp);
        let median = w[w.len() / 2];
        for &i in &idx {
            let need = label_width(blocks[i].micro_batch.to_string().len());
            shown[i] = median >= need && widths[i] >= 0.7 * need;
        }
    }
    shown
}

/// Spans closer than this many pixels (outside blocks) are collected together by
/// [`thin_spans`].
const FLUSH_PX: f64 = 8.0;

/// Executed spans of one row (sorted by kind, then start) as a grid of `ns_per_px`
/// nanoseconds per pixel can show them. A span of a pixel or more stays as it is. Shorter
/// spans of a kind are collected in time order, within one block (outside blocks, while
/// less than [`FLUSH_PX`] apart), and drawn as one span each time they add up to a pixel,
/// from where the collection started; a remainder is drawn too (one pixel wide, see
/// [`columns`]). So every block with any recompute shows it, in the PNG and the SVG alike,
/// and the width drawn stays close to the time spent (not a pixel per sub-pixel op).
pub fn thin_spans(spans: &[Span], blocks: &[Block], ns_per_px: f64) -> Vec<Span> {
    let block_of = |t: Nanos| {
        let i = blocks.partition_point(|b| b.start <= t);
        (i > 0 && t < blocks[i - 1].end).then(|| i - 1)
    };
    let mut out = Vec::with_capacity(spans.len());
    // Pending collection: first span (start, kind, block), time collected, last end.
    let mut pending: Option<(Span, Option<usize>, f64, Nanos)> = None;
    let flush = |p: &mut Option<(Span, Option<usize>, f64, Nanos)>, out: &mut Vec<Span>| {
        if let Some((first, _, ns, _)) = p.take() {
            let end = first.start + ns.ceil() as Nanos;
            out.push(Span { end, ..first });
        }
    };
    for s in spans {
        let len = (s.end - s.start) as f64;
        if len >= ns_per_px {
            out.push(*s);
            continue;
        }
        let block = block_of(s.start);
        if let Some((first, b, _, last)) = pending {
            let apart = (s.start.saturating_sub(last)) as f64 > FLUSH_PX * ns_per_px;
            if first.kind != s.kind || b != block || (block.is_none() && apart) {
                flush(&mut pending, &mut out);
            }
        }
        let p = pending.get_or_insert((*s, block, 0.0, s.end));
        p.2 += len;
        p.3 = s.end;
        if p.2 >= ns_per_px {
            flush(&mut pending, &mut out);
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Pixel columns `[x0, x1)` covering the fractional pixel positions `a..b`: at least one
/// column, so that a span shorter than a pixel still shows.
pub fn columns(a: f64, b: f64) -> (i32, i32) {
    let x0 = a.floor() as i32;
    (x0, (b.floor() as i32).max(x0 + 1))
}

/// The plot's time axis in fractional pixels relative to the plotting area, as plotters
/// maps it (so blocks line up with the grid).
struct Pixels {
    x0: f64,
    x1: f64,
    step: Nanos,
    base_y: i32,
}

impl Pixels {
    fn of<DB: DrawingBackend>(chart: &ChartContext<DB, RowCoord>, step: Nanos) -> Pixels {
        let (bx, by) = chart.plotting_area().get_base_pixel();
        let t_end = chart.x_range().end;
        Pixels {
            x0: (chart.backend_coord(&(0.0, 0)).0 - bx) as f64,
            x1: (chart.backend_coord(&(t_end, 0)).0 - bx) as f64,
            step: step.max(1),
            base_y: by,
        }
    }

    fn ns_per_px(&self) -> f64 {
        self.step as f64 / (self.x1 - self.x0).max(1.0)
    }

    fn x(&self, t: Nanos) -> f64 {
        self.x0 + (self.x1 - self.x0) * t as f64 / self.step as f64
    }

    /// Top and bottom pixel rows of the lane between row units `lo` and `hi`.
    fn lane<DB: DrawingBackend>(
        &self,
        chart: &ChartContext<DB, RowCoord>,
        lo: i32,
        hi: i32,
    ) -> (i32, i32) {
        let y = |v: i32| chart.backend_coord(&(0.0, v)).1 - self.base_y;
        (y(hi), y(lo))
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
            self.draw_row(&chart, row, row_center(n, i))?;
        }
        draw_legend(&legend_area, &self.legend(), 182)
    }
}
