//! The discrete-event core: replays a [`StepGraph`] on every rank of the plan.
//!
//! Each rank runs its stage's program on in-order streams (as CUDA streams do): an op starts
//! when it heads its stream, the stream is idle, and its cross-stream dependencies are done.
//! A comm op occupies its stream from arrival; the collective itself starts when every
//! member has arrived and is timed by the [`Network`]. Time is integer nanoseconds; events
//! live in a [`queue::RadixHeap`]. Per-rank state is a few flat arrays, so 131,072 ranks
//! cost `O(ranks x ops per stage)` bytes and no allocation per event.
//!
//! The engine knows nothing about YAML or reports: it returns a [`Replay`].

pub mod queue;

/// Stragglers' compute slowdown per rank, decided by `faults`, applied here.
pub use crate::faults::RankSpeeds;

use petgraph::visit::EdgeRef;
use thiserror::Error;

use crate::network::{Completion, Network, Transfer};
use crate::plan::{GroupMask, RankGrid};
use crate::schedule::{CATEGORIES, Category, GroupRef, STREAMS, StepGraph};
use crate::units::Nanos;
use queue::RadixHeap;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(
        "the op graph deadlocked at t={time_ns} ns: rank {rank} stopped at op {op} ({label}) of {ops}; \
         a collective's members reached it in different orders"
    )]
    Deadlock {
        time_ns: Nanos,
        rank: u32,
        op: u32,
        ops: u32,
        label: &'static str,
    },
    #[error("the plan has {grid} ranks but the op graph has {stages} stages for pp={pp}")]
    Shape { grid: u32, stages: usize, pp: u32 },
}

/// One op as the engine sees it: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct EngineOp {
    duration: Nanos,
    comm: u32,
    stream: u8,
    category: u8,
    deps: u8,
}

const NO_COMM: u32 = u32::MAX;

/// A stage program flattened into arrays.
#[derive(Debug, Clone)]
struct Compiled {
    ops: Vec<EngineOp>,
    succ_start: Vec<u32>,
    succ: Vec<u32>,
    stream_ops: Vec<Vec<u32>>,
}

fn compile(step: &StepGraph) -> Vec<Compiled> {
    step.stages
        .iter()
        .map(|sp| {
            let g = &sp.graph;
            let n = g.node_count();
            let mut ops = Vec::with_capacity(n);
            let mut succ_start = Vec::with_capacity(n + 1);
            let mut succ = Vec::new();
            let mut stream_ops = vec![Vec::new(); STREAMS];
            for idx in g.node_indices() {
                let op = &g[idx];
                let deps = g.edges_directed(idx, petgraph::Direction::Incoming).count();
                ops.push(EngineOp {
                    duration: op.duration,
                    comm: op.comm.unwrap_or(NO_COMM),
                    stream: op.stream as u8,
                    category: op.category as u8,
                    deps: deps.min(255) as u8,
                });
                succ_start.push(succ.len() as u32);
                let mut outs: Vec<u32> = g.edges(idx).map(|e| e.target().index() as u32).collect();
                outs.sort_unstable();
                succ.extend(outs);
                stream_ops[op.stream as usize].push(idx.index() as u32);
            }
            succ_start.push(succ.len() as u32);
            Compiled {
                ops,
                succ_start,
                succ,
                stream_ops,
            }
        })
        .collect()
}

/// An executed op of a traced rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEvent {
    pub rank: u32,
    pub op: u32,
    pub start: Nanos,
    pub end: Nanos,
}

/// What one rank did during the step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankStats {
    /// Time attributed to each category (compute first, then exposed communication by
    /// priority TP > CP > EP > PP > DP), indexed by `Category as usize`.
    pub attributed: [Nanos; CATEGORIES],
    pub idle: Nanos,
    /// Total busy time per category, overlapped or not.
    pub busy: [Nanos; CATEGORIES],
    pub pipeline_first_start: Nanos,
    pub pipeline_last_end: Nanos,
    /// Time with nothing active on any stream: the rank waits on its pipeline peers.
    pub stall: Nanos,
    pub stall_at_first_start: Nanos,
    pub stall_at_last_end: Nanos,
    pub end: Nanos,
}

