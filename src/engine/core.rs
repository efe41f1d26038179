//! The replay loop and its data layout.
//!
//! Layout, for cache locality at 10^8 events:
//! - each stage program is compiled once into flat arrays ([`Program`]): a 16-byte record
//!   per op, its position in its stream, and predecessor/successor lists in CSR form;
//! - each rank's whole mutable state is one 64-byte-aligned record ([`RankState`]): stream
//!   cursors, busy bits, active categories and the accounting clock share its first cache
//!   line, its statistics the next ones. An event touches one rank's record and the (shared,
//!   cache-resident) program of its stage, nothing indexed by rank x op;
//! - a dependency is met when its predecessor's stream cursor has passed it (streams run in
//!   order), so no per-rank-per-op counters exist: memory is `O(ranks x streams)`;
//! - an op's start is recomputed at its end (`end - scaled duration`), not stored;
//! - events of one instant pop in rank order ([`RadixHeap`] is canonical on ties), so a
//!   wave of 8,192 ranks finishing together walks the rank records in memory order.
//!
//! No allocation per event: member lists and completion buffers are reused.

use super::queue::RadixHeap;
use super::{EngineError, RankSpeeds, RankStats, Replay, TraceEvent, TraceRanks, fold::Fold};
use crate::network::{Completion, Network, Transfer};
use crate::plan::{GroupMask, RankGrid};
use crate::schedule::{CATEGORIES, GroupRef, STREAMS, StepGraph};
use crate::units::Nanos;
use crate::vocab::CollectiveSet;

/// One op as the engine sees it: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct OpRec {
    duration: Nanos,
    /// Index into `StepGraph::comms`, or `NO_COMM` for compute ops.
    comm: u32,
    stream: u8,
    category: u8,
    /// A forward/backward/recompute pass (what a pipeline bubble is measured against).
    pipeline: bool,
}

const NO_COMM: u32 = u32::MAX;

/// A predecessor as `stream << 28 | position in stream`.
const POS_BITS: u32 = 28;
const POS_MASK: u32 = (1 << POS_BITS) - 1;

/// A stage program flattened into arrays.
#[derive(Debug, Clone)]
struct Program {
    ops: Vec<OpRec>,
    /// Position of each op in its stream.
    pos: Vec<u32>,
    /// Predecessors of op `o` (other than its stream predecessor) at
    /// `preds[pred_start[o]..pred_start[o + 1]]`, packed stream and position.
    pred_start: Vec<u32>,
    preds: Vec<u32>,
    /// Successors of op `o`, ascending and distinct.
    succ_start: Vec<u32>,
    succ: Vec<u32>,
    /// Ops of stream `s` in order at `stream_ops[stream_start[s]..stream_start[s + 1]]`.
    stream_start: [u32; STREAMS + 1],
    stream_ops: Vec<u32>,
}

impl Program {
    #[inline]
    fn head(&self, stream: usize, cursor: u32) -> Option<u32> {
        let i = self.stream_start[stream] + cursor;
        (i < self.stream_start[stream + 1]).then(|| self.stream_ops[i as usize])
    }

    /// Whether every predecessor of `op` is done, given the rank's stream cursors.
    #[inline]
    fn ready(&self, op: u32, cursor: &[u32; STREAMS]) -> bool {
        let (a, b) = (
            self.pred_start[op as usize],
            self.pred_start[op as usize + 1],
        );
        self.preds[a as usize..b as usize]
            .iter()
            .all(|&p| cursor[(p >> POS_BITS) as usize] > p & POS_MASK)
    }
}

