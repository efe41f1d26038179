//! Pure layout shared by the charts, in pixels (y grows downward): text measured in the
//! embedded font, legends that wrap (long labels too), text labels placed so that none
//! overprints another or a bar, and "nice" axis steps.
//!
//! Nothing here draws; the chart files draw what these functions return, so the
//! placement rules are tested without rendering.

use plotters::style::{FontDesc, FontFamily, FontStyle, RGBColor};

use crate::report::fonts;

/// Width and height in pixels of `text` in the embedded font at `size` px (a rough
/// estimate if the font cannot be registered, which would fail the render anyway).
pub(crate) fn text_size(text: &str, size: f64) -> (i32, i32) {
    let estimate = || {
        (
            (text.chars().count() as f64 * size * 0.6) as i32,
            size as i32,
        )
    };
    if fonts::ensure_registered().is_err() {
        return estimate();
    }
    let font = FontDesc::new(FontFamily::Name(fonts::FAMILY), size, FontStyle::Normal);
    font.box_size(text)
        .map_or_else(|_| estimate(), |(w, h)| (w as i32, h as i32))
}

/// An axis-aligned text or bar box, `[x0, x1) × [y0, y1)` in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextBox {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl TextBox {
    /// A box of `w` × `h` centred horizontally on `cx` whose bottom is at `bottom`.
    pub fn above(cx: i32, bottom: i32, (w, h): (i32, i32)) -> TextBox {
        TextBox {
            x0: cx - w / 2,
            y0: bottom - h,
            x1: cx - w / 2 + w,
            y1: bottom,
        }
    }

    pub fn overlaps(&self, o: &TextBox) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    fn shifted(self, dy: i32) -> TextBox {
        TextBox {
            y0: self.y0 + dy,
            y1: self.y1 + dy,
            ..self
        }
    }
}

/// Places `wanted` boxes in order: each where it wants to be or, when it would overlap an
/// obstacle or a box placed before it, moved vertically (up for `up`, else down) just
/// clear of what it hit, with `gap` pixels between, until it overlaps nothing.
pub(crate) fn place_clear(
    wanted: &[TextBox],
    obstacles: &[TextBox],
    up: bool,
    gap: i32,
) -> Vec<TextBox> {
    let mut placed: Vec<TextBox> = Vec::with_capacity(wanted.len());
    for &w in wanted {
        let mut b = w;
        // Each move clears one box for good, so this ends within obstacles + placed moves.
        for _ in 0..=obstacles.len() + placed.len() {
            let Some(hit) = obstacles
                .iter()
                .chain(&placed)
                .filter(|o| o.overlaps(&b))
                .max_by_key(|o| if up { -o.y0 } else { o.y1 })
            else {
                break;
            };
            b = if up {
                b.shifted(hit.y0 - gap - b.y1)
            } else {
                b.shifted(hit.y1 + gap - b.y0)
            };
        }
        placed.push(b);
    }
    placed
}

/// Legend text size and line pitch (pixels).
pub(crate) const LEGEND_FONT: f64 = 17.0;
pub(crate) const LEGEND_LINE: i32 = 24;
/// Swatch width plus the space before its label, and the space after an entry.
const SWATCH: i32 = 22;
const AFTER: i32 = 24;

/// One legend entry placed: swatch at `(x, y)` (its vertical centre), label lines to its
/// right, one [`LEGEND_LINE`] apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LegendItem {
    pub x: i32,
    pub y: i32,
    pub lines: Vec<String>,
    pub color: RGBColor,
}

/// Lays `(label, colour)` entries out left to right from `left` within `width` pixels,
/// starting a new line when one does not fit; a label wider than the whole line is
/// wrapped at spaces (or anywhere, for a word that long); an entry with an empty label
/// only starts a new line. Returns the items and the height they take.
pub(crate) fn legend_layout(
    entries: &[(String, RGBColor)],
    width: i32,
    left: i32,
    measure: impl Fn(&str) -> i32,
) -> (Vec<LegendItem>, i32) {
    let room = (width - 10 - left - SWATCH).max(40);
    let (mut x, mut y, mut row_lines) = (left, 14, 1);
    let mut items = Vec::with_capacity(entries.len());
    for (label, color) in entries {
        if label.is_empty() {
            if x > left {
                (x, y, row_lines) = (left, y + LEGEND_LINE * row_lines, 1);
            }
            continue;
        }
        let lines = wrap(label, room, &measure);
        let text_w = lines.iter().map(|l| measure(l)).max().unwrap_or(0);
        let w = SWATCH + text_w + AFTER;
        if x > left && (x + w > width - 10 || lines.len() > 1) {
            x = left;
            y += LEGEND_LINE * row_lines;
            row_lines = 1;
        }
        row_lines = row_lines.max(lines.len() as i32);
        items.push(LegendItem {
            x,
            y,
            lines,
            color: *color,
        });
        x += w;
    }
    let height = if items.is_empty() {
        0
    } else {
        y + LEGEND_LINE * (row_lines - 1) + 14
    };
    (items, height)
}

