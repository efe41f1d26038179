//! `timeline.json`: the replay's op trace as Chrome trace events.
//!
//! Writes the "JSON Object Format" (`traceEvents`, `displayTimeUnit`) that Perfetto and
//! `chrome://tracing` open: one process per node (`pid` = node index), one thread per GPU
//! stream (`tid` = local GPU x streams + stream), one complete event (`ph: "X"`) per
//! executed op. Timestamps are microseconds printed from integer nanoseconds with exactly
//! three decimals, so the file is exact and byte-for-byte reproducible.
//!
//! The output is streamed event by event through the caller's writer (traces of many ranks
//! are large); only a sorted list of references into [`Replay::trace`] is held in memory.
//! Reads the replay; changes nothing.

use std::io::{self, Write};

use crate::config::TimelineRanks;
use crate::engine::{TraceEvent, TraceRanks};
use crate::plan::RankGrid;
use crate::schedule::{Comm, GroupRef, Op, STREAMS, StepGraph, Stream};
use crate::sim::StepResult;

/// The first rank of each pipeline stage: the ranks the pipeline chart shows.
pub fn representative_ranks(grid: &RankGrid) -> Vec<u32> {
    let size = grid.stage_size().max(1);
    (0..grid.world() / size).map(|s| s * size).collect()
}

/// The ranks the engine must record for a timeline spec.
pub fn trace_ranks(spec: &TimelineRanks, grid: &RankGrid) -> TraceRanks {
    match spec {
        TimelineRanks::Representative => TraceRanks::Some(representative_ranks(grid)),
        TimelineRanks::All => TraceRanks::All,
        TimelineRanks::List(ranks) => TraceRanks::Some(ranks.clone()),
        TimelineRanks::None => TraceRanks::None,
    }
}

/// The union of two trace selections.
pub fn union(a: &TraceRanks, b: &TraceRanks) -> TraceRanks {
    match (a, b) {
        (TraceRanks::All, _) | (_, TraceRanks::All) => TraceRanks::All,
        (TraceRanks::None, x) | (x, TraceRanks::None) => x.clone(),
        (TraceRanks::Some(x), TraceRanks::Some(y)) => {
            let mut v: Vec<u32> = x.iter().chain(y).copied().collect();
            v.sort_unstable();
            v.dedup();
            TraceRanks::Some(v)
        }
    }
}

/// A per-rank membership test for a selection over `world` ranks.
pub(crate) fn selected(spec: &TraceRanks, world: u32) -> Vec<bool> {
    let mut sel = vec![matches!(spec, TraceRanks::All); world as usize];
    if let TraceRanks::Some(ranks) = spec {
        for &r in ranks {
            if let Some(s) = sel.get_mut(r as usize) {
                *s = true;
            }
        }
    }
    sel
}

/// Where a rank's stream sits in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSlot {
    pub pid: u32,
    pub tid: u32,
}

/// Process and thread of `stream` on `rank` with `gpus_per_node` GPUs per node.
pub fn slot(rank: u32, stream: Stream, gpus_per_node: u32) -> TraceSlot {
    let gpn = gpus_per_node.max(1);
    TraceSlot {
        pid: rank / gpn,
        tid: (rank % gpn) * STREAMS as u32 + stream as u32,
    }
}

/// Microseconds with three decimals, exactly, from nanoseconds.
pub fn micros(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

/// `attn fwd L12 mb3`, `tp all-gather mb3`, `optimizer`.
pub fn event_name(op: &Op) -> String {
    let mut name = op.label.to_string();
    if op.layers.0 != u16::MAX {
        if op.layers.0 == op.layers.1 {
            name.push_str(&format!(" L{}", op.layers.0));
        } else {
            name.push_str(&format!(" L{}-{}", op.layers.0, op.layers.1));
        }
    }
    if op.micro_batch != u32::MAX {
        name.push_str(&format!(" mb{}", op.micro_batch));
    }
    name
}

/// One executed op, resolved against the graph.
struct Resolved<'a> {
    ev: &'a TraceEvent,
    op: &'a Op,
    stage: u32,
}

