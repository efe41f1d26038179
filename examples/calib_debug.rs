use clustersim::validate::*;
use clustersim::{fixtures, sim};
fn main() {
    let dir = std::path::Path::new("../shared/calibration");
    let base = fixtures::toy_scenario(1, 1, 1, 1, 1);
    for (src, cl) in [
        (Source::MegatronSc21A100, fixtures::dgx_a100_hdr(1)),
        (Source::MegatronCoreH100, fixtures::dgx_h100_ndr(1)),
    ] {
        for row in read_rows(dir, src).unwrap() {
            let s = row_scenario(&row, &base, &cl);
            let r = sim::simulate_step(&s, &sim::StepOptions::default()).unwrap();
            let m = &r.metrics;
            let b = &m.breakdown_s;
            println!(
                "{:>7.1}B step {:.3}s m={} mfu {:.3} bubble {:.3} | comp {:.3} rec {:.3} opt {:.3} tp {:.3} pp {:.3} dp {:.3} idle {:.3}",
                row.params_b,
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
