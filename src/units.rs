//! Units shared by every module: simulated time, durations and sizes.
//!
//! The step engine works in integer nanoseconds ([`Nanos`]) so that replays are exact and
//! byte-for-byte reproducible; long-horizon (run-level) simulation works in `f64` seconds.
//! This module parses the human strings users write in YAML (`90s`, `30m`, `54d`, `64M`).

/// Simulated time inside one step replay, in nanoseconds.
pub type Nanos = u64;

pub const NS_PER_S: f64 = 1e9;

/// Converts seconds to nanoseconds, rounding to the nearest nanosecond.
pub fn secs_to_ns(seconds: f64) -> Nanos {
    if seconds <= 0.0 {
        0
    } else {
        (seconds * NS_PER_S).round() as Nanos
    }
}

pub fn ns_to_secs(ns: Nanos) -> f64 {
    ns as f64 / NS_PER_S
}

/// Longest duration any input may give: 10,000 years, in seconds.
pub const MAX_DURATION_S: f64 = 10_000.0 * 365.25 * 86_400.0;

/// A number as an error message shows it: plain when short, else in exponent form.
pub fn short_num(v: f64) -> String {
    let plain = v.to_string();
    if plain.len() <= 12 {
        plain
    } else {
        format!("{v:e}")
    }
}

/// Longest value an error message echoes, in characters.
pub const MAX_ECHO_CHARS: usize = 48;

/// `text` as an error message may quote it: at most [`MAX_ECHO_CHARS`] characters (cut on a
/// character boundary, with the total length said), control characters shown as `?`.
pub fn shorten(text: &str) -> String {
    let n = text.chars().count();
    let clean = |c: char| if c.is_control() { '?' } else { c };
    if n <= MAX_ECHO_CHARS {
        return text.chars().map(clean).collect();
    }
    let head: String = text.chars().take(MAX_ECHO_CHARS - 8).map(clean).collect();
    format!("{head}... ({n} characters)")
}

/// Parses a duration such as `90s`, `1.5h`, `30m`, `54d`, `250ms`, `10us`, `1e3s` into
/// seconds (the number may use exponent notation); at most [`MAX_DURATION_S`].
pub fn parse_duration_s(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let shown = shorten(t);
    // The unit is the alphabetic tail, so `1e3s` reads as 1e3 seconds.
    let split = t
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphabetic())
        .last()
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .ok_or_else(|| format!("`{shown}` has no unit; write e.g. `90s`, `30m`, `1h`, `54d`"))?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{shown}` does not start with a number (e.g. `90s`, `1.5e3s`)"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 7.0 * 86400.0,
        _ => {
            return Err(format!(
                "`{shown}` has unknown unit `{}`; allowed: ns, us, ms, s, m, h, d, w",
                shorten(unit)
            ));
        }
    };
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{shown}` must be a non-negative duration"));
    }
    let seconds = value * scale;
    if seconds > MAX_DURATION_S {
        return Err(format!(
            "`{shown}` is longer than the longest duration allowed (10,000 years)"
        ));
    }
    Ok(seconds)
}

/// Parses a message size such as `1K`, `64M`, `16G` or `512` (bytes). Prefixes are binary,
/// as in nccl-tests' `-b 1K -e 16G`, so `1K` is 1024 bytes.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let shown = shorten(t);
    let split = t
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphabetic())
        .last()
        .map_or(t.len(), |(i, _)| i);
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{shown}` is not a size; write e.g. `1K`, `64M`, `16G`"))?;
    let scale: f64 = match unit.trim_end_matches(['B', 'b']) {
        "" => 1.0,
        "K" | "k" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024f64.powi(4),
        "P" => 1024f64.powi(5),
        _ => {
            return Err(format!(
                "`{shown}` has unknown unit `{}`; allowed: K, M, G, T, P",
                shorten(unit)
            ));
        }
    };
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("`{shown}` must be a positive size"));
    }
    let bytes = value * scale;
    if bytes > MAX_SIZE_BYTES as f64 {
        return Err(format!(
            "`{shown}` is larger than the largest size allowed (1P)"
        ));
    }
    Ok(bytes.round() as u64)
}

/// Largest size [`parse_size_bytes`] accepts: 1 PiB.
pub const MAX_SIZE_BYTES: u64 = 1 << 50;

/// Formats seconds compactly for tables: `850 ms`, `12.3 s`, `4.2 h`, `3.1 d`.
pub fn format_duration(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.1} us", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else if seconds < 120.0 {
        format!("{seconds:.2} s")
    } else if seconds < 7200.0 {
        format!("{:.1} min", seconds / 60.0)
    } else if seconds < 3.0 * 86400.0 {
        format!("{:.2} h", seconds / 3600.0)
    } else {
        format!("{:.2} d", seconds / 86400.0)
    }
}

/// Formats a byte count as nccl-tests does (binary prefixes).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration_s("90s").unwrap(), 90.0);
        assert_eq!(parse_duration_s("30m").unwrap(), 1800.0);
        assert_eq!(parse_duration_s("1.5h").unwrap(), 5400.0);
        assert_eq!(parse_duration_s("54d").unwrap(), 54.0 * 86400.0);
        assert!((parse_duration_s("250ms").unwrap() - 0.25).abs() < 1e-12);
        assert!(parse_duration_s("10").is_err());
        assert!(parse_duration_s("10parsecs").is_err());
        assert!(parse_duration_s("-3s").is_err());
    }

    #[test]
    fn sizes_parse_with_binary_prefixes() {
        assert_eq!(parse_size_bytes("1K").unwrap(), 1024);
        assert_eq!(parse_size_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size_bytes("16G").unwrap(), 16 << 30);
        assert_eq!(parse_size_bytes("512").unwrap(), 512);
        assert!(parse_size_bytes("0").is_err());
        assert!(parse_size_bytes("3X").is_err());
    }

    #[test]
    fn time_conversions_round_trip() {
        assert_eq!(secs_to_ns(1.5), 1_500_000_000);
        assert_eq!(ns_to_secs(2_000_000_000), 2.0);
    }
}
