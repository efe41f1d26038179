//! Limits on the work a request asks for, checked before the work starts.
//!
//! Each [`Limit`] has a documented default that an environment variable changes; a request
//! above it is refused with exit 2, the estimate, and what changes it (a smaller key, a
//! flag, or the variable). The estimates are computed here from validated inputs only
//! (no simulation): the op graph of a step ([`graph_ops`]), the points of a sweep before
//! it is expanded ([`sweep_points`]), the runs of a checkpoint sweep. The replay of one
//! step has its own exact estimate and budget in `engine::estimate`
//! (`CLUSTERSIM_MAX_STEP_EVENTS`, `CLUSTERSIM_MAX_STEP_MEMORY`); the run-level events of a
//! long run are estimated by `run` from the step time and failure rates ([`RUN_EVENTS`]).

use super::Scenario;

/// A limit on one kind of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What is counted, e.g. "op-graph nodes of one step".
    pub what: &'static str,
    /// The environment variable that changes the limit.
    pub env: &'static str,
    /// The limit when the variable is not set.
    pub default: u64,
}

/// Op-graph nodes of one step (all pipeline stages): about 200 bytes each while built.
pub const GRAPH_OPS: Limit = Limit {
    what: "op-graph nodes of one step",
    env: "CLUSTERSIM_MAX_GRAPH_OPS",
    default: 50_000_000,
};

/// Points of one sweep file (designs × the product of its axes).
pub const SWEEP_POINTS: Limit = Limit {
    what: "points of the sweep",
    env: "CLUSTERSIM_MAX_SWEEP_POINTS",
    default: 100_000,
};

/// Run-level events (failures, checkpoints, slowdown episodes, samples) of all the runs
/// one command simulates (replicas × checkpoint intervals).
pub const RUN_EVENTS: Limit = Limit {
    what: "run-level events (failures, checkpoints, slowdowns) over all runs",
    env: "CLUSTERSIM_MAX_RUN_EVENTS",
    // About a minute at the ~2e7 events/s one core handles (`clustersim checkpoint
    // scenarios/llama3-70b-1k.yaml`: 1.3e8 expected events for its default 24 intervals x
    // 16 replicas).
    default: 1_000_000_000,
};

/// Events of the one run whose events are kept (`run.csv` rows and the progress chart of
/// `run` and `compare`): about 100 bytes each in memory.
pub const RECORDED_RUN_EVENTS: Limit = Limit {
    what: "run-level events of the recorded run (rows of run.csv)",
    env: "CLUSTERSIM_MAX_RUN_CSV_ROWS",
    default: 2_000_000,
};

/// Runs one command simulates (replicas × checkpoint intervals).
pub const RUNS: Limit = Limit {
    what: "runs (replicas x checkpoint intervals)",
    env: "CLUSTERSIM_MAX_RUNS",
    default: 1_000_000,
};

/// Largest token budget (`run.tokens`, a sweep's `tokens:`, `--tokens`): 10^17, about
/// 6,000 times Llama 3's 15.6T.
pub const MAX_TOKENS: f64 = 1e17;

/// Largest `run.steps`.
pub const MAX_RUN_STEPS: u64 = 1_000_000_000_000;

/// Largest number of Monte-Carlo replicas (`run.replicas`, `--replicas`).
pub const MAX_REPLICAS: u64 = 100_000;

/// Most points of a checkpoint-interval grid (`--intervals LO:HI:POINTS`).
pub const MAX_GRID_POINTS: u64 = 10_000;

impl Limit {
    /// The limit in force: the variable's value, else the default.
    pub fn value(&self) -> Result<u64, String> {
        match std::env::var(self.env) {
            Ok(v) => v.trim().parse::<u64>().map_err(|_| {
                format!(
                    "{}=`{}` is not a whole number",
                    self.env,
                    crate::units::shorten(&v)
                )
            }),
            Err(_) => Ok(self.default),
        }
    }

    /// `Ok` when `estimate` is within the limit; otherwise the message: the estimate, the
    /// limit, and `shrink` (which keys or flags make the request smaller) or the variable.
    pub fn check(&self, estimate: u64, shrink: &str) -> Result<(), String> {
        let limit = self.value()?;
        if estimate <= limit {
            return Ok(());
        }
        Err(format!(
            "the request needs about {estimate} {} (estimated before starting), above the \
             limit of {limit}; {shrink}, or raise the limit with {}=N",
            self.what, self.env
        ))
    }
}

/// Micro-batches one data-parallel replica runs per step (at least 1).
pub fn micro_batches(s: &Scenario) -> u64 {
    let t = &s.training;
    let per_step = s.parallelism.dp.saturating_mul(t.micro_batch).max(1);
    (t.global_batch / per_step).max(1)
}

/// Op-graph nodes per layer and micro-batch, all passes (forward, backward or its
/// input/weight halves, recompute, the TP/CP/EP collectives around each block and ZeRO-3
/// gathers); an upper bound `tests/budget.rs` checks against the graphs of the shipped
/// scenarios.
pub const OPS_PER_LAYER: u64 = 40;

/// Op-graph nodes per pipeline chunk and micro-batch (embedding, loss, sends, receives).
pub const OPS_PER_CHUNK: u64 = 16;

/// Estimated op-graph nodes of one step (an upper bound; saturating).
pub fn graph_ops(s: &Scenario) -> u64 {
    let p = &s.parallelism;
    let m = micro_batches(s);
    let chunks = p.pp.saturating_mul(p.virtual_stages.max(1));
    let per_micro = s
        .model
        .layers
        .saturating_mul(OPS_PER_LAYER)
        .saturating_add(chunks.saturating_mul(OPS_PER_CHUNK));
    m.saturating_mul(per_micro)
        .saturating_add(p.pp.saturating_mul(1024))
}

/// Refuses a step whose op graph is above [`GRAPH_OPS`].
pub fn check_graph(s: &Scenario) -> Result<(), String> {
    GRAPH_OPS.check(
        graph_ops(s),
        &format!(
            "fewer micro-batches per replica (now {}: training.global_batch / \
             (parallelism.dp x training.micro_batch)) or fewer model.layers (now {})",
            micro_batches(s),
            s.model.layers
        ),
    )
}

/// Points of a sweep: `designs` × the product of `axis_lengths`, `None` past `u64`.
pub fn sweep_points(designs: usize, axis_lengths: &[usize]) -> Option<u64> {
    axis_lengths
        .iter()
        .try_fold(designs.max(1) as u64, |acc, &n| acc.checked_mul(n as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_points_multiply_without_overflow() {
        assert_eq!(sweep_points(2, &[3, 4]), Some(24));
        assert_eq!(sweep_points(0, &[5]), Some(5));
        assert_eq!(sweep_points(1, &[1 << 40, 1 << 40]), None);
    }

    #[test]
    fn limit_message_names_the_estimate_and_the_variable() {
        let e = SWEEP_POINTS
            .check(1_000_000_000, "remove axis values")
            .unwrap_err();
        assert!(
            e.contains("1000000000") && e.contains("CLUSTERSIM_MAX_SWEEP_POINTS"),
            "{e}"
        );
        assert!(SWEEP_POINTS.check(10, "").is_ok());
    }
}
