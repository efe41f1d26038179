//! Link use over time (`links-timeseries.csv`, `link_timeline.{png,svg}`) and where links
//! are (`links.csv`'s place columns): utilization stays within [0, 1] in every bin, the
//! time average of each series equals the step-average utilization `links.csv` reports
//! (bytes conserved), recording changes nothing, and the files' formats.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use clustersim::fixtures::toy_scenario;
use clustersim::network::links::{LINKS_CSV_HEADER, link_place, link_usage};
use clustersim::network::topology::LinkKind;
use clustersim::network::{FlowNetwork, NetworkSettings};
use clustersim::sim::{StepOptions, simulate_step_on};

/// A 64-GPU toy step (TP 8, PP 2, DP 4 on 8 nodes) in contention mode, recorded.
fn recorded(per_link: bool) -> (FlowNetwork, u64) {
    let s = toy_scenario(8, 2, 4, 8, 16);
    let mut net = FlowNetwork::new(&s.cluster, NetworkSettings::default());
    net.record_usage(per_link);
    let r = simulate_step_on(&s, &StepOptions::default(), &mut net).unwrap();
    let step = r.replay.step_time;
    net.finish_accounting(step);
    (net, step)
}

#[test]
fn series_stay_in_unit_range_and_average_to_the_step_utilization() {
    let (net, step) = recorded(true);
    let series = net.usage_series(step, 100).expect("recorded");
    assert_eq!(series.bins, 100);
    let topo = net.topology();
    let counters = net.counters();
    let secs = step as f64 * 1e-9;
    // Closed form of a tier's step average: the mean over its links of
    // bytes / (capacity x step), as links.csv reports each link's utilization.
    for row in &series.tiers {
        assert_eq!(row.values.len(), 100);
        for &u in &row.values {
            assert!((0.0..=1.0 + 1e-9).contains(&u), "{}: {u}", row.name);
        }
        let links: Vec<usize> = (0..topo.links())
            .filter(|&l| {
                let name = format!(
                    "{} {}",
                    topo.kind[l].label(),
                    if l % 2 == 0 { "up" } else { "down" }
                );
                name == row.name
            })
            .collect();
        assert_eq!(links.len() as u32, row.links, "{}", row.name);
        let expected = links
            .iter()
            .map(|&l| counters.bytes[l] / (topo.cap[l] * secs))
            .sum::<f64>()
            / links.len() as f64;
        let mean = row.values.iter().sum::<f64>() / 100.0;
        assert!(
            (mean - expected).abs() <= 1e-9 * expected.max(1e-12) + 1e-12,
            "{}: time average {mean} vs step average {expected}",
            row.name
        );
    }
    let busy = series
        .tiers
        .iter()
        .filter(|r| r.values.iter().any(|&u| u > 0.0))
        .count();
    assert!(busy >= 4, "NVLink and NIC tiers both ways carried traffic");
    // Per link: every link that carried traffic has a series whose mean is links.csv's
    // utilization.
    let usage = link_usage(topo, &counters, step);
    assert_eq!(usage.len(), series.links.len());
    for (u, row) in usage.iter().zip(&series.links) {
        assert_eq!(Some(u.id), row.link);
        let mean = row.values.iter().sum::<f64>() / 100.0;
        assert!(
            (mean - u.utilization).abs() <= 1e-9 * u.utilization + 1e-12,
            "link {}: {mean} vs {}",
            u.id,
            u.utilization
        );
        assert!(row.values.iter().all(|&v| (0.0..=1.0 + 1e-9).contains(&v)));
    }
    // Traffic moves over time: some bins idle, some busy, on the NIC tier.
    let nic = series
        .tiers
        .iter()
        .find(|r| r.name == "nic-leaf up")
        .unwrap();
    let max = nic.values.iter().cloned().fold(0.0, f64::max);
    let mean = nic.values.iter().sum::<f64>() / 100.0;
    assert!(max > 2.0 * mean, "bursts: max {max}, mean {mean}");
}

