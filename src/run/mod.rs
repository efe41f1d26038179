//! Long-horizon run simulation: steps, failures, checkpoints, restarts → goodput.
//!
//! Owns the `checkpoint:` and `run:` YAML types ([`spec`]), checkpoint costs and the
//! Young/Daly intervals ([`checkpoint`]), the run event loop ([`sim`]), its outputs
//! ([`report`]; the charts are drawn by `report::charts::run`) and the checkpoint-interval
//! sweep ([`sweep`]). Step times come from a [`StepTimeSource`] (the step simulator behind
//! a cache keyed by cluster state), so a run with thousands of failures simulates each
//! distinct state once. Randomness comes only from the fault model's seeded streams; the
//! same inputs give the same bytes. It must not draw charts (that is `report`'s job).
//!
//! The lead's `clustersim run` calls, when `scenario.run` is set:
//! ```no_run
//! # use clustersim::{run, fixtures};
//! let s = fixtures::toy_scenario(8, 4, 4, 32, 64);
//! let steps = run::analytic_step_times(&s);
//! let report = run::simulate_run(&s, &steps, &run::RunOptions::default()).unwrap();
//! println!("{}", run::report::table(&report.summary, report.stats.as_ref()));
//! ```

pub mod checkpoint;
pub mod report;
mod sim;
pub mod sweep;

/// The `checkpoint:` and `run:` sections are scenario types; they live in `config`.
pub use crate::config::run_spec::{CheckpointMode, CheckpointSpec, RunSpec};
pub use checkpoint::{CheckpointCost, daly_interval, young_interval};
pub use report::{Estimate, ProgressSample, ReplicaStats, RunEvent, RunSummary};

use std::collections::HashMap;
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::config::Scenario;
use crate::engine::TraceRanks;
use crate::faults::{FaultModel, FaultsError, FaultsSpec, StepState, duration, rng};
use crate::plan::RankGrid;
use crate::schedule::StepGraph;
use crate::units::ns_to_secs;

/// Shortest checkpoint interval accepted, seconds.
pub const MIN_INTERVAL_S: f64 = 1.0;

/// Default run length when the scenario has no `run:` section.
pub const DEFAULT_DURATION: &str = "30d";

#[derive(Debug, Clone, PartialEq, Error)]
pub enum RunError {
    #[error("{0}")]
    Faults(#[from] FaultsError),
    #[error("step simulation failed: {0}")]
    Step(String),
    /// A cluster state's step replay is above the replay budget (bad input: exit 2).
    #[error("{0}")]
    OverBudget(String),
    /// The runs a command asks for are above a run budget, refused before any run starts
    /// (bad input: exit 2); `field` is the key (or flag) that changes the request, which
    /// the API locates in the scenario file.
    #[error("{field}: {message}")]
    Work { field: String, message: String },
    #[error(
        "the run made no progress: after {wall_h:.0} h only {steps:.0} steps were kept \
         (failures arrive faster than the job can restart and checkpoint)"
    )]
    NoProgress { wall_h: f64, steps: f64 },
}

impl RunError {
    pub fn spec(field: &str, message: &str) -> Self {
        RunError::Faults(FaultsError::new(field, message))
    }
}

/// Step time of each cluster state.
pub trait StepTimeSource: Sync {
    fn step_time_s(&self, state: &StepState) -> Result<f64, RunError>;

    /// Whether knowing the states ahead of time helps ([`StepTimeSource::prefetch`] does
    /// real work): true for sources that simulate states and cache them.
    fn wants_prefetch(&self) -> bool {
        false
    }

    /// Computes the step times of `states` ahead of their use, in parallel where it can.
    /// Results must not depend on it: a state it skips or fails on is computed (and its
    /// error reported) when it is looked up.
    fn prefetch(&self, _states: &[StepState]) {}
}

