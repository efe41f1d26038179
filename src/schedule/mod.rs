//! The schedule generator: model + plan + compute model → the op graph of one step.
//!
//! Turns each pipeline stage's slot order ([`pipeline`]) into a [`StageProgram`]: per layer,
//! compute ops with tensor-parallel collectives between them (all-reduce, or all-gather /
//! reduce-scatter with sequence parallel), pipeline sends and receives at chunk boundaries,
//! data-parallel gradient buckets that overlap with backward when the plan says so (reduced
//! once after the last micro-batch, or after every micro-batch under ZeRO-2/3, whose
//! sharded gradients cannot accumulate), ZeRO-3 per-layer parameter gathers (each
//! backward's reduce-scatters issued between them on the DP stream, as FSDP does), and the
//! optimizer step. Under hybrid sharding (`zero_group`) ZeRO's gathers and reduce-scatters
//! run over the shard group and each gradient shard is then all-reduced across the replica
//! groups. Compute durations are fixed here from the compute model; communication is left
//! to the network. Deterministic: same inputs, same graph. Measures no time itself.

pub mod graph;
/// Pipeline orders are part of the plan; re-exported where the op graph uses them.
pub use crate::plan::pipeline;

use std::collections::{HashMap, VecDeque};

use petgraph::graph::NodeIndex;

pub use graph::{
    CATEGORIES, Category, Collective, Comm, GroupRef, Op, OpGraph, STREAMS, StageProgram,
    StepGraph, Stream,
};
use pipeline::{Pass, Slot};

use crate::hardware::ComputeModel;
use crate::model::{self, Kernel, LayerShard, ModelSpec};
use crate::plan::{
    GroupMask, ParallelismSpec, Recompute, ScheduleKind, TrainingSpec, ZeroGroups,
    hybrid_shard_ranks, split_layers,
};
use crate::units::{Nanos, secs_to_ns};

/// Everything the generator reads.
#[derive(Debug, Clone, Copy)]
pub struct StepInputs<'a> {
    pub model: &'a ModelSpec,
    pub training: &'a TrainingSpec,
    pub parallelism: &'a ParallelismSpec,
    pub compute: &'a ComputeModel,
    /// Host link per GPU (PCIe), GB/s per direction: optimizer/parameter offload traffic.
    pub pcie_gbs: f64,
}

/// CPU Adam throughput per GPU's share of the host, parameters per second (DeepSpeed's
/// vectorised CPU-Adam updates on the order of 10^9 parameters/s per socket).
pub const CPU_ADAM_PARAMS_PER_S: f64 = 1.0e9;

impl StepInputs<'_> {
    pub fn micro_batches(&self) -> u64 {
        self.training.global_batch / (self.parallelism.dp * self.training.micro_batch)
    }

    /// Virtual pipeline stages (model chunks) per stage.
    pub fn chunks(&self) -> u64 {
        if self.parallelism.schedule == ScheduleKind::Interleaved {
            self.parallelism.virtual_stages.max(1)
        } else {
            1
        }
    }

    /// Layers of every virtual stage, in virtual-stage order (`chunk * pp + stage`).
    pub fn virtual_stage_layers(&self) -> Vec<u64> {
        let p = self.parallelism;
        match &p.stage_layers {
            Some(explicit) if self.chunks() == 1 => explicit.clone(),
            _ => split_layers(self.model.layers, p.pp * self.chunks()),
        }
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

/// Durations (ns) of the compute ops of one micro-batch on one GPU.
#[derive(Debug, Clone, Default)]
pub struct OpCosts {
    pub attn_fwd: Nanos,
    pub attn_bwd: Nanos,
    pub mlp_fwd: Nanos,
    pub mlp_bwd: Nanos,
    pub moe_fwd: Nanos,
    pub moe_bwd: Nanos,
    pub selective_recompute: Nanos,
    pub embedding_fwd: Nanos,
    pub embedding_bwd: Nanos,
    pub logits_fwd: Nanos,
    pub logits_bwd: Nanos,
    /// Weight-gradient parts of the backward durations above (split off by zero-bubble
    /// schedules): `(attention, dense MLP, MoE)`.
    pub attn_wgrad: Nanos,
    pub mlp_wgrad: Nanos,
    pub moe_wgrad: Nanos,
}

fn time(cm: &ComputeModel, ks: &[Kernel]) -> Nanos {
    secs_to_ns(cm.kernels_time_s(ks))
}

/// Time of the weight-gradient kernels of a backward list.
fn wgrad_time(cm: &ComputeModel, bwd: &[Kernel]) -> Nanos {
    let w: Vec<Kernel> = bwd
        .iter()
        .filter(|k| k.phase == model::Phase::BackwardWeight)
        .cloned()
        .collect();
    time(cm, &w)
}

impl OpCosts {
    /// Durations of one micro-batch's compute ops on one healthy GPU.
    pub fn new(inp: &StepInputs) -> Self {
        let (m, cm) = (inp.model, inp.compute);
        let sh = inp.layer_shard();
        let attn = model::kernels::attention_forward(m, &sh);
        let mlp = model::kernels::mlp_forward(m, &sh);
        let moe = moe_forward(inp, &sh);
        let emb = model::kernels::embedding_forward(m, &sh);
        let logits = model::kernels::logits_forward(m, &sh);
        let frozen = inp.training.finetune.is_adapter();
        // Frozen base weights (LoRA/QLoRA): backward computes input gradients only.
        let bwd = |ks: &[Kernel]| {
            let mut b = model::kernels::backward(ks);
            if frozen {
                b.retain(|k| k.phase != model::Phase::BackwardWeight);
            }
            b
        };
        let (attn, mlp, moe) = (
            with_dequant(inp, attn, m.attention_params()),
            with_dequant(inp, mlp, m.dense_mlp_params()),
            with_dequant(inp, moe, moe_local_params(inp)),
        );
        let (attn_b, mlp_b, moe_b) = (
            with_dequant(inp, bwd(&attn), m.attention_params()),
            with_dequant(inp, bwd(&mlp), m.dense_mlp_params()),
            with_dequant(inp, bwd(&moe), moe_local_params(inp)),
        );
        OpCosts {
            attn_fwd: time(cm, &attn),
            attn_bwd: time(cm, &attn_b),
            mlp_fwd: time(cm, &mlp),
            mlp_bwd: time(cm, &mlp_b),
            moe_fwd: time(cm, &moe),
            moe_bwd: time(cm, &moe_b),
            attn_wgrad: wgrad_time(cm, &attn_b),
            mlp_wgrad: wgrad_time(cm, &mlp_b),
            moe_wgrad: wgrad_time(cm, &moe_b),
            selective_recompute: time(cm, &model::kernels::selective_recompute(&attn)),
            embedding_fwd: time(cm, &emb),
            embedding_bwd: time(cm, &bwd(&emb)),
            logits_fwd: time(cm, &logits),
            logits_bwd: time(cm, &bwd(&logits)),
        }
    }
}

/// Parameters of one MoE block on one GPU (local routed experts + shared), before TP.
fn moe_local_params(inp: &StepInputs) -> u64 {
    inp.model.moe.as_ref().map_or(0, |m| {
        let local = (m.experts / inp.parallelism.ep.max(1)).max(1);
        (local + m.shared_experts) * inp.model.expert_params()
    })
}

/// QLoRA dequantises a block's 4-bit weights to 16 bits before its GEMMs (each pass):
/// reads NF4, writes bf16 (memory bound). Other modes return `ks` unchanged.
fn with_dequant(inp: &StepInputs, mut ks: Vec<Kernel>, params: u64) -> Vec<Kernel> {
    if inp.training.finetune == crate::plan::Finetune::Qlora && params > 0 && !ks.is_empty() {
        let local = params as f64 / inp.parallelism.tp.max(1) as f64;
        ks.push(Kernel {
            name: "nf4_dequant",
            class: model::KernelClass::Memory,
            flops: 0.0,
            bytes: local * (crate::plan::memory::NF4_BYTES + 2.0),
            phase: model::Phase::Forward,
        });
    }
    ks
}

/// Routed + shared experts of one MoE layer on one GPU, with tokens spread evenly.
fn moe_forward(inp: &StepInputs, sh: &LayerShard) -> Vec<Kernel> {
    let Some(moe) = &inp.model.moe else {
        return Vec::new();
    };
    let ep = inp.parallelism.ep.max(1);
    let tokens = sh.tokens();
    let local_experts = (moe.experts / ep).max(1);
    // Tokens per local expert on the most loaded EP rank (every rank waits for it in the
    // combine all-to-all, so its time is the layer's time).
    let per_expert = ((tokens * moe.top_k * ep) as f64 / moe.experts as f64
        * moe.hottest_rank_load(ep))
    .ceil() as u64;
    let mut ks = vec![Kernel {
        name: "router",
        class: model::KernelClass::Gemm {
            m: tokens,
            n: moe.experts,
            k: inp.model.hidden,
        },
        flops: 2.0 * (tokens * moe.experts * inp.model.hidden) as f64,
        bytes: (tokens * inp.model.hidden) as f64 * 2.0,
        phase: model::Phase::Forward,
    }];
    ks.extend(model::kernels::experts_forward(
        inp.model,
        sh,
        local_experts,
        per_expert,
    ));
    if moe.shared_experts > 0 {
        ks.extend(model::kernels::experts_forward(
            inp.model,
            sh,
            moe.shared_experts,
            tokens,
        ));
    }
    ks
}

/// A data-parallel gradient bucket: layers whose gradients are reduced together.
#[derive(Debug, Clone)]
struct Bucket {
    chunk: u32,
    params: u64,
    /// The layer whose backward completes the bucket (the lowest, backward runs in reverse).
    last_layer: u64,
    first_layer: u64,
}

/// Gradient reductions a backward pass issues: its chunk's buckets not issued yet, in
/// backward order.
struct PassReduce {
    pending: VecDeque<Bucket>,
    sharded: bool,
    /// The chunk's last backward (hybrid sharding then all-reduces shards across replicas).
    last: bool,
    grad_bytes: f64,
}

struct Builder<'a> {
    inp: StepInputs<'a>,
    costs: OpCosts,
    comms: Vec<Comm>,
    p2p: HashMap<(bool, u32, u32), u32>,
    /// Receives posted ahead in the sender's order (DualPipe), by p2p key.
    posted: HashMap<(bool, u32, u32), NodeIndex>,
    /// DualPipe: the all-reduce of each bucket between the two copies of its piece, by
    /// `(piece, first layer, last layer)`.
    mirror: HashMap<(u32, u64, u64), u32>,
    vs_layers: Vec<(u64, u64)>,
    pp: u32,
    /// Model chunks each stage holds (see [`pipeline::chunks_per_stage`]).
    chunks: u32,
    kind: ScheduleKind,
    m: u32,
    /// Backward split into input- and weight-gradient passes (zero-bubble schedules).
    split: bool,
    /// Groups ZeRO shards over (hybrid sharding: shard and replica groups).
    zero_groups: ZeroGroups,
}

