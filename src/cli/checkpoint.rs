//! `clustersim checkpoint SCENARIO [--intervals 5m:4h] [--replicas N] [--out DIR]`: goodput
//! against checkpoint interval, the simulated optimum against Young's and Daly's; an
//! optimum on an edge of the grid is marked in the table and warned about on stderr.
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
    /// Interval range `LO:HI` or `LO:HI:POINTS` (log-spaced; 24 points by default).
    /// Default: Daly's interval / 20 to Daly × 20, no shorter than an async checkpoint's
    /// flush allows.
    #[arg(long, value_name = "LO:HI[:POINTS]")]
    pub intervals: Option<String>,
    /// Monte-Carlo replicas per interval.
    #[arg(long, default_value_t = 16, value_parser = super::whole_number::<u64>, allow_negative_numbers = true)]
    pub replicas: u64,
    /// Output directory (default `output/<scenario name>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for fault injection (overrides `faults.seed`).
    #[arg(long, value_parser = super::whole_number::<u64>, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Override any scenario key: `--set parallelism.tp=4` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

/// The table printed to stdout: the best grid point is marked (and whether it lies on an
/// edge of the grid).
pub fn table(c: &CheckpointCurve) -> String {
    let mut t = format!(
        "MTBI {} | checkpoint stall {} | {} replicas per interval | {}\n{:>12}  {:>8}  {:>17}\n",
        format_duration(c.mtbi_s),
        format_duration(c.checkpoint_stall_s),
        c.replicas,
        if c.default_grid {
            "grid: Daly / 20 to Daly x 20"
        } else {
            "grid: --intervals"
        },
        "interval",
        "goodput",
        "95% CI"
    );
    let best = c
        .curve
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.goodput.mean.total_cmp(&b.1.goodput.mean))
        .map(|(i, _)| i);
    for (i, p) in c.curve.iter().enumerate() {
        let mark = match (Some(i) == best, c.optimum_at_edge) {
            (true, true) => "  <- best, at the edge of the grid",
            (true, false) => "  <- best",
            _ => "",
        };
        let line = format!(
            "{:>12}  {:>8.4}  {:>8.4}..{:<8.4}{mark}",
            format_duration(p.interval_s),
            p.goodput.mean,
            p.goodput.ci95_low,
            p.goodput.ci95_high
        );
        t += line.trim_end();
        t.push('\n');
    }
    t += &format!(
        "optimum {} (simulated{}) | Young {} | Daly {}\n",
        format_duration(c.optimum_interval_s),
        if c.optimum_at_edge {
            ", AT THE EDGE OF THE GRID"
        } else {
            ""
        },
        format_duration(c.young_interval_s),
        format_duration(c.daly_interval_s)
    );
    t
}

pub fn run(args: &CheckpointArgs) -> CliResult {
    let input = ScenarioInput::from_file(&args.scenario)?.with_overrides(&args.overrides)?;
    // Bad scenario input is reported before bad flags.
    input.clone().resolve()?;
    let mut sweep = CheckpointSweep::new(input)
        .with_replicas(args.replicas)
        .with_progress(true);
    if let Some(range) = &args.intervals {
        sweep = sweep.with_intervals(range)?;
    }
    if let Some(seed) = args.seed {
        sweep = sweep.with_seed(seed);
    }
    let out = sweep.run()?;
    out!("{}", table(&out.curve));
    if let Some(w) = out.curve.edge_warning() {
        eprintln!("warning: {w}");
    }
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
    use crate::fixtures::toy_checkpoint_scenario;
    use crate::run::ScaledStepTime;

    #[test]
    fn table_names_every_interval_and_the_optima() {
        let s = toy_checkpoint_scenario();
        let c = CheckpointSweep::from_scenario(s.clone())
            .with_intervals("5m:4h:6")
            .unwrap()
            .with_replicas(2)
            .curve(&s, &ScaledStepTime(1.0))
            .unwrap();
        let t = table(&c);
        assert!(t.contains("Young") && t.contains("Daly"), "{t}");
        assert_eq!(t.lines().count(), 2 + 6 + 1);
        assert_eq!(t.matches("<- best").count(), 1, "{t}");
    }
}
