//! ZeRO-3 stack behaviour (`stack.zero3`) against hand-derived cases: a per-tensor gather
//! with no prefetch exposes every gather; re-gathering recompute adds one more gather per
//! layer; the host cost adds its time per collective; a synchronising fetch waits for the
//! reduce-scatters in flight; the embedding and output layer are gathered; synchronous
//! pipeline p2p adds exactly one hop to a two-stage, two-micro-batch step; fast mode
//! agrees with the replay under every combination.

use clustersim::config::Scenario;
use clustersim::fixtures::toy_scenario;
use clustersim::network::analytic::AnalyticNetwork;
use clustersim::plan::Recompute;
use clustersim::plan::stack::Zero3Gather;
use clustersim::pricing::Coverage;
use clustersim::pricing::dp::{layer_gathers, layer_tensors};
use clustersim::sim::{StepMetrics, StepOptions, compute_model, simulate_step, step_inputs};
use clustersim::sweep::fast;
use clustersim::vocab::Collective;

fn run(s: &Scenario) -> StepMetrics {
    simulate_step(s, &StepOptions::default()).unwrap().metrics
}

/// Two data-parallel ranks on one node, ZeRO-3, no gradient-reduce overlap (each
/// micro-batch's reduce-scatters block after its backward), no prefetch.
fn zero3(gather: Zero3Gather) -> Scenario {
    let mut s = toy_scenario(1, 1, 2, 2, 8);
    s.parallelism.zero = 3;
    s.parallelism.overlap_grad_reduce = false;
    s.parallelism.stack.overlap_param_gather = false;
    s.parallelism.stack.zero3.gather = gather;
    s.parallelism.stack.zero3.prefetch = 0;
    s
}

/// Seconds of an all-gather of `bytes` over the two ranks, on the analytic network.
fn all_gather_s(s: &Scenario, bytes: u64) -> f64 {
    AnalyticNetwork::new(&s.cluster).collective_time_s(Collective::AllGather, bytes, &[0, 1])
}

/// Gather seconds of one layer as the stack issues them: (collectives, seconds).
fn layer_gather_s(s: &Scenario, layer: u64) -> (usize, f64) {
    let cm = compute_model(s);
    let inp = step_inputs(s, &cm);
    let g = layer_gathers(&inp, layer, Coverage::FULL);
    (g.len(), g.iter().map(|c| all_gather_s(s, c.bytes)).sum())
}

fn micro_batches(s: &Scenario) -> f64 {
    (s.training.global_batch / (s.parallelism.dp * s.training.micro_batch)) as f64
}

fn fast_agrees(s: &Scenario, what: &str) {
    let replay = run(s).step_time_s;
    let est = fast::estimate(s, &mut AnalyticNetwork::new(&s.cluster)).step_time_s;
    assert!(
        (est / replay - 1.0).abs() < 0.01,
        "{what}: fast {est} vs replay {replay}"
    );
}

#[test]
fn the_tensors_of_a_layer_add_up_to_its_parameters() {
    let s = toy_scenario(1, 1, 2, 2, 8);
    let t = layer_tensors(&s.model, 0);
    // Fused QKV, output projection, two RMSNorms, two GELU MLP matrices.
    assert_eq!(t.len(), 6);
    assert_eq!(t.iter().map(|x| x.0).sum::<u64>(), s.model.layer_params(0));
}

#[test]
fn a_per_tensor_gather_without_prefetch_exposes_every_gather() {
    let tensor = zero3(Zero3Gather::Tensor);
    let layer = zero3(Zero3Gather::Layer);
    let (n, per_tensor_s) = layer_gather_s(&tensor, 0);
    let (one, per_layer_s) = layer_gather_s(&layer, 0);
    assert_eq!((n, one), (6, 1));
    // Hand-derived: every tensor is its own all-gather of its bf16 bytes.
    let h = 2048u64;
    let by_hand: f64 = [3 * h * h, h * h, h, h, 4 * h * h, 4 * h * h]
        .iter()
        .map(|p| all_gather_s(&tensor, 2 * p))
        .sum();
    assert!((per_tensor_s - by_hand).abs() < 1e-12);
    assert!(per_tensor_s > per_layer_s, "latency per collective");
    // Without prefetch nothing overlaps: each layer's gathers sit on the critical path in
    // its forward and in its backward, every micro-batch. The reduce-scatters are the same
    // in both, so the difference is exactly the extra gather time.
    let (a, b) = (run(&tensor), run(&layer));
    let layers = tensor.model.layers as f64;
    let want = 2.0 * micro_batches(&tensor) * layers * (per_tensor_s - per_layer_s);
    // The replay keeps whole nanoseconds: up to one per collective of rounding.
    let ns = 2.0 * micro_batches(&tensor) * layers * (n + one) as f64 * 1e-9;
    let got = a.step_time_s - b.step_time_s;
    assert!((got - want).abs() <= ns, "{got} vs {want}");
    let got_dp = a.breakdown_s.dp_exposed - b.breakdown_s.dp_exposed;
    assert!((got_dp - want).abs() <= ns, "{got_dp} vs {want}");
    // Every gather exposed: a one-layer prefetch hides some of them.
    let mut ahead = tensor.clone();
    ahead.parallelism.stack.zero3.prefetch = 1;
    assert!(run(&ahead).step_time_s < a.step_time_s);
    fast_agrees(&tensor, "tensor, prefetch 0");
    fast_agrees(&ahead, "tensor, prefetch 1");
}

