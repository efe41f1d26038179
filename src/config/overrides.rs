//! `--set path=value` overrides: a dotted path into the scenario tree and a YAML value,
//! applied before the tree is deserialized, so any key can be overridden (including keys
//! of a topology file named by `cluster:`, and fields of a preset named by `model:` or
//! `cluster.gpu:`, which are expanded first).
//!
//! The value is parsed as YAML (`4`, `full`, `[40, 40]`, `{ tiers: 3 }`); every node it
//! adds remembers the `--set` argument as its origin, so later errors name it.

use std::sync::Arc;

use super::ConfigError;
use super::expand::{self, EXPANDABLE};
use super::tree::{self, Node, Origin, Value};

/// One parsed `--set` argument.
#[derive(Debug, Clone)]
pub struct Override {
    pub path: Vec<String>,
    pub value: Node,
    origin: Origin,
}

fn bad(origin: &Origin, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(origin), field, message)
}

/// Parses `path=value`.
pub fn parse(arg: &str) -> Result<Override, ConfigError> {
    parse_at(arg, None)
}

/// Parses `path=value` written at `at` (a sweep file's `set:` entry or axis value), which
/// errors about it then name; `None` is a `--set` argument.
pub fn parse_at(arg: &str, at: Option<&Origin>) -> Result<Override, ConfigError> {
    let source: Arc<str> = Arc::from(format!("--set {arg}"));
    let origin = at.cloned().unwrap_or_else(|| Origin::new(&source, 0, 0));
    let Some((path, text)) = arg.split_once('=') else {
        return Err(bad(
            &origin,
            "",
            "expected `path=value`, e.g. `parallelism.tp=4`",
        ));
    };
    let path: Vec<String> = path.trim().split('.').map(str::to_string).collect();
    if path.iter().any(|k| k.is_empty()) {
        return Err(bad(
            &origin,
            "",
            "the path must be dot-separated keys, e.g. `parallelism.tp`",
        ));
    }
    let mut value = if text.trim().is_empty() {
        Node::new(Value::Null, origin.clone())
    } else {
        tree::parse(&source, text).map_err(|e| {
            bad(
                &origin,
                &path.join("."),
                format!("value `{text}` is not valid YAML: {}", e.message),
            )
        })?
    };
    value.set_origin(&origin);
    Ok(Override {
        path,
        value,
        origin,
    })
}

/// Whether an override picks the cluster's base topology (`cluster.from=...`).
pub fn is_cluster_from(ov: &Override) -> bool {
    ov.path.len() == 2 && ov.path[0] == "cluster" && ov.path[1] == "from"
}

/// Orders overrides for applying: every `cluster.from=...` first (in their order), then the
/// rest in order. `cluster.from` picks the topology the scenario's own `cluster:` keys and
/// every other `cluster.*` override apply over, wherever it stands on the command line.
pub fn ordered(mut ovs: Vec<Override>) -> Vec<Override> {
    ovs.sort_by_key(|o| !is_cluster_from(o));
    ovs
}

/// `--set cluster.from=X`: the cluster becomes topology `X` with the scenario's own
/// `cluster:` keys (those besides `from:`) merged over it. A `cluster:` given as a path or
/// name has no keys of its own; an inline topology without `from:` (or one that earlier
/// overrides expanded) cannot be rebased, so that is refused with the way out.
fn rebase_cluster(root: &mut Node, ov: &Override) -> Result<(), ConfigError> {
    let from_map = || {
        let mut m = Node::new(Value::Map(Vec::new()), ov.origin.clone());
        m.insert("from", ov.value.clone());
        m
    };
    let Some(cluster) = root.get_mut("cluster") else {
        if !root.insert("cluster", from_map()) {
            return Err(not_a_mapping(root, &[], ov));
        }
        return Ok(());
    };
    match &cluster.value {
        Value::Str(_) | Value::Null => {
            *cluster = from_map();
            Ok(())
        }
        Value::Map(_) if cluster.get("from").is_some() => {
            cluster.insert("from", ov.value.clone());
            Ok(())
        }
        Value::Map(_) => Err(bad(
            &ov.origin,
            "cluster.from",
            format!(
                "the scenario's cluster (at {}) is a whole topology written inline, with no \
                 `from:` to replace; use `--set cluster=FILE` to replace the whole cluster, or \
                 give the scenario `cluster: {{ from: ..., <changes> }}`",
                cluster.origin
            ),
        )),
        _ => Err(not_a_mapping(cluster, &["cluster"], ov)),
    }
}

/// Applies one override to the scenario tree, creating missing mappings on the way.
pub fn apply(root: &mut Node, ov: &Override) -> Result<(), ConfigError> {
    if is_cluster_from(ov) {
        return rebase_cluster(root, ov);
    }
    let keys: Vec<&str> = ov.path.iter().map(String::as_str).collect();
    let Some((last, parents)) = keys.split_last() else {
        return Err(bad(&ov.origin, "", "empty path"));
    };
    for depth in 0..parents.len() {
        let prefix = &keys[..=depth];
        if EXPANDABLE.contains(&prefix) {
            expand::expand_at(root, prefix)?;
        }
        descend(root, prefix, ov)?;
    }
    let parent = walk(root, parents, ov)?;
    if !parent.insert(last, ov.value.clone()) {
        return Err(not_a_mapping(parent, parents, ov));
    }
    Ok(())
}