/// A pipeline send waiting for the end of its slot's unit ([`Slot::send_after`]).
struct PendingSend {
    comm: u32,
    stream: Stream,
    slot: Slot,
    label: &'static str,
}

/// Builds one stage's program.
struct StageBuilder {
    stage: u32,
    graph: OpGraph,
    /// The last op of the current dependency chain (compute or blocking collective).
    frontier: Option<NodeIndex>,
    /// Ops besides the frontier that the next chain op must wait for (a pipeline receive,
    /// a blocking send, overlapped collectives).
    also_wait_for: Vec<NodeIndex>,
}

impl StageBuilder {
    fn chain_deps(&mut self) -> Vec<NodeIndex> {
        let mut deps: Vec<NodeIndex> = self.frontier.into_iter().collect();
        deps.append(&mut self.also_wait_for);
        deps
    }

    fn push(&mut self, op: Op, deps: &[NodeIndex]) -> NodeIndex {
        let stream = op.stream;
        let n = self.graph.add_node(op);
        for &d in deps {
            if self.graph[d].stream != stream {
                self.graph.add_edge(d, n, ());
            }
        }
        n
    }

    /// Appends an op to the main chain: it waits for the previous chain op.
    fn chain(&mut self, op: Op) -> NodeIndex {
        let deps = self.chain_deps();
        let n = self.push(op, &deps);
        self.frontier = Some(n);
        n
    }
}

/// `(send, receive)` streams of a pipeline pass: forward activations flow to the next
/// stage and gradients to the previous one, the other way round on a reversed chunk.
fn p2p_streams(reversed: bool, forward: bool) -> (Stream, Stream) {
    if reversed == forward {
        (Stream::SendPrev, Stream::RecvNext)
    } else {
        (Stream::SendNext, Stream::RecvPrev)
    }
}

fn tp_label(c: Collective) -> &'static str {
    match c {
        Collective::AllGather => "tp all-gather",
        Collective::ReduceScatter => "tp reduce-scatter",
        _ => "tp all-reduce",
    }
}

fn compute_op(
    category: Category,
    duration: Nanos,
    slot: Slot,
    layers: (u64, u64),
    label: &'static str,
) -> Op {
    Op {
        category,
        stream: Stream::Compute,
        duration,
        comm: None,
        micro_batch: slot.micro_batch,
        chunk: slot.chunk as u16,
        layers: (
            layers.0.min(u16::MAX as u64) as u16,
            layers.1.min(u16::MAX as u64) as u16,
        ),
        label,
    }
}

const NO_LAYERS: (u64, u64) = (u16::MAX as u64, u16::MAX as u64);

