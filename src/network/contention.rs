//! The detailed network: every collective becomes flows on the topology, and all flows of
//! the step share link bandwidth max-min fairly.
//!
//! Owns: the [`Network`] implementation that ties [`Topology`], [`Planner`] and
//! [`FlowSolver`] together, and the per-collective bookkeeping (a collective completes when
//! its last flow completes, plus its latency term).
//! Must not: reorder or delay anything beyond what bandwidth sharing and latency imply.
//!
//! Batching: `begin` only registers flows; the engine's next `advance` at the same
//! timestamp recomputes the rates once for every change of that timestamp
//! ([`Network::next_event`] reports the pending batch as an event at `now`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::collectives::{FlowPlan, Planner};
use super::flows::{FlowSolver, LinkCounters};
use super::nccl::{Algorithm, AlgorithmChoice, Choice};
use super::routing::Routing;
use super::topology::{LinkKind, Topology};
use super::{Completion, Network, Transfer};
use crate::faults::LinkFaults;
use crate::hardware::ClusterSpec;
use crate::units::{Nanos, secs_to_ns};
use crate::vocab::{Collective, CollectiveSet};

/// Settings of the network model that do not come from the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkSettings {
    /// Collective algorithm: NCCL's automatic choice or a forced one.
    pub algorithm: AlgorithmChoice,
    /// How switches pick among equal-cost paths.
    pub routing: Routing,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    flows_left: u32,
    latency: Nanos,
}

/// Flow-level network with max-min fair link sharing (the "detailed mode").
#[derive(Debug, Clone)]
pub struct FlowNetwork {
    topo: Topology,
    solver: FlowSolver,
    planner: Planner,
    plan: FlowPlan,
    settings: NetworkSettings,
    pending: Vec<Pending>,
    free: Vec<u32>,
    done: BinaryHeap<Reverse<(Nanos, u64)>>,
    finished: Vec<(u32, u32)>,
    now: Nanos,
    /// Collectives started per algorithm (indexed like [`ALGORITHMS`]).
    pub algorithm_counts: [u64; Algorithm::COUNT],
}

/// Algorithms in the order of [`FlowNetwork::algorithm_counts`].
pub const ALGORITHMS: [Algorithm; Algorithm::COUNT] = Algorithm::ALL;

impl FlowNetwork {
    pub fn new(cluster: &ClusterSpec, settings: NetworkSettings) -> Self {
        Self::from_topology(
            Topology::new(cluster).with_routing(settings.routing),
            settings,
        )
    }

    pub fn from_topology(topo: Topology, settings: NetworkSettings) -> Self {
        let solver = FlowSolver::new(topo.cap.clone());
        FlowNetwork {
            topo,
            solver,
            planner: Planner::default(),
            plan: FlowPlan::default(),
            settings,
            pending: Vec::new(),
            free: Vec::new(),
            done: BinaryHeap::new(),
            finished: Vec::new(),
            now: 0,
            algorithm_counts: [0; Algorithm::COUNT],
        }
    }

    /// The same network with some GPUs' NIC and NVLink ports slowed down: each GPU's
    /// scale-up links and NIC port (both directions) carry `factor` x their capacity.
    /// Call before any traffic.
    pub fn with_link_faults(mut self, faults: &LinkFaults) -> Self {
        if faults.is_empty() {
            return self;
        }
        self.topo.apply_link_faults(faults);
        self.solver = FlowSolver::new(self.topo.cap.clone());
        self
    }

