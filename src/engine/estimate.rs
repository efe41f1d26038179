//! What a replay will cost, known before it starts, and the budget that refuses a replay
//! too large for the machine instead of running out of memory halfway.
//!
//! [`plan`] decides how a step will be replayed (folded or every rank) and estimates, from
//! the op graph and the grid, the events it will process (exact: [`super::event_count`] of
//! the ranks replayed) and the memory it will hold (rank records, group tables, rendezvous
//! lanes, queue buffers, per-rank results, trace). [`ReplayEstimate::check`] compares them
//! with a [`ReplayBudget`] (environment-adjustable); callers skip the check when the user
//! forces the replay (`clustersim run --replay all`).

use serde::Serialize;

use super::fold::{self, Fold};
use super::{EngineError, RankSpeeds, TraceRanks, core};
use crate::network::Network;
use crate::plan::RankGrid;
use crate::schedule::StepGraph;

/// How much of the cluster a replay simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayMode {
    /// Fold identical data-parallel replicas where that is exact, and refuse replays above
    /// the budget.
    #[default]
    Folded,
    /// Every rank, never folding, whatever the budget says.
    All,
}

impl std::str::FromStr for ReplayMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "folded" | "auto" => Ok(ReplayMode::Folded),
            "all" => Ok(ReplayMode::All),
            _ => Err(format!("unknown replay mode `{s}`; allowed: folded, all")),
        }
    }
}

/// The size of a planned replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayEstimate {
    /// GPUs of the job.
    pub world: u64,
    /// Ranks simulated (fewer than `world` when replicas fold).
    pub replayed_ranks: u64,
    /// Events the replay processes (exact).
    pub events: u64,
    /// Peak memory of the replay's own state, bytes (the op graph and the network, built
    /// before, are not counted).
    pub bytes: u64,
    /// Of which the timeline's trace.
    pub trace_bytes: u64,
    /// The network's contention work: the links the flows of every collective cross,
    /// summed over the replay ([`flow_work`]); 0 when the network has no contention.
    pub flow_work: u64,
    /// The replay simulates stand-ins for identical replicas.
    pub folded: bool,
    /// The network allows folding (no contention).
    pub foldable_network: bool,
    /// Several jobs share the fabric: only the contention model can time them, so the
    /// analytic mode is not offered as a way to shrink the replay.
    pub shared_fabric: bool,
}

/// Limits on one replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayBudget {
    pub max_events: u64,
    pub max_bytes: u64,
    /// Most contention work ([`ReplayEstimate::flow_work`]) a replay may ask for.
    pub max_flow_work: u64,
}

/// Environment variables that set the budget (the same names the input limits use).
pub const EVENTS_ENV: &str = "CLUSTERSIM_MAX_STEP_EVENTS";
pub const MEMORY_ENV: &str = "CLUSTERSIM_MAX_STEP_MEMORY";
pub const FLOW_WORK_ENV: &str = "CLUSTERSIM_MAX_CONTENTION_WORK";

impl Default for ReplayBudget {
    /// 10^9 events (about two minutes of replay on one core), 16 GB and 5 x 10^8 units
    /// of contention work. The shipped scenarios' contention replays took 0.14 to 1.0 us
    /// per unit on one core (`llama3-70b-1k`: 5.4e6 units, 0.75 s; `llama3-405b-16k`:
    /// 2.3e7, 11 s; `deepseek-v3-2k-h800`, all-to-all bound: 2.3e8, 241 s), so the limit
    /// stops a replay that would take more than about ten minutes.
    fn default() -> Self {
        ReplayBudget {
            max_events: 1_000_000_000,
            max_bytes: 16_000_000_000,
            max_flow_work: 500_000_000,
        }
    }
}

impl ReplayBudget {
    /// The default budget with [`EVENTS_ENV`], [`MEMORY_ENV`] and [`FLOW_WORK_ENV`]
    /// (positive numbers, exponents allowed: `2e9`) applied.
    pub fn from_env() -> Result<Self, EngineError> {
        let mut b = ReplayBudget::default();
        for (name, slot) in [
            (EVENTS_ENV, &mut b.max_events),
            (MEMORY_ENV, &mut b.max_bytes),
            (FLOW_WORK_ENV, &mut b.max_flow_work),
        ] {
            if let Ok(text) = std::env::var(name) {
                match text.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 1.0 => *slot = v.min(u64::MAX as f64) as u64,
                    _ => {
                        return Err(EngineError::OverBudget(format!(
                            "{name}=`{}` is not a positive number",
                            text.chars().take(40).collect::<String>()
                        )));
                    }
                }
            }
        }
        Ok(b)
    }
}

fn gb(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.2} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

