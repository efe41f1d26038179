//! The physical topology of a cluster as flat arrays: vertices (GPUs, NVSwitch / PCIe
//! domains, NICs, leaf, spine and core switches) and directed links with capacities.
//!
//! Owns: building the graph from a [`ClusterSpec`] and the arithmetic that names every
//! vertex and link (GPU `g`'s NVLink uplink is link `2g`, its downlink `2g + 1`, and so on
//! per tier), so routes can be computed on demand without storing all-pairs paths
//! (see [`super::routing`]). A 131,072-GPU cluster builds in milliseconds and costs about
//! 30 bytes per link.
//!
//! Must not: know about collectives, flows or time.
//!
//! Every cable is full duplex: it is two links, one per direction, with ids `2p` (towards the
//! core) and `2p + 1` (towards the GPU). Capacities are *effective* rates (line rate times
//! the calibrated efficiency of [`super::nccl`]), in bytes per second.
//!
//! Fabric layout (a folded Clos):
//! - **leaf**: `switch_radix / 2` NIC ports; `oversubscription` divides its uplink bandwidth.
//!   `rail-optimized`: NIC `k` of `nics_per_leaf` consecutive nodes shares leaf `k` of their
//!   block; `fat-tree` / `clos-pods`: consecutive NICs share a leaf; `single-switch`: one leaf.
//! - **spine**: the leaves of a pod connect to the pod's spines, leaf uplink `j` to spine `j`.
//!   With `tiers <= 2` all leaves form one pod.
//! - **core**: with `tiers >= 3` (pods of `switch_radix / 2` leaves) or `clos-pods` (pods of
//!   `pod_gpus`), spine `j` of every pod connects to core group `j`; its uplink bandwidth is
//!   divided by `pod_oversubscription` (clos-pods) or `spine_oversubscription`.

use petgraph::graph::{DiGraph, NodeIndex};

use super::nccl::{NIC_EFFICIENCY, NVLINK_EFFICIENCY, PCIE_EFFICIENCY};
use super::routing::Routing;
use crate::hardware::{ClusterSpec, FabricKind};

/// What a vertex is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VertexKind {
    Gpu,
    /// An NVSwitch domain (8-GPU node, NVL72 rack) or, without NVLink, a node's PCIe host.
    Domain,
    Nic,
    Leaf,
    Spine,
    Core,
}

/// What a link is, by the tier it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// GPU <-> NVSwitch.
    NvLink,
    /// GPU <-> PCIe host (GPUs without NVLink).
    Pcie,
    /// GPU <-> its NIC over PCIe, only when several GPUs share a NIC.
    GpuNic,
    NicLeaf,
    LeafSpine,
    SpineCore,
}

impl LinkKind {
    pub const ALL: [LinkKind; 6] = [
        LinkKind::NvLink,
        LinkKind::Pcie,
        LinkKind::GpuNic,
        LinkKind::NicLeaf,
        LinkKind::LeafSpine,
        LinkKind::SpineCore,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LinkKind::NvLink => "nvlink",
            LinkKind::Pcie => "pcie",
            LinkKind::GpuNic => "gpu-nic",
            LinkKind::NicLeaf => "nic-leaf",
            LinkKind::LeafSpine => "leaf-spine",
            LinkKind::SpineCore => "spine-core",
        }
    }

    /// True for links of the scale-out fabric (NIC and switch ports).
    pub fn is_fabric(self) -> bool {
        matches!(
            self,
            LinkKind::NicLeaf | LinkKind::LeafSpine | LinkKind::SpineCore
        )
    }
}

/// Shape of the switched fabric, derived from the spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FabricShape {
    pub nics: u32,
    pub nics_per_leaf: u32,
    pub leaves: u32,
    /// Uplinks per leaf (= spines per pod).
    pub leaf_up: u32,
    pub leaves_per_pod: u32,
    pub pods: u32,
    /// Uplinks per spine (0 without a core tier).
    pub spine_up: u32,
    pub rail: bool,
}

