//! A golden negative test per input rule: every file in `tests/golden-errors/` (but
//! `base.yaml`, the valid scenario the sweep cases start from) is a small bad input whose
//! exact stderr is in `NAME.stderr` beside it; the binary must exit 2 with that text
//! (file, line, field, value and what is allowed).
//!
//! A case's header names the rules it covers (`# rule: FILE::FN::FIELD`) and the command
//! (`# args: checkpoint --replicas 0`; default `run`; the case file goes where `@` is, else
//! right after the subcommand). [`every_rule_has_a_golden_case`] finds the rule sites in
//! the sources (the calls that refuse input, listed in [`RULE_SITES`]) and fails when one
//! has no case, so a new rule needs a golden file. `CLUSTERSIM_BLESS=1` rewrites the
//! `.stderr` files from the binary's output (review them before committing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = "tests/golden-errors";

/// Source files with the calls that refuse input in them (the rule sites).
const RULE_SITES: &[(&str, &[&str])] = &[
    (
        "src/config/validate.rs",
        &[
            "self.ensure(",
            "self.fail(",
            "return at(",
            "Err(super::error_at(",
        ],
    ),
    (
        "src/config/jobs.rs",
        &["return Err(at(", "return Err(at_origin("],
    ),
    ("src/faults/mod.rs", &["FaultsError::new("]),
    ("src/faults/stragglers.rs", &["FaultsError::new("]),
    ("src/run/mod.rs", &["RunError::spec(", "RunError::Work {"]),
    ("src/run/checkpoint.rs", &["RunError::spec("]),
    ("src/run/sweep.rs", &["RunError::spec("]),
    (
        "src/sweep/spec.rs",
        &["SweepError::Parse {", "SweepError::Shard("],
    ),
];

/// Rule sites no input reaches through the command line, each with the reason.
const UNREACHABLE: &[(&str, &str)] = &[
    (
        "config/validate.rs::schedule::",
        "UNSUPPORTED_SCHEDULES is empty: every schedule the config accepts runs",
    ),
    (
        "faults/mod.rs::resolve::parallelism",
        "more than 2^32 GPUs: loading refuses more than 2^24 first (world_size::cluster.nodes)",
    ),
    (
        "faults/stragglers.rs::transients::",
        "a rate that is not finite: YAML refuses `.inf` first (the straggler-rate-infinite case)",
    ),
    (
        "run/mod.rs::new::checkpoint.every",
        "repeats run_sections::checkpoint.every for a Scenario built in code",
    ),
    (
        "run/mod.rs::new::run.replicas",
        "repeats run_sections::run.replicas for a Scenario built in code",
    ),
    (
        "run/mod.rs::target::run",
        "repeats run_sections::run for a Scenario built in code",
    ),
    (
        "run/mod.rs::target::run.tokens",
        "repeats run_sections::run.tokens for a Scenario built in code",
    ),
    (
        "run/checkpoint.rs::positive::",
        "storage bandwidths: real_sizes refuses them below 0.001 at load first",
    ),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The first `"field"`-like string literal in `text` (a rule's field), or "".
fn first_field(text: &str) -> String {
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        let tail = &rest[start + 1..];
        let Some(end) = tail.find('"') else { break };
        let lit = &tail[..end];
        let ok = !lit.is_empty()
            && lit.starts_with(|c: char| c.is_ascii_lowercase() || c == '-')
            && lit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c));
        if ok {
            return lit.to_string();
        }
        rest = &tail[end + 1..];
    }
    String::new()
}

/// Every rule site as `FILE::FN::FIELD` (`#n` for the n-th of the same key), in source
/// order; code after `#[cfg(test)]` and the helpers `fail`/`ensure` themselves are skipped.
fn rule_sites() -> Vec<String> {
    let mut keys = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (file, patterns) in RULE_SITES {
        let text = std::fs::read_to_string(root().join(file)).expect("source file");
        let lines: Vec<&str> = text.lines().collect();
        let mut func = String::from("?");
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            if t.starts_with("#[cfg(test)]") {
                break;
            }
            if t.starts_with("//") {
                continue;
            }
            if let Some(pos) = line.find("fn ") {
                let name: String = line[pos + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty()
                    && (pos == 0 || !line[..pos].ends_with(|c: char| c.is_alphanumeric()))
                {
                    func = name;
                }
            }
            if func == "fail" || func == "ensure" || t.starts_with("let at =") {
                continue;
            }
            for p in *patterns {
                let Some(at) = line.find(p) else { continue };
                let end = (i + 4).min(lines.len());
                let mut blob = line[at + p.len()..].to_string();
                for l in &lines[i + 1..end] {
                    blob.push(' ');
                    blob.push_str(l);
                }
                let short = file.trim_start_matches("src/");
                let key = format!("{short}::{func}::{}", first_field(&blob));
                let n = seen.entry(key.clone()).or_insert(0);
                *n += 1;
                keys.push(if *n > 1 { format!("{key}#{n}") } else { key });
            }
        }
    }
    keys
}