/// Writes the Chrome trace of the ranks in `ranks` (those the replay recorded).
pub fn write_timeline<W: Write>(
    out: W,
    result: &StepResult,
    name: &str,
    gpus_per_node: u32,
    ranks: &TraceRanks,
) -> io::Result<()> {
    let hidden = indicatif::ProgressBar::hidden();
    write_timeline_with_progress(out, result, name, gpus_per_node, ranks, &hidden)
}

/// Events above which writing the timeline shows a progress bar (when asked for).
pub const PROGRESS_EVENTS: usize = 1_000_000;

/// [`write_timeline`], advancing `bar` by one per event written (its length is set here).
pub fn write_timeline_with_progress<W: Write>(
    out: W,
    result: &StepResult,
    name: &str,
    gpus_per_node: u32,
    ranks: &TraceRanks,
    bar: &indicatif::ProgressBar,
) -> io::Result<()> {
    let mut w = io::BufWriter::new(out);
    let events = resolve(result, ranks);
    bar.set_length(events.len() as u64);
    writeln!(w, "{{")?;
    writeln!(w, "\"displayTimeUnit\": \"ms\",")?;
    writeln!(
        w,
        "\"otherData\": {{\"scenario\": {}, \"step_time_us\": {}, \"generator\": \"clustersim\"}},",
        json_str(name),
        micros(result.replay.step_time),
    )?;
    writeln!(w, "\"traceEvents\": [")?;
    let mut first = true;
    write_metadata(&mut w, &events, gpus_per_node, &mut first)?;
    for (i, e) in events.iter().enumerate() {
        sep(&mut w, &mut first)?;
        write_event(&mut w, e, &result.graph, &result.grid, gpus_per_node)?;
        if i % 4096 == 4095 {
            bar.inc(4096);
        }
    }
    bar.finish_and_clear();
    writeln!(w, "\n]")?;
    writeln!(w, "}}")?;
    w.flush()
}

/// Recorded events of the selected ranks, ordered by rank, stream, start.
fn resolve<'a>(result: &'a StepResult, ranks: &TraceRanks) -> Vec<Resolved<'a>> {
    let sel = selected(ranks, result.grid.world());
    let mut out: Vec<Resolved<'a>> = result
        .replay
        .trace
        .iter()
        .filter(|e| sel.get(e.rank as usize).copied().unwrap_or(false))
        .filter_map(|ev| {
            let stage = result.grid.stage_of(ev.rank);
            let program = result.graph.stages.get(stage as usize)?;
            if ev.op as usize >= program.len() {
                return None;
            }
            Some(Resolved {
                ev,
                op: program.op(ev.op),
                stage,
            })
        })
        .collect();
    out.sort_by_key(|r| (r.ev.rank, r.op.stream, r.ev.start, r.ev.end, r.ev.op));
    out
}

fn sep<W: Write>(w: &mut W, first: &mut bool) -> io::Result<()> {
    if *first {
        *first = false;
        Ok(())
    } else {
        writeln!(w, ",")
    }
}

/// Process and thread names and sort indices for every (rank, stream) with events.
fn write_metadata<W: Write>(
    w: &mut W,
    events: &[Resolved],
    gpn: u32,
    first: &mut bool,
) -> io::Result<()> {
    let mut last_pid = None;
    let mut last_thread = None;
    for e in events {
        let s = slot(e.ev.rank, e.op.stream, gpn);
        if last_pid != Some(s.pid) {
            last_pid = Some(s.pid);
            sep(w, first)?;
            write!(
                w,
                "{{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": {}, \"tid\": 0, \"args\": {{\"name\": \"node {}\"}}}}",
                s.pid, s.pid
            )?;
            sep(w, first)?;
            write!(
                w,
                "{{\"ph\": \"M\", \"name\": \"process_sort_index\", \"pid\": {}, \"tid\": 0, \"args\": {{\"sort_index\": {}}}}}",
                s.pid, s.pid
            )?;
        }
        if last_thread != Some((s.pid, s.tid)) {
            last_thread = Some((s.pid, s.tid));
            let local = e.ev.rank % gpn.max(1);
            let label = format!("gpu {local} (rank {}) {}", e.ev.rank, e.op.stream.label());
            sep(w, first)?;
            write!(
                w,
                "{{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": {}, \"tid\": {}, \"args\": {{\"name\": {}}}}}",
                s.pid,
                s.tid,
                json_str(&label)
            )?;
            sep(w, first)?;
            write!(
                w,
                "{{\"ph\": \"M\", \"name\": \"thread_sort_index\", \"pid\": {}, \"tid\": {}, \"args\": {{\"sort_index\": {}}}}}",
                s.pid, s.tid, s.tid
            )?;
        }
    }
    Ok(())
}

