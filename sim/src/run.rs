//! Scenario running: one sender, N receivers, an event heap and a virtual clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcast::{
    CodecSet, Destination, Receiver, ReceiverConfig, ReceiverEvent, Rounds, Sender, SenderConfig,
    SenderError, SenderStats,
};

use crate::net::{Bottleneck, Fate, LinkConfig, LinkRng, LinkState, Queue};

/// A whole scenario.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of receivers.
    pub receivers: usize,
    /// Impairments of each receiver's link (all alike, but see `receiver_loss`).
    pub link: LinkConfig,
    /// A loss list for mixed groups: receiver i's link loses `receiver_loss[i]`
    /// instead of `link.loss`. Receivers past the end of the list use
    /// `link.loss`.
    pub receiver_loss: Vec<f64>,
    /// Loss on the shared upstream link between the sender and every
    /// receiver (the root of a tree): a packet lost there is lost to all.
    /// Feedback to the sender crosses it too.
    pub upstream_loss: f64,
    /// Receivers that join late or leave early. Every other receiver is
    /// present from the start to the end.
    pub membership: Vec<Membership>,
    /// Optional shared bottleneck in front of all links.
    pub bottleneck: Option<Bottleneck>,
    /// Seed of every random choice in the run.
    pub seed: u64,
    /// The sender's configuration. Its `rate` must be set: the simulator's
    /// clock only advances through pacing and delays. Its `codecs` are
    /// replaced by the scenario's.
    pub sender: SenderConfig,
    /// Every receiver's configuration (`id` and `codecs` are set per run).
    pub receiver: ReceiverConfig,
    /// Real RaptorQ, or its statistical model for large runs
    /// ([`groupcast_fec::Model`]): with the model, decoded blocks carry no
    /// bytes and byte identity is not checked.
    pub codecs: CodecSet,
    /// Threads that fan packets out to large groups (0: one per core, at
    /// most 8). Results do not depend on it: receivers' outputs are applied
    /// in receiver order.
    pub threads: usize,
    /// Simulated time after which the run stops, finished or not.
    pub time_limit: Duration,
    /// Events after which the run stops, finished or not: a bound that catches
    /// a protocol that never goes idle.
    pub step_limit: u64,
}

