//! The checkpoint-interval chart (`checkpoint.png` / `.svg`): mean goodput against the
//! checkpoint interval (log axis, ticks at round durations: `30 s`, `5 min`, `1 h`) with
//! its 95 % confidence band, and vertical lines at the simulated optimum and at Young's
//! and Daly's intervals, each labelled with its value (labels that would overprint are
//! stacked) and listed in a legend; the scenario, replicas and MTBI in the title.
//!
//! Draws what the checkpoint sweep computed ([`CheckpointCurve`]); must not fit or choose
//! anything (the optimum and the grid are the sweep's).

use plotters::coord::Shift;
use plotters::coord::combinators::LogCoord;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::super::layout::{TextBox, nice_step, place_clear, text_size};
use super::super::{Chart, DrawResult, draw_legend, font, legend_height, tick};
use crate::run::sweep::CheckpointCurve;
use crate::units::format_duration;

const W: u32 = 1000;
const H: u32 = 580;
const LEGEND_LEFT: i32 = 80;

const MEAN: RGBColor = RGBColor(30, 30, 30);
const BAND: RGBColor = RGBColor(150, 150, 150);
const OPTIMUM: RGBColor = RGBColor(213, 94, 0);
const YOUNG: RGBColor = RGBColor(0, 114, 178);
const DALY: RGBColor = RGBColor(0, 158, 115);

/// Round durations (seconds) the interval axis may be ticked at.
const ROUND: [f64; 22] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
    14400.0, 28800.0, 43200.0, 86400.0, 172800.0, 345600.0, 604800.0, 1209600.0,
];
/// A sparser set, for ranges too wide for [`ROUND`].
const MEDIUM: [f64; 15] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0, 86400.0, 259200.0,
    604800.0, 2592000.0,
];
/// The sparsest, one per order of magnitude of each unit, for the widest ranges.
const SPARSE: [f64; 9] = [
    1.0, 10.0, 60.0, 600.0, 3600.0, 36000.0, 86400.0, 864000.0, 8640000.0,
];
/// Most ticks on the interval axis.
const MAX_TICKS: usize = 9;

/// Ticks of a log axis from `lo` to `hi` seconds at round durations, at most
/// [`MAX_TICKS`] of them.
pub fn duration_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let within = |set: &[f64]| -> Vec<f64> {
        let v: Vec<f64> = set
            .iter()
            .copied()
            .filter(|&t| t >= lo && t <= hi)
            .collect();
        v
    };
    for set in [&ROUND[..], &MEDIUM[..]] {
        let ticks = within(set);
        if ticks.len() <= MAX_TICKS {
            return ticks;
        }
    }
    let sparse = within(&SPARSE);
    if sparse.len() <= MAX_TICKS {
        return sparse;
    }
    let step = sparse.len().div_ceil(MAX_TICKS);
    sparse.into_iter().step_by(step).collect()
}

/// A round duration as a tick label: `30 s`, `5 min`, `2 h`, `1 d`.
pub fn duration_label(s: f64) -> String {
    let (v, unit) = match s {
        s if s < 60.0 => (s, "s"),
        s if s < 3600.0 => (s / 60.0, "min"),
        s if s < 86400.0 => (s / 3600.0, "h"),
        s => (s / 86400.0, "d"),
    };
    format!("{} {unit}", tick((v * 100.0).round() / 100.0))
}

/// One marked interval: name, seconds, colour.
pub type Mark = (String, f64, RGBColor);

/// The optimum, Young and Daly lines, labelled with their values; the optimum says when it
/// is at an edge of the swept grid (the true optimum may lie beyond).
pub fn marks(c: &CheckpointCurve) -> Vec<Mark> {
    let first = c.curve.first().map(|p| p.interval_s);
    let last = c.curve.last().map(|p| p.interval_s);
    let close = |a: Option<f64>| a.is_some_and(|a| (a / c.optimum_interval_s - 1.0).abs() < 1e-9);
    let edge = if c.curve.len() > 1 && (close(first) || close(last)) {
        ", grid edge"
    } else {
        ""
    };
    vec![
        (
            format!("optimum {}{edge}", format_duration(c.optimum_interval_s)),
            c.optimum_interval_s,
            OPTIMUM,
        ),
        (
            format!("Young {}", format_duration(c.young_interval_s)),
            c.young_interval_s,
            YOUNG,
        ),
        (
            format!("Daly {}", format_duration(c.daly_interval_s)),
            c.daly_interval_s,
            DALY,
        ),
    ]
}

