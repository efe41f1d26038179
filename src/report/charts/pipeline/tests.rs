//! Tests of the pipeline chart: rows and blocks from the trace, span merging and
//! thinning, block labels, and the PNG and SVG showing the same recompute.

use super::*;
use crate::engine::TraceRanks;
use crate::report::charts::tests::traced;
use plotters::prelude::*;

#[test]
fn pipeline_rows_have_one_block_per_micro_batch_and_pass() {
    let r = traced(TraceRanks::Some(vec![0, 2]));
    let rows = pipeline_rows(&r);
    assert_eq!(rows.iter().map(|r| r.rank).collect::<Vec<_>>(), vec![0, 2]);
    let m = r.graph.micro_batches as usize;
    for row in &rows {
        assert_eq!(row.blocks.len(), 2 * m, "stage {}", row.stage);
        for w in row.blocks.windows(2) {
            assert!(w[0].end <= w[1].start, "blocks overlap: {w:?}");
        }
    }
    // Stage 0 starts with forward of micro-batch 0; the last stage's first backward
    // follows its first forward directly (1F1B).
    assert_eq!(rows[0].blocks[0].kind, Kind::Forward);
    assert_eq!(rows[1].blocks[1].kind, Kind::Backward);
}

#[test]
fn merge_spans_joins_close_spans_of_one_kind() {
    let s = |start, end, kind| Span { start, end, kind };
    let spans = [
        s(0, 10, Kind::Comm),
        s(11, 20, Kind::Comm),
        s(40, 50, Kind::Comm),
        s(50, 60, Kind::Forward),
    ];
    let merged = merge_spans(&spans, 1);
    assert_eq!(
        merged,
        vec![
            s(0, 20, Kind::Comm),
            s(40, 50, Kind::Comm),
            s(50, 60, Kind::Forward)
        ]
    );
    assert_eq!(merge_spans(&spans, 0).len(), 4);
}

fn span(start: Nanos, end: Nanos, kind: Kind) -> Span {
    Span { start, end, kind }
}

fn block(start: Nanos, end: Nanos, micro_batch: u32, kind: Kind) -> Block {
    Block {
        start,
        end,
        micro_batch,
        chunk: 0,
        kind,
    }
}

#[test]
fn thinning_keeps_every_block_and_the_time_drawn_close_to_the_time_spent() {
    // 10 ns per pixel. Two backward blocks of 100 px; the first holds ten 0.3-px
    // recompute ops, the second one 0.2-px op; a 5-px optimizer op stays as it is.
    let blocks = [
        block(0, 1000, 0, Kind::Backward),
        block(2000, 3000, 1, Kind::Backward),
    ];
    let mut spans: Vec<Span> = (0..10u64)
        .map(|i| span(i * 80, i * 80 + 3, Kind::Recompute))
        .collect();
    spans.push(span(2500, 2502, Kind::Recompute));
    spans.push(span(4000, 4050, Kind::Optimizer));
    let thin = thin_spans(&spans, &blocks, 10.0);
    let recompute_in = |b: &Block| {
        thin.iter()
            .filter(|s| s.kind == Kind::Recompute && s.start >= b.start && s.start < b.end)
            .count()
    };
    // A pixel's worth every four ops (12 ns), then the remainder: three spans.
    assert_eq!(recompute_in(&blocks[0]), 3, "{thin:?}");
    assert_eq!(recompute_in(&blocks[1]), 1, "{thin:?}");
    assert!(thin.contains(&span(4000, 4050, Kind::Optimizer)));
    let drawn: Nanos = thin
        .iter()
        .filter(|s| s.kind == Kind::Recompute)
        .map(|s| s.end - s.start)
        .sum();
    assert_eq!(drawn, 32, "all recompute time kept, not a pixel per op");
    assert_eq!(
        columns(3.2, 3.7),
        (3, 4),
        "a sub-pixel span is one column wide"
    );
    assert_eq!(columns(3.2, 6.0), (3, 6));
}

