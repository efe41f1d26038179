//! The stack's mechanisms against hand-derived cases: backward TP overlap hides exactly
//! `min(reduction, column wgrad GEMM)`; unfused gradient accumulation adds the bytes it
//! should; BF16 attention under FP8 training; fast mode agrees with the replay.

use clustersim::fixtures::toy_scenario;
use clustersim::hardware::{ComputeModel, Precision};
use clustersim::network::analytic::AnalyticNetwork;
use clustersim::plan::stack::TpOverlap;
use clustersim::pricing::OpCosts;
use clustersim::sim::{StepOptions, compute_model, simulate_step, step_inputs};
use clustersim::sweep::fast;

fn step(s: &clustersim::config::Scenario) -> f64 {
    simulate_step(s, &StepOptions::default())
        .unwrap()
        .metrics
        .step_time_s
}

fn costs(s: &clustersim::config::Scenario) -> OpCosts {
    let cm = compute_model(s);
    let inp = step_inputs(s, &cm);
    OpCosts::new(&inp)
}

#[test]
fn backward_tp_overlap_hides_at_most_the_column_gemms_and_fast_mode_agrees() {
    for sp in [false, true] {
        let mut s = toy_scenario(4, 1, 2, 8, 16);
        s.parallelism.sequence_parallel = sp;
        s.parallelism.tp_comm_overlap = false;
        s.parallelism.stack.tp_comm_overlap = TpOverlap::None;
        let none = step(&s);
        s.parallelism.stack.tp_comm_overlap = TpOverlap::Backward;
        assert_eq!(s.parallelism.tp_overlap(), TpOverlap::Backward);
        let bwd = step(&s);
        assert!(bwd < none, "sp {sp}: backward overlap {bwd} vs none {none}");
        // What can hide: each backward block's column-parallel wgrad GEMM (and under
        // sequence parallel the input all-gather is new work hidden behind dgrad).
        let c = costs(&s);
        let l = &s.model;
        let m = (s.training.global_batch / (s.parallelism.dp * s.training.micro_batch)) as f64;
        let hideable = m * l.layers as f64 * (c.attn_col.wgrad + c.mlp_col.wgrad) as f64 * 1e-9;
        assert!(
            none - bwd <= hideable * (1.0 + 1e-6) + 1e-9,
            "sp {sp}: hid {} > {hideable}",
            none - bwd
        );
        let est = fast::estimate(&s, &mut AnalyticNetwork::new(&s.cluster)).step_time_s;
        assert!(
            (est / bwd - 1.0).abs() < 0.01,
            "sp {sp}: fast {est} vs replay {bwd}"
        );
    }
}

#[test]
fn unfused_accumulation_adds_its_bytes_per_parameter_per_micro_batch() {
    let mut s = toy_scenario(2, 1, 2, 8, 16);
    let fused = costs(&s);
    s.parallelism.stack.grad_accum_fusion = false;
    let unfused = costs(&s);
    // 16-bit gradient read + buffer read + write in the reduction dtype (training: 2 B).
    let per_param = 2.0 + 2.0 * 2.0;
    let local = s.model.attention_params() as f64 / s.parallelism.tp as f64;
    let gpu = &s.cluster.gpu;
    let cm = ComputeModel::new(gpu, s.training.precision);
    let want = cm.kernels_time_s(&[clustersim::model::Kernel {
        name: "grad_accum",
        class: clustersim::model::KernelClass::Memory,
        flops: 0.0,
        bytes: local * per_param,
        phase: clustersim::model::Phase::BackwardWeight,
    }]);
    let got = (unfused.attn_bwd - fused.attn_bwd) as f64 * 1e-9;
    assert!((got - want).abs() < 2e-9, "{got} vs {want}");
    assert!(
        step(&s) > {
            s.parallelism.stack.grad_accum_fusion = true;
            step(&s)
        }
    );
}

#[test]
fn fp8_training_keeps_attention_in_bf16_unless_the_stack_enables_fp8_attention() {
    let mut s = toy_scenario(2, 1, 2, 8, 16);
    s.training.precision = Precision::Fp8;
    s.training.flash_attention = true;
    s.parallelism.stack.fp8_attention = true;
    let fp8 = costs(&s);
    s.parallelism.stack.fp8_attention = false;
    let bf16 = costs(&s);
    // Only the attention core changes: its time scales with the peak x efficiency ratio.
    assert_eq!(fp8.mlp_fwd, bf16.mlp_fwd);
    assert!(bf16.attn_fwd > fp8.attn_fwd);
    s.training.precision = Precision::Bf16;
    let plain = costs(&s);
    // The attention core (what selective recompute replays) is BF16 training's.
    assert_eq!(bf16.selective_recompute, plain.selective_recompute);
    assert!(fp8.selective_recompute < bf16.selective_recompute);
}

#[test]
fn backward_tp_overlap_hides_exactly_min_of_reduction_and_wgrad_gemm_per_block() {
    // No sequence parallel, one stage, one data-parallel rank: each backward block ends
    // with the input gradient's all-reduce `ar`; under backward overlap it runs behind the
    // column-parallel weight-gradient GEMM `w`, so each block saves exactly min(ar, w)
    // (attention and MLP blocks, every layer, every micro-batch); nothing else changes.
    let mut s = toy_scenario(4, 1, 1, 4, 4);
    s.parallelism.sequence_parallel = false;
    s.parallelism.tp_comm_overlap = false;
    s.parallelism.stack.tp_comm_overlap = TpOverlap::None;
    let none = step(&s);
    s.parallelism.stack.tp_comm_overlap = TpOverlap::Backward;
    let bwd = step(&s);
    let c = costs(&s);
    let cm = compute_model(&s);
    let inp = step_inputs(&s, &cm);
    let after = clustersim::pricing::collectives::tp_block(&inp)
        .unwrap()
        .after;
    let ar = AnalyticNetwork::new(&s.cluster).collective_time_s(
        after.collective,
        after.bytes,
        &[0, 1, 2, 3],
    );
    let (wa, wm) = (
        c.attn_col.wgrad as f64 * 1e-9,
        c.mlp_col.wgrad as f64 * 1e-9,
    );
    let m = (s.training.global_batch / s.training.micro_batch) as f64;
    let blocks = m * s.model.layers as f64;
    let want = blocks * (ar.min(wa) + ar.min(wm));
    let got = none - bwd;
    // Whole nanoseconds per op in the replay.
    assert!((got - want).abs() <= blocks * 4e-9, "{got} vs {want}");
    assert!(want > 0.0);
}

