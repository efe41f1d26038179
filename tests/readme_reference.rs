//! The README documents every command, every flag and every key the loader accepts, and
//! nothing that no longer exists:
//! - each subcommand of `clustersim --help` has a section "### `clustersim <cmd>`" under
//!   "## Command reference" listing every `--flag` its `--help` shows;
//! - every key a scenario accepts (every leaf; a section may have a row too) is a row of the
//!   table under "### Scenario YAML", and every key of a topology (a scenario's `cluster:`)
//!   a row under "### Topology YAML"; no row names a key the loader rejects.
//!
//! The keys come from the loader itself: each section is probed with an unknown key
//! (`--set faults.__probe__=1`), whose error lists the keys that section accepts, and the
//! probe descends into each of them (lists probed with `[{__probe__: 1}]`).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

const README: &str = include_str!("../README.md");

/// The text of the section under `heading` (up to the next heading of the same or a
/// higher level).
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no section `{heading}`"));
    let body = &text[start + heading.len() + 2..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| {
            let h = &body[i + 1..];
            let n = h.chars().take_while(|&c| c == '#').count();
            n <= level && h[n..].starts_with(' ')
        })
        .map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// The keys in the first column of a section's table rows (`| `a.b` | ... |`), with
/// `{x,y}` alternatives expanded.
fn documented_keys(section: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in section.lines() {
        let Some(cell) = line.strip_prefix("| `") else {
            continue;
        };
        let Some(key) = cell.split('`').next() else {
            continue;
        };
        for k in expand(key) {
            out.insert(k);
        }
    }
    out
}

fn expand(key: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (key.find('{'), key.find('}')) else {
        return vec![key.to_string()];
    };
    key[open + 1..close]
        .split(',')
        .flat_map(|alt| {
            expand(&format!(
                "{}{}{}",
                &key[..open],
                alt.trim(),
                &key[close + 1..]
            ))
        })
        .collect()
}

/// Documented keys the loader handles before typing (`cluster.from` is merged away).
const HANDLED_BEFORE_TYPING: [&str; 1] = ["cluster.from"];

#[test]
fn every_scenario_and_topology_key_is_documented() {
    let accepted = common::accepted_keys();
    assert!(
        accepted.len() > 80,
        "the probe found too little: {accepted:?}"
    );
    let (topology, scenario): (BTreeSet<String>, BTreeSet<String>) = accepted
        .iter()
        .filter(|k| *k != "cluster")
        .cloned()
        .partition(|k| k.starts_with("cluster."));
    let topology: BTreeSet<String> = topology
        .iter()
        .map(|k| k["cluster.".len()..].to_string())
        .collect();
    let mut scenario = scenario;
    scenario.insert("cluster".into());
    for (name, want, heading) in [
        ("scenario", &scenario, "### Scenario YAML"),
        ("topology", &topology, "### Topology YAML"),
    ] {
        let doc = documented_keys(section(README, heading));
        // Every leaf must have a row; a section (`faults.failures`) is documented by its
        // keys' rows, and may have one of its own.
        let is_leaf = |k: &String| !want.iter().any(|o| o.starts_with(&format!("{k}.")));
        let missing: Vec<&String> = want
            .iter()
            .filter(|k| is_leaf(k) && !doc.contains(*k))
            .collect();
        let stale: Vec<&String> = doc
            .difference(want)
            .filter(|k| !HANDLED_BEFORE_TYPING.contains(&k.as_str()))
            .collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "README `{heading}`: {name} keys the loader accepts but the table lacks: {missing:?}; \
             rows for keys it no longer accepts: {stale:?}"
        );
    }
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn subcommands() -> Vec<String> {
    help(&[])
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

fn flags(cmd: &str) -> Vec<String> {
    help(&[cmd])
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-h, ").unwrap_or(l);
            let l = l.split(", ").last().unwrap_or(l);
            l.starts_with("--")
                .then(|| l.split([' ', '=']).next().unwrap().to_string())
        })
        .filter(|f| f != "--help")
        .collect()
}

#[test]
fn every_command_and_flag_is_documented() {
    let commands = subcommands();
    assert!(commands.len() >= 7, "{commands:?}");
    let reference = section(README, "## Command reference");
    for cmd in &commands {
        let sec = section(reference, &format!("### `clustersim {cmd}`"));
        let flags = flags(cmd);
        let missing: Vec<&String> = flags
            .iter()
            .filter(|f| !sec.contains(&format!("`{f}")))
            .collect();
        assert!(
            missing.is_empty(),
            "README `clustersim {cmd}` does not document {missing:?}"
        );
    }
}

#[test]
fn the_topology_help_points_at_a_section_that_exists() {
    let h = help(&["collective"]);
    assert!(h.contains("\"Topology YAML\""), "{h}");
    section(README, "### Topology YAML");
}

/// Prints what the README must list (for writing it): `cargo test --release --test
/// readme_reference -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_reference() {
    for k in common::accepted_keys() {
        println!("key {k}");
    }
    for c in subcommands() {
        println!("cmd {c}: {:?}", flags(&c));
    }
}
