//! A long run's distinct cluster states are simulated in parallel before the run loop
//! (`run::prefetch_states`); the results do not depend on the thread count, and every
//! state's step is the folded replay of the real step engine.

use clustersim::faults::{LinkFaultSpec, StragglerSpec};
use clustersim::fixtures::toy_scenario;
use clustersim::run::{self, RunOptions, RunSpec};

#[test]
fn parallel_state_simulation_is_deterministic() {
    let mut s = toy_scenario(2, 4, 8, 8, 64);
    s.faults.seed = 11;
    s.faults.stragglers = vec![
        StragglerSpec {
            ranks: vec![3],
            slowdown: 1.2,
            ..Default::default()
        },
        StragglerSpec {
            rate_per_gpu_day: 2.0,
            duration: "30m".into(),
            slowdown: 1.5,
            ..Default::default()
        },
    ];
    s.faults.links = vec![LinkFaultSpec {
        ranks: vec![40],
        nic_factor: 0.5,
        ..Default::default()
    }];
    s.run = Some(RunSpec {
        duration: Some("3d".into()),
        ..Default::default()
    });
    let opts = RunOptions {
        replicas: Some(3),
        ..Default::default()
    };
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let run_with = |n| {
        pool(n).install(|| {
            let steps = run::analytic_step_times(&s);
            let r = run::simulate_run(&s, &steps, &opts).unwrap();
            (r, steps.len())
        })
    };
    let (one, states_one) = run_with(1);
    let (two, states_two) = run_with(2);
    assert!(
        one.summary.distinct_step_states > 2,
        "{}",
        one.summary.distinct_step_states
    );
    assert_eq!(one.summary, two.summary);
    assert_eq!(one.stats, two.stats);
    assert_eq!(one.events.len(), two.events.len());
    // The prefetch simulated every state the runs used (and only states they listed).
    assert_eq!(states_one, states_two);
    assert!(states_one as u64 >= one.summary.distinct_step_states);
}
