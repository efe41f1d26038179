//! `clustersim collective` as a library call: an nccl-tests-style size sweep of one
//! collective, timed alone by the flow network, and `collective.csv`.
//!
//! Must not print or pick output folders; that is the CLI's.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::hardware::ClusterSpec;
use crate::network::nccl::busbw_factor;
use crate::network::{AlgorithmChoice, FlowNetwork, NetworkSettings};
use crate::vocab::Collective;

/// A size sweep of one collective over the first GPUs of a cluster: sizes `lo, 2 lo, ...`
/// up to `hi` (nccl-tests `-f 2`).
///
/// ```no_run
/// use clustersim::{CollectiveSweep, vocab::Collective};
///
/// let out = CollectiveSweep::from_topology("topologies/dgx-h100-ndr.yaml")?
///     .with_op(Collective::AllGather)
///     .with_gpus(64)?
///     .with_sizes(1 << 20, 1 << 30)
///     .run();
/// let last = out.rows.last().expect("at least one size");
/// println!("{} bytes: {:.1} GB/s bus bandwidth", last.size_bytes, last.busbw_gbs);
/// # Ok::<(), clustersim::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CollectiveSweep {
    cluster: ClusterSpec,
    /// How errors name the cluster: its topology file, or its name.
    origin: String,
    op: Collective,
    gpus: u32,
    sizes: (u64, u64),
    algorithm: AlgorithmChoice,
}

impl CollectiveSweep {
    /// Reads a topology file (or a shipped topology by name).
    pub fn from_topology(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let cluster = crate::config::load_topology(&path.to_string_lossy())?;
        Ok(Self::on(cluster, path.display().to_string()))
    }

    /// A sweep on a cluster built in code.
    pub fn from_cluster(cluster: ClusterSpec) -> Self {
        let origin = cluster.name.clone();
        Self::on(cluster, origin)
    }

    /// An all-reduce over every GPU, 1 KiB to 16 GiB, the algorithm NCCL's tuner picks.
    fn on(cluster: ClusterSpec, origin: String) -> Self {
        let gpus = cluster.total_gpus().min(u32::MAX as u64) as u32;
        CollectiveSweep {
            cluster,
            origin,
            op: Collective::AllReduce,
            gpus,
            sizes: (1 << 10, 16 << 30),
            algorithm: AlgorithmChoice::Auto,
        }
    }

    /// The collective to time.
    pub fn with_op(mut self, op: Collective) -> Self {
        self.op = op;
        self
    }

    /// GPUs taking part (the first `gpus` of the cluster; at least 2).
    pub fn with_gpus(mut self, gpus: u32) -> Result<Self> {
        let total = self.cluster.total_gpus();
        if gpus < 2 || gpus as u64 > total {
            return Err(Error::invalid(format!(
                "--gpus {gpus}: must be between 2 and the {total} GPUs of {}",
                self.origin
            )));
        }
        self.gpus = gpus;
        Ok(self)
    }

    /// Smallest and largest size, bytes (no rows when `lo > hi`).
    pub fn with_sizes(mut self, lo: u64, hi: u64) -> Self {
        self.sizes = (lo, hi);
        self
    }

    /// Algorithm choice (default: what NCCL's tuner model picks).
    pub fn with_algorithm(mut self, algorithm: AlgorithmChoice) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Times the collective at every size.
    pub fn run(&self) -> CollectiveOutputs {
        CollectiveOutputs {
            cluster: self.cluster.name.clone(),
            op: self.op,
            gpus: self.gpus,
            rows: sweep(
                &self.cluster,
                self.op,
                self.gpus,
                self.sizes,
                self.algorithm,
            ),
        }
    }
}

/// One line of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    pub size_bytes: u64,
    pub time_us: f64,
    pub algbw_gbs: f64,
    pub busbw_gbs: f64,
    /// `algorithm/protocol` as NCCL's tuner model picks them.
    pub algorithm: String,
}

