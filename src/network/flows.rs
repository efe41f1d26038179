//! Flow-level bandwidth sharing: max-min fair rates by progressive filling, recomputed
//! incrementally.
//!
//! Owns: the set of active flows, their rates and remaining bytes, their completion events,
//! and per-link accounting (bytes, busy time, peak concurrent flows, peak load).
//! Must not: know about collectives or topologies beyond link capacities.
//!
//! A flow is a set of link traversals sharing one rate (a link may appear more than once:
//! it then carries the rate once per appearance). This lets a ring channel, whose every edge
//! moves at the pace of the slowest, be one flow. Rates change only when flows start or
//! end. Changes are batched: [`FlowSolver::add_flow`] and completions only mark links dirty;
//! [`FlowSolver::recompute`] then re-runs progressive filling on the connected component
//! (flows sharing links, transitively) of the dirty links, leaving every other rate alone.
//! Fast path: a flow added onto idle links gets its bottleneck rate at once and marks
//! nothing dirty (no batch, no solve, no extra wake-up of the engine); a completion dirties
//! only links that still carry flows; a component of one flow skips progressive filling.
//! All buffers are reused: steady-state operation does not allocate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::timeseries::UsageRecorder;
use crate::units::Nanos;

/// Path length above which a finished flow's buffers are released rather than kept for
/// the next flow of its slot.
const LARGE_PATH: usize = 4096;

/// Per-link accounting over a simulation.
#[derive(Debug, Clone, Default)]
pub struct LinkCounters {
    pub bytes: Vec<f64>,
    pub busy_ns: Vec<Nanos>,
    pub peak_flows: Vec<u32>,
    /// Highest total rate of the flows on the link at any moment, bytes/s.
    pub peak_rate: Vec<f64>,
}

/// One link's live state and accounting, kept together (one cache line) because adding
/// or ending a flow touches all of it for every link of the flow.
#[derive(Debug, Clone, Default)]
struct LinkState {
    /// (flow, traversal index) of each traversal crossing the link.
    flows: Vec<(u32, u32)>,
    bytes: f64,
    busy_ns: Nanos,
    busy_since: Nanos,
    peak_flows: u32,
    /// Highest sum of its flows' rates so far, bytes/s (rates change only at a solve).
    peak_rate: f64,
}

#[derive(Debug, Clone, Default)]
struct Flow {
    /// Links traversed (with repetition).
    path: Vec<u32>,
    /// For each traversal, its index in the link's flow list.
    pos: Vec<u32>,
    remaining: f64,
    rate: f64,
    since: Nanos,
    owner: u32,
    version: u32,
    active: bool,
}

/// Max-min fair sharing of link capacities among flows.
#[derive(Debug, Clone)]
pub struct FlowSolver {
    cap: Vec<f64>,
    /// Per link: the flows crossing it and its accounting.
    links: Vec<LinkState>,
    flows: Vec<Flow>,
    free: Vec<u32>,
    events: BinaryHeap<Reverse<(Nanos, u32, u32)>>,
    dirty: Vec<u32>,
    dirty_at: Option<Nanos>,
    // Scratch for component search and progressive filling.
    link_mark: Vec<u32>,
    flow_mark: Vec<u32>,
    frozen: Vec<u32>,
    epoch: u32,
    comp_links: Vec<u32>,
    comp_flows: Vec<u32>,
    /// Each component flow's rate before the solve (parallel to `comp_flows`).
    comp_old_rates: Vec<f64>,
    stack: Vec<u32>,
    rem: Vec<f64>,
    unfrozen: Vec<u32>,
    fill: BinaryHeap<Reverse<(u64, u32)>>,
    active: usize,
    /// Link use over time, when asked for ([`FlowSolver::record_usage`]).
    recorder: Option<Box<UsageRecorder>>,
}

