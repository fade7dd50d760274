//! The sans-IO sender ([`Sender`]) and its public API. The parts live
//! beside it: `config.rs` (settings, errors, events, counters), `blocks.rs`
//! (objects, block hand-offs, encoders, DATA packets), `pass.rs` (the
//! carousel or first pass and its windows), `window.rs` (a window's plan),
//! `group.rs` (the receivers and what they report), `nacks.rs` (NACKs
//! taken in), `budget.rs` (what answers to NACKs may spend), `pace.rs`
//! (the clock and pacing), `phase.rs` (where the sender is in its life, and
//! the moves between phases). Here are what ties them together: which
//! datagram goes next, the timers, the periodic feedback work, fallback
//! rounds and finishing. No part imports from this file.

mod blocks;
mod budget;
mod census;
mod config;
mod group;
mod keys;
mod nacks;
mod pace;
mod pass;
mod phase;
mod window;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcast_fec::{FecId, Oti, codec_for};

pub use self::blocks::BlockRequest;
use self::blocks::Blocks;
use self::config::LEAD_REPEAT_INTERVAL;
pub use self::config::{
    BUSY_HOLD, MAX_PACING_CATCH_UP, MAX_REPAIR_OVERHEAD, MAX_REPAIR_SHARE, Rounds, SenderConfig,
    SenderError, SenderEvent, SenderStats,
};
use self::group::{Group, Position};
use self::keys::Keys;
use self::nacks::Nacks;
use self::pace::Pace;
use self::pass::{Demand, Pass};
use self::phase::Phase;
use self::window::Window;
use super::ObjectId;
use super::encoders::BlockBytes;
pub use super::encoders::{BuiltEncoder, EncoderRequest};
#[cfg(doc)]
use super::feedback::Mode;
use super::rate::RateControl;
use super::repair::RepairScheduler;
use super::schedule::{Lead, Step};
use super::timer::{Timer, TimerTable};
use crate::wire::{self, INFO_HEADER_LEN, MAX_NAME_LEN, SYMBOL_ALIGNMENT};

/// The sans-IO sender.
///
/// In [`Mode::Carousel`], objects are sent in rounds. In the first round each
/// block's source symbols go out, then `repair_overhead` × K fresh repair
/// symbols; every later round sends `round_repair` × K further fresh symbols.
/// Blocks are interleaved `interleave` at a time. An OBJECT_INFO packet opens
/// each object in each round and repeats every `info_interval` DATA packets.
///
/// In [`Mode::Nack`] and [`Mode::Hybrid`], the sender makes one such first
/// pass, paced by the window edges receivers report (flow control), sends
/// PROBEs, and answers NACKs with replays (nack) or fresh repair (hybrid) until
/// every receiver it tracks is complete. See protocol.md §13.
pub struct Sender {
    config: SenderConfig,
    t: u16,
    /// The objects, their blocks and encoders.
    blocks: Blocks,
    pass: Pass,
    phase: Phase,
    /// The clock and pacing.
    pace: Pace,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
    /// GRTT, AIMD and the receivers' average loss.
    rc: RateControl,
    /// The receivers and the answer budgets: `Some` exactly in nack and
    /// hybrid modes.
    feedback: Option<Group>,
    /// PROBE, receiver expiry, linger, fallback and encoder-wait deadlines.
    timers: TimerTable,
    /// NACKs gathered, repair queued, blocks quiet after their repair; the
    /// fresh ESIs of every mode's repair.
    repair: RepairScheduler,
    /// What signs (protocol.md §15) and seals (§16), with keys.
    keys: Keys,
}

impl Sender {
    /// Checks the configuration and makes an idle sender.
    pub fn new(mut config: SenderConfig) -> Result<Self, SenderError> {
        config.validate()?;
        let t = config.effective_symbol_size();
        let keys = Keys::new(&config);
        // Nack mode replays source symbols: the Compact No-Code scheme.
        if config.replays() {
            config.fec = FecId::NoCode;
        }
        let tokens = config.burst.max(config.max_datagram as u64) as f64;
        let grtt = config
            .feedback
            .initial_grtt
            .clamp(config.feedback.min_grtt, config.feedback.max_grtt);
        Ok(Self {
            blocks: Blocks::new(
                config.codecs.codec(config.fec),
                config.encoder_threads > 0,
                Self::cached_encoders(&config),
                config.interleave as usize + 8,
                codec_for(config.fec).makes_repair(),
            ),
            t,
            pass: Pass::new(),
            phase: Phase::FirstPass,
            pace: Pace::new(tokens),
            events: VecDeque::new(),
            stats: SenderStats {
                grtt_us: grtt.as_micros() as u64,
                rate: config.rate.unwrap_or(0),
                ..SenderStats::default()
            },
            rc: RateControl::new(&config.feedback, config.rate),
            feedback: config.mode.has_feedback().then(|| Group::new(&config, t)),
            timers: TimerTable::default(),
            repair: RepairScheduler::new(
                config.replays(),
                codec_for(config.fec).esi_limit(0),
                config.feedback.repair_margin,
            ),
            keys,
            config,
        })
    }

