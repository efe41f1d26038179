//! Predictions against the published end-to-end measurements in `../shared/calibration/`.
//!
//! Each CSV row gives a model's shapes, the plan and the cluster size; the simulator builds
//! that scenario from the shapes (nothing here looks a row's result up) and predicts
//! TFLOP/s per GPU, counted as the source counts it:
//! - Megatron SC'21 (A100): eq. 3 of arXiv 2104.04473, which counts the full-recompute
//!   forward pass: `96 B s L h^2 (1 + s/(6h) + V/(16 L h))`;
//! - Megatron-Core (H100): model FLOPs, Megatron's `num_floating_point_operations`
//!   (= Korthikanti eq. 7 for these GPT shapes).
//!
//! Settings the tables leave open are fixed by one rule for all rows (see
//! [`Source::apply_rules`] and `scenarios/calibration/README.md`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Scenario;
use crate::engine::EngineError;
use crate::hardware::{ClusterSpec, Precision};
use crate::model::{FfnKind, ModelSpec};
use crate::plan::{Recompute, ScheduleKind};
use crate::sim::{self, StepOptions};

#[derive(Debug, Error)]
pub enum ValidateError {
    #[error("cannot read calibration file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("simulating {row}: {source}")]
    Engine { row: String, source: EngineError },
}

/// Which published table a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Source {
    MegatronSc21A100,
    MegatronCoreH100,
}

/// One published measurement with the shapes and plan needed to predict it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub source: Source,
    pub params_b: f64,
    pub heads: u64,
    pub hidden: u64,
    pub layers: u64,
    pub tp: u64,
    pub pp: u64,
    pub gpus: u64,
    pub global_batch: u64,
    pub published_tflops: f64,
}

/// A prediction for one row.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub row: Row,
    pub predicted_tflops: f64,
    pub error: f64,
    pub step_time_s: f64,
    pub virtual_stages: u64,
    pub micro_batch: u64,
}

impl Source {
    /// Every table, in the order `clustersim validate` reads and reports them.
    pub const ALL: [Source; 2] = [Source::MegatronSc21A100, Source::MegatronCoreH100];

