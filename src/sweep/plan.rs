//! Parallelism plan search: enumerate plans for a scenario's model and cluster, drop those
//! that do not fit in memory, rank the rest with the fast mode, replay the top K in full.
//!
//! Searched: TP, PP, DP, EP, CP (when asked), micro-batch, schedule (1F1B, interleaved
//! with virtual stages, ZB-H1, ZB-H2, DualPipe), recompute and ZeRO stage (0–3). Everything else (precision, sequence parallel,
//! overlap switches, flash attention) stays as the scenario sets it: those describe the
//! training framework, not the layout. Pure apart from rayon parallelism; results are
//! deterministic (ties broken by a fixed key).

use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

use super::fast::{self, FastEstimate};
use super::memory::{self, MemoryEstimate};
use crate::config::Scenario;
use crate::engine::EngineError;
use crate::network::AnalyticNetwork;
use crate::plan::{Recompute, ScheduleKind};
use crate::sim::{self, StepOptions};

#[derive(Debug, Error)]
pub enum PlanError {
    #[error("no plan fits: {evaluated} plans evaluated, none fits in {capacity_gb} GB per GPU")]
    NothingFits { evaluated: usize, capacity_gb: f64 },
    #[error("no valid plan for {gpus} GPUs (check global_batch, layers and heads)")]
    NoCandidates { gpus: u64 },
    #[error("replaying a plan: {0}")]
    Engine(#[from] EngineError),
}

/// One point of the plan space: the fields the search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlanPoint {
    pub tp: u64,
    pub pp: u64,
    pub dp: u64,
    pub ep: u64,
    pub cp: u64,
    pub micro_batch: u64,
    pub schedule: ScheduleKind,
    pub virtual_stages: u64,
    pub recompute: Recompute,
    pub zero: u8,
}

impl PlanPoint {
    /// The plan of a scenario as it stands.
    pub fn of(s: &Scenario) -> Self {
        let p = &s.parallelism;
        PlanPoint {
            tp: p.tp,
            pp: p.pp,
            dp: p.dp,
            ep: p.ep,
            cp: p.cp,
            micro_batch: s.training.micro_batch,
            schedule: p.schedule,
            virtual_stages: p.virtual_stages,
            recompute: s.training.recompute,
            zero: p.zero,
        }
    }

    /// Writes this plan into a scenario (everything else untouched).
    pub fn apply(&self, s: &mut Scenario) {
        let p = &mut s.parallelism;
        p.tp = self.tp;
        p.pp = self.pp;
        p.dp = self.dp;
        p.ep = self.ep;
        p.cp = self.cp;
        p.schedule = self.schedule;
        p.virtual_stages = self.virtual_stages;
        p.zero = self.zero;
        p.stage_layers = None;
        // Megatron's split switches carry over to plans where they still give a layout
        // (e.g. the embedding/loss slots of a PP16 interleaved plan); elsewhere the split
        // is the even one.
        let chunks = crate::pricing::inputs::model_chunks(p);
        if crate::plan::pipeline_layout(s.model.layers, p, chunks).is_err()
            || p.schedule == crate::plan::ScheduleKind::Dualpipe
        {
            p.split = crate::plan::PipelineSplit::default();
        }
        s.training.micro_batch = self.micro_batch;
        s.training.recompute = self.recompute;
    }

    pub fn applied(&self, base: &Scenario) -> Scenario {
        let mut s = base.clone();
        self.apply(&mut s);
        s
    }

    /// `--set` overrides that turn a scenario file into this plan.
    pub fn overrides(&self) -> Vec<String> {
        vec![
            format!("parallelism.tp={}", self.tp),
            format!("parallelism.pp={}", self.pp),
            format!("parallelism.dp={}", self.dp),
            format!("parallelism.ep={}", self.ep),
            format!("parallelism.cp={}", self.cp),
            format!("parallelism.schedule={}", schedule_name(self.schedule)),
            format!("parallelism.virtual_stages={}", self.virtual_stages),
            format!("parallelism.zero={}", self.zero),
            format!("training.micro_batch={}", self.micro_batch),
            format!("training.recompute={}", recompute_name(self.recompute)),
        ]
    }

