//! Scenario running: one sender, N receivers, an event heap and a virtual clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use groupcast::{
    Destination, Receiver, ReceiverConfig, ReceiverEvent, Rounds, Sender, SenderConfig,
    SenderError, SenderStats,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::net::{Bottleneck, LinkConfig, Queue};

/// A whole scenario.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of receivers.
    pub receivers: usize,
    /// Impairments of each receiver's link (all alike).
    pub link: LinkConfig,
    /// Optional shared bottleneck in front of all links.
    pub bottleneck: Option<Bottleneck>,
    /// Seed of every random choice in the run.
    pub seed: u64,
    /// The sender's configuration. Its `rate` must be set: the simulator's
    /// clock only advances through pacing and delays.
    pub sender: SenderConfig,
    /// Every receiver's configuration.
    pub receiver: ReceiverConfig,
    /// Simulated time after which the run stops, finished or not.
    pub time_limit: Duration,
    /// Events after which the run stops, finished or not: a bound that catches
    /// a protocol that never goes idle.
    pub step_limit: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            receivers: 10,
            link: LinkConfig::default(),
            bottleneck: None,
            seed: 1,
            sender: SenderConfig {
                rate: Some(100_000_000 / 8),
                rounds: Rounds::Unlimited,
                ..SenderConfig::default()
            },
            receiver: ReceiverConfig::default(),
            time_limit: Duration::from_secs(3600),
            step_limit: 2_000_000_000,
        }
    }
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The sender refused its configuration or an object.
    #[error(transparent)]
    Sender(#[from] SenderError),
    /// The sender has no pacing rate.
    #[error("the simulated sender needs a pacing rate")]
    NoRate,
    /// A probability was outside 0..=1.
    #[error("{0} must lie between 0 and 1")]
    Probability(&'static str),
}

/// What happened to one receiver.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReceiverReport {
    /// Simulated seconds until every object completed, if they all did.
    pub completion_time_s: Option<f64>,
    /// Whether every object's delivered bytes equalled the source exactly.
    pub identical: bool,
    /// Datagrams that reached the receiver.
    pub packets_received: u64,
    /// Distinct symbols it buffered for decoding.
    pub symbols_accepted: u64,
    /// Duplicate or unneeded symbols.
    pub duplicates: u64,
    /// Datagrams rejected.
    pub packets_rejected: u64,
    /// Source symbols it still needed, for objects in progress, when the run ended.
    pub symbols_needed: u64,
    /// Highest buffered bytes.
    pub peak_buffered_bytes: u64,
    /// Objects that failed verification.
    pub objects_failed: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimReport {
    /// Receivers simulated.
    pub receivers: usize,
    /// Receivers that completed every object.
    pub completed_receivers: usize,
    /// Receivers whose every object was byte-identical to the source.
    pub identical_receivers: usize,
    /// Total source symbols over all objects (Σ K).
    pub source_symbols: u64,
    /// DATA packets (source and repair) the sender had sent when the packet
    /// that completed the last receiver left it: what the transfer needed. If a
    /// receiver never completed, everything sent.
    pub symbols_sent: u64,
    /// Of which repair (or replayed) symbols.
    pub repair_symbols: u64,
    /// Datagrams (DATA and OBJECT_INFO) sent, counted as `symbols_sent`.
    pub packets_sent: u64,
    /// Bytes of UDP payload sent, counted as `symbols_sent`.
    pub bytes_sent: u64,
    /// DATA packets sent in all, including those in flight when the run ended.
    pub symbols_sent_total: u64,
    /// Bytes sent in all, including those in flight when the run ended.
    pub bytes_sent_total: u64,
    /// Simulated seconds when the run ended.
    pub sim_time_s: f64,
    /// Events processed.
    pub steps: u64,
    /// BLAKE3 over the sequence of processed events: equal seeds give equal hashes.
    pub trace_hash: String,
    /// NACK packets the receivers sent.
    pub nacks_sent: u64,
    /// Block requests receivers held back because another's NACK covered them.
    pub nacks_suppressed: u64,
    /// NACK packets the sender accepted.
    pub nacks_received: u64,
    /// STATUS packets the receivers sent.
    pub status_sent: u64,
    /// Per-receiver outcomes.
    pub per_receiver: Vec<ReceiverReport>,
}

impl SimReport {
    /// Sorted completion times of the receivers that completed.
    pub fn completion_times(&self) -> Vec<f64> {
        let mut t: Vec<f64> = self
            .per_receiver
            .iter()
            .filter_map(|r| r.completion_time_s)
            .collect();
        t.sort_by(f64::total_cmp);
        t
    }

    /// The q-quantile (0..=1) of completion time, over completed receivers.
    pub fn completion_quantile(&self, q: f64) -> Option<f64> {
        let t = self.completion_times();
        if t.is_empty() {
            return None;
        }
        let i = ((t.len() - 1) as f64 * q).round() as usize;
        Some(t[i.min(t.len() - 1)])
    }
}

/// The sender's counters at the moment a packet left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sent {
    packets: u64,
    symbols: u64,
    repair: u64,
    bytes: u64,
}

