//! The run-level event loop: a job on the wall clock, interrupted by failures, stalled by
//! checkpoints, slowed by stragglers.
//!
//! Work is fluid: progress advances at `1 / step_time` steps per second of running time, in
//! whatever cluster state is current; step boundaries are not modelled (an error of at most one
//! step per event). Phases: running, checkpointing (stalled), down (detection, waiting for a
//! spare, restart, checkpoint load). A failure rolls progress back to the last durable
//! checkpoint; a failure while down restarts the recovery. Failure times come from the fault
//! model's own streams and never depend on what the job does.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use super::report::{EventKind, ProgressSample, RunEvent, RunSummary};
use super::{RunError, RunSetup, StepTimeSource};
use crate::faults::{
    ComponentClass, Episode, EpisodeProcess, Failure, FailureProcess, FaultModel, StepState,
};

/// Progress at a point in time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Snapshot {
    steps: f64,
    productive_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Running,
    Checkpoint { until: f64, snap: Snapshot },
    Down { until: f64, since: f64 },
}

/// What happens next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Next {
    End,
    PhaseEnd,
    CheckpointDue,
    Flushed,
    EpisodeEnd,
    EpisodeStart(usize),
    Failure,
}

/// Time accounting, seconds.
#[derive(Debug, Clone, Default)]
struct Totals {
    rework_s: f64,
    checkpoint_s: f64,
    down_s: f64,
    straggler_s: f64,
    checkpoints: u64,
    by_cause: BTreeMap<String, u64>,
}

/// Hot spares and nodes in repair.
#[derive(Debug, Clone)]
struct Spares {
    free: Option<u64>,
    returns: BinaryHeap<Reverse<u64>>,
    repair_s: f64,
}

impl Spares {
    /// Seconds the job waits for `k` replacement nodes at `t`.
    fn wait(&mut self, t: f64, k: u64) -> f64 {
        let Some(free) = self.free.as_mut() else {
            return 0.0;
        };
        while self
            .returns
            .peek()
            .is_some_and(|Reverse(r)| f64::from_bits(*r) <= t)
        {
            self.returns.pop();
            *free += 1;
        }
        for _ in 0..k {
            self.returns.push(Reverse((t + self.repair_s).to_bits()));
        }
        if *free >= k {
            *free -= k;
            return 0.0;
        }
        let need = k - *free;
        *free = 0;
        let mut last = t;
        for _ in 0..need {
            if let Some(Reverse(r)) = self.returns.pop() {
                last = f64::from_bits(r);
            }
        }
        last - t
    }
}

/// One simulated run.
pub(super) struct RunSim<'a> {
    setup: &'a RunSetup,
    model: FaultModel,
    src: &'a dyn StepTimeSource,
    interval_s: f64,
    record: bool,
    t: f64,
    now: Snapshot,
    durable: Snapshot,
    pending: Option<(Snapshot, f64)>,
    since_ckpt_s: f64,
    phase: Phase,
    step_s: f64,
    healthy_step_s: f64,
    base_state: StepState,
    cache: HashMap<StepState, f64>,
    failures: FailureProcess,
    episodes: Vec<EpisodeProcess>,
    active: Vec<Episode>,
    spares: Spares,
    totals: Totals,
    interruptions: u64,
    events: Vec<RunEvent>,
    samples: Vec<ProgressSample>,
    sample_every_s: f64,
}

