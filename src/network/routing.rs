//! Routes between GPUs, computed on demand from the tree structure of [`Topology`].
//!
//! Owns: the path (list of link ids) a byte takes from one GPU to another, and the choice
//! among equal-cost paths ([`Routing`]):
//! The default is the fabric's ([`Routing::for_fabric`], with sources: adaptive on
//! InfiniBand, hashed ECMP on RoCE, destination-mod-k on a single switch).
//! - **`dest-mod`**: destination-mod-k, as OpenSM's `ftree`/`updn` routing
//!   programs InfiniBand fat trees: the uplink is a function of the destination alone, no
//!   RNG, so a shift permutation such as a ring crosses distinct uplinks. The destination's
//!   index counts NICs from the first NIC of the destination's *node* on that leaf (ports
//!   numbered node by node), so a node straddling two leaves does not fold two rails onto
//!   one uplink.
//! - **`hash`**: ECMP as Ethernet/RoCE switches do it: each flow's uplink (and core) is a
//!   hash of (seed, source, destination, sub-flow), so independent flows collide as they do
//!   on real fabrics; reproducible for a seed.
//! - `flows_per_connection` splits every connection that leaves a leaf into that many flows
//!   hashed independently (Llama 3's "enhanced ECMP": 16 flows per GPU pair, Dubey et al.,
//!   *The Llama 3 Herd of Models*, 2024, section 3.3.1); with `dest-mod` the sub-flows
//!   share their destination's path.
//! - `adaptive` (InfiniBand adaptive routing, NVIDIA Spectrum-X): each packet or flowlet
//!   takes the least-loaded equal-cost uplink, so in the fluid limit every flow spreads
//!   evenly over all of them and no two flows collide. Modelled as that limit: a leaf's
//!   uplinks (and a pod's spine-to-core cables) act as one pooled link of their summed
//!   capacity ([`Topology::set_routing`] pools them on uplink 0, which every route then
//!   takes), so a tier is only as loaded as the bytes that cross it over its total
//!   bandwidth: the collision-free closed form.
//!
//! Must not: allocate (callers pass a reusable buffer) or know about flows.
//!
//! Inside an NVLink domain: GPU -> NVSwitch -> GPU. Across domains: GPU -> (PCIe to a shared
//! NIC) -> NIC -> leaf -> [spine -> (core -> spine)] -> leaf -> NIC -> (PCIe) -> GPU, going as
//! high as the lowest common ancestor of the two leaves. The spine is the destination's port
//! on its leaf modulo the leaf's uplinks, the core its position in the pod divided by the
//! leaf's uplinks, modulo the spine's.

use serde::{Deserialize, Serialize};

use super::topology::{LinkKind, Topology};
use crate::hardware::{FabricKind, Transport};

/// How switches choose among equal-cost uplinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ecmp {
    /// Destination-mod-k (InfiniBand fat-tree routing).
    #[default]
    DestMod,
    /// A seeded hash of each flow (Ethernet ECMP).
    Hash,
}

impl Ecmp {
    pub fn label(self) -> &'static str {
        match self {
            Ecmp::DestMod => "dest-mod",
            Ecmp::Hash => "hash",
        }
    }
}

/// The routing model of a fabric: ECMP policy, hash seed and flows per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Routing {
    pub ecmp: Ecmp,
    /// Seed of the ECMP hash (only read by [`Ecmp::Hash`]).
    pub seed: u64,
    /// Flows each connection that leaves a leaf is split into (1 = one flow).
    pub flows_per_connection: u32,
    /// Adaptive routing: flows spread evenly over every equal-cost uplink (see the module
    /// documentation); replaces `ecmp`.
    pub adaptive: bool,
}

