//! What a receiver asks for ([`Need`]), and where its need ranks in a
//! group, which orders NACK backoffs (protocol.md §13.4). Pure functions of
//! their arguments: no receiver state lives here.

use crate::wire::NackEntry;
use crate::wire::feedback::NACK_NEED_INFO;

/// One request, before it goes into a NACK entry (protocol.md §13.4).
pub(super) enum Need {
    /// An object's OBJECT_INFO (NEED_INFO): the receiver never heard of the
    /// object, or holds all its blocks but not its hash.
    Info {
        /// The object.
        object: u32,
    },
    /// Symbols of one block.
    Block(BlockNeed),
}

/// What one block lacks.
pub(super) struct BlockNeed {
    pub(super) object: u32,
    pub(super) sbn: u8,
    /// Symbols lacking.
    pub(super) need: u32,
    /// The ESIs lacking, where they are known (No-Code); empty otherwise.
    pub(super) ranges: Vec<(u32, u32)>,
    /// The block's K, and how many of its symbols the sender has sent as far
    /// as this receiver can tell (the highest ESI seen, plus one; fresh
    /// repair ESIs go out in order). 0 when unknown.
    pub(super) k: u32,
    pub(super) sent: u32,
}

impl Need {
    /// The (object, SBN) its NACK timer and holdoff go by: SBN 0 for an
    /// object's OBJECT_INFO.
    pub(super) fn block(&self) -> (u32, u8) {
        match self {
            Need::Info { object } => (*object, 0),
            Need::Block(b) => (b.object, b.sbn),
        }
    }

    /// Symbols lacking: 0 for an OBJECT_INFO.
    pub(super) fn need(&self) -> u32 {
        match self {
            Need::Info { .. } => 0,
            Need::Block(b) => b.need,
        }
    }

    /// Whether a peer's NACK entry for the same block asks for all of it:
    /// NEED_INFO covers NEED_INFO only; without ranges, a need as large;
    /// with ranges, every ESI lacking.
    pub(super) fn covered_by(&self, e: &NackEntry) -> bool {
        let info = e.flags & NACK_NEED_INFO != 0;
        match self {
            Need::Info { .. } => info,
            Need::Block(_) if info => false,
            Need::Block(b) if b.ranges.is_empty() => e.ranges.is_empty() && e.need >= b.need,
            Need::Block(b) => covers(&e.ranges, &b.ranges),
        }
    }

    /// Its NACK entry.
    pub(super) fn entry(self) -> NackEntry {
        match self {
            Need::Info { object } => NackEntry {
                object,
                sbn: 0,
                flags: NACK_NEED_INFO,
                need: 0,
                ranges: Vec::new(),
            },
            Need::Block(b) => NackEntry {
                object: b.object,
                sbn: b.sbn,
                flags: 0,
                need: b.need,
                ranges: b.ranges,
            },
        }
    }
}

/// Where a block's need ranks among the receivers of a group that lack any
/// of it, when each loses a share `loss` of the sender's symbols
/// independently: (P(need > n), P(need ≥ n)), given need ≥ 1, for this need
/// n, with need = K − received, received ~ Binomial(sent,
/// 1 − loss), in the normal approximation (a logistic Φ, within 0.01). A
/// draw uniform between the two is uniform over the group, yet orders its
/// members by need, so that the first NACK of a round tends to come from the
/// neediest and covers the rest. `None` with too little to go on (no loss
/// estimate, ESI ranges of No-Code).
pub(super) fn need_rank(n: &BlockNeed, loss: f64, dispersion: f64) -> Option<(f64, f64, f64)> {
    if !n.ranges.is_empty() || n.k == 0 || !(0.0..0.5).contains(&loss) {
        return None;
    }
    // A block is asked for once the first pass is past it: all K went out.
    let (sent, q) = (n.sent.max(n.k) as f64, 1.0 - loss);
    if dispersion > DISPERSION_LIMIT {
        return None;
    }
    let sd = (sent * loss * q).sqrt();
    if sd < 0.5 {
        return None;
    }
    let mean = sent * q;
    // P(need ≥ m) = P(received ≤ K − m).
    let at_least = |m: f64| {
        let x = (n.k as f64 - m + 0.5 - mean) / sd;
        1.0 / (1.0 + (-1.702 * x).exp())
    };
    // Among those who lack anything (need ≥ 1), who alone draw.
    let any = at_least(1.0);
    if any <= 0.0 {
        return None;
    }
    let need = n.need.max(1) as f64;
    Some((
        at_least(need + 1.0) / any,
        (at_least(need) / any).min(1.0),
        any,
    ))
}

/// Above this dispersion of its loss samples (see `SessionFb::dispersion`),
/// a receiver's loss is too bursty for the binomial model of `need_rank`.
pub(super) const DISPERSION_LIMIT: f64 = 4.0;

/// The receivers a round's first NACKs are meant to come from: the
/// neediest this many of a block's lacking receivers (see [`ranked_backoff`]).
pub(super) const FIRST_RANKS: f64 = 4.0;

