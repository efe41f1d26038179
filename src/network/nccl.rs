//! NCCL's algorithm and protocol choice, and the latency and efficiency constants behind it.
//!
//! Owns: the calibrated link efficiencies, the per-(algorithm, protocol) latency model of
//! NCCL's `src/graph/tuning.cc` (`latency = baseLat + steps x hwLat`, intra-node steps at
//! NVLink/PCIe latency, inter-node steps at network latency plus switch hops), the protocol
//! bandwidth factors (LL moves 4 data bytes per 8, LL128 120 per 128), and the tuner that
//! picks the (algorithm, protocol) pair with the smallest predicted time, as NCCL does.
//! Must not: know about flows or routes (bandwidth terms come from the caller).
//!
//! Constants come from NCCL's tuning tables (NVIDIA/nccl `src/graph/tuning.cc`) and from
//! `../shared/calibration/nccl-busbw.csv`, the only data they are tuned against:
//! - [`NVLINK_EFFICIENCY`] 0.78: ring all-reduce busbw on 8x H100 (370 GB/s of 450) and
//!   8x A100 (214-232 GB/s of 300) both fall within 6 %.
//! - [`NIC_EFFICIENCY`] 0.94: 47 GB/s per 400 Gb/s NDR NIC (24 of 25 GB/s on HDR).
//! - NVLS (NVLink SHARP): two operating points fit to the H100/H200 curve (1 MB .. 8 GB).
//!   NCCL 2.18 runs NVLS with the Simple protocol only but with fewer channels for small
//!   messages; [`Protocol::Ll128`] on NVLS stands for that low-latency, low-channel regime.
//!
//! Algorithms NCCL added after 2.18 (NVIDIA/nccl v2.23.4-1 `src/graph/tuning.cc`, the
//! version cited for each constant below):
//! - **NVLS all-gather / reduce-scatter** (NCCL 2.19+, one NVLink domain): Simple only,
//!   latency `hwLat[NVLINK][NVLS][Simple]` = 25 us (`baseLat` 0). Its traffic is what
//!   NVIDIA/nccl issue 1083 states (S. Jeaugey): all-gather sends `S/n` and receives `S`,
//!   reduce-scatter sends `S` and receives `S/n`, where a ring sends and receives
//!   `(n-1)/n x S`; at the NVLS efficiency calibrated on all-reduce the ring is faster,
//!   so the tuner keeps ring for these (as NCCL does, NVIDIA/nccl issue 1670).
//! - **PAT** (NCCL 2.23+, all-gather / reduce-scatter with one GPU per node,
//!   `ncclPatEnable`): Simple only, latency `8 + log2i(nNodes) x interLat/3.5 + 2.8 x
//!   nRanks` us with `interLat = hwLat[NET][Tree][Simple]` (14 us at one GPU per node) plus
//!   the switch hops, bandwidth `x 0.85` (`if (a == NCCL_ALGO_PAT) busBw *= .85`).
//! - **CollNet (InfiniBand SHARP)**, all-reduce across NVLink domains where the fabric
//!   reduces in its switches (`fabric.sharp`): `CollNetDirect` (NVSwitch nodes) latency
//!   `2 (min(1, ppn-1) x 3.7 + (ppn-1) x 0.4) + interLat` with `interLat` 31 us (14 at
//!   one GPU per node), bandwidth `x 0.85` on Hopper and later; `CollNetChain` latency
//!   `2 (ppn-1) x 2.8 + interLat` with `interLat` 30 us (14 at one GPU per node).

use serde::{Deserialize, Serialize};

use crate::vocab::Collective;

/// Fraction of NVLink line rate a collective reaches (calibration, ring rows).
pub const NVLINK_EFFICIENCY: f64 = 0.78;
/// Fraction of NIC (and fabric port) line rate reached: 47 GB/s of 50 on NDR.
pub const NIC_EFFICIENCY: f64 = 0.94;
/// Fraction of PCIe line rate reached (not calibrated: no PCIe rows in the data).
pub const PCIE_EFFICIENCY: f64 = 0.80;

