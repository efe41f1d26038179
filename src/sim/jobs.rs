//! Several jobs on one cluster (`jobs:`): placement, each job's step alone and shared,
//! and the links where they meet.
//!
//! Each job replays its own op graph on its own GPUs; [`engine::replay_shared`] runs
//! them over one flow network, so their flows share links max-min fairly where their
//! routes meet. "Alone" replays the job by itself on the same GPUs of the same network
//! (same background), so the difference is the other jobs' traffic and nothing else: two
//! jobs whose flows cross no common link take exactly their alone times
//! (`tests/multi_job.rs`).
//!
//! Must not do I/O or define metrics (those are `metrics`).

use super::metrics::{StepMetrics, step_metrics};
use super::step::{StepOptions, build_graph};
use crate::config::Scenario;
use crate::config::jobs::{JobsSpec, Placement};
use crate::engine::{
    self, EngineError, Replay, ReplayBudget, ReplayEstimate, ReplayMode, SharedJob, TraceRanks,
};
use crate::faults::rng::splitmix64;
use crate::network::links::{LinkPlace, link_place};
use crate::network::topology::LinkKind;
use crate::network::{FlowNetwork, NetworkSettings, Topology};
use crate::plan::ParallelismSpec;
use crate::plan::RankGrid;
use crate::schedule::{Comm, GroupRef, Op, StageProgram, StepGraph, Stream};
use crate::vocab::{Category, Collective};

/// One job's outcome.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub name: String,
    pub gpus: u32,
    /// Its nodes, in rank order (rank `r` runs on GPU `r % node.gpus` of node
    /// `nodes[r / node.gpus]`).
    pub nodes: Vec<u32>,
    /// The job alone on its GPUs.
    pub alone: StepMetrics,
    /// The job while every job runs.
    pub shared: StepMetrics,
    pub graph: StepGraph,
    pub grid: RankGrid,
    /// The shared replay.
    pub replay: Replay,
}

impl JobRun {
    /// Shared step time over alone step time.
    pub fn slowdown(&self) -> f64 {
        self.shared.step_time_s / self.alone.step_time_s.max(1e-12)
    }
}

/// A link that carries traffic of more than one job.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedLink {
    pub id: u32,
    pub kind: LinkKind,
    pub src: String,
    pub dst: String,
    pub place: LinkPlace,
    /// Bytes each job moves over it in one step (in job order).
    pub bytes: Vec<f64>,
}

/// Every job's outcome, the links where they interfere and the shared network (its link
/// accounting closed at the end of the last job's step).
#[derive(Debug, Clone)]
pub struct JobsResult {
    pub jobs: Vec<JobRun>,
    /// Links carrying more than one job's traffic, most bytes first (at most
    /// [`SHARED_LINKS`]).
    pub shared_links: Vec<SharedLink>,
    /// Links carrying more than one job's traffic, in all.
    pub shared_link_count: usize,
    pub network: FlowNetwork,
    /// End of the last job's shared step, ns.
    pub span: crate::units::Nanos,
}

/// Shared links listed in a [`JobsResult`].
pub const SHARED_LINKS: usize = 10;

/// The nodes of every job: explicit lists first, then the policy over the free nodes
/// (see [`Placement`]), each job a consecutive run of the resulting order.
pub fn place_jobs(spec: &JobsSpec, topo: &Topology, seed: u64) -> Vec<Vec<u32>> {
    let nodes = topo.nodes();
    let mut used = vec![false; nodes as usize];
    for j in &spec.jobs {
        for &n in j.nodes.iter().flatten() {
            if let Some(u) = used.get_mut(n as usize) {
                *u = true;
            }
        }
    }
    for &n in &spec.background.storage_nodes {
        if let Some(u) = used.get_mut(n as usize) {
            *u = true;
        }
    }
    let mut free: Vec<u32> = (0..nodes).filter(|&n| !used[n as usize]).collect();
    match spec.placement {
        Placement::Packed => {}
        Placement::Spread => {
            let leaf = |n: u32| -> u32 {
                if topo.nics_per_node == 0 {
                    0
                } else {
                    topo.leaf_of_nic(topo.nic_of(n * topo.gpus_per_node))
                }
            };
            let mut rank_in_leaf = std::collections::HashMap::new();
            let mut key: Vec<(u32, u32, u32)> = Vec::with_capacity(free.len());
            for &n in &free {
                let l = leaf(n);
                let k = rank_in_leaf.entry(l).or_insert(0u32);
                key.push((*k, l, n));
                *k += 1;
            }
            key.sort_unstable();
            free = key.into_iter().map(|(_, _, n)| n).collect();
        }
        Placement::Random => {
            free.sort_by_key(|&n| (splitmix64(seed ^ splitmix64(u64::from(n) + 1)), n));
        }
    }
    let mut next = free.into_iter();
    spec.jobs
        .iter()
        .map(|j| match &j.nodes {
            Some(list) => list.clone(),
            None => next.by_ref().take(j.node_count as usize).collect(),
        })
        .collect()
}

