//! Messages and streams over a session's objects (protocol.md §14), sans-IO.
//!
//! A publisher's session is a sequence of objects 0, 1, 2, ... Each carries
//! a frame: a batch of messages, a piece of a byte stream, or the end. The
//! [`Outbox`] turns what an application sends into such objects (batching
//! small messages under a latency bound); the [`Inbox`] turns the objects a
//! receiver completes, in any order and from any number of sessions, back
//! into each session's messages and bytes, in order and exactly once, and
//! says where it could not (a gap) and where a session ended. The frames'
//! layout is [`crate::wire::frame`]'s.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::{ObjectId, SessionId};
use crate::wire::frame::{
    self, Batch, Frame, FrameKind, FrameRepr, MAX_MESSAGE_LEN, MESSAGE_HEADER, MESSAGES_HEADER,
    STREAM_HEADER,
};

/// The share of [`Batching::flush_delay`] that an open batch closes early:
/// the time its hand-offs take (application to driver, driver to socket,
/// socket to the subscriber's driver and on to its application: 0.1-0.3 ms
/// on two shared cores), left out of the wait so that the delay bounds the
/// whole trip but the path.
pub const FLUSH_LEAD: f64 = 0.1;

/// How an [`Outbox`] batches. Start from [`Batching::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Longest a message waits for others to share its object, counting the
    /// hand-offs that follow the cut (to the driver, the socket, and on the
    /// far side to the application): the open batch closes
    /// [`FLUSH_LEAD`] of it early, so that its first message reaches a
    /// subscriber within this delay and the path. Default 5 ms.
    pub flush_delay: Duration,
    /// A batch of messages goes out once it holds this many bytes. Default
    /// 1 MiB (about one block).
    pub batch_bytes: usize,
    /// A stream piece goes out once it holds this many bytes. Default 4 MiB.
    pub stream_bytes: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            flush_delay: Duration::from_millis(5),
            batch_bytes: 1 << 20,
            stream_bytes: 4 << 20,
        }
    }
}

/// The publishing side: frames messages and stream bytes into objects.
#[derive(Debug)]
pub struct Outbox {
    batching: Batching,
    /// The batch or stream piece being filled, framed so far.
    open: Vec<u8>,
    /// What `open` is: a batch or a stream piece; `None` while it is empty.
    kind: Option<FrameKind>,
    /// Messages in the open batch.
    count: u32,
    /// When the open frame took its first byte.
    since: Option<Instant>,
    /// The next message's sequence number.
    next_seq: u64,
    /// Stream bytes framed so far.
    stream_len: u64,
    ready: VecDeque<Vec<u8>>,
    ended: bool,
    /// When a frame was last cut.
    cut_at: Option<Instant>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new(batching: Batching) -> Self {
        Self {
            batching,
            open: Vec::new(),
            kind: None,
            count: 0,
            since: None,
            next_seq: 0,
            stream_len: 0,
            ready: VecDeque::new(),
            ended: false,
            cut_at: None,
        }
    }

    /// Queues one message and returns its sequence number. A message larger
    /// than a batch (or than `u32::MAX` bytes: refused with `None`) goes in
    /// an object of its own.
    pub fn push_message(&mut self, now: Instant, msg: &[u8]) -> Option<u64> {
        if self.ended || msg.len() > MAX_MESSAGE_LEN {
            return None;
        }
        if self.kind == Some(FrameKind::Stream)
            || (self.kind == Some(FrameKind::Messages)
                && self.open.len() + MESSAGE_HEADER + msg.len() > self.batching.batch_bytes)
        {
            self.flush();
        }
        if self.kind.is_none() {
            self.kind = Some(FrameKind::Messages);
            self.open
                .reserve(MESSAGES_HEADER + MESSAGE_HEADER + msg.len());
            frame::start_messages(&mut self.open, self.next_seq);
            self.since = Some(now);
        }
        // Its length was checked above: it is not refused.
        frame::push_message(&mut self.open, msg).ok()?;
        self.count += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        // Alone after a quiet flush delay, it goes at once: nothing is
        // waiting to share its object, and batching would only delay it.
        let quiet = self
            .cut_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.batching.flush_delay);
        if self.open.len() >= self.batching.batch_bytes || (self.count == 1 && quiet) {
            self.flush();
            self.cut_at = Some(now);
        }
        Some(seq)
    }

    /// Appends bytes to the session's stream; returns how many were taken
    /// (all of them, unless the outbox has ended).
    pub fn push_stream(&mut self, now: Instant, mut bytes: &[u8]) -> usize {
        if self.ended {
            return 0;
        }
        let taken = bytes.len();
        while !bytes.is_empty() {
            if self.kind == Some(FrameKind::Messages) {
                self.flush();
            }
            if self.kind.is_none() {
                self.kind = Some(FrameKind::Stream);
                frame::start_stream(&mut self.open, self.stream_len);
                self.since = Some(now);
            }
            let room = self
                .batching
                .stream_bytes
                .saturating_sub(self.open.len())
                .max(1);
            let n = room.min(bytes.len());
            self.open.extend_from_slice(&bytes[..n]);
            self.stream_len += n as u64;
            bytes = &bytes[n..];
            if self.open.len() >= self.batching.stream_bytes {
                self.flush();
            }
        }
        taken
    }

    /// Closes the frame being filled, if any, so that it goes out next.
    pub fn flush(&mut self) {
        let Some(kind) = self.kind.take() else {
            return;
        };
        if kind == FrameKind::Messages {
            Frame::new_unchecked(&mut self.open[..]).set_count(self.count);
        }
        self.cut_at = self.since.max(self.cut_at);
        self.ready.push_back(std::mem::take(&mut self.open));
        self.count = 0;
        self.since = None;
    }

    /// Ends the session: what is open goes out, then the END frame. Nothing
    /// is taken after it.
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        self.flush();
        let end = FrameRepr::End {
            stream_len: self.stream_len,
            messages: self.next_seq,
        };
        self.ready.push_back(end.to_vec());
        self.ended = true;
    }

    /// When the open frame is due to go out by itself ([`Outbox::handle_timeout`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.since
            .map(|s| s + self.batching.flush_delay.mul_f64(1.0 - FLUSH_LEAD))
    }

    /// Closes the open frame if its flush delay has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.flush();
            self.cut_at = Some(now);
        }
    }

    /// The next object to send, framed, in order.
    pub fn poll_object(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// Bytes framed and not yet taken by [`Outbox::poll_object`], with the open frame.
    pub fn pending_bytes(&self) -> usize {
        self.open.len() + self.ready.iter().map(Vec::len).sum::<usize>()
    }

    /// Whether [`Outbox::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Messages queued so far (the next sequence number).
    pub fn messages(&self) -> u64 {
        self.next_seq
    }

    /// Stream bytes queued so far.
    pub fn stream_len(&self) -> u64 {
        self.stream_len
    }
}