/// Receivers `first..first + count` join at `join` and, if `leave` is set,
/// leave at `leave` (whether complete or not).
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// Index of the first receiver concerned.
    pub first: usize,
    /// How many receivers.
    pub count: usize,
    /// When they join (zero: from the start).
    pub join: Duration,
    /// When they leave, if they do.
    pub leave: Option<Duration>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            receivers: 10,
            link: LinkConfig::default(),
            receiver_loss: Vec::new(),
            upstream_loss: 0.0,
            membership: Vec::new(),
            bottleneck: None,
            seed: 1,
            sender: SenderConfig {
                rate: Some(100_000_000 / 8),
                rounds: Rounds::Unlimited,
                ..SenderConfig::default()
            },
            receiver: ReceiverConfig::default(),
            codecs: CodecSet::Real,
            threads: 0,
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
    /// A membership change names receivers that do not exist.
    #[error("membership change for receivers {first}..{end} but there are only {receivers}")]
    Membership {
        /// First receiver named.
        first: usize,
        /// One past the last.
        end: usize,
        /// Receivers in the scenario.
        receivers: usize,
    },
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
    /// Simulated seconds at which it joined.
    pub joined_at_s: f64,
    /// Simulated seconds at which it left, if it left before completing.
    pub left_at_s: Option<f64>,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimReport {
    /// Receivers simulated.
    pub receivers: usize,
    /// Receivers that completed every object.
    pub completed_receivers: usize,
    /// Receivers whose every object was byte-identical to the source (with
    /// the model codec: whose every block was handed out exactly once).
    pub identical_receivers: usize,
    /// Receivers that left before completing.
    pub left_receivers: usize,
    /// Whether bytes were checked against the source (false with the model codec).
    pub bytes_verified: bool,
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
    /// Packets handed to receivers (data, and NACKs overheard).
    pub deliveries: u64,
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
    /// Of them, STATUS no PROBE asked for: a receiver lagging the sender's
    /// Limit, or losing more than its Loss.
    pub status_unasked: u64,
    /// STATUS packets the sender accepted.
    pub status_received: u64,
    /// The sender's group size estimate when the run ended.
    pub group_estimate: u64,
    /// The sender's GRTT estimate when the run ended, microseconds.
    pub sender_grtt_us: u64,
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

    /// Highest bytes any receiver buffered at once.
    pub fn peak_receiver_buffer_bytes(&self) -> u64 {
        self.per_receiver
            .iter()
            .map(|p| p.peak_buffered_bytes)
            .max()
            .unwrap_or(0)
    }

    /// DATA packets sent per source symbol, until the last receiver completed: E\[M\].
    pub fn transmissions_per_symbol(&self) -> f64 {
        if self.source_symbols == 0 {
            return 0.0;
        }
        self.symbols_sent as f64 / self.source_symbols as f64
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
    /// A multicast packet reaches every receiver after the links' base delay:
    /// one event for the whole group, fanned out in one pass.
    Multicast {
        packet: Rc<[u8]>,
        sent: Sent,
    },
    /// One copy for one receiver that took longer than the base delay
    /// (jitter, reordering, duplication). `sent` is `None` for feedback.
    Deliver {
        rx: u32,
        packet: Rc<[u8]>,
        sent: Option<Sent>,
    },
    ReceiverWake {
        rx: u32,
    },
    /// A receiver's feedback datagram reaches the sender.
    ToSender {
        packet: Rc<[u8]>,
    },
    /// A receiver's NACK reaches the other receivers (the feedback group), one
    /// event for the group.
    Overhear {
        from: u32,
        packet: Rc<[u8]>,
    },
    Join {
        rx: u32,
    },
    Leave {
        rx: u32,
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
    link: LinkState,
    /// Bytes delivered and checked per object; `None` once a mismatch was seen.
    delivered: Vec<Option<u64>>,
    /// Blocks handed out per object (checked instead of bytes with the model codec).
    blocks: Vec<u32>,
    completed: Vec<bool>,
    completed_count: usize,
    mismatch: bool,
    done_at: Option<u64>,
    /// What the sender had sent when the packet that completed this receiver left it.
    done_sent: Sent,
    wake_at: Option<u64>,
    joined_at: u64,
    /// Present: joined and not left.
    present: bool,
    left_at: Option<u64>,
}

impl Node {
    /// Whether packets still reach and matter to this receiver.
    fn listening(&self) -> bool {
        self.present && self.done_at.is_none()
    }
}

/// A prepared scenario. Call [`Simulation::run`].
pub struct Simulation {
    config: SimConfig,
    objects: Vec<(Arc<[u8]>, String)>,
}

/// An object as the simulator checks it.
struct Source {
    data: Arc<[u8]>,
    blocks: u32,
}

/// What handling a packet or timer at one receiver asks of the event loop.
/// Receivers are handled apart (in parallel for a large group) and their
/// outputs applied afterwards in receiver order, so a run does not depend on
/// how many threads ran it.
enum Out {
    /// A copy of the packet being fanned out, for `rx`, arriving at `at`.
    Later { rx: u32, at: u64 },
    /// A feedback datagram from `rx`, with its fate on `rx`'s link; `group`
    /// if it goes to the feedback group too.
    Feedback {
        packet: Box<[u8]>,
        fate: Fate,
        group: bool,
        rx: u32,
    },
    /// `rx`'s next timer.
    Wake { rx: u32, at: u64 },
    /// `rx` completed.
    Done,
}

impl Out {
    fn digest(&self) -> u64 {
        match self {
            Out::Later { rx, at } => mix(1 ^ (*rx as u64) << 8) ^ at,
            Out::Feedback { rx, packet, .. } => mix(2 ^ (*rx as u64) << 8) ^ packet.len() as u64,
            Out::Wake { rx, at } => mix(3 ^ (*rx as u64) << 8) ^ at,
            Out::Done => 4,
        }
    }
}

/// What a receiver's handling reads besides its own node.
struct Ctx<'a> {
    sources: &'a [Source],
    verify: bool,
    base: Instant,
    link: &'a LinkConfig,
}

impl Ctx<'_> {
    /// Hands a packet to a receiver and settles what follows.
    #[allow(clippy::too_many_arguments)]
    fn receive(
        &self,
        node: &mut Node,
        rx: u32,
        now_ns: u64,
        packet: &[u8],
        sent: Option<Sent>,
        fbuf: &mut [u8],
        out: &mut Vec<Out>,
    ) {
        let now = self.base + Duration::from_nanos(now_ns);
        // The simulated network has no addresses to learn: what was taken
        // shows in the receiver's counters and events.
        let _ = node.receiver.handle_datagram(now, packet);
        self.settle(node, rx, now_ns, fbuf, out);
        if let Some(sent) = sent
            && node.done_at == Some(now_ns)
            && node.done_sent == Sent::default()
        {
            node.done_sent = sent;
        }
    }

    /// After a receiver handled something: check what it handed out, collect
    /// its feedback, and note its next timer.
    fn settle(&self, node: &mut Node, rx: u32, now_ns: u64, fbuf: &mut [u8], out: &mut Vec<Out>) {
        let now = self.base + Duration::from_nanos(now_ns);
        if drain(self.sources, self.verify, node, now_ns) {
            out.push(Out::Done);
        }
        while let Some((len, to)) = node.receiver.poll_transmit(now, fbuf) {
            let fate = self.link.fate(&mut node.link);
            out.push(Out::Feedback {
                packet: fbuf[..len].into(),
                fate,
                group: to == Destination::Feedback,
                rx,
            });
        }
        if !node.listening() {
            return;
        }
        // A wake is scheduled only if it comes before the one pending: a
        // deadline that moved later (as the idle timer does with every packet)
        // is found when the pending wake fires, so there is no event per
        // receiver per packet, and no pile of stale ones.
        if let Some(t) = node.receiver.poll_timeout() {
            let t_ns = (t.saturating_duration_since(self.base).as_nanos() as u64).max(now_ns + 1);
            if node.wake_at.is_none_or(|w| t_ns < w) {
                node.wake_at = Some(t_ns);
                out.push(Out::Wake { rx, at: t_ns });
            }
        }
    }

    /// One pass of a fan-out over `nodes` (receivers `first..`): copies that
    /// arrive after the base delay are handled at once, later ones are
    /// returned as [`Out::Later`]. Returns the packets handed over.
    #[allow(clippy::too_many_arguments)]
    fn fan_out(
        &self,
        nodes: &mut [Node],
        first: u32,
        now_ns: u64,
        packet: &[u8],
        sent: Option<Sent>,
        except: u32,
        fbuf: &mut [u8],
        out: &mut Vec<Out>,
    ) -> u64 {
        let mut handed = 0;
        for (i, node) in nodes.iter_mut().enumerate() {
            let rx = first + i as u32;
            if rx == except || !node.listening() {
                continue;
            }
            let fate = self.link.fate(&mut node.link);
            for &extra in fate.extra() {
                if extra == 0 {
                    handed += 1;
                    self.receive(node, rx, now_ns, packet, sent, fbuf, out);
                } else {
                    out.push(Out::Later {
                        rx,
                        at: now_ns + extra,
                    });
                }
            }
        }
        handed
    }
}

