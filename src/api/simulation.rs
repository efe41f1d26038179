//! `clustersim run` as a library call: one step of a scenario (with its stragglers and
//! degraded links), the long-horizon run when the scenario has `run:`, and everything the
//! report writers need ([`RunOutputs::write_to`]).
//!
//! Must not print or pick output folders; that is the CLI's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{Error, Result};
use super::input::{ScenarioInput, scenario_constructors};
use crate::config::{Provenance, Scenario, TimelineRanks};
use crate::engine::ReplayMode;
use crate::faults;
use crate::network::NetworkMode;
use crate::plan::RankGrid;
use crate::pricing::memory::MemoryReport;
use crate::report::{self, ExtraFiles, LinkReport, ReportOptions, Summary};
use crate::run::{self, RunReport};
use crate::sim::{self, StepMetrics, StepOptions, StepResult};

/// One simulated step of a scenario, set up with builder methods and run with
/// [`Simulation::run`].
///
/// ```no_run
/// use clustersim::{NetworkMode, Simulation};
///
/// let out = Simulation::from_file("scenarios/llama3-70b-1k.yaml")?
///     .with_overrides(&["parallelism.tp=4", "parallelism.dp=64"])?
///     .with_seed(7)
///     .with_network(NetworkMode::Contention)
///     .run()?;
/// println!("{:.3} s per step, MFU {:.1} %", out.metrics().step_time_s, out.metrics().mfu * 100.0);
/// out.write_to("output/llama3-70b-tp4")?;
/// # Ok::<(), clustersim::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Simulation {
    input: ScenarioInput,
    seed: Option<u64>,
    network: Option<NetworkMode>,
    timeline: Option<TimelineRanks>,
    replicas: Option<u64>,
    strict_memory: bool,
    progress: bool,
    max_timeline_bytes: u64,
    timeline_gzip: bool,
    replay: ReplayMode,
    per_link_series: bool,
}

/// The largest timeline a [`Simulation`] writes unless told otherwise: 4 GB.
pub const DEFAULT_MAX_TIMELINE_BYTES: u64 = 4_000_000_000;

scenario_constructors!(Simulation);

impl Simulation {
    /// A simulation of the scenario `input` resolves to.
    pub fn new(input: ScenarioInput) -> Self {
        Simulation {
            input,
            seed: None,
            network: None,
            timeline: None,
            replicas: None,
            strict_memory: false,
            progress: false,
            max_timeline_bytes: DEFAULT_MAX_TIMELINE_BYTES,
            timeline_gzip: false,
            replay: ReplayMode::Folded,
            per_link_series: false,
        }
    }

    /// In contention mode, record utilization over time per link as well as per tier
    /// (`links-timeseries.csv` then has one series per link that carried traffic, and the
    /// time heat map a panel of the busiest links; `--links all`).
    pub fn with_link_series(mut self, per_link: bool) -> Self {
        self.per_link_series = per_link;
        self
    }

    /// Seed for fault injection (overrides `faults.seed`).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Network model (overrides `network.mode`).
    pub fn with_network(mut self, mode: NetworkMode) -> Self {
        self.network = Some(mode);
        self
    }

    /// Ranks the timeline shows (overrides `outputs.timeline`).
    pub fn with_timeline(mut self, ranks: TimelineRanks) -> Self {
        self.timeline = Some(ranks);
        self
    }

    /// Monte-Carlo replicas of the long run (overrides `run.replicas`; at least 1). The
    /// scenario must have a `run:` section.
    pub fn with_replicas(mut self, replicas: u64) -> Self {
        self.replicas = Some(replicas);
        self
    }

    /// Fail with [`Error::OutOfMemory`] when the plan does not fit in GPU memory (by
    /// default the memory report says `fits: false` and the step runs anyway).
    pub fn strict_memory(mut self, strict: bool) -> Self {
        self.strict_memory = strict;
        self
    }

    /// Refuse (before simulating) a timeline estimated above `bytes` as written (after
    /// gzip with [`Simulation::with_timeline_gzip`]); default
    /// [`DEFAULT_MAX_TIMELINE_BYTES`].
    pub fn with_max_timeline_bytes(mut self, bytes: u64) -> Self {
        self.max_timeline_bytes = bytes;
        self
    }