/// One message, as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The publisher's session.
    pub sender: SessionId,
    /// Its sequence number in that session, from 0.
    pub seq: u64,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// What an [`Inbox`] hands out, per session in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// A message.
    Message(Message),
    /// The next bytes of a session's stream.
    Stream {
        /// The publisher's session.
        sender: SessionId,
        /// Where they start in the stream.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Objects the subscriber could not get (the sender no longer retains
    /// them, or they never arrived): what they held is lost, and delivery
    /// goes on after them.
    Gap {
        /// The publisher's session.
        sender: SessionId,
        /// The first object missed.
        from: ObjectId,
        /// The first object after the gap.
        to: ObjectId,
    },
    /// Two different objects were sent under one id of the session: one of
    /// them is forged, and which cannot be told without keys (it may be the
    /// one already delivered). Delivery goes on; what the session delivered
    /// can no longer be trusted, and the subscriber never confirms it.
    Conflict {
        /// The publisher's session.
        sender: SessionId,
        /// The object id sent twice.
        object: ObjectId,
    },
    /// The session ended: nothing more comes from it.
    End {
        /// The publisher's session.
        sender: SessionId,
        /// Its stream's length, as the publisher counted it.
        stream_len: u64,
        /// Messages it sent.
        messages: u64,
    },
}

impl Delivery {
    /// The publisher's session this delivery is of.
    pub fn sender(&self) -> SessionId {
        match self {
            Self::Message(m) => m.sender,
            Self::Stream { sender, .. }
            | Self::Gap { sender, .. }
            | Self::Conflict { sender, .. }
            | Self::End { sender, .. } => *sender,
        }
    }
}

/// Counters of an [`Inbox`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxStats {
    /// Objects whose frame did not parse or does not follow the session's
    /// last (a sequence number or stream offset out of turn), dropped (and
    /// delivered as a gap).
    pub malformed: u64,
    /// Objects that came before the session's start or again, dropped.
    pub stale: u64,
    /// Gaps delivered.
    pub gaps: u64,
    /// Sessions refused beyond `max_sessions`, every slot taken by a
    /// publisher heard within [`InboxLimits::publisher_idle`].
    pub sessions_refused: u64,
    /// Sessions dropped to make room for another, idle for
    /// [`InboxLimits::publisher_idle`].
    pub sessions_expired: u64,
    /// Sessions whose start never became known (no PROBE) within the gap
    /// timeout of their first object, dropped with what they held.
    pub unstarted_expired: u64,
    /// Objects refused because holding them would pass
    /// [`InboxLimits::max_held`] or [`InboxLimits::max_unstarted`].
    pub over_budget: u64,
    /// Conflicts delivered: two objects under one id of a session.
    pub conflicts: u64,
}

/// What an [`Inbox`] holds at most. Start from [`InboxLimits::default`];
/// protocol.md's limits table lists each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxLimits {
    /// Bytes of completed objects held for order, over every session.
    /// Default 64 MiB (four 16 MiB publisher windows).
    pub max_held: usize,
    /// Of those, bytes held for sessions whose start is not known yet (no
    /// PROBE heard: anyone may claim such a session). Default 8 MiB.
    pub max_unstarted: usize,
    /// A session heard of for this long gives its slot to a new one when
    /// every slot is taken. Default 60 s.
    pub publisher_idle: Duration,
}