/// Any step-time function behind a cache shared by every run and replica.
pub struct CachedStepTimes<F> {
    f: F,
    cache: Mutex<HashMap<StepState, f64>>,
}

impl<F: Fn(&StepState) -> Result<f64, RunError> + Sync> CachedStepTimes<F> {
    pub fn new(f: F) -> Self {
        CachedStepTimes {
            f,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Distinct states simulated so far.
    pub fn len(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<F: Fn(&StepState) -> Result<f64, RunError> + Sync> CachedStepTimes<F> {
    fn cached(&self, state: &StepState) -> Option<f64> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(state).copied()
    }

    fn insert(&self, state: &StepState, t: f64) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(state.clone(), t);
    }
}

impl<F: Fn(&StepState) -> Result<f64, RunError> + Sync> StepTimeSource for CachedStepTimes<F> {
    /// The lock is not held while a state is simulated, so replicas and prefetches in
    /// parallel do not wait on each other (two threads may simulate one state twice; both
    /// get the same value, the function being deterministic).
    fn step_time_s(&self, state: &StepState) -> Result<f64, RunError> {
        if let Some(t) = self.cached(state) {
            return Ok(t);
        }
        let t = (self.f)(state)?;
        self.insert(state, t);
        Ok(t)
    }

    fn wants_prefetch(&self) -> bool {
        true
    }

    /// Simulates the states not cached yet in parallel (rayon), each once.
    fn prefetch(&self, states: &[StepState]) {
        let mut todo: Vec<&StepState> =
            states.iter().filter(|s| self.cached(s).is_none()).collect();
        todo.sort_unstable();
        todo.dedup();
        todo.par_iter().for_each(|st| {
            if let Ok(t) = (self.f)(st) {
                self.insert(st, t);
            }
        });
    }
}

/// A stand-in source that records every state asked for and answers with a guess
/// (`healthy_s` scaled by the slowest GPU): the run loop's sequence of states does not
/// depend on step times (stragglers come and go on their own clocks), only where a run
/// ends for a step or token target does, so a pass over it lists the states to prefetch.
struct StateRecorder {
    healthy_s: f64,
    seen: Mutex<std::collections::BTreeSet<StepState>>,
}

impl StepTimeSource for StateRecorder {
    fn step_time_s(&self, state: &StepState) -> Result<f64, RunError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains(state) {
            seen.insert(state.clone());
        }
        Ok(self.healthy_s * state.max_slowdown())
    }
}

/// Lists the cluster states the runs of `setup` (every replica, at `interval_s`) visit
/// and has `src` compute their step times in parallel before the runs need them. Distinct
/// states are independent step simulations; results do not depend on this (a state missed
/// here is simulated when a run looks it up).
pub fn prefetch_states(
    setup: &RunSetup,
    src: &dyn StepTimeSource,
    interval_s: f64,
) -> Result<(), RunError> {
    if !src.wants_prefetch() {
        return Ok(());
    }
    let healthy = StepState::healthy();
    let base = StepState::new(
        setup.model.stragglers.iter().map(|s| (s.gpu, s.factor)),
        &setup.model.links,
        &setup.grid,
    );
    src.prefetch(&[healthy.clone(), base]);
    let recorder = StateRecorder {
        healthy_s: src.step_time_s(&healthy)?,
        seen: Mutex::new(Default::default()),
    };
    // A run that fails here fails again, with its own error, when it runs for real.
    (0..setup.replicas).into_par_iter().for_each(|r| {
        let _ = setup.simulate_one(&recorder, r, interval_s, false);
    });
    let states: Vec<StepState> = recorder
        .seen
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .collect();
    src.prefetch(&states);
    Ok(())
}

/// Simulates one step of `s` in `state` (stragglers through [`crate::engine::RankSpeeds`],
/// degraded links through [`crate::faults::LinkFaults`]) on the scenario's network
/// ([`crate::sim::build_network`]: analytic unless `network.mode` is contention).
pub fn simulate_state(s: &Scenario, grid: &RankGrid, state: &StepState) -> Result<f64, RunError> {
    let mode = crate::engine::ReplayMode::Folded;
    simulate_state_on(s, &crate::sim::build_graph(s), grid, state, mode)
}

/// [`simulate_state`] with the step's op graph built once (it is the same in every state:
/// faults act inside the replay). `ReplayMode::Folded`: replicas fold where the network
/// allows it and a replay above the budget is refused; `All`: every rank, no budget.
pub fn simulate_state_on(
    s: &Scenario,
    graph: &StepGraph,
    grid: &RankGrid,
    state: &StepState,
    mode: crate::engine::ReplayMode,
) -> Result<f64, RunError> {
    use crate::engine::{self, EngineError, ReplayBudget, ReplayMode};
    let step_err = |e: EngineError| match e {
        EngineError::OverBudget(m) => RunError::OverBudget(m),
        other => RunError::Step(other.to_string()),
    };
    let mut net = crate::sim::build_network(s, &state.link_faults(grid));
    let speeds = state.rank_speeds(grid);
    let plan = engine::plan(graph, grid, &mut net, &speeds, &TraceRanks::None, mode);
    if mode == ReplayMode::Folded {
        plan.estimate
            .check(&ReplayBudget::from_env().map_err(step_err)?)
            .map_err(step_err)?;
    }
    let replay = engine::replay_planned(plan, graph, grid, &mut net, &speeds, &TraceRanks::None)
        .map_err(step_err)?;
    Ok(ns_to_secs(replay.step_time).max(1e-12))
}

/// The step simulator (the scenario's network, analytic by default) behind a cache: the
/// usual [`StepTimeSource`].
pub fn analytic_step_times(
    s: &Scenario,
) -> CachedStepTimes<impl Fn(&StepState) -> Result<f64, RunError> + Sync + '_> {
    step_times(s, crate::engine::ReplayMode::Folded)
}

