//! The message and stream handles as async types (cargo feature `tokio`):
//! [`AsyncPublisher`] and [`AsyncSubscriber`], with `send().await`, `recv().await`,
//! and [`AsyncPublisherStream`] / [`AsyncSubscriberStream`] as `AsyncWrite` /
//! `AsyncRead`. Each runs one tokio task that drives the same sans-IO core,
//! and the same turns as the blocking handles, over tokio's UDP sockets, as
//! quinn drives quinn-proto. Open them from within a runtime. A
//! subscriber solves its blocks on decode worker threads
//! ([`crate::ReceiverConfig::decode_threads`]), never on the runtime's.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use groupcast::{Publisher, Subscriber};
//!
//! let subscriber = Subscriber::builder("news", "eth0").open_async()?;
//! let publisher = Publisher::builder("news", "eth0").open_async()?;
//! publisher.send(b"hello, group").await?;
//! let m = subscriber.recv().await?;
//! assert_eq!(m.data, b"hello, group");
//! publisher.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Unlike the blocking driver, the async one sends datagram by datagram
//! (no `sendmmsg`, no UDP segmentation offload), and
//! sizes its feedback's hop limit from what the PROBEs announce (tokio's
//! sockets give no arrival hop limit): use the blocking handles for the
//! last bit of throughput.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::net::UdpSocket;
use ::tokio::sync::Notify;
use ::tokio::task::JoinHandle;

use super::{
    Event, PubState, PubTurns, PublisherBuilder, PublisherReport, RecvError, Retention, SubCore,
    SubState, SubscriberBuilder, UntilEnd, delivery_len, lock,
};
use crate::io::{Halt, IoError, McastSocket, RecvDriver};
use crate::proto::feed::{Delivery, Message, Outbox};
use crate::proto::{Receiver, Sender, SenderStats, SessionId};
use crate::wire::MAX_DATAGRAM;

struct Shared {
    state: Mutex<PubState>,
    /// Wakes the driver: something to send, or closing.
    work: Notify,
    /// Wakes writers: room in the window, or the driver stopped.
    room: Notify,
    /// `AsyncWrite` callers waiting for room.
    wakers: Mutex<Vec<Waker>>,
    abort: AtomicBool,
}

impl Shared {
    fn wake_writers(&self) {
        self.room.notify_waiters();
        for w in lock(&self.wakers).drain(..) {
            w.wake();
        }
    }
}

fn sock_err(context: &'static str) -> impl FnOnce(std::io::Error) -> IoError {
    move |source| IoError::Socket {
        context: context.into(),
        source,
    }
}

impl PublisherBuilder {
    /// Opens the socket and starts the driver task on the current tokio
    /// runtime (see [`crate::io::pubsub::tokio`]).
    pub fn open_async(self) -> Result<AsyncPublisher, IoError> {
        let (sender, sock, session, window, retention) = self.prepare()?;
        let (udp, fb) = sock
            .tokio_sockets()
            .map_err(sock_err("handing the socket to tokio"))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(PubState::new(self.batching, self.expect)),
            work: Notify::new(),
            room: Notify::new(),
            wakers: Mutex::new(Vec::new()),
            abort: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let task = ::tokio::spawn(async move {
            let r = drive_publisher(sender, sock, udp, fb, &s, retention).await;
            let mut st = lock(&s.state);
            st.done = true;
            if let Err(e) = &r {
                st.error = Some(e.clone());
            }
            drop(st);
            s.wake_writers();
            r
        });
        Ok(AsyncPublisher {
            shared,
            task: Some(task),
            session,
            window,
        })
    }
}

async fn drive_publisher(
    mut sender: Sender,
    sock: McastSocket,
    udp: UdpSocket,
    fb: Option<UdpSocket>,
    shared: &Shared,
    retention: Retention,
) -> Result<(), IoError> {
    let dest: SocketAddr = sock.dest.into();
    let mut turns = PubTurns::default();
    let mut buf = vec![0u8; sender.config().max_datagram];
    let mut fbuf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let now = Instant::now();
        // Feedback: STATUS on the sending socket, NACKs on the feedback group.
        for s in std::iter::once(&udp).chain(fb.as_ref()) {
            drain::<IoError>(s, &mut fbuf, "receiving feedback", |d, from| {
                sender.handle_feedback(now, Some(from.ip()), d);
                Ok(())
            })?;
        }
        while sender.poll_event().is_some() {}
        // The wall clock again: it may have been stepped or suspended.
        sender.set_wall_clock(crate::io::wall_clock());
        sender.handle_timeout(now);
        let turn = {
            let mut st = lock(&shared.state);
            turns.turn(&mut sender, &mut st, &retention, now)?
        };
        if turn.freed {
            shared.wake_writers();
        }
        if turn.stop || shared.abort.load(Ordering::Relaxed) || sender.is_finished() {
            return Ok(());
        }
        // Everything due now, a datagram at a time.
        let mut sent = 0;
        while sent < 256
            && let Some(len) = sender.poll_transmit(now, &mut buf)
        {
            match udp.send_to(&buf[..len], dest).await {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    ::tokio::time::sleep(Duration::from_micros(200)).await;
                }
                Err(e) => return Err(sock.send_failure(e)),
            }
            sent += 1;
        }
        if sent == 256 {
            ::tokio::task::yield_now().await;
            continue;
        }
        wait_for(
            &udp,
            fb.as_ref(),
            sender.poll_timeout(),
            now + turn.wait,
            &shared.work,
        )
        .await;
    }
}

