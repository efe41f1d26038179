//! In-code scenarios for the decision tools' tests and benchmarks (no files needed).

use crate::config::Scenario;
use crate::fixtures;
use crate::model::{FfnKind, ModelSpec};
use crate::plan::{Recompute, ScheduleKind};

/// GPT-3 175B shapes (Brown et al. 2020): 96 layers, 12288 hidden, 96 heads, vocab 50257,
/// tied input and output embeddings.
pub fn gpt3_175b() -> ModelSpec {
    ModelSpec {
        name: "gpt3-175b".into(),
        layers: 96,
        hidden: 12288,
        heads: 96,
        kv_heads: 96,
        ffn_hidden: 4 * 12288,
        ffn: FfnKind::Gelu,
        vocab: 50257,
        moe: None,
        tied_embeddings: true,
        mla: None,
        mtp_depth: 0,
        dropout: 0.1,
        norm: Default::default(),
    }
}

/// GPT-3 175B on 1,024 A100 80GB (128 DGX A100, HDR) with Megatron's published layout:
/// TP 8, PP 8, DP 16, interleaved 1F1B, sequence 2048, global batch 1536, selective
/// recompute with sequence parallel, distributed optimizer (ZeRO-1), BF16.
pub fn gpt3_175b_1k_a100() -> Scenario {
    let mut s = fixtures::toy_scenario(8, 8, 16, 96, 1536);
    s.name = "gpt3-175b-1k-a100".into();
    s.model = gpt3_175b();
    s.cluster = fixtures::dgx_a100_hdr(128);
    s.training.seq_len = 2048;
    s.training.recompute = Recompute::Selective;
    s.parallelism.schedule = ScheduleKind::Interleaved;
    s.parallelism.virtual_stages = 4;
    s
}

/// Llama-3 70B shapes (Meta, "The Llama 3 Herd of Models", Table 3).
pub fn llama3_70b() -> ModelSpec {
    ModelSpec {
        name: "llama3-70b".into(),
        layers: 80,
        hidden: 8192,
        heads: 64,
        kv_heads: 8,
        ffn_hidden: 28672,
        ffn: FfnKind::Swiglu,
        vocab: 128256,
        moe: None,
        tied_embeddings: false,
        mla: None,
        mtp_depth: 0,
        dropout: 0.1,
        norm: Default::default(),
    }
}

/// Llama-3 70B on 1,024 H100 (128 DGX H100, NDR rail-optimized): TP 8, PP 4, DP 32.
pub fn llama3_70b_1k() -> Scenario {
    let mut s = fixtures::toy_scenario(8, 4, 32, 80, 1024);
    s.name = "llama3-70b-1k".into();
    s.model = llama3_70b();
    s.cluster = fixtures::dgx_h100_ndr(128);
    s.training.seq_len = 8192;
    s.training.recompute = Recompute::Selective;
    s
}
