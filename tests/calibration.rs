//! Predictions against the published end-to-end tables in ../shared/calibration.
//!
//! Every row is built from its shapes (nothing looks a result up) with one rule for the
//! settings the tables leave open (`validate::micro_batch_rule`, interleaving ≤ 8 chunks).
//! The GPU catalog's `sustained_efficiency` was fitted once per GPU generation
//! (`cargo run --release --example calibrate`).

use std::path::Path;

use clustersim::validate::{self, Prediction, Source};

fn predictions(source: Source) -> Option<Vec<Prediction>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/calibration");
    if !dir.is_dir() {
        eprintln!("skipped: {} not found", dir.display());
        return None;
    }
    let base = validate::calibration_base(source).expect("shipped topology loads");
    let rows = validate::read_rows(&dir, source).expect("calibration table parses");
    let preds = rows
        .iter()
        .map(|r| validate::predict(r, &base, &base.cluster).expect("row simulates"))
        .collect::<Vec<_>>();
    for p in &preds {
        eprintln!(
            "{:<22} {:>7.1}B published {:>6.1} predicted {:>6.1} error {:+.1} %",
            source.label(),
            p.row.params_b,
            p.row.published_tflops,
            p.predicted_tflops,
            p.error * 100.0
        );
    }
    Some(preds)
}

/// The band every prediction on this table's GPUs prints (`data/calibration-bands.json`,
/// compiled in) is this table's error as computed now: the file cannot drift from the
/// calibration tables or the model.
fn assert_embedded_band(preds: &[Prediction], source: Source) {
    let now = validate::bands_of(preds);
    let embedded = validate::embedded_bands();
    let shipped = embedded.tables.iter().find(|b| b.table == source.table());
    assert_eq!(
        shipped,
        now.tables.first(),
        "data/calibration-bands.json is stale for {}: run `{}`",
        source.table(),
        validate::BANDS_COMMAND
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "simulates 3,072-GPU steps; run with --release"
)]
fn megatron_sc21_a100_within_issue_bounds() {
    let Some(preds) = predictions(Source::MegatronSc21A100) else {
        return;
    };
    assert_embedded_band(&preds, Source::MegatronSc21A100);
    let (mape, max) = validate::error_stats(&preds);
    assert_eq!(preds.len(), 10);
    assert!(max <= 0.08, "worst row {:.1} % (bound 8 %)", max * 100.0);
    assert!(mape <= 0.035, "MAPE {:.2} % (bound 3.5 %)", mape * 100.0);
}

/// The Megatron-Core H100 table under its own stack (`megatron-core`, Megatron-Core
/// r0.8 with the README's `--tp-comm-overlap`) does NOT meet the issue's bounds (MAPE
/// <= 3.5 %, every row but 32B within 8 %): measured MAPE 4.6 %, 119B -9.0 %, 177B
/// +8.6 %, 32B +8.4 % (exempt). This guards the level reached so regressions show; it is
/// not the target. What the 119B miss is: see the next test.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "simulates 6,144-GPU steps; run with --release"
)]
fn megatron_core_h100_does_not_regress() {
    let Some(preds) = predictions(Source::MegatronCoreH100) else {
        return;
    };
    assert_embedded_band(&preds, Source::MegatronCoreH100);
    let (mape, max) = validate::error_stats(&preds);
    assert_eq!(preds.len(), 9);
    assert!(
        mape <= 0.0465,
        "MAPE {:.2} % (measured 4.63 %)",
        mape * 100.0
    );
    assert!(
        max <= 0.091,
        "worst row {:.1} % (measured 9.0 %)",
        max * 100.0
    );
}

