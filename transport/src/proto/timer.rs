//! Timers, after quinn-proto's `connection/timer.rs`: a small fixed table of
//! deadlines, armed and stopped where the state they stand for changes.
//! `poll_timeout` takes the earliest, and `handle_timeout` acts on those that
//! have expired. A deadline that follows from several inputs (the fallback's)
//! is re-armed after every input that may move it, as quinn-proto re-arms its
//! loss-detection timer. Deadlines that follow from a budget (pacing, the
//! repair and OBJECT_INFO budgets) are not timers: they are computed from the
//! token buckets when asked.

use std::collections::{BTreeSet, HashMap};
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
    /// The next fallback round is due, if no repair is queued by then
    /// (protocol.md §13.4, "Fallback").
    Fallback = 3,
    /// A repair symbol waits for the encoder a worker is building: until it
    /// is back, or until then. Not a wake-up once passed (the sender then
    /// builds the encoder itself).
    Encoder = 4,
    /// The next AUTH is due (protocol.md §15.2).
    Auth = 5,
}

impl Timer {
    const COUNT: usize = 6;
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

    /// The earliest armed deadline but `skip`'s.
    pub(crate) fn next_timeout_except(&self, skip: Timer) -> Option<Instant> {
        self.data
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != skip as usize)
            .filter_map(|(_, t)| *t)
            .min()
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.data[timer as usize].is_some_and(|t| t <= now)
    }
}

/// A block: (object, SBN).
type Block = (u32, u8);

/// The receiver's per-block NACK deadlines: any number of them, each block at
/// most once, the earliest at hand (no re-minimising over every block).
#[derive(Debug, Default)]
pub(crate) struct BlockTimers {
    at: HashMap<Block, Instant>,
    order: BTreeSet<(Instant, Block)>,
}

impl BlockTimers {
    /// Arms `block`'s timer for `t`, replacing an earlier deadline.
    pub(crate) fn insert(&mut self, block: Block, t: Instant) {
        if let Some(old) = self.at.insert(block, t) {
            self.order.remove(&(old, block));
        }
        self.order.insert((t, block));
    }

    /// Disarms `block`'s timer; whether it was armed.
    pub(crate) fn remove(&mut self, block: Block) -> bool {
        match self.at.remove(&block) {
            Some(t) => {
                self.order.remove(&(t, block));
                true
            }
            None => false,
        }
    }

    /// Whether `block` has a timer.
    pub(crate) fn contains(&self, block: Block) -> bool {
        self.at.contains_key(&block)
    }

    /// `block`'s deadline.
    pub(crate) fn get(&self, block: Block) -> Option<Instant> {
        self.at.get(&block).copied()
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.order.first().map(|(t, _)| *t)
    }

    /// Disarms every timer due at `now`.
    pub(crate) fn remove_due(&mut self, now: Instant) {
        while let Some(&(t, block)) = self.order.first() {
            if t > now {
                break;
            }
            self.order.pop_first();
            self.at.remove(&block);
        }
    }

    /// Moves every deadline by `f`.
    pub(crate) fn map(&mut self, f: impl Fn(Instant) -> Instant) {
        self.order = self
            .at
            .iter_mut()
            .map(|(b, t)| {
                *t = f(*t);
                (*t, *b)
            })
            .collect();
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
        let next = |t: &TimerTable| t.next_timeout_except(Timer::Encoder);
        assert_eq!(next(&t), None);
        t.set(Timer::Expiry, t0 + Duration::from_secs(2));
        t.set(Timer::Probe, t0 + Duration::from_millis(25));
        assert_eq!(next(&t), Some(t0 + Duration::from_millis(25)));
        assert!(!t.is_expired(Timer::Probe, t0));
        assert!(t.is_expired(Timer::Probe, t0 + Duration::from_millis(25)));
        t.stop(Timer::Probe);
        assert!(!t.is_expired(Timer::Probe, t0 + Duration::from_secs(9)));
        assert_eq!(next(&t), Some(t0 + Duration::from_secs(2)));
        t.set_opt(Timer::Expiry, None);
        assert_eq!(t.get(Timer::Expiry), None);
        assert_eq!(next(&t), None);
    }

    #[test]
    fn the_timer_skipped_is_not_next() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        t.set(Timer::Encoder, t0);
        t.set(Timer::Fallback, t0 + Duration::from_secs(1));
        assert_eq!(
            t.next_timeout_except(Timer::Encoder),
            Some(t0 + Duration::from_secs(1))
        );
        assert_eq!(t.next_timeout_except(Timer::Fallback), Some(t0));
    }

    #[test]
    fn block_timers_keep_the_earliest_at_hand() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = BlockTimers::default();
        t.insert((0, 1), ms(30));
        t.insert((0, 2), ms(10));
        t.insert((1, 0), ms(20));
        assert_eq!(t.next(), Some(ms(10)));
        // Re-arming replaces the old deadline.
        t.insert((0, 2), ms(40));
        assert_eq!((t.next(), t.get((0, 2))), (Some(ms(20)), Some(ms(40))));
        assert!(t.remove((1, 0)) && !t.remove((1, 0)));
        assert_eq!(t.next(), Some(ms(30)));
        t.map(|d| t0 + (d - t0) / 2);
        assert_eq!((t.next(), t.get((0, 2))), (Some(ms(15)), Some(ms(20))));
        t.remove_due(ms(15));
        assert!(!t.contains((0, 1)) && t.contains((0, 2)));
        assert_eq!(t.next(), Some(ms(20)));
    }
}