/// The GPU of each rank of a job on `nodes`.
fn gpus_of(nodes: &[u32], gpn: u32, world: u32) -> Vec<u32> {
    (0..world)
        .map(|r| nodes[(r / gpn) as usize % nodes.len().max(1)] * gpn + r % gpn)
        .collect()
}

/// The flow network the jobs share: the scenario's cluster and network settings, with
/// the background's share of each tier taken.
pub fn jobs_network(s: &Scenario, spec: &JobsSpec) -> FlowNetwork {
    let settings = NetworkSettings {
        algorithm: s.network.algorithm,
        routing: s.network.routing,
    };
    let b = &spec.background;
    FlowNetwork::new(&s.cluster, settings).with_background(&[
        (LinkKind::NicLeaf, b.nic_leaf),
        (LinkKind::LeafSpine, b.leaf_spine),
        (LinkKind::SpineCore, b.spine_core),
    ])
}

/// The checkpoint write of the background (see [`crate::config::jobs::Background`]) as
/// a job of its own: a two-stage graph whose stage-0 rank `i` sends its bytes to stage-1
/// rank `i`, with the GPUs of every job node as senders and the storage nodes' GPUs
/// (same GPU index, storage nodes in turn) as receivers. `None` without one.
fn checkpoint_job(
    spec: &JobsSpec,
    placement: &[Vec<u32>],
    gpn: u32,
) -> Option<(StepGraph, RankGrid, Vec<u32>)> {
    let b = &spec.background;
    if b.checkpoint_gb_per_node <= 0.0 || b.storage_nodes.is_empty() {
        return None;
    }
    let senders: Vec<u32> = placement
        .iter()
        .flatten()
        .flat_map(|&n| (0..gpn).map(move |g| n * gpn + g))
        .collect();
    let k = b.storage_nodes.len();
    let receivers = senders.iter().enumerate().map(|(i, &gpu)| {
        let node = b.storage_nodes[(i / gpn as usize) % k];
        node * gpn + gpu % gpn
    });
    let gpus: Vec<u32> = senders.iter().copied().chain(receivers).collect();
    let bytes = (b.checkpoint_gb_per_node * 1e9 / gpn as f64).round() as u64;
    let op = |stream: Stream| Op {
        category: Category::Pp,
        stream,
        duration: 0,
        comm: Some(0),
        micro_batch: 0,
        chunk: 0,
        layers: (u16::MAX, u16::MAX),
        label: "checkpoint write",
    };
    let mut send = StageProgram::default();
    send.graph.add_node(op(Stream::SendNext));
    let mut recv = StageProgram::default();
    recv.graph.add_node(op(Stream::RecvPrev));
    let graph = StepGraph {
        stages: vec![send, recv],
        comms: vec![Comm {
            collective: Collective::SendRecv,
            group: GroupRef::P2p { from: 0, to: 1 },
            bytes,
            category: Category::Pp,
            ops: vec![(0, 0), (1, 0)],
        }],
        micro_batches: 1,
    };
    let grid = RankGrid::new(&ParallelismSpec {
        pp: 2,
        dp: senders.len() as u64,
        ..Default::default()
    });
    Some((graph, grid, gpus))
}

/// Refuses, before anything runs, jobs whose replays together (each alone, then all
/// shared: twice each job's work) are above the replay budget (`engine::ReplayBudget`,
/// the limits one step has), unless `--replay all`.
fn check_budget(
    net: &FlowNetwork,
    graphs: &[StepGraph],
    grids: &[RankGrid],
    opts: &StepOptions,
) -> Result<(), EngineError> {
    let mut total: Option<ReplayEstimate> = None;
    for (g, grid) in graphs.iter().zip(grids) {
        let mut probe = net.clone();
        let e = engine::plan(
            g,
            grid,
            &mut probe,
            &opts.speeds,
            &TraceRanks::None,
            ReplayMode::Folded,
        )
        .estimate;
        total = Some(match total {
            None => e,
            Some(t) => ReplayEstimate {
                world: t.world + e.world,
                replayed_ranks: t.replayed_ranks + e.replayed_ranks,
                events: t.events + e.events,
                bytes: t.bytes.max(e.bytes),
                trace_bytes: t.trace_bytes.max(e.trace_bytes),
                flow_work: t.flow_work + e.flow_work,
                ..t
            },
        });
    }
    match total {
        Some(mut t) => {
            t.events = t.events.saturating_mul(2);
            t.flow_work = t.flow_work.saturating_mul(2);
            t.shared_fabric = true;
            t.check(&ReplayBudget::from_env()?)
        }
        None => Ok(()),
    }
}

