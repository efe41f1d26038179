//! Expands references in a scenario tree into the mappings they name, so that the typed
//! deserializer only ever sees mappings:
//!
//! - `model: llama3-70b` → the preset from `data/models.yaml`;
//! - `cluster: ../topologies/x.yaml` (relative to the file that says it; relative to the
//!   working directory for `--set` values) or `cluster: dgx-h100-ndr` (a shipped topology
//!   by name) → that topology file's tree;
//! - `cluster: { from: <path or name>, nodes: 2048, ... }` → the topology, with the other
//!   keys merged over it (mappings merge key by key, anything else replaces);
//! - `cluster.gpu: h100-sxm` → the entry of `data/gpus.yaml`.
//!
//! Expanded presets take the origin of the name that referenced them, so errors about a
//! preset's fields point at the line that chose the preset.

use std::path::{Path, PathBuf};

use super::ConfigError;
use super::presets;
use super::tree::{self, Node, Origin, Value};

/// Tree paths that may hold a reference to expand, outermost first.
pub const EXPANDABLE: [&[&str]; 3] = [&["model"], &["cluster"], &["cluster", "gpu"]];

/// Expands every reference still in the tree.
pub fn expand_all(root: &mut Node) -> Result<(), ConfigError> {
    for path in EXPANDABLE {
        expand_at(root, path)?;
    }
    Ok(())
}

/// Expands the reference at `path` if there is one there (no-op otherwise).
pub fn expand_at(root: &mut Node, path: &[&str]) -> Result<(), ConfigError> {
    let Some(node) = node_at(root, path) else {
        return Ok(());
    };
    match path {
        ["model"] => expand_preset(node, "model", presets::model, presets::model_names),
        ["cluster"] => expand_cluster(node),
        ["cluster", "gpu"] => expand_preset(node, "cluster.gpu", presets::gpu, presets::gpu_names),
        _ => Ok(()),
    }
}

fn node_at<'a>(root: &'a mut Node, path: &[&str]) -> Option<&'a mut Node> {
    path.iter().try_fold(root, |node, key| node.get_mut(key))
}

type Lookup = fn(&str) -> Result<Option<Node>, ConfigError>;
type Names = fn() -> Result<Vec<String>, ConfigError>;

fn expand_preset(
    node: &mut Node,
    field: &str,
    lookup: Lookup,
    names: Names,
) -> Result<(), ConfigError> {
    let Some(name) = node.as_str().map(str::to_string) else {
        return Ok(());
    };
    let Some(mut preset) = lookup(&name)? else {
        let allowed = names()?.join(", ");
        return Err(ConfigError::new(
            Some(&node.origin),
            field,
            format!("unknown preset `{name}`; allowed: {allowed} (or a mapping)"),
        ));
    };
    preset.set_origin(&node.origin);
    if preset.get("name").is_none() {
        preset.insert("name", Node::new(Value::Str(name), node.origin.clone()));
    }
    *node = preset;
    Ok(())
}

fn expand_cluster(node: &mut Node) -> Result<(), ConfigError> {
    if let Some(reference) = node.as_str().map(str::to_string) {
        let mut topology = load_topology(&reference, &node.origin)?;
        expand_at(&mut topology, &["gpu"])?;
        *node = topology;
        return Ok(());
    }
    let Some(from) = node.get("from") else {
        return Ok(());
    };
    let Some(reference) = from.as_str().map(str::to_string) else {
        return Err(ConfigError::new(
            Some(&from.origin),
            "cluster.from",
            format!(
                "expected a topology file path or name, found {}",
                from.kind()
            ),
        ));
    };
    let mut topology = load_topology(&reference, &from.origin)?;
    expand_at(&mut topology, &["gpu"])?;
    if let Value::Map(entries) = &node.value {
        for e in entries.iter().filter(|e| e.key != "from") {
            merge(&mut topology, &e.key, &e.key_origin, e.node.clone());
        }
    }
    *node = topology;
    Ok(())
}

