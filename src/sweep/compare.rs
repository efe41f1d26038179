//! Running sweep points and comparing them side by side.
//!
//! Each point is loaded (through a caller-supplied loader, normally
//! `config::load_scenario`), simulated (its own plan, or the best plan the search finds),
//! and priced with `cost`. Results become a [`CompareTable`] written as `compare.csv` and
//! `compare.json` and printed as a terminal table. Shard outputs merge back into the bytes
//! of the unsharded sweep: rows carry their point index and every float is rounded to 9
//! significant digits, so JSON round trips are exact.

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::memory;
use super::plan::{self, PlanOptions, PlanPoint, ReplayFigures};
use super::spec::{PlanChoice, Shard, SweepError, SweepPoint};
use crate::config::{Provenance, Scenario};
use crate::cost::{self, Prices};
use crate::faults::StepState;
use crate::hardware::FabricKind;
use crate::run::{self, RunError, RunOptions, StepTimeSource};

/// How points are evaluated.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Token budget the time and cost columns train.
    pub tokens: f64,
    pub plan: PlanChoice,
    /// Full replays per point when searching for the best plan.
    pub top: usize,
    pub prices: Prices,
    /// Show a progress bar on stderr (callers pass whether stderr is a terminal).
    pub progress: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            tokens: 1e12,
            plan: PlanChoice::AsIs,
            top: 3,
            prices: Prices::default(),
            progress: false,
        }
    }
}

/// The figures of one simulated point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub plan: String,
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    pub mfu: f64,
    pub tflops_per_gpu: f64,
    pub memory_gb: f64,
    pub bubble_fraction: f64,
    /// Exposed (not overlapped) communication per step, seconds.
    pub tp_exposed_s: f64,
    pub pp_exposed_s: f64,
    pub dp_exposed_s: f64,
    pub ep_exposed_s: f64,
    pub time_to_train_days: f64,
    pub gpu_hours: f64,
    pub energy_mwh: f64,
    pub cost_usd: f64,
    pub usd_per_million_tokens: f64,
    pub capital_usd: f64,
    pub facility_kw: f64,
    /// Run-level goodput (ETTR) when the point simulates a run; then the effective
    /// figures divide time by it.
    pub goodput: Option<f64>,
    pub effective_time_to_train_days: Option<f64>,
    pub effective_cost_usd: Option<f64>,
    #[serde(default)]
    pub effective_energy_mwh: Option<f64>,
    /// The calibration band of this design's GPU (a fraction: the MAPE of its
    /// generation's calibration table); `None` for an uncalibrated GPU.
    #[serde(default)]
    pub model_error: Option<f64>,
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    pub index: usize,
    pub name: String,
    pub gpu: String,
    pub gpus: u64,
    pub fabric: String,
    /// Token budget this row's time and cost columns train (its sweep file's `tokens:`).
    pub tokens: f64,
    pub figures: Option<Figures>,
    /// Why a point has no figures (e.g. no plan fits in memory).
    pub error: Option<String>,
}

/// A whole comparison: what `compare.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareTable {
    pub name: String,
    /// Points in the unsharded sweep.
    pub points: usize,
    /// Token budget of the first point's file (each row carries its own: `rows[i].tokens`).
    pub tokens: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub rows: Vec<CompareRow>,
}

/// Rounds to 9 significant digits, so values survive JSON text exactly.
pub fn sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return if x.is_finite() { 0.0 } else { x };
    }
    format!("{x:.8e}").parse().unwrap_or(x)
}

fn fabric_label(s: &Scenario) -> String {
    let f = &s.cluster.fabric;
    let kind = match f.kind {
        FabricKind::FatTree => "fat-tree",
        FabricKind::RailOptimized => "rail-optimized",
        FabricKind::ClosPods => "clos-pods",
        FabricKind::SingleSwitch => "single-switch",
    };
    format!(
        "{kind} {}x{}G {}:1",
        s.cluster.node.nics, s.cluster.node.nic_gbps, f.oversubscription
    )
}

