//! The shipped sweep files parse and expand (loading them needs the shipped scenarios).

use std::path::Path;

use clustersim::sweep::spec::{self, PlanChoice, SweepSpec};

#[test]
fn shipped_sweeps_parse_and_expand() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sweeps");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(spec::is_sweep_text(&text), "{}", path.display());
        let sw = SweepSpec::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(sw.tokens().unwrap().is_some());
        let points = spec::expand(&sw, &dir);
        assert!(points.len() >= 2, "{}", path.display());
        for p in &points {
            assert!(p.scenario.as_ref().is_some_and(|s| s.starts_with(&dir)));
        }
        n += 1;
    }
    assert!(n >= 3);
    let designs = SweepSpec::load(&dir.join("70b-designs.yaml")).unwrap();
    assert_eq!(designs.plan, PlanChoice::Best);
    assert_eq!(spec::expand(&designs, &dir).len(), 4);
}
