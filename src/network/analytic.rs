//! Collective times without an event-level model of sharing (the "fast mode"), derived from
//! the same fabric facts as the contention model.
//!
//! Same algorithms, protocols, latencies, calibrated efficiencies, topology and routing as
//! the detailed [`super::FlowNetwork`]: a collective is decomposed into the same flows
//! ([`super::collectives::Planner`]) over the same routed paths ([`super::routing`]), and
//! its bandwidth term is the most loaded link's bytes over its capacity. What the analytic
//! mode adds in place of an event simulation is *which flows of the step share a link*:
//!
//! - **Alone** (no concurrency set, [`AnalyticNetwork::new`]): only the collective's own
//!   flows; the time equals the contention model's time for the collective on an idle
//!   fabric.
//! - **Step concurrency** ([`AnalyticNetwork::with_stage_size`]): ranks are laid out as
//!   the engine does (pipeline stages are blocks of `stage_size` consecutive ranks), and
//!   every group of a stage runs the same collective at the same moment (SPMD: the 8 DP
//!   groups of a TP-8 stage all reduce their gradients together). A collective spanning
//!   several NVLink domains is timed with the load of *all* of its stage's sibling groups
//!   (translations of its member pattern inside its stage) on the links it uses: on a
//!   rail-optimized fabric the rails do not meet, on a fat tree whose leaves hold a node's
//!   8 NICs the 8 DP rings share the leaf uplinks. This replaces a blanket division of
//!   NIC bandwidth by the oversubscription ratio: a ring whose edges leave a leaf once
//!   per leaf uses one uplink of many and is not slowed at all, as in the contention mode.
//!   ECMP collisions between siblings are counted as the routing model places them (the
//!   same destination-mod-k or seeded hash as the contention mode), so the expected
//!   collision factor of hashing is not estimated but counted for the step's own flows.
//! - **The job's reductions and gathers together**: the siblings of a ring, tree, NVLS,
//!   hierarchical, PAT or CollNet group are the translations of its pattern over the whole
//!   job (`world` ranks), not only its stage: every stage reduces its gradients after its
//!   last backward, within a pipeline drain of the others (and gathers parameters at the
//!   step start), so on a fabric that routes by destination two stages' data-parallel
//!   rings meet on the same spine links, as the contention mode finds (GPT-3 175B on the
//!   A100 fat tree at TP 4 PP 2: counting one stage read a step of 16.7 s where the
//!   contention mode reads 24.6 s). Gathers count the job's siblings in full (every
//!   stage gathers at the step start); gradient reductions (reduce-scatter, all-reduce)
//!   count them for half of their bytes and their own stage's for the rest: each stage
//!   starts reducing one pipeline slot after the next one, so two stages' reductions
//!   overlap for part of their length, and half is the expected overlap of two equal
//!   phases offset by anywhere up to their length (Llama 3 70B TP 8 PP 4 DP 512 on
//!   `roce-multipod-h100` under destination-mod-k: the job's full count reads 3.27 s, the
//!   stage's alone 2.91 s, the half 3.09 s, the contention mode 3.09 s; under its default
//!   hashed ECMP 4.34, 3.84, 4.06 and 4.11 s). All-to-all and point-to-point traffic, and
//!   groups that span stages, keep their stage: their stages run them at different
//!   moments, which the contention mode sees when they happen.
//! - **The algorithm** is NCCL's pick from its own view ([`Planner::choose`]: the group
//!   alone, equal-cost uplinks pooled), the contention mode's pick too; only its time
//!   counts the siblings.
//!
//! Groups within one NVLink domain only use their members' scale-up links, which no other
//! group shares, so they are timed alone.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::collectives::{FlowPlan, Planner, WordHasher};
use super::nccl::{self, Algorithm, AlgorithmChoice};
use super::routing::Routing;
use super::topology::Topology;
use super::{Completion, Network, Transfer};
use crate::faults::LinkFaults;
use crate::hardware::ClusterSpec;
use crate::units::{Nanos, secs_to_ns};
use crate::vocab::{Collective, CollectiveSet};

