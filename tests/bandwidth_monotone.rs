//! Property (issue 17): a step is never faster with less bandwidth. Over random small
//! plans, scaling down NVLink, the NIC or the fabric (a higher leaf oversubscription) never
//! shortens the simulated step, and every result holds the written-result invariants.

use clustersim::fixtures::toy_scenario;
use clustersim::sim::{StepOptions, simulate_step};
use proptest::prelude::*;

fn step_s(s: &clustersim::config::Scenario) -> f64 {
    let r = simulate_step(s, &StepOptions::default()).expect("step");
    r.metrics.check_invariants().expect("invariants");
    r.metrics.step_time_s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn less_bandwidth_is_never_faster(
        tp in prop::sample::select(vec![1u64, 2, 8]),
        pp in prop::sample::select(vec![1u64, 2]),
        dp in prop::sample::select(vec![1u64, 2, 4]),
        layers in prop::sample::select(vec![4u64, 8]),
        which in 0usize..3,
        factor in 0.05f64..0.95,
    ) {
        let mut s = toy_scenario(tp, pp, dp, layers, 8 * dp);
        let base = step_s(&s);
        match which {
            0 => s.cluster.node.nvlink_gbs *= factor,
            1 => s.cluster.node.nic_gbps *= factor,
            _ => s.cluster.fabric.oversubscription /= factor,
        }
        let slower = step_s(&s);
        prop_assert!(
            slower >= base,
            "tp {tp} pp {pp} dp {dp}: bandwidth x{factor} ({which}) gave {slower} s < {base} s"
        );
    }
}
