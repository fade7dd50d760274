//! The receiving side: the [`Receiver`] state machine and its public API
//! (protocol.md §12, §13). What a datagram does lives in the parts below:
//! `data` takes DATA and OBJECT_INFO into blocks and objects, `feedback`
//! answers PROBEs with STATUS and NACKs, `addrs` keeps where each
//! session's sender is and the NACKs' hop limit, `objects` holds the object
//! table, `need` ranks requests and `loss` measures the path. This file holds the
//! entry points and the bookkeeping they share; no packet's handling lives
//! here beyond dispatching it. With a sender key, every datagram of the
//! sender's passes `proto::auth`'s verifier before it is dispatched
//! (protocol.md §15.2).

mod addrs;
mod config;
mod data;
mod events;
mod feedback;
mod keys;
mod loss;
mod need;
mod objects;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Bound;
use std::time::{Duration, Instant};

use self::keys::Keys;
use super::auth::{AuthRefusal, Gate, Verifier};
use super::hash;
use super::{ObjectId, SessionId};
use crate::wire::seal::{SEAL_LEN, SealError};
use crate::wire::{Packet, PacketType, Repr};
use addrs::SenderAddrs;
use feedback::SessionFb;
use objects::{Info, Key, ObjectTable, Slot};

pub use addrs::{MAX_FEEDBACK_HOPS, Transmit, TransmitTo};
pub use config::{Admission, BoundObject, ReceiverConfig};
pub use events::{
    Accepted, Arrival, Destination, FailReason, ReceiverEvent, ReceiverStats, RejectReason,
    SenderProgress,
};
pub use feedback::{CONTRADICTION_GRACE, KEEPALIVE};
pub use objects::{DecodeJob, DecodedBlock};

/// The sans-IO receiver. See the [module docs](super) for the driver loop.
///
/// It decodes every object of every accepted session independently, hands out
/// each block as soon as it decodes ([`ReceiverEvent::BlockDecoded`]), and
/// reports [`ReceiverEvent::ObjectComplete`] only after the whole object's
/// BLAKE3 hash has matched. Memory is bounded by the blocks in flight, not by
/// object size: see [`ReceiverConfig::buffer_bound`].
pub struct Receiver {
    config: ReceiverConfig,
    /// Objects in progress, completed ones, and the bound manifest.
    table: ObjectTable,
    completed_order: VecDeque<Key>,
    in_flight: usize,
    /// Bytes reserved by the blocks in flight, each at its most.
    reserved: u64,
    /// Objects created so far (for `ObjectState::created`).
    created: u64,
    events: VecDeque<ReceiverEvent>,
    stats: ReceiverStats,
    fb: Feedback,
    /// Decode jobs for the driver, and the last ticket given out.
    jobs: VecDeque<DecodeJob>,
    tickets: u64,
    /// Blocks that could be solved, held back for a few more of their
    /// symbols: (object, SBN, until when at most), oldest first. See `offer`.
    ripening: Vec<(Key, u8, Instant)>,
    /// The latest time handed in (`handle_*`), for when an object completed.
    now: Option<Instant>,
    /// Sessions refused ([`Receiver::refuse_session`]), until when (`None`:
    /// refused before any time was handed in, until one is).
    refused: HashMap<SessionId, Option<Instant>>,
    /// With a sender key, the datagrams waiting for a verified AUTH, each
    /// with where it came from (protocol.md §15.2); with a channel key,
    /// what opens and seals (§16).
    keys: Keys<Origin>,
}

/// Where a datagram came from, and the hop limit it arrived with, as far as
/// the driver says.
type Origin = (Option<SocketAddr>, Option<u8>);