pub use super::nccl::NVLINK_EFFICIENCY;

type Fx<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Groups of more members than this are keyed by their members ([`Network::group_key`]):
/// an exact key that costs nothing, where the unit times of every algorithm would cost
/// a plan of `n²` flows (direct all-to-all) for each of the stage's sibling groups (8,192
/// members at 1M GPUs: 67 M flows per group). Such groups are the data-parallel groups
/// that span replicas; the replica-local groups that folding compares stay keyed by
/// their unit times.
const KEY_BY_MEMBERS_ABOVE: usize = 256;

/// Sibling unit times are cached per member offsets (in member order), then the scope's
/// first rank and size, as one word list (looked up by slice, without allocating); one slot
/// per algorithm, filled when first asked for.
type SiblingKey = Vec<u32>;
type SiblingSlots = Box<[Option<SiblingUnits>; Algorithm::COUNT]>;

/// The unit times of every sibling group of one stage block for one algorithm and member
/// pattern: what [`AnalyticNetwork::unit_s`] returns for each of them. Kept as results per
/// group, not as the stage's link loads (at a million GPUs a stage's map holds 131,072
/// links, and 192 of them took 2.7 GB): runs of equal values over the groups' first
/// members, most stages having one run, and which ranks of the block are first members.
#[derive(Debug, Clone)]
struct SiblingUnits {
    start: u32,
    /// `(first member, seconds)` where the value changes, ascending first member.
    runs: Vec<(u32, f64)>,
    /// Bit `r - start` set when rank `r` is a sibling group's first member.
    firsts: Vec<u64>,
}

impl SiblingUnits {
    /// The unit time of the sibling group whose first (lowest) member is `m0`, or `None`
    /// when no sibling group starts there.
    fn get(&self, m0: u32) -> Option<f64> {
        let i = m0.checked_sub(self.start)? as usize;
        if self
            .firsts
            .get(i / 64)
            .is_none_or(|w| w >> (i % 64) & 1 == 0)
        {
            return None;
        }
        let k = self.runs.partition_point(|&(b, _)| b <= m0);
        k.checked_sub(1).map(|k| self.runs[k].1)
    }
}

#[derive(Debug, Clone)]
pub struct AnalyticNetwork {
    topo: Topology,
    planner: Planner,
    plan: FlowPlan,
    algorithm: AlgorithmChoice,
    /// Degraded links (already applied to the topology's capacities).
    link_faults: LinkFaults,
    /// Ranks per pipeline stage, when sibling groups are counted.
    stage_size: Option<u32>,
    /// Ranks of the job (`0..world`): the scope of the sibling groups of reductions and
    /// gathers (see the module documentation); the whole topology when unset.
    world: Option<u32>,
    siblings: Fx<SiblingKey, SiblingSlots>,
    offsets: Vec<u32>,
    covered: Vec<bool>,
    group: Vec<u32>,
    sib_plan: FlowPlan,
    /// Load per link of the stage being summed (seconds per unit of plan scale), indexed
    /// by link id, zero outside `touched`.
    load: Vec<f64>,
    touched: Vec<u32>,
    /// Links of each sibling group of the stage being summed: `(first member, range)`.
    sib_links: Vec<u32>,
    sib_groups: Vec<(u32, u32, u32)>,
}

impl AnalyticNetwork {
    pub fn new(cluster: &ClusterSpec) -> Self {
        Self::with_algorithm(cluster, AlgorithmChoice::Auto)
    }

    pub fn with_algorithm(cluster: &ClusterSpec, algorithm: AlgorithmChoice) -> Self {
        Self::from_topology(Topology::new(cluster), algorithm)
    }

