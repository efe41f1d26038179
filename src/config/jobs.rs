//! Several jobs on one cluster (`jobs:`, `placement:`, `background:`).
//!
//! A scenario with `jobs:` runs each listed job — its own `model`, `training`,
//! `parallelism` and `stack` (any of them left out is the scenario's own), on `gpus` GPUs
//! or on the explicit `nodes` — on the scenario's one `cluster`, all at once, their
//! traffic sharing the fabric (contention mode). Each job resolves as a scenario of its
//! own: the scenario's tree with the job's keys put in place (keeping their lines, so
//! every rule of [`super::validate`] points at the job's key) and `cluster.nodes` set to
//! the job's node count; the jobs are then placed on the whole cluster (`sim::jobs`).
//!
//! Owns: the schema of these keys and the rules that refuse what the simulator does not
//! model with jobs (analytic mode, a long run, stragglers and link faults, jobs larger than
//! the cluster, node lists that overlap or leave the cluster).

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::tree::{Node, Origin, Value};
use super::{ConfigError, Scenario, ScenarioDraft};
use crate::network::NetworkMode;

/// One entry of `jobs:` as written. The scenario sections are checked when the job
/// resolves as a scenario (`model` may be a preset name, so it is not typed here).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub name: Option<String>,
    pub model: Option<IgnoredAny>,
    pub training: Option<IgnoredAny>,
    pub parallelism: Option<IgnoredAny>,
    pub stack: Option<IgnoredAny>,
    pub gpus: Option<u64>,
    pub nodes: Option<Vec<u64>>,
}

/// How jobs without `nodes:` are put on the cluster's free nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Each job takes the lowest-numbered free nodes, in job order (a job fills whole
    /// leaves before the next starts).
    #[default]
    Packed,
    /// Each job takes free nodes one leaf after another (node `k` of every leaf before
    /// node `k + 1` of any), so jobs spread over every leaf and share them.
    Spread,
    /// Free nodes in an order drawn from the scenario's seed (`faults.seed`, `--seed`).
    Random,
}

impl Placement {
    pub fn label(self) -> &'static str {
        match self {
            Placement::Packed => "packed",
            Placement::Spread => "spread",
            Placement::Random => "random",
        }
    }
}

/// `background:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackground {
    pub nic_leaf: Option<f64>,
    pub leaf_spine: Option<f64>,
    pub spine_core: Option<f64>,
    pub checkpoint_gb_per_node: Option<f64>,
    pub storage_nodes: Option<Vec<u64>>,
}

/// Traffic besides the jobs. Steady traffic (inference, other tenants) holds a fraction
/// of every link of a tier (both directions), which the jobs' flows cannot use; a
/// checkpoint write has every GPU of every job node send its share of
/// `checkpoint_gb_per_node` to the storage nodes (GPU `g` of a node to GPU `g` of a
/// storage node, the nodes taken in turn) from the start of the step, as flows that share
/// links with the jobs' own.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Background {
    pub nic_leaf: f64,
    pub leaf_spine: f64,
    pub spine_core: f64,
    /// GB each job node writes to storage during the step (0: none).
    pub checkpoint_gb_per_node: f64,
    /// Nodes acting as storage servers (no job runs on them).
    pub storage_nodes: Vec<u32>,
}

/// One resolved job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSpec {
    pub name: String,
    /// The job as a scenario of its own (its cluster: the job's nodes of the scenario's
    /// node type).
    #[serde(skip)]
    pub scenario: Box<Scenario>,
    /// Nodes of the job.
    pub node_count: u32,
    /// Explicit nodes (`nodes:`), in rank order; `None`: placed by the policy.
    pub nodes: Option<Vec<u32>>,
}

/// Every job of a scenario and how they share the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobsSpec {
    pub jobs: Vec<JobSpec>,
    pub placement: Placement,
    pub background: Background,
}

/// Most jobs one scenario may list.
pub const MAX_JOBS: usize = 64;

fn at(root: &Node, path: &[&str], field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(&root.locate(path)), field, message)
}

fn at_origin(origin: &Origin, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(origin), field, message)
}

/// The keys of a job entry that replace the scenario's own.
const SECTIONS: [&str; 5] = ["name", "model", "training", "parallelism", "stack"];

