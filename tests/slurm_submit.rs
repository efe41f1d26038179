//! `scripts/slurm/sweep.sbatch` against a fake Slurm: `sinfo`, `sbatch` and `scancel` on PATH
//! are small bash scripts that answer from environment variables and log their arguments.
//! The real single-node Slurm run is `scripts/slurm/ci-check.sh` (in `.ci/run`). Skipped
//! when bash is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm/sweep.sbatch");

/// Answers `-o %P` from FAKE_PARTITIONS ("small* big"), `-N -p P -o %c` from
/// FAKE_CPUS_<P> (space-separated CPUs per node) and `-o %l` from FAKE_TIMELIMIT.
const FAKE_SINFO: &str = r#"#!/usr/bin/env bash
echo "$*" >>"$FAKE_LOG/sinfo.args"
part= fmt=
while [[ $# -gt 0 ]]; do
  case $1 in
  -p) part=$2; shift ;;
  -o) fmt=$2; shift ;;
  esac
  shift
done
case $fmt in
%P) printf '%s\n' $FAKE_PARTITIONS ;;
%c) for p in ${part//,/ }; do v=FAKE_CPUS_$p; printf '%s\n' ${!v:-}; done ;;
%l) echo "${FAKE_TIMELIMIT:-infinite}" ;;
esac
"#;

/// Logs each call's arguments on one line and answers job IDs 1, 2, ...
const FAKE_SBATCH: &str = r#"#!/usr/bin/env bash
printf '%s\n' "$*" >>"$FAKE_LOG/sbatch.args"
wc -l <"$FAKE_LOG/sbatch.args" | tr -d ' '
"#;

const FAKE_SCANCEL: &str = "#!/usr/bin/env bash\necho \"$*\" >>\"$FAKE_LOG/scancel.args\"\n";

/// Stands in for clustersim: logs its arguments; as `merge`, fails when FAKE_MERGE_FAIL is
/// set, else writes compare.csv / compare.json / compare.png into --out.
const FAKE_BIN: &str = r#"#!/usr/bin/env bash
echo "$*" >>"$FAKE_LOG/bin.args"
[[ $1 == merge ]] || exit 0
[[ -z ${FAKE_MERGE_FAIL:-} ]] || { echo "error: shards do not cover the sweep" >&2; exit 2; }
out=${@: -1}
mkdir -p "$out"
for f in compare.csv compare.json compare.png; do echo new >"$out/$f"; done
"#;