/// The replayed healthy step time in front of the step simulator: the run simulation then
/// replays only the fault states that differ from the healthy one.
struct KnownHealthy<'a> {
    healthy_s: f64,
    others: &'a dyn StepTimeSource,
}

impl StepTimeSource for KnownHealthy<'_> {
    fn step_time_s(&self, state: &StepState) -> Result<f64, RunError> {
        if state.is_healthy() {
            Ok(self.healthy_s)
        } else {
            self.others.step_time_s(state)
        }
    }
}

/// Run-level goodput (ETTR) of a scenario when it has a `run:` section: its `faults:`,
/// `checkpoint:` and `run:` simulated by `run::simulate_run` over the step simulator
/// (`run::analytic_step_times`); the mean over replicas when there are several.
/// `healthy_step_s`, when known, saves replaying the healthy state again.
pub fn goodput_of(s: &Scenario, healthy_step_s: Option<f64>) -> Result<Option<f64>, RunError> {
    if s.run.is_none() {
        return Ok(None);
    }
    let steps = run::analytic_step_times(s);
    let report = match healthy_step_s {
        Some(h) => {
            let src = KnownHealthy {
                healthy_s: h,
                others: &steps,
            };
            run::simulate_run(s, &src, &RunOptions::default())?
        }
        None => run::simulate_run(s, &steps, &RunOptions::default())?,
    };
    Ok(Some(
        report
            .stats
            .map_or(report.summary.goodput, |x| x.goodput.mean),
    ))
}

/// Step-level results of one point before pricing.
struct Step {
    plan: String,
    replay: ReplayFigures,
    tflops_per_gpu: f64,
    memory_gb: f64,
    /// The scenario with the chosen plan applied.
    scenario: Scenario,
}

/// Simulates a scenario's step, searching for the best plan when asked.
fn step_figures(s: &Scenario, opts: &CompareOptions) -> Result<Step, String> {
    let peak = s.cluster.gpu.peak_flops(s.training.precision) / 1e12;
    let (point, replay, memory_gb) = match opts.plan {
        PlanChoice::AsIs => {
            let point = PlanPoint::of(s);
            let r = plan::replay(s, &point).map_err(|e| e.to_string())?;
            (point, r, memory::estimate(s).most_loaded.total)
        }
        PlanChoice::Best => {
            let po = PlanOptions::for_scenario(s, opts.top.max(1));
            let report = plan::search(s, &po).map_err(|e| e.to_string())?;
            let best = report.best_replayed().ok_or("no plan replayed")?;
            let r = best.replay.clone().ok_or("no replay")?;
            (best.point, r, best.memory.most_loaded.total)
        }
    };
    Ok(Step {
        plan: point.label(),
        tflops_per_gpu: replay.mfu * peak,
        replay,
        memory_gb,
        scenario: point.applied(s),
    })
}

