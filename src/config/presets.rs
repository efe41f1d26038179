//! Built-in data embedded in the binary: the GPU catalog (`data/gpus.yaml`), the model
//! presets (`data/models.yaml`), the shipped topologies (`topologies/*.yaml`, usable by
//! name) and the default scenario (`scenarios/default.yaml`).
//!
//! Presets are YAML trees in the same schema users write, so they go through the same
//! deserializer and validation. This module only finds them; it does not interpret them.

use std::sync::OnceLock;

use super::ConfigError;
use super::tree::{self, Node};

const GPUS_PATH: &str = "data/gpus.yaml";
const GPUS_YAML: &str = include_str!("../../data/gpus.yaml");
const MODELS_PATH: &str = "data/models.yaml";
const MODELS_YAML: &str = include_str!("../../data/models.yaml");

/// The scenario that runs when no file is given.
pub const DEFAULT_SCENARIO_NAME: &str = "<built-in default scenario>";
pub const DEFAULT_SCENARIO_YAML: &str = include_str!("../../scenarios/default.yaml");

/// Topology files shipped in `topologies/`, usable by name (`cluster: dgx-h100-ndr`).
const TOPOLOGIES: &[(&str, &str)] = &[
    (
        "dgx-a100-hdr",
        include_str!("../../topologies/dgx-a100-hdr.yaml"),
    ),
    (
        "dgx-h100-ndr",
        include_str!("../../topologies/dgx-h100-ndr.yaml"),
    ),
];

/// The embedded text of a built-in source named as in errors (`<built-in default
/// scenario>`, `<built-in topology NAME>`).
pub fn builtin_source_text(source: &str) -> Option<&'static str> {
    if source == DEFAULT_SCENARIO_NAME {
        return Some(DEFAULT_SCENARIO_YAML);
    }
    let name = source
        .strip_prefix("<built-in topology ")?
        .strip_suffix('>')?;
    TOPOLOGIES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Every catalog compiled into the binary (models, GPUs, topologies, the default
/// scenario), in a fixed order: what `provenance.catalog_sha256` hashes.
pub fn embedded_texts() -> Vec<&'static str> {
    let mut v = vec![MODELS_YAML, GPUS_YAML, DEFAULT_SCENARIO_YAML];
    v.extend(TOPOLOGIES.iter().map(|(_, t)| *t));
    v
}

/// A catalog: a mapping from preset name to its definition.
fn catalog(
    cell: &'static OnceLock<Result<Node, ConfigError>>,
    path: &str,
    text: &str,
) -> Result<&'static Node, ConfigError> {
    cell.get_or_init(|| tree::parse(path, text))
        .as_ref()
        .map_err(Clone::clone)
}

fn gpus() -> Result<&'static Node, ConfigError> {
    static CELL: OnceLock<Result<Node, ConfigError>> = OnceLock::new();
    catalog(&CELL, GPUS_PATH, GPUS_YAML)
}

fn models() -> Result<&'static Node, ConfigError> {
    static CELL: OnceLock<Result<Node, ConfigError>> = OnceLock::new();
    catalog(&CELL, MODELS_PATH, MODELS_YAML)
}

fn names(node: &Node) -> Vec<String> {
    match &node.value {
        tree::Value::Map(entries) => entries.iter().map(|e| e.key.clone()).collect(),
        _ => Vec::new(),
    }
}

/// The definition of GPU `name`, if the catalog has it.
pub fn gpu(name: &str) -> Result<Option<Node>, ConfigError> {
    Ok(gpus()?.get(name).cloned())
}

pub fn gpu_names() -> Result<Vec<String>, ConfigError> {
    Ok(names(gpus()?))
}

/// The definition of model preset `name`, if there is one.
pub fn model(name: &str) -> Result<Option<Node>, ConfigError> {
    Ok(models()?.get(name).cloned())
}

pub fn model_names() -> Result<Vec<String>, ConfigError> {
    Ok(names(models()?))
}

/// The `(display path, text)` of a shipped topology, by name.
pub fn topology(name: &str) -> Option<(String, &'static str)> {
    TOPOLOGIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| (format!("<built-in topology {n}>"), *text))
}

pub fn topology_names() -> Vec<&'static str> {
    TOPOLOGIES.iter().map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_parse_and_list_the_required_presets() {
        let gpus = gpu_names().unwrap();
        for g in [
            "a100-sxm-40gb",
            "a100-sxm-80gb",
            "h100-sxm",
            "h200-sxm",
            "b200",
            "gb200",
            "mi300x",
            "rtx-4090",
        ] {
            assert!(gpus.iter().any(|n| n == g), "missing GPU {g}");
        }
        let models = model_names().unwrap();
        for m in [
            "gpt-1.7b",
            "gpt-1t",
            "mcore-gpt-462b",
            "gpt3-175b",
            "llama3-8b",
            "llama3-70b",
            "llama3-405b",
            "mixtral-8x7b",
            "deepseek-v3-like",
        ] {
            assert!(models.iter().any(|n| n == m), "missing model {m}");
        }
        assert_eq!(models.iter().filter(|m| m.starts_with("gpt-")).count(), 10);
        assert_eq!(models.iter().filter(|m| m.starts_with("mcore-")).count(), 9);
    }

    #[test]
    fn every_gpu_names_its_source() {
        for name in gpu_names().unwrap() {
            let node = gpu(&name).unwrap().unwrap();
            assert!(node.get("source").is_some(), "{name} has no source");
        }
    }
}
