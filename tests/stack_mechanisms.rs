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