impl FlowSolver {
    pub fn new(cap: Vec<f64>) -> Self {
        let n = cap.len();
        FlowSolver {
            cap,
            links: vec![LinkState::default(); n],
            flows: Vec::new(),
            free: Vec::new(),
            events: BinaryHeap::new(),
            dirty: Vec::new(),
            dirty_at: None,
            link_mark: vec![0; n],
            flow_mark: Vec::new(),
            frozen: Vec::new(),
            epoch: 0,
            comp_links: Vec::new(),
            comp_flows: Vec::new(),
            comp_old_rates: Vec::new(),
            stack: Vec::new(),
            rem: vec![0.0; n],
            unfrozen: vec![0; n],
            fill: BinaryHeap::new(),
            active: 0,
            recorder: None,
        }
    }

    /// Records link use over time from now on (see [`super::timeseries`]); watching
    /// changes no rate or time.
    pub fn record_usage(&mut self, recorder: UsageRecorder) {
        self.recorder = Some(Box::new(recorder));
    }

    /// The link-use recorder, if one was set.
    pub fn usage(&self) -> Option<&UsageRecorder> {
        self.recorder.as_deref()
    }

    pub fn capacity(&self, link: u32) -> f64 {
        self.cap[link as usize]
    }

    /// Per-link bytes, busy time, peak concurrent flows and peak load so far (a copy, for
    /// reports).
    pub fn counters(&self) -> LinkCounters {
        LinkCounters {
            bytes: self.links.iter().map(|c| c.bytes).collect(),
            busy_ns: self.links.iter().map(|c| c.busy_ns).collect(),
            peak_flows: self.links.iter().map(|c| c.peak_flows).collect(),
            peak_rate: self.links.iter().map(|c| c.peak_rate).collect(),
        }
    }

    /// Number of flows in progress.
    pub fn active_flows(&self) -> usize {
        self.active
    }

    /// Current rate of a flow, bytes/s (after the last [`FlowSolver::recompute`]).
    pub fn rate(&self, flow: u32) -> f64 {
        self.flows[flow as usize].rate
    }