    /// The table's name: its file name without `.csv` (`megatron-core-h100`), as a GPU's
    /// `calibration:` key names it.
    pub fn table(self) -> &'static str {
        self.file_name().trim_end_matches(".csv")
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Source::MegatronSc21A100 => "megatron-sc21-a100.csv",
            Source::MegatronCoreH100 => "megatron-core-h100.csv",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Source::MegatronSc21A100 => "Megatron SC'21, A100",
            Source::MegatronCoreH100 => "Megatron-Core, H100",
        }
    }

    /// The software stack the table is predicted with (`data/stacks.yaml`): the SC'21 code
    /// (Megatron-LM v2.x) and Megatron-Core r0.8 (the table's README, core_r0.8.0), with
    /// the flags the table's notes state set on top in [`Source::apply_rules`].
    pub fn stack(self) -> &'static str {
        match self {
            Source::MegatronSc21A100 => "megatron-lm-2021",
            Source::MegatronCoreH100 => "megatron-core",
        }
    }

    fn seq_len(self) -> u64 {
        match self {
            Source::MegatronSc21A100 => 2048,
            Source::MegatronCoreH100 => 4096,
        }
    }

    fn vocab(self) -> u64 {
        match self {
            Source::MegatronSc21A100 => 51200,
            Source::MegatronCoreH100 => 131072,
        }
    }

    /// The stated settings of each table plus one rule for what it leaves open (the same
    /// for every row of both tables): the micro-batch by [`micro_batch_rule`]; interleaving
    /// degree = the largest divisor of layers-per-stage that is at most 8 (1 without
    /// pipelining), i.e. the finest interleaving Megatron accepts up to 8 chunks.
    fn apply_rules(self, s: &mut Scenario, row: &Row) {
        let p = &mut s.parallelism;
        let t = &mut s.training;
        t.micro_batch = micro_batch_rule(row);
        let per_stage = row.layers / row.pp;
        let v = if row.pp <= 1 {
            1
        } else {
            (1..=8)
                .rev()
                .find(|v| per_stage.is_multiple_of(*v))
                .unwrap_or(1)
        };
        p.schedule = if v > 1 {
            ScheduleKind::Interleaved
        } else {
            ScheduleKind::OneFOneB
        };
        p.virtual_stages = v;
        match self {
            // Table 1's footnotes: full recompute, 16-bit, scatter/gather, no sequence
            // parallel (it came later), plain data-parallel all-reduce after backward.
            Source::MegatronSc21A100 => {
                t.precision = Precision::Fp16;
                t.recompute = Recompute::Full;
                t.flash_attention = false;
                p.sequence_parallel = false;
                p.zero = 0;
            }
            // README (core_r0.8.0): `--overlap-grad-reduce --overlap-param-gather`,
            // `--tp-comm-overlap` (userbuffers: `full`; megatron/training/arguments.py
            // asserts it runs with sequence parallel) and p2p overlap "enabled by
            // default", which arguments.py turns off without interleaving (the preset's
            // `pp_p2p: interleaved-only`). Megatron-Core defaults: sequence parallel, selective recompute,
            // distributed optimizer, FlashAttention via Transformer Engine, BF16 (so FP32
            // gradient reduction, the `megatron-core` preset's).
            Source::MegatronCoreH100 => {
                t.precision = Precision::Bf16;
                t.recompute = Recompute::Selective;
                t.flash_attention = true;
                p.sequence_parallel = row.tp > 1;
                p.zero = 1;
                p.overlap_grad_reduce = true;
                p.tp_comm_overlap = row.tp > 1;
            }
        }
    }

    /// TFLOP/s per GPU as the source counts it, for a step of `seconds`.
    fn counted_tflops(self, s: &Scenario, seconds: f64, gpus: u64) -> f64 {
        let m = &s.model;
        let flops = match self {
            Source::MegatronSc21A100 => {
                let (b, sq) = (s.training.global_batch as f64, s.training.seq_len as f64);
                let (l, h, v) = (m.layers as f64, m.hidden as f64, m.vocab as f64);
                96.0 * b * sq * l * h * h * (1.0 + sq / (6.0 * h) + v / (16.0 * l * h))
            }
            Source::MegatronCoreH100 => {
                m.model_flops_per_step(s.training.seq_len, s.training.global_batch)
            }
        };
        flops / seconds / gpus as f64 / 1e12
    }
}

/// The micro-batch size a practitioner would pick: the largest `b <= 4` that splits the
/// sequences of one pipeline into `m` micro-batches; with a pipeline (`pp > 1`) `m` must
/// also be a multiple of `pp` (required by the interleaved schedule) and `m >= 4 pp` (keeps
/// the 1F1B bubble under 20 %), 1 when no `b` does. Without a pipeline there is no bubble
/// to bound, and NVIDIA's own recipes run the largest micro-batch: NeMo-Framework-Launcher
/// `launcher_scripts/conf/training/gpt3/{5b,20b,40b}.yaml` (commit 056a90edf9) train at
/// TP 1, 4 and 8 without pipelining at `micro_batch_size: 4`, and `175b.yaml` (TP 4, PP 8,
/// interleaved) at 1.
pub fn micro_batch_rule(row: &Row) -> u64 {
    let dp = (row.gpus / (row.tp * row.pp)).max(1);
    let per_pipeline = row.global_batch / dp;
    (1..=4)
        .rev()
        .find(|&b| {
            let m = per_pipeline / b;
            let bubble_ok = row.pp == 1 || (m.is_multiple_of(row.pp) && m >= 4 * row.pp);
            per_pipeline.is_multiple_of(b) && m >= 1 && bubble_ok
        })
        .unwrap_or(1)
}

/// One data line of a calibration CSV: its cells read by column name, errors located at
/// the file and line.
struct CsvRecord<'a> {
    path: &'a Path,
    line: usize,
    header: &'a [&'a str],
    cells: Vec<&'a str>,
}

