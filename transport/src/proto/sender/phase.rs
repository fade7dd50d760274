//! Where a sender is in its life (protocol.md §13.4): the first pass (or a
//! carousel's rounds), repair, a fallback round, the linger, and the finish,
//! with the moves between them. The deadlines that make it move are the
//! sender's timers ([`Timer::Linger`], [`Timer::Fallback`]); nothing here
//! reads the clock, receivers or blocks.

use std::time::Instant;

#[cfg(doc)]
use crate::proto::timer::Timer;

/// Where the sender is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// A carousel's rounds, or the first pass of a nack or hybrid sender
    /// (protocol.md §13.4, "First pass").
    FirstPass,
    /// Nack and hybrid: the first pass is over (it ended at `since`). The
    /// sender answers NACKs, and queues a fallback round when
    /// [`Timer::Fallback`] expires (protocol.md §13.4, "Fallback"). A new
    /// object resumes the first pass.
    Repair { since: Option<Instant> },
    /// Nack and hybrid, as [`Phase::Repair`], with a fallback round queued
    /// at `round` and no feedback that moved anything since: repair goes at
    /// half the rate, and the round goes out whole before the sender may
    /// finish. Feedback that moves something goes back to
    /// [`Phase::Repair`]; so does the linger, once the round is out and
    /// nobody counted is unfinished.
    Fallback {
        since: Option<Instant>,
        round: Instant,
    },
    /// Nack and hybrid, as [`Phase::Repair`], with nothing left to do but
    /// wait out the linger ([`Timer::Linger`], armed exactly in this phase
    /// while the first pass is over) for late NACKs before finishing
    /// (protocol.md §13.4, "Finish"). Work found again (a NACK from a
    /// receiver that counts, or the sender no longer idle) goes back to
    /// [`Phase::Repair`]; a new object, to the first pass.
    Lingering { since: Option<Instant> },
    /// Nothing more to send: the last round went (carousel, `pass_end`
    /// `None`), or every tracked receiver is done and the linger passed
    /// (nack, hybrid: the first pass ended at `pass_end`). A new object
    /// resumes sending.
    Finished { pass_end: Option<Instant> },
}

impl Phase {
    /// Whether the first pass is over: never in a carousel (`feedback`
    /// false), which only finishes.
    pub(super) fn pass_done(self, feedback: bool) -> bool {
        match self {
            Phase::FirstPass => false,
            Phase::Repair { .. } | Phase::Fallback { .. } | Phase::Lingering { .. } => true,
            Phase::Finished { .. } => feedback,
        }
    }

    /// When the first pass ended, once it has.
    pub(super) fn pass_end(self) -> Option<Instant> {
        match self {
            Phase::FirstPass => None,
            Phase::Repair { since }
            | Phase::Fallback { since, .. }
            | Phase::Lingering { since } => since,
            Phase::Finished { pass_end } => pass_end,
        }
    }

    /// Whether a fallback round is on: repair goes at half the rate.
    pub(super) fn in_fallback(self) -> bool {
        matches!(self, Phase::Fallback { .. })
    }

    /// When the fallback round on was queued.
    pub(super) fn fallback_round(self) -> Option<Instant> {
        match self {
            Phase::Fallback { round, .. } => Some(round),
            _ => None,
        }
    }

    /// Whether nothing more is to be sent.
    pub(super) fn is_finished(self) -> bool {
        matches!(self, Phase::Finished { .. })
    }

    /// An object was added: the first pass resumes at it.
    pub(super) fn new_object(&mut self) {
        *self = Phase::FirstPass;
    }

    /// The first pass of a nack or hybrid sender ended at `at`.
    pub(super) fn end_pass(&mut self, at: Option<Instant>) {
        *self = Phase::Repair { since: at };
    }

    /// A fallback round was queued at `now`.
    pub(super) fn fallback(&mut self, now: Instant) {
        *self = Phase::Fallback {
            since: self.pass_end(),
            round: now,
        };
    }

    /// Feedback moved something: a fallback round is over.
    pub(super) fn feedback_moved(&mut self) {
        if let Phase::Fallback { since, .. } = *self {
            *self = Phase::Repair { since };
        }
    }

    /// Nothing is left to do but the linger ([`Timer::Linger`] armed).
    pub(super) fn linger(&mut self) {
        if let Phase::Repair { since } | Phase::Fallback { since, .. } = *self {
            *self = Phase::Lingering { since };
        }
    }

    /// Work was found again while lingering ([`Timer::Linger`] stopped).
    pub(super) fn stop_linger(&mut self) {
        if let Phase::Lingering { since } = *self {
            *self = Phase::Repair { since };
        }
    }

    /// The last round went (carousel), or the linger passed (nack, hybrid).
    pub(super) fn finish(&mut self) {
        *self = Phase::Finished {
            pass_end: self.pass_end(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_fallback_round_lasts_until_feedback_moves_or_the_linger() {
        let t0 = Instant::now();
        let round = t0 + Duration::from_secs(1);
        let mut p = Phase::FirstPass;
        assert!(!p.pass_done(true));
        p.end_pass(Some(t0));
        p.fallback(round);
        assert!(p.in_fallback() && p.pass_done(true));
        assert_eq!((p.pass_end(), p.fallback_round()), (Some(t0), Some(round)));
        p.feedback_moved();
        assert_eq!(p, Phase::Repair { since: Some(t0) });
        p.fallback(round);
        p.linger();
        assert_eq!(p, Phase::Lingering { since: Some(t0) });
        p.stop_linger();
        assert_eq!(p, Phase::Repair { since: Some(t0) });
        p.linger();
        p.finish();
        assert_eq!(p, Phase::Finished { pass_end: Some(t0) });
        assert!(p.is_finished() && p.pass_done(true) && !p.pass_done(false));
        p.new_object();
        assert_eq!(p, Phase::FirstPass);
    }

    #[test]
    fn a_carousel_finishes_with_no_pass_end() {
        let mut p = Phase::FirstPass;
        p.finish();
        assert_eq!(p, Phase::Finished { pass_end: None });
        assert!(!p.pass_done(false));
        // Feedback that moves something outside a fallback round moves nothing.
        p.feedback_moved();
        assert!(p.is_finished());
    }
}
