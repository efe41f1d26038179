//! Semantic checks on a resolved [`Scenario`]: every rule says which field is wrong, what
//! it is, and what would be allowed, with the numbers. The first failing rule is reported.
//!
//! Rules read domain values but point at the scenario tree for the line of the offending
//! key (the nearest written ancestor when the value came from a default or a preset).
//! Arithmetic here is checked: bad input must produce a message, never a panic.

use crate::hardware::{FabricKind, Precision, Transport};
use crate::network::{AlgorithmChoice, Ecmp};
use crate::plan::{Recompute, ScheduleKind};

use super::tree::Node;
use super::{ConfigError, Scenario, TimelineRanks};

/// Schedules the config accepts but the simulator cannot run yet. The one place to edit
/// when a schedule lands.
const UNSUPPORTED_SCHEDULES: &[ScheduleKind] = &[];

/// Largest value any integer size may take (keeps every product of sizes in `u64`).
const MAX_SIZE: u64 = 1_000_000_000;
/// Most GPUs one scenario may have (2^24: 16 times the largest shipped scenario).
const MAX_GPUS: u64 = 1 << 24;
/// Largest model, in parameters, the simulator accepts (keeps counts in `u64`).
const MAX_PARAMS: f64 = 1e15;

type Check = Result<(), ConfigError>;

/// Runs every rule against `s`; `root` is the scenario tree, for locations.
pub fn validate(s: &Scenario, root: &Node) -> Check {
    let v = Rules { s, root };
    v.integer_sizes()?;
    v.real_sizes()?;
    v.model_shape()?;
    v.topology()?;
    v.tensor_parallel()?;
    v.pipeline_split()?;
    v.context_parallel()?;
    v.world_size()?;
    v.batch()?;
    v.schedule()?;
    v.expert_parallel()?;
    v.hybrid_sharding()?;
    v.offload()?;
    v.stored_activations()?;
    v.precision()?;
    v.timeline()?;
    v.adaptive_routing()?;
    v.routing()?;
    v.in_network()?;
    v.work()
}

/// Most flows one connection may be split into (`network.routing.flows_per_connection`):
/// Llama 3 uses 16 (Dubey et al., 2024, section 3.3.1); beyond a few hundred the split
/// only multiplies the flow count.
const MAX_FLOWS_PER_CONNECTION: u32 = 256;

struct Rules<'a> {
    s: &'a Scenario,
    root: &'a Node,
}

/// `n = a*b*c...` without overflow (`None` when it does not fit).
fn product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, f| acc.checked_mul(*f))
}

fn divisors(n: u64) -> Vec<u64> {
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut d = 1;
    while d * d <= n {
        if n.is_multiple_of(d) {
            small.push(d);
            if d * d != n {
                large.push(n / d);
            }
        }
        d += 1;
    }
    small.extend(large.into_iter().rev());
    small
}

fn list(values: &[u64]) -> String {
    let shown: Vec<String> = values.iter().take(24).map(u64::to_string).collect();
    let more = if values.len() > 24 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

fn schedule_name(k: ScheduleKind) -> &'static str {
    match k {
        ScheduleKind::Gpipe => "gpipe",
        ScheduleKind::OneFOneB => "1f1b",
        ScheduleKind::Interleaved => "interleaved",
        ScheduleKind::ZbH1 => "zb-h1",
        ScheduleKind::ZbH2 => "zb-h2",
        ScheduleKind::Dualpipe => "dualpipe",
    }
}

