//! Slow GPUs and degraded links: who is slow, by how much, and the canonical cluster state a
//! step is simulated in.
//!
//! A straggler multiplies its GPU's compute time ([`super::RankSpeeds`]); a degraded
//! link multiplies its GPU's NIC or NVLink bandwidth ([`LinkFaults`], honoured by the
//! network model). Both act inside the replay, so a slow GPU slows its stage and every
//! collective it joins. Transient slowdowns are distinct run-level states (each episode
//! starts and ends at a drawn time), not an average folded into one step.

use rand::RngExt;

use super::RankSpeeds;
use super::rng::{StreamClass, stream};
use super::spec::{LinkFaultSpec, StragglerSpec};
use super::{FaultsError, TransientModel, duration};
use crate::plan::RankGrid;

/// A persistently slow GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Straggler {
    pub gpu: u32,
    /// Compute-time multiplier (> 1 is slower).
    pub factor: f64,
}

/// Per-GPU bandwidth factors of the links a GPU drives (1.0 = healthy, 0.5 = half rate).
///
/// Interface for network models: a collective runs at the bandwidth of its slowest member,
/// so a model scales its NVLink term by [`LinkFaults::slowest`]'s first value and its NIC
/// term by the second (the analytic network does exactly that; a contention model can
/// instead scale the capacity of each GPU's NIC/NVLink port by
/// [`LinkFaults::nic_factor`]/[`LinkFaults::nvlink_factor`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFaults {
    nic: Vec<f32>,
    nvlink: Vec<f32>,
}

impl LinkFaults {
    pub fn none() -> Self {
        LinkFaults::default()
    }

    /// GPUs with any degraded link, ascending.
    pub fn degraded_gpus(&self) -> Vec<u32> {
        let n = self.nic.len().max(self.nvlink.len());
        (0..n as u32)
            .filter(|&g| self.nic_factor(g) != 1.0 || self.nvlink_factor(g) != 1.0)
            .collect()
    }

    /// True when every link runs at full rate.
    pub fn is_empty(&self) -> bool {
        self.nic.is_empty() && self.nvlink.is_empty()
    }

    pub fn set_nic(&mut self, world: u32, gpu: u32, factor: f64) {
        set(&mut self.nic, world, gpu, factor);
    }

    pub fn set_nvlink(&mut self, world: u32, gpu: u32, factor: f64) {
        set(&mut self.nvlink, world, gpu, factor);
    }

    pub fn nic_factor(&self, gpu: u32) -> f64 {
        self.nic.get(gpu as usize).map_or(1.0, |&f| f as f64)
    }

    pub fn nvlink_factor(&self, gpu: u32) -> f64 {
        self.nvlink.get(gpu as usize).map_or(1.0, |&f| f as f64)
    }

    /// (NVLink factor, NIC factor) of the slowest member of a group.
    pub fn slowest(&self, members: &[u32]) -> (f64, f64) {
        let min = |v: &[f32]| {
            if v.is_empty() {
                return 1.0;
            }
            members
                .iter()
                .filter_map(|&m| v.get(m as usize))
                .fold(1.0f32, |a, &b| a.min(b)) as f64
        };
        (min(&self.nvlink), min(&self.nic))
    }
}

fn set(v: &mut Vec<f32>, world: u32, gpu: u32, factor: f64) {
    if v.is_empty() {
        *v = vec![1.0; world as usize];
    }
    if let Some(x) = v.get_mut(gpu as usize) {
        *x = x.min(factor as f32);
    }
}

fn check_factor(field: String, lo: f64, hi: Option<f64>) -> Result<(f64, f64), FaultsError> {
    let hi = hi.unwrap_or(lo);
    if !(lo.is_finite() && hi.is_finite() && lo >= 1.0 && hi >= lo) {
        return Err(FaultsError::new(
            field,
            format!(
                "slowdown must be >= 1 and slowdown_max >= slowdown, got slowdown {} and \
                 slowdown_max {}",
                crate::units::short_num(lo),
                crate::units::short_num(hi)
            ),
        ));
    }
    Ok((lo, hi))
}

