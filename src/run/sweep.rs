//! Goodput against checkpoint interval: the curve, its optimum, and Young's and Daly's
//! intervals for comparison.
//!
//! Every interval sees the same failure times (common random numbers: failures come from
//! the fault streams, not from the job), so the curve is smooth and its optimum well placed.
//! The optimum is the vertex of a parabola fitted in `ln τ` through the best grid point and
//! its neighbours.

use rayon::prelude::*;
use serde::Serialize;

use super::report::Estimate;
use super::{
    MIN_INTERVAL_S, RunError, RunSetup, StepTimeSource, daly_interval, progress_bar, young_interval,
};
use crate::faults::duration;

/// One interval of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    pub interval_s: f64,
    pub goodput: Estimate,
}

/// `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointCurve {
    pub optimum_interval_s: f64,
    pub young_interval_s: f64,
    pub daly_interval_s: f64,
    /// Goodput at the best grid point.
    pub optimum_goodput: f64,
    pub mtbi_s: f64,
    /// Blocking checkpoint cost δ.
    pub checkpoint_stall_s: f64,
    pub replicas: u64,
    /// The best grid point is the grid's first or last: the true optimum may lie beyond
    /// the grid (see [`CheckpointCurve::edge_warning`]).
    pub optimum_at_edge: bool,
    /// The grid was the default one, Daly / [`DEFAULT_SPAN`] to Daly × [`DEFAULT_SPAN`]
    /// (its low end raised to [`CheckpointCurve::grid_floor_s`]); `false` when given.
    pub default_grid: bool,
    /// The shortest interval a checkpoint allows: an async checkpoint cannot start before
    /// the previous one has flushed to storage (at least 1 s).
    pub grid_floor_s: f64,
    pub curve: Vec<CurvePoint>,
}

/// The default grid spans Daly's interval divided and multiplied by this.
pub const DEFAULT_SPAN: f64 = 20.0;

/// Grid points when none are given.
pub const DEFAULT_POINTS: usize = 24;

/// The shortest interval a checkpoint of `setup` allows (its async flush; at least 1 s).
pub fn interval_floor(setup: &RunSetup) -> f64 {
    setup.cost.flush_s().max(MIN_INTERVAL_S)
}

/// The default interval grid: `points` log-spaced intervals from Daly / 20 to Daly × 20,
/// the low end raised to [`interval_floor`] (and the high end then kept 20× above it).
/// Without failures (Daly infinite) every interval is as good: 5 min to 4 h.
pub fn default_grid(setup: &RunSetup, points: usize) -> Vec<f64> {
    let daly = daly_interval(setup.cost.stall_s(), setup.mtbi_s());
    if !daly.is_finite() || daly <= 0.0 {
        return log_grid(300.0, 14_400.0, points);
    }
    let lo = (daly / DEFAULT_SPAN).max(interval_floor(setup));
    let hi = (daly * DEFAULT_SPAN).max(lo * DEFAULT_SPAN);
    log_grid(lo, hi, points)
}

impl CheckpointCurve {
    /// Why the optimum should not be trusted as is, when it lies on an edge of the grid.
    pub fn edge_warning(&self) -> Option<String> {
        if !self.optimum_at_edge {
            return None;
        }
        let best = self
            .curve
            .iter()
            .max_by(|a, b| a.goodput.mean.total_cmp(&b.goodput.mean))?;
        let first = self.curve.first()?.interval_s;
        let last = self.curve.last()?.interval_s;
        let fmt = crate::units::format_duration;
        let at_floor = best.interval_s == first && first <= self.grid_floor_s * (1.0 + 1e-9);
        Some(if at_floor {
            format!(
                "the best interval is the shortest the checkpoint allows ({}: an async checkpoint cannot start before the previous one has flushed); the optimum is this bound",
                fmt(first)
            )
        } else if best.interval_s == first {
            format!(
                "the best interval is the grid's shortest ({}): the optimum may be shorter; widen the grid (--intervals LO:HI with LO below {})",
                fmt(first),
                fmt(first)
            )
        } else {
            format!(
                "the best interval is the grid's longest ({}): the optimum may be longer; widen the grid (--intervals LO:HI with HI above {})",
                fmt(last),
                fmt(last)
            )
        })
    }
}

/// `n` log-spaced points from `lo` to `hi` inclusive.
pub fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n <= 1 || hi <= lo {
        return vec![lo];
    }
    let (a, b) = (lo.ln(), hi.ln());
    (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

/// Parses `5m:4h` or `5m:4h:32` (32 points; default `default_points`).
pub fn parse_intervals(text: &str, default_points: usize) -> Result<Vec<f64>, RunError> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || {
        RunError::spec(
            "--intervals",
            "write `LO:HI` or `LO:HI:POINTS`, e.g. `5m:4h`",
        )
    };
    let (lo, hi) = match parts.as_slice() {
        [lo, hi] | [lo, hi, _] => (duration("--intervals", lo)?, duration("--intervals", hi)?),
        _ => return Err(bad()),
    };
    let n = match parts.get(2) {
        Some(p) => p.trim().parse::<usize>().map_err(|_| bad())?,
        None => default_points,
    };
    let most = crate::config::budget::MAX_GRID_POINTS as usize;
    if !(lo >= 1.0 && hi > lo && (3..=most).contains(&n)) {
        return Err(RunError::spec(
            "--intervals",
            &format!("need 1s <= LO < HI and 3 to {most} points"),
        ));
    }
    Ok(log_grid(lo, hi, n))
}