    /// Write the timeline gzipped, as `timeline.json.gz` (Perfetto opens it as is).
    pub fn with_timeline_gzip(mut self, gzip: bool) -> Self {
        self.timeline_gzip = gzip;
        self
    }

    /// Replay every rank (`ReplayMode::All`: no folding, no budget) instead of folding
    /// identical replicas and refusing replays above the budget (the default).
    pub fn with_replay(mut self, mode: ReplayMode) -> Self {
        self.replay = mode;
        self
    }

    /// Draw a progress bar for the long-horizon run (only ever on a terminal's stderr).
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The scenario as it will run: resolved, with the builder's settings applied.
    pub fn scenario(&self) -> Result<Scenario> {
        self.resolved().map(|(s, _)| s)
    }

    /// The scenario as it will run and the provenance of this run.
    fn resolved(&self) -> Result<(Scenario, Provenance)> {
        let (mut s, mut p) = self.input.clone().resolve_with_provenance("run")?;
        if let Some(seed) = self.seed {
            s.faults.seed = seed;
        }
        if let Some(mode) = self.network {
            s.network.mode = mode;
        }
        if let Some(t) = &self.timeline {
            s.outputs.timeline = t.clone();
        }
        p.add_scenario(&s.network.label(), s.faults.seed);
        if let Some(n) = self.replicas {
            p.set("replicas", n);
        }
        Ok((s, p))
    }

    /// Simulates the step, then the long run when the scenario has `run:`.
    pub fn run(&self) -> Result<RunOutputs> {
        let (scenario, provenance) = self.resolved()?;
        scenario.check_own_plan()?;
        let grid = RankGrid::new(&scenario.parallelism);
        check_timeline_ranks(&scenario.outputs.timeline, grid.world())?;
        match self.replicas {
            Some(0) => return Err(Error::invalid("--replicas: must be at least 1")),
            Some(_) if scenario.run.is_none() => {
                return Err(Error::invalid(
                    "--replicas: the scenario has no `run:` section, so there is no long run to repeat (add `run: { duration: 30d }` or `--set run.duration=30d`)",
                ));
            }
            _ => {}
        }
        if self.per_link_series && scenario.network.mode != NetworkMode::Contention {
            return Err(Error::invalid(
                "--links all: the analytic network has no per-link flows, so there is no link use over time to record; run with --network contention (or network.mode: contention)",
            ));
        }
        if self.strict_memory {
            sim::check_memory(&scenario)?;
        }
        let opts = ReportOptions::from_outputs(&scenario.outputs, &grid);
        self.check_timeline_size(&scenario, &grid)?;
        if let Some(spec) = scenario.jobs.clone() {
            return self.run_jobs(scenario, &spec, provenance, &opts, &grid);
        }
        let (speeds, link_faults) = faults::step_faults(&scenario.faults, grid.world())?;
        let step_opts = StepOptions {
            trace: opts.required_trace(&grid),
            speeds,
            replay: self.replay,
        };
        let (step, net) =
            sim::simulate_step_recorded(&scenario, &step_opts, &link_faults, self.per_link_series)?;
        if step.metrics.step_time_s <= 0.0 {
            return Err(Error::internal("step time is zero"));
        }
        let links = net
            .flows()
            .map(|n| LinkReport::new(n, step.replay.step_time, &scenario.name));
        // The flow network can be large; the long run below does not need it.
        drop(net);
        let run = match scenario.run {
            Some(_) => Some(self.long_run(&scenario)?),
            None => None,
        };
        Ok(RunOutputs {
            scenario,
            step,
            run,
            links,
            jobs: None,
            timeline_gzip: self.timeline_gzip,
            progress: self.progress,
            provenance,
        })
    }

