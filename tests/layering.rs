//! Modules depend one way: a module may import only from modules on a lower line of the
//! layer table in ARCHITECTURE.md (the fenced block tagged `layers`, highest layer first).
//! This test reads that table and every `crate::<module>` path in `src/` outside
//! `#[cfg(test)]` code, and fails naming each edge that runs upward or sideways.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Support code that tests and benchmarks share; production modules must not use it, and
/// it may use anything below the CLI.
const TEST_SUPPORT: &str = "fixtures";

fn layer_table() -> Vec<Vec<String>> {
    let doc = fs::read_to_string("ARCHITECTURE.md").expect("ARCHITECTURE.md at the crate root");
    let start = doc
        .find("```layers\n")
        .expect("ARCHITECTURE.md has a ```layers block");
    let body = &doc[start + "```layers\n".len()..];
    let end = body.find("```").expect("the layers block is closed");
    body[..end]
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Each module's rank: higher numbers sit higher (may import lower).
fn ranks(table: &[Vec<String>]) -> BTreeMap<String, usize> {
    let n = table.len();
    let mut out = BTreeMap::new();
    for (i, line) in table.iter().enumerate() {
        for m in line {
            out.insert(m.clone(), n - i);
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for lib.rs / main.rs).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix("src").ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// `crate::x` paths in the non-test part of `src` (test modules sit at the end of a file;
/// a file marked `#![cfg(test)]` is test code as a whole).
fn imports(src: &str) -> Vec<String> {
    if src.contains("#![cfg(test)]") {
        return Vec::new();
    }
    let code = src.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

#[test]
fn modules_import_only_lower_layers() {
    let table = layer_table();
    let rank = ranks(&table);
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files.sort();
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let from = *rank
            .get(&module)
            .unwrap_or_else(|| panic!("module `{module}` is missing from the layer table"));
        let text = fs::read_to_string(file).expect("readable source");
        for to in imports(&text) {
            if to == module {
                continue;
            }
            let Some(&to_rank) = rank.get(&to) else {
                violations.push(format!(
                    "{}: imports `{to}`, not in the table",
                    file.display()
                ));
                continue;
            };
            let allowed = if to == TEST_SUPPORT {
                module == TEST_SUPPORT || module_of_is_support(file)
            } else {
                to_rank < from
            };
            if !allowed {
                violations.push(format!(
                    "{}: `{module}` imports `{to}`, which is not below it",
                    file.display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependencies against the layer table in ARCHITECTURE.md:\n{}",
        violations.join("\n")
    );
}

/// Test-support files inside a module (e.g. `sweep/fixtures.rs`) may use the fixtures.
fn module_of_is_support(file: &Path) -> bool {
    file.file_stem().is_some_and(|s| s == TEST_SUPPORT)
}

#[test]
fn the_table_lists_every_module_once() {
    let table = layer_table();
    let mut seen = BTreeMap::new();
    for m in table.iter().flatten() {
        *seen.entry(m.clone()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "listed more than once: {twice:?}");
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    for module in files.iter().filter_map(|f| module_of(f)) {
        assert!(seen.contains_key(&module), "`{module}` is not in the table");
    }
}

#[test]
fn an_upward_import_is_caught() {
    let table: Vec<Vec<String>> = vec![vec!["high".into()], vec!["low".into()]];
    let rank = ranks(&table);
    let found = imports("use crate::high::Thing;\n#[cfg(test)]\nmod tests { use crate::x; }");
    assert_eq!(found, vec!["high".to_string()]);
    assert!(imports("//! Tests.\n#![cfg(test)]\nuse crate::high::Thing;\n").is_empty());
    assert!(rank["high"] > rank["low"]);
}
