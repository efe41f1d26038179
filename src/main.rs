//! The `clustersim` command line: parses arguments and hands them to `clustersim::cli`.

use clap::{Parser, Subcommand};
use clustersim::cli;

#[derive(Debug, Parser)]
#[command(
    name = "clustersim",
    version,
    about = "Discrete-event simulator of large GPU training clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Allow paths written in scenarios and sweeps (`from:`, `base:`) to point inside DIR
    /// (besides the file's own folder tree and the shipped scenarios/ and topologies/).
    #[arg(long, global = true, value_name = "DIR")]
    allow_path: Vec<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate one training step (and a long run, when the scenario has `run:`).
    Run(cli::run::RunArgs),
    /// Best parallelism plans for the scenario's model on its cluster (plans.csv).
    Plan(cli::plan::PlanArgs),
    /// Compare scenarios or a sweep's points side by side (compare.csv, compare.json).
    Compare(cli::compare::CompareArgs),
    /// Merge `compare --shard` outputs into the unsharded sweep's files.
    Merge(cli::merge::MergeArgs),
    /// Predictions vs the published measurements in ../shared/calibration, as a table.
    Validate(cli::validate::ValidateArgs),
    /// Goodput against checkpoint interval: simulated optimum vs Young and Daly.
    Checkpoint(cli::checkpoint::CheckpointArgs),
    /// Time one collective over a size sweep, nccl-tests style.
    Collective(cli::collective::CollectiveArgs),
}

fn main() {
    let cli = Cli::parse();
    cli::install_interrupt_handler();
    for dir in &cli.allow_path {
        if let Err(e) = clustersim::config::input::allow_path(dir) {
            eprintln!("error: --allow-path {}: {e}", dir.display());
            std::process::exit(2);
        }
    }
    let result = match &cli.command {
        Command::Run(a) => cli::run::run(a),
        Command::Validate(a) => cli::validate::run(a),
        Command::Checkpoint(a) => cli::checkpoint::run(a),
        Command::Collective(a) => cli::collective::run(a),
        Command::Plan(a) => cli::plan::run(a),
        Command::Compare(a) => cli::compare::run(a),
        Command::Merge(a) => cli::merge::run(a),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(e.exit_code());
    }
}
