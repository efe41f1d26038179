//! The step breakdown: one stacked bar of the step's mean time per part (compute,
//! exposed communication per kind, bubble, idle), percent labels on parts wide enough to
//! hold them and a legend with each part's time and share.
//!
//! Reads the [`Summary`]'s breakdown ([`breakdown_parts`]); must not compute it.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Chart, DrawResult, IDLE, TimeUnit, dark_text_on, draw_legend, font, seconds, tick};
use crate::report::summary::{Summary, breakdown_parts};

pub const BREAKDOWN: &str = "step_breakdown";

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

pub(super) struct BreakdownChart {
    /// `(label, seconds, colour)` of the non-zero parts.
    parts: Vec<(String, f64, RGBColor)>,
    step: f64,
    unit: TimeUnit,
    title: String,
}

impl BreakdownChart {
    pub(super) fn new(s: &Summary) -> Self {
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
    use crate::fixtures::toy_scenario;
    use crate::sim::{StepOptions, simulate_step};

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
}
