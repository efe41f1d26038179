//! The files a run writes: `summary.json`, `timeline.json` (Chrome trace) and charts
//! (PNG and SVG), `links.csv` and the link heat map after a contention-mode step
//! ([`links`]), plus the human table `clustersim run` prints.
//!
//! The report reads a finished [`StepResult`]; it must not change results or compute
//! metrics of its own (those live in [`crate::sim`]). Same inputs give byte-identical
//! files: JSON floats print in shortest round-trip form, trace times from integer
//! nanoseconds, and charts draw with an embedded font.
//!
//! # Writing whole or not at all
//! [`write_step_outputs`] renders every file into a [`staging::Staging`] directory *inside*
//! the output directory (`<out>/.clustersim-tmp-<pid>/`, so on the same file system), and
//! only when all of them succeeded renames each into place (a rename replaces its target
//! atomically). A failure while rendering leaves the previous outputs untouched and removes
//! the staging directory; so does SIGINT/SIGTERM, and a folder left by a killed process is
//! swept by the next command writing there. Every command writes through `staging`.
//! We deliberately do not swap the whole directory: `--out` may name
//! a directory holding other files (`--out .`), which a swap would delete. Files this
//! writer owns but did not produce this time (say `timeline.json` after `--timeline none`)
//! are removed, so the directory never mixes two runs of ours.

pub mod charts;
pub mod fonts;
pub mod jobs;
pub mod links;
pub mod staging;
pub mod summary;
pub mod trace;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::{OutputsSpec, Scenario};
use crate::engine::TraceRanks;
use crate::plan::RankGrid;
use crate::sim::StepResult;

pub use links::LinkReport;
pub use summary::{Summary, human_table};
pub use trace::{representative_ranks, trace_ranks};

/// A file could not be written; the message names it.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot serialize {}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot draw chart {}: {message}", path.display())]
    Chart { path: PathBuf, message: String },
    /// A result breaks a numeric invariant; nothing is written.
    #[error("result invariant violated, nothing written: {0}")]
    Invariant(String),
}

impl ReportError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub const SUMMARY_FILE: &str = "summary.json";
pub const TIMELINE_FILE: &str = "timeline.json";
/// The timeline gzipped (`--gzip-timeline`); Perfetto opens it as is.
pub const TIMELINE_GZ_FILE: &str = "timeline.json.gz";

/// Writes extra files (a run's `run.csv` and charts, say) into the staging directory and
/// returns their names, so they are committed with the rest, whole or not at all.
#[derive(Clone)]
pub struct ExtraFiles(pub std::sync::Arc<ExtraWriter>);

/// Renders files into a directory and returns their names.
pub type ExtraWriter = dyn Fn(&Path) -> Result<Vec<String>, String> + Send + Sync;

impl std::fmt::Debug for ExtraFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraFiles(..)")
    }
}

/// What to write besides `summary.json`.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Ranks shown in `timeline.json`; `None` writes no timeline.
    pub timeline: TraceRanks,
    /// Draw the charts (PNG and SVG).
    pub charts: bool,
    /// Optional `summary.json` sections other modules computed.
    pub memory_gb: Option<serde_json::Value>,
    pub run: Option<serde_json::Value>,
    pub jobs: Option<serde_json::Value>,
    pub cost: Option<serde_json::Value>,
    /// Files other modules render (see [`ExtraFiles`]).
    pub extra: Option<ExtraFiles>,
    /// Link statistics of a contention-mode step: `links.csv` and the link heat map.
    pub links: Option<LinkReport>,
    /// Write the timeline gzipped (`timeline.json.gz`).
    pub timeline_gzip: bool,
    /// Show a labelled progress bar while writing a large timeline (terminal only).
    pub progress: bool,
    /// What produced these outputs (`summary.json`'s `provenance`).
    pub provenance: Option<serde_json::Value>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            timeline: TraceRanks::None,
            charts: true,
            memory_gb: None,
            run: None,
            jobs: None,
            cost: None,
            extra: None,
            links: None,
            timeline_gzip: false,
            progress: false,
            provenance: None,
        }
    }
}

impl ReportOptions {
    /// Options from a scenario's `outputs:` section.
    pub fn from_outputs(outputs: &OutputsSpec, grid: &RankGrid) -> Self {
        ReportOptions {
            timeline: trace_ranks(&outputs.timeline, grid),
            charts: outputs.charts,
            ..Default::default()
        }
    }

    /// The ranks the engine must record for these outputs: the timeline's, plus the
    /// representative rank of each stage when charts are drawn (the pipeline chart).
    pub fn required_trace(&self, grid: &RankGrid) -> TraceRanks {
        if self.charts {
            trace::union(
                &self.timeline,
                &TraceRanks::Some(representative_ranks(grid)),
            )
        } else {
            self.timeline.clone()
        }
    }

    /// The `summary.json` these options write for `result`.
    pub fn summary(&self, scenario: &Scenario, result: &StepResult) -> Summary {
        let mut s = Summary::new(scenario, &result.metrics);
        s.memory_gb = self.memory_gb.clone();
        s.run = self.run.clone();
        s.jobs = self.jobs.clone();
        s.cost = self.cost.clone();
        s.provenance = self.provenance.clone();
        s
    }
}

/// Every file name this writer may produce (used to clear stale ones).
pub fn owned_files() -> Vec<String> {
    let mut names = vec![
        SUMMARY_FILE.to_string(),
        TIMELINE_FILE.to_string(),
        TIMELINE_GZ_FILE.to_string(),
    ];
    names.extend(charts::file_names());
    names.push(crate::run::report::RUN_CSV.to_string());
    let progress = charts::run::PROGRESS;
    names.extend([format!("{progress}.png"), format!("{progress}.svg")]);
    names.extend(links::file_names());
    names
}