impl Default for InboxLimits {
    fn default() -> Self {
        Self {
            max_held: 64 << 20,
            max_unstarted: 8 << 20,
            publisher_idle: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default)]
struct Feed {
    /// The first object delivered; `None` until it is known.
    start: Option<u32>,
    /// Bytes of `ready`.
    held: usize,
    /// When an object of the session was last handed in.
    heard: Option<Instant>,
    /// Where the next stream piece starts, once a piece was delivered.
    stream_at: Option<u64>,
    /// Whether a gap was delivered since the last batch of messages, and
    /// since the last stream piece: the next may then start later than
    /// `seq` or `stream_at`, never earlier.
    seq_gap: bool,
    stream_gap: bool,
    /// The next object to deliver.
    next: u32,
    /// Objects complete and not yet delivered, by id.
    ready: BTreeMap<u32, Vec<u8>>,
    /// Objects failed, by id (delivered as a gap in turn).
    failed: std::collections::BTreeSet<u32>,
    /// Since when a later object waits for `next`.
    stuck_since: Option<Instant>,
    /// The next message's sequence number, once one was delivered.
    seq: Option<u64>,
    ended: bool,
}

impl Feed {
    /// Delivery moves on to `to` past what is missing from `next`: a gap.
    fn jump(
        &mut self,
        session: SessionId,
        to: u32,
        out: &mut VecDeque<Delivery>,
        stats: &mut InboxStats,
    ) {
        out.push_back(Delivery::Gap {
            sender: session,
            from: ObjectId(self.next),
            to: ObjectId(to),
        });
        stats.gaps += 1;
        self.next = to;
        self.failed = self.failed.split_off(&to);
        self.seq_gap = true;
        self.stream_gap = true;
    }
}

/// The subscribing side: puts completed objects back in order, per session,
/// and unframes them. It holds completed objects until those before them
/// are delivered, within [`InboxLimits`]: at most `max_held` bytes in all,
/// of which at most `max_unstarted` for sessions whose start is not known
/// (such a session is dropped if its start stays unknown for the gap
/// timeout). Its owner keeps an honest publisher well inside that by
/// holding the receiver's window ([`Inbox::held_started_bytes`],
/// [`super::Receiver::hold_window`]).
///
/// Nothing in an object can make it panic or allocate beyond its limits:
/// lengths, counts, sequence numbers and offsets are checked before they
/// meet arithmetic (protocol.md §14).
#[derive(Debug)]
pub struct Inbox {
    feeds: HashMap<SessionId, Feed>,
    out: VecDeque<Delivery>,
    /// How long a later object waits for a missing one before the missing
    /// one is declared a gap.
    gap_timeout: Duration,
    max_sessions: usize,
    limits: InboxLimits,
    held: usize,
    /// The latest time handed in, for slot expiry where a call has none.
    now: Option<Instant>,
    /// Sessions dropped (expired or refused), for the owner to refuse too.
    dropped: VecDeque<SessionId>,
    /// Sessions that ended and gave their slot up, the last
    /// [`ENDED_HISTORY`]: nothing more of them is taken.
    ended: HashSet<SessionId>,
    ended_order: VecDeque<SessionId>,
    stats: InboxStats,
}

impl Inbox {
    /// An empty inbox: a missing object becomes a gap after `gap_timeout`,
    /// and at most `max_sessions` publishers are followed at once, within
    /// the default [`InboxLimits`].
    pub fn new(gap_timeout: Duration, max_sessions: usize) -> Self {
        Self {
            feeds: HashMap::new(),
            out: VecDeque::new(),
            gap_timeout,
            max_sessions: max_sessions.max(1),
            limits: InboxLimits::default(),
            held: 0,
            now: None,
            dropped: VecDeque::new(),
            ended: HashSet::new(),
            ended_order: VecDeque::new(),
            stats: InboxStats::default(),
        }
    }

    /// The same inbox within other limits.
    pub fn with_limits(mut self, limits: InboxLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &InboxLimits {
        &self.limits
    }

    /// Whether the inbox follows `session`, or would take it now (a free
    /// slot, or one it may expire), or has followed it to its end.
    pub fn follows(&self, session: SessionId) -> bool {
        self.feeds.contains_key(&session)
            || self.ended.contains(&session)
            || self.feeds.len() < self.max_sessions
            || self.expirable().is_some()
    }

    /// Where delivery of `session` starts, if not yet decided: at the first
    /// object the sender still holds (PROBE's Retained, from its first
    /// PROBE heard), so that a subscriber gets everything the publisher
    /// retains and nothing it cannot. Returns the start once decided (the
    /// receiver then skips what is before it).
    pub fn start_at(&mut self, session: SessionId, retained: ObjectId) -> Option<ObjectId> {
        let f = self.feed_of(session)?;
        if f.start.is_none() {
            let start = retained.0;
            f.start = Some(start);
            f.next = start;
            let keep = f.ready.split_off(&start);
            let stale = std::mem::replace(&mut f.ready, keep);
            let bytes: usize = stale.values().map(Vec::len).sum();
            f.held -= bytes;
            f.failed = f.failed.split_off(&start);
            self.held -= bytes;
            self.stats.stale += stale.len() as u64;
            // What completed before the start was known goes out now.
            self.deliver(session);
        }
        self.feeds.get(&session).and_then(|f| f.start).map(ObjectId)
    }

    /// The sender of `session` no longer holds the objects before
    /// `retained`: those this subscriber has go out, the others are a gap
    /// at once (no gap timeout: they cannot come). Returns where delivery
    /// moved to past a gap, if it did.
    pub fn sender_retains(&mut self, session: SessionId, retained: ObjectId) -> Option<ObjectId> {
        let mut moved = None;
        loop {
            self.deliver(session);
            let f = self.feeds.get_mut(&session)?;
            if f.start.is_none() || f.ended || f.next >= retained.0 {
                return moved;
            }
            let to = f
                .ready
                .range(f.next..)
                .next()
                .map_or(retained.0, |(k, _)| (*k).min(retained.0));
            f.jump(session, to, &mut self.out, &mut self.stats);
            moved = Some(ObjectId(to));
        }
    }

    /// Whether the inbox holds `session`'s state (it drops an ended one to
    /// make room for another).
    pub fn knows(&self, session: SessionId) -> bool {
        self.feeds.contains_key(&session)
    }

    /// The start of `session`, once decided.
    pub fn start(&self, session: SessionId) -> Option<ObjectId> {
        self.feeds.get(&session).and_then(|f| f.start).map(ObjectId)
    }

    /// Whether `len` more bytes of `session` fit the limits, beside
    /// `pending` bytes the owner holds of objects not yet complete (in all,
    /// and of sessions whose start is unknown); a refusal is counted
    /// (`over_budget`).
    pub fn room_for(
        &mut self,
        session: SessionId,
        len: usize,
        pending: usize,
        pending_unstarted: usize,
    ) -> bool {
        let room = self.has_room(session, len, pending, pending_unstarted);
        if !room {
            self.stats.over_budget += 1;
        }
        room
    }

    fn has_room(
        &self,
        session: SessionId,
        len: usize,
        pending: usize,
        pending_unstarted: usize,
    ) -> bool {
        let total = self.held.saturating_add(pending).saturating_add(len);
        if total > self.limits.max_held {
            return false;
        }
        if self.start(session).is_some() {
            return true;
        }
        let unstarted = self
            .held_unstarted_bytes()
            .saturating_add(pending_unstarted)
            .saturating_add(len);
        unstarted <= self.limits.max_unstarted
    }

    /// A verified object of `session`. Returns whether it was taken (not
    /// stale, a duplicate, beyond the limits, or of a session refused).
    pub fn handle_object(
        &mut self,
        now: Instant,
        session: SessionId,
        object: ObjectId,
        data: Vec<u8>,
    ) -> bool {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
        if !self.has_room(session, data.len(), 0, 0) {
            self.stats.over_budget += 1;
            return false;
        }
        let Some(f) = self.feed_of(session) else {
            return false;
        };
        f.heard = Some(now);
        if f.start.is_some_and(|s| object.0 < f.next.max(s))
            || f.ready.contains_key(&object.0)
            || f.ended
        {
            self.stats.stale += 1;
            return false;
        }
        let len = data.len();
        f.held += len;
        f.ready.insert(object.0, data);
        if f.stuck_since.is_none() {
            f.stuck_since = Some(now);
        }
        self.held += len;
        self.deliver(session);
        true
    }

    /// An object of `session` failed for good (the receiver gave up on it).
    pub fn handle_failed(&mut self, session: SessionId, object: ObjectId) {
        if let Some(f) = self.feeds.get_mut(&session)
            && f.start.is_none_or(|s| object.0 >= s)
            && object.0 >= f.next
        {
            f.failed.insert(object.0);
            self.deliver(session);
        }
    }

    /// Refuses `session` for want of a slot, as the inbox itself would if it
    /// were handed an object of it: counted (`sessions_refused`), for an
    /// owner that checks [`Inbox::follows`] first.
    pub fn refuse(&mut self, session: SessionId) {
        if !self.feeds.contains_key(&session) {
            self.stats.sessions_refused += 1;
        }
    }

    /// Two objects were sent under `object`'s id of `session` (the receiver
    /// says so): a [`Delivery::Conflict`] goes out at once.
    pub fn handle_conflict(&mut self, session: SessionId, object: ObjectId) {
        self.stats.conflicts += 1;
        self.out.push_back(Delivery::Conflict {
            sender: session,
            object,
        });
    }

    /// Declares gaps where a later object has waited `gap_timeout` for an
    /// earlier one, and drops sessions whose start stayed unknown that long.
    /// Returns the sessions whose delivery moved past a gap, with the object
    /// it moved to (the receiver then skips what is before).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(SessionId, ObjectId)> {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
        let mut moved = Vec::new();
        let due: Vec<SessionId> = self
            .feeds
            .iter()
            .filter(|(_, f)| {
                f.stuck_since
                    .is_some_and(|s| now.saturating_duration_since(s) >= self.gap_timeout)
            })
            .map(|(s, _)| *s)
            .collect();
        for s in due {
            let f = self.feeds.get_mut(&s).expect("listed");
            if f.start.is_none() {
                // Nothing was confirmed of it (the receiver reports only to
                // sessions whose PROBE it heard): forgotten, not refused.
                self.stats.unstarted_expired += 1;
                self.drop_feed(s, false);
                continue;
            }
            let Some((&first, _)) = f.ready.iter().next() else {
                f.stuck_since = None;
                continue;
            };
            if first > f.next {
                f.jump(s, first, &mut self.out, &mut self.stats);
                moved.push((s, ObjectId(first)));
            }
            f.stuck_since = None;
            self.deliver(s);
        }
        moved
    }

