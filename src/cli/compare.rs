//! `clustersim compare A.yaml B.yaml ... | SWEEP.yaml`: simulate scenarios or a sweep's
//! points in parallel and compare them side by side (terminal table, `compare.csv`,
//! `compare.json`, `compare.png`/`.svg` and one chart per metric); `--shard i/n` runs a
//! deterministic subset.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::config;
use crate::cost::Prices;
use crate::sweep::compare::{self, CompareOptions, CompareTable};
use crate::sweep::spec::{self, PlanChoice, Shard, SweepPoint, SweepSpec};

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
    /// `as-is` (each scenario's plan) or `best` (search per point); default from the sweep.
    #[arg(long)]
    pub plan: Option<String>,
    /// Full replays per point with `--plan best`.
    #[arg(long)]
    pub top: Option<usize>,
    /// Token budget for time and cost (e.g. 1T, 300B); default from the sweep, else 1T.
    #[arg(long)]
    pub tokens: Option<String>,
    /// Price override, e.g. `--price switch_usd=25000` or `--price basis=ownership`.
    #[arg(long = "price", value_name = "KEY=VALUE")]
    pub prices: Vec<String>,
}

/// Points, comparison name and the sweep-level options found in the files.
struct Plan {
    name: String,
    points: Vec<SweepPoint>,
    tokens: Option<String>,
    plan: PlanChoice,
    top: Option<usize>,
    prices: Vec<String>,
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::bad(format!("{}: {e}", path.display())))
}

fn collect(files: &[PathBuf]) -> Result<Plan, CliError> {
    let mut plan = Plan {
        name: "compare".into(),
        points: Vec::new(),
        tokens: None,
        plan: PlanChoice::AsIs,
        top: None,
        prices: Vec::new(),
    };
    let mut names = Vec::new();
    for f in files {
        let text = read(f)?;
        if spec::is_sweep_text(&text) {
            let sw = SweepSpec::parse(f, &text).map_err(|e| CliError::bad(e.to_string()))?;
            let dir = f.parent().unwrap_or(Path::new("."));
            for mut p in spec::expand(&sw, dir) {
                p.index = plan.points.len();
                plan.points.push(p);
            }
            names.push(sw.name.clone());
            plan.tokens = plan.tokens.or(sw.tokens);
            plan.top = plan.top.or(sw.top);
            if sw.plan == PlanChoice::Best {
                plan.plan = PlanChoice::Best;
            }
            plan.prices.extend(sw.prices);
        } else {
            let stem = f
                .file_stem()
                .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
            plan.points.push(SweepPoint {
                index: plan.points.len(),
                name: stem,
                scenario: Some(f.clone()),
                overrides: Vec::new(),
            });
        }
    }
    if names.len() == 1 {
        plan.name = names.remove(0);
    }
    Ok(plan)
}

fn options(args: &CompareArgs, plan: &Plan) -> Result<CompareOptions, CliError> {
    let mut prices = plan.prices.clone();
    prices.extend(args.prices.iter().cloned());
    let prices = Prices::with_overrides(&prices).map_err(|e| CliError::bad(e.to_string()))?;
    let tokens = match args.tokens.as_ref().or(plan.tokens.as_ref()) {
        Some(t) => spec::parse_count(t).map_err(|e| CliError::bad(format!("tokens: {e}")))?,
        None => 1e12,
    };
    let choice = match args.plan.as_deref() {
        None => plan.plan,
        Some("as-is") => PlanChoice::AsIs,
        Some("best") => PlanChoice::Best,
        Some(o) => return Err(CliError::bad(format!("--plan: `{o}` is not as-is or best"))),
    };
    Ok(CompareOptions {
        tokens,
        plan: choice,
        top: args.top.or(plan.top).unwrap_or(3),
        prices,
        progress: std::io::stderr().is_terminal(),
    })
}

/// Writes the table's files and prints where.
pub fn write_outputs(dir: &Path, t: &CompareTable) -> CliResult {
    compare::write_table(dir, t)
        .map_err(|e| CliError::internal(format!("{}: {e}", dir.display())))?;
    if let Err(e) = crate::report::charts::compare::compare_charts(t, dir) {
        eprintln!("warning: charts not written: {e}");
    }
    println!("wrote {}", dir.join("compare.csv").display());
    Ok(())
}

pub fn run(args: &CompareArgs) -> CliResult {
    let plan = collect(&args.files)?;
    let opts = options(args, &plan)?;
    let total = plan.points.len();
    let points = spec::shard(plan.points, args.shard);
    let extra = &args.overrides;
    let rows = compare::run_points(
        &points,
        |p| {
            let mut o = p.overrides.clone();
            o.extend(extra.iter().cloned());
            config::load_scenario(p.scenario.as_deref(), &o)
                .map_err(|e| CliError::bad(format!("point {} ({}): {e}", p.index, p.name)))
        },
        &opts,
    )?;
    let table = CompareTable {
        name: plan.name,
        points: total,
        tokens: opts.tokens,
        shard: args.shard,
        rows,
    };
    print!("{}", compare::table_text(&table));
    if let Some(dir) = &args.out {
        write_outputs(dir, &table)?;
    }
    Ok(())
}
