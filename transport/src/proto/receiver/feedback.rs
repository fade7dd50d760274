//! Feedback to a nack or hybrid sender (protocol.md §13): PROBEs taken
//! in, STATUS and NACKs written out, NACK backoffs, suppression by peers'
//! NACKs, and reply credit. [`SessionFb`] holds one session's state and
//! decides; the `Receiver` methods here only find the session and count.
//! What the receiver lacks is read from the object table, never changed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::loss::LossEstimator;
use super::need::{FIRST_RANKS, Need, nack_backoff, need_rank, ranked_backoff, window_for};
use super::objects::{Key, ObjectTable, Slot};
use super::{Destination, Receiver, ReceiverConfig, ReceiverStats, RejectReason};
use crate::proto::timer::BlockTimers;
use crate::proto::{ObjectId, SessionId};
use crate::wire::feedback::{
    PROBE_END, STATUS_BUSY, STATUS_COMPLETE, STATUS_ECHO, STATUS_LOSS, sampled,
};
use crate::wire::{DataRepr, NackEntry, NackRepr, ProbeRepr, ReportAsk, StatusRepr};
use groupcast_fec::FecId;

/// Feedback state for one session (nack and hybrid modes).
pub(super) struct SessionFb {
    /// The sender's GRTT, as its PROBEs give it (see [`SessionFb::take_grtt`]).
    pub(super) grtt: Duration,
    /// When `grtt` was last set.
    grtt_at: Instant,
    /// The sender's group size estimate (receivers it tracks), at least 1.
    group: f64,
    /// Whether `group` is the sender's count (its PROBEs' Group field), not
    /// the guess while it has heard nobody.
    group_counted: bool,
    /// Objects in the session, and the sender's first-pass progress
    /// (object, SBN), as the latest PROBE said.
    pub(super) objects: u32,
    pub(super) progress: (u32, u8),
    /// The first object the sender still holds (PROBE's Retained).
    pub(super) retained: u32,
    /// The latest PROBE's timestamp (STATUS echoes it), and when it came.
    probe_ts: u64,
    /// Who the latest PROBE asks to report (protocol.md §13.3, "Who reports").
    ask: ReportAsk,
    /// The Timestamp of the latest PROBE that sampled this receiver and has
    /// had no answer yet, and when it came: a later PROBE (perhaps forged)
    /// cannot take the ask back, and the answer echoes it.
    owed: Option<(u64, Instant)>,
    pub(super) probe_at: Instant,
    /// The path's loss and rate, which STATUS reports.
    loss: LossEstimator,
    /// NACK timers, holdoffs and suppression.
    pub(super) nack: NackState,
    /// What STATUS said last, what it is due to say, and its credit.
    status: StatusState,
}

/// One session's NACK scheduling (protocol.md §13.4).
#[derive(Default)]
pub(super) struct NackState {
    /// When each block's NACK is due.
    timers: BlockTimers,
    /// Blocks not to be asked for until when: a NACK for them went out or
    /// was heard, or repair for them is coming.
    holdoff: HashMap<(u32, u8), Instant>,
    /// Blocks a peer's NACK held back, until when: if no repair for the block
    /// comes by then, the peer is doubted.
    suppressed: HashMap<(u32, u8), Instant>,
    /// Blocks whose last suppression brought no repair: their next NACK is
    /// sent whatever peers say, so forged NACKs (which the sender may well
    /// drop) cannot silence a receiver.
    doubt: HashSet<(u32, u8)>,
    /// When timers are drawn again for blocks that repair came for: the
    /// holdoff set by the first repair since the last such draw ends then
    /// ([`SessionFb::on_data`]; later repair arms it again once it has
    /// passed), and what the repair left is asked for without waiting for a
    /// PROBE.
    redraw: Option<Instant>,
    /// When the first of our NACKs that no repair has followed yet went out.
    pub(super) unanswered: Option<Instant>,
    /// Whether we warned that NACKs go unanswered.
    warned_unanswered: bool,
}

/// One session's STATUS state (protocol.md §13.3, §13.5).
struct StatusState {
    /// Whether a STATUS is due (a PROBE came, the window moved).
    due: bool,
    /// STATUS with COMPLETE still to send (three in all).
    finals: u8,
    /// When the last STATUS went.
    last: Option<Instant>,
    /// The window edge the application holds STATUS at (`hold_window`).
    hold: Option<(u32, u8)>,
    /// Whether a STATUS said COMPLETE.
    complete: bool,
    /// The window the last STATUS reported.
    last_window: Option<(u32, u8)>,
    /// Whether a due STATUS waits for credit (counted once).
    withheld: bool,
    /// When a STATUS this receiver was not asked for, but has reason to
    /// send (it lags the sender's Limit, its loss is higher than the
    /// sender's), goes if the reason still holds then (protocol.md §13.3,
    /// "Who reports").
    report_at: Option<Instant>,
    /// Whether this receiver moved its window itself since the last STATUS
    /// (an object completed, the application moved its hold).
    news: bool,
    /// The highest object of the session completed, and when: a PROBE heard
    /// [`CONTRADICTION_GRACE`] later that says the session has no such
    /// object contradicts it (protocol.md §13.5).
    done_max: Option<(u32, Instant)>,
    /// Packets with nothing new this receiver may still send to the
    /// session's sender (STATUS whose window did not move, and NACKs under
    /// `nack_unicast`): one per DATA or OBJECT_INFO packet of the session
    /// heard, at most [`MAX_SENDER_CREDIT`]; two to start with if some was
    /// heard before its first PROBE. A PROBE earns none, so that PROBEs of a
    /// session that sends nothing, from a spoofed source, draw no reply
    /// (protocol.md §13.5).
    credit: u32,
    /// Whether the session ever earned credit (sent DATA or OBJECT_INFO):
    /// it then gets a keep-alive STATUS every [`KEEPALIVE`] without credit.
    earned: bool,
}

