//! The fuzz harness's regression corpus (`tests/fuzz-corpus/cases.txt`): every input the
//! fuzzer (`tests/fuzz.rs`) or issue 17 found exits with its expected code and message,
//! within a time limit, and leaves no staging folder behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clustersim");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn expand(arg: &str) -> String {
    let corpus = format!("{ROOT}/tests/fuzz-corpus/");
    let root = format!("{ROOT}/");
    if arg == "@toy" {
        return format!("{ROOT}/tests/data/checkpoint-toy.yaml");
    }
    arg.replace("@c/", &corpus).replace("@/", &root)
}

#[test]
fn corpus_cases_exit_as_expected() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("tests/fuzz-corpus/cases.txt"))
        .expect("corpus reads");
    let mut failures = Vec::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.splitn(3, '|').map(str::trim).collect();
        let [code, needle, args] = parts[..] else {
            panic!("cases.txt:{}: write `EXIT | MESSAGE | ARGUMENTS`", i + 1);
        };
        let code: i32 = code.parse().expect("exit code");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("corpus-{}", i + 1));
        let _ = std::fs::remove_dir_all(&out);
        let mut argv: Vec<String> = args.split_whitespace().map(expand).collect();
        argv.extend(["--out".into(), out.display().to_string()]);
        let mut child = Command::new(BIN)
            .args(&argv)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let start = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let o = child.wait_with_output().expect("output");
        let err = String::from_utf8_lossy(&o.stderr);
        n += 1;
        if o.status.code() != Some(code) || !err.contains(needle) {
            failures.push(format!(
                "cases.txt:{}: `{args}`: exit {:?} (want {code}), stderr: {}",
                i + 1,
                o.status.code(),
                err.chars().take(600).collect::<String>()
            ));
        }
        if code == 2 && err.len() > 2_000 {
            failures.push(format!(
                "cases.txt:{}: message of {} bytes",
                i + 1,
                err.len()
            ));
        }
        let left = std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".clustersim-tmp")
            });
        if left {
            failures.push(format!("cases.txt:{}: staging folder left", i + 1));
        }
    }
    assert!(n >= 20, "only {n} corpus cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
