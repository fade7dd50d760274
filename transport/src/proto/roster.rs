//! `Roster`: which new receiver ids a sender admits to its table, by source
//! address and by /64, and which it had to refuse (protocol.md §13.4,
//! "Receivers admitted"). It keeps counts and buckets, never a receiver's
//! state (that is `Tracked` in `sender.rs`), and reads no clock.
//!
//! A host owns a /64, and STATUS needs no reply, so a forger can report from
//! any address of its /64: a cap per address alone lets it fill the table.
//! So a /64 holds at most `max_receivers_per_prefix` ids (a share of
//! `max_receivers`, so that one /64 never fills the table), and admits new
//! ones at most at `new_receivers_per_prefix` per second (a token bucket with
//! four seconds' worth), as well as at most `max_receivers_per_source` per
//! address.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::feedback::FeedbackConfig;
use super::pacing::TokenBucket;

/// Seconds' worth of new ids a /64's bucket holds.
pub(crate) const NEW_RECEIVER_BURST_SECONDS: u32 = 4;

/// The /64 of a source address, the unit a host owns; an IPv4 source (or an
/// IPv4-mapped one) is its own prefix. Link-local sources all share fe80::/64: any host on the link
/// may use any of its addresses.
pub(crate) fn prefix_of(a: IpAddr) -> Ipv6Addr {
    match a.to_canonical() {
        IpAddr::V6(v6) => Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX)),
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    }
}

/// Why a new receiver id was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_receivers` are tracked.
    Table,
    /// Its address has `max_receivers_per_source` ids tracked.
    Source,
    /// Its /64 has `max_receivers_per_prefix` ids tracked.
    Prefix,
    /// Its /64 admitted `new_receivers_per_prefix` per second lately.
    Rate,
}

#[derive(Debug, Clone, Copy)]
struct Prefix {
    /// Tracked receivers from this /64.
    receivers: usize,
    /// New ids it may still admit.
    bucket: TokenBucket,
    last: Instant,
}

/// Admission of new receiver ids: see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    /// Tracked receivers per source address (of those heard with one).
    per_source: HashMap<IpAddr, usize>,
    /// Per /64: tracked receivers and the bucket of new ids. An entry goes
    /// when it tracks nobody and its bucket is full again.
    per_prefix: HashMap<Ipv6Addr, Prefix>,
    /// The distinct /64s (IPv4: addresses) a receiver was ever admitted
    /// from, for `min_receivers`; at most `max_receivers` of them.
    prefixes_heard: HashSet<Ipv6Addr>,
    /// Receivers admitted without a source address (each its own).
    unsourced_heard: u64,
    /// Ids refused and not admitted since, with when they were last
    /// refused; at most `max_receivers` of them.
    refused: HashMap<u64, Instant>,
    /// When an id was last refused that `refused` had no room for.
    unremembered_at: Option<Instant>,
    /// When `refused`, and when `per_prefix`, were last swept for room: a
    /// full map is swept at most once per [`SWEEP_EVERY`], so that a flood
    /// of new ids does not cost a sweep each.
    refused_swept: Option<Instant>,
    prefixes_swept: Option<Instant>,
}