/// Times `op` over GPUs `0..gpus` for sizes `lo, 2 lo, ... <= hi`.
fn sweep(
    cluster: &ClusterSpec,
    op: Collective,
    gpus: u32,
    (lo, hi): (u64, u64),
    algorithm: AlgorithmChoice,
) -> Vec<SweepRow> {
    let members: Vec<u32> = (0..gpus).collect();
    let mut net = FlowNetwork::new(
        cluster,
        NetworkSettings {
            algorithm,
            routing: crate::network::Routing::for_fabric(
                cluster.fabric.transport,
                cluster.fabric.kind,
            ),
        },
    );
    let mut rows = Vec::new();
    let mut size = lo.max(1);
    while size <= hi {
        let t = net.time_alone_s(op, size, &members).max(1e-12);
        let c = net.choice(op, size, &members);
        let algbw = size as f64 / t / 1e9;
        rows.push(SweepRow {
            size_bytes: size,
            time_us: t * 1e6,
            algbw_gbs: algbw,
            busbw_gbs: algbw * busbw_factor(op, gpus),
            algorithm: format!("{}/{}", c.algorithm.label(), c.protocol.label()),
        });
        // Checked: a range reaching past 2^63 must end, not wrap.
        match size.checked_mul(2) {
            Some(next) => size = next,
            None => break,
        }
    }
    rows
}

/// A finished collective sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectiveOutputs {
    /// The cluster's name.
    pub cluster: String,
    pub op: Collective,
    pub gpus: u32,
    pub rows: Vec<SweepRow>,
}

impl CollectiveOutputs {
    /// Writes `collective.csv` into `dir`.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let staging = crate::report::staging::Staging::new(dir.as_ref())?;
        let path = staging.path().join(COLLECTIVE_CSV);
        write_csv(&path, &self.rows).map_err(Error::write(&path))?;
        let names = [COLLECTIVE_CSV.to_string()];
        Ok(staging.commit(&names, &names)?)
    }
}

const COLLECTIVE_CSV: &str = "collective.csv";

fn write_csv(path: &Path, rows: &[SweepRow]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "size_bytes,time_us,algbw_gbs,busbw_gbs,algorithm")?;
    for r in rows {
        writeln!(
            f,
            "{},{:.3},{:.4},{:.4},{}",
            r.size_bytes, r.time_us, r.algbw_gbs, r.busbw_gbs, r.algorithm
        )?;
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cluster;
    use crate::hardware::FabricKind;

    #[test]
    fn sweep_doubles_sizes_and_reports_busbw() {
        let c = cluster(
            "h100-sxm",
            2,
            8,
            450.0,
            400.0,
            FabricKind::RailOptimized,
            1.0,
        );
        let rows = CollectiveSweep::from_cluster(c)
            .with_gpus(16)
            .unwrap()
            .with_sizes(1024, 1 << 30)
            .run()
            .rows;
        assert_eq!(rows.len(), 21);
        assert!(
            rows.windows(2)
                .all(|w| w[1].size_bytes == 2 * w[0].size_bytes)
        );
        let last = rows.last().unwrap();
        assert!((last.busbw_gbs / last.algbw_gbs - 2.0 * 15.0 / 16.0).abs() < 1e-9);
        assert!(rows[0].time_us < rows.last().unwrap().time_us);
    }

    #[test]
    fn topology_files_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        for name in [
            "fat-tree-a100-hdr-2to1.yaml",
            "roce-multipod-h100.yaml",
            "gb200-nvl72.yaml",
            "rtx4090-pcie-workstation.yaml",
        ] {
            let s = CollectiveSweep::from_topology(dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(s.cluster.total_gpus() >= 8, "{name}");
            let e = s.with_gpus(1).unwrap_err();
            assert!(e.is_bad_input() && e.to_string().contains(name), "{e}");
        }
    }
}
