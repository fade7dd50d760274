//! Parsing of the simulator's values from the command line and scenario
//! files: bursts, loss lists and group changes. Sizes, rates, durations and
//! probabilities are parsed by `groupcast::units`, re-exported here.

pub use groupcast::units::{parse_duration, parse_probability, parse_rate, parse_size};

/// Parses Gilbert–Elliott burst parameters "P_ENTER,P_LEAVE", each a
/// probability; p_leave must be above 0 (or the channel never recovers).
pub fn parse_burst(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("'{s}' is not P_ENTER,P_LEAVE (for example 0.01,0.5)"))?;
    let p_enter = parse_probability(a.trim())?;
    let p_leave: f64 = b
        .trim()
        .parse()
        .map_err(|_| format!("'{}' is not a number", b.trim()))?;
    if !(p_leave > 0.0 && p_leave <= 1.0) {
        return Err(format!(
            "p_leave {p_leave} must be above 0 and at most 1, or a burst never ends"
        ));
    }
    Ok((p_enter, p_leave))
}

/// A loss per receiver, from `--loss-list`.
#[derive(Debug, Clone, PartialEq)]
pub struct LossList(pub Vec<f64>);

/// Parses a loss list: comma-separated probabilities, each optionally
/// repeated with "xN", e.g. "0.01x900,0.2x100" for 900 receivers at 1% and
/// 100 at 20%.
pub fn parse_loss_list(s: &str) -> Result<LossList, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (p, n) = match part.split_once(['x', 'X']) {
            Some((p, n)) => (
                p,
                n.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("'{n}' in '{part}' is not a count"))?,
            ),
            None => (part, 1),
        };
        let p = parse_probability(p.trim())?;
        if out.len() + n > 1_000_000 {
            return Err("a loss list holds at most 1,000,000 entries".into());
        }
        out.extend(std::iter::repeat_n(p, n));
    }
    Ok(LossList(out))
}

/// Parses a group change "COUNT@SECONDS".
pub fn parse_change(s: &str) -> Result<(usize, f64), String> {
    let (n, t) = s
        .split_once('@')
        .ok_or_else(|| format!("'{s}' is not COUNT@SECONDS (for example 100@2.5)"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("'{n}' is not a count of receivers"))?;
    let t: f64 = t
        .trim()
        .parse()
        .map_err(|_| format!("'{t}' is not a time in seconds"))?;
    if !(0.0..=86_400.0).contains(&t) {
        return Err(format!("time {t} s must lie between 0 and 86400"));
    }
    Ok((n, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities() {
        assert!(parse_probability("1").is_err());
        assert!(parse_probability("-0.1").is_err());
        assert_eq!(parse_probability("0.25"), Ok(0.25));
    }

    #[test]
    fn bursts_lists_and_changes() {
        assert_eq!(parse_burst("0.01,0.5"), Ok((0.01, 0.5)));
        assert!(parse_burst("0.01,0").unwrap_err().contains("never ends"));
        assert!(parse_burst("0.01").is_err());
        assert_eq!(
            parse_loss_list("0.1x2,0.2"),
            Ok(LossList(vec![0.1, 0.1, 0.2]))
        );
        assert!(parse_loss_list("0.1x").is_err());
        assert!(parse_loss_list("2").is_err());
        assert_eq!(parse_change("10@1.5"), Ok((10, 1.5)));
        assert!(parse_change("10").is_err());
    }
}
