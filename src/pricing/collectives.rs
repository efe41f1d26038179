//! What the model-parallel collectives move, and over which group: tensor parallelism's
//! collectives around every attention and MLP block, context parallelism's ring-attention
//! K/V exchange, expert parallelism's all-to-alls, pipeline parallelism's activation and
//! gradient messages. (Data parallelism's are in [`super::dp`].)
//!
//! Returns sizes and groups ([`CollectiveCost`]); the network times them. Must not decide
//! when they run, on which stream, or what overlaps them.

use super::{CollectiveCost, Coverage, StepInputs};
use crate::plan::GroupMask;
use crate::vocab::Collective;

/// Bytes of one micro-batch's activation on one rank: `b (s/cp) h` elements, what each
/// TP collective, and before expansion each all-to-all and pipeline message, moves.
pub fn activation_bytes(inp: &StepInputs) -> u64 {
    let t = &inp.training;
    (t.micro_batch * t.seq_len / inp.parallelism.cp.max(1) * inp.model.hidden)
        * t.precision.activation_bytes() as u64
}

/// Tensor-parallel collectives around one block (attention or MLP), each pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpBlock {
    /// Before the block's compute: the sequence-parallel all-gather.
    pub before: Option<CollectiveCost>,
    /// After it: the reduce-scatter (sequence parallel) or the all-reduce.
    pub after: CollectiveCost,
}

/// The TP collectives of a block: all-gather before and reduce-scatter after with
/// sequence parallel, else one all-reduce after; `None` without TP.
pub fn tp_block(inp: &StepInputs) -> Option<TpBlock> {
    if inp.parallelism.tp <= 1 {
        return None;
    }
    let bytes = activation_bytes(inp);
    let over_tp = |collective| CollectiveCost {
        collective,
        group: GroupMask::TP,
        bytes,
    };
    Some(if inp.layer_shard().sequence_parallel {
        TpBlock {
            before: Some(over_tp(Collective::AllGather)),
            after: over_tp(Collective::ReduceScatter),
        }
    } else {
        TpBlock {
            before: None,
            after: over_tp(Collective::AllReduce),
        }
    })
}

/// One MoE dispatch or combine all-to-all over EP, `None` without expert parallelism:
/// the activation once per routed copy (`top_k`, or one per target node under
/// node-limited routing: [`crate::model::MoeSpec::dispatch_copies`]), scaled by what the
/// most loaded rank moves (it receives and sends back the most tokens; dropped tokens
/// are not sent) when `cov` prices routing imbalance.
pub fn ep_all_to_all(inp: &StepInputs, cov: Coverage) -> Option<CollectiveCost> {
    let ep = inp.parallelism.ep;
    if ep <= 1 {
        return None;
    }
    let (copies, load) = inp.model.moe.as_ref().map_or((1, 1.0), |m| {
        let load = if cov.routing_imbalance {
            m.hottest_rank_traffic(ep)
        } else {
            1.0
        };
        (m.dispatch_copies(), load)
    });
    Some(CollectiveCost {
        collective: Collective::AllToAll,
        group: GroupMask::EP,
        bytes: (activation_bytes(inp) as f64 * copies as f64 * load) as u64,
    })
}

/// Pipeline p2p message (one micro-batch's activation or its gradient between adjacent
/// stages): Megatron's scatter/gather optimisation (on by default) sends 1/t of the
/// activation from each TP rank; with sequence parallel the activation is already split.
pub fn pp_p2p_bytes(inp: &StepInputs) -> u64 {
    activation_bytes(inp) / inp.parallelism.tp.max(1)
}

/// One ring-attention step's K/V exchange, one hop around the CP ring: `2 b (s/cp) h_kv
/// elem` bytes per rank, the local chunk's keys and values (`h_kv = kv_heads * head_dim /
/// tp`); a backward step also moves their gradients (twice that).
pub fn cp_ring_step(inp: &StepInputs, backward: bool) -> CollectiveCost {
    let (m, t, p) = (inp.model, inp.training, inp.parallelism);
    let tokens = t.micro_batch * t.seq_len / p.cp.max(1);
    // Per token, the local keys and values: `2 h_kv` elements, or under MLA the heads'
    // up-projected keys (`d_qk`) and values (`d_v`).
    let kv_elems = if m.mla.is_some() {
        m.attended_kv_heads() / p.tp.max(1) * (m.qk_head_dim() + m.v_head_dim())
    } else {
        2 * (m.kv_heads * (m.hidden / m.heads.max(1)) / p.tp.max(1))
    };
    let kv = tokens * kv_elems * t.precision.activation_bytes() as u64;
    CollectiveCost {
        collective: Collective::SendRecv,
        group: GroupMask::CP,
        bytes: if backward { 2 * kv } else { kv },
    }
}