impl CsvRecord<'_> {
    fn error(&self, message: String) -> ValidateError {
        ValidateError::Parse {
            path: self.path.into(),
            line: self.line,
            message,
        }
    }

    /// The cell of column `name`.
    fn cell(&self, name: &str) -> Result<&str, ValidateError> {
        self.header
            .iter()
            .position(|c| *c == name)
            .and_then(|idx| self.cells.get(idx).copied())
            .ok_or_else(|| self.error(format!("missing column `{name}`")))
    }

    /// The cell of column `name` as a number.
    fn number(&self, name: &str) -> Result<f64, ValidateError> {
        self.cell(name)?
            .parse()
            .map_err(|_| self.error(format!("column `{name}` is not a number")))
    }
}

/// The header of a calibration CSV: its first line that is neither blank nor a `#` comment.
fn csv_header(text: &str) -> Vec<&str> {
    csv_lines(text).next().map(|(_, c)| c).unwrap_or_default()
}

/// The lines of a calibration CSV that are neither blank nor `#` comments: 1-based line
/// number and trimmed cells.
fn csv_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.trim();
        (!line.is_empty() && !line.starts_with('#'))
            .then(|| (i + 1, line.split(',').map(str::trim).collect()))
    })
}

/// The data lines of a calibration CSV with header `header` (from [`csv_header`]).
fn csv_records<'a>(
    path: &'a Path,
    text: &'a str,
    header: &'a [&'a str],
) -> impl Iterator<Item = CsvRecord<'a>> {
    csv_lines(text).skip(1).map(move |(line, cells)| CsvRecord {
        path,
        line,
        header,
        cells,
    })
}

fn parse_rows(source: Source, path: &Path, text: &str) -> Result<Vec<Row>, ValidateError> {
    let header = csv_header(text);
    let mut rows = Vec::new();
    for r in csv_records(path, text, &header) {
        let get = |name: &str| r.number(name);
        let published = match source {
            Source::MegatronSc21A100 => get("tflops_per_gpu")?,
            Source::MegatronCoreH100 => get("tflops_per_gpu")?,
        };
        rows.push(Row {
            source,
            params_b: get("params_b")?,
            heads: get("heads")? as u64,
            hidden: get("hidden")? as u64,
            layers: get("layers")? as u64,
            tp: get("tp")? as u64,
            pp: get("pp")? as u64,
            gpus: get("gpus")? as u64,
            global_batch: get("global_batch")? as u64,
            published_tflops: published,
        });
    }
    Ok(rows)
}

/// Reads one calibration table from `dir`.
pub fn read_rows(dir: &Path, source: Source) -> Result<Vec<Row>, ValidateError> {
    let path = dir.join(source.file_name());
    let text = crate::config::input::read_text(&path).map_err(|e| ValidateError::Io {
        path: path.clone(),
        source: e,
    })?;
    parse_rows(source, &path, &text)
}

/// The GPT model of a row (GELU MLP of 4h; SC'21 ties embeddings, Megatron-Core does not).
pub fn row_model(row: &Row) -> ModelSpec {
    ModelSpec {
        name: format!("gpt-{}b", row.params_b),
        layers: row.layers,
        hidden: row.hidden,
        heads: row.heads,
        kv_heads: row.heads,
        ffn_hidden: 4 * row.hidden,
        ffn: FfnKind::Gelu,
        vocab: row.source.vocab(),
        moe: None,
        tied_embeddings: row.source == Source::MegatronSc21A100,
        mla: None,
        mtp_depth: 0,
        dropout: 0.1,
        norm: Default::default(),
    }
}