#[test]
fn recording_changes_no_time() {
    let s = toy_scenario(8, 2, 4, 8, 16);
    let mut plain = FlowNetwork::new(&s.cluster, NetworkSettings::default());
    let a = simulate_step_on(&s, &StepOptions::default(), &mut plain).unwrap();
    let (_, step) = recorded(true);
    assert_eq!(a.replay.step_time, step);
}

#[test]
fn links_are_named_by_node_rail_switch_and_pod() {
    let (net, _) = recorded(false);
    let topo = net.topology();
    for l in 0..topo.links() {
        let p = link_place(topo, l);
        assert_eq!(p.up, l % 2 == 0);
        match topo.kind[l] {
            LinkKind::NvLink => assert!(p.node.is_some() && p.gpu.is_some() && p.leaf.is_none()),
            LinkKind::NicLeaf => {
                let (node, rail, leaf) = (p.node.unwrap(), p.rail.unwrap(), p.leaf.unwrap());
                // NIC `rail` of node `node` is the NIC GPU `rail` of that node sends through
                // (one NIC per GPU on the toy's DGX nodes), cabled to `leaf`.
                let gpu = node * topo.gpus_per_node + rail;
                assert_eq!(topo.nic_of(gpu), node * topo.nics_per_node + rail);
                assert_eq!(topo.leaf_of_nic(topo.nic_of(gpu)), leaf);
            }
            LinkKind::LeafSpine => assert!(p.leaf.is_some() && p.spine.is_some()),
            _ => {}
        }
    }
    let header = LINKS_CSV_HEADER;
    assert!(header.ends_with(",direction,node,gpu,rail,pod,leaf,spine,core"));
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clustersim-linkts-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn bin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .output()
        .expect("the binary starts")
}

const SCENARIO: &str = "name: linkts\n\
     model: llama3-8b\n\
     cluster: { from: dgx-h100-ndr, nodes: 4 }\n\
     training: { seq_len: 2048, global_batch: 16, micro_batch: 1 }\n\
     parallelism: { tp: 8, pp: 2, dp: 2 }\n\
     network: { mode: contention }\n";