fn compile(step: &StepGraph) -> Vec<Program> {
    use petgraph::Direction::{Incoming, Outgoing};
    step.stages
        .iter()
        .map(|sp| {
            let g = &sp.graph;
            let n = g.node_count();
            let mut ops = Vec::with_capacity(n);
            let mut pos = Vec::with_capacity(n);
            let mut per_stream: Vec<Vec<u32>> = vec![Vec::new(); STREAMS];
            for idx in g.node_indices() {
                let op = &g[idx];
                let s = op.stream as usize;
                pos.push(per_stream[s].len() as u32);
                per_stream[s].push(idx.index() as u32);
                ops.push(OpRec {
                    duration: op.duration,
                    comm: op.comm.unwrap_or(NO_COMM),
                    stream: s as u8,
                    category: op.category as u8,
                    pipeline: op.category.is_pipeline_compute(),
                });
            }
            let mut pred_start = Vec::with_capacity(n + 1);
            let mut preds = Vec::new();
            let mut succ_start = Vec::with_capacity(n + 1);
            let mut succ = Vec::new();
            for idx in g.node_indices() {
                pred_start.push(preds.len() as u32);
                let mut ins: Vec<u32> = g
                    .neighbors_directed(idx, Incoming)
                    .map(|p| {
                        let p = p.index();
                        assert!(pos[p] <= POS_MASK, "stream longer than 2^28 ops");
                        (ops[p].stream as u32) << POS_BITS | pos[p]
                    })
                    .collect();
                ins.sort_unstable();
                ins.dedup();
                preds.extend(ins);
                succ_start.push(succ.len() as u32);
                let mut outs: Vec<u32> = g
                    .neighbors_directed(idx, Outgoing)
                    .map(|s| s.index() as u32)
                    .collect();
                outs.sort_unstable();
                outs.dedup();
                succ.extend(outs);
            }
            pred_start.push(preds.len() as u32);
            succ_start.push(succ.len() as u32);
            let mut stream_start = [0u32; STREAMS + 1];
            let mut stream_ops = Vec::with_capacity(n);
            for (s, list) in per_stream.iter().enumerate() {
                stream_start[s] = stream_ops.len() as u32;
                stream_ops.extend_from_slice(list);
            }
            stream_start[STREAMS] = stream_ops.len() as u32;
            Program {
                ops,
                pos,
                pred_start,
                preds,
                succ_start,
                succ,
                stream_start,
                stream_ops,
            }
        })
        .collect()
}

/// Everything the replay changes about one rank, in one place.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct RankState {
    // First cache line: what every event reads and writes.
    /// Ops done per stream (the next op to run is at this position).
    cursor: [u32; STREAMS],
    /// Bit `s` set while stream `s` runs an op (or waits in a collective).
    busy: u8,
    traced: bool,
    /// Bit `c` set while category `c` is active.
    mask: u16,
    /// Ops of each category running now.
    active: [u8; CATEGORIES],
    stage: u32,
    /// Time up to which activity has been attributed.
    last: Nanos,
    /// Time with nothing active (waiting on pipeline peers).
    stall: Nanos,
    // Statistics.
    end: Nanos,
    pipeline_first_start: Nanos,
    pipeline_last_end: Nanos,
    stall_at_first_start: Nanos,
    stall_at_last_end: Nanos,
    attributed: [Nanos; CATEGORIES],
    busy_ns: [Nanos; CATEGORIES],
}

impl RankState {
    fn new(stage: u32, traced: bool) -> Self {
        RankState {
            cursor: [0; STREAMS],
            busy: 0,
            traced,
            mask: 0,
            active: [0; CATEGORIES],
            stage,
            last: 0,
            stall: 0,
            end: 0,
            pipeline_first_start: Nanos::MAX,
            pipeline_last_end: 0,
            stall_at_first_start: 0,
            stall_at_last_end: 0,
            attributed: [0; CATEGORIES],
            busy_ns: [0; CATEGORIES],
        }
    }

    /// Attributes the time since `last` to the highest-priority active category (the
    /// lowest set bit: compute first, then TP > CP > EP > PP > DP), or to stall.
    #[inline]
    fn settle(&mut self, now: Nanos) {
        let dt = now - self.last;
        if dt == 0 {
            return;
        }
        self.last = now;
        if self.mask == 0 {
            self.stall += dt;
        } else {
            self.attributed[self.mask.trailing_zeros() as usize] += dt;
        }
    }

    #[inline]
    fn begin(&mut self, now: Nanos, category: u8, pipeline: bool) {
        self.settle(now);
        self.active[category as usize] += 1;
        self.mask |= 1 << category;
        if pipeline && self.pipeline_first_start == Nanos::MAX {
            self.pipeline_first_start = now;
            self.stall_at_first_start = self.stall;
        }
    }

    #[inline]
    fn end(&mut self, now: Nanos, category: u8, pipeline: bool, start: Nanos) {
        self.settle(now);
        let a = &mut self.active[category as usize];
        *a -= 1;
        if *a == 0 {
            self.mask &= !(1 << category);
        }
        self.busy_ns[category as usize] += now - start;
        if pipeline {
            self.pipeline_last_end = now;
            self.stall_at_last_end = self.stall;
        }
        self.end = now;
    }

