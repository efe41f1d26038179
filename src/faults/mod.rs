//! Fault injection: failure processes, stragglers, degraded links (always seeded).
//!
//! Owns the `faults:` YAML types ([`spec`]), their resolution into a [`FaultModel`] of
//! per-component rates, the failure processes ([`process`]), slow GPUs and degraded links
//! ([`stragglers`]) and the seeded streams everything draws from ([`rng`]). It produces
//! failure times and per-rank slowdowns; it must not decide what a failure costs a job
//! (that is `run`) nor time anything (that is the engine and the network).

pub mod process;
pub mod rng;
pub mod spec;
pub mod speeds;
pub mod stragglers;

pub use process::{Episode, EpisodeProcess, Failure, FailureProcess};
pub use spec::{
    ClassSpec, Distribution, FailuresSpec, FaultsSpec, LemonSpec, LinkFaultSpec, StragglerSpec,
};
pub use speeds::RankSpeeds;
pub use stragglers::{LinkFaults, StepState, Straggler};

use rand::RngExt;
use serde::Serialize;
use thiserror::Error;

use crate::hardware::{ClusterSpec, FabricKind};
use crate::units::parse_duration_s;
use rng::{StreamClass, stream};

/// A fault setting that makes no sense, with the dotted path of its key.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{field}: {message}")]
pub struct FaultsError {
    pub field: String,
    pub message: String,
}

impl FaultsError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FaultsError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses a duration string of key `field`.
pub fn duration(field: &str, text: &str) -> Result<f64, FaultsError> {
    parse_duration_s(text).map_err(|m| FaultsError::new(field, m))
}

/// Persistent stragglers and degraded links of `spec` for a single-step simulation of a
/// `world`-GPU job: pass the speeds as `StepOptions::speeds` and the links to
/// `sim::build_network` (both network models honour them; transient slowdowns are run-level states).
pub fn step_faults(spec: &FaultsSpec, world: u32) -> Result<(RankSpeeds, LinkFaults), FaultsError> {
    let mut speeds = RankSpeeds::uniform();
    for s in stragglers::persistent(&spec.stragglers, spec.seed, world)? {
        speeds.set(world, s.gpu, s.factor as f32);
    }
    Ok((
        speeds,
        stragglers::link_faults(&spec.links, spec.seed, world)?,
    ))
}

/// Component classes that fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentClass {
    Gpu,
    GpuMemory,
    Node,
    Nic,
    Link,
    Switch,
}

impl ComponentClass {
    pub const ALL: [ComponentClass; 6] = [
        ComponentClass::Gpu,
        ComponentClass::GpuMemory,
        ComponentClass::Node,
        ComponentClass::Nic,
        ComponentClass::Link,
        ComponentClass::Switch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ComponentClass::Gpu => "gpu",
            ComponentClass::GpuMemory => "gpu_memory",
            ComponentClass::Node => "node",
            ComponentClass::Nic => "nic",
            ComponentClass::Link => "link",
            ComponentClass::Switch => "switch",
        }
    }

    pub fn stream(self) -> StreamClass {
        match self {
            ComponentClass::Gpu => StreamClass::Gpu,
            ComponentClass::GpuMemory => StreamClass::GpuMemory,
            ComponentClass::Node => StreamClass::Node,
            ComponentClass::Nic => StreamClass::Nic,
            ComponentClass::Link => StreamClass::Link,
            ComponentClass::Switch => StreamClass::Switch,
        }
    }

    fn spec(self, f: &FailuresSpec) -> &ClassSpec {
        match self {
            ComponentClass::Gpu => &f.gpu,
            ComponentClass::GpuMemory => &f.gpu_memory,
            ComponentClass::Node => &f.node,
            ComponentClass::Nic => &f.nic,
            ComponentClass::Link => &f.link,
            ComponentClass::Switch => &f.switch,
        }
    }

    fn default_per_1000_node_days(self) -> f64 {
        spec::DEFAULT_PER_1000_NODE_DAYS
            .iter()
            .find(|(n, _)| *n == self.name())
            .map_or(0.0, |(_, v)| *v)
    }
}

/// A resolved failure process of one component class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassModel {
    pub class: ComponentClass,
    pub count: u64,
    /// Components of this class per node (0: not attached to a node).
    pub per_node: u64,
    /// Mean time between failures of one component, seconds.
    pub mean_s: f64,
    pub weibull_shape: Option<f64>,
    pub blast_nodes: u64,
}

impl ClassModel {
    pub fn node_of(&self, index: u64) -> Option<u64> {
        (self.per_node > 0).then(|| index / self.per_node)
    }
}

/// Transient slowdowns of every GPU: exponential gaps, fixed duration, factor range.
#[derive(Debug, Clone, PartialEq)]
pub struct TransientModel {
    pub mean_gap_s: f64,
    pub duration_s: f64,
    pub factor: (f64, f64),
}