/// Simulates every job of `s` (which must have `jobs:`) alone and together; `trace`
/// traces ranks of the first job; `per_link` records link use over time per link.
pub fn simulate_jobs(
    s: &Scenario,
    spec: &JobsSpec,
    opts: &StepOptions,
    per_link: bool,
) -> Result<JobsResult, EngineError> {
    let probe = jobs_network(s, spec);
    let placement = place_jobs(spec, probe.topology(), s.faults.seed);
    let gpn = probe.topology().gpus_per_node;
    let graphs: Vec<StepGraph> = spec.jobs.iter().map(|j| build_graph(&j.scenario)).collect();
    let grids: Vec<RankGrid> = spec
        .jobs
        .iter()
        .map(|j| RankGrid::new(&j.scenario.parallelism))
        .collect();
    let gpus: Vec<Vec<u32>> = placement
        .iter()
        .zip(&grids)
        .map(|(nodes, g)| gpus_of(nodes, gpn, g.world()))
        .collect();
    let none = TraceRanks::None;
    let uniform = crate::faults::RankSpeeds::uniform();
    if opts.replay == ReplayMode::Folded {
        check_budget(&probe, &graphs, &grids, opts)?;
    }
    let job = |j: usize| -> SharedJob<'_> {
        SharedJob {
            step: &graphs[j],
            grid: &grids[j],
            speeds: &opts.speeds,
            trace: &none,
            gpus: &gpus[j],
        }
    };
    // The checkpoint background runs with every replay, alone or shared (it is part of
    // the environment, as the background's share of the links is).
    let ckpt = checkpoint_job(spec, &placement, gpn);
    let background: Vec<SharedJob<'_>> = ckpt
        .iter()
        .map(|(g, grid, gpus)| SharedJob {
            step: g,
            grid,
            speeds: &uniform,
            trace: &none,
            gpus,
        })
        .collect();
    // What the background alone moves per link, so that each job's bytes exclude it.
    let bg_bytes = match background.is_empty() {
        true => None,
        false => {
            let mut net = probe.clone();
            let r = engine::replay_shared(&background, &mut net)?;
            net.finish_accounting(r.iter().map(|r| r.step_time).max().unwrap_or(0));
            Some(net.counters().bytes)
        }
    };
    // Alone: each job by itself on the same GPUs of the same network.
    let mut alone = Vec::with_capacity(spec.jobs.len());
    let mut job_bytes = Vec::with_capacity(spec.jobs.len());
    for j in 0..spec.jobs.len() {
        let mut net = probe.clone();
        let mut runs = vec![job(j)];
        runs.extend(background.iter().copied());
        let mut r = engine::replay_shared(&runs, &mut net)?;
        net.finish_accounting(r.iter().map(|r| r.step_time).max().unwrap_or(0));
        let mut bytes = net.counters().bytes;
        if let Some(bg) = &bg_bytes {
            // Differences of sums of the same flows: below a byte is rounding.
            for (b, g) in bytes.iter_mut().zip(bg) {
                *b = if *b - g < 1.0 { 0.0 } else { *b - g };
            }
        }
        job_bytes.push(bytes);
        alone.push(r.remove(0));
    }
    // Shared: all at once; the first job's traced ranks are recorded.
    let mut net = probe;
    net.record_usage(per_link);
    let mut all: Vec<SharedJob<'_>> = (0..spec.jobs.len()).map(job).collect();
    all[0].trace = &opts.trace;
    all.extend(background.iter().copied());
    let mut replays = engine::replay_shared(&all, &mut net)?;
    replays.truncate(spec.jobs.len());
    let span = replays.iter().map(|r| r.step_time).max().unwrap_or(0);
    net.finish_accounting(span);
    let topo = net.topology();
    let mut shared_links: Vec<SharedLink> = (0..topo.links())
        .filter(|&l| job_bytes.iter().filter(|b| b[l] > 0.0).count() > 1)
        .map(|l| {
            let (a, b) = topo.ends[l];
            SharedLink {
                id: l as u32,
                kind: topo.kind[l],
                src: topo.vertex_name(a),
                dst: topo.vertex_name(b),
                place: link_place(topo, l),
                bytes: job_bytes.iter().map(|b| b[l]).collect(),
            }
        })
        .collect();
    let shared_link_count = shared_links.len();
    let total = |l: &SharedLink| l.bytes.iter().sum::<f64>();
    shared_links.sort_by(|a, b| total(b).total_cmp(&total(a)).then(a.id.cmp(&b.id)));
    shared_links.truncate(SHARED_LINKS);
    let jobs = spec
        .jobs
        .iter()
        .zip(replays)
        .zip(alone)
        .enumerate()
        .map(|(j, ((js, shared), alone))| {
            let sc = &js.scenario;
            JobRun {
                name: js.name.clone(),
                gpus: grids[j].world(),
                nodes: placement[j].clone(),
                alone: step_metrics(sc, &graphs[j], &grids[j], &alone),
                shared: step_metrics(sc, &graphs[j], &grids[j], &shared),
                graph: graphs[j].clone(),
                grid: grids[j].clone(),
                replay: shared,
            }
        })
        .collect();
    Ok(JobsResult {
        jobs,
        shared_links,
        shared_link_count,
        network: net,
        span,
    })
}