impl<'a> RunSim<'a> {
    pub(super) fn new(
        setup: &'a RunSetup,
        model: FaultModel,
        src: &'a dyn StepTimeSource,
        interval_s: f64,
        record: bool,
    ) -> Result<Self, RunError> {
        let failures = FailureProcess::new(&model);
        let episodes = model
            .transients
            .iter()
            .enumerate()
            .map(|(i, t)| EpisodeProcess::new(model.seed, i as u64, t, model.gpus as u32))
            .collect();
        let base_state = StepState::new(
            model.stragglers.iter().map(|s| (s.gpu, s.factor)),
            &model.links,
            &setup.grid,
        );
        let mut cache = HashMap::new();
        let healthy_step_s = lookup(&mut cache, src, &StepState::healthy())?;
        let step_s = lookup(&mut cache, src, &base_state)?;
        let spares = Spares {
            free: model.spares,
            returns: BinaryHeap::new(),
            repair_s: model.repair_s,
        };
        Ok(RunSim {
            setup,
            model,
            src,
            interval_s,
            record,
            t: 0.0,
            now: Snapshot::default(),
            durable: Snapshot::default(),
            pending: None,
            since_ckpt_s: 0.0,
            phase: Phase::Running,
            step_s,
            healthy_step_s,
            base_state,
            cache,
            failures,
            episodes,
            active: Vec::new(),
            spares,
            totals: Totals::default(),
            interruptions: 0,
            events: Vec::new(),
            samples: Vec::new(),
            sample_every_s: 0.0,
        })
    }

    /// Runs to the target and returns the summary, events and progress samples.
    pub(super) fn run(
        mut self,
    ) -> Result<(RunSummary, Vec<RunEvent>, Vec<ProgressSample>), RunError> {
        let (expected, max_wall) = match self.setup.target {
            super::Target::Wall(end) => (end, f64::INFINITY),
            super::Target::Steps(n) => {
                let e = n * self.healthy_step_s;
                (e, (e * 1000.0).max(10.0 * 365.0 * 86_400.0))
            }
        };
        self.sample_every_s = expected / 1000.0;
        self.emit(EventKind::Start, String::new(), 0.0);
        let mut handled = 0u64;
        let cap = if self.record {
            self.setup
                .max_events_per_run
                .min(self.setup.max_recorded_events)
        } else {
            self.setup.max_events_per_run
        };
        loop {
            handled += 1;
            if handled > cap {
                return Err(RunError::OverBudget(format!(
                    "a run handled {handled} run-level events (failures, checkpoints, \
                     slowdowns) by {:.0} h of wall time, its share of the limit \
                     (CLUSTERSIM_MAX_RUN_EVENTS over all runs); failures arrive faster \
                     than the job makes progress or the run is too long: make failures \
                     rarer (faults.failures.*), shorten the run (run.*) or raise the limit",
                    self.t / 3600.0
                )));
            }
            let (t_next, next) = self.next_event();
            if t_next > max_wall {
                return Err(RunError::NoProgress {
                    wall_h: self.t / 3600.0,
                    steps: self.now.steps,
                });
            }
            self.advance(t_next);
            if next == Next::End {
                break;
            }
            self.handle(next)?;
        }
        self.emit(EventKind::End, String::new(), 0.0);
        self.sample();
        let summary = self.summary();
        Ok((summary, self.events, self.samples))
    }

    fn next_event(&self) -> (f64, Next) {
        let mut best = (f64::INFINITY, Next::End);
        let mut consider = |t: Option<f64>, n: Next| {
            if let Some(t) = t
                && t < best.0
            {
                best = (t, n);
            }
        };
        consider(self.end_time(), Next::End);
        match self.phase {
            Phase::Running => consider(
                Some(self.t + self.interval_s - self.since_ckpt_s),
                Next::CheckpointDue,
            ),
            Phase::Checkpoint { until, .. } | Phase::Down { until, .. } => {
                consider(Some(until), Next::PhaseEnd)
            }
        }
        consider(self.pending.map(|p| p.1), Next::Flushed);
        consider(
            self.active.iter().map(|e| e.end_s).reduce(f64::min),
            Next::EpisodeEnd,
        );
        for (i, e) in self.episodes.iter().enumerate() {
            consider(e.peek_time(), Next::EpisodeStart(i));
        }
        consider(self.failures.peek_time(), Next::Failure);
        if best.0 == f64::INFINITY {
            best.1 = Next::End;
        }
        best
    }