/// [`analytic_step_times`] with the replay mode of every state's step (`--replay`).
pub fn step_times(
    s: &Scenario,
    mode: crate::engine::ReplayMode,
) -> CachedStepTimes<impl Fn(&StepState) -> Result<f64, RunError> + Sync + '_> {
    let grid = RankGrid::new(&s.parallelism);
    let graph = crate::sim::build_graph(s);
    CachedStepTimes::new(move |st: &StepState| simulate_state_on(s, &graph, &grid, st, mode))
}

/// A fixed healthy step time scaled by the slowest GPU: a stand-in for tests and estimates.
#[derive(Debug, Clone, Copy)]
pub struct ScaledStepTime(pub f64);

impl StepTimeSource for ScaledStepTime {
    fn step_time_s(&self, state: &StepState) -> Result<f64, RunError> {
        Ok(self.0 * state.max_slowdown())
    }
}

/// What ends a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Wall-clock seconds.
    Wall(f64),
    /// Optimizer steps.
    Steps(f64),
}

/// Options that do not come from the scenario file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides `faults.seed`.
    pub seed: Option<u64>,
    /// Overrides `run.replicas`.
    pub replicas: Option<u64>,
    /// Overrides `checkpoint.every`, seconds.
    pub interval_s: Option<f64>,
    /// Draw a progress bar (only ever on a terminal).
    pub progress: bool,
}

/// A scenario resolved for run simulation; reusable across replicas and intervals.
#[derive(Debug, Clone)]
pub struct RunSetup {
    pub model: FaultModel,
    pub faults: FaultsSpec,
    pub cost: CheckpointCost,
    pub interval_s: f64,
    pub target: Target,
    pub tokens_target: Option<f64>,
    pub tokens_per_step: f64,
    pub replicas: u64,
    pub grid: RankGrid,
    /// Events one run may handle before it is stopped as over the run-event budget
    /// ([`RunSetup::check_work`] sets it to the budget's share of one run).
    pub max_events_per_run: u64,
    /// Events the recorded run (replica 0 of `run`) may keep.
    pub max_recorded_events: u64,
    /// The key that sets the run's length (`run.duration`, `run.steps` or `run.tokens`),
    /// which work-budget refusals point at.
    pub target_field: &'static str,
    /// The key or flag that sets the replicas (`run.replicas` or `--replicas`).
    pub replicas_field: &'static str,
}

