//! Scenario → op graph → network → replay: the orchestration of one simulated step.
//!
//! [`build_network`] is the one place a scenario's network (mode, algorithm, link faults)
//! is built. Must not define metrics (those are `metrics`) or do I/O.

use super::metrics::{StepMetrics, step_metrics};
use crate::config::Scenario;
use crate::engine::{self, EngineError, RankSpeeds, Replay, ReplayBudget, ReplayMode, TraceRanks};
use crate::faults::LinkFaults;
use crate::hardware::ComputeModel;
use crate::network::{
    AnalyticNetwork, AnyNetwork, FlowNetwork, Network, NetworkMode, NetworkSettings,
};
use crate::plan::RankGrid;
use crate::schedule::{self, StepGraph, StepInputs};

/// Options that do not come from the scenario file.
#[derive(Debug, Clone)]
pub struct StepOptions {
    pub trace: TraceRanks,
    pub speeds: RankSpeeds,
    /// Fold identical replicas and respect the replay budget (default), or replay every
    /// rank whatever it costs (`--replay all`).
    pub replay: ReplayMode,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            trace: TraceRanks::None,
            speeds: RankSpeeds::uniform(),
            replay: ReplayMode::Folded,
        }
    }
}

/// Everything one simulated step produced.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub metrics: StepMetrics,
    pub graph: StepGraph,
    pub grid: RankGrid,
    pub replay: Replay,
}

/// The compute model a scenario's step is priced with (its GPU, precision and stack).
pub fn compute_model(s: &Scenario) -> ComputeModel {
    ComputeModel::for_training(
        &s.cluster.gpu,
        s.training.precision,
        s.parallelism.stack.fp8_attention,
    )
}

/// What pricing reads about a scenario's plan, priced with `compute`
/// ([`compute_model`]): the one place a scenario becomes [`StepInputs`].
pub fn step_inputs<'a>(s: &'a Scenario, compute: &'a ComputeModel) -> StepInputs<'a> {
    StepInputs {
        model: &s.model,
        training: &s.training,
        parallelism: &s.parallelism,
        compute,
        pcie_gbs: s.cluster.node.pcie_gbs,
    }
}

/// Builds the op graph of a scenario's step.
pub fn build_graph(s: &Scenario) -> StepGraph {
    let compute = compute_model(s);
    schedule::build_step(step_inputs(s, &compute))
}

/// The network `s` runs on (its `network:` section: analytic or contention, and the
/// algorithm choice), with `link_faults` slowing GPUs' NIC and NVLink ports in either.
/// Every command that replays a scenario builds its network here.
pub fn build_network(s: &Scenario, link_faults: &LinkFaults) -> AnyNetwork {
    match s.network.mode {
        NetworkMode::Analytic => {
            let net = analytic_network(s).with_link_faults(link_faults.clone());
            AnyNetwork::Analytic(Box::new(net))
        }
        NetworkMode::Contention => {
            let settings = NetworkSettings {
                algorithm: s.network.algorithm,
                routing: s.network.routing,
            };
            let net = FlowNetwork::new(&s.cluster, settings).with_link_faults(link_faults);
            AnyNetwork::Contention(Box::new(net))
        }
    }
}

/// The fast-mode network of `s` (healthy links, the scenario's algorithm choice and
/// routing, its plan's pipeline stages as the groups that run at once), which the plan
/// search's estimator uses whatever `network.mode` says.
pub fn analytic_network(s: &Scenario) -> AnalyticNetwork {
    let grid = crate::plan::RankGrid::new(&s.parallelism);
    AnalyticNetwork::with_algorithm(&s.cluster, s.network.algorithm)
        .with_routing(s.network.routing)
        .with_stage_size(grid.stage_size(), grid.world())
}

/// Simulates one step of `s` on its own network ([`build_network`], healthy links).
pub fn simulate_step(s: &Scenario, opts: &StepOptions) -> Result<StepResult, EngineError> {
    simulate_step_faulty(s, opts, &LinkFaults::none()).map(|(r, _)| r)
}

/// Simulates one step of `s` on its own network with degraded links; returns the network
/// too, its link accounting closed at the step's end (for `links.csv` and the heat map),
/// and in contention mode its link use over time per tier.
pub fn simulate_step_faulty(
    s: &Scenario,
    opts: &StepOptions,
    link_faults: &LinkFaults,
) -> Result<(StepResult, AnyNetwork), EngineError> {
    simulate_step_recorded(s, opts, link_faults, false)
}

/// [`simulate_step_faulty`], recording in contention mode link use over time per tier
/// and, with `per_link`, per link (`--links all`).
pub fn simulate_step_recorded(
    s: &Scenario,
    opts: &StepOptions,
    link_faults: &LinkFaults,
    per_link: bool,
) -> Result<(StepResult, AnyNetwork), EngineError> {
    let mut net = build_network(s, link_faults);
    if let AnyNetwork::Contention(n) = &mut net {
        n.record_usage(per_link);
    }
    let r = simulate_step_on(s, opts, &mut net)?;
    net.finish_accounting(r.replay.step_time);
    Ok((r, net))
}

/// Simulates one step of `s` over a given network model.
pub fn simulate_step_on<N: Network>(
    s: &Scenario,
    opts: &StepOptions,
    net: &mut N,
) -> Result<StepResult, EngineError> {
    let graph = build_graph(s);
    let grid = RankGrid::new(&s.parallelism);
    let plan = engine::plan(&graph, &grid, net, &opts.speeds, &opts.trace, opts.replay);
    if opts.replay == ReplayMode::Folded {
        plan.estimate.check(&ReplayBudget::from_env()?)?;
    }
    let replay = engine::replay_planned(plan, &graph, &grid, net, &opts.speeds, &opts.trace)?;
    let metrics = step_metrics(s, &graph, &grid, &replay);
    Ok(StepResult {
        metrics,
        graph,
        grid,
        replay,
    })
}