/// Per-thread scratch space of a fan-out.
#[derive(Default)]
struct Lane {
    out: Vec<Out>,
    fbuf: Vec<u8>,
}

/// The state of a run.
struct World<'a> {
    cfg: &'a SimConfig,
    sources: Vec<Source>,
    nodes: Vec<Node>,
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    /// Deliveries and sender wakes still in the heap; once none remain and the
    /// sender has finished, only receiver timers are left and the run is over.
    live: u64,
    base: Instant,
    delay_ns: u64,
    lanes: Vec<Lane>,
    /// Receivers complete.
    done: usize,
    /// Receivers that left before completing.
    gone: usize,
    /// Packets handed to receivers.
    deliveries: u64,
    /// Generator of the shared upstream link.
    upstream: LinkRng,
    verify: bool,
}

/// Fewest receivers per thread worth a thread of its own in a fan-out.
const RECEIVERS_PER_THREAD: usize = 1024;

impl World<'_> {
    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        if !matches!(event, Event::ReceiverWake { .. }) {
            self.live += 1;
        }
        self.heap.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn finished(&self) -> bool {
        self.done + self.gone == self.nodes.len()
    }

    fn upstream_lost(&mut self) -> bool {
        self.cfg.upstream_loss > 0.0 && self.upstream.random() < self.cfg.upstream_loss
    }

    /// What receivers' handling reads, beside the receivers themselves.
    fn split(&mut self) -> (Ctx<'_>, &mut [Node]) {
        (
            Ctx {
                sources: &self.sources,
                verify: self.verify,
                base: self.base,
                link: &self.cfg.link,
            },
            &mut self.nodes,
        )
    }

    /// Hands a packet to receiver `rx` alone.
    fn deliver(&mut self, rx: u32, now_ns: u64, packet: &Rc<[u8]>, sent: Option<Sent>) {
        let mut lane = std::mem::take(&mut self.lanes[0]);
        let (ctx, nodes) = self.split();
        ctx.receive(
            &mut nodes[rx as usize],
            rx,
            now_ns,
            packet,
            sent,
            &mut lane.fbuf,
            &mut lane.out,
        );
        self.deliveries += 1;
        self.apply(&mut lane.out, now_ns, packet, sent);
        self.lanes[0] = lane;
    }

    /// Runs receiver `rx`'s timers.
    fn wake(&mut self, rx: u32, now_ns: u64) {
        let node = &mut self.nodes[rx as usize];
        if node.wake_at != Some(now_ns) || !node.listening() {
            return;
        }
        node.wake_at = None;
        node.receiver
            .handle_timeout(self.base + Duration::from_nanos(now_ns));
        let mut lane = std::mem::take(&mut self.lanes[0]);
        let (ctx, nodes) = self.split();
        ctx.settle(
            &mut nodes[rx as usize],
            rx,
            now_ns,
            &mut lane.fbuf,
            &mut lane.out,
        );
        let none: Rc<[u8]> = Rc::from(&[][..]);
        self.apply(&mut lane.out, now_ns, &none, None);
        self.lanes[0] = lane;
    }

    /// Fans a packet out to every listening receiver but `except`, in one
    /// pass (split over threads for a large group). Returns a digest of the
    /// pass, for the trace.
    fn fan_out(&mut self, now_ns: u64, packet: &Rc<[u8]>, sent: Option<Sent>, except: u32) -> u64 {
        let threads = self
            .lanes
            .len()
            .min(self.nodes.len() / RECEIVERS_PER_THREAD)
            .max(1);
        let chunk = self.nodes.len().div_ceil(threads).max(1);
        let mut lanes = std::mem::take(&mut self.lanes);
        let (ctx, nodes) = self.split();
        let bytes: &[u8] = packet;
        let handed: u64 = if threads == 1 {
            let lane = &mut lanes[0];
            ctx.fan_out(
                nodes,
                0,
                now_ns,
                bytes,
                sent,
                except,
                &mut lane.fbuf,
                &mut lane.out,
            )
        } else {
            std::thread::scope(|s| {
                let mut parts = nodes.chunks_mut(chunk).zip(lanes.iter_mut());
                let (head, head_lane) = parts.next().expect("at least one chunk");
                let ctx = &ctx;
                let handles: Vec<_> = parts
                    .enumerate()
                    .map(|(i, (nodes, lane))| {
                        let first = ((i + 1) * chunk) as u32;
                        s.spawn(move || {
                            ctx.fan_out(
                                nodes,
                                first,
                                now_ns,
                                bytes,
                                sent,
                                except,
                                &mut lane.fbuf,
                                &mut lane.out,
                            )
                        })
                    })
                    .collect();
                let mut handed = ctx.fan_out(
                    head,
                    0,
                    now_ns,
                    bytes,
                    sent,
                    except,
                    &mut head_lane.fbuf,
                    &mut head_lane.out,
                );
                for h in handles {
                    handed += h.join().expect("fan-out thread panicked");
                }
                handed
            })
        };
        self.deliveries += handed;
        // The digest covers what the receivers asked for, in receiver order,
        // whatever the number of lanes.
        let mut digest = mix(handed);
        for lane in &mut lanes {
            for o in &lane.out {
                digest = mix(digest ^ o.digest());
            }
            self.apply(&mut lane.out, now_ns, packet, sent);
        }
        self.lanes = lanes;
        digest
    }

    /// Applies receivers' outputs, in order.
    fn apply(&mut self, out: &mut Vec<Out>, now_ns: u64, packet: &Rc<[u8]>, sent: Option<Sent>) {
        for o in out.drain(..) {
            match o {
                Out::Later { rx, at } => self.push(
                    at,
                    Event::Deliver {
                        rx,
                        packet: packet.clone(),
                        sent,
                    },
                ),
                Out::Feedback {
                    packet,
                    fate,
                    group,
                    rx,
                } => {
                    let packet: Rc<[u8]> = packet.into();
                    if !self.upstream_lost() {
                        for &extra in fate.extra() {
                            let at = now_ns + self.delay_ns + extra;
                            self.push(
                                at,
                                Event::ToSender {
                                    packet: packet.clone(),
                                },
                            );
                        }
                    }
                    if group {
                        self.push(
                            now_ns + 2 * self.delay_ns,
                            Event::Overhear { from: rx, packet },
                        );
                    }
                }
                Out::Wake { rx, at } => self.push(at, Event::ReceiverWake { rx }),
                Out::Done => self.done += 1,
            }
        }
    }
}