    /// When [`Inbox::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.feeds
            .values()
            .filter_map(|f| f.stuck_since)
            .min()
            .map(|s| s + self.gap_timeout)
    }

    /// A session the inbox dropped (expired, or refused for want of a slot),
    /// for its owner to stop receiving: its objects will not be delivered,
    /// so they must not be confirmed either.
    pub fn poll_dropped(&mut self) -> Option<SessionId> {
        self.dropped.pop_front()
    }

    fn deliver(&mut self, session: SessionId) {
        let Some(f) = self.feeds.get_mut(&session) else {
            return;
        };
        if f.start.is_none() {
            return;
        }
        loop {
            if f.failed.remove(&f.next) {
                // Objects failed in a row make one gap.
                let from = f.next;
                let mut to = from.checked_add(1);
                while let Some(t) = to
                    && f.failed.remove(&t)
                {
                    to = t.checked_add(1);
                }
                f.seq_gap = true;
                f.stream_gap = true;
                self.stats.gaps += 1;
                self.out.push_back(Delivery::Gap {
                    sender: session,
                    from: ObjectId(from),
                    to: ObjectId(to.unwrap_or(u32::MAX)),
                });
                match to {
                    Some(to) => {
                        f.next = to;
                        continue;
                    }
                    // Object ids end at u32::MAX: nothing can follow.
                    None => {
                        f.next = u32::MAX;
                        f.ended = true;
                    }
                }
            }
            if f.ended {
                self.held -= f.held;
                f.held = 0;
                self.stats.stale += f.ready.len() as u64;
                f.ready.clear();
                break;
            }
            let Some(data) = f.ready.remove(&f.next) else {
                break;
            };
            f.held -= data.len();
            self.held -= data.len();
            let object = ObjectId(f.next);
            // The last object id there is ends the session whatever it holds.
            let last = f.next == u32::MAX;
            f.next = f.next.saturating_add(1);
            if !unframe(session, data, f, &mut self.out) {
                self.stats.malformed += 1;
                self.stats.gaps += 1;
                f.seq_gap = true;
                f.stream_gap = true;
                self.out.push_back(Delivery::Gap {
                    sender: session,
                    from: object,
                    to: ObjectId(f.next),
                });
            }
            if last {
                f.ended = true;
            }
        }
        f.stuck_since = if f.ready.is_empty() {
            None
        } else {
            f.stuck_since
        };
    }

