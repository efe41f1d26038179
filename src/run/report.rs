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

impl RunSummary {
    /// The numeric invariants of a written run: goodput in [0, 1]; times, steps and
    /// tokens finite and non-negative. `Err` names the broken invariant.
    pub fn check_invariants(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.goodput) {
            return Err(format!("goodput = {} is outside [0, 1]", self.goodput));
        }
        for (name, v) in [
            ("lost_hours", self.lost_hours),
            ("rework_hours", self.rework_hours),
            ("checkpoint_overhead_hours", self.checkpoint_overhead_hours),
            ("restart_hours", self.restart_hours),
            ("straggler_overhead_hours", self.straggler_overhead_hours),
            ("wall_time_h", self.wall_time_h),
            ("productive_time_h", self.productive_time_h),
            ("steps", self.steps),
            ("tokens", self.tokens),
            ("step_time_s", self.step_time_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} = {v} is not a finite, non-negative number"));
            }
        }
        Ok(())
    }
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

/// Statistics over Monte-Carlo replicas: the mean and 95 % CI of every random figure of
/// [`RunSummary`] (the checkpoint's size, stall and load are the same in every replica).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaStats {
    pub replicas: u64,
    pub goodput: Estimate,
    pub interruptions: Estimate,
    /// Interruptions per cause, over every replica (0 where a cause did not occur).
    pub interruptions_by_cause: BTreeMap<String, Estimate>,
    pub lost_hours: Estimate,
    pub lost_gpu_hours: Estimate,
    pub rework_hours: Estimate,
    pub checkpoint_overhead_hours: Estimate,
    pub restart_hours: Estimate,
    pub straggler_overhead_hours: Estimate,
    /// Over the replicas that had at least one interruption.
    pub mean_time_between_interruptions_h: Option<Estimate>,
    pub wall_time_h: Estimate,
    pub productive_time_h: Estimate,
    pub steps: Estimate,
    pub checkpoints: Estimate,
    pub time_to_train_tokens_h: Option<Estimate>,
}