/// The interval axis: the swept grid and every mark, with a margin (seconds).
pub fn interval_range(c: &CheckpointCurve) -> (f64, f64) {
    let xs = c
        .curve
        .iter()
        .map(|p| p.interval_s)
        .chain([c.optimum_interval_s, c.young_interval_s, c.daly_interval_s])
        .filter(|x| x.is_finite() && *x > 0.0);
    let (lo, hi) = xs.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    (lo / 1.3, (hi * 1.3).max(lo * 2.0))
}

/// The goodput axis (fractions): the band with a margin, at round values.
fn goodput_range(c: &CheckpointCurve) -> (f64, f64) {
    let ys = c
        .curve
        .iter()
        .flat_map(|p| [p.goodput.ci95_low, p.goodput.ci95_high, p.goodput.mean])
        .filter(|v| v.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let step = nice_step(((hi - lo) / 5.0).max(1e-4));
    let top = ((hi / step).ceil() * step).max(hi + step / 2.0);
    // Goodput never exceeds 100 %: no axis above it unless the data are.
    ((lo / step).floor() * step, top.min(hi.max(1.0)))
}

/// The chart of a checkpoint sweep of scenario `name`.
pub(in crate::report::charts) struct CheckpointChart<'a> {
    pub curve: &'a CheckpointCurve,
    pub name: String,
}

type Coord = Cartesian2d<WithKeyPoints<LogCoord<f64>>, RangedCoordf64>;

impl CheckpointChart<'_> {
    fn title(&self) -> String {
        let c = self.curve;
        format!(
            "Goodput vs checkpoint interval — {} ({} replicas, MTBI {})",
            self.name,
            c.replicas,
            format_duration(c.mtbi_s)
        )
    }

    pub fn legend(&self) -> Vec<(String, RGBColor)> {
        let mut out = vec![
            (
                format!("mean goodput ({} replicas)", self.curve.replicas),
                MEAN,
            ),
            ("95 % confidence band".to_string(), blend(BAND, 0.35)),
        ];
        out.extend(marks(self.curve).into_iter().map(|(l, _, c)| (l, c)));
        out
    }

    fn draw_marks<DB: DrawingBackend>(
        &self,
        plot: &DrawingArea<DB, Shift>,
        chart: &mut ChartContext<'_, DB, Coord>,
    ) -> DrawResult<DB> {
        let (y0, y1) = (chart.y_range().start, chart.y_range().end);
        let marks = marks(self.curve);
        // Young and Daly are often a second apart: Young wide and light, Daly dashed on top.
        for (k, (_, x, color)) in marks.iter().enumerate() {
            let line = [(*x, y0), (*x, y1)];
            match k {
                1 => chart.draw_series(LineSeries::new(line, color.mix(0.5).stroke_width(5)))?,
                2 => chart.draw_series(DashedLineSeries::new(line, 6, 4, color.stroke_width(2)))?,
                _ => chart.draw_series(LineSeries::new(line, color.stroke_width(2)))?,
            };
        }
        // Labels at the top, right of their line, stacked downward where they would meet.
        let (bx, by) = plot.get_base_pixel();
        let wanted: Vec<TextBox> = marks
            .iter()
            .map(|(label, x, _)| {
                let (px, py) = chart.backend_coord(&(*x, y1));
                let (w, h) = text_size(label, 15.0);
                TextBox {
                    x0: px - bx + 5,
                    y0: py - by + 6,
                    x1: px - bx + 5 + w,
                    y1: py - by + 6 + h,
                }
            })
            .collect();
        let placed = place_clear(&wanted, &[], false, 3);
        let style = font(15.0).pos(Pos::new(HPos::Left, VPos::Top));
        for ((label, _, color), at) in marks.iter().zip(placed) {
            // A light backing keeps a label readable where it crosses another line.
            let back = [(at.x0 - 2, at.y0 - 1), (at.x1 + 2, at.y1 + 1)];
            plot.draw(&Rectangle::new(back, WHITE.mix(0.85).filled()))?;
            let style = style.clone().color(color);
            plot.draw(&Text::new(label.clone(), (at.x0, at.y0), style))?;
        }
        Ok(())
    }
}

