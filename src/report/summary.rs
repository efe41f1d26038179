//! `summary.json`: the headline metrics of a step, echoed scenario, and optional sections
//! other parts of the simulator fill (`memory_gb`, `run`, `cost`).
//!
//! Builds only from [`StepMetrics`] and the [`Scenario`]; computes no metric of its own.
//! Floats go through `serde_json` (shortest round-trip form, `ryu`), so the same numbers
//! always print the same bytes; non-finite values print as `null`.

use serde::Serialize;

use crate::config::Scenario;
use crate::hardware::Precision;
use crate::plan::{Recompute, ResolvedStack, ScheduleKind};
use crate::sim::{Breakdown, StepMetrics};
use crate::validate::Uncertainty;

/// Version of the `summary.json` layout; bump when a key changes meaning.
pub const SUMMARY_SCHEMA: u32 = 1;

/// What `summary.json` contains. Top-level metric keys are the contract of design.md.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub schema: u32,
    pub scenario: ScenarioEcho,
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    /// Model TFLOP/s per GPU (no recompute), the MFU numerator.
    pub tflops_per_gpu: f64,
    /// Model FLOPs utilization.
    pub mfu: f64,
    /// Hardware FLOPs utilization (recompute counted).
    pub hfu: f64,
    pub bubble_fraction: f64,
    pub model_flops: f64,
    pub hardware_flops: f64,
    pub breakdown_s: Breakdown,
    /// Discrete events the engine processed.
    pub events: u64,
    /// MoE routing (absent for a dense model): what the capacity factor drops and how
    /// loaded the hottest expert-parallel rank is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moe: Option<MoeRouting>,
    /// Per-GPU memory breakdown (filled by the memory model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<serde_json::Value>,
    /// Long-horizon run results (filled by the run simulation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<serde_json::Value>,
    /// Several jobs on one cluster (`jobs:`): each job's step alone and shared, and the
    /// links where they interfere (see `report::jobs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<serde_json::Value>,
    /// Cost figures (filled by the cost model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<serde_json::Value>,
    /// The band the calibration puts around the headline figures (step time, tokens/s,
    /// TFLOP/s, MFU); absent for a GPU without a calibration table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<Uncertainty>,
    /// What produced this file: clustersim version, inputs and their hashes, overrides,
    /// seed, network mode (`config::Provenance`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
}

/// MoE routing as priced (`crate::model::MoeSpec`): the expert loads under `skew`, capped
/// by `capacity_factor` (null: dropless).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoeRouting {
    pub capacity_factor: Option<f64>,
    pub skew: f64,
    /// Fraction of routed tokens dropped above expert capacity (0 when dropless).
    pub dropped_fraction: f64,
    /// Tokens the most loaded expert-parallel rank computes, over the balanced load.
    pub hottest_rank_load: f64,
}

impl MoeRouting {
    pub fn new(s: &Scenario) -> Option<Self> {
        s.model.moe.as_ref().map(|m| MoeRouting {
            capacity_factor: m.capacity_factor,
            skew: m.skew,
            dropped_fraction: m.dropped_fraction(),
            hottest_rank_load: m.hottest_rank_load(s.parallelism.ep),
        })
    }
}

/// The scenario a summary belongs to, so the file stands on its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioEcho {
    pub name: String,
    pub model: String,
    pub cluster: String,
    pub gpu: String,
    pub gpus: u64,
    pub tp: u64,
    pub pp: u64,
    pub dp: u64,
    pub ep: u64,
    pub cp: u64,
    pub schedule: ScheduleKind,
    pub virtual_stages: u64,
    pub zero: u8,
    pub micro_batches: u64,
    pub global_batch: u64,
    pub micro_batch: u64,
    pub seq_len: u64,
    pub precision: Precision,
    pub recompute: Recompute,
    /// The software stack as resolved (`stack:`, preset and overrides).
    pub stack: ResolvedStack,
}