impl Sent {
    fn of(st: &SenderStats) -> Self {
        Self {
            packets: st.packets_sent,
            symbols: st.source_symbols_sent + st.repair_symbols_sent,
            repair: st.repair_symbols_sent,
            bytes: st.bytes_sent,
        }
    }
}

#[derive(Debug)]
enum Event {
    SenderWake,
    Deliver {
        rx: u32,
        packet: Rc<[u8]>,
        sent: Sent,
    },
    ReceiverWake {
        rx: u32,
    },
    /// A receiver's feedback datagram reaches the sender.
    ToSender {
        packet: Rc<[u8]>,
    },
    /// Another receiver's NACK reaches a receiver (the feedback group).
    Overhear {
        rx: u32,
        packet: Rc<[u8]>,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Node {
    receiver: Receiver,
    rng: ChaCha8Rng,
    /// Bytes delivered and checked per object; `None` once a mismatch was seen.
    delivered: Vec<Option<u64>>,
    completed: Vec<bool>,
    completed_count: usize,
    mismatch: bool,
    done_at: Option<u64>,
    /// What the sender had sent when the packet that completed this receiver left it.
    done_sent: Sent,
    wake_at: Option<u64>,
}

/// A prepared scenario. Call [`Simulation::run`].
pub struct Simulation {
    config: SimConfig,
    objects: Vec<(Rc<[u8]>, String)>,
}

impl Simulation {
    /// A scenario with no objects yet.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        if config.sender.rate.is_none() {
            return Err(SimError::NoRate);
        }
        let l = &config.link;
        for (name, p) in [
            ("loss", l.loss),
            ("reorder", l.reorder),
            ("duplicate", l.duplicate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::Probability(name));
            }
        }
        Ok(Self {
            config,
            objects: Vec::new(),
        })
    }

    /// Adds an object for the sender to carry.
    pub fn add_object(&mut self, data: Vec<u8>, name: &str) {
        self.objects.push((data.into(), name.to_owned()));
    }

    /// Runs until every receiver has every object, the sender finishes and the
    /// network drains, or a limit is reached. `progress` is called now and then
    /// with (simulated seconds, receivers complete, symbols sent).
    pub fn run(self, mut progress: impl FnMut(f64, usize, u64)) -> Result<SimReport, SimError> {
        let cfg = &self.config;
        let mut sender = Sender::new(cfg.sender.clone())?;
        let mut source_symbols = 0u64;
        for (data, name) in &self.objects {
            let id = sender.add_object(data.to_vec(), name)?;
            let oti = sender.object_oti(id).expect("just added");
            source_symbols += oti.total_source_symbols();
        }
        let n_obj = self.objects.len();
        let mut nodes: Vec<Node> = (0..cfg.receivers)
            .map(|i| Node {
                receiver: Receiver::new(ReceiverConfig {
                    id: i as u64 + 1,
                    ..cfg.receiver.clone()
                }),
                rng: ChaCha8Rng::seed_from_u64(
                    cfg.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ),
                delivered: vec![Some(0); n_obj],
                completed: vec![false; n_obj],
                completed_count: 0,
                mismatch: false,
                done_at: if n_obj == 0 { Some(0) } else { None },
                done_sent: Sent::default(),
                wake_at: None,
            })
            .collect();

        let base = Instant::now();
        let at = |ns: u64| base + Duration::from_nanos(ns);
        let limit_ns = cfg.time_limit.as_nanos().min(u64::MAX as u128) as u64;
        let mut heap = BinaryHeap::new();
        let mut seq = 0u64;
        let mut push = |heap: &mut BinaryHeap<Reverse<Scheduled>>, at: u64, event: Event| {
            seq += 1;
            heap.push(Reverse(Scheduled { at, seq, event }));
        };
        push(&mut heap, 0, Event::SenderWake);

        let mut queue = Queue::default();
        let mut trace = blake3::Hasher::new();
        let mut buf = vec![0u8; cfg.sender.max_datagram];
        let mut fates = Vec::new();
        let mut fbuf = vec![0u8; groupcast::wire::DEFAULT_MAX_DATAGRAM];
        let mut feedback: Vec<u32> = Vec::new();
        let mut fanout: Vec<Rc<[u8]>> = Vec::new();
        let mut now_ns = 0u64;
        let mut steps = 0u64;
        let mut done = nodes.iter().filter(|n| n.done_at.is_some()).count();
        // Deliveries and sender wakes still in the heap; once none remain and the
        // sender has finished, only receiver timers are left and the run is over.
        let mut live = 1u64;
        let mut sender_wake: Option<u64> = None;

        while let Some(Reverse(s)) = heap.pop() {
            if done == nodes.len() || s.at > limit_ns || steps >= cfg.step_limit {
                break;
            }
            if live == 0 && sender.is_finished() {
                break;
            }
            now_ns = s.at;
            steps += 1;
            if !matches!(s.event, Event::ReceiverWake { .. }) {
                live -= 1;
            }
            let now = at(now_ns);
            match s.event {
                Event::SenderWake => {
                    trace.update(&[0]);
                    trace.update(&now_ns.to_le_bytes());
                    sender.handle_timeout(now);
                    while let Some(len) = sender.poll_transmit(now, &mut buf) {
                        let packet: Rc<[u8]> = Rc::from(&buf[..len]);
                        let sent = Sent::of(sender.stats());
                        let depart = match &cfg.bottleneck {
                            Some(b) => match queue.push(b, now_ns, len) {
                                Some(t) => t,
                                None => continue,
                            },
                            None => now_ns,
                        };
                        // Fan the packet out in one pass over the receivers.
                        for (rx, node) in nodes.iter_mut().enumerate() {
                            cfg.link.fate(&mut node.rng, &mut fates);
                            if node.done_at.is_some() {
                                continue;
                            }
                            for d in &fates {
                                let when = depart + d.as_nanos() as u64;
                                live += 1;
                                push(
                                    &mut heap,
                                    when,
                                    Event::Deliver {
                                        rx: rx as u32,
                                        packet: packet.clone(),
                                        sent,
                                    },
                                );
                            }
                        }
                    }
                    while sender.poll_event().is_some() {}
                    if let Some(t) = sender.poll_timeout() {
                        let t_ns = t.saturating_duration_since(base).as_nanos() as u64;
                        let t_ns = t_ns.max(now_ns + 1);
                        // One pending wake at a time; feedback adds immediate ones.
                        if sender_wake.is_none_or(|w| w <= now_ns || t_ns < w) {
                            sender_wake = Some(t_ns);
                            live += 1;
                            push(&mut heap, t_ns, Event::SenderWake);
                        }
                    }
                }
                Event::Deliver { rx, packet, sent } => {
                    trace.update(&[1]);
                    trace.update(&now_ns.to_le_bytes());
                    trace.update(&rx.to_le_bytes());
                    let node = &mut nodes[rx as usize];
                    node.receiver.handle_datagram(now, &packet);
                    Self::drain(&self.objects, node, now_ns, &mut done);
                    if node.done_at == Some(now_ns) && node.done_sent == Sent::default() {
                        node.done_sent = sent;
                    }
                    feedback.push(rx);
                }
                Event::ReceiverWake { rx } => {
                    trace.update(&[2]);
                    trace.update(&now_ns.to_le_bytes());
                    trace.update(&rx.to_le_bytes());
                    let node = &mut nodes[rx as usize];
                    if node.wake_at == Some(now_ns) {
                        node.wake_at = None;
                        node.receiver.handle_timeout(now);
                        Self::drain(&self.objects, node, now_ns, &mut done);
                        feedback.push(rx);
                    }
                }
                Event::ToSender { packet } => {
                    trace.update(&[3]);
                    trace.update(&now_ns.to_le_bytes());
                    sender.handle_datagram(now, &packet);
                    // The sender may have something to say now: wake it.
                    live += 1;
                    push(&mut heap, now_ns, Event::SenderWake);
                }
                Event::Overhear { rx, packet } => {
                    trace.update(&[4]);
                    trace.update(&now_ns.to_le_bytes());
                    trace.update(&rx.to_le_bytes());
                    let node = &mut nodes[rx as usize];
                    if node.done_at.is_none() {
                        node.receiver.handle_datagram(now, &packet);
                        feedback.push(rx);
                    }
                }
            }
            // Receivers' feedback: STATUS to the sender, NACKs to the sender and
            // every other receiver, each through its link's impairments.
            for rx in feedback.drain(..) {
                let node = &mut nodes[rx as usize];
                while let Some((len, to)) = node.receiver.poll_transmit(now, &mut fbuf) {
                    let packet: Rc<[u8]> = Rc::from(&fbuf[..len]);
                    cfg.link.fate(&mut node.rng, &mut fates);
                    for d in &fates {
                        live += 1;
                        let when = now_ns + d.as_nanos() as u64;
                        push(
                            &mut heap,
                            when,
                            Event::ToSender {
                                packet: packet.clone(),
                            },
                        );
                    }
                    if to == Destination::Feedback {
                        fanout.push(packet);
                    }
                }
                Self::schedule_wake(node, rx, base, &mut heap, &mut push);
                for packet in fanout.drain(..) {
                    for (other, peer) in nodes.iter_mut().enumerate() {
                        if other as u32 == rx || peer.done_at.is_some() {
                            continue;
                        }
                        // Each copy crosses the sender's link to that peer and back.
                        cfg.link.fate(&mut peer.rng, &mut fates);
                        for d in &fates {
                            live += 1;
                            let when = now_ns + 2 * d.as_nanos() as u64;
                            push(
                                &mut heap,
                                when,
                                Event::Overhear {
                                    rx: other as u32,
                                    packet: packet.clone(),
                                },
                            );
                        }
                    }
                }
            }
            if steps.is_multiple_of(65_536) {
                progress(now_ns as f64 / 1e9, done, sender.stats().packets_sent);
            }
        }
        let stats = sender.stats();
        progress(now_ns as f64 / 1e9, done, stats.packets_sent);
        let rx_sum = |f: fn(&groupcast::ReceiverStats) -> u64| -> u64 {
            nodes.iter().map(|n| f(n.receiver.stats())).sum()
        };
        let nacks_sent = rx_sum(|s| s.nacks_sent);
        let nacks_suppressed = rx_sum(|s| s.nacks_suppressed);
        let status_sent = rx_sum(|s| s.status_sent);
        let per_receiver: Vec<ReceiverReport> = nodes
            .iter()
            .map(|n| {
                let s = n.receiver.stats();
                ReceiverReport {
                    completion_time_s: n.done_at.map(|t| t as f64 / 1e9),
                    identical: n.done_at.is_some() && !n.mismatch,
                    packets_received: s.packets_received,
                    symbols_accepted: s.symbols_accepted,
                    duplicates: s.duplicates,
                    packets_rejected: s.packets_rejected,
                    symbols_needed: n.receiver.symbols_needed(),
                    peak_buffered_bytes: s.peak_buffered_bytes,
                    objects_failed: s.objects_failed,
                }
            })
            .collect();
        // If everyone completed, count what had been sent when the last needed
        // packet left the sender; packets still in flight then were not needed.
        let total = Sent::of(stats);
        let needed = if done == nodes.len() && n_obj > 0 {
            nodes
                .iter()
                .map(|n| n.done_sent)
                .max_by_key(|s| s.packets)
                .unwrap_or(total)
        } else {
            total
        };
        Ok(SimReport {
            receivers: cfg.receivers,
            completed_receivers: done,
            identical_receivers: per_receiver.iter().filter(|r| r.identical).count(),
            source_symbols,
            symbols_sent: needed.symbols,
            repair_symbols: needed.repair,
            packets_sent: needed.packets,
            bytes_sent: needed.bytes,
            symbols_sent_total: total.symbols,
            bytes_sent_total: total.bytes,
            sim_time_s: now_ns as f64 / 1e9,
            steps,
            trace_hash: trace.finalize().to_hex().to_string(),
            nacks_sent,
            nacks_suppressed,
            nacks_received: stats.nacks_received,
            status_sent,
            per_receiver,
        })
    }

    /// Handles a receiver's events: checks delivered bytes against the source.
    fn drain(objects: &[(Rc<[u8]>, String)], node: &mut Node, now_ns: u64, done: &mut usize) {
        while let Some(event) = node.receiver.poll_event() {
            match event {
                ReceiverEvent::BlockDecoded {
                    object,
                    offset,
                    data,
                    ..
                } => {
                    let i = object.0 as usize;
                    let Some((src, _)) = objects.get(i) else {
                        node.mismatch = true;
                        continue;
                    };
                    let ok = src
                        .get(offset as usize..offset as usize + data.len())
                        .is_some_and(|s| s == &data[..]);
                    node.delivered[i] = match (ok, node.delivered[i]) {
                        (true, Some(n)) => Some(n + data.len() as u64),
                        _ => None,
                    };
                }
                ReceiverEvent::ObjectComplete { object, size, .. } => {
                    let i = object.0 as usize;
                    if i >= objects.len() || node.completed[i] {
                        node.mismatch = true;
                        continue;
                    }
                    if node.delivered[i] != Some(size) || objects[i].0.len() as u64 != size {
                        node.mismatch = true;
                    }
                    node.completed[i] = true;
                    node.completed_count += 1;
                    if node.completed_count == objects.len() {
                        node.done_at = Some(now_ns);
                        *done += 1;
                    }
                }
                ReceiverEvent::ObjectFailed { object, .. } => {
                    if let Some(d) = node.delivered.get_mut(object.0 as usize) {
                        *d = Some(0);
                    }
                }
                ReceiverEvent::ObjectAnnounced { .. } => {}
            }
        }
    }

    fn schedule_wake(
        node: &mut Node,
        rx: u32,
        base: Instant,
        heap: &mut BinaryHeap<Reverse<Scheduled>>,
        push: &mut impl FnMut(&mut BinaryHeap<Reverse<Scheduled>>, u64, Event),
    ) {
        if node.done_at.is_some() {
            return;
        }
        if let Some(t) = node.receiver.poll_timeout() {
            let t_ns = t.saturating_duration_since(base).as_nanos() as u64;
            if node.wake_at != Some(t_ns) {
                node.wake_at = Some(t_ns);
                push(heap, t_ns, Event::ReceiverWake { rx });
            }
        }
    }
}

/// The first-round repair share a carousel needs so that a receiver behind
/// independent loss `loss` decodes a block of `k` symbols in the first round with
/// high probability: enough symbols that K + 2 arrive even three standard
/// deviations below the mean.
pub fn carousel_overhead(loss: f64, k: u32) -> f64 {
    let p = loss.clamp(0.0, 0.99);
    let need = k as f64 + 2.0;
    let mut n = need / (1.0 - p);
    for _ in 0..50 {
        let sd = (n * p * (1.0 - p)).sqrt();
        n = (need + 3.0 * sd) / (1.0 - p);
    }
    (n / k as f64 - 1.0).max(0.0)
}