impl ReplicaStats {
    pub fn of(runs: &[RunSummary]) -> Self {
        let e =
            |f: &dyn Fn(&RunSummary) -> f64| Estimate::of(&runs.iter().map(f).collect::<Vec<_>>());
        let some = |f: &dyn Fn(&RunSummary) -> Option<f64>| {
            let xs: Vec<f64> = runs.iter().filter_map(f).collect();
            (!xs.is_empty()).then(|| Estimate::of(&xs))
        };
        let causes: std::collections::BTreeSet<&String> = runs
            .iter()
            .flat_map(|r| r.interruptions_by_cause.keys())
            .collect();
        let interruptions_by_cause = causes
            .into_iter()
            .map(|c| {
                let n = e(&|r| r.interruptions_by_cause.get(c).copied().unwrap_or(0) as f64);
                (c.clone(), n)
            })
            .collect();
        ReplicaStats {
            replicas: runs.len() as u64,
            goodput: e(&|r| r.goodput),
            interruptions: e(&|r| r.interruptions as f64),
            interruptions_by_cause,
            lost_hours: e(&|r| r.lost_hours),
            lost_gpu_hours: e(&|r| r.lost_gpu_hours),
            rework_hours: e(&|r| r.rework_hours),
            checkpoint_overhead_hours: e(&|r| r.checkpoint_overhead_hours),
            restart_hours: e(&|r| r.restart_hours),
            straggler_overhead_hours: e(&|r| r.straggler_overhead_hours),
            mean_time_between_interruptions_h: some(&|r| r.mean_time_between_interruptions_h),
            wall_time_h: e(&|r| r.wall_time_h),
            productive_time_h: e(&|r| r.productive_time_h),
            steps: e(&|r| r.steps),
            checkpoints: e(&|r| r.checkpoints as f64),
            time_to_train_tokens_h: some(&|r| r.time_to_train_tokens_h),
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

/// A figure of the run table: one run's value, or the mean over replicas with its 95 % CI.
fn fig(single: f64, est: Option<&Estimate>, decimals: usize, unit: &str) -> String {
    match est {
        None => format!("{single:.decimals$}{unit}"),
        Some(e) => format!(
            "{:.decimals$}{unit} (95% CI {:.decimals$}..{:.decimals$})",
            e.mean, e.ci95_low, e.ci95_high
        ),
    }
}

/// A human-readable table of a run. With replica statistics every random figure is the
/// mean over replicas with its 95 % CI (never one replica's value).
pub fn table(s: &RunSummary, stats: Option<&ReplicaStats>) -> String {
    let mut t = String::new();
    let st = stats;
    let _ = writeln!(
        t,
        "goodput            {}",
        fig(s.goodput, st.map(|x| &x.goodput), 4, "")
    );
    let _ = writeln!(
        t,
        "wall time          {}",
        fig(s.wall_time_h, st.map(|x| &x.wall_time_h), 1, " h")
    );
    let _ = writeln!(
        t,
        "productive time    {}",
        fig(
            s.productive_time_h,
            st.map(|x| &x.productive_time_h),
            1,
            " h"
        )
    );
    let causes: Vec<String> = match st {
        None => s
            .interruptions_by_cause
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect(),
        Some(x) => x
            .interruptions_by_cause
            .iter()
            .map(|(k, v)| format!("{k} {:.1}", v.mean))
            .collect(),
    };
    match st {
        None => {
            let _ = writeln!(
                t,
                "interruptions      {} ({})",
                s.interruptions,
                causes.join(", ")
            );
        }
        Some(x) => {
            let _ = writeln!(
                t,
                "interruptions      {} per run; by cause: {}",
                fig(0.0, Some(&x.interruptions), 1, ""),
                causes.join(", ")
            );
        }
    }
    match st {
        None => {
            if let Some(m) = s.mean_time_between_interruptions_h {
                let _ = writeln!(t, "MTBI               {m:.2} h");
            }
        }
        Some(x) => {
            if let Some(m) = &x.mean_time_between_interruptions_h {
                let _ = writeln!(t, "MTBI               {}", fig(0.0, Some(m), 2, " h"));
            }
        }
    }
    let _ = writeln!(
        t,
        "lost               {} = {} GPU-h",
        fig(s.lost_hours, st.map(|x| &x.lost_hours), 1, " h"),
        fig(s.lost_gpu_hours, st.map(|x| &x.lost_gpu_hours), 0, "")
    );
    let _ = writeln!(
        t,
        "  rework {}, checkpoints {}, restarts {}",
        fig(s.rework_hours, st.map(|x| &x.rework_hours), 1, " h"),
        fig(
            s.checkpoint_overhead_hours,
            st.map(|x| &x.checkpoint_overhead_hours),
            1,
            " h"
        ),
        fig(s.restart_hours, st.map(|x| &x.restart_hours), 1, " h")
    );
    let _ = writeln!(
        t,
        "straggler overhead {}",
        fig(
            s.straggler_overhead_hours,
            st.map(|x| &x.straggler_overhead_hours),
            2,
            " h"
        )
    );
    let _ = writeln!(
        t,
        "checkpoints        {} of {:.1} GB, stall {:.1} s, load {:.1} s",
        fig(s.checkpoints as f64, st.map(|x| &x.checkpoints), 0, ""),
        s.checkpoint_size_gb,
        s.checkpoint_stall_s,
        s.checkpoint_load_s
    );
    let ttt = st.and_then(|x| x.time_to_train_tokens_h.as_ref());
    if let Some(h) = s.time_to_train_tokens_h {
        let days = ttt.map(|e| Estimate {
            mean: e.mean / 24.0,
            ci95_low: e.ci95_low / 24.0,
            ci95_high: e.ci95_high / 24.0,
        });
        let _ = writeln!(
            t,
            "time to train      {}",
            fig(h / 24.0, days.as_ref(), 2, " d")
        );
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

    fn summary(seed: u64, interruptions: u64, mtbi: Option<f64>) -> RunSummary {
        RunSummary {
            seed,
            gpus: 8,
            goodput: 0.9 + seed as f64 * 0.01,
            interruptions,
            interruptions_by_cause: [("gpu".to_string(), interruptions)].into(),
            lost_hours: interruptions as f64,
            lost_gpu_hours: 8.0 * interruptions as f64,
            rework_hours: 0.5,
            checkpoint_overhead_hours: 0.25,
            restart_hours: 0.25,
            straggler_overhead_hours: 0.0,
            mean_time_between_interruptions_h: mtbi,
            wall_time_h: 100.0,
            productive_time_h: 90.0 + seed as f64,
            steps: 1000.0,
            tokens: 1e9,
            time_to_train_tokens_h: None,
            checkpoints: 10 + seed,
            checkpoint_interval_s: Some(600.0),
            checkpoint_stall_s: 1.0,
            checkpoint_write_s: 10.0,
            checkpoint_load_s: 20.0,
            checkpoint_size_gb: 100.0,
            step_time_s: 1.0,
            distinct_step_states: 1,
        }
    }

    #[test]
    fn with_replicas_every_random_figure_is_the_mean_with_its_ci() {
        let runs = [
            summary(0, 7, Some(14.3)),
            summary(1, 1, Some(100.0)),
            summary(2, 4, Some(25.0)),
        ];
        let stats = ReplicaStats::of(&runs);
        let t = table(&runs[0], Some(&stats));
        // Replica 0's own interruption count (7) and MTBI (14.30 h) appear nowhere.
        assert!(t.contains("interruptions      4.0 (95% CI"), "{t}");
        assert!(t.contains("gpu 4.0"), "{t}");
        assert!(!t.contains("14.30"), "{t}");
        assert!(t.contains("MTBI               46.43 h (95% CI"), "{t}");
        assert!(t.contains("productive time    91.0 h (95% CI"), "{t}");
        assert!(t.contains("checkpoints        11 (95% CI"), "{t}");
        for line in t.lines() {
            assert!(
                line.contains("95% CI"),
                "`{line}` is not a mean with its CI:\n{t}"
            );
        }
        // One run: its own figures, no CI.
        let one = table(&runs[0], None);
        assert!(
            one.contains("interruptions      7 (gpu 7)") && !one.contains("CI"),
            "{one}"
        );
    }

    #[test]
    fn estimate_uses_student_t() {
        let e = Estimate::of(&[1.0, 2.0, 3.0]);
        assert_eq!(e.mean, 2.0);
        assert!((e.ci95_high - (2.0 + 4.303 * (1.0f64 / 3.0).sqrt())).abs() < 1e-9);
    }
}