/// NVLS all-reduce algorithm bandwidth as a fraction of NVLink line rate, per regime
/// (fit: 475 GB/s busbw at 1-8 GB on H100; 331 GB/s busbw small-message slope).
const NVLS_LINE_FRACTION: [f64; 2] = [0.42, 0.6038];
/// NVLS latency per regime, microseconds (fit to the 1 MB, 16 MB and 64 MB points).
const NVLS_LATENCY_US: [f64; 2] = [36.45, 77.6];
/// NCCL's own predicted latency of NVLS (its tuner's `baseLat[NVLS][Simple]`, NVIDIA/nccl
/// v2.18.5 `src/graph/tuning.cc`; one node adds no network term), microseconds. The tuner
/// decides *whether* to run NVLS with this figure; the time NVLS then takes is the
/// calibrated [`NVLS_LATENCY_US`] regime.
const NCCL_TUNER_NVLS_LATENCY_US: f64 = 23.0;
/// Per-peer launch cost of direct all-to-all (one send/recv pair per peer), microseconds.
const P2P_PER_PEER_US: f64 = 0.5;
/// NVLS all-gather / reduce-scatter latency: `hwLat[NVLINK][NVLS][Simple]` with `baseLat`
/// 0 (NVIDIA/nccl v2.23.4-1 `src/graph/tuning.cc`), microseconds.
const NVLS_AG_RS_LATENCY_US: f64 = 25.0;
/// PAT: base time, per-rank linear part and the divisor of the log term's inter-node
/// latency (v2.23.4-1 `tuning.cc`: `8 + log2i(nNodes) * (interLat/3.5) + nRanks * 2.8`).
const PAT_BASE_US: f64 = 8.0;
const PAT_PER_RANK_US: f64 = 2.8;
const PAT_LOG_DIVISOR: f64 = 3.5;
/// PAT's bandwidth correction (v2.23.4-1 `tuning.cc`: `busBw *= .85`).
const PAT_BW_FACTOR: f64 = 0.85;
/// CollNet inter-node latency per algorithm, `hwLat[NET][CollNetDirect|CollNetChain]
/// [Simple]` (v2.23.4-1 `tuning.cc`), microseconds; with one GPU per node NCCL uses the
/// tree's network latency instead (`HW_LAT_NET_TREE`).
const COLLNET_DIRECT_NET_US: f64 = 31.0;
const COLLNET_CHAIN_NET_US: f64 = 30.0;
/// CollNet intra-node latency `hwLat[NVLINK][CollNetDirect|CollNetChain][Simple]`, and
/// CollNetDirect's arity serialization per extra local rank (v2.23.4-1), microseconds.
const COLLNET_DIRECT_INTRA_US: f64 = 3.7;
const COLLNET_CHAIN_INTRA_US: f64 = 2.8;
const COLLNET_DIRECT_ARITY_US: f64 = 0.4;
/// CollNetDirect's measured correction on Hopper and later (v2.23.4-1 `tuning.cc`:
/// `if (minCompCap >= 90) busBw *= .85`).
const COLLNET_DIRECT_HOPPER_BW: f64 = 0.85;

/// Which algorithm to use: automatic (NCCL's tuner) or forced. Forcing an algorithm that
/// does not apply (NVLS without NVSwitch, tree for all-gather) falls back to ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlgorithmChoice {
    #[default]
    Auto,
    Ring,
    Tree,
    Nvls,
    Hierarchical,
    /// NCCL 2.23's PAT for all-gather / reduce-scatter at one GPU per node.
    Pat,
    /// CollNet (SHARP) with direct NVSwitch access per GPU (`NCCL_ALGO=CollNetDirect`).
    CollnetDirect,
    /// CollNet (SHARP) after an intra-node chain (`NCCL_ALGO=CollNetChain`).
    CollnetChain,
}

impl AlgorithmChoice {
    pub fn label(self) -> &'static str {
        match self {
            AlgorithmChoice::Auto => "auto",
            AlgorithmChoice::Ring => "ring",
            AlgorithmChoice::Tree => "tree",
            AlgorithmChoice::Nvls => "nvls",
            AlgorithmChoice::Hierarchical => "hierarchical",
            AlgorithmChoice::Pat => "pat",
            AlgorithmChoice::CollnetDirect => "collnet-direct",
            AlgorithmChoice::CollnetChain => "collnet-chain",
        }
    }
}

