//! groupcast-testing: the one driver of groupcast's tests and fuzz targets,
//! after quinn's `tests/util.rs`. [`Pair`] holds a sender, N receivers, a
//! virtual clock that jumps to the next deadline, a loss rule, and a step
//! bound; feedback goes where the receiver addresses it (the sender, and the
//! other receivers for multicast NACKs), and decoded objects are reassembled
//! per receiver. [`drain`], [`transfer`] and [`receive`] build and feed the
//! datagrams of whole transfers for tests that work packet by packet.

pub mod netns;

use std::time::{Duration, Instant};

use groupcast::{
    Destination, ObjectId, Reassembled, Reassembler, Receiver, ReceiverConfig, Rounds, Sender,
    SenderConfig, SessionId,
};

/// Most datagrams one step lets the sender emit (an unpaced carousel never
/// stops by itself).
const BURST: usize = 1_000;

/// A sender and receivers on a virtual clock.
pub struct Pair {
    /// The sender.
    pub sender: Sender,
    /// The receivers, in order.
    pub receivers: Vec<Receiver>,
    /// The virtual clock.
    pub now: Instant,
    start: Instant,
    /// Objects each receiver completed, in order.
    pub objects: Vec<Vec<Reassembled>>,
    reassemblers: Vec<Reassembler>,
    /// Whether receiver `i` loses the sender's `n`-th datagram.
    lose: Box<dyn FnMut(usize, u64) -> bool>,
    sent: u64,
    steps: u64,
    /// The last step stopped at the burst limit: step again at once.
    busy: bool,
    /// Steps in a row in which nothing happened.
    idle_steps: u32,
    buf: Vec<u8>,
    /// One-way delay of every link, both ways ([`Pair::delayed`]).
    delay: Duration,
    /// Datagrams on their way: when they arrive, in what order they were
    /// sent, where to, and their bytes.
    flight: std::collections::BinaryHeap<std::cmp::Reverse<Flight>>,
    flights: u64,
}

/// A datagram on its way: when it arrives, its number (so that ties keep
/// the order sent), where to, and its bytes.
type Flight = (Instant, u64, To, Vec<u8>);

/// Where a datagram on its way goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum To {
    Sender,
    Receiver(usize),
}

impl Pair {
    /// A sender and `n` receivers (ids 1..=n) with default settings.
    pub fn new(sender: SenderConfig, n: usize) -> Self {
        let receivers = (1..=n as u64)
            .map(|id| ReceiverConfig {
                id,
                ..ReceiverConfig::default()
            })
            .collect();
        Self::with(sender, receivers)
    }

    /// A sender and one receiver per configuration.
    pub fn with(sender: SenderConfig, receivers: Vec<ReceiverConfig>) -> Self {
        let buf = vec![0u8; sender.max_datagram];
        let n = receivers.len();
        let now = Instant::now();
        Self {
            sender: Sender::new(sender).expect("valid sender configuration"),
            receivers: receivers.into_iter().map(Receiver::new).collect(),
            now,
            start: now,
            objects: vec![Vec::new(); n],
            reassemblers: (0..n).map(|_| Reassembler::new()).collect(),
            lose: Box::new(|_, _| false),
            sent: 0,
            steps: 0,
            busy: false,
            idle_steps: 0,
            buf,
            delay: Duration::ZERO,
            flight: std::collections::BinaryHeap::new(),
            flights: 0,
        }
    }

    /// Every datagram takes `one_way` to arrive, sender to receivers and
    /// back (default: at once).
    pub fn delayed(mut self, one_way: Duration) -> Self {
        self.delay = one_way;
        self
    }

    fn post(&mut self, to: To, data: &[u8]) {
        self.flights += 1;
        self.flight.push(std::cmp::Reverse((
            self.now + self.delay,
            self.flights,
            to,
            data.to_vec(),
        )));
    }

    /// Hands over every datagram that has arrived by now.
    fn land(&mut self) -> usize {
        let mut n = 0;
        while self.flight.peek().is_some_and(|f| f.0.0 <= self.now) {
            let std::cmp::Reverse((_, _, to, data)) = self.flight.pop().expect("peeked");
            match to {
                To::Sender => self.sender.handle_datagram(self.now, &data),
                To::Receiver(i) => {
                    // Where feedback goes is the pair's to decide, not the datagram's.
                    let _ = self.receivers[i].handle_datagram(self.now, &data);
                }
            }
            n += 1;
        }
        n
    }