    fn stats(&self) -> RankStats {
        RankStats {
            attributed: self.attributed,
            idle: self.stall,
            busy: self.busy_ns,
            pipeline_first_start: self.pipeline_first_start,
            pipeline_last_end: self.pipeline_last_end,
            stall: self.stall,
            stall_at_first_start: self.stall_at_first_start,
            stall_at_last_end: self.stall_at_last_end,
            end: self.end,
        }
    }
}

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
    /// First rendezvous lane of this comm: a rank's lane is `lane_base` plus its global
    /// group index (`P2P_TABLE`: its position in its stage).
    lane_base: u32,
    /// The group spans data-parallel replicas (folding shows the network the full group).
    spans_replicas: bool,
    /// The group's axes (`Axes` comms).
    mask: GroupMask,
    /// What the comm performs.
    collective: crate::vocab::Collective,
    from: u32,
    to: u32,
    /// The joining op in the first two participating stages.
    stage_a: u32,
    op_a: u32,
    op_b: u32,
}

const P2P_TABLE: u32 = u32::MAX;

/// A rendezvous in progress: the collective of `comm` whose members are arriving (or, once
/// all have, running since `start`).
#[derive(Debug, Clone, Copy, Default)]
struct Lane {
    comm: u32,
    arrived: u32,
    start: Nanos,
}

/// Precomputes group tables and rendezvous lanes for every comm.
///
/// Lanes instead of one slot per (comm, group): a group's members run the comms of one
/// stream in stream order, so a group has at most one collective pending per stream at a
/// time, and comms of the same group kind on the same stream share a lane (TP, CP, EP and
/// DP groups: one program per stage; pipeline hops: one lane per sender stream and
/// receiver stream). Memory is `O(groups)`, not `O(collective instances)`. Two comms of
/// one lane pending at once would mean members that reached them in different orders,
/// which deadlocks (each waits, its stream blocked, on the other); the engine then leaves
/// the later arrival waiting and reports the deadlock. Comms whose group spans pipeline
/// stages (different programs) get lanes of their own.
/// With `tables` false, group tables are left empty (sizes and lanes only: the estimate).
fn comm_infos(
    step: &StepGraph,
    grid: &RankGrid,
    progs: &[Program],
    build_tables: bool,
) -> (Vec<CommInfo>, Vec<GroupTable>, u32) {
    let stream_in = |c: &crate::schedule::Comm, stage: u32| {
        c.ops
            .iter()
            .find(|&&(s, _)| s == stage)
            .map_or(u8::MAX, |&(s, o)| progs[s as usize].ops[o as usize].stream)
    };
    let mut masks: Vec<GroupMask> = Vec::new();
    let mut tables = Vec::new();
    let mut infos = Vec::with_capacity(step.comms.len());
    let mut shared: std::collections::HashMap<(u32, u32, u32, u8, u8), u32> =
        std::collections::HashMap::new();
    let mut lanes = 0u32;
    let mut alloc = |n: u32| {
        let base = lanes;
        lanes += n;
        base
    };
    for c in &step.comms {
        let (stage_a, op_a) = c.ops.first().copied().unwrap_or((0, 0));
        let op_b = c.ops.get(1).map_or(op_a, |&(_, o)| o);
        let mut info = CommInfo {
            table: P2P_TABLE,
            size: 2,
            lane_base: 0,
            spans_replicas: false,
            mask: GroupMask(0),
            collective: c.collective,
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
                        tables.push(if build_tables {
                            GroupTable::new(grid, mask)
                        } else {
                            GroupTable {
                                size: grid.group_size(mask),
                                group_of: Vec::new(),
                                members: Vec::new(),
                            }
                        });
                        masks.len() - 1
                    }
                };
                let count = grid.group_count(mask);
                info.table = t as u32;
                info.size = tables[t].size;
                info.spans_replicas = RankGrid::spans_replicas(mask);
                info.mask = mask;
                info.lane_base = if mask.0 & GroupMask::PP.0 != 0 {
                    alloc(count)
                } else {
                    let key = (0, t as u32, 0, stream_in(c, stage_a), 0);
                    *shared.entry(key).or_insert_with(|| alloc(count))
                };
            }
            GroupRef::P2p { from, to } => {
                info.from = from;
                info.to = to;
                let key = (1, from, to, stream_in(c, from), stream_in(c, to));
                info.lane_base = *shared
                    .entry(key)
                    .or_insert_with(|| alloc(grid.stage_size()));
            }
        }
        infos.push(info);
    }
    (infos, tables, lanes)
}

