//! Messages and streams for applications: [`Publisher`], [`Subscriber`] and
//! [`Endpoint`], blocking handles over the sans-IO core.
//!
//! **What a subscriber can be made to accept** (until channels are signed;
//! docs/security.md says it claim by claim). Anyone on the group can send
//! under any session id, the publisher's included (it is on the wire).
//! - Unpinned, a subscriber takes every publisher's messages: a forger's
//!   made-up session is delivered like any other. A stream reader takes the
//!   first stream it hears from its first byte, and fails at the end if
//!   another session sent a stream too; a forged stream heard whole before
//!   any other is taken.
//! - Pinned ([`SubscriberBuilder::publisher`]), only that session is taken;
//!   a forger who sends under its id can still complete ids the publisher
//!   has not sent yet. When the publisher's own object under such an id
//!   comes, the subscriber reports a conflict ([`Event::Conflict`]) and never
//!   confirms the session; a forged end heard before the publisher's objects
//!   come can end a stream early.
//! - Pinned or not, no packet can make a subscriber hold more than its
//!   limits ([`SubscriberBuilder::max_pending`]), panic, confirm what it
//!   did not deliver, or reply to a session that sent it no data.
//!
//! A publisher's session is a sequence of objects, each a frame of the
//! [`crate::proto::feed`] format (protocol.md §14): a batch of messages, a
//! piece of a byte stream, or the end. Each handle runs one driver thread
//! that owns its socket and its [`Sender`] or [`Receiver`]; the handle
//! talks to it through a lock and a wake-up, as quinn's endpoint drivers do.
//!
//! ```no_run
//! use groupcast::io::pubsub::{Publisher, Subscriber};
//!
//! # fn main() -> Result<(), groupcast::io::IoError> {
//! let publisher = Publisher::builder("news", "eth0").rate_bits(100_000_000).open()?;
//! publisher.send(b"hello, group")?;
//! publisher.close()?; // returns once every receiver heard from has it all
//!
//! let subscriber = Subscriber::builder("news", "eth0").open()?;
//! let message = subscriber.recv()?;
//! println!("{:016x} #{}: {:?}", message.sender.0, message.seq, message.data);
//! # Ok(())
//! # }
//! ```
//!
//! What is guaranteed (protocol.md §14.3): per publisher, messages and stream
//! bytes arrive in order and exactly once, each verified (BLAKE3) before it
//! is handed out; what a subscriber could not get (it fell behind what the
//! publisher retains, or joined after it) is reported as a gap, never
//! skipped silently; the end of a publisher's session is reported. A
//! subscriber that joins late starts at the object the publisher is sending
//! when the subscriber first hears it.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{IoError, McastSocket, NetConfig, SendTick};
use crate::Channel;