    pub fn from_topology(topo: Topology, algorithm: AlgorithmChoice) -> Self {
        AnalyticNetwork {
            topo,
            planner: Planner::default(),
            plan: FlowPlan::default(),
            algorithm,
            link_faults: LinkFaults::none(),
            stage_size: None,
            world: None,
            siblings: Fx::default(),
            offsets: Vec::new(),
            covered: Vec::new(),
            group: Vec::new(),
            sib_plan: FlowPlan::default(),
            load: Vec::new(),
            touched: Vec::new(),
            sib_links: Vec::new(),
            sib_groups: Vec::new(),
        }
    }

    /// The same network with another routing model.
    pub fn with_routing(mut self, routing: Routing) -> Self {
        self.topo.set_routing(routing);
        self.siblings.clear();
        self
    }

    /// The same network with some GPUs' NIC/NVLink bandwidth scaled down.
    pub fn with_link_faults(mut self, link_faults: LinkFaults) -> Self {
        self.topo.apply_link_faults(&link_faults);
        self.link_faults = link_faults;
        self.siblings.clear();
        self
    }

    /// Counts the sibling groups of each collective (`stage_size` ranks per pipeline
    /// stage, `world` ranks in the job; see the module documentation).
    pub fn with_stage_size(mut self, stage_size: u32, world: u32) -> Self {
        self.set_stage_size(Some((stage_size, world)));
        self
    }

    /// Sets (or clears) the `(stage size, world)` of [`AnalyticNetwork::with_stage_size`].
    pub fn set_stage_size(&mut self, scope: Option<(u32, u32)>) {
        let (stage, world) = match scope {
            Some((s, w)) if s > 0 => (Some(s), Some(w.max(s))),
            _ => (None, None),
        };
        if stage != self.stage_size || world != self.world {
            self.stage_size = stage;
            self.world = world;
            self.siblings.clear();
        }
    }

