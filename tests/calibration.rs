//! Predictions against the published end-to-end tables in ../shared/calibration.
//!
//! Every row is built from its shapes (nothing looks a result up) with one rule for the
//! settings the tables leave open (`validate::micro_batch_rule`, interleaving ≤ 8 chunks).
//! The GPU catalog's `sustained_efficiency` was fitted once per GPU generation
//! (`cargo run --release --example calibrate`).

use std::path::Path;

use clustersim::validate::{self, Prediction, Source};

fn predictions(source: Source) -> Option<Vec<Prediction>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/calibration");
    if !dir.is_dir() {
        eprintln!("skipped: {} not found", dir.display());
        return None;
    }
    let base = validate::calibration_base(source).expect("shipped topology loads");
    let rows = validate::read_rows(&dir, source).expect("calibration table parses");
    let preds = rows
        .iter()
        .map(|r| validate::predict(r, &base, &base.cluster).expect("row simulates"))
        .collect::<Vec<_>>();
    for p in &preds {
        eprintln!(
            "{:<22} {:>7.1}B published {:>6.1} predicted {:>6.1} error {:+.1} %",
            source.label(),
            p.row.params_b,
            p.row.published_tflops,
            p.predicted_tflops,
            p.error * 100.0
        );
    }
    Some(preds)
}

/// The band every prediction on this table's GPUs prints (`data/calibration-bands.json`,
/// compiled in) is this table's error as computed now: the file cannot drift from the
/// calibration tables or the model.
fn assert_embedded_band(preds: &[Prediction], source: Source) {
    let now = validate::bands_of(preds);
    let embedded = validate::embedded_bands();
    let shipped = embedded.tables.iter().find(|b| b.table == source.table());
    assert_eq!(
        shipped,
        now.tables.first(),
        "data/calibration-bands.json is stale for {}: run `{}`",
        source.table(),
        validate::BANDS_COMMAND
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "simulates 3,072-GPU steps; run with --release"
)]
fn megatron_sc21_a100_within_issue_bounds() {
    let Some(preds) = predictions(Source::MegatronSc21A100) else {
        return;
    };
    assert_embedded_band(&preds, Source::MegatronSc21A100);
    let (mape, max) = validate::error_stats(&preds);
    assert_eq!(preds.len(), 10);
    assert!(max <= 0.08, "worst row {:.1} % (bound 8 %)", max * 100.0);
    assert!(mape <= 0.04, "MAPE {:.2} % (bound 4 %)", mape * 100.0);
}

/// The Megatron-Core H100 table does NOT meet the issue's bounds yet (MAPE <= 4 %, every
/// row within 8 %): measured MAPE 5.3 %, worst row -12.7 % (the 32B TP8 row, where four
/// micro-batches leave the data-parallel gathers exposed). This guards the level reached
/// so regressions show; it is not the target.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "simulates 6,144-GPU steps; run with --release"
)]
fn megatron_core_h100_does_not_regress() {
    let Some(preds) = predictions(Source::MegatronCoreH100) else {
        return;
    };
    assert_embedded_band(&preds, Source::MegatronCoreH100);
    let (mape, max) = validate::error_stats(&preds);
    assert_eq!(preds.len(), 9);
    assert!(mape <= 0.055, "MAPE {:.2} % (measured 5.3 %)", mape * 100.0);
    assert!(
        max <= 0.13,
        "worst row {:.1} % (measured 12.7 %)",
        max * 100.0
    );
}

/// Every GPU of the catalog names a calibration table that has a band, so every shipped
/// GPU's predictions print one.
#[test]
fn every_catalog_gpu_has_a_band() {
    for name in clustersim::config::presets::gpu_names().unwrap() {
        let text = format!(
            "model: llama3-8b\ncluster: {{ from: dgx-h100-ndr, nodes: 1, gpu: {name} }}\n\
             training: {{ seq_len: 2048, global_batch: 8 }}\nparallelism: {{ tp: 8, pp: 1, dp: 1 }}\n"
        );
        let s = clustersim::config::load_scenario_str("t", &text, &[]).unwrap();
        let band = validate::band_for(&s.cluster.gpu)
            .unwrap_or_else(|| panic!("{name}: no calibration band"));
        assert!(
            band.mape > 0.0 && band.max_error >= band.mape,
            "{name}: {band:?}"
        );
    }
}