/// Why the 119B row misses under Megatron-Core r0.8's stack: its whole error is time on
/// the inter-node network, which carries its data-parallel traffic (TP 8 fills a node,
/// and three pipeline hops). With FP32 gradient reduction
/// (`accumulate_allreduce_grads_in_fp32`, forced under `--bf16`,
/// megatron/training/arguments.py:299-305 at core_r0.8.0) reduce-scatters over one
/// 400 Gb/s NIC per GPU overlap only the last micro-batch's backward (`is_last_microbatch`,
/// megatron/core/distributed/param_and_grad_buffer.py:547) and parameter gathers only the
/// first micro-batch's forward (megatron/core/optimizer/distrib_optimizer.py:1336-1337,
/// 1464-1475). It misses by more than 8 %; on the same cluster with NICs a thousand times
/// faster (nothing else changed) it is within 1 % of the published figure: the run hid
/// network time this schedule cannot (README "Calibration", which prints the same from
/// `scenarios/calibration/mcore-119b.yaml`). 16B, which has no pipeline, runs one
/// micro-batch of 4 (`validate::micro_batch_rule`), whose whole backward hides the
/// reduce-scatter: within 8 %, and within 2 % of its fast-NIC figure.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "simulates 1,536-GPU steps; run with --release"
)]
fn megatron_core_misses_are_the_exposed_data_parallel_time() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/calibration");
    if !dir.is_dir() {
        return;
    }
    let source = Source::MegatronCoreH100;
    let base = validate::calibration_base(source).unwrap();
    let mut fast_nics = base.cluster.clone();
    fast_nics.node.nic_gbps *= 1000.0;
    for row in validate::read_rows(&dir, source).unwrap() {
        if row.params_b != 16.0 && row.params_b != 119.0 {
            continue;
        }
        let p = validate::predict(&row, &base, &base.cluster).unwrap();
        let free = validate::predict(&row, &base, &fast_nics).unwrap();
        let label = format!(
            "{}B: {:+.1} %, with NICs x1000 {:+.1} %",
            row.params_b,
            p.error * 100.0,
            free.error * 100.0
        );
        if row.params_b == 119.0 {
            assert!(p.error < -0.08, "{label}");
            assert!(free.error.abs() < 0.01, "{label}");
        } else {
            assert!(p.error.abs() < 0.08, "{label}");
            assert!((free.error - p.error).abs() < 0.02, "{label}");
        }
    }
}

/// Korthikanti et al.'s per-layer times (arXiv 2205.05198, Table 4; 22B, TP 8, A100):
/// every case, forward and backward, within the issue's 6 %. Each time is the replayed
/// period between consecutive layers (compute, the TP collectives left exposed, the
/// recompute), under the paper's stack (`validate::LAYER_TIMES_STACK`).
#[test]
fn korthikanti_layer_times_within_six_percent() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/calibration");
    if !dir.is_dir() {
        return;
    }
    let base = validate::layer_times_base().unwrap();
    let cases = validate::read_layer_cases(&dir).unwrap();
    assert_eq!(cases.len(), 5);
    let preds: Vec<_> = cases
        .iter()
        .map(|c| validate::predict_layer(c, &base).unwrap())
        .collect();
    for p in &preds {
        eprintln!(
            "{:<42} fwd {:.2} ms ({:+.1} %) bwd {:.2} ms ({:+.1} %)",
            p.case.experiment,
            p.forward_ms,
            p.forward_error * 100.0,
            p.backward_ms,
            p.backward_error * 100.0
        );
    }
    let (fwd, bwd) = validate::layer_error_stats(&preds);
    assert!(fwd <= 0.06, "forward worst {:.1} %", fwd * 100.0);
    assert!(bwd <= 0.06, "backward worst {:.1} %", bwd * 100.0);
    // The mechanisms the cases isolate, in the direction the paper measured: sequence
    // parallel shortens the forward (element-wise work split over TP); full recompute
    // adds about one forward to the backward; selective recompute adds less.
    let by = |name: &str| preds.iter().find(|p| p.case.experiment == name).unwrap();
    let base_case = by("baseline_no_recompute");
    assert!(by("sequence_parallel").forward_ms < base_case.forward_ms);
    let full = by("full_recompute").backward_ms - base_case.backward_ms;
    assert!((full / base_case.forward_ms - 1.0).abs() < 0.05, "{full}");
    let sel = by("selective_recompute").backward_ms - base_case.backward_ms;
    assert!(sel > 0.0 && sel < 0.25 * full, "{sel} vs {full}");
}

