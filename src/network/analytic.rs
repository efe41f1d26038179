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
//!   Siblings in other pipeline stages are not counted (their collectives run at other
//!   moments); the contention mode sees those overlaps when they happen.
//!
//! Groups within one NVLink domain only use their members' scale-up links, which no other
//! group shares, so they are timed alone.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use super::collectives::{FlowPlan, Planner, WordHasher};
use super::nccl::{self, Algorithm, AlgorithmChoice};
use super::routing::Routing;
use super::topology::Topology;
use super::{Completion, Network, Transfer};
use crate::faults::LinkFaults;
use crate::hardware::ClusterSpec;
use crate::units::{Nanos, secs_to_ns};
use crate::vocab::Collective;

pub use super::nccl::NVLINK_EFFICIENCY;

type Fx<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Load per link (seconds per unit of plan scale) of a stage's sibling groups.
type LoadMap = HashMap<u32, f64, BuildHasherDefault<LinkHasher>>;

/// Groups of more members than this are keyed by their members ([`Network::group_key`]):
/// an exact key that costs nothing, where the unit times of every algorithm would cost
/// a plan of `n²` flows (direct all-to-all) for each of the stage's sibling groups (8,192
/// members at 1M GPUs: 67 M flows per group). Such groups are the data-parallel groups
/// that span replicas; the replica-local groups that folding compares stay keyed by
/// their unit times.
const KEY_BY_MEMBERS_ABOVE: usize = 256;

/// Hashes a link id for [`LoadMap`]: a multiply, then the high bits folded into the low
/// ones. Link ids come in regular strides (a tier's links of one switch, every `k`-th
/// uplink), and a bare multiply leaves the low bits, which pick the hash table's bucket,
/// equal for ids that differ by a power of two: at a million GPUs the stage's load map
/// then probes thousands of buckets per lookup.
#[derive(Debug, Clone, Copy, Default)]
struct LinkHasher(u64);

impl std::hash::Hasher for LinkHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// Sibling loads are cached per (algorithm, member offsets, stage block).
type SiblingKey = (Algorithm, Vec<u32>, u32);

/// Algorithms whose unit times identify a group's placement (see
/// [`AnalyticNetwork::group_key`]).
const KEY_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::Ring,
    Algorithm::Tree,
    Algorithm::NvlsTree,
    Algorithm::Hierarchical,
    Algorithm::Direct,
    Algorithm::P2p,
];

#[derive(Debug, Clone)]
pub struct AnalyticNetwork {
    topo: Topology,
    planner: Planner,
    plan: FlowPlan,
    algorithm: AlgorithmChoice,
    /// Degraded links (already applied to the topology's capacities).
    link_faults: LinkFaults,
    /// Ranks per pipeline stage, when sibling groups of a stage are counted.
    stage_size: Option<u32>,
    siblings: Fx<SiblingKey, Arc<LoadMap>>,
    offsets: Vec<u32>,
    own: Vec<u32>,
    covered: Vec<bool>,
    group: Vec<u32>,
    sib_plan: FlowPlan,
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
            siblings: Fx::default(),
            offsets: Vec::new(),
            own: Vec::new(),
            covered: Vec::new(),
            group: Vec::new(),
            sib_plan: FlowPlan::default(),
        }
    }

    /// The same network with another routing model.
    pub fn with_routing(mut self, routing: Routing) -> Self {
        self.topo.routing = routing;
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

    /// Counts the sibling groups of each collective's pipeline stage (`stage_size` ranks
    /// per stage; see the module documentation).
    pub fn with_stage_size(mut self, stage_size: u32) -> Self {
        self.set_stage_size(Some(stage_size));
        self
    }

    /// Sets (or clears) the stage size of [`AnalyticNetwork::with_stage_size`].
    pub fn set_stage_size(&mut self, stage_size: Option<u32>) {
        let s = stage_size.filter(|&s| s > 0);
        if s != self.stage_size {
            self.stage_size = s;
            self.siblings.clear();
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Seconds per unit of plan scale of `alg` over `members` (`planner.shape` and
    /// `self.plan` hold the group's plan afterwards).
    fn unit_s(&mut self, alg: Algorithm, members: &[u32]) -> f64 {
        let shape = self
            .planner
            .unit_plan(&self.topo, alg, members, &mut self.plan);
        let Some(stage) = self.stage_size.filter(|_| shape.domains > 1) else {
            return self.planner.unit_time(&self.topo, &self.plan);
        };
        // The group's own links, then its stage's load on them.
        self.own.clear();
        self.own.extend_from_slice(&self.plan.links);
        let loads = self.sibling_loads(alg, members, stage);
        self.own
            .iter()
            .map(|l| loads.get(l).copied().unwrap_or(0.0))
            .fold(0.0, f64::max)
    }

    /// Per-link load of every sibling group of `members` in its stage running `alg`.
    fn sibling_loads(&mut self, alg: Algorithm, members: &[u32], stage: u32) -> Arc<LoadMap> {
        let m0 = members.iter().copied().min().unwrap_or(0);
        self.offsets.clear();
        self.offsets.extend(members.iter().map(|&m| m - m0));
        self.offsets.sort_unstable();
        let block = m0 / stage;
        let key = (alg, self.offsets.clone(), block);
        if let Some(l) = self.siblings.get(&key) {
            return Arc::clone(l);
        }
        let start = block * stage;
        let end = (start + stage).min(self.topo.gpus);
        self.covered.clear();
        self.covered.resize((end - start) as usize, false);
        let mut loads = LoadMap::default();
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
                    *loads.entry(l).or_insert(0.0) += f.bytes / self.topo.cap[l as usize];
                }
            }
        }
        if self.siblings.len() > 4096 {
            self.siblings.clear();
        }
        let loads = Arc::new(loads);
        self.siblings.insert(key, Arc::clone(&loads));
        loads
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
        let sh = self.planner.shape(&self.topo, members);
        let s = bytes as f64;
        let n = members.len() as u32;
        let hop = self.topo.hop_latency_s;
        let mut units = [f64::NAN; 7];
        let c = nccl::choose(collective, &sh, self.algorithm, hop, |alg| {
            let u = self.unit_s(alg, members);
            units[alg as usize] = u;
            Planner::plan_scale(alg, collective, n, s) * u
        });
        let u = match units[c.algorithm as usize] {
            u if u.is_nan() => self.unit_s(c.algorithm, members),
            u => u,
        };
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

    /// The group's shape (latency and the tuner's candidates) and the unit time of every
    /// algorithm over it (its bandwidth terms, with its stage's siblings): all that
    /// [`AnalyticNetwork::collective_time_s`] reads of its placement. Groups of more than
    /// [`KEY_BY_MEMBERS_ABOVE`] members are keyed by their members instead.
    fn group_key(&mut self, members: &[u32], key: &mut Vec<u64>) {
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
        let algs: &[Algorithm] = if sh.domains > 1 {
            &KEY_ALGORITHMS
        } else {
            &[
                Algorithm::Ring,
                Algorithm::Nvls,
                Algorithm::Direct,
                Algorithm::P2p,
            ]
        };
        for &alg in algs {
            key.push(self.unit_s(alg, members).to_bits());
        }
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

    fn group_key(&mut self, _: &[u32], _: &mut Vec<u64>) {}
}