/// Sets `key` of `base` to `overlay`, merging mappings key by key.
fn merge(base: &mut Node, key: &str, key_origin: &Origin, overlay: Node) {
    let both_maps = matches!(overlay.value, Value::Map(_))
        && base
            .get(key)
            .is_some_and(|b| matches!(b.value, Value::Map(_)));
    if !both_maps {
        base.insert(key, overlay);
        set_key_origin(base, key, key_origin);
        return;
    }
    if let (Some(target), Value::Map(entries)) = (base.get_mut(key), overlay.value) {
        for e in entries {
            merge(target, &e.key, &e.key_origin, e.node);
        }
    }
}

fn set_key_origin(node: &mut Node, key: &str, origin: &Origin) {
    if let Value::Map(entries) = &mut node.value
        && let Some(e) = entries.iter_mut().find(|e| e.key == key)
    {
        e.key_origin = origin.clone();
    }
}

/// Whether a `cluster:` string names a shipped topology rather than a file.
fn is_builtin_name(reference: &str) -> bool {
    !reference.contains(['/', '\\'])
        && !reference.ends_with(".yaml")
        && !reference.ends_with(".yml")
}

/// Loads a topology by name or path; paths are relative to the file that wrote them.
fn load_topology(reference: &str, origin: &Origin) -> Result<Node, ConfigError> {
    if is_builtin_name(reference) {
        let Some((display, text)) = presets::topology(reference) else {
            let allowed = presets::topology_names().join(", ");
            return Err(ConfigError::new(
                Some(origin),
                "cluster",
                format!(
                    "unknown topology `{reference}`; use a path to a .yaml file or a built-in name: {allowed}"
                ),
            ));
        };
        return tree::parse(&display, text);
    }
    let path = resolve_path(reference, origin);
    let written_in =
        (origin.line > 0 && !origin.source.starts_with('<')).then(|| Path::new(&*origin.source));
    super::input::check_reference(&path, written_in)
        .map_err(|m| ConfigError::new(Some(origin), "cluster", m))?;
    let text = super::input::read_text(&path).map_err(|e| {
        ConfigError::new(
            Some(origin),
            "cluster",
            format!("cannot read topology file `{}`: {e}", path.display()),
        )
    })?;
    tree::parse(&path.display().to_string(), &text)
}

fn resolve_path(reference: &str, origin: &Origin) -> PathBuf {
    let path = Path::new(reference);
    // Values from `--set` (line 0) and from built-in sources are relative to the
    // working directory; values written in a file are relative to that file.
    let from_file = origin.line > 0 && !origin.source.starts_with('<');
    match Path::new(&*origin.source).parent() {
        Some(dir) if from_file && path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_preset_expands_with_its_name_and_origin() {
        let mut root = tree::parse("s.yaml", "model: llama3-8b\n").unwrap();
        expand_all(&mut root).unwrap();
        let model = root.get("model").unwrap();
        assert_eq!(model.get("name").unwrap().as_str(), Some("llama3-8b"));
        let o = root.locate(&["model", "heads"]);
        assert_eq!((o.source.as_ref(), o.line), ("s.yaml", 1));
    }

    #[test]
    fn unknown_preset_lists_the_allowed_names() {
        let mut root = tree::parse("s.yaml", "model: llama9\n").unwrap();
        let e = expand_all(&mut root).unwrap_err();
        assert!(e.message.contains("llama3-70b"), "{e}");
        assert_eq!(e.field, "model");
    }

    #[test]
    fn cluster_from_merges_over_a_builtin_topology() {
        let text = "cluster: { from: dgx-h100-ndr, nodes: 4, fabric: { tiers: 3 } }\n";
        let mut root = tree::parse("s.yaml", text).unwrap();
        expand_all(&mut root).unwrap();
        let c = root.get("cluster").unwrap();
        assert_eq!(c.get("nodes").unwrap().value, Value::UInt(4));
        let fabric = c.get("fabric").unwrap();
        assert_eq!(fabric.get("tiers").unwrap().value, Value::UInt(3));
        assert!(fabric.get("kind").is_some());
        assert!(c.get("gpu").unwrap().get("peak_tflops").is_some());
    }
}