fn check_ranks(field: &str, ranks: &[u32], world: u32) -> Result<(), FaultsError> {
    match ranks.iter().find(|&&r| r >= world) {
        Some(r) => Err(FaultsError::new(
            format!("{field}.ranks"),
            format!("rank {r} is outside the job's {world} GPUs"),
        )),
        None => Ok(()),
    }
}

/// Persistent stragglers: explicit ranks plus, for a `fraction`, each GPU's own stream
/// deciding whether it is slow and how slow. Transient entries are skipped.
pub fn persistent(
    specs: &[StragglerSpec],
    seed: u64,
    world: u32,
) -> Result<Vec<Straggler>, FaultsError> {
    let mut out = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let field = format!("faults.stragglers[{i}]");
        let (lo, hi) = check_factor(format!("{field}.slowdown"), s.slowdown, s.slowdown_max)?;
        check_ranks(&field, &s.ranks, world)?;
        if !(0.0..=1.0).contains(&s.fraction) {
            return Err(FaultsError::new(
                format!("{field}.fraction"),
                format!(
                    "must be in [0, 1], got {}",
                    crate::units::short_num(s.fraction)
                ),
            ));
        }
        if s.rate_per_gpu_day > 0.0 {
            continue;
        }
        for &gpu in &s.ranks {
            out.push(Straggler { gpu, factor: lo });
        }
        if s.fraction > 0.0 {
            for gpu in 0..world {
                let mut rng = stream(
                    seed,
                    StreamClass::Straggler,
                    ((i as u64) << 40) | gpu as u64,
                );
                let (u, v): (f64, f64) = (rng.random(), rng.random());
                if u < s.fraction {
                    out.push(Straggler {
                        gpu,
                        factor: lo + (hi - lo) * v,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Transient slowdown processes (entries with `rate_per_gpu_day` > 0).
pub fn transients(specs: &[StragglerSpec]) -> Result<Vec<TransientModel>, FaultsError> {
    let mut out = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        if s.rate_per_gpu_day <= 0.0 {
            continue;
        }
        let field = format!("faults.stragglers[{i}]");
        if !s.rate_per_gpu_day.is_finite() {
            return Err(FaultsError::new(
                format!("{field}.rate_per_gpu_day"),
                "must be finite",
            ));
        }
        let factor = check_factor(format!("{field}.slowdown"), s.slowdown, s.slowdown_max)?;
        out.push(TransientModel {
            mean_gap_s: 86_400.0 / s.rate_per_gpu_day,
            duration_s: duration(&format!("{field}.duration"), &s.duration)?,
            factor,
        });
    }
    Ok(out)
}

/// Effective bandwidth factor of one link spec: degradation times the fraction of time up
/// (flapping applies to the NIC link only).
fn link_factor(
    entry: &str,
    key: &str,
    base: f64,
    s: &LinkFaultSpec,
    flaps: bool,
) -> Result<f64, FaultsError> {
    if !(base > 0.0 && base <= 1.0) {
        return Err(FaultsError::new(
            format!("{entry}.{key}"),
            format!(
                "bandwidth factors must be in (0, 1], got {}",
                crate::units::short_num(base)
            ),
        ));
    }
    if !flaps {
        return Ok(base);
    }
    let up = match (&s.flap_period, &s.flap_down) {
        (Some(p), Some(d)) => {
            let p = duration(&format!("{entry}.flap_period"), p)?;
            let d = duration(&format!("{entry}.flap_down"), d)?;
            if p <= 0.0 || d >= p {
                return Err(FaultsError::new(
                    format!("{entry}.flap_down"),
                    format!(
                        "must be shorter than flap_period, got flap_down {} and flap_period {}",
                        crate::units::format_duration(d),
                        crate::units::format_duration(p)
                    ),
                ));
            }
            1.0 - d / p
        }
        (None, None) => 1.0,
        _ => {
            return Err(FaultsError::new(
                entry,
                "give both flap_period and flap_down",
            ));
        }
    };
    Ok(base * up)
}

/// Degraded links: explicit ranks plus a seeded random `fraction` of GPUs.
pub fn link_faults(
    specs: &[LinkFaultSpec],
    seed: u64,
    world: u32,
) -> Result<LinkFaults, FaultsError> {
    let mut lf = LinkFaults::none();
    for (i, s) in specs.iter().enumerate() {
        let field = format!("faults.links[{i}]");
        check_ranks(&field, &s.ranks, world)?;
        let nic = link_factor(&field, "nic_factor", s.nic_factor, s, true)?;
        let nvl = link_factor(&field, "nvlink_factor", s.nvlink_factor, s, false)?;
        let mut apply = |gpu: u32| {
            if nic < 1.0 {
                lf.set_nic(world, gpu, nic);
            }
            if nvl < 1.0 {
                lf.set_nvlink(world, gpu, nvl);
            }
        };
        s.ranks.iter().for_each(|&g| apply(g));
        if s.fraction > 0.0 {
            for gpu in 0..world {
                let u: f64 = stream(
                    seed,
                    StreamClass::LinkFault,
                    ((i as u64) << 40) | gpu as u64,
                )
                .random();
                if u < s.fraction {
                    apply(gpu);
                }
            }
        }
    }
    Ok(lf)
}

/// Factor quantised to whole percent (the cache key resolution).
fn pct(f: f64) -> u16 {
    (f * 100.0).round().clamp(1.0, 60_000.0) as u16
}

/// A canonical cluster state for step simulation, used as a cache key.
///
/// By the symmetry of a stage's ranks under TP and DP, what matters is, per pipeline stage,
/// the slowest GPU's factor and the worst NIC/NVLink factor (in whole percent). The state is
/// simulated with one representative rank per stage carrying them: exact for one straggler
/// per stage, and an approximation (the slowest member sets the pace) for several.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepState {
    /// Per stage, compute slowdown in percent (100 = healthy); empty = all healthy.
    pub slow_pct: Vec<u16>,
    /// Per stage, worst NIC bandwidth factor in percent; empty = all healthy.
    pub nic_pct: Vec<u16>,
    /// Per stage, worst NVLink bandwidth factor in percent; empty = all healthy.
    pub nvlink_pct: Vec<u16>,
}

impl StepState {
    pub fn healthy() -> Self {
        StepState::default()
    }

    pub fn is_healthy(&self) -> bool {
        self.slow_pct.is_empty() && self.nic_pct.is_empty() && self.nvlink_pct.is_empty()
    }

    /// The state with `slow` GPUs (gpu, factor) and degraded `links`.
    pub fn new(
        slow: impl IntoIterator<Item = (u32, f64)>,
        links: &LinkFaults,
        grid: &RankGrid,
    ) -> Self {
        let stages = (grid.world() / grid.stage_size().max(1)) as usize;
        let mut slow_pct = vec![100u16; stages];
        for (gpu, f) in slow {
            let st = grid.stage_of(gpu) as usize;
            if let Some(x) = slow_pct.get_mut(st) {
                *x = (*x).max(pct(f));
            }
        }
        let worst = |f: &dyn Fn(u32) -> f64| {
            let mut v = vec![100u16; stages];
            if !links.is_empty() {
                for gpu in 0..grid.world() {
                    let st = grid.stage_of(gpu) as usize;
                    v[st] = v[st].min(pct(f(gpu)));
                }
            }
            v
        };
        let nic_pct = worst(&|g| links.nic_factor(g));
        let nvlink_pct = worst(&|g| links.nvlink_factor(g));
        let clear = |v: Vec<u16>| {
            if v.iter().all(|&x| x == 100) {
                Vec::new()
            } else {
                v
            }
        };
        StepState {
            slow_pct: clear(slow_pct),
            nic_pct: clear(nic_pct),
            nvlink_pct: clear(nvlink_pct),
        }
    }

    /// This state with extra slow GPUs (gpu, factor) on top.
    pub fn with_slow(&self, slow: impl IntoIterator<Item = (u32, f64)>, grid: &RankGrid) -> Self {
        let stages = (grid.world() / grid.stage_size().max(1)) as usize;
        let mut s = self.clone();
        for (gpu, f) in slow {
            if s.slow_pct.is_empty() {
                s.slow_pct = vec![100; stages];
            }
            if let Some(x) = s.slow_pct.get_mut(grid.stage_of(gpu) as usize) {
                *x = (*x).max(pct(f));
            }
        }
        if s.slow_pct.iter().all(|&x| x == 100) {
            s.slow_pct.clear();
        }
        s
    }

    /// Per-rank speeds for the engine: stage `s`'s first rank carries the stage's factor.
    pub fn rank_speeds(&self, grid: &RankGrid) -> RankSpeeds {
        let mut sp = RankSpeeds::uniform();
        for (st, &p) in self.slow_pct.iter().enumerate() {
            if p != 100 {
                sp.set(
                    grid.world(),
                    st as u32 * grid.stage_size(),
                    p as f32 / 100.0,
                );
            }
        }
        sp
    }

    /// Link factors for the network: stage `s`'s first rank carries the stage's worst links.
    pub fn link_faults(&self, grid: &RankGrid) -> LinkFaults {
        let mut lf = LinkFaults::none();
        for (st, &p) in self.nic_pct.iter().enumerate() {
            if p != 100 {
                lf.set_nic(
                    grid.world(),
                    st as u32 * grid.stage_size(),
                    p as f64 / 100.0,
                );
            }
        }
        for (st, &p) in self.nvlink_pct.iter().enumerate() {
            if p != 100 {
                lf.set_nvlink(
                    grid.world(),
                    st as u32 * grid.stage_size(),
                    p as f64 / 100.0,
                );
            }
        }
        lf
    }

    /// The slowest compute factor anywhere.
    pub fn max_slowdown(&self) -> f64 {
        self.slow_pct.iter().copied().max().unwrap_or(100) as f64 / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;

    #[test]
    fn fraction_stragglers_are_seeded_and_near_the_fraction() {
        let spec = vec![StragglerSpec {
            fraction: 0.05,
            slowdown: 1.1,
            slowdown_max: Some(1.3),
            ..Default::default()
        }];
        let a = persistent(&spec, 3, 16_384).unwrap();
        let b = persistent(&spec, 3, 16_384).unwrap();
        assert_eq!(a, b);
        let frac = a.len() as f64 / 16_384.0;
        assert!((frac - 0.05).abs() < 0.01, "{frac}");
        assert!(a.iter().all(|s| (1.1..=1.3).contains(&s.factor)));
    }

    #[test]
    fn state_keeps_worst_per_stage() {
        let s = toy_scenario(8, 4, 2, 8, 8);
        let grid = RankGrid::new(&s.parallelism);
        let mut lf = LinkFaults::none();
        lf.set_nic(64, 20, 0.5);
        let st = StepState::new([(3, 1.2), (5, 1.5), (40, 1.1)], &lf, &grid);
        assert_eq!(st.slow_pct, vec![150, 100, 110, 100]);
        // 16 ranks per stage: GPU 20 is in stage 1, carried by its first rank, 16.
        assert_eq!(st.nic_pct, vec![100, 50, 100, 100]);
        assert!(st.nvlink_pct.is_empty());
        assert_eq!(st.link_faults(&grid).nic_factor(16), 0.5);
        assert!(StepState::new([], &LinkFaults::none(), &grid).is_healthy());
    }

    #[test]
    fn flapping_link_gives_expected_bandwidth() {
        let spec = vec![LinkFaultSpec {
            ranks: vec![2],
            nic_factor: 0.5,
            flap_period: Some("10m".into()),
            flap_down: Some("1m".into()),
            ..Default::default()
        }];
        let lf = link_faults(&spec, 0, 8).unwrap();
        assert!((lf.nic_factor(2) - 0.45).abs() < 1e-6);
        assert_eq!(lf.nvlink_factor(2), 1.0);
        assert_eq!(lf.slowest(&[0, 1, 2]), (1.0, lf.nic_factor(2)));
    }
}
