//! Runs a scenario through the library API, as `clustersim run` does, and prints a few
//! figures of the step and, when the scenario has `run:`, of the long run.
//!
//! `cargo run --release --example run_scenario -- [SCENARIO] [PATH=VALUE ...]` (no
//! scenario: the built-in default; `PATH=VALUE` arguments override scenario keys). The
//! output files go to `clustersim-example/` in the system's temporary folder.

use clustersim::Simulation;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(if e.is_bad_input() { 2 } else { 1 });
    }
}

fn run() -> Result<(), clustersim::Error> {
    let (overrides, files): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|a| a.contains('='));
    let sim = match files.first() {
        Some(path) => Simulation::from_file(path)?,
        None => Simulation::default_scenario(),
    };
    let outputs = sim.with_overrides(&overrides)?.run()?;

    let m = outputs.metrics();
    println!("{}", outputs.scenario.name);
    println!("  step time   {:.4} s", m.step_time_s);
    println!("  MFU         {:.1} %", m.mfu * 100.0);
    println!("  bubble      {:.1} %", m.bubble_fraction * 100.0);
    println!(
        "  memory      {:.1} of {:.1} GB",
        outputs.memory().total,
        outputs.memory().capacity
    );
    if let Some(run) = &outputs.run {
        println!("  goodput     {:.1} %", run.summary.goodput * 100.0);
    }
    let dir = std::env::temp_dir().join("clustersim-example");
    let written = outputs.write_to(&dir)?;
    println!("wrote {} files to {}", written.len(), dir.display());
    Ok(())
}
