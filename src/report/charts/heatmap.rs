//! The link-utilization heat map of a contention-mode step, in two panels with one row per
//! link tier and direction and cells of link groups in link-id order: the mean over the
//! step (bytes / (capacity × step)) and the peak (the highest total rate of a cell's links
//! at any moment over capacity), so bursts that a step average dilutes still show. Each
//! panel has its own colour bar, scaled to its busiest cell.
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

/// Colour scale top: the largest value rounded up to 1, 2 or 5 x 10^k (at most 100 %),
/// so a lightly loaded fabric still shows its pattern.
pub fn scale_max(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    if max <= 0.0 {
        return 1.0;
    }
    super::layout::nice_step(max).clamp(1e-6, 1.0)
}

/// What one panel of the heat map shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Mean,
    Peak,
}

impl Measure {
    pub const ALL: [Measure; 2] = [Measure::Mean, Measure::Peak];

    pub fn cells(self, row: &HeatRow) -> &[f64] {
        match self {
            Measure::Mean => &row.cells,
            Measure::Peak => &row.peaks,
        }
    }

    pub fn caption(self) -> &'static str {
        match self {
            Measure::Mean => "mean over the step: bytes / (capacity × step)",
            Measure::Peak => "peak during the step: highest total flow rate / capacity",
        }
    }

    /// The top of the panel's colour scale for `rows`.
    pub fn scale(self, rows: &[HeatRow]) -> f64 {
        scale_max(rows.iter().flat_map(|r| self.cells(r).iter().copied()))
    }
}

struct HeatmapChart<'a> {
    report: &'a LinkReport,
}

/// Height of one panel per row, and of the rest of a panel (axes, caption).
const ROW_PX: u32 = 56;
const PANEL_EXTRA: u32 = 150;
const TITLE_PX: u32 = 44;

impl<'a> HeatmapChart<'a> {
    fn new(report: &'a LinkReport) -> Self {
        HeatmapChart { report }
    }

    fn panel_height(&self) -> u32 {
        PANEL_EXTRA + ROW_PX * self.report.rows.len().max(2) as u32
    }

    /// Row labels bottom-up (the axis counts from the bottom).
    fn labels(&self) -> Vec<String> {
        let rows = &self.report.rows;
        (0..rows.len())
            .rev()
            .map(|i| format!("{} ({})", rows[i].label(), rows[i].links))
            .collect()
    }

    /// One panel: rows of cells of `measure` and its colour bar.
    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        measure: Measure,
        last: bool,
    ) -> DrawResult<DB> {
        let (w, _) = area.dim_in_pixel();
        let (main, bar) = area.split_horizontally(w - 120);
        let n = self.report.rows.len();
        let mut chart = ChartBuilder::on(&main)
            .caption(measure.caption(), font(19.0))
            .margin(12)
            .x_label_area_size(if last { 56 } else { 30 })
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..100.0, row_axis(n))?;
        let labels = self.labels();
        let (x_fmt, y_fmt) = (
            |v: &f64| format!("{}%", tick(*v)),
            |y: &i32| row_label(&labels, *y),
        );
        let x_desc = match last {
            true => "link position within its tier (% of the tier's links, in link-id order)",
            false => "",
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(x_desc)
            .y_desc("tier and direction (links)")
            .label_style(font(16.0))
            .axis_desc_style(font(18.0))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()?;
        let vmax = measure.scale(&self.report.rows);
        self.draw_cells(&mut chart, measure, vmax)?;
        draw_color_bar(&bar, vmax)
    }

    fn draw_cells<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<'_, DB, RowCoord>,
        measure: Measure,
        vmax: f64,
    ) -> DrawResult<DB> {
        let n = self.report.rows.len();
        for (i, row) in self.report.rows.iter().enumerate() {
            let y = row_center(n, i);
            let (y0, y1) = (y - ROW / 2 + 4, y + ROW / 2 - 4);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (100.0, y1)],
                FRAME.stroke_width(1),
            )))?;
            let cells = measure.cells(row);
            let w = 100.0 / cells.len().max(1) as f64;
            chart.draw_series(cells.iter().enumerate().map(|(c, &v)| {
                let x = c as f64 * w;
                let color = heat_color(v / vmax);
                Rectangle::new([(x, y0), (x + w, y1)], color.filled())
            }))?;
        }
        Ok(())
    }
}

/// A vertical colour bar from 0 to `vmax` (a fraction), labelled in percent.
pub(crate) fn draw_color_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    vmax: f64,
) -> DrawResult<DB> {
    let top = vmax * 100.0;
    let mut chart = ChartBuilder::on(area)
        .margin_top(50)
        .margin_bottom(60)
        .margin_right(10)
        .y_label_area_size(62)
        .build_cartesian_2d(0f64..1.0, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .label_style(font(15.0))
        .y_label_formatter(&|v| format!("{}%", tick(*v)))
        .draw()?;
    let steps = 60;
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
        (w as i32 / 2, h as i32 - 50),
        style,
    ))?;
    Ok(())
}

impl Chart for HeatmapChart<'_> {
    fn size(&self) -> (u32, u32) {
        (1400, TITLE_PX + 2 * self.panel_height())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let title = format!(
            "Link utilization — {} (contention network)",
            self.report.name
        );
        let root = root.titled(&title, font(22.0))?;
        let panels = root.split_evenly((Measure::ALL.len(), 1));
        for (k, (area, measure)) in panels.iter().zip(Measure::ALL).enumerate() {
            self.draw_panel(area, measure, k + 1 == Measure::ALL.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::topology::LinkKind;

    fn row(cells: Vec<f64>, peaks: Vec<f64>) -> HeatRow {
        HeatRow {
            kind: LinkKind::NvLink,
            up: true,
            links: cells.len(),
            cells,
            peaks,
        }
    }

    #[test]
    fn scale_rounds_up_to_a_nice_value() {
        let s = |v: &[f64]| scale_max(v.iter().copied());
        assert_eq!(s(&[0.0, 0.03]), 0.05);
        assert_eq!(s(&[0.7]), 1.0);
        assert_eq!(s(&[0.12]), 0.2);
        assert_eq!(s(&[0.0]), 1.0);
        assert_eq!(s(&[3.0]), 1.0);
    }

    #[test]
    fn the_peak_panel_shows_bursts_the_mean_dilutes() {
        // A link busy at full rate for 4 % of the step: mean 4 %, peak 100 %.
        let rows = vec![row(vec![0.04, 0.0], vec![1.0, 0.0])];
        assert_eq!(Measure::Mean.scale(&rows), 0.05);
        assert_eq!(Measure::Peak.scale(&rows), 1.0);
        assert_eq!(Measure::Peak.cells(&rows[0]), &[1.0, 0.0]);
        let report = LinkReport {
            csv: String::new(),
            rows,
            name: "toy".into(),
            series: None,
        };
        let dir = std::env::temp_dir().join(format!("clustersim-heat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "heat", &report).unwrap();
        let svg = std::fs::read_to_string(dir.join("heat.svg")).unwrap();
        for m in Measure::ALL {
            assert!(svg.contains(m.caption()), "{}", m.caption());
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
