//! The `faults:` section of a scenario, as written in YAML.
//!
//! Plain serde types with documented defaults; [`super::FaultModel::resolve`] turns them
//! into numbers (seconds, per-component means) and reports bad values with their field
//! path. Nothing here draws random numbers.
//!
//! Default failure rates: about 6.5 failures per 1000 node-days in total, as Meta reports for
//! its A100 research clusters (Kokolis et al., arXiv 2410.21680; reference.md "Failures").
//! The split between classes follows the root causes of the 419 unexpected interruptions of
//! the Llama 3 405B pre-training run (Llama 3 paper, arXiv 2407.21783, Table 5): GPUs
//! (faulty GPU, SRAM, system processor, thermal) about 40 %, HBM about 17 %, host (software,
//! maintenance, CPU, DRAM, power, SSD) about 32 %, switches and cables about 8 %, NICs about
//! 2 %. Restart overheads default to 5 minutes of detection plus 10 minutes of restart, within
//! the 5–20 minutes Meta reports.

use serde::{Deserialize, Serialize};

/// The `faults:` section of a scenario.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsSpec {
    /// Global seed of every fault stream (`--seed` overrides it).
    pub seed: u64,
    /// Component failure processes (run level).
    pub failures: FailuresSpec,
    /// Slow GPUs: persistent (explicit ranks or a random fraction) or transient.
    pub stragglers: Vec<StragglerSpec>,
    /// Degraded or flapping links.
    pub links: Vec<LinkFaultSpec>,
}

/// Inter-arrival distribution of a failure process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Constant hazard (memoryless).
    #[default]
    Exponential,
    /// Weibull with `shape` (< 1: infant mortality, > 1: wear-out), same mean.
    Weibull,
}

/// One component class's failure process. Give the rate either as `mtbf` (mean time between
/// failures of one component, a duration) or as `per_1000_node_days` (failures of this class
/// per 1000 node-days, spread evenly over the class's components). Neither: the default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassSpec {
    pub mtbf: Option<String>,
    pub per_1000_node_days: Option<f64>,
    pub distribution: Distribution,
    /// Weibull shape (ignored for exponential).
    pub shape: Option<f64>,
}

/// Lemon nodes: a fraction of nodes whose components fail `rate_multiplier` times as often,
/// until operators spot them after `removed_after` failures and swap them for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LemonSpec {
    pub fraction: f64,
    pub rate_multiplier: f64,
    /// Failures after which a lemon is replaced (0 = never).
    pub removed_after: u32,
}

impl Default for LemonSpec {
    fn default() -> Self {
        LemonSpec {
            fraction: 0.0,
            rate_multiplier: 10.0,
            removed_after: 3,
        }
    }
}

/// The `faults.failures:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailuresSpec {
    /// `false` turns every failure process off.
    pub enabled: bool,
    pub gpu: ClassSpec,
    pub gpu_memory: ClassSpec,
    pub node: ClassSpec,
    pub nic: ClassSpec,
    pub link: ClassSpec,
    pub switch: ClassSpec,
    pub lemons: LemonSpec,
    /// Time until a failure is noticed (NCCL watchdog, health checks).
    pub detection: String,
    /// Re-scheduling, process start and communicator set-up (checkpoint load is extra).
    pub restart: String,
    /// Time to repair or replace a failed node or switch (matters without spares).
    pub repair: String,
    /// Hot spare nodes; absent = a spare is always available (no waiting on repairs).
    pub spares: Option<u64>,
}

impl Default for FailuresSpec {
    fn default() -> Self {
        FailuresSpec {
            enabled: true,
            gpu: ClassSpec::default(),
            gpu_memory: ClassSpec::default(),
            node: ClassSpec::default(),
            nic: ClassSpec::default(),
            link: ClassSpec::default(),
            switch: ClassSpec::default(),
            lemons: LemonSpec::default(),
            detection: "5m".into(),
            restart: "10m".into(),
            repair: "24h".into(),
            spares: None,
        }
    }
}