    /// A short label, e.g. `tp8 pp8 dp16 mb1 interleaved/4 selective z1`.
    pub fn label(&self) -> String {
        let mut s = format!("tp{} pp{} dp{}", self.tp, self.pp, self.dp);
        if self.ep > 1 {
            s += &format!(" ep{}", self.ep);
        }
        if self.cp > 1 {
            s += &format!(" cp{}", self.cp);
        }
        s += &format!(" mb{} {}", self.micro_batch, schedule_name(self.schedule));
        if self.schedule == ScheduleKind::Interleaved {
            s += &format!("/{}", self.virtual_stages);
        }
        s + &format!(" {} z{}", recompute_name(self.recompute), self.zero)
    }

    /// Tie-break key: simpler plans first (fewer pipeline stages, lower ZeRO stage, less
    /// recompute, no interleaving).
    fn tie_key(&self) -> (u8, u64, u64, u64, u64, u64, u64, u64) {
        let rc = match self.recompute {
            Recompute::None => 0,
            Recompute::Selective => 1,
            Recompute::Full => 2,
        };
        let schedule = match self.schedule {
            ScheduleKind::OneFOneB => 0,
            ScheduleKind::ZbH1 => 1,
            ScheduleKind::Interleaved => 2,
            ScheduleKind::ZbH2 => 3,
            _ => 4,
        };
        (
            self.zero,
            rc,
            schedule,
            self.virtual_stages,
            self.pp,
            self.tp,
            self.cp,
            self.micro_batch,
        )
    }
}

pub fn schedule_name(k: ScheduleKind) -> &'static str {
    match k {
        ScheduleKind::Gpipe => "gpipe",
        ScheduleKind::OneFOneB => "1f1b",
        ScheduleKind::Interleaved => "interleaved",
        ScheduleKind::ZbH1 => "zb-h1",
        ScheduleKind::ZbH2 => "zb-h2",
        ScheduleKind::Dualpipe => "dualpipe",
    }
}

pub fn recompute_name(r: Recompute) -> &'static str {
    match r {
        Recompute::None => "none",
        Recompute::Selective => "selective",
        Recompute::Full => "full",
    }
}

/// The values each searched field may take; plans are their valid combinations.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    pub tp: Vec<u64>,
    pub pp: Vec<u64>,
    pub cp: Vec<u64>,
    pub ep: Vec<u64>,
    pub micro_batch: Vec<u64>,
    /// Pipeline schedules to try when there is more than one stage (1F1B always).
    pub schedules: Vec<ScheduleKind>,
    /// Virtual stages to try with the interleaved schedule.
    pub virtual_stages: Vec<u64>,
    pub recompute: Vec<Recompute>,
    pub zero: Vec<u8>,
}

fn powers_of_two(max: u64) -> Vec<u64> {
    (0..20)
        .map(|i| 1u64 << i)
        .take_while(|&v| v <= max)
        .collect()
}

impl SearchSpace {
    /// Defaults for a scenario: TP powers of two within an NVLink domain that divide the
    /// heads; PP any divisor of the layers up to 64; EP powers of two dividing the experts
    /// for MoE models; micro-batches 1–8; schedules 1F1B, interleaved (2–8 virtual
    /// stages), ZB-H1, ZB-H2 and DualPipe (even pp, at least 2pp micro-batches, ZeRO
    /// below 3); all recompute policies; ZeRO 0–3 (the generator models
    /// ZeRO-3's per-layer parameter gathers; ZeRO-2 communicates as ZeRO-1 does, with less
    /// memory). CP stays as the scenario has it: the op graph has no CP communication
    /// (ring-attention KV exchange) yet, so searching it would flatter it; ask for it
    /// explicitly with `--cp`.
    pub fn for_scenario(s: &Scenario) -> Self {
        let m = &s.model;
        let domain = s
            .cluster
            .node
            .nvlink_domain
            .max(1)
            .min(s.cluster.node.gpus.max(1));
        let tp = powers_of_two(domain)
            .into_iter()
            .filter(|t| {
                m.heads.is_multiple_of(*t)
                    && (m.kv_heads.is_multiple_of(*t) || t.is_multiple_of(m.kv_heads))
            })
            .collect();
        // Divisors of the layer count, and the powers of two (which tile power-of-two
        // clusters) even where they do not divide it: an uneven split (Megatron's, or
        // the scenario's embedding/loss slots, [`crate::plan::pipeline_layout`]).
        let pp = (1..=m.layers.min(64))
            .filter(|p| m.layers.is_multiple_of(*p) || p.is_power_of_two())
            .collect();
        let mut cp = vec![1];
        if s.parallelism.cp > 1 {
            cp.push(s.parallelism.cp);
        }
        let ep = match &m.moe {
            Some(moe) => powers_of_two(moe.experts.min(64))
                .into_iter()
                .filter(|e| moe.experts % e == 0)
                .collect(),
            None => vec![1],
        };
        SearchSpace {
            tp,
            pp,
            cp,
            ep,
            micro_batch: vec![1, 2, 4, 8],
            schedules: vec![
                ScheduleKind::OneFOneB,
                ScheduleKind::Interleaved,
                ScheduleKind::ZbH1,
                ScheduleKind::ZbH2,
                ScheduleKind::Dualpipe,
            ],
            virtual_stages: vec![2, 3, 4, 6, 8],
            recompute: vec![Recompute::None, Recompute::Selective, Recompute::Full],
            zero: vec![0, 1, 2, 3],
        }
    }
}

