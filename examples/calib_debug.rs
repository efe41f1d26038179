//! Prints the step breakdown of every calibration row (a debugging aid for calibration).
use clustersim::sim;
use clustersim::validate::*;
fn main() {
    let dir = std::path::Path::new("../shared/calibration");
    for src in [Source::MegatronSc21A100, Source::MegatronCoreH100] {
        let base = calibration_base(src).expect("base");
        for row in read_rows(dir, src).expect("rows") {
            let s = row_scenario(&row, &base, &base.cluster);
            let r = sim::simulate_step(&s, &sim::StepOptions::default()).expect("sim");
            let m = &r.metrics;
            let b = &m.breakdown_s;
            println!(
                "{:>7.1}B b={} v={} step {:.3}s m={} mfu {:.3} bubble {:.3} | comp {:.3} rec {:.3} opt {:.3} tp {:.3} pp {:.3} dp {:.3} idle {:.3}",
                row.params_b,
                s.training.micro_batch,
                s.parallelism.virtual_stages,
                m.step_time_s,
                m.micro_batches,
                m.mfu,
                m.bubble_fraction,
                b.compute,
                b.recompute,
                b.optimizer,
                b.tp_exposed,
                b.pp_exposed,
                b.dp_exposed,
                b.idle
            );
        }
    }
}