impl<'a> Builder<'a> {
    fn new(inp: StepInputs<'a>) -> Self {
        let layers = inp.virtual_stage_layers();
        let mut vs_layers = Vec::with_capacity(layers.len());
        let mut start = 0;
        for l in layers {
            vs_layers.push((start, start + l));
            start += l;
        }
        Builder {
            costs: OpCosts::new(&inp),
            comms: Vec::new(),
            p2p: HashMap::new(),
            posted: HashMap::new(),
            mirror: HashMap::new(),
            vs_layers,
            pp: inp.parallelism.pp as u32,
            chunks: pipeline::chunks_per_stage(inp.parallelism.schedule, inp.chunks() as u32),
            kind: inp.parallelism.schedule,
            m: inp.micro_batches() as u32,
            split: pipeline::splits_backward(inp.parallelism.schedule),
            zero_groups: ZeroGroups::of(inp.parallelism),
            inp,
        }
    }

    /// Where chunk `chunk` of `stage` sits on its micro-batches' path.
    fn place(&self, stage: u32, chunk: u32) -> pipeline::Place {
        pipeline::place(self.kind, stage, chunk, self.pp, self.chunks)
    }

    /// Layers `[lo, hi)` of a chunk.
    fn layers_of(&self, place: pipeline::Place) -> (u64, u64) {
        self.vs_layers[place.piece as usize]
    }

    fn new_comm(
        &mut self,
        collective: Collective,
        group: GroupRef,
        bytes: u64,
        category: Category,
    ) -> u32 {
        self.comms.push(Comm {
            collective,
            group,
            bytes,
            category,
            ops: Vec::with_capacity(1),
        });
        (self.comms.len() - 1) as u32
    }

    fn comm_op(
        &mut self,
        sb: &mut StageBuilder,
        comm: u32,
        stream: Stream,
        slot: Slot,
        label: &'static str,
        deps: &[NodeIndex],
    ) -> NodeIndex {
        let c = &self.comms[comm as usize];
        let op = Op {
            category: c.category,
            stream,
            duration: 0,
            comm: Some(comm),
            micro_batch: slot.micro_batch,
            chunk: slot.chunk as u16,
            layers: (u16::MAX, u16::MAX),
            label,
        };
        let n = sb.push(op, deps);
        self.comms[comm as usize]
            .ops
            .push((sb.stage, n.index() as u32));
        n
    }

    /// A blocking collective on the TP stream, chained between compute ops.
    fn chained_collective(
        &mut self,
        sb: &mut StageBuilder,
        (collective, mask, category): (Collective, GroupMask, Category),
        bytes: u64,
        slot: Slot,
        label: &'static str,
    ) {
        let comm = self.new_comm(collective, GroupRef::Axes(mask), bytes, category);
        let deps = sb.chain_deps();
        let n = self.comm_op(sb, comm, Stream::Tp, slot, label, &deps);
        sb.frontier = Some(n);
    }

    fn activation_bytes(&self) -> u64 {
        let t = &self.inp.training;
        (t.micro_batch * t.seq_len / self.inp.parallelism.cp.max(1) * self.inp.model.hidden)
            * t.precision.activation_bytes() as u64
    }

    /// Pipeline p2p message: the activation, scattered over TP with sequence parallel.
    fn p2p_bytes(&self) -> u64 {
        // Megatron's scatter/gather optimisation (on by default) sends 1/t of the activation
        // from each TP rank; with sequence parallel the activation is already split.
        self.activation_bytes() / self.inp.parallelism.tp.max(1)
    }

    /// Without p2p overlap (Megatron's default `batch_isend_irecv` + wait), compute resumes
    /// only once the send has completed; receives are still posted early, as Megatron
    /// batches them with the sends, so this cannot deadlock.
    fn block_on_send(&self, sb: &mut StageBuilder, send: NodeIndex) {
        if !self.inp.parallelism.pp_comm_overlap {
            sb.also_wait_for.push(send);
        }
    }

    /// The comm of the pipeline hop `(forward?, micro-batch, from virtual stage)`.
    fn p2p_comm(&mut self, forward: bool, mb: u32, from_vs: u32) -> u32 {
        if let Some(&c) = self.p2p.get(&(forward, mb, from_vs)) {
            return c;
        }
        let to_vs = if forward { from_vs + 1 } else { from_vs - 1 };
        let group = GroupRef::P2p {
            from: pipeline::stage_of(self.kind, from_vs, self.pp),
            to: pipeline::stage_of(self.kind, to_vs, self.pp),
        };
        let c = self.new_comm(Collective::SendRecv, group, self.p2p_bytes(), Category::Pp);
        self.p2p.insert((forward, mb, from_vs), c);
        c
    }

    /// The receive of p2p hop `key` (`(forward?, micro-batch, from virtual stage)`): the
    /// one posted ahead, or a new op with no dependencies.
    fn recv_op(
        &mut self,
        sb: &mut StageBuilder,
        key: (bool, u32, u32),
        stream: Stream,
        slot: Slot,
    ) -> NodeIndex {
        if let Some(&r) = self.posted.get(&key) {
            return r;
        }
        let c = self.p2p_comm(key.0, key.1, key.2);
        let label = if key.0 { "pp recv fwd" } else { "pp recv bwd" };
        self.comm_op(sb, c, stream, slot, label, &[])
    }

    /// DualPipe: posts every receive of `sb`'s stage up front, on each stream in the order
    /// its sender sends. Each physical p2p stream then carries the messages of one
    /// neighbour in one order on both ends, although the two directions' activations and
    /// gradients share it in an order the receiver consumes differently (in-order streams
    /// would otherwise deadlock).
    fn post_receives(&mut self, sb: &mut StageBuilder) {
        self.posted.clear();
        if self.kind != ScheduleKind::Dualpipe {
            return;
        }
        let stage = sb.stage;
        for sender in (0..self.pp).filter(|&st| st.abs_diff(stage) == 1) {
            let order = pipeline::stage_order(self.kind, sender, self.pp, self.m, self.chunks);
            for s in order {
                let at = self.place(sender, s.chunk);
                let (forward, to_vs) = match s.pass {
                    Pass::Forward if !at.last => (true, at.vs + 1),
                    Pass::Backward if !at.first => (false, at.vs - 1),
                    _ => continue,
                };
                if pipeline::stage_of(self.kind, to_vs, self.pp) != sb.stage {
                    continue;
                }
                let mine = self.place(sb.stage, to_vs / self.pp);
                let recv = p2p_streams(mine.reversed, forward).1;
                let key = (forward, s.micro_batch, at.vs);
                let slot = Slot {
                    chunk: to_vs / self.pp,
                    paired: false,
                    send_after: 0,
                    recv_ahead: None,
                    ..s
                };
                let c = self.p2p_comm(forward, s.micro_batch, at.vs);
                let label = if forward {
                    "pp recv fwd"
                } else {
                    "pp recv bwd"
                };
                let r = self.comm_op(sb, c, recv, slot, label, &[]);
                self.posted.insert(key, r);
            }
        }
    }

