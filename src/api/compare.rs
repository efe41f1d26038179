//! `clustersim compare` and `merge` as library calls: scenarios or a sweep's points
//! simulated side by side (a [`CompareTable`]), shards of a sweep, and their merge.
//!
//! Must not print or pick output folders; that is the CLI's.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::config;
use crate::config::Provenance;
use crate::cost::Prices;
use crate::sweep::compare::{self, CompareOptions, CompareTable};
use crate::sweep::spec::{self, PlanChoice, Shard, SweepError, SweepPoint, SweepSpec};

/// A comparison of scenarios, or of the points of one or more sweep files.
///
/// Each sweep file keeps its own settings (`tokens`, `plan`, `top`, `prices`) for its own
/// points; a scenario file given directly takes the defaults (1T tokens, `as-is`, top 3,
/// default prices). The caller's settings ([`Comparison::with_tokens`],
/// [`Comparison::with_plan`], [`Comparison::with_top`]) replace every file's, and
/// [`Comparison::with_prices`] applies after every file's prices.
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
    /// The settings group of each point (index into `groups`).
    point_group: Vec<usize>,
    /// Settings per input file (one group for scenario files and given points).
    groups: Vec<FileSettings>,
    /// Caller's settings, which win over the files'.
    tokens: Option<String>,
    plan: Option<PlanChoice>,
    top: Option<usize>,
    prices: Vec<String>,
    overrides: Vec<String>,
    shard: Option<Shard>,
    progress: bool,
    inputs: Vec<PathBuf>,
}

/// The settings one sweep file gives its own points.
#[derive(Debug, Clone, Default, PartialEq)]
struct FileSettings {
    tokens: Option<String>,
    plan: PlanChoice,
    top: Option<usize>,
    prices: Vec<String>,
}

impl Comparison {
    /// Points from scenario files (one point each) and sweep files (a file with `axes:` or
    /// `designs:`; their points, each file with its own `tokens`, `plan`, `top` and
    /// `prices`).
    pub fn from_files<P: AsRef<Path>>(files: &[P]) -> Result<Self> {
        let mut c = Comparison::from_points("compare", Vec::new());
        c.groups.clear();
        let mut names = Vec::new();
        let mut scenario_group = None;
        let mut counted = 0u64;
        for f in files {
            let f = f.as_ref();
            let text = crate::config::input::read_text(f).map_err(|source| Error::Read {
                path: f.to_path_buf(),
                source,
            })?;
            c.inputs.push(f.to_path_buf());
            if spec::is_sweep_text(&text) {
                let sw = SweepSpec::parse(f, &text)?;
                counted = spec::check_points(&sw, f, counted)?;
                c.add_sweep(&sw, f.parent().unwrap_or(Path::new(".")));
                names.push(sw.name);
            } else {
                let g = *scenario_group.get_or_insert_with(|| {
                    c.groups.push(FileSettings::default());
                    c.groups.len() - 1
                });
                c.add_scenario(f, g);
            }
        }
        if c.groups.is_empty() {
            c.groups.push(FileSettings::default());
        }
        if names.len() == 1 {
            c.name = names.remove(0);
        }
        Ok(c)
    }

    /// A comparison of given points (renumbered in order), named `name`, with the default
    /// settings.
    pub fn from_points(name: &str, points: Vec<SweepPoint>) -> Self {
        let points: Vec<SweepPoint> = points
            .into_iter()
            .enumerate()
            .map(|(index, p)| SweepPoint { index, ..p })
            .collect();
        Comparison {
            name: name.to_string(),
            point_group: vec![0; points.len()],
            points,
            groups: vec![FileSettings::default()],
            tokens: None,
            plan: None,
            top: None,
            prices: Vec::new(),
            overrides: Vec::new(),
            shard: None,
            progress: false,
            inputs: Vec::new(),
        }
    }

    fn add_sweep(&mut self, sw: &SweepSpec, dir: &Path) {
        self.groups.push(FileSettings {
            tokens: sw.tokens.clone(),
            plan: sw.plan,
            top: sw.top,
            prices: sw.prices.clone(),
        });
        let g = self.groups.len() - 1;
        for mut p in spec::expand(sw, dir) {
            p.index = self.points.len();
            self.points.push(p);
            self.point_group.push(g);
        }
    }

