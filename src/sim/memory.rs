//! Memory per rank of a scenario's plan (no simulation needed) and the `--strict-memory`
//! check. The figures come from `pricing::memory`; this room only feeds it the scenario.

use crate::config::Scenario;
use crate::pricing::memory::{self as mem, MemoryInputs, MemoryReport};

/// Memory per rank of a scenario's plan (no simulation needed).
pub fn memory_report(s: &Scenario) -> MemoryReport {
    mem::memory_report(&MemoryInputs {
        model: &s.model,
        training: &s.training,
        parallelism: &s.parallelism,
        capacity_gb: s.cluster.gpu.memory_gb,
    })
}

/// `--strict-memory`: an error naming the most loaded rank and its breakdown when the plan
/// does not fit.
pub fn check_memory(s: &Scenario) -> Result<MemoryReport, mem::OutOfMemory> {
    let r = memory_report(s);
    r.check().map(|()| r)
}
