//! Closed-form collective times without contention (the "fast mode").
//!
//! Same algorithms, protocols, latencies and calibrated efficiencies as the detailed
//! [`super::FlowNetwork`] ([`super::nccl`]), but the bandwidth term is a formula of the
//! group's shape instead of flows on a topology: a group of `n` ranks on `N` NVLink domains
//! with `g` per domain moves its in-domain share over NVLink (or PCIe) and `1/g` of the
//! ring traffic per GPU over its NIC, phases pipelined as NCCL's channels are (the slower
//! side sets the pace). Crossing leaves divides NIC bandwidth by the leaf oversubscription,
//! crossing pods by the pod's. Agrees with the detailed mode within a few percent when there
//! is no contention (see the tests).

use super::nccl::{self, Algorithm, AlgorithmChoice, NIC_EFFICIENCY, Shape};
use super::topology::Topology;
use super::{Completion, Network, Transfer};
use crate::faults::LinkFaults;
use crate::hardware::{ClusterSpec, FabricKind};
use crate::units::{Nanos, secs_to_ns};
use crate::vocab::Collective;

pub use super::nccl::NVLINK_EFFICIENCY;

#[derive(Debug, Clone)]
pub struct AnalyticNetwork {
    topo: Topology,
    intra_bps: f64,
    nic_bps: f64,
    leaf_os: f64,
    pod_os: f64,
    algorithm: AlgorithmChoice,
    sorted: Vec<u32>,
    /// Degraded links: a collective runs at its slowest member's link rates.
    link_faults: LinkFaults,
    /// `(nvlink, nic)` bandwidth factors of the collective being timed.
    factors: (f64, f64),
}

impl AnalyticNetwork {
    pub fn new(cluster: &ClusterSpec) -> Self {
        Self::with_algorithm(cluster, AlgorithmChoice::Auto)
    }

    pub fn with_algorithm(cluster: &ClusterSpec, algorithm: AlgorithmChoice) -> Self {
        let topo = Topology::new(cluster);
        let intra_bps = topo.cap.first().copied().unwrap_or(1.0);
        let nic_bps = cluster.nic_bytes_per_gpu() * NIC_EFFICIENCY;
        let pod_os = if cluster.fabric.kind == FabricKind::ClosPods {
            cluster.fabric.pod_oversubscription
        } else {
            cluster.fabric.spine_oversubscription
        };
        AnalyticNetwork {
            topo,
            intra_bps,
            nic_bps: nic_bps.max(1.0),
            leaf_os: cluster.fabric.oversubscription.max(1.0),
            pod_os: pod_os.max(1.0),
            algorithm,
            sorted: Vec::new(),
            link_faults: LinkFaults::none(),
            factors: (1.0, 1.0),
        }
    }

    /// The same network with some GPUs' NIC/NVLink bandwidth scaled down.
    pub fn with_link_faults(mut self, link_faults: LinkFaults) -> Self {
        self.link_faults = link_faults;
        self
    }

    /// Shape of a group: domains spanned, most members in one, switch hops between domains.
    fn shape(&mut self, members: &[u32]) -> Shape {
        let ds = self.topo.domain_size;
        self.sorted.clear();
        self.sorted.extend_from_slice(members);
        if !self.sorted.windows(2).all(|w| w[0] / ds <= w[1] / ds) {
            self.sorted.sort_unstable_by_key(|&m| (m / ds, m));
        }
        let (mut domains, mut per, mut run, mut last) = (0u32, 0u32, 0u32, u32::MAX);
        for &m in &self.sorted {
            if m / ds != last {
                domains += 1;
                last = m / ds;
                run = 0;
            }
            run += 1;
            per = per.max(run);
        }
        let first = self.sorted.first().copied().unwrap_or(0);
        let hops = if domains > 1 {
            self.sorted
                .iter()
                .map(|&m| self.topo.switch_hops(first, m))
                .max()
                .unwrap_or(1)
        } else {
            1
        };
        Shape {
            n: members.len() as u32,
            domains,
            per_domain: per,
            pcie: !self.topo.nvlink,
            nvls: self.topo.nvls,
            hops,
        }
    }

    /// Contention-free time of an algorithm's traffic at full link capacity, seconds.
    fn unit_time(&self, alg: Algorithm, coll: Collective, s: f64, sh: &Shape) -> f64 {
        let (n, nd, g) = (sh.n as f64, sh.domains as f64, sh.per_domain as f64);
        let (nvl_factor, nic_factor) = self.factors;
        let nic = nic_factor
            * match sh.hops {
                0..=1 => self.nic_bps,
                2..=3 => self.nic_bps / self.leaf_os,
                _ => self.nic_bps / (self.leaf_os * self.pod_os),
            };
        let intra = self.intra_bps * nvl_factor;
        let e = nccl::busbw_factor(coll, sh.n) * s;
        let multi = sh.domains > 1;
        match alg {
            Algorithm::Ring if !multi => e / intra,
            Algorithm::Ring => (e * (g - 1.0) / g / intra).max(e / g / nic),
            Algorithm::Hierarchical => {
                (2.0 * (g - 1.0) / g * s / intra).max(2.0 * (nd - 1.0) / nd * s / g / nic)
            }
            Algorithm::Tree => {
                let chain = if g >= 3.0 { 2.0 * s } else { (g - 1.0) * s };
                let rails = if nd >= 3.0 { 2.0 * s / g } else { s / g };
                (chain / intra).max(rails / nic)
            }
            Algorithm::Nvls | Algorithm::NvlsTree => {
                let rails = if multi {
                    2.0 * (nd - 1.0) / nd * s / g / nic
                } else {
                    0.0
                };
                (s / intra).max(rails)
            }
            Algorithm::Direct => ((g - 1.0) * s / n / intra).max((n - g) * s / n / nic),
            Algorithm::P2p => s / if multi { nic } else { intra },
        }
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
        let sh = self.shape(members);
        self.factors = if self.link_faults.is_empty() {
            (1.0, 1.0)
        } else {
            self.link_faults.slowest(members)
        };
        let s = bytes as f64;
        let hop = self.topo.hop_latency_s;
        let c = nccl::choose(collective, &sh, self.algorithm, hop, |alg| {
            self.unit_time(alg, collective, s, &sh)
        });
        c.latency_s + self.unit_time(c.algorithm, collective, s, &sh) / c.bw_factor
    }
}

impl Network for AnalyticNetwork {
    fn begin(&mut self, now: Nanos, t: &Transfer<'_>) -> Completion {
        Completion::At(now + secs_to_ns(self.collective_time_s(t.collective, t.bytes, t.members)))
    }

    fn folding(&self) -> Option<Vec<u32>> {
        Some(self.link_faults.degraded_gpus())
    }

    /// The group's shape (all that [`AnalyticNetwork::collective_time_s`] reads of its
    /// placement) and its slowest member's link factors.
    fn group_key(&mut self, members: &[u32], key: &mut Vec<u64>) {
        if members.len() < 2 {
            key.push(members.len() as u64);
            return;
        }
        let sh = self.shape(members);
        let (nvl, nic) = if self.link_faults.is_empty() {
            (1.0, 1.0)
        } else {
            self.link_faults.slowest(members)
        };
        key.push(sh.n as u64 | (sh.domains as u64) << 32);
        key.push(sh.per_domain as u64 | (sh.hops as u64) << 32);
        key.push((nvl as f32).to_bits() as u64 | ((nic as f32).to_bits() as u64) << 32);
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