/// The grid shape of a candidate before the per-plan switches: `(tp, cp, pp, dp)`.
type Layout = (u64, u64, u64, u64);

/// `(tp, cp, pp, dp)` cells that tile `gpus` and split the sequence and global batch.
fn layouts<'a>(
    s: &'a Scenario,
    space: &'a SearchSpace,
    gpus: u64,
) -> impl Iterator<Item = Layout> + 'a {
    let (seq, gb) = (s.training.seq_len, s.training.global_batch);
    space
        .tp
        .iter()
        .flat_map(move |&tp| space.cp.iter().map(move |&cp| (tp, cp)))
        .flat_map(move |(tp, cp)| space.pp.iter().map(move |&pp| (tp, cp, pp)))
        .filter(move |&(tp, cp, pp)| {
            let cell = tp * cp * pp;
            cell > 0 && gpus.is_multiple_of(cell) && cp > 0 && seq.is_multiple_of(cp)
        })
        .map(move |(tp, cp, pp)| (tp, cp, pp, gpus / (tp * cp * pp)))
        .filter(move |&(.., dp)| dp > 0 && gb.is_multiple_of(dp))
}

/// Whether `v` chunks per stage over `pp` stages give a layer split: the scenario's
/// Megatron split switches (embedding/loss slots, first/last stage counts) or the even
/// split, as [`PlanPoint::apply`] lays them out.
fn interleaved_split_ok(s: &Scenario, pp: u64, v: u64) -> bool {
    let mut p = s.parallelism.clone();
    p.pp = pp;
    p.schedule = ScheduleKind::Interleaved;
    p.virtual_stages = v;
    p.stage_layers = None;
    let layers = s.model.layers;
    crate::plan::pipeline_layout(layers, &p, v).is_ok()
        || (layers.is_multiple_of(pp * v) && layers / pp >= v)
}

/// Schedules (with virtual stages) valid for `pp` stages and `m` micro-batches.
fn schedules(space: &SearchSpace, s: &Scenario, pp: u64, m: u64) -> Vec<(ScheduleKind, u64)> {
    let mut out = vec![(ScheduleKind::OneFOneB, 1)];
    if pp <= 1 {
        return out;
    }
    for &kind in &space.schedules {
        match kind {
            ScheduleKind::Interleaved if m.is_multiple_of(pp) => out.extend(
                space
                    .virtual_stages
                    .iter()
                    .filter(|&&v| interleaved_split_ok(s, pp, v))
                    .map(|&v| (kind, v)),
            ),
            ScheduleKind::ZbH1 | ScheduleKind::ZbH2 | ScheduleKind::Gpipe => out.push((kind, 1)),
            // DualPipe's reference asserts an even pipeline and an even number of
            // micro-batches, at least twice the stages (`DualPipe.step`).
            ScheduleKind::Dualpipe
                if pp.is_multiple_of(2) && m.is_multiple_of(2) && m >= 2 * pp =>
            {
                out.push((kind, 1))
            }
            _ => {}
        }
    }
    out
}

