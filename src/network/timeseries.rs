//! Link use over time: utilization per tier (and per link on request) in fixed time bins
//! over a contention-mode step.
//!
//! Owns: the [`UsageRecorder`] the flow solver feeds with every piece of a flow's life at
//! a constant rate (a *segment*: from the moment its rate was set to the moment it changes
//! or the flow ends), and turning what it gathered into [`TimeSeries`].
//! Must not: change rates or times (it only watches), or draw.
//!
//! Each segment's bytes are spread over the time it lasted, on every link of the flow's
//! path, as *link-seconds of full use* (bytes / link capacity). The recorder keeps
//! `bins` equal bins starting at 0 and doubles their width (merging pairs) whenever a
//! segment ends past the last one, so memory stays fixed whatever the step length. At the
//! end the bins are redistributed, proportionally to overlap, onto `n` output bins of
//! `step / n` each. Bytes are conserved through every stage, so the time average of a
//! series equals the step-average utilization of `links.csv` (mean over the tier's links
//! of bytes / (capacity × step)); and since no link ever carries more than its capacity,
//! every bin of every series lies in [0, 1].

use super::topology::{LinkKind, Topology};
use crate::units::Nanos;

/// Fine bins kept per series when only tiers are recorded.
pub const TIER_FINE_BINS: usize = 1024;
/// Fine bins kept per series when every link is recorded too (memory: 8 bytes x this x
/// links that carried traffic).
pub const LINK_FINE_BINS: usize = 256;
/// Bins of the written series (`links-timeseries.csv`, the time heat map).
pub const OUTPUT_BINS: usize = 100;

/// The tier series a link belongs to: `2 x` its kind's index in [`LinkKind::ALL`], plus 1
/// for the direction away from the core (link ids alternate up, down).
pub fn tier_series(topo: &Topology, link: usize) -> usize {
    let k = LinkKind::ALL
        .iter()
        .position(|&k| k == topo.kind[link])
        .unwrap_or(0);
    2 * k + link % 2
}

/// Number of tier series (every kind, both directions; empty ones are dropped on output).
pub const TIER_SERIES: usize = 2 * LinkKind::ALL.len();

/// Gathers link use in time bins while the flow solver runs.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    /// Per link: its tier series.
    link_series: Vec<u8>,
    /// Per link: 1 / capacity (s per byte).
    inv_cap: Vec<f64>,
    /// Per link: physical links it stands for / capacity, its weight in its tier's series
    /// (an adaptive-routing pool head carries its pool's bytes on the pool's summed
    /// capacity, and counts once per member: [`Topology::pool_size`]).
    tier_weight: Vec<f64>,
    /// Links per tier series.
    tier_links: [u32; TIER_SERIES],
    bins: usize,
    width: Nanos,
    /// `TIER_SERIES x bins` link-seconds.
    tier: Vec<f64>,
    /// Per link: its row in `link_rows`, or `u32::MAX` (per-link recording off, or no
    /// traffic yet).
    link_row: Vec<u32>,
    per_link: bool,
    link_rows: Vec<f64>,
    /// Links in row order.
    row_link: Vec<u32>,
    scratch: [f64; TIER_SERIES],
}

impl UsageRecorder {
    /// A recorder for `topo`'s links; `per_link` also keeps one series per link that
    /// carries traffic.
    pub fn new(topo: &Topology, per_link: bool) -> Self {
        let n = topo.links();
        let mut tier_links = [0u32; TIER_SERIES];
        let link_series: Vec<u8> = (0..n)
            .map(|l| {
                let s = tier_series(topo, l);
                tier_links[s] += 1;
                s as u8
            })
            .collect();
        let bins = if per_link {
            LINK_FINE_BINS
        } else {
            TIER_FINE_BINS
        };
        UsageRecorder {
            link_series,
            inv_cap: topo.cap.iter().map(|&c| 1.0 / c.max(1e-9)).collect(),
            tier_weight: (0..n)
                .map(|l| f64::from(topo.pool_size(l)) / topo.cap[l].max(1e-9))
                .collect(),
            tier_links,
            bins,
            width: 1024,
            tier: vec![0.0; TIER_SERIES * bins],
            link_row: vec![u32::MAX; if per_link { n } else { 0 }],
            per_link,
            link_rows: Vec::new(),
            row_link: Vec::new(),
            scratch: [0.0; TIER_SERIES],
        }
    }

    /// Whether one series per link is kept.
    pub fn per_link(&self) -> bool {
        self.per_link
    }

    /// Doubles the bin width until `t` falls inside the bins, merging pairs.
    fn cover(&mut self, t: Nanos) {
        while t > self.width.saturating_mul(self.bins as u64) {
            let k = self.bins;
            for row in self.tier.chunks_mut(k).chain(self.link_rows.chunks_mut(k)) {
                for i in 0..k / 2 {
                    row[i] = row[2 * i] + row[2 * i + 1];
                }
                row[k / 2..].fill(0.0);
            }
            self.width = self.width.saturating_mul(2);
        }
    }

    /// Spreads `amount` over `[t0, t1]` in `row` (bins of `width`).
    fn spread(row: &mut [f64], width: Nanos, t0: Nanos, t1: Nanos, amount: f64) {
        let last = row.len() - 1;
        let b0 = ((t0 / width) as usize).min(last);
        let b1 = ((t1.saturating_sub(1) / width) as usize).clamp(b0, last);
        if b0 == b1 || t1 <= t0 {
            row[b0] += amount;
            return;
        }
        let per_ns = amount / (t1 - t0) as f64;
        for (b, cell) in row.iter_mut().enumerate().take(b1 + 1).skip(b0) {
            let lo = (b as Nanos * width).max(t0);
            let hi = ((b as Nanos + 1) * width).min(t1);
            *cell += per_ns * hi.saturating_sub(lo) as f64;
        }
    }

