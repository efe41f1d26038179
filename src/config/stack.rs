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
use crate::plan::stack::{P2p, StackSpec, TpOverlap, Zero3Stack};

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
/// fields into `p.stack`; the plan decides which fields matter.
pub fn resolve(
    raw: Option<RawStack>,
    rp: &RawParallelism,
    p: &mut ParallelismSpec,
    root: &Node,
) -> Result<(), ConfigError> {
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
    let zero3 = zero3(&raw, &pre, &name, p, root)?;

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
    p.tp_comm_overlap = tp == TpOverlap::Full;
    p.overlap_grad_reduce = grad;
    p.pp_comm_overlap = p2p == P2p::Async;
    p.stack = StackSpec {
        preset: name,
        tp_comm_overlap: tp,
        overlap_param_gather: gather,
        grad_accum_fusion: fusion,
        grad_reduce_dtype: dtype,
        fp8_attention: fp8_attn,
        zero3,
    };
    Ok(())
}

/// `stack.zero3`: each field from the scenario, else the preset, else FSDP's behaviour as
/// modelled; a value other than the modelled one is refused under ZeRO-3.
fn zero3(
    raw: &RawStack,
    pre: &RawStack,
    name: &str,
    p: &ParallelismSpec,
    root: &Node,
) -> Result<Zero3Stack, ConfigError> {
    let d = Zero3Stack::default();
    let (u, s) = (
        raw.zero3.clone().unwrap_or_default(),
        pre.zero3.clone().unwrap_or_default(),
    );
    let z = Zero3Stack {
        gather: u.gather.or(s.gather).unwrap_or(d.gather),
        prefetch: u.prefetch.or(s.prefetch).unwrap_or(d.prefetch),
        sync_per_gather: u
            .sync_per_gather
            .or(s.sync_per_gather)
            .unwrap_or(d.sync_per_gather),
        recompute_regathers: u
            .recompute_regathers
            .or(s.recompute_regathers)
            .unwrap_or(d.recompute_regathers),
        host_us: u.host_us.or(s.host_us).unwrap_or(d.host_us),
        host_us_per_rank: u
            .host_us_per_rank
            .or(s.host_us_per_rank)
            .unwrap_or(d.host_us_per_rank),
    };
    if p.zero < 3 || p.dp <= 1 {
        return Ok(z);
    }
    let checks = [
        (0, z.gather != d.gather, u.gather.is_some()),
        (1, z.prefetch != d.prefetch, u.prefetch.is_some()),
        (
            2,
            z.sync_per_gather != d.sync_per_gather,
            u.sync_per_gather.is_some(),
        ),
        (
            3,
            z.recompute_regathers != d.recompute_regathers,
            u.recompute_regathers.is_some(),
        ),
        (4, z.host_us != d.host_us, u.host_us.is_some()),
        (
            5,
            z.host_us_per_rank != d.host_us_per_rank,
            u.host_us_per_rank.is_some(),
        ),
    ];
    for (i, differs, by_user) in checks {
        let (field, key) = (ZERO3_FIELDS[i], ZERO3_KEYS[i]);
        if differs {
            let from = if by_user {
                Src::Scenario(key)
            } else {
                Src::Preset
            };
            return Err(refuse(
                root,
                from,
                name,
                &format!("zero3.{field}"),
                &format!("stack.zero3.{field} other than {}", modelled(&d, field)),
            ));
        }
    }
    Ok(z)
}

const ZERO3_FIELDS: [&str; 6] = [
    "gather",
    "prefetch",
    "sync_per_gather",
    "recompute_regathers",
    "host_us",
    "host_us_per_rank",
];
const ZERO3_KEYS: [&str; 6] = [
    "stack.zero3.gather",
    "stack.zero3.prefetch",
    "stack.zero3.sync_per_gather",
    "stack.zero3.recompute_regathers",
    "stack.zero3.host_us",
    "stack.zero3.host_us_per_rank",
];

fn modelled(d: &Zero3Stack, field: &str) -> String {
    match field {
        "gather" => "layer".into(),
        "prefetch" => d.prefetch.to_string(),
        "sync_per_gather" => d.sync_per_gather.to_string(),
        "recompute_regathers" => d.recompute_regathers.to_string(),
        _ => "0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [&str; 8] = [
        "tp_comm_overlap",
        "overlap_grad_reduce",
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
        // Not modelled yet: refused where it would matter, named by the key that set it.
        let e = load(
            "parallelism: { tp: 1, zero: 3 }\nstack: { preset: deepspeed-zero3-2021 }\n",
            &[],
        )
        .unwrap_err();
        assert!(e.message.contains("zero3.gather"), "{e}");
        let e = load(
            "parallelism: { zero: 3 }\nstack: { zero3: { prefetch: 0 } }\n",
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
