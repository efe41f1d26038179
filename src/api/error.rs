//! The one error type of the library API. Each variant says whether the caller's input
//! is wrong ([`Error::is_bad_input`]: a command line exits 2) or something failed inside
//! (exit 1). Messages are those `clustersim` prints after `error: ` / `internal error: `.
//!
//! Must not print, exit or decide exit codes: the CLI maps errors to codes.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Scenario};
use crate::cost::CostError;
use crate::engine::EngineError;
use crate::faults::FaultsError;
use crate::pricing::memory::OutOfMemory;
use crate::report::ReportError;
use crate::run::RunError;
use crate::sweep::plan::PlanError;
use crate::sweep::spec::SweepError;
use crate::validate::ValidateError;

/// `Result` with the API's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a library call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario or topology file, or a `path=value` override, is wrong (bad input).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A point of a comparison does not load (bad input).
    /// `name` ends with where the point's overrides are written in its sweep file when
    /// the error is located elsewhere (`a cluster.nodes=3 at s.yaml:8:23`).
    #[error("point {index} ({name}): {source}")]
    Point {
        index: usize,
        name: String,
        source: ConfigError,
    },
    /// The `faults:` section cannot be applied to the plan (bad input).
    #[error(transparent)]
    Faults(#[from] FaultsError),
    /// Strict memory is on and the plan does not fit in GPU memory (bad input).
    #[error(transparent)]
    OutOfMemory(#[from] OutOfMemory),
    /// A sweep file, a shard or the inputs of a merge are wrong (bad input).
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// A price override is wrong (bad input).
    #[error(transparent)]
    Prices(#[from] CostError),
    /// The plan search has nothing to rank (bad input; replay failures are
    /// [`Error::Engine`]).
    #[error(transparent)]
    Plan(PlanError),
    /// The long-horizon run failed: bad input when its `faults:`, `checkpoint:` or `run:`
    /// settings are wrong, internal otherwise.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A calibration table cannot be read or parsed (bad input).
    #[error(transparent)]
    Calibration(ValidateError),
    /// Another input value is wrong; the message names it (bad input).
    #[error("{0}")]
    Invalid(String),
    /// An input file cannot be read (bad input).
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Replaying a step failed (internal).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A run's output files could not be written (internal).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// An output file or folder could not be written (internal).
    #[error("{}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    /// Anything else that failed inside (internal).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Whether the caller's input is at fault (exit code 2 on the command line) rather
    /// than the simulator (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Run(e) => matches!(
                e,
                RunError::Faults(_) | RunError::OverBudget(_) | RunError::Work { .. }
            ),
            Error::Engine(e) => matches!(e, EngineError::OverBudget(_)),
            Error::Report(_) | Error::Write { .. } | Error::Internal(_) => false,
            _ => true,
        }
    }

    /// A run error of scenario `s`: the refusals of `checkpoint:`, `run:` and `faults:`
    /// keys that need the priced model (`run::RunSetup`) become errors located at the
    /// key's line in the scenario file (flags such as `--replicas` stay unlocated).
    pub(crate) fn run(s: &Scenario, e: RunError) -> Self {
        match e {
            RunError::Faults(f) => Error::Config(s.error_at(&f.field, f.message)),
            RunError::Work { field, message } => Error::Config(s.error_at(&field, message)),
            other => Error::Run(other),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }

    pub(crate) fn internal(message: impl ToString) -> Self {
        Error::Internal(message.to_string())
    }

    /// A writer for `map_err` on I/O into `path`.
    pub(crate) fn write(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Error::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Engine(e) => Error::Engine(e),
            other => Error::Plan(other),
        }
    }
}
