//! Per-link statistics of a simulated step: the `links.csv` writer and the utilization
//! matrix behind the link heat map.
//!
//! Owns: turning [`LinkCounters`] into rows (bytes, busy fraction, utilization, peak
//! concurrent flows, peak utilization) and a kind x position matrix of utilization.
//! Must not: change results or draw (see [`super::heatmap`]).

use std::io::{self, Write};

use super::flows::LinkCounters;
use super::topology::{LinkKind, Topology};
use crate::units::Nanos;

/// One link's use over a step.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkUsage {
    pub id: u32,
    pub kind: LinkKind,
    pub src: String,
    pub dst: String,
    pub bytes: f64,
    /// Fraction of the step with at least one flow on the link.
    pub busy_fraction: f64,
    /// Bytes over capacity x step time.
    pub utilization: f64,
    pub peak_flows: u32,
    /// Highest total rate of its flows at any moment over capacity.
    pub peak_utilization: f64,
}

/// Usage of every link that carried traffic, in link id order.
pub fn link_usage(topo: &Topology, c: &LinkCounters, step: Nanos) -> Vec<LinkUsage> {
    let t = (step.max(1)) as f64 * 1e-9;
    (0..topo.links())
        .filter(|&l| c.bytes[l] > 0.0)
        .map(|l| {
            let (a, b) = topo.ends[l];
            let (a_last, b_last) = topo.pool_last_ends(l);
            LinkUsage {
                id: l as u32,
                kind: topo.kind[l],
                src: vertex_span(topo, a, a_last),
                dst: vertex_span(topo, b, b_last),
                bytes: c.bytes[l],
                busy_fraction: (c.busy_ns[l] as f64 * 1e-9 / t).min(1.0),
                utilization: c.bytes[l] / (topo.cap[l] * t),
                peak_flows: c.peak_flows[l],
                peak_utilization: c.peak_rate[l] / topo.cap[l],
            }
        })
        .collect()
}

/// The name of vertex `first`, or of the range `first..=last` when a pooled link (adaptive
/// routing, [`Topology::pool_size`]) spans several: `spine:0-3`.
fn vertex_span(topo: &Topology, first: u32, last: u32) -> String {
    let (a, b) = (topo.vertex_name(first), topo.vertex_name(last));
    if a == b {
        return a;
    }
    match (a.split_once(':'), b.split_once(':')) {
        (Some((ka, ia)), Some((kb, ib))) if ka == kb => format!("{ka}:{ia}-{ib}"),
        _ => format!("{a}..{b}"),
    }
}

/// The header of `links.csv`: usage, then where the link is on the floor
/// ([`LinkPlace`]).
pub const LINKS_CSV_HEADER: &str = "id,kind,src,dst,capacity_gbs,bytes,busy_fraction,utilization,peak_flows,peak_utilization,direction,node,gpu,rail,pod,leaf,spine,core";

/// Where a link is: what a technician needs to find the cable. Fields that do not apply
/// to the link's tier are `None` (an empty CSV field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkPlace {
    /// `up` (towards the core: GPU to switch, NIC to leaf, leaf to spine, spine to core)
    /// or `down`.
    pub up: bool,
    /// Server (node) index, for links that start or end at one.
    pub node: Option<u32>,
    /// GPU index within its node (scale-up and GPU-to-NIC links).
    pub gpu: Option<u32>,
    /// NIC index within its node, which is also the rail on rail-optimized fabrics; for
    /// a rail-optimized leaf, the rail it serves.
    pub rail: Option<u32>,
    pub pod: Option<u32>,
    pub leaf: Option<u32>,
    pub spine: Option<u32>,
    pub core: Option<u32>,
}

impl LinkPlace {
    /// `direction,node,gpu,rail,pod,leaf,spine,core` as CSV fields.
    pub fn csv(&self) -> String {
        let f = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{}",
            if self.up { "up" } else { "down" },
            f(self.node),
            f(self.gpu),
            f(self.rail),
            f(self.pod),
            f(self.leaf),
            f(self.spine),
            f(self.core)
        )
    }
}

/// Where link `l` of `topo` is (see [`LinkPlace`]).
pub fn link_place(topo: &Topology, l: usize) -> LinkPlace {
    let (a, b) = topo.ends[l];
    let up = l.is_multiple_of(2);
    let (lower, upper) = if up { (a, b) } else { (b, a) };
    let gpn = topo.gpus_per_node.max(1);
    let npn = topo.nics_per_node.max(1);
    let f = &topo.fabric;
    let rail_of_leaf = |leaf: u32| f.rail.then_some(leaf % npn);
    let mut p = LinkPlace {
        up,
        ..Default::default()
    };
    match topo.kind[l] {
        LinkKind::NvLink | LinkKind::Pcie => {
            p.node = Some(lower / gpn);
            p.gpu = Some(lower % gpn);
        }
        LinkKind::GpuNic => {
            p.node = Some(lower / gpn);
            p.gpu = Some(lower % gpn);
            p.rail = Some(topo.nic_of(lower) % npn);
        }
        LinkKind::NicLeaf => {
            let nic = lower - topo.v_nic(0);
            let leaf = upper - topo.v_leaf(0);
            p.node = Some(nic / npn);
            p.rail = Some(nic % npn);
            p.leaf = Some(leaf);
            p.pod = Some(topo.pod_of_leaf(leaf));
        }
        LinkKind::LeafSpine => {
            let leaf = lower - topo.v_leaf(0);
            p.leaf = Some(leaf);
            p.rail = rail_of_leaf(leaf);
            p.spine = Some(upper - topo.v_spine(0));
            p.pod = Some(topo.pod_of_leaf(leaf));
        }
        LinkKind::SpineCore => {
            let spine = lower - topo.v_spine(0);
            p.spine = Some(spine);
            p.core = Some(upper - topo.v_core(0));
            p.pod = Some(spine / f.leaf_up.max(1));
        }
    }
    if topo.pool_size(l) > 1 {
        // An adaptive-routing pool spans every spine (and core) of its group: no one
        // cable to name; src and dst give the ranges.
        p.spine = None;
        p.core = None;
    }
    p
}

