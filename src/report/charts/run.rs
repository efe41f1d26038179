//! Charts of the long-horizon run: progress and goodput over time (`run_progress`),
//! goodput against checkpoint interval (`checkpoint`) and job MTBF against GPU count
//! (log-log), each a line chart with optional vertical marks.
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
use crate::run::report::ProgressSample;
use crate::run::sweep::CheckpointCurve;

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

/// Progress (share of the final step count, blue) and cumulative goodput (green) against
/// days, as `run_progress.png` / `.svg` in `dir`; returns the file names.
pub fn progress_chart(dir: &Path, samples: &[ProgressSample]) -> Result<Vec<String>, ReportError> {
    let last = samples.last().copied().unwrap_or(ProgressSample {
        time_s: 1.0,
        steps: 1.0,
        productive_s: 1.0,
    });
    let days = (last.time_s / 86_400.0).max(1e-9);
    let steps = last.steps.max(1e-9);
    let progress: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.time_s / 86_400.0, s.steps / steps))
        .collect();
    let goodput: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.time_s > 0.0)
        .map(|s| (s.time_s / 86_400.0, s.productive_s / s.time_s))
        .collect();
    let chart = LineChart {
        x: 0.0..days,
        y: 0.0..1.0,
        series: vec![(progress, BLUE), (goodput, GREEN)],
        marks: vec![],
        title: "Run progress (blue) and goodput (green)",
        x_desc: "days",
        y_desc: "fraction",
    };
    render(dir, PROGRESS, &chart)
}

/// Goodput against checkpoint interval (log x) with its 95 % band; marks: fitted optimum
/// (red), Young (blue), Daly (green). Written as `checkpoint.png` / `.svg` in `dir`.
pub fn checkpoint_chart(dir: &Path, c: &CheckpointCurve) -> Result<Vec<String>, ReportError> {
    let points = |f: fn(&crate::run::Estimate) -> f64| -> Vec<(f64, f64)> {
        c.curve
            .iter()
            .map(|p| (p.interval_s / 60.0, f(&p.goodput)))
            .collect()
    };
    let (mean, lo, hi) = (
        points(|g| g.mean),
        points(|g| g.ci95_low),
        points(|g| g.ci95_high),
    );
    let xs = || mean.iter().map(|p| p.0);
    let (x0, x1) = (xs().fold(f64::INFINITY, f64::min), xs().fold(0.0, f64::max));
    let ys = || lo.iter().chain(&hi).map(|p| p.1).filter(|v| v.is_finite());
    let (y0, y1) = (ys().fold(1.0, f64::min), ys().fold(0.0, f64::max));
    let pad = ((y1 - y0) * 0.05).max(1e-4);
    let grey = RGBColor(170, 170, 170);
    let chart = LineChart {
        x: (x0.max(1e-9)..x1.max(x0 * 1.0001)).log_scale(),
        y: (y0 - pad)..(y1 + pad),
        series: vec![(lo, grey), (hi, grey), (mean, BLACK)],
        marks: vec![
            (c.optimum_interval_s / 60.0, RED),
            (c.young_interval_s / 60.0, BLUE),
            (c.daly_interval_s / 60.0, GREEN),
        ],
        title: "Goodput vs checkpoint interval",
        x_desc: "interval (min)",
        y_desc: "goodput",
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
        let names = progress_chart(&dir, &samples).unwrap();
        assert_eq!(names, ["run_progress.png", "run_progress.svg"]);
        mtbf_chart(&dir, &[(8.0, 1000.0), (64.0, 120.0), (512.0, 16.0)]).unwrap();
        assert!(dir.join("run_progress.png").exists() && dir.join("mtbf_vs_gpus.svg").exists());
        let svg = std::fs::read_to_string(dir.join("run_progress.svg")).unwrap();
        assert!(svg.contains("Run progress"), "text drawn");
        std::fs::remove_dir_all(&dir).ok();
    }
}
