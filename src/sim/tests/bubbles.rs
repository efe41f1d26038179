//! Pipeline bubbles against their closed forms: with free communication and balanced
//! stages, the replays of GPipe/1F1B, interleaved, ZB-H1, ZB-H2 and DualPipe equal the
//! papers' formulas.
#![cfg(test)]

use super::free_replay;
use crate::config::Scenario;
use crate::engine::Replay;
use crate::fixtures::toy_scenario;
use crate::plan::{RankGrid, ScheduleKind};
use crate::schedule::Category;
use crate::sim::{bubble_fraction, build_graph};

/// Replays with free communication and only layer work (no embedding, logits or
/// optimizer), so stages are balanced as the closed forms assume.
fn balanced_bubble(s: &Scenario) -> f64 {
    balanced_replay(s).0
}

/// As [`balanced_bubble`], also returning the replay and the per-micro-batch
/// `(T_F, T_B, T_W)` of one stage (`T_B` the input-gradient pass alone under split
/// schedules).
fn balanced_replay(s: &Scenario) -> (f64, Replay, (f64, f64, f64)) {
    cell_replay(s, None)
}

/// As [`balanced_replay`]; with `cells = Some((f, b, w))` every forward and
/// input-gradient op of a layer block lasts `f` and `b` ns and every weight pass `w`
/// ns, so that passes take the ratios a paper's figure assumes (e.g. `T_F = T_B`).
fn cell_replay(s: &Scenario, cells: Option<(u64, u64, u64)>) -> (f64, Replay, (f64, f64, f64)) {
    let mut graph = build_graph(s);
    for st in &mut graph.stages {
        for w in st.graph.node_weights_mut() {
            if w.layers.0 == u16::MAX {
                w.duration = 0;
            } else if let Some((f, b, wt)) = cells {
                w.duration = match w.category {
                    Category::Forward => f,
                    Category::Backward => b,
                    Category::BackwardWeight => wt,
                    _ => w.duration,
                };
            }
        }
    }
    let grid = RankGrid::new(&s.parallelism);
    let r = free_replay(s, &graph);
    let mut t = (0.0, 0.0, 0.0);
    for w in graph.stages[0].graph.node_weights() {
        if w.micro_batch != 0 || w.chunk != 0 {
            continue;
        }
        let d = w.duration as f64;
        match w.category {
            Category::Forward => t.0 += d,
            Category::Backward => t.1 += d,
            Category::BackwardWeight => t.2 += d,
            _ => {}
        }
    }
    (bubble_fraction(&grid, &r), r, t)
}

