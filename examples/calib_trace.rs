//! Prints rank 0's op spans for one calibration row (a debugging aid for calibration).
//! Usage: cargo run --release --example calib_trace -- <h100|a100> <row index>
use clustersim::engine::TraceRanks;
use clustersim::sim;
use clustersim::validate::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let src = if args.get(1).map(String::as_str) == Some("a100") {
        Source::MegatronSc21A100
    } else {
        Source::MegatronCoreH100
    };
    let idx: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let dir = std::path::Path::new("../shared/calibration");
    let base = calibration_base(src).expect("base");
    let row = &read_rows(dir, src).expect("rows")[idx];
    let s = row_scenario(row, &base, &base.cluster);
    let opts = sim::StepOptions {
        trace: TraceRanks::Some(vec![0]),
        ..Default::default()
    };
    let r = sim::simulate_step(&s, &opts).expect("sim");
    let prog = &r.graph.stages[0];
    for ev in &r.replay.trace {
        let op = prog.op(ev.op);
        let bytes = op
            .comm
            .map(|c| r.graph.comms[c as usize].bytes)
            .unwrap_or(0);
        println!(
            "{:>10.3} {:>10.3} {:>8.3} ms {:?} {:?} mb{} {} bytes={}",
            ev.start as f64 / 1e6,
            ev.end as f64 / 1e6,
            (ev.end - ev.start) as f64 / 1e6,
            op.stream,
            op.category,
            op.micro_batch,
            op.label,
            bytes
        );
    }
}