impl Rules<'_> {
    fn fail(&self, field: &str, message: String) -> Check {
        Err(super::error_at(self.root, field, message))
    }

    fn ensure(&self, ok: bool, field: &str, message: impl FnOnce() -> String) -> Check {
        if ok {
            Ok(())
        } else {
            self.fail(field, message())
        }
    }

    /// `network.routing.adaptive`: adaptive routing spreads every flow over all uplinks, so
    /// there is no hash to choose, seed or split (those keys are refused beside it), and
    /// nothing to spread on a single switch.
    /// Whether the scenario states `network.routing.KEY` (rather than taking its default).
    fn routing_key_given(&self, key: &str) -> bool {
        self.root
            .get("network")
            .and_then(|n| n.get("routing"))
            .and_then(|n| n.get(key))
            .is_some()
    }

    fn adaptive_routing(&self) -> Check {
        if !self.s.network.routing.adaptive {
            return Ok(());
        }
        let given = |key: &str| self.routing_key_given(key);
        let r = &self.s.network.routing;
        let (ecmp, seed, split) = (given("ecmp"), given("seed"), given("flows_per_connection"));
        let moot = |key: &str, value: String| {
            format!(
                "{key}={value} has no effect under adaptive: true (every flow spreads over \
                 all equal-cost uplinks); allowed: remove {key}, or adaptive: false"
            )
        };
        self.ensure(!ecmp, "network.routing.ecmp", || {
            moot("ecmp", r.ecmp.label().to_string())
        })?;
        self.ensure(!seed, "network.routing.seed", || {
            moot("seed", r.seed.to_string())
        })?;
        self.ensure(!split, "network.routing.flows_per_connection", || {
            moot("flows_per_connection", r.flows_per_connection.to_string())
        })?;
        self.ensure(
            self.s.cluster.fabric.kind != FabricKind::SingleSwitch,
            "network.routing.adaptive",
            || {
                "adaptive=true has no uplinks to spread over on a single-switch fabric; \
                 allowed: adaptive: false, or a fat-tree, rail-optimized or clos-pods \
                 fabric"
                    .to_string()
            },
        )
    }

    /// `network.routing`: a seed or split flows only act on hashed ECMP (under
    /// destination-mod-k every sub-flow takes its destination's path, and nothing is
    /// drawn), so they are refused without `ecmp: hash` rather than ignored.
    fn routing(&self) -> Check {
        let r = &self.s.network.routing;
        let given = |key: &str| self.routing_key_given(key);
        let fpc = r.flows_per_connection;
        self.ensure(
            (1..=MAX_FLOWS_PER_CONNECTION).contains(&fpc),
            "network.routing.flows_per_connection",
            || format!("flows_per_connection={fpc} must be 1 to {MAX_FLOWS_PER_CONNECTION}"),
        )?;
        if r.ecmp == Ecmp::Hash {
            return Ok(());
        }
        self.ensure(!given("seed"), "network.routing.seed", || {
            format!(
                "seed={} has nothing to seed under ecmp: {}; allowed only with ecmp: hash",
                r.seed,
                r.ecmp.label()
            )
        })?;
        self.ensure(fpc == 1, "network.routing.flows_per_connection", || {
            format!(
                "flows_per_connection={fpc} under ecmp: {} sends every sub-flow on its \
                 destination's path (no effect); allowed only with ecmp: hash",
                r.ecmp.label()
            )
        })
    }

    /// `cluster.fabric.sharp` and the algorithms that need a fabric feature: SHARP is an
    /// InfiniBand switch feature (NVIDIA Quantum; NCCL reaches it through the CollNet
    /// plugin), so it is refused on RoCE and without NICs; `collnet-*` is refused without
    /// it, `collnet-direct` without NVSwitch nodes (NCCL 2.23.4 `tuning.cc` disables
    /// CollNetDirect when `nvsCount == 0`); `pat` runs over one GPU per node, which a
    /// one-node cluster has no group of.
    fn in_network(&self) -> Check {
        let c = &self.s.cluster;
        let f = &c.fabric;
        if f.sharp {
            self.ensure(
                f.transport == Transport::Infiniband,
                "cluster.fabric.sharp",
                || {
                    format!(
                        "sharp=true needs InfiniBand switches that reduce in the network \
                         (SHARP), but cluster.fabric.transport is {}; allowed: sharp: false, \
                         or transport: infiniband",
                        f.transport.label()
                    )
                },
            )?;
            self.ensure(c.node.nics > 0, "cluster.fabric.sharp", || {
                "sharp=true needs NICs to reach the switches, but cluster.node.nics is 0; \
                 allowed: sharp: false"
                    .to_string()
            })?;
        }
        let alg = self.s.network.algorithm;
        match alg {
            AlgorithmChoice::CollnetDirect | AlgorithmChoice::CollnetChain => {
                self.ensure(f.sharp, "network.algorithm", || {
                    format!(
                        "algorithm={} reduces in the switches (InfiniBand SHARP), but \
                         cluster.fabric.sharp is false; allowed: auto, ring, tree, nvls, \
                         hierarchical, pat, or cluster.fabric.sharp: true",
                        alg.label()
                    )
                })?;
                self.ensure(
                    alg != AlgorithmChoice::CollnetDirect || c.node.nvlink_gbs > 0.0,
                    "network.algorithm",
                    || {
                        "algorithm=collnet-direct needs NVSwitch nodes (NCCL disables it \
                         without NVSwitch), but cluster.node.nvlink_gbs is 0; allowed: \
                         collnet-chain"
                            .to_string()
                    },
                )
            }
            AlgorithmChoice::Pat => self.ensure(c.nodes > 1, "network.algorithm", || {
                format!(
                    "algorithm=pat runs all-gather and reduce-scatter over one GPU per node, \
                     but the cluster has {} node; allowed: auto, ring, nvls",
                    c.nodes
                )
            }),
            _ => Ok(()),
        }
    }

    fn integer_sizes(&self) -> Check {
        let s = self.s;
        let (m, t, p, c) = (&s.model, &s.training, &s.parallelism, &s.cluster);
        // Physical ranges (README, "Input limits"): each bound is well past any machine or
        // model built so far and keeps every product of sizes in `u64`.
        const K: u64 = 1024;
        let mut sizes = vec![
            ("model.layers", m.layers, 10_000),
            ("model.hidden", m.hidden, 1 << 20),
            ("model.heads", m.heads, 64 * K),
            ("model.kv_heads", m.kv_heads, 64 * K),
            ("model.ffn_hidden", m.ffn_hidden, 4 << 20),
            ("model.vocab", m.vocab, 16 << 20),
            ("training.seq_len", t.seq_len, 16 << 20),
            ("training.global_batch", t.global_batch, 16 << 20),
            ("training.micro_batch", t.micro_batch, 64 * K),
            ("parallelism.tp", p.tp, 64 * K),
            ("parallelism.pp", p.pp, 64 * K),
            ("parallelism.dp", p.dp, 16 << 20),
            ("parallelism.ep", p.ep, 64 * K),
            ("parallelism.cp", p.cp, 64 * K),
            ("parallelism.virtual_stages", p.virtual_stages, K),
            (
                "parallelism.bucket_params",
                p.bucket_params,
                MAX_SIZE * 1000,
            ),
            ("cluster.nodes", c.nodes, 16 << 20),
            ("cluster.node.gpus", c.node.gpus, K),
            ("cluster.node.nvlink_domain", c.node.nvlink_domain, 64 * K),
            ("cluster.fabric.tiers", c.fabric.tiers, 8),
            ("cluster.fabric.switch_radix", c.fabric.switch_radix, 64 * K),
        ];
        if let Some(moe) = &m.moe {
            sizes.push(("model.moe.experts", moe.experts, 64 * K));
            sizes.push(("model.moe.top_k", moe.top_k, 64 * K));
            sizes.push((
                "model.moe.expert_ffn_hidden",
                moe.expert_ffn_hidden,
                4 << 20,
            ));
        }
        // An adapter of rank above the hidden size is not low-rank: its FLOPs outgrow the
        // layer's and MFU passes 1 (a fuzz finding, seed 3).
        sizes.push(("training.lora_rank", t.lora_rank, m.hidden.max(1)));
        if let Some(pod) = c.fabric.pod_gpus {
            sizes.push(("cluster.fabric.pod_gpus", pod, 16 << 20));
        }
        for (field, value, max) in sizes {
            self.ensure(value >= 1, field, || {
                format!("must be at least 1, got {value}")
            })?;
            self.ensure(value <= max, field, || {
                format!("{value} is larger than the supported maximum {max}")
            })?;
        }
        // 0 NICs is a node without scale-out; the failure model counts every NIC.
        let nics = c.node.nics;
        self.ensure(nics <= K, "cluster.node.nics", || {
            format!("{nics} is larger than the supported maximum {K}")
        })?;
        if let Some(stages) = &p.stage_layers {
            for (i, &n) in stages.iter().enumerate() {
                self.ensure(
                    (1..=MAX_SIZE).contains(&n),
                    "parallelism.stage_layers",
                    || format!("stage {i} has {n} layers; every stage needs at least 1"),
                )?;
            }
        }
        Ok(())
    }

    fn real_sizes(&self) -> Check {
        let c = &self.s.cluster;
        let g = &c.gpu;
        // (field, value, least, most): physical ranges (README, "Input limits"). The least
        // bandwidth, 1 MB/s, keeps every transfer time of a step far inside `u64`
        // nanoseconds; denormal and tiny values are refused, not computed with.
        let mut ranged = vec![
            (
                "cluster.gpu.peak_tflops.bf16",
                g.peak_tflops.bf16,
                1e-3,
                1e6,
            ),
            ("cluster.gpu.memory_gb", g.memory_gb, 1e-3, 1e6),
            ("cluster.gpu.memory_bw_gbs", g.memory_bw_gbs, 1e-3, 1e7),
            ("cluster.gpu.power_w", g.power_w, 1.0, 1e5),
            ("cluster.node.pcie_gbs", c.node.pcie_gbs, 1e-3, 1e6),
            (
                "cluster.fabric.oversubscription",
                c.fabric.oversubscription,
                1e-3,
                1e3,
            ),
            (
                "cluster.fabric.pod_oversubscription",
                c.fabric.pod_oversubscription,
                1e-3,
                1e3,
            ),
            ("cluster.storage.write_gbs", c.storage.write_gbs, 1e-3, 1e9),
            ("cluster.storage.read_gbs", c.storage.read_gbs, 1e-3, 1e9),
            (
                "cluster.fabric.hop_latency_us",
                c.fabric.hop_latency_us,
                0.0,
                1e6,
            ),
            ("cluster.gpu.price_usd", g.price_usd, 0.0, 1e9),
            ("cluster.cost.gpu_hour_usd", c.cost.gpu_hour_usd, 0.0, 1e6),
            (
                "cluster.cost.power_kw_per_node",
                c.cost.power_kw_per_node,
                0.0,
                1e4,
            ),
            ("cluster.cost.usd_per_kwh", c.cost.usd_per_kwh, 0.0, 1e3),
            ("cluster.cost.pue", c.cost.pue, 1.0, 10.0),
        ];
        let optional_peaks = [
            ("cluster.gpu.peak_tflops.fp32", g.peak_tflops.fp32),
            ("cluster.gpu.peak_tflops.tf32", g.peak_tflops.tf32),
            ("cluster.gpu.peak_tflops.fp16", g.peak_tflops.fp16),
            ("cluster.gpu.peak_tflops.fp8", g.peak_tflops.fp8),
            ("cluster.gpu.peak_tflops.fp4", g.peak_tflops.fp4),
        ];
        ranged.extend(
            optional_peaks
                .iter()
                .filter_map(|(f, v)| v.map(|v| (*f, v, 1e-3, 1e6))),
        );
        if c.node.nics > 0 {
            ranged.push(("cluster.node.nic_gbps", c.node.nic_gbps, 1e-3, 1e7));
        }
        // No NVLink (0) or a real one.
        if c.node.nvlink_gbs != 0.0 {
            ranged.push(("cluster.node.nvlink_gbs", c.node.nvlink_gbs, 1e-3, 1e7));
        }
        if let Some(c) = self.s.model.moe.as_ref().and_then(|m| m.capacity_factor) {
            ranged.push(("model.moe.capacity_factor", c, 1e-3, 1e3));
        }
        for (field, value, lo, hi) in ranged {
            self.ensure(
                value.is_finite() && (lo..=hi).contains(&value),
                field,
                || {
                    let zero = if field == "cluster.node.nvlink_gbs" {
                        " (or 0: no NVLink)"
                    } else {
                        ""
                    };
                    format!(
                        "must be between {lo} and {hi}{zero}, got {}",
                        crate::units::short_num(value)
                    )
                },
            )?;
        }
        self.efficiencies()
    }

    fn efficiencies(&self) -> Check {
        let g = &self.s.cluster.gpu;
        let fractions = [
            ("cluster.gpu.gemm_efficiency", Some(g.gemm_efficiency)),
            ("cluster.gpu.fp8_gemm_efficiency", g.fp8_gemm_efficiency),
            ("cluster.gpu.hbm_efficiency", Some(g.hbm_efficiency)),
        ];
        for (field, value) in fractions {
            let Some(value) = value else { continue };
            self.ensure(value > 0.0 && value <= 1.0, field, || {
                format!("is a fraction of peak: must be in (0, 1], got {value}")
            })?;
        }
        Ok(())
    }

    fn model_shape(&self) -> Check {
        let m = &self.s.model;
        self.ensure(m.hidden.is_multiple_of(m.heads), "model.heads", || {
            format!(
                "model.hidden={} is not divisible by model.heads={}; heads must divide hidden",
                m.hidden, m.heads
            )
        })?;
        self.ensure(
            m.kv_heads <= m.heads && m.heads.is_multiple_of(m.kv_heads),
            "model.kv_heads",
            || {
                format!(
                    "kv_heads={} must divide heads={}; allowed: {}",
                    m.kv_heads,
                    m.heads,
                    list(&divisors(m.heads))
                )
            },
        )?;
        if let Some(moe) = &m.moe {
            self.ensure(moe.top_k <= moe.experts, "model.moe.top_k", || {
                format!("top_k={} is more than experts={}", moe.top_k, moe.experts)
            })?;
            self.ensure(
                moe.dense_layers <= m.layers,
                "model.moe.dense_layers",
                || {
                    format!(
                        "dense_layers={} is more than layers={}",
                        moe.dense_layers, m.layers
                    )
                },
            )?;
            self.ensure(
                moe.skew.is_finite() && moe.skew >= 0.0,
                "model.moe.skew",
                || {
                    format!(
                        "skew={} must be a Zipf exponent >= 0 (0 = balanced routing)",
                        moe.skew
                    )
                },
            )?;
            if let Some(n) = moe.max_nodes_per_token {
                self.ensure(n >= 1, "model.moe.max_nodes_per_token", || {
                    "max_nodes_per_token=0 routes no token; use 1 or more (DeepSeek-V3: 4)"
                        .to_string()
                })?;
            }
        }
        if let Some(a) = &m.mla {
            let dims = [
                ("model.mla.kv_lora_rank", a.kv_lora_rank),
                ("model.mla.qk_nope_head_dim", a.qk_nope_head_dim),
                ("model.mla.qk_rope_head_dim", a.qk_rope_head_dim),
                ("model.mla.v_head_dim", a.v_head_dim),
                ("model.mla.q_lora_rank", a.q_lora_rank.unwrap_or(1)),
            ];
            for (field, v) in dims {
                self.ensure(v > 0, field, || format!("must be at least 1, got {v}"))?;
            }
            self.ensure(m.kv_heads == m.heads, "model.kv_heads", || {
                format!(
                    "kv_heads={} with model.mla: latent attention projects keys and values \
                     up for every head; leave kv_heads out (or set it to heads={})",
                    m.kv_heads, m.heads
                )
            })?;
        }
        self.ensure(
            m.dropout.is_finite() && (0.0..1.0).contains(&m.dropout),
            "model.dropout",
            || format!("dropout={} must be a probability in [0, 1)", m.dropout),
        )?;
        self.ensure(m.mtp_depth <= 8, "model.mtp_depth", || {
            format!(
                "mtp_depth={} multi-token prediction modules; at most 8 (DeepSeek-V3 uses 1)",
                m.mtp_depth
            )
        })?;
        let params = self.approx_params();
        self.ensure(params <= MAX_PARAMS, "model", || {
            format!("about {params:.2e} parameters; the simulator supports up to {MAX_PARAMS:.0e}")
        })
    }

    /// Parameter count in floating point (cannot overflow), for the size bound.
    fn approx_params(&self) -> f64 {
        let m = &self.s.model;
        let (h, l) = (m.hidden as f64, m.layers as f64);
        let mlp = match &m.moe {
            Some(moe) => {
                (moe.experts + moe.shared_experts) as f64 * 3.0 * h * moe.expert_ffn_hidden as f64
            }
            None => 3.0 * h * m.ffn_hidden as f64,
        };
        l * (4.0 * h * h + mlp) + 2.0 * m.vocab as f64 * h
    }

    fn topology(&self) -> Check {
        let c = &self.s.cluster;
        let (gpus, domain) = (c.node.gpus, c.node.nvlink_domain);
        self.ensure(
            domain.is_multiple_of(gpus) || gpus.is_multiple_of(domain),
            "cluster.node.nvlink_domain",
            || {
                format!(
                    "nvlink_domain={domain} must divide node.gpus={gpus} or be a multiple of \
                     it (e.g. 72 for GB200 NVL72 trays of 4)"
                )
            },
        )?;
        self.ensure(
            c.nodes <= 1 || c.node.nics >= 1,
            "cluster.node.nics",
            || format!("{} nodes need at least one NIC per node, got 0", c.nodes),
        )?;
        self.ensure(
            c.fabric.switch_radix >= 2,
            "cluster.fabric.switch_radix",
            || {
                format!(
                    "a switch needs at least 2 ports, got {}",
                    c.fabric.switch_radix
                )
            },
        )?;
        if c.fabric.kind != FabricKind::ClosPods {
            return Ok(());
        }
        let Some(pod) = c.fabric.pod_gpus else {
            return self.fail(
                "cluster.fabric.pod_gpus",
                "fabric kind clos-pods needs pod_gpus (GPUs per pod)".into(),
            );
        };
        self.ensure(pod.is_multiple_of(gpus), "cluster.fabric.pod_gpus", || {
            format!("pod_gpus={pod} must be a multiple of node.gpus={gpus}")
        })
    }

    fn world_size(&self) -> Check {
        let (p, c) = (&self.s.parallelism, &self.s.cluster);
        let world = product(&[p.tp, p.pp, p.dp, p.cp]);
        let gpus = product(&[c.nodes, c.node.gpus]);
        self.ensure(world.is_some() && world == gpus, "parallelism", || {
            let world = world.map_or("more than 2^64".into(), |w| w.to_string());
            let gpus = gpus.map_or("more than 2^64".into(), |g| g.to_string());
            format!(
                "tp*pp*dp*cp = {}*{}*{}*{} = {world} but the cluster has {} nodes x {} GPUs = {gpus}",
                p.tp, p.pp, p.dp, p.cp, c.nodes, c.node.gpus
            )
        })?;
        let world = world.unwrap_or(u64::MAX);
        self.ensure(world <= MAX_GPUS, "cluster.nodes", || {
            format!("{world} GPUs is more than the supported maximum {MAX_GPUS} (2^24)")
        })
    }

    /// The work a step asks for, estimated before the op graph is built
    /// ([`super::budget`]).
    fn work(&self) -> Check {
        match super::budget::check_graph(self.s) {
            Ok(()) => Ok(()),
            Err(message) => self.fail("training.global_batch", message),
        }
    }

    fn tensor_parallel(&self) -> Check {
        let (m, tp) = (&self.s.model, self.s.parallelism.tp);
        let mut dims = vec![("model.heads", m.heads), ("model.ffn_hidden", m.ffn_hidden)];
        if let Some(moe) = &m.moe {
            dims.push(("model.moe.expert_ffn_hidden", moe.expert_ffn_hidden));
        }
        // The vocabulary needs no check: Megatron pads it to a multiple of 128 x tp.
        let common = dims.iter().fold(0, |g, (_, d)| gcd(g, *d));
        // Key/value heads: split over TP, or with fewer than TP ranks replicated so that
        // each rank holds one (Megatron-Core: `num_query_groups % tp == 0` or
        // `tp % num_query_groups == 0`).
        let kv_ok = |t: u64| m.kv_heads.is_multiple_of(t) || t.is_multiple_of(m.kv_heads);
        let allowed: Vec<u64> = divisors(common).into_iter().filter(|&t| kv_ok(t)).collect();
        for (name, value) in &dims {
            self.ensure(value.is_multiple_of(tp), "parallelism.tp", || {
                format!(
                    "parallelism.tp={tp} does not divide {name}={value}; tp must divide heads \
                     and ffn_hidden: allowed {}",
                    list(&allowed)
                )
            })?;
        }
        self.ensure(kv_ok(tp), "parallelism.tp", || {
            format!(
                "parallelism.tp={tp} neither divides nor is a multiple of model.kv_heads={}: \
                 key/value heads are split over TP or replicated (one per rank); allowed {}",
                m.kv_heads,
                list(&allowed)
            )
        })?;
        Ok(())
    }

    fn pipeline_split(&self) -> Check {
        let (m, p) = (&self.s.model, &self.s.parallelism);
        self.ensure(p.pp <= m.layers, "parallelism.pp", || {
            format!(
                "pp={} is more than model.layers={}: every stage needs a layer",
                p.pp, m.layers
            )
        })?;
        let chunks = if p.schedule == ScheduleKind::Interleaved {
            p.virtual_stages.max(1)
        } else {
            1
        };
        let uneven = p.stage_layers.is_some() || !p.split.is_default();
        self.ensure(
            !uneven || p.schedule != ScheduleKind::Dualpipe,
            "parallelism.schedule",
            || {
                "dualpipe places two mirrored pieces on every stage and splits layers evenly; \
                 stage_layers and the Megatron split switches need gpipe, 1f1b, interleaved, \
                 zb-h1 or zb-h2"
                    .into()
            },
        )?;
        if p.stage_layers.is_some()
            && let Some(field) = [
                (
                    p.split.first.is_some(),
                    "parallelism.decoder_first_pipeline_num_layers",
                ),
                (
                    p.split.last.is_some(),
                    "parallelism.decoder_last_pipeline_num_layers",
                ),
                (
                    p.split.embedding_slot,
                    "parallelism.account_for_embedding_in_pipeline_split",
                ),
                (
                    p.split.loss_slot,
                    "parallelism.account_for_loss_in_pipeline_split",
                ),
            ]
            .into_iter()
            .find_map(|(set, f)| set.then_some(f))
        {
            return self.fail(
                field,
                "cannot be combined with parallelism.stage_layers (which gives every count); \
                 remove one"
                    .into(),
            );
        }
        match crate::plan::pipeline_layout(m.layers, p, chunks) {
            Ok(_) => Ok(()),
            Err((field, why)) => self.fail(field, why),
        }
    }

    fn micro_batches(&self) -> u64 {
        let (t, p) = (&self.s.training, &self.s.parallelism);
        t.global_batch / (p.dp * t.micro_batch)
    }

    fn batch(&self) -> Check {
        let (t, p) = (&self.s.training, &self.s.parallelism);
        let per_step = product(&[p.dp, t.micro_batch]);
        self.ensure(
            per_step.is_some_and(|n| t.global_batch.is_multiple_of(n)),
            "training.global_batch",
            || {
                let n = per_step.map_or("more than 2^64".into(), |n| n.to_string());
                format!(
                    "global_batch={} is not divisible by dp*micro_batch = {}*{} = {n}; use a \
                     multiple of {n}",
                    t.global_batch, p.dp, t.micro_batch
                )
            },
        )
    }

    fn schedule(&self) -> Check {
        let p = &self.s.parallelism;
        let field = "parallelism.schedule";
        self.ensure(!UNSUPPORTED_SCHEDULES.contains(&p.schedule), field, || {
            format!(
                "schedule `{}` is not supported yet; use gpipe, 1f1b, interleaved, zb-h1 or zb-h2",
                schedule_name(p.schedule)
            )
        })?;
        if p.schedule == ScheduleKind::Dualpipe {
            self.dualpipe()?;
        }
        self.overlap_sm_share()?;
        if p.schedule != ScheduleKind::Interleaved {
            return self.ensure(p.virtual_stages == 1, "parallelism.virtual_stages", || {
                format!(
                    "virtual_stages={} needs schedule: interleaved (schedule is {})",
                    p.virtual_stages,
                    schedule_name(p.schedule)
                )
            });
        }
        self.ensure(p.pp > 1, "parallelism.pp", || {
            "the interleaved schedule needs pp > 1, got pp=1".into()
        })?;
        self.ensure(p.virtual_stages > 1, "parallelism.virtual_stages", || {
            "the interleaved schedule needs virtual_stages > 1, got 1".into()
        })?;
        let mbs = self.micro_batches();
        self.ensure(mbs.is_multiple_of(p.pp), "training.global_batch", || {
            format!(
                "interleaved: micro-batches per step = global_batch/(dp*micro_batch) = {mbs} \
                 must be a multiple of pp={}",
                p.pp
            )
        })
    }

    /// DeepSeek-V3's activation savings (`recompute_norms`, `recompute_mla_up_proj`,
    /// `fp8_activations`) act on what a layer stores: nothing under full recompute, which
    /// keeps only the layer input; MLA's up-projections need MLA; FP8 caches need FP8
    /// GEMMs (their inputs are quantised for them).
    fn stored_activations(&self) -> Check {
        let (t, m) = (&self.s.training, &self.s.model);
        for (on, key) in [
            (t.recompute_norms, "training.recompute_norms"),
            (t.recompute_mla_up_proj, "training.recompute_mla_up_proj"),
            (t.fp8_activations, "training.fp8_activations"),
        ] {
            self.ensure(!on || t.recompute != Recompute::Full, key, || {
                format!(
                    "{key} saves activations a layer stores; under training.recompute: full, \
                     a layer stores only its input (allowed with none or selective)"
                )
            })?;
        }
        self.ensure(
            !t.recompute_mla_up_proj || m.mla.is_some(),
            "training.recompute_mla_up_proj",
            || {
                "recompute_mla_up_proj recomputes MLA's up-projections; the model has no model.mla"
                    .into()
            },
        )?;
        self.ensure(
            !t.fp8_activations || t.precision == Precision::Fp8,
            "training.fp8_activations",
            || {
                format!(
                    "fp8_activations caches Linear inputs in FP8 as FP8 GEMMs quantise them \
                     (DeepSeek-V3 §3.3.3); it needs training.precision: fp8, got {}",
                    serde_json::to_value(t.precision)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                )
            },
        )
    }

    /// `offload_params` keeps each rank's parameter shard in host memory and copies it in
    /// before every ZeRO-3 gather: it needs ZeRO-3 over more than one data-parallel rank
    /// (without sharded gathers the parameters would have to stay on the GPU).
    fn offload(&self) -> Check {
        let p = &self.s.parallelism;
        if !self.s.training.offload_params {
            return Ok(());
        }
        self.ensure(
            p.zero >= 3 && p.dp * p.cp > 1,
            "training.offload_params",
            || {
                format!(
                    "offload_params fetches each layer's parameter shard from host memory \
                     before its ZeRO-3 all-gather (ZeRO-Infinity, FSDP CPU offload); it needs \
                     parallelism.zero: 3 and dp*cp > 1 (zero={}, dp*cp={})",
                    p.zero,
                    p.dp * p.cp
                )
            },
        )
    }

    /// `overlap_sm_share` prices DualPipe's overlapped all-to-alls: it means nothing
    /// without DualPipe and expert parallelism, and must leave SMs to compute.
    fn overlap_sm_share(&self) -> Check {
        let (m, p) = (&self.s.model, &self.s.parallelism);
        let Some(share) = p.overlap_sm_share else {
            return Ok(());
        };
        self.ensure(
            p.schedule == ScheduleKind::Dualpipe && p.ep > 1 && m.moe.is_some(),
            "parallelism.overlap_sm_share",
            || {
                format!(
                    "overlap_sm_share is the SM share DualPipe gives the expert all-to-alls it \
                     overlaps; it needs schedule: dualpipe and ep > 1 on a MoE model \
                     (schedule is {}, ep={})",
                    schedule_name(p.schedule),
                    p.ep
                )
            },
        )?;
        self.ensure(
            share.is_finite() && (0.0..1.0).contains(&share),
            "parallelism.overlap_sm_share",
            || format!("overlap_sm_share={share} must be in [0, 1) (DeepSeek-V3: 20/132 = 0.152)"),
        )
    }

    /// DualPipe feeds half the micro-batches from each end of a symmetric pipeline: an even
    /// number of stages and an even number of micro-batches, at least twice the stages
    /// (the reference implementation's assertions).
    fn dualpipe(&self) -> Check {
        let p = &self.s.parallelism;
        self.ensure(
            p.pp >= 2 && p.pp.is_multiple_of(2),
            "parallelism.pp",
            || {
                format!(
                    "dualpipe needs an even pp >= 2 (stage i pairs with stage pp-1-i), got pp={}",
                    p.pp
                )
            },
        )?;
        let mbs = self.micro_batches();
        let need = p.pp.saturating_mul(2);
        self.ensure(
            mbs >= need && mbs.is_multiple_of(2),
            "training.global_batch",
            || {
                format!(
                    "dualpipe: micro-batches per step = global_batch/(dp*micro_batch) = {mbs} \
                     must be even and at least 2*pp = {need}"
                )
            },
        )
    }

    fn expert_parallel(&self) -> Check {
        let (m, p) = (&self.s.model, &self.s.parallelism);
        let Some(moe) = &m.moe else {
            return self.ensure(p.ep == 1, "parallelism.ep", || {
                format!("ep={} needs a mixture-of-experts model (model.moe)", p.ep)
            });
        };
        self.ensure(p.dp.is_multiple_of(p.ep), "parallelism.ep", || {
            format!(
                "ep={} does not divide dp={}; allowed: {}",
                p.ep,
                p.dp,
                list(&divisors(gcd(p.dp, moe.experts)))
            )
        })?;
        self.ensure(moe.experts.is_multiple_of(p.ep), "parallelism.ep", || {
            format!(
                "ep={} does not divide model.moe.experts={}; allowed: {}",
                p.ep,
                moe.experts,
                list(&divisors(gcd(p.dp, moe.experts)))
            )
        })
    }

    /// `zero_group` splits data parallelism into equal shard groups of whole
    /// expert-parallel groups, and only shards what ZeRO shards.
    fn hybrid_sharding(&self) -> Check {
        let p = &self.s.parallelism;
        let Some(g) = p.zero_group else {
            return Ok(());
        };
        self.ensure(p.zero >= 1, "parallelism.zero_group", || {
            format!(
                "zero_group={g} needs ZeRO sharding (parallelism.zero 1-3), but zero={}",
                p.zero
            )
        })?;
        let ep = p.ep.max(1);
        self.ensure(
            g >= 1 && p.dp.is_multiple_of(g) && g.is_multiple_of(ep),
            "parallelism.zero_group",
            || {
                let allowed: Vec<u64> = divisors(p.dp)
                    .into_iter()
                    .filter(|d| d.is_multiple_of(ep))
                    .collect();
                format!(
                    "zero_group={g} must divide dp={} into equal shard groups of whole \
                     ep={ep} groups; allowed: {}",
                    p.dp,
                    list(&allowed)
                )
            },
        )
    }

    fn context_parallel(&self) -> Check {
        let (t, p) = (&self.s.training, &self.s.parallelism);
        self.ensure(t.seq_len.is_multiple_of(p.cp), "parallelism.cp", || {
            format!("cp={} does not divide training.seq_len={}", p.cp, t.seq_len)
        })
    }

    fn precision(&self) -> Check {
        let (t, g) = (&self.s.training, &self.s.cluster.gpu);
        let ok = t.precision != Precision::Fp8 || g.peak_tflops.fp8.is_some();
        self.ensure(ok, "training.precision", || {
            format!(
                "fp8 needs a GPU with FP8 tensor cores, but {} has no peak_tflops.fp8; use \
                 bf16 or fp16",
                g.name
            )
        })?;
        let ok = t.precision != Precision::Fp4 || g.peak_tflops.fp4.is_some();
        self.ensure(ok, "training.precision", || {
            format!(
                "fp4 needs a GPU with FP4 tensor cores (Blackwell: b200, gb200), but {} has no \
                 peak_tflops.fp4; use fp8 or bf16",
                g.name
            )
        })
    }

    fn timeline(&self) -> Check {
        let TimelineRanks::List(ranks) = &self.s.outputs.timeline else {
            return Ok(());
        };
        let world = self.s.parallelism.world_size();
        for &r in ranks {
            self.ensure(u64::from(r) < world, "outputs.timeline", || {
                format!("rank {r} does not exist: ranks are 0..{}", world - 1)
            })?;
        }
        Ok(())
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The semantic checks of `faults:` (rates, distributions, lemons, durations, straggler
/// and link entries: `faults::FaultModel::resolve`), run at load time so that their errors
/// carry the file and line of the key (list entries are located at their list's key).
pub fn faults(s: &Scenario, root: &Node) -> Check {
    let gpus = s.parallelism.world_size();
    crate::faults::FaultModel::resolve(&s.faults, &s.cluster, gpus)
        .map(|_| ())
        .map_err(|e| {
            let path: String = e
                .field
                .split('.')
                .map(|k| k.split('[').next().unwrap_or(k))
                .collect::<Vec<_>>()
                .join(".");
            let mut err = super::error_at(root, &path, e.message);
            err.field = e.field;
            err
        })
}

/// The checks of `checkpoint:` and `run:` that need nothing but the keys themselves
/// (durations that parse, one run target, positive counts), run at load time so that
/// their errors carry the file and line of the key. `run::RunSetup` keeps the checks that
/// need the priced checkpoint and failure model (the interval floor, the work budget).
pub fn run_sections(s: &Scenario, root: &Node) -> Check {
    let at = |field: &str, message: String| Err(super::error_at(root, field, message));
    let parse = |field: &str, text: &str| {
        crate::faults::duration(field, text).map_err(|e| super::error_at(root, field, e.message))
    };
    if let Some(ck) = &s.checkpoint {
        if let Some(every) = ck.every.as_deref()
            && !matches!(every, "daly" | "young" | "never")
        {
            let interval_s = parse("checkpoint.every", every)?;
            if interval_s.is_nan() || interval_s < 1.0 {
                return at(
                    "checkpoint.every",
                    format!(
                        "{every} is shorter than 1s; give daly, young, never or a duration of at least 1s"
                    ),
                );
            }
        }
        for (field, text) in [
            ("checkpoint.write_time", &ck.write_time),
            ("checkpoint.load_time", &ck.load_time),
        ] {
            if let Some(t) = text {
                parse(field, t)?;
            }
        }
    }
    let Some(run) = &s.run else { return Ok(()) };
    let targets = [
        run.duration.is_some(),
        run.steps.is_some(),
        run.tokens.is_some(),
    ];
    if targets.iter().filter(|&&given| given).count() > 1 {
        return at("run", "give one of `duration`, `steps`, `tokens`".into());
    }
    if let Some(d) = run.duration.as_deref() {
        parse("run.duration", d)?;
    }
    if let Some(tokens) = run.tokens
        && !(tokens.is_finite() && tokens >= 1.0)
    {
        return at(
            "run.tokens",
            format!(
                "must be at least 1 token, got {}",
                crate::units::short_num(tokens)
            ),
        );
    }
    if run.replicas == Some(0) {
        return at("run.replicas", "must be at least 1".into());
    }
    if run.steps == Some(0) {
        return at("run.steps", "must be at least 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisors_are_sorted_and_complete() {
        assert_eq!(divisors(64), vec![1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(divisors(12), vec![1, 2, 3, 4, 6, 12]);
        assert_eq!(divisors(1), vec![1]);
    }

    #[test]
    fn product_reports_overflow() {
        assert_eq!(product(&[8, 4, 16, 1]), Some(512));
        assert_eq!(product(&[u64::MAX, 2]), None);
    }
}