/// Writes `links.csv`: one row per link that carried traffic (links never used are
/// omitted; a 131,072-GPU fabric has over a million).
pub fn write_links_csv(
    topo: &Topology,
    c: &LinkCounters,
    step: Nanos,
    mut w: impl Write,
) -> io::Result<()> {
    writeln!(w, "{LINKS_CSV_HEADER}")?;
    for u in link_usage(topo, c, step) {
        let place = link_place(topo, u.id as usize);
        writeln!(
            w,
            "{},{},{},{},{:.3},{:.0},{:.6},{:.6},{},{:.6},{}",
            u.id,
            u.kind.label(),
            u.src,
            u.dst,
            topo.cap[u.id as usize] * 1e-9,
            u.bytes,
            u.busy_fraction,
            u.utilization,
            u.peak_flows,
            u.peak_utilization,
            place.csv()
        )?;
    }
    Ok(())
}

/// Mean utilization per link kind (rows, in [`LinkKind::ALL`] order, kinds without links
/// omitted) and position (`cols` buckets of consecutive links of that kind).
pub fn utilization_matrix(
    topo: &Topology,
    c: &LinkCounters,
    step: Nanos,
    cols: usize,
) -> Vec<(LinkKind, Vec<f64>)> {
    let t = (step.max(1)) as f64 * 1e-9;
    let cols = cols.max(1);
    let mut rows = Vec::new();
    for kind in LinkKind::ALL {
        let ids: Vec<usize> = (0..topo.links())
            .filter(|&l| topo.kind[l] == kind)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let mut sum = vec![0.0; cols];
        let mut cnt = vec![0usize; cols];
        for (i, &l) in ids.iter().enumerate() {
            let b = i * cols / ids.len();
            let h = topo.pool_head(l);
            sum[b] += c.bytes[h] / (topo.cap[h] * t);
            cnt[b] += 1;
        }
        let row = sum
            .iter()
            .zip(&cnt)
            .map(|(s, &n)| if n > 0 { s / n as f64 } else { 0.0 })
            .collect();
        rows.push((kind, row));
    }
    rows
}

/// One row of the link heat map: the links of one tier in one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatRow {
    pub kind: LinkKind,
    /// Towards the core (GPU to switch, NIC to leaf, ...) or back.
    pub up: bool,
    /// Links in the row.
    pub links: usize,
    /// Mean utilization of consecutive groups of links, left to right (at most `cols`
    /// cells, fewer when the row has fewer links).
    pub cells: Vec<f64>,
    /// Per cell, the highest peak utilization of its links (see
    /// [`LinkCounters::peak_rate`]): where the mean hides short bursts, this shows them.
    pub peaks: Vec<f64>,
}

impl HeatRow {
    /// `nvlink up`, `leaf-spine down`, ...
    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.kind.label(),
            if self.up { "up" } else { "down" }
        )
    }
}

/// Mean utilization (bytes over capacity x step) and peak utilization per tier and
/// direction (rows, in [`LinkKind::ALL`] order, up before down, tiers without links
/// omitted), bucketed by position into at most `cols` cells (mean of the cell's links, and
/// their highest peak).
pub fn heat_rows(topo: &Topology, c: &LinkCounters, step: Nanos, cols: usize) -> Vec<HeatRow> {
    let t = (step.max(1)) as f64 * 1e-9;
    let mut ids: Vec<Vec<usize>> = vec![Vec::new(); 2 * LinkKind::ALL.len()];
    for l in 0..topo.links() {
        let k = LinkKind::ALL
            .iter()
            .position(|&k| k == topo.kind[l])
            .unwrap_or(0);
        ids[2 * k + l % 2].push(l);
    }
    let mut rows = Vec::new();
    for (i, links) in ids.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
        let n = cols.clamp(1, links.len());
        let mut sum = vec![0.0; n];
        let mut cnt = vec![0usize; n];
        let mut peaks = vec![0.0f64; n];
        for (j, &l) in links.iter().enumerate() {
            let b = j * n / links.len();
            // A member of an adaptive-routing pool shows its pool's (even) share.
            let h = topo.pool_head(l);
            sum[b] += c.bytes[h] / (topo.cap[h] * t);
            cnt[b] += 1;
            peaks[b] = peaks[b].max(c.peak_rate[h] / topo.cap[h]);
        }
        rows.push(HeatRow {
            kind: LinkKind::ALL[i / 2],
            up: i % 2 == 0,
            links: links.len(),
            cells: sum
                .iter()
                .zip(&cnt)
                .map(|(s, &k)| s / k.max(1) as f64)
                .collect(),
            peaks,
        });
    }
    rows
}
