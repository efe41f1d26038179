//! Several jobs on one cluster: the `jobs` section of `summary.json` and the table
//! `clustersim run` prints (each job's step alone and shared, its slowdown, and the links
//! where the jobs interfere).
//!
//! Lays out what `sim::jobs` measured; must not measure anything.

use serde::Serialize;

use crate::config::jobs::JobsSpec;
use crate::sim::jobs::JobsResult;

/// One job in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub name: String,
    pub model: String,
    /// `tp x pp x dp` (and `cp`, `ep` when above 1).
    pub plan: String,
    pub gpus: u32,
    /// Its nodes, in rank order.
    pub nodes: Vec<u32>,
    /// Step time of the job alone on its GPUs.
    pub alone_step_s: f64,
    /// Step time while every job runs.
    pub shared_step_s: f64,
    /// `shared_step_s / alone_step_s`.
    pub slowdown: f64,
    /// Exposed data-parallel communication, alone and shared.
    pub alone_dp_exposed_s: f64,
    pub shared_dp_exposed_s: f64,
}

/// A link more than one job uses, in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedLinkRow {
    /// The link's id in `links.csv`.
    pub id: u32,
    pub kind: String,
    pub src: String,
    pub dst: String,
    /// `direction,node,gpu,rail,pod,leaf,spine,core` as in `links.csv`.
    pub place: String,
    /// Bytes each job moves over it per step, in job order.
    pub bytes: Vec<f64>,
}

/// The `jobs` section of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobsReport {
    pub placement: String,
    pub background: crate::config::jobs::Background,
    pub jobs: Vec<JobRow>,
    /// Links carrying more than one job's traffic.
    pub shared_links: usize,
    /// The busiest of them (most bytes of all jobs), at most ten.
    pub top_shared_links: Vec<SharedLinkRow>,
}

impl JobsReport {
    pub fn new(spec: &JobsSpec, r: &JobsResult) -> Self {
        let jobs = spec
            .jobs
            .iter()
            .zip(&r.jobs)
            .map(|(js, j)| {
                let p = &js.scenario.parallelism;
                let mut plan = format!("tp{} pp{} dp{}", p.tp, p.pp, p.dp);
                if p.cp > 1 {
                    plan.push_str(&format!(" cp{}", p.cp));
                }
                if p.ep > 1 {
                    plan.push_str(&format!(" ep{}", p.ep));
                }
                JobRow {
                    name: j.name.clone(),
                    model: js.scenario.model.name.clone(),
                    plan,
                    gpus: j.gpus,
                    nodes: j.nodes.clone(),
                    alone_step_s: j.alone.step_time_s,
                    shared_step_s: j.shared.step_time_s,
                    slowdown: j.slowdown(),
                    alone_dp_exposed_s: j.alone.breakdown_s.dp_exposed,
                    shared_dp_exposed_s: j.shared.breakdown_s.dp_exposed,
                }
            })
            .collect();
        JobsReport {
            placement: spec.placement.label().to_string(),
            background: spec.background.clone(),
            jobs,
            shared_links: r.shared_link_count,
            top_shared_links: r
                .shared_links
                .iter()
                .map(|l| SharedLinkRow {
                    id: l.id,
                    kind: l.kind.label().to_string(),
                    src: l.src.clone(),
                    dst: l.dst.clone(),
                    place: l.place.csv(),
                    bytes: l.bytes.clone(),
                })
                .collect(),
        }
    }

    /// The table `clustersim run` prints.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "jobs ({} placement, sharing the fabric in the contention model):",
            self.placement
        );
        let _ = writeln!(
            out,
            "  {:<10} {:<12} {:<14} {:>5}  {:>9}  {:>9}  {:>8}",
            "job", "model", "plan", "GPUs", "alone", "shared", "slowdown"
        );
        for j in &self.jobs {
            let _ = writeln!(
                out,
                "  {:<10} {:<12} {:<14} {:>5}  {:>7.3} s  {:>7.3} s  {:>7.3}x",
                j.name, j.model, j.plan, j.gpus, j.alone_step_s, j.shared_step_s, j.slowdown
            );
        }
        if self.top_shared_links.is_empty() {
            let _ = writeln!(out, "  no link carries traffic of more than one job");
        } else {
            let _ = writeln!(
                out,
                "  {} links carry traffic of more than one job; the busiest:",
                self.shared_links
            );
            for l in self.top_shared_links.iter().take(5) {
                let gb: Vec<String> = l.bytes.iter().map(|b| format!("{:.2}", b / 1e9)).collect();
                let _ = writeln!(
                    out,
                    "    link {:<5} {:<10} {:>9} -> {:<9} GB per job: {}",
                    l.id,
                    l.kind,
                    l.src,
                    l.dst,
                    gb.join(" / ")
                );
            }
        }
        out
    }
}
