//! Comparison chart: bars of time to train and cost per point, one panel each.
//!
//! Draws shapes only, no text: plotters needs a registered font for text, and the
//! embedded font arrives with the report work (`src/report`). Once it lands, add titles
//! and labels here (this is the only function to change). Must not compute results.

use std::path::Path;

use plotters::prelude::*;

use super::compare::CompareTable;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes `path` (SVG): left panel time to train, right panel cost; one bar per point in
/// point order, heights relative to the largest value; failed points leave a gap.
pub fn compare_chart(t: &CompareTable, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, 2));
    let series: [Vec<f64>; 2] = [
        t.rows
            .iter()
            .map(|r| r.figures.as_ref().map_or(0.0, |f| f.time_to_train_days))
            .collect(),
        t.rows
            .iter()
            .map(|r| r.figures.as_ref().map_or(0.0, |f| f.cost_usd))
            .collect(),
    ];
    for (panel, values) in panels.iter().zip(series.iter()) {
        let max = values.iter().cloned().fold(0.0f64, f64::max);
        let (w, h) = panel.dim_in_pixel();
        let (w, h) = (w as i32, h as i32);
        let n = values.len().max(1) as i32;
        let slot = (w - 40) / n;
        for (i, v) in values.iter().enumerate() {
            if max <= 0.0 {
                break;
            }
            let bar_h = ((v / max) * (h - 40) as f64) as i32;
            let x0 = 20 + i as i32 * slot + slot / 8;
            let x1 = 20 + (i as i32 + 1) * slot - slot / 8;
            let color = PALETTE[i % PALETTE.len()];
            panel
                .draw(&Rectangle::new(
                    [(x0, h - 20 - bar_h), (x1, h - 20)],
                    color.filled(),
                ))
                .map_err(|e| e.to_string())?;
        }
        panel
            .draw(&PathElement::new(
                vec![(20, h - 20), (w - 20, h - 20)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