    /// When the run reaches its target if nothing else happens.
    fn end_time(&self) -> Option<f64> {
        match self.setup.target {
            super::Target::Wall(end) => Some(end),
            super::Target::Steps(steps) => match self.phase {
                Phase::Running => Some(self.t + (steps - self.now.steps).max(0.0) * self.step_s),
                _ => None,
            },
        }
    }

    fn advance(&mut self, t_next: f64) {
        let dt = (t_next - self.t).max(0.0);
        match self.phase {
            Phase::Running => {
                self.now.steps += dt / self.step_s;
                self.now.productive_s += dt;
                self.since_ckpt_s += dt;
                self.totals.straggler_s += dt * (1.0 - self.healthy_step_s / self.step_s);
            }
            Phase::Checkpoint { .. } => self.totals.checkpoint_s += dt,
            Phase::Down { .. } => self.totals.down_s += dt,
        }
        self.t = t_next;
        if self.record
            && self.t - self.samples.last().map_or(-f64::INFINITY, |s| s.time_s)
                >= self.sample_every_s
        {
            self.sample();
        }
    }

    fn handle(&mut self, next: Next) -> Result<(), RunError> {
        match next {
            Next::End => {}
            Next::PhaseEnd => self.end_phase(),
            Next::CheckpointDue => self.start_checkpoint(),
            Next::Flushed => {
                if let Some((snap, _)) = self.pending.take() {
                    self.durable = snap;
                    self.totals.checkpoints += 1;
                    self.emit(EventKind::CheckpointDurable, String::new(), 0.0);
                }
            }
            Next::EpisodeEnd => self.end_episode()?,
            Next::EpisodeStart(i) => self.start_episode(i)?,
            Next::Failure => {
                if let Some(f) = self.failures.next_failure() {
                    self.fail(f);
                }
            }
        }
        Ok(())
    }

    fn start_checkpoint(&mut self) {
        let wait_flush = self.pending.map_or(0.0, |p| (p.1 - self.t).max(0.0));
        let until = self.t + wait_flush + self.setup.cost.stall_s();
        self.phase = Phase::Checkpoint {
            until,
            snap: self.now,
        };
    }

    fn end_phase(&mut self) {
        match self.phase {
            Phase::Checkpoint { snap, .. } => {
                let stall = self.setup.cost.stall_s();
                if self.setup.cost.flush_s() > 0.0 {
                    self.pending = Some((snap, self.t + self.setup.cost.flush_s()));
                    self.emit(EventKind::CheckpointSnapshot, String::new(), stall);
                } else {
                    self.durable = snap;
                    self.totals.checkpoints += 1;
                    self.emit(EventKind::Checkpoint, String::new(), stall);
                }
            }
            Phase::Down { since, .. } => {
                let cost = self.t - since;
                self.emit(EventKind::Restart, String::new(), cost);
            }
            Phase::Running => {}
        }
        self.since_ckpt_s = 0.0;
        self.phase = Phase::Running;
    }

    fn fail(&mut self, f: Failure) {
        self.interruptions += 1;
        *self
            .totals
            .by_cause
            .entry(f.class.name().to_string())
            .or_default() += 1;
        let lost = self.now.productive_s - self.durable.productive_s;
        self.totals.rework_s += lost;
        self.now = self.durable;
        self.pending = None;
        let since = match self.phase {
            Phase::Down { since, .. } => since,
            _ => self.t,
        };
        let wait = self.spares.wait(self.t, f.blast_nodes);
        let m = &self.model;
        let until = self.t + m.detection_s + wait + m.restart_s + self.setup.cost.load_s;
        self.phase = Phase::Down { until, since };
        self.emit(EventKind::Failure, component(f.class, f.index), lost);
    }

    fn start_episode(&mut self, i: usize) -> Result<(), RunError> {
        if let Some(e) = self.episodes[i].next_episode() {
            self.active.push(e);
            self.emit(EventKind::StragglerStart, format!("gpu:{}", e.gpu), 0.0);
            self.update_state()?;
        }
        Ok(())
    }

