//! Link and bottleneck models.

use std::time::Duration;

use rand::Rng;

/// Impairments of the link from the sender to one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Probability that a packet is lost, independently of every other.
    pub loss: f64,
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
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            duplicate: 0.0,
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
        }
    }
}

impl LinkConfig {
    /// Decides the fate of one packet: the delays after which its copies arrive
    /// (empty if lost). Consumes a fixed number of draws from `rng` per packet,
    /// so changing one probability does not reshuffle unrelated decisions.
    pub(crate) fn fate(&self, rng: &mut impl Rng, out: &mut Vec<Duration>) {
        out.clear();
        let lost = rng.random::<f64>() < self.loss;
        let reordered = rng.random::<f64>() < self.reorder;
        let duplicated = rng.random::<f64>() < self.duplicate;
        let jitter_a = rng.random::<f64>();
        let jitter_b = rng.random::<f64>();
        if lost {
            return;
        }
        let mut base = self.delay + self.jitter.mul_f64(jitter_a);
        if reordered {
            base += self.reorder_delay;
        }
        out.push(base);
        if duplicated {
            out.push(self.delay + self.jitter.mul_f64(jitter_b));
        }
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