/// Per rank (one rank per stage): time without pipeline work over the whole pipeline
/// span (first pass of any stage to last pass of any stage), and idle time between the
/// rank's own first and last pass.
fn idle_times(r: &Replay) -> Vec<(f64, f64)> {
    let first = r
        .ranks
        .iter()
        .map(|s| s.pipeline_first_start)
        .min()
        .unwrap();
    let last = r.ranks.iter().map(|s| s.pipeline_last_end).max().unwrap();
    r.ranks
        .iter()
        .map(|s| {
            let own = (s.stall_at_last_end - s.stall_at_first_start) as f64;
            let edges = (s.pipeline_first_start - first) + (last - s.pipeline_last_end);
            (own + edges as f64, own)
        })
        .collect()
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

/// ZB-H1 (arXiv 2401.10241 Table 2): every stage idles `(p-1)(T_F + T_B - T_W)` over
/// the pipeline span, both with the model's own pass times and with the paper's
/// `T_F = T_B = T_W`.
#[test]
fn zb_h1_bubble_equals_closed_form() {
    for cells in [None, Some((1000, 1000, 8000))] {
        for (p, m) in [(4, 8), (8, 16), (2, 8), (4, 4), (6, 18)] {
            let mut s = toy_scenario(1, p, 1, 4 * p, m);
            s.parallelism.schedule = ScheduleKind::ZbH1;
            let (got, r, (f, b, w)) = cell_replay(&s, cells);
            assert!(w > 0.0 && w <= f && w <= b);
            let bubble = (p - 1) as f64 * (f + b - w);
            for (rank, (idle, _)) in idle_times(&r).into_iter().enumerate() {
                assert_close(idle, bubble, &format!("p={p} m={m} rank {rank}"));
            }
            let want = bubble / (m as f64 * (f + b + w) + bubble);
            assert_close(got, want, &format!("p={p} m={m} fraction"));
            // Strictly below 1F1B's (p-1)/(m+p-1).
            assert!(got < (p - 1) as f64 / (m + p - 1) as f64);
        }
    }
}

/// ZB-H2 (arXiv 2401.10241 §3.1, Table 2): the paper's bubble `(p-1)(T_F + T_B - 2T_W)`
/// is that of its parallelogram — each stage's idle time between its own first and
/// last pass, the largest on stage 0; stage `i` starts `i T_F` after stage 0, and the
/// paper hides that offset by letting the next iteration start without the optimizer's
/// global synchronisation (its post-validation). Zero under the paper's
/// `T_F = T_B = T_W`. Over one step's pipeline span, the head offset `(p-1)T_F` stays:
/// every stage idles `max((p-1)(T_F + T_B - 2T_W), (p-1)T_F)` there.
#[test]
fn zb_h2_bubble_equals_closed_form() {
    for cells in [None, Some((1000, 1000, 8000))] {
        for (p, m) in [(4, 8), (8, 16), (2, 8), (6, 18)] {
            let mut s = toy_scenario(1, p, 1, 4 * p, m);
            s.parallelism.schedule = ScheduleKind::ZbH2;
            let (got, r, (f, b, w)) = cell_replay(&s, cells);
            assert!(w <= f && w <= b);
            let closed = (p - 1) as f64 * (f + b - 2.0 * w);
            if cells.is_some() {
                assert_eq!(closed, 0.0);
            }
            let idle = idle_times(&r);
            for (i, &(whole, own)) in idle.iter().enumerate() {
                // The parallelogram: stage i idles (p-1-i)/(p-1) of stage 0's bubble.
                let want = closed * (p - 1 - i as u64) as f64 / (p - 1) as f64;
                assert_close(own, want, &format!("p={p} m={m} stage {i} own"));
                let offset = (p - 1) as f64 * f;
                assert_close(whole, closed.max(offset), &format!("p={p} m={m} stage {i}"));
            }
            let bubble = closed.max((p - 1) as f64 * f);
            let want = bubble / (m as f64 * (f + b + w) + bubble);
            assert_close(got, want, &format!("p={p} m={m} fraction"));
        }
    }
}

/// DualPipe against DeepSeek-V3 Table 2 (and the `deepseek-ai/DualPipe` README):
/// bubble `(p/2 - 1)(F&B + B - 3W)`, with `F` a forward chunk, `B` a full backward chunk
/// (input and weight gradients, our `T_B + T_W`), `W` its weight part and `F&B` an
/// overlapped forward-and-backward pair.
///
/// What the table measures. The schedule is `DualPipe.step` phase by phase
/// ([`crate::schedule::pipeline::dualpipe`]); with free communication and balanced
/// stages every rank runs `m` forward and `m` backward chunks, `m - P_r` of them as
/// `P_r` overlapped pairs, and in our model a pair costs `F&B = F + B` (the overlap
/// hides communication, not compute, and communication is free here). So every rank
/// computes `m(F + B)`, the pipeline span `T` is the same for all, and the bubble —
/// `T` minus a rank's compute, i.e. its idle time over the span, as for 1F1B's
/// `(p-1)(F+B)` and ZB1P's `(p-1)(F+B-2W)` in the same table — is one number.
///
/// Deriving `T` on a middle rank (`h = p/2 - 1`, no phases 1, 3, 5, 7): its first F0
/// waits for micro-batch 0 to cross the `p/2 - 1` stages before it, `(p/2-1)F`;
/// in phase 6 each of the `p/2 - 1` gradients it waits for from the outer ranks
/// arrives `F&B - B` after it could have started; and its last W ends `(p/2-1)(B - 2W)`
/// before the outer ranks' last W passes. So
/// `T - m(F+B) = (p/2-1)(F + F&B - 2W)`, which is Table 2's `(p/2-1)(F&B + B - 3W)`
/// exactly when `F = B - W` — the equal forward and input-gradient cells of the
/// paper's figure (and of the zero-bubble paper's `T_F = T_B = T_W`); the table writes
/// `B - W` where the schedule waits for forwards. Away from `F = B - W` the bubble is
/// piecewise linear in `(F, B - W, W)`: with the toy model's times (`F` a little under
/// `B - W`) it is `(p/2-1)(F&B + F - 2W)`, `(p/2-1)(B - W - F)` under the table; with
/// `W <= B - W <= F` the middle ranks, which hold their last phase-2 F1 back by one
/// chunk, add one more `F - (B - W)`. Were compute overlapped inside a pair
/// (`F&B < F + B`), ranks would differ by the pairs they run and the table's figure
/// would be the middle ranks' (they run the most pairs); here `F&B = F + B`.
/// (All of this checked against an independent replay of `DualPipe.step`, with
/// `batch_isend_irecv` + wait and free communication: same times, rank by rank, over
/// random `F`, `B`, `W`, `p`, `m`.)
#[test]
fn dualpipe_bubble_equals_table_2() {
    let cases = [
        (2, 4),
        (4, 8),
        (4, 16),
        (6, 12),
        (6, 24),
        (8, 16),
        (8, 20),
        (8, 40),
    ];
    // The table's assumption F = B - W, with W < F and with W = F.
    for w in [4800, 8000] {
        for (p, m) in cases {
            let mut s = toy_scenario(1, p, 1, 4 * p, m);
            s.parallelism.schedule = ScheduleKind::Dualpipe;
            let (got, r, (f, b, wt)) = cell_replay(&s, Some((1000, 1000, w)));
            assert_eq!((f, b, wt), (8000.0, 8000.0, w as f64));
            let (full, fb) = (b + wt, f + b + wt);
            let table = (p / 2 - 1) as f64 * (fb + full - 3.0 * wt);
            for (rank, (idle, _)) in idle_times(&r).into_iter().enumerate() {
                assert_close(idle, table, &format!("p={p} m={m} W={w} rank {rank}"));
            }
            let want = table / (m as f64 * fb + table);
            assert_close(got, want, &format!("p={p} m={m} W={w} fraction"));
        }
    }
    // The model's own pass times: F < B - W, and the replay sits (p/2-1)(B-W-F) under
    // the table (p=8, m=20: F=1.501 ms, B-W=1.859 ms, W=1.129 ms; 11.196 ms of bubble
    // against the table's 12.270 ms).
    for (p, m) in cases {
        let mut s = toy_scenario(1, p, 1, 4 * p, m);
        s.parallelism.schedule = ScheduleKind::Dualpipe;
        let (_, r, (f, b, w)) = balanced_replay(&s);
        assert!(w < f && f < b);
        let (full, fb) = (b + w, f + b + w);
        let table = (p / 2 - 1) as f64 * (fb + full - 3.0 * w);
        let replay = (p / 2 - 1) as f64 * (fb + f - 2.0 * w);
        assert_close(table - replay, (p / 2 - 1) as f64 * (b - f), "difference");
        for (rank, (idle, _)) in idle_times(&r).into_iter().enumerate() {
            assert_close(idle, replay, &format!("p={p} m={m} rank {rank}"));
        }
        // Below ZB-H1's (p-1)(F+B-W) for p > 2.
        if p > 2 {
            assert!(replay < (p - 1) as f64 * (f + b - w));
        }
    }
    // F > B - W >= W: one F - (B - W) more than the schedule's own piece, and p/2 of
    // them over the table (p = 2, two middle ranks and no bubble, aside).
    for (p, m) in cases.into_iter().filter(|&(p, _)| p > 2) {
        let mut s = toy_scenario(1, p, 1, 4 * p, m);
        s.parallelism.schedule = ScheduleKind::Dualpipe;
        let (_, r, (f, b, w)) = cell_replay(&s, Some((1000, 800, 3000)));
        let (full, fb) = (b + w, f + b + w);
        let table = (p / 2 - 1) as f64 * (fb + full - 3.0 * w);
        let replay = (p / 2 - 1) as f64 * (fb + f - 2.0 * w) + (f - b);
        for (rank, (idle, _)) in idle_times(&r).into_iter().enumerate() {
            assert_close(idle, replay, &format!("p={p} m={m} rank {rank}"));
        }
        assert_close(replay - table, (p / 2) as f64 * (f - b), "over the table");
    }
}

#[test]
fn gpipe_and_1f1b_bubble_equals_closed_form() {
    for (kind, p, m) in [
        (ScheduleKind::Gpipe, 4, 8),
        (ScheduleKind::OneFOneB, 4, 8),
        (ScheduleKind::OneFOneB, 8, 3),
        (ScheduleKind::OneFOneB, 2, 16),
    ] {
        let mut s = toy_scenario(1, p, 1, 8 * p, m);
        s.parallelism.schedule = kind;
        let got = balanced_bubble(&s);
        let want = (p - 1) as f64 / (m + p - 1) as f64;
        assert!(
            (got / want - 1.0).abs() < 1e-9,
            "{kind:?} p={p} m={m}: {got} vs {want}"
        );
    }
}

#[test]
fn interleaved_bubble_equals_closed_form() {
    for (p, m, v) in [(4, 8, 2), (4, 4, 2), (2, 8, 4), (8, 16, 3)] {
        let mut s = toy_scenario(1, p, 1, p * v * 2, m);
        s.parallelism.schedule = ScheduleKind::Interleaved;
        s.parallelism.virtual_stages = v;
        let got = balanced_bubble(&s);
        let want = (p - 1) as f64 / (m * v + p - 1) as f64;
        assert!(
            (got / want - 1.0).abs() < 1e-9,
            "p={p} m={m} v={v}: {got} vs {want}"
        );
    }
}

/// Meta's Llama 3 layout in small: layers + embedding and loss slots split evenly into
/// `p * v` chunks, the first and last chunks one layer short. When the embedding and the
/// logits+loss ops each last one layer's pass (what the slot stands for), every chunk
/// carries the same work and the replay's bubble equals the interleaved closed form
/// `(p-1)/(m*v + p-1)` for the uneven layer split, with free communication.
#[test]
fn uneven_interleaved_split_with_slots_bubble_equals_closed_form() {
    for (p, m, v, per_chunk) in [(4, 8, 2, 2), (4, 4, 2, 3), (8, 16, 2, 2), (2, 8, 4, 2)] {
        let layers = p * v * per_chunk - 2;
        let mut s = toy_scenario(1, p, 1, layers, m);
        s.parallelism.schedule = ScheduleKind::Interleaved;
        s.parallelism.virtual_stages = v;
        s.parallelism.split.embedding_slot = true;
        s.parallelism.split.loss_slot = true;
        let layout = crate::pricing::inputs::virtual_stage_layers(&s.model, &s.parallelism);
        assert_eq!(layout[0], per_chunk - 1);
        assert_eq!(layout[(p * v - 1) as usize], per_chunk - 1);
        let mut graph = build_graph(&s);
        // One layer's forward and backward pass, from a layer that is not an end slot.
        let (mut lf, mut lb) = (0, 0);
        for st in &mut graph.stages {
            for w in st.graph.node_weights_mut() {
                if w.layers.0 == u16::MAX {
                    continue;
                }
                w.duration = match w.category {
                    Category::Forward => 3,
                    Category::Backward => 5,
                    _ => 0,
                };
                if w.micro_batch == 0 && w.layers.0 == 1 {
                    match w.category {
                        Category::Forward => lf += w.duration,
                        Category::Backward => lb += w.duration,
                        _ => {}
                    }
                }
            }
        }
        assert!(lf > 0 && lb > 0);
        for st in &mut graph.stages {
            for w in st.graph.node_weights_mut() {
                if w.layers.0 == u16::MAX {
                    w.duration = match w.category {
                        Category::Forward => lf,
                        Category::Backward => lb,
                        _ => 0,
                    };
                }
            }
        }
        let grid = RankGrid::new(&s.parallelism);
        let r = free_replay(&s, &graph);
        let got = bubble_fraction(&grid, &r);
        let want = (p - 1) as f64 / (m * v + p - 1) as f64;
        assert_close(got, want, &format!("p={p} m={m} v={v} layers={layers}"));
    }
}