/// Simulates and prices one loaded point.
pub fn evaluate(point: &SweepPoint, s: &Scenario, opts: &CompareOptions) -> CompareRow {
    let mut row = CompareRow {
        index: point.index,
        name: point.name.clone(),
        gpu: s.cluster.gpu.name.clone(),
        gpus: s.cluster.total_gpus(),
        fabric: fabric_label(s),
        tokens: opts.tokens,
        figures: None,
        error: None,
    };
    let step = step_figures(s, opts).and_then(|st| {
        let goodput = goodput_of(&st.scenario, Some(st.replay.step_time_s))
            .map_err(|e| format!("run simulation: {e}"))?;
        Ok((st, goodput))
    });
    match step {
        Err(e) => row.error = Some(e),
        Ok((st, goodput)) => {
            let r = &st.replay;
            let b = &r.breakdown_s;
            let cc = cost::cluster_cost(&s.cluster, &opts.prices);
            let tc = cost::training_cost(&cc, opts.tokens, r.tokens_per_s, goodput);
            let days = |t: f64| sig(t / 86400.0);
            row.figures = Some(Figures {
                plan: st.plan,
                step_time_s: sig(r.step_time_s),
                tokens_per_s: sig(r.tokens_per_s),
                mfu: sig(r.mfu),
                tflops_per_gpu: sig(st.tflops_per_gpu),
                memory_gb: sig(st.memory_gb),
                bubble_fraction: sig(r.bubble_fraction),
                tp_exposed_s: sig(b.tp_exposed),
                pp_exposed_s: sig(b.pp_exposed),
                dp_exposed_s: sig(b.dp_exposed),
                ep_exposed_s: sig(b.ep_exposed),
                time_to_train_days: days(tc.ideal.time_s),
                gpu_hours: sig(tc.ideal.gpu_hours),
                energy_mwh: sig(tc.ideal.energy_mwh),
                cost_usd: sig(tc.ideal.cost_usd),
                usd_per_million_tokens: sig(tc.usd_per_million_tokens),
                capital_usd: sig(cc.capital.total_usd),
                facility_kw: sig(cc.power.facility_kw),
                goodput: tc.goodput.map(sig),
                effective_time_to_train_days: tc.effective.as_ref().map(|e| days(e.time_s)),
                effective_cost_usd: tc.effective.as_ref().map(|e| sig(e.cost_usd)),
                effective_energy_mwh: tc.effective.as_ref().map(|e| sig(e.energy_mwh)),
                model_error: crate::validate::band_for(&s.cluster.gpu).map(|b| b.mape),
            });
        }
    }
    row
}

fn progress_bar(n: usize, show: bool) -> ProgressBar {
    crate::progress::bar(n as u64, "compare points", show)
}

/// Loads every point (stopping at the first bad one), then simulates them in parallel.
/// Rows come back in point order.
pub fn run_points<L, E>(
    points: &[SweepPoint],
    load: L,
    opts: &CompareOptions,
) -> Result<Vec<CompareRow>, E>
where
    L: Fn(&SweepPoint) -> Result<Scenario, E>,
{
    run_points_with(points, load, |_| opts, opts.progress)
}

/// [`run_points`] with options per point: `opts(i)` for `points[i]` (points of different
/// sweep files keep their own token budget, plan choice and prices).
pub fn run_points_with<'o, L, O, E>(
    points: &[SweepPoint],
    load: L,
    opts: O,
    progress: bool,
) -> Result<Vec<CompareRow>, E>
where
    L: Fn(&SweepPoint) -> Result<Scenario, E>,
    O: Fn(usize) -> &'o CompareOptions + Sync,
{
    let scenarios = points.iter().map(&load).collect::<Result<Vec<_>, E>>()?;
    let pb = progress_bar(points.len(), progress);
    let rows = points
        .par_iter()
        .zip(scenarios.par_iter())
        .enumerate()
        .map(|(i, (p, s))| {
            let r = evaluate(p, s, opts(i));
            pb.inc(1);
            r
        })
        .collect();
    pb.finish_and_clear();
    Ok(rows)
}

/// How a design compares with the best of the table, and whether the difference is
/// within model error: smaller than the larger of the two designs' calibration bands
/// ([`Figures::model_error`]). Speed is compared by throughput (tokens/s), cost by
/// $ per million tokens, so rows with different token budgets compare fairly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VsBest {
    /// How much longer this design takes to train than the fastest (0 for the fastest).
    pub time_vs_fastest: f64,
    /// The difference is smaller than the calibration band (`None`: a GPU without one).
    pub time_within_model_error: Option<bool>,
    /// How much more this design costs per token than the cheapest (0 for the cheapest).
    pub cost_vs_cheapest: f64,
    pub cost_within_model_error: Option<bool>,
}