    /// Starts a flow of `bytes` over `path` at `now`; its rate is set by the next
    /// [`FlowSolver::recompute`]. Returns its id. `path` must not be empty.
    pub fn add_flow(&mut self, now: Nanos, path: &[u32], bytes: f64, owner: u32) -> u32 {
        debug_assert!(!path.is_empty());
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.flows.push(Flow::default());
                self.flow_mark.push(0);
                self.frozen.push(0);
                (self.flows.len() - 1) as u32
            }
        };
        let alone = path
            .iter()
            .all(|&l| self.links[l as usize].flows.is_empty());
        let mut f = std::mem::take(&mut self.flows[id as usize]);
        f.path.clear();
        f.path.extend_from_slice(path);
        f.pos.clear();
        for (hop, &l) in path.iter().enumerate() {
            let list = &mut self.links[l as usize].flows;
            f.pos.push(list.len() as u32);
            list.push((id, hop as u32));
            self.touch_link_add(l, now, bytes);
        }
        f.remaining = bytes;
        f.rate = 0.0;
        f.since = now;
        f.owner = owner;
        f.version = f.version.wrapping_add(1);
        f.active = true;
        self.flows[id as usize] = f;
        self.active += 1;
        if alone {
            self.start_alone(id, now);
        } else {
            self.mark_dirty_path(id, now);
        }
        id
    }

    /// Fast path for a flow that shares no link: its max-min rate is its bottleneck's
    /// capacity (divided by how often it crosses it), set now without a batch or a solve.
    /// A flow added later on one of its links marks them dirty, and the next
    /// [`FlowSolver::recompute`] re-solves the component as usual.
    fn start_alone(&mut self, id: u32, now: Nanos) {
        let f = &self.flows[id as usize];
        let rate = f
            .path
            .iter()
            .map(|&l| self.cap[l as usize] / self.links[l as usize].flows.len() as f64)
            .fold(f64::INFINITY, f64::min);
        self.flows[id as usize].rate = rate;
        // Alone on its links: each carries the rate once per traversal.
        for h in 0..self.flows[id as usize].path.len() {
            let c = &mut self.links[self.flows[id as usize].path[h] as usize];
            c.peak_rate = c.peak_rate.max(rate * c.flows.len() as f64);
        }
        self.schedule(id, now);
    }

    fn touch_link_add(&mut self, l: u32, now: Nanos, bytes: f64) {
        let c = &mut self.links[l as usize];
        let n = c.flows.len() as u32;
        if n == 1 {
            c.busy_since = now;
        }
        c.bytes += bytes;
        c.peak_flows = c.peak_flows.max(n);
    }

    fn mark_dirty_path(&mut self, id: u32, now: Nanos) {
        let f = &self.flows[id as usize];
        self.dirty.extend_from_slice(&f.path);
        self.dirty_at = Some(self.dirty_at.map_or(now, |t| t.min(now)));
    }

    fn remove_flow(&mut self, id: u32, now: Nanos) {
        if let Some(rec) = self.recorder.as_deref_mut() {
            // The last segment: what was left, moved between the last rate change and now.
            let f = &self.flows[id as usize];
            rec.segment(&f.path, f.since, now, f.remaining);
        }
        let n = self.flows[id as usize].path.len();
        for hop in 0..n {
            let l = self.flows[id as usize].path[hop];
            let li = l as usize;
            let p = self.flows[id as usize].pos[hop] as usize;
            self.links[li].flows.swap_remove(p);
            if let Some(&(moved, mhop)) = self.links[li].flows.get(p) {
                self.flows[moved as usize].pos[mhop as usize] = p as u32;
            }
            if self.links[li].flows.is_empty() {
                let c = &mut self.links[li];
                c.busy_ns += now - c.busy_since;
            } else {
                // Only flows still on the link can speed up.
                self.dirty.push(l);
                self.dirty_at = Some(self.dirty_at.map_or(now, |t| t.min(now)));
            }
        }
        let f = &mut self.flows[id as usize];
        f.active = false;
        f.rate = 0.0;
        f.version = f.version.wrapping_add(1);
        if f.path.capacity() > LARGE_PATH {
            // Free slots are reused by any flow: keeping a long path's buffers in every
            // slot that ever held one would hold gigabytes on a large PAT-heavy step.
            f.path = Vec::new();
            f.pos = Vec::new();
        }
        self.free.push(id);
        self.active -= 1;
    }

    /// Earliest pending change: a batch awaiting [`FlowSolver::recompute`] or a flow's end.
    pub fn next_event(&self) -> Option<Nanos> {
        let ev = self.events.peek().map(|Reverse((t, _, _))| *t);
        match (self.dirty_at, ev) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends every flow finishing at or before `now`, appending `(flow, owner)` to `out`.
    pub fn pop_finished(&mut self, now: Nanos, out: &mut Vec<(u32, u32)>) {
        while let Some(&Reverse((t, id, ver))) = self.events.peek() {
            if t > now {
                break;
            }
            self.events.pop();
            let f = &self.flows[id as usize];
            if !f.active || f.version != ver {
                continue;
            }
            let owner = f.owner;
            self.remove_flow(id, now);
            out.push((id, owner));
        }
        self.drop_stale_events();
    }

    fn drop_stale_events(&mut self) {
        while let Some(&Reverse((_, id, ver))) = self.events.peek() {
            let f = &self.flows[id as usize];
            if f.active && f.version == ver {
                break;
            }
            self.events.pop();
        }
    }

    /// Recomputes max-min rates of the flows connected to dirty links, at time `now`.
    pub fn recompute(&mut self, now: Nanos) {
        if self.dirty_at.is_none() {
            return;
        }
        self.dirty_at = None;
        self.collect_component();
        self.comp_old_rates.clear();
        for i in 0..self.comp_flows.len() {
            let id = self.comp_flows[i] as usize;
            let f = &mut self.flows[id];
            self.comp_old_rates.push(f.rate);
            let dt = (now - f.since) as f64 * 1e-9;
            if let Some(rec) = self.recorder.as_deref_mut() {
                rec.segment(&f.path, f.since, now, (f.rate * dt).min(f.remaining));
            }
            f.remaining = (f.remaining - f.rate * dt).max(0.0);
            f.since = now;
            f.rate = 0.0;
        }
        if self.comp_flows.len() == 1 {
            // A lone flow: progressive filling reduces to its bottleneck.
            let id = self.comp_flows[0];
            self.start_alone(id, now);
        } else {
            self.progressive_fill();
            self.schedule_component(now);
        }
        self.drop_stale_events();
    }

    fn collect_component(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.link_mark.fill(0);
            self.flow_mark.fill(0);
            self.frozen.fill(0);
            self.epoch = 1;
        }
        let e = self.epoch;
        self.comp_links.clear();
        self.comp_flows.clear();
        self.stack.clear();
        for i in 0..self.dirty.len() {
            let l = self.dirty[i];
            if self.link_mark[l as usize] != e {
                self.link_mark[l as usize] = e;
                self.stack.push(l);
            }
        }
        self.dirty.clear();
        while let Some(l) = self.stack.pop() {
            self.comp_links.push(l);
            for k in 0..self.links[l as usize].flows.len() {
                let fid = self.links[l as usize].flows[k].0;
                if self.flow_mark[fid as usize] == e {
                    continue;
                }
                self.flow_mark[fid as usize] = e;
                self.comp_flows.push(fid);
                for &l2 in &self.flows[fid as usize].path {
                    if self.link_mark[l2 as usize] != e {
                        self.link_mark[l2 as usize] = e;
                        self.stack.push(l2);
                    }
                }
            }
        }
    }

    /// Progressive filling over the component: repeatedly saturate the link with the smallest
    /// fair share, freezing its flows at that share.
    ///
    /// Keys are lazy. Freezing a flow at the smallest share `s` leaves every other link's
    /// share `(rem - s) / (u - 1) >= rem / u`, so shares only rise during a fill and a key
    /// pushed earlier is a lower bound. Each link sits in the heap once; when its entry
    /// surfaces with a key below its current share it goes back with the current share,
    /// otherwise it is the bottleneck. This freezes links in the same order as re-pushing
    /// on every change, with heap traffic per link instead of per traversal of a frozen
    /// flow (a PAT step under hashed routing crosses thousands of links).
    fn progressive_fill(&mut self) {
        let mut keys = std::mem::take(&mut self.fill).into_vec();
        keys.clear();
        for &l in &self.comp_links {
            let li = l as usize;
            self.rem[li] = self.cap[li];
            self.unfrozen[li] = self.links[li].flows.len() as u32;
            if self.unfrozen[li] > 0 {
                let share = self.rem[li] / self.unfrozen[li] as f64;
                keys.push(Reverse((share.to_bits(), l)));
            }
        }
        // Heapify in linear time; keys are distinct (link ids), so the order is fixed.
        self.fill = BinaryHeap::from(keys);
        let e = self.epoch;
        let mut unfrozen_flows = self.comp_flows.len();
        while unfrozen_flows > 0 {
            let Some(Reverse((bits, l))) = self.fill.pop() else {
                break;
            };
            let li = l as usize;
            if self.unfrozen[li] == 0 {
                continue;
            }
            let share = self.current_share(li);
            // Shares are positive, so their bit patterns order as the values do.
            if share.to_bits() > bits {
                self.fill.push(Reverse((share.to_bits(), l)));
                continue;
            }
            for k in 0..self.links[li].flows.len() {
                let fid = self.links[li].flows[k].0 as usize;
                if self.frozen[fid] == e {
                    continue;
                }
                self.frozen[fid] = e;
                unfrozen_flows -= 1;
                self.flows[fid].rate = share;
                for h in 0..self.flows[fid].path.len() {
                    let l2 = self.flows[fid].path[h] as usize;
                    self.rem[l2] -= share;
                    self.unfrozen[l2] -= 1;
                }
            }
        }
        // Every flow of the component is frozen: a link's load is what it gave away.
        for &l in &self.comp_links {
            let li = l as usize;
            let c = &mut self.links[li];
            c.peak_rate = c
                .peak_rate
                .max((self.cap[li] - self.rem[li]).min(self.cap[li]));
        }
    }

    /// A link's fair share of what its frozen flows left, among its unfrozen flows (floored
    /// so rounding never makes it negative).
    fn current_share(&self, li: usize) -> f64 {
        let floor = self.cap[li] * 1e-12;
        self.rem[li].max(floor) / self.unfrozen[li] as f64
    }

    /// Schedules the end of every component flow whose rate the solve changed. A flow
    /// whose rate came out the same keeps its pending end event: it still ends then (to
    /// the nanosecond it was rounded to), and re-pushing it would fill the event heap
    /// with stale entries, one per flow per solve of a large component.
    fn schedule_component(&mut self, now: Nanos) {
        for i in 0..self.comp_flows.len() {
            let id = self.comp_flows[i];
            let old = self.comp_old_rates[i];
            if old > 0.0 && old.to_bits() == self.flows[id as usize].rate.to_bits() {
                continue;
            }
            self.schedule(id, now);
        }
    }

    /// (Re)schedules a flow's end at its current rate; older events of it become stale.
    fn schedule(&mut self, id: u32, now: Nanos) {
        let f = &mut self.flows[id as usize];
        f.version = f.version.wrapping_add(1);
        let secs = if f.rate > 0.0 {
            f.remaining / f.rate
        } else {
            f64::INFINITY
        };
        let end = if secs.is_finite() {
            now + (secs * 1e9).ceil() as Nanos
        } else {
            Nanos::MAX
        };
        self.events.push(Reverse((end, id, f.version)));
    }

    /// Closes busy intervals of links still carrying flows at `now` (end of simulation).
    pub fn finish_accounting(&mut self, now: Nanos) {
        for c in self.links.iter_mut().filter(|c| !c.flows.is_empty()) {
            c.busy_ns += now.saturating_sub(c.busy_since);
            c.busy_since = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_to_end(s: &mut FlowSolver) -> Vec<(Nanos, u32)> {
        let mut done = Vec::new();
        let mut out = Vec::new();
        while let Some(t) = s.next_event() {
            s.recompute(t);
            out.clear();
            s.pop_finished(t, &mut out);
            done.extend(out.iter().map(|&(f, _)| (t, f)));
            s.recompute(t);
        }
        done
    }

    #[test]
    fn two_equal_flows_on_one_link_get_half_each() {
        let mut s = FlowSolver::new(vec![100e9]);
        let a = s.add_flow(0, &[0], 1e9, 0);
        let b = s.add_flow(0, &[0], 1e9, 1);
        s.recompute(0);
        assert!((s.rate(a) - 50e9).abs() < 1.0);
        assert!((s.rate(b) - 50e9).abs() < 1.0);
        let done = run_to_end(&mut s);
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|&(t, _)| t == 20_000_000));
    }

    #[test]
    fn max_min_gives_leftover_to_unconstrained_flow() {
        // Link 0: 10, link 1: 100. Flow a on both, flows b on link 1 only.
        let mut s = FlowSolver::new(vec![10.0, 100.0]);
        let a = s.add_flow(0, &[0, 1], 1.0, 0);
        let b = s.add_flow(0, &[1], 1.0, 0);
        s.recompute(0);
        assert!((s.rate(a) - 10.0).abs() < 1e-9);
        assert!((s.rate(b) - 90.0).abs() < 1e-9);
    }

    #[test]
    fn flow_ending_speeds_up_the_other() {
        let mut s = FlowSolver::new(vec![1e9]);
        s.add_flow(0, &[0], 1e9, 0);
        s.add_flow(0, &[0], 0.5e9, 1);
        let done = run_to_end(&mut s);
        // Short flow: 0.5e9 at 0.5e9/s = 1 s; long: 0.5e9 left at 1e9/s = 1.5 s.
        assert_eq!(done[0].0, 1_000_000_000);
        assert_eq!(done[1].0, 1_500_000_000);
        assert!((s.counters().busy_ns[0] as f64 - 1.5e9).abs() < 10.0);
        assert_eq!(s.counters().peak_flows[0], 2);
        // Two flows share the link fully; alone, the long one then also fills it.
        assert!((s.counters().peak_rate[0] - 1e9).abs() < 1.0);
    }

    #[test]
    fn peak_rate_is_the_highest_load_not_the_mean() {
        // Link 0 (10) carries a 10-byte flow for 1 s, then idles for 9 s: mean 10 %, peak
        // 100 %. Link 1 (100) carries it too: peak 10 %.
        let mut s = FlowSolver::new(vec![10.0, 100.0, 100.0]);
        s.add_flow(0, &[0, 1], 10.0, 0);
        let done = run_to_end(&mut s);
        assert_eq!(done[0].0, 1_000_000_000);
        let c = s.counters();
        assert!((c.peak_rate[0] - 10.0).abs() < 1e-9 && (c.peak_rate[1] - 10.0).abs() < 1e-9);
        // Alone, a flow through links 2 and 0 runs at link 0's 10; a second flow on link 2
        // takes the remaining 90 through progressive filling: link 2's peak is 100.
        s.add_flow(0, &[2, 0], 1.0, 0);
        assert_eq!(s.counters().peak_rate[2], 10.0);
        s.add_flow(0, &[2], 1.0, 0);
        s.recompute(0);
        let c = s.counters();
        assert!((c.peak_rate[2] - 100.0).abs() < 1e-9, "{}", c.peak_rate[2]);
        assert_eq!(c.peak_rate[0], 10.0);
    }

    #[test]
    fn repeated_link_counts_twice() {
        let mut s = FlowSolver::new(vec![100.0, 100.0]);
        let a = s.add_flow(0, &[0, 1, 0], 1.0, 0);
        s.recompute(0);
        assert!((s.rate(a) - 50.0).abs() < 1e-9);
        let done = run_to_end(&mut s);
        assert_eq!(done.len(), 1);
        assert!(s.links.iter().all(|l| l.flows.is_empty()));
    }

    #[test]
    fn a_flow_whose_rate_holds_keeps_its_end_when_a_neighbour_ends() {
        // Link 0 (10) carries a and b, link 1 (100) carries b and c: a = b = 5, c = 95.
        // c ends first; a and b stay bottlenecked on link 0 and end when they always would.
        let mut s = FlowSolver::new(vec![10.0, 100.0]);
        let a = s.add_flow(0, &[0], 10.0, 0);
        let b = s.add_flow(0, &[0, 1], 10.0, 1);
        let c = s.add_flow(0, &[1], 95.0, 2);
        let done = run_to_end(&mut s);
        let end = |f| done.iter().find(|&&(_, g)| g == f).map(|&(t, _)| t);
        assert_eq!(end(c), Some(1_000_000_000));
        assert_eq!(end(a), Some(2_000_000_000));
        assert_eq!(end(b), Some(2_000_000_000));
    }

    /// Max-min fair rates from scratch (flows with repeated links count once per
    /// traversal): freeze, level by level, the flows of every link whose fair share is the
    /// smallest.
    fn reference_rates(caps: &[f64], paths: &[&[u32]]) -> Vec<f64> {
        let mut rate = vec![0.0; paths.len()];
        let mut frozen = vec![false; paths.len()];
        let mut rem = caps.to_vec();
        while frozen.iter().any(|f| !f) {
            let mut users = vec![0usize; caps.len()];
            for (p, _) in paths.iter().zip(&frozen).filter(|(_, f)| !**f) {
                p.iter().for_each(|&l| users[l as usize] += 1);
            }
            let share = |l: usize| rem[l].max(0.0) / users[l] as f64;
            let level = (0..caps.len())
                .filter(|&l| users[l] > 0)
                .map(share)
                .fold(f64::INFINITY, f64::min);
            let tight: Vec<usize> = (0..caps.len())
                .filter(|&l| users[l] > 0 && share(l) <= level * (1.0 + 1e-12))
                .collect();
            for i in 0..paths.len() {
                if !frozen[i] && paths[i].iter().any(|&l| tight.contains(&(l as usize))) {
                    frozen[i] = true;
                    rate[i] = level;
                    paths[i].iter().for_each(|&l| rem[l as usize] -= level);
                }
            }
        }
        rate
    }

    /// End times (s) of flows `(start_s, path, bytes)` with rates re-solved from scratch at
    /// every start and end.
    fn reference_ends(caps: &[f64], flows: &[(f64, Vec<u32>, f64)]) -> Vec<f64> {
        let mut left: Vec<f64> = flows.iter().map(|f| f.2).collect();
        let mut end = vec![f64::NAN; flows.len()];
        let mut t = 0.0;
        loop {
            let live: Vec<usize> = (0..flows.len())
                .filter(|&i| flows[i].0 <= t && end[i].is_nan())
                .collect();
            let next_start = flows
                .iter()
                .map(|f| f.0)
                .filter(|&s| s > t)
                .fold(f64::INFINITY, f64::min);
            if live.is_empty() && next_start.is_infinite() {
                return end;
            }
            let paths: Vec<&[u32]> = live.iter().map(|&i| flows[i].1.as_slice()).collect();
            let rates = reference_rates(caps, &paths);
            let first_end = live
                .iter()
                .zip(&rates)
                .map(|(&i, &r)| t + left[i] / r)
                .fold(f64::INFINITY, f64::min);
            let next = first_end.min(next_start);
            for (&i, &r) in live.iter().zip(&rates) {
                left[i] -= r * (next - t);
                if left[i] <= flows[i].2 * 1e-9 {
                    end[i] = next;
                }
            }
            t = next;
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

        /// The incremental solver (lazy fill keys, components, end events kept for rates that
        /// hold) ends every flow when re-solving everything from scratch at every event does.
        #[test]
        fn incremental_solves_end_flows_as_solving_from_scratch_does(
            caps in proptest::collection::vec(1.0f64..10.0, 1..8),
            flows in proptest::collection::vec(
                (0u64..3, proptest::collection::vec(0u32..8, 1..5), 1.0f64..10.0),
                1..16,
            ),
        ) {
            let n = caps.len() as u32;
            let caps: Vec<f64> = caps.iter().map(|c| c * 1e9).collect();
            // Starts at 0, 0.3 s and 0.6 s; 0.1 to 1 GB each.
            let flows: Vec<(f64, Vec<u32>, f64)> = flows
                .iter()
                .map(|(k, p, b)| (*k as f64 * 0.3, p.iter().map(|l| l % n).collect(), b * 1e8))
                .collect();
            let want = reference_ends(&caps, &flows);

            let mut s = FlowSolver::new(caps.clone());
            let mut order: Vec<usize> = (0..flows.len()).collect();
            order.sort_by(|&a, &b| flows[a].0.total_cmp(&flows[b].0));
            let mut next = 0;
            let mut got = vec![Nanos::MAX; flows.len()];
            let mut out = Vec::new();
            loop {
                let start = order.get(next).map(|&i| (flows[i].0 * 1e9).round() as Nanos);
                let t = match (start, s.next_event()) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => match a.or(b) {
                        Some(t) => t,
                        None => break,
                    },
                };
                while let Some(&i) = order.get(next) {
                    if (flows[i].0 * 1e9).round() as Nanos != t {
                        break;
                    }
                    s.add_flow(t, &flows[i].1, flows[i].2, i as u32);
                    next += 1;
                }
                s.recompute(t);
                out.clear();
                s.pop_finished(t, &mut out);
                for &(_, owner) in &out {
                    got[owner as usize] = t;
                }
                s.recompute(t);
            }
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let g = g as f64 * 1e-9;
                proptest::prop_assert!(
                    (g - w).abs() <= 1e-6 * w + 1e-6,
                    "flow {i}: solver ends at {g} s, from scratch at {w} s"
                );
            }
        }
    }
}