impl ReplayEstimate {
    /// Refuses a replay above `budget`, naming the estimate and what shrinks it.
    pub fn check(&self, budget: &ReplayBudget) -> Result<(), EngineError> {
        if self.flow_work > budget.max_flow_work {
            return Err(EngineError::OverBudget(format!(
                "this contention replay is too slow: about {:.3e} units of contention work \
                 (the links the flows of every collective cross, over the step's {:.3e} \
                 events on {} ranks), above the budget of {:.3e} (about ten minutes; \
                 {FLOW_WORK_ENV}). Shrink it with {}smaller expert-parallel groups (--set parallelism.ep=...: an \
                 all-to-all's work grows with the square of its group), fewer micro-batches \
                 (--set training.global_batch=...) or fewer GPUs (--set parallelism.dp=... \
                 with cluster.nodes); or force it with `--replay all`",
                self.flow_work as f64,
                self.events as f64,
                self.world,
                budget.max_flow_work as f64,
                if self.shared_fabric {
                    ""
                } else {
                    "--network analytic (closed-form collectives), "
                },
            )));
        }
        if self.events <= budget.max_events && self.bytes <= budget.max_bytes {
            return Ok(());
        }
        let mut shrink = Vec::new();
        if self.trace_bytes > self.bytes / 4 {
            shrink.push("--timeline representative or none (fewer traced ranks)");
        }
        if !self.folded && !self.foldable_network && !self.shared_fabric {
            shrink.push("--network analytic (identical replicas then fold)");
        }
        if !self.folded && self.foldable_network && self.world > self.replayed_ranks / 2 {
            shrink.push("fewer stragglers or degraded links (replicas that differ cannot fold)");
        }
        shrink.push("fewer micro-batches (--set training.global_batch=...)");
        shrink.push("fewer GPUs (--set parallelism.dp=... with cluster.nodes)");
        Err(EngineError::OverBudget(format!(
            "this step replay is too large: {:.3e} events over {} of {} ranks{} and about {} \
             (trace {}), above the budget of {:.3e} events and {} ({EVENTS_ENV}, {MEMORY_ENV}). \
             Shrink it with {}; or force it with `--replay all`",
            self.events as f64,
            self.replayed_ranks,
            self.world,
            if self.folded { " (folded)" } else { "" },
            gb(self.bytes),
            gb(self.trace_bytes),
            budget.max_events as f64,
            gb(budget.max_bytes),
            shrink.join(", "),
        )))
    }
}

/// The contention work of replaying `step` on `grid` over a flow network: for every
/// collective instance, the links its flows cross (a ring, tree or NVLS collective or a
/// send over `n` ranks: about `n`; a direct all-to-all, one flow per member to every
/// other: `n^2`), summed over the groups and collectives of the step (saturating). Each
/// flow that starts or ends re-solves the max-min rates of the flows it shares links
/// with, so replay time grows with this sum; the default budget's comment gives the
/// measured time per unit.
pub fn flow_work(step: &StepGraph, grid: &RankGrid) -> u64 {
    use crate::plan::GroupMask;
    use crate::schedule::GroupRef;
    use crate::vocab::Collective;
    let pp = step.stages.len().max(1) as u64;
    step.comms
        .iter()
        .map(|c| {
            let (instances, n) = match c.group {
                GroupRef::Axes(mask) => {
                    let groups = u64::from(grid.group_count(mask));
                    let per_step = if mask.0 & GroupMask::PP.0 != 0 {
                        groups
                    } else {
                        groups / pp
                    };
                    (per_step, u64::from(grid.group_size(mask)))
                }
                GroupRef::P2p { .. } => (u64::from(grid.stage_size()), 2),
            };
            let links = match c.collective {
                Collective::AllToAll => n.saturating_mul(n),
                _ => n,
            };
            instances.saturating_mul(links)
        })
        .fold(0u64, u64::saturating_add)
}

/// A decided replay: its estimate, and the folding it will use.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    pub estimate: ReplayEstimate,
    pub(super) fold: Option<Fold>,
}

/// Decides how `step` will be replayed on `grid` and estimates its cost.
pub fn plan<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
    mode: ReplayMode,
) -> ReplayPlan {
    let foldable_network = net.folding().is_some();
    let fold = match mode {
        ReplayMode::Folded => fold::plan_fold(step, grid, net, speeds, trace_ranks),
        ReplayMode::All => None,
    };
    let replayed = fold.as_ref().map_or(grid, |f| &f.reduced);
    let traced = match trace_ranks {
        TraceRanks::None => 0,
        TraceRanks::Some(r) => r.len() as u64,
        TraceRanks::All => grid.world() as u64,
    };
    let (mut bytes, trace_bytes) = core::replay_bytes(step, replayed, traced);
    if fold.is_some() {
        // The full grid's results, copied from the stand-ins.
        bytes += grid.world() as u64 * std::mem::size_of::<super::RankStats>() as u64;
    }
    ReplayPlan {
        estimate: ReplayEstimate {
            world: grid.world() as u64,
            replayed_ranks: replayed.world() as u64,
            events: super::event_count(step, replayed),
            bytes: bytes + trace_bytes,
            trace_bytes,
            flow_work: if foldable_network {
                0
            } else {
                flow_work(step, replayed)
            },
            folded: fold.is_some(),
            foldable_network,
            shared_fabric: false,
        },
        fold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over_budget(shared_fabric: bool) -> String {
        let e = ReplayEstimate {
            world: 1024,
            replayed_ranks: 1024,
            events: 10,
            bytes: 10,
            trace_bytes: 0,
            flow_work: 1000,
            folded: false,
            foldable_network: false,
            shared_fabric,
        };
        let budget = ReplayBudget {
            max_events: 1 << 40,
            max_bytes: 1 << 40,
            max_flow_work: 100,
        };
        match e.check(&budget) {
            Err(EngineError::OverBudget(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    /// Jobs sharing a fabric are timed only by the contention model (the analytic mode is
    /// refused with `jobs:`), so the refusal must not suggest it.
    #[test]
    fn the_over_budget_advice_offers_analytic_mode_only_to_a_single_job() {
        assert!(over_budget(false).contains("--network analytic"));
        let shared = over_budget(true);
        assert!(!shared.contains("analytic"), "{shared}");
        assert!(shared.contains("--replay all"), "{shared}");
    }
}
