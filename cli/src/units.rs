//! Parsing of sizes ("32MiB", "100MB", "4096") and rates ("100M", "1.5G") from the command line.

/// Parses a byte size: a number with an optional unit B, K/KB (1000), KiB (1024),
/// M/MB, MiB, G/GB, GiB. Case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, unit) = split_unit(s)?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}' (use B, KB, KiB, MB, MiB, GB or GiB)"
            ));
        }
    };
    let v = num * mult;
    if !(0.0..=1e15).contains(&v) {
        return Err(format!("size '{s}' is out of range"));
    }
    Ok(v.round() as u64)
}

/// Parses a rate in bits per second: a number with an optional k, M or G
/// (powers of 1000), optionally followed by "bit/s" or "bps".
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let (num, unit) = split_unit(s)?;
    let lower = unit.to_ascii_lowercase();
    let unit = lower.trim_end_matches("bit/s").trim_end_matches("bps");
    let mult = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        other => {
            return Err(format!(
                "unknown rate unit '{other}' in '{s}' (use k, M or G bits/s)"
            ));
        }
    };
    let v = num * mult;
    if !(1.0..=1e12).contains(&v) {
        return Err(format!("rate '{s}' must lie between 1 bit/s and 1 Tbit/s"));
    }
    Ok(v.round() as u64)
}

fn split_unit(s: &str) -> Result<(f64, &str), String> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let num: f64 = s[..end]
        .replace('_', "")
        .parse()
        .map_err(|_| format!("'{s}' does not start with a number"))?;
    Ok((num, s[end..].trim()))
}

/// Parses a probability between 0 and 1.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..1.0).contains(&p) {
        return Err(format!("{p} must be at least 0 and below 1"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5kib"), Ok(1536));
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100M"), Ok(100_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("64kbit/s"), Ok(64_000));
        assert!(parse_rate("0").is_err());
        assert!(parse_probability("1").is_err());
        assert_eq!(parse_probability("0.25"), Ok(0.25));
    }
}