impl Receiver {
    /// A receiver with no objects.
    pub fn new(config: ReceiverConfig) -> Self {
        Self {
            fb: Feedback {
                rng: config.id ^ 0x9e37_79b9_7f4a_7c15,
                ..Feedback::default()
            },
            keys: Keys::new(&config),
            config,
            table: ObjectTable::default(),
            completed_order: VecDeque::new(),
            in_flight: 0,
            reserved: 0,
            created: 0,
            events: VecDeque::new(),
            stats: ReceiverStats::default(),
            jobs: VecDeque::new(),
            tickets: 0,
            ripening: Vec::new(),
            now: None,
            refused: HashMap::new(),
        }
    }

    /// The next block to solve, with [`ReceiverConfig::decode_threads`] above 0.
    /// Hand what [`DecodeJob::run`] gives to [`Receiver::handle_decoded`].
    pub fn poll_decode(&mut self) -> Option<DecodeJob> {
        self.jobs.pop_front()
    }

    /// Takes back a decode job. A decoded block is handed out and verified as
    /// if it had decoded inline; a failed attempt takes the symbols that came
    /// meanwhile and, with them, may go out again. A job whose object is gone
    /// (failed, evicted, dropped by a session lock) is dropped. `now` is taken
    /// like every `handle_*` call's, though nothing here depends on it yet.
    pub fn handle_decoded(&mut self, now: Instant, done: DecodedBlock) {
        self.tick(now);
        let DecodedBlock { job, decoded, out } = done;
        let (key, sbn) = (job.key, job.sbn);
        let Some(o) = self.table.objects.get_mut(&key) else {
            return;
        };
        let slot = &mut o.slots[sbn as usize];
        let held = match slot {
            Slot::Decoding {
                ticket,
                bytes,
                held,
            } if *ticket == job.ticket => {
                let held = std::mem::take(held);
                let out = *bytes + held.iter().map(|h| h.1.len() as u64).sum::<u64>();
                self.stats.buffered_bytes -= out.min(self.stats.buffered_bytes);
                held
            }
            _ => return,
        };
        let decoder = job.decoder;
        self.stats.buffered_bytes += decoder.buffered_bytes() as u64;
        *slot = Slot::Active(decoder);
        if decoded {
            self.block_decoded(key, sbn, out);
            return;
        }
        self.stats.decode_retries += 1;
        for (esi, symbol) in held {
            // Refusals were counted when these symbols arrived; one that
            // sends the block out again leaves the rest to be held anew.
            let _ = self.offer(None, key, sbn, esi, &symbol);
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// Accepts only `session` from now on: the state of every other session is
    /// dropped (its objects fail silently, and release their memory), and its
    /// later packets are refused as `foreign_session`. For a driver that has
    /// decided which transfer it follows.
    pub fn lock_session(&mut self, session: SessionId) {
        self.config.session = Some(session);
        self.remove_where(|k| k.0 != session);
        self.fb.sessions.retain(|s, _| *s == session);
    }

    /// Drops every object in progress whose key `drop` picks, with no event.
    fn remove_where(&mut self, drop: impl Fn(&Key) -> bool) {
        let keys: Vec<Key> = self
            .table
            .objects
            .keys()
            .filter(|k| drop(k))
            .copied()
            .collect();
        for key in keys {
            self.remove(key);
        }
    }

    /// Keeps the latest time handed in.
    fn tick(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
    }

    /// Gives up one object for good: what is held of it is dropped, an
    /// [`ReceiverEvent::ObjectFailed`] (`Abandoned`) follows if it was in
    /// progress, and its later packets are refused (`abandoned`), so that it
    /// is never reported complete. For an application whose own budget for
    /// the object is spent (a subscriber holds only so many unverified
    /// bytes). The last `completed_history` abandoned objects are
    /// remembered. Nothing happens to an object already complete.
    pub fn abandon(&mut self, session: SessionId, object: ObjectId) {
        let key = (session, object);
        if self.table.completed.contains(&key) || self.table.abandoned.contains(&key) {
            return;
        }
        self.fail(key, FailReason::Abandoned);
        if self.table.abandoned_order.len() >= self.config.completed_history.max(1)
            && let Some(old) = self.table.abandoned_order.pop_front()
        {
            self.table.abandoned.remove(&old);
        }
        self.table.abandoned.insert(key);
        self.table.abandoned_order.push_back(key);
    }

    /// Refuses `session` for [`REFUSAL`] (60 s), as if it were in
    /// [`ReceiverConfig::refused_sessions`]: its objects are dropped with no
    /// event, its feedback state is forgotten, and this receiver sends it
    /// nothing meanwhile; taken again after, it is never reported complete
    /// (what it sent meanwhile was lost). For a driver that cannot follow it
    /// (every publisher slot taken). At most 1,024 refusals are kept: the
    /// one nearest its end gives way.
    pub fn refuse_session(&mut self, session: SessionId) {
        let until = self.now.map(|t| t + REFUSAL);
        if self.refused.len() >= MAX_REFUSED && !self.refused.contains_key(&session) {
            // The refusal nearest its end gives way.
            if let Some(s) = self
                .refused
                .iter()
                .min_by_key(|(_, u)| **u)
                .map(|(s, _)| *s)
            {
                self.refused.remove(&s);
            }
        }
        self.refused.insert(session, until);
        // A session refused later, or again, never reports complete.
        self.mark_lossy(session);
        self.remove_where(|k| k.0 == session);
        self.fb.sessions.remove(&session);
    }

    /// Holds the window edge this receiver reports for `session` (STATUS's
    /// Window, which paces the sender's first pass) at `at`: the first block
    /// the application has not consumed yet, while that is behind the blocks
    /// decoded; `None` releases it. A driver whose writes lag (a slow disk)
    /// so slows the sender down instead of blocking its receiving thread on
    /// them, and losing datagrams meanwhile. A hold never moves the reported
    /// edge forward; moving it on or releasing it makes a STATUS due.
    pub fn hold_window(&mut self, session: SessionId, at: Option<(ObjectId, u8)>) {
        if let Some(f) = self.fb.sessions.get_mut(&session) {
            f.hold(at.map(|(o, s)| (o.0, s)));
        }
    }

    /// Takes every object of `session` before `object` as done: the
    /// receiver asks for none of them, drops what it holds of them (without
    /// an event), reports its window from `object` on, and counts their
    /// packets as duplicates. For a subscriber that joins a stream late and
    /// starts where the sender is ([`Receiver::sender_progress`]), or moves
    /// past a gap.
    pub fn skip_before(&mut self, session: SessionId, object: ObjectId) {
        if object.0 <= self.table.floor(session) {
            return;
        }
        self.remove_where(|k| k.0 == session && k.1 < object);
        self.table.raise_floor(session, object.0, self.created);
        if let Some(f) = self.fb.sessions.get_mut(&session) {
            f.window_moved();
        }
    }

    /// As [`Receiver::skip_before`], for objects the application lost (a
    /// gap): from then on this receiver never reports `session` complete,
    /// so that its sender never counts it among the receivers that got
    /// everything (it stalls it instead). The last 1,024 such sessions are
    /// remembered.
    pub fn skip_lost(&mut self, session: SessionId, object: ObjectId) {
        if object.0 <= self.table.floor(session) {
            return;
        }
        self.mark_lossy(session);
        self.skip_before(session, object);
    }

    /// Never reports `session` complete from now on.
    fn mark_lossy(&mut self, session: SessionId) {
        let stamp = self.created;
        self.table.floor_entry(session, stamp, true).2 = true;
    }

    /// Whether this receiver will never report `session` complete (it lost
    /// objects of it, was refused it, or saw a conflict in it).
    pub fn is_lossy(&self, session: SessionId) -> bool {
        self.table.is_lossy(session)
    }

    /// What the PROBEs of `session` said, as of the latest: see
    /// [`SenderProgress`]. `None` before any PROBE (or without feedback).
    pub fn sender_progress(&self, session: SessionId) -> Option<SenderProgress> {
        self.fb.sessions.get(&session).map(|f| SenderProgress {
            objects: f.objects,
            progress: ObjectId(f.progress.0),
            retained: ObjectId(f.retained),
        })
    }

    /// Binds the receiver to a verified manifest: it accepts only `session`
    /// (as [`Receiver::lock_session`]), and of it only the objects listed, each
    /// only with the size, hash and name listed (anything else is refused as
    /// `unexpected_object` or `manifest_mismatch`). Objects already in
    /// progress that the list does not name are dropped. A listed object needs
    /// no OBJECT_INFO of its own any more, and an empty one completes at once.
    pub fn bind(&mut self, session: SessionId, objects: impl IntoIterator<Item = BoundObject>) {
        self.lock_session(session);
        // A part's hash can only be a subtree's chaining value where the
        // tree has one; a line that could not be is not bound (and its
        // packets are refused as unexpected), rather than verified wrongly.
        let bound: HashMap<ObjectId, BoundObject> = objects
            .into_iter()
            .filter(|b| b.hash_offset.is_none_or(|o| hash::subtree_fits(o, b.size)))
            .map(|b| (b.object, b))
            .collect();
        tracing::info!(
            session = %format_args!("{:016x}", session.0),
            objects = bound.len(),
            "session locked to its manifest"
        );
        let stale: Vec<Key> = self
            .table
            .objects
            .iter()
            .filter(|(k, o)| {
                bound.get(&k.1).is_none_or(|b| {
                    b.size != o.oti.transfer_length()
                        || b.hash_offset != o.hash_offset
                        || o.info
                            .as_ref()
                            .is_some_and(|i| i.hash != b.hash || i.name != b.name)
                })
            })
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            self.remove(key);
        }
        for (id, b) in &bound {
            let key = (session, *id);
            if let Some(o) = self.table.objects.get_mut(&key) {
                o.info = Some(Info {
                    hash: b.hash,
                    name: b.name.clone(),
                });
            }
        }
        let empty: Vec<BoundObject> = bound
            .values()
            .filter(|b| b.size == 0 && b.hash == *blake3::hash(b"").as_bytes())
            .cloned()
            .collect();
        self.table.bound = Some(bound);
        // An empty object has no block to wait for: the manifest's line is all
        // there is to verify.
        for b in empty {
            let key = (session, b.object);
            if !self.table.is_done(key) {
                self.remove(key);
                self.record_complete(key, 0, b.hash, b.name, None);
            }
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// Objects currently being received.
    pub fn objects_in_progress(&self) -> usize {
        self.table.objects.len()
    }

    /// Source symbols still needed over all objects in progress (a lower bound:
    /// a RaptorQ block may need one or two more).
    pub fn symbols_needed(&self) -> u64 {
        let mut n = 0u64;
        for o in self.table.objects.values() {
            for (sbn, slot) in o.slots.iter().enumerate() {
                n += match slot {
                    Slot::Idle => o.oti.block(sbn as u32).map_or(0, |b| b.source_symbols) as u64,
                    Slot::Active(d) => d.needed() as u64,
                    Slot::Decoding { .. } | Slot::Done => 0,
                }
            }
        }
        n
    }

    /// The next event, if any. Drain events after every `handle_*` call: a
    /// [`ReceiverEvent::BlockDecoded`] holds a block's data until taken.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// The next deadline: a NACK or STATUS to send, an unfinished object to
    /// abandon, or (with decode workers) a block held back for the rest of its
    /// run to hand out for solving anyway (`RIPEN_LIMIT` after it could be).
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The object heard from longest ago is the first to go idle.
        let idle = self
            .table
            .idle
            .first()
            .map(|(at, _)| *at + self.config.idle_timeout);
        let fb = self
            .fb
            .sessions
            .values()
            .filter_map(|f| f.deadline(&self.config));
        let ripe = self.ripening.iter().map(|r| r.2).min();
        // Held datagrams no AUTH named are let go (protocol.md §15.2).
        let held = self.keys.auth.as_ref().and_then(Verifier::next_expiry);
        idle.into_iter().chain(fb).chain(ripe).chain(held).min()
    }

    /// Abandons objects that have been idle for `idle_timeout`, and feedback
    /// sessions that have heard no PROBE for as long.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        if let Some(v) = &mut self.keys.auth {
            v.expire(now);
            self.stats.auth = v.stats();
        }
        self.ship_ripening(Some(now));
        self.redraw_nacks(now);
        let timeout = self.config.idle_timeout;
        let before = self.fb.sessions.len();
        self.fb
            .sessions
            .retain(|_, f| now.saturating_duration_since(f.probe_at) < timeout);
        self.stats.feedback_expired += (before - self.fb.sessions.len()) as u64;
        let expired: Vec<Key> = self
            .table
            .idle
            .iter()
            .take_while(|(at, _)| now.saturating_duration_since(*at) >= timeout)
            .map(|(_, k)| *k)
            .collect();
        for key in expired {
            // A block out for solving is progress, however slow the codec:
            // the object waits for it (a slow receiver is waited for, never
            // given up; protocol.md §8).
            let table = &mut self.table;
            if let Some(o) = table.objects.get_mut(&key)
                && o.slots.iter().any(|s| matches!(s, Slot::Decoding { .. }))
            {
                o.touch(&mut table.idle, key, now);
                continue;
            }
            self.fail(key, FailReason::Idle);
        }
    }

