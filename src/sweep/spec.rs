//! Sweep files and their expansion into points.
//!
//! A sweep file names a base scenario and the variations to compare:
//!
//! ```yaml
//! name: 70b-designs
//! base: ../llama3-70b-1k.yaml      # relative to this file
//! tokens: 1T                       # token budget the cost columns train
//! plan: best                       # best plan per point (default: as-is)
//! top: 3                           # full replays per point when plan: best
//! set: [training.global_batch=1024]   # applied to every point
//! prices: [switch_usd=25000]       # cost overrides (see cost::Prices)
//! designs:                         # named variants, each a list of --set overrides
//!   - { name: h100-ndr, set: [] }
//!   - { name: h100-2to1, set: [cluster.fabric.oversubscription=2] }
//! axes:                            # crossed with every design, in file order
//!   cluster.nodes: [64, 128]
//! ```
//!
//! Expansion is pure: a sweep becomes [`SweepPoint`]s, each a scenario path plus `--set`
//! strings that `config::load_scenario` turns into a scenario. Points are numbered in a
//! fixed order (designs outer, axes in file order, first axis slowest), which sharding and
//! merging rely on.

use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::tree::{self, Node, Origin, Value};

#[derive(Debug, Error)]
pub enum SweepError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("--shard: {0}")]
    Shard(String),
    #[error("{0}")]
    Merge(String),
}

/// How each point's parallelism plan is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PlanChoice {
    /// The plan the scenario (with its overrides) states.
    #[default]
    AsIs,
    /// The fastest plan the search finds (fast mode, then the top few replayed).
    Best,
}

/// One named design: a list of overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Design {
    pub name: String,
    #[serde(default)]
    pub set: Vec<String>,
    /// A different scenario file for this design (relative to the sweep file).
    #[serde(default)]
    pub base: Option<PathBuf>,
}

/// Axes in file order: key path → values (any YAML scalar or flow value).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Axes(pub Vec<(String, Vec<String>)>);

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl<'de> Deserialize<'de> for Axes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Axes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping from key paths to lists of values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Axes, A::Error> {
                let mut out = Vec::new();
                while let Some((k, vs)) = map.next_entry::<String, Vec<serde_json::Value>>()? {
                    out.push((k, vs.iter().map(value_text).collect()));
                }
                Ok(Axes(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A sweep file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    /// Scenario every point starts from; `None` is the built-in default.
    #[serde(default)]
    pub base: Option<PathBuf>,
    /// Token budget, e.g. `1T`, `300B`, `2e12`.
    #[serde(default)]
    pub tokens: Option<String>,
    #[serde(default)]
    pub plan: PlanChoice,
    #[serde(default)]
    pub top: Option<usize>,
    #[serde(default)]
    pub set: Vec<String>,
    #[serde(default)]
    pub prices: Vec<String>,
    #[serde(default)]
    pub designs: Vec<Design>,
    #[serde(default)]
    pub axes: Axes,
    /// Where each override of the file is written (filled by [`SweepSpec::parse`]), so
    /// that a point's error names the sweep file's line of its `set:` entry or axis value.
    #[serde(skip)]
    pub origins: SweepOrigins,
}

/// Locations of a sweep file's overrides, in the order of the file ([`SweepSpec::origins`]);
/// empty for a sweep built in code.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepOrigins {
    /// The top-level `set:` entries.
    pub set: Vec<Origin>,
    /// Each design's `set:` entries.
    pub designs: Vec<Vec<Origin>>,
    /// Each axis's values.
    pub axes: Vec<Vec<Origin>>,
}

impl SweepOrigins {
    /// Reads the locations from the sweep file's located tree (`None` when the text does
    /// not parse as one; serde has then refused it already).
    fn of(path: &Path, text: &str) -> Option<Self> {
        let root = tree::parse(&path.display().to_string(), text).ok()?;
        let items = |n: Option<&Node>| -> Vec<Origin> {
            match n.map(|n| &n.value) {
                Some(Value::Seq(items)) => items.iter().map(|i| i.origin.clone()).collect(),
                _ => Vec::new(),
            }
        };
        let designs = match root.get("designs").map(|n| &n.value) {
            Some(Value::Seq(ds)) => ds.iter().map(|d| items(d.get("set"))).collect(),
            _ => Vec::new(),
        };
        let axes = match root.get("axes").map(|n| &n.value) {
            Some(Value::Map(entries)) => entries.iter().map(|e| items(Some(&e.node))).collect(),
            _ => Vec::new(),
        };
        Some(SweepOrigins {
            set: items(root.get("set")),
            designs,
            axes,
        })
    }
}

/// One scenario to simulate: where it comes from and how it is overridden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Position in the unsharded sweep.
    pub index: usize,
    pub name: String,
    pub scenario: Option<PathBuf>,
    pub overrides: Vec<String>,
    /// Where each override is written in the sweep file (`origins[i]` for
    /// `overrides[i]`; missing or `None`: unknown, e.g. a point built in code).
    #[serde(skip)]
    pub origins: Vec<Option<Origin>>,
}

