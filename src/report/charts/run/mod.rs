//! Charts of the long-horizon run: progress and goodput over time (`run_progress`,
//! [`progress`]), goodput against checkpoint interval (`checkpoint`, [`checkpoint`]) and
//! job MTBF against GPU count (log-log, a plain line chart).
//!
//! Draws what `run` computed ([`ProgressSample`], [`CheckpointCurve`]); must not simulate
//! or fit anything.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::{Chart, DrawResult, render};
use crate::report::ReportError;
use crate::report::fonts::FAMILY;
use crate::run::report::{ProgressSample, RunEvent};
use crate::run::sweep::CheckpointCurve;

pub mod checkpoint;
pub mod progress;

pub const PROGRESS: &str = "run_progress";
pub const CHECKPOINT: &str = "checkpoint";
pub const MTBF: &str = "mtbf_vs_gpus";

const W: u32 = 900;
const H: u32 = 540;

/// A series: points and colour.
type Series = (Vec<(f64, f64)>, RGBColor);

/// Lines on axes `x` × `y`, with vertical `marks` across the whole plot.
struct LineChart<X, Y> {
    x: X,
    y: Y,
    series: Vec<Series>,
    marks: Vec<(f64, RGBColor)>,
    title: &'static str,
    x_desc: &'static str,
    y_desc: &'static str,
}

impl<X, Y> Chart for LineChart<X, Y>
where
    X: AsRangedCoord<Value = f64> + Clone,
    Y: AsRangedCoord<Value = f64> + Clone,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    fn size(&self) -> (u32, u32) {
        (W, H)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .margin(20)
            .caption(self.title, (FAMILY, 22))
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(self.x.clone(), self.y.clone())?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .draw()?;
        for (pts, color) in &self.series {
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        }
        let (y0, y1) = {
            let r = chart.y_range();
            (r.start, r.end)
        };
        for &(xv, color) in &self.marks {
            chart.draw_series(LineSeries::new([(xv, y0), (xv, y1)], color.stroke_width(1)))?;
        }
        Ok(())
    }
}

/// Progress and cumulative goodput against days, with every failure and restart from a
/// checkpoint marked ([`progress`]), as `run_progress.png` / `.svg` in `dir`; `name` (the
/// scenario) goes in the title. Returns the file names.
pub fn progress_chart(
    dir: &Path,
    samples: &[ProgressSample],
    events: &[RunEvent],
    name: &str,
) -> Result<Vec<String>, ReportError> {
    let chart = progress::ProgressChart {
        data: progress::ProgressData::new(samples, events),
        name: name.to_string(),
    };
    render(dir, PROGRESS, &chart)
}

/// Goodput against checkpoint interval with its 95 % band and the optimum, Young and
/// Daly intervals marked and labelled ([`checkpoint`]), as `checkpoint.png` / `.svg` in
/// `dir`; `name` (the scenario) goes in the title. Returns the file names.
pub fn checkpoint_chart(
    dir: &Path,
    c: &CheckpointCurve,
    name: &str,
) -> Result<Vec<String>, ReportError> {
    let chart = checkpoint::CheckpointChart {
        curve: c,
        name: name.to_string(),
    };
    render(dir, CHECKPOINT, &chart)
}

/// Job MTBF (hours) against GPU count on log-log axes (black), with the ideal `1/N` line
/// through the first point (grey). Written as `mtbf_vs_gpus.png` / `.svg` in `dir`;
/// nothing without points.
pub fn mtbf_chart(dir: &Path, points: &[(f64, f64)]) -> Result<Vec<String>, ReportError> {
    let Some(&(n0, m0)) = points.first() else {
        return Ok(Vec::new());
    };
    let ideal: Vec<(f64, f64)> = points.iter().map(|&(n, _)| (n, m0 * n0 / n)).collect();
    let xs = || points.iter().map(|p| p.0);
    let ys = || points.iter().chain(&ideal).map(|p| p.1);
    let (x0, x1) = (xs().fold(f64::INFINITY, f64::min), xs().fold(0.0, f64::max));
    let (y0, y1) = (ys().fold(f64::INFINITY, f64::min), ys().fold(0.0, f64::max));
    let chart = LineChart {
        x: (x0 * 0.8..x1 * 1.25).log_scale(),
        y: (y0 * 0.8..y1 * 1.25).log_scale(),
        series: vec![(ideal, RGBColor(170, 170, 170)), (points.to_vec(), BLACK)],
        marks: vec![],
        title: "Job MTBF vs GPUs",
        x_desc: "GPUs",
        y_desc: "MTBF (h)",
    };
    render(dir, MTBF, &chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_charts_draw_with_the_embedded_font() {
        let dir = std::env::temp_dir().join(format!("clustersim-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let samples: Vec<ProgressSample> = (0..50)
            .map(|i| ProgressSample {
                time_s: i as f64 * 3600.0,
                steps: i as f64 * 100.0,
                productive_s: i as f64 * 3000.0,
            })
            .collect();
        let names = progress_chart(&dir, &samples, &[], "toy").unwrap();
        assert_eq!(names, ["run_progress.png", "run_progress.svg"]);
        mtbf_chart(&dir, &[(8.0, 1000.0), (64.0, 120.0), (512.0, 16.0)]).unwrap();
        assert!(dir.join("run_progress.png").exists() && dir.join("mtbf_vs_gpus.svg").exists());
        let svg = std::fs::read_to_string(dir.join("run_progress.svg")).unwrap();
        assert!(svg.contains("Run progress and goodput — toy"), "text drawn");
        std::fs::remove_dir_all(&dir).ok();
    }
}
