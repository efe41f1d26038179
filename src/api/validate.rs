//! `clustersim validate` as a library call: a prediction for every row of the published
//! calibration tables.
//!
//! Must not print; that is the CLI's.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::validate::{self, Prediction, Source};

/// The tables, in the order they are read and reported.
pub const SOURCES: [Source; 2] = [Source::MegatronSc21A100, Source::MegatronCoreH100];

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
}

impl Validation {
    /// The calibration CSVs in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Validation { dir: dir.into() }
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
        let mut predictions = Vec::new();
        for source in SOURCES {
            let base = validate::calibration_base(source).map_err(Error::internal)?;
            let rows = validate::read_rows(&self.dir, source).map_err(Error::Calibration)?;
            for row in rows {
                predictions
                    .push(validate::predict(&row, &base, &base.cluster).map_err(Error::internal)?);
            }
        }
        Ok(ValidationOutputs { predictions })
    }
}

/// Every prediction, table by table.
#[derive(Debug, Clone)]
pub struct ValidationOutputs {
    pub predictions: Vec<Prediction>,
}

impl ValidationOutputs {
    /// Mean absolute percentage error and worst absolute error (fractions) over one
    /// table's rows, or over all rows.
    pub fn error_stats(&self, source: Option<Source>) -> (f64, f64) {
        let rows: Vec<Prediction> = self.rows(source).cloned().collect();
        validate::error_stats(&rows)
    }

    /// The predictions of one table, or all.
    pub fn rows(&self, source: Option<Source>) -> impl Iterator<Item = &Prediction> {
        self.predictions
            .iter()
            .filter(move |p| source.is_none_or(|s| p.row.source == s))
    }
}
