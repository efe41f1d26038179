//! What a run produced: events (`run.csv`), progress samples (the chart), the summary
//! (`summary.json`'s `run` section) and replica statistics. Pure data and formatting.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// Kinds of run events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Start,
    /// A component failed: the job rolls back (cost = work lost, seconds).
    Failure,
    /// Training resumed (cost = outage length: detection, spare wait, restart, load).
    Restart,
    /// A synchronous checkpoint completed (cost = stall).
    Checkpoint,
    /// An asynchronous checkpoint's snapshot completed (cost = stall); it flushes in the
    /// background.
    CheckpointSnapshot,
    /// An asynchronous checkpoint reached storage and can be restored.
    CheckpointDurable,
    StragglerStart,
    StragglerEnd,
    End,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Failure => "failure",
            EventKind::Restart => "restart",
            EventKind::Checkpoint => "checkpoint",
            EventKind::CheckpointSnapshot => "checkpoint_snapshot",
            EventKind::CheckpointDurable => "checkpoint_durable",
            EventKind::StragglerStart => "straggler_start",
            EventKind::StragglerEnd => "straggler_end",
            EventKind::End => "end",
        }
    }
}

/// One row of `run.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    pub time_s: f64,
    pub event: EventKind,
    /// `class:index` of the component (`gpu:17`, `switch:2`), empty when none.
    pub component: String,
    pub cost_s: f64,
    /// Training progress (optimizer steps kept) after the event.
    pub steps: f64,
}

/// A point of the progress chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProgressSample {
    pub time_s: f64,
    pub steps: f64,
    pub productive_s: f64,
}

/// `summary.json`'s `run` section for one run. Hours are wall-clock hours of the whole job;
/// `lost_hours` is all non-productive time (rework + checkpoint stalls + outages), of which
/// the parts are given separately.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub seed: u64,
    pub gpus: u64,
    /// Effective training time ratio: productive (kept) training time / wall time.
    pub goodput: f64,
    pub interruptions: u64,
    pub interruptions_by_cause: BTreeMap<String, u64>,
    pub lost_hours: f64,
    pub lost_gpu_hours: f64,
    /// Training time rolled back by failures.
    pub rework_hours: f64,
    pub checkpoint_overhead_hours: f64,
    /// Outages: detection, waiting for spares, restart, checkpoint load.
    pub restart_hours: f64,
    /// Running time spent beyond the healthy step time because of stragglers/degraded links.
    pub straggler_overhead_hours: f64,
    pub mean_time_between_interruptions_h: Option<f64>,
    pub wall_time_h: f64,
    pub productive_time_h: f64,
    pub steps: f64,
    pub tokens: f64,
    pub time_to_train_tokens_h: Option<f64>,
    pub checkpoints: u64,
    pub checkpoint_interval_s: Option<f64>,
    pub checkpoint_stall_s: f64,
    pub checkpoint_write_s: f64,
    pub checkpoint_load_s: f64,
    pub checkpoint_size_gb: f64,
    /// Healthy step time.
    pub step_time_s: f64,
    pub distinct_step_states: u64,
}

/// A mean with its 95 % confidence interval (Student t over replicas).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
}

/// Two-sided 97.5 % Student t quantiles for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

impl Estimate {
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len();
        if n == 0 {
            return Estimate {
                mean: f64::NAN,
                ci95_low: f64::NAN,
                ci95_high: f64::NAN,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Estimate {
                mean,
                ci95_low: mean,
                ci95_high: mean,
            };
        }
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = T975.get(n - 2).copied().unwrap_or(1.96);
        let half = t * (var / n as f64).sqrt();
        Estimate {
            mean,
            ci95_low: mean - half,
            ci95_high: mean + half,
        }
    }
}

/// Statistics over Monte-Carlo replicas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaStats {
    pub replicas: u64,
    pub goodput: Estimate,
    pub interruptions: Estimate,
    pub lost_hours: Estimate,
    pub checkpoint_overhead_hours: Estimate,
    pub restart_hours: Estimate,
    pub wall_time_h: Estimate,
    pub time_to_train_tokens_h: Option<Estimate>,
}

