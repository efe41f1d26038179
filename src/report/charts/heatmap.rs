//! The link-utilization heat map of a contention-mode step: one row per link tier and
//! direction, cells of link groups in link-id order coloured by utilization, with a colour
//! bar scaled to the busiest cell.
//!
//! Draws what [`LinkReport`] captured from the flow network; must not measure anything.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    Chart, DrawResult, ROW, RowCoord, font, render, row_axis, row_center, row_label, tick,
};
use crate::network::heatmap::heat_color;
use crate::network::links::HeatRow;
use crate::report::ReportError;
use crate::report::links::LinkReport;

/// Outline of a row, so an idle (white) tier stays visible.
const FRAME: RGBColor = RGBColor(190, 190, 190);

/// Draws `report`'s heat map as `<stem>.png` and `<stem>.svg` in `dir`.
pub fn write(dir: &Path, stem: &str, report: &LinkReport) -> Result<Vec<String>, ReportError> {
    render(dir, stem, &HeatmapChart::new(report))
}

/// Colour scale top: the largest utilization rounded up to 1, 2 or 5 x 10^k (at most
/// 100 %), so a lightly loaded fabric still shows its pattern.
pub fn scale_max(rows: &[HeatRow]) -> f64 {
    let max = rows
        .iter()
        .flat_map(|r| r.cells.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if max <= 0.0 {
        return 1.0;
    }
    let exp = 10f64.powf(max.log10().floor());
    let nice = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * exp)
        .find(|&v| v >= max * (1.0 - 1e-9))
        .unwrap_or(10.0 * exp);
    nice.clamp(1e-6, 1.0)
}

struct HeatmapChart<'a> {
    report: &'a LinkReport,
    vmax: f64,
}

impl<'a> HeatmapChart<'a> {
    fn new(report: &'a LinkReport) -> Self {
        HeatmapChart {
            report,
            vmax: scale_max(&report.rows),
        }
    }

    /// Row labels bottom-up (the axis counts from the bottom).
    fn labels(&self) -> Vec<String> {
        let rows = &self.report.rows;
        (0..rows.len())
            .rev()
            .map(|i| format!("{} ({})", rows[i].label(), rows[i].links))
            .collect()
    }

    fn draw_cells<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<'_, DB, RowCoord>,
    ) -> DrawResult<DB> {
        let n = self.report.rows.len();
        for (i, row) in self.report.rows.iter().enumerate() {
            let y = row_center(n, i);
            let (y0, y1) = (y - ROW / 2 + 4, y + ROW / 2 - 4);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (100.0, y1)],
                FRAME.stroke_width(1),
            )))?;
            let w = 100.0 / row.cells.len().max(1) as f64;
            chart.draw_series(row.cells.iter().enumerate().map(|(c, &v)| {
                let x = c as f64 * w;
                let color = heat_color(v / self.vmax);
                Rectangle::new([(x, y0), (x + w, y1)], color.filled())
            }))?;
        }
        Ok(())
    }

    fn draw_color_bar<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut chart = ChartBuilder::on(area)
            .margin_top(70)
            .margin_bottom(80)
            .margin_right(10)
            .y_label_area_size(62)
            .build_cartesian_2d(0f64..1.0, 0f64..self.vmax * 100.0)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(6)
            .label_style(font(15.0))
            .y_label_formatter(&|v| format!("{}%", tick(*v)))
            .draw()?;
        let steps = 60;
        let top = self.vmax * 100.0;
        chart.draw_series((0..steps).map(|i| {
            let (lo, hi) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
            Rectangle::new(
                [(0.0, lo * top), (1.0, hi * top)],
                heat_color((lo + hi) / 2.0).filled(),
            )
        }))?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (1.0, top)],
            BLACK.stroke_width(1),
        )))?;
        let style = font(15.0).pos(Pos::new(HPos::Center, VPos::Top));
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            "utilization",
            (w as i32 / 2, h as i32 - 60),
            style,
        ))?;
        Ok(())
    }
}

impl Chart for HeatmapChart<'_> {
    fn size(&self) -> (u32, u32) {
        (1400, 230 + 56 * self.report.rows.len().max(2) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (w, _) = root.dim_in_pixel();
        let (main, bar) = root.split_horizontally(w - 120);
        let n = self.report.rows.len();
        let mut chart = ChartBuilder::on(&main)
            .caption(
                format!(
                    "Link utilization — {} (contention network, bytes / (capacity × step))",
                    self.report.name
                ),
                font(22.0),
            )
            .margin(12)
            .x_label_area_size(56)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..100.0, row_axis(n))?;
        let labels = self.labels();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("link position within its tier (% of the tier's links, in link-id order)")
            .y_desc("tier and direction (links)")
            .label_style(font(16.0))
            .axis_desc_style(font(18.0))
            .x_label_formatter(&|v| format!("{}%", tick(*v)))
            .y_label_formatter(&|y| row_label(&labels, *y))
            .draw()?;
        self.draw_cells(&mut chart)?;
        self.draw_color_bar(&bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::topology::LinkKind;

    fn row(cells: Vec<f64>) -> HeatRow {
        HeatRow {
            kind: LinkKind::NvLink,
            up: true,
            links: cells.len(),
            cells,
        }
    }

    #[test]
    fn scale_rounds_up_to_a_nice_value() {
        assert_eq!(scale_max(&[row(vec![0.0, 0.03])]), 0.05);
        assert_eq!(scale_max(&[row(vec![0.7])]), 1.0);
        assert_eq!(scale_max(&[row(vec![0.12])]), 0.2);
        assert_eq!(scale_max(&[row(vec![0.0])]), 1.0);
        assert_eq!(scale_max(&[row(vec![3.0])]), 1.0);
    }
}