fn write_event<W: Write>(
    w: &mut W,
    e: &Resolved,
    graph: &StepGraph,
    grid: &RankGrid,
    gpn: u32,
) -> io::Result<()> {
    let s = slot(e.ev.rank, e.op.stream, gpn);
    let dur = e.ev.end.saturating_sub(e.ev.start);
    write!(
        w,
        "{{\"ph\": \"X\", \"name\": {}, \"cat\": \"{}\", \"pid\": {}, \"tid\": {}, \"ts\": {}, \"dur\": {}, \"args\": {{\"rank\": {}, \"stage\": {}, \"op\": {}",
        json_str(&event_name(e.op)),
        e.op.category.label(),
        s.pid,
        s.tid,
        micros(e.ev.start),
        micros(dur),
        e.ev.rank,
        e.stage,
        e.ev.op
    )?;
    if e.op.micro_batch != u32::MAX {
        write!(w, ", \"micro_batch\": {}", e.op.micro_batch)?;
    }
    write!(w, ", \"chunk\": {}", e.op.chunk)?;
    if e.op.layers.0 != u16::MAX {
        write!(w, ", \"layers\": [{}, {}]", e.op.layers.0, e.op.layers.1)?;
    }
    if let Some(comm) = e.op.comm.and_then(|c| graph.comms.get(c as usize)) {
        write_comm_args(w, comm, grid)?;
    }
    write!(w, "}}}}")
}

fn write_comm_args<W: Write>(w: &mut W, comm: &Comm, grid: &RankGrid) -> io::Result<()> {
    write!(
        w,
        ", \"collective\": \"{}\", \"bytes\": {}",
        comm.collective.label(),
        comm.bytes
    )?;
    match comm.group {
        GroupRef::Axes(mask) => write!(w, ", \"group_size\": {}", grid.group_size(mask)),
        GroupRef::P2p { from, to } => write!(w, ", \"from_stage\": {from}, \"to_stage\": {to}"),
    }
}

/// Counts bytes written.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Size of one metadata record (process or thread name / sort index), bytes, rounded up.
const METADATA_BYTES: u64 = 140;

/// About how many bytes [`write_timeline`] writes for `ranks`, from the op graph alone
/// (before the step is replayed): every op of a rank's stage program is one event, formatted
/// as written with its stage's first selected rank's numbers, a start time of 10 s and a
/// duration of 1 ms (`ts` and `dur` as wide as a typical step's), plus the process and
/// thread records. Within 10 % of the written file (`tests/timeline_size.rs`).
pub fn estimate_timeline_bytes(
    graph: &StepGraph,
    grid: &RankGrid,
    gpus_per_node: u32,
    ranks: &TraceRanks,
) -> u64 {
    let world = grid.world();
    let sel = selected(ranks, world);
    let gpn = gpus_per_node.max(1);
    // Bytes of one rank's events, per stage, measured on the stage's first selected rank.
    let mut per_stage: Vec<Option<(u64, u64)>> = vec![None; graph.stages.len()];
    let mut total = 200u64; // header and footer
    let mut last_node = None;
    for rank in (0..world).filter(|&r| sel[r as usize]) {
        let stage = grid.stage_of(rank) as usize;
        let Some(program) = graph.stages.get(stage) else {
            continue;
        };
        let (events, streams) = *per_stage[stage].get_or_insert_with(|| {
            let mut c = Counter(0);
            let mut used = [false; STREAMS];
            for i in 0..program.len() as u32 {
                let op = program.op(i);
                used[op.stream as usize] = true;
                let ev = TraceEvent {
                    rank,
                    op: i,
                    start: 10_000_000_000,
                    end: 10_000_000_000 + 1_000_000,
                };
                let r = Resolved {
                    ev: &ev,
                    op,
                    stage: stage as u32,
                };
                let _ = write_event(&mut c, &r, graph, grid, gpn);
                c.0 += 2; // ",\n"
            }
            (c.0, used.iter().filter(|&&u| u).count() as u64)
        });
        total += events + streams * 2 * METADATA_BYTES;
        if last_node != Some(rank / gpn) {
            last_node = Some(rank / gpn);
            total += 2 * METADATA_BYTES;
        }
    }
    total
}

