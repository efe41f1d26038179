//! Scenario and topology files: YAML types, presets (models, GPUs), `--set` overrides and
//! validation with file, line and field in every error.
//!
//! Produces a resolved [`Scenario`]: plain domain types that the rest of the simulator
//! consumes. Simulates nothing, and never panics on bad input.
//!
//! Loading runs in stages, each in its own module:
//! 1. [`tree`]: parse the YAML into a located tree (malformed YAML, duplicate keys);
//! 2. [`overrides`]: apply `--set path=value` to the tree;
//! 3. [`expand`]: replace preset names and topology paths by the mappings they name
//!    ([`presets`] holds the embedded catalogs);
//! 4. [`raw`]: deserialize the typed file schema (unknown keys, wrong types);
//! 5. [`resolve`]: apply defaults and build domain types;
//! 6. [`validate`]: semantic rules (divisibility, sizes, GPU counts, ...).

pub mod budget;
pub mod expand;
pub mod input;
pub mod jobs;
pub mod overrides;
pub mod presets;
pub mod provenance;
pub mod raw;
pub mod resolve;
pub mod run_spec;
pub mod stack;
pub mod tree;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::faults::FaultsSpec;
use crate::hardware::ClusterSpec;
use crate::model::ModelSpec;
use crate::network::NetworkSpec;
use crate::plan::{ParallelismSpec, TrainingSpec};
pub use provenance::{InputFile, Provenance};
use run_spec::{CheckpointSpec, RunSpec};

/// Which ranks the timeline shows.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub enum TimelineRanks {
    /// One rank per pipeline stage (the first of each stage).
    #[default]
    Representative,
    All,
    List(Vec<u32>),
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputsSpec {
    pub timeline: TimelineRanks,
    pub charts: bool,
}

impl Default for OutputsSpec {
    fn default() -> Self {
        OutputsSpec {
            timeline: TimelineRanks::Representative,
            charts: true,
        }
    }
}

/// A fully resolved scenario: everything one simulation needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    /// The file it came from (`None` for the built-in default).
    pub source: Option<PathBuf>,
    pub model: ModelSpec,
    pub cluster: ClusterSpec,
    pub training: TrainingSpec,
    pub parallelism: ParallelismSpec,
    pub faults: FaultsSpec,
    pub checkpoint: Option<CheckpointSpec>,
    pub run: Option<RunSpec>,
    pub outputs: OutputsSpec,
    /// The network model steps are timed with (`network:`; default analytic).
    pub network: NetworkSpec,
    /// The located YAML the scenario was resolved from (empty for one built in code):
    /// checks that run after loading, on priced values (`run::RunSetup`: the run's work
    /// budget, a duration shorter than one step), point at the key's line through
    /// [`Scenario::error_at`].
    #[serde(skip)]
    pub origins: SourceTree,
    /// Keys the scenario sets that act only under a plan other than its own:
    /// `stack.zero3.*` when its plan is not ZeRO-3 over more than one data-parallel rank.
    /// `plan` may pick such a plan (the search tries ZeRO-3), so loading keeps them;
    /// commands that run the scenario's own plan refuse them
    /// ([`Scenario::check_own_plan`]).
    #[serde(skip)]
    pub plan_only: Vec<ConfigError>,
    /// Several jobs sharing the cluster (`jobs:`): then the scenario's own plan is the
    /// first job's, and `cluster` the whole cluster the jobs share.
    #[serde(skip)]
    pub jobs: Option<Box<jobs::JobsSpec>>,
}

/// The located tree of a loaded scenario ([`Scenario::origins`]). Carries locations only:
/// two scenarios with equal values are equal whatever files they came from.
#[derive(Clone, Default)]
pub struct SourceTree(Option<std::sync::Arc<tree::Node>>);

impl PartialEq for SourceTree {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for SourceTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "SourceTree(located)"
        } else {
            "SourceTree(none)"
        })
    }
}

