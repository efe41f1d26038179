//! Shared by the README reference and key audit tests: the keys the scenario loader
//! accepts, found by probing each section with an unknown key (`--set
//! faults.__probe__=1`), whose error lists the keys that section accepts; the probe
//! descends into each of them (lists probed with `[{__probe__: 1}]`).

use std::collections::BTreeSet;

/// Keys the scenario loader accepts, as dotted paths (`faults.failures.gpu.mtbf`).
pub fn accepted_keys() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    probe("", &mut out, 0);
    out
}

fn fields_in(message: &str) -> Option<Vec<String>> {
    let rest = message
        .split("unknown field `__probe__`, expected ")
        .nth(1)?;
    let rest = rest.strip_prefix("one of ").unwrap_or(rest);
    Some(
        rest.split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect(),
    )
}

fn probe(path: &str, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 6 {
        return;
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    let attempts = [
        format!("{prefix}__probe__=1"),
        format!("{path}=[{{__probe__: 1}}]"),
    ];
    for (i, ov) in attempts.iter().enumerate() {
        if i == 1 && path.is_empty() {
            break;
        }
        let err = match clustersim::config::load_scenario(None, std::slice::from_ref(ov)) {
            Ok(_) => continue,
            Err(e) => e.to_string(),
        };
        if let Some(fields) = fields_in(&err) {
            for f in fields {
                let key = format!("{prefix}{f}");
                if out.insert(key.clone()) {
                    probe(&key, out, depth + 1);
                }
            }
            return;
        }
    }
}