impl Routing {
    /// The routing a fabric gets when the scenario states none (`network.routing`):
    /// - **InfiniBand: adaptive.** NVIDIA's subnet manager enables adaptive routing by
    ///   default (`ar_updn` routing engine, AR on in `opensm.conf`: NVIDIA, *InfiniBand
    ///   Cluster Bring-up Procedure* v1.0, "Adaptive Routing"), and NCCL sends on IB in the
    ///   form adaptive routing needs (payload as RDMA write, then a zero-byte write with
    ///   immediate, so packets may arrive out of order) for every message over
    ///   `NCCL_IB_AR_THRESHOLD` = 8 KB since v2.7 (src/transport/net_ib.cc, `ncclIbIsend`),
    ///   and since v2.16.2 enables it per device "by default on IB networks"
    ///   (`ncclIbDevs[d].ar`, `NCCL_IB_ADAPTIVE_ROUTING` default -2 = by link layer).
    /// - **RoCE: hashed ECMP** (seed 0). The same NCCL code turns adaptive routing off on
    ///   Ethernet link layers, whose switches pick an equal-cost uplink by a hash of each
    ///   flow's header (NVIDIA Cumulus Linux 5.x user guide, "Equal Cost Multipath Load
    ///   Sharing": ECMP on by default, hashed per flow on source and destination address
    ///   and port, with no record of the load per next hop). Both modes count the
    ///   collisions: on
    ///   Llama 3 70B TP 8 PP 4 DP 512 on `roce-multipod-h100` the analytic step reads
    ///   4.06 s and the contention step 4.11 s (`tests/network_agreement.rs`).
    /// - A single switch has no uplinks: destination-mod-k, which never reads them.
    pub fn for_fabric(transport: Transport, kind: FabricKind) -> Routing {
        let d = Routing::default();
        match (transport, kind) {
            (_, FabricKind::SingleSwitch) => d,
            (Transport::Infiniband, _) => Routing {
                adaptive: true,
                ..d
            },
            (Transport::Roce, _) => Routing {
                ecmp: Ecmp::Hash,
                ..d
            },
        }
    }
}

impl Routing {
    /// `adaptive`, `dest-mod`, or `hash seed S` with ` xK` when connections are split.
    pub fn label(&self) -> String {
        match self.ecmp {
            _ if self.adaptive => "adaptive".to_string(),
            Ecmp::DestMod => "dest-mod".to_string(),
            Ecmp::Hash if self.flows_per_connection > 1 => {
                format!("hash seed {} x{}", self.seed, self.flows_per_connection)
            }
            Ecmp::Hash => format!("hash seed {}", self.seed),
        }
    }
}

/// Destination-mod-k without adaptive routing: the routing of a bare topology (tests,
/// [`Topology::new`]); scenarios start from [`Routing::for_fabric`].
impl Default for Routing {
    fn default() -> Self {
        Routing {
            ecmp: Ecmp::DestMod,
            seed: 0,
            flows_per_connection: 1,
            adaptive: false,
        }
    }
}

/// SplitMix64 finalizer: a well-mixed 64-bit hash of one word.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The ECMP hash of a flow: deterministic in (seed, source, destination, sub-flow).
#[inline]
pub fn flow_hash(seed: u64, src: u32, dst: u32, sub: u32) -> u64 {
    mix(seed ^ mix(u64::from(src) << 32 | u64::from(dst)) ^ mix(u64::from(sub) + 1))
}

impl Topology {
    #[inline]
    fn up(pair: u32) -> u32 {
        2 * pair
    }

    #[inline]
    fn down(pair: u32) -> u32 {
        2 * pair + 1
    }

    /// Appends the links from GPU `src` to GPU `dst` to `out` (nothing when equal).
    ///
    /// # Panics
    /// When the two GPUs sit in different domains of a cluster without NICs.
    pub fn route(&self, src: u32, dst: u32, out: &mut Vec<u32>) {
        self.route_sub(src, dst, 0, out);
    }

