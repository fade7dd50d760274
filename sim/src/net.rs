//! Link and bottleneck models.

use std::time::Duration;

/// A Gilbert–Elliott burst-loss channel: before each packet the channel moves
/// from the good state to the bad one with probability `p_enter`, and back
/// with probability `p_leave`. Every packet is lost in the bad state; the
/// link's `loss` applies in the good state. Bursts last 1/`p_leave` packets on
/// average, and the channel spends p_enter/(p_enter + p_leave) of the time in
/// the bad state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Probability of moving from the good state to the bad one, per packet.
    pub p_enter: f64,
    /// Probability of moving from the bad state to the good one, per packet.
    pub p_leave: f64,
}

impl Burst {
    /// The long-run share of packets lost with good-state loss `loss`.
    pub fn mean_loss(&self, loss: f64) -> f64 {
        let total = self.p_enter + self.p_leave;
        if total <= 0.0 {
            return loss;
        }
        let bad = self.p_enter / total;
        bad + (1.0 - bad) * loss
    }
}

/// Impairments of the link from the sender to one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Probability that a packet is lost, independently of every other (in
    /// the good state, when `burst` is set).
    pub loss: f64,
    /// Gilbert–Elliott burst loss on top of `loss`.
    pub burst: Option<Burst>,
    /// Probability that a packet is held back by `reorder_delay`, so later
    /// packets overtake it.
    pub reorder: f64,
    /// How long a reordered packet is held back.
    pub reorder_delay: Duration,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per packet.
    pub jitter: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            duplicate: 0.0,
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
        }
    }
}

/// xoshiro256++ (Blackman and Vigna), seeded through splitmix64: 32 bytes of
/// state per link and about a nanosecond per draw, where ChaCha8's state
/// spans several cache lines, which matters with 10,000 links. Written out
/// here so that runs stay reproducible whatever version of `rand` is in use.
#[derive(Debug, Clone)]
pub(crate) struct LinkRng([u64; 4]);

impl LinkRng {
    pub(crate) fn seed_from_u64(mut seed: u64) -> Self {
        let mut next = || {
            let z = groupcast_fec::splitmix64(seed);
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z
        };
        Self([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// A uniform draw in [0, 1).
    pub(crate) fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The state of one receiver's link during a run: its generator, its loss
/// and its burst channel's state.
pub(crate) struct LinkState {
    pub(crate) rng: LinkRng,
    /// Good-state loss of this link (the group's, or its own from a loss list).
    pub(crate) loss: f64,
    /// Whether the burst channel is in the bad state.
    pub(crate) bad: bool,
}

/// Where the copies of one packet go: arrival offsets beyond the link's base
/// delay, in nanoseconds. Empty if the packet is lost.
#[derive(Debug, Default)]
pub(crate) struct Fate {
    pub(crate) copies: [u64; 2],
    pub(crate) n: usize,
}

impl Fate {
    pub(crate) fn extra(&self) -> &[u64] {
        &self.copies[..self.n]
    }
}

impl LinkConfig {
    /// Decides the fate of one packet on `link`. Draws come from the link's own
    /// generator, one per impairment that is switched on, so a run is a
    /// function of the configuration and the seed.
    pub(crate) fn fate(&self, link: &mut LinkState) -> Fate {
        let mut fate = Fate::default();
        if let Some(b) = &self.burst {
            let u = link.rng.random();
            link.bad = if link.bad {
                u >= b.p_leave
            } else {
                u < b.p_enter
            };
        }
        let lost = link.loss > 0.0 && link.rng.random() < link.loss;
        let reordered = self.reorder > 0.0 && link.rng.random() < self.reorder;
        let duplicated = self.duplicate > 0.0 && link.rng.random() < self.duplicate;
        let (ja, jb) = if self.jitter.is_zero() {
            (0, 0)
        } else {
            let j = self.jitter.as_nanos() as f64;
            (
                (j * link.rng.random()) as u64,
                (j * link.rng.random()) as u64,
            )
        };
        if lost || link.bad {
            return fate;
        }
        let mut first = ja;
        if reordered {
            first += self.reorder_delay.as_nanos() as u64;
        }
        fate.copies[0] = first;
        fate.n = 1;
        if duplicated {
            fate.copies[1] = jb;
            fate.n = 2;
        }
        fate
    }
}

/// A shared bottleneck in front of every receiver: a FIFO queue drained at
/// `rate`, dropping at the tail when `queue_bytes` would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bottleneck {
    /// Drain rate in bytes per second.
    pub rate: u64,
    /// Queue capacity in bytes.
    pub queue_bytes: u64,
}

/// State of a [`Bottleneck`] during a run.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// Virtual time (ns) at which the queue is empty again.
    busy_until: u64,
}

impl Queue {
    /// Enqueues `len` bytes at `now`; returns when they leave, or `None` if the
    /// queue is full and they are dropped.
    pub(crate) fn push(&mut self, b: &Bottleneck, now: u64, len: usize) -> Option<u64> {
        let start = self.busy_until.max(now);
        let backlog = (start - now) as u128 * b.rate as u128 / 1_000_000_000;
        if backlog + len as u128 > b.queue_bytes as u128 {
            return None;
        }
        let tx = len as u128 * 1_000_000_000 / b.rate.max(1) as u128;
        self.busy_until = start + tx as u64;
        Some(self.busy_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss rate and burst length of the Gilbert–Elliott channel over a
    /// million packets, against its closed form.
    #[test]
    fn gilbert_elliott_loss_and_burst_length() {
        let burst = Burst {
            p_enter: 0.02,
            p_leave: 0.25,
        };
        let link = LinkConfig {
            loss: 0.02,
            burst: Some(burst),
            ..LinkConfig::default()
        };
        let mut state = LinkState {
            rng: LinkRng::seed_from_u64(7),
            loss: link.loss,
            bad: false,
        };
        let (mut lost, mut bad_runs, mut bad_packets, mut was_bad) = (0u32, 0u32, 0u32, false);
        let n = 1_000_000;
        for _ in 0..n {
            let fate = link.fate(&mut state);
            lost += u32::from(fate.n == 0);
            if state.bad {
                bad_packets += 1;
                bad_runs += u32::from(!was_bad);
            }
            was_bad = state.bad;
        }
        let rate = lost as f64 / n as f64;
        let mean = burst.mean_loss(0.02);
        assert!((rate - mean).abs() < 0.004, "{rate} vs {mean}");
        let run = bad_packets as f64 / bad_runs as f64;
        assert!(
            (run - 4.0).abs() < 0.15,
            "bursts of {run} packets, expected 1/p_leave = 4"
        );
    }

    #[test]
    fn impairments_that_are_off_draw_nothing_and_keep_packets() {
        let link = LinkConfig::default();
        let mut state = LinkState {
            rng: LinkRng::seed_from_u64(1),
            loss: 0.0,
            bad: false,
        };
        let before = state.rng.clone().random();
        let fate = link.fate(&mut state);
        assert_eq!(fate.extra(), &[0]);
        assert_eq!(state.rng.random(), before);
    }
}