impl ScenarioEcho {
    pub fn new(s: &Scenario, m: &StepMetrics) -> Self {
        let p = &s.parallelism;
        let t = &s.training;
        ScenarioEcho {
            name: s.name.clone(),
            model: s.model.name.clone(),
            cluster: s.cluster.name.clone(),
            gpu: s.cluster.gpu.name.clone(),
            gpus: m.gpus,
            tp: p.tp,
            pp: p.pp,
            dp: p.dp,
            ep: p.ep,
            cp: p.cp,
            schedule: p.schedule,
            virtual_stages: p.virtual_stages,
            zero: p.zero,
            micro_batches: m.micro_batches,
            global_batch: t.global_batch,
            micro_batch: t.micro_batch,
            seq_len: t.seq_len,
            precision: t.precision,
            recompute: t.recompute,
            stack: ResolvedStack::of(p),
        }
    }
}

impl Summary {
    /// The summary of one simulated step; optional sections start empty.
    pub fn new(s: &Scenario, m: &StepMetrics) -> Self {
        Summary {
            schema: SUMMARY_SCHEMA,
            scenario: ScenarioEcho::new(s, m),
            step_time_s: m.step_time_s,
            tokens_per_s: m.tokens_per_s,
            tflops_per_gpu: m.tflops_per_gpu,
            mfu: m.mfu,
            hfu: m.hfu,
            bubble_fraction: m.bubble_fraction,
            model_flops: m.model_flops,
            hardware_flops: m.hardware_flops,
            breakdown_s: m.breakdown_s.clone(),
            events: m.events,
            moe: MoeRouting::new(s),
            memory_gb: None,
            run: None,
            jobs: None,
            cost: None,
            uncertainty: crate::validate::uncertainty(&s.cluster.gpu, m),
            provenance: None,
        }
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }
}

