//! Llama 3 405B as Meta ran it (scenarios/llama3-405b-16k.yaml, arXiv 2407.21783 §3.3.2):
//! the interleaved chunk layout with embedding and loss slots, and the activation memory
//! by hand — m = p = 16 micro-batches, so Megatron-Core's interleaved schedule runs every
//! forward before the first backward (`all_warmup_microbatches`) and each stage holds all
//! 16 micro-batches of its 8 layers whatever the chunks per stage; Llama trains without
//! dropout, so no dropout masks are kept.

use std::path::Path;

use clustersim::config::{Scenario, load_scenario};
use clustersim::pricing::inputs::virtual_stage_layers;
use clustersim::sim::memory_report;

fn scenario(sets: &[&str]) -> Scenario {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_scenario(Some(Path::new("scenarios/llama3-405b-16k.yaml")), &sets)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn meta_layout_first_and_last_chunks_one_layer_short() {
    let s = scenario(&[]);
    let layout = virtual_stage_layers(&s.model, &s.parallelism);
    // 16 stages x 4 chunks; 126 layers + embedding and loss slots = 128 = 64 x 2.
    assert_eq!(layout.len(), 64);
    assert_eq!(layout.iter().sum::<u64>(), 126);
    assert_eq!((layout[0], layout[63]), (1, 1));
    assert!(layout[1..63].iter().all(|&l| l == 2), "{layout:?}");
    assert!(s.parallelism.split.embedding_slot && s.parallelism.split.loss_slot);
}

#[test]
fn activations_hold_every_micro_batch_and_no_dropout_masks() {
    let s = scenario(&[]);
    assert_eq!(s.model.dropout, 0.0);
    let (h, f, t) = (16384.0, 53248.0, 8.0);
    let sbh = 8192.0 * h;
    // Korthikanti et al. Table 2 with sequence parallelism, GQA (r = 8/128) and SwiGLU,
    // less the two 1-byte dropout masks: norms' and blocks' inputs 8, Q + K + V + projection
    // input 2 + 4r + 2, MLP 6 f/h; all over t.
    let per_layer = (8.0 + 2.0 + 4.0 * 8.0 / 128.0 + 2.0 + 6.0 * f / h) / t * sbh;
    let want = 16.0 * 8.0 * per_layer / 1e9;
    for v in ["4", "2"] {
        let s = scenario(&[&format!("parallelism.virtual_stages={v}")]);
        let mem = memory_report(&s);
        let middle = &mem.stages[7];
        assert!(
            (middle.activations / want - 1.0).abs() < 1e-9,
            "v={v}: {} GB vs {want} GB",
            middle.activations
        );
        assert!(mem.fits, "v={v}: {mem:?}");
    }
    // With dropout the masks come back (10 instead of 8) and it no longer fits.
    let with = memory_report(&scenario(&["model.dropout=0.1"]));
    let extra = 16.0 * 8.0 * 2.0 / t * sbh / 1e9;
    assert!((with.stages[7].activations - want - extra).abs() < 1e-6);
    assert!(!with.fits);
}
