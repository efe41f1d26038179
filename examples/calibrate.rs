//! Fits each GPU generation's `sustained_efficiency` to the end-to-end calibration tables.
//!
//! `cargo run --release --example calibrate` prints, per table, the MAPE and worst error of
//! the predictions for a grid of factors; the chosen value goes into `data/gpus.yaml`.

use clustersim::validate::{self, Source};

fn main() {
    let dir = std::path::Path::new("../shared/calibration");
    let grid: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let grid = if grid.is_empty() {
        vec![0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
    } else {
        grid
    };
    let only = std::env::var("CALIBRATE_ONLY").unwrap_or_default();
    for source in [Source::MegatronSc21A100, Source::MegatronCoreH100] {
        if !only.is_empty() && !source.label().to_lowercase().contains(&only.to_lowercase()) {
            continue;
        }
        let base = validate::calibration_base(source).expect("shipped topology loads");
        let rows = validate::read_rows(dir, source).expect("calibration table");
        for &f in &grid {
            let mut cluster = base.cluster.clone();
            cluster.gpu.sustained_efficiency = f;
            let preds: Vec<_> = rows
                .iter()
                .map(|r| validate::predict(r, &base, &cluster).expect("simulates"))
                .collect();
            let (mape, max) = validate::error_stats(&preds);
            let errs: Vec<String> = preds
                .iter()
                .map(|p| format!("{:+.1}", p.error * 100.0))
                .collect();
            println!(
                "{:<22} factor {f:.3}: MAPE {:5.2} % max {:5.2} % | {}",
                source.label(),
                mape * 100.0,
                max * 100.0,
                errs.join(" ")
            );
        }
    }
}
