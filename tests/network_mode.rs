//! The scenario's `network:` section selects the network model end to end: a
//! contention-mode run writes `links.csv` and the link heat map through the binary, a
//! degraded NIC (`faults.links`) slows a contention-mode step, and `--network` overrides
//! the file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clustersim::config;
use clustersim::faults;
use clustersim::network::NetworkMode;
use clustersim::plan::RankGrid;
use clustersim::sim::{self, StepOptions};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clustersim-netmode-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// A small Llama-3-8B scenario on 4 DGX H100 nodes (TP 8 in the node, PP 2, DP 2), with
/// `extra` appended (top-level keys).
fn scenario_yaml(extra: &str) -> String {
    format!(
        "name: netmode\n\
         model: llama3-8b\n\
         cluster: {{ from: dgx-h100-ndr, nodes: 4 }}\n\
         training: {{ seq_len: 2048, global_batch: 16, micro_batch: 1 }}\n\
         parallelism: {{ tp: 8, pp: 2, dp: 2 }}\n\
         {extra}"
    )
}

fn write_scenario(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("scenario.yaml");
    fs::write(&path, scenario_yaml(extra)).unwrap();
    path
}

fn run_bin(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .output()
        .expect("the binary starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn contention_scenario_writes_links_csv_and_heat_map() {
    let dir = scratch("e2e");
    let file = write_scenario(&dir, "network: { mode: contention, algorithm: ring }\n");
    let out = dir.join("out");
    let (file_s, out_s) = (file.to_str().unwrap(), out.to_str().unwrap());
    let stdout = run_bin(&["run", file_s, "--out", out_s]);
    assert!(stdout.contains("links.csv"), "{stdout}");
    let csv = fs::read_to_string(out.join("links.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(clustersim::network::links::LINKS_CSV_HEADER)
    );
    assert!(
        csv.contains(",nvlink,") && csv.contains(",nic-leaf,"),
        "{csv}"
    );
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let busy: f64 = f[6].parse().unwrap();
        let (util, peak): (f64, u32) = (f[7].parse().unwrap(), f[8].parse().unwrap());
        let peak_util: f64 = f[9].parse().unwrap();
        assert!((0.0..=1.0).contains(&busy) && peak >= 1, "{line}");
        // A link's peak load is at least its mean and at most its capacity.
        assert!(
            peak_util >= util - 1e-6 && peak_util <= 1.0 + 1e-6,
            "{line}"
        );
    }
    let png = fs::read(out.join("link_heatmap.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000);
    let svg = fs::read_to_string(out.join("link_heatmap.svg")).unwrap();
    assert!(svg.contains("Link utilization") && svg.contains("nvlink up"));
    assert!(
        svg.contains("peak during the step"),
        "the heat map shows peaks"
    );

    // The same scenario in analytic mode (flag over file) writes neither, and removes them.
    run_bin(&["run", file_s, "--out", out_s, "--network", "analytic"]);
    assert!(!out.join("links.csv").exists());
    assert!(!out.join("link_heatmap.png").exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn network_section_resolves_and_rejects_unknown_modes() {
    let dir = scratch("resolve");
    let file = write_scenario(&dir, "");
    let s = config::load_scenario(Some(&file), &[]).unwrap();
    assert_eq!(s.network.mode, NetworkMode::Analytic, "default");
    let set = ["network.mode=contention".to_string()];
    let s = config::load_scenario(Some(&file), &set).unwrap();
    assert_eq!(s.network.mode, NetworkMode::Contention);
    let bad = write_scenario(&dir, "network: { mode: fast }\n");
    let e = config::load_scenario(Some(&bad), &[]).unwrap_err();
    assert!(e.to_string().contains("network.mode"), "{e}");
    fs::remove_dir_all(&dir).unwrap();
}

/// Step time of the scenario with `extra` keys, on the network it selects.
fn step_time(extra: &str) -> f64 {
    let dir = scratch(&format!("step-{:x}", extra.len()));
    let file = write_scenario(&dir, extra);
    let s = config::load_scenario(Some(&file), &[]).unwrap();
    let world = RankGrid::new(&s.parallelism).world();
    let (speeds, links) = faults::step_faults(&s.faults, world).unwrap();
    let opts = StepOptions {
        speeds,
        ..Default::default()
    };
    let (r, net) = sim::simulate_step_faulty(&s, &opts, &links).unwrap();
    assert_eq!(net.mode(), s.network.mode);
    fs::remove_dir_all(&dir).unwrap();
    r.metrics.step_time_s
}

#[test]
fn degraded_nic_slows_a_contention_step() {
    let healthy = step_time("network: { mode: contention }\n");
    let degraded = step_time(
        "network: { mode: contention }\n\
         faults: { links: [ { ranks: [0], nic_factor: 0.1 } ] }\n",
    );
    println!("contention step: healthy {healthy:.4} s, rank 0 NIC at 10 %: {degraded:.4} s");
    assert!(degraded > healthy * 1.001, "{degraded} vs {healthy}");
    // And the analytic model agrees on the direction.
    let fast = step_time("");
    let fast_degraded = step_time("faults: { links: [ { ranks: [0], nic_factor: 0.1 } ] }\n");
    assert!(fast_degraded > fast);
}