/// How often a full map of [`Roster`] is swept for entries that may go.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Whether a sweep last done at `last` may be done again at `now`.
fn may_sweep(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_some_and(|l| now < l + SWEEP_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

impl Roster {
    /// Admits `id` (not tracked yet), heard from `source`, with `tracked`
    /// receivers in the table; on success it counts against its address and
    /// its /64.
    pub(crate) fn admit(
        &mut self,
        fb: &FeedbackConfig,
        now: Instant,
        id: u64,
        source: Option<IpAddr>,
        tracked: usize,
    ) -> Result<(), Refusal> {
        let refusal = self.check(fb, now, source, tracked);
        if refusal.is_err() {
            self.note_refused(fb, now, id);
            return refusal;
        }
        self.refused.remove(&id);
        let Some(a) = source else {
            self.unsourced_heard += 1;
            return Ok(());
        };
        *self.per_source.entry(a).or_default() += 1;
        let p = prefix_of(a);
        let rate = fb.new_receivers_per_prefix as f64;
        let cap = rate * NEW_RECEIVER_BURST_SECONDS as f64;
        let entry = self.per_prefix.entry(p).or_insert(Prefix {
            receivers: 0,
            bucket: TokenBucket::new(cap),
            last: now,
        });
        entry.receivers += 1;
        entry.bucket.spend(1.0);
        if self.prefixes_heard.len() < fb.max_receivers.max(1) {
            self.prefixes_heard.insert(p);
        }
        Ok(())
    }

    fn check(
        &mut self,
        fb: &FeedbackConfig,
        now: Instant,
        source: Option<IpAddr>,
        tracked: usize,
    ) -> Result<(), Refusal> {
        if tracked >= fb.max_receivers {
            return Err(Refusal::Table);
        }
        let Some(a) = source else {
            return Ok(());
        };
        if self.per_source.get(&a).copied().unwrap_or(0) >= fb.max_receivers_per_source {
            return Err(Refusal::Source);
        }
        let p = prefix_of(a);
        let rate = fb.new_receivers_per_prefix as f64;
        let cap = rate * NEW_RECEIVER_BURST_SECONDS as f64;
        if !self.per_prefix.contains_key(&p)
            && self.per_prefix.len() >= fb.max_receivers.max(1)
            && may_sweep(&mut self.prefixes_swept, now)
        {
            // Forget the /64s that track nobody and whose buckets are full
            // again: they cost nothing. (The others track someone, or
            // admitted someone within the bucket's span.)
            self.per_prefix.retain(|_, e| {
                e.receivers > 0
                    || e.bucket.tokens()
                        + now.saturating_duration_since(e.last).as_secs_f64() * rate
                        < cap
            });
        }
        if !self.per_prefix.contains_key(&p) && self.per_prefix.len() >= fb.max_receivers.max(1) {
            return Err(Refusal::Table);
        }
        let Some(e) = self.per_prefix.get_mut(&p) else {
            return Ok(());
        };
        if e.receivers >= fb.max_receivers_per_prefix {
            return Err(Refusal::Prefix);
        }
        e.bucket.refill(
            now.saturating_duration_since(e.last).as_secs_f64(),
            rate,
            cap,
        );
        e.last = now;
        if !e.bucket.has(1.0) {
            return Err(Refusal::Rate);
        }
        Ok(())
    }

    fn note_refused(&mut self, fb: &FeedbackConfig, now: Instant, id: u64) {
        let room = fb.max_receivers.max(1);
        if !self.refused.contains_key(&id) && self.refused.len() >= room {
            // Forget those not heard for a receiver timeout: they went away.
            if may_sweep(&mut self.refused_swept, now) {
                self.refused
                    .retain(|_, &mut at| now.saturating_duration_since(at) < fb.receiver_timeout);
            }
            if self.refused.len() >= room {
                self.unremembered_at = Some(now);
                return;
            }
        }
        self.refused.insert(id, now);
    }

    /// A tracked receiver heard from `source` is no longer tracked.
    pub(crate) fn release(&mut self, source: Option<IpAddr>) {
        let Some(a) = source else {
            return;
        };
        if let Entry::Occupied(mut n) = self.per_source.entry(a) {
            *n.get_mut() -= 1;
            if *n.get() == 0 {
                n.remove();
            }
        }
        if let Some(e) = self.per_prefix.get_mut(&prefix_of(a)) {
            e.receivers = e.receivers.saturating_sub(1);
        }
    }

    /// Receivers that count towards `min_receivers`: the distinct /64s any
    /// receiver was ever admitted from, plus each receiver admitted without
    /// a source address.
    /// Of `tracked` receivers, those counted with at most `cap` per /64
    /// (the receivers tracked without a source address count one each): a
    /// group's size as one host cannot inflate it.
    pub(crate) fn capped(&self, tracked: usize, cap: usize) -> usize {
        let sourced: usize = self.per_prefix.values().map(|p| p.receivers).sum();
        let counted: usize = self.per_prefix.values().map(|p| p.receivers.min(cap)).sum();
        counted + tracked.saturating_sub(sourced)
    }

    pub(crate) fn distinct_heard(&self) -> u64 {
        self.prefixes_heard.len() as u64 + self.unsourced_heard
    }

    /// The distinct /64s a receiver was ever admitted from (at most
    /// `max_receivers`).
    pub(crate) fn prefixes_heard(&self) -> u64 {
        self.prefixes_heard.len() as u64
    }

    /// Ids refused within `within` of `now` and not admitted since: they may
    /// be receivers the sender knows nothing of. At least one when an id it
    /// had no room to remember was refused then.
    pub(crate) fn left_refused(&self, now: Instant, within: Duration) -> u64 {
        let recent = |at: Instant| now.saturating_duration_since(at) < within;
        let n = self.refused.values().filter(|&&at| recent(at)).count() as u64;
        if n == 0 && self.unremembered_at.is_some_and(recent) {
            1
        } else {
            n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb() -> FeedbackConfig {
        FeedbackConfig {
            max_receivers: 100,
            max_receivers_per_source: 4,
            max_receivers_per_prefix: 10,
            new_receivers_per_prefix: 5,
            ..FeedbackConfig::default()
        }
    }

    #[test]
    fn prefixes_are_the_top_64_bits() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(prefix_of(a), prefix_of(b));
        assert_ne!(prefix_of(a), prefix_of(c));
        assert_eq!(prefix_of(a), "2001:db8:1:2::".parse::<Ipv6Addr>().unwrap());
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let w4: IpAddr = "192.0.2.2".parse().unwrap();
        assert_ne!(prefix_of(v4), prefix_of(w4));
        let mapped: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        assert_eq!(prefix_of(mapped), prefix_of(w4));
    }

    #[test]
    fn caps_apply_per_address_per_prefix_and_over_time() {
        let fb = fb();
        let t0 = Instant::now();
        let mut r = Roster::default();
        let addr = |i: u32| -> Option<IpAddr> { Some(format!("2001:db8::{i:x}").parse().unwrap()) };
        let mut tracked = 0;
        let mut id = 0;
        let mut admit = |r: &mut Roster, t: Instant, a: Option<IpAddr>, tracked: &mut usize| {
            id += 1;
            let got = r.admit(&fb, t, id, a, *tracked);
            if got.is_ok() {
                *tracked += 1;
            }
            got
        };
        for _ in 0..4 {
            assert_eq!(admit(&mut r, t0, addr(1), &mut tracked), Ok(()));
        }
        assert_eq!(
            admit(&mut r, t0, addr(1), &mut tracked),
            Err(Refusal::Source)
        );
        // The bucket holds 4 s × 5/s = 20, the prefix 10.
        for i in 2..8 {
            assert_eq!(admit(&mut r, t0, addr(i), &mut tracked), Ok(()));
        }
        assert_eq!(
            admit(&mut r, t0, addr(9), &mut tracked),
            Err(Refusal::Prefix)
        );
        // Another /64 is not affected.
        let other = Some("2001:db8:0:1::1".parse().unwrap());
        assert_eq!(admit(&mut r, t0, other, &mut tracked), Ok(()));
        assert_eq!(r.distinct_heard(), 2);
        // Released ids make room, but the bucket (20 − 10 spent) runs dry.
        for _ in 0..10 {
            r.release(addr(2));
        }
        for i in 10..20 {
            assert_eq!(admit(&mut r, t0, addr(i), &mut tracked), Ok(()), "{i}");
        }
        for _ in 0..10 {
            r.release(addr(10));
        }
        assert_eq!(
            admit(&mut r, t0, addr(30), &mut tracked),
            Err(Refusal::Rate)
        );
        // One new id per 200 ms.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(admit(&mut r, t1, addr(30), &mut tracked), Ok(()));
        assert_eq!(
            admit(&mut r, t1, addr(31), &mut tracked),
            Err(Refusal::Rate)
        );
        assert!(r.left_refused(t1, Duration::from_secs(1)) >= 1);
        assert_eq!(
            r.left_refused(t1 + Duration::from_secs(2), Duration::from_secs(1)),
            0
        );
    }
}
