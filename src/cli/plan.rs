//! `clustersim plan [SCENARIO]`: best parallelism plans for the scenario's model and
//! cluster: the fast-mode ranking, the top K replayed in full, `plans.csv`. [`PlanSearch`]
//! does the work; this file parses and prints.

use std::path::PathBuf;

use super::{CliError, CliResult};
use crate::api::{PlanSearch, ScenarioInput};
use crate::plan::{Recompute, ScheduleKind};
use crate::sweep::plan::PlanReport;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Scenario YAML; without it, the built-in default scenario.
    pub scenario: Option<PathBuf>,
    /// Plans to replay in full (the fast mode ranks all of them).
    #[arg(long, default_value_t = 10, value_parser = super::whole_number::<usize>, allow_negative_numbers = true)]
    pub top: usize,
    /// Directory for plans.csv and plans.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override any scenario key: `--set cluster.nodes=64` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// GPUs to plan for (default: the whole cluster).
    #[arg(long, value_parser = super::whole_number::<u64>, allow_negative_numbers = true)]
    pub gpus: Option<u64>,
    /// Restrict TP degrees, e.g. `--tp 4,8`.
    #[arg(long, value_delimiter = ',')]
    pub tp: Vec<u64>,
    /// Restrict PP degrees.
    #[arg(long, value_delimiter = ',')]
    pub pp: Vec<u64>,
    /// CP degrees to try (default: 1 and the scenario's).
    #[arg(long, value_delimiter = ',')]
    pub cp: Vec<u64>,
    /// EP degrees to try (MoE models).
    #[arg(long, value_delimiter = ',')]
    pub ep: Vec<u64>,
    /// Micro-batch sizes to try.
    #[arg(long, value_delimiter = ',')]
    pub micro_batch: Vec<u64>,
    /// ZeRO stages to try (default 0,1,2,3).
    #[arg(long, value_delimiter = ',')]
    pub zero: Vec<u8>,
    /// Pipeline schedules to try: 1f1b, interleaved, zb-h1, zb-h2, dualpipe, gpipe
    /// (default: all but gpipe; 1F1B is always tried).
    #[arg(long, value_delimiter = ',')]
    pub schedule: Vec<String>,
    /// Recompute policies to try: none, selective, full.
    #[arg(long, value_delimiter = ',')]
    pub recompute: Vec<String>,
    /// Rows of the ranking to print.
    #[arg(long, default_value_t = 20, value_parser = super::whole_number::<usize>, allow_negative_numbers = true)]
    pub show: usize,
}

fn parse_recompute(v: &str) -> Result<Recompute, CliError> {
    match v {
        "none" => Ok(Recompute::None),
        "selective" => Ok(Recompute::Selective),
        "full" => Ok(Recompute::Full),
        _ => Err(CliError::bad(format!(
            "--recompute: `{v}` is not none, selective or full"
        ))),
    }
}

fn parse_schedule(v: &str) -> Result<ScheduleKind, CliError> {
    match v {
        "1f1b" => Ok(ScheduleKind::OneFOneB),
        "interleaved" => Ok(ScheduleKind::Interleaved),
        "zb-h1" => Ok(ScheduleKind::ZbH1),
        "zb-h2" => Ok(ScheduleKind::ZbH2),
        "dualpipe" => Ok(ScheduleKind::Dualpipe),
        "gpipe" => Ok(ScheduleKind::Gpipe),
        _ => Err(CliError::bad(format!(
            "--schedule: `{v}` is not 1f1b, interleaved, zb-h1, zb-h2, dualpipe or gpipe"
        ))),
    }
}

/// The ranking as a terminal table.
pub fn table(report: &PlanReport, show: usize) -> String {
    let mut out = format!(
        "{} plans for {} GPUs: {} fit in memory, {} do not; top {} replayed in full\n",
        report.evaluated,
        report.gpus,
        report.rows.len(),
        report.rejected_memory,
        report.replayed
    );
    out += &format!(
        "{:>4} {:<46} {:>7} {:>10} {:>7} {:>10} {:>7} {:>7}\n",
        "rank", "plan", "mem GB", "fast s", "fast%", "replay s", "MFU", "error"
    );
    for (i, r) in report
        .rows
        .iter()
        .take(show.max(report.replayed))
        .enumerate()
    {
        let (rs, mfu, err) = match &r.replay {
            Some(x) => (
                format!("{:.4}", x.step_time_s),
                format!("{:.1}%", x.mfu * 100.0),
                format!(
                    "{:+.2}%",
                    (r.fast.step_time_s / x.step_time_s - 1.0) * 100.0
                ),
            ),
            None => Default::default(),
        };
        out += &format!(
            "{:>4} {:<46} {:>7.1} {:>10.4} {:>6.1}% {:>10} {:>7} {:>7}\n",
            i + 1,
            r.point.label(),
            r.memory.most_loaded.total,
            r.fast.step_time_s,
            r.fast.mfu * 100.0,
            rs,
            mfu,
            err
        );
    }
    if let Some(b) = report.best_replayed() {
        out += &format!(
            "best by replay: {} ({:.4} s per step)\n  --set {}\n",
            b.point.label(),
            b.replay.as_ref().map_or(0.0, |r| r.step_time_s),
            b.point.overrides().join(" --set ")
        );
    }
    out
}

pub fn run(args: &PlanArgs) -> CliResult {
    let input = ScenarioInput::load(args.scenario.as_deref())?.with_overrides(&args.overrides)?;
    // Bad scenario input is reported before bad flags.
    input.clone().resolve()?;
    let mut search = PlanSearch::new(input)
        .with_top(args.top)
        .with_tp(&args.tp)
        .with_pp(&args.pp)
        .with_cp(&args.cp)
        .with_ep(&args.ep)
        .with_micro_batch(&args.micro_batch)
        .with_zero(&args.zero)?;
    if let Some(gpus) = args.gpus {
        search = search.with_gpus(gpus);
    }
    let schedules = args
        .schedule
        .iter()
        .map(|v| parse_schedule(v))
        .collect::<Result<Vec<_>, _>>()?;
    let recompute = args
        .recompute
        .iter()
        .map(|r| parse_recompute(r))
        .collect::<Result<Vec<_>, _>>()?;
    let out = search
        .with_schedules(&schedules)
        .with_recompute(&recompute)
        .run()?;
    out!("{}", table(&out.report, args.show));
    if let Some(dir) = &args.out {
        out.write_to(dir)?;
        outln!("wrote {}", dir.join("plans.csv").display());
    }
    Ok(())
}