/// The outcome of replaying one step.
#[derive(Debug, Clone)]
pub struct Replay {
    pub step_time: Nanos,
    pub ranks: Vec<RankStats>,
    pub trace: Vec<TraceEvent>,
    /// Events of the step: one per compute-op instance and one per collective instance
    /// (what a full replay processes; [`event_count`] knows it before replaying).
    pub events: u64,
    /// Events this replay actually processed (fewer than `events` when replicas were folded).
    pub replayed_events: u64,
}

/// Which ranks to record op by op.
#[derive(Debug, Clone)]
pub enum TraceRanks {
    None,
    Some(Vec<u32>),
    All,
}

/// Per-rank activity accounting. Categories are attributed in enum order (compute first,
/// then TP > CP > EP > PP > DP), so the highest-priority active category is the lowest set
/// bit of a mask.
struct Accountant {
    active: Vec<[u16; CATEGORIES]>,
    mask: Vec<u16>,
    last: Vec<Nanos>,
}

impl Accountant {
    #[inline]
    fn settle(&mut self, stats: &mut RankStats, rank: usize, now: Nanos) {
        let dt = now - self.last[rank];
        if dt == 0 {
            return;
        }
        self.last[rank] = now;
        let mask = self.mask[rank];
        if mask == 0 {
            stats.idle += dt;
        } else {
            stats.attributed[mask.trailing_zeros() as usize] += dt;
        }
        if mask == 0 {
            stats.stall += dt;
        }
    }

    #[inline]
    fn add(&mut self, rank: usize, category: u8) {
        self.active[rank][category as usize] += 1;
        self.mask[rank] |= 1 << category;
    }

    #[inline]
    fn remove(&mut self, rank: usize, category: u8) {
        let a = &mut self.active[rank][category as usize];
        *a -= 1;
        if *a == 0 {
            self.mask[rank] &= !(1 << category);
        }
    }
}

const COMM_EVENT: u64 = 1 << 63;

/// Membership of every group of one kind, precomputed so the hot loop does no
/// coordinate arithmetic.
struct GroupTable {
    size: u32,
    /// Global group index of each rank.
    group_of: Vec<u32>,
    /// Members of group `g` at `members[g * size..(g + 1) * size]`.
    members: Vec<u32>,
}

impl GroupTable {
    fn new(grid: &RankGrid, mask: GroupMask) -> Self {
        let size = grid.group_size(mask);
        let groups = grid.group_count(mask);
        let group_of = (0..grid.world())
            .map(|r| grid.group_index(r, mask))
            .collect();
        let mut members = Vec::with_capacity(grid.world() as usize);
        for g in 0..groups {
            members.extend((0..size).map(|i| grid.member(mask, g, i)));
        }
        GroupTable {
            size,
            group_of,
            members,
        }
    }
}

/// How the engine finds a comm's groups and member ops.
#[derive(Clone, Copy)]
struct CommInfo {
    /// Index into `tables`, or `P2P_TABLE` for pipeline hops.
    table: u32,
    size: u32,
    /// Offset of this comm's rendezvous slots.
    base: u32,
    /// Groups of this comm per stage (the first group index of stage `s` is `s * groups`),
    /// or all groups when the comm spans stages.
    groups: u32,
    spans_stages: bool,
    from: u32,
    to: u32,
    /// The joining op in the first two participating stages.
    stage_a: u32,
    op_a: u32,
    op_b: u32,
}

const P2P_TABLE: u32 = u32::MAX;

struct Sim<'a, N: Network> {
    step: &'a StepGraph,
    progs: Vec<Compiled>,
    net: &'a mut N,
    speeds: &'a RankSpeeds,
    heap: RadixHeap,
    now: Nanos,
    world: u32,
    stage_size: u32,
    rank_stage: Vec<u32>,
    /// Per rank: offset of its dependency counters in `deps_left`.
    rank_base: Vec<u64>,
    deps_left: Vec<u8>,
    cursor: Vec<u32>,
    busy: Vec<u8>,
    op_start: Vec<Nanos>,
    arrived: Vec<u16>,
    comm_start: Vec<Nanos>,
    comms: Vec<CommInfo>,
    tables: Vec<GroupTable>,
    stats: Vec<RankStats>,
    acct: Accountant,
    traced: Vec<bool>,
    trace: Vec<TraceEvent>,
    members: Vec<u32>,
    completed: Vec<u64>,
    events: u64,
    /// Set when identical data-parallel replicas are folded into one simulated replica.
    fold: Option<Fold>,
    /// The members of the collective being started as the network sees them (GPU ids).
    net_members: Vec<u32>,
}