    /// The same network with steady background traffic holding `fraction` of every link
    /// of each listed tier (both directions): the flows of the step share what is left.
    /// Call before any traffic.
    pub fn with_background(mut self, tiers: &[(LinkKind, f64)]) -> Self {
        if tiers.iter().all(|&(_, f)| f <= 0.0) {
            return self;
        }
        for l in 0..self.topo.links() {
            if let Some(&(_, f)) = tiers.iter().find(|(k, _)| *k == self.topo.kind[l]) {
                self.topo.cap[l] *= (1.0 - f).max(1e-6);
            }
        }
        self.solver = FlowSolver::new(self.topo.cap.clone());
        self
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Per-link bytes, busy time and peak flows so far.
    pub fn counters(&self) -> LinkCounters {
        self.solver.counters()
    }

    /// Closes busy intervals at `now` (call once when the step ends, before reporting).
    pub fn finish_accounting(&mut self, now: Nanos) {
        self.solver.finish_accounting(now);
    }

    /// Writes `links.csv` for a step of length `step` (see [`super::links`]).
    pub fn write_links_csv(&self, step: Nanos, w: impl std::io::Write) -> std::io::Result<()> {
        super::links::write_links_csv(&self.topo, &self.solver.counters(), step, w)
    }

    /// Records link use over time from now on: per tier and direction, and with
    /// `per_link` per link too (see [`super::timeseries`]). Call before any traffic.
    pub fn record_usage(&mut self, per_link: bool) {
        let rec = super::timeseries::UsageRecorder::new(&self.topo, per_link);
        self.solver.record_usage(rec);
    }

    /// Utilization over a step of length `step` in `bins` equal time bins, when
    /// [`FlowNetwork::record_usage`] was called.
    pub fn usage_series(&self, step: Nanos, bins: usize) -> Option<super::timeseries::TimeSeries> {
        self.solver
            .usage()
            .map(|r| r.series(&self.topo, step, bins))
    }

    /// Mean utilization per link kind and position, for the heat map
    /// ([`super::heatmap::draw_heatmap`]).
    pub fn utilization_matrix(&self, step: Nanos, cols: usize) -> Vec<(LinkKind, Vec<f64>)> {
        super::links::utilization_matrix(&self.topo, &self.solver.counters(), step, cols)
    }

    /// Heat-map rows: utilization per tier and direction, bucketed into at most `cols`
    /// cells (see [`super::links::heat_rows`]).
    pub fn heat_rows(&self, step: Nanos, cols: usize) -> Vec<super::links::HeatRow> {
        super::links::heat_rows(&self.topo, &self.solver.counters(), step, cols)
    }

    /// The (algorithm, protocol, latency) the planner picks for a collective, without
    /// running it.
    pub fn choice(&mut self, coll: Collective, bytes: u64, members: &[u32]) -> Choice {
        self.planner.plan(
            &self.topo,
            coll,
            bytes,
            members,
            self.settings.algorithm,
            &mut self.plan,
        );
        self.plan.choice
    }

    /// Runs one collective alone on an idle network and returns its duration in seconds.
    pub fn time_alone_s(&mut self, coll: Collective, bytes: u64, members: &[u32]) -> f64 {
        let start = self.now;
        let t = Transfer {
            id: u64::MAX,
            collective: coll,
            bytes,
            members,
            category: crate::vocab::Category::Dp,
        };
        let end = match self.begin(start, &t) {
            Completion::At(end) => end,
            Completion::Pending => {
                let mut out = Vec::new();
                let mut end = start;
                while out.is_empty() {
                    let Some(next) = self.next_event() else { break };
                    self.advance(next, &mut out);
                    end = next;
                }
                end
            }
        };
        (end - start) as f64 * 1e-9
    }

    fn alloc(&mut self, p: Pending) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.pending[i as usize] = p;
                i
            }
            None => {
                self.pending.push(p);
                (self.pending.len() - 1) as u32
            }
        }
    }
}

impl Network for FlowNetwork {
    fn begin(&mut self, now: Nanos, t: &Transfer<'_>) -> Completion {
        self.now = self.now.max(now);
        self.planner.plan(
            &self.topo,
            t.collective,
            t.bytes,
            t.members,
            self.settings.algorithm,
            &mut self.plan,
        );
        let choice = self.plan.choice;
        if let Some(i) = ALGORITHMS.iter().position(|&a| a == choice.algorithm) {
            self.algorithm_counts[i] += 1;
        }
        let latency = secs_to_ns(choice.latency_s);
        if self.plan.flows.is_empty() {
            return Completion::At(now + latency);
        }
        let slot = self.alloc(Pending {
            id: t.id,
            flows_left: self.plan.flows.len() as u32,
            latency,
        });
        for f in &self.plan.flows {
            let links = &self.plan.links[f.start as usize..f.end as usize];
            self.solver.add_flow(now, links, f.bytes, slot);
        }
        Completion::Pending
    }

    fn next_event(&self) -> Option<Nanos> {
        let done = self.done.peek().map(|Reverse((t, _))| *t);
        match (self.solver.next_event(), done) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn advance(&mut self, now: Nanos, completed: &mut Vec<u64>) {
        self.now = self.now.max(now);
        self.finished.clear();
        self.solver.pop_finished(now, &mut self.finished);
        for k in 0..self.finished.len() {
            let slot = self.finished[k].1;
            let p = &mut self.pending[slot as usize];
            p.flows_left -= 1;
            if p.flows_left == 0 {
                self.done.push(Reverse((now + p.latency, p.id)));
                self.free.push(slot);
            }
        }
        self.solver.recompute(now);
        while let Some(&Reverse((t, id))) = self.done.peek() {
            if t > now {
                break;
            }
            self.done.pop();
            completed.push(id);
        }
    }

    /// Never: every flow shares links with other replicas' traffic (a replica simulated
    /// alone would see an empty fabric), so replicas are not independent.
    fn folding(&self) -> Option<Vec<u32>> {
        None
    }

    fn group_key(&mut self, _: &[u32], _: CollectiveSet, _: &mut Vec<u64>) {}
}