/// Resolves `jobs:` of `root` (the scenario tree after overrides, before presets are
/// expanded), when it has them. `top` is the scenario resolved from the same tree (its
/// cluster is the one the jobs share).
pub fn resolve(
    root: &Node,
    top: &Scenario,
    raw_jobs: Option<Vec<RawJob>>,
    placement: Option<Placement>,
    background: Option<RawBackground>,
) -> Result<Option<JobsSpec>, ConfigError> {
    let Some(raw_jobs) = raw_jobs else {
        if placement.is_some() {
            return Err(at(
                root,
                &["placement"],
                "placement",
                "placement places the jobs of `jobs:`, and the scenario has none; list jobs or remove it",
            ));
        }
        if background.is_some() {
            return Err(at(
                root,
                &["background"],
                "background",
                "background traffic is modelled only with `jobs:` (their step times alone and shared); list jobs or remove it",
            ));
        }
        return Ok(None);
    };
    let seq = match root.get("jobs").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.clone(),
        _ => Vec::new(),
    };
    if raw_jobs.is_empty() || raw_jobs.len() > MAX_JOBS {
        return Err(at(
            root,
            &["jobs"],
            "jobs",
            format!("{} jobs; allowed: 1 to {MAX_JOBS}", raw_jobs.len()),
        ));
    }
    check_unmodelled(root, top)?;
    let gpn = top.cluster.node.gpus.max(1);
    let cluster_nodes = top.cluster.nodes;
    let mut jobs = Vec::with_capacity(raw_jobs.len());
    let mut taken: Vec<Option<usize>> = vec![None; cluster_nodes.min(1 << 24) as usize];
    let mut total_nodes = 0u64;
    for (i, (raw, node)) in raw_jobs.iter().zip(&seq).enumerate() {
        let field = |k: &str| format!("jobs[{i}].{k}");
        let key_origin = |k: &str| node.entry(k).map(|e| e.key_origin.clone());
        let nodes = match &raw.nodes {
            Some(list) => {
                let origin = key_origin("nodes").unwrap_or_else(|| node.origin.clone());
                let mut out = Vec::with_capacity(list.len());
                for &n in list {
                    let slot = taken.get_mut(n as usize);
                    match slot {
                        None => {
                            return Err(at_origin(
                                &origin,
                                &field("nodes"),
                                format!(
                                    "node {n} does not exist; allowed: nodes 0 to {} of the cluster's {cluster_nodes}",
                                    cluster_nodes.saturating_sub(1)
                                ),
                            ));
                        }
                        Some(Some(other)) => {
                            return Err(at_origin(
                                &origin,
                                &field("nodes"),
                                format!(
                                    "node {n} is already {}; allowed: each node in at most one job's list, once",
                                    if *other == i {
                                        "listed by this job".to_string()
                                    } else {
                                        format!("job {other}'s")
                                    }
                                ),
                            ));
                        }
                        Some(free) => *free = Some(i),
                    }
                    out.push(n as u32);
                }
                Some(out)
            }
            None => None,
        };
        let count = match (raw.gpus, &nodes) {
            (Some(g), _) if g == 0 || !g.is_multiple_of(gpn) => {
                let origin = key_origin("gpus").unwrap_or_else(|| node.origin.clone());
                return Err(at_origin(
                    &origin,
                    &field("gpus"),
                    format!(
                        "gpus={g}: jobs take whole nodes; allowed: a positive multiple of node.gpus={gpn}"
                    ),
                ));
            }
            (Some(g), Some(list)) if g / gpn != list.len() as u64 => {
                let origin = key_origin("gpus").unwrap_or_else(|| node.origin.clone());
                return Err(at_origin(
                    &origin,
                    &field("gpus"),
                    format!(
                        "gpus={g} but nodes lists {} nodes of {gpn} GPUs = {}; allowed: gpus = nodes x node.gpus, or only one of them",
                        list.len(),
                        list.len() as u64 * gpn
                    ),
                ));
            }
            (Some(g), _) => g / gpn,
            (None, Some(list)) if !list.is_empty() => list.len() as u64,
            (None, _) => {
                return Err(at_origin(
                    &node.origin,
                    &field("gpus"),
                    "a job needs its size: gpus (a multiple of node.gpus) or nodes (a list of node indices)",
                ));
            }
        };
        total_nodes += count;
        if total_nodes > cluster_nodes {
            let origin = key_origin("gpus")
                .or_else(|| key_origin("nodes"))
                .unwrap_or_else(|| node.origin.clone());
            return Err(at_origin(
                &origin,
                &field("gpus"),
                format!(
                    "jobs 0 to {i} need {} GPUs ({total_nodes} nodes) but the cluster has {} ({cluster_nodes} nodes); allowed: at most the cluster's GPUs in all",
                    total_nodes * gpn,
                    cluster_nodes * gpn
                ),
            ));
        }
        let scenario = job_scenario(root, node, count, i, &top.name)?;
        jobs.push(JobSpec {
            name: raw.name.clone().unwrap_or_else(|| format!("job{i}")),
            scenario: Box::new(scenario),
            node_count: count as u32,
            nodes,
        });
    }
    let b = background.unwrap_or_default();
    let storage_nodes = storage_nodes(root, &b, &taken, total_nodes, cluster_nodes)?;
    let background = Background {
        nic_leaf: b.nic_leaf.unwrap_or(0.0),
        leaf_spine: b.leaf_spine.unwrap_or(0.0),
        spine_core: b.spine_core.unwrap_or(0.0),
        checkpoint_gb_per_node: b.checkpoint_gb_per_node.unwrap_or(0.0),
        storage_nodes,
    };
    for (key, v) in [
        ("nic_leaf", background.nic_leaf),
        ("leaf_spine", background.leaf_spine),
        ("spine_core", background.spine_core),
    ] {
        if !(0.0..=0.95).contains(&v) {
            return Err(at(
                root,
                &["background", key],
                &format!("background.{key}"),
                format!(
                    "{v}: the fraction of each link's capacity the background holds; allowed: 0 to 0.95"
                ),
            ));
        }
    }
    Ok(Some(JobsSpec {
        jobs,
        placement: placement.unwrap_or_default(),
        background,
    }))
}