    /// Records `bytes` moved by a flow over `path` (links with repetition) during
    /// `[t0, t1]`.
    pub fn segment(&mut self, path: &[u32], t0: Nanos, t1: Nanos, bytes: f64) {
        if bytes <= 0.0 {
            return;
        }
        self.cover(t1.max(t0 + 1));
        self.scratch = [0.0; TIER_SERIES];
        for &l in path {
            let l = l as usize;
            self.scratch[self.link_series[l] as usize] += bytes * self.tier_weight[l];
        }
        let (k, w) = (self.bins, self.width);
        for s in 0..TIER_SERIES {
            let a = self.scratch[s];
            if a > 0.0 {
                Self::spread(&mut self.tier[s * k..(s + 1) * k], w, t0, t1, a);
            }
        }
        if self.per_link {
            for &l in path {
                let li = l as usize;
                if self.link_row[li] == u32::MAX {
                    self.link_row[li] = self.row_link.len() as u32;
                    self.row_link.push(l);
                    self.link_rows.extend(std::iter::repeat_n(0.0, k));
                }
                let r = self.link_row[li] as usize;
                let a = bytes * self.inv_cap[li];
                Self::spread(&mut self.link_rows[r * k..(r + 1) * k], w, t0, t1, a);
            }
        }
    }

    /// Redistributes one fine row onto `n` bins of `step / n`, as utilization (link-seconds
    /// over `links x` bin length).
    fn rebin(&self, row: &[f64], step: Nanos, n: usize, links: f64) -> Vec<f64> {
        let step = step.max(1) as f64;
        let out_w = step / n as f64;
        let fine_w = self.width as f64;
        let mut out = vec![0.0; n];
        for (b, &v) in row.iter().enumerate() {
            if v == 0.0 {
                continue;
            }
            let (lo, hi) = (b as f64 * fine_w, (b + 1) as f64 * fine_w);
            // Bins past the step end only hold traffic that ended by then: their share
            // of time past `step` is empty, so clip the fine bin to the step.
            let hi = hi.min(step).max(lo.min(step));
            let lo = lo.min(step);
            if hi <= lo {
                out[n - 1] += v;
                continue;
            }
            let (o0, o1) = (
                ((lo / out_w) as usize).min(n - 1),
                (((hi / out_w).ceil() as usize).max(1) - 1).min(n - 1),
            );
            for (o, cell) in out.iter_mut().enumerate().take(o1 + 1).skip(o0) {
                let a = (o as f64 * out_w).max(lo);
                let z = ((o + 1) as f64 * out_w).min(hi);
                if z > a {
                    *cell += v * (z - a) / (hi - lo);
                }
            }
        }
        let secs = out_w * 1e-9 * links;
        out.iter_mut().for_each(|u| *u /= secs);
        out
    }

    /// The series over a step of length `step` in `n` bins: one per tier and direction
    /// that has links (in [`LinkKind::ALL`] order, up before down), then, when per-link
    /// recording is on, one per link that carried traffic (in link id order).
    pub fn series(&self, topo: &Topology, step: Nanos, n: usize) -> TimeSeries {
        let n = n.max(1);
        let k = self.bins;
        let tiers = (0..TIER_SERIES)
            .filter(|&s| self.tier_links[s] > 0)
            .map(|s| SeriesRow {
                name: format!(
                    "{} {}",
                    LinkKind::ALL[s / 2].label(),
                    if s % 2 == 0 { "up" } else { "down" }
                ),
                links: self.tier_links[s],
                link: None,
                values: self.rebin(
                    &self.tier[s * k..(s + 1) * k],
                    step,
                    n,
                    self.tier_links[s] as f64,
                ),
            })
            .collect();
        let mut order: Vec<usize> = (0..self.row_link.len()).collect();
        order.sort_by_key(|&r| self.row_link[r]);
        let links = order
            .into_iter()
            .map(|r| {
                let l = self.row_link[r];
                let (a, b) = topo.ends[l as usize];
                SeriesRow {
                    name: format!("{} {}>{}", l, topo.vertex_name(a), topo.vertex_name(b)),
                    links: 1,
                    link: Some(l),
                    values: self.rebin(&self.link_rows[r * k..(r + 1) * k], step, n, 1.0),
                }
            })
            .collect();
        TimeSeries {
            step,
            bins: n,
            tiers,
            links,
        }
    }
}

/// One series: utilization (fraction of capacity in use, averaged over its links and
/// over each bin) per time bin.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    /// `leaf-spine up`, or `<id> <src>><dst>` for a link.
    pub name: String,
    /// Links averaged.
    pub links: u32,
    /// The link, for a per-link series.
    pub link: Option<u32>,
    pub values: Vec<f64>,
}

/// Utilization over a step in equal time bins.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    pub step: Nanos,
    pub bins: usize,
    pub tiers: Vec<SeriesRow>,
    /// Per link (only with per-link recording), links that carried traffic.
    pub links: Vec<SeriesRow>,
}

impl TimeSeries {
    /// Start and end of bin `b`, nanoseconds.
    pub fn bin_range(&self, b: usize) -> (f64, f64) {
        let w = self.step as f64 / self.bins as f64;
        (b as f64 * w, (b + 1) as f64 * w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreading_and_rebinning_conserve_the_amount() {
        let mut row = vec![0.0; 8];
        UsageRecorder::spread(&mut row, 10, 5, 35, 3.0);
        assert_eq!(row[0], 0.5);
        assert_eq!(row[1], 1.0);
        assert_eq!(row[3], 0.5);
        assert!((row.iter().sum::<f64>() - 3.0).abs() < 1e-12);
    }
}