const COMM_EVENT: u64 = 1 << 63;

/// The GPUs the network sees for a folded replay's group `members` (reduced ranks): their
/// GPUs, or the whole full group when it spans replicas.
fn network_members(fold: &Fold, info: &CommInfo, members: &[u32], out: &mut Vec<u32>) {
    out.clear();
    if info.spans_replicas {
        let first = fold.gpu(members[0]);
        let g = fold.full.group_index(first, info.mask);
        fold.full.members_into(info.mask, g, out);
    } else {
        out.extend(members.iter().map(|&m| fold.gpu(m)));
    }
}

const NO_TIME: Nanos = Nanos::MAX;

/// Collective durations already asked of the network, when it times a collective by its
/// group's placement alone ([`Network::folding`] is `Some`; [`Network::group_key`]): a
/// TP all-reduce of the same size over another node's 8 GPUs takes the same time, so the
/// network is asked once per (comm, placement class) instead of once per group.
struct Memo {
    /// Placement class of the group rendezvousing in each lane.
    lane_class: Vec<u32>,
    classes: usize,
    /// Duration of comm `c` over class `k` at `c * classes + k`, or `NO_TIME`.
    dur: Vec<Nanos>,
}

/// Most `comms x classes` entries the memo table may hold.
const MEMO_ENTRIES: usize = 1 << 23;

impl Memo {
    fn new<N: Network>(
        net: &mut N,
        comms: &[CommInfo],
        tables: &[GroupTable],
        lanes: u32,
        stage_size: u32,
        fold: Option<&Fold>,
    ) -> Option<Memo> {
        net.folding()?;
        let mut lane_class = vec![u32::MAX; lanes as usize];
        let mut ids: std::collections::HashMap<Vec<u64>, u32> = Default::default();
        let mut done = std::collections::HashSet::new();
        let (mut key, mut members, mut visible) = (Vec::new(), Vec::new(), Vec::new());
        // Full groups spanning replicas, classified once each (a folded replay shows the
        // network the same full group for every comm of its kind).
        let mut full_class: std::collections::HashMap<(GroupMask, u32, u8), u32> =
            Default::default();
        // The kinds of collective each lane's groups perform: a group's key need only
        // tell placements apart by the algorithms those kinds may run.
        let mut lane_kinds: std::collections::HashMap<u32, CollectiveSet> = Default::default();
        for info in comms {
            let kinds = lane_kinds.entry(info.lane_base).or_default();
            *kinds = kinds.with(info.collective);
        }
        for info in comms {
            if !done.insert(info.lane_base) {
                continue;
            }
            let kinds = lane_kinds[&info.lane_base];
            let n = if info.table == P2P_TABLE {
                stage_size
            } else {
                tables[info.table as usize].group_of.len() as u32 / info.size
            };
            for local in 0..n {
                members.clear();
                if info.table == P2P_TABLE {
                    members.push(local + info.from * stage_size);
                    members.push(local + info.to * stage_size);
                } else {
                    let t = &tables[info.table as usize];
                    let start = (local * t.size) as usize;
                    members.extend_from_slice(&t.members[start..start + t.size as usize]);
                }
                let full_group = match fold {
                    Some(f) if info.spans_replicas => {
                        let g = f.full.group_index(f.gpu(members[0]), info.mask);
                        full_class
                            .get(&(info.mask, g, kinds.bits()))
                            .map(|&c| (g, Some(c)))
                            .or(Some((g, None)))
                    }
                    _ => None,
                };
                if let Some((_, Some(class))) = full_group {
                    lane_class[(info.lane_base + local) as usize] = class;
                    continue;
                }
                let shown: &[u32] = match fold {
                    Some(f) => {
                        network_members(f, info, &members, &mut visible);
                        &visible
                    }
                    None => &members,
                };
                key.clear();
                net.group_key(shown, kinds, &mut key);
                let next = ids.len() as u32;
                let class = *ids.entry(key.clone()).or_insert(next);
                if let Some((g, None)) = full_group {
                    full_class.insert((info.mask, g, kinds.bits()), class);
                }
                lane_class[(info.lane_base + local) as usize] = class;
            }
        }
        let classes = ids.len().max(1);
        let entries = comms.len().checked_mul(classes)?;
        (entries <= MEMO_ENTRIES).then(|| Memo {
            lane_class,
            classes,
            dur: vec![NO_TIME; entries],
        })
    }
}