/// Human size: `9.7 GB`, `512 MB`, `12 kB` (decimal units).
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else {
        format!("{:.0} kB", (b / 1e3).max(1.0))
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::toy_scenario;
    use crate::schedule::Category;
    use crate::sim::{StepOptions, simulate_step};

    #[test]
    fn representative_is_first_rank_of_each_stage() {
        let s = toy_scenario(2, 4, 3, 8, 8);
        let grid = RankGrid::new(&s.parallelism);
        assert_eq!(representative_ranks(&grid), vec![0, 6, 12, 18]);
        match trace_ranks(&TimelineRanks::Representative, &grid) {
            TraceRanks::Some(v) => assert_eq!(v, vec![0, 6, 12, 18]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            trace_ranks(&TimelineRanks::All, &grid),
            TraceRanks::All
        ));
        assert!(matches!(
            trace_ranks(&TimelineRanks::None, &grid),
            TraceRanks::None
        ));
    }

    #[test]
    fn union_merges_and_dedups() {
        let a = TraceRanks::Some(vec![3, 1]);
        let b = TraceRanks::Some(vec![1, 2]);
        assert!(matches!(union(&a, &b), TraceRanks::Some(v) if v == vec![1, 2, 3]));
        assert!(matches!(union(&a, &TraceRanks::All), TraceRanks::All));
        assert!(matches!(union(&TraceRanks::None, &b), TraceRanks::Some(v) if v == vec![1, 2]));
    }

    #[test]
    fn micros_are_exact() {
        assert_eq!(micros(0), "0.000");
        assert_eq!(micros(1), "0.001");
        assert_eq!(micros(1_234_567), "1234.567");
    }

    #[test]
    fn slots_group_streams_by_gpu() {
        assert_eq!(slot(0, Stream::Compute, 8), TraceSlot { pid: 0, tid: 0 });
        assert_eq!(
            slot(9, Stream::Tp, 8),
            TraceSlot {
                pid: 1,
                tid: STREAMS as u32 + 1
            }
        );
    }

    #[test]
    fn names_carry_layers_and_micro_batch() {
        let mut op = Op {
            category: Category::Forward,
            stream: Stream::Compute,
            duration: 1,
            comm: None,
            micro_batch: 3,
            chunk: 0,
            layers: (12, 12),
            label: "attn fwd",
        };
        assert_eq!(event_name(&op), "attn fwd L12 mb3");
        op.layers = (4, 7);
        assert_eq!(event_name(&op), "attn fwd L4-7 mb3");
        op.layers = (u16::MAX, u16::MAX);
        op.micro_batch = u32::MAX;
        op.label = "optimizer";
        assert_eq!(event_name(&op), "optimizer");
    }

    #[test]
    fn only_selected_ranks_are_written() {
        let s = toy_scenario(2, 2, 1, 4, 4);
        let opts = StepOptions {
            trace: TraceRanks::All,
            ..Default::default()
        };
        let r = simulate_step(&s, &opts).unwrap();
        let mut buf = Vec::new();
        write_timeline(&mut buf, &r, "toy", 8, &TraceRanks::Some(vec![2])).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        let events = v["traceEvents"].as_array().unwrap();
        assert!(events.iter().filter(|e| e["ph"] == "X").count() > 10);
        assert!(
            events
                .iter()
                .filter(|e| e["ph"] == "X")
                .all(|e| e["args"]["rank"] == 2)
        );
    }
}