    /// The ranks whose groups run `alg` at the same moment as a group in stage `block` of
    /// `n_stage` ranks (and only there when `one_stage`): `(first rank, ranks)`. Reductions
    /// and gathers of every stage overlap (each stage reduces its gradients after its last
    /// backward, within a pipeline drain of the others, and gathers at the step start), so
    /// their scope is the job; point-to-point and all-to-all traffic, and any group that
    /// spans stages (a pipeline hop), keep their stage.
    fn sibling_scope(
        &self,
        alg: Algorithm,
        block: u32,
        one_stage: bool,
        n_stage: u32,
    ) -> (u32, u32) {
        let world = self.world.unwrap_or(self.topo.gpus).min(self.topo.gpus);
        match alg {
            Algorithm::Direct | Algorithm::P2p => (block * n_stage, n_stage),
            _ if !one_stage => (block * n_stage, n_stage),
            _ => (0, world.max(n_stage)),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Seconds per unit of plan scale of `alg` running `coll` over `members`; `multi`: the
    /// group spans several NVLink domains (its shape's `domains > 1`).
    ///
    /// A gradient reduction (reduce-scatter, all-reduce) whose siblings span the job counts
    /// the other stages' siblings for half of its bytes: each stage starts reducing after
    /// its own last backward, one pipeline slot after the next stage, so two stages'
    /// reductions overlap for part of their length, which the closed form does not know;
    /// half is the expected overlap of two equal phases offset by anywhere up to their
    /// length. Gathers keep the job's full count: every stage gathers at the step start.
    fn unit_s(&mut self, alg: Algorithm, coll: Collective, members: &[u32], multi: bool) -> f64 {
        let mut stage = [f64::NAN; Algorithm::COUNT];
        let mut job = [f64::NAN; Algorithm::COUNT];
        self.units(
            &[alg],
            members,
            multi,
            Self::is_reduction(coll),
            &mut stage,
            &mut job,
        );
        Self::blend(coll, stage[alg as usize], job[alg as usize])
    }

    /// The unit time of a collective of kind `coll` from its stage-scope and job-scope
    /// unit times (see [`AnalyticNetwork::unit_s`]).
    fn blend(coll: Collective, stage: f64, job: f64) -> f64 {
        if Self::is_reduction(coll) {
            0.5 * (stage + job)
        } else {
            job
        }
    }

    /// Gradient reductions: the collectives whose stage-scope time [`Self::blend`] reads.
    fn is_reduction(coll: Collective) -> bool {
        matches!(coll, Collective::ReduceScatter | Collective::AllReduce)
    }

    /// Unit times of each of `algs` in the job's scope for that algorithm
    /// ([`AnalyticNetwork::sibling_scope`]; the stage's where that is the stage) into
    /// `job_out[alg as usize]`, and, where that scope is the stage's or `with_stage` asks
    /// (a reduction will read them), counting the siblings of the group's stage alone into
    /// `stage_out` (one cache look-up per scope for all of them).
    fn units(
        &mut self,
        algs: &[Algorithm],
        members: &[u32],
        multi: bool,
        with_stage: bool,
        stage_out: &mut [f64; Algorithm::COUNT],
        job_out: &mut [f64; Algorithm::COUNT],
    ) {
        let Some(stage) = self.stage_size.filter(|_| multi) else {
            for &alg in algs {
                self.planner
                    .unit_plan(&self.topo, alg, members, &mut self.plan);
                stage_out[alg as usize] = self.planner.unit_time(&self.topo, &self.plan);
                job_out[alg as usize] = stage_out[alg as usize];
            }
            return;
        };
        let m0 = members.iter().copied().min().unwrap_or(0);
        let block = m0 / stage;
        let one_stage = members.iter().all(|&m| m / stage == block);
        let stage_scope = (block * stage, stage);
        // Stage-scope times of job-scoped algorithms are only read by reductions.
        let (mut narrow, mut wide) = (
            [Algorithm::Ring; Algorithm::COUNT],
            [Algorithm::Ring; Algorithm::COUNT],
        );
        let (mut n_narrow, mut n_wide) = (0, 0);
        let mut job_scope = stage_scope;
        for &alg in algs {
            let scope = self.sibling_scope(alg, block, one_stage, stage);
            if scope != stage_scope {
                job_scope = scope;
                wide[n_wide] = alg;
                n_wide += 1;
            }
            if scope == stage_scope || with_stage {
                narrow[n_narrow] = alg;
                n_narrow += 1;
            }
        }
        if n_narrow > 0 {
            self.units_in_scope(&narrow[..n_narrow], members, m0, stage_scope, stage_out);
        }
        if n_wide > 0 {
            self.units_in_scope(&wide[..n_wide], members, m0, job_scope, job_out);
        }
        for &alg in algs {
            if !wide[..n_wide].contains(&alg) {
                job_out[alg as usize] = stage_out[alg as usize];
            }
        }
    }

    /// [`AnalyticNetwork::units`] of `algs` over `members` (lowest `m0`), counting the
    /// sibling groups inside `start..start + span`.
    fn units_in_scope(
        &mut self,
        algs: &[Algorithm],
        members: &[u32],
        m0: u32,
        (start, span): (u32, u32),
        out: &mut [f64; Algorithm::COUNT],
    ) {
        // Member order is kept: it is the ring order and a point-to-point transfer's
        // direction (sorted offsets priced a send to a lower rank on the reverse links,
        // where the siblings put no load: bandwidth-free backward pipeline sends).
        self.offsets.clear();
        self.offsets.extend(members.iter().map(|&m| m - m0));
        self.offsets.push(start);
        self.offsets.push(span);
        let mut missing = false;
        match self.siblings.get(self.offsets.as_slice()) {
            Some(slots) => {
                for &alg in algs {
                    match &slots[alg as usize] {
                        Some(u) => out[alg as usize] = u.get(m0).unwrap_or(f64::NAN),
                        None => missing = true,
                    }
                }
            }
            None => missing = true,
        }
        if missing {
            let (key, mut slots) = match self.siblings.remove_entry(self.offsets.as_slice()) {
                Some(e) => e,
                None => (self.offsets.clone(), Box::default()),
            };
            self.offsets.truncate(members.len());
            for &alg in algs {
                let slot = &mut slots[alg as usize];
                if slot.is_none() {
                    *slot = Some(self.sibling_units(alg, start, span));
                }
                out[alg as usize] = slot.as_ref().and_then(|u| u.get(m0)).unwrap_or(f64::NAN);
            }
            if self.siblings.len() >= 4096 {
                self.siblings.clear();
            }
            self.siblings.insert(key, slots);
        }
        self.offsets.truncate(members.len());
        for &alg in algs {
            if out[alg as usize].is_nan() {
                // Not a sibling of the scope's partition (a group overlapping them): its
                // own links under the siblings' load.
                self.stage_loads(alg, start, span);
                self.planner
                    .unit_plan(&self.topo, alg, members, &mut self.plan);
                let u = self.plan.links.iter().map(|&l| self.load[l as usize]);
                out[alg as usize] = u.fold(0.0, f64::max);
                self.clear_loads();
            }
        }
    }

    /// Sums the per-link load of every sibling group (translations of `self.offsets`
    /// inside the stage block `start..start + stage`) running `alg` into `self.load`, and
    /// records each group's links in `self.sib_links` / `self.sib_groups`.
    fn stage_loads(&mut self, alg: Algorithm, start: u32, stage: u32) {
        let end = (start + stage).min(self.topo.gpus);
        if self.load.len() != self.topo.links() {
            self.load = vec![0.0; self.topo.links()];
        }
        self.covered.clear();
        self.covered.resize((end - start) as usize, false);
        self.sib_links.clear();
        self.sib_groups.clear();
        for base in start..end {
            if self.covered[(base - start) as usize] {
                continue;
            }
            self.group.clear();
            self.group.extend(self.offsets.iter().map(|&o| base + o));
            if self.group.iter().any(|&g| g >= self.topo.gpus) {
                continue;
            }
            for &g in &self.group {
                if (start..end).contains(&g) {
                    self.covered[(g - start) as usize] = true;
                }
            }
            let group = std::mem::take(&mut self.group);
            self.planner
                .unit_plan(&self.topo, alg, &group, &mut self.sib_plan);
            self.group = group;
            for f in &self.sib_plan.flows {
                for &l in self.sib_plan.flow_links(f) {
                    let li = l as usize;
                    if self.load[li] == 0.0 {
                        self.touched.push(l);
                    }
                    self.load[li] += f.bytes / self.topo.cap[li];
                }
            }
            let lo = self.sib_links.len() as u32;
            self.sib_links.extend_from_slice(&self.sib_plan.links);
            self.sib_groups
                .push((base, lo, self.sib_links.len() as u32));
        }
    }

    fn clear_loads(&mut self) {
        for &l in &self.touched {
            self.load[l as usize] = 0.0;
        }
        self.touched.clear();
    }

    /// The unit time of every sibling group of the stage block at `start` (see
    /// [`SiblingUnits`]).
    fn sibling_units(&mut self, alg: Algorithm, start: u32, stage: u32) -> SiblingUnits {
        self.stage_loads(alg, start, stage);
        let span = ((start + stage).min(self.topo.gpus) - start) as usize;
        let mut out = SiblingUnits {
            start,
            runs: Vec::new(),
            firsts: vec![0; span.div_ceil(64)],
        };
        for &(base, lo, hi) in &self.sib_groups {
            let links = &self.sib_links[lo as usize..hi as usize];
            let u = links
                .iter()
                .map(|&l| self.load[l as usize])
                .fold(0.0, f64::max);
            if out
                .runs
                .last()
                .is_none_or(|&(_, v)| v.to_bits() != u.to_bits())
            {
                out.runs.push((base, u));
            }
            let i = (base - start) as usize;
            out.firsts[i / 64] |= 1 << (i % 64);
        }
        self.clear_loads();
        out
    }

    /// Seconds for a collective over `members` moving `bytes` (nccl-tests' size convention).
    pub fn collective_time_s(
        &mut self,
        collective: Collective,
        bytes: u64,
        members: &[u32],
    ) -> f64 {
        if members.len() < 2 || bytes == 0 {
            return 0.0;
        }
        // NCCL's pick, from its own view of the group alone (the contention mode's too);
        // its time here counts the step's concurrent groups on the links it uses.
        let (c, shape) = self.planner.choose(
            &self.topo,
            collective,
            bytes,
            members,
            self.algorithm,
            &mut self.plan,
        );
        let multi = shape.domains > 1;
        let u = self.unit_s(c.algorithm, collective, members, multi);
        let (s, n) = (bytes as f64, members.len() as u32);
        c.latency_s + Planner::plan_scale(c.algorithm, collective, n, s) * u / c.bw_factor
    }
}

impl Network for AnalyticNetwork {
    fn begin(&mut self, now: Nanos, t: &Transfer<'_>) -> Completion {
        Completion::At(now + secs_to_ns(self.collective_time_s(t.collective, t.bytes, t.members)))
    }

    fn folding(&self) -> Option<Vec<u32>> {
        Some(self.link_faults.degraded_gpus())
    }

    /// The group's shape (latency and the tuner's candidates) and the unit time over it
    /// (its bandwidth terms, with its stage's siblings) of every algorithm NCCL's tuner
    /// may pick for a collective of `kinds` on that shape ([`nccl::candidates`]): all that
    /// [`AnalyticNetwork::collective_time_s`] reads of its placement. A data-parallel
    /// group that only reduces and gathers is thus never planned as a direct all-to-all
    /// (`n²` flows). Groups of more than [`KEY_BY_MEMBERS_ABOVE`] members are keyed by
    /// their members instead.
    fn group_key(&mut self, members: &[u32], kinds: CollectiveSet, key: &mut Vec<u64>) {
        key.push(u64::from(kinds.bits()));
        if members.len() < 2 {
            key.push(members.len() as u64);
            return;
        }
        let sh = self.planner.shape(&self.topo, members);
        key.push(sh.n as u64 | (sh.domains as u64) << 32);
        key.push(sh.per_domain as u64 | (sh.hops as u64) << 32);
        if members.len() > KEY_BY_MEMBERS_ABOVE {
            key.extend(members.iter().map(|&m| u64::from(m)));
            return;
        }
        let mut wanted = [false; Algorithm::COUNT];
        for kind in kinds.iter() {
            for &alg in nccl::candidates(kind, &sh, self.algorithm) {
                wanted[alg as usize] = true;
            }
        }
        let mut algs = [Algorithm::Ring; Algorithm::COUNT];
        let mut len = 0;
        for alg in Algorithm::ALL {
            if wanted[alg as usize] {
                algs[len] = alg;
                len += 1;
            }
        }
        let algs = &algs[..len];
        let mut stage = [f64::NAN; Algorithm::COUNT];
        let mut job = [f64::NAN; Algorithm::COUNT];
        let with_stage = kinds.iter().any(Self::is_reduction);
        self.units(
            algs,
            members,
            sh.domains > 1,
            with_stage,
            &mut stage,
            &mut job,
        );
        key.extend(algs.iter().map(|&alg| stage[alg as usize].to_bits()));
        key.extend(algs.iter().map(|&alg| job[alg as usize].to_bits()));
    }
}

/// A network where communication is free: for validating schedules against closed forms.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreeNetwork;

impl Network for FreeNetwork {
    fn begin(&mut self, now: Nanos, _: &Transfer<'_>) -> Completion {
        Completion::At(now)
    }

    fn folding(&self) -> Option<Vec<u32>> {
        Some(Vec::new())
    }

    fn group_key(&mut self, _: &[u32], _: CollectiveSet, _: &mut Vec<u64>) {}
}
