//! `clustersim collective --topology FILE --op OP --gpus N [--sizes 1K:16G] [--out DIR]`:
//! an nccl-tests-style size sweep of one collective, timed by the detailed flow network.
//!
//! Prints size, count (4-byte elements), time, algbw, busbw and the algorithm NCCL's tuner
//! model picks, doubling the size each line (nccl-tests `-f 2`); writes `collective.csv`.
//! [`CollectiveSweep`] does the work; this file parses and prints.

use std::path::PathBuf;

use super::{CliError, CliResult};
use crate::api::{CollectiveSweep, SweepRow};
use crate::network::AlgorithmChoice;
use crate::units::{format_bytes, parse_size_bytes};
use crate::vocab::Collective;

#[derive(Debug, clap::Args)]
pub struct CollectiveArgs {
    /// Topology YAML (schema in the README, "Topology YAML").
    #[arg(long)]
    pub topology: PathBuf,
    /// all-reduce | all-gather | reduce-scatter | all-to-all
    #[arg(long)]
    pub op: String,
    /// GPUs taking part (the first N of the cluster).
    #[arg(long, value_parser = super::whole_number::<u32>, allow_negative_numbers = true)]
    pub gpus: u32,
    /// Size range MIN:MAX, doubling (binary prefixes, as nccl-tests `-b 1K -e 16G -f 2`).
    #[arg(long, default_value = "1K:16G")]
    pub sizes: String,
    /// auto | ring | tree | nvls | hierarchical | pat | collnet-direct | collnet-chain
    #[arg(long, default_value = "auto")]
    pub algorithm: String,
    /// Output directory for `collective.csv`.
    #[arg(long)]
    pub out: Option<PathBuf>,
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

pub fn run(args: &CollectiveArgs) -> CliResult {
    let sweep = CollectiveSweep::from_topology(&args.topology)?;
    let op = parse_op(&args.op)?;
    let algorithm: AlgorithmChoice = args.algorithm.parse().map_err(CliError::bad)?;
    let sweep = sweep.with_gpus(args.gpus)?;
    let (lo, hi) = parse_sizes(&args.sizes)?;
    let out = sweep
        .with_op(op)
        .with_algorithm(algorithm)
        .with_sizes(lo, hi)
        .run();
    print_table(&out.cluster, &args.op, args.gpus, &out.rows);
    if let Some(dir) = &args.out {
        out.write_to(dir)?;
    }
    Ok(())
}

fn print_table(name: &str, op: &str, gpus: u32, rows: &[SweepRow]) {
    outln!("# {op} on {gpus} GPUs of {name} (flow-level model)");
    outln!(
        "{:>12} {:>12} {:>12} {:>10} {:>10}  algorithm",
        "size",
        "count",
        "time_us",
        "algbw_gbs",
        "busbw_gbs"
    );
    for r in rows {
        outln!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_op_is_bad_input() {
        assert_eq!(parse_op("broadcast").unwrap_err().exit_code(), 2);
        assert_eq!(parse_op("allreduce").unwrap(), Collective::AllReduce);
    }

    #[test]
    fn sizes_parse_as_a_range_or_one_size() {
        assert_eq!(parse_sizes("1K:4K").unwrap(), (1024, 4096));
        assert_eq!(parse_sizes("2K").unwrap(), (2048, 2048));
        assert!(
            parse_sizes("4K:1K")
                .unwrap_err()
                .to_string()
                .contains("MIN")
        );
    }
}