/// The backoff of a block whose need ranks `u` (uniform in [0, 1) over the
/// about `lacking` receivers that lack it, the neediest first), with windows
/// `(first, rest)` and the GRTT `grtt`: the neediest [`FIRST_RANKS`] or so
/// draw NORM's truncated exponential over the short window `first`, as a
/// group of that size, and the rest theirs over the window `rest` that
/// starts a GRTT after it, by when the first's NACKs, which ask for more
/// than they lack, have reached and held them off. Only about
/// `FIRST_RANKS`, not all who lack the block, compete to be first, so the
/// first window does not grow with the group: a round's first NACK goes
/// within about a GRTT at any size (protocol.md §13.5, "Backoff").
pub(super) fn ranked_backoff(u: f64, (first, rest): (f64, f64), grtt: f64, lacking: f64) -> f64 {
    let share = (FIRST_RANKS / lacking.max(1.0)).min(1.0);
    if u < share || share >= 1.0 {
        nack_backoff((u / share).min(1.0), first, FIRST_RANKS.min(lacking))
    } else {
        first + grtt + nack_backoff((u - share) / (1.0 - share), rest, lacking - FIRST_RANKS)
    }
}

/// A backoff window, in GRTTs, for about `count` receivers competing to
/// send: `nack_backoff` × log10(count) / 3 within [0.1, 1] of it (full size
/// from 1000 up), since a few need little room to suppress each other.
pub(super) fn window_for(nack_backoff: f64, count: f64) -> f64 {
    nack_backoff * (count.max(1.0).log10() / 3.0).clamp(0.1, 1.0)
}

/// NORM's randomised NACK backoff (RFC 5740 §5.5.1): a truncated exponential
/// over [0, `max`] that puts most of a group of about `group` receivers near
/// the end, so that the few who draw early are heard, and suppress the rest,
/// before the rest would send. `u` is uniform in [0, 1).
pub(super) fn nack_backoff(u: f64, max: f64, group: f64) -> f64 {
    if max <= 0.0 {
        return 0.0;
    }
    let lambda = group.max(2.0).ln() + 1.0;
    let e = lambda.exp() - 1.0;
    let x = u * (lambda / max) + lambda / (max * e);
    ((max / lambda) * (x * e * (max / lambda)).ln()).clamp(0.0, max)
}

/// Whether the runs in `theirs` include every ESI of the runs in `mine`
/// (both sorted, as receivers send them).
pub(super) fn covers(theirs: &[(u32, u32)], mine: &[(u32, u32)]) -> bool {
    let mut i = 0;
    for &(first, n) in mine {
        let end = first as u64 + n as u64;
        let mut at = first as u64;
        while at < end {
            while i < theirs.len() && (theirs[i].0 as u64 + theirs[i].1 as u64) <= at {
                i += 1;
            }
            let Some(&(tf, tn)) = theirs.get(i) else {
                return false;
            };
            if (tf as u64) > at {
                return false;
            }
            at = tf as u64 + tn as u64;
        }
    }
    true
}

#[cfg(test)]
mod rank_tests {
    use super::{BlockNeed, need_rank, ranked_backoff};

    fn need(need: u32, k: u32, sent: u32) -> BlockNeed {
        BlockNeed {
            object: 1,
            sbn: 0,
            need,
            ranges: Vec::new(),
            k,
            sent,
        }
    }

    /// Ranks run from the neediest (near 0) to need 1 (up to 1), each need's
    /// band next to the next one's: a draw within its band is uniform over
    /// the lacking receivers, and the needier always draw earlier.
    #[test]
    fn ranks_order_needs_and_tile_the_unit_interval() {
        let mut top = 1.0;
        for n in 1..=30 {
            let (lo, hi, lacking) = need_rank(&need(n, 100, 112), 0.1, 1.0).unwrap();
            assert!(
                lo <= hi && (hi - top).abs() < 1e-12,
                "need {n}: [{lo}, {hi}) after {top}"
            );
            assert!((0.0..=1.0).contains(&lacking));
            top = lo;
        }
        assert!(top < 1e-3, "need 30 of 100 at 10% is rare: {top}");
        // No rank without a loss estimate, for No-Code ranges, for bursty loss.
        assert!(need_rank(&need(3, 100, 100), 0.0, 1.0).is_none());
        let mut ranged = need(3, 100, 100);
        ranged.ranges = vec![(0, 3)];
        assert!(need_rank(&ranged, 0.1, 1.0).is_none());
        assert!(need_rank(&need(3, 100, 100), 0.1, 9.0).is_none());
    }

    /// The first few ranks draw over the first window; the rest after it,
    /// a GRTT later.
    #[test]
    fn only_the_first_ranks_draw_in_the_first_window() {
        let (first, rest, grtt) = (0.02, 0.1, 0.01);
        for i in 0..100 {
            let u = i as f64 / 100.0;
            let d = ranked_backoff(u, (first, rest), grtt, 1000.0);
            if u < 4.0 / 1000.0 {
                assert!(d <= first, "{u}: {d}");
            } else {
                assert!(d >= first + grtt && d <= first + grtt + rest, "{u}: {d}");
            }
            // A group of four or fewer: all in the first window.
            assert!(ranked_backoff(u, (first, rest), grtt, 3.0) <= first);
        }
    }

    /// The first window is the same at every group size; the rest's grows.
    #[test]
    fn the_first_window_does_not_grow_with_the_group() {
        use super::{FIRST_RANKS, window_for};
        let first = window_for(6.0, FIRST_RANKS);
        assert!((first - 6.0 * 4f64.log10() / 3.0).abs() < 1e-12, "{first}");
        assert!(window_for(6.0, 10.0) < window_for(6.0, 1000.0));
        assert_eq!(window_for(6.0, 1000.0), window_for(6.0, 100_000.0));
        assert!((window_for(6.0, 0.0) - 0.6).abs() < 1e-12);
    }
}
