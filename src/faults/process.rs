//! Failure processes: when each component of the job fails.
//!
//! Every component is a renewal process on the wall clock (a failed part is replaced and
//! starts a fresh lifetime), drawing inter-arrival times from its own seeded stream. The
//! superposition is produced lazily, in time order, through a min-heap keyed by
//! (time, class, index), so a run of any length costs `O(components + failures · log n)`.
//! Failure times depend only on the seed and the fault model: never on what the job does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::RngExt;
use rand_distr::{Distribution as _, Exp1, Weibull};

use super::rng::{FaultRng, StreamClass, stream};
use super::{ClassModel, ComponentClass, FaultModel};

/// One component failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Failure {
    pub time_s: f64,
    pub class: ComponentClass,
    pub index: u64,
    /// The node the component belongs to (`None` for switches).
    pub node: Option<u64>,
    /// Nodes the failure takes out of the job (a switch takes every node on its links).
    pub blast_nodes: u64,
}

/// Total order on non-negative times (their IEEE bit patterns sort as the values do).
fn time_key(t: f64) -> u64 {
    t.max(0.0).to_bits()
}

/// Draws one inter-arrival time with the given mean.
pub fn draw_interval(rng: &mut FaultRng, mean_s: f64, weibull_shape: Option<f64>) -> f64 {
    match weibull_shape {
        Some(k) => {
            let scale = mean_s / gamma(1.0 + 1.0 / k);
            match Weibull::new(scale, k) {
                Ok(w) => w.sample(rng),
                Err(_) => f64::INFINITY,
            }
        }
        None => {
            let e: f64 = Exp1.sample(rng);
            e * mean_s
        }
    }
}

/// Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15).
pub fn gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
}

/// The lazily merged failure stream of every component of the job.
#[derive(Debug, Clone)]
pub struct FailureProcess {
    classes: Vec<ClassModel>,
    /// First flat index of each class.
    offsets: Vec<u64>,
    rngs: Vec<FaultRng>,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    lemon: Vec<bool>,
    node_failures: Vec<u32>,
    lemon_multiplier: f64,
    lemon_removed_after: u32,
}

impl FailureProcess {
    pub fn new(model: &FaultModel) -> Self {
        let classes: Vec<ClassModel> = model.classes.clone();
        let mut offsets = Vec::with_capacity(classes.len());
        let mut total = 0u64;
        for c in &classes {
            offsets.push(total);
            total += c.count;
        }
        let lemon = model.lemon_nodes();
        let mut p = FailureProcess {
            classes,
            offsets,
            rngs: Vec::with_capacity(total as usize),
            heap: BinaryHeap::with_capacity(total as usize),
            node_failures: vec![0; lemon.len()],
            lemon,
            lemon_multiplier: model.lemons.rate_multiplier.max(1.0),
            lemon_removed_after: model.lemons.removed_after,
        };
        for ci in 0..p.classes.len() {
            let class = p.classes[ci].class;
            for i in 0..p.classes[ci].count {
                p.rngs.push(stream(model.seed, class.stream(), i));
                let flat = p.offsets[ci] + i;
                p.schedule(ci, flat, 0.0);
            }
        }
        p
    }

    fn is_lemon(&self, node: Option<u64>) -> bool {
        node.is_some_and(|n| self.lemon.get(n as usize).copied().unwrap_or(false))
    }

    fn schedule(&mut self, ci: usize, flat: u64, now: f64) {
        let c = &self.classes[ci];
        let node = c.node_of(flat - self.offsets[ci]);
        let mut mean = c.mean_s;
        if self.is_lemon(node) {
            mean /= self.lemon_multiplier;
        }
        let shape = c.weibull_shape;
        let dt = draw_interval(&mut self.rngs[flat as usize], mean, shape);
        if dt.is_finite() {
            self.heap.push(Reverse((time_key(now + dt), flat)));
        }
    }

    /// Time of the next failure, if any component can still fail.
    pub fn peek_time(&self) -> Option<f64> {
        self.heap.peek().map(|Reverse((t, _))| f64::from_bits(*t))
    }

    /// Pops the next failure and draws that component's next lifetime.
    pub fn next_failure(&mut self) -> Option<Failure> {
        let Reverse((tk, flat)) = self.heap.pop()?;
        let time_s = f64::from_bits(tk);
        let ci = self.offsets.partition_point(|&o| o <= flat) - 1;
        let c = &self.classes[ci];
        let index = flat - self.offsets[ci];
        let node = c.node_of(index);
        let failure = Failure {
            time_s,
            class: c.class,
            index,
            node,
            blast_nodes: c.blast_nodes,
        };
        self.note_lemon_failure(node);
        self.schedule(ci, flat, time_s);
        Some(failure)
    }

    /// Counts a failure on a node; a lemon seen failing often enough is swapped for good.
    fn note_lemon_failure(&mut self, node: Option<u64>) {
        let Some(n) = node.map(|n| n as usize) else {
            return;
        };
        if n >= self.lemon.len() || !self.lemon[n] {
            return;
        }
        self.node_failures[n] += 1;
        if self.lemon_removed_after > 0 && self.node_failures[n] >= self.lemon_removed_after {
            self.lemon[n] = false;
        }
    }

