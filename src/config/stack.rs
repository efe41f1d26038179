//! `stack:` → the resolved software stack: a preset from `data/stacks.yaml`, each field
//! overridable on its own, and the older plan keys (`parallelism.tp_comm_overlap`,
//! `overlap_grad_reduce`, `pp_comm_overlap`) still accepted.
//!
//! Precedence: a key the scenario sets (in `stack:` or in `parallelism:`) beats the
//! preset; setting both spellings of one field to different values is refused. A value
//! the simulator does not model yet is refused (exit 2, naming the field) wherever it
//! would change the result under this plan, so every accepted key means what it says.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::ConfigError;
use super::raw::{RawParallelism, RawStack};
use super::tree::{self, Node};
use crate::plan::ParallelismSpec;
use crate::plan::stack::{P2p, StackSpec, TpOverlap, Zero3Gather, Zero3Stack};

const STACKS_PATH: &str = "data/stacks.yaml";
const STACKS_YAML: &str = include_str!("../../data/stacks.yaml");

/// One preset of `data/stacks.yaml`: every field, and where each value comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackPreset {
    pub version: String,
    pub fields: RawStack,
    pub sources: BTreeMap<String, String>,
}

fn catalog() -> Result<&'static BTreeMap<String, StackPreset>, ConfigError> {
    static CELL: OnceLock<Result<BTreeMap<String, StackPreset>, ConfigError>> = OnceLock::new();
    CELL.get_or_init(|| {
        let node: Node = tree::parse(STACKS_PATH, STACKS_YAML)?;
        let map: BTreeMap<String, StackPreset> = tree::from_node(&node, "")?;
        Ok(map)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The names `stack.preset` accepts.
pub fn preset_names() -> Result<Vec<String>, ConfigError> {
    Ok(catalog()?.keys().cloned().collect())
}

/// Preset `name`, if there is one.
pub fn preset(name: &str) -> Result<Option<&'static StackPreset>, ConfigError> {
    Ok(catalog()?.get(name))
}

/// Where a resolved value came from, for error messages.
#[derive(Clone, Copy)]
enum Src {
    /// The scenario's key (dotted path).
    Scenario(&'static str),
    /// The preset (or the default stack).
    Preset,
}

fn pick<T: Copy + PartialEq + std::fmt::Debug>(
    root: &Node,
    field: &'static str,
    in_stack: Option<T>,
    in_parallelism: Option<(T, &'static str)>,
    in_preset: Option<T>,
    default: T,
) -> Result<(T, Src), ConfigError> {
    match (in_stack, in_parallelism) {
        (Some(a), Some((b, pfield))) if a != b => Err(super::error_at(
            root,
            field,
            format!(
                "{field} ({a:?}) contradicts {pfield} ({b:?}); the two spellings of one \
                 field must agree"
            ),
        )),
        (Some(a), _) => Ok((a, Src::Scenario(field))),
        (None, Some((b, pfield))) => Ok((b, Src::Scenario(pfield))),
        (None, None) => match in_preset {
            Some(v) => Ok((v, Src::Preset)),
            None => Ok((default, Src::Preset)),
        },
    }
}

fn refuse(root: &Node, from: Src, preset: &str, field: &str, what: &str) -> ConfigError {
    let msg = format!("{what} is not modelled yet (issue 11); this plan would depend on it");
    match from {
        Src::Scenario(key) => super::error_at(root, key, msg),
        Src::Preset => super::error_at(
            root,
            "stack.preset",
            format!("preset `{preset}` sets {field}: {msg}; override stack.{field}"),
        ),
    }
}

/// Resolves `stack:` onto the plan: writes the overlap flags into `p` and the remaining
/// fields into `p.stack`; the plan decides which fields matter. Returns the refusals of
/// `stack.zero3.*` keys the scenario sets under a plan that is not ZeRO-3 (over more than
/// one data-parallel rank): they act only on plans the plan search may pick, so commands
/// that run the scenario's own plan refuse them (`Scenario::check_own_plan`).
pub fn resolve(
    raw: Option<RawStack>,
    rp: &RawParallelism,
    p: &mut ParallelismSpec,
    root: &Node,
) -> Result<Vec<ConfigError>, ConfigError> {
    let raw = raw.unwrap_or_default();
    let (name, pre) = match &raw.preset {
        None => ("default".to_string(), RawStack::default()),
        Some(n) => match preset(n)? {
            Some(sp) => (n.clone(), sp.fields.clone()),
            None => {
                return Err(super::error_at(
                    root,
                    "stack.preset",
                    format!(
                        "unknown stack preset `{n}`; known: {}",
                        preset_names()?.join(", ")
                    ),
                ));
            }
        },
    };
    let d = StackSpec::default();
    let bool_tp = |b: bool| if b { TpOverlap::Full } else { TpOverlap::None };
    let (tp, _) = pick(
        root,
        "stack.tp_comm_overlap",
        raw.tp_comm_overlap,
        rp.tp_comm_overlap
            .map(|b| (bool_tp(b), "parallelism.tp_comm_overlap")),
        pre.tp_comm_overlap,
        TpOverlap::None,
    )?;
    let (grad, _) = pick(
        root,
        "stack.overlap_grad_reduce",
        raw.overlap_grad_reduce,
        rp.overlap_grad_reduce
            .map(|b| (b, "parallelism.overlap_grad_reduce")),
        pre.overlap_grad_reduce,
        true,
    )?;
    let (p2p, _) = pick(
        root,
        "stack.pp_p2p",
        raw.pp_p2p,
        rp.pp_comm_overlap.map(|b| {
            (
                if b { P2p::Async } else { P2p::Sync },
                "parallelism.pp_comm_overlap",
            )
        }),
        pre.pp_p2p,
        P2p::Async,
    )?;
    let one = |field: &'static str, user: Option<bool>, preset: Option<bool>, dflt: bool| {
        pick(root, field, user, None, preset, dflt)
    };
    let (gather, gather_from) = one(
        "stack.overlap_param_gather",
        raw.overlap_param_gather,
        pre.overlap_param_gather,
        grad,
    )?;
    let (fusion, _) = one(
        "stack.grad_accum_fusion",
        raw.grad_accum_fusion,
        pre.grad_accum_fusion,
        d.grad_accum_fusion,
    )?;
    let (align, _) = one(
        "stack.align_grad_reduce",
        raw.align_grad_reduce,
        pre.align_grad_reduce,
        d.align_grad_reduce,
    )?;
    let (fp8_attn, _) = one(
        "stack.fp8_attention",
        raw.fp8_attention,
        pre.fp8_attention,
        d.fp8_attention,
    )?;
    let (dtype, _) = pick(
        root,
        "stack.grad_reduce_dtype",
        raw.grad_reduce_dtype,
        None,
        pre.grad_reduce_dtype,
        d.grad_reduce_dtype,
    )?;
    let zero3 = zero3(&raw, &pre, root)?;

    let distributed_optimizer = p.zero >= 1 && p.zero <= 2 && p.dp > 1;
    if distributed_optimizer && gather != grad {
        return Err(refuse(
            root,
            gather_from,
            &name,
            "overlap_param_gather",
            "overlap_param_gather different from overlap_grad_reduce",
        ));
    }
    // Elsewhere the field has nothing to act on: only the distributed optimizer gathers
    // parameters after the step (ZeRO-3 gathers per layer, overlapped per
    // `stack.zero3.prefetch`). A value set in the scenario that would differ is refused
    // rather than ignored.
    if let (false, true, Src::Scenario(key)) = (distributed_optimizer, gather != grad, gather_from)
    {
        return Err(super::error_at(
            root,
            key,
            format!(
                "{key} = {gather} has no effect here: only the distributed optimizer (ZeRO-1/2 \
                 with dp > 1) gathers parameters after the step, and its gathers overlap \
                 exactly when the gradient reductions do (overlap_grad_reduce = {grad}); \
                 ZeRO-3's per-layer gathers overlap per stack.zero3.prefetch"
            ),
        ));
    }
    let plan_only = zero3_keys_off_plan(&raw, p, root);
    p.tp_comm_overlap = tp == TpOverlap::Full;
    p.overlap_grad_reduce = grad;
    p.pp_comm_overlap = p2p != P2p::Sync;
    p.stack = StackSpec {
        preset: name,
        tp_comm_overlap: tp,
        overlap_param_gather: gather,
        grad_accum_fusion: fusion,
        grad_reduce_dtype: dtype,
        align_grad_reduce: align,
        fp8_attention: fp8_attn,
        p2p_interleaved_only: p2p == P2p::InterleavedOnly,
        zero3,
    };
    Ok(plan_only)
}

/// One refusal per `stack.zero3` key the scenario sets when its plan does not gather
/// parameters per layer (ZeRO-3 with `dp * cp > 1`, `pricing::dp::fsdp`).
fn zero3_keys_off_plan(raw: &RawStack, p: &ParallelismSpec, root: &Node) -> Vec<ConfigError> {
    let Some(z) = &raw.zero3 else {
        return Vec::new();
    };
    if p.zero >= 3 && p.dp * p.cp > 1 {
        return Vec::new();
    }
    let set = [
        ("gather", z.gather.is_some()),
        ("bucket_params", z.bucket_params.is_some()),
        ("prefetch", z.prefetch.is_some()),
        ("sync_per_gather", z.sync_per_gather.is_some()),
        ("recompute_regathers", z.recompute_regathers.is_some()),
        ("persist_below", z.persist_below.is_some()),
        ("host_us", z.host_us.is_some()),
        ("host_us_per_rank", z.host_us_per_rank.is_some()),
    ];
    set.iter()
        .filter(|(_, is_set)| *is_set)
        .map(|(name, _)| {
            let key = format!("stack.zero3.{name}");
            super::error_at(
                root,
                &key,
                format!(
                    "{key} has no effect under this plan (parallelism.zero = {}, dp*cp = {}): \
                     ZeRO-3 fields act only with zero: 3 and dp*cp > 1; remove it, or set \
                     parallelism.zero: 3 (`clustersim plan` and `compare --plan best` \
                     keep it, since their search may pick ZeRO-3)",
                    p.zero,
                    p.dp * p.cp
                ),
            )
        })
        .collect()
}

/// `stack.zero3`: each field from the scenario, else the preset, else FSDP's behaviour
/// (one gather per layer, one layer ahead). Every field acts under ZeRO-3 with more than
/// one data-parallel rank (README "Software stack"); values that cannot mean anything are
/// refused (a bucket size without `gather: bucket`, negative or unbounded host costs).
fn zero3(raw: &RawStack, pre: &RawStack, root: &Node) -> Result<Zero3Stack, ConfigError> {
    let d = Zero3Stack::default();
    let (u, s) = (
        raw.zero3.clone().unwrap_or_default(),
        pre.zero3.clone().unwrap_or_default(),
    );
    let gather = u.gather.or(s.gather).unwrap_or(d.gather);
    // A bucket size belongs to the gather it came with: the preset's goes when the
    // scenario picks another granularity.
    let bucket_params = match (u.gather, u.bucket_params) {
        (_, Some(b)) => b,
        (Some(g), None) if Some(g) != s.gather => 0,
        _ => s.bucket_params.unwrap_or(0),
    };
    let z = Zero3Stack {
        gather,
        bucket_params,
        prefetch: u.prefetch.or(s.prefetch).unwrap_or(d.prefetch),
        sync_per_gather: u
            .sync_per_gather
            .or(s.sync_per_gather)
            .unwrap_or(d.sync_per_gather),
        recompute_regathers: u
            .recompute_regathers
            .or(s.recompute_regathers)
            .unwrap_or(d.recompute_regathers),
        persist_below: u
            .persist_below
            .or(s.persist_below)
            .unwrap_or(d.persist_below),
        host_us: u.host_us.or(s.host_us).unwrap_or(d.host_us),
        host_us_per_rank: u
            .host_us_per_rank
            .or(s.host_us_per_rank)
            .unwrap_or(d.host_us_per_rank),
    };
    let bad = |key: &str, msg: String| Err(super::error_at(root, key, msg));
    match (z.gather, z.bucket_params) {
        (Zero3Gather::Bucket, 0) => {
            return bad(
                "stack.zero3.bucket_params",
                "gather: bucket needs bucket_params (parameters per all-gather, > 0)".into(),
            );
        }
        (g, b) if g != Zero3Gather::Bucket && b > 0 => {
            return bad(
                "stack.zero3.bucket_params",
                format!("bucket_params ({b}) applies to gather: bucket only, not {g:?}"),
            );
        }
        _ => {}
    }
    if z.prefetch > MAX_PREFETCH {
        return bad(
            "stack.zero3.prefetch",
            format!(
                "prefetch {} layers; allowed 0 to {MAX_PREFETCH}",
                z.prefetch
            ),
        );
    }
    for (key, v) in [
        ("stack.zero3.host_us", z.host_us),
        ("stack.zero3.host_us_per_rank", z.host_us_per_rank),
    ] {
        if !(0.0..=MAX_HOST_US).contains(&v) {
            return bad(
                key,
                format!("{v} µs per collective; allowed 0 to {MAX_HOST_US}"),
            );
        }
    }
    Ok(z)
}

/// Layers a ZeRO-3 stack may gather ahead.
const MAX_PREFETCH: u64 = 64;
/// Host cost per collective, µs (one second).
const MAX_HOST_US: f64 = 1e6;

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [&str; 9] = [
        "tp_comm_overlap",
        "overlap_grad_reduce",
        "align_grad_reduce",
        "overlap_param_gather",
        "pp_p2p",
        "grad_accum_fusion",
        "grad_reduce_dtype",
        "fp8_attention",
        "zero3",
    ];

    #[test]
    fn every_preset_sets_and_sources_every_field() {
        let names = preset_names().unwrap();
        for n in [
            "megatron-lm-2021",
            "megatron-lm-2023",
            "megatron-core",
            "deepspeed-zero3-2021",
            "deepspeed",
            "pytorch-fsdp2",
            "nemo",
        ] {
            assert!(names.iter().any(|m| m == n), "missing stack preset {n}");
        }
        for n in names {
            let p = preset(&n).unwrap().unwrap();
            let f = &p.fields;
            assert!(f.preset.is_none(), "{n}");
            assert!(f.tp_comm_overlap.is_some() && f.overlap_grad_reduce.is_some());
            assert!(f.overlap_param_gather.is_some() && f.pp_p2p.is_some());
            assert!(f.grad_accum_fusion.is_some() && f.grad_reduce_dtype.is_some());
            assert!(f.fp8_attention.is_some() && f.zero3.is_some(), "{n}");
            assert!(f.align_grad_reduce.is_some(), "{n}");
            let keys: Vec<&str> = p.sources.keys().map(String::as_str).collect();
            let mut want = FIELDS.to_vec();
            want.sort_unstable();
            assert_eq!(keys, want, "{n}: every field names its source");
            assert!(p.sources.values().all(|s| !s.trim().is_empty()));
        }
    }

    fn load(extra: &str, sets: &[&str]) -> Result<crate::config::Scenario, ConfigError> {
        let text = format!(
            "model: llama3-8b\ncluster: {{ from: dgx-h100-ndr, nodes: 2 }}\n\
             training: {{ seq_len: 4096, global_batch: 64 }}\n{extra}"
        );
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crate::config::load_scenario_str("t.yaml", &text, &sets)
    }

    #[test]
    fn no_stack_keeps_the_plan_defaults() {
        let s = load("parallelism: { tp: 2, pp: 2 }\n", &[]).unwrap();
        let p = &s.parallelism;
        assert_eq!(p.stack, StackSpec::default());
        assert!(p.overlap_grad_reduce && p.pp_comm_overlap && !p.tp_comm_overlap);
    }

    #[test]
    fn presets_fields_and_old_keys_resolve_with_precedence() {
        let s = load(
            "parallelism: { tp: 2, pp: 2 }\nstack: { preset: nemo }\n",
            &[],
        )
        .unwrap();
        let p = &s.parallelism;
        assert_eq!(p.stack.preset, "nemo");
        assert!(p.tp_comm_overlap && p.overlap_grad_reduce);
        assert_eq!(
            p.stack.grad_reduce_dtype,
            crate::plan::stack::GradReduceDtype::Fp32
        );
        // A plan key beats the preset; the stack field spells the same thing.
        let s = load(
            "parallelism: { tp: 2, pp: 2, tp_comm_overlap: false, pp_comm_overlap: false }\n\
             stack: { preset: nemo }\n",
            &[],
        )
        .unwrap();
        assert!(!s.parallelism.tp_comm_overlap && !s.parallelism.pp_comm_overlap);
        let s = load("parallelism: { tp: 2 }\n", &["stack.pp_p2p=sync"]).unwrap();
        assert!(!s.parallelism.pp_comm_overlap);
        let s = load(
            "parallelism: { tp: 2 }\nstack: { grad_reduce_dtype: fp32 }\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.parallelism.stack.preset, "default");
        assert_eq!(
            s.parallelism.stack.grad_reduce_dtype,
            crate::plan::stack::GradReduceDtype::Fp32
        );
    }

    #[test]
    fn contradictions_unknown_presets_and_unmodelled_values_are_refused() {
        let e = load(
            "parallelism: { tp: 2, overlap_grad_reduce: true }\n\
             stack: { overlap_grad_reduce: false }\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field, "stack.overlap_grad_reduce");
        assert!(
            e.location.as_deref().unwrap_or("").starts_with("t.yaml:5"),
            "{e}"
        );
        let e = load("stack: { preset: megatron-9000 }\n", &[]).unwrap_err();
        assert_eq!(e.field, "stack.preset");
        assert!(e.message.contains("megatron-core"), "{e}");
        // Modelled now: backward TP overlap (megatron-core under TP) and unfused accumulation.
        let s = load(
            "parallelism: { tp: 2 }\nstack: { preset: megatron-core }\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.parallelism.tp_overlap(), TpOverlap::Backward);
        let s = load("stack: { grad_accum_fusion: false }\n", &[]).unwrap();
        assert!(!s.parallelism.stack.grad_accum_fusion);
        // ZeRO-3 behaviour is modelled: the presets resolve; values without meaning are
        // refused, named by the key that set them.
        let s = load(
            "parallelism: { tp: 1, zero: 3 }\nstack: { preset: deepspeed-zero3-2021 }\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.parallelism.stack.zero3.gather, Zero3Gather::Tensor);
        let e = load(
            "parallelism: { zero: 3 }\nstack: { zero3: { gather: bucket } }\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field, "stack.zero3.bucket_params");
        let e = load(
            "parallelism: { zero: 3 }\nstack: { zero3: { bucket_params: 1000 } }\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field, "stack.zero3.bucket_params");
        let e = load(
            "parallelism: { zero: 3 }\nstack: { zero3: { host_us: -1 } }\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field, "stack.zero3.host_us");
        let e = load(
            "parallelism: { zero: 3 }\nstack: { zero3: { prefetch: 65 } }\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field, "stack.zero3.prefetch");
        // Where a field cannot matter it is accepted: ZeRO-3 settings without ZeRO-3, TP
        // overlap without TP.
        let s = load(
            "parallelism: { tp: 1 }\nstack: { preset: pytorch-fsdp2 }\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.parallelism.stack.preset, "pytorch-fsdp2");
        let s = load(
            "parallelism: { tp: 1, zero: 3 }\nstack: { preset: pytorch-fsdp2 }\n",
            &[],
        )
        .unwrap();
        assert!(s.parallelism.overlap_grad_reduce);
    }
}
