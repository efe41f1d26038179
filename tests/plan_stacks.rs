//! Fast mode agrees with the full replay on the top 10 plans of GPT-3 175B / 1,024 A100
//! 80GB under every stack preset (`data/stacks.yaml`), as `tests/plan_gpt3.rs` checks for
//! the default stack: each preset's mechanisms (TP overlap, synchronous p2p, unfused
//! accumulation, FP32 reduction, ZeRO-3 gathers) are priced alike in both modes.
//!
//! Seventy 1,024-GPU replays: debug builds skip it (CI runs `cargo test --release`).

use clustersim::config::{load_scenario_str, stack as stacks};
use clustersim::sweep::plan;

#[test]
#[cfg_attr(debug_assertions, ignore = "slow in debug builds; run with --release")]
fn fast_mode_agrees_with_replay_on_the_top_10_plans_of_every_stack_preset() {
    let presets = stacks::preset_names().unwrap();
    assert!(presets.len() >= 7, "{presets:?}");
    // The scenario without its own overlap key, so that each preset's stands.
    let text = std::fs::read_to_string("scenarios/gpt3-175b-1k-a100.yaml").unwrap();
    let text = text.replace("  overlap_grad_reduce: true\n", "");
    for name in presets {
        let s = load_scenario_str(
            "scenarios/gpt3-175b-1k-a100.yaml",
            &text,
            &[format!("stack.preset={name}")],
        )
        .unwrap();
        assert_eq!(s.parallelism.stack.preset, name);
        let opts = plan::PlanOptions::for_scenario(&s, 10);
        let report = plan::search(&s, &opts).expect("search");
        assert_eq!(report.replayed, 10, "{name}");
        for r in &report.rows[..10] {
            let (f, full) = (r.fast.step_time_s, r.replay.as_ref().unwrap().step_time_s);
            assert!(
                (f / full - 1.0).abs() <= 0.01,
                "{name}: {} fast {f} vs replay {full}",
                r.point.label()
            );
        }
    }
}