impl FabricShape {
    pub fn spines(&self) -> u32 {
        if self.leaf_up == 0 {
            0
        } else {
            self.pods * self.leaf_up
        }
    }

    pub fn cores(&self) -> u32 {
        self.leaf_up * self.spine_up
    }
}

/// The cluster's interconnect as flat arrays.
#[derive(Debug, Clone)]
pub struct Topology {
    pub gpus: u32,
    pub gpus_per_node: u32,
    pub domain_size: u32,
    pub nics_per_node: u32,
    pub fabric: FabricShape,
    /// GPU and NVSwitch support in-switch reduction (NVLS): H100 and later with NVLink.
    pub nvls: bool,
    /// GPUs of a domain are joined by NVLink (else PCIe).
    pub nvlink: bool,
    /// The fabric's switches reduce (InfiniBand SHARP, `fabric.sharp`).
    pub sharp: bool,
    /// Latency per switch traversed in the fabric, seconds.
    pub hop_latency_s: f64,
    /// How switches pick among equal-cost uplinks.
    pub routing: Routing,
    pub(crate) base_gpu_nic: u32,
    pub(crate) base_nic_leaf: u32,
    pub(crate) base_leaf_spine: u32,
    pub(crate) base_spine_core: u32,
    /// Per link: capacity in bytes/s.
    pub cap: Vec<f64>,
    /// Per link: its tier.
    pub kind: Vec<LinkKind>,
    /// Per link: source and destination vertex.
    pub ends: Vec<(u32, u32)>,
}

/// GPUs able to reduce inside the NVSwitch (NVLink SHARP): Hopper and Blackwell.
pub fn gpu_supports_nvls(gpu_name: &str) -> bool {
    let n = gpu_name.to_ascii_lowercase();
    [
        "h100", "h200", "h800", "gh200", "b200", "b300", "gb200", "gb300",
    ]
    .iter()
    .any(|p| n.starts_with(p))
}

struct Builder {
    cap: Vec<f64>,
    kind: Vec<LinkKind>,
    ends: Vec<(u32, u32)>,
}

impl Builder {
    /// Adds a cable: link `2p` from `lower` to `upper`, `2p + 1` back.
    fn cable(&mut self, lower: u32, upper: u32, up_cap: f64, kind: LinkKind) {
        self.cap.push(up_cap);
        self.cap.push(up_cap);
        self.kind.push(kind);
        self.kind.push(kind);
        self.ends.push((lower, upper));
        self.ends.push((upper, lower));
    }

    fn pairs(&self) -> u32 {
        (self.cap.len() / 2) as u32
    }
}

impl Topology {
    pub fn new(c: &ClusterSpec) -> Self {
        let gpn = c.node.gpus.max(1) as u32;
        let gpus = (c.nodes.max(1) as u32) * gpn;
        let domain_size = if c.node.nvlink_gbs > 0.0 && c.node.nvlink_domain > 0 {
            (c.node.nvlink_domain as u32).clamp(1, gpus)
        } else {
            gpn
        };
        let nics_per_node = c.node.nics.min(c.node.gpus) as u32;
        let fabric = fabric_shape(c, gpus, nics_per_node);
        let mut t = Topology {
            gpus,
            gpus_per_node: gpn,
            domain_size,
            nics_per_node,
            fabric,
            nvls: c.node.nvlink_gbs > 0.0 && domain_size > 1 && gpu_supports_nvls(&c.gpu.name),
            hop_latency_s: c.fabric.hop_latency_us * 1e-6,
            nvlink: c.node.nvlink_gbs > 0.0,
            sharp: c.fabric.sharp && nics_per_node > 0,
            routing: Routing::default(),
            base_gpu_nic: 0,
            base_nic_leaf: 0,
            base_leaf_spine: 0,
            base_spine_core: 0,
            cap: Vec::new(),
            kind: Vec::new(),
            ends: Vec::new(),
        };
        t.build_links(c);
        t
    }

