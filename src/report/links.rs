//! Link statistics of a contention-mode step: `links.csv`, the link-utilization heat
//! map (`link_heatmap.png` / `.svg`), and link use over time (`links-timeseries.csv`,
//! `link_timeline.png` / `.svg`). Analytic mode has no per-link flows, so it writes none
//! of these.
//!
//! The data come from the flow network ([`crate::network::links`]); this module only lays
//! them out, and [`super::charts::heatmap`] draws them. [`LinkReport`] is captured right
//! after the replay and handed to the report writer through
//! [`super::ReportOptions::links`], so the files are staged and committed with the others,
//! whole or not at all.

use std::fs;
use std::path::Path;

use super::ReportError;
use super::charts;
use crate::network::FlowNetwork;
use crate::network::links::HeatRow;
use crate::network::timeseries::{OUTPUT_BINS, TimeSeries};
use crate::units::Nanos;

pub const LINKS_CSV: &str = "links.csv";
pub const HEATMAP: &str = "link_heatmap";
pub const TIMESERIES_CSV: &str = "links-timeseries.csv";
pub const TIMELINE: &str = "link_timeline";

/// The header of `links-timeseries.csv`.
pub const TIMESERIES_HEADER: &str = "scope,series,links,bin,t_start_ms,t_end_ms,utilization";

/// Cells per heat-map row (links of a tier are averaged in groups to fit).
pub const HEATMAP_COLS: usize = 128;

/// Every file name this module may write.
pub fn file_names() -> Vec<String> {
    vec![
        LINKS_CSV.to_string(),
        format!("{HEATMAP}.png"),
        format!("{HEATMAP}.svg"),
        TIMESERIES_CSV.to_string(),
        format!("{TIMELINE}.png"),
        format!("{TIMELINE}.svg"),
    ]
}

/// What the flow network measured, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkReport {
    /// `links.csv`, rendered.
    pub csv: String,
    pub rows: Vec<HeatRow>,
    /// Scenario name, for the chart title.
    pub name: String,
    /// Utilization over time per tier (and per link with `--links all`), when the flow
    /// network recorded it.
    pub series: Option<TimeSeries>,
}

impl LinkReport {
    /// Captures `net`'s counters over a step of length `step` (call after
    /// [`FlowNetwork::finish_accounting`]).
    pub fn new(net: &FlowNetwork, step: Nanos, name: &str) -> Self {
        let mut csv = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = net.write_links_csv(step, &mut csv);
        LinkReport {
            csv: String::from_utf8_lossy(&csv).into_owned(),
            rows: net.heat_rows(step, HEATMAP_COLS),
            name: name.to_string(),
            series: net.usage_series(step, OUTPUT_BINS),
        }
    }

    /// Writes `links.csv` and, with `charts`, the heat map into `dir`; returns the names.
    pub fn write(&self, dir: &Path, charts: bool) -> Result<Vec<String>, ReportError> {
        let path = dir.join(LINKS_CSV);
        fs::write(&path, &self.csv).map_err(|e| ReportError::io(&path, e))?;
        let mut names = vec![LINKS_CSV.to_string()];
        if charts && !self.rows.is_empty() {
            names.extend(charts::heatmap::write(dir, HEATMAP, self)?);
        }
        if let Some(series) = &self.series {
            let path = dir.join(TIMESERIES_CSV);
            fs::write(&path, timeseries_csv(series)).map_err(|e| ReportError::io(&path, e))?;
            names.push(TIMESERIES_CSV.to_string());
            if charts && !series.tiers.is_empty() {
                names.extend(charts::link_timeline::write(
                    dir, TIMELINE, series, &self.name,
                )?);
            }
        }
        Ok(names)
    }
}

/// `links-timeseries.csv`: one row per series and time bin; `scope` is `tier` (series
/// `nvlink up`, `leaf-spine down`, ...; `links` = links averaged) or `link` (series
/// `<id> <src>><dst>`, the id of `links.csv`); utilization = bytes moved in the bin over
/// (capacity of the series' links × bin length).
pub fn timeseries_csv(s: &TimeSeries) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{TIMESERIES_HEADER}");
    let rows = s.tiers.iter().map(|r| ("tier", r));
    for (scope, r) in rows.chain(s.links.iter().map(|r| ("link", r))) {
        for (b, u) in r.values.iter().enumerate() {
            let (t0, t1) = s.bin_range(b);
            let _ = writeln!(
                out,
                "{scope},{},{},{b},{:.6},{:.6},{:.6}",
                r.name,
                r.links,
                t0 * 1e-6,
                t1 * 1e-6,
                u
            );
        }
    }
    out
}
