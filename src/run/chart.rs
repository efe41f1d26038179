//! Charts of a run (progress and goodput over time), of goodput against checkpoint interval,
//! and of job MTBF against GPU count (log-log), as PNG and SVG.
//!
//! Text needs a registered font: pass the family name once `report` has registered its
//! embedded font; with `None` the charts are drawn without any text (axes and lines only).

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use thiserror::Error;

use super::report::ProgressSample;
use super::sweep::CheckpointCurve;

/// The embedded font's family once registered (`None` if registration failed: charts are
/// then drawn without text).
pub fn embedded_font() -> Option<&'static str> {
    crate::report::fonts::ensure_registered()
        .ok()
        .map(|_| crate::report::fonts::FAMILY)
}

#[derive(Debug, Error)]
#[error("chart {path}: {message}")]
pub struct ChartError {
    pub path: String,
    pub message: String,
}

const W: u32 = 900;
const H: u32 = 540;

/// A series: points and colour.
type Series<'a> = (&'a [(f64, f64)], RGBColor);

/// Draws `series` (and vertical `marks`) on axes `x` × `y`, to `stem.png` and `stem.svg`.
fn draw_both<X, Y>(
    stem: &Path,
    x: X,
    y: Y,
    series: &[Series<'_>],
    marks: &[(f64, RGBColor)],
    font: Option<(&str, &str, &str, &str)>,
) -> Result<(), ChartError>
where
    X: AsRangedCoord<Value = f64> + Clone,
    Y: AsRangedCoord<Value = f64> + Clone,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let err = |p: &Path| {
        let p = p.display().to_string();
        move |e: String| ChartError {
            path: p.clone(),
            message: e,
        }
    };
    let root = BitMapBackend::new(&png, (W, H)).into_drawing_area();
    draw(root, x.clone(), y.clone(), series, marks, font).map_err(err(&png))?;
    let root = SVGBackend::new(&svg, (W, H)).into_drawing_area();
    draw(root, x, y, series, marks, font).map_err(err(&svg))
}