    /// Several jobs on one cluster (`jobs:`): each alone and all together on the shared
    /// fabric. The step, timeline and charts are the first job's in the shared run.
    fn run_jobs(
        &self,
        scenario: Scenario,
        spec: &crate::config::jobs::JobsSpec,
        provenance: Provenance,
        opts: &ReportOptions,
        grid: &RankGrid,
    ) -> Result<RunOutputs> {
        if scenario.network.mode != NetworkMode::Contention {
            return Err(Error::invalid(
                "--network analytic: jobs share the fabric only in the contention model (analytic mode times each collective alone, so jobs could not slow each other); allowed with jobs: contention",
            ));
        }
        if self.replicas.is_some() {
            return Err(Error::invalid(
                "--replicas: the long run is modelled for one job; allowed with jobs: none",
            ));
        }
        let step_opts = StepOptions {
            trace: opts.required_trace(grid),
            replay: self.replay,
            ..Default::default()
        };
        let result = sim::jobs::simulate_jobs(&scenario, spec, &step_opts, self.per_link_series)?;
        let report = report::jobs::JobsReport::new(spec, &result);
        let links = Some(LinkReport::new(
            &result.network,
            result.span,
            &scenario.name,
        ));
        let first = result
            .jobs
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal("a jobs scenario without jobs"))?;
        let step = StepResult {
            metrics: first.shared,
            graph: first.graph,
            grid: first.grid,
            replay: first.replay,
        };
        if step.metrics.step_time_s <= 0.0 {
            return Err(Error::internal("step time is zero"));
        }
        Ok(RunOutputs {
            scenario,
            step,
            run: None,
            links,
            jobs: Some(report),
            timeline_gzip: self.timeline_gzip,
            progress: self.progress,
            provenance,
        })
    }

    /// Refuses a timeline of all ranks (or a long list) whose estimated size is above the
    /// limit, with the estimate and how to narrow it; checked before the step runs.
    fn check_timeline_size(&self, s: &Scenario, grid: &RankGrid) -> Result<()> {
        let spec = &s.outputs.timeline;
        if !matches!(spec, TimelineRanks::All | TimelineRanks::List(_)) {
            return Ok(());
        }
        let ranks = report::trace_ranks(spec, grid);
        let gpn = s.cluster.node.gpus.clamp(1, u32::MAX as u64) as u32;
        let graph = sim::build_graph(s);
        let json = report::trace::estimate_timeline_bytes(&graph, grid, gpn, &ranks);
        let written = if self.timeline_gzip {
            json / TIMELINE_GZIP_RATIO
        } else {
            json
        };
        if written <= self.max_timeline_bytes {
            return Ok(());
        }
        let n = match spec {
            TimelineRanks::List(v) => v.len() as u64,
            _ => u64::from(grid.world()),
        };
        let reps = report::representative_ranks(grid);
        let rep_bytes = report::trace::estimate_timeline_bytes(
            &graph,
            grid,
            gpn,
            &crate::engine::TraceRanks::Some(reps.clone()),
        );
        let human = report::trace::human_bytes;
        Err(Error::invalid(format!(
            "timeline: {} ranks would write about {}{} (about {} per rank), above the {} limit (--max-timeline-gb {}). \
             Narrow the ranks: --timeline representative (the first rank of each of the {} pipeline stages, about {}), \
             or a list such as --timeline {}; {}or raise --max-timeline-gb",
            n,
            human(written),
            if self.timeline_gzip { " gzipped" } else { "" },
            human(json / n.max(1)),
            human(self.max_timeline_bytes),
            self.max_timeline_bytes as f64 / 1e9,
            reps.len(),
            human(rep_bytes),
            reps.iter()
                .take(4)
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(","),
            if self.timeline_gzip {
                ""
            } else {
                "write it gzipped (--gzip-timeline, timeline.json.gz, which Perfetto opens); "
            }
        )))
    }

    /// The scenario's `run:` section: failures, checkpoints and restarts over its length.
    fn long_run(&self, scenario: &Scenario) -> Result<RunReport> {
        let steps = run::step_times(scenario, self.replay);
        let run_opts = run::RunOptions {
            progress: self.progress,
            replicas: self.replicas,
            ..Default::default()
        };
        run::simulate_run(scenario, &steps, &run_opts).map_err(|e| Error::run(scenario, e))
    }
}

