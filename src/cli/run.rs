//! `clustersim run [SCENARIO]`: simulate one step and write the outputs.

use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::config::{self, TimelineRanks};
use crate::faults;
use crate::network::NetworkMode;
use crate::plan::RankGrid;
use crate::report::{self, ExtraFiles, LinkReport, ReportOptions, Summary};
use crate::run;
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
    /// Timeline ranks: `all`, `representative`, `none`, or a list `0,8,16`
    /// (overrides `outputs.timeline`).
    #[arg(long)]
    pub timeline: Option<String>,
    /// Exit with code 2 when the plan does not fit in GPU memory (default: report
    /// `fits: false` and run anyway).
    #[arg(long)]
    pub strict_memory: bool,
    /// Network model: `analytic` (closed form, no contention) or `contention` (flows
    /// sharing links; also writes `links.csv` and the link heat map). Overrides
    /// `network.mode`.
    #[arg(long, value_name = "MODE")]
    pub network: Option<NetworkMode>,
}

pub fn run(args: &RunArgs) -> CliResult {
    let mut scenario = config::load_scenario(args.scenario.as_deref(), &args.overrides)?;
    if let Some(seed) = args.seed {
        scenario.faults.seed = seed;
    }
    if let Some(mode) = args.network {
        scenario.network.mode = mode;
    }
    if let Some(t) = &args.timeline {
        scenario.outputs.timeline = parse_timeline(t).map_err(CliError::bad)?;
    }
    let grid = RankGrid::new(&scenario.parallelism);
    check_timeline_ranks(&scenario.outputs.timeline, grid.world()).map_err(CliError::bad)?;
    if args.strict_memory {
        sim::check_memory(&scenario).map_err(|e| CliError::bad(e.to_string()))?;
    }
    let mut opts = ReportOptions::from_outputs(&scenario.outputs, &grid);
    let (speeds, link_faults) = faults::step_faults(&scenario.faults, grid.world())
        .map_err(|e| CliError::bad(e.to_string()))?;
    let step_opts = StepOptions {
        trace: opts.required_trace(&grid),
        speeds,
    };
    let (result, net) = sim::simulate_step_faulty(&scenario, &step_opts, &link_faults)?;
    if result.metrics.step_time_s <= 0.0 {
        return Err(CliError::internal("step time is zero"));
    }
    opts.links = net
        .flows()
        .map(|n| LinkReport::new(n, result.replay.step_time, &scenario.name));
    drop(net);
    opts.memory_gb = serde_json::to_value(&result.metrics.memory).ok();
    let run_report = match scenario.run {
        Some(_) => Some(simulate_run(&scenario, &mut opts)?),
        None => None,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&scenario.name));
    let files = report::write_step_outputs(&out, &scenario, &result, &opts)
        .map_err(|e| CliError::internal(e.to_string()))?;
    print!(
        "{}",
        report::human_table(&Summary::new(&scenario, &result.metrics))
    );
    print_memory(&result.metrics.memory);
    if let Some(rep) = &run_report {
        println!(
            "long run ({} replica(s)):",
            rep.stats.as_ref().map_or(1, |s| s.replicas)
        );
        print!("{}", run::report::table(&rep.summary, rep.stats.as_ref()));
        println!();
    }
    print_files(&out, &files);
    Ok(())
}

/// Simulates the scenario's `run:` section and stages `run.csv` and its chart for the
/// report writer.
fn simulate_run(
    scenario: &config::Scenario,
    opts: &mut ReportOptions,
) -> Result<run::RunReport, CliError> {
    let steps = run::analytic_step_times(scenario);
    let run_opts = run::RunOptions {
        progress: true,
        ..Default::default()
    };
    let rep = run::simulate_run(scenario, &steps, &run_opts)?;
    opts.run = serde_json::to_value(&rep).ok();
    let (events, samples) = (rep.events.clone(), rep.samples.clone());
    opts.extra = Some(ExtraFiles(std::sync::Arc::new(move |dir: &Path| {
        let mut names = vec![run::report::write_csv(dir, &events)?];
        let chart = report::charts::run::progress_chart(dir, &samples);
        names.extend(chart.map_err(|e| e.to_string())?);
        Ok(names)
    })));
    Ok(rep)
}

fn print_memory(m: &crate::pricing::memory::MemoryReport) {
    println!(
        "  memory (rank {}, stage {}): {:.1} of {:.1} GB{} — weights {:.1}, grads {:.1}, optimizer {:.1}, activations {:.1}, buffers {:.1}, reserve {:.1}\n",
        m.rank,
        m.stage,
        m.total,
        m.capacity,
        if m.fits { "" } else { "  DOES NOT FIT" },
        m.weights,
        m.grads,
        m.optimizer,
        m.activations,
        m.buffers,
        m.reserve
    );
}

/// Parses `--timeline`: `all`, `representative`, `none`, or comma-separated ranks.
pub fn parse_timeline(text: &str) -> Result<TimelineRanks, String> {
    match text.trim() {
        "all" => Ok(TimelineRanks::All),
        "representative" => Ok(TimelineRanks::Representative),
        "none" => Ok(TimelineRanks::None),
        list => list
            .split(',')
            .map(|r| r.trim().parse::<u32>())
            .collect::<Result<Vec<u32>, _>>()
            .map(TimelineRanks::List)
            .map_err(|_| {
                format!(
                    "--timeline `{text}`: expected all, representative, none, or ranks like 0,8,16"
                )
            }),
    }
}

/// Rejects timeline ranks outside the plan's world.
fn check_timeline_ranks(spec: &TimelineRanks, world: u32) -> Result<(), String> {
    if let TimelineRanks::List(ranks) = spec
        && let Some(bad) = ranks.iter().find(|&&r| r >= world)
    {
        return Err(format!(
            "outputs.timeline: rank {bad} does not exist; the plan has ranks 0..{}",
            world.saturating_sub(1)
        ));
    }
    Ok(())
}

/// `output/<name>/`, with characters that could leave `output/` replaced.
pub fn default_out_dir(name: &str) -> PathBuf {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = match clean.trim_matches('.') {
        "" => "scenario".to_string(),
        _ => clean,
    };
    Path::new("output").join(clean)
}

fn print_files(out: &Path, files: &[PathBuf]) {
    println!("\nwrote {} files to {}:", files.len(), out.display());
    for f in files {
        println!("  {}", f.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_parses_keywords_and_lists() {
        assert_eq!(parse_timeline("all"), Ok(TimelineRanks::All));
        assert_eq!(parse_timeline("none"), Ok(TimelineRanks::None));
        assert_eq!(
            parse_timeline("representative"),
            Ok(TimelineRanks::Representative)
        );
        assert_eq!(
            parse_timeline("0, 8,16"),
            Ok(TimelineRanks::List(vec![0, 8, 16]))
        );
        assert!(parse_timeline("0,x").unwrap_err().contains("0,8,16"));
    }

    #[test]
    fn timeline_ranks_must_exist() {
        assert!(check_timeline_ranks(&TimelineRanks::List(vec![0, 3]), 4).is_ok());
        let e = check_timeline_ranks(&TimelineRanks::List(vec![4]), 4).unwrap_err();
        assert!(e.contains("rank 4"), "{e}");
    }

    #[test]
    fn default_out_dir_stays_inside_output() {
        assert_eq!(default_out_dir("llama-70b"), Path::new("output/llama-70b"));
        assert_eq!(default_out_dir("../etc"), Path::new("output/.._etc"));
        assert_eq!(default_out_dir(".."), Path::new("output/scenario"));
        assert_eq!(default_out_dir("a/b c"), Path::new("output/a_b_c"));
    }
}