#[test]
fn the_binary_writes_the_time_series_and_chart_in_contention_mode_only() {
    let dir = scratch("bin");
    let file = dir.join("s.yaml");
    fs::write(&file, SCENARIO).unwrap();
    let out = dir.join("out");
    let (f, o) = (file.to_str().unwrap(), out.to_str().unwrap());
    let r = bin(&["run", f, "--out", o, "--links", "all"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let csv = fs::read_to_string(out.join("links-timeseries.csv")).unwrap();
    let mut lines = csv.lines();
    // Golden header.
    assert_eq!(
        lines.next(),
        Some("scope,series,links,bin,t_start_ms,t_end_ms,utilization")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 7));
    assert!(rows.iter().any(|r| r[0] == "tier" && r[1] == "nic-leaf up"));
    assert!(rows.iter().any(|r| r[0] == "link"));
    for r in &rows {
        let u: f64 = r[6].parse().unwrap();
        assert!((0.0..=1.0 + 1e-6).contains(&u), "{r:?}");
    }
    let links = fs::read_to_string(out.join("links.csv")).unwrap();
    assert_eq!(links.lines().next(), Some(LINKS_CSV_HEADER));
    let png = fs::read(out.join("link_timeline.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let svg = fs::read_to_string(out.join("link_timeline.svg")).unwrap();
    assert!(svg.contains("busiest links") && svg.contains("nic-leaf up"));

    // Analytic mode: no per-link flows, no files (stale ones removed); --links all refused.
    let r = bin(&["run", f, "--out", o, "--network", "analytic"]);
    assert!(r.status.success());
    assert!(!out.join("links-timeseries.csv").exists());
    assert!(!out.join("link_timeline.png").exists());
    let r = bin(&[
        "run",
        f,
        "--out",
        o,
        "--network",
        "analytic",
        "--links",
        "all",
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--links all"));
    fs::remove_dir_all(&dir).unwrap();
}

/// Under adaptive routing each pool of equal-cost uplinks is one link of the pool's summed
/// capacity (its first uplink). What users read must still be the physical links: the
/// tier's time series averages to the tier's bytes over its physical capacity, the heat
/// map shows every member at the pool's even share, and links.csv names the pool's range
/// of spines rather than one spine.
#[test]
fn adaptive_pools_are_reported_as_the_physical_links_they_stand_for() {
    use clustersim::hardware::FabricKind;
    use clustersim::network::links::heat_rows;
    use clustersim::network::routing::Routing;
    let mut s = toy_scenario(8, 1, 8, 4, 16);
    s.cluster.fabric.kind = FabricKind::FatTree;
    s.cluster.fabric.tiers = 3;
    s.cluster.fabric.switch_radix = 8;
    s.cluster.fabric.oversubscription = 2.0;
    let settings = NetworkSettings {
        routing: Routing {
            adaptive: true,
            ..Routing::default()
        },
        ..NetworkSettings::default()
    };
    let mut net = FlowNetwork::new(&s.cluster, settings);
    net.record_usage(false);
    let r = simulate_step_on(&s, &StepOptions::default(), &mut net).unwrap();
    let step = r.replay.step_time;
    net.finish_accounting(step);
    let topo = net.topology();
    let counters = net.counters();
    let secs = step as f64 * 1e-9;
    let tier: Vec<usize> = (0..topo.links())
        .filter(|&l| topo.kind[l] == LinkKind::LeafSpine && l % 2 == 0)
        .collect();
    let heads: Vec<usize> = tier
        .iter()
        .copied()
        .filter(|&l| topo.pool_size(l) > 1)
        .collect();
    assert!(!heads.is_empty(), "the leaves have pooled uplinks");
    let k = topo.pool_size(heads[0]) as f64;
    let member_cap = topo.cap[heads[0] + 2];
    assert!((topo.cap[heads[0]] - k * member_cap).abs() < 1e-6 * member_cap);
    let bytes: f64 = tier.iter().map(|&l| counters.bytes[l]).sum();
    assert!(bytes > 0.0, "the step crosses the leaf uplinks");
    // Closed form: the tier's bytes over its physical capacity.
    let expected = bytes / (tier.len() as f64 * member_cap * secs);
    let series = net.usage_series(step, 100).expect("recorded");
    let row = series
        .tiers
        .iter()
        .find(|r| r.name == "leaf-spine up")
        .expect("leaf-spine up series");
    let mean = row.values.iter().sum::<f64>() / 100.0;
    assert!(
        (mean - expected).abs() <= 1e-9 * expected,
        "time average {mean} vs {expected}"
    );
    // The heat map, one cell per link, averages to the same and shows no idle member.
    let heat = heat_rows(topo, &counters, step, tier.len());
    let hr = heat
        .iter()
        .find(|r| r.kind == LinkKind::LeafSpine && r.up)
        .unwrap();
    let cells = hr.cells.iter().sum::<f64>() / hr.cells.len() as f64;
    assert!(
        (cells - expected).abs() <= 1e-9 * expected,
        "{cells} vs {expected}"
    );
    for &h in &heads {
        let i = tier.iter().position(|&l| l == h).unwrap();
        assert_eq!(
            hr.cells[i],
            hr.cells[i + 1],
            "a member shows its pool's share"
        );
    }
    // links.csv: the pool head names its range of spines and no single spine.
    for u in link_usage(topo, &counters, step) {
        if u.kind == LinkKind::LeafSpine && u.id % 2 == 0 {
            assert!(
                topo.pool_size(u.id as usize) > 1,
                "only pool heads carry bytes"
            );
            assert!(
                u.dst.starts_with("spine:") && u.dst.contains('-'),
                "{}",
                u.dst
            );
            assert_eq!(link_place(topo, u.id as usize).spine, None);
        }
    }
}