impl Scenario {
    /// An error about `field` (a dotted path; `[i]` list indices allowed), located at that
    /// key of the file the scenario came from (or its nearest written ancestor), unlocated
    /// for a scenario built in code or a field that is a command-line flag (`--replicas`).
    pub fn error_at(&self, field: &str, message: impl Into<String>) -> ConfigError {
        match &self.origins.0 {
            Some(root) if !field.starts_with("--") => {
                let path: String = field
                    .split('.')
                    .map(|k| k.split('[').next().unwrap_or(k))
                    .collect::<Vec<_>>()
                    .join(".");
                let mut err = error_at(root, &path, message);
                err.field = field.to_string();
                err
            }
            _ => ConfigError {
                location: None,
                field: field.to_string(),
                message: message.into(),
            },
        }
    }

    /// For commands that simulate the scenario's own plan (`run`, `checkpoint`, a
    /// `compare` point taken as it is): the first key that would have no effect under it,
    /// located at its
    /// file and line.
    pub fn check_own_plan(&self) -> Result<(), ConfigError> {
        match self.plan_only.first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// A problem with a scenario or topology file, located as precisely as possible.
///
/// Displays as `file:line:col: field: message` (`--set path=value: field: message` when
/// the value came from the command line).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// `file:line:column` (or just the file, or the `--set` argument) where the problem is.
    pub location: Option<String>,
    /// Dotted path of the offending key, e.g. `parallelism.tp`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    pub fn new(location: Option<&tree::Origin>, field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            location: location.map(ToString::to_string),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(l) = &self.location {
            out.push_str(l);
            out.push_str(": ");
        }
        if !self.field.is_empty() {
            out.push_str(&self.field);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// An error about `field` (a dotted path), located at that key in the scenario tree, or
/// at its nearest written ancestor.
pub(crate) fn error_at(root: &tree::Node, field: &str, message: impl Into<String>) -> ConfigError {
    let path: Vec<&str> = field.split('.').filter(|k| !k.is_empty()).collect();
    ConfigError::new(Some(&root.locate(&path)), field, message)
}

/// Loads a scenario file (or the built-in default when `path` is `None`), applies
/// `--set path=value` overrides, resolves presets and topology, and validates the result.
pub fn load_scenario(path: Option<&Path>, overrides: &[String]) -> Result<Scenario, ConfigError> {
    ScenarioDraft::load(path)?
        .with_overrides(overrides)?
        .resolve()
}

/// Loads a scenario from YAML text; `source_name` names it in errors and anchors relative
/// topology paths.
pub fn load_scenario_str(
    source_name: &str,
    text: &str,
    overrides: &[String],
) -> Result<Scenario, ConfigError> {
    ScenarioDraft::parse(source_name, text, "scenario", None)?
        .with_overrides(overrides)?
        .resolve()
}

/// A scenario between its YAML and a [`Scenario`]: parsed into a located tree (stage 1),
/// `--set` overrides applied one at a time (stage 2), then [`ScenarioDraft::resolve`]
/// runs stages 3–6. [`load_scenario`] is the three calls in a row; the library API takes
/// them one at a time, and each fails with the error `load_scenario` would give.
#[derive(Debug, Clone)]
pub struct ScenarioDraft {
    root: tree::Node,
    fallback_name: String,
    source: Option<PathBuf>,
}

impl ScenarioDraft {
    /// Reads and parses a scenario file, or the built-in default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (source_name, text) = match path {
            Some(p) => (p.display().to_string(), read_file(p)?),
            None => (
                presets::DEFAULT_SCENARIO_NAME.to_string(),
                presets::DEFAULT_SCENARIO_YAML.to_string(),
            ),
        };
        let fallback_name = path
            .and_then(|p| p.file_stem())
            .map_or("default".to_string(), |s| s.to_string_lossy().into_owned());
        Self::parse(
            &source_name,
            &text,
            &fallback_name,
            path.map(Path::to_path_buf),
        )
    }