/// Samples of the progress chart one recorded run takes (`sim`: one per 1/1000 of the
/// expected wall time, plus the ends).
const SAMPLES_PER_RUN: f64 = 1_002.0;

/// Fewest events a run may handle whatever the budget's share (a run has a start, an end,
/// its samples and a few failures and checkpoints).
const MIN_EVENTS_PER_RUN: u64 = 100_000;

impl RunSetup {
    pub fn new(s: &Scenario, opts: &RunOptions) -> Result<Self, RunError> {
        let mut faults = s.faults.clone();
        if let Some(seed) = opts.seed {
            faults.seed = seed;
        }
        let gpus = s.parallelism.world_size();
        let model = FaultModel::resolve(&faults, &s.cluster, gpus)?;
        let ck = s.checkpoint.clone().unwrap_or_default();
        let cost = CheckpointCost::resolve(s, &ck)?;
        let interval_s = match opts.interval_s {
            Some(i) => i,
            None => interval(&ck, &cost, &model)?,
        };
        if interval_s.is_nan() || interval_s < MIN_INTERVAL_S {
            return Err(RunError::spec("checkpoint.every", "must be at least 1s"));
        }
        let tokens_per_step = (s.training.global_batch * s.training.seq_len) as f64;
        let run = s.run.clone().unwrap_or_default();
        if opts.replicas == Some(0) {
            return Err(RunError::spec("--replicas", "must be at least 1"));
        }
        if run.replicas == Some(0) {
            return Err(RunError::spec("run.replicas", "must be at least 1"));
        }
        use crate::config::budget::{MAX_REPLICAS, MAX_RUN_STEPS, MAX_TOKENS};
        for (field, n) in [
            ("--replicas", opts.replicas),
            ("run.replicas", run.replicas),
        ] {
            if n.is_some_and(|n| n > MAX_REPLICAS) {
                return Err(RunError::spec(
                    field,
                    &format!("must be at most {MAX_REPLICAS}"),
                ));
            }
        }
        if run.steps.is_some_and(|n| n == 0 || n > MAX_RUN_STEPS) {
            return Err(RunError::spec(
                "run.steps",
                &format!("must be between 1 and {MAX_RUN_STEPS}"),
            ));
        }
        if run.tokens.is_some_and(|t| t > MAX_TOKENS) {
            return Err(RunError::spec(
                "run.tokens",
                &format!("must be at most {MAX_TOKENS:.0e}"),
            ));
        }
        let (target, tokens_target) = target(&run, tokens_per_step)?;
        let target_field = if run.steps.is_some() {
            "run.steps"
        } else if run.tokens.is_some() {
            "run.tokens"
        } else {
            "run.duration"
        };
        Ok(RunSetup {
            model,
            faults,
            cost,
            interval_s,
            target,
            tokens_target,
            tokens_per_step,
            replicas: opts.replicas.or(run.replicas).unwrap_or(1),
            grid: RankGrid::new(&s.parallelism),
            max_events_per_run: crate::config::budget::RUN_EVENTS.default,
            max_recorded_events: crate::config::budget::RECORDED_RUN_EVENTS.default,
            target_field,
            replicas_field: if opts.replicas.is_some() {
                "--replicas"
            } else {
                "run.replicas"
            },
        })
    }

