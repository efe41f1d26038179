//! Collective algorithms decomposed into flows over routed paths.
//!
//! Owns: turning (collective, bytes, members, algorithm) into a [`FlowPlan`]: a handful of
//! flows, each a list of links with the bytes every link of it carries. Flows are at
//! channel granularity, not per chunk or ring step: a ring channel is one flow over all
//! its edges (a ring moves at the pace of its slowest edge), carrying `2(n-1)/n x S` per
//! edge for all-reduce; the latency term is added analytically (see [`super::nccl`]).
//! Must not: know about time or other traffic.
//!
//! Decompositions (members grouped by NVLink domain, `g` per domain, `N` domains):
//! - **ring**: one domain: one flow around the ring. Several: as NCCL's rail-aligned
//!   channels, each member leaves its domain once: one flow over all in-domain edges
//!   (`E x (g-1)/g`) and one flow per rail `c` through the member `c` of every domain (`E/g`).
//! - **hierarchical**: the same shape with reduce-scatter + all-gather in the domain
//!   (`2(g-1)/g x S`) and a per-rail all-reduce ring across domains (`2(N-1)/N x S/g`).
//! - **tree**: chain up and down inside domains (`S` each way) and, per rail, two
//!   complementary binary trees across domains carrying `S/2g` each way on each edge.
//! - **nvls**: every member sends `S` to the NVSwitch and receives `S` (in-switch reduce and
//!   multicast); across domains (nvls-tree) plus a per-rail ring.
//!   NVLS all-gather sends `S/n` up and receives `S`, reduce-scatter sends `S` and
//!   receives `S/n` (NVIDIA/nccl issue 1083): one flow over the uplinks, one over the
//!   downlinks.
//! - **pat** (one member per domain): the log-step exchange of NCCL 2.23's PAT: at step
//!   `k` every member sends `min(2^k, n - 2^k) x S/n` to the member `2^k` ahead, one flow
//!   per step over all members (the steps add up to a ring's `(n-1)/n x S` per member).
//! - **collnet-direct** (SHARP): reduce-scatter + all-gather in the domain (`2(g-1)/g x
//!   S`) and, per rail, an in-switch aggregation tree ([`Topology::sharp_tree`]) carrying
//!   `S/g` up and down each of its links; **collnet-chain**: chains in the domain (`S`
//!   each way, as tree) and the same per-rail SHARP trees.
//! - **direct** all-to-all: one flow per source over its routes to every other member,
//!   `S/n` each; **p2p**: one flow of `S`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::nccl::{self, Algorithm, AlgorithmChoice, Choice, Shape};
use super::topology::Topology;
use crate::vocab::Collective;

/// One flow of a plan: `links[start..end]` of the plan, each carrying `bytes`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedFlow {
    pub start: u32,
    pub end: u32,
    pub bytes: f64,
}

/// A collective as flows.
#[derive(Debug, Clone)]
pub struct FlowPlan {
    pub links: Vec<u32>,
    pub flows: Vec<PlannedFlow>,
    pub choice: Choice,
}

impl Default for FlowPlan {
    fn default() -> Self {
        FlowPlan {
            links: Vec::new(),
            flows: Vec::new(),
            choice: Choice {
                algorithm: Algorithm::Ring,
                protocol: nccl::Protocol::Simple,
                latency_s: 0.0,
                bw_factor: 1.0,
            },
        }
    }
}

impl FlowPlan {
    fn clear(&mut self) {
        self.links.clear();
        self.flows.clear();
    }

    fn open(&mut self) -> usize {
        self.flows.push(PlannedFlow {
            start: self.links.len() as u32,
            end: self.links.len() as u32,
            bytes: 0.0,
        });
        self.flows.len() - 1
    }

    /// Closes flow `i` with `bytes`, dropping it when empty.
    fn close(&mut self, i: usize, bytes: f64) {
        let end = self.links.len() as u32;
        let f = &mut self.flows[i];
        f.end = end;
        f.bytes = bytes;
        if f.end == f.start || bytes <= 0.0 {
            self.links.truncate(f.start as usize);
            self.flows.pop();
        }
    }

    pub fn flow_links(&self, f: &PlannedFlow) -> &[u32] {
        &self.links[f.start as usize..f.end as usize]
    }
}

type CacheKey = (Collective, Shape, u64, AlgorithmChoice);

