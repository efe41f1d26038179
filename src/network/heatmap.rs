//! Draws the link-utilization heat map (link kind x position, colour = utilization) on any
//! plotters drawing area. No text: titles and labels belong to `report`, which owns fonts.
//!
//! Must not: compute statistics (see [`super::links::utilization_matrix`]).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::topology::LinkKind;

/// Colour for a utilization in [0, 1] (clamped): white -> yellow -> red.
pub fn heat_color(u: f64) -> RGBColor {
    let u = u.clamp(0.0, 1.0);
    if u < 0.5 {
        let k = u * 2.0;
        RGBColor(255, 255, (255.0 * (1.0 - k)) as u8)
    } else {
        let k = (u - 0.5) * 2.0;
        RGBColor(255, (255.0 * (1.0 - k)) as u8, 0)
    }
}

/// Fills `area` with one row of cells per link kind.
pub fn draw_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    matrix: &[(LinkKind, Vec<f64>)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    area.fill(&WHITE)?;
    let (w, h) = area.dim_in_pixel();
    let rows = matrix.len().max(1) as u32;
    for (r, (_, row)) in matrix.iter().enumerate() {
        let cols = row.len().max(1) as u32;
        for (c, &u) in row.iter().enumerate() {
            let (x0, x1) = (c as u32 * w / cols, (c as u32 + 1) * w / cols);
            let (y0, y1) = (r as u32 * h / rows, (r as u32 + 1) * h / rows);
            area.draw(&Rectangle::new(
                [(x0 as i32, y0 as i32), (x1 as i32, y1 as i32)],
                heat_color(u).filled(),
            ))?;
        }
    }
    Ok(())
}