/// Everything random about a job's hardware, resolved to numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultModel {
    pub seed: u64,
    pub gpus: u64,
    pub gpus_per_node: u64,
    pub nodes: u64,
    pub classes: Vec<ClassModel>,
    pub lemons: LemonSpec,
    pub detection_s: f64,
    pub restart_s: f64,
    pub repair_s: f64,
    pub spares: Option<u64>,
    /// Persistent stragglers, drawn once.
    pub stragglers: Vec<Straggler>,
    pub transients: Vec<TransientModel>,
    pub links: LinkFaults,
}

/// Counts of components of the job and how many nodes a switch failure takes down.
struct Inventory {
    nodes: u64,
    gpus_per_node: u64,
    nics_per_node: u64,
    switches: u64,
    nodes_per_switch: u64,
}

fn inventory(cluster: &ClusterSpec, gpus: u64) -> Inventory {
    let gpus_per_node = cluster.node.gpus.max(1);
    let nodes = gpus.div_ceil(gpus_per_node).max(1);
    let nics_per_node = cluster.node.nics.max(1);
    let down = (cluster.fabric.switch_radix / 2).max(1);
    let switches = (nodes * nics_per_node).div_ceil(down);
    // A rail-optimized leaf serves NIC k of up to `down` nodes; a fat-tree leaf serves whole
    // nodes.
    let nodes_per_switch = match cluster.fabric.kind {
        FabricKind::RailOptimized => down,
        _ => down.div_ceil(nics_per_node),
    }
    .min(nodes);
    Inventory {
        nodes,
        gpus_per_node,
        nics_per_node,
        switches,
        nodes_per_switch,
    }
}

fn class_model(
    class: ComponentClass,
    spec: &ClassSpec,
    inv: &Inventory,
    gpus: u64,
) -> Result<ClassModel, FaultsError> {
    let field = format!("faults.failures.{}", class.name());
    let (count, per_node, blast) = match class {
        ComponentClass::Gpu | ComponentClass::GpuMemory => (gpus, inv.gpus_per_node, 1),
        ComponentClass::Node => (inv.nodes, 1, 1),
        ComponentClass::Nic | ComponentClass::Link => {
            (inv.nodes * inv.nics_per_node, inv.nics_per_node, 1)
        }
        ComponentClass::Switch => (inv.switches, 0, inv.nodes_per_switch),
    };
    let mean_s = match (&spec.mtbf, spec.per_1000_node_days) {
        (Some(_), Some(_)) => {
            return Err(FaultsError::new(
                field,
                "give either `mtbf` or `per_1000_node_days`, not both",
            ));
        }
        (Some(m), None) => duration(&format!("{field}.mtbf"), m)?,
        (None, rate) => {
            let r = rate.unwrap_or_else(|| class.default_per_1000_node_days());
            if !(r.is_finite() && r >= 0.0) {
                return Err(FaultsError::new(
                    format!("{field}.per_1000_node_days"),
                    format!(
                        "must be a non-negative number, got {}",
                        crate::units::short_num(r)
                    ),
                ));
            }
            // r failures per 1000 node-days over `nodes` nodes, spread over `count` parts.
            let class_rate_per_s = r / 1000.0 / 86_400.0 * inv.nodes as f64;
            count as f64 / class_rate_per_s
        }
    };
    if mean_s <= 0.0 {
        return Err(FaultsError::new(
            field,
            format!("the mean time between failures must be > 0, got {mean_s} s"),
        ));
    }
    let weibull_shape = match spec.distribution {
        Distribution::Exponential => None,
        Distribution::Weibull => {
            let k = spec.shape.unwrap_or(1.0);
            if !(k.is_finite() && k > 0.05) {
                return Err(FaultsError::new(
                    format!("{field}.shape"),
                    format!("must be > 0.05, got {}", crate::units::short_num(k)),
                ));
            }
            Some(k)
        }
    };
    Ok(ClassModel {
        class,
        count,
        per_node,
        mean_s,
        weibull_shape,
        blast_nodes: blast,
    })
}

impl FaultModel {
    /// Resolves `spec` for a job of `gpus` GPUs on `cluster`.
    pub fn resolve(
        spec: &FaultsSpec,
        cluster: &ClusterSpec,
        gpus: u64,
    ) -> Result<Self, FaultsError> {
        let inv = inventory(cluster, gpus);
        let f = &spec.failures;
        let mut classes = Vec::new();
        if f.enabled {
            for class in ComponentClass::ALL {
                let c = class_model(class, class.spec(f), &inv, gpus)?;
                if c.count > 0 && c.mean_s.is_finite() {
                    classes.push(c);
                }
            }
        }
        let l = &f.lemons;
        if !(0.0..=1.0).contains(&l.fraction) || l.rate_multiplier < 1.0 {
            return Err(FaultsError::new(
                "faults.failures.lemons",
                format!(
                    "fraction must be in [0, 1] and rate_multiplier >= 1, got fraction {} and \
                     rate_multiplier {}",
                    crate::units::short_num(l.fraction),
                    crate::units::short_num(l.rate_multiplier)
                ),
            ));
        }
        let world = u32::try_from(gpus)
            .map_err(|_| FaultsError::new("parallelism", "more than 2^32 GPUs"))?;
        Ok(FaultModel {
            seed: spec.seed,
            gpus,
            gpus_per_node: inv.gpus_per_node,
            nodes: inv.nodes,
            classes,
            lemons: l.clone(),
            detection_s: duration("faults.failures.detection", &f.detection)?,
            restart_s: duration("faults.failures.restart", &f.restart)?,
            repair_s: duration("faults.failures.repair", &f.repair)?,
            spares: f.spares,
            stragglers: stragglers::persistent(&spec.stragglers, spec.seed, world)?,
            transients: stragglers::transients(&spec.stragglers)?,
            links: stragglers::link_faults(&spec.links, spec.seed, world)?,
        })
    }