/// How long after an object completed a PROBE that counts fewer objects is
/// taken as a contradiction, not as a PROBE sent before the object and
/// overtaken by its DATA on the way.
pub const CONTRADICTION_GRACE: Duration = Duration::from_millis(100);

/// Packets to a session's sender a receiver may bank (`StatusState::credit`).
const MAX_SENDER_CREDIT: u32 = 64;

/// How often a session that sent data once gets a STATUS without credit,
/// so that a sender with nothing to send for a while (a quiet feed) keeps
/// hearing its receivers: well within the sender's receiver timeout (5 s by
/// default). Reflection to a spoofed source is then bounded in rate too: one
/// STATUS a second per session per receiver.
pub const KEEPALIVE: Duration = Duration::from_secs(1);

/// Group size assumed while the sender tracks no receiver yet.
const UNKNOWN_GROUP: f64 = 1000.0;

/// Most holdoff entries one session keeps (expired ones are pruned first).
const MAX_HOLDOFFS: usize = 1 << 16;

/// Longest GRTT a receiver believes of a PROBE; a PROBE may also at most
/// double the GRTT the last one said, so one forged PROBE cannot push NACK
/// timers far away.
const MAX_PROBE_GRTT: Duration = Duration::from_secs(10);

/// How often the GRTT may rise (at most twofold): a little less than the
/// sender's default `probe_interval` (25 ms).
const GRTT_RISE: Duration = Duration::from_millis(20);

/// A uniform draw in [0, 1) from a receiver's own generator, seeded by its
/// id (splitmix64), so runs are reproducible.
fn draw(rng: &mut u64) -> f64 {
    let z = groupcast_fec::splitmix64(*rng);
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    unit(z)
}