/// Reads every datagram waiting on `socket` (without blocking) into
/// `handle`. Bounded, so a flood cannot starve the rest of the loop.
fn drain<E: From<IoError>>(
    socket: &UdpSocket,
    buf: &mut [u8],
    context: &'static str,
    mut handle: impl FnMut(&[u8], SocketAddr) -> Result<(), E>,
) -> Result<(), E> {
    for _ in 0..1024 {
        match socket.try_recv_from(buf) {
            Ok((n, from)) => handle(&buf[..n], from)?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(sock_err(context)(e).into()),
        }
    }
    Ok(())
}

/// Waits, in a driver's loop, until the core's deadline (or `by`, if
/// sooner), a datagram on either socket, or a word from the application.
async fn wait_for(
    udp: &UdpSocket,
    fb: Option<&UdpSocket>,
    deadline: Option<Instant>,
    by: Instant,
    woken: &Notify,
) {
    let deadline = deadline.map_or(by, |t| t.min(by));
    let fb_ready = async {
        match fb {
            Some(f) => f.readable().await,
            None => std::future::pending().await,
        }
    };
    ::tokio::select! {
        _ = ::tokio::time::sleep_until(deadline.into()) => {}
        _ = udp.readable() => {}
        _ = fb_ready => {}
        _ = woken.notified() => {}
    }
}

/// A [`super::Publisher`] as an async type: see the module documentation.
pub struct AsyncPublisher {
    shared: Arc<Shared>,
    task: Option<JoinHandle<Result<(), IoError>>>,
    session: SessionId,
    window: usize,
}

impl AsyncPublisher {
    /// This publisher's session: what subscribers see as a message's sender.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Room for `len` bytes now, or why not; with the outbox if there is.
    fn try_room(&self, len: usize) -> Result<Option<std::sync::MutexGuard<'_, PubState>>, IoError> {
        let st = lock(&self.shared.state);
        st.check()?;
        Ok((st.unacked == 0 || st.unacked + len <= self.window).then_some(st))
    }

    async fn with_room<R>(
        &self,
        len: usize,
        f: impl FnOnce(&mut Outbox, Instant) -> R,
    ) -> Result<R, IoError> {
        loop {
            let notified = self.shared.room.notified();
            ::tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(mut st) = self.try_room(len)? {
                let r = st.push(f);
                drop(st);
                self.shared.work.notify_one();
                return Ok(r);
            }
            notified.await;
        }
    }

    /// Sends one message; see [`super::Publisher::send`]. Waits while the
    /// window is full.
    pub async fn send(&self, msg: &[u8]) -> Result<u64, IoError> {
        self.with_room(msg.len() + 4, |o, now| o.push_message(now, msg))
            .await?
            .ok_or_else(|| IoError::Invalid("a message of 4 GiB or more cannot be sent".into()))
    }

    /// Sends what is batched now.
    pub fn flush(&self) {
        lock(&self.shared.state).outbox.flush();
        self.shared.work.notify_one();
    }

    /// The sender's counters so far.
    pub fn stats(&self) -> SenderStats {
        lock(&self.shared.state).stats.clone()
    }

    /// Ends the session; see [`super::Publisher::close`].
    pub async fn close(mut self) -> Result<PublisherReport, IoError> {
        lock(&self.shared.state).close();
        self.shared.work.notify_one();
        let result = match self.task.take() {
            Some(t) => t
                .await
                .unwrap_or_else(|_| Err(IoError::Invalid("the publisher's task panicked".into()))),
            None => Ok(()),
        };
        result?;
        Ok(lock(&self.shared.state).report())
    }

    /// This publisher as an `AsyncWrite` stream.
    pub fn into_stream(self) -> AsyncPublisherStream {
        AsyncPublisherStream {
            publisher: Some(self),
        }
    }
}