    /// The next delivery, in order per session.
    pub fn poll(&mut self) -> Option<Delivery> {
        self.out.pop_front()
    }

    /// Deliveries waiting to be polled.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Bytes of completed objects held for order.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Bytes held for sessions whose start is known: what flow control
    /// holds the window for.
    pub fn held_started_bytes(&self) -> usize {
        self.held - self.held_unstarted_bytes()
    }

    /// Bytes held for sessions whose start is not known yet.
    pub fn held_unstarted_bytes(&self) -> usize {
        self.feeds
            .values()
            .filter(|f| f.start.is_none())
            .map(|f| f.held)
            .sum()
    }

    /// The next object `session` delivers, once its start is known.
    pub fn next_object(&self, session: SessionId) -> Option<ObjectId> {
        self.feeds
            .get(&session)
            .filter(|f| f.start.is_some())
            .map(|f| ObjectId(f.next))
    }

    /// Whether `session` has ended and delivered everything.
    pub fn is_ended(&self, session: SessionId) -> bool {
        self.feeds.get(&session).is_some_and(|f| f.ended)
    }

    /// Counters so far.
    pub fn stats(&self) -> &InboxStats {
        &self.stats
    }

    /// A session whose slot may go to a new one: ended with nothing held,
    /// or heard of last `publisher_idle` ago or more (the stalest).
    fn expirable(&self) -> Option<(SessionId, bool)> {
        if let Some((s, _)) = self
            .feeds
            .iter()
            .find(|(_, f)| f.ended && f.ready.is_empty())
        {
            return Some((*s, true));
        }
        let now = self.now?;
        self.feeds
            .iter()
            .filter(|(_, f)| {
                f.heard
                    .is_none_or(|h| now.saturating_duration_since(h) >= self.limits.publisher_idle)
            })
            .min_by_key(|(_, f)| f.heard)
            .map(|(s, _)| (*s, false))
    }

    /// `session`'s feed, made if there is room (an ended or idle session
    /// gives way; a refused one is reported by [`Inbox::poll_dropped`]).
    fn feed_of(&mut self, session: SessionId) -> Option<&mut Feed> {
        if self.ended.contains(&session) {
            self.stats.stale += 1;
            return None;
        }
        if !self.feeds.contains_key(&session) && self.feeds.len() >= self.max_sessions {
            match self.expirable() {
                Some((s, ended)) => {
                    if !ended {
                        self.stats.sessions_expired += 1;
                    }
                    self.drop_feed(s, !ended);
                }
                None => {
                    self.stats.sessions_refused += 1;
                    self.dropped.push_back(session);
                    return None;
                }
            }
        }
        let f = self.feeds.entry(session).or_default();
        if f.heard.is_none() {
            f.heard = self.now;
        }
        Some(f)
    }

    /// Forgets `session` and what it held; with `tell`, its owner hears of
    /// it ([`Inbox::poll_dropped`]).
    fn drop_feed(&mut self, session: SessionId, tell: bool) {
        if let Some(f) = self.feeds.remove(&session) {
            self.held -= f.held;
            if f.ended {
                if self.ended_order.len() >= ENDED_HISTORY
                    && let Some(old) = self.ended_order.pop_front()
                {
                    self.ended.remove(&old);
                }
                self.ended.insert(session);
                self.ended_order.push_back(session);
            }
            if tell {
                self.dropped.push_back(session);
            }
        }
    }
}

/// Ended sessions an [`Inbox`] remembers after they gave their slot up.
pub const ENDED_HISTORY: usize = 1024;

/// Unframes one object into `out`; false if it does not parse
/// ([`FrameRepr::parse`]), or does not follow the session's last message or
/// stream piece (nothing is then delivered of it). protocol.md §14.1.
fn unframe(session: SessionId, data: Vec<u8>, f: &mut Feed, out: &mut VecDeque<Delivery>) -> bool {
    match FrameRepr::parse(&data) {
        Ok(FrameRepr::Messages(batch)) => f.take_batch(session, batch, out),
        Ok(FrameRepr::Stream(piece)) => {
            let (offset, end) = (piece.offset(), piece.end());
            f.take_piece(session, offset, end, data, out)
        }
        Ok(FrameRepr::End {
            stream_len,
            messages,
        }) => f.take_end(session, stream_len, messages, out),
        Err(_) => false,
    }
}

impl Feed {
    /// Delivers a batch if it follows the last one delivered: its First is
    /// the sequence number after the last message (past a gap, that or
    /// later); the session's first batch may have any First.
    fn take_batch(
        &mut self,
        session: SessionId,
        batch: Batch<'_>,
        out: &mut VecDeque<Delivery>,
    ) -> bool {
        if let Some(s) = self.seq
            && (batch.first() < s || (!self.seq_gap && batch.first() != s))
        {
            return false;
        }
        for (seq, data) in batch.messages() {
            out.push_back(Delivery::Message(Message {
                sender: session,
                seq,
                data: data.to_vec(),
            }));
        }
        self.seq = Some(batch.after());
        self.seq_gap = false;
        true
    }

    /// Delivers the stream piece `frame` holds, from `offset` to `end`, if
    /// it starts where the last one delivered ended (past a gap, there or
    /// later); the session's first piece may have any Offset. The frame's
    /// bytes are handed out without a copy.
    fn take_piece(
        &mut self,
        session: SessionId,
        offset: u64,
        end: u64,
        mut frame: Vec<u8>,
        out: &mut VecDeque<Delivery>,
    ) -> bool {
        if let Some(at) = self.stream_at
            && (offset < at || (!self.stream_gap && offset != at))
        {
            return false;
        }
        frame.drain(..STREAM_HEADER);
        out.push_back(Delivery::Stream {
            sender: session,
            offset,
            data: frame,
        });
        self.stream_at = Some(end);
        self.stream_gap = false;
        true
    }