    fn add_scenario(&mut self, f: &Path, group: usize) {
        let stem = f
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
        self.points.push(SweepPoint {
            index: self.points.len(),
            name: stem,
            scenario: Some(f.to_path_buf()),
            overrides: Vec::new(),
            origins: Vec::new(),
        });
        self.point_group.push(group);
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

    /// Price overrides (`switch_usd=25000`, `basis=ownership`), applied after each sweep
    /// file's own `prices:`.
    pub fn with_prices<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.prices
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Token budget for the time and cost columns (`1T`, `300B`) of every point, replacing
    /// each sweep file's `tokens:` (default: the file's, else 1T).
    pub fn with_tokens(mut self, tokens: &str) -> Self {
        self.tokens = Some(tokens.to_string());
        self
    }

    /// Each point's plan as stated, or the best the plan search finds, for every point
    /// (default: each sweep file's `plan:`, else as-is).
    pub fn with_plan(mut self, plan: PlanChoice) -> Self {
        self.plan = Some(plan);
        self
    }

    /// Full replays per point with [`PlanChoice::Best`], for every point (default: each
    /// sweep file's `top:`, else 3).
    pub fn with_top(mut self, top: usize) -> Self {
        self.top = Some(top);
        self
    }

    /// Draw a progress bar on stderr.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The options the points of the first input file run with; fails on bad prices,
    /// then on a bad token budget (of any file).
    pub fn options(&self) -> Result<CompareOptions> {
        let all = self.group_options()?;
        Ok(all.into_iter().next().unwrap_or_default())
    }

    /// The options of each settings group, in group order; checks every group's prices
    /// first, then every token budget.
    fn group_options(&self) -> Result<Vec<CompareOptions>> {
        let mut prices = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let mut p = g.prices.clone();
            p.extend(self.prices.iter().cloned());
            prices.push(Prices::with_overrides(&p)?);
        }
        let mut out = Vec::with_capacity(self.groups.len());
        for (g, prices) in self.groups.iter().zip(prices) {
            let tokens = match self.tokens.as_ref().or(g.tokens.as_ref()) {
                Some(t) => {
                    spec::parse_count(t).map_err(|e| Error::invalid(format!("tokens: {e}")))?
                }
                None => 1e12,
            };
            out.push(CompareOptions {
                tokens,
                plan: self.plan.unwrap_or(g.plan),
                top: self.top.or(g.top).unwrap_or(3),
                prices,
                progress: self.progress,
            });
        }
        Ok(out)
    }

    /// The files this comparison read (sweep and scenario files, as given).
    pub fn input_files(&self) -> &[PathBuf] {
        &self.inputs
    }

    /// What produced this comparison, the same for every shard of it: the files given and
    /// every file the points read (with their hashes), the `--set` overrides, the network
    /// modes and seeds of the points that load, and the caller's settings.
    pub fn provenance(&self) -> Provenance {
        let mut p = Provenance::new("compare");
        let given: Vec<String> = self
            .inputs
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        p.add_inputs(&given);
        for pt in &self.points {
            let mut o = pt.overrides.clone();
            o.extend(self.overrides.iter().cloned());
            let loaded = config::ScenarioDraft::load(pt.scenario.as_deref())
                .and_then(|d| d.with_overrides(&o))
                .and_then(|d| d.resolve_traced());
            if let Ok((s, sources)) = loaded {
                p.add_inputs(&sources);
                p.add_scenario(&s.network.label(), s.faults.seed);
            }
        }
        p.overrides = self.overrides.clone();
        if let Some(t) = &self.tokens {
            p.set("tokens", t);
        }
        if let Some(plan) = self.plan {
            p.set(
                "plan",
                match plan {
                    PlanChoice::AsIs => "as-is",
                    PlanChoice::Best => "best",
                },
            );
        }
        if let Some(top) = self.top {
            p.set("top", top);
        }
        if !self.prices.is_empty() {
            p.set("prices", self.prices.join(" "));
        }
        p
    }