impl Drop for AsyncPublisher {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            self.shared.abort.store(true, Ordering::Relaxed);
            self.shared.work.notify_one();
            t.abort();
        }
    }
}

/// An [`AsyncPublisher`]'s byte stream as `AsyncWrite`: `poll_write` is pending
/// while the window is full; `poll_flush` sends what is buffered;
/// `poll_shutdown` ends the stream (then [`AsyncPublisherStream::close`] waits
/// for the receivers).
pub struct AsyncPublisherStream {
    publisher: Option<AsyncPublisher>,
}

impl AsyncPublisherStream {
    /// Ends the stream and waits for every receiver heard from to confirm it.
    pub async fn close(mut self) -> Result<PublisherReport, IoError> {
        self.publisher
            .take()
            .expect("present until closed")
            .close()
            .await
    }

    /// The publisher's counters so far.
    pub fn stats(&self) -> SenderStats {
        self.publisher
            .as_ref()
            .map(AsyncPublisher::stats)
            .unwrap_or_default()
    }
}

impl AsyncWrite for AsyncPublisherStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let Some(p) = self.publisher.as_ref() else {
            return Poll::Ready(Err(std::io::Error::other("the stream is closed")));
        };
        let n = buf.len().min(p.window.max(1));
        // The waker goes in before the check, so that room made meanwhile wakes it.
        lock(&p.shared.wakers).push(cx.waker().clone());
        match p.try_room(n) {
            Err(e) => Poll::Ready(Err(std::io::Error::other(e))),
            Ok(None) => Poll::Pending,
            Ok(Some(mut st)) => {
                let taken = st.push(|o, now| o.push_stream(now, &buf[..n]));
                drop(st);
                p.shared.work.notify_one();
                Poll::Ready(Ok(taken))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(p) = &self.publisher {
            p.flush();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(p) = &self.publisher {
            lock(&p.shared.state).close();
            p.shared.work.notify_one();
        }
        Poll::Ready(Ok(()))
    }
}

struct SubShared {
    state: Mutex<SubState>,
    /// Wakes `recv` callers: a delivery, or the driver stopped.
    ready: Notify,
    /// `AsyncRead` callers waiting.
    wakers: Mutex<Vec<Waker>>,
    /// Wakes the driver: the application took something (the window may
    /// open again).
    taken: Notify,
    stop: AtomicBool,
}

impl SubShared {
    fn wake_readers(&self) {
        self.ready.notify_waiters();
        for w in lock(&self.wakers).drain(..) {
            w.wake();
        }
    }
}

impl SubscriberBuilder {
    /// Joins the channel and starts the driver task on the current tokio
    /// runtime (see [`crate::io::pubsub::tokio`]).
    pub fn open_async(self) -> Result<AsyncSubscriber, IoError> {
        let (sock, config, queue, core) = self.prepare()?;
        let (udp, fb) = sock
            .tokio_sockets()
            .map_err(sock_err("handing the socket to tokio"))?;
        let socks = SubSockets { sock, udp, fb };
        let shared = Arc::new(SubShared {
            state: Mutex::new(SubState::default()),
            ready: Notify::new(),
            wakers: Mutex::new(Vec::new()),
            taken: Notify::new(),
            stop: AtomicBool::new(false),
        });
        // Blocks are solved on the decode workers, off the runtime's
        // threads; each result wakes the task.
        let pool = match config.decode_threads.min(crate::io::MAX_DECODE_THREADS) {
            0 => None,
            n => {
                let s = Arc::clone(&shared);
                let wake: crate::io::decode::Wake = Arc::new(move || s.taken.notify_one());
                Some(
                    crate::io::DecodePool::decoders(n, Some(wake))
                        .map_err(sock_err("starting the decode workers"))?,
                )
            }
        };
        let app = AsyncSubApp {
            core,
            shared: Arc::clone(&shared),
            queue,
        };
        let mut config = config;
        crate::io::starting_receiver(&mut config);
        let rx = Receiver::new(config);
        let s = Arc::clone(&shared);
        let task = ::tokio::spawn(async move {
            let r = drive_subscriber(socks, rx, app, pool).await;
            let mut st = lock(&s.state);
            st.done = true;
            if let Err(e) = &r {
                st.error = Some(e.clone());
            }
            drop(st);
            s.wake_readers();
            r
        });
        Ok(AsyncSubscriber {
            shared,
            task: Some(task),
            stream: self.stream_state(),
        })
    }
}

/// A subscriber's sockets: the joined socket (its memberships, its
/// addresses, the NACKs' hop limit) and tokio's handles on it and on its
/// feedback socket.
struct SubSockets {
    sock: McastSocket,
    udp: UdpSocket,
    fb: Option<UdpSocket>,
}

/// The async subscriber's side of its receive driver: events go through
/// its [`SubCore`], and deliveries to the application's queue once a pass.
struct AsyncSubApp {
    core: SubCore,
    shared: Arc<SubShared>,
    /// Bytes queued for the application beyond which every window is held.
    queue: usize,
}

impl crate::io::RecvApp for AsyncSubApp {
    fn event(
        &mut self,
        rx: &mut Receiver,
        e: crate::proto::ReceiverEvent,
        now: Instant,
    ) -> Result<std::ops::ControlFlow<()>, IoError> {
        self.core.event(rx, e, now);
        Ok(std::ops::ControlFlow::Continue(()))
    }

    fn tick(&mut self, rx: &mut Receiver, now: Instant) -> Option<Duration> {
        let queued = {
            let mut st = lock(&self.shared.state);
            st.stats = (rx.stats().clone(), self.core.inbox.stats().clone());
            st.queued
        };
        let wait = self.core.tick(rx, now, queued, self.queue);
        if self.core.hand_out(&mut lock(&self.shared.state)) {
            self.shared.wake_readers();
        }
        Some(wait)
    }

    fn stop(&mut self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }
}

/// The async subscriber's loop over [`crate::io::RecvDriver`]: each pass
/// reads what waits on both sockets, runs the receiver's timers and the
/// decode workers, gives the application its turn, and sends the feedback.
async fn drive_subscriber(
    socks: SubSockets,
    mut rx: Receiver,
    mut app: AsyncSubApp,
    pool: Option<crate::io::DecodePool>,
) -> Result<(), IoError> {
    let SubSockets { mut sock, udp, fb } = socks;
    let shared = Arc::clone(&app.shared);
    let mut driver = RecvDriver::new(&mut rx, &mut sock, &mut app, pool);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        if driver.stop() {
            return Ok(());
        }
        let now = Instant::now();
        let wait = match subscriber_pass(&mut driver, &udp, fb.as_ref(), &mut buf, now) {
            Ok(wait) => Some(wait),
            Err(Halt::Done(_)) => None,
            Err(Halt::Failed(e)) => return Err(e),
        };
        if let Some(f) = fb.as_ref() {
            driver.transmit(now, |_, d, to| f.try_send_to(d, to.into()).is_ok());
        }
        let Some(wait) = wait else {
            return Ok(());
        };
        let deadline = driver.rx.poll_timeout();
        wait_for(&udp, fb.as_ref(), deadline, now + wait, &shared.taken).await;
    }
}

