//! Token buckets in virtual time, after quinn-proto's `pacing.rs`: one type
//! for the sender's four budgets (pacing, repair, encoder builds, NACKs) and
//! the per-source NACK buckets.
//!
//! A bucket holds tokens (bytes, or packets) that refill at a rate up to a
//! cap. Spending may take it below zero: a debt that later refills pay back,
//! so a datagram larger than what is left still goes, and the average holds.

/// A token bucket. Time comes in as elapsed seconds; nothing here reads a clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TokenBucket {
    tokens: f64,
}

impl TokenBucket {
    /// A bucket holding `tokens` to start with.
    pub(crate) fn new(tokens: f64) -> Self {
        Self { tokens }
    }

    /// Adds `dt` seconds' worth of tokens at `rate` per second, up to `cap`.
    pub(crate) fn refill(&mut self, dt: f64, rate: f64, cap: f64) {
        self.tokens = (self.tokens + dt * rate).min(cap);
    }

    /// Takes `n` tokens, going into debt if there are fewer.
    pub(crate) fn spend(&mut self, n: f64) {
        self.tokens -= n;
    }

    /// Whether anything is left (more than zero tokens).
    pub(crate) fn has_any(&self) -> bool {
        self.tokens > 0.0
    }

    /// Whether at least `n` tokens are there.
    pub(crate) fn has(&self, n: f64) -> bool {
        self.tokens >= n
    }

    /// How far below zero the bucket is (negative when it holds tokens).
    pub(crate) fn debt(&self) -> f64 {
        -self.tokens
    }

    /// The tokens held (negative in debt).
    pub(crate) fn tokens(&self) -> f64 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_to_the_cap_and_spends_into_debt() {
        let mut b = TokenBucket::new(100.0);
        b.spend(150.0);
        assert!(!b.has_any());
        assert_eq!(b.debt(), 50.0);
        b.refill(0.5, 200.0, 1000.0);
        assert_eq!(b.tokens(), 50.0);
        assert!(b.has_any() && b.has(50.0) && !b.has(51.0));
        b.refill(100.0, 200.0, 1000.0);
        assert_eq!(b.tokens(), 1000.0, "capped");
    }
}
