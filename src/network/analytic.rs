//! Closed-form collective times without contention (the "fast mode").
//!
//! Hierarchical alpha-beta model: a group of `n` ranks on `N` nodes with `g` ranks per node
//! moves `(g-1)/g` of the buffer over NVLink and `(N-1)/N` of `S/g` per GPU over its NIC,
//! once for reduce-scatter / all-gather and twice for all-reduce (NVIDIA/nccl-tests
//! doc/PERFORMANCE.md; reference.md "Collectives"). Latency is paid per ring step.

use super::{Completion, Network, Transfer};
use crate::faults::LinkFaults;
use crate::hardware::ClusterSpec;
use crate::schedule::Collective;
use crate::units::{Nanos, secs_to_ns};

/// Fraction of NVLink line rate a ring reaches: 370 GB/s busbw of 450 GB/s on an H100 node
/// (calibration/nccl-busbw.csv, ring row).
pub const NVLINK_EFFICIENCY: f64 = 370.0 / 450.0;
/// Fraction of NIC line rate reached: 47 GB/s per 400 Gb/s NDR NIC (calibration).
pub const NIC_EFFICIENCY: f64 = 47.0 / 50.0;
/// Per-step latency of a collective inside an NVSwitch domain, seconds.
pub const INTRA_STEP_LATENCY_S: f64 = 3.0e-6;
/// Software part of a per-step latency across nodes, seconds (hops add the fabric's).
pub const INTER_STEP_SOFTWARE_S: f64 = 5.0e-6;

#[derive(Debug, Clone)]
pub struct AnalyticNetwork {
    gpus_per_domain: u32,
    intra_bps: f64,
    nic_bps: f64,
    intra_alpha: f64,
    inter_alpha: f64,
    /// Cross-leaf bandwidth divisor for groups spanning more nodes than one leaf serves.
    oversubscription: f64,
    nodes_per_leaf: u32,
    /// Degraded links: a collective runs at its slowest member's link rate.
    link_faults: LinkFaults,
}

impl AnalyticNetwork {
    pub fn new(cluster: &ClusterSpec) -> Self {
        let domain = cluster.node.nvlink_domain.max(1) as u32;
        let gpus_per_node = cluster.node.gpus.max(1);
        let down_ports = (cluster.fabric.switch_radix / 2).max(1);
        let nics_per_rail =
            (cluster.node.nics / gpus_per_node.min(cluster.node.nics).max(1)).max(1);
        AnalyticNetwork {
            gpus_per_domain: domain,
            intra_bps: cluster.intra_node_bytes_per_gpu() * NVLINK_EFFICIENCY,
            nic_bps: cluster.nic_bytes_per_gpu() * NIC_EFFICIENCY,
            intra_alpha: INTRA_STEP_LATENCY_S,
            inter_alpha: INTER_STEP_SOFTWARE_S + 2.0 * cluster.fabric.hop_latency_us * 1e-6,
            oversubscription: cluster.fabric.oversubscription.max(1.0),
            nodes_per_leaf: (down_ports / nics_per_rail).max(1) as u32,
            link_faults: LinkFaults::none(),
        }
    }

    /// The same network with some GPUs' NIC/NVLink bandwidth scaled down.
    pub fn with_link_faults(mut self, link_faults: LinkFaults) -> Self {
        self.link_faults = link_faults;
        self
    }

    /// Nodes (NVLink domains) spanned and the largest number of members in one of them.
    fn shape(&self, members: &[u32]) -> (u32, u32) {
        let mut domains = 0u32;
        let mut max_per = 0u32;
        let mut last = u32::MAX;
        let mut run = 0u32;
        // Members come in rank order or strided order; count runs of equal domains and
        // distinct domains assuming sorted-by-domain layouts, falling back to a sort.
        let sorted = members
            .windows(2)
            .all(|w| w[0] / self.gpus_per_domain <= w[1] / self.gpus_per_domain);
        let mut buf;
        let ms: &[u32] = if sorted {
            members
        } else {
            buf = members.to_vec();
            buf.sort_unstable();
            &buf
        };
        for &m in ms {
            let d = m / self.gpus_per_domain;
            if d != last {
                domains += 1;
                last = d;
                run = 0;
            }
            run += 1;
            max_per = max_per.max(run);
        }
        (domains, max_per)
    }

    /// Seconds for a collective over `members` moving `bytes` (nccl-tests' size convention).
    pub fn collective_time_s(&self, collective: Collective, bytes: u64, members: &[u32]) -> f64 {
        let n = members.len() as f64;
        if n <= 1.0 {
            return 0.0;
        }
        let s = bytes as f64;
        let (domains, per) = self.shape(members);
        let (nodes, g) = (domains as f64, per as f64);
        let (nvl_factor, nic_factor) = self.link_faults.slowest(members);
        let intra_bps = self.intra_bps * nvl_factor;
        let nic = nic_factor
            * if domains > self.nodes_per_leaf {
                self.nic_bps / self.oversubscription
            } else {
                self.nic_bps
            };
        match collective {
            Collective::SendRecv => {
                if nodes <= 1.0 {
                    s / intra_bps + self.intra_alpha
                } else {
                    s / nic + self.inter_alpha
                }
            }
            Collective::AllToAll => {
                let intra = (g - 1.0) / n * s / intra_bps;
                let inter = (n - g) / n * s / nic;
                intra + inter + self.intra_alpha + if nodes > 1.0 { self.inter_alpha } else { 0.0 }
            }
            Collective::AllReduce | Collective::AllGather | Collective::ReduceScatter => {
                let passes = if collective == Collective::AllReduce {
                    2.0
                } else {
                    1.0
                };
                let intra = (g - 1.0) / g * s / intra_bps + (g - 1.0) * self.intra_alpha;
                let inter = if nodes > 1.0 {
                    (nodes - 1.0) / nodes * s / (g * nic) + (nodes - 1.0) * self.inter_alpha
                } else {
                    0.0
                };
                passes * (intra + inter)
            }
        }
    }
}

impl Network for AnalyticNetwork {
    fn begin(&mut self, now: Nanos, t: &Transfer<'_>) -> Completion {
        Completion::At(now + secs_to_ns(self.collective_time_s(t.collective, t.bytes, t.members)))
    }
}

/// A network where communication is free: for validating schedules against closed forms.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreeNetwork;

impl Network for FreeNetwork {
    fn begin(&mut self, now: Nanos, _: &Transfer<'_>) -> Completion {
        Completion::At(now)
    }
}
