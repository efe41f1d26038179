//! `clustersim compare A.yaml B.yaml ... | SWEEP.yaml`: simulate scenarios or a sweep's
//! points in parallel and compare them side by side (terminal table, `compare.csv`,
//! `compare.json`, `compare.png`/`.svg` and one chart per metric); `--shard i/n` runs a
//! deterministic subset. [`Comparison`] does the work; this file parses and prints.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::api::{CompareOutputs, Comparison};
use crate::sweep::compare;
use crate::sweep::spec::{PlanChoice, Shard};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Scenario files, or one or more sweep files (a file with `axes:` or `designs:`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Directory for compare.csv, compare.json and the chart.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only points whose index is i modulo n (0-based), e.g. `--shard 2/8`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Override a key in every point: `--set training.global_batch=512` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// `as-is` (each scenario's plan) or `best` (search per point), for every point;
    /// default: each sweep file's `plan:`, else as-is.
    #[arg(long)]
    pub plan: Option<String>,
    /// Full replays per point with `--plan best`, for every point; default: each sweep
    /// file's `top:`, else 3.
    #[arg(long, value_parser = super::whole_number::<usize>, allow_negative_numbers = true)]
    pub top: Option<usize>,
    /// Token budget for time and cost (e.g. 1T, 300B), for every point; default: each
    /// sweep file's `tokens:`, else 1T.
    #[arg(long)]
    pub tokens: Option<String>,
    /// Price override, e.g. `--price switch_usd=25000` or `--price basis=ownership`,
    /// applied to every point after its sweep file's `prices:` (repeatable).
    #[arg(long = "price", value_name = "KEY=VALUE")]
    pub prices: Vec<String>,
}

fn parse_plan(plan: Option<&str>) -> Result<Option<PlanChoice>, CliError> {
    match plan {
        None => Ok(None),
        Some("as-is") => Ok(Some(PlanChoice::AsIs)),
        Some("best") => Ok(Some(PlanChoice::Best)),
        Some(o) => Err(CliError::bad(format!("--plan: `{o}` is not as-is or best"))),
    }
}

/// Writes the table's files and prints where.
pub fn write_outputs(dir: &Path, out: &CompareOutputs) -> CliResult {
    let written = out.write_to(dir)?;
    for w in &written.warnings {
        eprintln!("warning: {w}");
    }
    outln!("wrote {}", dir.join("compare.csv").display());
    Ok(())
}

pub fn run(args: &CompareArgs) -> CliResult {
    let mut cmp = Comparison::from_files(&args.files)?
        .with_prices(&args.prices)
        .with_overrides(&args.overrides)
        .with_progress(std::io::stderr().is_terminal());
    if let Some(t) = &args.tokens {
        cmp = cmp.with_tokens(t);
    }
    // Prices, then the token budget, are checked before `--plan`.
    cmp.options()?;
    if let Some(plan) = parse_plan(args.plan.as_deref())? {
        cmp = cmp.with_plan(plan);
    }
    if let Some(top) = args.top {
        cmp = cmp.with_top(top);
    }
    if let Some(shard) = args.shard {
        cmp = cmp.with_shard(shard);
    }
    let out = cmp.run()?;
    out!("{}", compare::table_text(&out.table));
    if let Some(dir) = &args.out {
        write_outputs(dir, &out)?;
    }
    Ok(())
}