    /// The next chain op also waits for the input of the forward pass of micro-batch `mb`
    /// through `chunk` ([`Slot::recv_ahead`]).
    fn wait_for_forward_input(&mut self, sb: &mut StageBuilder, mb: u32, chunk: u32) {
        let at = self.place(sb.stage, chunk);
        if !at.first {
            let recv = p2p_streams(at.reversed, true).1;
            let slot = Slot::new(Pass::Forward, mb, chunk);
            let r = self.recv_op(sb, (true, mb, at.vs - 1), recv, slot);
            sb.also_wait_for.push(r);
        }
    }

    /// An overlapped F&B chunk starts once the backward's gradient has arrived too.
    fn wait_for_pair(&mut self, sb: &mut StageBuilder, backward: Option<&Slot>) {
        let Some(b) = backward else { return };
        let at = self.place(sb.stage, b.chunk);
        if !at.last {
            let recv = p2p_streams(at.reversed, false).1;
            let r = self.recv_op(sb, (false, b.micro_batch, at.vs + 1), recv, *b);
            sb.also_wait_for.push(r);
        }
    }

    /// Tensor-parallel collectives around a block: `(before, after)` per pass.
    fn tp_collectives(&self) -> Option<(Option<Collective>, Collective)> {
        if self.inp.parallelism.tp <= 1 {
            return None;
        }
        if self.inp.layer_shard().sequence_parallel {
            Some((Some(Collective::AllGather), Collective::ReduceScatter))
        } else {
            Some((None, Collective::AllReduce))
        }
    }

    /// One block (attention or MLP) of one pass: collectives before and after its compute.
    fn block(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        category: Category,
        duration: Nanos,
        label: &'static str,
    ) -> NodeIndex {
        let Some((before, after)) = self.tp_collectives() else {
            let deps = sb.chain_deps();
            let op = compute_op(category, duration, slot, (layer, layer), label);
            let n = self.block_compute(sb, op, &deps);
            sb.frontier = Some(n);
            return n;
        };
        if self.inp.parallelism.tp_comm_overlap {
            return self.overlapped_block(
                sb,
                slot,
                layer,
                (category, duration, label),
                before,
                after,
            );
        }
        let bytes = self.activation_bytes();
        if let Some(before) = before {
            self.chained_collective(
                sb,
                (before, GroupMask::TP, Category::Tp),
                bytes,
                slot,
                tp_label(before),
            );
        }
        let deps = sb.chain_deps();
        let op = compute_op(category, duration, slot, (layer, layer), label);
        let n = self.block_compute(sb, op, &deps);
        sb.frontier = Some(n);
        self.chained_collective(
            sb,
            (after, GroupMask::TP, Category::Tp),
            bytes,
            slot,
            tp_label(after),
        );
        n
    }