/// Every valid plan of the space for `gpus` GPUs, in a fixed order: layouts, then EP,
/// micro-batch, schedule, recompute and ZeRO stage (the last varying fastest).
pub fn candidates(s: &Scenario, space: &SearchSpace, gpus: u64) -> Vec<PlanPoint> {
    let gb = s.training.global_batch;
    let base = |(tp, cp, pp, dp): Layout| {
        let eps = space
            .ep
            .iter()
            .filter(move |&&e| e > 0 && dp.is_multiple_of(e));
        eps.flat_map(move |&ep| {
            space
                .micro_batch
                .iter()
                .filter(move |&&b| b > 0 && (gb / dp).is_multiple_of(b))
                .map(move |&mb| (ep, mb))
        })
        .flat_map(move |(ep, mb)| {
            schedules(space, s, pp, gb / dp / mb)
                .into_iter()
                .map(move |(schedule, v)| PlanPoint {
                    tp,
                    pp,
                    dp,
                    ep,
                    cp,
                    micro_batch: mb,
                    schedule,
                    virtual_stages: v,
                    recompute: Recompute::None,
                    zero: 0,
                })
        })
    };
    layouts(s, space, gpus)
        .flat_map(base)
        .flat_map(|p| {
            space
                .recompute
                .iter()
                .map(move |&recompute| PlanPoint { recompute, ..p })
        })
        .flat_map(|p| space.zero.iter().map(move |&zero| PlanPoint { zero, ..p }))
        .filter(|p| p.zero == 0 || p.dp * p.cp > 1)
        // Fast mode does not compose ZeRO-3's per-layer gathers under DualPipe
        // (`sweep::fast::dualpipe`): such plans are not proposed.
        .filter(|p| !(p.schedule == ScheduleKind::Dualpipe && p.zero >= 3))
        .collect()
}

/// Headline metrics of a full replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayFigures {
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    pub mfu: f64,
    pub bubble_fraction: f64,
    /// Where the step went (exposed communication per kind, idle), seconds.
    pub breakdown_s: crate::sim::Breakdown,
}

/// One evaluated plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub point: PlanPoint,
    pub memory: MemoryEstimate,
    pub fast: FastEstimate,
    pub replay: Option<ReplayFigures>,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    pub gpus: u64,
    pub evaluated: usize,
    pub rejected_memory: usize,
    /// Fitting plans, fastest (fast mode) first; the first `replayed` have replay figures.
    pub rows: Vec<PlanRow>,
    pub replayed: usize,
}

impl PlanReport {
    /// The replayed plan with the shortest replayed step time.
    pub fn best_replayed(&self) -> Option<&PlanRow> {
        self.rows
            .iter()
            .filter(|r| r.replay.is_some())
            .min_by(|a, b| {
                let (x, y) = (a.replay.as_ref().unwrap(), b.replay.as_ref().unwrap());
                x.step_time_s.total_cmp(&y.step_time_s)
            })
    }
}

/// Search options.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub top_k: usize,
    pub space: SearchSpace,
    /// GPUs to use; defaults to the whole cluster.
    pub gpus: Option<u64>,
}

impl PlanOptions {
    pub fn for_scenario(s: &Scenario, top_k: usize) -> Self {
        PlanOptions {
            top_k,
            space: SearchSpace::for_scenario(s),
            gpus: None,
        }
    }
}

/// Memory and fast-mode estimate of one plan.
pub fn evaluate_fast(base: &Scenario, point: &PlanPoint, net: &mut AnalyticNetwork) -> PlanRow {
    let s = point.applied(base);
    PlanRow {
        point: *point,
        memory: memory::estimate(&s),
        fast: fast::estimate(&s, net),
        replay: None,
    }
}

/// Replays a plan in full.
pub fn replay(base: &Scenario, point: &PlanPoint) -> Result<ReplayFigures, EngineError> {
    let s = point.applied(base);
    let r = sim::simulate_step(&s, &StepOptions::default())?;
    let m = r.metrics;
    Ok(ReplayFigures {
        step_time_s: m.step_time_s,
        tokens_per_s: m.tokens_per_s,
        mfu: m.mfu,
        bubble_fraction: m.bubble_fraction,
        breakdown_s: m.breakdown_s,
    })
}

/// Ranks fitting plans by fast-mode step time (ties by the simplicity key).
pub fn rank(rows: &mut [PlanRow]) {
    rows.sort_by(|a, b| {
        a.fast
            .step_time_s
            .total_cmp(&b.fast.step_time_s)
            .then(a.point.tie_key().cmp(&b.point.tie_key()))
    });
}