/// A pass of the async subscriber's loop up to its feedback: what waits on
/// both sockets, the receiver's timers, the decode workers, and the
/// application's turn. Returns when the application wants the next pass.
fn subscriber_pass(
    driver: &mut RecvDriver<'_, AsyncSubApp>,
    udp: &UdpSocket,
    fb: Option<&UdpSocket>,
    buf: &mut [u8],
    now: Instant,
) -> Result<Duration, Halt> {
    drain(udp, buf, "receiving", |d, from| match from {
        SocketAddr::V6(from) => driver.datagram(now, d, Some(from), None),
        SocketAddr::V4(_) => Ok(()),
    })?;
    if let Some(f) = fb {
        drain::<Halt>(f, buf, "receiving feedback", |d, _| {
            driver.peer_feedback(now, d);
            Ok(())
        })?;
    }
    driver.timeout(now)?;
    driver.submit();
    driver.decoded(now)?;
    Ok(driver.tick(now).unwrap_or(super::TURN))
}

/// A [`super::Subscriber`] as an async type: see the module documentation.
pub struct AsyncSubscriber {
    shared: Arc<SubShared>,
    task: Option<JoinHandle<Result<(), IoError>>>,
    stream: super::StreamState,
}

impl AsyncSubscriber {
    /// Asks for `waker` to be woken at the next delivery (once, however
    /// often it is polled meanwhile).
    fn register(&self, waker: &Waker) {
        let mut wakers = lock(&self.shared.wakers);
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    fn take(&self) -> Result<Option<Event>, RecvError> {
        let mut st = lock(&self.shared.state);
        if let Some(d) = st.queue.pop_front() {
            st.queued -= delivery_len(&d);
            drop(st);
            self.shared.taken.notify_one();
            return Ok(Some(d));
        }
        if st.done {
            return Err(RecvError::Stopped(st.error.clone().map(Box::new)));
        }
        Ok(None)
    }

    /// The next event; see [`super::Subscriber::next_event`].
    pub async fn next_event(&self) -> Result<Event, RecvError> {
        loop {
            let ready = self.shared.ready.notified();
            ::tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(e) = self.take()? {
                return Ok(e);
            }
            ready.await;
        }
    }

    /// The next message, in order per publisher; see
    /// [`super::Subscriber::recv`] (for a timeout, wrap it in
    /// `tokio::time::timeout`).
    pub async fn recv(&self) -> Result<Message, RecvError> {
        loop {
            if let Some(item) = UntilEnd::item(self.next_event().await?) {
                return item;
            }
        }
    }

    /// The messages until the publishers end, as a `futures_core::Stream`
    /// (`StreamExt::next` of futures or tokio-stream); the same items and
    /// the same end as [`super::Subscriber::messages`].
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), groupcast::IoError> {
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    ///
    /// let subscriber = groupcast::Subscriber::builder("news", "eth0").open_async()?;
    /// let mut messages = subscriber.messages();
    /// while let Some(m) = poll_fn(|cx| Pin::new(&mut messages).poll_next(cx)).await {
    ///     println!("{} bytes", m?.data.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn messages(&self) -> AsyncMessages<'_> {
        AsyncMessages {
            subscriber: self,
            until: UntilEnd::default(),
        }
    }