/// [`VsBest`] for every row (`None` for a row without figures), over the whole table (so
/// a merge of shards gives what the unsharded sweep gives).
pub fn vs_best(t: &CompareTable) -> Vec<Option<VsBest>> {
    let figs: Vec<Option<&Figures>> = t.rows.iter().map(|r| r.figures.as_ref()).collect();
    let best = |key: fn(&Figures) -> f64, max: bool| {
        figs.iter()
            .flatten()
            .filter(|f| key(f).is_finite() && key(f) > 0.0)
            .copied()
            .reduce(|a, b| {
                let better = if max {
                    key(b) > key(a)
                } else {
                    key(b) < key(a)
                };
                if better { b } else { a }
            })
    };
    let fastest = best(|f| f.tokens_per_s, true);
    let cheapest = best(|f| f.usd_per_million_tokens, false);
    let within = |diff: f64, a: &Figures, b: &Figures| match (a.model_error, b.model_error) {
        (Some(x), Some(y)) => Some(diff.abs() < x.max(y)),
        _ => None,
    };
    figs.iter()
        .map(|f| {
            let (f, fast, cheap) = (f.as_ref()?, fastest?, cheapest?);
            let time = sig(fast.tokens_per_s / f.tokens_per_s - 1.0);
            let cost = sig(f.usd_per_million_tokens / cheap.usd_per_million_tokens - 1.0);
            Some(VsBest {
                time_vs_fastest: time,
                time_within_model_error: within(time, f, fast),
                cost_vs_cheapest: cost,
                cost_within_model_error: within(cost, f, cheap),
            })
        })
        .collect()
}

/// Columns of `compare.csv`.
pub const COMPARE_CSV_HEADER: &str = "index,name,gpu,gpus,fabric,plan,step_time_s,tokens_per_s,\
mfu,tflops_per_gpu,memory_gb,bubble_fraction,tp_exposed_s,pp_exposed_s,dp_exposed_s,\
ep_exposed_s,time_to_train_days,gpu_hours,energy_mwh,cost_usd,\
usd_per_million_tokens,capital_usd,facility_kw,goodput,effective_time_to_train_days,\
effective_cost_usd,effective_energy_mwh,tokens,model_error,time_vs_fastest,\
time_within_model_error,cost_vs_cheapest,cost_within_model_error,error";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

/// `compare.csv` text.
pub fn to_csv(t: &CompareTable) -> String {
    let mut out = String::from(COMPARE_CSV_HEADER);
    out.push('\n');
    let marks = vs_best(t);
    for (r, mark) in t.rows.iter().zip(&marks) {
        let head = format!(
            "{},{},{},{},{}",
            r.index,
            csv_field(&r.name),
            csv_field(&r.gpu),
            r.gpus,
            csv_field(&r.fabric)
        );
        let body = match &r.figures {
            Some(f) => format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&f.plan),
                f.step_time_s,
                f.tokens_per_s,
                f.mfu,
                f.tflops_per_gpu,
                f.memory_gb,
                f.bubble_fraction,
                f.tp_exposed_s,
                f.pp_exposed_s,
                f.dp_exposed_s,
                f.ep_exposed_s,
                f.time_to_train_days,
                f.gpu_hours,
                f.energy_mwh,
                f.cost_usd,
                f.usd_per_million_tokens,
                f.capital_usd,
                f.facility_kw,
                opt(f.goodput),
                opt(f.effective_time_to_train_days),
                opt(f.effective_cost_usd),
                opt(f.effective_energy_mwh)
            ),
            None => ",".repeat(21),
        };
        let err = csv_field(r.error.as_deref().unwrap_or(""));
        let flag = |b: Option<bool>| b.map(|b| b.to_string()).unwrap_or_default();
        let model = match (r.figures.as_ref(), mark) {
            (Some(f), Some(m)) => format!(
                "{},{},{},{},{}",
                opt(f.model_error),
                m.time_vs_fastest,
                flag(m.time_within_model_error),
                m.cost_vs_cheapest,
                flag(m.cost_within_model_error)
            ),
            (Some(f), None) => format!("{},,,,", opt(f.model_error)),
            _ => ",,,,".to_string(),
        };
        out += &format!("{head},{body},{},{model},{err}\n", r.tokens);
    }
    out
}

