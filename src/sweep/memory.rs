//! A conservative per-GPU memory estimate for the plan search, behind one function
//! ([`estimate`]).
//!
//! Stop-gap until `model::memory` lands (the memory/parallelism work): then [`estimate`]
//! should call it and this file shrinks to the adapter. It must stay conservative (never
//! report a plan as fitting that the full model would reject by a wide margin) and fast (it
//! runs once per candidate plan).
//!
//! Model states (ZeRO, arXiv 1910.02054): 2 bytes weights + 2 bytes gradients + 12 bytes
//! Adam state per parameter held by the most loaded stage, sharded over data parallel by
//! ZeRO stage. Activations (Korthikanti et al., arXiv 2205.05198, Table 2, generalised to
//! GQA and SwiGLU from the tensors stored) for the micro-batches in flight on the first
//! stage: `p` under 1F1B, `× (1 + (p−1)/(p·v))` interleaved, `m` under GPipe. A fixed
//! reserve covers workspace and communication buffers.

use serde::Serialize;

use crate::config::Scenario;
use crate::model::ModelSpec;
use crate::plan::{Recompute, ScheduleKind, split_layers};

/// Workspace, allocator fragmentation and NCCL buffers per GPU, GB.
pub const RESERVE_GB: f64 = 4.0;

/// Per-GPU memory of a plan, GB (10^9 bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryEstimate {
    pub weights: f64,
    pub grads: f64,
    pub optimizer: f64,
    pub activations: f64,
    pub reserve: f64,
    pub total: f64,
    pub capacity: f64,
    pub fits: bool,
}

/// Parameters one GPU holds on the most loaded pipeline stage (before ZeRO sharding).
fn stage_params_per_gpu(s: &Scenario) -> f64 {
    let m = &s.model;
    let p = &s.parallelism;
    let split = match &p.stage_layers {
        Some(l) => l.clone(),
        None => split_layers(m.layers, p.pp.max(1)),
    };
    let tp = p.tp.max(1) as f64;
    let ep = p.ep.max(1) as f64;
    let mut best = 0.0f64;
    let mut start = 0;
    for (i, &n) in split.iter().enumerate() {
        let mut params = 0.0;
        for layer in start..start + n {
            params += layer_params_per_gpu(m, layer, tp, ep);
        }
        start += n;
        let first = i == 0;
        let last = i + 1 == split.len();
        let emb = m.embedding_params() as f64 / tp;
        if first {
            params += emb;
        }
        if last && (!m.tied_embeddings || !first) {
            params += emb;
        }
        best = best.max(params);
    }
    best
}

fn layer_params_per_gpu(m: &ModelSpec, layer: u64, tp: f64, ep: f64) -> f64 {
    match &m.moe {
        Some(moe) if m.is_moe_layer(layer) => {
            let experts = moe.experts as f64 / ep + moe.shared_experts as f64;
            (m.attention_params() as f64 + experts * m.expert_params() as f64) / tp
        }
        _ => m.layer_params(layer) as f64 / tp,
    }
}

/// Activation bytes one layer stores for one micro-batch on one GPU.
pub fn layer_activation_bytes(s: &Scenario) -> f64 {
    let m = &s.model;
    let t = &s.training;
    let p = &s.parallelism;
    let tp = p.tp.max(1) as f64;
    let sbh = (t.micro_batch * t.seq_len) as f64 / p.cp.max(1) as f64 * m.hidden as f64;
    if t.recompute == Recompute::Full {
        let sp = if p.sequence_parallel { tp } else { 1.0 };
        return 2.0 * sbh / sp;
    }
    let h = m.hidden as f64;
    let kv = m.kv_width() as f64;
    let f = m.ffn_hidden as f64;
    let k = m.ffn.matrices() as f64;
    let routed = m.moe.as_ref().map_or(1.0, |e| {
        let width = e.expert_ffn_hidden as f64 / f;
        width * (e.top_k + e.shared_experts) as f64
    });
    // Per token, bytes: attention 2h input + 2(h + kv) for Q, K + 2kv for V + 2h projection
    // input + h dropout mask; MLP 2h input + 2f(k-1) up output + 2f activation output + h
    // mask; two layer norms 4h. Of these 10h stay replicated without sequence parallel.
    let attention = 7.0 * h + 4.0 * kv;
    let mlp = 3.0 * h + routed * (2.0 * f * (k - 1.0) + 2.0 * f);
    let per_token = attention + mlp + 4.0 * h;
    let replicated = 10.0 * h;
    let mut bytes = if p.sequence_parallel {
        per_token / tp
    } else {
        replicated + (per_token - replicated) / tp
    } * sbh
        / h;
    let stores_scores = !t.flash_attention && t.recompute == Recompute::None;
    if stores_scores {
        let (a, seq) = (m.heads as f64, t.seq_len as f64 / p.cp.max(1) as f64);
        bytes += 5.0 * a * seq * sbh / h / tp;
    }
    bytes
}