/// The unfused attention softmax and dropout move 11 bytes per score in backward (dropout
/// backward 2 + 1 + 2, fused softmax backward 2 + 2 + 2), not twice the forward's 9.
#[test]
fn unfused_softmax_dropout_backward_moves_eleven_bytes_per_score() {
    use clustersim::model::kernels;
    let s = validate::layer_times_base().unwrap();
    let cm = clustersim::sim::compute_model(&s);
    let inp = clustersim::sim::step_inputs(&s, &cm);
    let fwd = kernels::attention_forward(&s.model, &inp.layer_shard());
    let bwd = kernels::backward(&fwd);
    let bytes = |ks: &[kernels::Kernel]| {
        ks.iter()
            .find(|k| k.name == "softmax_dropout")
            .unwrap()
            .bytes
    };
    // 4 sequences x 8 local heads x 2048^2 scores.
    let scores = 4.0 * 8.0 * 2048.0 * 2048.0;
    assert_eq!(bytes(&fwd), 9.0 * scores);
    assert_eq!(bytes(&bwd), 11.0 * scores);
}

/// Every GPU of the catalog names a calibration table that has a band, so every shipped
/// GPU's predictions print one.
#[test]
fn every_catalog_gpu_has_a_band() {
    for name in clustersim::config::presets::gpu_names().unwrap() {
        let text = format!(
            "model: llama3-8b\ncluster: {{ from: dgx-h100-ndr, nodes: 1, gpu: {name} }}\n\
             training: {{ seq_len: 2048, global_batch: 8 }}\nparallelism: {{ tp: 8, pp: 1, dp: 1 }}\n"
        );
        let s = clustersim::config::load_scenario_str("t", &text, &[]).unwrap();
        let band = validate::band_for(&s.cluster.gpu)
            .unwrap_or_else(|| panic!("{name}: no calibration band"));
        assert!(
            band.mape > 0.0 && band.max_error >= band.mape,
            "{name}: {band:?}"
        );
    }
}

/// `scenarios/calibration/mcore-*.yaml` are Megatron-Core rows as `validate` builds them,
/// so the README's checked commands on them (`clustersim run`, with `--set` of one stack
/// field) speak of the table's rows: each gives the row's predicted step exactly.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "simulates 2,304-GPU steps; run with --release"
)]
fn megatron_core_row_scenarios_are_the_validate_rows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("../shared/calibration");
    if !dir.is_dir() {
        return;
    }
    let source = Source::MegatronCoreH100;
    let base = validate::calibration_base(source).unwrap();
    let rows = validate::read_rows(&dir, source).unwrap();
    for (file, params_b) in [
        ("16b", 16.0),
        ("32b", 32.0),
        ("119b", 119.0),
        ("177b", 177.0),
    ] {
        let path = root.join(format!("scenarios/calibration/mcore-{file}.yaml"));
        let s = clustersim::config::load_scenario(Some(&path), &[]).unwrap();
        let row = rows.iter().find(|r| r.params_b == params_b).unwrap();
        let p = validate::predict(row, &base, &base.cluster).unwrap();
        let r = clustersim::sim::simulate_step(&s, &Default::default()).unwrap();
        assert_eq!(
            r.metrics.step_time_s, p.step_time_s,
            "mcore-{file}.yaml differs from validate's {params_b}B row"
        );
    }
}

