//! Link utilization over time of a contention-mode step: one row per tier and direction
//! (and, when every link was recorded, a second panel with the busiest links), one column
//! per time bin, colour = utilization in that bin (fraction of the row's capacity in use).
//!
//! Draws what [`TimeSeries`] holds; must not measure anything.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::heatmap::{draw_color_bar, scale_max};
use super::{
    Chart, DrawResult, ROW, TimeUnit, font, render, row_axis, row_center, row_label, tick,
};
use crate::network::heatmap::heat_color;
use crate::network::timeseries::{SeriesRow, TimeSeries};
use crate::report::ReportError;

/// Links shown in the busiest-links panel.
pub const BUSIEST_LINKS: usize = 12;

/// Outline of a row, so an idle (white) row stays visible.
const FRAME: RGBColor = RGBColor(190, 190, 190);

/// Draws the chart as `<stem>.png` and `<stem>.svg` in `dir`.
pub fn write(
    dir: &Path,
    stem: &str,
    series: &TimeSeries,
    name: &str,
) -> Result<Vec<String>, ReportError> {
    render(dir, stem, &TimelineChart::new(series, name))
}

/// The `k` links with the highest mean utilization over the step (ties by link id).
pub fn busiest(series: &TimeSeries, k: usize) -> Vec<&SeriesRow> {
    let mean = |r: &SeriesRow| r.values.iter().sum::<f64>() / r.values.len().max(1) as f64;
    let mut rows: Vec<&SeriesRow> = series.links.iter().collect();
    rows.sort_by(|a, b| mean(b).total_cmp(&mean(a)).then(a.link.cmp(&b.link)));
    rows.truncate(k);
    rows
}

struct Panel<'a> {
    caption: String,
    rows: Vec<&'a SeriesRow>,
    y_desc: &'static str,
}

struct TimelineChart<'a> {
    series: &'a TimeSeries,
    name: &'a str,
    panels: Vec<Panel<'a>>,
}

const ROW_PX: u32 = 52;
const PANEL_EXTRA: u32 = 150;
const TITLE_PX: u32 = 44;

impl<'a> TimelineChart<'a> {
    fn new(series: &'a TimeSeries, name: &'a str) -> Self {
        let mut panels = vec![Panel {
            caption:
                "each tier and direction: bytes moved in the bin / (its links' capacity × bin)"
                    .to_string(),
            rows: series.tiers.iter().collect(),
            y_desc: "tier and direction (links)",
        }];
        if !series.links.is_empty() {
            panels.push(Panel {
                caption: format!(
                    "the {} busiest links (highest mean over the step)",
                    BUSIEST_LINKS.min(series.links.len())
                ),
                rows: busiest(series, BUSIEST_LINKS),
                y_desc: "link (id source>destination)",
            });
        }
        TimelineChart {
            series,
            name,
            panels,
        }
    }

    fn panel_height(p: &Panel<'_>) -> u32 {
        PANEL_EXTRA + ROW_PX * p.rows.len().max(2) as u32
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        p: &Panel<'_>,
    ) -> DrawResult<DB> {
        let (w, _) = area.dim_in_pixel();
        let (main, bar) = area.split_horizontally(w - 120);
        let unit = TimeUnit::for_step(self.series.step);
        let end = unit.of(self.series.step).max(1e-9);
        let n = p.rows.len();
        let mut chart = ChartBuilder::on(&main)
            .caption(&p.caption, font(19.0))
            .margin(12)
            .x_label_area_size(56)
            .y_label_area_size(300)
            .build_cartesian_2d(0f64..end, row_axis(n))?;
        // Labels bottom-up (the axis counts from the bottom).
        let labels: Vec<String> = p
            .rows
            .iter()
            .rev()
            .map(|r| match r.link {
                Some(_) => r.name.clone(),
                None => format!("{} ({})", r.name, r.links),
            })
            .collect();
        let x_desc = format!("time in the step ({})", unit.name);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(x_desc)
            .y_desc(p.y_desc)
            .label_style(font(16.0))
            .axis_desc_style(font(18.0))
            .x_label_formatter(&|v: &f64| tick(*v))
            .y_label_formatter(&|y: &i32| row_label(&labels, *y))
            .draw()?;
        let vmax = scale_max(p.rows.iter().flat_map(|r| r.values.iter().copied()));
        let bins = self.series.bins.max(1);
        let w = end / bins as f64;
        for (i, row) in p.rows.iter().enumerate() {
            let y = row_center(n, i);
            let (y0, y1) = (y - ROW / 2 + 4, y + ROW / 2 - 4);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (end, y1)],
                FRAME.stroke_width(1),
            )))?;
            chart.draw_series(
                row.values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(b, &v)| {
                        let x = b as f64 * w;
                        Rectangle::new([(x, y0), (x + w, y1)], heat_color(v / vmax).filled())
                    }),
            )?;
        }
        draw_color_bar(&bar, vmax)
    }
}

impl Chart for TimelineChart<'_> {
    fn size(&self) -> (u32, u32) {
        let h: u32 = self.panels.iter().map(Self::panel_height).sum();
        (1400, TITLE_PX + h)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let title = format!(
            "Link utilization over time — {} ({} bins of {})",
            self.name,
            self.series.bins,
            super::seconds(self.series.step as f64 * 1e-9 / self.series.bins.max(1) as f64)
        );
        let root = root.titled(&title, font(22.0))?;
        let mut rest = root;
        for (k, p) in self.panels.iter().enumerate() {
            if k + 1 == self.panels.len() {
                self.draw_panel(&rest, p)?;
            } else {
                let (top, bottom) = rest.split_vertically(Self::panel_height(p));
                self.draw_panel(&top, p)?;
                rest = bottom;
            }
        }
        Ok(())
    }
}