impl Lane {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            fbuf: vec![0u8; groupcast::wire::DEFAULT_MAX_DATAGRAM],
        }
    }
}

impl Simulation {
    /// A scenario with no objects yet.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        if config.sender.rate.is_none() {
            return Err(SimError::NoRate);
        }
        let l = &config.link;
        let mut probabilities = vec![
            ("loss", l.loss),
            ("reorder", l.reorder),
            ("duplicate", l.duplicate),
            ("upstream loss", config.upstream_loss),
        ];
        if let Some(b) = &l.burst {
            probabilities.push(("burst p_enter", b.p_enter));
            probabilities.push(("burst p_leave", b.p_leave));
        }
        probabilities.extend(
            config
                .receiver_loss
                .iter()
                .map(|&p| ("a loss list entry", p)),
        );
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::Probability(name));
            }
        }
        for m in &config.membership {
            let end = m.first.saturating_add(m.count);
            if end > config.receivers {
                return Err(SimError::Membership {
                    first: m.first,
                    end,
                    receivers: config.receivers,
                });
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

    /// Runs until every receiver has every object (or left), the sender
    /// finishes and the network drains, or a limit is reached. `progress` is
    /// called now and then with (simulated seconds, receivers complete,
    /// packets sent).
    pub fn run(self, mut progress: impl FnMut(f64, usize, u64)) -> Result<SimReport, SimError> {
        let cfg = &self.config;
        let mut sender = Sender::new(SenderConfig {
            codecs: cfg.codecs,
            ..cfg.sender.clone()
        })?;
        let mut source_symbols = 0u64;
        let mut sources = Vec::new();
        for (data, name) in &self.objects {
            let id = sender.add_object(data.to_vec(), name)?;
            let oti = sender.object_oti(id).expect("just added");
            source_symbols += oti.total_source_symbols();
            sources.push(Source {
                data: data.clone(),
                blocks: oti.source_blocks(),
            });
        }
        let n_obj = self.objects.len();
        let threads = match cfg.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            n => n,
        };
        let mut joins = vec![(0u64, None); cfg.receivers];
        for m in &cfg.membership {
            for j in &mut joins[m.first..m.first + m.count] {
                *j = (
                    m.join.as_nanos() as u64,
                    m.leave.map(|l| l.as_nanos() as u64),
                );
            }
        }
        let nodes: Vec<Node> = (0..cfg.receivers)
            .map(|i| Node {
                receiver: Receiver::new(ReceiverConfig {
                    id: i as u64 + 1,
                    codecs: cfg.codecs,
                    ..cfg.receiver.clone()
                }),
                link: LinkState {
                    rng: LinkRng::seed_from_u64(
                        cfg.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    ),
                    loss: cfg.receiver_loss.get(i).copied().unwrap_or(cfg.link.loss),
                    bad: false,
                },
                delivered: vec![Some(0); n_obj],
                blocks: vec![0; n_obj],
                completed: vec![false; n_obj],
                completed_count: 0,
                mismatch: false,
                done_at: None,
                done_sent: Sent::default(),
                wake_at: None,
                joined_at: joins[i].0,
                present: false,
                left_at: None,
            })
            .collect();
        let mut w = World {
            cfg,
            sources,
            nodes,
            heap: BinaryHeap::new(),
            seq: 0,
            live: 0,
            base: Instant::now(),
            delay_ns: cfg.link.delay.as_nanos() as u64,
            lanes: (0..threads).map(|_| Lane::new()).collect(),
            done: 0,
            gone: 0,
            deliveries: 0,
            upstream: LinkRng::seed_from_u64(cfg.seed ^ 0x0005_eed0_fa11),
            verify: cfg.codecs == CodecSet::Real,
        };
        for (rx, &(join, leave)) in joins.iter().enumerate() {
            let rx = rx as u32;
            if n_obj == 0 {
                w.nodes[rx as usize].done_at = Some(0);
                w.done += 1;
                continue;
            }
            w.push(join, Event::Join { rx });
            if let Some(leave) = leave {
                w.push(leave.max(join), Event::Leave { rx });
            }
        }
        w.push(0, Event::SenderWake);

        let limit_ns = cfg.time_limit.as_nanos().min(u64::MAX as u128) as u64;
        let mut queue = Queue::default();
        let mut trace = blake3::Hasher::new();
        let mut buf = vec![0u8; cfg.sender.max_datagram];
        let mut now_ns = 0u64;
        let mut steps = 0u64;
        let mut sender_wake: Option<u64> = None;
        let mut next_progress = 0u64;
        let base = w.base;

        while let Some(Reverse(s)) = w.heap.pop() {
            if w.finished() || s.at > limit_ns || steps >= cfg.step_limit {
                break;
            }
            if w.live == 0 && sender.is_finished() {
                break;
            }
            now_ns = s.at;
            steps += 1;
            if !matches!(s.event, Event::ReceiverWake { .. }) {
                w.live -= 1;
            }
            let now = base + Duration::from_nanos(now_ns);
            trace.update(&now_ns.to_le_bytes());
            match s.event {
                Event::SenderWake => {
                    trace.update(&[0]);
                    sender.handle_timeout(now);
                    while let Some(len) = sender.poll_transmit(now, &mut buf) {
                        let sent = Sent::of(sender.stats());
                        let depart = match &cfg.bottleneck {
                            Some(b) => match queue.push(b, now_ns, len) {
                                Some(t) => t,
                                None => continue,
                            },
                            None => now_ns,
                        };
                        if w.upstream_lost() {
                            continue;
                        }
                        let packet: Rc<[u8]> = Rc::from(&buf[..len]);
                        w.push(depart + w.delay_ns, Event::Multicast { packet, sent });
                    }
                    while sender.poll_event().is_some() {}
                    if let Some(t) = sender.poll_timeout() {
                        let t_ns = t.saturating_duration_since(base).as_nanos() as u64;
                        let t_ns = t_ns.max(now_ns + 1);
                        // One pending wake at a time; feedback adds immediate ones.
                        if sender_wake.is_none_or(|x| x <= now_ns || t_ns < x) {
                            sender_wake = Some(t_ns);
                            w.push(t_ns, Event::SenderWake);
                        }
                    }
                }
                Event::Multicast { packet, sent } => {
                    let digest = w.fan_out(now_ns, &packet, Some(sent), u32::MAX);
                    trace.update(&[1]);
                    trace.update(&digest.to_le_bytes());
                }
                Event::Deliver { rx, packet, sent } => {
                    trace.update(&[2]);
                    trace.update(&rx.to_le_bytes());
                    if w.nodes[rx as usize].listening() {
                        w.deliver(rx, now_ns, &packet, sent);
                    }
                }
                Event::ReceiverWake { rx } => {
                    trace.update(&[3]);
                    trace.update(&rx.to_le_bytes());
                    w.wake(rx, now_ns);
                }
                Event::ToSender { packet } => {
                    trace.update(&[4]);
                    sender.handle_datagram(now, &packet);
                    // The sender may have something to say now: wake it.
                    w.push(now_ns, Event::SenderWake);
                }
                Event::Overhear { from, packet } => {
                    let digest = w.fan_out(now_ns, &packet, None, from);
                    trace.update(&[5]);
                    trace.update(&digest.to_le_bytes());
                }
                Event::Join { rx } => {
                    trace.update(&[6]);
                    w.nodes[rx as usize].present = true;
                }
                Event::Leave { rx } => {
                    trace.update(&[7]);
                    let node = &mut w.nodes[rx as usize];
                    node.present = false;
                    if node.done_at.is_none() {
                        node.left_at = Some(now_ns);
                        w.gone += 1;
                    }
                }
            }
            if w.deliveries >= next_progress {
                next_progress = w.deliveries + (1 << 20);
                progress(now_ns as f64 / 1e9, w.done, sender.stats().packets_sent);
            }
        }
        let stats = sender.stats();
        progress(now_ns as f64 / 1e9, w.done, stats.packets_sent);
        let nodes = &w.nodes;
        let rx_sum = |f: fn(&groupcast::ReceiverStats) -> u64| -> u64 {
            nodes.iter().map(|n| f(n.receiver.stats())).sum()
        };
        let nacks_sent = rx_sum(|s| s.nacks_sent);
        let nacks_suppressed = rx_sum(|s| s.nacks_suppressed);
        let status_sent = rx_sum(|s| s.status_sent);
        let status_unasked = rx_sum(|s| s.status_unasked);
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
                    joined_at_s: n.joined_at as f64 / 1e9,
                    left_at_s: n.left_at.map(|t| t as f64 / 1e9),
                }
            })
            .collect();
        // If everyone still present completed, count what had been sent when
        // the last needed packet left the sender; packets still in flight then
        // were not needed.
        let total = Sent::of(stats);
        let needed = if w.finished() && w.done > 0 && n_obj > 0 {
            nodes
                .iter()
                .filter(|n| n.done_at.is_some())
                .map(|n| n.done_sent)
                .max_by_key(|s| s.packets)
                .unwrap_or(total)
        } else {
            total
        };
        Ok(SimReport {
            receivers: cfg.receivers,
            completed_receivers: w.done,
            identical_receivers: per_receiver.iter().filter(|r| r.identical).count(),
            left_receivers: w.gone,
            bytes_verified: w.verify,
            source_symbols,
            symbols_sent: needed.symbols,
            repair_symbols: needed.repair,
            packets_sent: needed.packets,
            bytes_sent: needed.bytes,
            symbols_sent_total: total.symbols,
            bytes_sent_total: total.bytes,
            sim_time_s: now_ns as f64 / 1e9,
            steps,
            deliveries: w.deliveries,
            trace_hash: trace.finalize().to_hex().to_string(),
            nacks_sent,
            nacks_suppressed,
            nacks_received: stats.nacks_received,
            status_sent,
            status_unasked,
            status_received: stats.status_received,
            group_estimate: stats.group_estimate,
            sender_grtt_us: stats.grtt_us,
            per_receiver,
        })
    }
}