/// FxHash-style word hasher for the tuner cache: its keys are a few small integers, so
/// SipHash's DoS resistance buys nothing and costs most of a lookup.
#[derive(Debug, Clone, Copy, Default)]
pub struct WordHasher(u64);

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type TunerCache = HashMap<CacheKey, (Algorithm, nccl::Protocol), BuildHasherDefault<WordHasher>>;

/// Builds flow plans; holds reusable buffers and the tuner's decisions.
#[derive(Debug, Clone, Default)]
pub struct Planner {
    sorted: Vec<u32>,
    runs: Vec<(u32, u32)>,
    rail: Vec<u32>,
    scratch: Vec<u32>,
    load: Vec<f64>,
    touched: Vec<u32>,
    cache: TunerCache,
    /// The last decision: consecutive collectives mostly repeat it (a stage's TP ops).
    last: Option<(CacheKey, (Algorithm, nccl::Protocol))>,
}

impl Planner {
    /// Groups `members` by domain (into `self.sorted` / `self.runs`) and returns the shape.
    pub fn shape(&mut self, topo: &Topology, members: &[u32]) -> Shape {
        self.group(topo, members);
        let per_domain = self.runs.iter().map(|&(a, b)| b - a).max().unwrap_or(0);
        let hops = if self.runs.len() > 1 {
            let first = self.sorted[0];
            self.sorted
                .iter()
                .map(|&m| topo.switch_hops(first, m))
                .max()
                .unwrap_or(1)
        } else {
            1
        };
        Shape {
            n: members.len() as u32,
            domains: self.runs.len() as u32,
            per_domain,
            pcie: !topo.nvlink,
            nvls: topo.nvls,
            hops,
            sharp: topo.sharp,
        }
    }

    /// Groups `members` by domain into `self.sorted` / `self.runs` (what the plans read;
    /// [`Planner::shape`] adds the hop count the latency needs).
    fn group(&mut self, topo: &Topology, members: &[u32]) {
        self.sorted.clear();
        self.sorted.extend_from_slice(members);
        let ds = topo.domain_size;
        if !self.sorted.windows(2).all(|w| w[0] / ds <= w[1] / ds) {
            self.sorted.sort_by_key(|&m| (m / ds, m));
        }
        self.runs.clear();
        let mut start = 0u32;
        for i in 1..=self.sorted.len() {
            if i == self.sorted.len() || self.sorted[i] / ds != self.sorted[i - 1] / ds {
                self.runs.push((start, i as u32));
                start = i as u32;
            }
        }
    }

    /// Plans `coll` of `bytes` over `members`: picks the algorithm and protocol (NCCL's
    /// tuner, or the forced choice: [`Planner::choose`]) and writes the flows, bytes already
    /// divided by the protocol's efficiency, into `out`.
    pub fn plan(
        &mut self,
        topo: &Topology,
        coll: Collective,
        bytes: u64,
        members: &[u32],
        choice: AlgorithmChoice,
        out: &mut FlowPlan,
    ) {
        out.clear();
        if members.len() < 2 || bytes == 0 {
            out.choice = FlowPlan::default().choice;
            return;
        }
        let (c, _) = self.choose(topo, coll, bytes, members, choice, out);
        self.build(topo, c.algorithm, coll, bytes as f64, members, out);
        for f in &mut out.flows {
            f.bytes /= c.bw_factor;
        }
        out.choice = c;
    }

    /// The (algorithm, protocol) NCCL's tuner picks for `coll` of `bytes` over `members`
    /// (at least two), with its latency and bandwidth factor, and the group's shape; leaves
    /// the members grouped by domain (what [`Planner::build`] reads) and `scratch` empty.
    ///
    /// The tuner predicts from its own topology model, one communicator at a time: the
    /// group's traffic alone, with every equal-cost uplink pool as one link
    /// ([`Topology::tuner_link`]). So the pick never depends on how the fabric hashes flows
    /// or on what other groups run: both network modes, and every group of one shape, make
    /// the same pick (the contention and analytic modes then price it each their way).
    /// Decisions are cached per (collective, shape, size, choice).
    pub fn choose(
        &mut self,
        topo: &Topology,
        coll: Collective,
        bytes: u64,
        members: &[u32],
        choice: AlgorithmChoice,
        scratch: &mut FlowPlan,
    ) -> (Choice, Shape) {
        let shape = self.shape(topo, members);
        let key = (coll, shape, bytes, choice);
        let (alg, proto) = match self.last.filter(|(k, _)| *k == key) {
            Some((_, v)) => v,
            None => self.tune(topo, key, members, scratch),
        };
        let c = Choice {
            algorithm: alg,
            protocol: proto,
            latency_s: nccl::latency_s(alg, proto, coll, &shape, topo.hop_latency_s).unwrap_or(0.0),
            bw_factor: nccl::bw_factor(alg, proto, coll, &shape),
        };
        (c, shape)
    }