    /// Ends the session, unless the END says less than was delivered: a
    /// Stream length below where the last piece ended, or Messages below the
    /// sequence number after the last message.
    fn take_end(
        &mut self,
        session: SessionId,
        stream_len: u64,
        messages: u64,
        out: &mut VecDeque<Delivery>,
    ) -> bool {
        if self.stream_at.is_some_and(|at| stream_len < at)
            || self.seq.is_some_and(|s| messages < s)
        {
            return false;
        }
        self.ended = true;
        out.push_back(Delivery::End {
            sender: session,
            stream_len,
            messages,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(out: &mut Outbox) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| out.poll_object()).collect()
    }

    /// Messages batch under the flush delay and the batch size, a large one
    /// goes alone, and the inbox gives them back in order, exactly once,
    /// whatever order their objects complete in.
    #[test]
    fn messages_come_back_in_order_from_objects_in_any_order() {
        let t0 = Instant::now();
        let mut out = Outbox::new(Batching {
            batch_bytes: 100,
            ..Batching::default()
        });
        for i in 0..50u32 {
            assert_eq!(out.push_message(t0, &i.to_be_bytes()), Some(i as u64));
        }
        assert_eq!(out.push_message(t0, &[7u8; 500]), Some(50));
        assert!(objects(&mut out).len() >= 5, "batches of at most 100 bytes");
        out.push_message(t0, b"late");
        assert!(out.poll_object().is_none(), "waits for its flush delay");
        // It closes a tenth of the delay early, for the hand-offs after it.
        out.handle_timeout(t0 + Duration::from_micros(4499));
        assert!(out.poll_object().is_none(), "not yet");
        assert_eq!(out.poll_timeout(), Some(t0 + Duration::from_micros(4500)));
        out.handle_timeout(t0 + Duration::from_micros(4500));
        assert!(out.poll_object().is_some());
        // Alone after a quiet flush delay, a message goes at once; the next
        // one, soon after, waits to be batched.
        let t1 = t0 + Duration::from_millis(20);
        out.push_message(t1, b"alone");
        assert!(out.poll_object().is_some(), "nothing to wait for");
        out.push_message(t1 + Duration::from_millis(1), b"soon after");
        assert!(out.poll_object().is_none());
        out.end();
        let mut out2 = Outbox::new(Batching {
            batch_bytes: 100,
            ..Batching::default()
        });
        for i in 0..50u32 {
            out2.push_message(t0, &i.to_be_bytes());
        }
        out2.push_message(t0, &[7u8; 500]);
        out2.push_message(t0, b"late");
        out2.end();
        let all = objects(&mut out2);
        let s = SessionId(9);
        let mut inbox = Inbox::new(Duration::from_secs(1), 4);
        // Completed backwards; the start (the sender holds everything) is
        // known only after the last two.
        for (i, o) in all.iter().enumerate().rev() {
            inbox.handle_object(t0, s, ObjectId(i as u32), o.clone());
            if i == all.len() - 2 {
                assert!(inbox.poll().is_none(), "nothing before the start is known");
                inbox.start_at(s, ObjectId(0));
                assert!(inbox.pending() == 0, "object 0 is not there yet");
            }
            if i == 0 {
                assert!(inbox.pending() > 0, "all out once object 0 is");
            }
        }
        // A duplicate changes nothing.
        inbox.handle_object(t0, s, ObjectId(0), all[0].clone());
        let got: Vec<Delivery> = std::iter::from_fn(|| inbox.poll()).collect();
        let msgs: Vec<&Message> = got
            .iter()
            .filter_map(|d| match d {
                Delivery::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(msgs.len(), 52);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.seq, i as u64);
            assert_eq!(m.sender, s);
        }
        assert_eq!(msgs[3].data, 3u32.to_be_bytes());
        assert_eq!(msgs[50].data, vec![7u8; 500]);
        assert_eq!(msgs[51].data, b"late");
        assert!(matches!(
            got.last(),
            Some(Delivery::End { messages: 52, .. })
        ));
        assert_eq!(inbox.held_bytes(), 0);
        assert!(inbox.is_ended(s));
    }

    /// A stream's bytes come back whole and in order; a missing object
    /// becomes a gap after the timeout, and delivery goes on after it.
    #[test]
    fn a_stream_comes_back_whole_and_a_lost_object_is_a_gap() {
        let t0 = Instant::now();
        let mut out = Outbox::new(Batching {
            stream_bytes: 1000,
            ..Batching::default()
        });
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(out.push_stream(t0, &data), data.len());
        out.end();
        let all = objects(&mut out);
        assert!(all.len() >= 11);
        let s = SessionId(1);
        let mut inbox = Inbox::new(Duration::from_secs(1), 4);
        inbox.start_at(s, ObjectId(0));
        for (i, o) in all.iter().enumerate() {
            if i != 3 {
                inbox.handle_object(t0, s, ObjectId(i as u32), o.clone());
            }
        }
        let mut got = Vec::new();
        while let Some(d) = inbox.poll() {
            if let Delivery::Stream { offset, data, .. } = d {
                assert_eq!(offset as usize, got.len());
                got.extend(data);
            }
        }
        assert!(got.len() < data.len(), "object 3 holds it back");
        assert!(
            inbox
                .handle_timeout(t0 + Duration::from_millis(900))
                .is_empty()
        );
        let moved = inbox.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(moved, vec![(s, ObjectId(4))]);
        let rest: Vec<Delivery> = std::iter::from_fn(|| inbox.poll()).collect();
        assert!(matches!(
            rest[0],
            Delivery::Gap {
                from: ObjectId(3),
                to: ObjectId(4),
                ..
            }
        ));
        assert!(matches!(
            rest.last(),
            Some(Delivery::End {
                stream_len: 10_000,
                ..
            })
        ));
    }

    /// What the sender says it no longer holds is a gap at once; what this
    /// subscriber has of it still goes out first.
    #[test]
    fn what_the_sender_no_longer_holds_is_a_gap_at_once() {
        let t0 = Instant::now();
        let s = SessionId(3);
        let mut out = Outbox::new(Batching::default());
        let frames: Vec<Vec<u8>> = (0..6u8)
            .map(|i| {
                out.push_message(t0, &[i]);
                out.flush();
                out.poll_object().unwrap()
            })
            .collect();
        let mut inbox = Inbox::new(Duration::from_secs(60), 2);
        inbox.start_at(s, ObjectId(0));
        for i in [1usize, 3, 5] {
            inbox.handle_object(t0, s, ObjectId(i as u32), frames[i].clone());
        }
        assert!(inbox.poll().is_none(), "object 0 holds everything back");
        assert_eq!(inbox.sender_retains(s, ObjectId(0)), None);
        assert_eq!(inbox.sender_retains(s, ObjectId(4)), Some(ObjectId(3)));
        let got: Vec<Delivery> = std::iter::from_fn(|| inbox.poll()).collect();
        let seqs: Vec<String> = got
            .iter()
            .map(|d| match d {
                Delivery::Message(m) => format!("m{}", m.seq),
                Delivery::Gap { from, to, .. } => format!("gap{}-{}", from.0, to.0),
                _ => "?".into(),
            })
            .collect();
        // 4 is missing but the sender still holds it: it is waited for.
        assert_eq!(seqs, ["gap0-1", "m1", "gap2-3", "m3"]);
        assert_eq!(inbox.next_object(s), Some(ObjectId(4)));
    }

    /// A late start skips what came before it; malformed frames are counted
    /// and delivered as gaps, never as data; sessions beyond the limit are
    /// refused.
    #[test]
    fn late_starts_malformed_frames_and_too_many_sessions() {
        let t0 = Instant::now();
        let s = SessionId(5);
        let mut inbox = Inbox::new(Duration::from_secs(1), 2);
        let mut out = Outbox::new(Batching::default());
        let msgs: Vec<Vec<u8>> = (0..4u8)
            .map(|i| {
                out.push_message(t0, &[i]);
                out.flush();
                out.poll_object().unwrap()
            })
            .collect();
        inbox.handle_object(t0, s, ObjectId(1), msgs[1].clone());
        // The sender holds objects 1 on: delivery starts there.
        assert_eq!(inbox.start_at(s, ObjectId(1)), Some(ObjectId(1)));
        assert_eq!(
            inbox.start_at(s, ObjectId(0)),
            Some(ObjectId(1)),
            "decided once"
        );
        inbox.handle_object(t0, s, ObjectId(0), msgs[0].clone());
        let mut bad = msgs[2].clone();
        bad[10] = 0xff; // count far beyond the bytes
        inbox.handle_object(t0, s, ObjectId(2), bad);
        inbox.handle_object(t0, s, ObjectId(3), msgs[3].clone());
        let got: Vec<Delivery> = std::iter::from_fn(|| inbox.poll()).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(&got[0], Delivery::Message(m) if m.seq == 1));
        assert!(matches!(
            got[1],
            Delivery::Gap {
                from: ObjectId(2),
                ..
            }
        ));
        assert!(matches!(&got[2], Delivery::Message(m) if m.seq == 3));
        assert_eq!(inbox.stats().malformed, 1);
        assert_eq!(inbox.stats().stale, 1);
        for garbage in [
            vec![],
            vec![9u8],
            vec![FrameKind::End as u8, 1],
            vec![FrameKind::Messages as u8, 0],
        ] {
            let mut i = Inbox::new(Duration::from_secs(1), 2);
            i.start_at(s, ObjectId(0));
            i.handle_object(t0, s, ObjectId(0), garbage);
            assert!(matches!(i.poll(), Some(Delivery::Gap { .. })));
        }
        inbox.start_at(SessionId(6), ObjectId(0));
        inbox.start_at(SessionId(7), ObjectId(0));
        assert!(!inbox.follows(SessionId(7)));
        assert_eq!(inbox.stats().sessions_refused, 1);
    }
    fn frame_stream(offset: u64, data: &[u8]) -> Vec<u8> {
        let mut v = vec![FrameKind::Stream as u8];
        v.extend_from_slice(&offset.to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn frame_messages(first: u64, msgs: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![FrameKind::Messages as u8];
        v.extend_from_slice(&first.to_be_bytes());
        v.extend_from_slice(&(msgs.len() as u32).to_be_bytes());
        for m in msgs {
            v.extend_from_slice(&(m.len() as u32).to_be_bytes());
            v.extend_from_slice(m);
        }
        v
    }

    fn drain(inbox: &mut Inbox) -> Vec<String> {
        std::iter::from_fn(|| inbox.poll())
            .map(|d| match d {
                Delivery::Message(m) => format!("m{}", m.seq),
                Delivery::Stream { offset, data, .. } => format!("s{offset}+{}", data.len()),
                Delivery::Gap { from, to, .. } => format!("gap{}-{}", from.0, to.0),
                Delivery::Conflict { object, .. } => format!("conflict{}", object.0),
                Delivery::End { .. } => "end".into(),
            })
            .collect()
    }

    /// A piece of stream must start where the last ended, and a batch's
    /// first sequence number follow the last batch's: one that does not is
    /// a gap, never data. Past a gap they may start later, never earlier.
    /// Counts that overflow, and the last object id there is, are taken
    /// without arithmetic that wraps or panics.
    #[test]
    fn frames_out_of_turn_are_gaps_and_no_field_overflows() {
        let t0 = Instant::now();
        let s = SessionId(1);
        let mut inbox = Inbox::new(Duration::from_secs(1), 4);
        inbox.start_at(s, ObjectId(0));
        inbox.handle_object(t0, s, ObjectId(0), frame_stream(0, b"abc"));
        // A forger's piece that skips ahead, then one that rewinds.
        inbox.handle_object(t0, s, ObjectId(1), frame_stream(100, b"xyz"));
        inbox.handle_object(t0, s, ObjectId(2), frame_stream(3, b"de"));
        assert_eq!(drain(&mut inbox), ["s0+3", "gap1-2", "s3+2"]);
        // Past the gap of object 3, a later offset is taken, an earlier not.
        inbox.handle_failed(s, ObjectId(3));
        inbox.handle_object(t0, s, ObjectId(4), frame_stream(9, b"f"));
        inbox.handle_object(t0, s, ObjectId(5), frame_stream(2, b"g"));
        inbox.handle_object(t0, s, ObjectId(6), frame_stream(u64::MAX, b"h"));
        assert_eq!(drain(&mut inbox), ["gap3-4", "s9+1", "gap5-6", "gap6-7"]);
        assert_eq!(inbox.stats().malformed, 3);

        let m = SessionId(2);
        inbox.start_at(m, ObjectId(0));
        inbox.handle_object(t0, m, ObjectId(0), frame_messages(0, &[b"a", b"b"]));
        inbox.handle_object(t0, m, ObjectId(1), frame_messages(5, &[b"c"]));
        inbox.handle_object(t0, m, ObjectId(2), frame_messages(2, &[b"d"]));
        let mut huge = frame_messages(u64::MAX, &[b"e"]);
        inbox.handle_object(t0, m, ObjectId(3), huge.clone());
        huge[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
        inbox.handle_object(t0, m, ObjectId(4), huge);
        assert_eq!(
            drain(&mut inbox),
            ["m0", "m1", "gap1-2", "m2", "gap3-4", "gap4-5"]
        );

        // The last object id there is ends its session.
        let e = SessionId(3);
        inbox.start_at(e, ObjectId(u32::MAX));
        inbox.handle_object(t0, e, ObjectId(u32::MAX), frame_messages(0, &[b"z"]));
        assert_eq!(drain(&mut inbox), ["m0"]);
        assert!(inbox.is_ended(e));
        let f = SessionId(4);
        inbox.start_at(f, ObjectId(u32::MAX));
        inbox.handle_failed(f, ObjectId(u32::MAX));
        assert_eq!(drain(&mut inbox), [format!("gap{}-{}", u32::MAX, u32::MAX)]);
        assert!(inbox.is_ended(f));
        assert_eq!(inbox.held_bytes(), 0);
    }

    /// Objects of a session whose start is unknown (no PROBE: anyone may
    /// claim it) are held within their own share, hold no real publisher's
    /// window, and go with their session if no start comes within the gap
    /// timeout; beyond `max_held` in all, nothing more is taken.
    #[test]
    fn what_waits_for_a_start_is_bounded_apart_and_expires() {
        let t0 = Instant::now();
        let mut inbox = Inbox::new(Duration::from_secs(1), 8).with_limits(InboxLimits {
            max_held: 1000,
            max_unstarted: 300,
            ..InboxLimits::default()
        });
        let forged = SessionId(66);
        for i in 0..10u32 {
            inbox.handle_object(t0, forged, ObjectId(i + 1), frame_messages(0, &[&[0; 90]]));
        }
        assert!(inbox.held_unstarted_bytes() <= 300);
        assert_eq!(inbox.held_started_bytes(), 0, "holds no window");
        assert_eq!(inbox.stats().over_budget, 8);
        let real = SessionId(1);
        inbox.start_at(real, ObjectId(0));
        for i in 1..9u32 {
            inbox.handle_object(t0, real, ObjectId(i), frame_messages(0, &[&[0; 90]]));
        }
        assert!(inbox.held_bytes() <= 1000);
        assert_eq!(inbox.held_started_bytes(), 7 * 107, "object 0 holds them");
        assert_eq!(inbox.stats().over_budget, 9);
        let moved = inbox.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(moved, vec![(real, ObjectId(1))]);
        assert!(!inbox.knows(forged), "no start within the gap timeout");
        assert_eq!(inbox.stats().unstarted_expired, 1);
        assert_eq!(inbox.poll_dropped(), None, "forgotten, not refused");
        assert_eq!(inbox.held_bytes(), 0);
    }

    /// With every slot taken, a new session is refused and reported, until
    /// one has been idle for `publisher_idle`: that one gives way, and is
    /// reported (its owner stops confirming it).
    #[test]
    fn full_slots_refuse_and_say_so_and_idle_ones_expire() {
        let t0 = Instant::now();
        let mut inbox = Inbox::new(Duration::from_secs(1), 2).with_limits(InboxLimits {
            publisher_idle: Duration::from_secs(60),
            ..InboxLimits::default()
        });
        let obj = frame_messages(0, &[b"x"]);
        for s in [1, 2] {
            inbox.start_at(SessionId(s), ObjectId(0));
            inbox.handle_object(t0, SessionId(s), ObjectId(0), obj.clone());
        }
        let t1 = t0 + Duration::from_secs(30);
        inbox.handle_object(t1, SessionId(2), ObjectId(1), frame_messages(1, &[b"y"]));
        assert!(!inbox.follows(SessionId(3)));
        assert!(!inbox.handle_object(t1, SessionId(3), ObjectId(0), obj.clone()));
        assert_eq!(inbox.poll_dropped(), Some(SessionId(3)));
        assert_eq!(inbox.stats().sessions_refused, 1);
        // Session 1 was last heard at t0: at t0 + 60 s it gives way.
        let t2 = t0 + Duration::from_secs(60);
        assert!(inbox.handle_object(t2, SessionId(3), ObjectId(0), obj));
        assert_eq!(inbox.poll_dropped(), Some(SessionId(1)));
        assert!(inbox.knows(SessionId(2)) && !inbox.knows(SessionId(1)));
        assert_eq!(inbox.stats().sessions_expired, 1);
    }
}