impl SweepPoint {
    /// The overrides with where each is written, for
    /// [`crate::config::ScenarioDraft::with_located_overrides`].
    pub fn located_overrides(&self) -> Vec<(String, Option<Origin>)> {
        self.overrides
            .iter()
            .enumerate()
            .map(|(i, o)| (o.clone(), self.origins.get(i).cloned().flatten()))
            .collect()
    }
}

/// Parses a token count: a number with an optional K, M, B/G or T suffix.
pub fn parse_count(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('B' | 'G') => (&t[..t.len() - 1], 1e9),
        Some('T') => (&t[..t.len() - 1], 1e12),
        _ => (t, 1.0),
    };
    num.trim()
        .replace('_', "")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|v| v * mult)
        .ok_or_else(|| {
            format!(
                "`{}` is not a count (e.g. 1T, 300B, 2e12)",
                crate::units::shorten(t)
            )
        })
        .and_then(|v| {
            if v < 1.0 {
                Err(format!(
                    "`{}` is less than one token",
                    crate::units::shorten(t)
                ))
            } else if v <= MAX_TOKENS {
                Ok(v)
            } else {
                Err(format!(
                    "`{}` is more than the largest token budget allowed, {MAX_TOKENS:.0e}",
                    crate::units::shorten(t)
                ))
            }
        })
}

use crate::config::budget::MAX_TOKENS;