/// `compare.json` text (pretty, newline-terminated).
pub fn to_json(t: &CompareTable) -> String {
    let mut s = serde_json::to_string_pretty(t).unwrap_or_default();
    s.push('\n');
    s
}

/// Combines shard tables into the unsharded table: same sweep, every point exactly once.
pub fn merge(tables: Vec<CompareTable>) -> Result<CompareTable, SweepError> {
    let first = tables
        .first()
        .ok_or_else(|| SweepError::Merge("nothing to merge".into()))?;
    let (name, points, tokens) = (first.name.clone(), first.points, first.tokens);
    let mut rows = Vec::with_capacity(points);
    for t in tables {
        if t.name != name || t.points != points || t.tokens != tokens {
            return Err(SweepError::Merge(format!(
                "shards come from different sweeps: `{}` ({} points) vs `{name}` ({points} points)",
                t.name, t.points
            )));
        }
        rows.extend(t.rows);
    }
    rows.sort_by_key(|r| r.index);
    let idx: Vec<usize> = rows.iter().map(|r| r.index).collect();
    if idx != (0..points).collect::<Vec<_>>() {
        let missing: Vec<usize> = (0..points).filter(|i| !idx.contains(i)).collect();
        return Err(SweepError::Merge(format!(
            "shards do not cover the sweep exactly once: {} rows for {points} points; missing {missing:?}",
            idx.len()
        )));
    }
    Ok(CompareTable {
        name,
        points,
        tokens,
        shard: None,
        rows,
    })
}

fn human_usd(x: f64) -> String {
    if x >= 1e9 {
        format!("${:.2}B", x / 1e9)
    } else if x >= 1e6 {
        format!("${:.2}M", x / 1e6)
    } else {
        format!("${:.0}", x)
    }
}

/// Widths of the terminal table's text columns: at least the usual 28 (design) and 44
/// (plan) characters, wider when a name or plan is longer, so nothing is cut.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Widths {
    name: usize,
    plan: usize,
}

impl Widths {
    fn of(t: &CompareTable) -> Widths {
        let longest = |f: &dyn Fn(&CompareRow) -> usize| t.rows.iter().map(f).max().unwrap_or(0);
        Widths {
            name: longest(&|r| r.name.chars().count()).max(28),
            plan: longest(&|r| r.figures.as_ref().map_or(0, |f| f.plan.chars().count())).max(44),
        }
    }
}

fn header_line(w: Widths, with_goodput: bool) -> String {
    let mut h = format!(
        "{:<nw$} {:>6} {:<pw$} {:>8} {:>10} {:>6} {:>8} {:>8} {:>10} {:>9}",
        "design",
        "gpus",
        "plan",
        "step s",
        "tokens/s",
        "MFU",
        "days",
        "MWh",
        "cost",
        "$/Mtok",
        nw = w.name,
        pw = w.plan
    );
    if with_goodput {
        h += &format!(
            " {:>8} {:>9} {:>8} {:>10}",
            "goodput", "eff days", "eff MWh", "eff cost"
        );
    }
    h + "\n"
}

fn figures_line(f: &Figures, w: Widths, with_goodput: bool) -> String {
    let mut l = format!(
        "{:<pw$} {:>8.3} {:>10.0} {:>5.1}% {:>8.1} {:>8.0} {:>10} {:>9.3}",
        f.plan,
        f.step_time_s,
        f.tokens_per_s,
        f.mfu * 100.0,
        f.time_to_train_days,
        f.energy_mwh,
        human_usd(f.cost_usd),
        f.usd_per_million_tokens,
        pw = w.plan
    );
    if with_goodput {
        let num = |x: Option<f64>, p: usize| x.map_or("-".into(), |v| format!("{v:.p$}"));
        l += &format!(
            " {:>8} {:>9} {:>8} {:>10}",
            num(f.goodput.map(|g| g * 100.0), 1) + "%",
            num(f.effective_time_to_train_days, 1),
            num(f.effective_energy_mwh, 0),
            f.effective_cost_usd.map_or("-".into(), human_usd)
        );
    }
    l
}