/// The data-parallel schedule of the `megatron-core` stack is Megatron-Core r0.8's, on
/// the 16B row (PP 1, four micro-batches), rank 0's replay:
/// - gradients are reduce-scattered in FP32 (4 bytes per local parameter:
///   `grad_dtype = torch.float if grad_reduce_in_fp32`, distributed_data_parallel.py:108;
///   `accumulate_allreduce_grads_in_fp32 = True` under `--bf16`, arguments.py:299-305);
/// - parameters are all-gathered in BF16 (2 bytes: `bucket.param_data`, the parameter
///   dtype, distrib_optimizer.py:1370, 1400);
/// - no reduce-scatter starts before the last micro-batch's backward (buckets register
///   ready only when `is_last_microbatch`, param_and_grad_buffer.py:547), and the first
///   starts inside it (`register_grad_ready` launches a bucket as soon as its gradients
///   are complete, param_and_grad_buffer.py:186-187, with `async_op`, 135-141);
/// - every all-gather ends within the first micro-batch's forward: only it waits on the
///   gather handles (`_finish_param_sync_helper` clears each handle once waited,
///   distrib_optimizer.py:1464-1466; the first gather starts in `zero_grad`, 1336-1337).
///
/// (All at core_r0.8.0, baf94af3c6.)
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "simulates a 192-GPU step; run with --release"
)]
fn megatron_core_data_parallel_follows_r0_8() {
    use clustersim::engine::TraceRanks;
    use clustersim::vocab::{Category, Collective};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("scenarios/calibration/mcore-16b.yaml");
    // Four micro-batches (the row itself runs one), so that "only the last" and "only the
    // first" can be told from "every".
    let four = ["training.micro_batch=1".to_string()];
    let s = clustersim::config::load_scenario(Some(&path), &four).unwrap();
    let opts = clustersim::sim::StepOptions {
        trace: TraceRanks::Some(vec![0]),
        ..Default::default()
    };
    let r = clustersim::sim::simulate_step(&s, &opts).unwrap();
    let prog = &r.graph.stages[0];
    let m = (s.training.global_batch / s.parallelism.dp / s.training.micro_batch) as u32;
    assert_eq!(m, 4);
    let local = (s.model.total_params() / s.parallelism.tp) as f64;
    let (mut rs_bytes, mut ag_bytes) = (0.0, 0.0);
    let (mut rs_first, mut ag_last) = (f64::INFINITY, 0.0f64);
    let (mut last_bwd_start, mut last_bwd_end) = (f64::INFINITY, 0.0f64);
    let mut first_fwd_end = 0.0f64;
    for ev in &r.replay.trace {
        let op = prog.op(ev.op);
        let (start, end) = (ev.start as f64, ev.end as f64);
        if let Some(c) = op.comm.filter(|_| op.category == Category::Dp) {
            let comm = &r.graph.comms[c as usize];
            match comm.collective {
                Collective::ReduceScatter => {
                    rs_bytes += comm.bytes as f64;
                    rs_first = rs_first.min(start);
                }
                Collective::AllGather => {
                    ag_bytes += comm.bytes as f64;
                    ag_last = ag_last.max(end);
                }
                _ => {}
            }
        } else if op.category == Category::Backward && op.micro_batch == m - 1 {
            last_bwd_start = last_bwd_start.min(start);
            last_bwd_end = last_bwd_end.max(end);
        } else if op.category == Category::Forward && op.micro_batch == 0 {
            first_fwd_end = first_fwd_end.max(end);
        }
    }
    assert!(
        (rs_bytes / local / 4.0 - 1.0).abs() < 1e-3,
        "{rs_bytes} vs {local}"
    );
    assert!(
        (ag_bytes / local / 2.0 - 1.0).abs() < 1e-3,
        "{ag_bytes} vs {local}"
    );
    assert!(rs_first >= last_bwd_start && rs_first < last_bwd_end);
    assert!(ag_last <= first_fwd_end, "{ag_last} vs {first_fwd_end}");
}
