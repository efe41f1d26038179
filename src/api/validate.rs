//! `clustersim validate` as a library call: a prediction for every row of the published
//! calibration tables.
//!
//! Must not print; that is the CLI's.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::validate::{self, LayerPrediction, Prediction, Source};

/// The tables, in the order they are read and reported.
pub const SOURCES: [Source; 2] = Source::ALL;

/// Predictions against the calibration CSVs of a folder.
///
/// ```no_run
/// let out = clustersim::Validation::find(None)?.run()?;
/// let (mape, max) = out.error_stats(None);
/// println!("MAPE {:.1} %, worst {:.1} %", mape * 100.0, max * 100.0);
/// # Ok::<(), clustersim::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Validation {
    dir: PathBuf,
    progress: bool,
}

impl Validation {
    /// The calibration CSVs in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Validation {
            dir: dir.into(),
            progress: false,
        }
    }

    /// Draw a labelled progress bar over the rows (only ever on a terminal's stderr).
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// `dir`, or else `../shared/calibration` from the working directory or beside the
    /// source checkout.
    pub fn find(dir: Option<&Path>) -> Result<Self> {
        if let Some(p) = dir {
            return Ok(Self::new(p));
        }
        let candidates = [
            PathBuf::from("../shared/calibration"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/calibration"),
        ];
        candidates
            .into_iter()
            .find(|p| p.is_dir())
            .map(Self::new)
            .ok_or_else(|| {
                Error::invalid(
                    "no calibration folder: pass --calibration DIR (expected ../shared/calibration)",
                )
            })
    }

    /// Predicts every row of every table.
    pub fn run(&self) -> Result<ValidationOutputs> {
        let mut tables = Vec::new();
        for source in SOURCES {
            let base = validate::calibration_base(source).map_err(Error::internal)?;
            let rows = validate::read_rows(&self.dir, source).map_err(Error::Calibration)?;
            tables.push((base, rows));
        }
        let n = tables.iter().map(|(_, rows)| rows.len() as u64).sum();
        let bar = crate::progress::bar(n, "validate: calibration rows", self.progress);
        let mut predictions = Vec::new();
        for (base, rows) in tables {
            for row in rows {
                predictions
                    .push(validate::predict(&row, &base, &base.cluster).map_err(Error::internal)?);
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let layer_base = validate::layer_times_base().map_err(Error::internal)?;
        let layers = validate::read_layer_cases(&self.dir)
            .map_err(Error::Calibration)?
            .iter()
            .map(|c| validate::predict_layer(c, &layer_base).map_err(Error::internal))
            .collect::<Result<Vec<_>>>()?;
        Ok(ValidationOutputs {
            predictions,
            layers,
        })
    }
}

/// Every prediction, table by table.
#[derive(Debug, Clone)]
pub struct ValidationOutputs {
    pub predictions: Vec<Prediction>,
    /// Korthikanti et al.'s per-layer times (`a100-layer-times.csv`), case by case.
    pub layers: Vec<LayerPrediction>,
}

impl ValidationOutputs {
    /// Mean absolute percentage error and worst absolute error (fractions) over one
    /// table's rows, or over all rows.
    pub fn error_stats(&self, source: Option<Source>) -> (f64, f64) {
        let rows: Vec<Prediction> = self.rows(source).cloned().collect();
        validate::error_stats(&rows)
    }

    /// Each table's error band, as `data/calibration-bands.json` holds it.
    pub fn bands(&self) -> validate::BandsFile {
        validate::bands_of(&self.predictions)
    }

    /// The worst absolute forward and backward errors (fractions) of the per-layer cases.
    pub fn layer_error_stats(&self) -> (f64, f64) {
        validate::layer_error_stats(&self.layers)
    }

    /// The predictions of one table, or all.
    pub fn rows(&self, source: Option<Source>) -> impl Iterator<Item = &Prediction> {
        self.predictions
            .iter()
            .filter(move |p| source.is_none_or(|s| p.row.source == s))
    }
}