/// Makes sure `prefix` exists and is a mapping (its parent already is one).
fn descend(root: &mut Node, prefix: &[&str], ov: &Override) -> Result<(), ConfigError> {
    let Some((key, above)) = prefix.split_last() else {
        return Ok(());
    };
    let parent = walk(root, above, ov)?;
    if parent.get(key).is_none() {
        let empty = Node::new(Value::Map(Vec::new()), ov.origin.clone());
        if !parent.insert(key, empty) {
            return Err(not_a_mapping(parent, above, ov));
        }
    }
    match parent.get(key) {
        Some(node) if matches!(node.value, Value::Map(_)) => Ok(()),
        Some(node) => Err(not_a_mapping(node, prefix, ov)),
        None => Err(bad(
            &ov.origin,
            &ov.path.join("."),
            "could not create the key",
        )),
    }
}

/// Follows `path` through mappings that [`descend`] has checked exist.
fn walk<'a>(root: &'a mut Node, path: &[&str], ov: &Override) -> Result<&'a mut Node, ConfigError> {
    path.iter()
        .try_fold(root, |node, key| node.get_mut(key))
        .ok_or_else(|| bad(&ov.origin, &ov.path.join("."), "path does not exist"))
}

fn not_a_mapping(node: &Node, path: &[&str], ov: &Override) -> ConfigError {
    let at = if path.is_empty() {
        "the scenario".to_string()
    } else {
        format!("`{}`", path.join("."))
    };
    bad(
        &ov.origin,
        &ov.path.join("."),
        format!(
            "cannot set a key inside {at}: it is {} (at {}), not a mapping",
            node.kind(),
            node.origin
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_with(text: &str, args: &[&str]) -> Result<Node, ConfigError> {
        let mut root = tree::parse("s.yaml", text)?;
        for a in args {
            apply(&mut root, &parse(a)?)?;
        }
        Ok(root)
    }

    #[test]
    fn sets_existing_and_new_keys() {
        let root = tree_with(
            "parallelism:\n  tp: 8\n",
            &["parallelism.tp=4", "training.recompute=full"],
        )
        .unwrap();
        let tp = &root.get("parallelism").unwrap().get("tp").unwrap();
        assert!(matches!(tp.value, Value::Int(4) | Value::UInt(4)));
        assert_eq!(tp.origin.source.as_ref(), "--set parallelism.tp=4");
        let r = root.get("training").unwrap().get("recompute").unwrap();
        assert_eq!(r.as_str(), Some("full"));
    }

    #[test]
    fn expands_presets_before_setting_inside_them() {
        let root = tree_with("model: llama3-8b\n", &["model.layers=16"]).unwrap();
        let m = root.get("model").unwrap();
        assert!(matches!(
            m.get("layers").unwrap().value,
            Value::Int(16) | Value::UInt(16)
        ));
        assert!(m.get("hidden").is_some());
    }

    fn cluster_of(text: &str, args: &[&str]) -> Result<Node, ConfigError> {
        let parsed = args
            .iter()
            .map(|a| parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut root = tree::parse("s.yaml", text)?;
        for ov in ordered(parsed) {
            apply(&mut root, &ov)?;
        }
        expand::expand_all(&mut root)?;
        Ok(root.get("cluster").unwrap().clone())
    }

    fn gpu_and_nodes(c: &Node) -> (String, Value) {
        let gpu = c.get("gpu").unwrap().get("name").unwrap().as_str().unwrap();
        (gpu.to_string(), c.get("nodes").unwrap().value.clone())
    }

    #[test]
    fn cluster_from_replaces_the_scenarios_base_topology() {
        let text = "cluster: { from: dgx-h100-ndr, nodes: 8 }\n";
        // Without the override: the scenario's topology, resized.
        let c = cluster_of(text, &[]).unwrap();
        assert_eq!(gpu_and_nodes(&c), ("h100-sxm".into(), Value::UInt(8)));
        // The override takes effect and keeps the scenario's own changes (nodes: 8) ...
        let c = cluster_of(text, &["cluster.from=dgx-a100-hdr"]).unwrap();
        assert_eq!(gpu_and_nodes(&c), ("a100-sxm-80gb".into(), Value::UInt(8)));
        // ... and other `cluster.*` overrides, wherever they stand.
        let c = cluster_of(text, &["cluster.nodes=4", "cluster.from=dgx-a100-hdr"]).unwrap();
        assert_eq!(gpu_and_nodes(&c), ("a100-sxm-80gb".into(), Value::UInt(4)));
        // A cluster given by name or path becomes that topology.
        let c = cluster_of("cluster: dgx-h100-ndr\n", &["cluster.from=dgx-a100-hdr"]).unwrap();
        assert_eq!(gpu_and_nodes(&c).0, "a100-sxm-80gb");
        // An inline topology has nothing to rebase: refused, saying what to do instead.
        let e = cluster_of(
            "cluster: { gpu: h100-sxm, nodes: 2, node: { gpus: 8 } }\n",
            &["cluster.from=dgx-a100-hdr"],
        )
        .unwrap_err();
        assert!(e.message.contains("--set cluster=FILE"), "{e}");
        assert!(
            e.to_string().starts_with("--set cluster.from=dgx-a100-hdr"),
            "{e}"
        );
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let e = parse("parallelism.tp").unwrap_err();
        assert!(e.to_string().starts_with("--set parallelism.tp:"), "{e}");
        let e = tree_with("name: x\n", &["name.first=1"]).unwrap_err();
        assert!(e.to_string().contains("--set name.first=1"), "{e}");
        assert!(e.message.contains("a string"), "{e}");
        let e = parse("a..b=1").unwrap_err();
        assert!(e.message.contains("dot-separated"), "{e}");
    }
}
