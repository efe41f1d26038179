//! What produced an output file: the clustersim version, a hash of the built-in catalogs
//! (models, GPUs, topologies, the default scenario), every input file as given with its
//! SHA-256, the `--set` overrides, seed, network mode and the command's own settings.
//! Written into `summary.json`, `checkpoint.json`, `compare.json`, `plans.json` and beside
//! the CSVs (`compare.provenance.json`, `plans.provenance.json`), so two results can always
//! be told apart afterwards.
//!
//! Deterministic: no time stamps, no host names, and paths exactly as given (relative paths
//! stay relative), so the same command on another machine writes the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::presets;
use super::tree::{Node, Value};

/// One input file: its path as given and the SHA-256 of its bytes (what `sha256sum`
/// prints). Built-in sources (`<built-in topology dgx-h100-ndr>`) hash their embedded text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    pub sha256: String,
}

/// What produced an output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The clustersim version (`Cargo.toml`).
    pub clustersim: String,
    /// SHA-256 over the catalogs compiled into the binary (models, GPUs, shipped
    /// topologies, the default scenario, the calibration bands).
    pub catalog_sha256: String,
    /// The command (`run`, `checkpoint`, `compare`, `plan`, `merge`).
    pub command: String,
    /// Every file read, as given, in the order first read.
    pub inputs: Vec<InputFile>,
    /// Every `--set path=value` given to the command, in order (a sweep's own `set:`
    /// lists are in its file, hashed above).
    pub overrides: Vec<String>,
    /// Network mode and routing of each scenario simulated (`analytic, adaptive`; one for
    /// `run`; the distinct ones of the points, in point order, for `compare`).
    pub network: Vec<String>,
    /// Fault seed of each scenario simulated (distinct values, in order).
    pub seed: Vec<u64>,
    /// The command's options that change results (`replicas`, `intervals`, `tokens`, ...).
    pub settings: BTreeMap<String, String>,
    /// The training software stack and its behaviour; `null` until scenarios have a
    /// `stack:` section.
    pub stack: Option<serde_json::Value>,
}

impl Provenance {
    /// An empty record for `command`: version and catalog hash filled in.
    pub fn new(command: &str) -> Self {
        Provenance {
            clustersim: env!("CARGO_PKG_VERSION").to_string(),
            catalog_sha256: catalog_sha256(),
            command: command.to_string(),
            inputs: Vec::new(),
            overrides: Vec::new(),
            network: Vec::new(),
            seed: Vec::new(),
            settings: BTreeMap::new(),
            stack: None,
        }
    }

    /// Adds input sources (file paths or `<built-in ...>` names) not already listed.
    pub fn add_inputs<S: AsRef<str>>(&mut self, sources: &[S]) {
        for s in sources {
            let s = s.as_ref();
            if !self.inputs.iter().any(|i| i.path == s) {
                self.inputs.push(InputFile {
                    path: s.to_string(),
                    sha256: source_sha256(s),
                });
            }
        }
    }

    /// Adds a network mode and a seed (kept once each, in order).
    pub fn add_scenario(&mut self, network: &str, seed: u64) {
        if !self.network.iter().any(|n| n == network) {
            self.network.push(network.to_string());
        }
        if !self.seed.contains(&seed) {
            self.seed.push(seed);
        }
    }

    /// Records a setting.
    pub fn set(&mut self, key: &str, value: impl ToString) {
        self.settings.insert(key.to_string(), value.to_string());
    }

    /// As a JSON value, to insert into an output.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Pretty JSON with a trailing newline (the `*.provenance.json` sidecars).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// `value` as pretty JSON (newline-terminated) with a `provenance` key after its own
/// keys (none when `provenance` is `None`); key order is kept.
pub fn json_with<T: Serialize>(
    value: &T,
    provenance: Option<&Provenance>,
) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct With<'a, T: Serialize> {
        #[serde(flatten)]
        value: &'a T,
        #[serde(skip_serializing_if = "Option::is_none")]
        provenance: Option<&'a Provenance>,
    }
    let mut s = serde_json::to_string_pretty(&With { value, provenance })?;
    s.push('\n');
    Ok(s)
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a source: a file's bytes, or a built-in source's embedded text;
/// `unreadable` when neither can be had.
pub fn source_sha256(source: &str) -> String {
    if let Some(text) = presets::builtin_source_text(source) {
        return sha256_hex(text.as_bytes());
    }
    match super::input::read_bytes(std::path::Path::new(source)) {
        Ok(bytes) => sha256_hex(&bytes),
        Err(_) => "unreadable".to_string(),
    }
}

/// SHA-256 over every catalog compiled into the binary.
pub fn catalog_sha256() -> String {
    let mut h = Sha256::new();
    for text in presets::embedded_texts() {
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The sources (files, built-in names) a scenario tree was read from, in first-seen order:
/// the scenario file first, then topology files; `--set` values are not sources.
pub fn tree_sources(root: &Node) -> Vec<String> {
    fn walk(n: &Node, out: &mut Vec<String>) {
        push(&n.origin.source, out);
        match &n.value {
            Value::Seq(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Map(entries) => entries.iter().for_each(|e| {
                push(&e.key_origin.source, out);
                walk(&e.node, out);
            }),
            _ => {}
        }
    }
    fn push(s: &str, out: &mut Vec<String>) {
        if !s.starts_with("--set ") && !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_and_sources_are_listed_once() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut p = Provenance::new("run");
        p.add_inputs(&["<built-in default scenario>", "<built-in default scenario>"]);
        assert_eq!(p.inputs.len(), 1);
        assert_eq!(
            p.inputs[0].sha256,
            sha256_hex(presets::DEFAULT_SCENARIO_YAML.as_bytes())
        );
        p.add_inputs(&["/nonexistent/x.yaml"]);
        assert_eq!(p.inputs[1].sha256, "unreadable");
        assert_eq!(p.catalog_sha256.len(), 64);
        assert_eq!(p.clustersim, env!("CARGO_PKG_VERSION"));
    }
}