/// The storage nodes of a checkpoint background: given together with
/// `checkpoint_gb_per_node`, on the cluster, in no job's `nodes` list, and leaving the
/// jobs enough nodes (`taken`: the job listing each node, `job_nodes`: nodes all jobs need).
fn storage_nodes(
    root: &Node,
    b: &RawBackground,
    taken: &[Option<usize>],
    job_nodes: u64,
    cluster_nodes: u64,
) -> Result<Vec<u32>, ConfigError> {
    let (gb, list) = match (b.checkpoint_gb_per_node, &b.storage_nodes) {
        (None, None) => return Ok(Vec::new()),
        (Some(gb), Some(list)) if !list.is_empty() => (gb, list),
        _ => {
            return Err(at(
                root,
                &["background", "storage_nodes"],
                "background.storage_nodes",
                "a checkpoint background needs both checkpoint_gb_per_node (what each job node writes) and storage_nodes (a non-empty list of the nodes it writes to)",
            ));
        }
    };
    if !(gb > 0.0 && gb <= 100_000.0) {
        return Err(at(
            root,
            &["background", "checkpoint_gb_per_node"],
            "background.checkpoint_gb_per_node",
            format!("{gb}: GB each job node writes per step; allowed: above 0, at most 100000"),
        ));
    }
    let mut out: Vec<u32> = Vec::with_capacity(list.len());
    for &n in list {
        let bad = match taken.get(n as usize) {
            None => Some(format!(
                "node {n} does not exist; allowed: nodes 0 to {} of the cluster's {cluster_nodes}",
                cluster_nodes.saturating_sub(1)
            )),
            Some(Some(job)) => Some(format!(
                "node {n} is in job {job}'s nodes; allowed: nodes no job lists"
            )),
            Some(None) if out.contains(&(n as u32)) => {
                Some(format!("node {n} is listed twice; allowed: each node once"))
            }
            Some(None) => None,
        };
        if let Some(message) = bad {
            return Err(at(
                root,
                &["background", "storage_nodes"],
                "background.storage_nodes",
                message,
            ));
        }
        out.push(n as u32);
    }
    if job_nodes + out.len() as u64 > cluster_nodes {
        return Err(at(
            root,
            &["background", "storage_nodes"],
            "background.storage_nodes",
            format!(
                "the jobs need {job_nodes} nodes and storage {} of the cluster's {cluster_nodes}; allowed: at most the cluster's nodes in all",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Refuses what the simulator does not model with several jobs.
fn check_unmodelled(root: &Node, top: &Scenario) -> Result<(), ConfigError> {
    let unmodelled: [(bool, &[&str], &str); 4] = [
        (
            top.network.mode != NetworkMode::Contention,
            &["network", "mode"],
            "jobs share the fabric only in the contention model (analytic mode times each collective alone, so jobs could not slow each other); allowed: network.mode: contention",
        ),
        (
            top.run.is_some(),
            &["run"],
            "the long run (failures, checkpoints) is modelled for one job; allowed with jobs: no `run:` section",
        ),
        (
            !top.faults.stragglers.is_empty(),
            &["faults", "stragglers"],
            "stragglers name ranks of one job; allowed with jobs: none",
        ),
        (
            !top.faults.links.is_empty(),
            &["faults", "links"],
            "degraded links name ranks of one job; allowed with jobs: none",
        ),
    ];
    for (bad, path, message) in unmodelled {
        if bad {
            return Err(at(root, path, &path.join("."), message));
        }
    }
    Ok(())
}

/// Job `i` as a scenario: `root` with the job's sections in place of the scenario's,
/// without `jobs`/`placement`/`background`, on `nodes` nodes.
fn job_scenario(
    root: &Node,
    job: &Node,
    nodes: u64,
    i: usize,
    top_name: &str,
) -> Result<Scenario, ConfigError> {
    let mut tree = root.clone();
    if let Value::Map(entries) = &mut tree.value {
        entries.retain(|e| !matches!(e.key.as_str(), "jobs" | "placement" | "background"));
    }
    for key in SECTIONS {
        if let Some(n) = job.get(key) {
            tree.insert(key, n.clone());
        }
    }
    if job.get("name").is_none() {
        let origin = job.origin.clone();
        tree.insert(
            "name",
            Node::new(Value::Str(format!("{top_name}-job{i}")), origin),
        );
    }
    let origin = job
        .entry("gpus")
        .or_else(|| job.entry("nodes"))
        .map_or(job.origin.clone(), |e| e.key_origin.clone());
    let draft = ScenarioDraft {
        root: tree,
        fallback_name: format!("job{i}"),
        source: None,
    }
    .with_located_overrides(&[(format!("cluster.nodes={nodes}"), Some(origin))])?;
    let s = draft.resolve()?;
    // Keys that act only under another plan: a job runs its own plan, so refuse them
    // here (the scenario's `check_own_plan` sees the first job's only).
    s.check_own_plan()?;
    Ok(s)
}
