//! `clustersim plan` as a library call: the best parallelism plans for a scenario's model
//! on its cluster (fast mode ranks every plan, the top K are replayed in full), and
//! `plans.csv` / `plans.json`.
//!
//! Must not print or pick output folders; that is the CLI's.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::input::{ScenarioInput, scenario_constructors};
use crate::config::provenance::json_with;
use crate::config::{Provenance, Scenario};
use crate::plan::{Recompute, ScheduleKind};
use crate::sweep::plan::{self, PlanOptions, PlanReport, SearchSpace};

/// A plan search. Each `with_` list restricts one field of the search space; an empty
/// list keeps the scenario's default ([`SearchSpace::for_scenario`]).
///
/// ```no_run
/// let out = clustersim::PlanSearch::default_scenario()
///     .with_top(3)
///     .with_tp(&[2, 4])
///     .run()?;
/// if let Some(best) = out.report.best_replayed() {
///     println!("best: {}", best.point.label());
/// }
/// # Ok::<(), clustersim::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PlanSearch {
    input: ScenarioInput,
    top: usize,
    gpus: Option<u64>,
    tp: Vec<u64>,
    pp: Vec<u64>,
    cp: Vec<u64>,
    ep: Vec<u64>,
    micro_batch: Vec<u64>,
    zero: Vec<u8>,
    schedules: Vec<ScheduleKind>,
    recompute: Vec<Recompute>,
}

scenario_constructors!(PlanSearch);

impl PlanSearch {
    /// A search over the scenario's default space, replaying the top 10 in full.
    pub fn new(input: ScenarioInput) -> Self {
        PlanSearch {
            input,
            top: 10,
            gpus: None,
            tp: Vec::new(),
            pp: Vec::new(),
            cp: Vec::new(),
            ep: Vec::new(),
            micro_batch: Vec::new(),
            zero: Vec::new(),
            schedules: Vec::new(),
            recompute: Vec::new(),
        }
    }

    /// Plans to replay in full (fast mode ranks all of them).
    pub fn with_top(mut self, top: usize) -> Self {
        self.top = top;
        self
    }

    /// GPUs to plan for (default: the whole cluster).
    pub fn with_gpus(mut self, gpus: u64) -> Self {
        self.gpus = Some(gpus);
        self
    }

    /// TP degrees to try.
    pub fn with_tp(mut self, tp: &[u64]) -> Self {
        self.tp = tp.to_vec();
        self
    }

    /// PP degrees to try.
    pub fn with_pp(mut self, pp: &[u64]) -> Self {
        self.pp = pp.to_vec();
        self
    }

    /// CP degrees to try (default: 1 and the scenario's).
    pub fn with_cp(mut self, cp: &[u64]) -> Self {
        self.cp = cp.to_vec();
        self
    }

    /// EP degrees to try (MoE models).
    pub fn with_ep(mut self, ep: &[u64]) -> Self {
        self.ep = ep.to_vec();
        self
    }

    /// Micro-batch sizes to try.
    pub fn with_micro_batch(mut self, micro_batch: &[u64]) -> Self {
        self.micro_batch = micro_batch.to_vec();
        self
    }

    /// ZeRO stages to try (each 0 to 3).
    pub fn with_zero(mut self, zero: &[u8]) -> Result<Self> {
        if let Some(z) = zero.iter().find(|&&z| z > 3) {
            return Err(Error::invalid(format!("--zero: {z} is not 0, 1, 2 or 3")));
        }
        self.zero = zero.to_vec();
        Ok(self)
    }

    /// Pipeline schedules to try (1F1B is always tried).
    pub fn with_schedules(mut self, schedules: &[ScheduleKind]) -> Self {
        self.schedules = schedules.to_vec();
        self
    }

    /// Recompute policies to try.
    pub fn with_recompute(mut self, recompute: &[Recompute]) -> Self {
        self.recompute = recompute.to_vec();
        self
    }