/// `c` at opacity `alpha` over white.
fn blend(c: RGBColor, alpha: f64) -> RGBColor {
    let mix = |v: u8| (255.0 - (255.0 - v as f64) * alpha).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

impl Chart for CheckpointChart<'_> {
    fn size(&self) -> (u32, u32) {
        (W, H + legend_height(&self.legend(), W, LEGEND_LEFT))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_vertically(H);
        let c = self.curve;
        let (x0, x1) = interval_range(c);
        let (y0, y1) = goodput_range(c);
        let x = (x0..x1).log_scale().with_key_points(duration_ticks(x0, x1));
        let mut chart = ChartBuilder::on(&plot)
            .caption(self.title(), font(21.0))
            .margin(20)
            .margin_right(40)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("checkpoint interval (log scale)")
            .y_desc("goodput (%)")
            .label_style(font(15.0))
            .axis_desc_style(font(17.0))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .y_labels(8)
            .x_label_formatter(&|v| duration_label(*v))
            .y_label_formatter(&|v| tick(((v * 100.0) * 1e6).round() / 1e6))
            .draw()?;
        let band: Vec<(f64, f64)> = c
            .curve
            .iter()
            .map(|p| (p.interval_s, p.goodput.ci95_high))
            .chain(
                c.curve
                    .iter()
                    .rev()
                    .map(|p| (p.interval_s, p.goodput.ci95_low)),
            )
            .collect();
        chart.draw_series([Polygon::new(band, BAND.mix(0.35).filled())])?;
        let mean = c.curve.iter().map(|p| (p.interval_s, p.goodput.mean));
        chart.draw_series(LineSeries::new(mean.clone(), MEAN.stroke_width(2)))?;
        chart.draw_series(mean.map(|p| Circle::new(p, 3, MEAN.filled())))?;
        self.draw_marks(&plot, &mut chart)?;
        draw_legend(&legend, &self.legend(), LEGEND_LEFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Estimate;
    use crate::run::sweep::CurvePoint;

    /// The shipped llama3-70b-1k sweep's shape: a 5 min to 4 h grid, Young and Daly 56 s.
    fn curve() -> CheckpointCurve {
        let grid = crate::run::sweep::log_grid(300.0, 14400.0, 24);
        CheckpointCurve {
            optimum_interval_s: 300.0,
            young_interval_s: 55.95,
            daly_interval_s: 55.94,
            optimum_goodput: 0.99,
            mtbi_s: 103846.0,
            checkpoint_stall_s: 0.015,
            replicas: 16,
            curve: grid
                .iter()
                .map(|&s| CurvePoint {
                    interval_s: s,
                    goodput: Estimate {
                        mean: 0.99 - s * 4e-6,
                        ci95_low: 0.989 - s * 4e-6,
                        ci95_high: 0.991 - s * 4e-6,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn goodput_axis_stays_at_or_below_100_percent() {
        let (lo, hi) = goodput_range(&curve());
        assert!(
            (0.991..=1.0).contains(&hi) && lo <= 0.989 - 14400.0 * 4e-6,
            "{lo}..{hi}"
        );
    }

    #[test]
    fn ticks_are_round_durations_that_do_not_crowd() {
        let (lo, hi) = interval_range(&curve());
        let ticks = duration_ticks(lo, hi);
        let labels: Vec<String> = ticks.iter().map(|&t| duration_label(t)).collect();
        assert_eq!(
            labels,
            [
                "1 min", "2 min", "5 min", "10 min", "20 min", "30 min", "1 h", "2 h", "4 h"
            ]
        );
        // A 20 s to 2 h sweep: round minutes and hours, not just three ticks.
        let labels: Vec<String> = duration_ticks(15.0, 9360.0)
            .iter()
            .map(|&t| duration_label(t))
            .collect();
        assert_eq!(
            labels,
            ["30 s", "1 min", "5 min", "10 min", "30 min", "1 h"]
        );
        // Wide ranges thin out to at most nine, still in order and distinct.
        let wide = duration_ticks(1.0, 1e7);
        assert!(
            wide.len() <= MAX_TICKS && wide.windows(2).all(|w| w[0] < w[1]),
            "{wide:?}"
        );
        assert_eq!(duration_label(30.0), "30 s");
        assert_eq!(duration_label(86400.0), "1 d");
    }

    #[test]
    fn young_daly_and_optimum_are_on_the_axis_labelled_and_in_the_legend() {
        let c = curve();
        let (lo, hi) = interval_range(&c);
        for (label, x, _) in marks(&c) {
            assert!(x > lo && x < hi, "{label} outside {lo}..{hi}");
        }
        let chart = CheckpointChart {
            curve: &c,
            name: "llama3-70b-1k".into(),
        };
        let legend: Vec<String> = chart.legend().into_iter().map(|e| e.0).collect();
        assert_eq!(
            legend,
            [
                "mean goodput (16 replicas)",
                "95 % confidence band",
                "optimum 5.0 min, grid edge",
                "Young 55.95 s",
                "Daly 55.94 s"
            ]
        );
        assert!(chart.title().contains("llama3-70b-1k"));
        let dir = std::env::temp_dir().join(format!("clustersim-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        crate::report::charts::render(&dir, "checkpoint", &chart).unwrap();
        let svg = std::fs::read_to_string(dir.join("checkpoint.svg")).unwrap();
        for text in [
            "llama3-70b-1k",
            "Young 55.95 s",
            "Daly 55.94 s",
            "optimum 5.0 min",
            "1 h",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