    /// Receiver `i` loses the `n`-th datagram when `lose(i, n)`.
    pub fn losing(mut self, lose: impl FnMut(usize, u64) -> bool + 'static) -> Self {
        self.lose = Box::new(lose);
        self
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One step: the clock first jumps to the earliest deadline (unless
    /// something is due now), then the sender's due datagrams go to every
    /// receiver (less losses), the receivers' feedback to where it goes, and
    /// events are collected. False once nothing is left to do: nothing
    /// happened and no deadline.
    pub fn step(&mut self) -> bool {
        self.step_within(None)
    }

    /// [`Pair::step`], with the clock jumping no further than `cap` (a
    /// deadline of the test's own, such as when it next sends).
    pub fn step_within(&mut self, cap: Option<Instant>) -> bool {
        self.steps += 1;
        let next = self
            .receivers
            .iter()
            .filter_map(Receiver::poll_timeout)
            .chain(self.sender.poll_timeout())
            .chain(self.flight.peek().map(|f| f.0.0))
            .chain(cap)
            .min();
        match next {
            Some(t) if t > self.now && !self.busy => self.now = t,
            // Due, but the last step did nothing about it: time moves on.
            Some(_) if self.idle_steps > 0 => self.now += Duration::from_micros(100),
            _ => {}
        }
        let now = self.now;
        let landed = self.land();
        self.sender.handle_timeout(now);
        let mut emitted = 0;
        while emitted < BURST
            && let Some(len) = self.sender.poll_transmit(now, &mut self.buf)
        {
            emitted += 1;
            self.sent += 1;
            for i in 0..self.receivers.len() {
                if (self.lose)(i, self.sent) {
                    continue;
                }
                if self.delay.is_zero() {
                    let _ = self.receivers[i].handle_datagram(now, &self.buf[..len]);
                } else {
                    let d = self.buf[..len].to_vec();
                    self.post(To::Receiver(i), &d);
                }
            }
        }
        let mut feedback = 0;
        for i in 0..self.receivers.len() {
            self.receivers[i].handle_timeout(now);
            while let Some((len, to)) = self.receivers[i].poll_transmit(now, &mut self.buf) {
                feedback += 1;
                if !self.delay.is_zero() {
                    let d = self.buf[..len].to_vec();
                    self.post(To::Sender, &d);
                    if to == Destination::Feedback {
                        for j in (0..self.receivers.len()).filter(|&j| j != i) {
                            self.post(To::Receiver(j), &d);
                        }
                    }
                    continue;
                }
                self.sender.handle_datagram(now, &self.buf[..len]);
                if to == Destination::Feedback {
                    for (j, peer) in self.receivers.iter_mut().enumerate() {
                        if j != i {
                            let _ = peer.handle_datagram(now, &self.buf[..len]);
                        }
                    }
                }
            }
            while let Some(e) = self.receivers[i].poll_event() {
                if let Some(o) = self.reassemblers[i].handle(e) {
                    self.objects[i].push(o);
                }
            }
        }
        while self.sender.poll_event().is_some() {}
        // An unpaced sender may have more at once.
        self.busy = emitted == BURST;
        let active = emitted > 0 || feedback > 0 || landed > 0;
        self.idle_steps = if active { 0 } else { self.idle_steps + 1 };
        active || next.is_some()
    }

    /// Steps until `done` holds, panicking after `max_steps` or if the
    /// pair falls idle first.
    pub fn drive(&mut self, max_steps: u64, mut done: impl FnMut(&Pair) -> bool) {
        while !done(self) {
            assert!(
                self.steps < max_steps,
                "not done after {max_steps} steps ({:?} simulated)",
                self.elapsed()
            );
            assert!(self.step(), "idle before done");
        }
    }

    /// Whether every receiver completed `n` objects.
    pub fn all_have(&self, n: usize) -> bool {
        self.objects.iter().all(|o| o.len() >= n)
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

/// Every datagram `sender` emits at `now`, until it has nothing more.
pub fn drain(sender: &mut Sender, now: Instant) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; groupcast::wire::MAX_DATAGRAM];
    let mut out = Vec::new();
    while let Some(n) = sender.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Every datagram a sender of `config` emits for `objects` (data, name),
/// all at one instant: for a bounded number of rounds, or one first pass.
pub fn datagrams_of(config: SenderConfig, objects: &[(&[u8], &str)]) -> Vec<Vec<u8>> {
    let mut s = Sender::new(config).expect("valid sender configuration");
    for (data, name) in objects {
        s.add_object(data.to_vec(), name).expect("a valid object");
    }
    drain(&mut s, Instant::now())
}

/// Every datagram of a small carousel (300-byte datagrams, blocks of 40
/// symbols, 20% repair) for `objects` in session `session`, over `rounds`
/// rounds.
pub fn transfer(session: u64, objects: &[(&[u8], &str)], rounds: u32) -> Vec<Vec<u8>> {
    let out = datagrams_of(
        SenderConfig {
            session: SessionId(session),
            max_datagram: 300,
            block_symbols: 40,
            interleave: 4,
            repair_overhead: 0.2,
            round_repair: 0.2,
            rounds: Rounds::Fixed(rounds),
            ..SenderConfig::default()
        },
        objects,
    );
    assert!(!out.is_empty(), "a transfer sends something");
    out
}

/// Feeds `packets` to `r` and returns each object it completes (the core's
/// [`Reassembler`]), with its session and id, name and bytes.
pub fn receive(
    r: &mut Receiver,
    packets: impl IntoIterator<Item = Vec<u8>>,
) -> Vec<((SessionId, ObjectId), String, Vec<u8>)> {
    let now = Instant::now();
    let mut objects = Reassembler::new();
    let mut done = Vec::new();
    for p in packets {
        let _ = r.handle_datagram(now, &p);
        while let Some(e) = r.poll_event() {
            if let Some(o) = objects.handle(e) {
                done.push(((o.session, o.object), o.name, o.data));
            }
        }
    }
    done
}
