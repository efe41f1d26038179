//! `clustersim validate`: predicted vs published TFLOP/s per GPU for every calibration row
//! ([`Validation`] predicts; this file prints).

use std::path::PathBuf;

use super::{CliError, CliResult};
use crate::api::{SOURCES, Validation};
use crate::validate;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Folder with the calibration CSVs (default: ../shared/calibration).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Also write each table's error band (MAPE, worst row) as JSON to FILE: what
    /// `data/calibration-bands.json` holds (the band printed with every prediction).
    #[arg(long, value_name = "FILE")]
    pub write_bands: Option<PathBuf>,
}

pub fn run(args: &ValidateArgs) -> CliResult {
    let out = Validation::find(args.calibration.as_deref())?
        .with_progress(true)
        .run()?;
    outln!(
        "{:<22} {:>8} {:>4} {:>4} {:>5} {:>6} {:>2} {:>10} {:>10} {:>8}",
        "source",
        "params_b",
        "tp",
        "pp",
        "gpus",
        "batch",
        "v",
        "published",
        "predicted",
        "error"
    );
    for p in &out.predictions {
        let r = &p.row;
        outln!(
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
    outln!(
        "{:<42} {:>7} {:>9} {:>7} {:>7} {:>9} {:>7}",
        "per layer (ms)",
        "fwd pub",
        "fwd pred",
        "error",
        "bwd pub",
        "bwd pred",
        "error"
    );
    for p in &out.layers {
        let c = &p.case;
        outln!(
            "{:<42} {:>7.2} {:>9.2} {:>+6.1}% {:>7.2} {:>9.2} {:>+6.1}%",
            c.experiment,
            c.published_forward_ms,
            p.forward_ms,
            p.forward_error * 100.0,
            c.published_backward_ms,
            p.backward_ms,
            p.backward_error * 100.0
        );
    }
    let (fwd, bwd) = out.layer_error_stats();
    outln!(
        "Korthikanti per layer, A100 (stack {}): max error forward {:.1} %, backward {:.1} % over {} cases (bound 6 %)",
        validate::LAYER_TIMES_STACK,
        fwd * 100.0,
        bwd * 100.0,
        out.layers.len()
    );
    for source in SOURCES {
        let (mape, max) = out.error_stats(Some(source));
        outln!(
            "{} (stack {}): MAPE {:.1} %, max error {:.1} % over {} rows",
            source.label(),
            source.stack(),
            mape * 100.0,
            max * 100.0,
            out.rows(Some(source)).count()
        );
    }
    let (mape, max) = out.error_stats(None);
    outln!(
        "all rows: MAPE {:.1} %, max error {:.1} % (bounds per table: MAPE <= 3.5 %, every row within 8 %)",
        mape * 100.0,
        max * 100.0
    );
    if let Some(path) = &args.write_bands {
        write_whole(path, &out.bands().to_json())
            .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes `text` to `path` through a staging folder beside it (whole or not at all).
fn write_whole(path: &std::path::Path, text: &str) -> Result<(), String> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| "not a file name".to_string())?
        .to_string_lossy()
        .into_owned();
    let staging = crate::report::staging::Staging::new(parent).map_err(|e| e.to_string())?;
    std::fs::write(staging.path().join(&name), text).map_err(|e| e.to_string())?;
    let names = [name];
    staging.commit(&names, &names).map_err(|e| e.to_string())?;
    Ok(())
}