struct Case {
    name: String,
    file: PathBuf,
    rules: Vec<String>,
    args: Vec<String>,
}

fn cases() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(DIR))
        .expect("golden folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "base.yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("case file");
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let rel = format!("{DIR}/{name}.yaml");
            let mut rules = Vec::new();
            let mut args = "run".to_string();
            for line in text.lines().take_while(|l| l.starts_with('#')) {
                if let Some(r) = line.strip_prefix("# rule: ") {
                    rules.push(r.trim().to_string());
                } else if let Some(a) = line.strip_prefix("# args: ") {
                    args = a.trim().to_string();
                }
            }
            let mut args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
            if let Some(slot) = args.iter_mut().find(|a| *a == "@") {
                *slot = rel.clone();
            } else {
                args.insert(1, rel.clone());
            }
            Case {
                name,
                file: path,
                rules,
                args,
            }
        })
        .collect()
}

#[test]
fn every_rule_has_a_golden_case() {
    let sites = rule_sites();
    let unique: BTreeSet<&String> = sites.iter().collect();
    assert_eq!(unique.len(), sites.len(), "rule keys are unique: {sites:?}");
    let covered: BTreeSet<String> = cases().into_iter().flat_map(|c| c.rules).collect();
    let exempt: BTreeSet<String> = UNREACHABLE.iter().map(|(k, _)| k.to_string()).collect();
    let missing: Vec<&String> = sites
        .iter()
        .filter(|k| !covered.contains(*k) && !exempt.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a golden case in {DIR} (add NAME.yaml with `# rule: KEY` and bless \
         its stderr with CLUSTERSIM_BLESS=1): {missing:#?}"
    );
    let known: BTreeSet<&str> = sites.iter().map(String::as_str).collect();
    let stale: Vec<&String> = covered
        .iter()
        .chain(&exempt)
        .filter(|k| !known.contains(k.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "cases name rules that no longer exist: {stale:#?}"
    );
    // The count the closing note quotes.
    eprintln!(
        "{} rule sites: {} with a golden case, {} unreachable from the command line",
        sites.len(),
        sites.len() - exempt.len(),
        exempt.len()
    );
}

#[test]
fn every_golden_case_exits_2_with_its_exact_message() {
    let bless = std::env::var_os("CLUSTERSIM_BLESS").is_some();
    let out_dir = std::env::temp_dir().join(format!("clustersim-golden-{}", std::process::id()));
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 80, "{} cases", all.len());
    for c in &all {
        let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
            .current_dir(root())
            .args(&c.args)
            .arg("--out")
            .arg(out_dir.join(&c.name))
            .output()
            .expect("binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let golden = c.file.with_extension("stderr");
        if bless {
            std::fs::write(&golden, &stderr).expect("write golden");
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{}: exit {:?}, stderr {stderr}",
                c.name,
                out.status.code()
            ));
        } else if stderr != want {
            failures.push(format!("{}:\n  got  {stderr}  want {want}", c.name));
        } else if !stderr.starts_with("error: ")
            || stderr
                .lines()
                .skip(1)
                .any(|l| !l.is_empty() && !l.starts_with("For more information"))
        {
            failures.push(format!("{}: not one `error: ` line: {stderr}", c.name));
        }
        // A rule about a key in the file points at the file's line; flags name the flag.
        let flag = c.args.iter().skip(2).any(|a| a.starts_with("--"));
        let located = stderr.contains(&format!("{DIR}/{}.yaml:", c.name))
            || stderr.contains(&format!("{DIR}/base.yaml:"));
        if !flag && !located {
            failures.push(format!("{}: no file:line in {stderr}", c.name));
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
