//! Fast mode: a closed-form step time for one plan, for ranking thousands of plans.
//!
//! Composes the same prices the op-graph builder places (`crate::pricing`: op durations,
//! collective sizes and groups, buckets, gathers, optimizer step), timed by
//! `network::analytic`, into a closed-form critical path without building a graph:
//! - per layer and micro-batch ([`stages`]): tensor-parallel collectives around every
//!   attention and MLP block, chained or overlapped with the block's GEMMs as the plan
//!   says; MoE all-to-alls chained; recompute;
//! - the pipeline ([`pipeline`]) as `m · max_s X_s + (Σ_s X_s − max_s X_s) / v` with `X_s` a
//!   stage's forward + backward per micro-batch (the `(p−1)/v` bubble for balanced stages),
//!   plus blocking sends without p2p overlap and the fill/drain hops with it;
//! - zero-bubble schedules (ZB-H1/H2, arXiv 2401.10241) split backward into input- and
//!   weight-gradient passes; the weight passes fill the bubble, which becomes
//!   `Σ_{s≠crit} (X_s − 2W_s)` (H1) or `Σ_{s≠crit} max(X_s − 3W_s, F_s)` (H2), the closed
//!   forms `sim`'s tests check; gradients are reduced after the last weight pass; with
//!   too few micro-batches for the deferred weight passes to fill the bubble (m < p under
//!   H1, m < 2p - 1 under H2) the stages' orders are walked with their pass times instead
//!   ([`pipeline::walk_passes`]): the last weight passes then end the pipeline;
//! - the data-parallel tail ([`dp`]): parameter all-gathers at the start (delaying the
//!   first forwards that need them), gradient reduction overlapped with the last backward
//!   of each chunk, then the optimizer; under ZeRO-2 every micro-batch's gradient pass
//!   reduce-scatters (blocking without overlap — inside the weight pass that fills the
//!   bubble under zero-bubble schedules — else queued on the in-order DP stream as the
//!   stage's passes, walked in schedule order back to back, issue them); hybrid sharding's
//!   replica all-reduces once per step;
//! - ZeRO-3 (FSDP, [`fsdp`]): every layer's parameters all-gathered on the DP stream in each
//!   forward and backward pass, prefetched one layer ahead, and every micro-batch's
//!   reduce-scatters between the backward's gathers, as the generator issues them;
//! - DualPipe ([`dualpipe`]): every stage's order walked pass by pass with its sends and
//!   early receives, each forward-and-backward chunk pair's all-to-alls beside its slowed
//!   compute, and the data-parallel tail with the all-reduce between a piece's two copies.
//!
//! Deterministic and allocation-light; it never runs the engine. Must not price anything
//! itself: a mechanism is priced in `crate::pricing` and composed here. Known gaps, where
//! fast mode composes less than the replay runs: what [`Coverage::FAST`] leaves out
//! (adapters, optimizer offload), context
//! parallelism's ring-attention K/V exchange, and ZeRO-3's gathers under DualPipe (not
//! proposed by the plan search).

mod dp;
mod dualpipe;
mod fsdp;
mod pipeline;
mod stages;

use serde::Serialize;

use crate::config::Scenario;
use crate::network::AnalyticNetwork;
use crate::plan::{GroupMask, RankGrid};
use crate::pricing::{CollectiveCost, Coverage, OpCosts, StepInputs, collectives};
use crate::sim::{compute_model, step_inputs};
use crate::vocab::Collective;
pub use fsdp::fsdp_pass;
use stages::{Comms, Stage};

/// A fast-mode step estimate, seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FastEstimate {
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    pub mfu: f64,
    /// Pipeline fill and drain on the critical stage.
    pub bubble_s: f64,
    /// Tensor-parallel and expert-parallel communication on the critical path.
    pub tp_exposed_s: f64,
    pub ep_exposed_s: f64,
    pub pp_exposed_s: f64,
    pub dp_exposed_s: f64,
    pub optimizer_s: f64,
}

/// Nanoseconds as fast mode's seconds.
fn secs(ns: u64) -> f64 {
    ns as f64 * 1e-9
}

/// One plan's inputs and the network that times its collectives.
struct Ctx<'a> {
    s: &'a Scenario,
    inp: StepInputs<'a>,
    grid: RankGrid,
    net: &'a mut AnalyticNetwork,
    /// Members of group 0 per mask, built once.
    members: Vec<(GroupMask, Vec<u32>)>,
    /// Collective times already computed: buckets mostly share one size.
    memo: Vec<(Collective, u64, GroupMask, f64)>,
}