    fn build_links(&mut self, c: &ClusterSpec) {
        let f = self.fabric;
        let shared = self.shared_nics();
        let pairs = self.gpus as usize * (1 + shared as usize)
            + f.nics as usize
            + (f.leaves * f.leaf_up + f.spines() * f.spine_up) as usize;
        let mut b = Builder {
            cap: Vec::with_capacity(2 * pairs),
            kind: Vec::with_capacity(2 * pairs),
            ends: Vec::with_capacity(2 * pairs),
        };
        let (scale_up, kind) = if c.node.nvlink_gbs > 0.0 {
            (
                c.node.nvlink_gbs * 1e9 * NVLINK_EFFICIENCY,
                LinkKind::NvLink,
            )
        } else {
            (c.node.pcie_gbs * 1e9 * PCIE_EFFICIENCY, LinkKind::Pcie)
        };
        for g in 0..self.gpus {
            b.cable(g, self.v_domain(g / self.domain_size), scale_up, kind);
        }
        self.base_gpu_nic = b.pairs();
        if shared {
            let pcie = c.node.pcie_gbs * 1e9 * PCIE_EFFICIENCY;
            for g in 0..self.gpus {
                b.cable(g, self.v_nic(self.nic_of(g)), pcie, LinkKind::GpuNic);
            }
        }
        self.base_nic_leaf = b.pairs();
        let port = c.node.nic_gbps * 1e9 / 8.0 * NIC_EFFICIENCY;
        for n in 0..f.nics {
            b.cable(
                self.v_nic(n),
                self.v_leaf(self.leaf_of_nic(n)),
                port,
                LinkKind::NicLeaf,
            );
        }
        self.base_leaf_spine = b.pairs();
        let os = c.fabric.oversubscription.max(1.0);
        // Uplink bandwidth is the leaf's NIC-facing ports' over the oversubscription,
        // whether every port is cabled or not.
        let down = (c.fabric.switch_radix / 2).max(1) as f64;
        let leaf_up_cap = down * port / os / f.leaf_up.max(1) as f64;
        for leaf in 0..f.leaves {
            for j in 0..f.leaf_up {
                let spine = (leaf / f.leaves_per_pod) * f.leaf_up + j;
                b.cable(
                    self.v_leaf(leaf),
                    self.v_spine(spine),
                    leaf_up_cap,
                    LinkKind::LeafSpine,
                );
            }
        }
        self.base_spine_core = b.pairs();
        let os2 = if c.fabric.kind == FabricKind::ClosPods {
            c.fabric.pod_oversubscription
        } else {
            c.fabric.spine_oversubscription
        }
        .max(1.0);
        let spine_up_cap = f.leaves_per_pod as f64 * leaf_up_cap / os2 / f.spine_up.max(1) as f64;
        for spine in 0..f.spines() {
            for m in 0..f.spine_up {
                let core = (spine % f.leaf_up) * f.spine_up + m;
                b.cable(
                    self.v_spine(spine),
                    self.v_core(core),
                    spine_up_cap,
                    LinkKind::SpineCore,
                );
            }
        }
        self.cap = b.cap;
        self.kind = b.kind;
        self.ends = b.ends;
    }

    /// The same topology with another routing model.
    pub fn with_routing(mut self, routing: Routing) -> Self {
        self.set_routing(routing);
        self
    }

    /// Scales every GPU's scale-up links and NIC port (both directions) by its factor in
    /// `faults` (degraded links; factors below 1 slow them down).
    pub fn apply_link_faults(&mut self, faults: &crate::faults::LinkFaults) {
        if faults.is_empty() {
            return;
        }
        for g in 0..self.gpus {
            let (up, down) = self.scale_up_links(g);
            scale(&mut self.cap, [up, down], faults.nvlink_factor(g));
            if let Some((up, down)) = self.nic_port_links(g) {
                scale(&mut self.cap, [up, down], faults.nic_factor(g));
            }
        }
    }

    pub fn links(&self) -> usize {
        self.cap.len()
    }

