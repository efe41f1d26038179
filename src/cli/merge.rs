//! `clustersim merge DIR... [--out DIR]`: combine `compare --shard` outputs into the files
//! the unsharded sweep would have written, byte for byte.

use std::path::PathBuf;

use super::CliResult;
use crate::api;
use crate::sweep::compare;

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Shard output directories (each with compare.json).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged compare.csv / compare.json (default: current directory).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

pub fn run(args: &MergeArgs) -> CliResult {
    let merged = api::merge(&args.dirs)?;
    out!("{}", compare::table_text(&merged.table));
    super::compare::write_outputs(&args.out, &merged)
}
