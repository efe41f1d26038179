//! `clustersim collective --topology FILE --op OP --gpus N [--sizes 1K:16G] [--out DIR]`:
//! an nccl-tests-style size sweep of one collective, timed by the detailed flow network.
//!
//! Prints size, count (4-byte elements), time, algbw, busbw and the algorithm NCCL's tuner
//! model picks, doubling the size each line (nccl-tests `-f 2`); writes `collective.csv`.
//! Topology files are read by [`load_cluster`], the single place that depends on the loader.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::hardware::ClusterSpec;
use crate::network::nccl::busbw_factor;
use crate::network::{AlgorithmChoice, FlowNetwork, NetworkSettings};
use crate::schedule::Collective;
use crate::units::{format_bytes, parse_size_bytes};

#[derive(Debug, clap::Args)]
pub struct CollectiveArgs {
    /// Topology YAML (schema in the README, "Topology YAML").
    #[arg(long)]
    pub topology: PathBuf,
    /// all-reduce | all-gather | reduce-scatter | all-to-all
    #[arg(long)]
    pub op: String,
    /// GPUs taking part (the first N of the cluster).
    #[arg(long)]
    pub gpus: u32,
    /// Size range MIN:MAX, doubling (binary prefixes, as nccl-tests `-b 1K -e 16G -f 2`).
    #[arg(long, default_value = "1K:16G")]
    pub sizes: String,
    /// auto | ring | tree | nvls | hierarchical
    #[arg(long, default_value = "auto")]
    pub algorithm: String,
    /// Output directory for `collective.csv`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One line of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    pub size_bytes: u64,
    pub time_us: f64,
    pub algbw_gbs: f64,
    pub busbw_gbs: f64,
    pub algorithm: String,
}

pub fn parse_op(op: &str) -> Result<Collective, CliError> {
    Ok(match op {
        "all-reduce" | "allreduce" => Collective::AllReduce,
        "all-gather" | "allgather" => Collective::AllGather,
        "reduce-scatter" | "reducescatter" => Collective::ReduceScatter,
        "all-to-all" | "alltoall" => Collective::AllToAll,
        _ => {
            return Err(CliError::bad(format!(
                "--op `{op}`: allowed: all-reduce, all-gather, reduce-scatter, all-to-all"
            )));
        }
    })
}

fn parse_sizes(text: &str) -> Result<(u64, u64), CliError> {
    let (a, b) = text.split_once(':').unwrap_or((text, text));
    let lo = parse_size_bytes(a).map_err(|e| CliError::bad(format!("--sizes: {e}")))?;
    let hi = parse_size_bytes(b).map_err(|e| CliError::bad(format!("--sizes: {e}")))?;
    if lo > hi {
        return Err(CliError::bad(format!("--sizes `{text}`: MIN is above MAX")));
    }
    Ok((lo, hi))
}

/// Times `op` over GPUs `0..gpus` for sizes `lo, 2 lo, ... <= hi`.
pub fn sweep(
    cluster: &ClusterSpec,
    op: Collective,
    gpus: u32,
    (lo, hi): (u64, u64),
    algorithm: AlgorithmChoice,
) -> Vec<SweepRow> {
    let members: Vec<u32> = (0..gpus).collect();
    let mut net = FlowNetwork::new(cluster, NetworkSettings { algorithm });
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
        size *= 2;
    }
    rows
}

pub fn run(args: &CollectiveArgs) -> CliResult {
    let cluster = load_cluster(&args.topology)?;
    let op = parse_op(&args.op)?;
    let algorithm: AlgorithmChoice = args.algorithm.parse().map_err(CliError::bad)?;
    let total = cluster.total_gpus();
    if args.gpus < 2 || args.gpus as u64 > total {
        return Err(CliError::bad(format!(
            "--gpus {}: must be between 2 and the {total} GPUs of {}",
            args.gpus,
            args.topology.display()
        )));
    }
    let rows = sweep(
        &cluster,
        op,
        args.gpus,
        parse_sizes(&args.sizes)?,
        algorithm,
    );
    print_table(&cluster.name, &args.op, args.gpus, &rows);
    if let Some(dir) = &args.out {
        write_csv(dir, &rows).map_err(|e| CliError::internal(format!("{}: {e}", dir.display())))?;
    }
    Ok(())
}

fn print_table(name: &str, op: &str, gpus: u32, rows: &[SweepRow]) {
    println!("# {op} on {gpus} GPUs of {name} (flow-level model)");
    println!(
        "{:>12} {:>12} {:>12} {:>10} {:>10}  algorithm",
        "size", "count", "time_us", "algbw_gbs", "busbw_gbs"
    );
    for r in rows {
        println!(
            "{:>12} {:>12} {:>12.1} {:>10.2} {:>10.2}  {}",
            format_bytes(r.size_bytes),
            r.size_bytes / 4,
            r.time_us,
            r.algbw_gbs,
            r.busbw_gbs,
            r.algorithm
        );
    }
}

fn write_csv(dir: &Path, rows: &[SweepRow]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("collective.csv"))?);
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

/// Reads a topology file (or a shipped topology by name) through the config loader.
pub fn load_cluster(path: &Path) -> Result<ClusterSpec, CliError> {
    Ok(crate::config::load_topology(&path.to_string_lossy())?)
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
        let rows = sweep(
            &c,
            Collective::AllReduce,
            16,
            (1024, 1 << 30),
            AlgorithmChoice::Auto,
        );
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
            let c = load_cluster(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(c.total_gpus() >= 8, "{name}");
        }
    }

    #[test]
    fn bad_op_is_bad_input() {
        assert_eq!(parse_op("broadcast").unwrap_err().exit_code(), 2);
    }
}