    pub fn domains(&self) -> u32 {
        self.gpus.div_ceil(self.domain_size)
    }

    pub fn nodes(&self) -> u32 {
        self.gpus / self.gpus_per_node
    }

    /// Several GPUs reach the fabric through one NIC (a GPU-to-NIC PCIe link exists).
    pub fn shared_nics(&self) -> bool {
        self.nics_per_node > 0 && self.nics_per_node < self.gpus_per_node
    }

    /// A GPU's links to and from its domain switch (NVSwitch or PCIe host).
    #[inline]
    pub fn scale_up_links(&self, gpu: u32) -> (u32, u32) {
        (2 * gpu, 2 * gpu + 1)
    }

    /// The links out of and into a GPU's NIC port: its GPU-to-NIC PCIe cable when several
    /// GPUs share a NIC, else the NIC's cable to its leaf. `None` without NICs.
    pub fn nic_port_links(&self, gpu: u32) -> Option<(u32, u32)> {
        let pair = if self.shared_nics() {
            self.base_gpu_nic + gpu
        } else if self.nics_per_node > 0 {
            self.base_nic_leaf + self.nic_of(gpu)
        } else {
            return None;
        };
        Some((2 * pair, 2 * pair + 1))
    }

    #[inline]
    pub fn domain_of(&self, gpu: u32) -> u32 {
        gpu / self.domain_size
    }

    /// The NIC a GPU sends through (GPUs of a node spread evenly over its NICs).
    #[inline]
    pub fn nic_of(&self, gpu: u32) -> u32 {
        let node = gpu / self.gpus_per_node;
        let local = gpu % self.gpus_per_node;
        node * self.nics_per_node + local * self.nics_per_node / self.gpus_per_node
    }

    #[inline]
    pub fn leaf_of_nic(&self, nic: u32) -> u32 {
        let f = &self.fabric;
        if f.rail {
            let node = nic / self.nics_per_node;
            (node / f.nics_per_leaf) * self.nics_per_node + nic % self.nics_per_node
        } else {
            nic / f.nics_per_leaf
        }
    }

    #[inline]
    pub fn pod_of_leaf(&self, leaf: u32) -> u32 {
        leaf / self.fabric.leaves_per_pod
    }

    // Vertex ids: GPUs, then domains, NICs, leaves, spines, cores.
    pub fn v_domain(&self, d: u32) -> u32 {
        self.gpus + d
    }
    pub fn v_nic(&self, n: u32) -> u32 {
        self.gpus + self.domains() + n
    }
    pub fn v_leaf(&self, l: u32) -> u32 {
        self.v_nic(self.fabric.nics) + l
    }
    pub fn v_spine(&self, s: u32) -> u32 {
        self.v_leaf(self.fabric.leaves) + s
    }
    pub fn v_core(&self, c: u32) -> u32 {
        self.v_spine(self.fabric.spines()) + c
    }
    pub fn vertices(&self) -> u32 {
        self.v_core(self.fabric.cores())
    }

    pub fn vertex_kind(&self, v: u32) -> VertexKind {
        if v < self.gpus {
            VertexKind::Gpu
        } else if v < self.v_nic(0) {
            VertexKind::Domain
        } else if v < self.v_leaf(0) {
            VertexKind::Nic
        } else if v < self.v_spine(0) {
            VertexKind::Leaf
        } else if v < self.v_core(0) {
            VertexKind::Spine
        } else {
            VertexKind::Core
        }
    }

    /// A vertex as `kind:index`, e.g. `gpu:12`, `leaf:3`.
    pub fn vertex_name(&self, v: u32) -> String {
        let (k, base) = match self.vertex_kind(v) {
            VertexKind::Gpu => ("gpu", 0),
            VertexKind::Domain => ("domain", self.v_domain(0)),
            VertexKind::Nic => ("nic", self.v_nic(0)),
            VertexKind::Leaf => ("leaf", self.v_leaf(0)),
            VertexKind::Spine => ("spine", self.v_spine(0)),
            VertexKind::Core => ("core", self.v_core(0)),
        };
        format!("{k}:{}", v - base)
    }

