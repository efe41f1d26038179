//! The GPU utilization chart of one step: per traced rank (at most
//! [`MAX_UTILIZATION_ROWS`], sampled evenly, the stage representatives kept), the share of
//! each time bin its compute stream was busy, drawn as a white-to-blue heat strip with a
//! colour bar.
//!
//! [`utilization`] prepares the data (pure); [`UtilizationChart`] only draws it. Must not
//! read anything but the step's trace and graph.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    Chart, DrawResult, TimeUnit, font, op_of, row_axis, row_center, row_label, seconds, tick,
    traced_ranks,
};
use crate::report::trace::representative_ranks;
use crate::schedule::Stream;
use crate::sim::StepResult;
use crate::units::Nanos;

pub const UTILIZATION: &str = "gpu_utilization";

/// Time bins of the utilization chart.
pub const UTILIZATION_BINS: usize = 200;
/// Most rows the utilization chart shows; more traced ranks are sampled evenly.
pub const MAX_UTILIZATION_ROWS: usize = 48;

/// The chart of `result`'s traced ranks, time in `unit`; `None` when nothing was traced.
pub(super) fn chart(result: &StepResult, unit: TimeUnit) -> Option<UtilizationChart> {
    utilization(result, UTILIZATION_BINS, MAX_UTILIZATION_ROWS)
        .map(|data| UtilizationChart { data, unit })
}

/// Compute-stream busy fraction per time bin for some traced ranks.
#[derive(Debug, Clone, PartialEq)]
pub struct Utilization {
    pub ranks: Vec<u32>,
    /// `rows[i][b]`: busy fraction of rank `ranks[i]` in bin `b`, in `[0, 1]`.
    pub rows: Vec<Vec<f64>>,
    /// Mean over the step per rank.
    pub mean: Vec<f64>,
    pub bin_ns: f64,
    pub traced: usize,
    pub stage_size: u32,
}

/// Evenly samples at most `max` of `items`, keeping the first and last.
fn sample<T: Copy>(items: &[T], max: usize) -> Vec<T> {
    if items.len() <= max || max < 2 {
        return items.iter().copied().take(max).collect();
    }
    (0..max)
        .map(|i| items[i * (items.len() - 1) / (max - 1)])
        .collect()
}

/// At most `max` of `traced` (sorted): the traced representatives first, the rest sampled
/// evenly; returned sorted.
fn pick_rows(traced: &[u32], representatives: &[u32], max: usize) -> Vec<u32> {
    if traced.len() <= max {
        return traced.to_vec();
    }
    let mut rows: Vec<u32> = representatives
        .iter()
        .copied()
        .filter(|r| traced.binary_search(r).is_ok())
        .take(max)
        .collect();
    let others: Vec<u32> = traced
        .iter()
        .copied()
        .filter(|r| !rows.contains(r))
        .collect();
    rows.extend(sample(&others, max - rows.len()));
    rows.sort_unstable();
    rows
}

/// Busy fraction of the compute stream of traced ranks over `bins` time bins; `None` when
/// nothing was traced.
pub fn utilization(result: &StepResult, bins: usize, max_rows: usize) -> Option<Utilization> {
    let step = result.replay.step_time;
    let all = traced_ranks(result);
    if all.is_empty() || step == 0 || bins == 0 {
        return None;
    }
    let ranks = pick_rows(&all, &representative_ranks(&result.grid), max_rows);
    let bin_ns = step as f64 / bins as f64;
    let mut rows = vec![vec![0.0; bins]; ranks.len()];
    for e in &result.replay.trace {
        let Ok(i) = ranks.binary_search(&e.rank) else {
            continue;
        };
        if op_of(result, e.rank, e.op).is_some_and(|op| op.stream == Stream::Compute) {
            add_busy(&mut rows[i], e.start as f64, e.end as f64, bin_ns);
        }
    }
    let mean = rows
        .iter()
        .map(|r| r.iter().sum::<f64>() / bins as f64)
        .collect();
    Some(Utilization {
        ranks,
        rows,
        mean,
        bin_ns,
        traced: all.len(),
        stage_size: result.grid.stage_size(),
    })
}

/// Adds the overlap of `[start, end)` with each bin, as a fraction of the bin.
fn add_busy(row: &mut [f64], start: f64, end: f64, bin_ns: f64) {
    if end <= start {
        return;
    }
    let first = (start / bin_ns).floor() as usize;
    let last = ((end / bin_ns).ceil() as usize).min(row.len());
    for (b, cell) in row.iter_mut().enumerate().take(last).skip(first) {
        let (lo, hi) = (b as f64 * bin_ns, (b + 1) as f64 * bin_ns);
        let overlap = end.min(hi) - start.max(lo);
        if overlap > 0.0 {
            *cell = (*cell + overlap / bin_ns).min(1.0);
        }
    }
}