    /// The search options for a resolved scenario.
    pub fn options(&self, s: &Scenario) -> PlanOptions {
        let mut o = PlanOptions::for_scenario(s, self.top);
        o.gpus = self.gpus;
        self.restrict(&mut o.space);
        o
    }

    fn restrict(&self, sp: &mut SearchSpace) {
        fn pick<T: Clone>(dst: &mut Vec<T>, src: &[T]) {
            if !src.is_empty() {
                *dst = src.to_vec();
            }
        }
        pick(&mut sp.tp, &self.tp);
        pick(&mut sp.pp, &self.pp);
        pick(&mut sp.cp, &self.cp);
        pick(&mut sp.ep, &self.ep);
        pick(&mut sp.micro_batch, &self.micro_batch);
        pick(&mut sp.zero, &self.zero);
        pick(&mut sp.schedules, &self.schedules);
        pick(&mut sp.recompute, &self.recompute);
    }

    /// Ranks every plan in fast mode and replays the top K.
    pub fn run(&self) -> Result<PlanOutputs> {
        let (scenario, mut provenance) = self.input.clone().resolve_with_provenance("plan")?;
        // `stack.zero3.*` under a plan that is not ZeRO-3 acts on the ZeRO-3 candidates;
        // with ZeRO-3 left out of the search it acts on nothing.
        if !self.zero.is_empty() && !self.zero.contains(&3) {
            scenario.check_own_plan()?;
        }
        let report = plan::search(&scenario, &self.options(&scenario))?;
        provenance.add_scenario(&scenario.network.label(), scenario.faults.seed);
        provenance.set("top", self.top);
        if let Some(g) = self.gpus {
            provenance.set("gpus", g);
        }
        let list = |v: Vec<String>| v.join(",");
        let restrictions = [
            ("tp", list(self.tp.iter().map(u64::to_string).collect())),
            ("pp", list(self.pp.iter().map(u64::to_string).collect())),
            ("cp", list(self.cp.iter().map(u64::to_string).collect())),
            ("ep", list(self.ep.iter().map(u64::to_string).collect())),
            (
                "micro_batch",
                list(self.micro_batch.iter().map(u64::to_string).collect()),
            ),
            ("zero", list(self.zero.iter().map(u8::to_string).collect())),
            (
                "schedule",
                list(self.schedules.iter().map(|s| format!("{s:?}")).collect()),
            ),
            (
                "recompute",
                list(self.recompute.iter().map(|r| format!("{r:?}")).collect()),
            ),
        ];
        for (k, v) in restrictions.into_iter().filter(|(_, v)| !v.is_empty()) {
            provenance.set(k, v);
        }
        Ok(PlanOutputs {
            scenario,
            report,
            provenance,
        })
    }
}

/// A finished plan search.
#[derive(Debug, Clone)]
pub struct PlanOutputs {
    pub scenario: Scenario,
    pub report: PlanReport,
    /// What produced the search (`plans.json`'s `provenance`, `plans.provenance.json`).
    pub provenance: Provenance,
}

const PLANS_CSV: &str = "plans.csv";
const PLANS_JSON: &str = "plans.json";
const PLANS_PROVENANCE: &str = "plans.provenance.json";

impl PlanOutputs {
    /// Writes `plans.csv`, `plans.json` and `plans.provenance.json` (what produced
    /// `plans.csv`) into `dir`.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        let staging = crate::report::staging::Staging::new(dir)?;
        let at = |name: &str| staging.path().join(name);
        std::fs::write(at(PLANS_CSV), plan::plans_csv(&self.report))
            .map_err(Error::write(&at(PLANS_CSV)))?;
        let json = json_with(&self.report, Some(&self.provenance)).map_err(Error::internal)?;
        std::fs::write(at(PLANS_JSON), json).map_err(Error::write(&at(PLANS_JSON)))?;
        std::fs::write(at(PLANS_PROVENANCE), self.provenance.to_json())
            .map_err(Error::write(&at(PLANS_PROVENANCE)))?;
        let names = [PLANS_CSV, PLANS_JSON, PLANS_PROVENANCE].map(String::from);
        Ok(staging.commit(&names, &names)?)
    }
}
