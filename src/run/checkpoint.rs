//! What a checkpoint costs: size from the model, write/snapshot/load times from the cluster's
//! storage, and the Young and Daly optimal intervals.

use serde::Serialize;

use super::RunError;
use crate::config::Scenario;
use crate::config::run_spec::{CheckpointMode, CheckpointSpec};
use crate::faults::duration;

/// Default checkpoint bytes per parameter: 2 (bf16 weights) + 12 (fp32 master weights, Adam
/// m and v), as mixed-precision Adam keeps them (ZeRO, arXiv 1910.02054).
pub const DEFAULT_BYTES_PER_PARAM: f64 = 14.0;

/// Resolved checkpoint costs, seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointCost {
    pub mode: CheckpointMode,
    pub size_bytes: f64,
    /// Full write to storage.
    pub write_s: f64,
    /// GPU → host snapshot (async mode).
    pub snapshot_s: f64,
    /// Load on restart.
    pub load_s: f64,
}

impl CheckpointCost {
    /// Time training stalls per checkpoint (δ in Young/Daly).
    pub fn stall_s(&self) -> f64 {
        match self.mode {
            CheckpointMode::Sync => self.write_s,
            CheckpointMode::Async => self.snapshot_s,
        }
    }

    /// Background flush after the stall (0 for sync).
    pub fn flush_s(&self) -> f64 {
        match self.mode {
            CheckpointMode::Sync => 0.0,
            CheckpointMode::Async => self.write_s,
        }
    }

    /// Costs of `spec` for scenario `s`: the state is sharded over all GPUs of the job; a write
    /// is limited by the aggregate storage bandwidth and by each node's own link.
    pub fn resolve(s: &Scenario, spec: &CheckpointSpec) -> Result<Self, RunError> {
        let gpus = s.parallelism.world_size().max(1) as f64;
        let nodes = (gpus / s.cluster.node.gpus.max(1) as f64).ceil().max(1.0);
        let bpp = spec.bytes_per_param.unwrap_or(DEFAULT_BYTES_PER_PARAM);
        positive("checkpoint.bytes_per_param", bpp)?;
        let size = s.model.total_params() as f64 * bpp;
        let nic_gbs = s.cluster.node.nics as f64 * s.cluster.node.nic_gbps / 8.0;
        let node_w = spec.node_write_gbs.unwrap_or(nic_gbs);
        let node_r = spec.node_read_gbs.unwrap_or(nic_gbs);
        let snap = spec.snapshot_gbs.unwrap_or(s.cluster.node.pcie_gbs);
        positive("checkpoint.node_write_gbs", node_w)?;
        positive("checkpoint.node_read_gbs", node_r)?;
        positive("checkpoint.snapshot_gbs", snap)?;
        positive("cluster.storage.write_gbs", s.cluster.storage.write_gbs)?;
        positive("cluster.storage.read_gbs", s.cluster.storage.read_gbs)?;
        let transfer = |aggregate_gbs: f64, node_gbs: f64| {
            (size / (aggregate_gbs * 1e9)).max(size / nodes / (node_gbs * 1e9))
        };
        let write_s = match &spec.write_time {
            Some(t) => duration("checkpoint.write_time", t)?,
            None => transfer(s.cluster.storage.write_gbs, node_w),
        };
        let load_s = match &spec.load_time {
            Some(t) => duration("checkpoint.load_time", t)?,
            None => transfer(s.cluster.storage.read_gbs, node_r),
        };
        Ok(CheckpointCost {
            mode: spec.mode,
            size_bytes: size,
            write_s,
            snapshot_s: size / gpus / (snap * 1e9),
            load_s,
        })
    }
}

fn positive(field: &str, v: f64) -> Result<(), RunError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(RunError::spec(field, "must be a positive number"))
    }
}

/// Young (1974): `τ = √(2δM)`.
pub fn young_interval(delta_s: f64, mtbi_s: f64) -> f64 {
    (2.0 * delta_s * mtbi_s).sqrt()
}

/// Daly (2006, FGCS 22): `τ = √(2δM)·[1 + ⅓·√(δ/(2M)) + (1/9)·(δ/(2M))] − δ` for `δ < 2M`,
/// else `M`.
pub fn daly_interval(delta_s: f64, mtbi_s: f64) -> f64 {
    if delta_s >= 2.0 * mtbi_s {
        return mtbi_s;
    }
    let r = delta_s / (2.0 * mtbi_s);
    (2.0 * delta_s * mtbi_s).sqrt() * (1.0 + r.sqrt() / 3.0 + r / 9.0) - delta_s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;

    #[test]
    fn size_and_times_follow_the_model_and_storage() {
        let s = toy_scenario(8, 4, 4, 32, 64); // 128 GPUs, 16 nodes
        let spec = CheckpointSpec::default();
        let c = CheckpointCost::resolve(&s, &spec).unwrap();
        let size = s.model.total_params() as f64 * 14.0;
        assert_eq!(c.size_bytes, size);
        // 16 nodes x 400 GB/s of NICs >> 500 GB/s aggregate: storage-bound.
        assert!((c.write_s - size / 500e9).abs() < 1e-9);
        assert!((c.load_s - size / 1000e9).abs() < 1e-9);
        assert!((c.snapshot_s - size / 128.0 / 64e9).abs() < 1e-12);
        assert_eq!(c.stall_s(), c.write_s);
        let a = CheckpointCost::resolve(
            &s,
            &CheckpointSpec {
                mode: CheckpointMode::Async,
                node_write_gbs: Some(1.0),
                ..Default::default()
            },
        )
        .unwrap();
        // Node-bound now: each node writes 1/16 of the state at 1 GB/s.
        assert!((a.write_s - size / 16.0 / 1e9).abs() < 1e-9);
        assert_eq!(a.stall_s(), a.snapshot_s);
        assert_eq!(a.flush_s(), a.write_s);
    }

    #[test]
    fn daly_reduces_to_young_for_cheap_checkpoints() {
        let (d, m) = (1.0, 1e6);
        assert!((daly_interval(d, m) / young_interval(d, m) - 1.0).abs() < 1e-3);
        assert_eq!(daly_interval(10.0, 4.0), 4.0);
    }
}
