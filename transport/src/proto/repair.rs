//! `RepairScheduler`: the sender's repair, from NACK to packet. Requests for
//! a block are gathered for an aggregation time; then its repair symbols are
//! queued; once the last of them is sent, the block is quiet for a GRTT, so
//! that NACKs the repair already answers are not answered twice. This is the
//! one place where the nack and hybrid modes differ: nack replays the ESIs
//! asked for (their union), hybrid sends fresh repair symbols, as many as the
//! largest need plus a margin for their own loss. It also keeps each block's
//! cursor of fresh repair ESIs, which the first pass draws from as well.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// A block: (object, SBN).
pub(crate) type BlockKey = (u32, u8);

/// NACKs for one block, gathered until their aggregation ends.
struct Pending {
    need: u32,
    /// The block's K.
    k: u32,
    /// Nack mode: the ESIs asked for, one bit each (the union of the ranges,
    /// in time linear in the words touched, whatever the ranges are).
    esis: Vec<u64>,
}

impl Pending {
    fn insert_range(&mut self, first: u32, count: u32) {
        let (mut at, end) = (first as usize, first as usize + count as usize);
        if self.esis.len() * 64 < end {
            self.esis.resize(end.div_ceil(64), 0);
        }
        while at < end {
            let (w, b) = (at / 64, at % 64);
            let n = (64 - b).min(end - at);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << b
            };
            self.esis[w] |= mask;
            at += n;
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.esis.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| (w * 64 + b) as u32)
        })
    }
}

pub(crate) struct RepairScheduler {
    /// Nack mode: replay the ESIs asked for.
    replay: bool,
    /// The codec's ESI limit: fresh ESIs wrap back to K there.
    esi_limit: u32,
    /// Spare symbols per block of at least 50 (`repair_margin`).
    margin: u32,
    /// Next fresh repair ESI per block (K until the block's first).
    cursors: HashMap<BlockKey, u32>,
    pending: HashMap<BlockKey, Pending>,
    /// Aggregation deadlines, in the order the blocks were first asked for.
    order: VecDeque<(Instant, BlockKey)>,
    queue: VecDeque<(u32, u8, u32)>,
    /// Symbols still queued per block.
    queued: HashMap<BlockKey, u32>,
    /// Blocks whose repair just went out, until when.
    quiet: HashMap<BlockKey, Instant>,
    /// Hybrid: the need the repair queued or just sent for a block answers
    /// (while the block is queued or quiet): a later request for more is
    /// topped up ([`RepairScheduler::top_up`]).
    answered_need: HashMap<BlockKey, (u32, u32)>,
}

impl RepairScheduler {
    pub(crate) fn new(replay: bool, esi_limit: u32, margin: u32) -> Self {
        Self {
            replay,
            esi_limit,
            margin,
            cursors: HashMap::new(),
            pending: HashMap::new(),
            order: VecDeque::new(),
            queue: VecDeque::new(),
            queued: HashMap::new(),
            quiet: HashMap::new(),
            answered_need: HashMap::new(),
        }
    }

    /// The next fresh repair ESI of `block` (whose K is `k`), advancing its
    /// cursor; past the codec's limit it wraps back to K.
    pub(crate) fn fresh_esi(&mut self, block: BlockKey, k: u32) -> u32 {
        let next = self.cursors.entry(block).or_insert(k);
        let esi = *next;
        *next += 1;
        if *next >= self.esi_limit {
            *next = k;
        }
        esi
    }

    /// Forgets everything about the blocks of objects before `object`: their
    /// requests, queued repair, quiet times and ESI cursors (the sender no
    /// longer holds them; see `Sender::retire_before`).
    pub(crate) fn retire_before(&mut self, object: u32) {
        let keep = |b: &BlockKey| b.0 >= object;
        self.cursors.retain(|b, _| keep(b));
        self.pending.retain(|b, _| keep(b));
        self.order.retain(|(_, b)| keep(b));
        self.queue.retain(|&(o, sbn, _)| keep(&(o, sbn)));
        self.queued.retain(|b, _| keep(b));
        self.quiet.retain(|b, _| keep(b));
        self.answered_need.retain(|b, _| keep(b));
    }