/// Asks the CPU to start loading a rank's record (all its cache lines) before it is needed.
#[inline(always)]
fn prefetch(st: &RankState) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = st as *const RankState as *const i8;
        for line in 0..std::mem::size_of::<RankState>().div_ceil(64) {
            // SAFETY: prefetching is a hint; the addresses lie inside `st`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(line * 64)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = st;
}

struct Sim<'a, N: Network> {
    step: &'a StepGraph,
    progs: Vec<Program>,
    net: &'a mut N,
    speeds: &'a RankSpeeds,
    heap: RadixHeap,
    now: Nanos,
    world: u32,
    stage_size: u32,
    ranks: Vec<RankState>,
    lanes: Vec<Lane>,
    comms: Vec<CommInfo>,
    tables: Vec<GroupTable>,
    trace: Vec<TraceEvent>,
    members: Vec<u32>,
    completed: Vec<u64>,
    events: u64,
    /// Set when identical data-parallel replicas are folded into simulated stand-ins.
    fold: Option<Fold>,
    /// The members of the collective being started as the network sees them (GPU ids).
    net_members: Vec<u32>,
    /// Known collective durations (placement-only networks).
    memo: Option<Memo>,
}

impl<'a, N: Network> Sim<'a, N> {
    /// The rendezvous lane of `rank` for comm `info`.
    #[inline]
    fn lane(&self, info: &CommInfo, rank: u32) -> u32 {
        info.lane_base
            + if info.table == P2P_TABLE {
                rank % self.stage_size
            } else {
                self.tables[info.table as usize].group_of[rank as usize]
            }
    }

    /// The members of the group rendezvousing in `lane` of comm `info`, into `members`.
    fn fill_members(&mut self, info: &CommInfo, lane: u32) {
        self.members.clear();
        let local = lane - info.lane_base;
        if info.table == P2P_TABLE {
            self.members.push(local + info.from * self.stage_size);
            self.members.push(local + info.to * self.stage_size);
        } else {
            let t = &self.tables[info.table as usize];
            let start = (local * t.size) as usize;
            self.members
                .extend_from_slice(&t.members[start..start + t.size as usize]);
        }
    }

    /// Starts the op heading `stream` of `rank` if the stream is idle and the op's
    /// dependencies are met.
    #[inline]
    fn try_start(&mut self, rank: u32, stream: usize) {
        let st = &self.ranks[rank as usize];
        if st.busy & (1 << stream) != 0 {
            return;
        }
        let prog = &self.progs[st.stage as usize];
        let Some(op) = prog.head(stream, st.cursor[stream]) else {
            return;
        };
        if !prog.ready(op, &st.cursor) {
            return;
        }
        self.start(rank, op);
    }

    /// Starts `op` of `rank`: it heads its idle stream and its dependencies are met.
    #[inline]
    fn start(&mut self, rank: u32, op: u32) {
        let st = &mut self.ranks[rank as usize];
        let rec = self.progs[st.stage as usize].ops[op as usize];
        let now = self.now;
        st.busy |= 1 << rec.stream;
        if rec.comm == NO_COMM {
            st.begin(now, rec.category, rec.pipeline);
            let end = now + self.speeds.scale(rank, rec.duration);
            self.heap.push(end, ((rank as u64) << 32) | op as u64);
        } else {
            let info = self.comms[rec.comm as usize];
            let lane = self.lane(&info, rank);
            let l = &mut self.lanes[lane as usize];
            if l.arrived == 0 {
                l.comm = rec.comm;
            } else if l.comm != rec.comm {
                // Members reached two collectives of one lane in different orders: a
                // deadlock. This member waits for good; the end of the run reports it.
                return;
            }
            l.arrived += 1;
            if l.arrived == info.size {
                self.start_collective(rec.comm, &info, lane);
            }
        }
    }