    /// The same model under another seed (for replicas).
    pub fn with_seed(&self, spec: &FaultsSpec, seed: u64) -> Result<Self, FaultsError> {
        let world = self.gpus as u32;
        let mut m = self.clone();
        m.seed = seed;
        m.stragglers = stragglers::persistent(&spec.stragglers, seed, world)?;
        m.links = stragglers::link_faults(&spec.links, seed, world)?;
        Ok(m)
    }

    /// Which nodes are lemons (each decided by its own stream).
    pub fn lemon_nodes(&self) -> Vec<bool> {
        if self.lemons.fraction <= 0.0 {
            return vec![false; self.nodes as usize];
        }
        (0..self.nodes)
            .map(|n| {
                let u: f64 = stream(self.seed, StreamClass::Lemon, n).random();
                u < self.lemons.fraction
            })
            .collect()
    }

    /// Failure rate of the whole job, per second (lemons not counted).
    pub fn job_failure_rate_per_s(&self) -> f64 {
        // A fold from +0.0, not `sum()`: an empty f64 sum is -0.0, whose reciprocal would
        // make the MTBF of a failure-free cluster -inf instead of +inf.
        self.classes
            .iter()
            .fold(0.0, |rate, c| rate + c.count as f64 / c.mean_s)
    }

    /// Mean time between job interruptions, seconds (infinite without failures).
    pub fn job_mtbf_s(&self) -> f64 {
        1.0 / self.job_failure_rate_per_s()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;

    #[test]
    fn step_faults_cover_persistent_stragglers_and_links() {
        let spec = FaultsSpec {
            stragglers: vec![StragglerSpec {
                ranks: vec![5],
                slowdown: 1.5,
                ..Default::default()
            }],
            links: vec![LinkFaultSpec {
                ranks: vec![2],
                nic_factor: 0.25,
                ..Default::default()
            }],
            ..Default::default()
        };
        let (_speeds, links) = step_faults(&spec, 16).unwrap();
        assert_eq!(links.nic_factor(2), 0.25);
        assert!(step_faults(&spec, 4).is_err(), "rank 5 is outside 4 GPUs");
    }

    #[test]
    fn defaults_give_meta_rate() {
        let s = toy_scenario(8, 4, 32, 32, 64); // 1024 GPUs = 128 nodes
        let m = FaultModel::resolve(&FaultsSpec::default(), &s.cluster, 1024).unwrap();
        let per_1000_node_days = m.job_failure_rate_per_s() * 86_400.0 / 128.0 * 1000.0;
        assert!(
            (per_1000_node_days - 6.5).abs() < 1e-9,
            "{per_1000_node_days}"
        );
    }

    #[test]
    fn a_cluster_without_failures_never_fails() {
        let s = toy_scenario(8, 1, 1, 8, 8);
        let mut f = FaultsSpec::default();
        f.failures.enabled = false;
        let m = FaultModel::resolve(&f, &s.cluster, 8).unwrap();
        assert!(m.job_failure_rate_per_s().is_sign_positive());
        assert_eq!(m.job_mtbf_s(), f64::INFINITY);
    }

    #[test]
    fn mtbf_and_rate_are_exclusive_and_checked() {
        let s = toy_scenario(8, 1, 1, 8, 8);
        let mut f = FaultsSpec::default();
        f.failures.gpu.mtbf = Some("50000h".into());
        let m = FaultModel::resolve(&f, &s.cluster, 8).unwrap();
        assert_eq!(m.classes[0].mean_s, 50_000.0 * 3600.0);
        f.failures.gpu.per_1000_node_days = Some(1.0);
        let e = FaultModel::resolve(&f, &s.cluster, 8).unwrap_err();
        assert_eq!(e.field, "faults.failures.gpu");
        f.failures.gpu.per_1000_node_days = None;
        f.failures.gpu.mtbf = Some("soon".into());
        assert_eq!(
            FaultModel::resolve(&f, &s.cluster, 8).unwrap_err().field,
            "faults.failures.gpu.mtbf"
        );
    }
}