/// The token budget every row shares (the table's when it has no rows), or `None` when
/// the rows come from sweep files with different budgets.
pub fn common_tokens(t: &CompareTable) -> Option<f64> {
    match t.rows.first() {
        None => Some(t.tokens),
        Some(r) => t
            .rows
            .iter()
            .all(|x| x.tokens == r.tokens)
            .then_some(r.tokens),
    }
}

/// The terminal table; goodput-adjusted columns appear when some point simulated a run.
/// Design names and plans are printed whole (their columns widen to fit).
pub fn table_text(t: &CompareTable) -> String {
    let with_goodput = t
        .rows
        .iter()
        .any(|r| r.figures.as_ref().is_some_and(|f| f.goodput.is_some()));
    let mut out = match common_tokens(t) {
        Some(tokens) => format!(
            "{}: {} points, cost to train {:.3e} tokens\n",
            t.name, t.points, tokens
        ),
        None => {
            let budgets: Vec<String> = t.rows.iter().fold(Vec::new(), |mut v, r| {
                let b = format!("{:.3e}", r.tokens);
                if !v.contains(&b) {
                    v.push(b);
                }
                v
            });
            format!(
                "{}: {} points, cost to train each file's token budget ({} tokens; compare.csv `tokens`)\n",
                t.name,
                t.points,
                budgets.join(", ")
            )
        }
    };
    let w = Widths::of(t);
    out += header_line(w, with_goodput).trim_end();
    out += "  vs best\n";
    let marks = vs_best(t);
    for (r, mark) in t.rows.iter().zip(&marks) {
        let body = match &r.figures {
            Some(f) => format!("{}  {}", figures_line(f, w, with_goodput), mark_text(mark)),
            None => format!("error: {}", r.error.as_deref().unwrap_or("?")),
        };
        out += format!("{:<nw$} {:>6} {body}", r.name, r.gpus, nw = w.name).trim_end();
        out.push('\n');
    }
    out += &model_error_note(t);
    out
}

/// The `vs best` column: `fastest` / `~fastest` (within model error of the fastest) /
/// `+12%` (slower by more than the band), and the same for cost per token.
fn mark_text(mark: &Option<VsBest>) -> String {
    let Some(m) = mark else {
        return String::new();
    };
    let part = |diff: f64, within: Option<bool>, word: &str| {
        if diff == 0.0 {
            word.to_string()
        } else if within == Some(true) {
            format!("~{word} ({:+.1}%)", diff * 100.0)
        } else {
            format!(
                "{:+.1}% {}",
                diff * 100.0,
                if word == "fastest" { "time" } else { "cost" }
            )
        }
    };
    format!(
        "{}, {}",
        part(m.time_vs_fastest, m.time_within_model_error, "fastest"),
        part(m.cost_vs_cheapest, m.cost_within_model_error, "cheapest")
    )
}

/// The footnote saying what `~` means and which bands apply.
fn model_error_note(t: &CompareTable) -> String {
    let mut bands: Vec<(String, f64)> = Vec::new();
    let mut uncalibrated = false;
    for r in &t.rows {
        let Some(f) = &r.figures else { continue };
        match f.model_error {
            Some(b) => {
                if !bands.iter().any(|(g, _)| *g == r.gpu) {
                    bands.push((r.gpu.clone(), b));
                }
            }
            None => uncalibrated = true,
        }
    }
    if bands.is_empty() {
        // No row can carry a `~`, so there is nothing to explain but why not.
        return if uncalibrated {
            "  (no GPU here has a calibration table, so no difference is marked as within model error)\n".to_string()
        } else {
            String::new()
        };
    }
    let list: Vec<String> = bands
        .iter()
        .map(|(g, b)| format!("{g} ±{:.1} %", b * 100.0))
        .collect();
    let mut note = format!(
        "~ within model error: the difference from the best is smaller than the calibration band ({}; MAPE of each GPU generation's calibration table, clustersim validate)\n",
        list.join(", ")
    );
    if uncalibrated {
        note +=
            "  (GPUs without a calibration table have no band: their differences are not marked)\n";
    }
    note
}

