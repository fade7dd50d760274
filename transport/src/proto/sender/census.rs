//! The census: who a nack or hybrid sender asks for a routine STATUS, and
//! the group size it estimates from the answers (protocol.md §13.3, "Who
//! reports"; §13.4, "Group size"). Each PROBE carries a Sample exponent s:
//! the receivers whose id, mixed with the PROBE's Timestamp, falls in the
//! lowest 2^−s of the space answer it. Counting the answers a PROBE drew and
//! dividing by its share estimates the group without hearing from everyone;
//! the exponent then keeps about [`TARGET_SAMPLES`] answers a PROBE at any
//! size. Small groups (up to [`FULL_GROUP`]) are asked whole (s = 0), and
//! then the estimate is the receivers tracked.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::wire::feedback::{MAX_SAMPLE, sampled};

/// PROBEs remembered, with the answers each drew.
const ROUNDS: usize = 64;

/// The exponent of a sender's first PROBE, before it has heard anyone:
/// about 100 answers from 100,000 receivers, one from 1,000.
pub const START_SAMPLE: u8 = 10;

/// How far the exponent falls at each PROBE while nobody answers: a sender
/// with a few receivers asks all of them at its third PROBE.
const RAMP_STEP: u8 = 5;

/// Groups up to this size are asked whole, every receiver reporting as it
/// would without a census; a group estimated above it is sampled.
pub const FULL_GROUP: f64 = 32.0;

/// Routine answers wanted per PROBE in a sampled group.
pub const TARGET_SAMPLES: f64 = 4.0;

/// Sampled PROBEs the estimate is taken over, at most.
const ESTIMATE_ROUNDS: usize = 32;

/// Answers from distinct /64s counted per PROBE, at most.
const MAX_PREFIXES: usize = 64;

/// One PROBE sent: its Timestamp, its exponent, when, and the distinct
/// receivers whose routine answer named it.
#[derive(Debug, Clone)]
struct Round {
    ts: u64,
    sample: u8,
    at: Instant,
    heard: u32,
    /// Whether DATA went out since the PROBE before: receivers answer only
    /// with reply credit, which DATA earns (protocol.md §13.5), so a PROBE
    /// of a quiet sender draws few answers and says nothing of the group.
    active: bool,
    /// The /64s answers came from: one counts per /64, so that a host's
    /// made-up ids, sampled or mined to be, add at most one an answer.
    prefixes: Vec<Ipv6Addr>,
}

/// The sampling state of a sender (see the module's documentation).
#[derive(Debug, Default)]
pub(super) struct Census {
    rounds: VecDeque<Round>,
    /// Whether any receiver ever answered: the opening ramp is over.
    heard: bool,
    /// The latest estimate, once there is one.
    estimate: Option<f64>,
}

impl Census {
    /// The exponent for a PROBE sent at `now` with Timestamp `ts`, once the
    /// estimate is updated from the PROBEs answered by now (those older than
    /// `settle`); `tracked` is the receivers tracked, `active` whether DATA
    /// went out since the last PROBE.
    pub(super) fn on_probe(
        &mut self,
        now: Instant,
        ts: u64,
        (settle, active): (Duration, bool),
        tracked: usize,
    ) -> u8 {
        let sample = if !self.heard {
            // The ramp: from START_SAMPLE down to 0 while nobody answers.
            self.rounds
                .back()
                .map_or(START_SAMPLE, |r| r.sample.saturating_sub(RAMP_STEP))
        } else {
            let last = self.sample();
            match self.update(now, settle, tracked) {
                Some(n) if n <= FULL_GROUP && last == 0 || n <= FULL_GROUP / 2.0 => 0,
                Some(n) => ((n / TARGET_SAMPLES).log2().ceil().max(1.0) as u8).min(MAX_SAMPLE),
                // Sampled, with no answer to go by yet: as before.
                None => last,
            }
        };
        if self.rounds.len() >= ROUNDS {
            self.rounds.pop_front();
        }
        self.rounds.push_back(Round {
            ts,
            sample,
            at: now,
            heard: 0,
            active,
            prefixes: Vec::new(),
        });
        sample
    }

    /// The exponent the latest PROBE carried (0 before any).
    pub(super) fn sample(&self) -> u8 {
        self.rounds.back().map_or(0, |r| r.sample)
    }

    /// Whether the group is sampled: there is an estimate, and the latest
    /// PROBE asked less than the whole group, so that receivers not asked
    /// are silent by rule. (The opening ramp, before an estimate, is not.)
    pub(super) fn sampling(&self) -> bool {
        self.estimate.is_some() && self.sample() > 0
    }