/// Writes `summary.json`, `timeline.json` (unless `opts.timeline` is `None`) and the charts
/// into `out_dir`, whole or not at all (see the module docs). Returns the files written.
pub fn write_step_outputs(
    out_dir: &Path,
    scenario: &Scenario,
    result: &StepResult,
    opts: &ReportOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    result
        .metrics
        .check_invariants()
        .map_err(ReportError::Invariant)?;
    let staging = staging::Staging::new(out_dir)?;
    let names = render_all(staging.path(), scenario, result, opts)?;
    staging.commit(&names, &owned_files())
}

/// Renders every output into `dir`; returns the file names.
fn render_all(
    dir: &Path,
    scenario: &Scenario,
    result: &StepResult,
    opts: &ReportOptions,
) -> Result<Vec<String>, ReportError> {
    let summary = opts.summary(scenario, result);
    let mut names = vec![write_summary(dir, &summary)?];
    if !matches!(opts.timeline, TraceRanks::None) {
        names.push(write_timeline_file(dir, scenario, result, opts)?);
    }
    if opts.charts {
        names.extend(charts::write_charts(dir, &summary, result)?);
    }
    if let Some(links) = &opts.links {
        names.extend(links.write(dir, opts.charts)?);
    }
    if let Some(extra) = &opts.extra {
        names.extend((extra.0)(dir).map_err(|message| ReportError::Chart {
            path: dir.to_path_buf(),
            message,
        })?);
    }
    Ok(names)
}

fn write_summary(dir: &Path, summary: &Summary) -> Result<String, ReportError> {
    let path = dir.join(SUMMARY_FILE);
    let json = summary.to_json().map_err(|source| ReportError::Json {
        path: path.clone(),
        source,
    })?;
    fs::write(&path, json).map_err(|e| ReportError::io(&path, e))?;
    Ok(SUMMARY_FILE.to_string())
}

fn write_timeline_file(
    dir: &Path,
    scenario: &Scenario,
    result: &StepResult,
    opts: &ReportOptions,
) -> Result<String, ReportError> {
    let name = if opts.timeline_gzip {
        TIMELINE_GZ_FILE
    } else {
        TIMELINE_FILE
    };
    let path = dir.join(name);
    let file = fs::File::create(&path).map_err(|e| ReportError::io(&path, e))?;
    let gpn = scenario.cluster.node.gpus.clamp(1, u32::MAX as u64) as u32;
    let large = result.replay.trace.len() >= trace::PROGRESS_EVENTS;
    let bar = crate::progress::bar(0, &format!("writing {name}"), opts.progress && large);
    let written = if opts.timeline_gzip {
        // No file name or time in the header (flate2 writes mtime 0): same bytes every run.
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        trace::write_timeline_with_progress(
            &mut gz,
            result,
            &scenario.name,
            gpn,
            &opts.timeline,
            &bar,
        )
        .and_then(|()| gz.finish().map(drop))
    } else {
        trace::write_timeline_with_progress(file, result, &scenario.name, gpn, &opts.timeline, &bar)
    };
    written.map_err(|e| ReportError::io(&path, e))?;
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;
    use crate::sim::{StepOptions, simulate_step};

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("clustersim-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn run(opts: &ReportOptions) -> (Scenario, StepResult) {
        let s = toy_scenario(2, 2, 1, 4, 4);
        let grid = RankGrid::new(&s.parallelism);
        let step = StepOptions {
            trace: opts.required_trace(&grid),
            ..Default::default()
        };
        let r = simulate_step(&s, &step).unwrap();
        (s, r)
    }

    #[test]
    fn required_trace_adds_representatives_for_charts() {
        let s = toy_scenario(2, 2, 1, 4, 4);
        let grid = RankGrid::new(&s.parallelism);
        let mut o = ReportOptions::default();
        assert!(matches!(o.required_trace(&grid), TraceRanks::Some(v) if v == vec![0, 2]));
        o.charts = false;
        assert!(matches!(o.required_trace(&grid), TraceRanks::None));
    }

    #[test]
    fn stale_files_are_removed_and_foreign_files_kept() {
        let dir = tmp("stale");
        let mut opts = ReportOptions {
            timeline: TraceRanks::All,
            charts: false,
            ..Default::default()
        };
        let (s, r) = run(&opts);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("notes.txt"), "mine").unwrap();
        let files = write_step_outputs(&dir, &s, &r, &opts).unwrap();
        assert_eq!(files.len(), 2);
        assert!(dir.join(TIMELINE_FILE).is_file());
        opts.timeline = TraceRanks::None;
        let files = write_step_outputs(&dir, &s, &r, &opts).unwrap();
        assert_eq!(files, vec![dir.join(SUMMARY_FILE)]);
        assert!(!dir.join(TIMELINE_FILE).exists());
        assert!(dir.join("notes.txt").is_file());
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".clustersim-tmp")
            })
            .collect();
        assert!(leftovers.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn error_names_the_path() {
        let dir = tmp("err");
        fs::write(&dir, "a file, not a directory").unwrap();
        let (s, r) = run(&ReportOptions::default());
        let err = write_step_outputs(&dir, &s, &r, &ReportOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains(&dir.display().to_string()),
            "{err}"
        );
        fs::remove_file(&dir).unwrap();
    }
}