#[test]
fn block_numbers_are_shown_per_pass_and_length_without_gaps() {
    // Forward blocks alternating 14.6 and 15.2 px: one-digit numbers need 15 px.
    let blocks: Vec<Block> = (0..12)
        .map(|i| block(i * 100, i * 100 + 50, i as u32, Kind::Forward))
        .collect();
    let widths: Vec<f64> = (0..12)
        .map(|i| if i % 2 == 0 { 14.6 } else { 15.2 })
        .collect();
    let shown = labelled_blocks(&blocks, &widths);
    // All ten one-digit numbers, none of the two-digit ones (26 px).
    assert_eq!(shown, (0..12).map(|i| i < 10).collect::<Vec<_>>());
    // Narrow blocks: none at all.
    assert!(labelled_blocks(&blocks, &[8.0; 12]).iter().all(|s| !s));
}

/// `(x, y, width, height, fill)` of every filled rectangle of an SVG.
fn svg_rects(svg: &str) -> Vec<(i32, i32, i32, i32, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let i = tag.find(&key)? + key.len();
        Some(tag[i..].split('"').next()?.to_string())
    };
    svg.split("<rect")
        .skip(1)
        .filter_map(|t| {
            let n = |k| attr(t, k)?.parse::<i32>().ok();
            Some((
                n("x")?,
                n("y")?,
                n("width")?,
                n("height")?,
                attr(t, "fill")?,
            ))
        })
        .collect()
}

#[test]
fn png_and_svg_show_recompute_on_every_block_that_has_it() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/default.yaml");
    let s = crate::config::load_scenario(Some(std::path::Path::new(path)), &[]).unwrap();
    let grid = crate::plan::RankGrid::new(&s.parallelism);
    let step = crate::sim::StepOptions {
        trace: TraceRanks::Some(representative_ranks(&grid)),
        ..Default::default()
    };
    let r = crate::sim::simulate_step(&s, &step).unwrap();
    let summary = Summary::new(&s, &r.metrics);
    let chart = chart(&summary, &r, TimeUnit::for_step(r.replay.step_time)).unwrap();
    let with_recompute: usize = chart
        .rows
        .iter()
        .map(|row| {
            let has = |b: &&Block| {
                row.spans
                    .iter()
                    .any(|s| s.kind == Kind::Recompute && s.start >= b.start && s.end <= b.end)
            };
            row.blocks.iter().filter(has).count()
        })
        .sum();
    // Selective recompute: every backward block of the 4 stages x 16 micro-batches.
    assert_eq!(with_recompute, 64);

    crate::report::fonts::ensure_registered().unwrap();
    let (w, h) = crate::report::charts::Chart::size(&chart);
    let mut png = vec![0u8; (w * h * 3) as usize];
    let mut svg = String::new();
    {
        let root = BitMapBackend::with_buffer(&mut png, (w, h)).into_drawing_area();
        crate::report::charts::Chart::draw(&chart, &root).unwrap();
        root.present().unwrap();
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        crate::report::charts::Chart::draw(&chart, &root).unwrap();
        root.present().unwrap();
    }
    let rects = svg_rects(&svg);
    let hex = |c: RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
    let (backward, recompute) = (hex(Kind::Backward.color()), hex(Kind::Recompute.color()));
    // Blocks, not the legend's swatch.
    let blocks: Vec<_> = rects
        .iter()
        .filter(|r| r.4 == backward && r.3 > 20)
        .collect();
    assert_eq!(blocks.len(), 64);
    let in_svg = blocks
        .iter()
        .filter(|b| {
            rects.iter().any(|r| {
                r.4 == recompute && r.2 >= 1 && r.1 == b.1 && r.0 >= b.0 && r.0 < b.0 + b.2
            })
        })
        .count();
    let rgb = Kind::Recompute.color();
    let in_png = blocks
        .iter()
        .filter(|b| {
            (b.1..b.1 + b.3).any(|y| {
                (b.0..b.0 + b.2).any(|x| {
                    let i = 3 * (y as usize * w as usize + x as usize);
                    png[i..i + 3] == [rgb.0, rgb.1, rgb.2]
                })
            })
        })
        .count();
    assert_eq!((in_png, in_svg), (with_recompute, with_recompute));
}