/// Writes `compare.csv` and `compare.json` into `dir` (created if missing).
pub fn write_table(dir: &std::path::Path, t: &CompareTable) -> std::io::Result<()> {
    write_table_with(dir, t, None)
}

/// The sidecar recording what produced `compare.csv` (the same record as `compare.json`'s
/// `provenance`).
pub const PROVENANCE_FILE: &str = "compare.provenance.json";

/// [`write_table`], with `provenance` in `compare.json` and beside `compare.csv`
/// ([`PROVENANCE_FILE`]).
pub fn write_table_with(
    dir: &std::path::Path,
    t: &CompareTable,
    provenance: Option<&Provenance>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("compare.csv"), to_csv(t))?;
    let json =
        crate::config::provenance::json_with(t, provenance).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("compare.json"), json)?;
    match provenance {
        Some(p) => std::fs::write(dir.join(PROVENANCE_FILE), p.to_json()),
        None => Ok(()),
    }
}

/// The `provenance` of `dir/compare.json`, if it has one.
pub fn read_provenance(dir: &std::path::Path) -> Result<Option<Provenance>, SweepError> {
    let path = dir.join("compare.json");
    let text = crate::config::input::read_text(&path).map_err(|source| SweepError::Io {
        path: path.clone(),
        source,
    })?;
    #[derive(Deserialize)]
    struct Only {
        provenance: Option<Provenance>,
    }
    serde_json::from_str::<Only>(&text)
        .map(|o| o.provenance)
        .map_err(|e| SweepError::Parse {
            path,
            message: e.to_string(),
        })
}