    /// NCCL's tuner decision for `key`, from the cache or computed (and cached).
    fn tune(
        &mut self,
        topo: &Topology,
        key: CacheKey,
        members: &[u32],
        out: &mut FlowPlan,
    ) -> (Algorithm, nccl::Protocol) {
        let v = match self.cache.get(&key) {
            Some(&v) => v,
            None => {
                let (coll, shape, bytes, choice) = key;
                let c = nccl::choose(coll, &shape, choice, topo.hop_latency_s, |alg| {
                    self.build(topo, alg, coll, bytes as f64, members, out);
                    let t = self.tuner_time(topo, out);
                    out.clear();
                    t
                });
                if self.cache.len() > 1 << 16 {
                    self.cache.clear();
                }
                self.cache.insert(key, (c.algorithm, c.protocol));
                (c.algorithm, c.protocol)
            }
        };
        self.last = Some((key, v));
        v
    }

    /// A plan's time as NCCL's tuner sees it: its most loaded link's bytes over capacity,
    /// with equal-cost uplinks pooled ([`Topology::tuner_link`]).
    fn tuner_time(&mut self, topo: &Topology, plan: &FlowPlan) -> f64 {
        self.max_load(plan, |l| topo.tuner_link(l))
    }

    /// Contention-free time of a plan: the most loaded link's bytes over its capacity.
    pub fn unit_time(&mut self, topo: &Topology, plan: &FlowPlan) -> f64 {
        self.max_load(plan, |l| (l, topo.cap[l]))
    }