/// Replica folding: the engine simulates `reduced` (a few replicas) and presents full GPU
/// ids and full groups to the network.
#[derive(Debug, Clone)]
struct Fold {
    full: RankGrid,
    reduced: RankGrid,
    /// Full replica index of each simulated replica.
    replica_of: Vec<u32>,
    /// For each full replica, the simulated replica (index into `replica_of`) standing for it.
    stand_in: Vec<u32>,
}

impl Fold {
    fn gpu(&self, rank: u32) -> u32 {
        let replica = self.reduced.coord(rank, crate::plan::Axis::Edp);
        self.reduced
            .rank_in(rank, &self.full, self.replica_of[replica as usize])
    }
}

impl<'a, N: Network> Sim<'a, N> {
    /// Local group index of `rank` in the groups of comm `c`.
    #[inline]
    fn local_group(&self, info: &CommInfo, rank: u32) -> u32 {
        if info.table == P2P_TABLE {
            rank % self.stage_size
        } else {
            let g = self.tables[info.table as usize].group_of[rank as usize];
            if info.spans_stages {
                g
            } else {
                g % info.groups
            }
        }
    }

    fn fill_members(&mut self, info: &CommInfo, local: u32) {
        self.members.clear();
        if info.table == P2P_TABLE {
            self.members.push(local + info.from * self.stage_size);
            self.members.push(local + info.to * self.stage_size);
        } else {
            let t = &self.tables[info.table as usize];
            let global = if info.spans_stages {
                local
            } else {
                info.stage_a * info.groups + local
            };
            let start = (global * t.size) as usize;
            self.members
                .extend_from_slice(&t.members[start..start + t.size as usize]);
        }
    }

    fn try_start(&mut self, rank: u32, stream: usize) {
        let slot = rank as usize * STREAMS + stream;
        if self.busy[slot] != 0 {
            return;
        }
        let stage = self.rank_stage[rank as usize] as usize;
        let cur = self.cursor[slot] as usize;
        let Some(&op) = self.progs[stage].stream_ops[stream].get(cur) else {
            return;
        };
        if self.deps_left[(self.rank_base[rank as usize] + op as u64) as usize] != 0 {
            return;
        }
        self.busy[slot] = 1;
        let eop = self.progs[stage].ops[op as usize];
        if eop.comm == NO_COMM {
            self.begin_activity(rank, eop.category);
            self.op_start[slot] = self.now;
            let end = self.now + self.speeds.scale(rank, eop.duration);
            self.heap.push(end, ((rank as u64) << 32) | op as u64);
        } else {
            let info = self.comms[eop.comm as usize];
            let local = self.local_group(&info, rank);
            let idx = (info.base + local) as usize;
            self.arrived[idx] += 1;
            if self.arrived[idx] as u32 == info.size {
                self.start_collective(eop.comm, &info, local);
            }
        }
    }

    fn start_collective(&mut self, c: u32, info: &CommInfo, local: u32) {
        self.fill_members(info, local);
        let comm = &self.step.comms[c as usize];
        let id = COMM_EVENT | ((c as u64) << 32) | local as u64;
        let members: &[u32] = match &self.fold {
            None => &self.members,
            Some(fold) => {
                self.net_members.clear();
                let spans = matches!(comm.group, GroupRef::Axes(m) if RankGrid::spans_replicas(m));
                match comm.group {
                    GroupRef::Axes(mask) if spans => {
                        let first = fold.gpu(self.members[0]);
                        let g = fold.full.group_index(first, mask);
                        fold.full.members_into(mask, g, &mut self.net_members);
                    }
                    _ => self
                        .net_members
                        .extend(self.members.iter().map(|&m| fold.gpu(m))),
                }
                &self.net_members
            }
        };
        let t = Transfer {
            id,
            collective: comm.collective,
            bytes: comm.bytes,
            members,
            category: comm.category,
        };
        let completion = self.net.begin(self.now, &t);
        self.comm_start[(info.base + local) as usize] = self.now;
        let category = comm.category as u8;
        for i in 0..self.members.len() {
            let m = self.members[i];
            self.begin_activity(m, category);
        }
        if let Completion::At(end) = completion {
            self.heap.push(end, id);
        }
    }