/// The breakdown as `(label, seconds)` in a fixed order, for tables and charts.
pub fn breakdown_parts(b: &Breakdown) -> [(&'static str, f64); 9] {
    [
        ("compute", b.compute),
        ("recompute", b.recompute),
        ("optimizer", b.optimizer),
        ("tp_exposed", b.tp_exposed),
        ("cp_exposed", b.cp_exposed),
        ("ep_exposed", b.ep_exposed),
        ("pp_exposed", b.pp_exposed),
        ("dp_exposed", b.dp_exposed),
        ("idle", b.idle),
    ]
}

/// A human-readable table of the headline metrics, as `clustersim run` prints it.
pub fn human_table(s: &Summary) -> String {
    let mut out = String::new();
    let e = &s.scenario;
    out.push_str(&format!(
        "{} — {} on {} x {} ({}), tp={} pp={} dp={} ep={} cp={}, {} micro-batches\n\n",
        e.name, e.model, e.gpus, e.gpu, e.cluster, e.tp, e.pp, e.dp, e.ep, e.cp, e.micro_batches
    ));
    let pm = |digits: usize, scale: f64, f: fn(&Uncertainty) -> [f64; 2]| {
        s.uncertainty.as_ref().map_or(String::new(), |u| {
            let [lo, hi] = f(u);
            format!(
                "  ±{:.1} % ({:.digits$}..{:.digits$})",
                u.relative * 100.0,
                lo * scale,
                hi * scale
            )
        })
    };
    let rows = [
        (
            "step time",
            format!("{:.4} s{}", s.step_time_s, pm(3, 1.0, |u| u.step_time_s)),
        ),
        ("tokens/s", format!("{:.0}", s.tokens_per_s)),
        (
            "TFLOP/s per GPU",
            format!("{:.1} (model FLOPs)", s.tflops_per_gpu),
        ),
        (
            "MFU",
            format!("{:.1} %{}", s.mfu * 100.0, pm(1, 100.0, |u| u.mfu)),
        ),
        ("HFU", format!("{:.1} %", s.hfu * 100.0)),
        ("bubble", format!("{:.1} %", s.bubble_fraction * 100.0)),
    ];
    for (k, v) in rows {
        out.push_str(&format!("  {k:<18} {v}\n"));
    }
    match &s.uncertainty {
        Some(u) => out.push_str(&format!(
            "  ± calibration error of this GPU generation: MAPE of the {} table (worst row {:.1} %; clustersim validate)\n",
            u.label,
            u.max_error * 100.0
        )),
        None => out.push_str("  no calibration table for this GPU: no error band\n"),
    }
    out.push_str("\n  breakdown            seconds   % of step\n");
    let step = s.step_time_s.max(f64::MIN_POSITIVE);
    for (k, v) in breakdown_parts(&s.breakdown_s) {
        out.push_str(&format!(
            "    {k:<16} {v:>10.4} {:>10.1} %\n",
            v / step * 100.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;
    use crate::sim::{StepOptions, simulate_step};

    fn summary() -> Summary {
        let s = toy_scenario(2, 2, 1, 4, 4);
        let r = simulate_step(&s, &StepOptions::default()).unwrap();
        Summary::new(&s, &r.metrics)
    }

    #[test]
    fn json_has_contract_keys_and_skips_empty_sections() {
        let v: serde_json::Value = serde_json::from_str(&summary().to_json().unwrap()).unwrap();
        for k in [
            "step_time_s",
            "tokens_per_s",
            "tflops_per_gpu",
            "mfu",
            "hfu",
            "bubble_fraction",
            "events",
        ] {
            assert!(v[k].is_number(), "{k}");
        }
        for (k, _) in breakdown_parts(&Breakdown::default()) {
            assert!(v["breakdown_s"][k].is_number(), "breakdown_s.{k}");
        }
        assert_eq!(v["scenario"]["name"], "toy");
        assert_eq!(v["scenario"]["schedule"], "1f1b");
        assert_eq!(v["scenario"]["gpus"], 4);
        assert!(v.get("memory_gb").is_none() && v.get("run").is_none());
    }

    #[test]
    fn optional_sections_serialize_when_present() {
        let mut s = summary();
        s.memory_gb = Some(serde_json::json!({"total": 12.5, "fits": true}));
        let v: serde_json::Value = serde_json::from_str(&s.to_json().unwrap()).unwrap();
        assert_eq!(v["memory_gb"]["fits"], true);
        assert!(v.get("cost").is_none());
    }

    #[test]
    fn moe_section_reports_the_dropped_fraction() {
        let mut s = crate::fixtures::toy_moe(8, 1.2);
        s.model.moe.as_mut().unwrap().capacity_factor = Some(1.25);
        let r = crate::sim::simulate_step(&s, &crate::sim::StepOptions::default()).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&Summary::new(&s, &r.metrics).to_json().unwrap()).unwrap();
        let moe = s.model.moe.as_ref().unwrap();
        assert_eq!(
            v["moe"]["dropped_fraction"].as_f64().unwrap(),
            moe.dropped_fraction()
        );
        assert!(moe.dropped_fraction() > 0.1);
        assert_eq!(v["moe"]["hottest_rank_load"].as_f64().unwrap(), 1.25);
        assert_eq!(v["moe"]["capacity_factor"].as_f64().unwrap(), 1.25);
        let dropless = crate::fixtures::toy_moe(8, 1.2);
        let r = crate::sim::simulate_step(&dropless, &crate::sim::StepOptions::default()).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&Summary::new(&dropless, &r.metrics).to_json().unwrap()).unwrap();
        assert!(v["moe"]["capacity_factor"].is_null());
        assert_eq!(v["moe"]["dropped_fraction"].as_f64().unwrap(), 0.0);
    }

    #[test]
    fn json_is_deterministic_and_round_trips_floats() {
        let s = summary();
        let (a, b) = (s.to_json().unwrap(), s.to_json().unwrap());
        assert_eq!(a, b);
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["step_time_s"].as_f64().unwrap(), s.step_time_s);
    }

    #[test]
    fn human_table_lists_every_breakdown_part() {
        let t = human_table(&summary());
        for (k, _) in breakdown_parts(&Breakdown::default()) {
            assert!(t.contains(k), "{k} missing from\n{t}");
        }
        assert!(t.contains("MFU") && t.contains("step time"));
    }
}