/// The scenario a row describes, on `cluster` (nodes set from the row's GPU count).
pub fn row_scenario(row: &Row, base: &Scenario, cluster: &ClusterSpec) -> Scenario {
    let mut s = base.clone();
    s.name = format!("{:?}-{}b", row.source, row.params_b);
    s.model = row_model(row);
    s.cluster = cluster.clone();
    s.cluster.nodes = row.gpus.div_ceil(cluster.node.gpus.max(1));
    s.training.seq_len = row.source.seq_len();
    s.training.global_batch = row.global_batch;
    s.parallelism.tp = row.tp;
    s.parallelism.pp = row.pp;
    s.parallelism.cp = 1;
    s.parallelism.ep = 1;
    s.parallelism.dp = row.gpus / (row.tp * row.pp);
    s.parallelism.stage_layers = None;
    s.parallelism.split = crate::plan::PipelineSplit::default();
    row.source.apply_rules(&mut s, row);
    s
}

/// The cluster a table was measured on, from the shipped topologies and GPU catalog:
/// DGX A100 80GB on HDR InfiniBand (Selene) or DGX H100 on NDR InfiniBand (Eos).
pub fn calibration_base(source: Source) -> Result<Scenario, crate::config::ConfigError> {
    let (topology, seq) = match source {
        Source::MegatronSc21A100 => ("dgx-a100-hdr", 2048),
        Source::MegatronCoreH100 => ("dgx-h100-ndr", 4096),
    };
    let stack = match source.stack() {
        "default" => String::new(),
        name => format!("stack: {{preset: {name}}}\n"),
    };
    let yaml = format!(
        "name: calibration\nmodel: gpt-1.7b\ncluster: {topology}\n\
         training: {{seq_len: {seq}, global_batch: 1024}}\n\
         parallelism: {{tp: 1, pp: 1, dp: 1024}}\n{stack}"
    );
    crate::config::load_scenario_str("calibration", &yaml, &[])
}

/// Predicts one row.
pub fn predict(
    row: &Row,
    base: &Scenario,
    cluster: &ClusterSpec,
) -> Result<Prediction, ValidateError> {
    let s = row_scenario(row, base, cluster);
    let r = sim::simulate_step(&s, &StepOptions::default()).map_err(|e| ValidateError::Engine {
        row: s.name.clone(),
        source: e,
    })?;
    let predicted = row
        .source
        .counted_tflops(&s, r.metrics.step_time_s, row.gpus);
    Ok(Prediction {
        row: row.clone(),
        predicted_tflops: predicted,
        error: predicted / row.published_tflops - 1.0,
        step_time_s: r.metrics.step_time_s,
        virtual_stages: s.parallelism.virtual_stages,
        micro_batch: s.training.micro_batch,
    })
}

/// Mean absolute percentage error and worst absolute error, as fractions.
pub fn error_stats(preds: &[Prediction]) -> (f64, f64) {
    let n = preds.len().max(1) as f64;
    let mape = preds.iter().map(|p| p.error.abs()).sum::<f64>() / n;
    let max = preds.iter().map(|p| p.error.abs()).fold(0.0, f64::max);
    (mape, max)
}

/// The error of one calibration table: what a prediction on a GPU calibrated against it
/// can be expected to be off by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// `megatron-sc21-a100`, `megatron-core-h100` (a GPU's `calibration:` key).
    pub table: String,
    pub label: String,
    pub rows: usize,
    /// Mean absolute percentage error of the table's rows (a fraction): the band.
    pub mape: f64,
    /// The worst row's absolute error (a fraction).
    pub max_error: f64,
}

/// `data/calibration-bands.json`: the bands, generated by `clustersim validate
/// --write-bands` from `../shared/calibration` (`tests/calibration.rs` fails when the file
/// and the tables disagree).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandsFile {
    pub generated_by: String,
    pub tables: Vec<Band>,
}

/// The command that regenerates `data/calibration-bands.json`.
pub const BANDS_COMMAND: &str = "clustersim validate --write-bands data/calibration-bands.json";

const BANDS_JSON: &str = crate::config::presets::CALIBRATION_BANDS_JSON;

