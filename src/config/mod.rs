//! Scenario and topology files: YAML types, presets (models, GPUs), `--set` overrides and
//! validation with file, line and field in every error.
//!
//! Produces a resolved [`Scenario`]: plain domain types that the rest of the simulator
//! consumes. Simulates nothing.

use std::path::PathBuf;

use serde::Serialize;

use crate::faults::FaultsSpec;
use crate::hardware::ClusterSpec;
use crate::model::ModelSpec;
use crate::plan::{ParallelismSpec, TrainingSpec};
use crate::run::{CheckpointSpec, RunSpec};

/// Which ranks the timeline shows.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub enum TimelineRanks {
    /// One rank per pipeline stage (the first of each stage).
    #[default]
    Representative,
    All,
    List(Vec<u32>),
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputsSpec {
    pub timeline: TimelineRanks,
    pub charts: bool,
}

impl Default for OutputsSpec {
    fn default() -> Self {
        OutputsSpec {
            timeline: TimelineRanks::Representative,
            charts: true,
        }
    }
}

/// A fully resolved scenario: everything one simulation needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    /// The file it came from (`None` for the built-in default).
    pub source: Option<PathBuf>,
    pub model: ModelSpec,
    pub cluster: ClusterSpec,
    pub training: TrainingSpec,
    pub parallelism: ParallelismSpec,
    pub steps: u64,
    pub faults: FaultsSpec,
    pub checkpoint: Option<CheckpointSpec>,
    pub run: Option<RunSpec>,
    pub outputs: OutputsSpec,
}