impl SweepSpec {
    pub fn parse(path: &Path, text: &str) -> Result<Self, SweepError> {
        let mut spec: SweepSpec = serde_saphyr::from_str(text).map_err(|e| SweepError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        spec.origins = SweepOrigins::of(path, text).unwrap_or_default();
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let text = crate::config::input::read_text(path).map_err(|source| SweepError::Io {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn tokens(&self) -> Result<Option<f64>, String> {
        self.tokens.as_deref().map(parse_count).transpose()
    }
}

/// Whether a YAML file is a sweep (has `axes:` or `designs:` at top level) rather than a
/// scenario.
pub fn is_sweep_text(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("axes:") || l.starts_with("designs:"))
}

fn resolve(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Points of `spec` counted from its designs and axis lengths, without expanding them;
/// refused (the count and the limit, [`crate::config::budget::SWEEP_POINTS`]) when
/// `already` points plus these are above the limit. Returns the new total.
pub fn check_points(spec: &SweepSpec, path: &Path, already: u64) -> Result<u64, SweepError> {
    use crate::config::budget::{SWEEP_POINTS, sweep_points};
    let lens: Vec<usize> = spec.axes.0.iter().map(|(_, v)| v.len()).collect();
    let total = sweep_points(spec.designs.len(), &lens)
        .and_then(|n| n.checked_add(already))
        .unwrap_or(u64::MAX);
    let shape = spec
        .axes
        .0
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.len()))
        .collect::<Vec<_>>()
        .join(", ");
    SWEEP_POINTS
        .check(
            total,
            &format!(
                "remove designs (now {}) or axis values (axes: {shape})",
                spec.designs.len().max(1)
            ),
        )
        .map_err(|message| SweepError::Parse {
            path: path.into(),
            message,
        })?;
    Ok(total)
}

/// Every point of a sweep in order: designs (or one unnamed design) × the axes' product.
pub fn expand(spec: &SweepSpec, sweep_dir: &Path) -> Vec<SweepPoint> {
    let default_design = [Design {
        name: String::new(),
        set: Vec::new(),
        base: None,
    }];
    let designs: &[Design] = if spec.designs.is_empty() {
        &default_design
    } else {
        &spec.designs
    };
    let o = &spec.origins;
    let at = |list: Option<&Vec<Origin>>, i: usize| list.and_then(|l| l.get(i)).cloned();
    let combos = axis_product(&spec.axes);
    let mut out = Vec::with_capacity(designs.len() * combos.len());
    for (di, d) in designs.iter().enumerate() {
        let base = d.base.as_ref().or(spec.base.as_ref());
        for combo in &combos {
            let mut name = d.name.clone();
            let mut overrides = spec.set.clone();
            let mut origins: Vec<Option<Origin>> =
                (0..spec.set.len()).map(|i| at(Some(&o.set), i)).collect();
            overrides.extend(d.set.iter().cloned());
            origins.extend((0..d.set.len()).map(|i| at(o.designs.get(di), i)));
            for &(axis, value) in combo {
                let (key, values) = &spec.axes.0[axis];
                let text = format!("{key}={}", values[value]);
                if !name.is_empty() {
                    name.push(' ');
                }
                name.push_str(&text);
                overrides.push(text);
                origins.push(at(o.axes.get(axis), value));
            }
            if name.is_empty() {
                name = spec.name.clone();
            }
            out.push(SweepPoint {
                index: out.len(),
                name,
                scenario: base.map(|b| resolve(sweep_dir, b)),
                overrides,
                origins,
            });
        }
    }
    out
}

/// The product of the axes as `(axis, value)` index lists, first axis slowest.
fn axis_product(axes: &Axes) -> Vec<Vec<(usize, usize)>> {
    let mut combos = vec![Vec::new()];
    for (axis, (_, values)) in axes.0.iter().enumerate() {
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for c in &combos {
            for value in 0..values.len() {
                let mut c2: Vec<(usize, usize)> = c.clone();
                c2.push((axis, value));
                next.push(c2);
            }
        }
        combos = next;
    }
    combos
}

/// A `--shard i/n` selection: points whose index is `i` modulo `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = SweepError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SweepError::Shard(format!("`{s}`: expected i/n with 0 <= i < n"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The points of one shard (round-robin by index), order kept.
pub fn shard(points: Vec<SweepPoint>, shard: Option<Shard>) -> Vec<SweepPoint> {
    match shard {
        None => points,
        Some(s) => points
            .into_iter()
            .filter(|p| p.index % s.count == s.index)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: &str = "\
name: t
base: base.yaml
tokens: 1T
plan: best
set: [training.global_batch=512]
designs:
  - { name: a, set: [cluster.gpu=h100-sxm] }
  - { name: b, set: [cluster.gpu=b200], base: other.yaml }
axes:
  cluster.nodes: [64, 128]
  cluster.fabric.oversubscription: [1.0, 2.5]
";

    #[test]
    fn expansion_is_designs_times_axes_in_order() {
        let spec = SweepSpec::parse(Path::new("s.yaml"), SWEEP).unwrap();
        assert_eq!(spec.plan, PlanChoice::Best);
        assert_eq!(spec.tokens().unwrap(), Some(1e12));
        let pts = expand(&spec, Path::new("dir"));
        assert_eq!(pts.len(), 8);
        assert_eq!(
            pts[0].name,
            "a cluster.nodes=64 cluster.fabric.oversubscription=1.0"
        );
        assert_eq!(
            pts[1].overrides,
            vec![
                "training.global_batch=512",
                "cluster.gpu=h100-sxm",
                "cluster.nodes=64",
                "cluster.fabric.oversubscription=2.5"
            ]
        );
        assert_eq!(pts[0].scenario, Some(PathBuf::from("dir/base.yaml")));
        assert_eq!(pts[4].scenario, Some(PathBuf::from("dir/other.yaml")));
        assert!(pts.iter().enumerate().all(|(i, p)| p.index == i));
    }

    #[test]
    fn shards_partition_the_points() {
        let spec = SweepSpec::parse(Path::new("s.yaml"), SWEEP).unwrap();
        let all = expand(&spec, Path::new("."));
        let mut seen: Vec<usize> = (0..3)
            .flat_map(|i| shard(all.clone(), Some(Shard { index: i, count: 3 })))
            .map(|p| p.index)
            .collect();
        seen.sort();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert!("3/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
    }

    #[test]
    fn counts_parse_with_suffixes() {
        assert_eq!(parse_count("300B").unwrap(), 3e11);
        assert_eq!(parse_count("2e12").unwrap(), 2e12);
        assert!(parse_count("lots").is_err());
        assert!(is_sweep_text(SWEEP));
        assert!(!is_sweep_text("name: x\nmodel: llama3-70b\n"));
    }
}