/// Vertex of the parabola through (ln x, y) of the best point and up to two neighbours on
/// each side; the best grid point when the fit is not concave.
pub fn fit_optimum(xs: &[f64], ys: &[f64]) -> f64 {
    let Some(best) = (0..ys.len()).max_by(|&a, &b| ys[a].total_cmp(&ys[b])) else {
        return f64::NAN;
    };
    let lo = best.saturating_sub(2);
    let hi = (best + 3).min(xs.len());
    if hi - lo < 3 {
        return xs[best];
    }
    let u: Vec<f64> = xs[lo..hi].iter().map(|x| x.ln()).collect();
    let (a, b, _) = quadratic_fit(&u, &ys[lo..hi]);
    if a >= 0.0 {
        return xs[best];
    }
    let vertex = (-b / (2.0 * a)).clamp(u[0], u[u.len() - 1]);
    vertex.exp()
}

/// Least-squares `y = a·x² + b·x + c`.
pub fn quadratic_fit(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n; // centre for conditioning
    let mut s = [0.0f64; 5];
    let mut t = [0.0f64; 3];
    for (&xi, &yi) in x.iter().zip(y) {
        let d = xi - m;
        let mut p = 1.0;
        for (k, sk) in s.iter_mut().enumerate() {
            *sk += p;
            if k < 3 {
                t[k] += p * yi;
            }
            p *= d;
        }
    }
    // Normal equations [s4 s3 s2; s3 s2 s1; s2 s1 s0] (a b c) = (t2 t1 t0).
    let mat = [[s[4], s[3], s[2]], [s[3], s[2], s[1]], [s[2], s[1], s[0]]];
    let (a, b, c) = solve3(mat, [t[2], t[1], t[0]]);
    // Undo the centring: a(x-m)² + b(x-m) + c.
    (a, b - 2.0 * a * m, a * m * m - b * m + c)
}

fn det3(m: [[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> (f64, f64, f64) {
    let d = det3(m);
    let col = |j: usize| {
        let mut c = m;
        for i in 0..3 {
            c[i][j] = r[i];
        }
        det3(c) / d
    };
    (col(0), col(1), col(2))
}

/// Mean goodput of `replicas` runs at each interval (replica `r` keeps its failure times
/// across intervals), in parallel; deterministic regardless of thread count.
pub fn goodput_curve(
    setup: &RunSetup,
    src: &dyn StepTimeSource,
    intervals: &[f64],
    replicas: u64,
    progress: bool,
) -> Result<Vec<CurvePoint>, RunError> {
    let healthy_s = src.step_time_s(&crate::faults::StepState::healthy())?;
    let mut setup = setup.clone();
    setup.check_work(healthy_s, intervals, replicas, false)?;
    let setup = &setup;
    if let Some(&first) = intervals.first() {
        super::prefetch_states(setup, src, first)?;
    }
    let bar = progress_bar(
        intervals.len() as u64 * replicas,
        "checkpoint intervals x replicas",
        progress,
    );
    let jobs: Vec<(usize, u64)> = (0..intervals.len())
        .flat_map(|i| (0..replicas).map(move |r| (i, r)))
        .collect();
    let goodputs: Vec<Result<f64, RunError>> = jobs
        .par_iter()
        .map(|&(i, r)| {
            let g = setup
                .simulate_one(src, r, intervals[i], false)
                .map(|x| x.summary.goodput);
            bar.inc(1);
            g
        })
        .collect();
    bar.finish_and_clear();
    let mut curve = Vec::with_capacity(intervals.len());
    for (i, &interval_s) in intervals.iter().enumerate() {
        let start = i * replicas as usize;
        let gs = goodputs[start..start + replicas as usize]
            .iter()
            .cloned()
            .collect::<Result<Vec<f64>, _>>()?;
        curve.push(CurvePoint {
            interval_s,
            goodput: Estimate::of(&gs),
        });
    }
    Ok(curve)
}

/// The whole sweep: curve, fitted optimum, Young and Daly.
pub fn checkpoint_sweep(
    setup: &RunSetup,
    src: &dyn StepTimeSource,
    intervals: &[f64],
    replicas: u64,
    progress: bool,
) -> Result<CheckpointCurve, RunError> {
    let curve = goodput_curve(setup, src, intervals, replicas.max(1), progress)?;
    let ys: Vec<f64> = curve.iter().map(|p| p.goodput.mean).collect();
    let (d, m) = (setup.cost.stall_s(), setup.mtbi_s());
    let best = (0..ys.len()).max_by(|&a, &b| ys[a].total_cmp(&ys[b]));
    Ok(CheckpointCurve {
        optimum_at_edge: best.is_some_and(|b| b == 0 || b + 1 == ys.len()),
        default_grid: false,
        grid_floor_s: interval_floor(setup),
        optimum_interval_s: fit_optimum(intervals, &ys),
        young_interval_s: young_interval(d, m),
        daly_interval_s: daly_interval(d, m),
        optimum_goodput: ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        mtbi_s: m,
        checkpoint_stall_s: d,
        replicas: replicas.max(1),
        curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_and_interval_parsing() {
        let g = parse_intervals("5m:4h", 9).unwrap();
        assert_eq!(g.len(), 9);
        assert!((g[0] - 300.0).abs() < 1e-9 && (g[8] - 14_400.0).abs() < 1e-6);
        assert_eq!(parse_intervals("1m:1h:5", 9).unwrap().len(), 5);
        assert!(parse_intervals("4h:5m", 9).is_err());
        assert!(parse_intervals("5m", 9).is_err());
    }

    #[test]
    fn quadratic_vertex_is_recovered() {
        let xs = log_grid(10.0, 1000.0, 11);
        let ys: Vec<f64> = xs
            .iter()
            .map(|x| 1.0 - (x.ln() - 150f64.ln()).powi(2))
            .collect();
        assert!((fit_optimum(&xs, &ys) / 150.0 - 1.0).abs() < 1e-9);
    }
}