    /// True when a message from `src` to `dst` climbs above its leaf (so ECMP chooses).
    pub fn crosses_leaves(&self, src: u32, dst: u32) -> bool {
        if self.fabric.nics == 0 || self.domain_of(src) == self.domain_of(dst) {
            return false;
        }
        let (na, nb) = (self.nic_of(src), self.nic_of(dst));
        self.leaf_of_nic(na) != self.leaf_of_nic(nb)
    }

    /// [`Topology::route`] for sub-flow `sub` of a connection (see [`Routing`]).
    pub fn route_sub(&self, src: u32, dst: u32, sub: u32, out: &mut Vec<u32>) {
        if src == dst {
            return;
        }
        if self.domain_of(src) == self.domain_of(dst) {
            out.push(Self::up(src));
            out.push(Self::down(dst));
            return;
        }
        assert!(
            self.fabric.nics > 0,
            "GPUs {src} and {dst} are in different domains but the cluster has no NICs"
        );
        let shared = self.shared_nics();
        if shared {
            out.push(Self::up(self.base_gpu_nic + src));
        }
        let (na, nb) = (self.nic_of(src), self.nic_of(dst));
        if na != nb {
            out.push(Self::up(self.base_nic_leaf + na));
            let (la, lb) = (self.leaf_of_nic(na), self.leaf_of_nic(nb));
            if la != lb {
                let h = match self.routing.ecmp {
                    _ if self.routing.adaptive => None,
                    Ecmp::DestMod => None,
                    Ecmp::Hash => Some(flow_hash(self.routing.seed, src, dst, sub)),
                };
                self.route_switches(la, lb, nb, h, out);
            }
            out.push(Self::down(self.base_nic_leaf + nb));
        }
        if shared {
            out.push(Self::down(self.base_gpu_nic + dst));
        }
    }

    fn route_switches(
        &self,
        la: u32,
        lb: u32,
        dst_nic: u32,
        hash: Option<u64>,
        out: &mut Vec<u32>,
    ) {
        let f = &self.fabric;
        // Destination's port on its leaf, then the leaf's position in its pod.
        let port = if f.rail {
            (dst_nic / self.nics_per_node) % f.nics_per_leaf
        } else {
            dst_nic % f.nics_per_leaf
        };
        let adaptive = self.routing.adaptive;
        let j = match hash {
            _ if adaptive => 0,
            Some(h) => (h % u64::from(f.leaf_up)) as u32,
            None => self.dest_mod_uplink(dst_nic, port),
        };
        let (pa, pb) = (self.pod_of_leaf(la), self.pod_of_leaf(lb));
        out.push(Self::up(self.base_leaf_spine + la * f.leaf_up + j));
        if pa != pb {
            let in_pod = (lb % f.leaves_per_pod) * f.nics_per_leaf + port;
            let m = match hash {
                _ if adaptive => 0,
                Some(h) => ((h >> 32) % u64::from(f.spine_up)) as u32,
                None => (in_pod / f.leaf_up) % f.spine_up,
            };
            let (sa, sb) = (pa * f.leaf_up + j, pb * f.leaf_up + j);
            out.push(Self::up(self.base_spine_core + sa * f.spine_up + m));
            out.push(Self::down(self.base_spine_core + sb * f.spine_up + m));
        }
        out.push(Self::down(self.base_leaf_spine + lb * f.leaf_up + j));
    }