    #[inline]
    fn begin_activity(&mut self, rank: u32, category: u8) {
        let r = rank as usize;
        self.acct.settle(&mut self.stats[r], r, self.now);
        self.acct.add(r, category);
        let st = &mut self.stats[r];
        if Category::ALL[category as usize].is_pipeline_compute()
            && st.pipeline_first_start == Nanos::MAX
        {
            st.pipeline_first_start = self.now;
            st.stall_at_first_start = st.stall;
        }
    }

    #[inline]
    fn end_activity(&mut self, rank: u32, category: u8, start: Nanos) {
        let r = rank as usize;
        self.acct.settle(&mut self.stats[r], r, self.now);
        self.acct.remove(r, category);
        let st = &mut self.stats[r];
        st.busy[category as usize] += self.now - start;
        if Category::ALL[category as usize].is_pipeline_compute() {
            st.pipeline_last_end = self.now;
            st.stall_at_last_end = st.stall;
        }
        st.end = self.now;
    }

    /// Marks `op` of `rank` done: frees its stream and releases dependents.
    fn finish(&mut self, rank: u32, op: u32, start: Nanos) {
        let stage = self.rank_stage[rank as usize] as usize;
        let eop = self.progs[stage].ops[op as usize];
        let stream = eop.stream as usize;
        let slot = rank as usize * STREAMS + stream;
        self.end_activity(rank, eop.category, start);
        if self.traced[rank as usize] {
            self.trace.push(TraceEvent {
                rank: self.fold.as_ref().map_or(rank, |f| f.gpu(rank)),
                op,
                start,
                end: self.now,
            });
        }
        self.busy[slot] = 0;
        self.cursor[slot] += 1;
        let base = self.rank_base[rank as usize];
        let (a, b) = {
            let p = &self.progs[stage];
            (p.succ_start[op as usize], p.succ_start[op as usize + 1])
        };
        for i in a..b {
            let s = self.progs[stage].succ[i as usize];
            let di = (base + s as u64) as usize;
            self.deps_left[di] -= 1;
            if self.deps_left[di] == 0 {
                let st = self.progs[stage].ops[s as usize].stream as usize;
                self.try_start(rank, st);
            }
        }
        self.try_start(rank, stream);
    }

    fn handle(&mut self, payload: u64) {
        self.events += 1;
        if payload & COMM_EVENT == 0 {
            let rank = (payload >> 32) as u32;
            let op = payload as u32;
            let stage = self.rank_stage[rank as usize] as usize;
            let slot = rank as usize * STREAMS + self.progs[stage].ops[op as usize].stream as usize;
            let start = self.op_start[slot];
            self.finish(rank, op, start);
        } else {
            let c = ((payload & !COMM_EVENT) >> 32) as u32;
            let local = payload as u32;
            let info = self.comms[c as usize];
            let start = self.comm_start[(info.base + local) as usize];
            self.fill_members(&info, local);
            let members = std::mem::take(&mut self.members);
            for &m in &members {
                let stage = self.rank_stage[m as usize];
                let op = if stage == info.stage_a {
                    info.op_a
                } else {
                    self.op_in_stage(c, stage, info.op_b)
                };
                self.finish(m, op, start);
            }
            self.members = members;
        }
    }

    fn op_in_stage(&self, c: u32, stage: u32, fallback: u32) -> u32 {
        let ops = &self.step.comms[c as usize].ops;
        if ops.len() <= 2 {
            return fallback;
        }
        ops.iter()
            .find(|(s, _)| *s == stage)
            .map_or(fallback, |&(_, o)| o)
    }

    fn run(&mut self) -> Result<(), EngineError> {
        for r in 0..self.world {
            for s in 0..STREAMS {
                self.try_start(r, s);
            }
        }
        loop {
            let next_net = self.net.next_event();
            let next_heap = self.heap.peek_key();
            let t = match (next_heap, next_net) {
                (None, None) => break,
                (Some(h), Some(n)) => h.min(n),
                (Some(h), None) => h,
                (None, Some(n)) => n,
            };
            self.now = t;
            if next_net.is_some_and(|n| n <= t) {
                let mut done = std::mem::take(&mut self.completed);
                done.clear();
                self.net.advance(t, &mut done);
                for &id in &done {
                    self.handle(id);
                }
                self.completed = done;
            }
            while self.heap.peek_key() == Some(t) {
                let Some((_, payload)) = self.heap.pop() else {
                    break;
                };
                self.handle(payload);
            }
        }
        self.check_complete()
    }