    /// How many block encoders the cache holds: a window's; with workers,
    /// two (the next window's are built while this one's are in use); in
    /// hybrid mode a window's and 4 more, since repair answers may touch
    /// any block (its first pass asks for a window's encoders only as the
    /// window opens, so the next window's need no room; each encoder holds
    /// about twice its block).
    fn cached_encoders(config: &SenderConfig) -> usize {
        if config.answers_fresh() {
            config.interleave as usize + 4
        } else {
            config.interleave as usize * if config.encoder_threads > 0 { 2 } else { 1 }
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// The symbol size T in use.
    pub fn symbol_size(&self) -> u16 {
        self.t
    }

    /// Queues an object for sending, under `name` (a file name, or empty).
    pub fn add_object(
        &mut self,
        data: impl Into<Arc<Vec<u8>>>,
        name: &str,
    ) -> Result<ObjectId, SenderError> {
        let data = data.into();
        let hash = *blake3::hash(&data).as_bytes();
        self.add_object_hashed(data, hash, name)
    }

    /// Like [`Sender::add_object`], for a caller that has already computed
    /// `hash`, the BLAKE3 hash of `data` (for example while reading it).
    /// Receivers verify it: a wrong hash makes every receiver fail the object.
    pub fn add_object_hashed(
        &mut self,
        data: impl Into<Arc<Vec<u8>>>,
        hash: [u8; 32],
        name: &str,
    ) -> Result<ObjectId, SenderError> {
        let data = data.into();
        let len = data.len() as u64;
        self.add(Some(data), len, hash, name)
    }

    /// Queues an object of `len` bytes whose BLAKE3 hash is `hash`, without
    /// its bytes: the sender asks for each block when it needs it
    /// ([`Sender::poll_block_request`]), a window and 4 blocks ahead, and
    /// holds at most `interleave` + 8 blocks at once, so that memory is bounded by
    /// the window, not by the object. Until a block it asked for is handed
    /// over ([`Sender::handle_block`]) the sender sends nothing of it (and
    /// waits, if nothing else is due). The bytes handed over must be those
    /// hashed: receivers verify them, and a changed block fails the object
    /// at every receiver.
    pub fn add_object_blocks(
        &mut self,
        len: u64,
        hash: [u8; 32],
        name: &str,
    ) -> Result<ObjectId, SenderError> {
        self.add(None, len, hash, name)
    }

    /// The next block the sender needs of an object added with
    /// [`Sender::add_object_blocks`]. Poll after each `poll_transmit`, and hand
    /// each over with [`Sender::handle_block`] when it is read: until then the
    /// first pass goes on from the blocks of its window that the sender holds,
    /// and `poll_transmit` returns `None` only once it holds none it can send
    /// from. A driver that hands each over before the next `poll_transmit`
    /// gets the datagrams, in the order, of the same object added whole.
    pub fn poll_block_request(&mut self) -> Option<BlockRequest> {
        self.blocks.poll_request()
    }

    /// An empty buffer that held a block the sender has let go (and nothing
    /// else holds), to read the next block asked for into: reusing it spares
    /// an allocation of the block's size and its page faults. `None` if
    /// there is none; allocate then.
    pub fn take_block_buffer(&mut self) -> Option<Vec<u8>> {
        self.blocks.take_spare()
    }

    /// Hands over a block the sender asked for. Refused (and not held) if it
    /// was not asked for or its length is not the block's.
    pub fn handle_block(
        &mut self,
        object: ObjectId,
        sbn: u8,
        data: Vec<u8>,
    ) -> Result<(), SenderError> {
        self.blocks
            .handle_block(object, sbn, data, &mut self.stats)?;
        self.pass
            .on_block(object, sbn, self.config.interleave, &mut self.blocks);
        Ok(())
    }

    fn add(
        &mut self,
        data: Option<Arc<Vec<u8>>>,
        len: u64,
        hash: [u8; 32],
        name: &str,
    ) -> Result<ObjectId, SenderError> {
        let max_name =
            (self.config.plain_max_datagram() - INFO_HEADER_LEN - wire::CRC_LEN).min(MAX_NAME_LEN);
        if name.len() > max_name {
            return Err(SenderError::NameTooLong {
                len: name.len(),
                max: max_name,
            });
        }
        u32::try_from(self.blocks.objects.len()).map_err(|_| SenderError::TooManyObjects)?;
        let oti = Oti::for_object(len, self.t, self.config.block_symbols, SYMBOL_ALIGNMENT)?;
        let id = self.blocks.push(data, oti, hash, name);
        let resume = self.pass_done();
        self.phase.new_object();
        // Whoever was complete lacks this one now.
        if let Some(g) = &mut self.feedback {
            g.reopen();
        }
        if resume {
            // Resume the first pass at the new object.
            self.pass.resume_at(self.blocks.objects.len() - 1);
        }
        self.arm_fallback();
        Ok(id)
    }

    /// The OTI chosen for an object.
    pub fn object_oti(&self, id: ObjectId) -> Option<Oti> {
        self.blocks.objects.get(id.0 as usize).map(|o| o.oti)
    }

    /// Holds the sender open for objects still to come (a stream, a message
    /// feed), or lets it finish. While open, a nack or hybrid sender whose
    /// tracked receivers all have every object so far is idle, not
    /// finished: it goes on sending PROBEs (so receivers that join still
    /// learn where it is) and takes up the first pass again at the next
    /// [`Sender::add_object`]. Closing it lets it finish as usual, once
    /// every tracked receiver is complete and the linger has passed.
    pub fn set_open(&mut self, open: bool) {
        if let Some(g) = &mut self.feedback {
            g.open = open;
        }
        if !open {
            // Finishing is judged on the next tick.
            self.timers.set_opt(Timer::Probe, self.pace.last);
        }
    }

    /// The first object not yet acknowledged by every tracked receiver that
    /// counts (nack and hybrid modes): each has reported its window edge past
    /// every object before it. `None` before any receiver is tracked, or in
    /// carousel mode. Stalled receivers are not waited for, as in flow
    /// control. A driver that bounds its memory retires what this passed
    /// ([`Sender::retire_before`]).
    pub fn acknowledged(&self) -> Option<ObjectId> {
        let edge = self.feedback.as_ref()?.lowest_edge()?;
        let first = self.blocks.first_not_below(edge);
        // Receivers may have all of an object whose first pass still has
        // repair to send: it is not done with until the pass is past it.
        Some(ObjectId(first.min(self.progress().0)))
    }

    /// Whether no tracked receiver counts: none is tracked, or every one is
    /// stalled. [`Sender::acknowledged`] then says `None`, and a driver that
    /// bounds its memory treats what it sent as sent to nobody (a receiver
    /// that stopped moving, or a forged id that never moved, would otherwise
    /// keep it from retiring anything).
    pub fn nobody_counts(&self) -> bool {
        self.feedback.as_ref().is_none_or(Group::nobody_counts)
    }

    /// The first object whose first pass is not finished (all of them, once
    /// it is).
    pub fn first_pass_progress(&self) -> ObjectId {
        ObjectId(self.progress().0)
    }

    /// Retires every object before `object` (and before the first object
    /// whose first pass is not finished, whatever `object` says): the
    /// sender drops what it holds of their bytes, answers no more NACKs for
    /// them (`nack_entries_ignored`) and sends no more repair of them. Receivers that still lack them never
    /// get them; call it with what [`Sender::acknowledged`] says, or past
    /// that only to bound memory (a receiver behind then meets a gap).
    pub fn retire_before(&mut self, object: ObjectId) {
        // Never what the first pass is still sending.
        let upto = object.0.min(self.progress().0);
        if upto <= self.blocks.retired {
            return;
        }
        self.blocks.retire_before(upto, &mut self.stats);
        self.repair.retire_before(upto);
        if let Some(g) = &mut self.feedback {
            g.budget.info_queue.retain(|&o| o >= upto);
        }
        self.arm_fallback();
    }

    /// Whether the sender is done: the last round sent (carousel), or every
    /// tracked receiver complete and the linger over (nack, hybrid).
    pub fn is_finished(&self) -> bool {
        self.phase.is_finished() && self.timers.get(Timer::Auth).is_none()
    }

    /// Counters so far.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }

    /// The current group round-trip time estimate.
    pub fn grtt(&self) -> Duration {
        self.rc.grtt()
    }

    /// Advances the clock: pacing, and in feedback modes NACK aggregation,
    /// receiver timeouts and the linger.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refill(now);
        if self.feedback.is_some() {
            self.tick(now);
        }
        self.arm_fallback();
    }

    /// When the sender next wants `handle_timeout` or `poll_transmit` called.
    /// A deadline at or before now means at once (an unpaced sender with data
    /// is always due: its deadline is the last time it was given). `None`
    /// means idle: finished, no object, or never given a time yet.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let auth = self.timers.get(Timer::Auth);
        if self.phase.is_finished() || self.blocks.objects.is_empty() {
            return auth;
        }
        // The latest time the sender was given: a deadline there is due now.
        let due = self.pace.last.or(self.pace.epoch);
        let pacing = self.pace.due(self.config.rate.map(|_| self.rc.rate()));
        // Waiting for an encoder a worker is building: until it is back
        // (`handle_encoder`), or the wait is over.
        let waiting = self
            .timers
            .get(Timer::Encoder)
            .filter(|&until| due.is_some_and(|d| d < until));
        let Some(g) = &self.feedback else {
            // A carousel always has data: paced, or due at once.
            return [waiting.or(pacing).or(due), auth]
                .into_iter()
                .flatten()
                .min();
        };
        let mut t: Option<Instant> = None;
        let mut at = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Instant| t.min(x)));
            }
        };
        if let Some(until) = waiting {
            at(Some(until));
        } else if self.has_data_ready(g) {
            at(pacing.or(due));
        }
        if let Some((o, sbn, esi)) = self.repair.front()
            && waiting.is_none()
        {
            // Wait for the repair budget (and the build budget, if this symbol
            // needs an encoder built), or for pacing.
            let build = self.blocks.needs_build(o, sbn, esi);
            let wait = g.budget.repair_wait(self.repair_rate(), build);
            at(g.budget
                .last
                .map(|l| l + wait)
                .max(pacing)
                .or(self.pace.last));
        }
        if let Some(info) = g.budget.info_due(self.repair_rate()) {
            at(info.max(pacing));
        }
        at(self.timers.next_timeout_except(Timer::Encoder));
        at(self.repair.next_deadline());
        t
    }

    /// The next block encoder the sender would like built off its thread
    /// (only with `encoder_threads` above 0). Build it anywhere with
    /// [`EncoderRequest::build`] and hand it back with
    /// [`Sender::handle_encoder`]; one not back by the time the sender needs
    /// it is built inline instead.
    pub fn poll_encoder_request(&mut self) -> Option<EncoderRequest> {
        self.blocks.poll_encoder_request()
    }

    /// An encoder built from a [`Sender::poll_encoder_request`] request.
    pub fn handle_encoder(&mut self, built: BuiltEncoder) {
        self.blocks.handle_encoder(built);
        self.timers.stop(Timer::Encoder);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    fn refill(&mut self, now: Instant) {
        if self.pace.epoch.is_none() {
            self.pace.epoch = Some(now);
            if self.feedback.is_some() {
                self.timers.set(Timer::Probe, now);
                self.timers.set(
                    Timer::Expiry,
                    now + self.config.feedback.receiver_timeout / 4,
                );
            }
        }
        if self.config.rate.is_some() {
            self.pace.refill(now, self.rc.rate(), &self.config);
        }
        if self.feedback.is_some() {
            let repair_rate = self.repair_rate();
            let max_nack_rate = self.config.feedback.max_nack_rate;
            if let Some(g) = &mut self.feedback {
                g.budget.refill(now, repair_rate, max_nack_rate);
            }
        }
        if self.pace.last.is_none_or(|l| now > l) {
            self.pace.last = Some(now);
        }
    }

    /// Bytes per second repair may use (protocol.md §13.4, "Repair cap"): a
    /// share of the pacing rate, or of the measured rate when unpaced.
    fn repair_rate(&self) -> f64 {
        // Once the first pass is out, repair is all that is left to send: it
        // may use the whole rate (pacing still caps the total, so forged
        // NACKs cannot push past it). Before, it leaves first-pass data the
        // rest.
        let share = match self.pass_done() {
            false => self.config.feedback.repair_share,
            true if self.phase.in_fallback() => 0.5,
            true => self.config.feedback.repair_share.max(1.0),
        };
        let base = match self.config.rate {
            Some(_) => self.rc.rate() as f64,
            None => {
                let elapsed = self.pace.elapsed().as_secs_f64();
                // Until a rate is measured, assume 10 MB/s.
                if elapsed > 0.05 {
                    (self.stats.bytes_sent as f64 / elapsed).max(1e6)
                } else {
                    1e7
                }
            }
        };
        (base * share).max(1.0)
    }

    /// Writes the next datagram into `buf` and returns its length, or `None` if
    /// the sender is finished, idle, or held back by pacing or flow control.
    ///
    /// # Panics
    /// If `buf` is shorter than `max_datagram` (API misuse).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        assert!(
            buf.len() >= self.config.max_datagram,
            "poll_transmit needs a buffer of at least max_datagram bytes"
        );
        // An AUTH due goes first (protocol.md §15.2); the rest are sealed
        // within max_datagram, which plain_max_datagram leaves room for.
        let auth = self.keys.poll_auth(now, buf);
        self.stats.auth_packets_sent += auth.is_some() as u64;
        let plain = self.config.plain_max_datagram();
        let sent = auth.or_else(|| {
            let len = self.transmit(now, &mut buf[..plain])?;
            self.keys.sent(now, buf, len)
        });
        // Every datagram counts against the rate, AUTH and seal included.
        if let Some(len) = sent {
            self.stats.packets_sent += 1;
            self.stats.bytes_sent += len as u64;
            if self.config.rate.is_some() {
                self.pace.bucket.spend(len as f64);
            }
        }
        self.arm_fallback();
        self.timers.set_opt(Timer::Auth, self.keys.deadline());
        sent
    }

    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.phase.is_finished() || self.blocks.objects.is_empty() {
            return None;
        }
        self.refill(now);
        if self.feedback.is_some() {
            self.tick(now);
            if self.phase.is_finished() {
                return None;
            }
        }
        if self.config.rate.is_some() && !self.pace.bucket.has_any() {
            return None;
        }
        let len = self.next_packet(now, buf)?;
        // Something went: a wait for an encoder noted on the way (for a
        // repair symbol passed over) holds nothing back.
        self.timers.stop(Timer::Encoder);
        Some(len)
    }

    /// The wall clock, read again for AUTH's Time (protocol.md §15.1).
    pub fn set_wall_clock(&mut self, clock: super::auth::WallClock) {
        self.keys.set_wall_clock(clock);
    }

    /// Feeds one feedback datagram (NACK or STATUS) from a receiver. Anything
    /// else, malformed or of another session, is counted and dropped.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        self.handle_feedback(now, None, datagram);
    }

    /// [`Sender::handle_datagram`], with the datagram's source address, so
    /// that each source's NACKs are rate-limited on their own
    /// (`max_nack_rate_per_source`).
    pub fn handle_feedback(
        &mut self,
        now: Instant,
        source: Option<std::net::IpAddr>,
        datagram: &[u8],
    ) {
        if self.feedback.is_none() {
            self.stats.feedback_rejected += 1;
            return;
        }
        self.refill(now);
        let Ok(opened) = self.keys.open_feedback(datagram) else {
            self.stats.feedback_unsealed += 1;
            self.stats.feedback_rejected += 1;
            return;
        };
        let parsed = match &opened {
            Some(o) => wire::Repr::parse_opened(o),
            None => wire::Repr::parse(datagram),
        };
        match parsed {
            Ok(wire::Repr::Nack(n)) if n.session == self.config.session.0 => {
                if self.admit_nack(now, source, n.receiver) {
                    // Feedback that moves something ends a fallback round.
                    self.phase.feedback_moved();
                    if self.handle_nack(now, &n) {
                        self.stop_linger();
                    }
                }
            }
            Ok(wire::Repr::Status(st)) if st.session == self.config.session.0 => {
                self.handle_status(now, source, &st);
            }
            _ => self.stats.feedback_rejected += 1,
        }
        if let Some(o) = opened {
            self.keys.recycle(o);
        }
        self.arm_fallback();
    }

    /// Whether a NACK of `receiver` from `source` is taken, within the NACK
    /// rate limits, overall and per source (protocol.md §13.4, "Answering
    /// NACKs"); binds an id not yet tracked to its address.
    fn admit_nack(
        &mut self,
        now: Instant,
        source: Option<std::net::IpAddr>,
        receiver: u64,
    ) -> bool {
        let stats = &mut self.stats;
        self.feedback
            .as_mut()
            .is_some_and(|g| g.admit_nack(now, source, receiver, stats))
    }

    /// Queues the repair a NACK admitted asks for ([`Nacks::handle`]);
    /// whether it may restart the linger.
    fn handle_nack(&mut self, now: Instant, n: &wire::NackRepr) -> bool {
        let progress = (!self.pass_done()).then(|| self.progress());
        let Some(group) = self.feedback.as_mut() else {
            return false;
        };
        Nacks {
            config: &self.config,
            blocks: &mut self.blocks,
            repair: &mut self.repair,
            group,
            stats: &mut self.stats,
            aggregation: self.rc.grtt().mul_f64(self.config.feedback.aggregation),
            loss: self.rc.loss(),
            progress,
            pass_end: self.phase.pass_end(),
        }
        .handle(now, n)
    }

    /// Something is left to do after all: the linger starts again later.
    fn stop_linger(&mut self) {
        self.timers.stop(Timer::Linger);
        self.phase.stop_linger();
    }

    /// Takes in a STATUS (protocol.md §13.3): the group's record of its
    /// receiver, then what follows for the sender: the periodic check
    /// brought forward, the window's encoders, a restaged window, the GRTT
    /// and AIMD.
    fn handle_status(
        &mut self,
        now: Instant,
        source: Option<std::net::IpAddr>,
        st: &wire::StatusRepr,
    ) {
        let at = Position {
            behind: self.behind_edge(),
            total: self.blocks.total_blocks(),
            now_us: self.pace.micros(now),
        };
        let edge = self.blocks.edge_of(st.window);
        let Some(g) = &mut self.feedback else {
            return;
        };
        let (stats, events) = (&mut self.stats, &mut self.events);
        let Some(out) = g.on_status(now, source, st, edge, at, &self.blocks, stats, events) else {
            return;
        };
        if out.moved {
            self.phase.feedback_moved();
        }
        if let Some(by) = out.check_by
            && self.timers.get(Timer::Expiry).is_none_or(|e| by < e)
        {
            self.timers.set(Timer::Expiry, by);
        }
        if st.loss_ppm > 0 && self.pass.window.as_ref().is_some_and(|w| !w.encoders_asked) {
            self.pass
                .prepare_window_encoders(&self.config, &mut self.blocks);
        }
        // Only a receiver's first measured report can complete the set that
        // restaging waits for: trying on every STATUS scanned every receiver
        // per report while a first window of blocks too small for proactive
        // repair went out (O(G) per STATUS, at 10,000 receivers).
        if out.first_loss {
            self.restage_window();
        }
        if let Some((rtt, may_raise)) = out.rtt
            && self.rc.on_rtt_sample(rtt, may_raise)
        {
            self.stats.grtt_us = self.rc.grtt().as_micros() as u64;
        }
        if st.flags & wire::feedback::STATUS_LOSS != 0 && self.rc.on_loss_report(now, st.loss_ppm) {
            self.stats.rate = self.rc.rate();
        }
    }

    /// Periodic feedback work: matured NACKs, the periodic check of the
    /// receivers, fallback rounds, and the finish (protocol.md §13.4).
    fn tick(&mut self, now: Instant) {
        self.repair.release(now, self.rc.loss());
        if self.timers.is_expired(Timer::Expiry, now) {
            let timeout = self.config.feedback.receiver_timeout;
            self.timers.set(Timer::Expiry, now + timeout / 4);
            self.repair.expire_quiet(now);
            let behind = self.behind_edge();
            if let Some(g) = &mut self.feedback {
                g.on_check(now, behind, &mut self.stats, &mut self.events);
            }
        }
        self.maybe_fallback(now);
        if !self.idle(now) {
            self.stop_linger();
            return;
        }
        if self.timers.get(Timer::Linger).is_none() {
            let linger = self
                .feedback
                .as_ref()
                .map_or(Duration::ZERO, |g| g.linger(self.rc.grtt()));
            self.timers.set(Timer::Linger, now + linger);
            self.phase.linger();
        }
        if self.timers.is_expired(Timer::Linger, now) {
            self.phase.finish();
            if let Some(g) = &self.feedback {
                g.on_finish(now, &mut self.stats);
            }
            self.events.push_back(SenderEvent::Finished);
        }
    }

    /// Whether a nack or hybrid sender has nothing left to do but linger
    /// (protocol.md §13.4, "Finish").
    fn idle(&self, now: Instant) -> bool {
        let Some(g) = &self.feedback else {
            return false;
        };
        // The last fallback round goes out whole. (Any accepted NACK ends
        // the fallback, so forged ones cannot hold the sender here.)
        let round_out = !(self.phase.in_fallback() && self.repair.front().is_some());
        // In a sampled group, repair queued is for someone unfinished, known
        // or not.
        let held = self.repair.front().is_some() && g.unknowns_hold(now, self.phase.pass_end());
        self.pass_done() && round_out && !held && g.may_finish(&self.stats)
    }

    /// When [`Timer::Fallback`] expires, queues a fallback round
    /// (protocol.md §13.4, "Fallback"): fresh repair (nack mode: the source
    /// symbols again) for every block beyond the lowest unfinished
    /// receiver's window, `round_repair` × K of each (at least one symbol).
    fn maybe_fallback(&mut self, now: Instant) {
        // The periodic check and the NACKs released just now are inputs.
        self.arm_fallback();
        if !self.timers.is_expired(Timer::Fallback, now) {
            return;
        }
        let Some(g) = &mut self.feedback else {
            return;
        };
        let limit = self.config.feedback.fallback_rounds;
        self.stats.fallback_rounds += 1;
        let round = self.stats.fallback_rounds as u32;
        if round == 1 {
            tracing::warn!(
                "no feedback since the first pass: sending fallback repair rounds at half the \
                 rate (at most {limit}). The receivers' NACKs and STATUS may not reach this \
                 sender: their hop limit (recv --hops), a router that does not forward the \
                 channel's feedback group upstream or unicast back, or a firewall"
            );
        } else {
            tracing::info!(round, "fallback repair round");
        }
        self.events.push_back(SenderEvent::FallbackRound { round });
        let share = self.config.round_repair.max(0.05);
        g.queue_fallback(now, share, &self.blocks, &mut self.repair);
        self.phase.fallback(now);
        self.arm_fallback();
    }

    /// Arms [`Timer::Fallback`] for the next fallback round, or stops it if
    /// none may come: the first pass over, rounds left, no repair queued,
    /// receivers unfinished (or none ever heard), 20 GRTTs of quiet since
    /// the pass, the last feedback that moved anything or the last round,
    /// and [`BUSY_HOLD`] since the last BUSY. Called after every input that
    /// may move it: each call that takes feedback or time in, queues or
    /// sends repair, or adds or retires objects.
    fn arm_fallback(&mut self) {
        let due = self.fallback_due();
        self.timers.set_opt(Timer::Fallback, due);
    }

    fn fallback_due(&self) -> Option<Instant> {
        let g = self.feedback.as_ref()?;
        let limit = self.config.feedback.fallback_rounds as u64;
        if !self.pass_done() || self.stats.fallback_rounds >= limit || self.repair.front().is_some()
        {
            return None;
        }
        let quiet_since = [self.phase.pass_end(), self.phase.fallback_round()];
        // Quiet for 20 GRTTs, at least 500 ms.
        let delay = (self.rc.grtt() * 20).max(Duration::from_millis(500));
        g.fallback_due(quiet_since, delay, self.stats.receivers_heard)
    }

    /// Whether the first pass is over (nack, hybrid; never in a carousel).
    fn pass_done(&self) -> bool {
        self.phase.pass_done(self.feedback.is_some())
    }

    fn has_data_ready(&self, g: &Group) -> bool {
        !self.pass_done() && !self.flow_blocked()
            || (!g.budget.info_queue.is_empty() && g.budget.repair.has_any())
            || self
                .timers
                .get(Timer::Probe)
                .is_some_and(|p| self.pace.last.is_some_and(|l| l >= p))
    }

    /// Whether flow control holds the first pass back before its next window
    /// (protocol.md §13.4, "Flow control", "The first window").
    fn flow_blocked(&self) -> bool {
        let Some(g) = &self.feedback else {
            return false;
        };
        if self.pass.window.is_some() || self.pass_done() {
            return false;
        }
        let seq = self.blocks.prefix[self.pass.cursor.object] + self.pass.cursor.next_first as u64;
        g.flow_blocked(seq, self.pace.elapsed(), self.stats.receivers_heard)
    }

    /// The global block sequence number the sender has sent past: a
    /// receiver whose edge is below it is left behind (one waiting at the
    /// sender's own progress is not). Every block once the first pass is
    /// over; an open sender that has sent all it holds is past every block of
    /// it. (Counted as 0 there, a receiver stuck at the start of an idle
    /// stream would never be found stalled.)
    fn behind_edge(&self) -> u64 {
        if self.pass_done() {
            return u64::MAX;
        }
        self.blocks
            .prefix
            .get(self.pass.cursor.object)
            .map_or(self.blocks.total_blocks(), |&p| {
                p + self.progress().1 as u64
            })
    }

    /// (object, SBN) of the first block whose first pass is not finished.
    fn progress(&self) -> (u32, u8) {
        if self.pass_done() {
            return (self.blocks.objects.len() as u32, 0);
        }
        self.pass.progress()
    }

    fn emit_probe(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        if self.rc.on_probe(now) {
            self.stats.rate = self.rc.rate();
        }
        self.stats.grtt_us = self.rc.grtt().as_micros() as u64;
        let fb = &self.config.feedback;
        self.timers.set(Timer::Probe, now + fb.probe_interval);
        let timestamp_us = self.pace.micros(now);
        let sent = self.stats.source_symbols_sent + self.stats.repair_symbols_sent;
        let at = ((timestamp_us, sent), self.behind_edge());
        let (grtt, blocks) = ((self.rc.grtt(), fb.probe_interval), &self.blocks);
        let (receivers, ask) = self.feedback.as_mut().map_or((0, Default::default()), |g| {
            let ask = g.on_probe(now, at, grtt, blocks);
            (self.stats.group_estimate, self.stats.report_sample) = (g.size(), ask.sample);
            (g.size(), ask)
        });
        let probe = wire::ProbeRepr {
            session: self.config.session.0,
            timestamp_us,
            sent,
            grtt_us: self.rc.grtt().as_micros().min(u32::MAX as u128) as u32,
            objects: self.blocks.objects.len() as u32,
            progress: self.progress(),
            mode: [wire::WireMode::Hybrid, wire::WireMode::Nack][self.config.replays() as usize],
            flags: (wire::feedback::PROBE_END * self.pass_done() as u8)
                | (wire::feedback::PROBE_LIMIT * ask.limit.is_some() as u8),
            group_log2: ((u64::BITS - receivers.leading_zeros()) as u8)
                .min(wire::feedback::MAX_GROUP_LOG2),
            hops: self.config.hops.max(1),
            retained: self.blocks.retired,
            ask,
        };
        self.stats.probes_sent += 1;
        probe.write(buf).expect("max_datagram holds a PROBE")
    }

    /// The next repeat of the first object, amid later objects: its
    /// OBJECT_INFO and its source symbols in turn, leaving the OBJECT_INFO
    /// schedule of the object being sent as it was.
    fn emit_lead(&mut self, buf: &mut [u8]) -> usize {
        let oti = self.blocks.objects[0].oti;
        if let Lead::Symbol(at) = self.pass.lead.next(oti.total_source_symbols()) {
            // The `at`-th source symbol of the object, block by block.
            let (mut sbn, mut esi) = (0u32, at);
            while let Some(b) = oti.block(sbn)
                && esi >= b.source_symbols as u64
            {
                esi -= b.source_symbols as u64;
                sbn += 1;
            }
            // Not handed over yet (a block-supplied first object): its
            // OBJECT_INFO repeats instead.
            if let Some(bytes) = self.blocks.block_bytes(0, sbn as u8) {
                return self.emit_data(0, sbn as u8, esi as u32, true, &bytes, buf);
            }
        }
        let info = self.pass.info;
        let len = self.emit_info(0, buf);
        self.pass.info = info;
        len
    }

    fn emit_info(&mut self, object: usize, buf: &mut [u8]) -> usize {
        self.pass.info.sent_info(object);
        self.stats.info_packets_sent += 1;
        let ids = (self.config.session.0, self.config.fec);
        self.blocks.write_info(ids, object, buf)
    }

    /// Whether `symbol` waits for its block's encoder, which a worker is
    /// building ([`Blocks::may_wait_for_encoder`]): [`Timer::Encoder`] is
    /// armed until the encoder is back or `MAX_BUILD_WAIT` is over.
    fn wait_for_encoder(&mut self, symbol: (u32, u8, u32), now: Instant) -> bool {
        let wait = self.config.wait_for_encoders;
        let Some(key) = self.blocks.may_wait_for_encoder(wait, symbol) else {
            return false;
        };
        let until = self.blocks.encoders.building_elsewhere(key, now);
        self.timers.set_opt(Timer::Encoder, until);
        until.is_some()
    }

    fn next_packet(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.timers.stop(Timer::Encoder);
        if self.feedback.is_some() {
            if let Some(answer) = self.next_answer(now, buf) {
                return Some(answer);
            }
            if self.pass_done() {
                return None;
            }
        }
        // Bounded: each pass either emits or advances the cursor, and a round
        // over objects that all have data emits something.
        loop {
            if self.pass.info.opening() {
                // Each object opens with its OBJECT_INFO, even one with no data.
                return Some(self.emit_info(self.pass.cursor.object, buf));
            }
            if self.pass.window.is_none() {
                if self.flow_blocked() {
                    self.stats.flow_blocked += 1;
                    return None;
                }
                self.open_window(self.pass.cursor.next_first);
            }
            // Sized once the window's symbols are all out, those passed
            // over for blocks not yet handed over included: the plan alone
            // empties early while a driver reads the first blocks, and
            // sized then, the first window would go without repair.
            if self
                .pass
                .window
                .as_ref()
                .is_some_and(|w| !w.pending() && w.proactive_due)
            {
                self.plan_proactive();
            }
            if self.pass.window.as_ref().is_some_and(Window::pending) {
                return self.next_in_window(now, buf);
            }
            if !self.advance() {
                return None;
            }
        }
    }

    /// What a nack or hybrid sender sends before its first pass: a PROBE
    /// due, an OBJECT_INFO or a repair symbol NACKs asked for, within the
    /// repair and build budgets (protocol.md §13.4, "PROBE", "Answering
    /// NACKs").
    fn next_answer(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.timers.is_expired(Timer::Probe, now) {
            return Some(self.emit_probe(now, buf));
        }
        let g = self.feedback.as_mut()?;
        // OBJECT_INFO asked for by NACKs is repair too: it waits for, and
        // spends, the repair budget.
        if let Some(o) = g.budget.next_info() {
            let len = self.emit_info(o as usize, buf);
            if let Some(g) = &mut self.feedback {
                g.budget.repair.spend(len as f64);
            }
            return Some(len);
        }
        let (o, sbn, esi) = self.repair.front()?;
        let g = self.feedback.as_ref()?;
        if !(g.budget.repair.has_any()
            && (g.budget.build.has_any() || !self.blocks.needs_build(o, sbn, esi)))
        {
            return None;
        }
        let bytes = self.blocks.block_bytes(o, sbn)?;
        if self.wait_for_encoder((o, sbn, esi), now) {
            return None;
        }
        if self.pass.wants_info(o as usize, &self.config) {
            return Some(self.emit_info(o as usize, buf));
        }
        if self.blocks.needs_build(o, sbn, esi)
            && let Some(g) = &mut self.feedback
        {
            g.charge_build(&self.blocks, (o, sbn), &mut self.stats);
        }
        let len = self.emit_data(o as usize, sbn, esi, true, &bytes, buf);
        self.pass.info.sent_data();
        if let Some(g) = &mut self.feedback {
            g.budget.repair.spend(len as f64);
        }
        self.repair.sent_front(now, self.rc.grtt());
        Some(len)
    }

    /// The window's next datagram: its next symbol of a block held, after
    /// the OBJECT_INFO or lead repeat due before it; `None` while it waits
    /// for blocks or an encoder.
    fn next_in_window(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let object = self.pass.cursor.object;
        // Blocks the driver has not handed over yet are passed over; with
        // none held, wait for them.
        let interleave = self.config.interleave;
        let blocks = &mut self.blocks;
        let (sbn, esi, bytes, pick) = self
            .pass
            .window
            .as_mut()?
            .front_held(interleave, |sbn| blocks.block_bytes(object as u32, sbn))?;
        if self.wait_for_encoder((object as u32, sbn, esi), now) {
            return None;
        }
        if self.pass.wants_info(object, &self.config) {
            return Some(self.emit_info(object, buf));
        }
        if self.config.lead_protection && object != 0 && self.pass.lead.due(LEAD_REPEAT_INTERVAL) {
            return Some(self.emit_lead(buf));
        }
        if object != 0 {
            self.pass.lead.sent_other();
        }
        if let Some(w) = self.pass.window.as_mut() {
            w.take(pick);
        }
        self.pass.ask_due_encoders(&mut self.blocks);
        let replay = self.pass.cursor.round > 0;
        let len = self.emit_data(object, sbn, esi, replay, &bytes, buf);
        self.pass.info.sent_data();
        Some(len)
    }

    /// Moves to the next window, object or round. Returns false once finished
    /// (carousel) or once the first pass is over (feedback modes).
    fn advance(&mut self) -> bool {
        let cursor = &mut self.pass.cursor;
        let first = self
            .pass
            .window
            .take()
            .map_or(cursor.next_first, |w| w.first);
        let z = self.blocks.objects[cursor.object].oti.source_blocks();
        let step = cursor.step(first, z, self.config.interleave, self.blocks.objects.len());
        if step == Step::Window {
            return true;
        }
        self.pass.info.open();
        if step != Step::End {
            if self.feedback.is_some() {
                // Progress moved: say so soon.
                let soon = self.timers.get(Timer::Probe).min(self.pace.last);
                self.timers.set_opt(Timer::Probe, soon);
            }
            return true;
        }
        if self.feedback.is_some() {
            self.pass.cursor.stay_at_last();
            self.phase.end_pass(self.pace.last);
            self.pass.info.close();
            self.stats.rounds_completed = 1;
            // Tell receivers at once that the pass is over.
            self.timers.set_opt(Timer::Probe, self.pace.last);
            return false;
        }
        let cursor = &mut self.pass.cursor;
        cursor.next_round();
        self.stats.rounds_completed = cursor.round;
        let round = cursor.round;
        self.events.push_back(SenderEvent::RoundComplete { round });
        if self.config.rounds == Rounds::Fixed(round) {
            self.phase.finish();
            self.events.push_back(SenderEvent::Finished);
            return false;
        }
        true
    }

    /// The loss the first pass's proactive repair is sized for (hybrid mode,
    /// round 0, protocol.md §13.4, "Proactive repair"): the neediest loss
    /// the tracked receivers that still count report, less what the largest
    /// of their noise would add, or the prior before any has reported. With
    /// `first`, for a first sizing from the receivers' first reports.
    fn proactive_loss(&self, round: u32, first: bool) -> Option<f64> {
        let fb = &self.config.feedback;
        if !self.config.answers_fresh() || round != 0 || !fb.proactive {
            return None;
        }
        let g = self.feedback.as_ref()?;
        Some(g.neediest_loss(first).unwrap_or(fb.loss_prior))
    }

    /// What the group asks of the current window's proactive repair; with
    /// `first`, for a first sizing ([`Sender::proactive_loss`]).
    fn demand(&self, first: bool) -> Demand {
        Demand {
            loss: self.proactive_loss(self.pass.cursor.round, first),
            group: self.feedback.as_ref().map_or(1, Group::repair_size),
        }
    }

    /// Opens the window that starts at block `first` of the current object
    /// ([`Pass::open_window`]).
    fn open_window(&mut self, first: u32) {
        let lossy = self
            .feedback
            .as_ref()
            .and_then(Group::reported_loss)
            .is_some_and(|p| p > 0.0);
        let demand = self.demand(false);
        let parts = (&self.config, &mut self.blocks, &mut self.repair);
        self.pass.open_window(first, parts, demand, lossy);
    }

    /// Restages the current window once every receiver that counts has
    /// measured its loss ([`Window::restage`]), so that the neediest of
    /// them is sized as a window opening later would be (the first report
    /// alone, one receiver's estimate over about 1000 DATA, sized 1000
    /// simulated receivers' windows 0.2-0.3% above the ideal). It is tried
    /// on each receiver's first measured report; a window with symbols
    /// passed over for blocks the driver has not handed over yet then is
    /// not restaged, and sizes its repair at its end.
    fn restage_window(&mut self) {
        if !self.pass.may_restage(self.blocks.repairs)
            || !self.feedback.as_ref().is_some_and(Group::all_measured)
        {
            return;
        }
        // Sized for the neediest loss itself, without the σ the window's end
        // keeps for the estimate's error: these are the receivers' first
        // reports (about 1000 DATA each, one σ a point of loss at 10%), and
        // the end tops the repair up for what the reports say by then.
        let demand = self.demand(true);
        let Some(loss) = demand.loss.filter(|&p| p > 0.0) else {
            return;
        };
        let parts = (&self.config, &self.blocks, &mut self.repair);
        self.pass.restage(parts, loss, demand.group);
    }

    /// Plans the current window's proactive repair, for the loss now
    /// reported ([`Window::plan_proactive`]).
    fn plan_proactive(&mut self) {
        let demand = self.demand(false);
        let parts = (&self.config, &self.blocks, &mut self.repair);
        self.pass.plan_proactive(parts, demand);
    }

    /// Writes a DATA packet of `bytes`, block `sbn` of `object`
    /// ([`Blocks::write_data`]).
    fn emit_data(
        &mut self,
        object: usize,
        sbn: u8,
        esi: u32,
        replay: bool,
        bytes: &BlockBytes,
        buf: &mut [u8],
    ) -> usize {
        let ids = (self.config.session.0, self.config.fec);
        let (blocks, stats) = (&mut self.blocks, &mut self.stats);
        blocks.write_data(ids, (object, sbn, esi), replay, bytes, buf, stats)
    }
}