    /// The receiver's and the inbox's counters; see [`super::Subscriber::stats`].
    pub fn stats(&self) -> (crate::proto::ReceiverStats, crate::proto::feed::InboxStats) {
        lock(&self.shared.state).stats.clone()
    }

    /// This subscriber as an `AsyncRead` of a publisher's stream, chosen
    /// as [`super::Subscriber::into_stream`] chooses it: reads 0 at its end;
    /// a gap is an error.
    pub fn into_stream(mut self) -> AsyncSubscriberStream {
        AsyncSubscriberStream {
            state: std::mem::take(&mut self.stream),
            subscriber: self,
            settle: None,
        }
    }
}

impl Drop for AsyncSubscriber {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.taken.notify_one();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// An [`AsyncSubscriber`] reading one publisher's stream (`AsyncRead`).
pub struct AsyncSubscriberStream {
    subscriber: AsyncSubscriber,
    state: super::StreamState,
    /// Wakes the reader when a taken end has settled.
    settle: Option<Pin<Box<::tokio::time::Sleep>>>,
}

impl AsyncSubscriberStream {
    /// The publisher whose stream this reads, once heard.
    pub fn sender(&self) -> Option<SessionId> {
        self.state.from
    }
}

impl AsyncRead for AsyncSubscriberStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if let Some(n) = this.state.copy_out(out.initialize_unfilled()) {
                out.advance(n);
                return Poll::Ready(Ok(()));
            }
            this.subscriber.register(cx.waker());
            match this.subscriber.take() {
                Ok(Some(e)) => {
                    if let Err(e) = this.state.take(e) {
                        return Poll::Ready(Err(e));
                    }
                }
                Ok(None) => {
                    // An end that settles: wake when it has.
                    if let Some(left) = this.state.settle_left(Instant::now()) {
                        let sleep = this
                            .settle
                            .get_or_insert_with(|| Box::pin(::tokio::time::sleep(left)));
                        if sleep.as_mut().poll(cx).is_ready() {
                            this.settle = None;
                            continue;
                        }
                    }
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(std::io::Error::other(e))),
            }
        }
    }
}

/// An [`AsyncSubscriber`]'s messages until its publishers end: see
/// [`AsyncSubscriber::messages`].
pub struct AsyncMessages<'a> {
    subscriber: &'a AsyncSubscriber,
    until: UntilEnd,
}

impl futures_core::Stream for AsyncMessages<'_> {
    type Item = Result<Message, RecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        while !this.until.ended {
            this.subscriber.register(cx.waker());
            match this.subscriber.take() {
                Ok(Some(e)) => {
                    if let Some(item) = this.until.step(e) {
                        return Poll::Ready(Some(item));
                    }
                }
                Ok(None) => return Poll::Pending,
                Err(e) => {
                    this.until.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
        Poll::Ready(None)
    }
}

impl futures_core::FusedStream for AsyncMessages<'_> {
    fn is_terminated(&self) -> bool {
        self.until.ended
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<AsyncPublisher>();
    is_send::<AsyncSubscriber>();
    let _ = VecDeque::<Delivery>::new();
}
