//! Link statistics of a contention-mode step: `links.csv` and the link-utilization heat
//! map (`link_heatmap.png` / `.svg`).
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
use crate::units::Nanos;

pub const LINKS_CSV: &str = "links.csv";
pub const HEATMAP: &str = "link_heatmap";

/// Cells per heat-map row (links of a tier are averaged in groups to fit).
pub const HEATMAP_COLS: usize = 128;

/// Every file name this module may write.
pub fn file_names() -> Vec<String> {
    vec![
        LINKS_CSV.to_string(),
        format!("{HEATMAP}.png"),
        format!("{HEATMAP}.svg"),
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
        Ok(names)
    }
}
