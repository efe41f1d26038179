//! `clustersim run [SCENARIO]`: simulate one step (and the long run) through
//! [`Simulation`], write the outputs and print the tables.

use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::api::{ScenarioInput, Simulation};
use crate::config::TimelineRanks;
use crate::engine::ReplayMode;
use crate::network::NetworkMode;
use crate::report::{self, Summary};
use crate::run;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario YAML; without it, the built-in default scenario runs.
    pub scenario: Option<PathBuf>,
    /// Output directory (default `output/<scenario name>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for fault injection (overrides `faults.seed`).
    #[arg(long, value_parser = super::whole_number::<u64>, allow_negative_numbers = true)]
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
    /// Monte-Carlo replicas of the long run (overrides `run.replicas`; at least 1; needs a
    /// `run:` section). The run table then shows every figure as the mean over replicas
    /// with its 95 % CI.
    #[arg(long, value_name = "N", value_parser = super::whole_number::<u64>, allow_negative_numbers = true)]
    pub replicas: Option<u64>,
    /// Refuse, before simulating, a timeline estimated above this many GB as written
    /// (`--timeline all` on 16,384 GPUs is about 10 GB).
    #[arg(long, value_name = "GB", default_value_t = 4.0, value_parser = super::decimal_number, allow_negative_numbers = true)]
    pub max_timeline_gb: f64,
    /// Write the timeline gzipped, as `timeline.json.gz` (Perfetto opens it as is).
    #[arg(long)]
    pub gzip_timeline: bool,
    /// `folded` (default): identical data-parallel replicas are simulated once where that
    /// is exact, and a replay above the budget (CLUSTERSIM_MAX_STEP_EVENTS,
    /// CLUSTERSIM_MAX_STEP_MEMORY) is refused with its estimate; `all`: replay every rank,
    /// whatever it costs.
    #[arg(long, value_name = "MODE", default_value = "folded")]
    pub replay: ReplayMode,
    /// Link use over time in contention mode: `tiers` (default: `links-timeseries.csv`
    /// and `link_timeline.{png,svg}` per tier and direction) or `all` (also one series
    /// per link that carried traffic, and the busiest links in the chart).
    #[arg(long, value_name = "WHICH", default_value = "tiers", value_parser = ["tiers", "all"])]
    pub links: String,
}

pub fn run(args: &RunArgs) -> CliResult {
    let input = ScenarioInput::load(args.scenario.as_deref())?.with_overrides(&args.overrides)?;
    // Bad scenario input is reported before bad flags.
    input.clone().resolve()?;
    let mut sim = Simulation::new(input)
        .strict_memory(args.strict_memory)
        .with_progress(true)
        .with_replay(args.replay)
        .with_link_series(args.links == "all");
    if let Some(seed) = args.seed {
        sim = sim.with_seed(seed);
    }
    if let Some(mode) = args.network {
        sim = sim.with_network(mode);
    }
    if let Some(n) = args.replicas {
        sim = sim.with_replicas(n);
    }
    if !(args.max_timeline_gb.is_finite() && args.max_timeline_gb > 0.0) {
        return Err(CliError::bad(
            "--max-timeline-gb: must be a positive number",
        ));
    }
    sim = sim
        .with_max_timeline_bytes((args.max_timeline_gb * 1e9) as u64)
        .with_timeline_gzip(args.gzip_timeline);
    if let Some(t) = &args.timeline {
        sim = sim.with_timeline(parse_timeline(t).map_err(CliError::bad)?);
    }
    let outputs = sim.run()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&outputs.scenario.name));
    let files = outputs.write_to(&out)?;
    out!(
        "{}",
        report::human_table(&Summary::new(&outputs.scenario, outputs.metrics()))
    );
    if let Some(jobs) = &outputs.jobs {
        out!("{}", jobs.table());
        outln!();
    }
    print_memory(outputs.memory());
    if let Some(rep) = &outputs.run {
        match &rep.stats {
            Some(s) => outln!(
                "long run ({} replicas: means with 95 % CI over replicas):",
                s.replicas
            ),
            None => outln!("long run (1 replica):"),
        }
        out!("{}", run::report::table(&rep.summary, rep.stats.as_ref()));
        outln!();
    }
    print_files(&out, &files);
    Ok(())
}

fn print_memory(m: &crate::pricing::memory::MemoryReport) {
    outln!(
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
    outln!("\nwrote {} files to {}:", files.len(), out.display());
    for f in files {
        outln!("  {}", f.display());
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
    fn default_out_dir_stays_inside_output() {
        assert_eq!(default_out_dir("llama-70b"), Path::new("output/llama-70b"));
        assert_eq!(default_out_dir("../etc"), Path::new("output/.._etc"));
        assert_eq!(default_out_dir(".."), Path::new("output/scenario"));
        assert_eq!(default_out_dir("a/b c"), Path::new("output/a_b_c"));
    }
}