    /// The wall clock, read again (protocol.md §15.2): a driver hands it
    /// in now and then, since a clock may be stepped or stop during
    /// suspend while instants go on.
    pub fn set_wall_clock(&mut self, clock: super::auth::WallClock) {
        if let Some(v) = &mut self.keys.auth {
            v.set_clock(clock);
        }
    }

    /// Whether this receiver keeps feedback state for `session` (it heard
    /// a PROBE of it and may send it STATUS): at most
    /// [`ReceiverConfig::max_sessions`] sessions at once.
    pub fn answers(&self, session: SessionId) -> bool {
        self.fb.sessions.contains_key(&session)
    }

    /// Handles one datagram. Malformed or foreign datagrams are counted and
    /// dropped; nothing on the network can make this panic. Says what was
    /// taken ([`Accepted`]: whether the datagram's source may be answered)
    /// or why not; a driver needs nothing else from the datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<Accepted, RejectReason> {
        self.gate(now, (None, None), datagram)
    }

    /// Holds a datagram of the sender's (DATA, OBJECT_INFO, PROBE) until a
    /// verified AUTH lists it, verifies AUTH, and takes the rest as it
    /// comes (protocol.md §15.2); without a sender key, takes everything.
    fn gate(
        &mut self,
        now: Instant,
        origin: Origin,
        datagram: &[u8],
    ) -> Result<Accepted, RejectReason> {
        // Without a key nothing is gated: no header check before dispatch.
        // What the sender signed is checked as it was sent: sealed.
        let keyed = self.keys.auth.is_some() && datagram.len() <= self.config.max_datagram;
        let header = keyed
            .then(|| {
                // The hash an AUTH lists covers the CRC: checked in dispatch,
                // or by the seal.
                let p = Packet::new_unchecked(datagram);
                p.check_header(false)
                    .ok()
                    .map(|_| (p.packet_type(), p.session()))
            })
            .flatten();
        let Some((ty, session)) = header else {
            return self.take(now, origin, datagram);
        };
        let held = Accepted {
            session: SessionId(session),
            from_sender: false,
            probe_hops: None,
        };
        let result = if let Err(reason) = self.accept_session(session) {
            self.tick(now);
            self.reject(reason);
            Err(reason)
        } else if ty == PacketType::Auth as u8 {
            let (Ok(Repr::Auth(a)), Some(v)) = (Repr::parse(datagram), &mut self.keys.auth) else {
                return self.take(now, origin, datagram);
            };
            match v.on_auth(now, &a) {
                Ok(()) => Ok(self.released(now, session)),
                Err(refusal) => {
                    let reason = match refusal {
                        AuthRefusal::BadSignature => RejectReason::BadSignature,
                        AuthRefusal::Stale => RejectReason::StaleAuth,
                    };
                    self.tick(now);
                    self.reject(reason);
                    Err(reason)
                }
            }
        } else if [PacketType::Data, PacketType::ObjectInfo, PacketType::Probe]
            .iter()
            .any(|&t| t as u8 == ty)
        {
            match self
                .keys
                .auth
                .as_mut()
                .map(|v| v.check(now, datagram, origin))
            {
                Some(Gate::Held | Gate::Replayed) => Ok(held),
                _ => {
                    self.keys.vouched = true;
                    let taken = self.take(now, origin, datagram);
                    self.keys.vouched = false;
                    taken
                }
            }
        } else {
            self.take(now, origin, datagram)
        };
        if let Some(v) = &self.keys.auth {
            self.stats.auth = v.stats();
        }
        result
    }

    /// A verified AUTH of `session` came: the datagrams it released are
    /// taken, in the order they came, each with where it came from. The
    /// AUTH's own source says nothing of the sender's address: anyone may
    /// send a copy of a genuine AUTH from anywhere.
    fn released(&mut self, now: Instant, session: u64) -> Accepted {
        while let Some((d, origin)) = self.keys.auth.as_mut().and_then(Verifier::poll_released) {
            // Each is counted (or refused) as it is taken.
            self.keys.vouched = true;
            let _ = self.take(now, origin, &d);
            self.keys.vouched = false;
        }
        Accepted {
            session: SessionId(session),
            from_sender: false,
            probe_hops: None,
        }
    }

    /// Takes a datagram the gate let through: opens it on a sealed channel
    /// (protocol.md §16.3), dispatches it, then keeps its source if it may
    /// aim its session.
    fn take(
        &mut self,
        now: Instant,
        (from, hop_limit): Origin,
        datagram: &[u8],
    ) -> Result<Accepted, RejectReason> {
        let taken = match &mut self.keys.seal {
            None => self.dispatch(now, datagram, false),
            // Its size as it came, before anything is spent opening it.
            Some(_) if datagram.len() > self.config.max_datagram => {
                self.dispatch(now, datagram, false)
            }
            Some((opener, _)) => {
                let mut out = std::mem::take(&mut self.keys.opened);
                let taken = match opener.open_into(datagram, &mut out) {
                    Ok(true) => {
                        self.stats.opened += 1;
                        self.dispatch(now, &out, true)
                    }
                    Ok(false) => self.dispatch(now, datagram, false),
                    Err(e) => {
                        let reason = match e {
                            SealError::Unsealed => RejectReason::Unsealed,
                            SealError::BadSeal => RejectReason::BadSeal,
                            SealError::Wire(w) => w.into(),
                        };
                        self.tick(now);
                        self.stats.packets_received += 1;
                        self.stats.bytes_received += datagram.len() as u64;
                        self.reject(reason);
                        Err(reason)
                    }
                };
                self.keys.opened = out;
                taken
            }
        }?;
        self.remember(taken, from, hop_limit);
        Ok(taken)
    }

    /// The source of a datagram that may aim its session is where the
    /// session's STATUS goes; a PROBE's Hops and the arrival hop limit size
    /// the NACKs' (protocol.md §12, §13.5).
    fn remember(&mut self, taken: Accepted, from: Option<SocketAddr>, hop_limit: Option<u8>) {
        let Some(from) = from.filter(|_| taken.from_sender) else {
            return;
        };
        let Feedback {
            sessions, senders, ..
        } = &mut self.fb;
        senders.remember(taken.session, from, |s| sessions.contains_key(&s));
        if let Some(announced) = taken.probe_hops {
            senders.follow_probe(announced, hop_limit);
        }
    }

    /// Reads a datagram and hands it to the part it is for; `opened`: the
    /// seal covered every byte, and its CRC is not checked.
    fn dispatch(
        &mut self,
        now: Instant,
        datagram: &[u8],
        opened: bool,
    ) -> Result<Accepted, RejectReason> {
        self.tick(now);
        self.stats.packets_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        if datagram.len() > self.config.max_datagram {
            self.reject(RejectReason::Oversized);
            return Err(RejectReason::Oversized);
        }
        let taken = |session: u64, from_sender: bool, probe_hops: Option<u8>| Accepted {
            session: SessionId(session),
            from_sender,
            probe_hops,
        };
        let parsed = if opened {
            Repr::parse_opened(datagram)
        } else {
            Repr::parse(datagram)
        };
        // With a sender key, nothing of the sender's goes on unvouched
        // (protocol.md §15.2): the gate lets none through; this is the last
        // line before the decoders and the objects.
        if self.keys.auth.is_some()
            && !self.keys.vouched
            && matches!(
                parsed,
                Ok(Repr::Data(_) | Repr::ObjectInfo(_) | Repr::Probe(_))
            )
        {
            self.stats.symbols_unvouched += matches!(parsed, Ok(Repr::Data(_))) as u64;
            self.reject(RejectReason::Unvouched);
            return Err(RejectReason::Unvouched);
        }
        let result = match parsed {
            Ok(Repr::Data(d)) => {
                let s = d.session;
                self.handle_data(now, d).map(|()| taken(s, true, None))
            }
            Ok(Repr::ObjectInfo(i)) => {
                let s = i.session;
                self.handle_info(now, i).map(|()| taken(s, true, None))
            }
            Ok(Repr::Probe(p)) => {
                let (s, hops) = (p.session, p.hops);
                self.handle_probe(now, p)
                    .map(|()| taken(s, true, Some(hops)))
            }
            Ok(Repr::Nack(n)) => self
                .handle_peer_nack(now, &n)
                .map(|()| taken(n.session, false, None)),
            Ok(Repr::Status(st)) => {
                self.stats.feedback_ignored += 1;
                Ok(taken(st.session, false, None))
            }
            Ok(Repr::Auth(a)) => {
                self.stats.auth_ignored += 1;
                Ok(taken(a.session, false, None))
            }
            Err(e) => Err(e.into()),
        };
        match result {
            Err(RejectReason::AwaitingManifest) => self.stats.awaiting_manifest += 1,
            Err(reason) => self.reject(reason),
            Ok(_) => {}
        }
        self.stats.peak_buffered_bytes = self
            .stats
            .peak_buffered_bytes
            .max(self.stats.buffered_bytes);
        result
    }

    fn reject(&mut self, reason: RejectReason) {
        self.stats.packets_rejected += 1;
        let n = &mut self.stats.rejected.0[ReceiverStats::index(reason)];
        *n += 1;
        // Rate-limited: the 1st, 2nd, 4th, 8th, ... of each reason.
        if n.is_power_of_two() {
            tracing::debug!(reason = reason.name(), count = *n, "datagram refused");
        }
    }

    fn accept_session(&self, session: u64) -> Result<(), RejectReason> {
        let refused = |s| {
            self.refused
                .get(&s)
                .is_some_and(|until| until.is_none_or(|u| self.now.is_none_or(|n| n < u)))
        };
        match self.config.session {
            Some(s) if s.0 != session => Err(RejectReason::ForeignSession),
            _ if self.config.refused_sessions.contains(&SessionId(session))
                || refused(SessionId(session)) =>
            {
                Err(RejectReason::ForeignSession)
            }
            _ => Ok(()),
        }
    }

    /// Handles one datagram, as [`Receiver::handle_datagram`], from `from`,
    /// which arrived with `hop_limit` hops left if the driver's socket says
    /// (IPV6_RECVHOPLIMIT). The source of a datagram that may aim its
    /// session ([`Accepted::from_sender`]) is where the session's STATUS
    /// goes, and nowhere else (protocol.md §12); a PROBE's Hops and
    /// `hop_limit` size the NACKs' hop limit (§13.5, Hop limit). A driver
    /// sets the scope of a link-local `from` before handing it in.
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        hop_limit: Option<u8>,
        datagram: &[u8],
    ) -> Result<Accepted, RejectReason> {
        self.gate(now, (Some(from), hop_limit), datagram)
    }

    /// As [`Receiver::poll_transmit`], with the address of the session's
    /// sender for what goes to it alone, and the NACKs' hop limit. A
    /// datagram for a sender none of whose datagrams that may aim it came
    /// through [`Receiver::handle`] is dropped, and counted
    /// (`feedback_unaddressed`): STATUS goes only where the session's
    /// accepted datagrams come from (protocol.md §12).
    pub fn poll_transmit_to(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        loop {
            let (len, to) = self.poll_transmit(now, buf)?;
            let (destination, hop_limit) = match to {
                Destination::Feedback => (TransmitTo::Feedback, self.fb.senders.nack_hops()),
                Destination::Sender(session) => match self.fb.senders.sender_of(session) {
                    Some(addr) => (TransmitTo::Addr(addr), None),
                    None => {
                        self.stats.feedback_unaddressed += 1;
                        continue;
                    }
                },
            };
            return Some(Transmit {
                len,
                destination,
                hop_limit,
            });
        }
    }

    /// Writes the next feedback datagram (a STATUS or a NACK) into `buf` and
    /// returns its length and destination, or `None` if nothing is due. Only
    /// sessions whose sender sends PROBEs (nack and hybrid modes) get feedback.
    /// On a sealed channel each goes out sealed (protocol.md §16.2).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(usize, Destination)> {
        if self.keys.seal.is_none() {
            return self.poll_feedback(now, buf);
        }
        let room = buf.len().min(crate::wire::DEFAULT_MAX_DATAGRAM);
        let plain = room.checked_sub(SEAL_LEN)?;
        let (len, to) = self.poll_feedback(now, &mut buf[..plain])?;
        let session = Packet::new_unchecked(&buf[..len]).session();
        Some((self.keys.seal_feedback(session, &mut buf[..room], len)?, to))
    }

    fn poll_feedback(&mut self, now: Instant, buf: &mut [u8]) -> Option<(usize, Destination)> {
        // Sessions in order, without collecting them (this runs after every packet).
        let mut next = self.fb.sessions.keys().next().copied();
        while let Some(session) = next {
            if let Some(t) = self.status_packet(now, session, buf) {
                return Some(t);
            }
            if self
                .fb
                .sessions
                .get(&session)
                .is_some_and(|f| f.nack_due(now))
                && let Some(t) = self.nack_packet(now, session, buf)
            {
                return Some(t);
            }
            next = self
                .fb
                .sessions
                .range((Bound::Excluded(session), Bound::Unbounded))
                .next()
                .map(|(k, _)| *k);
        }
        None
    }
}

/// Whom the receiver answers, and where: the feedback state of each
/// session it answers (at most [`ReceiverConfig::max_sessions`]), and where
/// its senders are and how far its NACKs go ([`SenderAddrs`]).
#[derive(Default)]
struct Feedback {
    sessions: BTreeMap<SessionId, SessionFb>,
    senders: SenderAddrs,
    /// Draws for NACK backoffs.
    rng: u64,
}

/// Sessions [`Receiver::refuse_session`] keeps refused at once.
const MAX_REFUSED: usize = 1024;

/// How long [`Receiver::refuse_session`] refuses a session: the time an idle
/// publisher keeps its slot (`InboxLimits::publisher_idle`), so that one
/// refused for want of a slot is taken again once slots may have freed.
pub const REFUSAL: Duration = Duration::from_secs(60);