    /// Wall-clock seconds a run is expected to last: its `run.duration`, or its steps at
    /// the healthy step time.
    pub fn expected_wall_s(&self, healthy_step_s: f64) -> f64 {
        match self.target {
            Target::Wall(end) => end,
            Target::Steps(n) => n * healthy_step_s,
        }
    }

    /// Run-level events one run at `interval_s` is expected to handle, by kind: failures
    /// (the job's failure rate, lemons included, over the expected wall time), checkpoints
    /// (a snapshot and a flush each), slowdown episodes (a start and an end each) and
    /// progress samples.
    pub fn expected_events(&self, healthy_step_s: f64, interval_s: f64) -> EventEstimate {
        let wall = self.expected_wall_s(healthy_step_s);
        let m = &self.model;
        let lemon = 1.0 + m.lemons.fraction * (m.lemons.rate_multiplier - 1.0).max(0.0);
        let failures = wall * m.job_failure_rate_per_s() * lemon;
        let checkpoints = if interval_s.is_finite() {
            2.0 * wall / interval_s
        } else {
            0.0
        };
        let episodes = m
            .transients
            .iter()
            .map(|t| 2.0 * wall * m.gpus as f64 / (t.mean_gap_s + t.duration_s))
            .sum();
        EventEstimate {
            wall_s: wall,
            failures,
            checkpoints,
            episodes,
            samples: SAMPLES_PER_RUN,
        }
    }

    /// Checks, before any run is simulated, that the runs of a command (`replicas` at each
    /// of `intervals`) fit the run budgets ([`crate::config::budget::RUNS`],
    /// [`crate::config::budget::RUN_EVENTS`]) and that a `run.duration` holds at least one
    /// step; sets each run's share of the event budget (a run past it stops with exit 2).
    /// `healthy_step_s` is the step time of the healthy cluster (one step simulation).
    pub fn check_work(
        &mut self,
        healthy_step_s: f64,
        intervals: &[f64],
        replicas: u64,
        recorded: bool,
    ) -> Result<(), RunError> {
        use crate::config::budget::{RECORDED_RUN_EVENTS, RUN_EVENTS, RUNS};
        use crate::units::{format_duration as format_duration_s, short_num};
        let short_number = |x: f64| {
            if x < 1e12 {
                short_num(x.round())
            } else {
                format!("{x:.2e}")
            }
        };
        if let Target::Wall(end) = self.target
            && end < healthy_step_s
        {
            return Err(RunError::spec(
                self.target_field,
                &format!(
                    "{} is shorter than one step ({}); give a longer duration",
                    format_duration_s(end),
                    format_duration_s(healthy_step_s)
                ),
            ));
        }
        let runs = (intervals.len().max(1) as u64).saturating_mul(replicas.max(1));
        RUNS.check(
            runs,
            &format!(
                "fewer replicas (now {replicas}: run.replicas or --replicas) or fewer \
                 checkpoint intervals (now {}: --intervals LO:HI:POINTS)",
                intervals.len().max(1)
            ),
        )
        .map_err(|message| RunError::Work {
            field: self.replicas_field.into(),
            message,
        })?;
        let per_run: Vec<EventEstimate> = intervals
            .iter()
            .map(|&i| self.expected_events(healthy_step_s, i))
            .collect();
        let total: f64 = per_run.iter().map(|e| e.total()).sum::<f64>() * replicas as f64;
        let estimate = if total.is_nan() {
            u64::MAX
        } else {
            total as u64
        };
        let worst = per_run
            .iter()
            .max_by(|a, b| a.total().total_cmp(&b.total()))
            .copied()
            .unwrap_or_default();
        let every = |n: f64| {
            if n >= 1.0 {
                format!("one every {}", format_duration_s(worst.wall_s / n))
            } else {
                "none expected".into()
            }
        };
        RUN_EVENTS
            .check(
                estimate,
                &format!(
                    "per run of {} wall time: {} failures ({}), {} checkpoint events, {} \
                     straggler-episode events; shorten the run (run.duration, run.steps or \
                     run.tokens), make failures rarer (faults.failures.*.mtbf or \
                     per_1000_node_days), checkpoint less often (checkpoint.every), make \
                     slowdown episodes rarer (faults.stragglers[*].rate_per_gpu_day) or run \
                     fewer replicas (now {replicas})",
                    format_duration_s(worst.wall_s),
                    short_number(worst.failures),
                    every(worst.failures),
                    short_number(worst.checkpoints),
                    short_number(worst.episodes),
                ),
            )
            .map_err(|message| {
                // Within the limit for one run: the replicas (or the grid) are the excess.
                let one_run_fits = RUN_EVENTS.value().is_ok_and(|l| worst.total() <= l as f64);
                let field = if one_run_fits && replicas > 1 {
                    self.replicas_field
                } else {
                    self.dominant_field(&worst)
                };
                RunError::Work {
                    field: field.into(),
                    message,
                }
            })?;
        let limit = RUN_EVENTS.value().map_err(RunError::OverBudget)?;
        self.max_events_per_run = (limit / runs).max(MIN_EVENTS_PER_RUN);
        if recorded {
            RECORDED_RUN_EVENTS
                .check(
                    worst.total() as u64,
                    &format!(
                        "{} failures ({}) and {} checkpoint events are kept for run.csv; \
                         shorten the run (run.*), make failures rarer (faults.failures.*) \
                         or checkpoint less often (checkpoint.every)",
                        short_number(worst.failures),
                        every(worst.failures),
                        short_number(worst.checkpoints),
                    ),
                )
                .map_err(|message| RunError::Work {
                    field: self.dominant_field(&worst).into(),
                    message,
                })?;
            self.max_recorded_events = RECORDED_RUN_EVENTS.value().map_err(RunError::OverBudget)?;
        }
        Ok(())
    }