/// Default failures per 1000 node-days by class (sum 6.5; see the module docs).
pub const DEFAULT_PER_1000_NODE_DAYS: [(&str, f64); 6] = [
    ("gpu", 2.6),
    ("gpu_memory", 1.1),
    ("node", 2.1),
    ("nic", 0.15),
    ("link", 0.35),
    ("switch", 0.2),
];

/// A group of slow GPUs. Persistent: `ranks` (explicit) or `fraction` (each GPU slow with
/// this probability, from its own seeded stream). Transient: `rate_per_gpu_day` > 0, each
/// episode lasting `duration`. The factor multiplies compute time: `slowdown`, or uniform in
/// `[slowdown, slowdown_max]` when `slowdown_max` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StragglerSpec {
    pub ranks: Vec<u32>,
    pub fraction: f64,
    pub rate_per_gpu_day: f64,
    pub duration: String,
    pub slowdown: f64,
    pub slowdown_max: Option<f64>,
}

impl Default for StragglerSpec {
    fn default() -> Self {
        StragglerSpec {
            ranks: Vec::new(),
            fraction: 0.0,
            rate_per_gpu_day: 0.0,
            duration: "10m".into(),
            slowdown: 1.1,
            slowdown_max: None,
        }
    }
}

/// Degraded links of some GPUs: their NIC and/or NVLink bandwidth is multiplied by a factor
/// (0 < factor ≤ 1). A flapping NIC link is down `flap_down` out of every `flap_period`; a
/// step sees its expected bandwidth, `nic_factor × (1 − down/period)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkFaultSpec {
    pub ranks: Vec<u32>,
    pub fraction: f64,
    pub nic_factor: f64,
    pub nvlink_factor: f64,
    pub flap_period: Option<String>,
    pub flap_down: Option<String>,
}

impl Default for LinkFaultSpec {
    fn default() -> Self {
        LinkFaultSpec {
            ranks: Vec::new(),
            fraction: 0.0,
            nic_factor: 1.0,
            nvlink_factor: 1.0,
            flap_period: None,
            flap_down: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keys_deserialize_and_unknown_keys_are_rejected() {
        let yaml = "
seed: 7
failures:
  gpu: { mtbf: 50000h, distribution: weibull, shape: 0.8 }
  switch: { per_1000_node_days: 0.5 }
  lemons: { fraction: 0.01, rate_multiplier: 20 }
  detection: 2m
  spares: 16
stragglers:
  - { ranks: [3, 17], slowdown: 1.5 }
  - { fraction: 0.005, slowdown: 1.1, slowdown_max: 1.3 }
  - { rate_per_gpu_day: 0.1, duration: 15m, slowdown: 2.0 }
links:
  - { ranks: [5], nic_factor: 0.5, flap_period: 10m, flap_down: 20s }
";
        let f: FaultsSpec = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(f.seed, 7);
        assert_eq!(f.failures.gpu.distribution, Distribution::Weibull);
        assert_eq!(f.failures.spares, Some(16));
        assert_eq!(f.failures.restart, "10m");
        assert_eq!(f.failures.lemons.removed_after, 3);
        assert_eq!(f.stragglers.len(), 3);
        assert_eq!(f.links[0].nvlink_factor, 1.0);
        assert!(serde_saphyr::from_str::<FaultsSpec>("failures: { gpu: { mtbf_h: 5 } }").is_err());
        let c: crate::run::CheckpointSpec =
            serde_saphyr::from_str("{ every: 1h, mode: async }").unwrap();
        assert_eq!(c.mode, crate::run::CheckpointMode::Async);
        let r: crate::run::RunSpec = serde_saphyr::from_str("{ duration: 54d }").unwrap();
        assert_eq!(r.duration.as_deref(), Some("54d"));
    }
}