#[cfg(feature = "tokio")]
pub mod tokio;
use crate::proto::feed::{Batching, Delivery, Inbox, Outbox};
pub use crate::proto::feed::{InboxLimits, InboxStats, Message};
use crate::proto::{
    FailReason, FeedbackConfig, FlowPolicy, Mode, ObjectId, Reassembler, Receiver, ReceiverConfig,
    ReceiverEvent, ReceiverStats, Sender, SenderConfig, SenderStats, SessionId,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A publisher's pacing rate unless told otherwise, in bits per second of
/// UDP payload: `groupcast send`'s default `--rate` too.
pub const DEFAULT_RATE_BITS: u64 = 100_000_000;

/// Settings of a [`Publisher`]. Start from [`Publisher::builder`].
#[derive(Debug, Clone)]
pub struct PublisherBuilder {
    net: NetConfig,
    config: SenderConfig,
    batching: Batching,
    window: usize,
    retain_bytes: usize,
    retain_time: Duration,
    close_timeout: Duration,
    expect: u64,
}

impl PublisherBuilder {
    /// Receivers that must confirm the whole session for
    /// [`PublisherReport::confirmed`] (default 1). 0 says that nobody may be
    /// listening: a close that heard nobody is then confirmed.
    pub fn expect_receivers(mut self, n: u64) -> Self {
        self.expect = n;
        self
    }

    /// Recovery mode: [`Mode::Hybrid`] (the default) or [`Mode::Nack`].
    /// Carousel mode has no acknowledgements to bound memory by, and is
    /// refused by [`PublisherBuilder::open`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self.config.repair_overhead = mode.default_repair_overhead();
        self
    }

    /// Pacing rate in bits per second (of UDP payload). Default
    /// [`DEFAULT_RATE_BITS`] (100 Mbit/s), as `groupcast send`'s `--rate`.
    pub fn rate_bits(mut self, bits_per_s: u64) -> Self {
        self.config.rate = Some((bits_per_s / 8).max(1));
        self
    }

    /// Sends unpaced: as fast as the receivers' windows let it (`--rate
    /// max`). Only for a path whose capacity the loss it causes is known
    /// to fit: an unpaced sender fills every queue on the way.
    pub fn unpaced(mut self) -> Self {
        self.config.rate = None;
        self
    }

    /// Whose window paces the publisher: the slowest receiver
    /// ([`FlowPolicy::Min`], the default), the fastest, or a quorum.
    pub fn policy(mut self, policy: FlowPolicy) -> Self {
        self.config.feedback.policy = policy;
        self
    }

    /// Longest a message waits for others to share its object, hand-offs
    /// included: a batch closes a tenth of it early
    /// ([`crate::proto::feed::FLUSH_LEAD`]), so that its first message
    /// reaches a subscriber within this delay and the path. Default 5 ms.
    pub fn flush_delay(mut self, delay: Duration) -> Self {
        self.batching.flush_delay = delay;
        self
    }

    /// Bytes sent and not yet acknowledged by every receiver that counts
    /// before `send` and `write` block (backpressure). Default 16 MiB. Memory
    /// is bounded by this and the retention.
    pub fn window(mut self, bytes: usize) -> Self {
        self.window = bytes.max(1);
        self
    }

    /// What the publisher keeps after every receiver acknowledged it, for
    /// receivers that ask late: at most `bytes`, and nothing older than
    /// `time`. With no receiver heard at all, an object is kept `time`
    /// after its first pass. Default 1 MiB and 250 ms: a subscriber that was
    /// there from the start but lost the first PROBEs, and so is not yet
    /// tracked when the others acknowledge the first objects, still finds
    /// them held when it hears the next PROBE (with 0 bytes it started past
    /// them, and missed their messages).
    pub fn retain(mut self, bytes: usize, time: Duration) -> Self {
        self.retain_bytes = bytes;
        self.retain_time = time;
        self
    }

    /// The hop limit multicast leaves with (default 8: up to 7 multicast
    /// routers; 1 keeps it on this link).
    pub fn hops(mut self, hops: u8) -> Self {
        self.net.hops = hops.max(1) as u32;
        self.config.hops = hops.max(1);
        self
    }

    /// UDP port (default 4242).
    pub fn port(mut self, port: u16) -> Self {
        self.net.channel = self.net.channel.with_port(port);
        self
    }

    /// The session id (default: random).
    pub fn session(mut self, session: SessionId) -> Self {
        self.config.session = session;
        self
    }

    /// Longest [`Publisher::close`] waits for the receivers to confirm the end.
    /// Default 60 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Whether this host's own subscribers hear the publisher (default
    /// true; an [`Endpoint`] ignores its own session either way).
    pub fn multicast_loop(mut self, on: bool) -> Self {
        self.net.multicast_loop = on;
        self
    }

    /// Sets what the builder does not name in the socket settings:
    /// `.net_config(|n| n.gso = false)`.
    pub fn net_config(mut self, f: impl FnOnce(&mut NetConfig)) -> Self {
        f(&mut self.net);
        self
    }

    /// Signs everything published with `key` (protocol.md §15): subscribers
    /// given its public key ([`SubscriberBuilder::sender_key`]) take nothing
    /// else. Make one with [`keys::generate`](super::keys::generate).
    pub fn signing_key(mut self, key: crate::proto::auth::SigningKey) -> Self {
        self.config.signing_key = Some(key);
        self
    }

    /// Encrypts the channel under `key` (protocol.md §16): every datagram
    /// but AUTH is sealed, and subscribers' feedback is taken only sealed
    /// under it. Subscribers need the same key
    /// ([`SubscriberBuilder::channel_key`]).
    pub fn channel_key(mut self, key: crate::proto::auth::ChannelKey) -> Self {
        self.config.channel_key = Some(key);
        self
    }

    /// Sets what the builder does not name in the sender settings.
    pub fn sender_config(mut self, f: impl FnOnce(&mut SenderConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Opens the socket and starts the driver thread.
    pub fn open(self) -> Result<Publisher, IoError> {
        let (mut sender, mut sock, session, window, retention) = self.prepare()?;
        let shared = Arc::new(PubShared {
            state: Mutex::new(PubState::new(self.batching, self.expect)),
            cond: Condvar::new(),
            wake: Mutex::new(None),
            abort: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("groupcast-pub".into())
            .spawn(move || {
                let r = drive_publisher(&mut sender, &mut sock, &s, retention);
                let mut st = lock(&s.state);
                st.stats = sender.stats().clone();
                st.done = true;
                if let Err(e) = &r {
                    st.error = Some(e.clone());
                }
                s.cond.notify_all();
                r
            })
            .map_err(|e| IoError::Socket {
                context: "starting the publisher's thread".into(),
                source: e,
            })?;
        // The driver hands over its wake-up before it sends anything.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&shared.wake).is_none() && !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Publisher {
            shared,
            thread: Some(thread),
            session,
            window,
        })
    }

    /// The sender (open), its socket, and the settings a driver needs.
    fn prepare(&self) -> Result<(Sender, McastSocket, SessionId, usize, Retention), IoError> {
        if !self.config.mode.has_feedback() {
            return Err(IoError::Invalid(
                "a publisher needs a mode with feedback (hybrid or nack): in carousel mode \
                 nothing says when the receivers have an object, so memory cannot be bounded"
                    .into(),
            ));
        }
        let mut config = self.config.clone();
        super::decode::fit_blocks_to_codec(&mut config);
        super::starting_sender(&mut config);
        let mut sender = Sender::new(config)?;
        sender.set_open(true);
        let mut net = self.net.clone();
        net.feedback = true;
        let sock = McastSocket::sender(&net)?;
        let retention = Retention {
            bytes: self.retain_bytes,
            time: self.retain_time,
            close_timeout: self.close_timeout,
        };
        Ok((sender, sock, self.config.session, self.window, retention))
    }
}

/// Least time an object sent while no receiver was heard is kept, for
/// receivers whose first STATUS is still on its way.
const UNHEARD_RETENTION: Duration = Duration::from_secs(2);

struct Retention {
    bytes: usize,
    time: Duration,
    close_timeout: Duration,
}

struct PubState {
    outbox: Outbox,
    /// Bytes added to the sender and not retired, with what the outbox holds.
    unacked: usize,
    closing: bool,
    done: bool,
    error: Option<IoError>,
    stats: SenderStats,
    /// Whether the sender finished: every receiver it tracks complete or
    /// stalled (not the close timeout).
    finished: bool,
    /// Receivers that must confirm the whole session for `close` to say
    /// it was confirmed.
    expect: u64,
}

impl PubState {
    fn new(batching: Batching, expect: u64) -> Self {
        Self {
            outbox: Outbox::new(batching),
            unacked: 0,
            closing: false,
            done: false,
            error: None,
            stats: SenderStats::default(),
            finished: false,
            expect,
        }
    }

    /// Whether the application may still send, or why not.
    fn check(&self) -> Result<(), IoError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.done || self.outbox.is_ended() {
            return Err(IoError::Closed("the publisher"));
        }
        Ok(())
    }

    /// Runs `f` on the outbox, counting what it framed as unacknowledged.
    fn push<R>(&mut self, f: impl FnOnce(&mut Outbox, Instant) -> R) -> R {
        let before = self.outbox.pending_bytes();
        let r = f(&mut self.outbox, Instant::now());
        self.unacked += self.outbox.pending_bytes().saturating_sub(before);
        r
    }

    /// Ends the feed: what is batched goes out, then the end.
    fn close(&mut self) {
        // The END frame counts like any other until it is retired.
        self.push(|o, _| o.end());
        self.closing = true;
    }

    /// What `close` reports, once the driver is done. The session is
    /// confirmed only if the sender finished, at least `expect` receivers
    /// confirmed every object, and none it heard from was left behind:
    /// timed out, stalled unfinished, or refused a place in its table.
    fn report(&self) -> PublisherReport {
        let s = &self.stats;
        // Receivers count once per /64, as `min_receivers` does: ids from
        // one host's /64 are not several receivers.
        let confirmers = s
            .receivers_tracked
            .saturating_sub(s.receivers_left_stalled)
            .min(s.receiver_prefixes_heard);
        let left = s.receivers_timed_out + s.receivers_left_stalled + s.receivers_left_refused;
        PublisherReport {
            stats: s.clone(),
            confirmed: self.error.is_none()
                && self.finished
                && left == 0
                && confirmers >= self.expect,
            receivers_confirmed: if self.finished { confirmers } else { 0 },
            messages: self.outbox.messages(),
            stream_len: self.outbox.stream_len(),
        }
    }
}

struct PubShared {
    state: Mutex<PubState>,
    cond: Condvar,
    wake: Mutex<Option<super::decode::Wake>>,
    abort: AtomicBool,
}

impl PubShared {
    fn wake(&self) {
        if let Some(w) = lock(&self.wake).as_ref() {
            w();
        }
    }
}

/// An object in the sender, not retired: its id, its bytes, and since when
/// it is acknowledged by every receiver tracked (true) or was sent with
/// nobody tracked (false).
type Live = (ObjectId, usize, Option<(Instant, bool)>);

/// Whether the front live object `o` may be retired at `now`, with `kept`
/// bytes of acknowledged objects held: one every tracked receiver has
/// acknowledged, after the retention (bytes or time); one sent while nobody
/// was tracked, after `UNHEARD_RETENTION` at least, and not while a receiver
/// tracked since (`confirmed`: the first object not acknowledged by every
/// tracked receiver) lacks it. (Such an object was retired 2 s after its first
/// pass even when a receiver heard later still lacked it, which then met a
/// gap.)
fn retire_due(
    o: &Live,
    now: Instant,
    kept: usize,
    retention: &Retention,
    confirmed: Option<ObjectId>,
) -> bool {
    let Some((at, by_all)) = o.2 else {
        return false;
    };
    let age = now.saturating_duration_since(at);
    if by_all {
        kept > retention.bytes || age >= retention.time
    } else {
        age >= retention.time.max(UNHEARD_RETENTION) && confirmed.is_none_or(|a| o.0 < a)
    }
}

/// What a publisher's driver keeps between turns of its loop.
#[derive(Default)]
struct PubTurns {
    live: VecDeque<Live>,
    closed_at: Option<Instant>,
}

/// What one turn decided.
struct Turn {
    /// Stop the loop: the close timeout passed.
    stop: bool,
    /// Room was made in the window: writers waiting may go on.
    freed: bool,
    /// When the outbox next wants a turn.
    wait: Duration,
}

impl PubTurns {
    /// One turn of a publisher's driver, blocking or async alike: moves the
    /// frames cut so far into the sender, retires what the receivers
    /// acknowledged (after its retention), and closes the sender once the
    /// outbox has ended.
    fn turn(
        &mut self,
        sender: &mut Sender,
        st: &mut PubState,
        retention: &Retention,
        now: Instant,
    ) -> Result<Turn, IoError> {
        st.stats = sender.stats().clone();
        st.finished = sender.is_finished();
        st.outbox.handle_timeout(now);
        while let Some(obj) = st.outbox.poll_object() {
            let len = obj.len();
            let id = sender.add_object(obj, "")?;
            self.live.push_back((id, len, None));
        }
        let freed = self.retire(sender, st, retention, now);
        let stop = self.close(sender, st, retention, now);
        Ok(Turn {
            stop,
            freed,
            wait: flush_wait(st, now),
        })
    }

    /// Retires, front first, the live objects due at `now` (see
    /// [`retire_due`]); whether any was.
    fn retire(
        &mut self,
        sender: &mut Sender,
        st: &mut PubState,
        retention: &Retention,
        now: Instant,
    ) -> bool {
        // What every receiver that counts has may go, after its retention.
        // With nobody who counts (none heard yet, or every one stalled), what
        // the first pass sent waits at least UNHEARD_RETENTION for receivers
        // whose first STATUS is on its way.
        let confirmed = sender.acknowledged();
        let acked =
            confirmed.or_else(|| sender.nobody_counts().then(|| sender.first_pass_progress()));
        if let Some(acked) = acked {
            for o in self.live.iter_mut().take_while(|o| o.0 < acked) {
                if o.2.is_none() {
                    o.2 = Some((now, confirmed.is_some()));
                }
            }
        }
        let mut kept: usize = self
            .live
            .iter()
            .filter(|o| o.2.is_some())
            .map(|o| o.1)
            .sum();
        let mut retire = None;
        while let Some(o) = self.live.front() {
            if !retire_due(o, now, kept, retention, confirmed) {
                break;
            }
            let (id, len) = (o.0, o.1);
            kept -= len;
            self.live.pop_front();
            debug_assert!(st.unacked >= len, "what is retired was counted");
            st.unacked = st.unacked.saturating_sub(len);
            retire = Some(ObjectId(id.0 + 1));
        }
        if let Some(upto) = retire {
            sender.retire_before(upto);
        }
        retire.is_some()
    }

    /// Once the outbox has ended and flushed, closes the sender; whether
    /// the close timeout has passed since.
    fn close(
        &mut self,
        sender: &mut Sender,
        st: &PubState,
        retention: &Retention,
        now: Instant,
    ) -> bool {
        if !(st.closing && st.outbox.is_ended() && st.outbox.poll_timeout().is_none()) {
            return false;
        }
        if self.closed_at.is_none() {
            self.closed_at = Some(now);
            sender.set_open(false);
        }
        self.closed_at
            .is_some_and(|c| now.saturating_duration_since(c) >= retention.close_timeout)
    }
}

/// When the outbox next wants a turn, at most [`TURN`] from `now`. A flush
/// deadline in whole milliseconds, rounded down: the loop's epoll rounds its
/// timeout up, and would cut the batch late; the rest, under a millisecond,
/// it sleeps.
fn flush_wait(st: &PubState, now: Instant) -> Duration {
    st.outbox
        .poll_timeout()
        .map_or(TURN, |t| {
            let w = t.saturating_duration_since(now);
            if w >= Duration::from_millis(1) {
                Duration::from_millis(w.as_millis() as u64)
            } else {
                w
            }
        })
        .min(TURN)
}

/// Longest a driver goes without a turn.
const TURN: Duration = Duration::from_millis(20);

/// The publisher's driver: its loop, with a turn of [`PubTurns`] each time
/// round.
fn drive_publisher(
    sender: &mut Sender,
    sock: &mut McastSocket,
    shared: &PubShared,
    retention: Retention,
) -> Result<(), IoError> {
    let mut turns = PubTurns::default();
    let mut error: Option<IoError> = None;
    let mut tick = |sender: &mut Sender| {
        let mut st = lock(&shared.state);
        match turns.turn(sender, &mut st, &retention, Instant::now()) {
            Ok(t) => {
                if t.freed {
                    shared.cond.notify_all();
                }
                SendTick {
                    stop: t.stop || shared.abort.load(Ordering::Relaxed),
                    wait: Some(t.wait),
                }
            }
            Err(e) => {
                error = Some(e);
                SendTick {
                    stop: true,
                    wait: None,
                }
            }
        }
    };
    let mut none = |req: crate::proto::BlockRequest, _: Vec<u8>| {
        Err(IoError::Invalid(format!(
            "the publisher was asked for block {} of object {}, which it holds whole",
            req.sbn, req.object.0
        )))
    };
    super::run_sender_with(
        sender,
        sock,
        &mut none,
        |_| {},
        |w| *lock(&shared.wake) = Some(w),
        &mut tick,
    )?;
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Sends messages, or a byte stream, to everyone on a channel. See the
/// module documentation.
pub struct Publisher {
    shared: Arc<PubShared>,
    thread: Option<JoinHandle<Result<(), IoError>>>,
    session: SessionId,
    window: usize,
}

/// What [`Publisher::close`] reports.
#[derive(Debug, Clone)]
pub struct PublisherReport {
    /// The sender's counters at the end.
    pub stats: SenderStats,
    /// Whether the whole session was confirmed: at least the receivers
    /// expected ([`PublisherBuilder::expect_receivers`], default 1) confirmed
    /// every object, and no receiver heard from was left behind (timed out,
    /// stalled, refused a place in the sender's table, or the close timeout
    /// passed first). A publisher that heard nobody is not confirmed unless
    /// it expected nobody.
    pub confirmed: bool,
    /// Receivers that confirmed every object (0 if the close timeout passed
    /// first).
    pub receivers_confirmed: u64,
    /// Messages sent.
    pub messages: u64,
    /// Stream bytes sent.
    pub stream_len: u64,
}

impl Publisher {
    /// A builder for `channel` on `interface`, with defaults that work out
    /// of the box and match `groupcast send`'s: hybrid mode, 100 Mbit/s
    /// within the receivers' windows, a 16 MiB window, messages flushed
    /// after 5 ms.
    pub fn builder(channel: &str, interface: &str) -> PublisherBuilder {
        let net = NetConfig::new(Channel::new(channel), interface);
        let config = SenderConfig {
            session: SessionId(super::random_id()),
            mode: Mode::Hybrid,
            repair_overhead: Mode::Hybrid.default_repair_overhead(),
            encoder_threads: 1,
            feedback: FeedbackConfig::default(),
            copy_single_symbol_objects: true,
            rate: Some(DEFAULT_RATE_BITS / 8),
            ..SenderConfig::default()
        };
        PublisherBuilder {
            net,
            config,
            batching: Batching::default(),
            window: 16 << 20,
            retain_bytes: 1 << 20,
            retain_time: Duration::from_millis(250),
            close_timeout: Duration::from_secs(60),
            expect: 1,
        }
    }

    /// This publisher's session: what subscribers see as a message's sender.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Waits for room in the window; then runs `f` on the outbox.
    fn with_room<R>(
        &self,
        len: usize,
        f: impl FnOnce(&mut Outbox, Instant) -> R,
    ) -> Result<R, IoError> {
        let mut st = lock(&self.shared.state);
        loop {
            st.check()?;
            // One item at least always fits: a message larger than the window
            // waits for an empty window.
            if st.unacked == 0 || st.unacked + len <= self.window {
                break;
            }
            st = self
                .shared
                .cond
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let r = st.push(f);
        drop(st);
        self.shared.wake();
        Ok(r)
    }

    /// Sends one message (any size up to 4 GiB); returns its sequence
    /// number. Blocks while the window is full. Small messages share objects
    /// (batched for at most the flush delay); call [`Publisher::flush`] to
    /// send what is batched at once.
    pub fn send(&self, msg: &[u8]) -> Result<u64, IoError> {
        self.with_room(msg.len() + 4, |o, now| o.push_message(now, msg))?
            .ok_or_else(|| IoError::Invalid("a message of 4 GiB or more cannot be sent".into()))
    }

    /// Appends bytes to this publisher's stream. Blocks while the window is
    /// full. See [`PublisherStream`] for `std::io::Write`.
    pub fn write_stream(&self, bytes: &[u8]) -> Result<usize, IoError> {
        // At most a window's worth at once, so that the wait is for room.
        let n = bytes.len().min(self.window.max(1));
        self.with_room(n, |o, now| o.push_stream(now, &bytes[..n]))
    }

    /// Sends what is batched now, without waiting for the flush delay.
    pub fn flush(&self) {
        lock(&self.shared.state).outbox.flush();
        self.shared.wake();
    }

    /// The sender's counters so far.
    pub fn stats(&self) -> SenderStats {
        lock(&self.shared.state).stats.clone()
    }

    /// Ends the session: what is batched goes out, then the end, and this
    /// returns once every receiver heard from has confirmed all of it (or
    /// the close timeout passed: `confirmed` is then false).
    pub fn close(mut self) -> Result<PublisherReport, IoError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<PublisherReport, IoError> {
        lock(&self.shared.state).close();
        self.shared.wake();
        let result = match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(IoError::Invalid("the publisher's thread panicked".into()))
            }),
            None => Ok(()),
        };
        result?;
        Ok(lock(&self.shared.state).report())
    }

    /// This publisher as a `std::io::Write` stream.
    pub fn into_stream(self) -> PublisherStream {
        PublisherStream {
            publisher: Some(self),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Dropped without close: stop at once.
            self.shared.abort.store(true, Ordering::Relaxed);
            self.shared.wake();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A [`Publisher`]'s byte stream as `std::io::Write`: `write` blocks when the
/// window is full, `flush` sends what is buffered, and
/// [`PublisherStream::close`] marks the end and waits for the receivers.
pub struct PublisherStream {
    publisher: Option<Publisher>,
}

impl PublisherStream {
    /// Ends the stream; see [`Publisher::close`].
    pub fn close(mut self) -> Result<PublisherReport, IoError> {
        self.publisher.take().expect("present until closed").close()
    }

    /// The publisher's counters so far.
    pub fn stats(&self) -> SenderStats {
        self.publisher
            .as_ref()
            .map(Publisher::stats)
            .unwrap_or_default()
    }

    /// The publisher's session.
    pub fn session(&self) -> SessionId {
        self.publisher
            .as_ref()
            .map_or(SessionId(0), Publisher::session)
    }
}

impl Write for PublisherStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let p = self
            .publisher
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the stream is closed"))?;
        p.write_stream(buf).map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(p) = &self.publisher {
            p.flush();
        }
        Ok(())
    }
}

/// Settings of a [`Subscriber`]. Start from [`Subscriber::builder`].
#[derive(Debug, Clone)]
pub struct SubscriberBuilder {
    net: NetConfig,
    config: ReceiverConfig,
    queue: usize,
    gap_timeout: Duration,
    max_publishers: usize,
    limits: InboxLimits,
    late_join: bool,
}

impl SubscriberBuilder {
    /// Pins one publisher: only its session is received (the others' packets
    /// are refused as `foreign_session` and draw no feedback), and a stream
    /// reader ([`Subscriber::into_stream`]) reads its stream. Without a pin
    /// every publisher is received, and a stream reader follows the first
    /// whose stream it hears from the start. A session id is no secret (it
    /// is on the wire): a pin keeps other publishers out, not a forger who
    /// sends under the pinned id (docs/security.md).
    pub fn publisher(mut self, session: SessionId) -> Self {
        self.config.session = Some(session);
        self
    }

    /// Lets a stream reader take a stream first heard past its start (it
    /// began before this subscriber joined), from where it is. Default off:
    /// such a stream is passed over (unpinned) or an error (pinned).
    pub fn late_join(mut self, on: bool) -> Self {
        self.late_join = on;
        self
    }

    /// Accept only this sender's packets (a source-specific join).
    pub fn source(mut self, source: Ipv6Addr) -> Self {
        self.net.source = Some(source);
        self
    }

    /// UDP port (default 4242).
    pub fn port(mut self, port: u16) -> Self {
        self.net.channel = self.net.channel.with_port(port);
        self
    }

    /// Bytes delivered and not yet taken by the application before the
    /// subscriber holds its window, so that the publisher waits (receiver-
    /// paced flow control). Default 8 MiB.
    pub fn queue(mut self, bytes: usize) -> Self {
        self.queue = bytes.max(1);
        self
    }

    /// How long a later object waits for a missing earlier one, or an
    /// unfinished object hears nothing more of itself, before the missing
    /// one is reported as a gap. Default 10 s.
    pub fn gap_timeout(mut self, timeout: Duration) -> Self {
        self.gap_timeout = timeout;
        self.config.idle_timeout = timeout;
        self
    }

    /// Publishers followed at once (default 16). A publisher heard of last
    /// 60 s ago or more gives its slot to a new one; with every slot taken by
    /// publishers heard more recently, a new one is refused: the subscriber
    /// logs it, counts it (`sessions_refused`) and sends it no feedback, so
    /// that it never reports what it refused as received.
    pub fn max_publishers(mut self, n: usize) -> Self {
        self.max_publishers = n.max(1);
        self
    }

    /// Bytes the subscriber holds of objects not yet delivered, over every
    /// publisher: blocks decoded but not yet verified, and verified objects
    /// waiting for an earlier one (default 64 MiB; protocol.md §14.3).
    /// Publishers whose start is not known yet (no PROBE heard) share an
    /// eighth of it. An object that would pass the bound is given up (a
    /// gap), never confirmed to its publisher. Raise it with the
    /// publishers' window: an honest publisher stays within one window plus
    /// [`SubscriberBuilder::queue`].
    pub fn max_pending(mut self, bytes: usize) -> Self {
        let bytes = bytes.max(1);
        self.limits.max_held = bytes;
        self.limits.max_unstarted = (bytes / 8).max(1);
        self
    }

    /// Ignore these sessions (an [`Endpoint`] ignores its own).
    pub fn ignore(mut self, session: SessionId) -> Self {
        self.config.refused_sessions.push(session);
        self
    }

    /// Sets what the builder does not name in the socket settings:
    /// `.net_config(|n| n.feedback_hops = 4)`.
    pub fn net_config(mut self, f: impl FnOnce(&mut NetConfig)) -> Self {
        f(&mut self.net);
        self
    }

    /// Takes only what the publisher holding this key's secret signed
    /// (protocol.md §15). Called again, adds a key: any of them is taken
    /// (a publisher rotating its key, docs/security.md); the first
    /// [`MAX_KEYS`](crate::proto::auth::MAX_KEYS) count.
    pub fn sender_key(mut self, key: crate::proto::auth::VerifyingKey) -> Self {
        self.config.sender_keys.push(key);
        self
    }

    /// The channel key of an encrypted channel (protocol.md §16): only
    /// what is sealed under it is taken, and feedback goes out sealed.
    /// Called again, adds a key, as [`SubscriberBuilder::sender_key`].
    pub fn channel_key(mut self, key: crate::proto::auth::ChannelKey) -> Self {
        self.config.channel_keys.push(key);
        self
    }

    /// Sets what the builder does not name in the receiver settings.
    pub fn receiver_config(mut self, f: impl FnOnce(&mut ReceiverConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Joins the channel and starts the driver thread.
    pub fn open(self) -> Result<Subscriber, IoError> {
        let (mut sock, config, queue, core) = self.prepare()?;
        let shared = Arc::new(SubShared {
            state: Mutex::new(SubState::default()),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("groupcast-sub".into())
            .spawn(move || {
                let r = drive_subscriber(&mut sock, config, &s, queue, core);
                let mut st = lock(&s.state);
                st.done = true;
                if let Err(e) = &r {
                    st.error = Some(e.clone());
                }
                s.cond.notify_all();
                r
            })
            .map_err(|e| IoError::Socket {
                context: "starting the subscriber's thread".into(),
                source: e,
            })?;
        Ok(Subscriber {
            shared,
            thread: Some(thread),
            stream: self.stream_state(),
        })
    }

    /// Where a stream reader of this subscriber starts.
    fn stream_state(&self) -> StreamState {
        StreamState::new(self.config.session, self.late_join)
    }

    /// The joined socket and what a driver needs.
    fn prepare(&self) -> Result<(McastSocket, ReceiverConfig, usize, SubCore), IoError> {
        let mut net = self.net.clone();
        net.feedback = true;
        let sock = McastSocket::receiver(&net)?;
        Ok((
            sock,
            self.config.clone(),
            self.queue,
            SubCore::new(self.gap_timeout, self.max_publishers, self.limits),
        ))
    }
}

#[derive(Default)]
struct SubState {
    /// The receiver's and the inbox's counters, as of the driver's last turn.
    stats: (ReceiverStats, InboxStats),
    queue: VecDeque<Delivery>,
    /// Bytes of the deliveries queued.
    queued: usize,
    done: bool,
    error: Option<IoError>,
}

struct SubShared {
    state: Mutex<SubState>,
    cond: Condvar,
    stop: AtomicBool,
}

fn delivery_len(d: &Delivery) -> usize {
    match d {
        Delivery::Message(m) => m.data.len(),
        Delivery::Stream { data, .. } => data.len(),
        _ => 0,
    }
}

/// What a subscriber's driver keeps, blocking or async alike: objects
/// being put back together, the inbox, and the sessions heard of.
struct SubCore {
    objects: Reassembler,
    inbox: Inbox,
    /// Sessions heard of whose start is not decided yet.
    waiting: HashSet<SessionId>,
    seen: HashSet<SessionId>,
    max_publishers: usize,
}

impl SubCore {
    fn new(gap_timeout: Duration, max_publishers: usize, limits: InboxLimits) -> Self {
        Self {
            objects: Reassembler::new(),
            inbox: Inbox::new(gap_timeout, max_publishers).with_limits(limits),
            waiting: HashSet::new(),
            seen: HashSet::new(),
            max_publishers,
        }
    }

    /// One event of the receiver. A block that would take what the
    /// subscriber holds past its limits gives its object up: the receiver
    /// drops it and never confirms it, and the inbox delivers a gap.
    fn event(&mut self, rx: &mut Receiver, e: ReceiverEvent, now: Instant) {
        let session = match &e {
            ReceiverEvent::ObjectAnnounced { session, .. }
            | ReceiverEvent::BlockDecoded { session, .. }
            | ReceiverEvent::ObjectComplete { session, .. }
            | ReceiverEvent::ObjectFailed { session, .. } => *session,
        };
        if !self.inbox.follows(session) {
            self.inbox.refuse(session);
            rx.refuse_session(session);
            self.refused(session);
            return;
        }
        if self.seen.insert(session) {
            self.waiting.insert(session);
        }
        // A session whose PROBE was heard starts before its first block is
        // weighed: the share of sessions not started is for the others.
        if self.waiting.contains(&session) && self.start(rx, session) {
            self.waiting.remove(&session);
        }
        if let ReceiverEvent::ObjectFailed {
            object,
            reason: FailReason::Conflict,
            ..
        } = &e
        {
            self.inbox.handle_conflict(session, *object);
            return;
        }
        if let ReceiverEvent::ObjectFailed { object, .. } = &e {
            self.inbox.handle_failed(session, *object);
            // Delivery went on past it: the receiver asks for none of it.
            if let Some(next) = self.inbox.next_object(session)
                && next > *object
            {
                rx.skip_lost(session, next);
            }
        }
        if let ReceiverEvent::BlockDecoded { object, data, .. } = &e {
            let pending_unstarted = self.waiting.iter().map(|s| self.objects.held_of(*s)).sum();
            if !self.inbox.room_for(
                session,
                data.len(),
                self.objects.held_bytes(),
                pending_unstarted,
            ) {
                self.objects.drop_object(session, *object);
                rx.abandon(session, *object);
                return;
            }
        }
        if let Some(done) = self.objects.handle(e) {
            self.inbox
                .handle_object(now, done.session, done.object, done.data);
        }
    }

    /// Decides where `session`'s delivery starts, once a PROBE of it was
    /// heard; whether it did.
    fn start(&mut self, rx: &mut Receiver, session: SessionId) -> bool {
        let Some(p) = rx.sender_progress(session) else {
            return false;
        };
        match self.inbox.start_at(session, p.retained) {
            // What the publisher no longer holds is lost to this subscriber:
            // its receiver never reports the session complete.
            Some(start) if start.0 > 0 => rx.skip_lost(session, start),
            Some(start) => rx.skip_before(session, start),
            None => {}
        }
        true
    }

    /// Refuses, at the receiver, every session the inbox dropped.
    fn refuse_dropped(&mut self, rx: &mut Receiver) {
        while let Some(s) = self.inbox.poll_dropped() {
            rx.refuse_session(s);
            self.refused(s);
        }
    }

    /// Forgets a refused session, and says so once.
    fn refused(&mut self, session: SessionId) {
        self.seen.remove(&session);
        self.waiting.remove(&session);
        let n = self.inbox.stats().sessions_refused + self.inbox.stats().sessions_expired;
        if n.is_power_of_two() {
            tracing::warn!(
                session = %format_args!("{:016x}", session.0),
                refused = n,
                "a publisher was dropped: every slot is taken (max_publishers); nothing of it \
                 is delivered or confirmed"
            );
        }
    }

    /// A turn of the driver: starts, gaps, and flow control while the
    /// application has `queued` bytes it has not taken (more than `queue`:
    /// hold every session's window). Returns when it wants the next turn.
    fn tick(&mut self, rx: &mut Receiver, now: Instant, queued: usize, queue: usize) -> Duration {
        self.refuse_dropped(rx);
        let waiting: Vec<SessionId> = self.waiting.iter().copied().collect();
        for s in waiting {
            if self.start(rx, s) {
                self.waiting.remove(&s);
            }
        }
        let inbox = &mut self.inbox;
        // What the senders no longer hold cannot come: a gap at once.
        for &s in &self.seen {
            if let Some(p) = rx.sender_progress(s)
                && let Some(to) = inbox.sender_retains(s, p.retained)
            {
                rx.skip_lost(s, to);
            }
        }
        for (s, to) in inbox.handle_timeout(now) {
            rx.skip_lost(s, to);
        }
        self.refuse_dropped(rx);
        let inbox = &mut self.inbox;
        // Sessions the inbox gave up (ended, to make room for others) are
        // forgotten once they are many, so that a long-lived subscriber's
        // set stays bounded.
        if self.seen.len() > 2 * self.max_publishers {
            self.seen.retain(|s| inbox.knows(*s));
            self.waiting.retain(|s| inbox.knows(*s));
        }
        // What waits for a session not yet started is bounded apart
        // (`InboxLimits::max_unstarted`): it holds no real publisher back.
        let full = queued + inbox.held_started_bytes() > queue;
        for &s in &self.seen {
            let at = if full {
                inbox.next_object(s).map(|o| (o, 0))
            } else {
                None
            };
            rx.hold_window(s, at);
        }
        let mut wait = TURN;
        if let Some(t) = inbox.poll_timeout() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        wait
    }

    /// Moves what the inbox has handed out into `st`'s queue; whether there
    /// was any.
    fn hand_out(&mut self, st: &mut SubState) -> bool {
        if self.inbox.pending() == 0 {
            return false;
        }
        while let Some(d) = self.inbox.poll() {
            st.queued += delivery_len(&d);
            st.queue.push_back(d);
        }
        true
    }
}

/// The blocking subscriber's side of its receive driver: events go through
/// its [`SubCore`], and each delivery to the application's queue at once.
struct SubApp<'a> {
    core: SubCore,
    shared: &'a SubShared,
    /// Bytes queued for the application beyond which every window is held.
    queue: usize,
}

impl SubApp<'_> {
    /// Moves what the inbox has handed out into the application's queue,
    /// and wakes its readers.
    fn hand_out(&mut self) {
        if self.core.inbox.pending() > 0 {
            self.core.hand_out(&mut lock(&self.shared.state));
            self.shared.cond.notify_all();
        }
    }
}

impl super::RecvApp for SubApp<'_> {
    fn event(
        &mut self,
        rx: &mut Receiver,
        e: ReceiverEvent,
        _now: Instant,
    ) -> Result<std::ops::ControlFlow<()>, IoError> {
        self.core.event(rx, e, Instant::now());
        self.hand_out();
        Ok(std::ops::ControlFlow::Continue(()))
    }

    fn tick(&mut self, rx: &mut Receiver, _now: Instant) -> Option<Duration> {
        let queued = {
            let mut st = lock(&self.shared.state);
            st.stats = (rx.stats().clone(), self.core.inbox.stats().clone());
            st.queued
        };
        let wait = self.core.tick(rx, Instant::now(), queued, self.queue);
        self.hand_out();
        Some(wait)
    }

    fn stop(&mut self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }
}

fn drive_subscriber(
    sock: &mut McastSocket,
    mut config: ReceiverConfig,
    shared: &SubShared,
    queue: usize,
    core: SubCore,
) -> Result<(), IoError> {
    super::starting_receiver(&mut config);
    let mut receiver = Receiver::new(config);
    let mut app = SubApp {
        core,
        shared,
        queue,
    };
    super::run_receiver_app(&mut receiver, sock, None, &mut app)?;
    Ok(())
}

/// Where a stream reader is in the stream it follows, blocking or async
/// alike. Pinned ([`SubscriberBuilder::publisher`]), it follows that
/// publisher; unpinned, the first publisher whose stream it hears from its
/// first byte (a publisher first heard further on is passed over, and
/// counted), unless a late join was asked for
/// ([`SubscriberBuilder::late_join`]). Once it follows a publisher, each
/// piece must start where the last ended.
#[derive(Debug, Default)]
struct StreamState {
    from: Option<SessionId>,
    /// Whether `from` was pinned, not chosen.
    pinned: bool,
    late_join: bool,
    /// Publishers passed over: their stream began before this reader heard
    /// it.
    passed: HashSet<SessionId>,
    /// Sessions whose first objects this reader heard and lost (a gap from
    /// object 0): a stream of theirs heard past its start lost its start,
    /// and is an error, not a stream to pass over.
    lost_start: HashSet<SessionId>,
    /// Another session that sent stream bytes or an end, unpinned: which
    /// stream is the right one cannot be told, and the end is an error.
    contender: Option<SessionId>,
    buf: Vec<u8>,
    at: usize,
    ended: bool,
    /// When the end was taken: it is reported once [`END_SETTLE`] passed
    /// with no conflict or contender.
    end_at: Option<Instant>,
    expect: u64,
}

/// How long a stream reader holds an end before it reports it: the time for
/// the publisher's own PROBEs or objects to contradict an end a forger
/// completed first under its session id (protocol.md §14.3), which makes the
/// read an error instead.
pub const END_SETTLE: Duration = Duration::from_millis(500);

impl StreamState {
    fn new(pin: Option<SessionId>, late_join: bool) -> Self {
        Self {
            from: pin,
            pinned: pin.is_some(),
            late_join,
            ..Self::default()
        }
    }

    /// Copies what is buffered into `out`: `Some(n)` if there was something
    /// to say (`Some(0)` at the end of the stream), `None` if an event is
    /// needed first.
    fn copy_out(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.at == self.buf.len() {
            return (out.is_empty() || self.settled(Instant::now())).then_some(0);
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Some(n)
    }

    /// Whether the end was taken and has settled.
    fn settled(&self, now: Instant) -> bool {
        self.ended && self.end_at.is_none_or(|t| now >= t + END_SETTLE)
    }

    /// How long the end still settles, if it was taken and has not.
    fn settle_left(&self, now: Instant) -> Option<Duration> {
        let t = self.end_at.filter(|_| self.ended)?;
        let left = (t + END_SETTLE).saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    /// Whether `sender`'s stream, first heard at byte `offset`, is the one
    /// to follow: an error if it is the pinned one and began before this
    /// reader joined (no late join asked for).
    fn follow(&mut self, sender: SessionId, offset: u64) -> std::io::Result<bool> {
        if self.from.is_some_and(|f| f != sender) || self.passed.contains(&sender) {
            if !self.pinned {
                self.contender.get_or_insert(sender);
            }
            return Ok(false);
        }
        if self.expect == 0 && self.buf.is_empty() && offset != 0 && !self.late_join {
            if self.lost_start.contains(&sender) {
                return Err(std::io::Error::other(format!(
                    "the start of the stream of session {sender} was lost: {}",
                    fell_behind()
                )));
            }
            if self.pinned {
                return Err(std::io::Error::other(format!(
                    "the stream of session {:016x} was first heard at byte {offset}: it began \
                     before this subscriber joined (ask for a late join to take it from there)",
                    sender.0
                )));
            }
            if self.passed.len() < 1024 {
                self.passed.insert(sender);
            }
            self.contender.get_or_insert(sender);
            tracing::warn!(
                session = %format_args!("{:016x}", sender.0),
                offset,
                "a stream first heard past its start is passed over; pin a publisher, or ask \
                 for a late join, to take it"
            );
            return Ok(false);
        }
        self.from = Some(sender);
        Ok(true)
    }

    /// Takes one event: stream bytes of the publisher followed, a gap in
    /// it (an error), or its end; others are ignored. While the end settles,
    /// a conflict or a contender is still an error.
    fn take(&mut self, e: Event) -> std::io::Result<()> {
        self.take_one(e)?;
        if self.ended
            && let Some(other) = self.contender
        {
            self.ended = false;
            return Err(std::io::Error::other(format!(
                "session {:016x} also sent a stream on this channel: which is the publisher's \
                 cannot be told without a pin (recv --stream --from, \
                 SubscriberBuilder::publisher)",
                other.0
            )));
        }
        Ok(())
    }

    fn take_one(&mut self, e: Event) -> std::io::Result<()> {
        match e {
            Event::Stream {
                sender,
                offset,
                data,
            } => {
                if !self.follow(sender, offset)? {
                    return Ok(());
                }
                let first = self.expect == 0 && self.buf.is_empty();
                if offset != self.expect && !first {
                    return Err(std::io::Error::other(format!(
                        "the stream jumped from byte {} to {offset}",
                        self.expect
                    )));
                }
                self.expect = offset.saturating_add(data.len() as u64);
                self.buf = data;
                self.at = 0;
            }
            Event::Conflict { sender, object } if self.from == Some(sender) => {
                self.ended = false;
                return Err(std::io::Error::other(format!(
                    "session {:016x} sent two different objects under id {}: a forger is \
                     injecting into the stream, and what was read cannot be trusted",
                    sender.0, object.0
                )));
            }
            Event::Gap { sender, from, to } if self.from == Some(sender) => {
                return Err(std::io::Error::other(format!(
                    "part of the stream was lost (objects {}..{} of sender {sender}): {}",
                    from.0,
                    to.0,
                    fell_behind()
                )));
            }
            Event::Gap { sender, from, .. } if from.0 == 0 && self.lost_start.len() < 1024 => {
                self.lost_start.insert(sender);
            }
            // A publisher of messages alone: no stream of its own.
            Event::End {
                sender,
                stream_len: 0,
                messages,
            } if messages > 0 && self.from != Some(sender) => {}
            Event::End {
                sender, stream_len, ..
            } => {
                // An end heard first is an empty stream's, or of one whose
                // every byte went by before this reader joined.
                if !self.follow(sender, stream_len)? {
                    return Ok(());
                }
                if stream_len != self.expect {
                    return Err(std::io::Error::other(format!(
                        "the stream ended at byte {stream_len}, after {} were read",
                        self.expect
                    )));
                }
                self.ended = true;
                self.end_at = Some(Instant::now());
            }
            _ => {}
        }
        Ok(())
    }
}

/// Why a subscriber loses what it was there for, as an error says it: with
/// the advice for this build's codec if it was found slow
/// ([`crate::io::decode::check_codec_speed`]).
fn fell_behind() -> String {
    let why = "the publisher no longer retains it: most often the subscriber fell behind (a \
               publisher goes on without a receiver that progresses slower than its \
               min_progress, `send --min-progress`, or that it has not heard from for its \
               receiver_timeout: protocol.md §13.4), or another host sent PROBEs under that \
               session";
    match crate::io::decode::slow_codec() {
        Some(hint) => format!("{why}. {hint}"),
        None => why.to_owned(),
    }
}

/// What a [`Subscriber`] hands out, in order per publisher: a message,
/// the next bytes of its stream, a gap (objects `from..to` could not be
/// received: the subscriber fell behind what the publisher retains, or
/// joined after they were sent; delivery goes on after them), or the end
/// of its session. The inbox's deliveries, as they are.
pub use crate::proto::feed::Delivery as Event;

/// Why [`Subscriber::recv`] returned no message.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Messages of `sender` were lost (see [`Event::Gap`]); the next call
    /// goes on after them.
    #[error("messages of sender {sender} were lost (objects {}..{})", from.0, to.0)]
    Gap {
        /// The publisher's session.
        sender: SessionId,
        /// The first object lost.
        from: ObjectId,
        /// The first object after the gap.
        to: ObjectId,
    },
    /// `sender` sent two different objects under one id (see
    /// [`Event::Conflict`]): one of them is forged, and its messages can no
    /// longer be trusted; the next call goes on.
    #[error("sender {sender} sent two different objects under id {}: one is forged", object.0)]
    Conflict {
        /// The publisher's session.
        sender: SessionId,
        /// The object id sent twice.
        object: ObjectId,
    },
    /// Nothing came within the time asked ([`Subscriber::recv_timeout`]).
    #[error("no message within the time asked")]
    TimedOut,
    /// The subscriber's driver stopped: on this error, or (`None`) because
    /// the subscriber was dropped.
    #[error("the subscriber stopped{}", .0.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Stopped(#[source] Option<Box<IoError>>),
}

/// A stopped subscriber's error is the driver's own; the others keep their
/// structure under [`IoError::Recv`].
impl From<RecvError> for IoError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Stopped(Some(cause)) => *cause,
            RecvError::Stopped(None) => IoError::Closed("the subscriber"),
            e => IoError::Recv(e),
        }
    }
}