    /// The most loaded link's seconds of a plan, each link counted as the `(link,
    /// capacity)` that `view` maps it to.
    fn max_load(&mut self, plan: &FlowPlan, view: impl Fn(usize) -> (usize, f64)) -> f64 {
        let links = plan
            .links
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0);
        if self.load.len() < links {
            self.load.resize(links, 0.0);
        }
        let mut worst = 0.0f64;
        for f in &plan.flows {
            for &l in plan.flow_links(f) {
                let (li, cap) = view(l as usize);
                if self.load[li] == 0.0 {
                    self.touched.push(li as u32);
                }
                self.load[li] += f.bytes / cap;
                worst = worst.max(self.load[li]);
            }
        }
        for &l in &self.touched {
            self.load[l as usize] = 0.0;
        }
        self.touched.clear();
        worst
    }

    /// Writes the flows of `alg` (payload bytes, before protocol efficiency) into `out`.
    /// Expects [`Planner::shape`] to have run on `members`.
    fn build(
        &mut self,
        topo: &Topology,
        alg: Algorithm,
        coll: Collective,
        s: f64,
        members: &[u32],
        out: &mut FlowPlan,
    ) {
        let e = nccl::busbw_factor(coll, self.sorted.len() as u32) * s;
        self.build_scaled(topo, alg, coll, s, e, members, out);
    }

    /// The bytes an algorithm's plan scales with: nccl-tests' bus bytes (`busbw_factor x
    /// S`) for a ring, the payload `S` otherwise.
    pub fn plan_scale(alg: Algorithm, coll: Collective, n: u32, s: f64) -> f64 {
        match alg {
            Algorithm::Ring => nccl::busbw_factor(coll, n) * s,
            _ => s,
        }
    }

    /// The plan of `alg` over `members` per unit of [`Planner::plan_scale`] (before
    /// protocol efficiency): every flow's bytes are linear in it, so a plan of any size is
    /// this one scaled. Groups the members by domain itself. NVLS is planned in its
    /// all-reduce shape (`S` up and down each member's link): all-gather and reduce-scatter
    /// move `S` on one direction and `S/n` on the other, so their busiest link, which is all
    /// a unit time reads, carries the same.
    pub fn unit_plan(
        &mut self,
        topo: &Topology,
        alg: Algorithm,
        members: &[u32],
        out: &mut FlowPlan,
    ) {
        out.clear();
        self.group(topo, members);
        if members.len() >= 2 {
            self.build_scaled(topo, alg, Collective::AllReduce, 1.0, 1.0, members, out);
        }
    }

    /// Flows of one connection between domains: the routing's flows per connection
    /// (see [`super::routing::Routing`]).
    fn subflows(&self, topo: &Topology) -> u32 {
        if self.runs.len() > 1 {
            topo.routing.flows_per_connection.max(1)
        } else {
            1
        }
    }

    /// Writes the flows of `alg` for payload `s` and bus bytes `e` (ring) into `out`.
    #[allow(clippy::too_many_arguments)]
    fn build_scaled(
        &mut self,
        topo: &Topology,
        alg: Algorithm,
        coll: Collective,
        s: f64,
        e: f64,
        members: &[u32],
        out: &mut FlowPlan,
    ) {
        let n = self.sorted.len() as f64;
        let big_n = self.runs.len() as f64;
        let g = self.runs.iter().map(|&(a, b)| b - a).max().unwrap_or(1) as f64;
        match alg {
            Algorithm::Ring => {
                if self.runs.len() == 1 {
                    self.single_ring(topo, e, out);
                } else {
                    self.intra_rings(topo, e * (g - 1.0) / g, out);
                    self.rail_rings(topo, e / g, out);
                }
            }
            Algorithm::Hierarchical => {
                self.intra_rings(topo, 2.0 * (g - 1.0) / g * s, out);
                self.rail_rings(topo, 2.0 * (big_n - 1.0) / big_n * s / g, out);
            }
            Algorithm::Tree => {
                self.chains(topo, s, out);
                self.rail_trees(topo, s / (2.0 * g), out);
            }
            Algorithm::Nvls if coll == Collective::AllGather => {
                self.nvls_split(topo, s / n, s, out);
            }
            Algorithm::Nvls if coll == Collective::ReduceScatter => {
                self.nvls_split(topo, s, s / n, out);
            }
            Algorithm::Pat => self.pat(topo, s, out),
            Algorithm::CollNetDirect => {
                self.intra_rings(topo, 2.0 * (g - 1.0) / g * s, out);
                self.sharp_trees(topo, s / g, out);
            }
            Algorithm::CollNetChain => {
                self.chains(topo, s, out);
                self.sharp_trees(topo, s / g, out);
            }
            Algorithm::Nvls | Algorithm::NvlsTree => {
                self.nvls(topo, s, out);
                if self.runs.len() > 1 {
                    self.rail_rings(topo, 2.0 * (big_n - 1.0) / big_n * s / g, out);
                }
            }
            Algorithm::Direct => self.direct(topo, s / n, out),
            // More than two members: a ring shift (context-parallel K/V), each member
            // sending `s` to the next.
            Algorithm::P2p if members.len() > 2 => self.single_ring(topo, s, out),
            Algorithm::P2p => {
                let k = self.subflows(topo);
                for sub in 0..k {
                    let i = out.open();
                    topo.route_sub(members[0], members[1], sub, &mut out.links);
                    out.close(i, s / k as f64);
                }
            }
        }
    }

    fn run(&self, i: usize) -> &[u32] {
        let (a, b) = self.runs[i];
        &self.sorted[a as usize..b as usize]
    }

    fn single_ring(&self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let m = &self.sorted;
        let subs = self.subflows(topo);
        for sub in 0..subs {
            let i = out.open();
            for k in 0..m.len() {
                topo.route_sub(m[k], m[(k + 1) % m.len()], sub, &mut out.links);
            }
            out.close(i, bytes / subs as f64);
        }
    }

    /// One flow over the ring edges inside every domain.
    fn intra_rings(&self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let i = out.open();
        for r in 0..self.runs.len() {
            let run = self.run(r);
            if run.len() > 1 {
                for k in 0..run.len() {
                    topo.route(run[k], run[(k + 1) % run.len()], &mut out.links);
                }
            }
        }
        out.close(i, bytes);
    }

    /// Member `c` of a run (wrapping when the run is short): the rail-`c` representative.
    fn rail_member(&self, r: usize, c: usize) -> u32 {
        let run = self.run(r);
        run[c % run.len()]
    }

    /// Per rail, a ring through that rail's member of every domain.
    fn rail_rings(&self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let g = self.runs.iter().map(|&(a, b)| b - a).max().unwrap_or(1) as usize;
        let nd = self.runs.len();
        let subs = self.subflows(topo);
        for c in 0..g {
            for sub in 0..subs {
                let i = out.open();
                for r in 0..nd {
                    let (a, b) = (self.rail_member(r, c), self.rail_member((r + 1) % nd, c));
                    topo.route_sub(a, b, sub, &mut out.links);
                }
                out.close(i, bytes / subs as f64);
            }
        }
    }

    /// Chains up and down inside every domain.
    fn chains(&self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let i = out.open();
        for r in 0..self.runs.len() {
            let run = self.run(r);
            for k in 1..run.len() {
                topo.route(run[k - 1], run[k], &mut out.links);
                topo.route(run[k], run[k - 1], &mut out.links);
            }
        }
        out.close(i, bytes);
    }

    /// Per rail, two complementary binary trees over the domains (the second mirrored so
    /// the first one's leaves are its inner nodes), each edge carrying `bytes` both ways.
    fn rail_trees(&self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let g = self.runs.iter().map(|&(a, b)| b - a).max().unwrap_or(1) as usize;
        let nd = self.runs.len();
        let subs = self.subflows(topo);
        for c in 0..g {
            for sub in 0..subs {
                let i = out.open();
                for mirror in [false, true] {
                    let at = |k: usize| if mirror { nd - 1 - k } else { k };
                    for k in 1..nd {
                        let (child, parent) = (at(k), at((k - 1) / 2));
                        let (a, b) = (self.rail_member(child, c), self.rail_member(parent, c));
                        topo.route_sub(a, b, sub, &mut out.links);
                        topo.route_sub(b, a, sub, &mut out.links);
                    }
                }
                out.close(i, bytes / subs as f64);
            }
        }
    }

    /// Every member to its NVSwitch and back.
    fn nvls(&self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let i = out.open();
        for &m in &self.sorted {
            let (up, down) = topo.scale_up_links(m);
            out.links.push(up);
            out.links.push(down);
        }
        out.close(i, bytes);
    }

    /// NVLS all-gather / reduce-scatter: every member's uplink carries `up`, its downlink
    /// `down` (two flows).
    fn nvls_split(&self, topo: &Topology, up: f64, down: f64, out: &mut FlowPlan) {
        for (bytes, upward) in [(up, true), (down, false)] {
            let i = out.open();
            for &m in &self.sorted {
                let (u, d) = topo.scale_up_links(m);
                out.links.push(if upward { u } else { d });
            }
            out.close(i, bytes);
        }
    }

    /// PAT's log steps: at distance `d = 1, 2, 4, ...` every member sends `min(d, n - d)`
    /// shards of `bytes / n` to the member `d` ahead (one flow per step and sub-flow).
    fn pat(&self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let m = &self.sorted;
        let n = m.len();
        let subs = self.subflows(topo);
        let mut d = 1;
        while d < n {
            let shards = d.min(n - d) as f64;
            for sub in 0..subs {
                let i = out.open();
                for k in 0..n {
                    topo.route_sub(m[k], m[(k + d) % n], sub, &mut out.links);
                }
                out.close(i, shards * bytes / n as f64 / subs as f64);
            }
            d *= 2;
        }
    }

    /// Per rail, a SHARP aggregation tree over that rail's member of every domain.
    fn sharp_trees(&mut self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let g = self.runs.iter().map(|&(a, b)| b - a).max().unwrap_or(1) as usize;
        let nd = self.runs.len();
        for c in 0..g {
            let mut rail = std::mem::take(&mut self.rail);
            rail.clear();
            rail.extend((0..nd).map(|r| self.rail_member(r, c)));
            let i = out.open();
            topo.sharp_tree(&rail, c as u32, &mut self.scratch, &mut out.links);
            out.close(i, bytes);
            self.rail = rail;
        }
    }

    fn direct(&self, topo: &Topology, bytes: f64, out: &mut FlowPlan) {
        let subs = self.subflows(topo);
        for &src in &self.sorted {
            for sub in 0..subs {
                let i = out.open();
                for &dst in &self.sorted {
                    topo.route_sub(src, dst, sub, &mut out.links);
                }
                out.close(i, bytes / subs as f64);
            }
        }
    }
}
