//! Feedback to a nack or hybrid sender (protocol.md §13): PROBEs taken
//! in, STATUS and NACKs written out, NACK backoffs, suppression by peers'
//! NACKs, and reply credit. What the receiver lacks is read from the object
//! table here but never changed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::need::{Need, covers, nack_backoff, need_rank, ranked_backoff};
use super::objects::{Key, ObjectTable, Slot};
use super::{Destination, Receiver, ReceiverConfig, RejectReason};
use crate::proto::timer::BlockTimers;
use crate::proto::{ObjectId, SessionId};
use crate::wire::DataRepr;
use crate::wire::feedback::{
    NACK_NEED_INFO, PROBE_END, STATUS_BUSY, STATUS_COMPLETE, STATUS_ECHO, STATUS_LOSS,
};
use crate::wire::{NackEntry, NackRepr, ProbeRepr, StatusRepr};

/// Feedback state for one session (nack and hybrid modes).
pub(super) struct SessionFb {
    /// The sender's GRTT, as its PROBEs give it (see `handle_probe`).
    pub(super) grtt: Duration,
    /// When `grtt` was last set.
    pub(super) grtt_at: Instant,
    /// The sender's group size estimate (receivers it tracks), at least 1.
    pub(super) group: f64,
    /// Whether `group` is the sender's count (its PROBEs' Group field), not
    /// the guess while it has heard nobody.
    pub(super) group_counted: bool,
    pub(super) objects: u32,
    pub(super) progress: (u32, u8),
    /// The first object the sender still holds (PROBE's Retained).
    pub(super) retained: u32,
    pub(super) probe_ts: u64,
    pub(super) probe_at: Instant,
    /// The sender's DATA counter at the last accepted PROBE; none before the
    /// first plausible one.
    pub(super) probe_sent: Option<u64>,
    /// When `probe_sent` was last accepted (or the session first heard).
    pub(super) counter_at: Instant,
    pub(super) data_at_probe: u64,
    pub(super) bytes_at_probe: u64,
    pub(super) data: u64,
    pub(super) bytes: u64,
    /// The loss reported in STATUS, which NACK backoffs also rank needs by
    /// (`need_rank`): the ratio of the DATA counted to the DATA the sender's
    /// counter says went out (`loss_got`, `loss_sent`) until [`LOSS_WARMUP`]
    /// went out, then a moving average of the PROBE samples (weight 1/4 for
    /// a sample of [`LOSS_SAMPLE`] DATA or more, in proportion below).
    /// (A moving average from 0 says a quarter of the loss after one sample:
    /// ranks drawn from it put most of a group first, and the sender's
    /// proactive repair, sized from the reports, fell short of the loss.)
    pub(super) loss: f64,
    /// The PROBE loss samples' variance over what independent loss at
    /// `loss` would give them, a moving average from 1 (each sample's
    /// share at most 10): bursty loss makes it larger, and above
    /// [`DISPERSION_LIMIT`] `need_rank` gives up its binomial model.
    pub(super) dispersion: f64,
    pub(super) loss_got: u64,
    pub(super) loss_sent: u64,
    /// The variance of `loss` over p(1 − p), were loss independent at a
    /// rate p: 1 / `loss_sent` while `loss` is a plain ratio, then carried
    /// through each moving-average step (weight w over a sample of n DATA:
    /// (1 − w)² V + w² / n). Its inverse is the Loss span STATUS reports,
    /// from which the sender tells noise from need in a group's reports.
    pub(super) loss_var: f64,
    /// PROBE loss samples taken.
    pub(super) loss_samples: u32,
    pub(super) rate: f64,
    pub(super) status_due: bool,
    pub(super) final_statuses: u8,
    pub(super) last_status: Option<Instant>,
    /// The window edge the application holds STATUS at (`hold_window`).
    pub(super) hold: Option<(u32, u8)>,
    /// When each block's NACK is due.
    pub(super) timers: BlockTimers,
    pub(super) holdoff: HashMap<(u32, u8), Instant>,
    /// Blocks a peer's NACK held back, until when: if no repair for the block
    /// comes by then, the peer is doubted.
    pub(super) suppressed: HashMap<(u32, u8), Instant>,
    /// Blocks whose last suppression brought no repair: their next NACK is
    /// sent whatever peers say, so forged NACKs (which the sender may well
    /// drop) cannot silence a receiver.
    pub(super) doubt: HashSet<(u32, u8)>,
    pub(super) complete: bool,
    /// When the first of our NACKs that no repair has followed yet went out.
    pub(super) unanswered: Option<Instant>,
    /// Whether we warned that NACKs go unanswered.
    pub(super) warned_unanswered: bool,
    /// Packets with nothing new this receiver may still send to the
    /// session's sender (STATUS whose window did not move, and NACKs under
    /// `nack_unicast`): one per DATA or OBJECT_INFO packet of the session
    /// heard, at most [`MAX_SENDER_CREDIT`]; two to start with if some was
    /// heard before its first PROBE. A PROBE earns none, so that PROBEs of a
    /// session that sends nothing, from a spoofed source, draw no reply
    /// (protocol.md §13.5).
    pub(super) sender_credit: u32,
    /// The window the last STATUS reported.
    pub(super) last_window: Option<(u32, u8)>,
    /// Whether a due STATUS waits for credit (counted once).
    pub(super) withheld: bool,
    /// Whether the session ever earned credit (sent DATA or OBJECT_INFO):
    /// it then gets a keep-alive STATUS every [`KEEPALIVE`] without credit.
    pub(super) earned: bool,
    /// Whether this receiver moved its window itself since the last STATUS
    /// (an object completed, the application moved its hold).
    pub(super) news: bool,
    /// The highest object of the session completed, and when: a PROBE heard
    /// [`CONTRADICTION_GRACE`] later that says the session has no such
    /// object contradicts it (protocol.md §13.5).
    pub(super) done_max: Option<(u32, Instant)>,
}