impl std::str::FromStr for AlgorithmChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "ring" => Self::Ring,
            "tree" => Self::Tree,
            "nvls" => Self::Nvls,
            "hierarchical" => Self::Hierarchical,
            "pat" => Self::Pat,
            "collnet-direct" | "collnetdirect" => Self::CollnetDirect,
            "collnet-chain" | "collnetchain" => Self::CollnetChain,
            _ => {
                return Err(format!(
                    "unknown algorithm `{s}`; allowed: auto, ring, tree, nvls, hierarchical, \
                     pat, collnet-direct, collnet-chain"
                ));
            }
        })
    }
}

/// A collective algorithm as NCCL implements it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Ring,
    /// Double binary tree across nodes, chain inside.
    Tree,
    /// In-switch reduction inside one NVSwitch domain.
    Nvls,
    /// NVLS inside domains, rings per rail across them.
    NvlsTree,
    /// Reduce-scatter in the domain, all-reduce per rail across domains, all-gather.
    Hierarchical,
    /// All-to-all: every member sends to every other directly.
    Direct,
    /// One send/recv.
    P2p,
    /// Parallel aggregated trees (NCCL 2.23+): all-gather / reduce-scatter in log steps,
    /// one GPU per node.
    Pat,
    /// InfiniBand SHARP: reduce-scatter in the NVLink domain, each GPU's shard reduced in
    /// the switches per rail, all-gather in the domain.
    CollNetDirect,
    /// InfiniBand SHARP after a chain through the domain.
    CollNetChain,
}

impl Algorithm {
    /// Number of algorithms (`Algorithm as usize` is below it).
    pub const COUNT: usize = 10;

    /// Every algorithm, in declaration order.
    pub const ALL: [Algorithm; Algorithm::COUNT] = [
        Algorithm::Ring,
        Algorithm::Tree,
        Algorithm::Nvls,
        Algorithm::NvlsTree,
        Algorithm::Hierarchical,
        Algorithm::Direct,
        Algorithm::P2p,
        Algorithm::Pat,
        Algorithm::CollNetDirect,
        Algorithm::CollNetChain,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Algorithm::Ring => "ring",
            Algorithm::Tree => "tree",
            Algorithm::Nvls => "nvls",
            Algorithm::NvlsTree => "nvls-tree",
            Algorithm::Hierarchical => "hierarchical",
            Algorithm::Direct => "direct",
            Algorithm::P2p => "p2p",
            Algorithm::Pat => "pat",
            Algorithm::CollNetDirect => "collnet-direct",
            Algorithm::CollNetChain => "collnet-chain",
        }
    }
}

/// NCCL's wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Ll = 0,
    Ll128 = 1,
    Simple = 2,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Ll, Protocol::Ll128, Protocol::Simple];

    pub fn label(self) -> &'static str {
        match self {
            Protocol::Ll => "LL",
            Protocol::Ll128 => "LL128",
            Protocol::Simple => "Simple",
        }
    }
}

// NCCL tuning.cc: latencies in microseconds, per protocol (LL, LL128, Simple).
const BASE_LAT_TREE: [f64; 3] = [6.8, 14.0, 0.0];
const BASE_LAT_RING: [f64; 3] = [6.6, 14.0, 8.4];
const HW_LAT_NVLINK_TREE: [f64; 3] = [0.6, 1.25, 4.0];
const HW_LAT_NVLINK_RING: [f64; 3] = [0.6, 1.9, 3.4];
const HW_LAT_PCI_TREE: [f64; 3] = [1.0, 1.9, 6.0];
const HW_LAT_PCI_RING: [f64; 3] = [1.0, 2.5, 5.7];
const HW_LAT_NET_TREE: [f64; 3] = [5.0, 8.5, 14.0];
const HW_LAT_NET_RING: [f64; 3] = [2.7, 4.0, 14.0];

/// How a group sits on the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub n: u32,
    /// NVLink (or PCIe) domains spanned.
    pub domains: u32,
    /// Most members in one domain.
    pub per_domain: u32,
    /// GPUs of a domain talk over PCIe, not NVLink.
    pub pcie: bool,
    /// The domain's switch can reduce (NVLS).
    pub nvls: bool,
    /// Most switches a message crosses between domains.
    pub hops: u32,
    /// The fabric's switches reduce (InfiniBand SHARP): CollNet applies across domains.
    pub sharp: bool,
}