    /// The key a run-event budget refusal points at: the one behind the largest kind of
    /// event (failure rates, the checkpoint interval, slowdown episodes), or the run's
    /// length when its progress samples are the most.
    fn dominant_field(&self, e: &EventEstimate) -> &'static str {
        let kinds = [
            (e.failures, "faults.failures"),
            (e.checkpoints, "checkpoint.every"),
            (e.episodes, "faults.stragglers"),
            (e.samples, self.target_field),
        ];
        kinds
            .iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(self.target_field, |k| k.1)
    }

    /// Mean time between interruptions of the job (analytic, from the failure rates).
    pub fn mtbi_s(&self) -> f64 {
        self.model.job_mtbf_s()
    }

    /// The fault model of replica `r` (replica 0 uses the scenario's seed).
    pub fn replica_model(&self, r: u64) -> Result<FaultModel, RunError> {
        let seed = rng::replica_seed(self.model.seed, r);
        Ok(self.model.with_seed(&self.faults, seed)?)
    }

    /// One run: replica `r`, checkpoint interval `interval_s` (seconds of training time).
    pub fn simulate_one(
        &self,
        src: &dyn StepTimeSource,
        r: u64,
        interval_s: f64,
        record: bool,
    ) -> Result<RunReport, RunError> {
        let model = self.replica_model(r)?;
        let (summary, events, samples) =
            sim::RunSim::new(self, model, src, interval_s, record)?.run()?;
        Ok(RunReport {
            summary,
            events,
            samples,
            stats: None,
        })
    }
}

fn interval(ck: &CheckpointSpec, cost: &CheckpointCost, m: &FaultModel) -> Result<f64, RunError> {
    let (d, mtbi) = (cost.stall_s(), m.job_mtbf_s());
    // An async checkpoint cannot usefully start before the previous one has flushed.
    let floor = cost.flush_s().max(MIN_INTERVAL_S);
    Ok(match ck.every.as_deref().unwrap_or("daly") {
        "daly" => daly_interval(d, mtbi).max(floor),
        "young" => young_interval(d, mtbi).max(floor),
        "never" => f64::INFINITY,
        other => duration("checkpoint.every", other)?,
    })
}

