//! Headline predictions carry their calibration band: `clustersim run` prints step time and
//! MFU with ± the MAPE of the GPU generation's calibration table (the number `clustersim
//! validate` prints, from `data/calibration-bands.json`), and `summary.json` holds the band.

use std::process::Command;

#[test]
fn run_prints_and_records_the_band_of_the_gpu_generation() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("uncertainty-run");
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(["run", "--timeline", "none", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let band = clustersim::validate::embedded_bands()
        .tables
        .iter()
        .find(|b| b.table == "megatron-core-h100")
        .unwrap()
        .mape;
    let pm = format!("±{:.1} %", band * 100.0);
    for key in ["step time", "MFU"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        assert!(line.contains(&pm), "`{line}` lacks {pm}");
    }
    assert!(
        stdout.contains("MAPE of the Megatron-Core, H100 table"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let u = &v["uncertainty"];
    assert_eq!(u["table"], "megatron-core-h100");
    assert_eq!(u["relative"].as_f64().unwrap(), band);
    let t = v["step_time_s"].as_f64().unwrap();
    let [lo, hi] = [
        u["step_time_s"][0].as_f64().unwrap(),
        u["step_time_s"][1].as_f64().unwrap(),
    ];
    assert!((lo - t * (1.0 - band)).abs() < 1e-9 && (hi - t * (1.0 + band)).abs() < 1e-9);
}

#[test]
fn a100_scenarios_get_the_a100_band() {
    let s = clustersim::config::load_scenario(
        Some(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/gpt3-175b-1k-a100.yaml"
        ))),
        &[],
    )
    .unwrap();
    let b = clustersim::validate::band_for(&s.cluster.gpu).unwrap();
    assert_eq!(b.table, "megatron-sc21-a100");
}
