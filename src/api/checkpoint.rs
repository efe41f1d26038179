//! `clustersim checkpoint` as a library call: goodput against checkpoint interval, the
//! simulated optimum against Young's and Daly's, and `checkpoint.json` plus its chart.
//!
//! Must not print or pick output folders; that is the CLI's.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::input::{ScenarioInput, scenario_constructors};
use crate::config::{Provenance, Scenario};
use crate::report;
use crate::run::sweep::{CheckpointCurve, checkpoint_sweep, default_grid, parse_intervals};
use crate::run::{self, RunOptions, RunSetup, StepTimeSource};

pub use crate::run::sweep::{DEFAULT_POINTS, DEFAULT_SPAN};

/// A checkpoint-interval sweep over a scenario's `faults:`, `checkpoint:` and `run:`.
///
/// ```no_run
/// let out = clustersim::CheckpointSweep::from_file("scenarios/llama3-70b-1k.yaml")?
///     .with_intervals("10m:2h:12")?
///     .with_replicas(8)
///     .run()?;
/// println!("optimum every {:.0} s", out.curve.optimum_interval_s);
/// # Ok::<(), clustersim::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointSweep {
    input: ScenarioInput,
    intervals: Option<Vec<f64>>,
    intervals_text: Option<String>,
    replicas: u64,
    seed: Option<u64>,
    progress: bool,
}

scenario_constructors!(CheckpointSweep);

impl CheckpointSweep {
    /// A sweep of the default grid ([`DEFAULT_POINTS`] intervals from Daly / 20 to
    /// Daly × 20, no shorter than the checkpoint allows) with 16 replicas per interval.
    pub fn new(input: ScenarioInput) -> Self {
        CheckpointSweep {
            input,
            intervals: None,
            intervals_text: None,
            replicas: 16,
            seed: None,
            progress: false,
        }
    }

    /// Interval range `LO:HI` or `LO:HI:POINTS` (log-spaced; [`DEFAULT_POINTS`] points),
    /// instead of the default grid around Daly's interval.
    pub fn with_intervals(mut self, range: &str) -> Result<Self> {
        self.intervals = Some(parse_intervals(range, DEFAULT_POINTS)?);
        self.intervals_text = Some(range.to_string());
        Ok(self)
    }

    /// Monte-Carlo replicas per interval.
    pub fn with_replicas(mut self, replicas: u64) -> Self {
        self.replicas = replicas;
        self
    }

    /// Seed for fault injection (overrides `faults.seed`).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Draw a progress bar (only ever on a terminal's stderr).
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Runs the sweep with step times from the step simulator.
    pub fn run(&self) -> Result<CheckpointOutputs> {
        let (scenario, mut provenance) =
            self.input.clone().resolve_with_provenance("checkpoint")?;
        scenario.check_own_plan()?;
        let curve = self.curve(&scenario, &run::analytic_step_times(&scenario))?;
        provenance.add_scenario(
            &scenario.network.label(),
            self.seed.unwrap_or(scenario.faults.seed),
        );
        provenance.set(
            "intervals",
            self.intervals_text
                .as_deref()
                .unwrap_or("default: Daly / 20 to Daly x 20"),
        );
        provenance.set("replicas", self.replicas);
        Ok(CheckpointOutputs {
            scenario,
            curve,
            provenance,
        })
    }

    /// Runs the sweep on a resolved scenario with step times from `src` (a stand-in such
    /// as [`run::ScaledStepTime`], say).
    pub fn curve(&self, s: &Scenario, src: &dyn StepTimeSource) -> Result<CheckpointCurve> {
        if self.replicas == 0 {
            return Err(Error::invalid("--replicas: must be at least 1"));
        }
        let most = crate::config::budget::MAX_REPLICAS;
        if self.replicas > most {
            return Err(Error::invalid(format!(
                "--replicas: {} is more than the most allowed, {most}",
                self.replicas
            )));
        }
        let opts = RunOptions {
            seed: self.seed,
            ..Default::default()
        };
        let mut setup = RunSetup::new(s, &opts).map_err(|e| Error::run(s, e))?;
        setup.replicas_field = "--replicas";
        let grid = match &self.intervals {
            Some(g) => g.clone(),
            None => default_grid(&setup, DEFAULT_POINTS),
        };
        let mut curve = checkpoint_sweep(&setup, src, &grid, self.replicas, self.progress)
            .map_err(|e| Error::run(s, e))?;
        curve.default_grid = self.intervals.is_none();
        Ok(curve)
    }
}

/// A finished checkpoint sweep.
#[derive(Debug, Clone)]
pub struct CheckpointOutputs {
    pub scenario: Scenario,
    pub curve: CheckpointCurve,
    /// What produced the sweep (`checkpoint.json`'s `provenance`).
    pub provenance: Provenance,
}

impl CheckpointOutputs {
    /// Writes `checkpoint.json` and the chart (`checkpoint.png`/`.svg`) into `dir`.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        write_curve(
            dir.as_ref(),
            &self.curve,
            &self.scenario.name,
            Some(&self.provenance),
        )
    }
}

fn write_curve(
    dir: &Path,
    c: &CheckpointCurve,
    name: &str,
    provenance: Option<&Provenance>,
) -> Result<Vec<PathBuf>> {
    let staging = report::staging::Staging::new(dir)?;
    let json = crate::config::provenance::json_with(c, provenance).map_err(Error::internal)?;
    let json_path = staging.path().join(CHECKPOINT_JSON);
    std::fs::write(&json_path, json).map_err(Error::write(&json_path))?;
    let mut names = vec![CHECKPOINT_JSON.to_string()];
    names.extend(
        report::charts::run::checkpoint_chart(staging.path(), c, name).map_err(Error::internal)?,
    );
    let owned = [
        CHECKPOINT_JSON.to_string(),
        format!("{}.png", report::charts::run::CHECKPOINT),
        format!("{}.svg", report::charts::run::CHECKPOINT),
    ];
    Ok(staging.commit(&names, &owned)?)
}

/// The checkpoint sweep's table.
pub const CHECKPOINT_JSON: &str = "checkpoint.json";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_checkpoint_scenario;
    use crate::run::ScaledStepTime;

    #[test]
    fn sweep_writes_json_with_the_contract_keys() {
        let s = toy_checkpoint_scenario();
        let sweep = CheckpointSweep::from_scenario(s.clone())
            .with_intervals("5m:4h:12")
            .unwrap()
            .with_replicas(4);
        let c = sweep.curve(&s, &ScaledStepTime(1.0)).unwrap();
        assert_eq!(c.curve.len(), 12);
        assert!(c.optimum_interval_s > 300.0 && c.optimum_interval_s < 14_400.0);
        let dir = std::env::temp_dir().join(format!("clustersim-ckpt-{}", std::process::id()));
        let files = write_curve(&dir, &c, "toy", None).unwrap();
        assert_eq!(files.len(), 3);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
                .unwrap();
        for key in [
            "optimum_interval_s",
            "young_interval_s",
            "daly_interval_s",
            "optimum_at_edge",
            "curve",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert!(files.iter().all(|f| f.exists()));
        let bad = CheckpointSweep::from_scenario(s).with_intervals("4h:5m");
        assert!(bad.unwrap_err().is_bad_input());
        std::fs::remove_dir_all(&dir).ok();
    }
}
