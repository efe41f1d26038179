//! `clustersim run [SCENARIO]`: simulate one step and write the outputs.

use std::path::PathBuf;

use super::{CliError, CliResult};
use crate::sim::{self, StepOptions};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario YAML; without it, the built-in default scenario runs.
    pub scenario: Option<PathBuf>,
    /// Output directory (default `output/<scenario name>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for fault injection (overrides `faults.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override any scenario key: `--set parallelism.tp=4` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// Timeline ranks: `all`, `representative`, `none`, or a list `0,8,16`.
    #[arg(long)]
    pub timeline: Option<String>,
}

pub fn run(args: &RunArgs) -> CliResult {
    let _ = (
        &args.scenario,
        &args.out,
        &args.seed,
        &args.overrides,
        &args.timeline,
    );
    let scenario = crate::config::load_scenario(args.scenario.as_deref(), &args.overrides)?;
    let result = sim::simulate_step(&scenario, &StepOptions::default())?;
    let m = &result.metrics;
    println!(
        "{}: step {:.3} s, {:.1} TFLOP/s per GPU, MFU {:.1} %, bubble {:.1} %",
        scenario.name,
        m.step_time_s,
        m.tflops_per_gpu,
        m.mfu * 100.0,
        m.bubble_fraction * 100.0
    );
    if m.step_time_s <= 0.0 {
        return Err(CliError::internal("step time is zero"));
    }
    Ok(())
}
