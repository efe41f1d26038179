//! One test per scenario validation rule: every bad input gives a `ConfigError` naming the
//! file, line and field (never a panic), and the binary exits with code 2.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use clustersim::config::{ConfigError, Scenario, load_scenario};
use clustersim::plan::ScheduleKind;

/// A valid scenario: Llama 3 70B on 16 DGX H100 nodes (128 GPUs), TP 8 x PP 4 x DP 4.
/// Line numbers matter: tests point at them.
const BASE: &str = "\
name: test
model: llama3-70b
cluster: { from: dgx-h100-ndr, nodes: 16 }
training:
  seq_len: 4096
  global_batch: 64
  micro_batch: 1
  precision: bf16
parallelism:
  tp: 8
  pp: 4
  dp: 4
  schedule: 1f1b
";

/// A fresh file in a per-test temporary directory.
fn write(name: &str, text: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("clustersim-config-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

fn load(text: &str, sets: &[&str]) -> Result<Scenario, ConfigError> {
    let path = write("scenario.yaml", text);
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_scenario(Some(&path), &sets)
}

/// Loads `text` with `sets`, expects an error and returns it with its rendering.
fn fails(text: &str, sets: &[&str]) -> (ConfigError, String) {
    match load(text, sets) {
        Ok(s) => panic!("expected an error, got a valid scenario {}", s.name),
        Err(e) => {
            let shown = e.to_string();
            (e, shown)
        }
    }
}

/// Asserts the error is located at `line` of the scenario file and names `field`.
fn assert_at(e: &ConfigError, line: u64, field: &str) {
    let loc = e.location.as_deref().unwrap_or("");
    assert!(
        loc.ends_with(&format!("scenario.yaml:{line}:{}", col_of(loc))),
        "expected line {line}, got `{e}`"
    );
    assert_eq!(e.field, field, "{e}");
}

fn col_of(loc: &str) -> &str {
    loc.rsplit(':').next().unwrap_or("")
}

fn replace(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_scenario_is_valid() {
    let s = load(BASE, &[]).unwrap();
    assert_eq!(s.parallelism.world_size(), 128);
}

// --- syntax and schema ---------------------------------------------------------------

#[test]
fn malformed_yaml() {
    let (e, shown) = fails(&replace("  seq_len: 4096", "  seq_len: [4096"), &[]);
    assert!(shown.contains("scenario.yaml:"), "{shown}");
    assert!(e.message.starts_with("invalid YAML"), "{shown}");
}

#[test]
fn unknown_key() {
    let (e, shown) = fails(&replace("  dp: 4", "  dp: 4\n  tensor: 2"), &[]);
    assert_at(&e, 13, "parallelism.tensor");
    assert!(shown.contains("unknown field `tensor`"), "{shown}");
    assert!(shown.contains("`tp`"), "lists allowed keys: {shown}");
}

#[test]
fn duplicate_key() {
    let (e, shown) = fails(&replace("  pp: 4", "  pp: 4\n  tp: 4"), &[]);
    assert!(shown.contains("scenario.yaml:12:"), "{shown}");
    assert!(e.message.to_lowercase().contains("duplicate"), "{shown}");
}

#[test]
fn wrong_type() {
    let (e, shown) = fails(&replace("  tp: 8", "  tp: eight"), &[]);
    assert_at(&e, 10, "parallelism.tp");
    assert!(shown.contains("invalid type"), "{shown}");
}

#[test]
fn negative_size_is_a_type_error() {
    let (e, _) = fails(&replace("  micro_batch: 1", "  micro_batch: -1"), &[]);
    assert_at(&e, 7, "training.micro_batch");
}

#[test]
fn missing_required_key() {
    let (e, shown) = fails(&replace("  seq_len: 4096\n", ""), &[]);
    assert_at(&e, 4, "training");
    assert!(shown.contains("missing field `seq_len`"), "{shown}");
}

#[test]
fn bad_enum_value_lists_the_allowed_ones() {
    let (e, shown) = fails(&replace("  precision: bf16", "  precision: bf17"), &[]);
    assert_at(&e, 8, "training.precision");
    assert!(shown.contains("fp32") && shown.contains("fp8"), "{shown}");
}

#[test]
fn unknown_model_preset_lists_the_presets() {
    let (e, shown) = fails(&replace("model: llama3-70b", "model: llama4-70b"), &[]);
    assert_at(&e, 2, "model");
    assert!(
        shown.contains("llama3-70b") && shown.contains("gpt3-175b"),
        "{shown}"
    );
}

#[test]
fn unknown_gpu_preset_lists_the_catalog() {
    let (e, shown) = fails(BASE, &["cluster.gpu=h300"]);
    assert_eq!(e.field, "cluster.gpu");
    assert!(shown.starts_with("--set cluster.gpu=h300"), "{shown}");
    assert!(
        shown.contains("h100-sxm") && shown.contains("mi300x"),
        "{shown}"
    );
}

#[test]
fn unknown_topology_and_missing_topology_file() {
    let (e, shown) = fails(&replace("from: dgx-h100-ndr", "from: dgx-h900"), &[]);
    assert_at(&e, 3, "cluster");
    assert!(shown.contains("dgx-a100-hdr"), "{shown}");
    let (e, shown) = fails(
        &replace("{ from: dgx-h100-ndr, nodes: 16 }", "nope.yaml"),
        &[],
    );
    assert_at(&e, 3, "cluster");
    assert!(shown.contains("cannot read topology file"), "{shown}");
}

#[test]
fn topology_paths_are_relative_to_the_scenario_and_errors_name_the_topology_file() {
    let topo = write(
        "topo.yaml",
        "name: t\ngpu: h100-sxm\nnodes: 16\nnode: { gpus: 8, nvlink_gbs: 450, nics: 8, nic_gbps: 400 }\n\
         fabric: { kind: fat-tree, hop_latency: 1 }\n",
    );
    let dir = topo.parent().unwrap();
    let text = replace("{ from: dgx-h100-ndr, nodes: 16 }", "topo.yaml");
    std::fs::write(dir.join("scenario.yaml"), text).unwrap();
    let e = load_scenario(Some(&dir.join("scenario.yaml")), &[]).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("topo.yaml:5:"), "{shown}");
    assert_eq!(e.field, "cluster.fabric.hop_latency");
}

// --- overrides -----------------------------------------------------------------------

#[test]
fn bad_override_syntax_path_and_value() {
    let (_, shown) = fails(BASE, &["parallelism.tp"]);
    assert!(shown.starts_with("--set parallelism.tp:"), "{shown}");
    let (_, shown) = fails(BASE, &["name.first=x"]);
    assert!(shown.starts_with("--set name.first=x:"), "{shown}");
    let (e, shown) = fails(BASE, &["parallelism.tp=many"]);
    assert!(shown.starts_with("--set parallelism.tp=many:"), "{shown}");
    assert_eq!(e.field, "parallelism.tp");
    let (e, shown) = fails(BASE, &["parallelism.tpp=2"]);
    assert!(shown.starts_with("--set parallelism.tpp=2:"), "{shown}");
    assert_eq!(e.field, "parallelism.tpp");
}

#[test]
fn overrides_apply_to_scenario_and_topology_keys() {
    let s = load(
        BASE,
        &[
            "cluster.nodes=8",
            "parallelism.dp=2",
            "training.recompute=full",
            "model=llama3-8b",
        ],
    )
    .unwrap();
    assert_eq!(s.cluster.total_gpus(), 64);
    assert_eq!(s.model.name, "llama3-8b");
}

// --- semantic rules ------------------------------------------------------------------

#[test]
fn gpu_count_must_match_the_plan() {
    let (e, shown) = fails(&replace("  dp: 4", "  dp: 2"), &[]);
    assert_at(&e, 9, "parallelism");
    assert!(
        shown.ends_with(
            "parallelism: tp*pp*dp*cp = 8*4*2*1 = 64 but the cluster has 16 nodes x 8 GPUs = 128"
        ),
        "{shown}"
    );
}

#[test]
fn dp_is_derived_when_omitted_and_checked_when_not_derivable() {
    let s = load(&replace("  dp: 4\n", ""), &[]).unwrap();
    assert_eq!(s.parallelism.dp, 4);
    let (e, shown) = fails(&replace("  dp: 4\n", ""), &["cluster.nodes=3"]);
    assert_eq!(e.field, "parallelism.dp");
    assert!(shown.contains("3 nodes x 8 GPUs = 24"), "{shown}");
}

#[test]
fn tp_must_divide_heads() {
    let (e, shown) = fails(
        &replace("  tp: 8", "  tp: 6"),
        &["cluster.nodes=3", "parallelism.pp=4", "parallelism.dp=1"],
    );
    assert_at(&e, 10, "parallelism.tp");
    assert!(
        shown.contains("parallelism.tp=6 does not divide model.heads=64"),
        "{shown}"
    );
}

#[test]
fn tp_above_kv_heads_replicates_them_and_other_degrees_are_refused() {
    // Llama 3 70B has 8 KV heads: TP 16 replicates each over 2 ranks (Megatron-Core).
    let ok = load(&replace("  tp: 8", "  tp: 16"), &["parallelism.dp=2"]).unwrap();
    assert_eq!(ok.model.kv_heads_per_rank(16), 1);
    let custom = BASE.replacen(
        "model: llama3-70b",
        "model: { layers: 8, hidden: 1536, heads: 12, kv_heads: 3, ffn_hidden: 6144, vocab: 32000 }",
        1,
    );
    let (e, shown) = fails(
        &custom.replacen("  tp: 8", "  tp: 4", 1),
        &["parallelism.dp=8"],
    );
    assert_eq!(e.field, "parallelism.tp");
    assert!(
        shown.contains("parallelism.tp=4 neither divides nor is a multiple of model.kv_heads=3"),
        "{shown}"
    );
}

#[test]
fn tp_must_divide_ffn_hidden() {
    let (e, shown) = fails(BASE, &["model.ffn_hidden=28676"]);
    assert_eq!(e.field, "parallelism.tp");
    assert!(
        shown.contains("does not divide model.ffn_hidden=28676"),
        "{shown}"
    );
}

#[test]
fn model_heads_must_divide_hidden_and_kv_heads_must_divide_heads() {
    let (e, _) = fails(BASE, &["model.heads=48"]);
    assert_eq!(e.field, "model.heads");
    let (e, shown) = fails(BASE, &["model.kv_heads=24"]);
    assert_eq!(e.field, "model.kv_heads");
    assert!(shown.contains("allowed: 1, 2, 4, 8, 16, 32, 64"), "{shown}");
}

#[test]
fn pp_must_not_exceed_layers() {
    let (e, shown) = fails(BASE, &["model.layers=2"]);
    assert_eq!(e.field, "parallelism.pp");
    assert!(
        shown.contains("pp=4 is more than model.layers=2"),
        "{shown}"
    );
}

#[test]
fn stage_layers_must_have_one_entry_per_stage_and_sum_to_layers() {
    let ok = load(BASE, &["parallelism.stage_layers=[19, 21, 21, 19]"]).unwrap();
    assert_eq!(ok.parallelism.stage_layers, Some(vec![19, 21, 21, 19]));
    let (e, shown) = fails(BASE, &["parallelism.stage_layers=[40, 40]"]);
    assert_eq!(e.field, "parallelism.stage_layers");
    assert!(shown.contains("has 2 entries but pp=4"), "{shown}");
    let (_, shown) = fails(BASE, &["parallelism.stage_layers=[20, 20, 20, 21]"]);
    assert!(shown.contains("sums to 81 but model.layers=80"), "{shown}");
    let (_, shown) = fails(BASE, &["parallelism.stage_layers=[0, 40, 20, 20]"]);
    assert!(shown.contains("at least 1"), "{shown}");
}

#[test]
fn megatron_split_switches_are_checked() {
    let interleaved = [
        "parallelism.schedule=interleaved",
        "parallelism.virtual_stages=2",
    ];
    let with = |extra: &[&'static str]| {
        let mut v: Vec<&str> = interleaved.to_vec();
        v.extend_from_slice(extra);
        v
    };
    // 78 layers + 2 slots = 80 = 4 stages x 2 chunks x 10.
    let ok = load(
        BASE,
        &with(&[
            "model.layers=78",
            "parallelism.account_for_embedding_in_pipeline_split=true",
            "parallelism.account_for_loss_in_pipeline_split=true",
        ]),
    )
    .unwrap();
    assert!(ok.parallelism.split.embedding_slot && ok.parallelism.split.loss_slot);
    let (e, shown) = fails(
        BASE,
        &with(&["parallelism.account_for_embedding_in_pipeline_split=true"]),
    );
    assert_eq!(
        e.field,
        "parallelism.account_for_embedding_in_pipeline_split"
    );
    assert!(shown.contains("81 is not divisible"), "{shown}");
    let ok = load(
        BASE,
        &with(&[
            "parallelism.decoder_first_pipeline_num_layers=18",
            "parallelism.decoder_last_pipeline_num_layers=22",
        ]),
    )
    .unwrap();
    assert_eq!(ok.parallelism.split.first, Some(18));
    let (e, shown) = fails(
        BASE,
        &with(&["parallelism.decoder_last_pipeline_num_layers=21"]),
    );
    assert_eq!(e.field, "parallelism.decoder_last_pipeline_num_layers");
    assert!(shown.contains("do not divide evenly"), "{shown}");
    let (e, _) = fails(
        BASE,
        &with(&[
            "parallelism.decoder_first_pipeline_num_layers=18",
            "parallelism.stage_layers=[18, 20, 20, 22]",
        ]),
    );
    assert_eq!(e.field, "parallelism.decoder_first_pipeline_num_layers");
    let (e, _) = fails(
        BASE,
        &[
            "parallelism.schedule=dualpipe",
            "parallelism.account_for_loss_in_pipeline_split=true",
        ],
    );
    assert_eq!(e.field, "parallelism.schedule");
}

#[test]
fn zero_sizes_are_rejected_everywhere() {
    let cases = [
        ("model.layers=0", "model.layers"),
        ("model.hidden=0", "model.hidden"),
        ("training.seq_len=0", "training.seq_len"),
        ("training.global_batch=0", "training.global_batch"),
        ("training.micro_batch=0", "training.micro_batch"),
        ("cluster.nodes=0", "cluster.nodes"),
        ("cluster.node.gpus=0", "cluster.node.gpus"),
        ("parallelism.tp=0", "parallelism.tp"),
        ("cluster.node.nic_gbps=0", "cluster.node.nic_gbps"),
        ("cluster.node.nvlink_gbs=-450", "cluster.node.nvlink_gbs"),
        ("cluster.gpu.memory_bw_gbs=0", "cluster.gpu.memory_bw_gbs"),
        (
            "cluster.gpu.peak_tflops.bf16=-1",
            "cluster.gpu.peak_tflops.bf16",
        ),
        ("cluster.storage.write_gbs=0", "cluster.storage.write_gbs"),
        (
            "cluster.gpu.gemm_efficiency=1.5",
            "cluster.gpu.gemm_efficiency",
        ),
    ];
    for (set, field) in cases {
        let (e, shown) = fails(BASE, &[set]);
        assert_eq!(e.field, field, "{set}: {shown}");
    }
}

#[test]
fn global_batch_must_divide_into_micro_batches() {
    let (e, shown) = fails(&replace("  global_batch: 64", "  global_batch: 66"), &[]);
    assert_at(&e, 6, "training.global_batch");
    assert!(
        shown.contains("global_batch=66 is not divisible by dp*micro_batch = 4*1 = 4"),
        "{shown}"
    );
}

#[test]
fn interleaved_needs_pp_virtual_stages_divisible_layers_and_micro_batches() {
    let ok = load(
        BASE,
        &[
            "parallelism.schedule=interleaved",
            "parallelism.virtual_stages=2",
        ],
    )
    .unwrap();
    assert_eq!(ok.parallelism.virtual_stages, 2);
    let (e, _) = fails(BASE, &["parallelism.schedule=interleaved"]);
    assert_eq!(e.field, "parallelism.virtual_stages");
    let (e, shown) = fails(
        BASE,
        &[
            "parallelism.schedule=interleaved",
            "parallelism.virtual_stages=2",
            "parallelism.pp=1",
            "parallelism.dp=16",
        ],
    );
    assert_eq!(e.field, "parallelism.pp", "{shown}");
    let (_, shown) = fails(
        BASE,
        &[
            "parallelism.schedule=interleaved",
            "parallelism.virtual_stages=3",
        ],
    );
    assert!(
        shown.contains("model.layers=80 is not divisible by pp*virtual_stages = 4*3 = 12"),
        "{shown}"
    );
    // Megatron's switches make the uneven interleaved split expressible.
    let ok = load(
        BASE,
        &[
            "parallelism.schedule=interleaved",
            "parallelism.virtual_stages=3",
            "parallelism.stage_layers=[18, 21, 21, 20]",
            "training.global_batch=64",
        ],
    );
    assert!(ok.is_err(), "18 layers over 3 chunks is fine but 20 is not");
    let ok = load(
        BASE,
        &[
            "parallelism.schedule=interleaved",
            "parallelism.virtual_stages=3",
            "parallelism.stage_layers=[18, 21, 21, 21]",
        ],
    );
    assert!(ok.is_err(), "sums to 81");
    let (e, shown) = fails(
        BASE,
        &[
            "parallelism.schedule=interleaved",
            "parallelism.virtual_stages=2",
            "training.global_batch=24",
        ],
    );
    assert_eq!(e.field, "training.global_batch");
    assert!(shown.contains("= 6 must be a multiple of pp=4"), "{shown}");
}

#[test]
fn virtual_stages_need_the_interleaved_schedule() {
    let (e, shown) = fails(BASE, &["parallelism.virtual_stages=2"]);
    assert_eq!(e.field, "parallelism.virtual_stages");
    assert!(shown.contains("needs schedule: interleaved"), "{shown}");
}

#[test]
fn ep_must_divide_dp_and_experts_and_needs_moe() {
    let (e, shown) = fails(BASE, &["parallelism.ep=2"]);
    assert_eq!(e.field, "parallelism.ep");
    assert!(shown.contains("mixture-of-experts"), "{shown}");
    let moe = [
        "model=mixtral-8x7b",
        "cluster.nodes=64",
        "parallelism.dp=16",
    ];
    let ok = load(BASE, &[&moe[..], &["parallelism.ep=8"]].concat()).unwrap();
    assert_eq!(ok.parallelism.ep, 8);
    let (_, shown) = fails(BASE, &[&moe[..], &["parallelism.ep=16"]].concat());
    assert!(
        shown.contains("ep=16 does not divide model.moe.experts=8"),
        "{shown}"
    );
    let (_, shown) = fails(BASE, &[&moe[..], &["parallelism.ep=3"]].concat());
    assert!(shown.contains("ep=3 does not divide dp=16"), "{shown}");
}

#[test]
fn moe_capacity_dropless_skew_and_node_limit() {
    let moe = |extra: &str| {
        BASE.replacen(
            "model: llama3-70b",
            &format!(
                "model:\n  layers: 4\n  hidden: 1024\n  heads: 8\n  vocab: 32000\n  \
                 moe: {{ experts: 8, top_k: 2, expert_ffn_hidden: 2048{extra} }}"
            ),
            1,
        )
    };
    let cap = |s: &Scenario| s.model.moe.as_ref().unwrap().capacity_factor;
    assert_eq!(cap(&load(&moe(""), &[]).unwrap()), Some(1.0));
    assert_eq!(
        cap(&load(&moe(", capacity_factor: null"), &[]).unwrap()),
        None
    );
    assert_eq!(cap(&load(&moe(", dropless: true"), &[]).unwrap()), None);
    assert_eq!(
        cap(&load(&moe(", capacity_factor: 1.5"), &[]).unwrap()),
        Some(1.5)
    );
    let (e, shown) = fails(&moe(", dropless: true, capacity_factor: 1.25"), &[]);
    assert_eq!(e.field, "model.moe.dropless");
    assert!(
        shown.contains("capacity_factor: null is dropless"),
        "{shown}"
    );
    let (e, _) = fails(&moe(", capacity_factor: 0"), &[]);
    assert_eq!(e.field, "model.moe.capacity_factor");
    let (e, _) = fails(&moe(", skew: -1"), &[]);
    assert_eq!(e.field, "model.moe.skew");
    let (e, _) = fails(&moe(", max_nodes_per_token: 0"), &[]);
    assert_eq!(e.field, "model.moe.max_nodes_per_token");
    let limited = load(&moe(", max_nodes_per_token: 1"), &[]).unwrap();
    assert_eq!(limited.model.moe.unwrap().dispatch_copies(), 1);
}

#[test]
fn cp_must_divide_seq_len() {
    let (e, shown) = fails(
        BASE,
        &["parallelism.cp=3", "parallelism.dp=1", "cluster.nodes=12"],
    );
    assert_eq!(e.field, "parallelism.cp");
    assert!(
        shown.contains("cp=3 does not divide training.seq_len=4096"),
        "{shown}"
    );
}

#[test]
fn zero_group_must_split_dp_evenly_and_needs_zero() {
    let ok = load(BASE, &["parallelism.zero_group=2", "parallelism.zero=3"]).unwrap();
    assert_eq!(ok.parallelism.zero_group, Some(2));
    let (e, shown) = fails(BASE, &["parallelism.zero_group=3", "parallelism.zero=3"]);
    assert_eq!(e.field, "parallelism.zero_group");
    assert!(
        shown.contains("zero_group=3 must divide dp=4") && shown.contains("allowed: 1, 2, 4"),
        "{shown}"
    );
    let (e, shown) = fails(BASE, &["parallelism.zero_group=2", "parallelism.zero=0"]);
    assert_eq!(e.field, "parallelism.zero_group");
    assert!(shown.contains("needs ZeRO sharding"), "{shown}");
}

#[test]
fn zero_stage_must_be_0_to_3() {
    let (e, shown) = fails(&replace("  dp: 4", "  dp: 4\n  zero: 4"), &[]);
    assert_at(&e, 13, "parallelism.zero");
    assert!(shown.contains("allowed: 0, 1, 2, 3"), "{shown}");
}

#[test]
fn dualpipe_loads_and_needs_even_pp_and_enough_micro_batches() {
    let text = replace("  schedule: 1f1b", "  schedule: dualpipe");
    let s = load(&text, &[]).expect("dualpipe with pp=4 and 16 micro-batches loads");
    assert_eq!(s.parallelism.schedule, ScheduleKind::Dualpipe);
    // pp=2 x dp=8: still 128 GPUs, but an odd pp is refused.
    let (e, shown) = fails(&text, &["parallelism.pp=1", "parallelism.dp=16"]);
    assert_eq!(e.field, "parallelism.pp");
    assert!(shown.contains("dualpipe needs an even pp >= 2"), "{shown}");
    // 64 / (4 x 1) = 16 micro-batches is fine; 24 / 4 = 6 < 2*pp = 8 is not.
    let (e, shown) = fails(&text, &["training.global_batch=24"]);
    assert_eq!(e.field, "training.global_batch");
    assert!(
        shown.contains("= 6 must be even and at least 2*pp = 8"),
        "{shown}"
    );
    let (_, shown) = fails(&text, &["training.global_batch=36"]);
    assert!(shown.contains("= 9 must be even"), "{shown}");
}

#[test]
fn fp8_needs_a_gpu_with_fp8() {
    let (e, shown) = fails(
        &replace("  precision: bf16", "  precision: fp8"),
        &["cluster.gpu=a100-sxm-80gb"],
    );
    assert_at(&e, 8, "training.precision");
    assert!(
        shown.contains("a100-sxm-80gb has no peak_tflops.fp8"),
        "{shown}"
    );
}

#[test]
fn clos_pods_need_pod_size() {
    let (e, _) = fails(BASE, &["cluster.fabric.kind=clos-pods"]);
    assert_eq!(e.field, "cluster.fabric.pod_gpus");
}

#[test]
fn timeline_ranks_must_exist() {
    let (e, shown) = fails(BASE, &["outputs.timeline=[0, 500]"]);
    assert_eq!(e.field, "outputs.timeline");
    assert!(
        shown.contains("rank 500 does not exist: ranks are 0..127"),
        "{shown}"
    );
}

#[test]
fn garbage_never_panics() {
    for text in [
        "",
        "- a\n- b\n",
        "42",
        "model: {}\n",
        "model: [1]\ncluster: 3\n",
        "cluster: { from: 7 }\n",
        "\t\tbad: indentation\n",
        "a: &x [*x]\n",
        "model: llama3-8b\ncluster: { from: dgx-h100-ndr }\ntraining: { seq_len: 18446744073709551615, global_batch: 18446744073709551615 }\nparallelism: { tp: 18446744073709551615 }\n",
    ] {
        assert!(load(text, &[]).is_err(), "{text:?}");
    }
}

// --- the binary ----------------------------------------------------------------------

fn run_binary(file: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .arg("run")
        .arg(file)
        .args(extra)
        .output()
        .expect("run clustersim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_exits_2_on_unknown_key() {
    let file = write("scenario.yaml", &replace("  dp: 4", "  dp: 4\n  tensor: 2"));
    let (code, stderr) = run_binary(&file, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("scenario.yaml:13:3: parallelism.tensor: unknown field"),
        "{stderr}"
    );
}

#[test]
fn binary_exits_2_when_tp_does_not_divide_heads() {
    let file = write("scenario.yaml", &replace("  tp: 8", "  tp: 6"));
    let sets = ["--set", "cluster.nodes=3", "--set", "parallelism.dp=1"];
    let (code, stderr) = run_binary(&file, &sets);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "scenario.yaml:10:3: parallelism.tp: parallelism.tp=6 does not divide model.heads=64"
        ),
        "{stderr}"
    );
}

#[test]
fn binary_exits_2_on_malformed_yaml_and_bad_override() {
    let file = write("scenario.yaml", "name: x\nmodel: [llama3\n");
    let (code, stderr) = run_binary(&file, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("scenario.yaml:"), "{stderr}");
    let file = write("scenario.yaml", BASE);
    let (code, stderr) = run_binary(&file, &["--set", "parallelism.tp=x"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--set parallelism.tp=x"), "{stderr}");
}

#[test]
fn semantic_errors_about_overridden_values_name_the_argument() {
    let (e, shown) = fails(BASE, &["parallelism.virtual_stages=2"]);
    assert_eq!(e.field, "parallelism.virtual_stages");
    assert!(
        shown.starts_with("--set parallelism.virtual_stages=2: parallelism.virtual_stages:"),
        "{shown}"
    );
}

#[test]
fn fp4_needs_fp4_tensor_cores_and_uses_their_peak() {
    let (e, shown) = fails(BASE, &["training.precision=fp4"]);
    assert_eq!(e.field, "training.precision");
    assert!(
        shown.contains("fp4 needs a GPU with FP4 tensor cores"),
        "{shown}"
    );
    let b200 = load(BASE, &["training.precision=fp4", "cluster.gpu=b200"]).unwrap();
    assert_eq!(
        b200.cluster
            .gpu
            .peak_flops(clustersim::hardware::Precision::Fp4),
        9000e12
    );
}

#[test]
fn run_and_checkpoint_keys_are_checked_at_load_with_their_line() {
    let cases: [(&str, u64, &str, &str); 5] = [
        (
            "checkpoint:\n  every: soon\n",
            15,
            "checkpoint.every",
            "no unit",
        ),
        (
            "checkpoint:\n  every: 0.1s\n",
            15,
            "checkpoint.every",
            "at least 1s",
        ),
        ("run:\n  duration: 3q\n", 15, "run.duration", "unknown unit"),
        (
            "run:\n  tokens: 0.5\n",
            15,
            "run.tokens",
            "at least 1 token",
        ),
        (
            "run:\n  duration: 1d\n  steps: 5\n",
            14,
            "run",
            "give one of",
        ),
    ];
    for (tail, line, field, needle) in cases {
        let (e, shown) = fails(&format!("{BASE}{tail}"), &[]);
        assert_at(&e, line, field);
        assert!(shown.contains(needle), "{field}: {shown}");
    }
}

#[test]
fn routing_seed_and_split_flows_need_hashed_ecmp() {
    let text = format!("{BASE}network:\n  routing:\n    seed: 7\n");
    let (e, shown) = fails(&text, &[]);
    assert_at(&e, 16, "network.routing.seed");
    assert!(shown.contains("only with ecmp: hash"), "{shown}");
    let text = format!("{BASE}network:\n  routing:\n    flows_per_connection: 16\n");
    let (e, _) = fails(&text, &[]);
    assert_at(&e, 16, "network.routing.flows_per_connection");
    let text = format!("{BASE}network:\n  routing:\n    ecmp: hash\n    flows_per_connection: 0\n");
    let (e, shown) = fails(&text, &[]);
    assert_at(&e, 17, "network.routing.flows_per_connection");
    assert!(shown.contains("1 to 256"), "{shown}");
    let (e, shown) = fails(BASE, &["network.routing.ecmp=adaptive"]);
    assert!(
        shown.contains("dest-mod") && shown.contains("hash"),
        "{shown}"
    );
    assert!(e.to_string().contains("network.routing.ecmp"), "{shown}");
    let ok =
        format!("{BASE}network:\n  routing: {{ ecmp: hash, seed: 7, flows_per_connection: 16 }}\n");
    let s = load(&ok, &[]).expect("hashed routing loads");
    assert_eq!(s.network.routing.flows_per_connection, 16);
    assert_eq!(s.network.routing.seed, 7);
}

#[test]
fn deepseek_activation_savings_are_refused_where_they_act_on_nothing() {
    let (e, shown) = fails(BASE, &["training.recompute_mla_up_proj=true"]);
    assert_eq!(e.field, "training.recompute_mla_up_proj");
    assert!(shown.contains("no model.mla"), "{shown}");
    let (e, shown) = fails(BASE, &["training.fp8_activations=true"]);
    assert_eq!(e.field, "training.fp8_activations");
    assert!(shown.contains("needs training.precision: fp8"), "{shown}");
    let (e, shown) = fails(
        BASE,
        &["training.recompute=full", "training.recompute_norms=true"],
    );
    assert_eq!(e.field, "training.recompute_norms");
    assert!(shown.contains("recompute: full"), "{shown}");
}