#[test]
fn re_gathering_recompute_adds_one_gather_per_layer_per_micro_batch() {
    let mut s = zero3(Zero3Gather::Layer);
    s.training.recompute = Recompute::Full;
    let once = run(&s);
    s.parallelism.stack.zero3.recompute_regathers = true;
    let twice = run(&s);
    let (_, g) = layer_gather_s(&s, 0);
    let want = micro_batches(&s) * s.model.layers as f64 * g;
    let got = twice.step_time_s - once.step_time_s;
    let ns = micro_batches(&s) * s.model.layers as f64 * 1e-9;
    assert!((got - want).abs() <= ns, "{got} vs {want}");
    fast_agrees(&s, "regather, prefetch 0");
    s.parallelism.stack.zero3.prefetch = 1;
    fast_agrees(&s, "regather, prefetch 1");
    // Without full recompute there is nothing to re-gather.
    s.training.recompute = Recompute::Selective;
    let sel = run(&s).step_time_s;
    s.parallelism.stack.zero3.recompute_regathers = false;
    assert_eq!(run(&s).step_time_s, sel);
}

#[test]
fn the_host_cost_adds_its_time_per_gather_collective() {
    let mut s = zero3(Zero3Gather::Tensor);
    let base = run(&s).step_time_s;
    s.parallelism.stack.zero3.host_us = 30.0;
    s.parallelism.stack.zero3.host_us_per_rank = 5.0;
    let slow = run(&s).step_time_s;
    // 30 + 5 x 2 ranks = 40 µs per collective: 6 per layer, forward and backward, and the
    // embedding and output-layer gathers (3 per micro-batch).
    let per_mb = 2.0 * s.model.layers as f64 * 6.0 + 3.0;
    let want = micro_batches(&s) * per_mb * 40e-6;
    assert!(
        (slow - base - want).abs() < 1e-6 * want,
        "{} vs {want}",
        slow - base
    );
    fast_agrees(&s, "host cost");
}

#[test]
fn persistent_tensors_are_never_gathered() {
    let mut s = zero3(Zero3Gather::Tensor);
    s.parallelism.stack.zero3.persist_below = 100_000;
    // The two 2,048-parameter norms stay whole.
    assert_eq!(layer_gather_s(&s, 0).0, 4);
    let mut l = s.clone();
    l.parallelism.stack.zero3.gather = Zero3Gather::Bucket;
    l.parallelism.stack.zero3.bucket_params = 4 * 2048 * 2048;
    // A bucket closes once it holds 4 h^2: QKV + output projection, then each MLP matrix.
    assert_eq!(layer_gather_s(&l, 0).0, 3);
}

#[test]
fn a_synchronising_fetch_waits_for_the_reduce_scatters_in_flight() {
    let mut s = zero3(Zero3Gather::Layer);
    s.parallelism.overlap_grad_reduce = true;
    s.parallelism.stack.overlap_param_gather = true;
    s.parallelism.stack.zero3.prefetch = 1;
    s.parallelism.bucket_params = 1;
    let free = run(&s).step_time_s;
    fast_agrees(&s, "overlapped");
    s.parallelism.stack.zero3.sync_per_gather = true;
    let synced = run(&s).step_time_s;
    assert!(synced > free, "{synced} vs {free}");
    fast_agrees(&s, "synchronised");
}

