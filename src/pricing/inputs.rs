//! What pricing reads: the model, training and parallelism specs and the compute model
//! ([`StepInputs`]), and the layout facts every price derives from (micro-batches per step,
//! model chunks per stage, the layers of each virtual stage, the activation shard of one
//! layer).
//!
//! Must not price anything itself: the rooms next to it do, from these facts.

use crate::hardware::ComputeModel;
use crate::model::{LayerShard, ModelSpec};
use crate::plan::{ParallelismSpec, ScheduleKind, TrainingSpec, pipeline_layout, split_layers};

/// Everything the op-graph builder and fast mode read about a plan.
#[derive(Debug, Clone, Copy)]
pub struct StepInputs<'a> {
    pub model: &'a ModelSpec,
    pub training: &'a TrainingSpec,
    pub parallelism: &'a ParallelismSpec,
    pub compute: &'a ComputeModel,
    /// Host link per GPU (PCIe), GB/s per direction: optimizer/parameter offload traffic.
    pub pcie_gbs: f64,
}

/// Virtual pipeline stages (model chunks) per stage in the layer split: `v` under the
/// interleaved schedule, else 1.
pub fn model_chunks(p: &ParallelismSpec) -> u64 {
    if p.schedule == ScheduleKind::Interleaved {
        p.virtual_stages.max(1)
    } else {
        1
    }
}

/// Layers of every virtual stage, in virtual-stage order (`chunk * pp + stage`): the
/// explicit `stage_layers` or Megatron's uneven split and embedding/loss slots
/// ([`pipeline_layout`]); a layout the loader would refuse falls back to the split
/// [`split_layers`] makes.
///
/// Multi-token prediction modules (`mtp_depth`) run after the main model on the last
/// virtual stage, as extra layers of it.
pub fn virtual_stage_layers(model: &ModelSpec, p: &ParallelismSpec) -> Vec<u64> {
    let chunks = model_chunks(p);
    let mut layers = pipeline_layout(model.layers, p, chunks)
        .unwrap_or_else(|_| split_layers(model.layers, p.pp.max(1) * chunks));
    if let Some(last) = layers.last_mut() {
        *last += model.mtp_depth;
    }
    layers
}

/// Layer ranges `[lo, hi)` of consecutive pieces of `layers` layers each.
pub fn layer_ranges(layers: &[u64]) -> Vec<(u64, u64)> {
    let mut start = 0;
    layers
        .iter()
        .map(|&l| {
            start += l;
            (start - l, start)
        })
        .collect()
}

impl StepInputs<'_> {
    pub fn micro_batches(&self) -> u64 {
        self.training.global_batch / (self.parallelism.dp * self.training.micro_batch)
    }

    /// Virtual pipeline stages (model chunks) per stage.
    pub fn chunks(&self) -> u64 {
        model_chunks(self.parallelism)
    }

    /// Layers of every virtual stage, in virtual-stage order (`chunk * pp + stage`).
    pub fn virtual_stage_layers(&self) -> Vec<u64> {
        virtual_stage_layers(self.model, self.parallelism)
    }

    /// Layer range `[lo, hi)` of every virtual stage (of every piece of the model, under
    /// DualPipe), in virtual-stage order.
    pub fn piece_layers(&self) -> Vec<(u64, u64)> {
        layer_ranges(&self.virtual_stage_layers())
    }

    pub fn layer_shard(&self) -> LayerShard {
        LayerShard {
            micro_batch: self.training.micro_batch,
            seq_len: self.training.seq_len,
            tp: self.parallelism.tp,
            cp: self.parallelism.cp,
            sequence_parallel: self.parallelism.sequence_parallel && self.parallelism.tp > 1,
            flash_attention: self.training.flash_attention,
            elem_bytes: self.training.precision.gemm_operand_bytes(),
        }
    }
}
