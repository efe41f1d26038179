//! The run-progress chart (`run_progress.png` / `.svg`): the share of the run's final step
//! count reached over time and the cumulative goodput, with every failure marked by a
//! vertical line and every restart from a checkpoint by a triangle on the progress line
//! where training resumed (after the roll-back), and a legend with their counts.
//!
//! [`ProgressData`] prepares what is drawn from the run's samples and events (pure); must
//! not simulate anything.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::super::{Chart, DrawResult, draw_legend, font, legend_height, tick};
use crate::run::report::{EventKind, ProgressSample, RunEvent};

const PROGRESS: RGBColor = RGBColor(0, 114, 178);
const GOODPUT: RGBColor = RGBColor(0, 158, 115);
const FAILURE: RGBColor = RGBColor(213, 94, 0);
const RESTORE: RGBColor = RGBColor(120, 60, 160);

const W: u32 = 1000;
const H: u32 = 560;
const LEGEND_LEFT: i32 = 80;

/// What the progress chart shows, in days and fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressData {
    /// `(day, share of the final step count)`.
    pub progress: Vec<(f64, f64)>,
    /// `(day, productive time / wall time so far)`.
    pub goodput: Vec<(f64, f64)>,
    /// Day of each failure.
    pub failures: Vec<f64>,
    /// `(day, progress)` where each restart resumed from its checkpoint.
    pub restores: Vec<(f64, f64)>,
    /// Length of the run.
    pub days: f64,
}

const DAY: f64 = 86_400.0;

impl ProgressData {
    pub fn new(samples: &[ProgressSample], events: &[RunEvent]) -> ProgressData {
        let end = samples.last().map_or(0.0, |s| s.time_s);
        let end = events.iter().map(|e| e.time_s).fold(end, f64::max);
        let steps = samples
            .iter()
            .map(|s| s.steps)
            .chain(events.iter().map(|e| e.steps))
            .fold(0.0, f64::max)
            .max(1e-9);
        let of = |kind: EventKind| events.iter().filter(move |e| e.event == kind);
        ProgressData {
            progress: samples
                .iter()
                .map(|s| (s.time_s / DAY, s.steps / steps))
                .collect(),
            goodput: samples
                .iter()
                .filter(|s| s.time_s > 0.0)
                .map(|s| (s.time_s / DAY, s.productive_s / s.time_s))
                .collect(),
            failures: of(EventKind::Failure).map(|e| e.time_s / DAY).collect(),
            restores: of(EventKind::Restart)
                .map(|e| (e.time_s / DAY, e.steps / steps))
                .collect(),
            days: (end / DAY).max(1e-9),
        }
    }

    /// Legend entries: the two lines, then failures and restores when there were any.
    pub fn legend(&self) -> Vec<(String, RGBColor)> {
        let mut out = vec![
            ("progress (share of final steps)".to_string(), PROGRESS),
            (
                "goodput (productive / wall time so far)".to_string(),
                GOODPUT,
            ),
        ];
        if !self.failures.is_empty() {
            out.push((format!("failure ({})", self.failures.len()), FAILURE));
        }
        if !self.restores.is_empty() {
            let n = self.restores.len();
            out.push((format!("restart from checkpoint ({n})"), RESTORE));
        }
        out
    }
}

/// The chart of a run of scenario `name`.
pub(in crate::report::charts) struct ProgressChart {
    pub data: ProgressData,
    pub name: String,
}

impl Chart for ProgressChart {
    fn size(&self) -> (u32, u32) {
        (W, H + legend_height(&self.data.legend(), W, LEGEND_LEFT))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_vertically(H);
        let d = &self.data;
        let mut chart = ChartBuilder::on(&plot)
            .margin(20)
            .margin_right(30)
            .caption(
                format!("Run progress and goodput — {}", self.name),
                font(22.0),
            )
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..d.days, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("days")
            .y_desc("share (%)")
            .label_style(font(15.0))
            .axis_desc_style(font(17.0))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| format!("{:.0}", v * 100.0))
            .draw()?;
        let failure = FAILURE.mix(0.6).stroke_width(1);
        for &x in &d.failures {
            chart.draw_series(LineSeries::new([(x, 0.0), (x, 1.0)], failure))?;
        }
        let lines = [(&d.progress, PROGRESS), (&d.goodput, GOODPUT)];
        for (pts, color) in lines {
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        }
        chart.draw_series(
            d.restores
                .iter()
                .map(|&p| TriangleMarker::new(p, 6, RESTORE.filled())),
        )?;
        draw_legend(&legend, &d.legend(), LEGEND_LEFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time_s: f64, event: EventKind, steps: f64) -> RunEvent {
        RunEvent {
            time_s,
            event,
            component: String::new(),
            cost_s: 0.0,
            steps,
        }
    }

    #[test]
    fn every_failure_and_restore_is_marked_and_in_the_legend() {
        let samples: Vec<ProgressSample> = (0..=10)
            .map(|i| ProgressSample {
                time_s: i as f64 * DAY,
                steps: i as f64 * 100.0,
                productive_s: i as f64 * DAY * 0.9,
            })
            .collect();
        let events = vec![
            event(0.0, EventKind::Start, 0.0),
            event(2.5 * DAY, EventKind::Checkpoint, 250.0),
            event(3.0 * DAY, EventKind::Failure, 250.0),
            event(3.1 * DAY, EventKind::Restart, 250.0),
            event(7.0 * DAY, EventKind::Failure, 690.0),
            event(7.2 * DAY, EventKind::Restart, 690.0),
            event(10.0 * DAY, EventKind::End, 1000.0),
        ];
        let d = ProgressData::new(&samples, &events);
        assert_eq!(d.failures, vec![3.0, 7.0]);
        assert_eq!(d.restores, vec![(3.1, 0.25), (7.2, 0.69)]);
        assert_eq!(d.days, 10.0);
        let legend: Vec<String> = d.legend().into_iter().map(|e| e.0).collect();
        assert_eq!(legend.len(), 4, "{legend:?}");
        assert!(legend[2] == "failure (2)" && legend[3] == "restart from checkpoint (2)");
        // A run without failures has only the two lines.
        let calm = ProgressData::new(&samples, &events[..2]);
        assert_eq!(calm.legend().len(), 2);
    }
}