/// Sequential white-to-blue colour map for utilization in `[0, 1]`.
pub fn heat(v: f64) -> RGBColor {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * v).round() as u8;
    RGBColor(lerp(247, 8), lerp(251, 48), lerp(255, 107))
}

pub(super) struct UtilizationChart {
    data: Utilization,
    unit: TimeUnit,
}

impl UtilizationChart {
    fn row_label(&self, i: usize) -> String {
        let r = self.data.ranks[i];
        format!(
            "rank {r} (stage {}) {:.0}%",
            r / self.data.stage_size.max(1),
            self.data.mean[i] * 100.0
        )
    }
}

impl Chart for UtilizationChart {
    fn size(&self) -> (u32, u32) {
        (1400, 200 + 22 * self.data.ranks.len().max(3) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (w, _) = root.dim_in_pixel();
        let (main, bar) = root.split_horizontally(w - 110);
        let u = &self.data;
        let n = u.ranks.len();
        let bins = u.rows.first().map_or(0, Vec::len);
        let t_end = self.unit.of((u.bin_ns * bins as f64) as Nanos);
        let shown = if u.traced > n {
            format!(", {n} of {} traced ranks", u.traced)
        } else {
            String::new()
        };
        let mut chart = ChartBuilder::on(&main)
            .caption(
                format!(
                    "GPU utilization — compute stream busy per {} bin{shown}",
                    seconds(u.bin_ns / 1e9)
                ),
                font(24.0),
            )
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..t_end, row_axis(n))?;
        let labels: Vec<String> = (0..n).map(|i| self.row_label(n - 1 - i)).collect();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("time ({})", self.unit.name))
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|y| row_label(&labels, *y))
            .draw()?;
        let bin_w = u.bin_ns / self.unit.ns;
        for (i, row) in u.rows.iter().enumerate() {
            let y = row_center(n, i);
            chart.draw_series(row.iter().enumerate().map(|(b, &v)| {
                let x = b as f64 * bin_w;
                Rectangle::new([(x, y - 45), (x + bin_w, y + 45)], heat(v).filled())
            }))?;
        }
        draw_color_bar(&bar)
    }
}

fn draw_color_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(60)
        .margin_bottom(60)
        .margin_right(10)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1.0, 0f64..1.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .label_style(font(16.0))
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .draw()?;
    let steps = 50;
    chart.draw_series((0..steps).map(|i| {
        let (lo, hi) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
        Rectangle::new([(0.0, lo), (1.0, hi)], heat((lo + hi) / 2.0).filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TraceRanks;
    use crate::report::charts::tests::traced;
    use crate::schedule::Category;

    #[test]
    fn add_busy_splits_over_bins() {
        let mut row = vec![0.0; 4];
        add_busy(&mut row, 5.0, 25.0, 10.0);
        assert_eq!(row, vec![0.5, 1.0, 0.5, 0.0]);
        add_busy(&mut row, 30.0, 30.0, 10.0);
        assert_eq!(row[3], 0.0);
    }

    #[test]
    fn sample_keeps_ends() {
        let v: Vec<u32> = (0..100).collect();
        let s = sample(&v, 5);
        assert_eq!(s.len(), 5);
        assert_eq!((s[0], s[4]), (0, 99));
        assert_eq!(sample(&v[..3], 5), vec![0, 1, 2]);
    }

    #[test]
    fn utilization_is_a_fraction_and_matches_busy_time() {
        let r = traced(TraceRanks::All);
        let u = utilization(&r, 50, 48).unwrap();
        assert_eq!(u.ranks, vec![0, 1, 2, 3]);
        for (i, row) in u.rows.iter().enumerate() {
            assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
            let rank = u.ranks[i] as usize;
            let busy: Nanos = (0..=Category::Optimizer as usize)
                .map(|c| r.replay.ranks[rank].busy[c])
                .sum();
            let want = busy as f64 / r.replay.step_time as f64;
            assert!((u.mean[i] - want).abs() < 1e-6, "{} vs {want}", u.mean[i]);
        }
        assert!(utilization(&traced(TraceRanks::None), 50, 48).is_none());
    }

    #[test]
    fn pick_rows_keeps_representatives() {
        let traced: Vec<u32> = (0..128).collect();
        let rows = pick_rows(&traced, &[0, 32, 64, 96], 10);
        assert_eq!(rows.len(), 10);
        for r in [0, 32, 64, 96] {
            assert!(rows.contains(&r), "{rows:?}");
        }
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(pick_rows(&[1, 2], &[0], 10), vec![1, 2]);
    }

    #[test]
    fn heat_map_ends() {
        assert_eq!(heat(0.0), RGBColor(247, 251, 255));
        assert_eq!(heat(1.0), RGBColor(8, 48, 107));
        assert_eq!(heat(f64::NAN), heat(0.0));
    }
}