/// How long after an object completed a PROBE that counts fewer objects is
/// taken as a contradiction, not as a PROBE sent before the object and
/// overtaken by its DATA on the way.
pub const CONTRADICTION_GRACE: Duration = Duration::from_millis(100);

impl SessionFb {
    /// Blocks this receiver should ask for now: behind the sender's progress,
    /// incomplete, and not held off.
    pub(super) fn needs(&self, table: &ObjectTable, now: Instant, session: SessionId) -> Vec<Need> {
        let f = self;
        let mut out = Vec::new();
        // Objects wholly behind the progress point, and the one it is in.
        let upto = f.progress.0.saturating_add(1).min(f.objects);
        let mut missing_info = 0;
        // Nothing before what the sender still holds: it would not answer.
        for object in table.floor(session).max(f.retained)..upto {
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
                if object >= f.progress.0 {
                    break;
                }
                // An object we never heard of: ask for its OBJECT_INFO, a few at a time.
                if missing_info < 8 && f.holdoff.get(&(object, 0)).is_none_or(|h| *h <= now) {
                    out.push(Need::info(object));
                }
                missing_info += 1;
                if missing_info >= 8 {
                    break;
                }
                continue;
            };
            let blocks = if object < f.progress.0 {
                o.slots.len()
            } else {
                (f.progress.1 as usize).min(o.slots.len())
            };
            // Every block decoded but no OBJECT_INFO (so no hash): ask for it.
            if o.info.is_none()
                && object < f.progress.0
                && o.decoded_blocks == o.oti.source_blocks()
                && f.holdoff.get(&(object, 0)).is_none_or(|h| *h <= now)
            {
                out.push(Need::info(object));
                continue;
            }
            for sbn in 0..blocks {
                if matches!(o.slots[sbn], Slot::Done) {
                    continue;
                }
                if f.holdoff
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

    /// A DATA or OBJECT_INFO packet of the session: one reply credit more.
    pub(super) fn earn(&mut self) {
        self.sender_credit = (self.sender_credit + 1).min(MAX_SENDER_CREDIT);
        self.earned = true;
    }
}

/// Packets to a session's sender a receiver may bank (`SessionFb::sender_credit`).
pub(super) const MAX_SENDER_CREDIT: u32 = 64;

/// How often a session that sent data once gets a STATUS without credit,
/// so that a sender with nothing to send for a while (a quiet feed) keeps
/// hearing its receivers: well within the sender's receiver timeout (5 s by
/// default). Reflection to a spoofed source is then bounded in rate too: one
/// STATUS a second per session per receiver.
pub const KEEPALIVE: Duration = Duration::from_secs(1);

impl Receiver {
    /// Counts a DATA packet of an accepted session for its loss and rate
    /// estimates.
    pub(super) fn count_arrival(&mut self, d: &DataRepr<'_>) {
        if let Some(f) = self.fb.get_mut(&SessionId(d.session)) {
            f.data += 1;
            f.bytes += d.symbol.len() as u64;
            f.earn();
        }
    }

    /// For a DATA packet of a known object: notes that repair answered a
    /// request, and holds back our own request for a block behind the
    /// sender's progress (repair: more may be coming) for a GRTT.
    pub(super) fn count_data(&mut self, now: Instant, key: Key, d: &DataRepr<'_>) {
        let Some(f) = self.fb.get_mut(&key.0) else {
            return;
        };
        let known = self.table.objects.contains_key(&key);
        // Repair for a block: whoever asked for it was answered.
        if f.suppressed.remove(&(d.object, d.sbn)).is_some() {
            f.doubt.remove(&(d.object, d.sbn));
        }
        if (d.object, d.sbn) < f.progress {
            // Repair (DATA behind the first pass): NACKs are heard.
            f.unanswered = None;
        }
        if known && (d.object, d.sbn) < f.progress {
            // Bounded: only objects in progress, and at most MAX_HOLDOFFS.
            if f.holdoff.len() >= MAX_HOLDOFFS {
                f.holdoff.retain(|_, h| *h > now);
            }
            if f.holdoff.len() < MAX_HOLDOFFS {
                let h = f.holdoff.entry((d.object, d.sbn)).or_insert(now);
                *h = (*h).max(now + f.grtt);
            }
        }
    }

    pub(super) fn handle_probe(&mut self, now: Instant, p: ProbeRepr) -> Result<(), RejectReason> {
        self.accept_session(p.session)?;
        let session = SessionId(p.session);
        self.stats.probes_received += 1;
        // A PROBE follows each new window and the end of the first pass:
        // the blocks held back for more symbols have what they will get.
        self.ship_ripening(None);
        if !self.config.feedback {
            return Ok(());
        }
        if !self.fb.contains_key(&session)
            && self.fb.len() >= self.config.max_sessions
            && !self.evict_feedback(session)
        {
            self.stats.feedback_ignored += 1;
            return Ok(());
        }
        // DATA heard before the session's first PROBE earns its first
        // replies (the receiver holds or completed some of its objects).
        let heard = !self.fb.contains_key(&session)
            && (self.table.floor(session) > 0
                || self.table.objects.keys().any(|k| k.0 == session)
                || self.table.completed.iter().any(|k| k.0 == session));
        let f = self.fb.entry(session).or_insert_with(|| SessionFb {
            grtt: Duration::ZERO,
            grtt_at: now,
            group: 1.0,
            group_counted: false,
            objects: 0,
            progress: (0, 0),
            retained: 0,
            probe_ts: p.timestamp_us,
            probe_at: now,
            probe_sent: None,
            counter_at: now,
            data_at_probe: 0,
            bytes_at_probe: 0,
            data: 0,
            bytes: 0,
            loss: 0.0,
            dispersion: 1.0,
            loss_got: 0,
            loss_var: 0.0,
            loss_sent: 0,
            loss_samples: 0,
            rate: 0.0,
            status_due: false,
            final_statuses: 0,
            last_status: None,
            hold: None,
            timers: BlockTimers::default(),
            holdoff: HashMap::new(),
            suppressed: HashMap::new(),
            doubt: HashSet::new(),
            complete: false,
            unanswered: None,
            warned_unanswered: false,
            sender_credit: if heard { 2 } else { 0 },
            last_window: None,
            withheld: false,
            earned: heard,
            news: false,
            done_max: None,
        });
        // The sender's counter starts at 0 with its session and grows by one
        // per DATA packet; anyone can forge it. So it may run ahead of the
        // DATA heard since the last accepted one (or since the session's first
        // PROBE) by at most 64 × (DATA + 16), or FIRST_PROBE_SLACK before any
        // was accepted. A first PROBE therefore sets no baseline that real
        // PROBEs would then seem to run behind. After two seconds without an
        // accepted counter (an outage, a late join, or a forged baseline that
        // the sender's own PROBEs run behind), the counter is taken as it comes.
        let got = f.data.saturating_sub(f.data_at_probe);
        let fresh = now.saturating_duration_since(f.counter_at) < Duration::from_secs(2);
        let (from, slack) = match f.probe_sent {
            Some(b) => (b, 64 * (got + 16)),
            None => (0, FIRST_PROBE_SLACK + 64 * got),
        };
        if fresh && p.sent > from && p.sent - from > slack {
            // Far more DATA claimed than could have gone by: a forged counter
            // would freeze or poison the loss estimate.
            return Err(RejectReason::Implausible);
        }
        // Behind the baseline (reordered, or forged low), a PROBE gives no
        // sample; the baseline stays, unless it is stale.
        if let Some(b) = f.probe_sent.filter(|&b| p.sent > b) {
            let sent = (p.sent - b) as f64;
            let sample = (1.0 - got as f64 / sent).clamp(0.0, 1.0);
            // How much more the samples vary than independent loss would make
            // them (bursts), for need_rank.
            let p0 = f.loss;
            if f.loss_sent > 0 && p0 > 0.0 && p0 < 1.0 {
                let ratio = (sample - p0).powi(2) * sent / (p0 * (1.0 - p0));
                f.dispersion = 0.9 * f.dispersion + 0.1 * ratio.min(10.0);
            }
            f.loss_samples = f.loss_samples.saturating_add(1);
            if f.loss_sent < LOSS_WARMUP {
                f.loss_sent += p.sent - b;
                f.loss_got += got.min(p.sent - b);
                f.loss = 1.0 - f.loss_got as f64 / f.loss_sent as f64;
                f.loss_var = 1.0 / f.loss_sent as f64;
            } else {
                // Each sample weighs by the DATA it spans: PROBEs close
                // together (a window's end, a flow-blocked pass) give samples
                // of a few packets, and at a full quarter each, one sample of
                // 11 packets with none lost would take a 10% estimate to 7%, and
                // the sender's proactive repair with it.
                let weight = 0.25 * (sent / LOSS_SAMPLE as f64).min(1.0);
                f.loss += weight * (sample - f.loss);
                f.loss_var = (1.0 - weight).powi(2) * f.loss_var + weight * weight / sent;
            }
            let dt = now.saturating_duration_since(f.counter_at).as_secs_f64();
            if dt > 0.0 {
                let r = f.bytes.saturating_sub(f.bytes_at_probe) as f64 / dt;
                f.rate = 0.75 * f.rate + 0.25 * r;
            }
        }
        if f.probe_sent.is_none_or(|b| p.sent > b || !fresh) {
            f.probe_sent = Some(p.sent);
            f.counter_at = now;
            f.data_at_probe = f.data;
            f.bytes_at_probe = f.bytes;
        }
        // NACK timers and holdoffs scale with the GRTT, and anyone can forge
        // a PROBE: a lower GRTT is taken at once, a higher one at most
        // twofold per GRTT_RISE, and never beyond MAX_PROBE_GRTT. So forged
        // PROBEs, however many, keep it within twice what the sender's own
        // (every 25 ms by default) last said.
        let grtt = Duration::from_micros(p.grtt_us as u64).min(MAX_PROBE_GRTT);
        let before = f.grtt;
        if f.grtt.is_zero() || grtt <= f.grtt {
            f.grtt = grtt;
            f.grtt_at = now;
        } else if now.saturating_duration_since(f.grtt_at) >= GRTT_RISE {
            f.grtt = grtt.min(f.grtt * 2);
            f.grtt_at = now;
        }
        if f.grtt * 4 < before {
            // What a higher GRTT (a forged first PROBE, say) scheduled comes
            // closer in proportion, keeping the timers' random order.
            let ratio = f.grtt.as_secs_f64() / before.as_secs_f64();
            let scale = |t: &mut Instant| {
                if let Some(left) = t.checked_duration_since(now) {
                    *t = now + left.mul_f64(ratio);
                }
            };
            f.holdoff.values_mut().for_each(scale);
            f.suppressed.values_mut().for_each(scale);
            f.timers.map(|mut t| {
                scale(&mut t);
                t
            });
        }
        // Group 0: the sender has heard from nobody yet (early in a session),
        // so the size is unknown; assume a large group until it says.
        f.group = match p.group_log2 {
            0 => UNKNOWN_GROUP,
            g => (2f64).powi(g as i32),
        };
        f.group_counted = p.group_log2 > 0;
        // Never more objects than the bound manifest has.
        f.objects = match &self.table.bound {
            Some(b) => p.objects.min(b.keys().map(|o| o.0 + 1).max().unwrap_or(0)),
            None => p.objects,
        };
        f.progress = if p.flags & PROBE_END != 0 {
            (p.objects, 0)
        } else {
            p.progress
        };
        // A PROBE that says the session has no object this receiver
        // completed well before it: two senders under one session id, one of
        // them forged (protocol.md §13.5).
        let contradicted = f
            .done_max
            .filter(|&(x, at)| {
                self.table.bound.is_none()
                    && p.objects <= x
                    && now.saturating_duration_since(at) >= CONTRADICTION_GRACE
            })
            .map(|(x, _)| x);
        if contradicted.is_some() {
            f.done_max = None;
        }
        // It only grows (a reordered PROBE does not bring objects back).
        f.retained = f.retained.max(p.retained);
        f.probe_ts = p.timestamp_us;
        f.probe_at = now;
        f.status_due = true;
        self.schedule_nack(now, session);
        if let Some(x) = contradicted {
            self.conflict((session, ObjectId(x)));
        }
        Ok(())
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
            .iter()
            .filter(|(s, _)| !has_object(**s))
            .min_by_key(|(_, f)| f.probe_at)
            .map(|(s, _)| *s);
        match victim {
            Some(v) => {
                self.fb.remove(&v);
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
        let known = &self.table;
        let f = match self.fb.get_mut(&session) {
            Some(f) if n.receiver != self.config.id => f,
            _ => {
                self.stats.feedback_ignored += 1;
                return Ok(());
            }
        };
        self.stats.nacks_heard += 1;
        for e in &n.entries {
            let Some(mine) = known.need_of(session, e.object, e.sbn) else {
                continue;
            };
            let covered = if e.flags & NACK_NEED_INFO != 0 || mine.info {
                e.flags & NACK_NEED_INFO != 0 && mine.info
            } else if mine.ranges.is_empty() {
                e.ranges.is_empty() && e.need >= mine.need
            } else {
                covers(&e.ranges, &mine.ranges)
            };
            let key = (e.object, e.sbn);
            if covered && f.doubt.contains(&key) {
                self.stats.suppressions_doubted += 1;
            } else if covered {
                let until = now + holdoff(f, &self.config);
                if f.suppressed.len() < MAX_HOLDOFFS {
                    let s = f.suppressed.entry(key).or_insert(until);
                    *s = (*s).max(until);
                }
                let h = f.holdoff.entry(key).or_insert(now);
                if *h <= now || f.timers.contains(key) {
                    self.stats.nacks_suppressed += 1;
                }
                *h = (*h).max(until);
                f.timers.remove(key);
                // A peer asked for us: unanswered too, until repair comes.
                f.unanswered.get_or_insert(now);
            }
        }
        self.check_unanswered(now, session);
        Ok(())
    }

    /// Warns once per session (and counts `nacks_unanswered`) when no repair
    /// has come for 4 GRTTs, at least 200 ms, since the first NACK (ours, or
    /// a peer's that covered us) that none has followed.
    pub(super) fn check_unanswered(&mut self, now: Instant, session: SessionId) {
        let Some(f) = self.fb.get_mut(&session) else {
            return;
        };
        let Some(since) = f.unanswered else {
            return;
        };
        let wait = (f.grtt * 4).max(Duration::from_millis(200));
        let waited = now.saturating_duration_since(since);
        if f.warned_unanswered || waited < wait {
            return;
        }
        f.warned_unanswered = true;
        self.stats.nacks_unanswered += 1;
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
    /// first tends to cover everyone else's.
    pub(super) fn schedule_nack(&mut self, now: Instant, session: SessionId) {
        let Some(f) = self.fb.get_mut(&session) else {
            return;
        };
        // A suppression whose holdoff ran out with no repair for the block:
        // the NACK that suppressed us was not answered.
        let SessionFb {
            suppressed, doubt, ..
        } = f;
        suppressed.retain(|key, until| {
            if *until > now {
                return true;
            }
            doubt.insert(*key);
            false
        });
        let needs: Vec<Need> = f
            .needs(&self.table, now, session)
            .into_iter()
            .filter(|n| !f.timers.contains((n.object, n.sbn)))
            .collect();
        if needs.is_empty() {
            return;
        }
        // One draw for every block that needs a timer now. Where a block's
        // need ranks in the group's (`need_rank`), its timer sits at the
        // draw's place within that rank: per block, the neediest first, and
        // blocks of one rank share a time, so one NACK carries them all.
        // Without a rank, every block takes the draw itself.
        let v = draw(&mut self.rng);
        let max_need = needs.iter().map(|n| n.need.max(1)).max().unwrap_or(1);
        let plain = v * (0.5 + 0.5 / max_need as f64);
        // The group as the sender counts it, or as configured if larger. A
        // small group needs little room for suppression: the window shrinks
        // with log10(group) / 3 (full size from 1000 receivers up).
        let group = f.group.max(self.config.group_size as f64);
        let window = backoff_window(f, &self.config);
        let loss = f.loss;
        let dispersion = f.dispersion;
        let grtt = f.grtt.as_secs_f64();
        let counted = f.group_counted;
        for n in needs {
            let delay = match need_rank(&n, loss, dispersion) {
                // With a group the sender has counted, the neediest few go first.
                Some((lo, hi, lacking)) if counted => {
                    ranked_backoff(lo + (hi - lo) * v, grtt * window, group * lacking)
                }
                // With none (it has heard nobody, perhaps none of it reaches
                // the sender), the plain draw: ranks would push most NACKs to
                // the end of the window, and the unanswered ones warn later.
                _ => nack_backoff(plain, grtt * window, group),
            };
            let at = now + Duration::from_secs_f64(delay.max(0.0));
            f.timers.insert((n.object, n.sbn), at);
        }
    }

    pub(super) fn status_packet(
        &mut self,
        now: Instant,
        session: SessionId,
        buf: &mut [u8],
    ) -> Option<(usize, Destination)> {
        // Decide first whether a STATUS is due: this runs after every packet,
        // and the window edge below walks the receiver's objects. (Completing
        // an object makes a STATUS due at once, so the edge is computed then.)
        let f = self.fb.get_mut(&session)?;
        let interval = status_every(f, &self.config);
        let due = f.final_statuses > 0
            || (f.status_due && f.last_status.is_none_or(|l| now >= l + interval));
        if !due {
            return None;
        }
        let edge = self.table.edge(session, f.objects);
        // A receiver that lost objects is never complete (`skip_lost`).
        let complete = f.objects > 0 && edge == (f.objects, 0) && !self.table.is_lossy(session);
        // Complete, it says so whatever the application still holds.
        let window = match f.hold {
            Some(h) if !complete => h.min(edge),
            _ => edge,
        };
        // BUSY: the window waits for this receiver's own work, not for
        // symbols: the edge's block is out to be solved, or everything the
        // sender announced is here and the application holds the window
        // (protocol.md §13.3).
        let busy = !complete
            && (self.table.solving(session, edge) || (window < edge && edge.0 >= f.objects));
        // A STATUS spends the session's credit, which only its DATA and
        // OBJECT_INFO earn (protocol.md §13.5); without credit it waits for
        // the session's next packet. News goes at once: the window moved by
        // this receiver's own doing (an object completed, the application
        // moved its hold), which no PROBE field can bring about.
        let news = f.news && f.last_window.is_some_and(|w| w != window);
        f.news = false;
        if !news {
            // A session that sent data once gets a keep-alive without
            // credit every KEEPALIVE, so that a quiet sender keeps its
            // receivers (a PROBE-only session never does).
            let keepalive = f.earned && f.last_status.is_none_or(|l| now >= l + KEEPALIVE);
            if f.sender_credit > 0 {
                f.sender_credit -= 1;
            } else if !keepalive {
                if !f.withheld {
                    f.withheld = true;
                    self.stats.status_withheld += 1;
                }
                return None;
            }
        }
        f.withheld = false;
        f.last_window = Some(window);
        if complete && !f.complete {
            f.complete = true;
            f.final_statuses = 3;
        }
        f.final_statuses = f.final_statuses.saturating_sub(1);
        f.status_due = false;
        f.last_status = Some(now);
        let hold = now.saturating_duration_since(f.probe_at).as_micros();
        let st = StatusRepr {
            session: session.0,
            receiver: self.config.id,
            echo_us: f.probe_ts,
            hold_us: hold.min(u32::MAX as u128) as u32,
            loss_ppm: ((f.loss * 1e6) as u32).min(crate::wire::feedback::MAX_LOSS_PPM),
            loss_span: loss_span(f),
            rate: f.rate as u64,
            window,
            flags: STATUS_ECHO
                | if complete { STATUS_COMPLETE } else { 0 }
                | if loss_measured(f) { STATUS_LOSS } else { 0 }
                | if busy { STATUS_BUSY } else { 0 },
        };
        let len = st.write(buf).ok()?;
        self.stats.status_sent += 1;
        Some((len, Destination::Sender(session)))
    }

    pub(super) fn nack_packet(
        &mut self,
        now: Instant,
        session: SessionId,
        buf: &mut [u8],
    ) -> Option<(usize, Destination)> {
        // Some timers are due: the packet carries every block whose timer is
        // due and that this receiver still lacks and holds no holdoff for.
        let f = self.fb.get_mut(&session)?;
        if f.timers.next().is_none_or(|t| t > now) {
            return None;
        }
        // NACKs to the sender alone spend its credit, as STATUS does; the due
        // timers go, and the next PROBE draws new ones.
        if self.config.nack_unicast && f.sender_credit == 0 {
            f.timers.remove_due(now);
            return None;
        }
        // Only blocks whose own timer is due: a block whose timer runs on is
        // still in its backoff, and asking for it early would defeat the
        // suppression that backoff is for. Timers of blocks no longer lacking
        // (decoded, or held off by a peer's NACK) expire silently.
        let mut needs = f.needs(&self.table, now, session);
        needs.retain(|n| f.timers.get((n.object, n.sbn)).is_some_and(|t| t <= now));
        f.timers.remove_due(now);
        let room = buf.len().min(crate::wire::DEFAULT_MAX_DATAGRAM);
        let mut nack = NackRepr {
            session: session.0,
            receiver: self.config.id,
            entries: Vec::new(),
        };
        let mut len = crate::wire::feedback::NACK_HEADER_LEN + crate::wire::CRC_LEN;
        for n in needs {
            let mut entry = NackEntry {
                object: n.object,
                sbn: n.sbn,
                flags: if n.info { NACK_NEED_INFO } else { 0 },
                need: n.need,
                ranges: n.ranges,
            };
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
            f.doubt.remove(&(n.object, n.sbn));
            f.holdoff.insert(
                (n.object, n.sbn),
                now + holdoff(f, &self.config) + Duration::from_millis(1),
            );
            nack.entries.push(entry);
            if nack.entries.len() >= crate::wire::feedback::MAX_NACK_ENTRIES {
                break;
            }
        }
        if nack.entries.is_empty() {
            return None;
        }
        let len = nack.write(buf).ok()?;
        self.stats.nacks_sent += 1;
        if let Some(f) = self.fb.get_mut(&session) {
            f.unanswered.get_or_insert(now);
        }
        self.check_unanswered(now, session);
        tracing::trace!(
            session = %format_args!("{:016x}", session.0),
            entries = nack.entries.len(),
            "NACK sent"
        );

        let to = if self.config.nack_unicast {
            Destination::Sender(session)
        } else {
            Destination::Feedback
        };
        if to != Destination::Feedback
            && let Some(f) = self.fb.get_mut(&session)
        {
            f.sender_credit = f.sender_credit.saturating_sub(1);
        }
        Some((len, to))
    }
}

/// A uniform draw in [0, 1) from a receiver's own generator, seeded by its
/// id (splitmix64), so runs are reproducible.
pub(super) fn draw(rng: &mut u64) -> f64 {
    let z = groupcast_fec::splitmix64(*rng);
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// DATA packets over which a session's first loss estimate is a plain ratio
/// (see `SessionFb::loss_got`).
pub(super) const LOSS_WARMUP: u64 = 2000;

/// DATA, or PROBE samples, after which a session's loss estimate is taken as
/// measured (STATUS with LOSS): the first samples can span a few packets,
/// and a first report from one of 20 packets said 5% at 10% loss and sized
/// a window's repair for it. At high rates the DATA come first (1000 at
/// 10% loss: about ±2% at 95%), at low ones the samples (200 ms of PROBEs).
pub(super) const LOSS_MEASURED: (u64, u32) = (1000, 8);

/// Whether the loss a session's STATUS reports is measured (see
/// [`LOSS_MEASURED`]).
pub(super) fn loss_measured(f: &SessionFb) -> bool {
    f.loss_sent >= LOSS_MEASURED.0 || f.loss_samples >= LOSS_MEASURED.1
}

/// The Loss span a STATUS reports: 1 / `loss_var` in DATA packets,
/// saturating; 0 before the loss is measured.
pub(super) fn loss_span(f: &SessionFb) -> u16 {
    if !loss_measured(f) || f.loss_var <= 0.0 {
        return 0;
    }
    (1.0 / f.loss_var).round().min(u16::MAX as f64) as u16
}

/// DATA packets a PROBE loss sample spans to weigh its full quarter in the
/// moving average; a shorter one weighs in proportion.
pub(super) const LOSS_SAMPLE: u64 = 500;

/// Group size assumed while the sender tracks no receiver yet.
pub(super) const UNKNOWN_GROUP: f64 = 1000.0;

/// Most holdoff entries one session keeps (expired ones are pruned first).
pub(super) const MAX_HOLDOFFS: usize = 1 << 16;

/// Longest GRTT a receiver believes of a PROBE; a PROBE may also at most
/// double the GRTT the last one said, so one forged PROBE cannot push NACK
/// timers far away.
pub(super) const MAX_PROBE_GRTT: Duration = Duration::from_secs(10);

/// How often the GRTT may rise (at most twofold): a little less than the
/// sender's default `probe_interval` (25 ms).
pub(super) const GRTT_RISE: Duration = Duration::from_millis(20);

/// How far the sender's DATA counter may run ahead of the DATA heard, in its
/// session's first accepted PROBE: DATA sent before this receiver created its
/// feedback state (25 ms at 10 Gbit/s is about 26,000 packets).
pub(super) const FIRST_PROBE_SLACK: u64 = 1 << 16;

/// How long a block is held off after a NACK for it was sent or heard: the
/// longest backoff plus two GRTT (the repair's round trip), so that no timer
/// drawn in the same round outlives it.
pub(super) fn holdoff(f: &SessionFb, config: &ReceiverConfig) -> Duration {
    f.grtt.mul_f64(backoff_window(f, config) + 2.0)
}

/// The longest NACK backoff, in GRTT: `nack_backoff`, shrunk for small groups
/// (log10(group) / 3 within [0.1, 1]).
pub(super) fn backoff_window(f: &SessionFb, config: &ReceiverConfig) -> f64 {
    let group = f.group.max(config.group_size as f64);
    config.nack_backoff * (group.log10() / 3.0).clamp(0.1, 1.0)
}

/// STATUS goes every GRTT, within [10 ms, `status_interval`]: often enough to
/// keep flow control moving on a fast link, rarely enough for a large group.
pub(super) fn status_every(f: &SessionFb, config: &ReceiverConfig) -> Duration {
    let most = config.status_interval.max(Duration::from_millis(10));
    f.grtt.clamp(Duration::from_millis(10), most)
}