/// Micro-batches whose activations the first stage holds at its peak.
pub fn micro_batches_in_flight(s: &Scenario) -> f64 {
    let p = &s.parallelism;
    let pp = p.pp.max(1) as f64;
    let m = (s.training.global_batch / (p.dp.max(1) * s.training.micro_batch.max(1))) as f64;
    match p.schedule {
        ScheduleKind::Gpipe => m,
        ScheduleKind::Interleaved => {
            let v = p.virtual_stages.max(1) as f64;
            pp.min(m) * (1.0 + (pp - 1.0) / (pp * v))
        }
        ScheduleKind::ZbH2 | ScheduleKind::Dualpipe => (2.0 * pp).min(m),
        _ => pp.min(m),
    }
}

/// Conservative per-GPU memory of the scenario's plan.
pub fn estimate(s: &Scenario) -> MemoryEstimate {
    let p = &s.parallelism;
    let params = stage_params_per_gpu(s);
    let shard = (p.dp.max(1) * p.cp.max(1)) as f64;
    let w_bytes = s.training.precision.grad_bytes();
    let weights = params * w_bytes / if p.zero >= 3 { shard } else { 1.0 };
    let grads = params * w_bytes / if p.zero >= 2 { shard } else { 1.0 };
    let optimizer = params * 12.0 / if p.zero >= 1 { shard } else { 1.0 };
    let layers = split_layers(s.model.layers, p.pp.max(1))
        .into_iter()
        .max()
        .unwrap_or(0) as f64;
    let activations = layer_activation_bytes(s) * layers * micro_batches_in_flight(s);
    let gb = 1e-9;
    let total = (weights + grads + optimizer + activations) * gb + RESERVE_GB;
    let capacity = s.cluster.gpu.memory_gb;
    MemoryEstimate {
        weights: weights * gb,
        grads: grads * gb,
        optimizer: optimizer * gb,
        activations: activations * gb,
        reserve: RESERVE_GB,
        total,
        capacity,
        fits: total <= capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn gpt_activations_match_korthikanti_table2() {
        let mut s = fixtures::toy_scenario(8, 1, 1, 1, 1);
        s.model.heads = 16;
        s.model.kv_heads = 16;
        s.model.ffn_hidden = 4 * s.model.hidden;
        s.training.flash_attention = false;
        let (sq, h, t) = (2048.0, 2048.0, 8.0);
        let a = 16.0;
        s.parallelism.sequence_parallel = true;
        let got = layer_activation_bytes(&s);
        let want = sq * h * (34.0 / t + 5.0 * a * sq / (h * t));
        assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        s.parallelism.sequence_parallel = false;
        let got = layer_activation_bytes(&s);
        let want = sq * h * (10.0 + 24.0 / t + 5.0 * a * sq / (h * t));
        assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn zero_stages_shrink_model_states() {
        let mut s = fixtures::toy_scenario(8, 2, 8, 32, 64);
        let mut last = f64::INFINITY;
        for z in 0..=3 {
            s.parallelism.zero = z;
            let e = estimate(&s);
            let states = e.weights + e.grads + e.optimizer;
            assert!(states < last, "zero {z}: {states}");
            last = states;
        }
    }

    #[test]
    fn gpt3_megatron_layout_fits_on_a100_80gb() {
        let s = super::super::fixtures::gpt3_175b_1k_a100();
        let e = estimate(&s);
        assert!(e.fits, "{e:?}");
        let mut one = s.clone();
        one.parallelism.tp = 1;
        one.parallelism.pp = 1;
        one.parallelism.dp = 1024;
        assert!(!estimate(&one).fits);
    }
}