    /// Parses YAML text named `source_name` in errors; `fallback_name` names the scenario
    /// when the text has no `name:`, `source` is the file it came from.
    pub fn parse(
        source_name: &str,
        text: &str,
        fallback_name: &str,
        source: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let root = tree::parse(source_name, text)?;
        if !matches!(root.value, tree::Value::Map(_)) {
            return Err(ConfigError::new(
                Some(&root.origin),
                "",
                format!(
                    "a scenario is a mapping of keys (name, model, cluster, ...), found {}",
                    root.kind()
                ),
            ));
        }
        Ok(ScenarioDraft {
            root,
            fallback_name: fallback_name.to_string(),
            source,
        })
    }

    /// Applies `path=value` overrides in order (except `cluster.from=...`, which applies
    /// first: it picks the topology every other `cluster.*` key applies over); the first
    /// bad one is the error.
    pub fn with_overrides<S: AsRef<str>>(mut self, args: &[S]) -> Result<Self, ConfigError> {
        let parsed = args
            .iter()
            .map(|a| overrides::parse(a.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        for ov in overrides::ordered(parsed) {
            overrides::apply(&mut self.root, &ov)?;
        }
        Ok(self)
    }

    /// [`ScenarioDraft::with_overrides`] for overrides written in a file (a sweep's
    /// `set:` entries and axis values): each with where it is written, which errors about
    /// it name instead of `--set ...` (`None`: a command-line argument).
    pub fn with_located_overrides(
        mut self,
        args: &[(String, Option<tree::Origin>)],
    ) -> Result<Self, ConfigError> {
        let parsed = args
            .iter()
            .map(|(a, at)| overrides::parse_at(a, at.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        for ov in overrides::ordered(parsed) {
            overrides::apply(&mut self.root, &ov)?;
        }
        Ok(self)
    }

    /// Expands presets and topology references, deserializes, resolves and validates.
    pub fn resolve(self) -> Result<Scenario, ConfigError> {
        self.resolve_traced().map(|(s, _)| s)
    }

    /// [`ScenarioDraft::resolve`], also returning the sources the scenario was read from
    /// (the scenario file, topology files or built-in names, as given; see
    /// [`provenance::tree_sources`]).
    pub fn resolve_traced(mut self) -> Result<(Scenario, Vec<String>), ConfigError> {
        // Jobs resolve from the tree as written (their presets expand in their own trees).
        let unexpanded = ["jobs", "placement", "background"]
            .iter()
            .any(|k| self.root.get(k).is_some())
            .then(|| self.root.clone());
        expand::expand_all(&mut self.root)?;
        let sources = provenance::tree_sources(&self.root);
        let mut raw: raw::RawScenario = tree::from_node(&self.root, "")?;
        let (raw_jobs, placement, background) =
            (raw.jobs.take(), raw.placement.take(), raw.background.take());
        let mut scenario = resolve::scenario(raw, &self.root, &self.fallback_name, self.source)?;
        if raw_jobs.is_some() || placement.is_some() || background.is_some() {
            let written = unexpanded.as_ref().unwrap_or(&self.root);
            let spec = jobs::resolve(written, &scenario, raw_jobs, placement, background)?;
            if let Some(spec) = spec {
                // The scenario's own plan is the first job's, on the whole cluster.
                let first = &spec.jobs[0].scenario;
                let mut top = (**first).clone();
                top.name = scenario.name;
                top.source = scenario.source;
                top.cluster = scenario.cluster;
                top.jobs = Some(Box::new(spec));
                top.origins = SourceTree(Some(std::sync::Arc::new(self.root)));
                return Ok((top, sources));
            }
        }
        validate::validate(&scenario, &self.root)?;
        validate::faults(&scenario, &self.root)?;
        validate::run_sections(&scenario, &self.root)?;
        scenario.origins = SourceTree(Some(std::sync::Arc::new(self.root)));
        Ok((scenario, sources))
    }
}

fn read_file(p: &Path) -> Result<String, ConfigError> {
    input::read_text(p).map_err(|e| ConfigError {
        location: Some(p.display().to_string()),
        field: String::new(),
        message: format!("cannot read scenario file: {e}"),
    })
}

/// Loads a topology file (or a shipped topology by name) on its own, for commands that time
/// collectives without a scenario. Errors name the file, line and field as for scenarios.
pub fn load_topology(reference: &str) -> Result<ClusterSpec, ConfigError> {
    let quoted = serde_json::to_string(reference).unwrap_or_default();
    let mut root = tree::parse("--topology", &format!("cluster: {quoted}\n"))?;
    expand::expand_all(&mut root)?;
    let node = root
        .get("cluster")
        .ok_or_else(|| ConfigError::new(Some(&root.origin), "cluster", "missing topology"))?;
    let raw: raw::RawTopology = tree::from_node(node, "cluster")?;
    let cluster = resolve::cluster(raw);
    let checks: [(bool, &str, &str); 3] = [
        (cluster.nodes > 0, "nodes", "must be at least 1"),
        (cluster.node.gpus > 0, "node.gpus", "must be at least 1"),
        (
            cluster.node.nic_gbps > 0.0 || cluster.nodes == 1,
            "node.nic_gbps",
            "must be positive for multi-node clusters",
        ),
    ];
    for (ok, field, message) in checks {
        if !ok {
            return Err(ConfigError::new(
                Some(&node.locate(&[field])),
                field,
                message,
            ));
        }
    }
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_files(dir: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("shipped directory exists")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_shipped_scenario_loads_and_validates() {
        let files = yaml_files("scenarios");
        assert!(files.len() >= 4, "{files:?}");
        for f in files {
            let s = load_scenario(Some(&f), &[]).unwrap_or_else(|e| panic!("{e}"));
            match &s.jobs {
                // Several jobs share the cluster: together they fit in it.
                Some(spec) => {
                    let used: u64 = spec
                        .jobs
                        .iter()
                        .map(|j| j.scenario.parallelism.world_size())
                        .sum();
                    assert!(used <= s.cluster.total_gpus(), "{f:?}");
                }
                None => assert_eq!(s.parallelism.world_size(), s.cluster.total_gpus(), "{f:?}"),
            }
        }
    }

    #[test]
    fn every_shipped_topology_loads_and_validates() {
        let files = yaml_files("topologies");
        assert!(files.len() >= 2);
        for f in files {
            let c = load_topology(&f.to_string_lossy()).unwrap_or_else(|e| panic!("{e}"));
            assert!(c.total_gpus() >= 8, "{f:?}");
        }
    }

    fn with_model(model: &str) -> Scenario {
        let text = format!(
            "model: {model}\ncluster: {{ from: dgx-h100-ndr, nodes: 1 }}\n\
             training: {{ seq_len: 4096, global_batch: 8 }}\n"
        );
        load_scenario_str("t.yaml", &text, &[]).unwrap_or_else(|e| panic!("{model}: {e}"))
    }

    #[test]
    fn every_model_preset_resolves_with_the_published_size() {
        for name in presets::model_names().unwrap() {
            assert_eq!(with_model(&name).model.name, name);
        }
        let billions = |m: &str| with_model(m).model.total_params() as f64 / 1e9;
        let expect = [
            ("gpt3-175b", 175.0),
            ("llama3-8b", 8.0),
            ("llama3-70b", 70.6),
            ("llama3-405b", 405.0),
            ("mixtral-8x7b", 46.7),
            ("gpt-1.7b", 1.65), // the paper rounds to 1.7
            ("gpt-145.6b", 145.6),
            ("gpt-1t", 1008.0),
            ("mcore-gpt-70b", 70.0),
            ("mcore-gpt-462b", 462.0),
            ("deepseek-v3-like", 671.0),
        ];
        for (m, b) in expect {
            let got = billions(m);
            assert!((got / b - 1.0).abs() < 0.03, "{m}: {got:.1}B vs {b}B");
        }
    }

    /// DeepSeek-V3 as published: 671B parameters and 37B active per token in the main
    /// model (arXiv 2412.19437 §1), MLA projections of the released config, and an MTP
    /// module of one MoE layer plus its `2h -> h` projection (11.6B; the released 685B
    /// checkpoint also stores its own copies of the 0.93B embedding and output head).
    #[test]
    fn deepseek_v3_preset_has_the_published_sizes() {
        let mut m = with_model("deepseek-v3").model;
        let mla = m.mla.expect("deepseek-v3 has MLA");
        assert_eq!(
            (mla.q_lora_rank, mla.kv_lora_rank, mla.qk_rope_head_dim),
            (Some(1536), 512, 64)
        );
        assert_eq!(m.mtp_depth, 1);
        let with_mtp = m.total_params() as f64 / 1e9;
        m.mtp_depth = 0;
        let main = m.total_params() as f64 / 1e9;
        assert!((main - 671.0).abs() < 0.5, "{main}");
        assert!((m.active_params() as f64 / 1e9 - 37.0).abs() < 1.0);
        let heads = 2.0 * (m.vocab * m.hidden) as f64 / 1e9;
        assert!((with_mtp + heads - 685.0).abs() < 1.0, "{with_mtp}");
        // MLA's attention: 187M parameters per layer against MHA's 4h^2 = 206M.
        let attn = m.attention_params() as f64 / 1e6;
        assert!((attn - 187.1).abs() < 0.1, "{attn}");
    }

    #[test]
    fn every_gpu_preset_resolves_with_its_calibration() {
        for name in presets::gpu_names().unwrap() {
            let text = format!(
                "model: llama3-8b\ncluster: {{ from: dgx-h100-ndr, nodes: 1, gpu: {name} }}\n\
                 training: {{ seq_len: 4096, global_batch: 8 }}\n"
            );
            let s = load_scenario_str("t.yaml", &text, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.cluster.gpu.name, name);
        }
        let h100 = with_model("llama3-8b").cluster.gpu;
        assert!((h100.gemm_efficiency * 989.0 - 798.0).abs() < 1.0);
        assert!((h100.hbm_efficiency * 3350.0 - 2900.0).abs() < 5.0);
    }

    #[test]
    fn default_scenario_is_a_small_3d_parallel_run() {
        let s = load_scenario(None, &[]).unwrap();
        let p = &s.parallelism;
        assert!(p.tp > 1 && p.pp > 1 && p.dp > 1, "{p:?}");
        assert!((64..=256).contains(&s.cluster.total_gpus()));
        assert_eq!(s.source, None);
    }

    #[test]
    fn defaults_fill_omitted_keys() {
        let text = "model: llama3-8b\ncluster: { from: dgx-h100-ndr, nodes: 2 }\n\
                    training: { seq_len: 4096, global_batch: 64 }\nparallelism: { tp: 2 }\n";
        let s = load_scenario_str("t.yaml", text, &[]).unwrap();
        assert_eq!(s.parallelism.dp, 8);
        assert!(s.parallelism.sequence_parallel);
        assert_eq!(s.parallelism.zero, 1);
        assert_eq!(s.training.micro_batch, 1);
        assert_eq!(s.cluster.node.nvlink_domain, 8);
        assert_eq!(s.cluster.node.pcie_gbs, 64.0);
    }

    #[test]
    fn overrides_reach_topology_files_and_presets() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/llama3-70b-1k.yaml");
        let sets = [
            "cluster.nodes=64",
            "parallelism.dp=16",
            "cluster.gpu.memory_gb=96",
            "model.layers=40",
            "training.recompute=full",
        ]
        .map(String::from);
        let s = load_scenario(Some(&f), &sets).unwrap();
        assert_eq!(s.cluster.nodes, 64);
        assert_eq!(s.cluster.gpu.memory_gb, 96.0);
        assert_eq!(s.model.layers, 40);
        assert_eq!(s.training.recompute, crate::plan::Recompute::Full);
    }
}