    /// Appends the links of an InfiniBand SHARP aggregation tree over `gpus` (NCCL's
    /// CollNet: each GPU's data climbs to the switches, is reduced there, and the result
    /// comes back down): each GPU's link to its NIC when NICs are shared, each NIC's cable
    /// to its leaf, each leaf's cable to the tree's spine when the GPUs span several
    /// leaves, each pod's spine cable to the tree's core when they span several pods; both
    /// directions, every link once. The aggregation manager places tree `t` on spine
    /// `t mod uplinks` (and core `t / uplinks mod spine uplinks`), so the trees of a
    /// group's rails use distinct switches. `scratch` is a reusable buffer.
    pub fn sharp_tree(&self, gpus: &[u32], t: u32, scratch: &mut Vec<u32>, out: &mut Vec<u32>) {
        let f = &self.fabric;
        if f.nics == 0 || gpus.is_empty() {
            return;
        }
        if self.shared_nics() {
            for &g in gpus {
                out.push(Self::up(self.base_gpu_nic + g));
                out.push(Self::down(self.base_gpu_nic + g));
            }
        }
        scratch.clear();
        scratch.extend(gpus.iter().map(|&g| self.nic_of(g)));
        scratch.sort_unstable();
        scratch.dedup();
        for &nic in scratch.iter() {
            out.push(Self::up(self.base_nic_leaf + nic));
            out.push(Self::down(self.base_nic_leaf + nic));
        }
        for nic in scratch.iter_mut() {
            *nic = self.leaf_of_nic(*nic);
        }
        scratch.sort_unstable();
        scratch.dedup();
        if scratch.len() < 2 || f.leaf_up == 0 {
            return;
        }
        let adaptive = self.routing.adaptive;
        let j = if adaptive { 0 } else { t % f.leaf_up };
        for &leaf in scratch.iter() {
            out.push(Self::up(self.base_leaf_spine + leaf * f.leaf_up + j));
            out.push(Self::down(self.base_leaf_spine + leaf * f.leaf_up + j));
        }
        for leaf in scratch.iter_mut() {
            *leaf = self.pod_of_leaf(*leaf);
        }
        scratch.dedup();
        if scratch.len() < 2 || f.spine_up == 0 {
            return;
        }
        let m = if adaptive {
            0
        } else {
            (t / f.leaf_up) % f.spine_up
        };
        for &pod in scratch.iter() {
            let spine = pod * f.leaf_up + j;
            out.push(Self::up(self.base_spine_core + spine * f.spine_up + m));
            out.push(Self::down(self.base_spine_core + spine * f.spine_up + m));
        }
    }

    /// Sets the routing model. Adaptive routing pools each leaf's uplinks into its uplink
    /// 0 and each pod's spine-to-core cables into those of its spine 0 (capacity summed,
    /// the others left idle: every route takes the pool); leaving adaptive routing splits
    /// the pools again.
    pub fn set_routing(&mut self, routing: Routing) {
        if routing.adaptive != self.routing.adaptive {
            self.pool_uplinks(routing.adaptive);
        }
        self.routing = routing;
    }

    /// How many equal-cost links link `l` stands for: under adaptive routing the first
    /// uplink of each pool carries the whole pool (see [`Topology::set_routing`]), so it
    /// counts as the pool's size; every other link (and every link without adaptive
    /// routing) counts as 1. A pool's other members carry nothing.
    pub fn pool_size(&self, l: usize) -> u32 {
        if !self.routing.adaptive {
            return 1;
        }
        let f = self.fabric;
        let pair = (l / 2) as u32;
        let (base, k) = match self.kind[l] {
            LinkKind::LeafSpine => (self.base_leaf_spine, f.leaf_up),
            LinkKind::SpineCore => (self.base_spine_core, f.leaf_up * f.spine_up),
            _ => return 1,
        };
        if k >= 2 && pair >= base && (pair - base).is_multiple_of(k) {
            k
        } else {
            1
        }
    }

    /// The link that carries link `l`'s traffic: under adaptive routing the head of `l`'s
    /// pool (whose utilization every member shares, since adaptive routing spreads the
    /// pool's traffic evenly), otherwise `l` itself.
    pub fn pool_head(&self, l: usize) -> usize {
        if !self.routing.adaptive {
            return l;
        }
        let f = self.fabric;
        let pair = (l / 2) as u32;
        let (base, k) = match self.kind[l] {
            LinkKind::LeafSpine => (self.base_leaf_spine, f.leaf_up),
            LinkKind::SpineCore => (self.base_spine_core, f.leaf_up * f.spine_up),
            _ => return l,
        };
        if k < 2 || pair < base {
            return l;
        }
        let head = base + (pair - base) / k * k;
        2 * head as usize + l % 2
    }