    /// Whether a request for `block` is moot at `now`: its repair is queued,
    /// or has just gone out.
    pub(crate) fn answered(&self, block: BlockKey, now: Instant) -> bool {
        self.queued.contains_key(&block) || self.quiet.get(&block).is_some_and(|&q| q > now)
    }

    /// Whether requests for `block` are being gathered.
    pub(crate) fn gathering(&self, block: BlockKey) -> bool {
        self.pending.contains_key(&block)
    }

    /// One NACK entry's request for `block` (K = `k`): `need` symbols (at
    /// most K), and in nack mode the ESI `ranges`. The first request opens
    /// the block's aggregation, which ends at `until`.
    pub(crate) fn request(
        &mut self,
        block: BlockKey,
        k: u32,
        until: Instant,
        need: u32,
        ranges: &[(u32, u32)],
    ) {
        let p = self.pending.entry(block).or_insert_with(|| {
            self.order.push_back((until, block));
            Pending {
                need: 0,
                k,
                esis: Vec::new(),
            }
        });
        p.need = p.need.max(need.min(k));
        if self.replay {
            for &(f, c) in ranges {
                p.insert_range(f, c);
            }
        }
    }

    /// When the earliest aggregation ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(d, _)| *d)
    }

    /// Queues the repair of every block whose aggregation has ended by
    /// `now`. `loss` is the receivers' average loss, for the hybrid margin.
    pub(crate) fn release(&mut self, now: Instant, loss: f64) {
        while let Some(&(deadline, block)) = self.order.front() {
            if deadline > now {
                break;
            }
            self.order.pop_front();
            let Some(p) = self.pending.remove(&block) else {
                continue;
            };
            let (object, sbn) = block;
            let mut n = 0;
            if self.replay {
                for esi in p.iter() {
                    self.queue.push_back((object, sbn, esi));
                    n += 1;
                }
            } else {
                for _ in 0..p.need + self.margin_for(p.need, p.k, loss) {
                    let esi = self.fresh_esi(block, p.k);
                    self.queue.push_back((object, sbn, esi));
                    n += 1;
                }
                self.answered_need.insert(block, (p.need, p.k));
            }
            if n > 0 {
                self.queued.insert(block, n);
            }
        }
    }

    /// Hybrid: a request for `need` symbols of `block`, whose repair is
    /// queued or just sent ([`RepairScheduler::answered`]), that asks for
    /// more than that repair answers: queues the difference, with its
    /// margin, at once, so that the neediest receiver of a round is served
    /// in that round whichever NACK came first (protocol.md §13.4,
    /// "Answering NACKs"). Returns whether it queued anything. A block's
    /// repair within one quiet period thus stays within what one NACK of
    /// need K would queue.
    pub(crate) fn top_up(&mut self, block: BlockKey, need: u32, loss: f64) -> bool {
        if self.replay {
            return false;
        }
        let Some(&(had, k)) = self.answered_need.get(&block) else {
            return false;
        };
        let need = need.min(k);
        if need <= had {
            return false;
        }
        let extra = need - had + self.margin_for(need, k, loss) - self.margin_for(had, k, loss);
        for _ in 0..extra {
            let esi = self.fresh_esi(block, k);
            self.queue.push_back((block.0, block.1, esi));
        }
        *self.queued.entry(block).or_insert(0) += extra;
        self.quiet.remove(&block);
        self.answered_need.insert(block, (need, k));
        extra > 0
    }

    /// Hybrid: spare symbols for the repair's own loss. `repair_margin`
    /// symbols, plus the repair's expected loss at the receivers' average
    /// loss rate p (need × p / (1 − p)) and one standard deviation of it
    /// (√(need × p) / (1 − p)), rounded up: a receiver then lacks nothing
    /// after the repair about five times in six, whatever p, so that the
    /// rounds a block takes, each a round trip and a backoff long, stay few
    /// at high loss (in the suite at 25% loss, 1000 receivers and k = 100,
    /// p99 completion 0.53 s instead of 0.61, at an E\[M\] 0.5% higher).
    /// Blocks under 50 symbols get the expected loss rounded, with no fixed
    /// margin or deviation (to a block of 7, one spare symbol is 14% more);
    /// larger blocks at most one fixed spare symbol per whole 50.
    fn margin_for(&self, need: u32, k: u32, loss: f64) -> u32 {
        let p = loss.min(0.9);
        let expected_loss = need as f64 * p / (1.0 - p);
        if k < 50 {
            expected_loss.round() as u32
        } else {
            let deviation = (need as f64 * p).sqrt() / (1.0 - p);
            self.margin.min(k / 50) + (expected_loss + deviation).ceil() as u32
        }
    }

    /// The next repair symbol to send: (object, SBN, ESI).
    pub(crate) fn front(&self) -> Option<(u32, u8, u32)> {
        self.queue.front().copied()
    }

    /// The front symbol went out at `now`; once a block's last has, it is
    /// quiet for `quiet_for`.
    pub(crate) fn sent_front(&mut self, now: Instant, quiet_for: std::time::Duration) {
        let Some((o, sbn, _)) = self.queue.pop_front() else {
            return;
        };
        let block = (o, sbn);
        if let Some(left) = self.queued.get_mut(&block) {
            *left -= 1;
            if *left == 0 {
                self.queued.remove(&block);
                self.quiet.insert(block, now + quiet_for);
            }
        }
    }

    /// Forgets quiet periods over by `now`.
    pub(crate) fn expire_quiet(&mut self, now: Instant) {
        self.quiet.retain(|_, q| *q > now);
        let (quiet, queued) = (&self.quiet, &self.queued);
        self.answered_need
            .retain(|b, _| quiet.contains_key(b) || queued.contains_key(b));
    }
}