    /// The topology as a petgraph graph (vertex weights are kinds, edge weights link ids;
    /// edge index = link id). Built on demand: the simulator itself uses the flat arrays.
    pub fn graph(&self) -> DiGraph<VertexKind, u32> {
        let mut g = DiGraph::with_capacity(self.vertices() as usize, self.links());
        for v in 0..self.vertices() {
            g.add_node(self.vertex_kind(v));
        }
        for (i, &(a, b)) in self.ends.iter().enumerate() {
            g.add_edge(
                NodeIndex::new(a as usize),
                NodeIndex::new(b as usize),
                i as u32,
            );
        }
        g
    }
}

/// Scales the capacity of `links` by `factor` (< 1 slows them down).
fn scale(cap: &mut [f64], links: [u32; 2], factor: f64) {
    if factor >= 1.0 {
        return;
    }
    for l in links {
        if let Some(c) = cap.get_mut(l as usize) {
            *c *= factor.max(1e-6);
        }
    }
}

fn fabric_shape(c: &ClusterSpec, gpus: u32, nics_per_node: u32) -> FabricShape {
    let nodes = gpus / c.node.gpus.max(1) as u32;
    let nics = nodes * nics_per_node;
    let empty = FabricShape {
        nics,
        nics_per_leaf: nics.max(1),
        leaves: u32::from(nics > 0),
        leaf_up: 0,
        leaves_per_pod: 1,
        pods: 1,
        spine_up: 0,
        rail: false,
    };
    if nics == 0 || c.fabric.kind == FabricKind::SingleSwitch {
        return empty;
    }
    let rail = c.fabric.kind == FabricKind::RailOptimized && nics_per_node > 1;
    let down = (c.fabric.switch_radix / 2).max(1) as u32;
    let (nics_per_leaf, leaves) = if rail {
        (down, nodes.div_ceil(down) * nics_per_node)
    } else {
        // Whole nodes per leaf: a node's NICs share a leaf (`fat-tree`, `clos-pods`), so
        // a leaf takes as many whole nodes as its NIC-facing ports hold and leaves the rest
        // unused (20 ports, 8 NICs per node: 2 nodes, 4 ports spare), as such fabrics are
        // cabled; splitting a node over two leaves would give a ring's rail flows two
        // different leaf pairs to cross and destination-mod-k routing collisions that
        // cabling by node avoids.
        let per = if nics_per_node > 0 && nics_per_node <= down {
            down / nics_per_node * nics_per_node
        } else {
            down
        };
        (per, nics.div_ceil(per))
    };
    if leaves <= 1 {
        return FabricShape { rail, ..empty };
    }
    let os = c.fabric.oversubscription.max(1.0);
    let leaf_up = ((down as f64 / os).round() as u32).max(1);
    let unit = if rail { nics_per_node } else { 1 };
    let leaves_per_pod = match (c.fabric.kind, c.fabric.pod_gpus) {
        (FabricKind::ClosPods, Some(pg)) => {
            let pod_nics = (pg as u32 / c.node.gpus.max(1) as u32) * nics_per_node;
            pod_nics.div_ceil(nics_per_leaf).div_ceil(unit) * unit
        }
        _ if c.fabric.tiers >= 3 => (down / unit).max(1) * unit,
        _ => leaves,
    }
    .clamp(1, leaves);
    let pods = leaves.div_ceil(leaves_per_pod);
    let spine_up = if pods > 1 {
        let os2 = if c.fabric.kind == FabricKind::ClosPods {
            c.fabric.pod_oversubscription
        } else {
            c.fabric.spine_oversubscription
        }
        .max(1.0);
        ((leaves_per_pod as f64 / os2).round() as u32).max(1)
    } else {
        0
    };
    FabricShape {
        nics,
        nics_per_leaf,
        leaves,
        leaf_up,
        leaves_per_pod,
        pods,
        spine_up,
        rail,
    }
}
