//! `clustersim validate`: predicted vs published TFLOP/s per GPU for every calibration row.

use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::fixtures;
use crate::validate::{self, Prediction, Source};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Folder with the calibration CSVs (default: ../shared/calibration).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
}

/// Finds the calibration folder: the argument, `../shared/calibration` from the working
/// directory, or beside the source checkout.
pub fn calibration_dir(arg: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(p) = arg {
        return Ok(p.to_path_buf());
    }
    let candidates = [
        PathBuf::from("../shared/calibration"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/calibration"),
    ];
    candidates.into_iter().find(|p| p.is_dir()).ok_or_else(|| {
        CliError::bad(
            "no calibration folder: pass --calibration DIR (expected ../shared/calibration)",
        )
    })
}

pub fn predict_all(dir: &Path) -> Result<Vec<Prediction>, CliError> {
    let base = fixtures::toy_scenario(1, 1, 1, 1, 1);
    let mut out = Vec::new();
    for source in [Source::MegatronSc21A100, Source::MegatronCoreH100] {
        let cluster = match source {
            Source::MegatronSc21A100 => fixtures::dgx_a100_hdr(1),
            Source::MegatronCoreH100 => fixtures::dgx_h100_ndr(1),
        };
        let rows = validate::read_rows(dir, source).map_err(|e| CliError::bad(e.to_string()))?;
        for row in rows {
            out.push(
                validate::predict(&row, &base, &cluster)
                    .map_err(|e| CliError::internal(e.to_string()))?,
            );
        }
    }
    Ok(out)
}

pub fn run(args: &ValidateArgs) -> CliResult {
    let dir = calibration_dir(args.calibration.as_deref())?;
    let preds = predict_all(&dir)?;
    println!(
        "{:<22} {:>8} {:>4} {:>4} {:>5} {:>6} {:>2} {:>10} {:>10} {:>8}",
        "source", "params_b", "tp", "pp", "gpus", "batch", "v", "published", "predicted", "error"
    );
    for p in &preds {
        let r = &p.row;
        println!(
            "{:<22} {:>8.1} {:>4} {:>4} {:>5} {:>6} {:>2} {:>10.1} {:>10.1} {:>+7.1}%",
            r.source.label(),
            r.params_b,
            r.tp,
            r.pp,
            r.gpus,
            r.global_batch,
            p.virtual_stages,
            r.published_tflops,
            p.predicted_tflops,
            p.error * 100.0
        );
    }
    for source in [Source::MegatronSc21A100, Source::MegatronCoreH100] {
        let subset: Vec<Prediction> = preds
            .iter()
            .filter(|p| p.row.source == source)
            .cloned()
            .collect();
        let (mape, max) = validate::error_stats(&subset);
        println!(
            "{}: MAPE {:.1} %, max error {:.1} % over {} rows",
            source.label(),
            mape * 100.0,
            max * 100.0,
            subset.len()
        );
    }
    let (mape, max) = validate::error_stats(&preds);
    println!(
        "all rows: MAPE {:.1} %, max error {:.1} % (bounds: MAPE <= 4 %, every row within 8 %)",
        mape * 100.0,
        max * 100.0
    );
    Ok(())
}
