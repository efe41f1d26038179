//! `clustersim compare` with several files: each sweep file keeps its own settings
//! (`tokens`, `plan`, `top`, `prices`), so comparing files together gives the rows each
//! gives alone; the caller's settings (the CLI's `--tokens`, `--plan`, `--top`, `--price`)
//! apply to every file.

use std::fs;
use std::path::{Path, PathBuf};

use clustersim::Comparison;
use clustersim::sweep::compare::CompareRow;
use clustersim::sweep::spec::PlanChoice;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clustersim-cmpfiles-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn default_scenario() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/default.yaml")
        .display()
        .to_string()
}

/// Two sweep files with different settings on the small default scenario.
fn sweeps(dir: &Path) -> (PathBuf, PathBuf) {
    let base = default_scenario();
    let best = dir.join("best.yaml");
    fs::write(
        &best,
        format!(
            "name: best\nbase: {base}\ntokens: 2T\nplan: best\ntop: 1\n\
             prices: [basis=ownership, node_usd=90000]\n\
             designs:\n  - {{ name: gb128, set: [] }}\n"
        ),
    )
    .unwrap();
    let asis = dir.join("asis.yaml");
    fs::write(
        &asis,
        format!(
            "name: asis\nbase: {base}\ntokens: 300B\n\
             designs:\n  - {{ name: gb128, set: [] }}\n  - {{ name: gb256, set: [training.global_batch=256] }}\n"
        ),
    )
    .unwrap();
    (best, asis)
}

/// The rows without their position, which depends on what else is compared.
fn unindexed(rows: &[CompareRow]) -> Vec<CompareRow> {
    rows.iter()
        .map(|r| CompareRow {
            index: 0,
            ..r.clone()
        })
        .collect()
}

#[test]
fn each_sweep_file_keeps_its_own_settings() {
    let dir = scratch("own");
    let (best, asis) = sweeps(&dir);
    let scenario = default_scenario();
    let alone_best = Comparison::from_files(&[&best]).unwrap().run().unwrap();
    let alone_asis = Comparison::from_files(&[&asis]).unwrap().run().unwrap();
    let alone_scenario = Comparison::from_files(&[&scenario]).unwrap().run().unwrap();
    for order in [
        vec![best.clone(), asis.clone(), PathBuf::from(&scenario)],
        vec![PathBuf::from(&scenario), asis.clone(), best.clone()],
    ] {
        let together = Comparison::from_files(&order).unwrap().run().unwrap();
        let rows = &together.table.rows;
        assert_eq!(rows.len(), 4);
        // Rows appear file by file, in the order given.
        let mut at = 0;
        for f in &order {
            let alone = if f == &best {
                &alone_best
            } else if f == &asis {
                &alone_asis
            } else {
                &alone_scenario
            };
            let n = alone.table.rows.len();
            assert_eq!(
                unindexed(&rows[at..at + n]),
                unindexed(&alone.table.rows),
                "{} compared with other files gives other rows than alone",
                f.display()
            );
            at += n;
        }
    }
    // What the files say, row by row: the as-is file trains 300B tokens on the scenario's
    // own plan; the best-plan file 2T tokens on the plan the search found.
    let a = &alone_asis.table.rows[0];
    assert_eq!(a.tokens, 3e11);
    assert_eq!(
        a.figures.as_ref().unwrap().plan,
        "tp2 pp4 dp8 mb1 1f1b selective z1"
    );
    assert_eq!(alone_best.table.rows[0].tokens, 2e12);
    assert_eq!(alone_scenario.table.rows[0].tokens, 1e12);
    let capital =
        |t: &clustersim::CompareOutputs| t.table.rows[0].figures.as_ref().unwrap().capital_usd;
    assert!(
        capital(&alone_best) > capital(&alone_asis),
        "node_usd=90000 applies to its own file only"
    );
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_callers_settings_apply_to_every_file() {
    let dir = scratch("caller");
    let (best, asis) = sweeps(&dir);
    let out = Comparison::from_files(&[&best, &asis])
        .unwrap()
        .with_tokens("5T")
        .with_plan(PlanChoice::AsIs)
        .run()
        .unwrap();
    for r in &out.table.rows {
        assert_eq!(r.tokens, 5e12, "{}", r.name);
        let plan = &r.figures.as_ref().unwrap().plan;
        assert_eq!(plan, "tp2 pp4 dp8 mb1 1f1b selective z1", "{}", r.name);
    }
    // One budget for all rows: the header names it.
    let text = clustersim::sweep::compare::table_text(&out.table);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("cost to train 5.000e12 tokens"),
        "{text}"
    );
    // Different budgets: the header says so rather than quoting the first file's.
    let mixed = Comparison::from_files(&[&best, &asis])
        .unwrap()
        .with_plan(PlanChoice::AsIs)
        .run()
        .unwrap();
    let text = clustersim::sweep::compare::table_text(&mixed.table);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("each file's token budget"),
        "{text}"
    );
    fs::remove_dir_all(&dir).ok();
}