    /// A block whose TP collectives overlap its GEMMs (Transformer Engine's userbuffers):
    /// compute and the collectives start together; the next op waits for all of them.
    fn overlapped_block(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        (category, duration, label): (Category, Nanos, &'static str),
        before: Option<Collective>,
        after: Collective,
    ) -> NodeIndex {
        let bytes = self.activation_bytes();
        let deps = sb.chain_deps();
        let mut last = None;
        for coll in before.into_iter().chain([after]) {
            let c = self.new_comm(coll, GroupRef::Axes(GroupMask::TP), bytes, Category::Tp);
            last = Some(self.comm_op(sb, c, Stream::Tp, slot, tp_label(coll), &deps));
        }
        let op = compute_op(category, duration, slot, (layer, layer), label);
        let n = self.block_compute(sb, op, &deps);
        sb.frontier = Some(n);
        sb.also_wait_for.extend(last);
        n
    }

    /// A block's compute op after `deps`; attention under context parallelism runs as ring
    /// attention. Returns the op (or the last ring step) that completes the block.
    fn block_compute(&mut self, sb: &mut StageBuilder, op: Op, deps: &[NodeIndex]) -> NodeIndex {
        let cp = self.inp.parallelism.cp.max(1) as u32;
        if cp == 1 || !matches!(op.label, "attn fwd" | "attn bwd" | "recompute attn") {
            return sb.push(op, deps);
        }
        self.ring_attention(sb, op, deps, cp)
    }

    /// K/V bytes one ring-attention step moves per rank: `2 b (s/cp) h_kv elem`, the local
    /// chunk's keys and values (`h_kv = kv_heads * head_dim / tp`); backward also moves
    /// their gradients (twice that).
    fn ring_step_bytes(&self, category: Category) -> u64 {
        let (m, t, p) = (self.inp.model, self.inp.training, self.inp.parallelism);
        let h_kv = m.kv_heads * (m.hidden / m.heads.max(1)) / p.tp.max(1);
        let tokens = t.micro_batch * t.seq_len / p.cp.max(1);
        let kv = 2 * tokens * h_kv * t.precision.activation_bytes() as u64;
        if category == Category::Backward {
            2 * kv
        } else {
            kv
        }
    }

    /// Megatron-Core's context-parallel ring attention (load-balanced causal split, so
    /// every step does the same work): the compute in `cp` equal steps; while step `k`
    /// works on the K/V chunk in hand, the next chunk moves one hop around the CP ring
    /// (`cp - 1` hops on the TP/CP stream). Step `k + 1` needs step `k` and hop `k`.
    fn ring_attention(
        &mut self,
        sb: &mut StageBuilder,
        op: Op,
        deps: &[NodeIndex],
        cp: u32,
    ) -> NodeIndex {
        let piece = op.duration / cp as Nanos;
        let bytes = self.ring_step_bytes(op.category);
        let slot = Slot::new(Pass::Forward, op.micro_batch, op.chunk as u32);
        let mut step_deps = deps.to_vec();
        let mut last = None;
        for k in 0..cp {
            let duration = if k + 1 == cp {
                op.duration - piece * (cp as Nanos - 1)
            } else {
                piece
            };
            let n = sb.push(
                Op {
                    duration,
                    ..op.clone()
                },
                &step_deps,
            );
            let mut next = vec![n];
            if k + 1 < cp {
                let c = self.new_comm(
                    Collective::SendRecv,
                    GroupRef::Axes(GroupMask::CP),
                    bytes,
                    Category::Cp,
                );
                next.push(self.comm_op(sb, c, Stream::Tp, slot, "cp ring k/v", &step_deps));
            }
            step_deps = next;
            last = Some(n);
        }
        last.unwrap_or_else(|| sb.push(op, deps))
    }

    fn moe_dispatch(&mut self, sb: &mut StageBuilder, slot: Slot, label: &'static str) {
        if self.inp.parallelism.ep > 1 {
            // The most loaded rank receives (and sends back) the most tokens.
            let (top_k, load) = self.inp.model.moe.as_ref().map_or((1, 1.0), |m| {
                (
                    m.top_k,
                    m.hottest_rank_load(self.inp.parallelism.ep).max(1.0),
                )
            });
            let bytes = (self.activation_bytes() as f64 * top_k as f64 * load) as u64;
            self.chained_collective(
                sb,
                (Collective::AllToAll, GroupMask::EP, Category::Ep),
                bytes,
                slot,
                label,
            );
        }
    }

    fn mlp_block(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        forward: bool,
    ) -> NodeIndex {
        let c = &self.costs;
        let moe = self.inp.model.is_moe_layer(layer);
        let (wm, we) = if self.split {
            (c.mlp_wgrad, c.moe_wgrad)
        } else {
            (0, 0)
        };
        let (cat, dur, label) = match (moe, forward) {
            (false, true) => (Category::Forward, c.mlp_fwd, "mlp fwd"),
            (false, false) => (Category::Backward, c.mlp_bwd - wm, "mlp bwd"),
            (true, true) => (Category::Forward, c.moe_fwd, "moe fwd"),
            (true, false) => (Category::Backward, c.moe_bwd - we, "moe bwd"),
        };
        if moe {
            self.moe_dispatch(sb, slot, "ep dispatch");
        }
        let n = self.block(sb, slot, layer, cat, dur, label);
        if moe {
            self.moe_dispatch(sb, slot, "ep combine");
        }
        n
    }

    /// One forward pass; returns its send to the next stage, which the caller emits when
    /// the slot's unit ends ([`Slot::send_after`]).
    fn forward_slot(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        first_fwd: &mut HashMap<u64, NodeIndex>,
    ) -> Option<PendingSend> {
        let at = self.place(sb.stage, slot.chunk);
        let (vs, (send, recv)) = (at.vs, p2p_streams(at.reversed, true));
        if !at.first {
            let r = self.recv_op(sb, (true, slot.micro_batch, vs - 1), recv, slot);
            // The next op waits for both the receive and the chain so far: TP collectives
            // block the compute stream as NCCL kernels on Megatron's main stream do.
            sb.also_wait_for.push(r);
        }
        if at.first {
            sb.chain(compute_op(
                Category::Forward,
                self.costs.embedding_fwd,
                slot,
                NO_LAYERS,
                "embedding fwd",
            ));
        }
        let (lo, hi) = self.layers_of(at);
        let mut issue_after = sb.frontier;
        for layer in lo..hi {
            let here = sb.frontier;
            self.fsdp_prefetch(sb, slot, layer, issue_after);
            issue_after = here;
            let a = self.block(
                sb,
                slot,
                layer,
                Category::Forward,
                self.costs.attn_fwd,
                "attn fwd",
            );
            first_fwd.entry(layer).or_insert(a);
            self.mlp_block(sb, slot, layer, true);
        }
        if at.last {
            sb.chain(compute_op(
                Category::Forward,
                self.costs.logits_fwd,
                slot,
                NO_LAYERS,
                "logits+loss fwd",
            ));
            None
        } else {
            Some(PendingSend {
                comm: self.p2p_comm(true, slot.micro_batch, vs),
                stream: send,
                slot,
                label: "pp send fwd",
            })
        }
    }

    /// One backward (input-gradient) pass; returns its send to the previous stage, as
    /// [`Builder::forward_slot`] does.
    fn backward_slot(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        grads_done: &mut HashMap<u64, NodeIndex>,
        reduce: &mut PassReduce,
        reduce_ops: &mut Vec<NodeIndex>,
    ) -> Option<PendingSend> {
        let at = self.place(sb.stage, slot.chunk);
        let (vs, (send, recv)) = (at.vs, p2p_streams(at.reversed, false));
        let recompute = self.inp.training.recompute;
        if !at.last {
            let r = self.recv_op(sb, (false, slot.micro_batch, vs + 1), recv, slot);
            sb.also_wait_for.push(r);
        } else {
            sb.chain(compute_op(
                Category::Backward,
                self.costs.logits_bwd,
                slot,
                NO_LAYERS,
                "logits+loss bwd",
            ));
        }
        let (lo, hi) = self.layers_of(at);
        let mut issue_after = sb.frontier;
        for layer in (lo..hi).rev() {
            let here = sb.frontier;
            self.fsdp_prefetch(sb, slot, layer, issue_after);
            issue_after = here;
            if self.fsdp() {
                self.fsdp_reduce_completed(sb, layer, grads_done, reduce, reduce_ops);
            }
            if recompute == Recompute::Full {
                self.block(
                    sb,
                    slot,
                    layer,
                    Category::Recompute,
                    self.costs.attn_fwd,
                    "recompute attn",
                );
                self.mlp_recompute(sb, slot, layer);
            }
            self.mlp_block(sb, slot, layer, false);
            if recompute == Recompute::Selective && self.costs.selective_recompute > 0 {
                sb.chain(compute_op(
                    Category::Recompute,
                    self.costs.selective_recompute,
                    slot,
                    (layer, layer),
                    "recompute attn core",
                ));
            }
            let wgrad = if self.split { self.costs.attn_wgrad } else { 0 };
            let n = self.block(
                sb,
                slot,
                layer,
                Category::Backward,
                self.costs.attn_bwd - wgrad,
                "attn bwd",
            );
            grads_done.insert(layer, n);
        }
        if at.first {
            sb.chain(compute_op(
                Category::Backward,
                self.costs.embedding_bwd,
                slot,
                NO_LAYERS,
                "embedding bwd",
            ));
            None
        } else {
            Some(PendingSend {
                comm: self.p2p_comm(false, slot.micro_batch, vs),
                stream: send,
                slot,
                label: "pp send bwd",
            })
        }
    }

    /// Emits `sends` after the chain so far, in order.
    fn emit_sends(&mut self, sb: &mut StageBuilder, sends: impl IntoIterator<Item = PendingSend>) {
        let mut deps: Option<Vec<NodeIndex>> = None;
        for s in sends {
            let deps = deps.get_or_insert_with(|| sb.chain_deps());
            let n = self.comm_op(sb, s.comm, s.stream, s.slot, s.label, deps);
            self.block_on_send(sb, n);
        }
    }

    /// ZeRO-3 / FSDP: whether parameters are sharded and gathered per layer.
    fn fsdp(&self) -> bool {
        self.inp.parallelism.zero >= 3 && self.inp.parallelism.dp * self.inp.parallelism.cp > 1
    }

    /// ZeRO-3 / FSDP parameter all-gather of one layer on the DP stream (dense weights over
    /// DP, expert weights over expert-DP), issued when `deps` are done so that it prefetches
    /// while the previous layer computes. Returns the last gather op.
    fn fsdp_gather(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        deps: &[NodeIndex],
    ) -> Option<NodeIndex> {
        let (m, p) = (self.inp.model, self.inp.parallelism);
        let tp = p.tp.max(1);
        let t = self.inp.training;
        let bytes_per = if t.finetune.is_adapter() {
            crate::plan::memory::frozen_weight_bytes(t.finetune, t.precision)
        } else {
            t.precision.grad_bytes()
        };
        let routed = match &m.moe {
            Some(moe) if m.is_moe_layer(layer) => moe.experts * m.expert_params(),
            _ => 0,
        };
        let dense = (m.layer_params(layer) - routed) / tp;
        let mut last = None;
        for (params, mask) in [
            (dense, self.zero_groups.dense),
            (routed / tp / p.ep.max(1), self.zero_groups.expert),
        ] {
            if params == 0 {
                continue;
            }
            let bytes = (params as f64 * bytes_per) as u64;
            let c = self.new_comm(
                Collective::AllGather,
                GroupRef::Axes(mask),
                bytes,
                Category::Dp,
            );
            last = Some(self.comm_op(sb, c, Stream::Dp, slot, "fsdp param all-gather", deps));
        }
        last
    }

    /// Gathers `layers` in order, each prefetched one layer ahead: the gather of layer
    /// `i + 1` is issued once layer `i`'s first op has started (its dependency is the
    /// op that precedes it on the chain).
    fn fsdp_prefetch(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        layer: u64,
        issue_after: Option<NodeIndex>,
    ) {
        if !self.fsdp() {
            return;
        }
        let deps = issue_after.into_iter().collect::<Vec<_>>();
        if let Some(g) = self.fsdp_gather(sb, slot, layer, &deps) {
            sb.also_wait_for.push(g);
        }
    }

    /// ZeRO-3 / FSDP: reduce-scatters the buckets that layers above `layer` completed, on
    /// the DP stream right after `layer`'s prefetch gather, as FSDP issues them (each
    /// layer's post-backward hook, between the prefetches of the next layers); queued behind
    /// the whole pass's gathers instead they would all wait for its end.
    fn fsdp_reduce_completed(
        &mut self,
        sb: &mut StageBuilder,
        layer: u64,
        grads_done: &HashMap<u64, NodeIndex>,
        reduce: &mut PassReduce,
        reduce_ops: &mut Vec<NodeIndex>,
    ) {
        while let Some(b) = reduce
            .pending
            .front()
            .filter(|b| b.last_layer != u64::MAX && b.last_layer > layer)
            .cloned()
        {
            reduce.pending.pop_front();
            let dep = grads_done.get(&b.last_layer).copied().or(sb.frontier);
            let r = self.reduce_bucket(
                sb,
                &b,
                (reduce.sharded, reduce.last),
                reduce.grad_bytes,
                dep,
            );
            reduce_ops.push(r);
        }
    }

    /// The weight-gradient pass of one micro-batch through one chunk (zero-bubble
    /// schedules): one compute op covering every layer of the chunk, no communication.
    fn weight_slot(
        &mut self,
        sb: &mut StageBuilder,
        slot: Slot,
        grads_done: &mut HashMap<u64, NodeIndex>,
    ) {
        let (lo, hi) = self.layers_of(self.place(sb.stage, slot.chunk));
        let c = &self.costs;
        let duration: Nanos = (lo..hi)
            .map(|l| {
                let mlp = if self.inp.model.is_moe_layer(l) {
                    c.moe_wgrad
                } else {
                    c.mlp_wgrad
                };
                c.attn_wgrad + mlp
            })
            .sum();
        let layers = if hi > lo { (lo, hi - 1) } else { NO_LAYERS };
        let n = sb.chain(compute_op(
            Category::BackwardWeight,
            duration,
            slot,
            layers,
            "weight grad",
        ));
        for l in lo..hi {
            grads_done.insert(l, n);
        }
    }

    fn mlp_recompute(&mut self, sb: &mut StageBuilder, slot: Slot, layer: u64) {
        let moe = self.inp.model.is_moe_layer(layer);
        let dur = if moe {
            self.costs.moe_fwd
        } else {
            self.costs.mlp_fwd
        };
        if moe {
            self.moe_dispatch(sb, slot, "ep dispatch");
        }
        self.block(sb, slot, layer, Category::Recompute, dur, "recompute mlp");
        if moe {
            self.moe_dispatch(sb, slot, "ep combine");
        }
    }

    /// Gradient buckets of a stage, per chunk, formed in backward (reverse layer) order.
    fn buckets(&self, stage: u32) -> Vec<Bucket> {
        let m = self.inp.model;
        let target = self.inp.parallelism.bucket_params.max(1);
        let mut out = Vec::new();
        for chunk in 0..self.chunks {
            let at = self.place(stage, chunk);
            let (lo, hi) = self.layers_of(at);
            let mut extra = 0;
            let adapter = self.inp.training.finetune.is_adapter();
            if at.last && !m.tied_embeddings && !adapter {
                extra += m.embedding_params();
            }
            if at.first && !adapter {
                extra += m.embedding_params();
            }
            let mut current: Option<Bucket> = None;
            for layer in (lo..hi).rev() {
                let b = current.get_or_insert(Bucket {
                    chunk,
                    params: extra,
                    last_layer: layer,
                    first_layer: layer,
                });
                extra = 0;
                b.params += self.trainable_layer_params(layer);
                b.last_layer = layer;
                b.first_layer = layer;
                if b.params >= target {
                    out.extend(current.take());
                }
            }
            out.extend(current.take());
            if hi == lo && extra > 0 {
                out.push(Bucket {
                    chunk,
                    params: extra,
                    last_layer: u64::MAX,
                    first_layer: u64::MAX,
                });
            }
        }
        out
    }

    /// Parameters of a layer that receive gradients (LoRA: the adapters only).
    fn trainable_layer_params(&self, layer: u64) -> u64 {
        let t = self.inp.training;
        if t.finetune.is_adapter() {
            crate::plan::memory::lora_layer_params(self.inp.model, layer, t.lora_rank)
        } else {
            self.inp.model.layer_params(layer)
        }
    }

    /// Optimizer step time on this rank: Adam on the GPU, or (offloaded) gradients down
    /// and weights up over PCIe around a CPU Adam step.
    fn optimizer_time(&self, local_params: u64) -> Nanos {
        let t = self.inp.training;
        if !t.offload_optimizer {
            return time(self.inp.compute, &model::kernels::adam_step(local_params));
        }
        let p = local_params as f64;
        let pcie = self.inp.pcie_gbs.max(1e-3) * 1e9;
        let transfers = 2.0 * p * t.precision.grad_bytes() / pcie;
        secs_to_ns(transfers + p / CPU_ADAM_PARAMS_PER_S)
    }

    fn stage_params(&self, stage: u32) -> u64 {
        self.buckets(stage).iter().map(|b| b.params).sum()
    }

    fn build_stage(&mut self, stage: u32) -> StageProgram {
        let mut sb = StageBuilder {
            stage,
            graph: OpGraph::default(),
            frontier: None,
            also_wait_for: Vec::new(),
        };
        let par = self.inp.parallelism;
        let tp = par.tp.max(1);
        let grad_bytes = self.inp.training.precision.grad_bytes();
        let sharded = par.zero >= 1 && par.dp > 1;
        let buckets = self.buckets(stage);
        let none = Slot::new(Pass::Forward, u32::MAX, 0);

        // Distributed optimizer with overlap: last step's parameter all-gather runs at the
        // start of this step, each bucket ahead of the first forward that needs it.
        let mut gather_before: Vec<(u64, NodeIndex)> = Vec::new();
        if sharded && par.overlap_grad_reduce && !self.fsdp() {
            // In the order the forward pass needs them: chunk by chunk, lowest layers first.
            let mut in_need_order: Vec<&Bucket> = buckets.iter().collect();
            in_need_order.sort_by_key(|b| (b.chunk, b.first_layer));
            for b in in_need_order {
                let bytes = (b.params / tp) as f64 * grad_bytes;
                let c = self.new_comm(
                    Collective::AllGather,
                    GroupRef::Axes(self.zero_groups.dense),
                    bytes as u64,
                    Category::Dp,
                );
                let n = self.comm_op(
                    &mut sb,
                    c,
                    Stream::Dp,
                    Slot {
                        chunk: b.chunk,
                        ..none
                    },
                    "dp param all-gather",
                    &[],
                );
                gather_before.push((b.first_layer, n));
            }
        }

        self.post_receives(&mut sb);
        let order = pipeline::stage_order(par.schedule, stage, self.pp, self.m, self.chunks);
        let mut first_fwd = HashMap::new();
        let mut grads_done = HashMap::new();
        // The pass that completes a chunk's weight gradients triggers its reduction.
        let grads_pass = if self.split {
            Pass::Weight
        } else {
            Pass::Backward
        };
        let mut last_backward: HashMap<u32, usize> = HashMap::new();
        for (i, s) in order.iter().enumerate() {
            if s.pass == grads_pass {
                last_backward.insert(s.chunk, i);
            }
        }
        // Gradients to reduce: over data parallelism, and under DualPipe between the two
        // copies of each piece of the model (see [`Builder::mirror_reduce`]).
        let reduce = par.dp > 1 || self.kind == ScheduleKind::Dualpipe;
        let mut reduce_ops = Vec::new();
        // Sends waiting for the end of their unit: (index of the slot they follow, send).
        let mut held: Vec<(usize, PendingSend)> = Vec::new();
        // A ZeRO-2/3 micro-batch's reductions without overlap, issued once its sends are.
        let mut blocking: Vec<Bucket> = Vec::new();
        for (i, &slot) in order.iter().enumerate() {
            if let Some((mb, chunk)) = slot.recv_ahead {
                self.wait_for_forward_input(&mut sb, mb, chunk);
            }
            let send = match slot.pass {
                Pass::Forward => {
                    if slot.paired {
                        self.wait_for_pair(&mut sb, order.get(i + 1));
                    }
                    self.forward_slot(&mut sb, slot, &mut first_fwd)
                }
                Pass::Backward | Pass::Weight => {
                    grads_done.clear();
                    let last = last_backward.get(&slot.chunk) == Some(&i);
                    let chunk_buckets = buckets.iter().filter(|b| b.chunk == slot.chunk);
                    // Under zero-bubble schedules the weight pass completes the gradients, so
                    // it, not the input-gradient pass before it, reduces them.
                    let every = self.reduces_every_micro_batch() && slot.pass == grads_pass;
                    let overlapped = reduce && par.overlap_grad_reduce && (last || every);
                    let mut pass_reduce = PassReduce {
                        pending: if overlapped {
                            chunk_buckets.clone().cloned().collect()
                        } else {
                            VecDeque::new()
                        },
                        sharded,
                        last,
                        grad_bytes,
                    };
                    let send = if slot.pass == Pass::Weight {
                        self.weight_slot(&mut sb, slot, &mut grads_done);
                        None
                    } else {
                        self.backward_slot(
                            &mut sb,
                            slot,
                            &mut grads_done,
                            &mut pass_reduce,
                            &mut reduce_ops,
                        )
                    };
                    // The buckets the pass has not issued yet (all of them but under
                    // ZeRO-3), as each completes.
                    while let Some(b) = pass_reduce.pending.pop_front() {
                        let dep = grads_done.get(&b.last_layer).copied().or(sb.frontier);
                        let r = self.reduce_bucket(&mut sb, &b, (sharded, last), grad_bytes, dep);
                        reduce_ops.push(r);
                    }
                    if !par.overlap_grad_reduce && !last && every {
                        blocking.extend(chunk_buckets.cloned());
                    }
                    send
                }
            };
            held.extend(send.map(|s| (i + slot.send_after as usize, s)));
            if held.iter().any(|&(due, _)| due <= i) {
                let (due, later): (Vec<_>, Vec<_>) = held.drain(..).partition(|&(d, _)| d <= i);
                held = later;
                self.emit_sends(&mut sb, due.into_iter().map(|(_, s)| s));
            }
            // After the pass's sends: the chain, not the send, waits for these.
            if !blocking.is_empty() {
                self.blocking_reduce(&mut sb, &blocking, grad_bytes);
                blocking.clear();
            }
        }
        self.emit_sends(&mut sb, held.into_iter().map(|(_, s)| s));
        for (layer, ag) in gather_before {
            if let Some(&f) = first_fwd.get(&layer) {
                sb.graph.add_edge(ag, f, ());
            }
        }
        if reduce && !par.overlap_grad_reduce {
            let dep = sb.frontier;
            // Piece by piece, so that the two holders of a DualPipe piece (where it is
            // chunk 0 on one and chunk 1 on the other) queue their all-reduces alike.
            let mut in_order: Vec<&Bucket> = buckets.iter().collect();
            in_order.sort_by_key(|b| self.place(stage, b.chunk).piece);
            for b in in_order {
                let r = self.reduce_bucket(&mut sb, b, (sharded, true), grad_bytes, dep);
                reduce_ops.push(r);
            }
        }
        let shards = if sharded { self.shard_ranks() } else { 1 };
        let local_params = self.stage_params(stage) / tp / shards;
        let opt = compute_op(
            Category::Optimizer,
            self.optimizer_time(local_params),
            none,
            NO_LAYERS,
            "optimizer",
        );
        // The DP stream runs in order, so its last reduction finishing means all have (and
        // the engine counts an op's dependencies in a byte: ZeRO-2 makes hundreds).
        let mut deps: Vec<NodeIndex> = reduce_ops.last().copied().into_iter().collect();
        deps.extend(sb.frontier);
        let opt = sb.push(opt, &deps);
        sb.frontier = Some(opt);
        if sharded && !par.overlap_grad_reduce && !self.fsdp() {
            for b in &buckets {
                let bytes = (b.params / tp) as f64 * grad_bytes;
                let c = self.new_comm(
                    Collective::AllGather,
                    GroupRef::Axes(self.zero_groups.dense),
                    bytes as u64,
                    Category::Dp,
                );
                self.comm_op(&mut sb, c, Stream::Dp, none, "dp param all-gather", &[opt]);
            }
        }
        StageProgram { graph: sb.graph }
    }

    /// Reduces one bucket's gradients once `dep` is done: over data parallelism, then
    /// (DualPipe) with the other copy of the piece. Returns the last op.
    ///
    /// The copies' all-reduce runs once, with the step's `last_reduce`: what earlier
    /// per-micro-batch reductions leave accumulates on the rank until then.
    fn reduce_bucket(
        &mut self,
        sb: &mut StageBuilder,
        b: &Bucket,
        (sharded, last_reduce): (bool, bool),
        grad_bytes: f64,
        dep: Option<NodeIndex>,
    ) -> NodeIndex {
        let mut last = dep;
        if self.inp.parallelism.dp > 1 {
            last = Some(self.grad_reduce(sb, b, (sharded, last_reduce), grad_bytes, dep));
        }
        if self.kind == ScheduleKind::Dualpipe && last_reduce {
            last = Some(self.mirror_reduce(sb, b, sharded, grad_bytes, last));
        }
        last.expect("a bucket is reduced over DP or between DualPipe copies")
    }

    /// DualPipe holds every piece of the model twice: piece `i` is chunk 0 of stage `i`
    /// (the direction fed at stage 0) and chunk 1 of stage `p - 1 - i` (the one fed at stage
    /// `p - 1`). Each copy accumulates the gradients of its own direction's micro-batches,
    /// so the two are summed before the optimizer step, by an all-reduce between the two
    /// ranks at the same position of stages `i` and `p - 1 - i` (`deepseek-ai/DualPipe`'s
    /// example adds the mirrored rank's gradients the same way). It runs after the
    /// data-parallel reduction, on what that leaves on the rank: the whole bucket, or its
    /// `1/dp` shard under a distributed optimizer.
    fn mirror_reduce(
        &mut self,
        sb: &mut StageBuilder,
        b: &Bucket,
        sharded: bool,
        grad_bytes: f64,
        dep: Option<NodeIndex>,
    ) -> NodeIndex {
        let par = self.inp.parallelism;
        let piece = self.place(sb.stage, b.chunk).piece;
        let key = (piece, b.first_layer, b.last_layer);
        let c = match self.mirror.get(&key) {
            Some(&c) => c,
            None => {
                // What the DP reduction leaves on the rank: its shard-group share.
                let shard = if sharded { self.shard_ranks() } else { 1 };
                let bytes = (b.params / par.tp.max(1)) as f64 * grad_bytes / shard as f64;
                let (a, z) = (sb.stage, self.pp - 1 - sb.stage);
                let group = GroupRef::P2p {
                    from: a.min(z),
                    to: a.max(z),
                };
                let c = self.new_comm(Collective::AllReduce, group, bytes as u64, Category::Dp);
                self.mirror.insert(key, c);
                c
            }
        };
        let slot = Slot::new(Pass::Backward, u32::MAX, b.chunk);
        let deps: Vec<NodeIndex> = dep.into_iter().collect();
        self.comm_op(
            sb,
            c,
            Stream::Dp,
            slot,
            "dualpipe mirror grad all-reduce",
            &deps,
        )
    }

    /// ZeRO-2 and ZeRO-3: gradients are sharded, so they cannot accumulate whole across
    /// micro-batches; every micro-batch's backward reduce-scatters its buckets (ZeRO-1
    /// reduces only the accumulated gradients, after the last micro-batch). FSDP does the
    /// same unless `no_sync` keeps whole gradients, which ZeRO-3's memory does not allow.
    fn reduces_every_micro_batch(&self) -> bool {
        self.inp.parallelism.zero >= 2 && self.inp.parallelism.dp > 1
    }

    /// Reduce-scatters `buckets` once the chain's current op is done, and holds the chain
    /// until they finish (a ZeRO-2 micro-batch without gradient-reduce overlap).
    fn blocking_reduce(&mut self, sb: &mut StageBuilder, buckets: &[Bucket], grad_bytes: f64) {
        let dep = sb.frontier;
        let mut last = None;
        for b in buckets {
            last = Some(self.grad_reduce(sb, b, (true, false), grad_bytes, dep));
        }
        // In-order DP stream: the last reduction ends after the others.
        sb.also_wait_for.extend(last);
    }

    /// Data-parallel ranks ZeRO shards the model states over (the shard group under hybrid
    /// sharding).
    fn shard_ranks(&self) -> u64 {
        let p = self.inp.parallelism;
        hybrid_shard_ranks(p).unwrap_or(p.dp)
    }

    /// Reduces a bucket's gradients over DP (reduce-scatter when `sharded`); with
    /// `last_reduce` under hybrid sharding, then all-reduces this rank's gradient shard
    /// across the replica groups (once per step: the shards accumulate locally). Returns
    /// the last op.
    fn grad_reduce(
        &mut self,
        sb: &mut StageBuilder,
        b: &Bucket,
        (sharded, last_reduce): (bool, bool),
        grad_bytes: f64,
        dep: Option<NodeIndex>,
    ) -> NodeIndex {
        let tp = self.inp.parallelism.tp.max(1);
        let bytes = ((b.params / tp) as f64 * grad_bytes) as u64;
        let (coll, label) = if sharded {
            (Collective::ReduceScatter, "dp grad reduce-scatter")
        } else {
            (Collective::AllReduce, "dp grad all-reduce")
        };
        let group = GroupRef::Axes(self.zero_groups.dense);
        let c = self.new_comm(coll, group, bytes, Category::Dp);
        let slot = Slot::new(Pass::Backward, u32::MAX, b.chunk);
        let deps: Vec<NodeIndex> = dep.into_iter().collect();
        let n = self.comm_op(sb, c, Stream::Dp, slot, label, &deps);
        match self.zero_groups.replica {
            Some(replica) if sharded && last_reduce => {
                let shard = bytes / (self.shard_ranks() * self.inp.parallelism.cp.max(1));
                let group = GroupRef::Axes(replica);
                let c = self.new_comm(Collective::AllReduce, group, shard, Category::Dp);
                self.comm_op(sb, c, Stream::Dp, slot, "dp shard all-reduce", &[n])
            }
            _ => n,
        }
    }
}

/// Generates the op graph of one training step.
pub fn build_step(inp: StepInputs) -> StepGraph {
    let mut b = Builder::new(inp);
    let stages = (0..b.pp).map(|s| b.build_stage(s)).collect();
    StepGraph {
        stages,
        comms: b.comms,
        micro_batches: b.m,
    }
}