/// `text` in lines no wider than `max` pixels, broken at spaces where possible.
pub(crate) fn wrap(text: &str, max: i32, measure: &impl Fn(&str) -> i32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let joined = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if measure(&joined) <= max {
            line = joined;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        // A word wider than a line is cut into pieces that fit.
        for c in word.chars() {
            line.push(c);
            if measure(&line) > max && line.chars().count() > 1 {
                line.pop();
                lines.push(std::mem::take(&mut line));
                line.push(c);
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// The 1, 2 or 5 × 10^k step nearest above `raw` (a tick step for a range of `raw` × 5).
pub(crate) fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let exp = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * exp)
        .find(|&v| v >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8 px per character, as a stand-in for the font.
    fn m(s: &str) -> i32 {
        8 * s.chars().count() as i32
    }

    #[test]
    fn placed_labels_never_overlap_each_other_or_obstacles() {
        // Three labels wanted at the same spot above a bar, next to a taller bar.
        let bar = TextBox {
            x0: 0,
            y0: 100,
            x1: 20,
            y1: 200,
        };
        let tall = TextBox {
            x0: 22,
            y0: 60,
            x1: 40,
            y1: 200,
        };
        let wanted = vec![TextBox::above(10, 98, (30, 12)); 3];
        let placed = place_clear(&wanted, &[bar, tall], true, 2);
        for (i, a) in placed.iter().enumerate() {
            assert!(!a.overlaps(&bar) && !a.overlaps(&tall), "{a:?}");
            for b in &placed[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} {b:?}");
            }
        }
        // The first clears the taller bar it spans; the others stack above it.
        assert_eq!(placed[0].y1, 58);
        assert!(placed[1].y1 <= placed[0].y0 - 2);
    }

    #[test]
    fn labels_that_fit_stay_where_wanted() {
        let wanted = [
            TextBox::above(10, 50, (10, 10)),
            TextBox::above(40, 50, (10, 10)),
        ];
        assert_eq!(place_clear(&wanted, &[], true, 2), wanted);
        let down = place_clear(&[wanted[0], wanted[0]], &[], false, 3);
        assert_eq!(down[1].y0, down[0].y1 + 3);
    }

    #[test]
    fn legend_wraps_entries_and_long_labels() {
        let entries: Vec<(String, RGBColor)> = ["a", "bb", "ccc"]
            .iter()
            .map(|s| (s.repeat(10), RGBColor(0, 0, 0)))
            .collect();
        let (items, h) = legend_layout(&entries, 300, 10, m);
        assert_eq!(items.len(), 3);
        // 80 + 46 px for the first; the second (160 + 46) does not fit beside it.
        assert_eq!((items[0].y, items[1].y), (14, 14 + LEGEND_LINE));
        assert_eq!(h, items[2].y + 14);
        let long = vec![("word ".repeat(20).trim().to_string(), RGBColor(0, 0, 0))];
        let (items, h) = legend_layout(&long, 300, 10, m);
        assert_eq!(items.len(), 1);
        assert!(items[0].lines.len() > 1);
        assert_eq!(items[0].lines.join(" "), long[0].0);
        assert!(items[0].lines.iter().all(|l| m(l) <= 300 - 20 - SWATCH));
        assert_eq!(h, 14 + LEGEND_LINE * (items[0].lines.len() as i32 - 1) + 14);
    }

    #[test]
    fn an_empty_label_starts_a_new_line() {
        let e = |s: &str| (s.to_string(), RGBColor(0, 0, 0));
        let (items, _) = legend_layout(&[e("a"), e(""), e("b"), e(""), e("")], 300, 10, m);
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].y, items[1].y), (14, 14 + LEGEND_LINE));
        assert_eq!(items[1].x, 10);
    }

    #[test]
    fn wrap_cuts_words_longer_than_a_line() {
        let lines = wrap("abcdefghij", 32, &m);
        assert_eq!(lines, ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 32, &m), [""]);
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(1.2), 2.0);
        assert_eq!(nice_step(30.0), 50.0);
    }
}
