//! The `checkpoint:` and `run:` sections of a scenario, as written in YAML.

use serde::{Deserialize, Serialize};

/// When a checkpoint blocks training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointMode {
    /// Training stalls for the whole write to storage.
    #[default]
    Sync,
    /// Training stalls only for the snapshot to host memory; the write to storage runs in
    /// the background and the checkpoint counts once it is flushed.
    Async,
}

/// The `checkpoint:` section of a scenario. Without it, checkpoints are synchronous at
/// Daly's optimal interval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Training time between checkpoints: a duration (`30m`, `2h`), `young`, `daly`
    /// (default) or `never`.
    pub every: Option<String>,
    pub mode: CheckpointMode,
    /// Checkpoint bytes per parameter (default 14: bf16 weights + fp32 master, m, v).
    pub bytes_per_param: Option<f64>,
    /// Per-node write bandwidth to storage, GB/s (default: the node's NIC bandwidth).
    pub node_write_gbs: Option<f64>,
    /// Per-node read bandwidth from storage, GB/s (default: the node's NIC bandwidth).
    pub node_read_gbs: Option<f64>,
    /// GPU → host snapshot bandwidth per GPU, GB/s (default: the node's `pcie_gbs`).
    pub snapshot_gbs: Option<f64>,
    /// Overrides the computed write time (a duration).
    pub write_time: Option<String>,
    /// Overrides the computed load time on restart (a duration).
    pub load_time: Option<String>,
}

/// The `run:` section of a scenario: give exactly one of `duration`, `steps`, `tokens`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    /// Wall-clock length of the run (`54d`).
    pub duration: Option<String>,
    /// Optimizer steps to train.
    pub steps: Option<u64>,
    /// Tokens to train (reports the time to train them).
    pub tokens: Option<f64>,
    /// Monte-Carlo replicas (default 1).
    pub replicas: Option<u64>,
}