#[test]
fn the_embedding_and_the_output_layer_are_gathered_too() {
    // Issue 11.3: under ZeRO-3 the embedding and output layer were reduce-scattered but
    // never gathered. Now the embedding is gathered before the embedding forward and the
    // output layer before the logits forward and backward.
    let s = zero3(Zero3Gather::Layer);
    let mut whole = s.clone();
    // Every tensor of this model kept whole: nothing gathered.
    whole.parallelism.stack.zero3.persist_below = s.model.embedding_params() + 1;
    assert_eq!(layer_gather_s(&whole, 0).0, 0);
    let (_, layer_s) = layer_gather_s(&s, 0);
    let head_s = all_gather_s(&s, 2 * s.model.embedding_params());
    let (m, l) = (micro_batches(&s), s.model.layers as f64);
    let want = m * (2.0 * l * layer_s + 3.0 * head_s);
    let got = run(&s).step_time_s - run(&whole).step_time_s;
    let ns = m * (2.0 * l + 3.0) * 1e-9;
    assert!((got - want).abs() <= ns, "{got} vs {want}");
    fast_agrees(&s, "head gathers, prefetch 0");
    let mut ahead = s.clone();
    ahead.parallelism.stack.zero3.prefetch = 1;
    fast_agrees(&ahead, "head gathers, prefetch 1");
}

#[test]
fn synchronous_p2p_adds_exactly_one_hop_to_two_stages_and_two_micro_batches() {
    // Two stages, two micro-batches, 1F1B. By hand, with stage times f0, b0 (first) and
    // f1, b1 (last), a hop p, f1 + b1 >= f0, b0:
    //   async: the step ends at f0 + 2p + 2 f1 + 2 b1 + b0;
    //   sync (each stage waits for its sends): stage 0's second forward starts after the
    //   first activation's hop, stage 1's second forward after the first gradient's hop,
    //   the last gradient's hop is paid by stage 1 before it ends: f0 + 3p + 2 f1 + 2 b1 +
    //   b0. The difference is exactly one hop.
    let mut s = toy_scenario(1, 2, 1, 4, 2);
    s.parallelism.pp_comm_overlap = true;
    let asynchronous = run(&s).step_time_s;
    s.parallelism.pp_comm_overlap = false;
    let synchronous = run(&s).step_time_s;
    let cm = compute_model(&s);
    let inp = step_inputs(&s, &cm);
    let bytes = clustersim::pricing::collectives::pp_p2p_bytes(&inp);
    let hop =
        AnalyticNetwork::new(&s.cluster).collective_time_s(Collective::SendRecv, bytes, &[0, 1]);
    let got = synchronous - asynchronous;
    assert!((got - hop).abs() <= 3e-9, "{got} vs {hop}");
    fast_agrees(&s, "sync p2p");
    s.parallelism.pp_comm_overlap = true;
    fast_agrees(&s, "async p2p");
}

/// `stack.zero3.*` set while the scenario's plan is not ZeRO-3: `run` refuses it (exit 2,
/// file:line and the field), `plan` keeps it, since the search tries ZeRO-3 plans and the
/// key acts on them; with ZeRO-3 left out (`--zero 0,1`) `plan` refuses it too.
#[test]
fn zero3_keys_off_a_zero3_plan_are_refused_by_run_and_kept_by_plan() {
    let dir = std::env::temp_dir().join(format!("clustersim-zero3-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.yaml");
    std::fs::write(
        &file,
        "name: z\nmodel: gpt-1.7b\ncluster: { from: dgx-h100-ndr, nodes: 2 }\n\
         training: { seq_len: 2048, global_batch: 32, micro_batch: 1 }\n\
         parallelism: { tp: 1, pp: 1, dp: 16, zero: 1 }\n\
         stack:\n  zero3: { prefetch: 2 }\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_clustersim");
    let f = file.to_str().unwrap();
    let out = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let run = out(&["run", f, "--out", dir.join("run").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("s.yaml:7:") && err.contains("stack.zero3.prefetch"),
        "{err}"
    );
    assert!(err.contains("zero = 1"), "{err}");
    // The same key under ZeRO-3 runs.
    let ok = out(&[
        "run",
        f,
        "--set",
        "parallelism.zero=3",
        "--out",
        dir.join("run3").to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let plan_args = |zero: &str| {
        vec![
            "plan".to_string(),
            f.to_string(),
            "--top".into(),
            "1".into(),
            "--tp".into(),
            "1".into(),
            "--pp".into(),
            "1".into(),
            "--zero".into(),
            zero.into(),
            "--out".into(),
            dir.join(format!("plan{}", zero.replace(',', "")))
                .display()
                .to_string(),
        ]
    };
    let a = plan_args("1,3");
    let plan = out(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let a = plan_args("0,1");
    let plan = out(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&plan.stderr);
    assert_eq!(plan.status.code(), Some(2), "{err}");
    assert!(err.contains("stack.zero3.prefetch"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