impl Shape {
    /// One member per domain over several domains (NCCL's `nNodes == nRanks`).
    pub fn one_per_domain(&self) -> bool {
        self.domains > 1 && self.per_domain == 1 && self.domains == self.n
    }
}

/// A chosen (algorithm, protocol) pair with its latency and bandwidth factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub algorithm: Algorithm,
    pub protocol: Protocol,
    /// Fixed time added to the bandwidth-bound part, seconds.
    pub latency_s: f64,
    /// Fraction of link capacity the protocol delivers as payload.
    pub bw_factor: f64,
}

fn log2_ceil(n: u32) -> f64 {
    (n.max(1) as f64).log2().ceil()
}

/// NCCL's `log2i`: the floor of log2.
fn log2_floor(n: u32) -> f64 {
    f64::from(31 - n.max(1).leading_zeros())
}

/// Latency of an (algorithm, protocol) for a collective on a shape, seconds; `None` where
/// the pair does not apply.
pub fn latency_s(
    alg: Algorithm,
    p: Protocol,
    coll: Collective,
    s: &Shape,
    hop_latency_s: f64,
) -> Option<f64> {
    let pi = p as usize;
    let net_hops_us = s.hops as f64 * hop_latency_s * 1e6;
    let (n, nodes) = (s.n as f64, s.domains as f64);
    let multi = s.domains > 1;
    let intra = |ring: bool| -> f64 {
        let t = match (s.pcie, ring) {
            (false, true) => HW_LAT_NVLINK_RING[pi],
            (false, false) => HW_LAT_NVLINK_TREE[pi],
            (true, true) => HW_LAT_PCI_RING[pi],
            (true, false) => HW_LAT_PCI_TREE[pi],
        };
        if multi && p == Protocol::Ll {
            t * 1.8
        } else {
            t
        }
    };
    let us = match alg {
        Algorithm::Ring | Algorithm::Hierarchical => {
            let passes = if coll == Collective::AllReduce {
                2.0
            } else {
                1.0
            };
            let steps = passes * (n - 1.0);
            let inter_steps = passes * (nodes - 1.0);
            let inter = HW_LAT_NET_RING[pi] + net_hops_us;
            BASE_LAT_RING[pi] + (steps - inter_steps) * intra(true) + inter_steps * inter
        }
        Algorithm::Tree => {
            if coll != Collective::AllReduce {
                return None;
            }
            let g = s.per_domain as f64;
            let inter = HW_LAT_NET_TREE[pi] + net_hops_us;
            BASE_LAT_TREE[pi] + 2.0 * ((g - 1.0) * intra(false) + log2_ceil(s.domains) * inter)
        }
        Algorithm::Nvls if matches!(coll, Collective::AllGather | Collective::ReduceScatter) => {
            if !s.nvls || multi || p != Protocol::Simple {
                return None;
            }
            NVLS_AG_RS_LATENCY_US
        }
        Algorithm::Pat => {
            let agrs = matches!(coll, Collective::AllGather | Collective::ReduceScatter);
            if !agrs || !s.one_per_domain() || p != Protocol::Simple {
                return None;
            }
            let inter = HW_LAT_NET_TREE[2] + net_hops_us;
            PAT_BASE_US + log2_floor(s.domains) * inter / PAT_LOG_DIVISOR + PAT_PER_RANK_US * n
        }
        Algorithm::CollNetDirect | Algorithm::CollNetChain => {
            if coll != Collective::AllReduce || !s.sharp || !multi || p != Protocol::Simple {
                return None;
            }
            let ppn = s.per_domain as f64;
            let direct = alg == Algorithm::CollNetDirect;
            let net = match (s.per_domain == 1, direct) {
                (true, _) => HW_LAT_NET_TREE[2],
                (false, true) => COLLNET_DIRECT_NET_US,
                (false, false) => COLLNET_CHAIN_NET_US,
            };
            let inter = net + net_hops_us;
            if direct {
                if s.pcie {
                    return None;
                }
                2.0 * ((ppn - 1.0).min(1.0) * COLLNET_DIRECT_INTRA_US
                    + (ppn - 1.0) * COLLNET_DIRECT_ARITY_US)
                    + inter
            } else {
                2.0 * (ppn - 1.0) * COLLNET_CHAIN_INTRA_US + inter
            }
        }
        Algorithm::Nvls | Algorithm::NvlsTree => {
            if coll != Collective::AllReduce || !s.nvls || p == Protocol::Ll {
                return None;
            }
            let regime = usize::from(p == Protocol::Simple);
            let inter = if multi {
                2.0 * log2_ceil(s.domains) * (HW_LAT_NET_TREE[2] + net_hops_us)
            } else {
                0.0
            };
            NVLS_LATENCY_US[regime] + inter
        }
        Algorithm::Direct | Algorithm::P2p => {
            if p != Protocol::Simple {
                return None;
            }
            let hw = if multi {
                HW_LAT_NET_RING[2] + net_hops_us
            } else {
                intra(true)
            };
            let peers = if alg == Algorithm::Direct {
                n - 1.0
            } else {
                1.0
            };
            BASE_LAT_RING[2] + hw + peers * P2P_PER_PEER_US
        }
    };
    Some(us * 1e-6)
}

