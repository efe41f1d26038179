//! The plan search's memory filter: the simulator's own memory model
//! ([`crate::pricing::memory`]) behind one function ([`estimate`]).
//!
//! The search runs this once per candidate plan, so it calls the lean entry point
//! [`crate::pricing::memory::most_loaded_stage`] (the most loaded rank only, no per-stage
//! list); its figures equal those of `sim::memory_report` for the same scenario, so `plan`
//! drops exactly the plans a `--strict-memory` simulation would reject.

use serde::Serialize;

use crate::config::Scenario;
use crate::pricing::memory::{self, MemoryInputs, StageMemory};

/// Memory of the most loaded rank of a plan, GB (10^9 bytes): that rank's stage figures
/// (serialised flat, as `memory_gb` is in summary.json) with the capacity they are held to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryEstimate {
    #[serde(flatten)]
    pub most_loaded: StageMemory,
    pub capacity: f64,
    pub fits: bool,
}

fn inputs(s: &Scenario) -> MemoryInputs<'_> {
    MemoryInputs {
        model: &s.model,
        training: &s.training,
        parallelism: &s.parallelism,
        capacity_gb: s.cluster.gpu.memory_gb,
    }
}

/// Per-GPU memory of the scenario's plan on its most loaded rank.
pub fn estimate(s: &Scenario) -> MemoryEstimate {
    let (most_loaded, _) = memory::most_loaded_stage(&inputs(s));
    let capacity = s.cluster.gpu.memory_gb;
    MemoryEstimate {
        fits: most_loaded.total <= capacity,
        most_loaded,
        capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::plan::{Recompute, ScheduleKind};

    #[test]
    fn lean_estimate_equals_the_full_memory_report() {
        let base = super::super::fixtures::gpt3_175b_1k_a100();
        let schedules = [
            (ScheduleKind::OneFOneB, 1),
            (ScheduleKind::Interleaved, 3),
            (ScheduleKind::ZbH1, 1),
            (ScheduleKind::ZbH2, 1),
            (ScheduleKind::Gpipe, 1),
        ];
        for (schedule, v) in schedules {
            for zero in 0..=3 {
                for rc in [Recompute::None, Recompute::Selective, Recompute::Full] {
                    let mut s = base.clone();
                    s.parallelism.schedule = schedule;
                    s.parallelism.virtual_stages = v;
                    s.parallelism.zero = zero;
                    s.training.recompute = rc;
                    let lean = estimate(&s);
                    let full = crate::sim::memory_report(&s);
                    assert_eq!(
                        lean.most_loaded.total, full.total,
                        "{schedule:?} z{zero} {rc:?}"
                    );
                    assert_eq!(lean.fits, full.fits);
                    assert_eq!(lean.most_loaded.stage, full.stage);
                    assert_eq!(
                        {
                            let l = &lean.most_loaded;
                            (l.weights, l.grads, l.optimizer, l.activations)
                        },
                        (full.weights, full.grads, full.optimizer, full.activations)
                    );
                }
            }
        }
    }

    #[test]
    fn zero_stages_shrink_model_states() {
        let mut s = fixtures::toy_scenario(8, 2, 8, 32, 64);
        let mut last = f64::INFINITY;
        for z in 0..=3 {
            s.parallelism.zero = z;
            let e = estimate(&s).most_loaded;
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