/// Receives messages and streams from everyone publishing on a channel.
/// See the module documentation.
pub struct Subscriber {
    shared: Arc<SubShared>,
    thread: Option<JoinHandle<Result<(), IoError>>>,
    stream: StreamState,
}

impl Subscriber {
    /// A builder for `channel` on `interface`, with defaults that work out
    /// of the box.
    pub fn builder(channel: &str, interface: &str) -> SubscriberBuilder {
        let net = NetConfig::new(Channel::new(channel), interface);
        let config = ReceiverConfig {
            id: super::random_id(),
            // A window of 1 MiB objects in flight, from a few publishers.
            max_objects: 64,
            max_buffered_bytes: 64 << 20,
            decode_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            idle_timeout: Duration::from_secs(10),
            // Feedback state for every publisher slot, and as many more for
            // sessions heard of only by PROBE (which give way to those with
            // objects in flight).
            max_sessions: 32,
            ..ReceiverConfig::default()
        };
        SubscriberBuilder {
            net,
            config,
            queue: 8 << 20,
            gap_timeout: Duration::from_secs(10),
            max_publishers: 16,
            limits: InboxLimits::default(),
            late_join: false,
        }
    }

    /// The receiver's counters (packets, symbols, objects, refusals) and the
    /// inbox's (gaps, malformed or stale objects), as of the driver's last
    /// turn (at most about 20 ms ago).
    pub fn stats(&self) -> (ReceiverStats, InboxStats) {
        lock(&self.shared.state).stats.clone()
    }

