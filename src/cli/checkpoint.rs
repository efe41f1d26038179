//! `clustersim checkpoint SCENARIO [--intervals 5m:4h] [--replicas N] [--out DIR]`: goodput
//! against checkpoint interval, the simulated optimum against Young's and Daly's.
//!
//! [`sweep`] is the library core (scenario in, curve out); [`run`] loads, prints and writes.

use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::config::Scenario;
use crate::run::sweep::{CheckpointCurve, checkpoint_sweep, parse_intervals};
use crate::run::{self, RunError, RunOptions, RunSetup, StepTimeSource};
use crate::units::format_duration;

#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// Scenario YAML (its `faults:`, `checkpoint:` and `run:` sections are used).
    pub scenario: PathBuf,
    /// Interval range `LO:HI` or `LO:HI:POINTS` (log-spaced).
    #[arg(long, default_value = "5m:4h")]
    pub intervals: String,
    /// Monte-Carlo replicas per interval.
    #[arg(long, default_value_t = 16)]
    pub replicas: u64,
    /// Output directory (default `output/<scenario name>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for fault injection (overrides `faults.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override any scenario key: `--set parallelism.tp=4` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

/// Default grid points.
pub const DEFAULT_POINTS: usize = 24;

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Faults(f) => CliError::BadInput(f.to_string()),
            other => CliError::Internal(other.to_string()),
        }
    }
}

/// The sweep for a loaded scenario (library entry point, no I/O).
pub fn sweep(
    s: &Scenario,
    src: &dyn StepTimeSource,
    intervals: &str,
    replicas: u64,
    seed: Option<u64>,
    progress: bool,
) -> Result<CheckpointCurve, RunError> {
    let grid = parse_intervals(intervals, DEFAULT_POINTS)?;
    let opts = RunOptions {
        seed,
        ..Default::default()
    };
    let setup = RunSetup::new(s, &opts)?;
    checkpoint_sweep(&setup, src, &grid, replicas, progress)
}

/// The table printed to stdout.
pub fn table(c: &CheckpointCurve) -> String {
    let mut t = format!(
        "MTBI {} | checkpoint stall {} | {} replicas per interval\n{:>12}  {:>8}  {:>17}\n",
        format_duration(c.mtbi_s),
        format_duration(c.checkpoint_stall_s),
        c.replicas,
        "interval",
        "goodput",
        "95% CI"
    );
    for p in &c.curve {
        t += &format!(
            "{:>12}  {:>8.4}  {:>8.4}..{:<8.4}\n",
            format_duration(p.interval_s),
            p.goodput.mean,
            p.goodput.ci95_low,
            p.goodput.ci95_high
        );
    }
    t += &format!(
        "optimum {} (simulated) | Young {} | Daly {}\n",
        format_duration(c.optimum_interval_s),
        format_duration(c.young_interval_s),
        format_duration(c.daly_interval_s)
    );
    t
}

/// Writes `checkpoint.json` and the chart into `dir`.
pub fn write(dir: &Path, c: &CheckpointCurve) -> CliResult {
    let io = |e: std::io::Error| CliError::internal(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let json = serde_json::to_string_pretty(c).map_err(|e| CliError::internal(e.to_string()))?;
    std::fs::write(dir.join("checkpoint.json"), json + "\n").map_err(io)?;
    crate::report::charts::run::checkpoint_chart(dir, c)
        .map(|_| ())
        .map_err(|e| CliError::internal(e.to_string()))
}

pub fn run(args: &CheckpointArgs) -> CliResult {
    let s = crate::config::load_scenario(Some(&args.scenario), &args.overrides)
        .map_err(|e| CliError::bad(e.to_string()))?;
    let steps = run::analytic_step_times(&s);
    let c = sweep(&s, &steps, &args.intervals, args.replicas, args.seed, true)?;
    print!("{}", table(&c));
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("output").join(&s.name));
    write(&dir, &c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;
    use crate::run::{CheckpointSpec, RunSpec, ScaledStepTime};

    #[test]
    fn sweep_writes_json_with_the_contract_keys() {
        let mut s = toy_scenario(8, 4, 32, 32, 64);
        s.faults.failures.node.mtbf = Some("2000h".into());
        s.checkpoint = Some(CheckpointSpec {
            write_time: Some("90s".into()),
            ..Default::default()
        });
        s.run = Some(RunSpec {
            duration: Some("60d".into()),
            ..Default::default()
        });
        let c = sweep(&s, &ScaledStepTime(1.0), "5m:4h:12", 4, None, false).unwrap();
        assert_eq!(c.curve.len(), 12);
        assert!(c.optimum_interval_s > 300.0 && c.optimum_interval_s < 14_400.0);
        let dir = std::env::temp_dir().join(format!("clustersim-ckpt-{}", std::process::id()));
        write(&dir, &c).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
                .unwrap();
        for key in [
            "optimum_interval_s",
            "young_interval_s",
            "daly_interval_s",
            "curve",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert!(dir.join("checkpoint.png").exists() && dir.join("checkpoint.svg").exists());
        assert!(table(&c).contains("Daly"));
        assert!(sweep(&s, &ScaledStepTime(1.0), "4h:5m", 4, None, false).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
