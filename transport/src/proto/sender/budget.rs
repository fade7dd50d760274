//! The budgets of a nack or hybrid sender's answers (protocol.md §13.4,
//! "Answering NACKs" and "Repair cap"): repair DATA and OBJECT_INFO asked
//! for by NACKs spend the repair budget, encoder builds for repair the build
//! budget, and NACKs themselves a NACK budget, overall and per source
//! address. What is owed (the OBJECT_INFO queue) waits here too. Nothing
//! here knows receivers, windows or blocks; the rates come from the caller.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::proto::pacing::TokenBucket;

/// Source addresses whose NACK buckets are kept at once.
const MAX_NACK_SOURCES: usize = 4096;

/// OBJECT_INFO packets NACKs may have queued at once.
const MAX_INFO_QUEUED: usize = 64;

/// A token bucket for one NACK source.
struct SourceBucket {
    bucket: TokenBucket,
    last: Instant,
}

/// The answer budgets and the OBJECT_INFO owed.
pub(super) struct Budget {
    pub(super) repair: TokenBucket,
    pub(super) build: TokenBucket,
    nacks: TokenBucket,
    /// When the budgets were last refilled.
    pub(super) last: Option<Instant>,
    /// Objects whose OBJECT_INFO NACKs asked for, oldest first.
    pub(super) info_queue: VecDeque<u32>,
    /// NACK rate buckets per source address.
    sources: HashMap<IpAddr, SourceBucket>,
}

impl Budget {
    /// Full budgets for NACKs at `max_nack_rate` a second.
    pub(super) fn new(max_nack_rate: u32) -> Self {
        let nack_tokens = (max_nack_rate as f64 / 10.0).max(1.0);
        Self {
            repair: TokenBucket::new(64.0 * 1024.0),
            build: TokenBucket::new(64.0 * 1024.0),
            nacks: TokenBucket::new(nack_tokens),
            last: None,
            info_queue: VecDeque::new(),
            sources: HashMap::new(),
        }
    }

    /// Refills the budgets for the time since the last refill: repair and
    /// builds at `repair_rate` bytes a second, NACKs at `max_nack_rate`.
    pub(super) fn refill(&mut self, now: Instant, repair_rate: f64, max_nack_rate: u32) {
        let last = self.last.unwrap_or(now);
        let dt = now.saturating_duration_since(last).as_secs_f64();
        let cap = (repair_rate * 0.01).max(64.0 * 1024.0);
        self.repair.refill(dt, repair_rate, cap);
        self.build.refill(dt, repair_rate, cap);
        let ncap = (max_nack_rate as f64 / 10.0).max(1.0);
        self.nacks.refill(dt, max_nack_rate as f64, ncap);
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }

    /// Takes one token of the overall NACK budget, if there is one.
    pub(super) fn take_nack(&mut self) -> bool {
        if !self.nacks.has(1.0) {
            return false;
        }
        self.nacks.spend(1.0);
        true
    }

    /// Takes one token from `src`'s NACK bucket (refilled at `rate` a
    /// second), if it has one.
    pub(super) fn take_source_token(&mut self, now: Instant, src: IpAddr, rate: u32) -> bool {
        let rate = rate.max(1) as f64;
        let cap = (rate / 10.0).max(1.0);
        if !self.sources.contains_key(&src) && self.sources.len() >= MAX_NACK_SOURCES {
            // Forget the sources whose buckets have refilled: they cost nothing.
            self.sources.retain(|_, b| {
                b.bucket.tokens() + now.saturating_duration_since(b.last).as_secs_f64() * rate < cap
            });
            if self.sources.len() >= MAX_NACK_SOURCES {
                return false;
            }
        }
        let b = self.sources.entry(src).or_insert(SourceBucket {
            bucket: TokenBucket::new(cap),
            last: now,
        });
        b.bucket.refill(
            now.saturating_duration_since(b.last).as_secs_f64(),
            rate,
            cap,
        );
        b.last = now;
        if !b.bucket.has(1.0) {
            return false;
        }
        b.bucket.spend(1.0);
        true
    }

    /// Queues `object`'s OBJECT_INFO, once, while there is room.
    pub(super) fn queue_info(&mut self, object: u32) {
        if !self.info_queue.contains(&object) && self.info_queue.len() < MAX_INFO_QUEUED {
            self.info_queue.push_back(object);
        }
    }

    /// The OBJECT_INFO to send next, if one is owed and the repair budget
    /// allows.
    pub(super) fn next_info(&mut self) -> Option<u32> {
        if self.info_queue.is_empty() || !self.repair.has_any() {
            return None;
        }
        self.info_queue.pop_front()
    }

    /// How long after the last refill the repair budget (with `build`, the
    /// build budget too) is out of debt at `rate` (at most 10 s).
    pub(super) fn repair_wait(&self, rate: f64, build: bool) -> Duration {
        let mut short = self.repair.debt();
        if build {
            short = short.max(self.build.debt());
        }
        if short < 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((short / rate).min(10.0) + 1e-9)
        }
    }

    /// When an owed OBJECT_INFO may go, if the repair budget holds it back.
    pub(super) fn info_due(&self, rate: f64) -> Option<Option<Instant>> {
        if self.info_queue.is_empty() || self.repair.has_any() {
            return None;
        }
        let wait = (self.repair.debt() / rate).min(10.0) + 1e-9;
        Some(self.last.map(|l| l + Duration::from_secs_f64(wait)))
    }
}
