//! Long-horizon run simulation: steps, failures, checkpoints, restarts → goodput.

use serde::{Deserialize, Serialize};

/// The `checkpoint:` section of a scenario.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    #[serde(default)]
    pub every: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
}

/// The `run:` section of a scenario.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    #[serde(default)]
    pub duration: Option<String>,
}
