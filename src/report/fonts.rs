//! The font charts are drawn with, compiled into the binary.
//!
//! plotters' `ab_glyph` backend knows no system fonts: every family a chart names must be
//! registered first. We embed DejaVu Sans (license in `assets/fonts/`) and register it once
//! under the generic family names plotters uses, so charts render identically on any
//! machine, with or without fonts installed.

use std::sync::OnceLock;

use plotters::style::FontStyle;

/// DejaVu Sans 2.37, unmodified (Bitstream Vera license, see `assets/fonts/`).
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name charts should ask for.
pub const FAMILY: &str = "sans-serif";

/// Families registered to the embedded font, so any default plotters picks resolves.
const FAMILIES: [&str; 3] = ["sans-serif", "serif", "monospace"];

static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the embedded font with plotters (idempotent, thread-safe).
pub fn ensure_registered() -> Result<(), String> {
    REGISTERED
        .get_or_init(|| {
            for family in FAMILIES {
                for style in [FontStyle::Normal, FontStyle::Bold] {
                    plotters::style::register_font(family, style, DEJAVU_SANS)
                        .map_err(|_| format!("the embedded font is not a valid TTF ({family})"))?;
                }
            }
            Ok(())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::style::{FontDesc, FontFamily};

    #[test]
    fn embedded_font_registers_and_measures_text() {
        ensure_registered().unwrap();
        ensure_registered().unwrap();
        let font = FontDesc::new(FontFamily::SansSerif, 20.0, FontStyle::Normal);
        let (w, h) = font.box_size("step time").unwrap();
        assert!(w > 50 && h > 5, "{w}x{h}");
    }
}