    /// Loads every point of the shard (stopping at the first that does not load), then
    /// simulates them in parallel, each with its own file's settings.
    pub fn run(&self) -> Result<CompareOutputs> {
        let opts = self.group_options()?;
        let points = spec::shard(self.points.clone(), self.shard);
        let group_of: Vec<usize> = points.iter().map(|p| self.point_group[p.index]).collect();
        let rows = compare::run_points_with(
            &points,
            |p| {
                let s = self.load(p)?;
                // A point simulated as it is runs its own plan: keys that act only
                // under another plan are refused, as `run` refuses them.
                if opts[self.point_group[p.index]].plan == PlanChoice::AsIs {
                    s.check_own_plan().map_err(|source| Error::Point {
                        index: p.index,
                        name: p.name.clone(),
                        source,
                    })?;
                }
                Ok::<config::Scenario, Error>(s)
            },
            |i| &opts[group_of[i]],
            self.progress,
        )?;
        let first = self.point_group.first().map_or(0, |&g| g);
        Ok(CompareOutputs {
            table: CompareTable {
                name: self.name.clone(),
                points: self.points.len(),
                tokens: opts.get(first).map_or(1e12, |o| o.tokens),
                shard: self.shard,
                rows,
            },
            provenance: Some(self.provenance()),
        })
    }

    /// Loads a point: its overrides located where its sweep file writes them (so errors
    /// name that line), then the caller's `--set` overrides.
    fn load(&self, p: &SweepPoint) -> Result<config::Scenario> {
        let mut o = p.located_overrides();
        o.extend(self.overrides.iter().map(|a| (a.clone(), None)));
        config::ScenarioDraft::load(p.scenario.as_deref())
            .and_then(|d| d.with_located_overrides(&o))
            .and_then(config::ScenarioDraft::resolve)
            .map_err(|source| Error::Point {
                index: p.index,
                name: format!("{}{}", p.name, point_origins(p, &source)),
                source,
            })
            .and_then(|s| super::input::refuse_jobs(&s, "compare").map(|()| s))
    }
}

/// Where a point's sweep-file overrides are written, when its error is located elsewhere
/// (a rule that combines keys, such as the GPU count, points at the base scenario): the
/// sweep file's lines of the values that made the point, e.g. ` at s.yaml:6:18`.
fn point_origins(p: &SweepPoint, e: &config::ConfigError) -> String {
    let written: Vec<String> = p
        .origins
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    let own = written
        .iter()
        .any(|o| e.location.as_deref() == Some(o.as_str()));
    if own || written.is_empty() {
        String::new()
    } else {
        format!(" at {}", written.join(", "))
    }
}

/// Merges `compare --shard` outputs (folders with `compare.json`) into the table the
/// unsharded sweep would have given.
///
/// Every shard must record the same provenance (same inputs, overrides and settings); the
/// merged files carry it, so they equal the unsharded sweep's byte for byte.
pub fn merge<P: AsRef<Path>>(dirs: &[P]) -> Result<CompareOutputs> {
    let tables = dirs
        .iter()
        .map(|d| compare::read_table(d.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let provenances = dirs
        .iter()
        .map(|d| compare::read_provenance(d.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let table = compare::merge(tables)?;
    let mut provenance = provenances.first().cloned().flatten();
    for (d, p) in dirs.iter().zip(&provenances).skip(1) {
        if *p != provenance {
            return Err(Error::Sweep(SweepError::Merge(format!(
                "shards come from different inputs or settings: the provenance in {} differs from {}'s",
                d.as_ref().join("compare.json").display(),
                dirs[0].as_ref().display()
            ))));
        }
    }
    if let Some(p) = provenance.as_mut() {
        // A merge of shards is the sweep they came from.
        p.command = "compare".to_string();
    }
    Ok(CompareOutputs { table, provenance })
}

/// A finished comparison (or merge).
#[derive(Debug, Clone)]
pub struct CompareOutputs {
    pub table: CompareTable,
    /// What produced the table (`compare.json`'s `provenance`, `compare.provenance.json`);
    /// `None` for shards written before provenance was recorded.
    pub provenance: Option<Provenance>,
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
        let staging = crate::report::staging::Staging::new(dir)?;
        compare::write_table_with(staging.path(), &self.table, self.provenance.as_ref())
            .map_err(Error::write(staging.path()))?;
        let mut names = vec!["compare.csv".to_string(), "compare.json".to_string()];
        if self.provenance.is_some() {
            names.push(compare::PROVENANCE_FILE.to_string());
        }
        let owned = [
            "compare.csv".to_string(),
            "compare.json".to_string(),
            compare::PROVENANCE_FILE.to_string(),
        ];
        let mut warnings = Vec::new();
        match crate::report::charts::compare::compare_charts(&self.table, staging.path()) {
            Ok(charts) => names.extend(
                charts
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned()),
            ),
            Err(e) => warnings.push(format!("charts not written: {e}")),
        }
        let out = Written {
            files: staging.commit(&names, &owned)?,
            warnings,
        };
        Ok(out)
    }
}