/// Repair symbols the first pass of a block of `k` source symbols carries,
/// so that a receiver losing a share `loss` of them probably decodes without
/// a NACK, in a group of `group` such receivers: the fewest that make
/// N = k + repair symbols leave at least k + 1 received, z standard
/// deviations below the mean, with z = √(2 ln(group + 1)) within [1, 4] (about
/// the worst of `group` draws). None at zero loss, and none for blocks of
/// fewer than [`PROACTIVE_MIN_K`] symbols: there the z margin and the noise
/// of the largest of many loss reports cost more than the NACK rounds they
/// save (in the suite, k = 100 at 10% and 100 receivers: E\[M\] 1.334 with
/// them, 1.230 without, against the ideal 1.210), so NACKs size their repair.
pub(crate) fn proactive_repair(k: u32, loss: f64, group: usize) -> u32 {
    let p = loss.clamp(0.0, 0.5);
    if p <= 0.0 || k < PROACTIVE_MIN_K {
        return 0;
    }
    let z = (2.0 * ((group as f64) + 1.0).ln()).sqrt().clamp(1.0, 4.0);
    let q = 1.0 - p;
    let need = k as f64 + 1.0;
    // N·q − z·√(N·p·q) ≥ need, as a quadratic in x = √N.
    let b = z * (p * q).sqrt();
    let x = (b + (b * b + 4.0 * q * need).sqrt()) / (2.0 * q);
    ((x * x).ceil() as u32).saturating_sub(k)
}

/// The smallest block [`proactive_repair`] sizes repair for.
pub(crate) const PROACTIVE_MIN_K: u32 = 500;

#[cfg(test)]
mod proactive_tests {
    use super::proactive_repair;