/// Rejects timeline ranks outside the plan's world.
fn check_timeline_ranks(spec: &TimelineRanks, world: u32) -> Result<()> {
    if let TimelineRanks::List(ranks) = spec
        && let Some(bad) = ranks.iter().find(|&&r| r >= world)
    {
        return Err(Error::invalid(format!(
            "outputs.timeline: rank {bad} does not exist; the plan has ranks 0..{}",
            world.saturating_sub(1)
        )));
    }
    Ok(())
}

/// Everything a [`Simulation`] produced: the step, its link statistics (contention
/// mode), the long run, and the scenario as simulated.
#[derive(Debug, Clone)]
pub struct RunOutputs {
    /// The scenario as simulated (seed, network and timeline settings applied).
    pub scenario: Scenario,
    /// Metrics, op graph, rank grid and replay of the step.
    pub step: StepResult,
    /// The long-horizon run, when the scenario has `run:`.
    pub run: Option<RunReport>,
    /// Per-link statistics of a contention-mode step (`links.csv`, the heat map).
    pub links: Option<LinkReport>,
    /// Several jobs on one cluster (`jobs:`): each job alone and shared, the links where
    /// they interfere (`summary.json`'s `jobs`).
    pub jobs: Option<report::jobs::JobsReport>,
    /// Write the timeline gzipped (`timeline.json.gz`).
    pub timeline_gzip: bool,
    /// Show progress while writing a large timeline (terminal only).
    pub progress: bool,
    /// What produced this run (`summary.json`'s `provenance`).
    pub provenance: Provenance,
}

/// How much smaller the gzipped timeline is assumed to be when checking the size limit:
/// a conservative 8 (the default scenario's `--timeline all` compresses 16-fold).
pub const TIMELINE_GZIP_RATIO: u64 = 8;

impl RunOutputs {
    /// Headline metrics of the step.
    pub fn metrics(&self) -> &StepMetrics {
        &self.step.metrics
    }

    /// Memory of the most loaded rank.
    pub fn memory(&self) -> &MemoryReport {
        &self.step.metrics.memory
    }

    /// What `summary.json` holds.
    pub fn summary(&self) -> Summary {
        self.report_options().summary(&self.scenario, &self.step)
    }

    /// Writes `summary.json`, the timeline, charts, `links.csv` and `run.csv` (as the
    /// scenario's `outputs:` asks) into `dir`, whole or not at all; returns the files.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let opts = self.report_options();
        Ok(report::write_step_outputs(
            dir.as_ref(),
            &self.scenario,
            &self.step,
            &opts,
        )?)
    }

    fn report_options(&self) -> ReportOptions {
        let mut opts = ReportOptions::from_outputs(&self.scenario.outputs, &self.step.grid);
        opts.links = self.links.clone();
        opts.jobs = self
            .jobs
            .as_ref()
            .and_then(|j| serde_json::to_value(j).ok());
        opts.timeline_gzip = self.timeline_gzip;
        opts.progress = self.progress;
        opts.provenance = Some(self.provenance.to_value());
        opts.memory_gb = serde_json::to_value(&self.step.metrics.memory).ok();
        if let Some(rep) = &self.run {
            opts.run = serde_json::to_value(rep).ok();
            let (events, samples) = (rep.events.clone(), rep.samples.clone());
            let name = self.scenario.name.clone();
            opts.extra = Some(ExtraFiles(Arc::new(move |dir: &Path| {
                let mut names = vec![run::report::write_csv(dir, &events)?];
                let chart = report::charts::run::progress_chart(dir, &samples, &events, &name);
                names.extend(chart.map_err(|e| e.to_string())?);
                Ok(names)
            })));
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_ranks_must_exist() {
        assert!(check_timeline_ranks(&TimelineRanks::List(vec![0, 3]), 4).is_ok());
        let e = check_timeline_ranks(&TimelineRanks::List(vec![4]), 4).unwrap_err();
        assert!(e.to_string().contains("rank 4") && e.is_bad_input(), "{e}");
    }
}