/// Payload fraction of link capacity for an (algorithm, protocol).
pub fn bw_factor(alg: Algorithm, p: Protocol, coll: Collective, s: &Shape) -> f64 {
    match (alg, p) {
        (Algorithm::Pat, _) => PAT_BW_FACTOR,
        // Hopper and later: the GPUs with NVLS.
        (Algorithm::CollNetDirect, _) if s.nvls => COLLNET_DIRECT_HOPPER_BW,
        (Algorithm::CollNetDirect | Algorithm::CollNetChain, _) => 1.0,
        (Algorithm::Nvls | Algorithm::NvlsTree, _) => {
            let regime = usize::from(p == Protocol::Simple);
            NVLS_LINE_FRACTION[regime] / NVLINK_EFFICIENCY
        }
        (Algorithm::Tree, Protocol::Ll) => 0.9 / 3.8,
        (Algorithm::Tree, Protocol::Ll128) => 0.9 * 0.915,
        (Algorithm::Tree, Protocol::Simple) => 0.9,
        (_, Protocol::Ll) => {
            if s.domains > 1 || coll == Collective::AllReduce {
                0.25
            } else {
                1.0 / 3.0
            }
        }
        (_, Protocol::Ll128) => 0.92,
        (_, Protocol::Simple) => 1.0,
    }
}

/// Protocols NCCL enables for a shape: LL128 only over NVLink.
fn protocol_enabled(p: Protocol, s: &Shape) -> bool {
    p != Protocol::Ll128 || !s.pcie
}

/// Algorithms worth trying for a collective on a shape, for the choice given.
pub fn candidates(coll: Collective, s: &Shape, choice: AlgorithmChoice) -> &'static [Algorithm] {
    use Algorithm::*;
    match coll {
        Collective::AllToAll => &[Direct],
        Collective::SendRecv => &[P2p],
        // NCCL 2.23.4's candidates for all-gather / reduce-scatter: ring, NVLS (one domain),
        // PAT (one GPU per node); CollNet for these needs the SHARP plugin's iallgather /
        // ireducescatter and is not modelled.
        Collective::AllGather | Collective::ReduceScatter => match choice {
            AlgorithmChoice::Auto if s.one_per_domain() => &[Ring, Pat],
            AlgorithmChoice::Auto if s.nvls && s.domains == 1 => &[Ring, Nvls],
            AlgorithmChoice::Nvls if s.nvls && s.domains == 1 => &[Nvls],
            AlgorithmChoice::Pat if s.one_per_domain() => &[Pat],
            _ => &[Ring],
        },
        Collective::AllReduce => match choice {
            AlgorithmChoice::Auto => match (s.nvls, s.domains > 1, s.sharp, s.pcie) {
                (true, false, _, _) => &[Ring, Nvls],
                (true, true, false, _) => &[Ring, Tree, NvlsTree],
                (true, true, true, _) => &[Ring, Tree, NvlsTree, CollNetDirect, CollNetChain],
                (false, false, _, _) => &[Ring],
                (false, true, false, _) => &[Ring, Tree],
                (false, true, true, false) => &[Ring, Tree, CollNetDirect, CollNetChain],
                (false, true, true, true) => &[Ring, Tree, CollNetChain],
            },
            AlgorithmChoice::CollnetDirect if s.sharp && s.domains > 1 && !s.pcie => {
                &[CollNetDirect]
            }
            AlgorithmChoice::CollnetChain if s.sharp && s.domains > 1 => &[CollNetChain],
            AlgorithmChoice::Ring => &[Ring],
            AlgorithmChoice::Tree if s.domains > 1 => &[Tree],
            AlgorithmChoice::Nvls if s.nvls && s.domains > 1 => &[NvlsTree],
            AlgorithmChoice::Nvls if s.nvls => &[Nvls],
            AlgorithmChoice::Hierarchical if s.domains > 1 => &[Hierarchical],
            _ => &[Ring],
        },
    }
}

