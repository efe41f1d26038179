//! The numbers the docs quote are the numbers the binary produces now.
//!
//! Every fenced block tagged `console` in README.md and ARCHITECTURE.md is an example to
//! check: each `$ COMMAND` line runs (through `sh -c`, from the repository root, with
//! `clustersim` on `PATH` as the binary under test), and the lines that follow it, up to the
//! next `$` line or the end of the block, must match its standard output line by line from
//! the first line on. A line `...` stands for any number of lines; output after the last
//! shown line is not checked; trailing blanks are ignored. A change that moves a quoted
//! number fails here until the doc is updated.
//!
//! What is not checked: benchmark timings (wall and CPU time depend on the machine; they
//! live in `benches/` and the README's "Scale and speed" table says how they were measured).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One `$ command` with the output lines the doc shows for it.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    doc: String,
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn parse_examples(doc: &str, text: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut in_console = false;
    let mut current: Option<Example> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if !in_console {
            in_console = line.trim_start() == "```console";
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_console = false;
            out.extend(current.take());
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.extend(current.take());
            current = Some(Example {
                doc: doc.to_string(),
                line: i + 1,
                command: cmd.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(ex) = current.as_mut() {
            ex.expected.push(line.to_string());
        }
    }
    out
}

/// Whether `expected` (with `...` gaps) appears in `actual` in order. Returns the first
/// expected line that could not be found, for the failure message.
fn first_missing(expected: &[String], actual: &str) -> Option<String> {
    let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
    let mut pos = 0;
    let mut gap = expected.first().is_some_and(|l| l == "...");
    for want in expected {
        if want == "..." {
            gap = true;
            continue;
        }
        let found = if gap {
            actual[pos..]
                .iter()
                .position(|a| a == want)
                .map(|k| pos + k)
        } else {
            (actual.get(pos) == Some(&want.as_str())).then_some(pos)
        };
        match found {
            Some(k) => pos = k + 1,
            None => return Some(want.clone()),
        }
        gap = false;
    }
    None
}

fn binary_dir() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_clustersim"));
    bin.parent().expect("binary has a folder").to_path_buf()
}

fn run(example: &Example) -> String {
    let path = format!(
        "{}:{}",
        binary_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&example.command)
        .env("PATH", path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}:{}: `{}` failed ({}):\n{}",
        example.doc,
        example.line,
        example.command,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_doc(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let text = fs::read_to_string(&path).expect("doc exists");
    let mut failures = Vec::new();
    for ex in parse_examples(name, &text) {
        let actual = run(&ex);
        if let Some(missing) = first_missing(&ex.expected, &actual) {
            failures.push(format!(
                "{}:{}: `{}`\n  the doc shows:   {missing}\n  the binary printed:\n{actual}",
                ex.doc, ex.line, ex.command
            ));
        }
    }
    failures
}

#[test]
fn readme_examples_match_the_binary() {
    let failures = check_doc("README.md");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn architecture_examples_match_the_binary() {
    let failures = check_doc("ARCHITECTURE.md");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_readme_has_examples_to_check() {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README exists");
    assert!(parse_examples("README.md", &text).len() >= 4);
}

#[test]
fn parser_and_matcher() {
    let doc = "text\n```console\n$ echo a\na\n...\nc\n$ true\n```\n```sh\n$ not checked\n```\n";
    let ex = parse_examples("d", doc);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].command, "echo a");
    assert_eq!(ex[0].expected, vec!["a", "...", "c"]);
    assert_eq!(ex[1].line, 7);
    assert_eq!(first_missing(&ex[0].expected, "a\nb\nb\nc\n"), None);
    assert_eq!(first_missing(&ex[0].expected, "a\nb\n"), Some("c".into()));
    // Without `...`, lines must be adjacent.
    let strict = vec!["a".to_string(), "c".to_string()];
    assert_eq!(first_missing(&strict, "a\nb\nc"), Some("c".into()));
    // A changed number is caught.
    assert_eq!(
        first_missing(&["step 6.24".to_string()], "step 8.38"),
        Some("step 6.24".into())
    );
}