/// Rounded to 4 decimals (0.01 %), so the file is stable across platforms.
fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The bands of every table from predictions (one per table with rows), computed as
/// `clustersim validate` prints them ([`error_stats`]).
pub fn bands_of(preds: &[Prediction]) -> BandsFile {
    let tables = Source::ALL
        .iter()
        .filter_map(|&source| {
            let rows: Vec<Prediction> = preds
                .iter()
                .filter(|p| p.row.source == source)
                .cloned()
                .collect();
            if rows.is_empty() {
                return None;
            }
            let (mape, max) = error_stats(&rows);
            Some(Band {
                table: source.table().to_string(),
                label: source.label().to_string(),
                rows: rows.len(),
                mape: round4(mape),
                max_error: round4(max),
            })
        })
        .collect();
    BandsFile {
        generated_by: BANDS_COMMAND.to_string(),
        tables,
    }
}

impl BandsFile {
    /// Pretty JSON with a trailing newline (the file's bytes).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// The bands compiled into the binary (`data/calibration-bands.json`).
pub fn embedded_bands() -> &'static BandsFile {
    static BANDS: std::sync::OnceLock<BandsFile> = std::sync::OnceLock::new();
    BANDS.get_or_init(|| {
        serde_json::from_str(BANDS_JSON).unwrap_or(BandsFile {
            generated_by: String::new(),
            tables: Vec::new(),
        })
    })
}

/// The band of a GPU: its calibration table's, when it names one.
pub fn band_for(gpu: &crate::hardware::GpuSpec) -> Option<&'static Band> {
    let table = gpu.calibration.as_deref()?;
    embedded_bands().tables.iter().find(|b| b.table == table)
}

/// The calibration band around a step's headline figures (`summary.json`'s
/// `uncertainty`): each figure times `1 ± relative`, with `relative` the MAPE of the
/// calibration table of the GPU's generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uncertainty {
    /// How the band is derived.
    pub basis: &'static str,
    /// The calibration table (`megatron-core-h100`) and its label.
    pub table: String,
    pub label: String,
    /// The band, a fraction: the table's MAPE.
    pub relative: f64,
    /// The table's worst row (a fraction), for a pessimistic reading.
    pub max_error: f64,
    /// `[low, high]` of each headline figure.
    pub step_time_s: [f64; 2],
    pub tokens_per_s: [f64; 2],
    pub tflops_per_gpu: [f64; 2],
    pub mfu: [f64; 2],
}

/// What `Uncertainty::basis` says.
pub const UNCERTAINTY_BASIS: &str =
    "figure x (1 +/- MAPE of the GPU generation's calibration table, clustersim validate)";

/// The band around `m` on `gpu`, when the GPU names a calibration table.
pub fn uncertainty(gpu: &crate::hardware::GpuSpec, m: &sim::StepMetrics) -> Option<Uncertainty> {
    let b = band_for(gpu)?;
    let r = b.mape;
    let band = |x: f64| [x * (1.0 - r), x * (1.0 + r)];
    Some(Uncertainty {
        basis: UNCERTAINTY_BASIS,
        table: b.table.clone(),
        label: b.label.clone(),
        relative: r,
        max_error: b.max_error,
        step_time_s: band(m.step_time_s),
        tokens_per_s: band(m.tokens_per_s),
        tflops_per_gpu: band(m.tflops_per_gpu),
        mfu: band(m.mfu),
    })
}

/// Korthikanti et al.'s per-layer times (arXiv 2205.05198, Table 4): one transformer layer
/// of their 22B model on eight A100 80GB (TP 8), forward and backward in ms, per case.
pub const LAYER_TIMES_FILE: &str = "a100-layer-times.csv";

/// The stack the per-layer table is predicted with: `megatron-lm-2023`, whose per-layer
/// fields are those of the paper's code (the `sequence_parallel` merge of NVIDIA/Megatron-LM,
/// d898a8991d, 2022-05-25: `LinearWithGradAccumulationAndAsyncCommunication` in
/// megatron/mpu/layers.py runs the input-gradient all-reduce, or under sequence parallel
/// the all-gather and reduce-scatter, asynchronously beside the GEMMs; gradient
/// accumulation fused into the weight-gradient GEMM with `fused_dense_cuda.
/// wgrad_gemm_accum_fp32`, which megatron/arguments.py enables with fp32 accumulation,
/// forced under BF16). No FlashAttention: `CoreAttention` (megatron/model/transformer.py)
/// runs `baddbmm`, the fused scale-mask-softmax, dropout and `bmm`.
pub const LAYER_TIMES_STACK: &str = "megatron-lm-2023";