/// A 64-bit hash as a uniform draw in [0, 1): its top 53 bits.
fn unit(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl SessionFb {
    /// A session's state at its first PROBE (`probe_ts`, at `now`). A
    /// session `heard` before (the receiver holds or completed some of its
    /// objects) starts with two replies' credit.
    pub(super) fn new(now: Instant, probe_ts: u64, heard: bool) -> Self {
        Self {
            grtt: Duration::ZERO,
            grtt_at: now,
            group: 1.0,
            group_counted: false,
            objects: 0,
            progress: (0, 0),
            retained: 0,
            probe_ts,
            ask: ReportAsk::default(),
            owed: None,
            probe_at: now,
            loss: LossEstimator::new(now),
            nack: NackState::default(),
            status: StatusState {
                due: false,
                finals: 0,
                last: None,
                hold: None,
                complete: false,
                last_window: None,
                withheld: false,
                report_at: None,
                news: false,
                done_max: None,
                credit: if heard { 2 } else { 0 },
                earned: heard,
            },
        }
    }

    /// A PROBE of the session (protocol.md §13.1). `bound` is the objects of
    /// the bound manifest, if one is. Gives the object a contradicting PROBE
    /// says the session lacks, though this receiver completed it. Refused as
    /// `Implausible` by its DATA counter, it changes nothing but the loss
    /// baseline's age.
    pub(super) fn on_probe(
        &mut self,
        now: Instant,
        (p, id): (&ProbeRepr, u64),
        bound: Option<u32>,
    ) -> Result<Option<u32>, RejectReason> {
        self.loss.on_probe(now, p.sent)?;
        self.take_grtt(now, p.grtt_us as u64);
        // Group 0: the sender has heard from nobody yet (early in a session),
        // so the size is unknown; assume a large group until it says.
        self.group = match p.group_log2 {
            0 => UNKNOWN_GROUP,
            g => (2f64).powi(g as i32),
        };
        self.group_counted = p.group_log2 > 0;
        // Never more objects than the bound manifest has.
        self.objects = match bound {
            Some(n) => p.objects.min(n),
            None => p.objects,
        };
        self.progress = if p.flags & PROBE_END != 0 {
            (p.objects, 0)
        } else {
            p.progress
        };
        // A PROBE that says the session has no object this receiver
        // completed well before it: two senders under one session id, one of
        // them forged (protocol.md §13.5).
        let contradicted = self
            .status
            .done_max
            .filter(|&(x, at)| {
                bound.is_none()
                    && p.objects <= x
                    && now.saturating_duration_since(at) >= CONTRADICTION_GRACE
            })
            .map(|(x, _)| x);
        if contradicted.is_some() {
            self.status.done_max = None;
        }
        // It only grows (a reordered PROBE does not bring objects back).
        self.retained = self.retained.max(p.retained);
        self.probe_ts = p.timestamp_us;
        self.ask = p.ask;
        if sampled(id, p.timestamp_us, p.ask.sample) {
            self.owed = Some((p.timestamp_us, now));
        }
        self.probe_at = now;
        self.status.due = true;
        Ok(contradicted)
    }

    /// Takes a PROBE's GRTT. NACK timers and holdoffs scale with the GRTT,
    /// and anyone can forge a PROBE: a lower GRTT is taken at once, a higher
    /// one at most twofold per GRTT_RISE, and never beyond MAX_PROBE_GRTT. So
    /// forged PROBEs, however many, keep it within twice what the sender's
    /// own (every 25 ms by default) last said.
    fn take_grtt(&mut self, now: Instant, grtt_us: u64) {
        let grtt = Duration::from_micros(grtt_us).min(MAX_PROBE_GRTT);
        let before = self.grtt;
        if self.grtt.is_zero() || grtt <= self.grtt {
            self.grtt = grtt;
            self.grtt_at = now;
        } else if now.saturating_duration_since(self.grtt_at) >= GRTT_RISE {
            self.grtt = grtt.min(self.grtt * 2);
            self.grtt_at = now;
        }
        if self.grtt * 4 < before {
            // What a higher GRTT (a forged first PROBE, say) scheduled comes
            // closer in proportion, keeping the timers' random order.
            let ratio = self.grtt.as_secs_f64() / before.as_secs_f64();
            self.nack.rescale(now, ratio);
        }
    }

    /// A DATA packet of the session, with `bytes` of symbol: counted for the
    /// loss and rate estimates, and one reply credit more.
    pub(super) fn on_arrival(&mut self, bytes: usize) {
        self.loss.on_data(bytes);
        self.earn();
    }

    /// A DATA or OBJECT_INFO packet of the session: one reply credit more.
    pub(super) fn earn(&mut self) {
        self.status.credit = (self.status.credit + 1).min(MAX_SENDER_CREDIT);
        self.status.earned = true;
    }

    /// DATA for `block` of an object this receiver knows (`known`: in
    /// progress) or completed, of a fountain code (`fountain`: any symbol
    /// of use) or not: notes that repair answered a request, and holds back
    /// our own request for a block behind the sender's progress (repair:
    /// more may be coming) until the repair is over (protocol.md §13.5,
    /// "Suppression").
    pub(super) fn on_data(&mut self, now: Instant, block: (u32, u8), known: bool, fountain: bool) {
        let n = &mut self.nack;
        // Repair for a block: whoever asked for it was answered.
        if n.suppressed.remove(&block).is_some() {
            n.doubt.remove(&block);
        }
        if block < self.progress {
            // Repair (DATA behind the first pass): NACKs are heard.
            n.unanswered = None;
        }
        if known && block < self.progress {
            // Bounded: only objects in progress, and at most MAX_HOLDOFFS.
            if n.holdoff.len() >= MAX_HOLDOFFS {
                n.holdoff.retain(|_, h| *h > now);
            }
            if !fountain {
                // A replay (No-Code) may be of another's ESIs: more may be
                // coming, ours among them.
                if n.holdoff.len() < MAX_HOLDOFFS {
                    let h = n.holdoff.entry(block).or_insert(now);
                    *h = (*h).max(now + self.grtt);
                }
                return;
            }
            let until = now + self.grtt / 2;
            if n.holdoff.len() < MAX_HOLDOFFS {
                // Fresh repair is coming, every symbol of use: whatever held
                // the block off (a NACK, ours or a peer's, that this repair
                // answers) ends half a GRTT after the repair does, so that a
                // need it leaves goes in the next round at once (protocol.md
                // §13.5).
                n.holdoff.insert(block, until);
            }
            // A timer drawn before the repair ranked a need it may no
            // longer have: one is drawn for what is left when the holdoff
            // ends.
            n.timers.remove(block);
            n.redraw.get_or_insert(until);
        }
    }

    /// An object of the session completed (at `now`, the latest time handed
    /// in): a STATUS is due at once, and completion is said three times.
    pub(super) fn on_complete(&mut self, object: u32, now: Option<Instant>) {
        let s = &mut self.status;
        s.due = true;
        s.news = true;
        if let Some(now) = now
            && s.done_max.is_none_or(|(o, _)| object > o)
        {
            s.done_max = Some((object, now));
        }
        s.last = None;
    }

    /// The application holds the window at `at` (`Receiver::hold_window`):
    /// releasing the hold or moving it on makes a STATUS due.
    pub(super) fn hold(&mut self, at: Option<(u32, u8)>) {
        let s = &mut self.status;
        if s.hold != at {
            if at.is_none() || s.hold.is_some_and(|h| at.is_some_and(|a| a > h)) {
                s.due = true;
                s.news = true;
            }
            s.hold = at;
        }
    }

    /// The window moved without news (`Receiver::skip_before`): a STATUS is due.
    pub(super) fn window_moved(&mut self) {
        self.status.due = true;
    }

    /// The session's next deadline: a NACK timer, a STATUS (a STATUS waiting
    /// for credit waits for a packet, or for its keep-alive), or the end of
    /// its feedback state after `idle_timeout` without a PROBE.
    pub(super) fn deadline(&self, config: &ReceiverConfig) -> Option<Instant> {
        let s = &self.status;
        // A STATUS nobody asked for waits for its delay too.
        let delayed = |t: Instant| s.report_at.map_or(t, |r| r.max(t));
        let status = if s.credit == 0 {
            (s.due && s.earned).then(|| delayed(s.last.map_or(self.probe_at, |l| l + KEEPALIVE)))
        } else if s.finals > 0 {
            Some(self.probe_at.min(s.last.unwrap_or(self.probe_at)))
        } else if s.due {
            Some(delayed(
                s.last
                    .map_or(self.probe_at, |l| l + self.status_every(config)),
            ))
        } else {
            None
        };
        [
            self.nack.timers.next(),
            self.nack.redraw,
            status,
            Some(self.probe_at + config.idle_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether a NACK timer is due by `now`.
    pub(super) fn nack_due(&self, now: Instant) -> bool {
        self.nack.timers.next().is_some_and(|t| t <= now)
    }

    /// Blocks this receiver should ask for now: behind the sender's progress,
    /// incomplete, and not held off.
    pub(super) fn needs(&self, table: &ObjectTable, now: Instant, session: SessionId) -> Vec<Need> {
        let mut out = Vec::new();
        // Objects wholly behind the progress point, and the one it is in.
        let upto = self.progress.0.saturating_add(1).min(self.objects);
        let mut missing_info = 0;
        // Nothing before what the sender still holds: it would not answer.
        for object in table.floor(session).max(self.retained)..upto {
            let key = (session, ObjectId(object));
            if table.is_done(key)
                || table
                    .bound
                    .as_ref()
                    .is_some_and(|b| !b.contains_key(&key.1))
            {
                continue;
            }
            let Some(o) = table.objects.get(&key) else {
                if object >= self.progress.0 {
                    break;
                }
                // An object we never heard of: ask for its OBJECT_INFO, a few at a time.
                if missing_info < 8
                    && self
                        .nack
                        .holdoff
                        .get(&(object, 0))
                        .is_none_or(|h| *h <= now)
                {
                    out.push(Need::Info { object });
                }
                missing_info += 1;
                if missing_info >= 8 {
                    break;
                }
                continue;
            };
            let blocks = if object < self.progress.0 {
                o.slots.len()
            } else {
                (self.progress.1 as usize).min(o.slots.len())
            };
            // Every block decoded but no OBJECT_INFO (so no hash): ask for it.
            if o.info.is_none()
                && object < self.progress.0
                && o.decoded_blocks == o.oti.source_blocks()
                && self
                    .nack
                    .holdoff
                    .get(&(object, 0))
                    .is_none_or(|h| *h <= now)
            {
                out.push(Need::Info { object });
                continue;
            }
            for sbn in 0..blocks {
                if matches!(o.slots[sbn], Slot::Done) {
                    continue;
                }
                if self
                    .nack
                    .holdoff
                    .get(&(object, sbn as u8))
                    .is_some_and(|h| *h > now)
                {
                    continue;
                }
                if let Some(n) = table.need_of(session, object, sbn as u8) {
                    out.push(n);
                }
            }
        }
        // Objects in progress beyond the first `upto` are not behind the sender yet.
        out
    }

    /// How long a block is held off after a NACK for it was sent or heard,
    /// unless its repair comes first ([`SessionFb::on_data`]): the repair's
    /// round trip, with the sender's aggregation and pacing (three GRTT). A
    /// NACK the sender did not answer (lost on its way, or taken as answered
    /// because repair for the block had just gone out, protocol.md §13.4) is
    /// then asked again in the next round, not a whole backoff later.
    fn holdoff(&self) -> Duration {
        self.grtt * 3
    }

    /// The longest NACK backoff, in GRTT: `nack_backoff`, shrunk for small
    /// groups (log10(group) / 3 within [0.1, 1]).
    fn backoff_window(&self, config: &ReceiverConfig) -> f64 {
        window_for(config.nack_backoff, self.group_size(config))
    }

    /// The two windows of a ranked backoff ([`ranked_backoff`]), in GRTT:
    /// the first, for the neediest few, sized for [`FIRST_RANKS`] receivers
    /// whatever the group; the rest's, for the group.
    fn backoff_windows(&self, config: &ReceiverConfig) -> (f64, f64) {
        (
            window_for(config.nack_backoff, FIRST_RANKS),
            self.backoff_window(config),
        )
    }

    /// The group as the sender counts it, or as configured if larger.
    fn group_size(&self, config: &ReceiverConfig) -> f64 {
        self.group.max(config.group_size as f64)
    }

    /// STATUS goes every GRTT, within [10 ms, `status_interval`]: often
    /// enough to keep flow control moving on a fast link, rarely enough for
    /// a small group. In a sampled group (Sample above 0), a receiver the
    /// PROBE asks answers that PROBE: the sender counts the answers.
    fn status_every(&self, config: &ReceiverConfig) -> Duration {
        if self.ask.sample > 0 {
            return Duration::from_millis(10);
        }
        let most = config.status_interval.max(Duration::from_millis(10));
        self.grtt.clamp(Duration::from_millis(10), most)
    }

    /// Whether this receiver's loss is surely above the loss the sender
    /// sizes proactive repair for: measured, and above it by four standard
    /// deviations of its own estimate (the sender sizes for the group's
    /// largest draw, which lies a few deviations above the average).
    fn lossier_than_asked(&self) -> bool {
        let span = self.loss.span();
        if self.ask.loss == 0 || span == 0 {
            return false;
        }
        let p = self.loss.loss();
        let sd = (p * (1.0 - p) / span as f64).sqrt();
        p - 4.0 * sd > self.ask.loss as f64 / 65536.0
    }

    /// How long after the PROBE a STATUS nobody asked for waits: NORM's
    /// truncated exponential over the NACK backoff window, drawn from the
    /// receiver id and the PROBE, so that of many receivers with the same
    /// reason only a few send before the sender's next PROBEs, which carry
    /// what they said, tell the rest it no longer holds.
    fn report_delay(&self, config: &ReceiverConfig) -> Duration {
        let u = unit(groupcast_fec::splitmix64(
            config.id ^ self.probe_ts ^ 0x5354_4154_5553,
        ));
        let window = self.grtt.as_secs_f64() * self.backoff_window(config);
        Duration::from_secs_f64(nack_backoff(u, window, self.group_size(config)).max(0.0))
    }

    /// Another receiver's NACK `entries` for this session: holds back our
    /// own requests that they cover, unless the block is doubted.
    pub(super) fn on_peer_nack(
        &mut self,
        now: Instant,
        session: SessionId,
        entries: &[NackEntry],
        table: &ObjectTable,
        stats: &mut ReceiverStats,
    ) {
        for e in entries {
            let Some(mine) = table.need_of(session, e.object, e.sbn) else {
                continue;
            };
            let covered = mine.covered_by(e);
            let key = (e.object, e.sbn);
            if covered && self.nack.doubt.contains(&key) {
                stats.suppressions_doubted += 1;
            } else if covered {
                let until = now + self.holdoff();
                let n = &mut self.nack;
                if n.suppressed.len() < MAX_HOLDOFFS {
                    let s = n.suppressed.entry(key).or_insert(until);
                    *s = (*s).max(until);
                }
                let h = n.holdoff.entry(key).or_insert(now);
                if *h <= now || n.timers.contains(key) {
                    stats.nacks_suppressed += 1;
                }
                *h = (*h).max(until);
                n.timers.remove(key);
                // A peer asked for us: unanswered too, until repair comes.
                n.unanswered.get_or_insert(now);
            }
        }
    }

    /// Warns once per session (and counts `nacks_unanswered`) when no repair
    /// has come for 4 GRTTs, at least 200 ms, since the first NACK (ours, or
    /// a peer's that covered us) that none has followed.
    pub(super) fn check_unanswered(
        &mut self,
        now: Instant,
        session: SessionId,
        stats: &mut ReceiverStats,
    ) {
        let Some(since) = self.nack.unanswered else {
            return;
        };
        let wait = (self.grtt * 4).max(Duration::from_millis(200));
        let waited = now.saturating_duration_since(since);
        if self.nack.warned_unanswered || waited < wait {
            return;
        }
        self.nack.warned_unanswered = true;
        stats.nacks_unanswered += 1;
        tracing::warn!(
            session = %format_args!("{:016x}", session.0),
            waited_ms = waited.as_millis() as u64,
            "NACKs unanswered: the sender may not hear this receiver. Likely causes: \
             the hop limit of its feedback (recv --hops; by default what the \
             sender's PROBEs need), a router that does not forward the channel's \
             feedback group towards the sender, or a firewall"
        );
    }

    /// Starts a backoff timer for the blocks that need asking about and have
    /// none, all with one delay drawn from NORM's truncated exponential, so
    /// that only a few receivers draw early and the rest hear them first. A
    /// receiver that lacks more draws a little earlier, so the NACK that goes
    /// first tends to cover everyone else's (protocol.md §13.4).
    pub(super) fn schedule_nack(
        &mut self,
        now: Instant,
        session: SessionId,
        (table, config): (&ObjectTable, &ReceiverConfig),
        rng: &mut u64,
    ) {
        self.nack.expire_suppressions(now);
        let needs: Vec<Need> = self
            .needs(table, now, session)
            .into_iter()
            .filter(|n| !self.nack.timers.contains(n.block()))
            .collect();
        if needs.is_empty() {
            return;
        }
        // One draw for every block that needs a timer now. Where a block's
        // need ranks in the group's (`need_rank`), its timer sits at the
        // draw's place within that rank: per block, the neediest first, and
        // blocks of one rank share a time, so one NACK carries them all.
        // Without a rank, every block takes the draw itself.
        let v = draw(rng);
        let max_need = needs.iter().map(|n| n.need().max(1)).max().unwrap_or(1);
        let plain = v * (0.5 + 0.5 / max_need as f64);
        // A small group needs little room for suppression: the window
        // shrinks with log10(group) / 3 (full size from 1000 receivers up).
        let group = self.group_size(config);
        let (first, window) = self.backoff_windows(config);
        let (loss, dispersion) = (self.loss.loss(), self.loss.dispersion());
        let grtt = self.grtt.as_secs_f64();
        for n in needs {
            let rank = match &n {
                Need::Block(b) => need_rank(b, loss, dispersion),
                Need::Info { .. } => None,
            };
            let delay = match rank {
                // With a group the sender has counted, the neediest few go first.
                Some((lo, hi, lacking)) if self.group_counted => {
                    let windows = (grtt * first, grtt * window);
                    ranked_backoff(lo + (hi - lo) * v, windows, grtt, group * lacking)
                }
                // With none (it has heard nobody, perhaps none of it reaches
                // the sender), the plain draw: ranks would push most NACKs to
                // the end of the window, and the unanswered ones warn later.
                _ => nack_backoff(plain, grtt * window, group),
            };
            let at = now + Duration::from_secs_f64(delay.max(0.0));
            self.nack.timers.insert(n.block(), at);
        }
    }

    /// The STATUS due now, if any (protocol.md §13.3); `None` also when it
    /// waits for credit (protocol.md §13.5).
    pub(super) fn status(
        &mut self,
        now: Instant,
        session: SessionId,
        (table, config): (&ObjectTable, &ReceiverConfig),
        stats: &mut ReceiverStats,
    ) -> Option<StatusRepr> {
        // Decide first whether a STATUS is due: this runs after every packet,
        // and the window edge below walks the receiver's objects. (Completing
        // an object makes a STATUS due at once, so the edge is computed then.)
        let interval = self.status_every(config);
        // Asked: a group asked whole, or a PROBE that sampled this receiver
        // is owed its answer.
        let asked = self.ask.sample == 0 || self.owed.is_some();
        let s = &mut self.status;
        let due = s.finals > 0 || (s.due && s.last.is_none_or(|l| now >= l + interval));
        if !due || (!asked && s.finals == 0 && s.report_at.is_some_and(|t| now < t)) {
            return None;
        }
        let edge = table.edge(session, self.objects);
        // A receiver that lost objects is never complete (`skip_lost`).
        let complete = self.objects > 0 && edge == (self.objects, 0) && !table.is_lossy(session);
        // Complete, it says so whatever the application still holds.
        let window = match s.hold {
            Some(h) if !complete => h.min(edge),
            _ => edge,
        };
        // BUSY: the window waits for this receiver's own work, not for
        // symbols: the edge's block is out to be solved, or everything the
        // sender announced is here and the application holds the window
        // (protocol.md §13.3).
        let busy = !complete
            && (table.solving(session, edge) || (window < edge && edge.0 >= self.objects));
        let unasked = !asked && s.finals == 0;
        if unasked && !self.reason_holds(now, window, complete, config) {
            return None;
        }
        let s = &mut self.status;
        s.report_at = None;
        if !s.spend(now, window, stats) {
            return None;
        }
        stats.status_unasked += unasked as u64;
        if complete && !s.complete {
            s.complete = true;
            s.finals = 3;
        }
        s.finals = s.finals.saturating_sub(1);
        s.due = false;
        s.last = Some(now);
        // An answer echoes the PROBE that asked for it.
        let (echo, heard) = self.owed.take().unwrap_or((self.probe_ts, self.probe_at));
        let hold = now.saturating_duration_since(heard).as_micros();
        let loss = &self.loss;
        Some(StatusRepr {
            session: session.0,
            receiver: config.id,
            echo_us: echo,
            hold_us: hold.min(u32::MAX as u128) as u32,
            loss_ppm: ((loss.loss() * 1e6) as u32).min(crate::wire::feedback::MAX_LOSS_PPM),
            loss_span: loss.span(),
            rate: loss.rate() as u64,
            window,
            flags: STATUS_ECHO
                | if complete { STATUS_COMPLETE } else { 0 }
                | if loss.measured() { STATUS_LOSS } else { 0 }
                | if busy { STATUS_BUSY } else { 0 },
        })
    }

    /// Whether a STATUS this receiver was not asked for may go now: only
    /// what may change the sender's decisions goes, after a delay, and only
    /// if it still holds against the latest PROBE's Limit and Loss
    /// (protocol.md §13.3, "Who reports"). Without a reason the due STATUS
    /// is dropped.
    fn reason_holds(
        &mut self,
        now: Instant,
        window: (u32, u8),
        complete: bool,
        config: &ReceiverConfig,
    ) -> bool {
        let lagging = !complete && self.ask.limit.is_some_and(|l| window < l);
        if !lagging && !self.lossier_than_asked() {
            let s = &mut self.status;
            (s.due, s.report_at, s.news) = (false, None, false);
            return false;
        }
        if self.status.report_at.is_none() {
            let at = self.probe_at + self.report_delay(config);
            self.status.report_at = Some(at);
            return now >= at;
        }
        true
    }

    /// The NACK due now, if any (protocol.md §13.4): every block whose timer
    /// is due and that this receiver still lacks and holds no holdoff for,
    /// within `room` bytes.
    pub(super) fn nack(
        &mut self,
        now: Instant,
        session: SessionId,
        (table, config): (&ObjectTable, &ReceiverConfig),
        room: usize,
    ) -> Option<NackRepr> {
        if self.nack.timers.next().is_none_or(|t| t > now) {
            return None;
        }
        // NACKs to the sender alone spend its credit, as STATUS does; the due
        // timers go, and the next PROBE draws new ones.
        if config.nack_unicast && self.status.credit == 0 {
            self.nack.timers.remove_due(now);
            return None;
        }
        // Only blocks whose own timer is due: a block whose timer runs on is
        // still in its backoff, and asking for it early would defeat the
        // suppression that backoff is for. Timers of blocks no longer lacking
        // (decoded, or held off by a peer's NACK) expire silently.
        let mut needs = self.needs(table, now, session);
        needs.retain(|n| self.nack.timers.get(n.block()).is_some_and(|t| t <= now));
        self.nack.timers.remove_due(now);
        let entries = self.nack_entries(now, needs, room);
        (!entries.is_empty()).then_some(NackRepr {
            session: session.0,
            receiver: config.id,
            entries,
        })
    }

    /// The entries of one NACK for `needs`, as many as fit in `room` bytes;
    /// each block that goes is held off and no longer doubted.
    fn nack_entries(&mut self, now: Instant, needs: Vec<Need>, room: usize) -> Vec<NackEntry> {
        let mut entries = Vec::new();
        let mut len = crate::wire::feedback::NACK_HEADER_LEN + crate::wire::CRC_LEN;
        for n in needs {
            let block = n.block();
            let mut entry = n.entry();
            // Scattered ESIs go as a bitmap where smaller (wire_len says);
            // long range lists are cut to fit, and blocks that do not fit
            // wait: their timers are gone, so the next PROBE draws new ones.
            if len + entry.wire_len() > room {
                let fixed = crate::wire::feedback::NACK_ENTRY_LEN;
                let per = crate::wire::feedback::NACK_RANGE_LEN;
                let fit = room.saturating_sub(len + fixed) / per;
                if fit == 0 || entry.ranges.is_empty() {
                    break;
                }
                entry.ranges.truncate(fit);
                entry.need = entry.ranges.iter().map(|r| r.1).sum();
            }
            len += entry.wire_len();
            self.nack.doubt.remove(&block);
            let until = now + self.holdoff() + Duration::from_millis(1);
            self.nack.holdoff.insert(block, until);
            entries.push(entry);
            if entries.len() >= crate::wire::feedback::MAX_NACK_ENTRIES {
                break;
            }
        }
        entries
    }

    /// A NACK went out at `now`: unanswered until repair comes, and one
    /// credit spent if it went to the sender alone.
    pub(super) fn nack_sent(&mut self, now: Instant, to: Destination) {
        self.nack.unanswered.get_or_insert(now);
        if to != Destination::Feedback {
            self.status.credit = self.status.credit.saturating_sub(1);
        }
    }
}

impl StatusState {
    /// Whether a due STATUS for `window` may go, spending credit if it says
    /// nothing new. A STATUS spends the session's credit, which only its
    /// DATA and OBJECT_INFO earn (protocol.md §13.5); without credit it
    /// waits for the session's next packet. News goes at once: the window
    /// moved by this receiver's own doing (an object completed, the
    /// application moved its hold), which no PROBE field can bring about.
    fn spend(&mut self, now: Instant, window: (u32, u8), stats: &mut ReceiverStats) -> bool {
        let news = self.news && self.last_window.is_some_and(|w| w != window);
        self.news = false;
        if !news {
            // A session that sent data once gets a keep-alive without
            // credit every KEEPALIVE, so that a quiet sender keeps its
            // receivers (a PROBE-only session never does).
            let keepalive = self.earned && self.last.is_none_or(|l| now >= l + KEEPALIVE);
            if self.credit > 0 {
                self.credit -= 1;
            } else if !keepalive {
                if !self.withheld {
                    self.withheld = true;
                    stats.status_withheld += 1;
                }
                return false;
            }
        }
        self.withheld = false;
        self.last_window = Some(window);
        true
    }
}

impl NackState {
    /// Scales what is scheduled after `now` by `ratio` (a GRTT that fell),
    /// keeping the timers' random order.
    fn rescale(&mut self, now: Instant, ratio: f64) {
        let scale = |t: &mut Instant| {
            if let Some(left) = t.checked_duration_since(now) {
                *t = now + left.mul_f64(ratio);
            }
        };
        self.holdoff.values_mut().for_each(scale);
        self.suppressed.values_mut().for_each(scale);
        self.timers.map(|mut t| {
            scale(&mut t);
            t
        });
    }

    /// A suppression whose holdoff ran out with no repair for the block:
    /// the NACK that suppressed us was not answered, and the block is doubted.
    fn expire_suppressions(&mut self, now: Instant) {
        let NackState {
            suppressed, doubt, ..
        } = self;
        suppressed.retain(|key, until| {
            if *until > now {
                return true;
            }
            doubt.insert(*key);
            false
        });
    }
}

impl Receiver {
    /// Draws NACK timers for the blocks of each session whose repair
    /// holdoff ended by `now` ([`NackState::redraw`]).
    pub(super) fn redraw_nacks(&mut self, now: Instant) {
        let fb = &mut self.fb;
        for (&session, f) in fb.sessions.iter_mut() {
            if f.nack.redraw.is_some_and(|r| r <= now) {
                f.nack.redraw = None;
                f.schedule_nack(now, session, (&self.table, &self.config), &mut fb.rng);
            }
        }
    }

    /// Counts a DATA packet of an accepted session for its loss and rate
    /// estimates.
    pub(super) fn count_arrival(&mut self, d: &DataRepr<'_>) {
        if let Some(f) = self.fb.sessions.get_mut(&SessionId(d.session)) {
            f.on_arrival(d.symbol.len());
        }
    }

    /// A DATA packet of a known object, for its session's feedback
    /// ([`SessionFb::on_data`]).
    pub(super) fn count_data(&mut self, now: Instant, key: Key, d: &DataRepr<'_>) {
        let Some(f) = self.fb.sessions.get_mut(&key.0) else {
            return;
        };
        let known = self.table.objects.contains_key(&key);
        f.on_data(now, (d.object, d.sbn), known, d.fec != FecId::NoCode);
    }

    /// A PROBE (protocol.md §13.1): the session's feedback state is made if
    /// there is room, updated, and its NACK timers drawn.
    pub(super) fn handle_probe(&mut self, now: Instant, p: ProbeRepr) -> Result<(), RejectReason> {
        self.accept_session(p.session)?;
        let session = SessionId(p.session);
        self.stats.probes_received += 1;
        // A PROBE follows each new window and the end of the first pass:
        // the blocks held back for more symbols have what they will get.
        self.ship_ripening(None);
        if !self.config.feedback || !self.room_for_feedback(session) {
            return Ok(());
        }
        // DATA heard before the session's first PROBE earns its first
        // replies (the receiver holds or completed some of its objects).
        let table = &self.table;
        let f = self
            .fb
            .sessions
            .entry(session)
            .or_insert_with(|| SessionFb::new(now, p.timestamp_us, table.heard_of(session)));
        let bound = table.bound_objects();
        let contradicted = f.on_probe(now, (&p, self.config.id), bound)?;
        f.schedule_nack(now, session, (&self.table, &self.config), &mut self.fb.rng);
        if let Some(x) = contradicted {
            self.conflict((session, ObjectId(x)));
        }
        Ok(())
    }

    /// Whether `session` has feedback state, or room for it (made if need
    /// be by [`Receiver::evict_feedback`]); counted in `feedback_ignored`
    /// if not.
    fn room_for_feedback(&mut self, session: SessionId) -> bool {
        if self.fb.sessions.contains_key(&session)
            || self.fb.sessions.len() < self.config.max_sessions
            || self.evict_feedback(session)
        {
            return true;
        }
        self.stats.feedback_ignored += 1;
        false
    }

    /// Makes room in the full feedback table for `session`'s state, if
    /// `session` has an object in progress and some session there has none:
    /// the one whose PROBE is oldest goes (counted in `feedback_expired`).
    /// PROBEs alone, which anyone can forge, thus never crowd out the feedback
    /// of a session whose objects (a candidate manifest) are arriving.
    pub(super) fn evict_feedback(&mut self, session: SessionId) -> bool {
        let has_object = |s: SessionId| self.table.objects.keys().any(|k| k.0 == s);
        if !has_object(session) {
            return false;
        }
        let victim = self
            .fb
            .sessions
            .iter()
            .filter(|(s, _)| !has_object(**s))
            .min_by_key(|(_, f)| f.probe_at)
            .map(|(s, _)| *s);
        match victim {
            Some(v) => {
                self.fb.sessions.remove(&v);
                self.stats.feedback_expired += 1;
                true
            }
            None => false,
        }
    }

    /// Another receiver's NACK: hold back our own requests that it covers.
    pub(super) fn handle_peer_nack(
        &mut self,
        now: Instant,
        n: &NackRepr,
    ) -> Result<(), RejectReason> {
        self.accept_session(n.session)?;
        let session = SessionId(n.session);
        let f = match self.fb.sessions.get_mut(&session) {
            Some(f) if n.receiver != self.config.id => f,
            _ => {
                self.stats.feedback_ignored += 1;
                return Ok(());
            }
        };
        self.stats.nacks_heard += 1;
        f.on_peer_nack(now, session, &n.entries, &self.table, &mut self.stats);
        f.check_unanswered(now, session, &mut self.stats);
        Ok(())
    }

    /// A STATUS for `session`, if one is due, written into `buf`.
    pub(super) fn status_packet(
        &mut self,
        now: Instant,
        session: SessionId,
        buf: &mut [u8],
    ) -> Option<(usize, Destination)> {
        let f = self.fb.sessions.get_mut(&session)?;
        let st = f.status(now, session, (&self.table, &self.config), &mut self.stats)?;
        let len = st.write(buf).ok()?;
        self.stats.status_sent += 1;
        Some((len, Destination::Sender(session)))
    }

    /// A NACK for `session`, if one is due, written into `buf`.
    pub(super) fn nack_packet(
        &mut self,
        now: Instant,
        session: SessionId,
        buf: &mut [u8],
    ) -> Option<(usize, Destination)> {
        let f = self.fb.sessions.get_mut(&session)?;
        let room = buf.len().min(crate::wire::DEFAULT_MAX_DATAGRAM);
        let nack = f.nack(now, session, (&self.table, &self.config), room)?;
        let len = nack.write(buf).ok()?;
        self.stats.nacks_sent += 1;
        let to = if self.config.nack_unicast {
            Destination::Sender(session)
        } else {
            Destination::Feedback
        };
        f.nack_sent(now, to);
        f.check_unanswered(now, session, &mut self.stats);
        tracing::trace!(
            session = %format_args!("{:016x}", session.0),
            entries = nack.entries.len(),
            "NACK sent"
        );
        Some((len, to))
    }
}