    fn check_complete(&self) -> Result<(), EngineError> {
        for r in 0..self.world {
            let stage = self.rank_stage[r as usize] as usize;
            for s in 0..STREAMS {
                let cur = self.cursor[r as usize * STREAMS + s] as usize;
                if let Some(&op) = self.progs[stage].stream_ops[s].get(cur) {
                    return Err(EngineError::Deadlock {
                        time_ns: self.now,
                        rank: r,
                        op,
                        ops: self.progs[stage].ops.len() as u32,
                        label: self.step.stages[stage].op(op).label,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Precomputes group tables and rendezvous slot offsets for every comm.
fn comm_infos(step: &StepGraph, grid: &RankGrid) -> (Vec<CommInfo>, Vec<GroupTable>, u32) {
    let pp = step.stages.len() as u32;
    let mut masks: Vec<GroupMask> = Vec::new();
    let mut tables = Vec::new();
    let mut infos = Vec::with_capacity(step.comms.len());
    let mut slots = 0u32;
    for c in &step.comms {
        let (stage_a, op_a) = c.ops.first().copied().unwrap_or((0, 0));
        let op_b = c.ops.get(1).map_or(op_a, |&(_, o)| o);
        let mut info = CommInfo {
            table: P2P_TABLE,
            size: 2,
            base: slots,
            groups: grid.stage_size(),
            spans_stages: false,
            from: 0,
            to: 0,
            stage_a,
            op_a,
            op_b,
        };
        match c.group {
            GroupRef::Axes(mask) => {
                let t = match masks.iter().position(|&m| m == mask) {
                    Some(t) => t,
                    None => {
                        masks.push(mask);
                        tables.push(GroupTable::new(grid, mask));
                        masks.len() - 1
                    }
                };
                let spans = mask.0 & GroupMask::PP.0 != 0;
                let count = grid.group_count(mask);
                info.table = t as u32;
                info.size = tables[t].size;
                info.spans_stages = spans;
                info.groups = if spans { count } else { count / pp };
            }
            GroupRef::P2p { from, to } => {
                info.from = from;
                info.to = to;
            }
        }
        slots += info.groups;
        infos.push(info);
    }
    (infos, tables, slots)
}

/// Replays one step of `step` on every rank of `grid` over `net`.
///
/// Data-parallel replicas that are provably identical — same speeds, same links, and a
/// network whose collective times depend only on their members (no contention) — are
/// simulated once and their results copied: the replay then covers the replicas holding
/// slow GPUs, degraded links or traced ranks, plus one healthy replica standing for all the
/// others. Results equal the full replay (tested); [`replay_all`] forces the full one.
pub fn replay<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Result<Replay, EngineError> {
    match plan_fold(step, grid, net, speeds, trace_ranks) {
        Some(fold) => replay_folded(step, fold, net, speeds, trace_ranks),
        None => replay_grid(step, grid, net, speeds, trace_ranks, None),
    }
}

/// Replays every rank, never folding replicas.
pub fn replay_all<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Result<Replay, EngineError> {
    replay_grid(step, grid, net, speeds, trace_ranks, None)
}

/// The replicas a folded replay must simulate, or `None` when folding saves nothing or is
/// not exact.
///
/// A replica is *special* when it holds a slow GPU, a degraded link or a traced rank: it is
/// simulated as itself. The others are grouped into classes by their placement on the fabric
/// ([`Network::group_key`] of every replica-local group: TP/CP/EP groups and pipeline hops);
/// one replica per class is simulated and stands for the rest of its class. Exactness: a
/// replica's ops depend only on its stage programs, its speeds, the times of its own groups'
/// collectives (equal within a class) and the collectives spanning replicas, which start
/// when every member has arrived and which the network times over the full group.
fn plan_fold<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Option<Fold> {
    let replicas = grid.replicas();
    if replicas <= 2 {
        return None;
    }
    let degraded = net.folding()?;
    let replica = |r: u32| grid.coord(r, crate::plan::Axis::Edp);
    let mut special: Vec<u32> = degraded
        .into_iter()
        .chain(speeds.slow_ranks())
        .map(replica)
        .collect();
    match trace_ranks {
        TraceRanks::All => return None,
        TraceRanks::Some(rs) => special.extend(
            rs.iter()
                .filter(|&&r| r < grid.world())
                .map(|&r| replica(r)),
        ),
        TraceRanks::None => {}
    }
    special.sort_unstable();
    special.dedup();
    if special.len() as u32 * 2 > replicas {
        return None;
    }
    // Replica-local group kinds: masks without the replica axis, and pipeline hops.
    let mut masks: Vec<GroupMask> = Vec::new();
    let mut hops: Vec<(u32, u32)> = Vec::new();
    for c in &step.comms {
        match c.group {
            GroupRef::Axes(m) if !RankGrid::spans_replicas(m) => masks.push(m),
            GroupRef::Axes(_) => {}
            GroupRef::P2p { from, to } => hops.push((from.min(to), from.max(to))),
        }
    }
    masks.sort_unstable();
    masks.dedup();
    hops.sort_unstable();
    hops.dedup();
    // The replica-local groups of replica 0 as full ranks, flattened; replica `k`'s are the
    // same plus `k` times the replica stride.
    let one = grid.with_replicas(1);
    let stride = one.rank_in(0, grid, 1) - one.rank_in(0, grid, 0);
    let mut flat: Vec<u32> = Vec::new();
    let mut bounds: Vec<u32> = vec![0];
    for &m in &masks {
        for g in 0..one.group_count(m) {
            flat.extend((0..one.group_size(m)).map(|i| one.rank_in(one.member(m, g, i), grid, 0)));
            bounds.push(flat.len() as u32);
        }
    }
    let ss = one.stage_size();
    for &(a, b) in &hops {
        for local in 0..ss {
            flat.push(one.rank_in(local + a * ss, grid, 0));
            flat.push(one.rank_in(local + b * ss, grid, 0));
            bounds.push(flat.len() as u32);
        }
    }
    let mut members = Vec::new();
    let mut signature = |k: u32, key: &mut Vec<u64>| {
        key.clear();
        for w in bounds.windows(2) {
            members.clear();
            members.extend(
                flat[w[0] as usize..w[1] as usize]
                    .iter()
                    .map(|&r| r + k * stride),
            );
            net.group_key(&members, key);
        }
    };
    // Classes of the ordinary replicas, each represented by its first member.
    let mut classes: std::collections::HashMap<Vec<u64>, u32> = std::collections::HashMap::new();
    let mut class_of = vec![u32::MAX; replicas as usize];
    let mut simulated = special.clone();
    let mut key = Vec::new();
    for k in 0..replicas {
        if special.binary_search(&k).is_ok() {
            continue;
        }
        signature(k, &mut key);
        let rep = match classes.get(&key) {
            Some(&rep) => rep,
            None => {
                if (simulated.len() as u32 + 1) * 2 > replicas {
                    return None;
                }
                classes.insert(key.clone(), k);
                simulated.push(k);
                k
            }
        };
        class_of[k as usize] = rep;
    }
    simulated.sort_unstable();
    let stand_in = (0..replicas)
        .map(|k| {
            let rep = if class_of[k as usize] == u32::MAX {
                k
            } else {
                class_of[k as usize]
            };
            simulated.binary_search(&rep).map(|i| i as u32).ok()
        })
        .collect::<Option<Vec<u32>>>()?;
    let reduced = grid.with_replicas(simulated.len() as u32);
    Some(Fold {
        full: grid.clone(),
        reduced,
        replica_of: simulated,
        stand_in,
    })
}

fn replay_folded<N: Network>(
    step: &StepGraph,
    fold: Fold,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Result<Replay, EngineError> {
    let reduced = fold.reduced.clone();
    let mut small_speeds = RankSpeeds::uniform();
    for r in 0..reduced.world() {
        let f = speeds.factor(fold.gpu(r));
        if f != 1.0 {
            small_speeds.set(reduced.world(), r, f);
        }
    }
    let small_trace = match trace_ranks {
        TraceRanks::Some(rs) => TraceRanks::Some(
            (0..reduced.world())
                .filter(|&r| rs.contains(&fold.gpu(r)))
                .collect(),
        ),
        other => other.clone(),
    };
    let full = fold.full.clone();
    let small = replay_grid(
        step,
        &reduced,
        net,
        &small_speeds,
        &small_trace,
        Some(fold.clone()),
    )?;
    // Every full rank takes the stats of the simulated rank standing for its replica.
    let stand_in = |r: u32| {
        let replica = full.coord(r, crate::plan::Axis::Edp);
        full.rank_in(r, &reduced, fold.stand_in[replica as usize])
    };
    let ranks = (0..full.world())
        .map(|r| small.ranks[stand_in(r) as usize].clone())
        .collect();
    Ok(Replay {
        ranks,
        events: event_count(step, &full),
        ..small
    })
}

/// Events a full replay of `step` on `grid` processes: one per compute-op instance (every
/// rank of a stage runs its stage's program) and one per collective instance (one per
/// group). It depends only on the graph and the grid, not on timing, so it is known before
/// replaying.
pub fn event_count(step: &StepGraph, grid: &RankGrid) -> u64 {
    let stage_size = grid.stage_size() as u64;
    let ops: u64 = step
        .stages
        .iter()
        .map(|sp| sp.graph.node_weights().filter(|o| o.comm.is_none()).count() as u64)
        .sum();
    let pp = step.stages.len().max(1) as u64;
    let collectives: u64 = step
        .comms
        .iter()
        .map(|c| match c.group {
            GroupRef::Axes(mask) if mask.0 & GroupMask::PP.0 != 0 => grid.group_count(mask) as u64,
            GroupRef::Axes(mask) => grid.group_count(mask) as u64 / pp,
            GroupRef::P2p { .. } => stage_size,
        })
        .sum();
    ops * stage_size + collectives
}

fn replay_grid<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
    fold: Option<Fold>,
) -> Result<Replay, EngineError> {
    let pp = step.stages.len() as u32;
    if pp == 0 || grid.world() / grid.stage_size() != pp {
        return Err(EngineError::Shape {
            grid: grid.world(),
            stages: step.stages.len(),
            pp,
        });
    }
    let progs = compile(step);
    let world = grid.world() as usize;
    let stage_size = grid.stage_size();
    let rank_stage: Vec<u32> = (0..grid.world()).map(|r| grid.stage_of(r)).collect();
    let mut rank_base = Vec::with_capacity(world);
    let mut deps_left = Vec::new();
    for p in &progs {
        let template: Vec<u8> = p.ops.iter().map(|o| o.deps).collect();
        for _ in 0..stage_size {
            rank_base.push(deps_left.len() as u64);
            deps_left.extend_from_slice(&template);
        }
    }
    let (comms, tables, slots) = comm_infos(step, grid);
    let mut traced = vec![false; world];
    match trace_ranks {
        TraceRanks::None => {}
        TraceRanks::All => traced.iter_mut().for_each(|t| *t = true),
        TraceRanks::Some(rs) => rs
            .iter()
            .filter(|&&r| (r as usize) < world)
            .for_each(|&r| traced[r as usize] = true),
    }
    let stats = RankStats {
        pipeline_first_start: Nanos::MAX,
        ..Default::default()
    };
    let mut sim = Sim {
        step,
        progs,
        net,
        speeds,
        heap: RadixHeap::new(),
        now: 0,
        world: grid.world(),
        stage_size,
        rank_stage,
        rank_base,
        deps_left,
        cursor: vec![0; world * STREAMS],
        busy: vec![0; world * STREAMS],
        op_start: vec![0; world * STREAMS],
        arrived: vec![0; slots as usize],
        comm_start: vec![0; slots as usize],
        comms,
        tables,
        stats: vec![stats; world],
        acct: Accountant {
            active: vec![[0; CATEGORIES]; world],
            mask: vec![0; world],
            last: vec![0; world],
        },
        traced,
        trace: Vec::new(),
        members: Vec::new(),
        completed: Vec::new(),
        events: 0,
        fold,
        net_members: Vec::new(),
    };
    sim.run()?;
    let step_time = sim.stats.iter().map(|s| s.end).max().unwrap_or(0);
    for r in 0..world {
        sim.acct.settle(&mut sim.stats[r], r, step_time);
    }
    Ok(Replay {
        step_time,
        ranks: sim.stats,
        trace: sim.trace,
        events: sim.events,
        replayed_events: sim.events,
    })
}