/// One case of the per-layer table.
#[derive(Debug, Clone, Serialize)]
pub struct LayerCase {
    /// The CSV's `experiment` (`baseline_no_recompute`, `sequence_parallel`, ...).
    pub experiment: String,
    pub recompute: Recompute,
    pub sequence_parallel: bool,
    pub published_forward_ms: f64,
    pub published_backward_ms: f64,
}

/// A prediction for one per-layer case.
#[derive(Debug, Clone, Serialize)]
pub struct LayerPrediction {
    pub case: LayerCase,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub forward_error: f64,
    pub backward_error: f64,
}

/// The recompute and sequence-parallel settings an `experiment` name states.
fn layer_case_settings(name: &str) -> Option<(Recompute, bool)> {
    Some(match name {
        "baseline_no_recompute" => (Recompute::None, false),
        "sequence_parallel" => (Recompute::None, true),
        "full_recompute" => (Recompute::Full, false),
        "selective_recompute" => (Recompute::Selective, false),
        "selective_recompute_and_sequence_parallel" => (Recompute::Selective, true),
        _ => return None,
    })
}

/// Reads `a100-layer-times.csv` from `dir`.
pub fn read_layer_cases(dir: &Path) -> Result<Vec<LayerCase>, ValidateError> {
    let path = dir.join(LAYER_TIMES_FILE);
    let text = crate::config::input::read_text(&path).map_err(|e| ValidateError::Io {
        path: path.clone(),
        source: e,
    })?;
    let header = csv_header(&text);
    let mut cases = Vec::new();
    for r in csv_records(&path, &text, &header) {
        let experiment = r.cell("experiment")?.to_string();
        let (recompute, sequence_parallel) = layer_case_settings(&experiment).ok_or_else(|| {
            r.error(format!(
                "unknown experiment `{experiment}` (allowed: baseline_no_recompute, \
                 sequence_parallel, full_recompute, selective_recompute, \
                 selective_recompute_and_sequence_parallel)"
            ))
        })?;
        cases.push(LayerCase {
            experiment,
            recompute,
            sequence_parallel,
            published_forward_ms: r.number("forward_ms")?,
            published_backward_ms: r.number("backward_ms")?,
        });
    }
    Ok(cases)
}

/// The per-layer table's setting: the 22B model of Korthikanti et al. (Table 3: 64 heads,
/// hidden 6144, 48 layers, sequence 2048, micro-batch 4, TP 8) on one DGX A100 80GB,
/// BF16, no FlashAttention, one micro-batch, under [`LAYER_TIMES_STACK`].
pub fn layer_times_base() -> Result<Scenario, crate::config::ConfigError> {
    let yaml = format!(
        "name: korthikanti-22b\nmodel: {{name: gpt-22b, layers: 48, hidden: 6144, heads: 64, \
         ffn_hidden: 24576, vocab: 51200, tied_embeddings: true}}\n\
         cluster: {{from: dgx-a100-hdr, nodes: 1}}\n\
         training: {{seq_len: 2048, global_batch: 4, micro_batch: 4, precision: bf16, \
         flash_attention: false}}\n\
         parallelism: {{tp: 8, pp: 1, dp: 1}}\nstack: {{preset: {LAYER_TIMES_STACK}}}\n"
    );
    crate::config::load_scenario_str("layer-times", &yaml, &[])
}

/// The scenario of one case: [`layer_times_base`] with its recompute and sequence
/// parallelism.
pub fn layer_scenario(case: &LayerCase, base: &Scenario) -> Scenario {
    let mut s = base.clone();
    s.name = format!("layer-{}", case.experiment);
    s.training.recompute = case.recompute;
    s.parallelism.sequence_parallel = case.sequence_parallel;
    s
}