    /// The next event: a message, stream bytes, a gap, a conflict or the end
    /// of a publisher's session. Waits for it.
    pub fn next_event(&self) -> Result<Event, RecvError> {
        self.event_within(None)
    }

    /// [`Subscriber::next_event`], waiting at most `timeout`
    /// ([`RecvError::TimedOut`]).
    pub fn next_event_timeout(&self, timeout: Duration) -> Result<Event, RecvError> {
        self.event_within(Some(timeout))
    }

    fn event_within(&self, timeout: Option<Duration>) -> Result<Event, RecvError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = lock(&self.shared.state);
        loop {
            if let Some(d) = st.queue.pop_front() {
                st.queued -= delivery_len(&d);
                return Ok(d);
            }
            if st.done {
                return Err(RecvError::Stopped(st.error.clone().map(Box::new)));
            }
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(w) if !w.is_zero() => w,
                    _ => return Err(RecvError::TimedOut),
                },
                None => Duration::from_millis(200),
            };
            st = self
                .shared
                .cond
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The next message, in order per publisher; waits for it. A gap or a
    /// conflict is an error (the next call goes on after it); stream bytes
    /// and the ends of sessions are skipped (see [`Subscriber::next_event`],
    /// or iterate with [`Subscriber::messages`], which ends with the
    /// publishers).
    pub fn recv(&self) -> Result<Message, RecvError> {
        self.recv_within(None)
    }

    /// [`Subscriber::recv`], waiting at most `timeout`
    /// ([`RecvError::TimedOut`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message, RecvError> {
        self.recv_within(Some(timeout))
    }

    fn recv_within(&self, timeout: Option<Duration>) -> Result<Message, RecvError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if let Some(item) = UntilEnd::item(self.event_within(left)?) {
                return item;
            }
        }
    }

    /// The messages, in order per publisher, until the publishers end: an
    /// iterator that waits for each. A gap or a conflict is an `Err` item and
    /// the iteration goes on; it ends once every publisher it delivered
    /// anything of has ended (pin one with [`SubscriberBuilder::publisher`]
    /// to wait for that one), or after the error the subscriber stopped on.
    /// The end of a session it delivered nothing of ends nothing; an
    /// unpinned iterator that a forger's session delivered to waits for that
    /// session's end too (docs/security.md).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), groupcast::IoError> {
    /// let subscriber = groupcast::Subscriber::builder("news", "eth0").open()?;
    /// for message in &subscriber {
    ///     let message = message?;
    ///     println!("{} #{}: {} bytes", message.sender, message.seq, message.data.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn messages(&self) -> Messages<'_> {
        Messages {
            subscriber: self,
            until: UntilEnd::default(),
        }
    }

    /// This subscriber as a `std::io::Read` of one publisher's stream: the
    /// pinned one ([`SubscriberBuilder::publisher`]), or else the first
    /// heard from its first byte ([`SubscriberBuilder::late_join`] takes one
    /// heard further on). `read` returns 0 at the end of that stream; a gap,
    /// a piece that does not follow the last, or an end that does not match
    /// what was read is an error.
    pub fn into_stream(mut self) -> SubscriberStream {
        SubscriberStream {
            state: std::mem::take(&mut self.stream),
            subscriber: self,
            timeout: None,
        }
    }
}

