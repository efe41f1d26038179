//! Routes between GPUs, computed on demand from the tree structure of [`Topology`].
//!
//! Owns: the path (list of link ids) a byte takes from one GPU to another, and the
//! deterministic choice among equal-cost paths (destination-mod-k, as InfiniBand's fat-tree
//! routing does: no RNG, and a shift permutation such as a ring crosses distinct uplinks).
//! Must not: allocate (callers pass a reusable buffer) or know about flows.
//!
//! Inside an NVLink domain: GPU -> NVSwitch -> GPU. Across domains: GPU -> (PCIe to a shared
//! NIC) -> NIC -> leaf -> [spine -> (core -> spine)] -> leaf -> NIC -> (PCIe) -> GPU, going as
//! high as the lowest common ancestor of the two leaves. The spine is the destination's port
//! on its leaf modulo the leaf's uplinks, the core its position in the pod divided by the
//! leaf's uplinks, modulo the spine's.

use super::topology::Topology;

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
                self.route_switches(la, lb, nb, out);
            }
            out.push(Self::down(self.base_nic_leaf + nb));
        }
        if shared {
            out.push(Self::down(self.base_gpu_nic + dst));
        }
    }

    fn route_switches(&self, la: u32, lb: u32, dst_nic: u32, out: &mut Vec<u32>) {
        let f = &self.fabric;
        // Destination's port on its leaf, then the leaf's position in its pod.
        let port = if f.rail {
            (dst_nic / self.nics_per_node) % f.nics_per_leaf
        } else {
            dst_nic % f.nics_per_leaf
        };
        let j = port % f.leaf_up;
        let (pa, pb) = (self.pod_of_leaf(la), self.pod_of_leaf(lb));
        out.push(Self::up(self.base_leaf_spine + la * f.leaf_up + j));
        if pa != pb {
            let in_pod = (lb % f.leaves_per_pod) * f.nics_per_leaf + port;
            let m = (in_pod / f.leaf_up) % f.spine_up;
            let (sa, sb) = (pa * f.leaf_up + j, pb * f.leaf_up + j);
            out.push(Self::up(self.base_spine_core + sa * f.spine_up + m));
            out.push(Self::down(self.base_spine_core + sb * f.spine_up + m));
        }
        out.push(Self::down(self.base_leaf_spine + lb * f.leaf_up + j));
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