impl Ctx<'_> {
    fn coll(&mut self, c: Collective, bytes: u64, mask: GroupMask) -> f64 {
        if self.grid.group_size(mask) <= 1 {
            return 0.0;
        }
        if let Some(&(.., t)) = self
            .memo
            .iter()
            .find(|m| m.0 == c && m.1 == bytes && m.2 == mask)
        {
            return t;
        }
        let i = match self.members.iter().position(|(m, _)| *m == mask) {
            Some(i) => i,
            None => {
                let mut v = Vec::new();
                self.grid.members_into(mask, 0, &mut v);
                self.members.push((mask, v));
                self.members.len() - 1
            }
        };
        let t = self.net.collective_time_s(c, bytes, &self.members[i].1);
        self.memo.push((c, bytes, mask, t));
        t
    }

    /// Time of a priced collective over group 0 of its kind.
    fn time(&mut self, cost: CollectiveCost) -> f64 {
        self.coll(cost.collective, cost.bytes, cost.group)
    }

    /// Communication times of one micro-batch.
    fn comms(&mut self) -> Comms {
        let p = self.s.parallelism.clone();
        let (tp_before, tp_after) = match collectives::tp_block(&self.inp) {
            None => (0.0, 0.0),
            Some(tp) => {
                let after = self.time(tp.after);
                (tp.before.map_or(0.0, |b| self.time(b)), after)
            }
        };
        let a2a = match collectives::ep_all_to_all(&self.inp, Coverage::FAST) {
            Some(a2a) => self.time(a2a),
            None => 0.0,
        };
        let p2p = if p.pp > 1 {
            let stage = self.grid.stage_size();
            let bytes = collectives::pp_p2p_bytes(&self.inp);
            self.net
                .collective_time_s(Collective::SendRecv, bytes, &[0, stage])
        } else {
            0.0
        };
        Comms {
            tp_block: tp_before + tp_after,
            tp_before,
            tp_after,
            tp_overlap: p.tp_overlap(),
            a2a,
            p2p,
            split: crate::plan::pipeline::splits_backward(p.schedule),
        }
    }

    /// ZeRO-3 parameter all-gather time of every layer, or nothing without ZeRO-3.
    fn fsdp_gathers(&mut self) -> Vec<f64> {
        if !crate::pricing::dp::fsdp(&self.s.parallelism) {
            return Vec::new();
        }
        let inp = self.inp;
        (0..self.s.model.stack_layers())
            .map(|layer| {
                let mut g = crate::pricing::dp::param_upload_time(&inp, layer, Coverage::FAST)
                    .map_or(0.0, secs);
                let host = secs(crate::pricing::dp::gather_host_time(&self.s.parallelism));
                for cost in crate::pricing::dp::layer_gathers(&inp, layer, Coverage::FAST) {
                    g += host + self.time(cost);
                }
                g
            })
            .collect()
    }
}

/// Tokens per second and MFU of a step of `step` seconds.
fn rates(ctx: &Ctx, step: f64) -> (f64, f64) {
    let s = ctx.s;
    let tokens = (s.training.global_batch * s.training.seq_len) as f64;
    let gpus = ctx.grid.world() as f64;
    let flops = crate::pricing::params::model_flops_per_step(&s.model, &s.training);
    let peak = s.cluster.gpu.peak_flops(s.training.precision);
    (tokens / step, flops / step / (gpus * peak))
}

/// Estimates the step time of the scenario's plan in closed form.
pub fn estimate(s: &Scenario, net: &mut AnalyticNetwork) -> FastEstimate {
    let compute = compute_model(s);
    let inp = step_inputs(s, &compute);
    let grid = RankGrid::new(&s.parallelism);
    // The plan's pipeline stages decide which groups communicate at once.
    net.set_stage_size(Some((grid.stage_size(), grid.world())));
    let mut ctx = Ctx {
        s,
        inp,
        grid,
        net,
        members: Vec::new(),
        memo: Vec::new(),
    };
    let costs_ns = OpCosts::new(&inp);
    let costs = costs_ns.map(secs);
    let comms = ctx.comms();
    let mut st = stages::stages(&ctx, &costs, &comms);
    dp::blocking_after_weight_passes(&mut ctx, &mut st, &comms);
    if s.parallelism.schedule == crate::plan::ScheduleKind::Dualpipe && s.parallelism.pp > 1 {
        return dualpipe::estimate(&mut ctx, &st, &comms, &costs_ns);
    }
    let gathers = ctx.fsdp_gathers();
    if !gathers.is_empty() {
        let head = crate::pricing::dp::head_gather(&ctx.inp, Coverage::FAST).map(|cost| {
            secs(crate::pricing::dp::gather_host_time(&s.parallelism)) + ctx.time(cost)
        });
        fsdp::apply_fsdp(&mut ctx, &mut st, (&gathers, head), &comms, &costs);
    }
    let v = inp.chunks() as f64;
    let m = inp.micro_batches() as f64;
    let pipe = pipeline::pipeline(s, &st, &comms, v, m);
    let tail = dp::data_parallel(&mut ctx, &st, &comms, pipe.span, pipe.ends.as_deref());
    let step = tail.end + tail.gather_delay;
    let (tokens_per_s, mfu) = rates(&ctx, step);
    let c: &Stage = &st[pipe.crit];
    FastEstimate {
        step_time_s: step,
        tokens_per_s,
        mfu,
        bubble_s: pipe.bubble,
        tp_exposed_s: m * c.tp,
        ep_exposed_s: m * c.ep,
        pp_exposed_s: m * c.pp + pipe.hops,
        dp_exposed_s: tail.crit_dp + tail.gather_delay + m * (c.fsdp()),
        optimizer_s: tail.crit_opt,
    }
}
