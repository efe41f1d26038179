//! Fault injection: failure processes, stragglers, degraded links (always seeded).

use serde::{Deserialize, Serialize};

/// The `faults:` section of a scenario.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsSpec {
    #[serde(default)]
    pub seed: u64,
}
