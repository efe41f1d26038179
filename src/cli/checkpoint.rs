//! `clustersim checkpoint SCENARIO [--intervals 5m:4h] [--replicas N] [--out DIR]`: goodput
//! against checkpoint interval, the simulated optimum against Young's and Daly's.
//!
//! [`CheckpointSweep`] does the work; this file parses, prints and picks the folder.

use std::path::PathBuf;

use super::CliResult;
use crate::api::{CheckpointSweep, ScenarioInput};
use crate::run::sweep::CheckpointCurve;
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

pub fn run(args: &CheckpointArgs) -> CliResult {
    let s = ScenarioInput::from_file(&args.scenario)?
        .with_overrides(&args.overrides)?
        .resolve()?;
    let mut sweep = CheckpointSweep::from_scenario(s)
        .with_intervals(&args.intervals)?
        .with_replicas(args.replicas)
        .with_progress(true);
    if let Some(seed) = args.seed {
        sweep = sweep.with_seed(seed);
    }
    let out = sweep.run()?;
    print!("{}", table(&out.curve));
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("output").join(&out.scenario.name));
    out.write_to(&dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;
    use crate::run::{CheckpointSpec, RunSpec, ScaledStepTime};

    #[test]
    fn table_names_every_interval_and_the_optima() {
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
        let c = CheckpointSweep::from_scenario(s.clone())
            .with_intervals("5m:4h:6")
            .unwrap()
            .with_replicas(2)
            .curve(&s, &ScaledStepTime(1.0))
            .unwrap();
        let t = table(&c);
        assert!(t.contains("Young") && t.contains("Daly"), "{t}");
        assert_eq!(t.lines().count(), 2 + 6 + 1);
    }
}
