//! `clustersim compare` and `merge` as library calls: scenarios or a sweep's points
//! simulated side by side (a [`CompareTable`]), shards of a sweep, and their merge.
//!
//! Must not print or pick output folders; that is the CLI's.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::config;
use crate::cost::Prices;
use crate::sweep::compare::{self, CompareOptions, CompareTable};
use crate::sweep::spec::{self, PlanChoice, Shard, SweepPoint, SweepSpec};

/// A comparison of scenarios, or of the points of one or more sweep files.
///
/// ```no_run
/// let out = clustersim::Comparison::from_files(&["scenarios/sweeps/fabrics.yaml"])?
///     .with_tokens("300B")
///     .run()?;
/// for row in &out.table.rows {
///     println!("{}: {:?}", row.name, row.figures.as_ref().map(|f| f.step_time_s));
/// }
/// # Ok::<(), clustersim::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Comparison {
    name: String,
    points: Vec<SweepPoint>,
    /// Sweep-level settings found in the files.
    sweep_tokens: Option<String>,
    sweep_plan: PlanChoice,
    sweep_top: Option<usize>,
    prices: Vec<String>,
    /// Caller's settings, which win over the files'.
    tokens: Option<String>,
    plan: Option<PlanChoice>,
    top: Option<usize>,
    overrides: Vec<String>,
    shard: Option<Shard>,
    progress: bool,
}

impl Comparison {
    /// Points from scenario files (one point each) and sweep files (a file with `axes:` or
    /// `designs:`; their points, and their `tokens`, `plan`, `top` and `prices`).
    pub fn from_files<P: AsRef<Path>>(files: &[P]) -> Result<Self> {
        let mut c = Comparison::from_points("compare", Vec::new());
        let mut names = Vec::new();
        for f in files {
            let f = f.as_ref();
            let text = std::fs::read_to_string(f).map_err(|source| Error::Read {
                path: f.to_path_buf(),
                source,
            })?;
            if spec::is_sweep_text(&text) {
                let sw = SweepSpec::parse(f, &text)?;
                c.add_sweep(&sw, f.parent().unwrap_or(Path::new(".")));
                names.push(sw.name);
            } else {
                c.add_scenario(f);
            }
        }
        if names.len() == 1 {
            c.name = names.remove(0);
        }
        Ok(c)
    }

    /// A comparison of given points (renumbered in order), named `name`.
    pub fn from_points(name: &str, points: Vec<SweepPoint>) -> Self {
        let points = points
            .into_iter()
            .enumerate()
            .map(|(index, p)| SweepPoint { index, ..p })
            .collect();
        Comparison {
            name: name.to_string(),
            points,
            sweep_tokens: None,
            sweep_plan: PlanChoice::AsIs,
            sweep_top: None,
            prices: Vec::new(),
            tokens: None,
            plan: None,
            top: None,
            overrides: Vec::new(),
            shard: None,
            progress: false,
        }
    }

    fn add_sweep(&mut self, sw: &SweepSpec, dir: &Path) {
        for mut p in spec::expand(sw, dir) {
            p.index = self.points.len();
            self.points.push(p);
        }
        self.sweep_tokens = self.sweep_tokens.take().or(sw.tokens.clone());
        self.sweep_top = self.sweep_top.or(sw.top);
        if sw.plan == PlanChoice::Best {
            self.sweep_plan = PlanChoice::Best;
        }
        self.prices.extend(sw.prices.iter().cloned());
    }

    fn add_scenario(&mut self, f: &Path) {
        let stem = f
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
        self.points.push(SweepPoint {
            index: self.points.len(),
            name: stem,
            scenario: Some(f.to_path_buf()),
            overrides: Vec::new(),
        });
    }

    /// Every point, before sharding.
    pub fn points(&self) -> &[SweepPoint] {
        &self.points
    }

    /// Overrides applied to every point after its own (errors name the point when it runs).
    pub fn with_overrides<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.overrides
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Runs only the points whose index is `i` modulo `n`.
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }

    /// Price overrides (`switch_usd=25000`, `basis=ownership`), after the sweep files'.
    pub fn with_prices<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.prices
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Token budget for the time and cost columns (`1T`, `300B`); default the sweep's,
    /// else 1T.
    pub fn with_tokens(mut self, tokens: &str) -> Self {
        self.tokens = Some(tokens.to_string());
        self
    }

    /// Each point's plan as stated, or the best the plan search finds (default: the
    /// sweep's choice).
    pub fn with_plan(mut self, plan: PlanChoice) -> Self {
        self.plan = Some(plan);
        self
    }

    /// Full replays per point with [`PlanChoice::Best`] (default the sweep's, else 3).
    pub fn with_top(mut self, top: usize) -> Self {
        self.top = Some(top);
        self
    }

    /// Draw a progress bar on stderr.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The options the points run with; fails on bad prices, then on a bad token budget.
    pub fn options(&self) -> Result<CompareOptions> {
        let prices = Prices::with_overrides(&self.prices)?;
        let tokens = match self.tokens.as_ref().or(self.sweep_tokens.as_ref()) {
            Some(t) => spec::parse_count(t).map_err(|e| Error::invalid(format!("tokens: {e}")))?,
            None => 1e12,
        };
        Ok(CompareOptions {
            tokens,
            plan: self.plan.unwrap_or(self.sweep_plan),
            top: self.top.or(self.sweep_top).unwrap_or(3),
            prices,
            progress: self.progress,
        })
    }

    /// Loads every point of the shard (stopping at the first that does not load), then
    /// simulates them in parallel.
    pub fn run(&self) -> Result<CompareOutputs> {
        let opts = self.options()?;
        let points = spec::shard(self.points.clone(), self.shard);
        let rows = compare::run_points(&points, |p| self.load(p), &opts)?;
        Ok(CompareOutputs {
            table: CompareTable {
                name: self.name.clone(),
                points: self.points.len(),
                tokens: opts.tokens,
                shard: self.shard,
                rows,
            },
        })
    }

    fn load(&self, p: &SweepPoint) -> Result<config::Scenario> {
        let mut o = p.overrides.clone();
        o.extend(self.overrides.iter().cloned());
        config::load_scenario(p.scenario.as_deref(), &o).map_err(|source| Error::Point {
            index: p.index,
            name: p.name.clone(),
            source,
        })
    }
}

/// Merges `compare --shard` outputs (folders with `compare.json`) into the table the
/// unsharded sweep would have given.
pub fn merge<P: AsRef<Path>>(dirs: &[P]) -> Result<CompareOutputs> {
    let tables = dirs
        .iter()
        .map(|d| compare::read_table(d.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompareOutputs {
        table: compare::merge(tables)?,
    })
}

/// A finished comparison (or merge).
#[derive(Debug, Clone)]
pub struct CompareOutputs {
    pub table: CompareTable,
}

/// Files written, and what could not be drawn.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// Non-fatal problems (a chart that could not be drawn), one message each.
    pub warnings: Vec<String>,
}

impl CompareOutputs {
    /// Writes `compare.csv`, `compare.json` and the charts into `dir`; a chart that cannot
    /// be drawn is a warning, not an error.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<Written> {
        let dir = dir.as_ref();
        compare::write_table(dir, &self.table).map_err(Error::write(dir))?;
        let mut out = Written {
            files: vec![dir.join("compare.csv"), dir.join("compare.json")],
            warnings: Vec::new(),
        };
        match crate::report::charts::compare::compare_charts(&self.table, dir) {
            Ok(charts) => out.files.extend(charts),
            Err(e) => out.warnings.push(format!("charts not written: {e}")),
        }
        Ok(out)
    }
}