/// Per stage of `s` (traced on every rank): when the stage's last gradient pass ends, and
/// the start of each of its data-parallel gradient reductions.
fn reductions_by_stage(s: &clustersim::config::Scenario) -> Vec<(f64, Vec<f64>)> {
    use clustersim::engine::TraceRanks;
    use clustersim::vocab::{Category, Collective};
    let opts = StepOptions {
        trace: TraceRanks::All,
        ..Default::default()
    };
    let r = simulate_step(s, &opts).unwrap();
    let grid = clustersim::plan::RankGrid::new(&s.parallelism);
    let mut out = vec![(0.0f64, Vec::new()); s.parallelism.pp as usize];
    for ev in &r.replay.trace {
        let stage = grid.stage_of(ev.rank) as usize;
        let op = r.graph.stages[stage].op(ev.op);
        let (start, end) = (ev.start as f64 * 1e-9, ev.end as f64 * 1e-9);
        match op.comm {
            Some(c)
                if op.category == Category::Dp
                    && r.graph.comms[c as usize].collective == Collective::ReduceScatter =>
            {
                out[stage].1.push(start);
            }
            None if op.category == Category::Backward => out[stage].0 = out[stage].0.max(end),
            _ => {}
        }
    }
    out
}

/// `stack.align_grad_reduce` (Megatron-Core's default; schedules.py at core_r0.8.0) by
/// hand on a 1F1B pipeline of four stages: the first stage still reduces bucket by bucket
/// during its last backward (1487-1489), every other stage only once its last backward
/// is over (1502-1506), where without it every stage reduces during its last backward.
/// Interleaved, the first stage's last chunk is reduced after its last backward too
/// (797-805). The step can only get longer, and fast mode follows the replay within 1 %.
#[test]
fn aligned_gradient_reduction_waits_for_the_stage_as_megatron_core_does() {
    use clustersim::plan::ScheduleKind;
    let mut s = toy_scenario(1, 4, 4, 8, 64);
    s.parallelism.zero = 1;
    s.parallelism.overlap_grad_reduce = true;
    assert!(!s.parallelism.stack.align_grad_reduce);
    let free = reductions_by_stage(&s);
    let free_step = step(&s);
    s.parallelism.stack.align_grad_reduce = true;
    let aligned = reductions_by_stage(&s);
    let aligned_step = step(&s);
    for (stage, ((f_end, f_rs), (a_end, a_rs))) in free.iter().zip(&aligned).enumerate() {
        assert!(!f_rs.is_empty() && !a_rs.is_empty(), "stage {stage}");
        let first = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            first(f_rs) < *f_end,
            "stage {stage}: overlapped without alignment"
        );
        if stage == 0 {
            assert!(first(a_rs) < *a_end, "stage 0 keeps its overlapped buckets");
        } else {
            assert!(
                first(a_rs) >= *a_end,
                "stage {stage}: {a_rs:?} before {a_end}"
            );
        }
    }
    assert!(aligned_step >= free_step, "{aligned_step} vs {free_step}");
    let est = fast::estimate(&s, &mut AnalyticNetwork::new(&s.cluster)).step_time_s;
    assert!(
        (est / aligned_step - 1.0).abs() < 0.01,
        "fast {est} vs replay {aligned_step}"
    );

    // Interleaved (two chunks of two layers per stage, 32 micro-batches).
    let mut s = toy_scenario(1, 4, 4, 16, 128);
    s.parallelism.zero = 1;
    s.parallelism.overlap_grad_reduce = true;
    s.parallelism.schedule = ScheduleKind::Interleaved;
    s.parallelism.virtual_stages = 2;
    let fast_of = |s: &clustersim::config::Scenario| {
        fast::estimate(s, &mut AnalyticNetwork::new(&s.cluster)).step_time_s
    };
    let (free_replay, free_fast) = (step(&s), fast_of(&s));
    s.parallelism.stack.align_grad_reduce = true;
    let inter = reductions_by_stage(&s);
    let (end0, rs0) = &inter[0];
    // The first stage: chunk 1's buckets during the cooldown, chunk 0's (its last
    // gradient pass) only after it.
    assert!(rs0.iter().any(|&t| t >= *end0), "{rs0:?} vs {end0}");
    assert!(rs0.iter().any(|&t| t < *end0), "{rs0:?} vs {end0}");
    let (replay, est) = (step(&s), fast_of(&s));
    assert!(replay > free_replay, "{replay} vs {free_replay}");
    assert!(
        (est / replay - 1.0).abs() < 0.01,
        "interleaved: fast {est} vs replay {replay}"
    );
    // Fast mode moves with the replay: the same change within 0.1 % of the step.
    let (d_replay, d_fast) = (replay - free_replay, est - free_fast);
    assert!(
        (d_fast - d_replay).abs() < 1e-3 * replay,
        "aligned adds {d_fast} in fast mode, {d_replay} in the replay"
    );
}
