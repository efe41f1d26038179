//! The software stack (`stack:`): each modelled field changes what it claims to, in the op
//! graph and in fast mode alike.

use clustersim::fixtures::toy_scenario;
use clustersim::network::analytic::AnalyticNetwork;
use clustersim::plan::stack::GradReduceDtype;
use clustersim::schedule::Category;
use clustersim::sim::{StepOptions, build_graph, simulate_step};
use clustersim::sweep::fast;
use clustersim::vocab::Collective;

/// DP bytes of the step's gradient reductions and of its parameter gathers.
fn dp_bytes(s: &clustersim::config::Scenario) -> (u64, u64) {
    let g = build_graph(s);
    let dp = g.comms.iter().filter(|c| c.category == Category::Dp);
    let (mut grads, mut params) = (0, 0);
    for c in dp {
        match c.collective {
            Collective::AllGather => params += c.bytes,
            _ => grads += c.bytes,
        }
    }
    (grads, params)
}

#[test]
fn fp32_gradient_reduction_doubles_the_gradient_bytes_only() {
    for zero in [0, 1, 3] {
        let mut s = toy_scenario(2, 2, 4, 8, 32);
        s.parallelism.zero = zero;
        let (g16, p16) = dp_bytes(&s);
        s.parallelism.stack.grad_reduce_dtype = GradReduceDtype::Fp32;
        let (g32, p32) = dp_bytes(&s);
        assert!(g16 > 0, "zero {zero}");
        // Each bucket's bytes round down separately: within one byte per collective.
        let n = build_graph(&s).comms.len() as u64;
        assert!(
            g32.abs_diff(2 * g16) <= n,
            "zero {zero}: {g32} vs 2 x {g16}"
        );
        assert_eq!(
            p32, p16,
            "zero {zero}: parameter gathers stay in the training dtype"
        );
    }
}

#[test]
fn fast_mode_prices_fp32_reduction_as_the_replay_does() {
    for (overlap, zero) in [(false, 1), (true, 1), (false, 0)] {
        let mut s = toy_scenario(2, 2, 4, 8, 32);
        s.parallelism.zero = zero;
        s.parallelism.overlap_grad_reduce = overlap;
        let mut times = Vec::new();
        for dtype in [GradReduceDtype::Training, GradReduceDtype::Fp32] {
            s.parallelism.stack.grad_reduce_dtype = dtype;
            let replay = simulate_step(&s, &StepOptions::default())
                .unwrap()
                .metrics
                .step_time_s;
            let est = fast::estimate(&s, &mut AnalyticNetwork::new(&s.cluster)).step_time_s;
            assert!(
                (est / replay - 1.0).abs() < 0.01,
                "{dtype:?} overlap {overlap} zero {zero}: fast {est} vs replay {replay}"
            );
            times.push(replay);
        }
        // Without overlap every reduction is exposed: FP32 costs time.
        if !overlap {
            assert!(times[1] > times[0], "{times:?}");
        }
    }
}