    /// Link `l` as NCCL's tuner sees it: `(head, capacity)` of its equal-cost pool, whatever
    /// the routing. NCCL's tuner predicts an algorithm's time from its own topology model
    /// (per-channel bandwidths of the NICs and NVLinks it found, `src/graph/tuning.cc`,
    /// `ncclTopoTuneModel`, v2.23.4): it knows nothing of how switches hash flows onto
    /// uplinks, so to it a leaf's uplinks (and a pod's spine-to-core cables) are one pool of
    /// their summed bandwidth. Links outside a pool map to themselves.
    pub fn tuner_link(&self, l: usize) -> (usize, f64) {
        let f = self.fabric;
        let pair = (l / 2) as u32;
        let (base, k) = match self.kind[l] {
            LinkKind::LeafSpine => (self.base_leaf_spine, f.leaf_up),
            LinkKind::SpineCore => (self.base_spine_core, f.leaf_up * f.spine_up),
            _ => return (l, self.cap[l]),
        };
        if k < 2 || pair < base {
            return (l, self.cap[l]);
        }
        let head = 2 * (base + (pair - base) / k * k) as usize + l % 2;
        if self.routing.adaptive {
            // Already pooled on its head (`set_routing`).
            (head, self.cap[head])
        } else {
            // Equal-cost uplinks share one capacity (faults touch GPU ports and NICs only,
            // background traffic whole tiers).
            (head, self.cap[l] * f64::from(k))
        }
    }

    /// The vertices at the two ends of the last member of the pool link `l` heads (itself
    /// when it heads none).
    pub fn pool_last_ends(&self, l: usize) -> (u32, u32) {
        let k = self.pool_size(l) as usize;
        self.ends[l + 2 * (k - 1)]
    }

    /// Moves the capacity of every equal-cost uplink group into (or back out of) its first
    /// member.
    fn pool_uplinks(&mut self, pool: bool) {
        let f = self.fabric;
        let mut groups: Vec<(u32, u32)> = Vec::new();
        for leaf in 0..f.leaves {
            groups.push((self.base_leaf_spine + leaf * f.leaf_up, f.leaf_up));
        }
        for pod in 0..f.pods {
            let first = self.base_spine_core + pod * f.leaf_up * f.spine_up;
            groups.push((first, f.leaf_up * f.spine_up));
        }
        for (first, k) in groups {
            if k < 2 {
                continue;
            }
            for dir in [Self::up, Self::down] {
                let head = dir(first) as usize;
                let rest: f64 = (1..k).map(|i| self.cap[dir(first + i) as usize]).sum();
                if pool {
                    self.cap[head] += rest;
                } else {
                    self.cap[head] -= rest;
                }
            }
        }
    }

    /// Destination-mod-k uplink of a destination NIC on its leaf.
    fn dest_mod_uplink(&self, _dst_nic: u32, port: u32) -> u32 {
        port % self.fabric.leaf_up
    }

    /// Switches a message crosses from `src` to `dst` (for latency): 1 inside a domain,
    /// 1 / 3 / 5 across the fabric (same leaf / same pod / across pods).
    pub fn switch_hops(&self, src: u32, dst: u32) -> u32 {
        if self.domain_of(src) == self.domain_of(dst) {
            return 1;
        }
        let (la, lb) = (
            self.leaf_of_nic(self.nic_of(src)),
            self.leaf_of_nic(self.nic_of(dst)),
        );
        if la == lb {
            1
        } else if self.pod_of_leaf(la) == self.pod_of_leaf(lb) {
            3
        } else {
            5
        }
    }
}
