//! Timers, after quinn-proto's `connection/timer.rs`: a small fixed table of
//! deadlines, armed and stopped where the state they stand for changes.
//! `poll_timeout` takes the earliest, and `handle_timeout` acts on those that
//! have expired. Deadlines that follow from a budget (pacing, repair) are not
//! timers: they are computed from the token buckets when asked.

use std::time::Instant;

/// The sender's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The next PROBE is due (nack and hybrid modes).
    Probe = 0,
    /// Time to expire silent receivers and mark stalled ones.
    Expiry = 1,
    /// Every receiver that counts is done, and the linger after it ends.
    Linger = 2,
}

impl Timer {
    const COUNT: usize = 3;
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimerTable {
    data: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arms `timer` for `at` (replacing any earlier deadline).
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer as usize] = Some(at);
    }

    /// Arms `timer` for `at`, or stops it if `at` is `None`.
    pub(crate) fn set_opt(&mut self, timer: Timer, at: Option<Instant>) {
        self.data[timer as usize] = at;
    }

    /// The deadline of `timer`, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer as usize]
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    /// The earliest armed deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.data[timer as usize].is_some_and(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_armed_deadline_is_next_and_expires() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Expiry, t0 + Duration::from_secs(2));
        t.set(Timer::Probe, t0 + Duration::from_millis(25));
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_millis(25)));
        assert!(!t.is_expired(Timer::Probe, t0));
        assert!(t.is_expired(Timer::Probe, t0 + Duration::from_millis(25)));
        t.stop(Timer::Probe);
        assert!(!t.is_expired(Timer::Probe, t0 + Duration::from_secs(9)));
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_secs(2)));
        t.set_opt(Timer::Expiry, None);
        assert_eq!(t.get(Timer::Expiry), None);
        assert_eq!(t.next_timeout(), None);
    }
}
