//! The sender's clock and pacing: times are given, never read; the
//! pacing bucket holds the bytes the sender may send now.

use std::time::{Duration, Instant};

use super::config::{MAX_PACING_CATCH_UP, SenderConfig};
use crate::proto::pacing::TokenBucket;

/// The sender's clock and pacing bucket.
pub(super) struct Pace {
    /// The first time given; PROBE timestamps count from it.
    pub(super) epoch: Option<Instant>,
    /// The latest time given.
    pub(super) last: Option<Instant>,
    /// Pacing: bytes the sender may send now.
    pub(super) bucket: TokenBucket,
}

impl Pace {
    /// A clock given no time yet, and a bucket holding `tokens` bytes.
    pub(super) fn new(tokens: f64) -> Self {
        Self {
            epoch: None,
            last: None,
            bucket: TokenBucket::new(tokens),
        }
    }

    /// Microseconds from the epoch to `now`: the PROBE timestamps' clock.
    pub(super) fn micros(&self, now: Instant) -> u64 {
        self.epoch
            .map_or(0, |e| now.saturating_duration_since(e).as_micros() as u64)
    }

    /// Time from the first time given to the latest.
    pub(super) fn elapsed(&self) -> Duration {
        self.epoch
            .zip(self.last)
            .map_or(Duration::ZERO, |(s, l)| l.saturating_duration_since(s))
    }

    /// When pacing at `rate` (`None`: unpaced) next lets a datagram go, if
    /// the sender was given a time.
    pub(super) fn due(&self, rate: Option<u64>) -> Option<Instant> {
        match (rate, self.last) {
            (Some(rate), Some(last)) if !self.bucket.has_any() => {
                Some(last + Duration::from_secs_f64(self.bucket.debt() / rate as f64 + 1e-9))
            }
            (Some(_), Some(last)) => Some(last),
            _ => None,
        }
    }

    /// Refills the bucket at `rate` for the time from the latest time given
    /// to `now`.
    pub(super) fn refill(&mut self, now: Instant, rate: u64, config: &SenderConfig) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.bucket.refill(dt, rate as f64, burst_cap(config, rate));
        }
    }
}

/// How many bytes the pacing bucket may hold at `rate`: `burst`, one
/// datagram, or what `rate` sends in `pacing_granularity` (at most
/// [`MAX_PACING_CATCH_UP`]), whichever is the most.
fn burst_cap(config: &SenderConfig, rate: u64) -> f64 {
    let late =
        (rate as f64 * config.pacing_granularity.as_secs_f64()).min(MAX_PACING_CATCH_UP as f64);
    (config.burst.max(config.max_datagram as u64) as f64).max(late)
}