fn target(run: &RunSpec, tokens_per_step: f64) -> Result<(Target, Option<f64>), RunError> {
    let given = [
        run.duration.is_some(),
        run.steps.is_some(),
        run.tokens.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err(RunError::spec(
            "run",
            "give one of `duration`, `steps`, `tokens`",
        ));
    }
    if let Some(steps) = run.steps {
        return Ok((Target::Steps(steps as f64), None));
    }
    if let Some(tokens) = run.tokens {
        if !(tokens.is_finite() && tokens > 0.0) {
            return Err(RunError::spec("run.tokens", "must be a positive number"));
        }
        return Ok((
            Target::Steps((tokens / tokens_per_step).ceil()),
            Some(tokens),
        ));
    }
    let d = run.duration.as_deref().unwrap_or(DEFAULT_DURATION);
    Ok((Target::Wall(duration("run.duration", d)?), None))
}

/// Expected run-level events of one run, by kind ([`RunSetup::expected_events`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EventEstimate {
    /// Expected wall-clock length of the run, seconds.
    pub wall_s: f64,
    pub failures: f64,
    pub checkpoints: f64,
    pub episodes: f64,
    pub samples: f64,
}

impl EventEstimate {
    pub fn total(&self) -> f64 {
        self.failures + self.checkpoints + self.episodes + self.samples
    }
}

/// Everything a run produced (events and samples of the first replica).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub summary: RunSummary,
    #[serde(skip)]
    pub events: Vec<RunEvent>,
    #[serde(skip)]
    pub samples: Vec<ProgressSample>,
    /// Mean and 95 % CI over replicas, when more than one ran.
    pub stats: Option<ReplicaStats>,
}

/// A labelled progress bar on stderr, hidden unless stderr is a terminal
/// ([`crate::progress::bar`]).
pub fn progress_bar(len: u64, label: &str, show: bool) -> indicatif::ProgressBar {
    crate::progress::bar(len, label, show)
}

/// Simulates the scenario's run (`run:`, `checkpoint:`, `faults:`), with its replicas in
/// parallel; results do not depend on the thread count.
pub fn simulate_run(
    s: &Scenario,
    src: &dyn StepTimeSource,
    opts: &RunOptions,
) -> Result<RunReport, RunError> {
    let setup = RunSetup::new(s, opts)?;
    simulate_setup(&setup, src, opts.progress)
}

/// [`simulate_run`] on an already resolved setup.
pub fn simulate_setup(
    setup: &RunSetup,
    src: &dyn StepTimeSource,
    progress: bool,
) -> Result<RunReport, RunError> {
    let healthy_s = src.step_time_s(&StepState::healthy())?;
    let mut setup = setup.clone();
    setup.check_work(healthy_s, &[setup.interval_s], setup.replicas, true)?;
    let setup = &setup;
    prefetch_states(setup, src, setup.interval_s)?;
    let bar = progress_bar(setup.replicas, "long run replicas", progress);
    let mut first = setup.simulate_one(src, 0, setup.interval_s, true)?;
    bar.inc(1);
    if setup.replicas > 1 {
        let rest: Vec<Result<RunSummary, RunError>> = (1..setup.replicas)
            .into_par_iter()
            .map(|r| {
                let out = setup.simulate_one(src, r, setup.interval_s, false);
                bar.inc(1);
                out.map(|r| r.summary)
            })
            .collect();
        let mut all = vec![first.summary.clone()];
        for r in rest {
            all.push(r?);
        }
        first.stats = Some(ReplicaStats::of(&all));
    }
    bar.finish_and_clear();
    first.summary.check_invariants().map_err(|m| {
        RunError::Step(format!(
            "run result invariant violated, nothing written: {m}"
        ))
    })?;
    Ok(first)
}