impl<'a> IntoIterator for &'a Subscriber {
    type Item = Result<Message, RecvError>;
    type IntoIter = Messages<'a>;

    fn into_iter(self) -> Messages<'a> {
        self.messages()
    }
}

/// A [`Subscriber`]'s messages until its publishers end: see
/// [`Subscriber::messages`].
pub struct Messages<'a> {
    subscriber: &'a Subscriber,
    until: UntilEnd,
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.until.ended {
            match self.subscriber.next_event() {
                Ok(e) => {
                    if let Some(item) = self.until.step(e) {
                        return Some(item);
                    }
                }
                Err(e) => {
                    self.until.ended = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl std::iter::FusedIterator for Messages<'_> {}

/// The rule that ends a subscriber's message iterator (blocking and async):
/// messages, gaps and conflicts are items; it ends once every publisher it
/// delivered anything of has ended.
#[derive(Debug, Default)]
pub(crate) struct UntilEnd {
    open: HashSet<SessionId>,
    pub(crate) ended: bool,
}

impl UntilEnd {
    /// What `e` hands out as an item of a message iterator, if anything.
    fn item(e: Event) -> Option<Result<Message, RecvError>> {
        match e {
            Event::Message(m) => Some(Ok(m)),
            Event::Gap { sender, from, to } => Some(Err(RecvError::Gap { sender, from, to })),
            Event::Conflict { sender, object } => Some(Err(RecvError::Conflict { sender, object })),
            _ => None,
        }
    }

    /// [`UntilEnd::item`], noting who is open and who ended.
    pub(crate) fn step(&mut self, e: Event) -> Option<Result<Message, RecvError>> {
        // The end of a session it delivered nothing of ends nothing: it may
        // be a publisher heard only as it closed, or a forger's.
        if let Event::End { sender, .. } = &e {
            if self.open.remove(sender) {
                self.ended = self.open.is_empty();
            }
        } else {
            self.open.insert(e.sender());
        }
        Self::item(e)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A [`Subscriber`] reading one publisher's stream (`std::io::Read`).
pub struct SubscriberStream {
    subscriber: Subscriber,
    state: StreamState,
    timeout: Option<Duration>,
}

impl SubscriberStream {
    /// Like `TcpStream::set_read_timeout`: a `read` that gets nothing for
    /// this long fails with `ErrorKind::TimedOut` (and may be called again).
    /// `None` (the default) waits for ever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The receiver's and the inbox's counters; see [`Subscriber::stats`].
    pub fn stats(&self) -> (ReceiverStats, InboxStats) {
        self.subscriber.stats()
    }

    /// The publisher whose stream this reads, once heard.
    pub fn sender(&self) -> Option<SessionId> {
        self.state.from
    }
}

impl Read for SubscriberStream {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(n) = self.state.copy_out(out) {
                return Ok(n);
            }
            // An end that settles waits no longer than it has left.
            let settle = self.state.settle_left(Instant::now());
            let wait = match (settle, self.timeout) {
                (Some(s), Some(t)) => Some(s.min(t)),
                (s, t) => s.or(t),
            };
            match self.subscriber.event_within(wait) {
                Ok(e) => self.state.take(e)?,
                Err(RecvError::TimedOut) if self.state.settled(Instant::now()) => {}
                Err(RecvError::TimedOut) if settle.is_some_and(|s| wait == Some(s)) => {}
                Err(RecvError::TimedOut) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "nothing of the stream arrived within the read timeout",
                    ));
                }
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
    }
}

/// A publisher and a subscriber on one channel, for groups where everyone
/// speaks (chat): what it sends goes to everyone else, and it hears everyone
/// else, not itself.
pub struct Endpoint {
    publisher: Publisher,
    subscriber: Subscriber,
}

impl Endpoint {
    /// Opens both on `channel` and `interface`, with the defaults.
    pub fn open(channel: &str, interface: &str) -> Result<Self, IoError> {
        Self::open_with(
            Publisher::builder(channel, interface),
            Subscriber::builder(channel, interface),
        )
    }

    /// Opens both from builders for the same channel.
    pub fn open_with(
        publisher: PublisherBuilder,
        subscriber: SubscriberBuilder,
    ) -> Result<Self, IoError> {
        let publisher = publisher.open()?;
        let subscriber = subscriber.ignore(publisher.session()).open()?;
        Ok(Self {
            publisher,
            subscriber,
        })
    }

    /// Sends a message to everyone else; see [`Publisher::send`].
    pub fn send(&self, msg: &[u8]) -> Result<u64, IoError> {
        self.publisher.send(msg)
    }

    /// The next message from anyone else; see [`Subscriber::recv`].
    pub fn recv(&self) -> Result<Message, RecvError> {
        self.subscriber.recv()
    }

    /// The publishing half.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The subscribing half.
    pub fn subscriber(&self) -> &Subscriber {
        &self.subscriber
    }

    /// Closes the publishing half (see [`Publisher::close`]) and leaves.
    pub fn close(self) -> Result<PublisherReport, IoError> {
        let Self {
            publisher,
            subscriber,
        } = self;
        drop(subscriber);
        publisher.close()
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Live, PubState, PubTurns, Retention, StreamState, SubCore, UNHEARD_RETENTION, retire_due,
    };
    use crate::proto::feed::{Batching, InboxLimits};
    use crate::wire::{DataRepr, ProbeRepr, Repr, StatusRepr, WireMode};
    use crate::{
        FecId, FeedbackConfig, Mode, ObjectId, Receiver, ReceiverConfig, RejectReason, Sender,
        SenderConfig, SessionId,
    };
    use groupcast_fec::Oti;
    use std::time::{Duration, Instant};

    /// The DATA of the last block of object `object` of `session`, which
    /// claims `size` bytes: zeros, every source symbol, no code.
    fn last_block(session: u64, object: u32, size: u64) -> Vec<Vec<u8>> {
        let oti = Oti::for_object(size, 1024, 1000, 4).unwrap();
        let sbn = oti.source_blocks() - 1;
        let k = oti.block(sbn).unwrap().source_symbols;
        let symbol = vec![0u8; 1024];
        (0..k)
            .map(|esi| {
                let repr = Repr::Data(DataRepr {
                    session,
                    object,
                    fec: FecId::NoCode,
                    oti,
                    sbn: sbn as u8,
                    esi,
                    symbol: &symbol,
                });
                let mut buf = vec![0; repr.buffer_len()];
                repr.emit(&mut buf).unwrap();
                buf
            })
            .collect()
    }

    fn forged_probe(session: u64) -> Vec<u8> {
        let p = ProbeRepr {
            session,
            timestamp_us: 1000,
            sent: 0,
            grtt_us: 10_000,
            objects: 1,
            progress: (0, 0),
            mode: WireMode::Hybrid,
            flags: 0,
            group_log2: 0,
            hops: 1,
            retained: 0,
            ask: Default::default(),
        };
        let mut b = vec![0; crate::wire::feedback::PROBE_LEN];
        let n = p.write(&mut b).unwrap();
        b.truncate(n);
        b
    }

    /// A forger's objects that claim 1 GiB each cost a subscriber the blocks
    /// that came, never the size claimed, and within its limits: a session
    /// not started (no PROBE) gets the smaller share, and an object whose
    /// block would pass the bound is given up, its later packets refused,
    /// never confirmed.
    #[test]
    fn objects_that_claim_gigabytes_cost_what_came_within_the_limits() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(ReceiverConfig::default());
        let limits = InboxLimits {
            max_held: 16 << 20,
            max_unstarted: 2 << 20,
            ..InboxLimits::default()
        };
        let mut core = SubCore::new(Duration::from_secs(10), 16, limits);
        let feed = |rx: &mut Receiver, core: &mut SubCore, d: &[u8]| {
            let _ = rx.handle_datagram(t0, d);
            while let Some(e) = rx.poll_event() {
                core.event(rx, e, t0);
            }
        };
        // Unstarted: the last block (4 MiB) of a 1 GiB object is over its share.
        let block = last_block(7, 0, 1 << 30);
        let bytes = block.len() * 1024;
        assert!(bytes > 4 << 20, "blocks of 4 MiB and more");
        for d in &block {
            feed(&mut rx, &mut core, d);
        }
        assert_eq!(core.objects.held_bytes(), 0);
        assert_eq!(core.inbox.stats().over_budget, 1);
        feed(&mut rx, &mut core, &block[0]);
        assert_eq!(rx.stats().rejected(RejectReason::Abandoned), 1);
        // Started: three such blocks are held (over 12 MiB); the fourth and
        // fifth objects are given up.
        feed(&mut rx, &mut core, &forged_probe(8));
        for object in 1..=5 {
            for d in last_block(8, object, 1 << 30) {
                feed(&mut rx, &mut core, &d);
            }
        }
        assert_eq!(core.inbox.start(SessionId(8)), Some(ObjectId(0)));
        assert_eq!(core.objects.held_bytes(), 3 * bytes, "the blocks that came");
        assert_eq!(core.inbox.stats().over_budget, 3);
        assert_eq!(rx.stats().objects_completed, 0);
    }

    /// A publisher whose only receiver stopped moving (or a forged id that
    /// never moved and keeps reporting) still retires what it sent, as if
    /// sent to nobody: the stalled receiver no longer counts, and the window
    /// frees for the writers. (It kept everything, and writers blocked for as
    /// long as the stalled receiver reported.)
    #[test]
    fn a_publisher_whose_receivers_all_stalled_still_frees_its_window() {
        let session = 9;
        let mut sender = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            session: crate::proto::SessionId(session),
            feedback: FeedbackConfig {
                stall_timeout: Duration::from_secs(1),
                receiver_timeout: Duration::from_secs(4),
                ..FeedbackConfig::default()
            },
            ..SenderConfig::default()
        })
        .unwrap();
        sender.set_open(true);
        let mut st = PubState::new(Batching::default(), 1);
        for i in 0..4u8 {
            st.push(|o, now| o.push_message(now, &[i; 20_000]));
            st.outbox.flush();
        }
        let pushed = st.unacked;
        assert!(pushed >= 80_000);
        let retention = Retention {
            bytes: 1 << 20,
            time: Duration::from_millis(250),
            close_timeout: Duration::from_secs(60),
        };
        let stuck = StatusRepr {
            session,
            receiver: 666,
            echo_us: 0,
            hold_us: 0,
            loss_ppm: 0,
            loss_span: 0,
            rate: 0,
            window: (0, 0),
            flags: 0,
        };
        let mut status = vec![0; 64];
        let n = stuck.write(&mut status).unwrap();
        status.truncate(n);
        let mut turns = PubTurns::default();
        let mut buf = vec![0u8; 1500];
        let t0 = Instant::now();
        let mut t = t0;
        while t < t0 + Duration::from_secs(8) {
            if (t - t0).as_millis().is_multiple_of(200) {
                sender.handle_datagram(t, &status);
            }
            sender.handle_timeout(t);
            while sender.poll_transmit(t, &mut buf).is_some() {}
            turns.turn(&mut sender, &mut st, &retention, t).unwrap();
            t += Duration::from_millis(10);
        }
        assert_eq!(sender.stats().receivers_stalled, 1);
        assert_eq!(sender.stats().receivers_tracked, 1);
        assert_eq!(st.unacked, 0, "of {pushed} bytes pushed");
    }

    fn piece(sender: u64, offset: u64, data: &[u8]) -> super::Event {
        super::Event::Stream {
            sender: SessionId(sender),
            offset,
            data: data.to_vec(),
        }
    }

    fn end(sender: u64, stream_len: u64) -> super::Event {
        super::Event::End {
            sender: SessionId(sender),
            stream_len,
            messages: 0,
        }
    }

    fn read_all(st: &mut StreamState) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        let n = st.copy_out(&mut out).unwrap_or(0);
        out.truncate(n);
        out
    }

    /// Unpinned, a reader follows the first stream it hears from its first
    /// byte: a forger's stream heard past its start, or its end heard
    /// alone, is passed over, and makes the end an error (which stream is
    /// the publisher's cannot be told). Pinned, a stream first heard past
    /// its start is an error unless a late join was asked for; pieces must
    /// follow each other.
    #[test]
    fn a_stream_reader_that_lost_a_streams_start_says_so() {
        let mut st = StreamState::new(None, false);
        st.take(super::Event::Gap {
            sender: SessionId(5),
            from: ObjectId(0),
            to: ObjectId(3),
        })
        .unwrap();
        let e = st.take(piece(5, 3000, b"late")).unwrap_err().to_string();
        assert!(e.contains("start of the stream"), "{e}");
        assert!(e.contains("--min-progress"), "names the cause: {e}");
        // A stream first heard past its start, with no loss heard, is
        // passed over as before.
        let mut other = StreamState::new(None, false);
        other.take(piece(6, 3000, b"late")).unwrap();
        assert!(other.passed.contains(&SessionId(6)));
    }

    #[test]
    fn a_stream_reader_takes_a_stream_from_its_start_or_as_pinned() {
        let mut st = StreamState::new(None, false);
        st.take(piece(66, 100, b"forged")).unwrap();
        st.take(end(66, 106)).unwrap();
        st.take(end(67, 5)).unwrap();
        assert_eq!(st.from, None, "passed over");
        st.take(piece(1, 0, b"real")).unwrap();
        assert_eq!(read_all(&mut st), b"real");
        st.take(piece(66, 106, b"more")).unwrap();
        st.take(end(66, 110)).unwrap();
        assert!(!st.ended, "the forger's end is not this stream's");
        assert!(st.take(piece(1, 9, b"jump")).is_err(), "a jump is an error");
        st.take(piece(1, 4, b"!")).unwrap();
        assert_eq!(read_all(&mut st), b"!");
        assert!(st.take(end(1, 9)).is_err(), "an end past what was read");
        // Others sent streams too: which is the publisher's cannot be told.
        assert!(st.take(end(1, 5)).is_err(), "contended");
        assert!(!st.ended);
        assert_eq!(st.passed.len(), 2);
        let mut alone = StreamState::new(None, false);
        alone.take(piece(1, 0, b"real")).unwrap();
        assert_eq!(read_all(&mut alone), b"real");
        alone.take(end(1, 4)).unwrap();
        assert!(alone.ended);
        assert_eq!(alone.copy_out(&mut [0; 8]), None, "the end settles first");
        assert!(alone.settle_left(Instant::now()).is_some());
        alone.end_at = alone.end_at.map(|t| t - super::END_SETTLE);
        assert_eq!(alone.copy_out(&mut [0; 8]), Some(0), "then it is reported");

        let mut pinned = StreamState::new(Some(SessionId(1)), false);
        pinned.take(piece(2, 0, b"other")).unwrap();
        assert_eq!(read_all(&mut pinned), b"");
        assert!(pinned.take(piece(1, 50, b"late")).is_err());
        let mut late = StreamState::new(Some(SessionId(1)), true);
        late.take(piece(1, 50, b"late")).unwrap();
        assert_eq!(read_all(&mut late), b"late");
        late.take(end(1, 54)).unwrap();
        assert!(late.ended);
        // A publisher of messages alone ends with no stream: neither a
        // stream nor a contender.
        let mut st = StreamState::new(None, false);
        st.take(super::Event::End {
            sender: SessionId(3),
            stream_len: 0,
            messages: 7,
        })
        .unwrap();
        assert_eq!(st.from, None);
        st.take(piece(1, 0, b"s")).unwrap();
        st.take(end(1, 1)).unwrap();
        assert!(st.ended && st.contender.is_none());
        // Two objects under one id of the stream followed: an error.
        let mut st = StreamState::new(None, false);
        st.take(piece(1, 0, b"real")).unwrap();
        let conflict = |s| super::Event::Conflict {
            sender: SessionId(s),
            object: ObjectId(1),
        };
        st.take(conflict(2)).unwrap();
        assert!(st.take(conflict(1)).is_err());
    }

    /// A subscriber that starts where the publisher retains, past object 0,
    /// lacks what came before: its receiver never reports the session
    /// complete, so that the publisher does not count it as confirming.
    #[test]
    fn a_late_start_is_never_reported_complete() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(ReceiverConfig::default());
        let mut core = SubCore::new(Duration::from_secs(10), 16, InboxLimits::default());
        let Ok(Repr::Probe(mut p)) = Repr::parse(&forged_probe(8)) else {
            unreachable!()
        };
        p.retained = 5;
        p.objects = 5;
        p.progress = (5, 0);
        let mut b = vec![0; crate::wire::feedback::PROBE_LEN];
        let n = p.write(&mut b).unwrap();
        let _ = rx.handle_datagram(t0, &b[..n]);
        // An object of the session makes it heard, and started at 5.
        for d in last_block(8, 5, 4096) {
            let _ = rx.handle_datagram(t0, &d);
        }
        while let Some(e) = rx.poll_event() {
            core.event(&mut rx, e, t0);
        }
        assert_eq!(core.inbox.start(SessionId(8)), Some(ObjectId(5)));
        let mut buf = vec![0u8; 1500];
        let mut t = t0;
        for _ in 0..50 {
            let _ = rx.handle_datagram(t, &b[..n]);
            rx.handle_timeout(t);
            while let Some((n, _)) = rx.poll_transmit(t, &mut buf) {
                if let Ok(Repr::Status(st)) = Repr::parse(&buf[..n]) {
                    assert_eq!(st.window, (5, 0), "everything it can have");
                    assert_eq!(
                        st.flags & crate::wire::feedback::STATUS_COMPLETE,
                        0,
                        "never complete"
                    );
                }
            }
            t += Duration::from_millis(100);
        }
        assert!(rx.stats().status_sent > 0);
    }

    /// A close is confirmed only if the sender finished, the receivers
    /// expected confirmed everything, and none heard from was left behind:
    /// nobody listening is no confirmation, unless nobody was expected.
    #[test]
    fn confirmed_means_receivers_confirmed_everything() {
        let report = |expect, finished, f: &dyn Fn(&mut crate::SenderStats)| {
            let mut st = PubState::new(Batching::default(), expect);
            st.finished = finished;
            f(&mut st.stats);
            st.report()
        };
        let nobody = |_: &mut crate::SenderStats| {};
        assert!(!report(1, true, &nobody).confirmed, "nobody heard");
        assert!(report(0, true, &nobody).confirmed, "nobody expected");
        let two = |s: &mut crate::SenderStats| {
            s.receivers_tracked = 2;
            s.receiver_prefixes_heard = 2;
        };
        assert!(report(1, true, &two).confirmed);
        assert_eq!(report(1, true, &two).receivers_confirmed, 2);
        // Two ids of one /64 are one receiver.
        let one_64 = |s: &mut crate::SenderStats| {
            s.receivers_tracked = 2;
            s.receiver_prefixes_heard = 1;
        };
        assert_eq!(report(1, true, &one_64).receivers_confirmed, 1);
        assert!(!report(2, true, &one_64).confirmed, "two ids of one /64");
        assert!(!report(3, true, &two).confirmed, "fewer than expected");
        assert!(
            !report(1, false, &two).confirmed,
            "the close timeout passed"
        );
        for left in [
            |s: &mut crate::SenderStats| s.receivers_timed_out = 1,
            |s: &mut crate::SenderStats| s.receivers_left_stalled = 1,
            |s: &mut crate::SenderStats| s.receivers_left_refused = 1,
        ] {
            let r = report(1, true, &|s: &mut crate::SenderStats| {
                two(s);
                left(s);
            });
            assert!(!r.confirmed, "{:?}", r.stats);
        }
    }

    /// An object sent while nobody was tracked stays for receivers heard
    /// later: at least `UNHEARD_RETENTION`, and while a tracked receiver
    /// lacks it, however long ago it was sent.
    #[test]
    fn what_a_receiver_heard_late_lacks_waits_for_it() {
        let t0 = Instant::now();
        let r = Retention {
            bytes: 1 << 20,
            time: Duration::from_millis(250),
            close_timeout: Duration::from_secs(1),
        };
        let sent_to_nobody: Live = (ObjectId(0), 100, Some((t0, false)));
        let late = t0 + UNHEARD_RETENTION * 3;
        // Nobody tracked yet: after the unheard retention.
        assert!(!retire_due(
            &sent_to_nobody,
            t0 + Duration::from_secs(1),
            0,
            &r,
            None
        ));
        assert!(retire_due(&sent_to_nobody, late, 0, &r, None));
        // A receiver heard since lacks it: it stays.
        assert!(!retire_due(&sent_to_nobody, late, 0, &r, Some(ObjectId(0))));
        // Once acknowledged: it goes, but not before the unheard retention.
        assert!(retire_due(&sent_to_nobody, late, 0, &r, Some(ObjectId(1))));
        let soon = t0 + Duration::from_millis(300);
        assert!(!retire_due(&sent_to_nobody, soon, 0, &r, Some(ObjectId(1))));
        // Acknowledged by every tracked receiver: after the retention.
        let acked: Live = (ObjectId(0), 100, Some((t0, true)));
        assert!(retire_due(&acked, soon, 0, &r, Some(ObjectId(1))));
        assert!(!retire_due(&acked, t0, 0, &r, Some(ObjectId(1))));
        assert!(
            retire_due(&acked, t0, 2 << 20, &r, Some(ObjectId(1))),
            "over the bytes"
        );
        assert!(!retire_due(&(ObjectId(0), 100, None), late, 0, &r, None));
    }

    /// A message iterator hands out messages, gaps and conflicts, skips
    /// stream bytes, and ends when the last publisher it heard ends.
    #[test]
    fn a_message_iterator_ends_when_every_publisher_it_heard_has_ended() {
        use super::{Event, Message, RecvError, UntilEnd};
        let (a, b) = (SessionId(1), SessionId(2));
        let msg = |sender, seq| {
            Event::Message(Message {
                sender,
                seq,
                data: vec![seq as u8],
            })
        };
        let end = |sender| Event::End {
            sender,
            stream_len: 0,
            messages: 1,
        };
        let mut u = UntilEnd::default();
        assert!(u.step(end(SessionId(9))).is_none());
        assert!(
            !u.ended,
            "the end of a session never delivered ends nothing"
        );
        assert!(matches!(u.step(msg(a, 0)), Some(Ok(m)) if m.sender == a));
        let bytes = Event::Stream {
            sender: b,
            offset: 0,
            data: vec![1],
        };
        assert!(u.step(bytes).is_none(), "stream bytes are not messages");
        let gap = Event::Gap {
            sender: a,
            from: ObjectId(1),
            to: ObjectId(3),
        };
        assert!(matches!(
            u.step(gap),
            Some(Err(RecvError::Gap {
                from: ObjectId(1),
                ..
            }))
        ));
        assert!(u.step(end(a)).is_none());
        assert!(!u.ended, "b is still open");
        assert!(u.step(end(b)).is_none());
        assert!(u.ended, "both ended");
    }
}