    fn start_collective(&mut self, c: u32, info: &CommInfo, lane: u32) {
        self.fill_members(info, lane);
        let comm = &self.step.comms[c as usize];
        let id = COMM_EVENT | ((c as u64) << 32) | lane as u64;
        let slot = self
            .memo
            .as_ref()
            .map(|m| (c as usize) * m.classes + m.lane_class[lane as usize] as usize);
        let known = match (slot, &self.memo) {
            (Some(i), Some(m)) if m.dur[i] != NO_TIME => Some(m.dur[i]),
            _ => None,
        };
        let completion = match known {
            Some(d) => Completion::At(self.now + d),
            None => {
                let members: &[u32] = match &self.fold {
                    None => &self.members,
                    Some(fold) => {
                        network_members(fold, info, &self.members, &mut self.net_members);
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
                if let (Some(i), Some(m), Completion::At(end)) =
                    (slot, self.memo.as_mut(), completion)
                {
                    m.dur[i] = end - self.now;
                }
                completion
            }
        };
        self.lanes[lane as usize].start = self.now;
        let category = comm.category as u8;
        let pipeline = comm.category.is_pipeline_compute();
        for &m in &self.members {
            self.ranks[m as usize].begin(self.now, category, pipeline);
        }
        if let Completion::At(end) = completion {
            self.heap.push(end, id);
        }
    }

    /// Marks `op` of `rank` done (started at `start`): frees its stream and starts what it
    /// releases.
    fn finish(&mut self, rank: u32, op: u32, start: Nanos) {
        let now = self.now;
        let st = &mut self.ranks[rank as usize];
        let stage = st.stage as usize;
        let rec = self.progs[stage].ops[op as usize];
        let stream = rec.stream as usize;
        st.end(now, rec.category, rec.pipeline, start);
        st.busy &= !(1 << stream);
        st.cursor[stream] += 1;
        if st.traced {
            self.trace.push(TraceEvent {
                rank: self.fold.as_ref().map_or(rank, |f| f.gpu(rank)),
                op,
                start,
                end: now,
            });
        }
        let (a, b) = {
            let p = &self.progs[stage];
            (p.succ_start[op as usize], p.succ_start[op as usize + 1])
        };
        for i in a..b {
            let p = &self.progs[stage];
            let s = p.succ[i as usize];
            // Woken by its last predecessor: it heads its stream (which is then idle: the
            // op at a stream's cursor is the one running) and every dependency is met.
            let ss = p.ops[s as usize].stream as usize;
            let st = &self.ranks[rank as usize];
            if st.cursor[ss] == p.pos[s as usize] && p.ready(s, &st.cursor) {
                debug_assert!(st.busy & (1 << ss) == 0);
                self.start(rank, s);
            }
        }
        self.try_start(rank, stream);
    }

    fn handle(&mut self, payload: u64) {
        self.events += 1;
        if payload & COMM_EVENT == 0 {
            let rank = (payload >> 32) as u32;
            let op = payload as u32;
            let stage = self.ranks[rank as usize].stage as usize;
            let d = self.progs[stage].ops[op as usize].duration;
            let start = self.now - self.speeds.scale(rank, d);
            self.finish(rank, op, start);
        } else {
            let c = ((payload & !COMM_EVENT) >> 32) as u32;
            let lane = payload as u32;
            let info = self.comms[c as usize];
            // Free the lane before the members move on to their next collective.
            let l = &mut self.lanes[lane as usize];
            let start = l.start;
            l.arrived = 0;
            self.fill_members(&info, lane);
            let members = std::mem::take(&mut self.members);
            for &m in &members {
                let stage = self.ranks[m as usize].stage;
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

    /// Starts every op that can start at time 0.
    fn start_all(&mut self) {
        for r in 0..self.world {
            for s in 0..STREAMS {
                self.try_start(r, s);
            }
        }
    }

    /// Handles the collectives the network reported complete at `t`.
    fn complete(&mut self, t: Nanos, done: &[u64]) {
        self.now = t;
        for &id in done {
            self.handle(id);
        }
    }

    /// Handles every queued event at `t`.
    fn pop_at(&mut self, t: Nanos) {
        self.now = t;
        while self.heap.peek_key() == Some(t) {
            let Some((_, payload)) = self.heap.pop() else {
                break;
            };
            if let Some(next) = self.heap.next_hint()
                && next & COMM_EVENT == 0
            {
                prefetch(&self.ranks[(next >> 32) as usize]);
            }
            self.handle(payload);
        }
    }

    fn run(&mut self) -> Result<(), EngineError> {
        self.start_all();
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
                self.complete(t, &done);
                self.completed = done;
            }
            self.pop_at(t);
        }
        self.check_complete()
    }

    fn check_complete(&self) -> Result<(), EngineError> {
        for (r, st) in self.ranks.iter().enumerate() {
            let prog = &self.progs[st.stage as usize];
            for s in 0..STREAMS {
                if let Some(op) = prog.head(s, st.cursor[s]) {
                    return Err(EngineError::Deadlock {
                        time_ns: self.now,
                        rank: r as u32,
                        op,
                        ops: prog.ops.len() as u32,
                        label: self.step.stages[st.stage as usize].op(op).label,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Replays every rank of `grid` (a reduced grid of stand-ins when `fold` is set).
pub(super) fn replay_grid<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
    fold: Option<Fold>,
) -> Result<Replay, EngineError> {
    let mut sim = build_sim(step, grid, net, speeds, trace_ranks, fold)?;
    sim.run()?;
    Ok(sim.into_replay())
}

/// The replay state of `step` on `grid`, nothing started yet.
fn build_sim<'a, N: Network>(
    step: &'a StepGraph,
    grid: &RankGrid,
    net: &'a mut N,
    speeds: &'a RankSpeeds,
    trace_ranks: &TraceRanks,
    fold: Option<Fold>,
) -> Result<Sim<'a, N>, EngineError> {
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
    let mut ranks: Vec<RankState> = (0..grid.world())
        .map(|r| RankState::new(r / stage_size, false))
        .collect();
    match trace_ranks {
        TraceRanks::None => {}
        TraceRanks::All => ranks.iter_mut().for_each(|st| st.traced = true),
        TraceRanks::Some(rs) => rs
            .iter()
            .filter(|&&r| (r as usize) < world)
            .for_each(|&r| ranks[r as usize].traced = true),
    }
    let (comms, tables, lanes) = comm_infos(step, grid, &progs, true);
    let memo = Memo::new(net, &comms, &tables, lanes, stage_size, fold.as_ref());
    Ok(Sim {
        step,
        progs,
        net,
        speeds,
        heap: RadixHeap::new(),
        now: 0,
        world: grid.world(),
        stage_size,
        ranks,
        lanes: vec![Lane::default(); lanes as usize],
        comms,
        tables,
        trace: Vec::new(),
        members: Vec::new(),
        completed: Vec::new(),
        events: 0,
        fold,
        net_members: Vec::new(),
        memo,
    })
}

impl<N: Network> Sim<'_, N> {
    /// The replay's results (call when its events are exhausted).
    fn into_replay(mut self) -> Replay {
        let step_time = self.ranks.iter().map(|s| s.end).max().unwrap_or(0);
        let ranks = self
            .ranks
            .iter_mut()
            .map(|st| {
                st.settle(step_time);
                st.stats()
            })
            .collect();
        Replay {
            step_time,
            ranks,
            trace: self.trace,
            events: self.events,
            replayed_events: self.events,
        }
    }
}

/// One job of a shared replay ([`replay_shared`]): its op graph, rank grid, stragglers,
/// traced ranks, and the GPU each of its ranks runs on.
#[derive(Clone, Copy)]
pub struct SharedJob<'a> {
    pub step: &'a StepGraph,
    pub grid: &'a RankGrid,
    pub speeds: &'a RankSpeeds,
    pub trace: &'a TraceRanks,
    /// `gpus[r]`: the cluster GPU of rank `r`.
    pub gpus: &'a [u32],
}

/// The one network every job of a shared replay talks to, with the ids of the
/// transfers in flight (each job numbers its own; the network sees unique ones).
struct Shared<'n, N: Network> {
    net: &'n mut N,
    /// Global transfer id -> (job, the job's id).
    ids: std::collections::HashMap<u64, (u32, u64)>,
    next: u64,
}

/// A job's view of the shared network: its ranks mapped to their GPUs. The coordinator
/// ([`replay_shared`]) advances the shared network; a job only begins transfers.
struct JobNet<'s, 'n, N: Network> {
    shared: &'s std::cell::RefCell<Shared<'n, N>>,
    job: u32,
    gpus: &'s [u32],
    members: Vec<u32>,
}

impl<N: Network> Network for JobNet<'_, '_, N> {
    fn begin(&mut self, now: Nanos, t: &Transfer<'_>) -> Completion {
        self.members.clear();
        self.members
            .extend(t.members.iter().map(|&m| self.gpus[m as usize]));
        let mut sh = self.shared.borrow_mut();
        let id = sh.next;
        sh.next += 1;
        let mapped = Transfer {
            id,
            members: &self.members,
            ..*t
        };
        let c = sh.net.begin(now, &mapped);
        if c == Completion::Pending {
            sh.ids.insert(id, (self.job, t.id));
        }
        c
    }

    /// Never: the jobs share the network's links.
    fn folding(&self) -> Option<Vec<u32>> {
        None
    }

    fn group_key(&mut self, _: &[u32], _: CollectiveSet, _: &mut Vec<u64>) {}
}

/// Replays several jobs at once over one network: each runs its own op graph on its own
/// GPUs (`SharedJob::gpus`), and their transfers share the network (a flow network's
/// links, so they slow each other where they meet). Events of one instant are handled
/// job by job in the order given, completions before queued ops, as a single replay
/// handles them; one job alone replays exactly as [`super::replay_all`] on the same GPUs
/// would. Returns each job's replay.
pub fn replay_shared<N: Network>(
    jobs: &[SharedJob<'_>],
    net: &mut N,
) -> Result<Vec<Replay>, EngineError> {
    let shared = std::cell::RefCell::new(Shared {
        net,
        ids: Default::default(),
        next: 0,
    });
    let mut views: Vec<JobNet<'_, '_, N>> = jobs
        .iter()
        .enumerate()
        .map(|(j, job)| JobNet {
            shared: &shared,
            job: j as u32,
            gpus: job.gpus,
            members: Vec::new(),
        })
        .collect();
    let mut sims = Vec::with_capacity(jobs.len());
    for (job, view) in jobs.iter().zip(views.iter_mut()) {
        sims.push(build_sim(
            job.step, job.grid, view, job.speeds, job.trace, None,
        )?);
    }
    for sim in &mut sims {
        sim.start_all();
    }
    let mut done = Vec::new();
    let mut per_job: Vec<Vec<u64>> = vec![Vec::new(); jobs.len()];
    loop {
        let next_net = shared.borrow().net.next_event();
        let next_heap = sims.iter_mut().filter_map(|s| s.heap.peek_key()).min();
        let t = match (next_heap, next_net) {
            (None, None) => break,
            (Some(h), Some(n)) => h.min(n),
            (Some(h), None) => h,
            (None, Some(n)) => n,
        };
        if next_net.is_some_and(|n| n <= t) {
            done.clear();
            {
                let mut sh = shared.borrow_mut();
                sh.net.advance(t, &mut done);
                for id in &done {
                    if let Some((j, local)) = sh.ids.remove(id) {
                        per_job[j as usize].push(local);
                    }
                }
            }
            for (sim, ids) in sims.iter_mut().zip(per_job.iter_mut()) {
                if !ids.is_empty() {
                    sim.complete(t, ids);
                    ids.clear();
                }
            }
        }
        for sim in &mut sims {
            sim.pop_at(t);
        }
    }
    let mut out = Vec::with_capacity(sims.len());
    for sim in sims {
        sim.check_complete()?;
        out.push(sim.into_replay());
    }
    Ok(out)
}

/// What a replay of `grid` holds in memory, bytes, besides the op graph it is given:
/// compiled programs, rank records, group tables, rendezvous lanes, the event queue's
/// buffers (measured: about 250 bytes per rank in flight at 16,384 and 131,072 ranks),
/// the collective memo, the per-rank results and the trace of `traced` ranks.
pub(super) fn replay_bytes(step: &StepGraph, grid: &RankGrid, traced: u64) -> (u64, u64) {
    let progs = compile(step);
    let (comms, tables, lanes) = comm_infos(step, grid, &progs, false);
    let ranks = grid.world() as u64;
    let ops: u64 = progs.iter().map(|p| p.ops.len() as u64).sum();
    let max_ops = progs.iter().map(|p| p.ops.len() as u64).max().unwrap_or(0);
    let programs = ops * 48;
    let records = ranks * std::mem::size_of::<RankState>() as u64;
    let group_tables = tables.len() as u64 * ranks * 8;
    let lanes = lanes as u64 * std::mem::size_of::<Lane>() as u64;
    let queue = ranks * 256;
    let memo = (comms.len() as u64 * 64).min(MEMO_ENTRIES as u64 * 8);
    let results = ranks * std::mem::size_of::<RankStats>() as u64;
    let trace = traced * max_ops * std::mem::size_of::<TraceEvent>() as u64;
    (
        programs + records + group_tables + lanes + queue + memo + results,
        trace,
    )
}