/// The latency NCCL's tuner *predicts* for an (algorithm, protocol), where it differs from
/// the calibrated [`latency_s`]: single-domain NVLS ([`NCCL_TUNER_NVLS_LATENCY_US`]).
fn tuner_latency_s(
    alg: Algorithm,
    p: Protocol,
    coll: Collective,
    s: &Shape,
    hop: f64,
) -> Option<f64> {
    match alg {
        Algorithm::Nvls if s.domains == 1 && coll == Collective::AllReduce => {
            latency_s(alg, p, coll, s, hop).map(|_| NCCL_TUNER_NVLS_LATENCY_US * 1e-6)
        }
        _ => latency_s(alg, p, coll, s, hop),
    }
}

/// NCCL's tuner: the (algorithm, protocol) with the least predicted
/// `latency + unit_time / factor`, where `unit_time(alg)` is the contention-free time of
/// the algorithm's traffic at full link capacity and the latency is the tuner's own
/// ([`tuner_latency_s`]: NCCL picks by its model, not by what the run then takes). Within
/// NVLS, whose two "protocols" stand for channel-count regimes NCCL sets by size, the
/// regime is the one that runs faster.
pub fn choose(
    coll: Collective,
    s: &Shape,
    choice: AlgorithmChoice,
    hop_latency_s: f64,
    mut unit_time: impl FnMut(Algorithm) -> f64,
) -> Choice {
    let mut best: Option<(f64, Choice)> = None;
    let mut nvls: Option<(f64, Choice)> = None;
    for &alg in candidates(coll, s, choice) {
        let unit = unit_time(alg);
        for p in Protocol::ALL {
            if !protocol_enabled(p, s) {
                continue;
            }
            let (Some(lat), Some(tuner_lat)) = (
                latency_s(alg, p, coll, s, hop_latency_s),
                tuner_latency_s(alg, p, coll, s, hop_latency_s),
            ) else {
                continue;
            };
            let f = bw_factor(alg, p, coll, s);
            let c = Choice {
                algorithm: alg,
                protocol: p,
                latency_s: lat,
                bw_factor: f,
            };
            let t = tuner_lat + unit / f;
            if best.is_none_or(|(bt, _)| t < bt) {
                best = Some((t, c));
            }
            let actual = lat + unit / f;
            if alg == Algorithm::Nvls && nvls.is_none_or(|(bt, _)| actual < bt) {
                nvls = Some((actual, c));
            }
        }
    }
    match (best, nvls) {
        (Some((_, b)), Some((_, n))) if b.algorithm == Algorithm::Nvls => n,
        (Some((_, b)), _) => b,
        (None, _) => Choice {
            algorithm: Algorithm::Ring,
            protocol: Protocol::Simple,
            latency_s: 0.0,
            bw_factor: 1.0,
        },
    }
}

/// nccl-tests' bus bandwidth factor: busbw = algbw x factor.
pub fn busbw_factor(coll: Collective, n: u32) -> f64 {
    let n = n.max(1) as f64;
    match coll {
        Collective::AllReduce => 2.0 * (n - 1.0) / n,
        Collective::AllGather | Collective::ReduceScatter | Collective::AllToAll => (n - 1.0) / n,
        Collective::SendRecv => 1.0,
    }
}