/// Reads `dir/compare.json`.
pub fn read_table(dir: &std::path::Path) -> Result<CompareTable, SweepError> {
    let path = dir.join("compare.json");
    let text = crate::config::input::read_text(&path).map_err(|source| SweepError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SweepError::Parse {
        path,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::run::RunSpec;

    #[test]
    fn goodput_comes_from_the_run_simulation_when_the_scenario_has_one() {
        let mut s = fixtures::toy_scenario(2, 2, 2, 8, 16);
        assert_eq!(goodput_of(&s, None).unwrap(), None);
        s.run = Some(RunSpec {
            duration: Some("20d".into()),
            ..RunSpec::default()
        });
        let g = goodput_of(&s, None).unwrap().unwrap();
        assert!(g > 0.0 && g < 1.0, "{g}");
        // Passing the replayed healthy step time gives the same run.
        let healthy = crate::sim::simulate_step(&s, &Default::default())
            .unwrap()
            .metrics
            .step_time_s;
        assert_eq!(goodput_of(&s, Some(healthy)).unwrap(), Some(g));
    }

    #[test]
    fn terminal_table_prints_whole_names_in_aligned_columns() {
        let long = "cluster.node.nic_gbps=200 cluster.fabric.oversubscription=1";
        let row = |name: &str, figures: Option<Figures>| CompareRow {
            index: 0,
            name: name.into(),
            gpu: "h100".into(),
            gpus: 1024,
            fabric: "fat tree".into(),
            figures,
            error: Some("no plan fits".into()),
            tokens: 1e12,
        };
        let s = fixtures::toy_scenario(2, 2, 2, 8, 16);
        let point = crate::sweep::spec::SweepPoint {
            index: 0,
            name: "toy".into(),
            scenario: None,
            overrides: Vec::new(),
            origins: Vec::new(),
        };
        let f = evaluate(&point, &s, &CompareOptions::default())
            .figures
            .unwrap();
        let t = CompareTable {
            name: "fabrics".into(),
            points: 2,
            tokens: 1e12,
            shard: None,
            rows: vec![row(long, Some(f.clone())), row("short", Some(f))],
        };
        let text = table_text(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with(long), "{text}");
        // Columns stay aligned: the gpus column ends at the same place on every line.
        let end = lines[1].find("gpus").unwrap() + 4;
        for l in &lines[2..2 + t.rows.len()] {
            assert_eq!(&l[end - 4..end], "1024", "{text}");
        }
        // Short names keep the usual width.
        let short = CompareTable {
            rows: vec![t.rows[1].clone()],
            ..t
        };
        assert!(
            table_text(&short)
                .lines()
                .nth(2)
                .unwrap()
                .starts_with(&format!("{:<28} ", "short"))
        );
    }

    #[test]
    fn differences_smaller_than_the_calibration_band_are_within_model_error() {
        let s = fixtures::toy_scenario(2, 2, 2, 8, 16);
        let point = SweepPoint {
            index: 0,
            name: "toy".into(),
            scenario: None,
            overrides: Vec::new(),
            origins: Vec::new(),
        };
        let base = evaluate(&point, &s, &CompareOptions::default());
        // Throughput 100, 97 (3 % slower), 80 (25 % slower), and one GPU without a band.
        let row = |i: usize, tput: f64, usd: f64, band: Option<f64>| {
            let mut r = base.clone();
            r.index = i;
            r.name = format!("d{i}");
            let f = r.figures.as_mut().unwrap();
            f.tokens_per_s = tput;
            f.usd_per_million_tokens = usd;
            f.model_error = band;
            r
        };
        let t = CompareTable {
            name: "t".into(),
            points: 4,
            tokens: 1e12,
            shard: None,
            rows: vec![
                row(0, 100.0, 2.0, Some(0.05)),
                row(1, 97.0, 1.9, Some(0.05)),
                row(2, 80.0, 1.0, Some(0.05)),
                row(3, 99.0, 3.0, None),
            ],
        };
        let m: Vec<VsBest> = vs_best(&t).into_iter().map(Option::unwrap).collect();
        assert_eq!(m[0].time_vs_fastest, 0.0);
        assert_eq!(m[1].time_within_model_error, Some(true));
        assert_eq!(m[2].time_within_model_error, Some(false));
        assert_eq!(m[3].time_within_model_error, None, "no band, no claim");
        assert_eq!(m[2].cost_vs_cheapest, 0.0);
        assert_eq!(m[1].cost_within_model_error, Some(false));
        // The table, the CSV and the footnote say so.
        let text = table_text(&t);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .to_string()
        };
        assert!(
            line("d1").ends_with("~fastest (+3.1%), +90.0% cost"),
            "{text}"
        );
        assert!(line("d0").contains("fastest, +100.0% cost"), "{text}");
        assert!(text.contains("~ within model error"), "{text}");
        let csv = to_csv(&t);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let d1: Vec<&str> = csv.lines().nth(2).unwrap().split(',').collect();
        assert_eq!(d1[col("time_within_model_error")], "true");
        assert_eq!(d1[col("model_error")], "0.05");
        assert_eq!(d1.len(), header.len());
        // With no calibrated GPU at all the footnote lists no empty band, it says why no
        // difference is marked.
        let uncalibrated = CompareTable {
            rows: vec![row(0, 100.0, 2.0, None), row(1, 99.0, 1.0, None)],
            ..t
        };
        let note = model_error_note(&uncalibrated);
        assert!(!note.contains("()"), "{note}");
        assert!(
            note.contains("no GPU here has a calibration table"),
            "{note}"
        );
    }

    #[test]
    fn sig_keeps_nine_digits_and_round_trips() {
        let x = sig(std::f64::consts::PI * 1e7);
        assert_eq!(x, 31415926.5);
        let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
        assert_eq!(back, x);
    }
}