/// One layer's forward and backward time (seconds) in a replayed step of one
/// micro-batch without pipelining: the period between the first ops of consecutive
/// layers in the middle of the model on rank 0, so each pass includes the layer's
/// exposed TP communication and, in backward, its recompute.
pub fn layer_pass_times(s: &Scenario) -> Result<(f64, f64), ValidateError> {
    let opts = StepOptions {
        trace: crate::engine::TraceRanks::Some(vec![0]),
        ..StepOptions::default()
    };
    let r = sim::simulate_step(s, &opts).map_err(|e| ValidateError::Engine {
        row: s.name.clone(),
        source: e,
    })?;
    let stage = r.grid.stage_of(0) as usize;
    let program = &r.graph.stages[stage];
    let layers = s.model.layers;
    let mut fwd = vec![u64::MAX; layers as usize];
    let mut bwd = vec![u64::MAX; layers as usize];
    for ev in r.replay.trace.iter().filter(|e| e.rank == 0) {
        let op = program.op(ev.op);
        let (lo, hi) = op.layers;
        if lo != hi || lo as u64 >= layers {
            continue;
        }
        let slot = match op.category {
            crate::vocab::Category::Forward => &mut fwd[lo as usize],
            crate::vocab::Category::Backward
            | crate::vocab::Category::BackwardWeight
            | crate::vocab::Category::Recompute => &mut bwd[lo as usize],
            _ => continue,
        };
        *slot = (*slot).min(ev.start);
    }
    let k = (layers / 2) as usize;
    let ns = |a: u64, b: u64| a.saturating_sub(b) as f64 * 1e-9;
    Ok((ns(fwd[k + 1], fwd[k]), ns(bwd[k - 1], bwd[k])))
}

/// Predicts one per-layer case.
pub fn predict_layer(case: &LayerCase, base: &Scenario) -> Result<LayerPrediction, ValidateError> {
    let s = layer_scenario(case, base);
    let (f, b) = layer_pass_times(&s)?;
    let (forward_ms, backward_ms) = (f * 1e3, b * 1e3);
    Ok(LayerPrediction {
        case: case.clone(),
        forward_ms,
        backward_ms,
        forward_error: forward_ms / case.published_forward_ms - 1.0,
        backward_error: backward_ms / case.published_backward_ms - 1.0,
    })
}

/// The worst absolute forward and backward errors (fractions) over per-layer cases.
pub fn layer_error_stats(preds: &[LayerPrediction]) -> (f64, f64) {
    let worst = |f: fn(&LayerPrediction) -> f64| preds.iter().map(f).fold(0.0, f64::max);
    (
        worst(|p| p.forward_error.abs()),
        worst(|p| p.backward_error.abs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Comments and blank lines are skipped but counted: errors name the file's line.
    #[test]
    fn calibration_csv_errors_name_the_line_and_the_column() {
        let header = "params_b,heads,hidden,layers,tp,pp,gpus,global_batch,tflops_per_gpu";
        let good = "1.7,24,2304,24,1,1,32,512,137";
        let text = format!("# source\n{header}\n\n{good}\n1.7,24,2304,24,1,1,32,512,x\n");
        let path = Path::new("t.csv");
        let message = |e: ValidateError| e.to_string();
        let err = parse_rows(Source::MegatronSc21A100, path, &text).unwrap_err();
        assert_eq!(
            message(err),
            "t.csv:5: column `tflops_per_gpu` is not a number"
        );
        let short = format!("{header}\n1.7,24\n");
        let err = parse_rows(Source::MegatronSc21A100, path, &short).unwrap_err();
        assert_eq!(message(err), "t.csv:2: missing column `tflops_per_gpu`");
        let rows = parse_rows(
            Source::MegatronSc21A100,
            path,
            &format!("{header}\n{good}\n"),
        );
        let rows = rows.expect("one good row");
        assert_eq!((rows.len(), rows[0].gpus), (1, 32));
        assert_eq!(rows[0].published_tflops, 137.0);
    }
}