fn have_bash() -> bool {
    let ok = Command::new("bash")
        .args(["-c", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: no bash");
    }
    ok
}

struct Fake {
    root: PathBuf,
}

impl Fake {
    fn new(name: &str) -> Fake {
        let root =
            std::env::temp_dir().join(format!("clustersim-slurm-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("log")).unwrap();
        for (name, text) in [
            ("sinfo", FAKE_SINFO),
            ("sbatch", FAKE_SBATCH),
            ("scancel", FAKE_SCANCEL),
            ("clustersim", FAKE_BIN),
        ] {
            let p = root.join("bin").join(name);
            std::fs::write(&p, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(root.join("sweep.yaml"), "name: toy\n").unwrap();
        Fake { root }
    }

    fn out(&self) -> PathBuf {
        self.root.join("out")
    }

    /// Runs the script with `args` and `env` on a clean environment plus the fakes.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.arg(SCRIPT).args(args).current_dir(&self.root);
        for v in [
            "SBATCH_EXTRA",
            "SBATCH_PARTITION",
            "CPUS_PER_TASK",
            "TIME_LIMIT",
            "CLUSTERSIM_ROLE",
            "CLUSTERSIM_OUT",
            "CLUSTERSIM_SWEEP",
            "CLUSTERSIM_SHARDS",
            "SLURM_JOB_ID",
            "SLURM_ARRAY_TASK_ID",
            "SLURM_ARRAY_TASK_COUNT",
            "SLURM_CPUS_PER_TASK",
        ] {
            c.env_remove(v);
        }
        c.env("PATH", path)
            .env("FAKE_LOG", self.root.join("log"))
            .env("CLUSTERSIM_BIN", self.root.join("bin/clustersim"))
            .env("FAKE_PARTITIONS", "small* big")
            .env("FAKE_CPUS_small", "2 2")
            .env("FAKE_CPUS_big", "16 32");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// Submits sweep.yaml into out/ as 4 shards.
    fn submit(&self, env: &[(&str, &str)]) -> Output {
        self.run(&["sweep.yaml", "out", "4"], env)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.join("log").join(name)).unwrap_or_default()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_refused(o: &Output, f: &Fake, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    assert_eq!(f.log("sbatch.args"), "", "nothing may be submitted");
}

#[test]
fn cpus_per_task_beyond_every_node_of_the_partition_is_refused() {
    if !have_bash() {
        return;
    }
    // The default partition `small` has 2-CPU nodes: 8 CPUs per task would pend forever.
    let f = Fake::new("cpus-refused");
    let o = f.submit(&[("CPUS_PER_TASK", "8")]);
    assert_refused(
        &o,
        &f,
        &["CPUS_PER_TASK=8", "'small'", "2 CPUs", "PartitionConfig"],
    );
    assert!(f.log("sinfo.args").contains("-p small"));
    assert!(
        !f.out().exists(),
        "a refused submission leaves no output folder"
    );
}

#[test]
fn cpus_per_task_defaults_to_at_most_what_the_largest_node_offers() {
    if !have_bash() {
        return;
    }
    let f = Fake::new("cpus-default");
    let o = f.submit(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = f.log("sbatch.args");
    let array = calls.lines().next().unwrap();
    assert!(array.contains("--cpus-per-task=2"), "{array}");
    assert!(array.contains("--partition=small"), "{array}");

    // On 32-CPU nodes the default stays 8.
    let f = Fake::new("cpus-default-big");
    let o = f.submit(&[("SBATCH_EXTRA", "--partition=big --account=proj")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = f.log("sbatch.args");
    let array = calls.lines().next().unwrap();
    assert!(array.contains("--cpus-per-task=8"), "{array}");
    assert!(array.contains("--account=proj"), "{array}");
}

#[test]
fn the_partition_named_in_sbatch_extra_or_sbatch_partition_is_the_one_checked() {
    if !have_bash() {
        return;
    }
    for extra in ["--partition=big", "--partition big", "-p big", "-pbig"] {
        let f = Fake::new("part-big");
        let o = f.submit(&[("SBATCH_EXTRA", extra), ("CPUS_PER_TASK", "32")]);
        assert!(o.status.success(), "{extra}: {}", stderr(&o));
        assert!(f.log("sbatch.args").contains("--cpus-per-task=32"));
        let f = Fake::new("part-big-over");
        let o = f.submit(&[("SBATCH_EXTRA", extra), ("CPUS_PER_TASK", "33")]);
        assert_refused(&o, &f, &["CPUS_PER_TASK=33", "'big'", "32 CPUs"]);
    }
    let f = Fake::new("part-env");
    let o = f.submit(&[("SBATCH_PARTITION", "big"), ("CPUS_PER_TASK", "16")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = Fake::new("part-missing");
    let o = f.submit(&[("SBATCH_EXTRA", "--partition=gpu")]);
    assert_refused(&o, &f, &["partition 'gpu' has no nodes"]);
}

#[test]
fn time_limit_beyond_the_partition_limit_is_refused_and_the_default_fits() {
    if !have_bash() {
        return;
    }
    let f = Fake::new("time-refused");
    let o = f.submit(&[("FAKE_TIMELIMIT", "1:00:00"), ("TIME_LIMIT", "2:00:00")]);
    assert_refused(&o, &f, &["TIME_LIMIT=2:00:00", "1:00:00"]);

    let f = Fake::new("time-default");
    let o = f.submit(&[("FAKE_TIMELIMIT", "30:00")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(f.log("sbatch.args").contains("--time=30:00"));

    let f = Fake::new("time-days");
    let o = f.submit(&[("FAKE_TIMELIMIT", "1-00:00:00"), ("TIME_LIMIT", "23:59:00")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(f.log("sbatch.args").contains("--time=23:59:00"));
}

#[test]
fn an_output_folder_holding_an_earlier_run_is_refused() {
    if !have_bash() {
        return;
    }
    // Stale shards of an earlier 8-shard run: the merge would pick them up.
    let f = Fake::new("stale-shards");
    for i in 0..8 {
        std::fs::create_dir_all(f.out().join(format!("shard-{i}"))).unwrap();
    }
    let o = f.submit(&[]);
    assert_refused(&o, &f, &["holds an earlier run", "shard-0"]);

    // An earlier result alone: it would look like this run's until the merge replaced it.
    let f = Fake::new("stale-result");
    std::fs::create_dir_all(f.out()).unwrap();
    std::fs::write(f.out().join("compare.csv"), "old").unwrap();
    let o = f.submit(&[]);
    assert_refused(&o, &f, &["holds an earlier run", "compare.csv"]);

    // An empty or unrelated folder is fine.
    let f = Fake::new("fresh");
    std::fs::create_dir_all(f.out()).unwrap();
    std::fs::write(f.out().join("notes.txt"), "mine").unwrap();
    let o = f.submit(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn submission_hands_the_jobs_absolute_paths_and_records_them() {
    if !have_bash() {
        return;
    }
    let f = Fake::new("submit");
    let o = f.submit(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = f.log("sbatch.args");
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    let out = std::fs::canonicalize(f.out()).unwrap();
    let (array, merge) = (lines[0], lines[1]);
    assert!(array.contains("--array=0-3"), "{array}");
    assert!(array.contains("CLUSTERSIM_ROLE=shard"), "{array}");
    assert!(
        array.contains(&format!("CLUSTERSIM_OUT={}", out.display())),
        "{array}"
    );
    assert!(merge.contains("--dependency=afterok:1"), "{merge}");
    assert!(merge.contains("--kill-on-invalid-dep=yes"), "{merge}");
    assert!(merge.contains("CLUSTERSIM_SHARDS=4"), "{merge}");
    let rec = std::fs::read_to_string(out.join("submission.txt")).unwrap();
    assert!(
        rec.contains("array_job: 1\n") && rec.contains("merge_job: 2\n"),
        "{rec}"
    );
    // A second submission into the same folder is refused.
    let o = f.submit(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

fn merge_job(f: &Fake, shards: &str, extra: &[(&str, &str)]) -> Output {
    let out = f.out();
    let mut env = vec![
        ("CLUSTERSIM_ROLE", "merge"),
        ("CLUSTERSIM_OUT", out.to_str().unwrap()),
        ("CLUSTERSIM_SHARDS", shards),
        ("SLURM_JOB_ID", "42"),
    ];
    env.extend_from_slice(extra);
    f.run(&[], &env)
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_merge_job_merges_exactly_shard_0_to_n_minus_1() {
    if !have_bash() {
        return;
    }
    let f = Fake::new("merge-exact");
    for i in 0..4 {
        std::fs::create_dir_all(f.out().join(format!("shard-{i}"))).unwrap();
    }
    let o = merge_job(&f, "2", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = f.out();
    assert_eq!(
        f.log("bin.args").trim(),
        format!(
            "merge {0}/shard-0 {0}/shard-1 --out {0}/.merge-42",
            out.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(out.join("compare.csv")).unwrap(),
        "new\n"
    );
    assert!(!files(&out).iter().any(|n| n.starts_with(".merge")));
}

#[test]
fn a_failed_merge_leaves_no_earlier_result_looking_current() {
    if !have_bash() {
        return;
    }
    let f = Fake::new("merge-failed");
    std::fs::create_dir_all(f.out().join("shard-0")).unwrap();
    for n in ["compare.csv", "compare.json", "compare-time.png"] {
        std::fs::write(f.out().join(n), "old").unwrap();
    }
    let o = merge_job(&f, "2", &[("FAKE_MERGE_FAIL", "1")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("do not cover"), "{}", stderr(&o));
    let left = files(&f.out());
    assert!(
        !left.iter().any(|n| n.starts_with("compare")),
        "earlier results survived a failed merge: {left:?}"
    );
}