fn draw<DB, X, Y>(
    root: DrawingArea<DB, Shift>,
    x: X,
    y: Y,
    series: &[Series<'_>],
    marks: &[(f64, RGBColor)],
    font: Option<(&str, &str, &str, &str)>,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut b = ChartBuilder::on(&root);
    b.margin(20);
    if let Some((family, title, _, _)) = font {
        b.caption(title, (family, 22))
            .x_label_area_size(45)
            .y_label_area_size(60);
    } else {
        b.x_label_area_size(5).y_label_area_size(5);
    }
    let mut chart = b.build_cartesian_2d(x, y).map_err(e)?;
    match font {
        Some((family, _, xd, yd)) => {
            chart
                .configure_mesh()
                .x_desc(xd)
                .y_desc(yd)
                .label_style((family, 14))
                .axis_desc_style((family, 16))
                .draw()
                .map_err(e)?;
        }
        None => {
            // No font: a frame instead of labelled axes.
            let area = chart.plotting_area();
            let (w, h) = area.dim_in_pixel();
            let frame = [
                (0, 0),
                (w as i32 - 1, 0),
                (w as i32 - 1, h as i32 - 1),
                (0, h as i32 - 1),
                (0, 0),
            ];
            area.strip_coord_spec()
                .draw(&PathElement::new(frame, BLACK))
                .map_err(e)?;
        }
    }
    for (pts, color) in series {
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(e)?;
    }
    let (y0, y1) = {
        let r = chart.y_range();
        (r.start, r.end)
    };
    for &(xv, color) in marks {
        chart
            .draw_series(LineSeries::new([(xv, y0), (xv, y1)], color.stroke_width(1)))
            .map_err(e)?;
    }
    root.present().map_err(e)
}

/// Progress (share of the final step count, blue) and cumulative goodput (green) against
/// days, to `stem.png` / `stem.svg`.
pub fn progress_chart(
    stem: &Path,
    samples: &[ProgressSample],
    font: Option<&str>,
) -> Result<(), ChartError> {
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
    let font = font.map(|f| {
        (
            f,
            "Run progress (blue) and goodput (green)",
            "days",
            "fraction",
        )
    });
    draw_both(
        stem,
        0.0..days,
        0.0..1.0,
        &[(&progress, BLUE), (&goodput, GREEN)],
        &[],
        font,
    )
}

/// Goodput against checkpoint interval (log x) with its 95 % band; marks: fitted optimum
/// (red), Young (blue), Daly (green).
pub fn checkpoint_chart(
    stem: &Path,
    c: &CheckpointCurve,
    font: Option<&str>,
) -> Result<(), ChartError> {
    let mean: Vec<(f64, f64)> = c
        .curve
        .iter()
        .map(|p| (p.interval_s / 60.0, p.goodput.mean))
        .collect();
    let lo: Vec<(f64, f64)> = c
        .curve
        .iter()
        .map(|p| (p.interval_s / 60.0, p.goodput.ci95_low))
        .collect();
    let hi: Vec<(f64, f64)> = c
        .curve
        .iter()
        .map(|p| (p.interval_s / 60.0, p.goodput.ci95_high))
        .collect();
    let xs = || mean.iter().map(|p| p.0);
    let (x0, x1) = (xs().fold(f64::INFINITY, f64::min), xs().fold(0.0, f64::max));
    let ys = || lo.iter().chain(&hi).map(|p| p.1).filter(|v| v.is_finite());
    let (y0, y1) = (ys().fold(1.0, f64::min), ys().fold(0.0, f64::max));
    let pad = ((y1 - y0) * 0.05).max(1e-4);
    let grey = RGBColor(170, 170, 170);
    let font = font.map(|f| {
        (
            f,
            "Goodput vs checkpoint interval",
            "interval (min)",
            "goodput",
        )
    });
    draw_both(
        stem,
        (x0.max(1e-9)..x1.max(x0 * 1.0001)).log_scale(),
        (y0 - pad)..(y1 + pad),
        &[(&lo, grey), (&hi, grey), (&mean, BLACK)],
        &[
            (c.optimum_interval_s / 60.0, RED),
            (c.young_interval_s / 60.0, BLUE),
            (c.daly_interval_s / 60.0, GREEN),
        ],
        font,
    )
}

/// Job MTBF (hours) against GPU count on log-log axes (black), with the ideal `1/N` line
/// through the first point (grey).
pub fn mtbf_chart(
    stem: &Path,
    points: &[(f64, f64)],
    font: Option<&str>,
) -> Result<(), ChartError> {
    let Some(&(n0, m0)) = points.first() else {
        return Ok(());
    };
    let ideal: Vec<(f64, f64)> = points.iter().map(|&(n, _)| (n, m0 * n0 / n)).collect();
    let xs = || points.iter().map(|p| p.0);
    let ys = || points.iter().chain(&ideal).map(|p| p.1);
    let (x0, x1) = (xs().fold(f64::INFINITY, f64::min), xs().fold(0.0, f64::max));
    let (y0, y1) = (ys().fold(f64::INFINITY, f64::min), ys().fold(0.0, f64::max));
    let font = font.map(|f| (f, "Job MTBF vs GPUs", "GPUs", "MTBF (h)"));
    draw_both(
        stem,
        (x0 * 0.8..x1 * 1.25).log_scale(),
        (y0 * 0.8..y1 * 1.25).log_scale(),
        &[(&ideal, RGBColor(170, 170, 170)), (points, BLACK)],
        &[],
        font,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_without_fonts() {
        let dir = std::env::temp_dir().join(format!("clustersim-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let samples: Vec<ProgressSample> = (0..50)
            .map(|i| ProgressSample {
                time_s: i as f64 * 3600.0,
                steps: i as f64 * 100.0,
                productive_s: i as f64 * 3000.0,
            })
            .collect();
        progress_chart(&dir.join("progress"), &samples, None).unwrap();
        mtbf_chart(
            &dir.join("mtbf"),
            &[(8.0, 1000.0), (64.0, 120.0), (512.0, 16.0)],
            None,
        )
        .unwrap();
        assert!(dir.join("progress.png").exists() && dir.join("mtbf.svg").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