    #[test]
    fn repair_grows_with_loss_and_group_and_is_none_without_loss() {
        assert_eq!(proactive_repair(1000, 0.0, 1000), 0);
        let one = proactive_repair(1000, 0.1, 1);
        let many = proactive_repair(1000, 0.1, 1000);
        assert!(one > 111 && one < 160, "{one}");
        assert!(many > one && many < 200, "{many}");
        assert!(proactive_repair(1000, 0.25, 3) > proactive_repair(1000, 0.1, 3));
        // The neediest of 1000 at 10% loss lacks about 100 + 3.7 × 9.5 of
        // 1000: the count covers it.
        let n = 1000 + many;
        let mean = n as f64 * 0.9;
        let sd = (n as f64 * 0.9 * 0.1).sqrt();
        assert!(mean - 3.7 * sd >= 1001.0, "{many}");
        assert_eq!(proactive_repair(499, 0.1, 1000), 0, "small blocks: NACKs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nack_mode_replays_the_union_of_the_ranges_asked_for() {
        let t0 = Instant::now();
        let mut r = RepairScheduler::new(true, 1000, 0);
        r.request((1, 0), 10, t0, 2, &[(3, 2)]);
        r.request((1, 0), 10, t0 + Duration::from_secs(1), 2, &[(4, 2)]);
        assert_eq!(r.next_deadline(), Some(t0), "the first request sets it");
        r.release(t0, 0.0);
        let mut sent = Vec::new();
        while let Some(s) = r.front() {
            sent.push(s);
            r.sent_front(t0, Duration::from_millis(5));
        }
        assert_eq!(sent, [(1, 0, 3), (1, 0, 4), (1, 0, 5)]);
        assert!(r.answered((1, 0), t0), "quiet after its repair");
        assert!(!r.answered((1, 0), t0 + Duration::from_millis(5)));
    }

    #[test]
    fn hybrid_sends_fresh_repair_for_the_largest_need_plus_a_margin() {
        let t0 = Instant::now();
        let mut r = RepairScheduler::new(false, 1000, 1);
        // The first pass took two fresh ESIs of the block already.
        assert_eq!(
            (r.fresh_esi((0, 2), 100), r.fresh_esi((0, 2), 100)),
            (100, 101)
        );
        r.request((0, 2), 100, t0, 3, &[]);
        r.request((0, 2), 100, t0, 7, &[]);
        r.release(t0, 0.0);
        assert!(r.answered((0, 2), t0), "queued");
        let mut esis = Vec::new();
        while let Some((_, _, esi)) = r.front() {
            esis.push(esi);
            r.sent_front(t0, Duration::ZERO);
        }
        // Need 7 and one spare (K = 100 allows 100 / 50 = 2, margin 1).
        assert_eq!(esis, (102..110).collect::<Vec<_>>());
        // At 20% loss the spare grows by need × 0.2 / 0.8 = 2 and one
        // deviation, √(need × 0.2) / 0.8 = 1.58, rounded up.
        assert_eq!(r.margin_for(8, 100, 0.2), 1 + 4);
        // Small blocks: no fixed spare, the expected loss rounded.
        assert_eq!(r.margin_for(7, 7, 0.1), 1);
        // Fresh ESIs wrap back to K at the codec's limit.
        let mut w = RepairScheduler::new(false, 12, 0);
        let esis: Vec<u32> = (0..4).map(|_| w.fresh_esi((0, 0), 10)).collect();
        assert_eq!(esis, [10, 11, 10, 11]);
    }

    /// A request for more than the repair queued or just sent answers is
    /// topped up at once, by the difference and its margin; one for no more,
    /// or after the quiet, or in nack mode, is not.
    #[test]
    fn a_larger_need_in_the_same_round_is_topped_up() {
        let t0 = Instant::now();
        let quiet = Duration::from_millis(20);
        let mut r = RepairScheduler::new(false, 1000, 2);
        r.request((0, 1), 100, t0, 5, &[]);
        r.release(t0, 0.0);
        let drain = |r: &mut RepairScheduler| {
            let mut n = 0;
            while r.front().is_some() {
                r.sent_front(t0, quiet);
                n += 1;
            }
            n
        };
        assert_eq!(drain(&mut r), 5 + 2);
        // While quiet: need 5 again is answered, need 9 gets 4 more.
        assert!(!r.top_up((0, 1), 5, 0.0));
        assert!(r.top_up((0, 1), 9, 0.0));
        assert_eq!(drain(&mut r), 4);
        // The margin grows with the need: the difference of the two.
        assert!(r.top_up((0, 1), 30, 0.2));
        let more = 30 - 9 + r.margin_for(30, 100, 0.2) - r.margin_for(9, 100, 0.2);
        assert_eq!(drain(&mut r), more);
        // Never beyond K in all, whatever a NACK claims.
        assert!(r.top_up((0, 1), 5000, 0.0));
        assert_eq!(drain(&mut r), 100 - 30);
        assert!(!r.top_up((0, 1), 5000, 0.0));
        // Once the quiet is over the next NACK opens a round of its own.
        r.expire_quiet(t0 + quiet);
        assert!(!r.top_up((0, 1), 99, 0.0));
        // Nack mode replays what is named: no top-up.
        let mut n = RepairScheduler::new(true, 1000, 2);
        n.request((0, 1), 100, t0, 5, &[(0, 5)]);
        n.release(t0, 0.0);
        assert!(!n.top_up((0, 1), 9, 0.0));
    }
}