/// Fast-mode evaluation of every candidate, memory filter and ranking; no replays.
pub fn search_fast(base: &Scenario, opts: &PlanOptions) -> Result<PlanReport, PlanError> {
    let gpus = opts.gpus.unwrap_or_else(|| base.cluster.total_gpus());
    let points = candidates(base, &opts.space, gpus);
    if points.is_empty() {
        return Err(PlanError::NoCandidates { gpus });
    }
    let net = sim::analytic_network(base);
    let all: Vec<PlanRow> = points
        .par_iter()
        // Each worker keeps its own network (it caches the tuner's choices).
        .map_init(|| net.clone(), |net, p| evaluate_fast(base, p, net))
        .collect();
    let evaluated = all.len();
    let mut rows: Vec<PlanRow> = all.into_iter().filter(|r| r.memory.fits).collect();
    if rows.is_empty() {
        return Err(PlanError::NothingFits {
            evaluated,
            capacity_gb: base.cluster.gpu.memory_gb,
        });
    }
    rank(&mut rows);
    Ok(PlanReport {
        gpus,
        evaluated,
        rejected_memory: evaluated - rows.len(),
        rows,
        replayed: 0,
    })
}

/// The full search: fast mode over every plan, then the top K replayed in parallel.
pub fn search(base: &Scenario, opts: &PlanOptions) -> Result<PlanReport, PlanError> {
    let mut report = search_fast(base, opts)?;
    let k = opts.top_k.min(report.rows.len());
    let replays: Vec<Result<ReplayFigures, EngineError>> = report.rows[..k]
        .par_iter()
        .map(|r| replay(base, &r.point))
        .collect();
    for (row, r) in report.rows.iter_mut().zip(replays) {
        row.replay = Some(r?);
    }
    report.replayed = k;
    Ok(report)
}

/// Spearman rank correlation of two equally long samples (average ranks for ties).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0 + 1.0;
            for &k in &idx[i..=j] {
                r[k] = avg;
            }
            i = j + 1;
        }
        r
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let cov: f64 = rx
        .iter()
        .zip(&ry)
        .map(|(a, b)| (a - mean) * (b - mean))
        .sum();
    let vx: f64 = rx.iter().map(|a| (a - mean).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - mean).powi(2)).sum();
    if vx == 0.0 || vy == 0.0 {
        return 0.0;
    }
    cov / (vx * vy).sqrt()
}

/// Columns of `plans.csv`.
pub const PLANS_CSV_HEADER: &str = "rank,tp,pp,dp,ep,cp,micro_batch,schedule,virtual_stages,\
recompute,zero,memory_gb,capacity_gb,fast_step_s,fast_tokens_per_s,fast_mfu,replay_step_s,\
replay_tokens_per_s,replay_mfu,replay_bubble_fraction,overrides";

/// `plans.csv` text: one row per fitting plan, fast-mode order.
pub fn plans_csv(report: &PlanReport) -> String {
    let mut out = String::from(PLANS_CSV_HEADER);
    out.push('\n');
    for (i, r) in report.rows.iter().enumerate() {
        let p = &r.point;
        let (rs, rt, rm, rb) = match &r.replay {
            Some(x) => (
                format!("{:.6}", x.step_time_s),
                format!("{:.1}", x.tokens_per_s),
                format!("{:.4}", x.mfu),
                format!("{:.4}", x.bubble_fraction),
            ),
            None => Default::default(),
        };
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{:.2},{:.1},{:.6},{:.1},{:.4},{},{},{},{},{}\n",
            i + 1,
            p.tp,
            p.pp,
            p.dp,
            p.ep,
            p.cp,
            p.micro_batch,
            schedule_name(p.schedule),
            p.virtual_stages,
            recompute_name(p.recompute),
            p.zero,
            r.memory.most_loaded.total,
            r.memory.capacity,
            r.fast.step_time_s,
            r.fast.tokens_per_s,
            r.fast.mfu,
            rs,
            rt,
            rm,
            rb,
            p.overrides().join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn candidates_respect_divisibility() {
        let s = fixtures::toy_scenario(8, 4, 4, 32, 64);
        let space = SearchSpace::for_scenario(&s);
        let c = candidates(&s, &space, 128);
        assert!(!c.is_empty());
        for p in &c {
            assert_eq!(p.tp * p.pp * p.dp * p.cp, 128);
            assert_eq!(64 % (p.dp * p.micro_batch), 0);
            if p.schedule == ScheduleKind::Interleaved {
                assert_eq!((64 / p.dp / p.micro_batch) % p.pp, 0);
                assert_eq!((32 / p.pp) % p.virtual_stages, 0);
            }
        }
    }

    #[test]
    fn spearman_of_identical_orders_is_one() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn point_round_trips_through_a_scenario() {
        let s = fixtures::toy_scenario(8, 4, 4, 32, 64);
        let p = PlanPoint::of(&s);
        assert_eq!(PlanPoint::of(&p.applied(&s)), p);
        assert_eq!(p.overrides().len(), 10);
    }
}