    /// Whether node `n` is (still) a lemon.
    pub fn node_is_lemon(&self, n: u64) -> bool {
        self.is_lemon(Some(n))
    }
}

/// A transient slowdown episode of one GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    pub start_s: f64,
    pub end_s: f64,
    pub gpu: u32,
    pub factor: f64,
}

/// Transient straggler episodes of every GPU, merged lazily in start order.
#[derive(Debug, Clone)]
pub struct EpisodeProcess {
    rngs: Vec<FaultRng>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    mean_gap_s: f64,
    duration_s: f64,
    factor: (f64, f64),
}

impl EpisodeProcess {
    /// `group` distinguishes several transient specs (it offsets the stream index).
    pub fn new(seed: u64, group: u64, t: &super::TransientModel, gpus: u32) -> Self {
        let mut p = EpisodeProcess {
            rngs: Vec::with_capacity(gpus as usize),
            heap: BinaryHeap::new(),
            mean_gap_s: t.mean_gap_s,
            duration_s: t.duration_s,
            factor: t.factor,
        };
        if !(t.mean_gap_s.is_finite() && t.mean_gap_s > 0.0) {
            return p;
        }
        for g in 0..gpus {
            let key = (group << 40) | g as u64;
            let mut rng = stream(seed, StreamClass::Transient, key);
            let dt = draw_interval(&mut rng, p.mean_gap_s, None);
            p.rngs.push(rng);
            p.heap.push(Reverse((time_key(dt), g)));
        }
        p
    }

    pub fn peek_time(&self) -> Option<f64> {
        self.heap.peek().map(|Reverse((t, _))| f64::from_bits(*t))
    }

    /// Pops the next episode (start, duration, factor) and schedules that GPU's next one
    /// after it ends.
    pub fn next_episode(&mut self) -> Option<Episode> {
        let Reverse((tk, gpu)) = self.heap.pop()?;
        let start_s = f64::from_bits(tk);
        let rng = &mut self.rngs[gpu as usize];
        let (lo, hi) = self.factor;
        let u: f64 = rng.random();
        let factor = lo + (hi - lo) * u;
        let end_s = start_s + self.duration_s;
        let gap = draw_interval(rng, self.mean_gap_s, None);
        self.heap.push(Reverse((time_key(end_s + gap), gpu)));
        Some(Episode {
            start_s,
            end_s,
            gpu,
            factor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_failures(lemons: super::super::LemonSpec, horizon_s: f64) -> usize {
        let s = crate::fixtures::toy_scenario(8, 1, 8, 8, 8);
        let mut f = super::super::FaultsSpec::default();
        let off = super::super::ClassSpec {
            per_1000_node_days: Some(0.0),
            ..Default::default()
        };
        f.failures.gpu = off.clone();
        f.failures.gpu_memory = off.clone();
        f.failures.nic = off.clone();
        f.failures.link = off.clone();
        f.failures.switch = off;
        f.failures.node.mtbf = Some("1000h".into());
        f.failures.lemons = lemons;
        let m = FaultModel::resolve(&f, &s.cluster, 64).unwrap();
        let mut p = FailureProcess::new(&m);
        std::iter::from_fn(|| p.next_failure())
            .take_while(|x| x.time_s < horizon_s)
            .count()
    }

    #[test]
    fn lemons_fail_more_until_removed() {
        use super::super::LemonSpec;
        let horizon = 1000.0 * 3600.0 * 200.0; // 200 MTBFs per node, 8 nodes
        let base = count_failures(LemonSpec::default(), horizon) as f64;
        let all_lemons = |removed_after| LemonSpec {
            fraction: 1.0,
            rate_multiplier: 5.0,
            removed_after,
        };
        let never = count_failures(all_lemons(0), horizon) as f64;
        assert!((never / base / 5.0 - 1.0).abs() < 0.1, "{never} vs {base}");
        // Swapped after 3 failures: at most 3 extra-fast failures per node.
        let removed = count_failures(all_lemons(3), horizon) as f64;
        assert!((removed - base).abs() < 0.15 * base, "{removed} vs {base}");
    }

    #[test]
    fn gamma_matches_known_values() {
        assert!((gamma(1.0) - 1.0).abs() < 1e-12);
        assert!((gamma(5.0) - 24.0).abs() < 1e-10);
        assert!((gamma(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-12);
        assert!((gamma(1.5) - 0.886_226_925_452_758).abs() < 1e-12);
    }

    #[test]
    fn weibull_draws_keep_the_mean() {
        let mut rng = stream(1, StreamClass::Gpu, 0);
        let n = 200_000;
        for shape in [0.7, 1.0, 2.0] {
            let mean: f64 = (0..n)
                .map(|_| draw_interval(&mut rng, 100.0, Some(shape)))
                .sum::<f64>()
                / n as f64;
            assert!((mean / 100.0 - 1.0).abs() < 0.02, "shape {shape}: {mean}");
        }
    }
}