    fn end_episode(&mut self) -> Result<(), RunError> {
        let Some(i) = self
            .active
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.end_s.total_cmp(&b.1.end_s).then(a.1.gpu.cmp(&b.1.gpu)))
            .map(|(i, _)| i)
        else {
            return Ok(());
        };
        let e = self.active.remove(i);
        self.emit(EventKind::StragglerEnd, format!("gpu:{}", e.gpu), 0.0);
        self.update_state()
    }

    fn update_state(&mut self) -> Result<(), RunError> {
        // Only the slowest transient straggler enters the state: the slowest member sets
        // the pace of a synchronous job, and this keeps distinct states (step simulations)
        // to stages x factors instead of their combinations.
        let worst = self
            .active
            .iter()
            .max_by(|a, b| a.factor.total_cmp(&b.factor).then(b.gpu.cmp(&a.gpu)))
            .map(|e| (e.gpu, e.factor));
        let state = self.base_state.with_slow(worst, &self.setup.grid);
        self.step_s = lookup(&mut self.cache, self.src, &state)?;
        Ok(())
    }

    fn emit(&mut self, kind: EventKind, component: String, cost_s: f64) {
        if self.record {
            self.events.push(RunEvent {
                time_s: self.t,
                event: kind,
                component,
                cost_s,
                steps: self.now.steps,
            });
        }
    }

    fn sample(&mut self) {
        if self.record {
            self.samples.push(ProgressSample {
                time_s: self.t,
                steps: self.now.steps,
                productive_s: self.now.productive_s,
            });
        }
    }

    fn summary(&self) -> RunSummary {
        let s = self.setup;
        let wall = self.t;
        let productive = self.now.productive_s;
        let lost = (wall - productive).max(0.0);
        let tokens = self.now.steps * s.tokens_per_step;
        RunSummary {
            seed: self.model.seed,
            gpus: self.model.gpus,
            goodput: if wall > 0.0 { productive / wall } else { 1.0 },
            interruptions: self.interruptions,
            interruptions_by_cause: self.totals.by_cause.clone(),
            lost_hours: lost / 3600.0,
            lost_gpu_hours: lost / 3600.0 * self.model.gpus as f64,
            rework_hours: self.totals.rework_s / 3600.0,
            checkpoint_overhead_hours: self.totals.checkpoint_s / 3600.0,
            restart_hours: self.totals.down_s / 3600.0,
            straggler_overhead_hours: self.totals.straggler_s / 3600.0,
            mean_time_between_interruptions_h: (self.interruptions > 0)
                .then(|| wall / 3600.0 / self.interruptions as f64),
            wall_time_h: wall / 3600.0,
            productive_time_h: productive / 3600.0,
            steps: self.now.steps,
            tokens,
            time_to_train_tokens_h: s.tokens_target.map(|_| wall / 3600.0),
            checkpoints: self.totals.checkpoints,
            checkpoint_interval_s: self.interval_s.is_finite().then_some(self.interval_s),
            checkpoint_stall_s: s.cost.stall_s(),
            checkpoint_write_s: s.cost.write_s,
            checkpoint_load_s: s.cost.load_s,
            checkpoint_size_gb: s.cost.size_bytes / 1e9,
            step_time_s: self.healthy_step_s,
            distinct_step_states: self.cache.len() as u64,
        }
    }
}

fn lookup(
    cache: &mut HashMap<StepState, f64>,
    src: &dyn StepTimeSource,
    state: &StepState,
) -> Result<f64, RunError> {
    if let Some(&t) = cache.get(state) {
        return Ok(t);
    }
    let t = src.step_time_s(state)?;
    if !(t.is_finite() && t > 0.0) {
        return Err(RunError::Step(format!("step time {t} s is not positive")));
    }
    cache.insert(state.clone(), t);
    Ok(t)
}

fn component(class: ComponentClass, index: u64) -> String {
    format!("{}:{index}", class.name())
}
