//! Sizes, rates, durations and probabilities as people write them: the one
//! parser of "32MiB", "100M", "5m" and "0.1" for the command line, the simulator's scenario
//! files and the benchmarks.
//!
//! Errors are sentences about the value alone ("a size needs a number
//! first, as in 64MiB"); the caller names where the value came from (clap's
//! value parsers add the flag).

use std::time::Duration;

/// The largest size [`parse_size`] accepts, in bytes (1 PB).
pub const MAX_SIZE: u64 = 1_000_000_000_000_000;

/// The largest rate [`parse_rate`] accepts, in bits per second (1 Tbit/s).
pub const MAX_RATE: u64 = 1_000_000_000_000;

/// The longest duration [`parse_duration`] accepts: about 31 years, far
/// enough for any timeout and short enough to add to an `Instant`.
pub const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000);

/// Parses a size in bytes: a number with an optional unit B, K/KB (1000),
/// KiB (1024), M/MB, MiB, G/GB, GiB, T/TB or TiB, case-insensitive, with or
/// without a space ("32MiB", "100 MB", "4096", "1.5KiB"). Underscores in the
/// number are ignored. Fractions of a byte round to the nearest byte.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, unit) = split_unit(s, "a size", "64MiB")?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit '{other}' (use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB)"
            ));
        }
    };
    let v = (num * mult).round();
    if !(0.0..=MAX_SIZE as f64).contains(&v) {
        return Err(format!("a size must lie between 0 and {MAX_SIZE} bytes"));
    }
    Ok(v as u64)
}

/// Parses a rate in bits per second: a number with an optional k, M or G
/// (powers of 1000, case-insensitive), optionally followed by "bit/s" or
/// "bps" ("100M", "1.5G", "64kbit/s", "2500000"). From 1 bit/s to
/// [`MAX_RATE`].
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let (num, unit) = split_unit(s, "a rate", "100M")?;
    let lower = unit.to_ascii_lowercase();
    let unit = lower.trim_end_matches("bit/s").trim_end_matches("bps");
    let mult = match unit.trim() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        other => {
            return Err(format!(
                "unknown rate unit '{other}' (use k, M or G bits/s, as in 100M)"
            ));
        }
    };
    let v = (num * mult).round();
    if !(1.0..=MAX_RATE as f64).contains(&v) {
        return Err("a rate must lie between 1 bit/s and 1 Tbit/s".into());
    }
    Ok(v as u64)
}

/// Parses a duration: a plain number of seconds ("30", "1.5"), or a number
/// with units as humantime reads them ("30s", "5m", "1h 30m", "250ms").
/// From 0 to [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !s.is_empty() {
        let secs: f64 = s
            .parse()
            .map_err(|_| format!("'{s}' is not a number of seconds"))?;
        Duration::try_from_secs_f64(secs).map_err(|_| too_long())?
    } else {
        humantime::parse_duration(s).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => too_long(),
            e => format!("{e}: give seconds (30, 1.5) or a number with a unit (30s, 5m, 1h)"),
        })?
    };
    if d > MAX_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

fn too_long() -> String {
    format!(
        "a duration must be at most {}",
        humantime::format_duration(MAX_DURATION)
    )
}

/// Parses a probability between 0 and 1.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..1.0).contains(&p) {
        return Err(format!("{p} must be at least 0 and below 1"));
    }
    Ok(p)
}

/// A size for people: whole binary units where they fit exactly ("64 MiB",
/// "4 KiB"), else bytes ("5000000 bytes"), so that the value can be given
/// back to [`parse_size`] as it reads.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    UNITS
        .iter()
        .find(|(_, shift)| bytes >= 1 << shift && bytes.trailing_zeros() >= *shift)
        .map_or_else(
            || format!("{bytes} bytes"),
            |(unit, shift)| format!("{} {unit}", bytes >> shift),
        )
}

/// The number leading `s` and the rest, trimmed.
fn split_unit<'a>(s: &'a str, what: &str, example: &str) -> Result<(f64, &'a str), String> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let num: f64 = s[..end]
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{what} needs a number first, as in {example}"))?;
    Ok((num, s[end..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("16mib"), Ok(16 << 20));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("1.5kib"), Ok(1536));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes() {
        let e = parse_size("12 parsecs").unwrap_err();
        assert!(e.contains("unknown size unit 'parsecs'"), "{e}");
        let e = parse_size("MiB").unwrap_err();
        assert!(e.contains("needs a number first"), "{e}");
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.2.3MiB").is_err());
        let e = parse_size("2000TB").unwrap_err();
        assert!(e.contains("between 0 and"), "{e}");
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100M"), Ok(100_000_000));
        assert_eq!(parse_rate("1G"), Ok(1_000_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("64kbit/s"), Ok(64_000));
        assert_eq!(parse_rate("10Mbps"), Ok(10_000_000));
        assert_eq!(parse_rate("2500000"), Ok(2_500_000));
        assert_eq!(parse_rate("1"), Ok(1));
    }

    #[test]
    fn bad_rates() {
        let e = parse_rate("fast").unwrap_err();
        assert!(e.contains("a rate needs a number first"), "{e}");
        let e = parse_rate("0").unwrap_err();
        assert!(e.contains("between 1 bit/s and 1 Tbit/s"), "{e}");
        assert!(
            parse_rate("2T")
                .unwrap_err()
                .contains("unknown rate unit 't'")
        );
        assert!(
            parse_rate("10MiB").is_err(),
            "a rate is bits, not binary bytes"
        );
        assert!(parse_rate("2000G").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations() {
        let e = parse_duration("abc").unwrap_err();
        assert!(e.contains("give seconds"), "{e}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1.2.3").is_err());
        let e = parse_duration("1e10").unwrap_err();
        assert!(e.contains("give seconds"), "{e}");
        let e = parse_duration("99999999999").unwrap_err();
        assert!(e.contains("at most"), "{e}");
        let e = parse_duration("100000y").unwrap_err();
        assert!(e.contains("at most"), "{e}");
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(3 << 30), "3 GiB");
        assert_eq!(format_size(1 << 40), "1 TiB");
        assert_eq!(format_size(5_000_000), "5000000 bytes");
        assert_eq!(format_size(0), "0 bytes");
        for n in [4096, 64 << 20, 1536, 5_000_000] {
            let text = format_size(n).replace(" bytes", "");
            assert_eq!(parse_size(&text), Ok(n), "{text}");
        }
    }
}
