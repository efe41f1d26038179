//! How the Megatron-Core H100 rows' errors move with the interleaving degree the table
//! leaves open: one column per valid `v` (a debugging aid for calibration; the shipped rule
//! is in `validate::Source::apply_rules`).
use clustersim::plan::ScheduleKind;
use clustersim::sim;
use clustersim::validate::*;
fn main() {
    let dir = std::path::Path::new("../shared/calibration");
    let src = Source::MegatronCoreH100;
    let base = calibration_base(src).expect("base");
    for row in read_rows(dir, src).expect("rows") {
        let mut line = format!("{:>6.1}B pp{:<2}", row.params_b, row.pp);
        let per_stage = row.layers / row.pp;
        for v in 1..=8u64 {
            if row.pp == 1 && v > 1 || !per_stage.is_multiple_of(v) {
                continue;
            }
            let mut s = row_scenario(&row, &base, &base.cluster);
            s.parallelism.virtual_stages = v;
            s.parallelism.schedule = if v > 1 {
                ScheduleKind::Interleaved
            } else {
                ScheduleKind::OneFOneB
            };
            let r = sim::simulate_step(&s, &sim::StepOptions::default()).expect("sim");
            let flops = s
                .model
                .model_flops_per_step(s.training.seq_len, s.training.global_batch);
            let t = flops / r.metrics.step_time_s / row.gpus as f64 / 1e12;
            line += &format!(" v{v}:{:+.1}%", (t / row.published_tflops - 1.0) * 100.0);
        }
        println!("{line}");
    }
}