/// Handles a receiver's events: checks delivered bytes (or, with the model
/// codec, blocks) against the source. Returns whether it just completed.
fn drain(sources: &[Source], verify: bool, node: &mut Node, now_ns: u64) -> bool {
    let mut completed = false;
    while let Some(event) = node.receiver.poll_event() {
        match event {
            ReceiverEvent::BlockDecoded {
                object,
                offset,
                data,
                ..
            } => {
                let i = object.0 as usize;
                let Some(src) = sources.get(i) else {
                    node.mismatch = true;
                    continue;
                };
                node.blocks[i] += 1;
                if !verify {
                    continue;
                }
                let ok = src
                    .data
                    .get(offset as usize..offset as usize + data.len())
                    .is_some_and(|s| s == &data[..]);
                node.delivered[i] = match (ok, node.delivered[i]) {
                    (true, Some(n)) => Some(n + data.len() as u64),
                    _ => None,
                };
            }
            ReceiverEvent::ObjectComplete { object, size, .. } => {
                let i = object.0 as usize;
                if i >= sources.len() || node.completed[i] {
                    node.mismatch = true;
                    continue;
                }
                let src = &sources[i];
                let whole = if verify {
                    node.delivered[i] == Some(size)
                } else {
                    node.blocks[i] == src.blocks
                };
                if !whole || src.data.len() as u64 != size {
                    node.mismatch = true;
                }
                node.completed[i] = true;
                node.completed_count += 1;
                if node.completed_count == sources.len() {
                    node.done_at = Some(now_ns);
                    completed = true;
                }
            }
            ReceiverEvent::ObjectFailed { object, .. } => {
                if let Some(d) = node.delivered.get_mut(object.0 as usize) {
                    *d = Some(0);
                    node.blocks[object.0 as usize] = 0;
                }
            }
            _ => {}
        }
    }
    completed
}

/// splitmix64, for the trace digest of a fan-out pass.
fn mix(z: u64) -> u64 {
    groupcast_fec::splitmix64(z)
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