impl ReplicaStats {
    pub fn of(runs: &[RunSummary]) -> Self {
        let e =
            |f: &dyn Fn(&RunSummary) -> f64| Estimate::of(&runs.iter().map(f).collect::<Vec<_>>());
        let ttt: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.time_to_train_tokens_h)
            .collect();
        ReplicaStats {
            replicas: runs.len() as u64,
            goodput: e(&|r| r.goodput),
            interruptions: e(&|r| r.interruptions as f64),
            lost_hours: e(&|r| r.lost_hours),
            checkpoint_overhead_hours: e(&|r| r.checkpoint_overhead_hours),
            restart_hours: e(&|r| r.restart_hours),
            wall_time_h: e(&|r| r.wall_time_h),
            time_to_train_tokens_h: (!ttt.is_empty()).then(|| Estimate::of(&ttt)),
        }
    }
}

/// `run.csv`: one line per event, fixed formatting so equal runs give equal bytes.
pub fn events_csv(events: &[RunEvent]) -> String {
    let mut out = String::from("time_s,event,component,cost_s,steps\n");
    for e in events {
        let _ = writeln!(
            out,
            "{:.3},{},{},{:.3},{:.3}",
            e.time_s,
            e.event.name(),
            e.component,
            e.cost_s,
            e.steps
        );
    }
    out
}

/// A human-readable table of a run.
pub fn table(s: &RunSummary, stats: Option<&ReplicaStats>) -> String {
    let mut t = String::new();
    let ci = |e: Option<Estimate>| {
        e.map(|e| format!(" (95% CI {:.4}..{:.4})", e.ci95_low, e.ci95_high))
            .unwrap_or_default()
    };
    let _ = writeln!(
        t,
        "goodput            {:.4}{}",
        stats.map_or(s.goodput, |x| x.goodput.mean),
        ci(stats.map(|x| x.goodput))
    );
    let _ = writeln!(t, "wall time          {:.1} h", s.wall_time_h);
    let _ = writeln!(t, "productive time    {:.1} h", s.productive_time_h);
    let causes: Vec<String> = s
        .interruptions_by_cause
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(
        t,
        "interruptions      {} ({})",
        s.interruptions,
        causes.join(", ")
    );
    if let Some(m) = s.mean_time_between_interruptions_h {
        let _ = writeln!(t, "MTBI               {m:.2} h");
    }
    let _ = writeln!(
        t,
        "lost               {:.1} h = {:.0} GPU-h (rework {:.1} h, checkpoints {:.1} h, restarts {:.1} h)",
        s.lost_hours,
        s.lost_gpu_hours,
        s.rework_hours,
        s.checkpoint_overhead_hours,
        s.restart_hours
    );
    let _ = writeln!(t, "straggler overhead {:.2} h", s.straggler_overhead_hours);
    let _ = writeln!(
        t,
        "checkpoints        {} of {:.1} GB, stall {:.1} s, load {:.1} s",
        s.checkpoints, s.checkpoint_size_gb, s.checkpoint_stall_s, s.checkpoint_load_s
    );
    if let Some(h) = s.time_to_train_tokens_h {
        let _ = writeln!(t, "time to train      {:.2} d", h / 24.0);
    }
    t
}

/// Writes `run.csv` into `dir`; returns its name. (The progress chart is drawn by
/// `report::charts::run::progress_chart`.)
pub fn write_csv(dir: &std::path::Path, events: &[RunEvent]) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let csv = dir.join(RUN_CSV);
    std::fs::write(&csv, events_csv(events)).map_err(|e| format!("{}: {e}", csv.display()))?;
    Ok(RUN_CSV.to_string())
}

/// The run's event log.
pub const RUN_CSV: &str = "run.csv";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_uses_student_t() {
        let e = Estimate::of(&[1.0, 2.0, 3.0]);
        assert_eq!(e.mean, 2.0);
        assert!((e.ci95_high - (2.0 + 4.303 * (1.0f64 / 3.0).sqrt())).abs() < 1e-9);
    }
}