    /// A routine answer (a STATUS whose Echo names the PROBE of `ts`) from
    /// `receiver` in /64 `prefix` (`None`: no source address), its first
    /// naming that PROBE: counted if the PROBE asked it and no answer from
    /// its /64 was counted for the PROBE yet.
    pub(super) fn on_answer(&mut self, receiver: u64, ts: u64, prefix: Option<Ipv6Addr>) {
        self.heard = true;
        let Some(r) = self.rounds.iter_mut().rev().find(|r| r.ts == ts) else {
            return;
        };
        if !sampled(receiver, ts, r.sample) {
            return;
        }
        if let Some(p) = prefix {
            if r.prefixes.contains(&p) || r.prefixes.len() >= MAX_PREFIXES {
                return;
            }
            r.prefixes.push(p);
        }
        r.heard = r.heard.saturating_add(1);
    }

    /// Any STATUS at all ends the ramp.
    pub(super) fn on_status(&mut self) {
        self.heard = true;
    }

    /// The group size estimate, at least 1 once anyone was heard; `None`
    /// before.
    pub(super) fn estimate(&self) -> Option<f64> {
        self.estimate
    }

    /// Re-estimates the group: over the last sampled PROBEs that have had
    /// `settle` to draw their answers (or have drawn some), the answers
    /// heard over the share asked (Σ heard / Σ 2^−s, the likeliest size for
    /// Poisson counts); asked whole, the receivers tracked. `None` while
    /// sampled with no PROBE to go by.
    fn update(&mut self, now: Instant, settle: Duration, tracked: usize) -> Option<f64> {
        let settled = self
            .rounds
            .iter()
            .rev()
            .filter(|r| r.sample > 0 && (r.heard > 0 || r.active && r.at + settle <= now))
            .take(ESTIMATE_ROUNDS);
        let (mut heard, mut share) = (0.0, 0.0);
        for r in settled {
            heard += r.heard as f64;
            share += (-(r.sample as f64)).exp2();
        }
        // Asked whole, the table is the count. Sampled, a round that drew
        // nobody still counts (it says the group is small); with no round
        // to go by (the sender was quiet), the estimate stands.
        let n = if self.sample() == 0 {
            (tracked as f64).max(1.0)
        } else if share > 0.0 {
            (heard / share).max(1.0)
        } else {
            return None;
        };
        self.estimate = Some(n);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group of `n` receivers answering every PROBE that asks them (no
    /// loss): the estimate settles within a factor 2 of `n`, and the
    /// answers per PROBE stay near the target however large the group.
    fn settle(n: u64) -> (f64, f64) {
        let mut c = Census::default();
        let t0 = Instant::now();
        let mut answers = 0u64;
        let probes = 200u64;
        for i in 0..probes {
            let now = t0 + Duration::from_millis(25 * i);
            let ts = 25_000 * i + 7;
            let tracked = if c.sample() == 0 { n as usize } else { 0 };
            let s = c.on_probe(now, ts, (Duration::from_millis(10), true), tracked);
            for id in 0..n {
                let id = groupcast_fec::splitmix64(id);
                if sampled(id, ts, s) {
                    c.on_answer(id, ts, None);
                    if i >= probes / 2 {
                        answers += 1;
                    }
                }
            }
        }
        (c.estimate().unwrap(), answers as f64 / (probes / 2) as f64)
    }

    #[test]
    fn the_estimate_is_within_a_factor_two_at_every_size() {
        for n in [10u64, 1_000, 100_000] {
            let (est, per_probe) = settle(n);
            assert!(est >= n as f64 / 2.0 && est <= n as f64 * 2.0, "{n}: {est}");
            if n as f64 > FULL_GROUP {
                assert!(per_probe <= 3.0 * TARGET_SAMPLES, "{n}: {per_probe}");
            } else {
                assert_eq!(per_probe, n as f64, "a small group is asked whole");
            }
        }
    }

    /// Before anyone answers, the exponent ramps from START_SAMPLE to 0.
    #[test]
    fn nobody_heard_ramps_to_the_whole_group() {
        let mut c = Census::default();
        let t0 = Instant::now();
        let got: Vec<u8> = (0..4)
            .map(|i| c.on_probe(t0, i, (Duration::ZERO, true), 0))
            .collect();
        assert_eq!(got, [START_SAMPLE, START_SAMPLE - RAMP_STEP, 0, 0]);
        assert!(!c.sampling());
    }
}
