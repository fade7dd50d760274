//! The sending side of the carousel.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcast_fec::{BlockInfo, CodecSet, FecId, Oti, OtiError, codec_for, copy_source_symbol};

use super::encoders::{BlockBytes, Encoders};
pub use super::encoders::{BuiltEncoder, EncoderRequest};
use super::feedback::{FeedbackConfig, FlowPolicy, Mode};
use super::pacing::TokenBucket;
use super::rate::{RateControl, RttFilter};
use super::repair::RepairScheduler;
use super::roster::{Refusal, Roster, prefix_of};
use super::schedule::{Cursor, InfoSchedule, Lead, LeadRepeat, Step};
use super::timer::{Timer, TimerTable};
use super::{ObjectId, SessionId};
use crate::wire::{
    self, DATA_OVERHEAD, DEFAULT_MAX_DATAGRAM, INFO_HEADER_LEN, InfoRepr, MAX_DATAGRAM,
    MAX_NAME_LEN, SYMBOL_ALIGNMENT,
};

/// How many times the sender goes over its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounds {
    /// Stop after this many rounds (at least 1).
    Fixed(u32),
    /// Loop and repeat until the driver stops: a carousel for late joiners.
    Unlimited,
}

/// Sender settings. Start from [`SenderConfig::default`].
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Session id stamped on every datagram.
    pub session: SessionId,
    /// Largest datagram (UDP payload) to emit. Default 1232, the IPv6 minimum MTU less headers.
    pub max_datagram: usize,
    /// Symbol size T. `None` picks the largest multiple of 4 that fits `max_datagram`.
    pub symbol_size: Option<u16>,
    /// Wanted source symbols per block (K). Default 1000.
    pub block_symbols: u32,
    /// FEC scheme. Default RaptorQ.
    pub fec: FecId,
    /// Repair share of the first round: each block sends K source symbols and
    /// ceil(K × this) fresh repair symbols. Default 0.1.
    pub repair_overhead: f64,
    /// Repair share of every later round: ceil(K × this) fresh repair symbols per
    /// block. Default 0.1. With [`FecId::NoCode`] later rounds replay every source
    /// symbol instead.
    pub round_repair: f64,
    /// Number of rounds. Default `Fixed(1)`.
    pub rounds: Rounds,
    /// Pacing rate in bytes of UDP payload per second; `None` sends unpaced.
    pub rate: Option<u64>,
    /// Token bucket depth in bytes: how far a paced sender may burst, at
    /// least. Default 16 KiB.
    pub burst: u64,
    /// How late the driver may wake for a pacing deadline. The bucket holds
    /// at least `rate` × this (up to [`MAX_PACING_CATCH_UP`] bytes), so that
    /// a late wake-up is made up for, not lost. Default 8 ms: an idle
    /// machine wakes the io driver within a millisecond, but on a busy one
    /// (receivers and their decoders sharing the cores) wake-ups several
    /// milliseconds late are common, and each would lower the rate for good.
    pub pacing_granularity: Duration,
    /// The hop limit the driver sends multicast with, announced in PROBEs so
    /// that receivers send their feedback as far. Default 8, as the socket
    /// driver's `NetConfig`: up to 7 multicast routers.
    pub hops: u8,
    /// Blocks interleaved together, so a burst of loss is spread over this many
    /// blocks. Receivers buffer about this many blocks at once. Default 16.
    pub interleave: u32,
    /// An OBJECT_INFO packet is repeated after this many DATA packets. Default 64.
    pub info_interval: u32,
    /// Hand block-encoder builds to the driver, which runs this many worker
    /// threads for them (see [`Sender::poll_encoder_request`]). Default 0:
    /// each encoder is built inline at its block's first repair symbol. The
    /// datagrams are the same either way; workers only take the encoding work
    /// off the sending thread. The sender itself never starts a thread.
    pub encoder_threads: usize,
    /// With encoder workers, a repair symbol of a block of 500 symbols or
    /// more whose encoder a worker is building waits for it (up to 50 ms)
    /// instead of the sending thread building it a second time.
    /// `groupcast send` turns it on; default off (the message layer keeps it
    /// off: see docs/architecture.md).
    pub wait_for_encoders: bool,
    /// How loss is recovered. Default [`Mode::Carousel`]. In nack mode the
    /// sender uses the Compact No-Code scheme whatever `fec` says; in nack and
    /// hybrid modes `rounds` is ignored: the sender makes one pass, then
    /// answers NACKs until every receiver it tracks is complete.
    pub mode: Mode,
    /// Feedback settings (nack and hybrid modes).
    pub feedback: FeedbackConfig,
    /// Which codecs serve `fec`. Default [`CodecSet::Real`]; simulations of
    /// large groups use [`CodecSet::Model`] (repair symbols are then zeros).
    pub codecs: CodecSet,
    /// Protect the first object (a file transfer's manifest, which receivers
    /// need before they take anything else) in every first pass or round: it
    /// gets ceil(K / 2) + 3 further fresh repair symbols (RaptorQ), its
    /// OBJECT_INFO is repeated every `LEAD_INFO_INTERVAL` (2) DATA packets, and
    /// amid later objects it comes round again every
    /// `LEAD_REPEAT_INTERVAL` (256) DATA packets, so that a receiver that lost it,
    /// or joined late, has it again without a round trip. Default false.
    pub lead_protection: bool,
    /// Nack and hybrid first pass: an object of one source symbol (a batch of
    /// messages that fits in one datagram) goes out twice, its OBJECT_INFO
    /// and its DATA packet, while a tracked receiver reports loss, so that
    /// one lost packet costs no NACK round: a lost batch otherwise waits a
    /// NACK backoff and the repair, which on a LAN is more than its share of
    /// a 5 ms flush delay. Both copies must be lost to cost a round
    /// (about p² instead of 2p). The `Publisher` sets it. Default false.
    pub copy_single_symbol_objects: bool,
}

/// How long a STATUS with BUSY holds the fallback off (protocol.md §13.4,
/// "Fallback"): two and a half of the receivers' keep-alive intervals
/// ([`crate::proto::KEEPALIVE`]), since a receiver whose window
/// stands still may report no oftener.
pub const BUSY_HOLD: Duration = Duration::from_millis(2500);

/// DATA packets between two OBJECT_INFO of the first object under
/// [`SenderConfig::lead_protection`].
pub const LEAD_INFO_INTERVAL: u32 = 2;

/// Buffers of evicted blocks kept for the driver's next reads.
const SPARE_BLOCK_BUFFERS: usize = 2;

/// DATA packets of later objects between two repeats of the first one (its
/// OBJECT_INFO, then one of its source symbols, in turn) under
/// [`SenderConfig::lead_protection`]: a receiver that missed the manifest has
/// it again within this many packets, at a cost of 2 / 256 of the traffic.
pub const LEAD_REPEAT_INTERVAL: u32 = 256;

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            session: SessionId(1),
            max_datagram: DEFAULT_MAX_DATAGRAM,
            symbol_size: None,
            block_symbols: 1000,
            fec: FecId::RaptorQ,
            repair_overhead: 0.1,
            round_repair: 0.1,
            rounds: Rounds::Fixed(1),
            rate: None,
            burst: 16 * 1024,
            pacing_granularity: Duration::from_millis(8),
            hops: 8,
            interleave: 16,
            info_interval: 64,
            encoder_threads: 0,
            wait_for_encoders: false,
            lead_protection: false,
            copy_single_symbol_objects: false,
            mode: Mode::Carousel,
            feedback: FeedbackConfig::default(),
            codecs: CodecSet::Real,
        }
    }
}

/// Most bytes a late wake-up lets a paced sender make up for at once (see
/// [`SenderConfig::pacing_granularity`]): 1 MiB, 8 ms at 1 Gbit/s, so that
/// above that rate a catch-up burst stays within a socket buffer.
pub const MAX_PACING_CATCH_UP: u64 = 1 << 20;

/// Largest first-round or later-round repair share (× K) a sender accepts.
pub const MAX_REPAIR_OVERHEAD: f64 = 100.0;
/// Largest `repair_share` (a multiple of the rate) a sender accepts.
pub const MAX_REPAIR_SHARE: f64 = 100.0;

impl SenderConfig {
    /// The symbol size T this configuration uses.
    pub fn effective_symbol_size(&self) -> u16 {
        self.symbol_size.unwrap_or_else(|| {
            let room = self
                .max_datagram
                .saturating_sub(DATA_OVERHEAD)
                .min(u16::MAX as usize);
            let al = SYMBOL_ALIGNMENT as usize;
            (room / al * al) as u16
        })
    }

    /// Checks every setting, as [`Sender::new`] does: the one place the
    /// sender's ranges are defined (drivers name their flags, but check
    /// against these).
    pub fn validate(&self) -> Result<(), SenderError> {
        if !(DATA_OVERHEAD + 4..=MAX_DATAGRAM).contains(&self.max_datagram) {
            return Err(SenderError::MaxDatagram(self.max_datagram));
        }
        let t = self.effective_symbol_size();
        let max_t = self.max_datagram - DATA_OVERHEAD;
        if t == 0 || t as usize > max_t || !t.is_multiple_of(SYMBOL_ALIGNMENT as u16) {
            return Err(SenderError::SymbolSize { t, max: max_t });
        }
        if !(0.0..=MAX_REPAIR_OVERHEAD).contains(&self.repair_overhead)
            || !(0.0..=MAX_REPAIR_OVERHEAD).contains(&self.round_repair)
        {
            return Err(SenderError::Config("repair shares must lie in 0..=100"));
        }
        if self.block_symbols == 0 || self.interleave == 0 || self.info_interval == 0 {
            return Err(SenderError::Config(
                "block_symbols, interleave and info_interval must be at least 1",
            ));
        }
        if self.rounds == Rounds::Fixed(0) {
            return Err(SenderError::Config("rounds must be at least 1"));
        }
        if self.rate == Some(0) {
            return Err(SenderError::Config("rate must be above 0"));
        }
        if self.pacing_granularity > Duration::from_secs(1) {
            return Err(SenderError::Config(
                "pacing_granularity must be at most 1 s",
            ));
        }
        let fb = &self.feedback;
        if !(fb.repair_share > 0.0 && fb.repair_share <= MAX_REPAIR_SHARE) {
            return Err(SenderError::Config("repair_share must lie in (0, 100]"));
        }
        if !(0.0..=100.0).contains(&fb.aggregation) || fb.flow_window == 0 {
            return Err(SenderError::Config(
                "aggregation must lie in 0..=100 and flow_window be at least 1",
            ));
        }
        if fb.flow_window_bytes == 0 {
            return Err(SenderError::Config("flow_window_bytes must be at least 1"));
        }
        if fb.probe_interval.is_zero() || fb.min_grtt.is_zero() || fb.min_grtt > fb.max_grtt {
            return Err(SenderError::Config(
                "probe_interval and min_grtt must be above 0, and min_grtt at most max_grtt",
            ));
        }
        if fb.max_receivers_per_prefix == 0 || fb.new_receivers_per_prefix == 0 {
            return Err(SenderError::Config(
                "max_receivers_per_prefix and new_receivers_per_prefix must be at least 1",
            ));
        }
        if let FlowPolicy::Quorum(0) = fb.policy {
            return Err(SenderError::Config("a quorum must be at least 1"));
        }
        if let Some(a) = fb.aimd
            && !(a.decrease > 0.0 && a.decrease < 1.0 && (0.0..=1.0).contains(&a.loss_threshold))
        {
            return Err(SenderError::Config(
                "AIMD decrease must lie in (0, 1) and loss_threshold in 0..=1",
            ));
        }
        Ok(())
    }
}

/// Why a sender refused its configuration or an object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SenderError {
    /// `max_datagram` is outside what the format allows.
    #[error("max datagram {0} is outside {min}..={MAX_DATAGRAM}", min = DATA_OVERHEAD + 4)]
    MaxDatagram(usize),
    /// The symbol size does not fit a datagram or is not a multiple of the alignment.
    #[error(
        "symbol size {t} must be a non-zero multiple of {SYMBOL_ALIGNMENT} and at most {max} (max datagram less {DATA_OVERHEAD} bytes of header)"
    )]
    SymbolSize {
        /// Symbol size asked for.
        t: u16,
        /// Largest that fits.
        max: usize,
    },
    /// A share or count in the configuration is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The object cannot be described by an OTI.
    #[error("object cannot be sent: {0}")]
    Object(#[from] OtiError),
    /// The object's name is too long for an OBJECT_INFO packet.
    #[error("object name is {len} bytes; at most {max} fit")]
    NameTooLong {
        /// Length of the name.
        len: usize,
        /// Longest that fits.
        max: usize,
    },
    /// The session already holds 2^32 objects.
    #[error("too many objects in one session")]
    TooManyObjects,
}

/// Something the sender wants its driver to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderEvent {
    /// A round over all objects finished (numbered from 1).
    RoundComplete {
        /// The round that finished.
        round: u32,
    },
    /// The last round finished (carousel), or every tracked receiver is
    /// complete and the linger passed (nack, hybrid): nothing more to send.
    Finished,
    /// A receiver started reporting (nack, hybrid).
    ReceiverJoined {
        /// The receiver's id.
        id: u64,
    },
    /// A tracked receiver was silent for `receiver_timeout` and no longer counts.
    ReceiverTimedOut {
        /// The receiver's id.
        id: u64,
    },
    /// After the first pass the sender heard no feedback that moves anything
    /// (no NACK, no STATUS with progress) for a while, with receivers
    /// unfinished or none heard at all: it sends a carousel-like round of
    /// fresh repair for every block not known to be complete everywhere, at
    /// half the rate (numbered from 1; at most `fallback_rounds`). Feedback
    /// may not reach it: the receivers' hop limit, the feedback group's
    /// routing, a firewall.
    FallbackRound {
        /// The round, from 1.
        round: u32,
    },
    /// A tracked receiver reported no progress for `stall_timeout`: it no
    /// longer holds back flow control or completion, until it moves again.
    ReceiverStalled {
        /// The receiver's id.
        id: u64,
        /// Its window edge (global block sequence number).
        edge: u64,
    },
}

/// Counters kept by a [`Sender`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Datagrams emitted.
    pub packets_sent: u64,
    /// Bytes of UDP payload emitted.
    pub bytes_sent: u64,
    /// DATA packets carrying a source symbol.
    pub source_symbols_sent: u64,
    /// DATA packets carrying a repair symbol (or, with no-code, a replayed source symbol).
    pub repair_symbols_sent: u64,
    /// OBJECT_INFO packets emitted.
    pub info_packets_sent: u64,
    /// Rounds completed.
    pub rounds_completed: u32,
    /// PROBE packets emitted.
    pub probes_sent: u64,
    /// NACK packets accepted for processing.
    pub nacks_received: u64,
    /// NACK packets dropped by the NACK rate limit.
    pub nacks_dropped: u64,
    /// NACK entries ignored: repair for the block was queued or had just gone out.
    pub nack_entries_ignored: u64,
    /// NACK entries naming an object, block or ESI that does not exist.
    pub nack_entries_invalid: u64,
    /// STATUS packets accepted.
    pub status_received: u64,
    /// Feedback datagrams refused (malformed, another session, or a sender's packet).
    pub feedback_rejected: u64,
    /// Receivers tracked now.
    pub receivers_tracked: u64,
    /// Receivers that ever started tracking (a receiver that times out and
    /// comes back counts again).
    pub receivers_heard: u64,
    /// STATUS reports of ids not tracked that were dropped because a cap on
    /// new receivers was reached, whatever the cap (the four counters below
    /// say which). An id keeps being refused until there is room for it.
    pub receivers_refused: u64,
    /// Of those, refused because `max_receivers` are tracked.
    pub receivers_refused_table: u64,
    /// Of those, refused because their address has
    /// `max_receivers_per_source` ids tracked.
    pub receivers_refused_source: u64,
    /// Of those, refused because their /64 has `max_receivers_per_prefix`
    /// ids tracked.
    pub receivers_refused_prefix: u64,
    /// Of those, refused because their /64 admitted
    /// `new_receivers_per_prefix` new ids a second lately.
    pub receivers_refused_rate: u64,
    /// When the sender finished: ids refused within `receiver_timeout`
    /// before and never admitted since (at least 1 if there were more than
    /// it could remember). They may be receivers that lack what was sent:
    /// the sender cannot say that every receiver is complete.
    pub receivers_left_refused: u64,
    /// Distinct /64s (IPv4: addresses) receivers were ever admitted from:
    /// what `min_receivers` counts (with receivers heard without an
    /// address, one each). At most `max_receivers`.
    pub receiver_prefixes_heard: u64,
    /// Tracked receivers dropped for silence.
    pub receivers_timed_out: u64,
    /// Times flow control held the first pass back.
    pub flow_blocked: u64,
    /// RaptorQ encoders built to answer NACKs (each charged an eighth of its
    /// block's bytes to the build budget, refilled at the repair rate).
    pub encoders_built_for_repair: u64,
    /// RaptorQ encoders built on the sending thread: with encoder workers,
    /// those not back in time (0 when the workers keep up).
    pub encoders_built_inline: u64,
    /// Of those, builds a worker had started too, so done twice.
    pub encoders_built_twice: u64,
    /// Blocks handed over by the driver ([`Sender::handle_block`]).
    pub blocks_loaded: u64,
    /// Bytes of handed-over blocks held now.
    pub loaded_bytes: u64,
    /// The most bytes of handed-over blocks held at once.
    pub peak_loaded_bytes: u64,
    /// The current GRTT estimate, microseconds.
    pub grtt_us: u64,
    /// The current pacing rate in bytes per second (0 if unpaced).
    pub rate: u64,
    /// Receivers declared stalled (see `stall_timeout`), counted each time.
    pub receivers_stalled: u64,
    /// Tracked receivers stalled and not complete when the sender finished:
    /// it did not wait for them.
    pub receivers_left_stalled: u64,
    /// Fallback repair rounds sent for want of feedback (see
    /// [`SenderEvent::FallbackRound`]).
    pub fallback_rounds: u64,
    /// NACK packets dropped by the per-source rate limit.
    pub nacks_dropped_per_source: u64,
    /// STATUS echoes that matched no recent PROBE, or whose round trip was
    /// implausible; not used for the GRTT.
    pub echoes_refused: u64,
}

struct Object {
    id: ObjectId,
    /// The whole object, or `None` when the driver supplies it block by
    /// block ([`Sender::add_object_blocks`]).
    data: Option<Arc<Vec<u8>>>,
    oti: Oti,
    hash: [u8; 32],
    name: String,
}

/// A block of an object added with [`Sender::add_object_blocks`] that the
/// sender needs: read `len` bytes at `offset` of the object and hand them to
/// [`Sender::handle_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRequest {
    /// The object.
    pub object: ObjectId,
    /// Its block.
    pub sbn: u8,
    /// The block's first byte within the object.
    pub offset: u64,
    /// The block's length in bytes.
    pub len: usize,
}

/// Blocks of block-supplied objects the sender holds: those it was handed,
/// at most `capacity`, the least recently used evicted first, and those
/// asked for and not yet handed.
struct LoadedBlocks {
    blocks: HashMap<(u32, u8), Arc<Vec<u8>>>,
    /// Least recently used first.
    order: VecDeque<(u32, u8)>,
    asked: HashSet<(u32, u8)>,
    requests: VecDeque<BlockRequest>,
    capacity: usize,
    bytes: u64,
    /// Buffers of evicted blocks nobody else held, emptied, for the driver
    /// to read the next blocks into ([`Sender::take_block_buffer`]).
    spare: Vec<Vec<u8>>,
}

struct Window {
    first: u32,
    plan: VecDeque<(u8, u32)>,
    /// Symbols of the plan passed over because the driver had not handed
    /// their block over yet, by block (`sbn - first`), in plan order; no
    /// slots for an object held whole.
    deferred: Vec<VecDeque<u32>>,
    /// The slot of `deferred` looked at first next: the blocks take turns.
    next_deferred: usize,
    /// Hybrid first pass: the proactive repair is still to be sized (from
    /// the reports in by the time the window's planned symbols are out) and
    /// planned.
    proactive_due: bool,
    /// Proactive repair symbols already in `plan`, by block (`sbn - first`):
    /// planned with the source symbols when the window opened with loss
    /// reported, so that `plan_proactive` adds only what later reports ask
    /// for beyond them.
    proactive_planned: Vec<u32>,
    /// How many times the plan holds each source symbol (more than once:
    /// its OBJECT_INFO goes before each copy).
    copies: usize,
    /// The encoders its repair needs have been asked for. A hybrid first
    /// pass at zero reported loss asks for none; the first report of loss
    /// asks for them at once, while the window's source symbols go out, so
    /// that its proactive repair does not wait on builds.
    encoders_asked: bool,
    /// Blocks whose encoders are asked for later, as the plan gets to them:
    /// (the plan's length at which to ask, SBN), latest-asked last. A
    /// staggered window asks for each block's encoder half a window before
    /// its first repair symbol rather than all at its opening, so that the
    /// encoders of the window before stay in the cache while the NACKs for
    /// its last blocks come in (see `encoder_requests`).
    encoders_due: VecDeque<(usize, u8)>,
}

impl Window {
    /// Whether symbols are left to send, planned or passed over.
    fn pending(&self) -> bool {
        !self.plan.is_empty() || self.deferred.iter().any(|d| !d.is_empty())
    }
}

/// Where [`Sender::front_held`] took a symbol from.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Plan,
    Deferred(usize),
}

/// What the sender knows of a receiver that reports (nack, hybrid).
struct Tracked {
    last_heard: Instant,
    /// Global block sequence number of the receiver's window edge.
    edge: u64,
    complete: bool,
    /// Its hold credit as of `credit_at` (`FeedbackConfig::stall_timeout`):
    /// spent while it holds the sender back ([`Sender::holds_back`]), earned
    /// back as its edge moves.
    credit: Duration,
    credit_at: Instant,
    /// Out of credit: it holds nothing back.
    stalled: bool,
    /// The address its first STATUS came from, if the driver said.
    source: Option<std::net::IpAddr>,
    /// Its least recent round trips.
    rtt: RttFilter,
    /// The Timestamp its latest accepted echo named: a later echo may not
    /// name an earlier PROBE.
    echo: Option<u64>,
    /// Distinct PROBEs its accepted echoes named (at most 2): only from the
    /// second on may its samples raise the GRTT.
    echoed: u8,
    /// Its reported loss, averaged (0..=0.5): [`average_loss`].
    loss: f64,
    /// Measured loss reports (STATUS with LOSS) averaged into `loss`; none
    /// yet, it does not count in [`Sender::reported_loss`].
    loss_reports: u32,
    /// `loss`'s standard deviation over √(p(1 − p)), at most: each report's
    /// 1 / √(Loss span) averaged as `loss` is (the deviation of an average
    /// of correlated estimates is at most the average of theirs); 0 for
    /// reports without a span.
    loss_sd: f64,
}

/// The hold credit that new receiver ids share: the first id heard gets all
/// of `stall_timeout`; each later one what is left here, plus what its lead
/// over the highest edge a new id was first heard at earns (at most all of
/// it), and that becomes what is left. It runs down with time while some
/// receiver that counts holds the sender back. So fresh ids, each a step
/// ahead of the last, hold the sender no longer than one id's steps could (a
/// forger's ids get little; a receiver that joins late starts with what is
/// left, all of it if nobody held the sender back so far, and once it has
/// none holds the sender only after it moves); and a sender started before
/// its receivers, with nobody to wait for, keeps the whole of it for them.
#[derive(Debug, Clone, Copy)]
struct Newcomers {
    edge: u64,
    credit: Duration,
    /// When it last ran down (the periodic check).
    at: Instant,
}

/// Reports after which a receiver's average loss becomes a running average
/// of weight 1/`LOSS_REPORTS_AVERAGED`.
const LOSS_REPORTS_AVERAGED: u32 = 16;

/// One fewer of `counts[a]` (receivers or bindings of address `a`); the
/// entry goes at zero, so that the map holds only addresses in use.
fn uncount(counts: &mut HashMap<std::net::IpAddr, usize>, a: std::net::IpAddr) {
    if let Entry::Occupied(mut n) = counts.entry(a) {
        *n.get_mut() -= 1;
        if *n.get() == 0 {
            n.remove();
        }
    }
}

/// A receiver's loss from its reports: the mean of its first
/// [`LOSS_REPORTS_AVERAGED`], then a running average of that weight. Each
/// report is itself a receiver's running average over a few PROBE intervals,
/// which at 10% loss and a few hundred packets per interval still swings by a
/// fifth either way; proactive repair sized from the largest of a group's
/// raw reports would pay for those swings (in scenario S1, 2-3% more than
/// the loss).
pub(super) fn average_loss(previous: f64, reports: u32, reported: f64) -> f64 {
    let n = reports.min(LOSS_REPORTS_AVERAGED - 1) as f64 + 1.0;
    previous + (reported - previous) / n
}

/// The loss the neediest of a group probably has, from each receiver's
/// average loss p and its deviation factor s (`Tracked::loss_sd`): the
/// largest of p − (E(G) − 1)·σ (at most p), where E(G) is the expected
/// largest of G standard normal draws (one σ stays for the estimate's own
/// error), G the receivers given, and σ the smaller of s·√(p(1 − p))
/// (what the reports' spans allow, at most) and the standard deviation of
/// the G losses (what the group's reports show: the sender's average of a
/// receiver's reports is steadier than the reports, and by the spans alone
/// the correction would take 1000 receivers at 10% for 9.2%, and their
/// blocks to NACKs). Each p is an estimate: at G = 1000, 25% loss and a span
/// of 2000 DATA, the largest of the raw estimates runs 3.2 standard
/// deviations (3 points of loss) high, and proactive repair sized from it
/// overshoots the ideal code by 5%. The z of [`super::repair::proactive_repair`] then covers
/// the worst of the group's draws of each block. `None` without receivers.
///
/// With `first` (a first sizing that a later one tops up, from receivers'
/// first reports: [`Sender::restage_window`]), no σ stays, and σ is what
/// the spans allow alone: for a report or two they are exact, and the
/// spread of a few reports is itself noise (of three receivers at 10%, a
/// close three would have a window restaged for 11.4%).
pub(super) fn neediest_loss(counted: impl Iterator<Item = (f64, f64)>, first: bool) -> Option<f64> {
    let all: Vec<(f64, f64)> = counted.collect();
    let g = all.len() as f64;
    let mean = all.iter().map(|r| r.0).sum::<f64>() / g;
    let spread = if first {
        f64::INFINITY
    } else if all.len() > 1 {
        (all.iter().map(|r| (r.0 - mean).powi(2)).sum::<f64>() / (g - 1.0)).sqrt()
    } else {
        0.0
    };
    // One standard deviation stays, for the estimate's own error.
    let kept = if first { 0.0 } else { 1.0 };
    let e = (expected_max_normal(all.len()) - kept).max(0.0);
    all.iter()
        .map(|&(p, s)| {
            let sd = (s * (p * (1.0 - p)).max(0.0).sqrt()).min(spread);
            (p - e * sd).max(0.0)
        })
        .reduce(f64::max)
}

/// The expected largest of `n` independent standard normal draws,
/// interpolated in ln n between computed points (0 for n ≤ 1).
pub(super) fn expected_max_normal(n: usize) -> f64 {
    const POINTS: [(f64, f64); 13] = [
        (1.0, 0.0),
        (2.0, 0.5642),
        (3.0, 0.8463),
        (5.0, 1.1630),
        (10.0, 1.5388),
        (20.0, 1.8675),
        (50.0, 2.2491),
        (100.0, 2.5076),
        (1000.0, 3.2414),
        (10_000.0, 3.8516),
        (20_000.0, 4.0188),
        (50_000.0, 4.2305),
        (100_000.0, 4.3843),
    ];
    let x = (n.max(1) as f64).ln();
    let mut prev = POINTS[0];
    for &(m, e) in &POINTS[1..] {
        if (n as f64) <= m {
            let (a, b) = (prev.0.ln(), m.ln());
            return prev.1 + (e - prev.1) * (x - a) / (b - a);
        }
        prev = (m, e);
    }
    prev.1
}

/// A token bucket for one NACK source.
struct SourceBucket {
    bucket: TokenBucket,
    last: Instant,
}

/// Source addresses whose NACK buckets are kept at once.
const MAX_NACK_SOURCES: usize = 4096;

/// PROBE timestamps remembered, so that a STATUS echo must name a recent one.
const PROBE_HISTORY: usize = 64;

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
    /// Blocks the first pass may run ahead of the flow-control edge: the
    /// smaller of `flow_window` and `flow_window_bytes` in blocks of K × T.
    flow_blocks: u64,
    /// Whether the FEC scheme makes repair symbols (else rounds replay source).
    repairs: bool,
    objects: Vec<Object>,
    /// Global sequence number of each object's block 0.
    prefix: Vec<u64>,
    /// Where the carousel (or first pass) is.
    cursor: Cursor,
    window: Option<Window>,
    encoders: Encoders,
    loaded: LoadedBlocks,
    /// When the object being sent repeats its OBJECT_INFO.
    info: InfoSchedule,
    /// The first object's repeats amid later ones
    /// ([`SenderConfig::lead_protection`]).
    lead: LeadRepeat,
    finished: bool,
    /// Until when the next datagram waits for an encoder a worker is
    /// building (see `Encoders::building_elsewhere`), rather than build it
    /// a second time here.
    encoder_wait: Option<Instant>,
    /// Pacing: bytes the sender may send now.
    pacing: TokenBucket,
    last: Option<Instant>,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
    // Feedback modes.
    epoch: Option<Instant>,
    /// GRTT, AIMD and the receivers' average loss.
    rc: RateControl,
    first_pass_done: bool,
    /// When the first pass ended.
    first_pass_at: Option<Instant>,
    /// When feedback that moves something (an accepted NACK, a STATUS whose
    /// window moved or that completed) last came.
    feedback_at: Option<Instant>,
    /// When the last fallback round was queued.
    fallback_at: Option<Instant>,
    /// When the last STATUS with BUSY came: the fallback waits
    /// [`BUSY_HOLD`] from it.
    busy_at: Option<Instant>,
    receivers: HashMap<u64, Tracked>,
    /// PROBE, receiver expiry and linger deadlines.
    timers: TimerTable,
    /// NACKs gathered, repair queued, blocks quiet after their repair.
    repair: RepairScheduler,
    info_queue: VecDeque<u32>,
    repair_tokens: TokenBucket,
    build_tokens: TokenBucket,
    nack_tokens: TokenBucket,
    feedback_last: Option<Instant>,
    /// NACK rate buckets per source address.
    nack_sources: HashMap<std::net::IpAddr, SourceBucket>,
    /// Where ids not yet tracked were first heard from, in a NACK: the id
    /// stays bound to that address, so that a forger who read it off the
    /// NACK cannot be first to report under it. Oldest first; at most
    /// `max_receivers`.
    nack_ids: HashMap<u64, std::net::IpAddr>,
    nack_id_order: VecDeque<u64>,
    /// Ids bound in `nack_ids` per address: at most `max_receivers_per_source`.
    nack_ids_per_source: HashMap<std::net::IpAddr, usize>,
    /// Ids bound in `nack_ids` per /64: at most `max_receivers_per_prefix`.
    nack_ids_per_prefix: HashMap<std::net::IpAddr, usize>,
    /// Which new receiver ids are admitted: caps per address, per /64 and
    /// over time, and the ids refused.
    roster: Roster,
    /// Timestamps of the latest PROBEs sent.
    probe_times: VecDeque<u64>,
    /// The highest window edge at which a receiver was declared stalled.
    stall_floor: Option<u64>,
    /// Whether, at the last periodic check, flow control's edge (by the
    /// policy) was a flow window behind the first pass: receivers a window
    /// behind then hold the sender back ([`Sender::holds_back`]).
    flow_held: bool,
    /// The hold credit new receiver ids start from (`None` before the
    /// first): [`Newcomers`].
    newcomers: Option<Newcomers>,
    /// More objects may come ([`Sender::set_open`]): never finished.
    open: bool,
    /// Objects before this one are retired ([`Sender::retire_before`]).
    retired: u32,
}

impl Sender {
    /// Checks the configuration and makes an idle sender.
    pub fn new(mut config: SenderConfig) -> Result<Self, SenderError> {
        config.validate()?;
        let t = config.effective_symbol_size();
        let fb = &config.feedback;
        if config.mode == Mode::Nack {
            config.fec = FecId::NoCode;
        }
        let tokens = config.burst.max(config.max_datagram as u64) as f64;
        // With workers, the next window's encoders are built while this
        // window's are in use.
        let cached = config.interleave as usize * if config.encoder_threads > 0 { 2 } else { 1 };
        // Repair answers may touch any block: keep a few more encoders then.
        // (Its first pass asks for a window's encoders only as the window
        // opens, so the next window's need no room. Each encoder holds about
        // twice its block.)
        let cached = if config.mode == Mode::Hybrid {
            config.interleave as usize + 4
        } else {
            cached
        };
        let grtt = fb.initial_grtt.clamp(fb.min_grtt, fb.max_grtt);
        let nack_tokens = (fb.max_nack_rate as f64 / 10.0).max(1.0);
        let block_bytes = config.block_symbols as u64 * t as u64;
        let flow_blocks = (fb.flow_window as u64).min((fb.flow_window_bytes / block_bytes).max(1));
        Ok(Self {
            flow_blocks,
            encoders: Encoders::new(
                config.codecs.codec(config.fec),
                config.encoder_threads > 0,
                cached,
            ),
            loaded: LoadedBlocks {
                blocks: HashMap::new(),
                order: VecDeque::new(),
                asked: HashSet::new(),
                requests: VecDeque::new(),
                capacity: config.interleave as usize + 8,
                bytes: 0,
                spare: Vec::new(),
            },
            t,
            repairs: codec_for(config.fec).makes_repair(),
            objects: Vec::new(),
            prefix: Vec::new(),
            cursor: Cursor::default(),
            window: None,
            info: InfoSchedule::new(),
            lead: LeadRepeat::new(),
            finished: false,
            encoder_wait: None,
            pacing: TokenBucket::new(tokens),
            last: None,
            events: VecDeque::new(),
            stats: SenderStats {
                grtt_us: grtt.as_micros() as u64,
                rate: config.rate.unwrap_or(0),
                ..SenderStats::default()
            },
            epoch: None,
            rc: RateControl::new(fb, config.rate),
            first_pass_done: false,
            first_pass_at: None,
            feedback_at: None,
            fallback_at: None,
            busy_at: None,
            receivers: HashMap::new(),
            timers: TimerTable::default(),
            repair: RepairScheduler::new(
                config.mode == Mode::Nack,
                codec_for(config.fec).esi_limit(0),
                fb.repair_margin,
            ),
            info_queue: VecDeque::new(),
            repair_tokens: TokenBucket::new(64.0 * 1024.0),
            build_tokens: TokenBucket::new(64.0 * 1024.0),
            nack_tokens: TokenBucket::new(nack_tokens),
            feedback_last: None,
            nack_sources: HashMap::new(),
            nack_ids: HashMap::new(),
            nack_id_order: VecDeque::new(),
            nack_ids_per_source: HashMap::new(),
            nack_ids_per_prefix: HashMap::new(),
            roster: Roster::default(),
            probe_times: VecDeque::new(),
            stall_floor: None,
            flow_held: false,
            newcomers: None,
            open: false,
            retired: 0,
            config,
        })
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
        self.loaded.requests.pop_front()
    }

    /// An empty buffer that held a block the sender has let go (and nothing
    /// else holds), to read the next block asked for into: reusing it spares
    /// an allocation of the block's size and its page faults. `None` if
    /// there is none; allocate then.
    pub fn take_block_buffer(&mut self) -> Option<Vec<u8>> {
        self.loaded.spare.pop()
    }

    /// Hands over a block the sender asked for. Refused (and not held) if it
    /// was not asked for or its length is not the block's.
    pub fn handle_block(
        &mut self,
        object: ObjectId,
        sbn: u8,
        data: Vec<u8>,
    ) -> Result<(), SenderError> {
        let key = (object.0, sbn);
        let want = self
            .objects
            .get(object.0 as usize)
            .and_then(|o| o.oti.block(sbn as u32))
            .map(|b| b.len as usize);
        if !self.loaded.asked.contains(&key) || want != Some(data.len()) {
            return Err(SenderError::Config(
                "a block handed over that was not asked for, or of the wrong length",
            ));
        }
        self.loaded.asked.remove(&key);
        while self.loaded.blocks.len() >= self.loaded.capacity {
            let Some(old) = self.loaded.order.pop_front() else {
                break;
            };
            if let Some(b) = self.loaded.blocks.remove(&old) {
                self.loaded.bytes -= b.len() as u64;
                if self.loaded.spare.len() < SPARE_BLOCK_BUFFERS
                    && let Ok(mut buf) = Arc::try_unwrap(b)
                {
                    buf.clear();
                    self.loaded.spare.push(buf);
                }
            }
        }
        self.loaded.bytes += data.len() as u64;
        self.stats.loaded_bytes = self.loaded.bytes;
        self.stats.peak_loaded_bytes = self.stats.peak_loaded_bytes.max(self.loaded.bytes);
        self.stats.blocks_loaded += 1;
        self.loaded.blocks.insert(key, Arc::new(data));
        self.loaded.order.push_back(key);
        // A window that wants its encoders asks for this one now.
        if self.window.as_ref().is_some_and(|w| {
            w.encoders_asked
                && (w.first..w.first + self.config.interleave).contains(&(sbn as u32))
                && w.encoders_due.iter().all(|d| d.1 != sbn)
        }) && self.cursor.object == object.0 as usize
        {
            self.ask_encoder(sbn);
        }
        Ok(())
    }

    /// A block's bytes if the sender holds them (touching it in the cache of
    /// loaded blocks); if not, asks the driver for them, once.
    fn block_bytes(&mut self, object: u32, sbn: u8) -> Option<BlockBytes> {
        if object < self.retired {
            return None;
        }
        let o = self.objects.get(object as usize)?;
        let block = o.oti.block(sbn as u32)?;
        if let Some(d) = &o.data {
            return Some(BlockBytes::new(
                Arc::clone(d),
                block.offset as usize,
                block.len as usize,
            ));
        }
        let key = (object, sbn);
        if let Some(b) = self.loaded.blocks.get(&key) {
            if let Some(i) = self.loaded.order.iter().rposition(|k| *k == key)
                && i + 1 != self.loaded.order.len()
            {
                self.loaded.order.remove(i);
                self.loaded.order.push_back(key);
            }
            return Some(BlockBytes::new(Arc::clone(b), 0, b.len()));
        }
        if self.loaded.asked.insert(key) {
            self.loaded.requests.push_back(BlockRequest {
                object: ObjectId(object),
                sbn,
                offset: block.offset,
                len: block.len as usize,
            });
        }
        None
    }

    fn add(
        &mut self,
        data: Option<Arc<Vec<u8>>>,
        len: u64,
        hash: [u8; 32],
        name: &str,
    ) -> Result<ObjectId, SenderError> {
        let max_name =
            (self.config.max_datagram - INFO_HEADER_LEN - wire::CRC_LEN).min(MAX_NAME_LEN);
        if name.len() > max_name {
            return Err(SenderError::NameTooLong {
                len: name.len(),
                max: max_name,
            });
        }
        let id = u32::try_from(self.objects.len()).map_err(|_| SenderError::TooManyObjects)?;
        let oti = Oti::for_object(len, self.t, self.config.block_symbols, SYMBOL_ALIGNMENT)?;
        let start = self.prefix.last().copied().unwrap_or(0)
            + self
                .objects
                .last()
                .map_or(0, |o| o.oti.source_blocks() as u64);
        self.prefix.push(start);
        self.objects.push(Object {
            id: ObjectId(id),
            hash,
            data,
            oti,
            name: name.to_owned(),
        });
        self.finished = false;
        // Whoever was complete lacks this one now.
        for r in self.receivers.values_mut() {
            r.complete = false;
        }
        if self.first_pass_done {
            // Resume the first pass at the new object.
            self.first_pass_done = false;
            self.cursor.object = self.objects.len() - 1;
            self.cursor.next_first = 0;
            self.info.open();
        }
        Ok(ObjectId(id))
    }

    /// The OTI chosen for an object.
    pub fn object_oti(&self, id: ObjectId) -> Option<Oti> {
        self.objects.get(id.0 as usize).map(|o| o.oti)
    }

    /// Holds the sender open for objects still to come (a stream, a message
    /// feed), or lets it finish. While open, a nack or hybrid sender whose
    /// tracked receivers all have every object so far is idle, not
    /// finished: it goes on sending PROBEs (so receivers that join still
    /// learn where it is) and takes up the first pass again at the next
    /// [`Sender::add_object`]. Closing it lets it finish as usual, once
    /// every tracked receiver is complete and the linger has passed.
    pub fn set_open(&mut self, open: bool) {
        self.open = open;
        if !open {
            // Finishing is judged on the next tick.
            self.timers.set_opt(Timer::Probe, self.last);
        }
    }

    /// The first object not yet acknowledged by every tracked receiver that
    /// counts (nack and hybrid modes): each has reported its window edge past
    /// every object before it. `None` before any receiver is tracked, or in
    /// carousel mode. Stalled receivers are not waited for, as in flow
    /// control. A driver that bounds its memory retires what this passed
    /// ([`Sender::retire_before`]).
    pub fn acknowledged(&self) -> Option<ObjectId> {
        if !self.feedback() {
            return None;
        }
        let edge = self
            .receivers
            .values()
            .filter(|r| !r.stalled)
            .map(|r| r.edge)
            .min()?;
        // The first object whose blocks are not all below the edge.
        let i = self.prefix.partition_point(|&p| p < edge);
        // `prefix[i - 1] < edge <= prefix[i]`: object i - 1 is wholly below
        // only if it ends at or before the edge.
        let first = match i.checked_sub(1) {
            Some(j) if self.prefix[j] + self.objects[j].oti.source_blocks() as u64 > edge => j,
            _ => i,
        };
        // Receivers may have all of an object whose first pass still has
        // repair to send: it is not done with until the pass is past it.
        Some(ObjectId((first as u32).min(self.progress().0)))
    }

    /// Whether no tracked receiver counts: none is tracked, or every one is
    /// stalled. [`Sender::acknowledged`] then says `None`, and a driver that
    /// bounds its memory treats what it sent as sent to nobody (a receiver
    /// that stopped moving, or a forged id that never moved, would otherwise
    /// keep it from retiring anything).
    pub fn nobody_counts(&self) -> bool {
        self.receivers.values().all(|r| r.stalled)
    }

    /// The first object whose first pass is not finished (all of them, once
    /// it is).
    pub fn first_pass_progress(&self) -> ObjectId {
        ObjectId(self.progress().0)
    }

    /// Retires every object before `object` (and before the first object
    /// whose first pass is not finished, whatever `object` says): the
    /// sender drops what it holds of their bytes, answers no more NACKs for them (`nack_entries_ignored`)
    /// and sends no more repair of them. Receivers that still lack them never
    /// get them; call it with what [`Sender::acknowledged`] says, or past
    /// that only to bound memory (a receiver behind then meets a gap).
    pub fn retire_before(&mut self, object: ObjectId) {
        // Never what the first pass is still sending.
        let upto = object.0.min(self.progress().0);
        if upto <= self.retired {
            return;
        }
        for o in &mut self.objects[self.retired as usize..upto as usize] {
            o.data = None;
        }
        self.retired = upto;
        self.repair.retire_before(upto);
        self.info_queue.retain(|&o| o >= upto);
        let loaded = &mut self.loaded;
        loaded.blocks.retain(|k, b| {
            let keep = k.0 >= upto;
            if !keep {
                loaded.bytes -= b.len() as u64;
            }
            keep
        });
        loaded.order.retain(|k| k.0 >= upto);
        loaded.asked.retain(|k| k.0 >= upto);
        loaded.requests.retain(|r| r.object.0 >= upto);
        self.stats.loaded_bytes = loaded.bytes;
    }

    /// Whether the sender is done: the last round sent (carousel), or every
    /// tracked receiver complete and the linger over (nack, hybrid).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Counters so far.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }

    /// The current group round-trip time estimate.
    pub fn grtt(&self) -> Duration {
        self.rc.grtt()
    }

    fn feedback(&self) -> bool {
        self.config.mode.has_feedback()
    }

    /// Advances the clock: pacing, and in feedback modes NACK aggregation,
    /// receiver timeouts and the linger.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refill(now);
        if self.feedback() {
            self.tick(now);
        }
    }

    /// When the sender next wants `handle_timeout` or `poll_transmit` called.
    /// A deadline at or before now means at once (an unpaced sender with data
    /// is always due: its deadline is the last time it was given). `None`
    /// means idle: finished, no object, or never given a time yet.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished || self.objects.is_empty() {
            return None;
        }
        // The latest time the sender was given: a deadline there is due now.
        let due = self.last.or(self.epoch);
        let pacing = match (self.config.rate.map(|_| self.rate_now()), self.last) {
            (Some(rate), Some(last)) if !self.pacing.has_any() => {
                Some(last + Duration::from_secs_f64(self.pacing.debt() / rate as f64 + 1e-9))
            }
            (Some(_), Some(last)) => Some(last),
            _ => None,
        };
        // Waiting for an encoder a worker is building: until it is back
        // (`handle_encoder`), or the wait is over.
        let waiting = self
            .encoder_wait
            .filter(|&until| due.is_some_and(|d| d < until));
        if !self.feedback() {
            // A carousel always has data: paced, or due at once.
            return waiting.or(pacing).or(due);
        }
        let mut t: Option<Instant> = None;
        let mut at = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Instant| t.min(x)));
            }
        };
        if let Some(until) = waiting {
            at(Some(until));
        } else if self.has_data_ready() {
            at(pacing.or(due));
        }
        if let Some((o, sbn, esi)) = self.repair.front()
            && waiting.is_none()
        {
            // Wait for the repair budget (and the build budget, if this symbol
            // needs an encoder built), or for pacing.
            let rate = self.repair_rate();
            let mut short = self.repair_tokens.debt();
            if self.needs_build(o, sbn, esi) {
                short = short.max(self.build_tokens.debt());
            }
            let wait = if short < 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64((short / rate).min(10.0) + 1e-9)
            };
            at(self
                .feedback_last
                .map(|l| l + wait)
                .max(pacing)
                .or(self.last));
        }
        if !self.info_queue.is_empty() && !self.repair_tokens.has_any() {
            let wait = (self.repair_tokens.debt() / self.repair_rate()).min(10.0) + 1e-9;
            at(self
                .feedback_last
                .map(|l| l + Duration::from_secs_f64(wait))
                .max(pacing));
        }
        at(self.timers.next_timeout());
        at(self.repair.next_deadline());
        at(self.fallback_due());
        t
    }

    /// The next block encoder the sender would like built off its thread
    /// (only with `encoder_threads` above 0). Build it anywhere with
    /// [`EncoderRequest::build`] and hand it back with
    /// [`Sender::handle_encoder`]; one not back by the time the sender needs
    /// it is built inline instead.
    pub fn poll_encoder_request(&mut self) -> Option<EncoderRequest> {
        self.encoders.poll_request()
    }

    /// An encoder built from a [`Sender::poll_encoder_request`] request.
    pub fn handle_encoder(&mut self, built: BuiltEncoder) {
        let oti = self.objects.get(built.object() as usize).map(|o| o.oti);
        self.encoders.handle_built(built, oti);
        self.encoder_wait = None;
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    fn rate_now(&self) -> u64 {
        self.rc.rate()
    }

    fn refill(&mut self, now: Instant) {
        if self.epoch.is_none() {
            self.epoch = Some(now);
            if self.feedback() {
                self.timers.set(Timer::Probe, now);
                self.timers.set(
                    Timer::Expiry,
                    now + self.config.feedback.receiver_timeout / 4,
                );
            }
        }
        if let (Some(_), Some(last)) = (self.config.rate, self.last) {
            let rate = self.rate_now();
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.pacing.refill(dt, rate as f64, self.burst_cap(rate));
        }
        if self.feedback() {
            let last = self.feedback_last.unwrap_or(now);
            let dt = now.saturating_duration_since(last).as_secs_f64();
            let cap = (self.repair_rate() * 0.01).max(64.0 * 1024.0);
            let repair_rate = self.repair_rate();
            self.repair_tokens.refill(dt, repair_rate, cap);
            self.build_tokens.refill(dt, repair_rate, cap);
            let fb = &self.config.feedback;
            let ncap = (fb.max_nack_rate as f64 / 10.0).max(1.0);
            self.nack_tokens.refill(dt, fb.max_nack_rate as f64, ncap);
            if self.feedback_last.is_none_or(|l| now > l) {
                self.feedback_last = Some(now);
            }
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }

    /// How many bytes the pacing bucket may hold at `rate`: `burst`, one
    /// datagram, or what `rate` sends in `pacing_granularity` (at most
    /// [`MAX_PACING_CATCH_UP`]), whichever is the most.
    fn burst_cap(&self, rate: u64) -> f64 {
        let late = (rate as f64 * self.config.pacing_granularity.as_secs_f64())
            .min(MAX_PACING_CATCH_UP as f64);
        (self.config.burst.max(self.config.max_datagram as u64) as f64).max(late)
    }

    /// Bytes per second repair may use: a share of the pacing rate, or of the
    /// measured rate when unpaced.
    fn repair_rate(&self) -> f64 {
        // Once the first pass is out, repair is all that is left to send: it
        // may use the whole rate (pacing still caps the total, so forged
        // NACKs cannot push past it). Before, it leaves first-pass data the
        // rest.
        let share = match self.first_pass_done {
            false => self.config.feedback.repair_share,
            true if self.in_fallback() => 0.5,
            true => self.config.feedback.repair_share.max(1.0),
        };
        let base = match self.config.rate {
            Some(_) => self.rate_now() as f64,
            None => {
                let elapsed = match (self.epoch, self.last) {
                    (Some(e), Some(l)) => l.saturating_duration_since(e).as_secs_f64(),
                    _ => 0.0,
                };
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

    fn micros(&self, now: Instant) -> u64 {
        self.epoch
            .map_or(0, |e| now.saturating_duration_since(e).as_micros() as u64)
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
        if self.finished || self.objects.is_empty() {
            return None;
        }
        self.refill(now);
        if self.feedback() {
            self.tick(now);
            if self.finished {
                return None;
            }
        }
        if self.config.rate.is_some() && !self.pacing.has_any() {
            return None;
        }
        let len = self.next_packet(now, buf)?;
        // Something went: a wait for an encoder noted on the way (for a
        // repair symbol passed over) holds nothing back.
        self.encoder_wait = None;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        if self.config.rate.is_some() {
            self.pacing.spend(len as f64);
        }
        Some(len)
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
        if !self.feedback() {
            self.stats.feedback_rejected += 1;
            return;
        }
        self.refill(now);
        match wire::Repr::parse(datagram) {
            Ok(wire::Repr::Nack(n)) if n.session == self.config.session.0 => {
                if let Some(src) = source
                    && !self.take_source_token(now, src)
                {
                    self.stats.nacks_dropped_per_source += 1;
                    return;
                }
                if !self.nack_tokens.has(1.0) {
                    self.stats.nacks_dropped += 1;
                    return;
                }
                self.nack_tokens.spend(1.0);
                self.stats.nacks_received += 1;
                self.feedback_at = Some(now);
                if let Some(src) = source {
                    self.note_nack_source(n.receiver, src);
                }
                self.handle_nack(now, &n);
            }
            Ok(wire::Repr::Status(st)) if st.session == self.config.session.0 => {
                self.handle_status(now, source, &st);
            }
            _ => self.stats.feedback_rejected += 1,
        }
    }

    /// Remembers the address an id not yet tracked first NACKed from. NACKs
    /// are multicast, so every host on the group reads the id in them; an id
    /// that NACKs before its first STATUS must not be claimed by the first
    /// host to forge one.
    fn note_nack_source(&mut self, receiver: u64, src: std::net::IpAddr) {
        if self.receivers.contains_key(&receiver) || self.nack_ids.contains_key(&receiver) {
            return;
        }
        // One address binds at most its share, so that a flood of NACKs
        // under made-up ids cannot push the others' bindings out.
        let prefix = std::net::IpAddr::V6(prefix_of(src));
        if self.nack_ids_per_source.get(&src).copied().unwrap_or(0)
            >= self.config.feedback.max_receivers_per_source
            || self.nack_ids_per_prefix.get(&prefix).copied().unwrap_or(0)
                >= self.config.feedback.max_receivers_per_prefix
        {
            return;
        }
        if self.nack_id_order.len() >= self.config.feedback.max_receivers.max(1)
            && let Some(old) = self.nack_id_order.pop_front()
        {
            self.forget_nack_source(old);
        }
        self.nack_ids.insert(receiver, src);
        *self.nack_ids_per_source.entry(src).or_default() += 1;
        *self.nack_ids_per_prefix.entry(prefix).or_default() += 1;
        self.nack_id_order.push_back(receiver);
    }

    /// Drops the address `receiver` was bound to by a NACK, if any.
    fn forget_nack_source(&mut self, receiver: u64) {
        if let Some(a) = self.nack_ids.remove(&receiver) {
            uncount(&mut self.nack_ids_per_source, a);
            uncount(
                &mut self.nack_ids_per_prefix,
                std::net::IpAddr::V6(prefix_of(a)),
            );
        }
    }

    /// Takes one token from `src`'s NACK bucket, if it has one.
    fn take_source_token(&mut self, now: Instant, src: std::net::IpAddr) -> bool {
        let rate = self.config.feedback.max_nack_rate_per_source.max(1) as f64;
        let cap = (rate / 10.0).max(1.0);
        if !self.nack_sources.contains_key(&src) && self.nack_sources.len() >= MAX_NACK_SOURCES {
            // Forget the sources whose buckets have refilled: they cost nothing.
            self.nack_sources.retain(|_, b| {
                b.bucket.tokens() + now.saturating_duration_since(b.last).as_secs_f64() * rate < cap
            });
            if self.nack_sources.len() >= MAX_NACK_SOURCES {
                return false;
            }
        }
        let b = self.nack_sources.entry(src).or_insert(SourceBucket {
            bucket: TokenBucket::new(cap),
            last: now,
        });
        b.bucket.refill(
            now.saturating_duration_since(b.last).as_secs_f64(),
            rate,
            cap,
        );
        b.last = now;
        if !b.bucket.has(1.0) {
            return false;
        }
        b.bucket.spend(1.0);
        true
    }

    fn handle_nack(&mut self, now: Instant, n: &wire::NackRepr) {
        let agg = self.rc.grtt().mul_f64(self.config.feedback.aggregation);
        for e in &n.entries {
            let Some(o) = self.objects.get(e.object as usize) else {
                self.stats.nack_entries_invalid += 1;
                continue;
            };
            if e.object < self.retired {
                self.stats.nack_entries_ignored += 1;
                continue;
            }
            if e.flags & wire::feedback::NACK_NEED_INFO != 0 {
                if !self.info_queue.contains(&e.object) && self.info_queue.len() < 64 {
                    self.info_queue.push_back(e.object);
                }
                continue;
            }
            let Some(block) = o.oti.block(e.sbn as u32) else {
                self.stats.nack_entries_invalid += 1;
                continue;
            };
            let k = block.source_symbols;
            let nack_mode = self.config.mode == Mode::Nack;
            if (nack_mode && e.ranges.is_empty())
                || e.ranges
                    .iter()
                    .any(|&(f, c)| f as u64 + c as u64 > k as u64)
                || e.need == 0
                || e.need > k
            {
                self.stats.nack_entries_invalid += 1;
                continue;
            }
            let key = (e.object, e.sbn);
            // Receivers ask only for blocks behind the first pass (the PROBE's
            // progress point); a request for one the pass has not reached is
            // forged (or follows a forged PROBE), and its answer would come
            // anyway.
            let ahead = !self.first_pass_done && key >= self.progress();
            if ahead || self.repair.answered(key, now) {
                self.stats.nack_entries_ignored += 1;
                continue;
            }
            if !self.repair.gathering(key)
                && !nack_mode
                && self.config.encoder_threads > 0
                && !self.encoders.has(key)
                && self.build_tokens.has_any()
            {
                // A worker builds the encoder while NACKs gather; the build is
                // charged as one on the sending thread would be. (A block not
                // handed over yet is asked for now, and built when sent.)
                if let Some(bytes) = self.block_bytes(e.object, e.sbn) {
                    let o = &self.objects[e.object as usize];
                    self.encoders.prepare(key, &o.oti, &block, &bytes);
                    self.charge_build(e.object, e.sbn);
                }
            } else if self.objects[e.object as usize].data.is_none() {
                // Its bytes, asked for while NACKs gather.
                let _ = self.block_bytes(e.object, e.sbn);
            }
            self.repair.request(key, k, now + agg, e.need, &e.ranges);
        }
        // Only a receiver that counts and still lacks something restarts the
        // linger: a forged NACK, under any id, cannot hold the sender.
        if self
            .receivers
            .get(&n.receiver)
            .is_some_and(|r| !r.complete && !r.stalled)
        {
            self.stop_linger();
        }
    }

    /// Something is left to do after all: the linger starts again later.
    fn stop_linger(&mut self) {
        self.timers.stop(Timer::Linger);
    }

    fn handle_status(
        &mut self,
        now: Instant,
        source: Option<std::net::IpAddr>,
        st: &wire::StatusRepr,
    ) {
        use wire::feedback::{STATUS_BUSY, STATUS_COMPLETE, STATUS_ECHO, STATUS_LOSS};
        let total = self.total_blocks();
        let (wo, wsbn) = st.window;
        let edge = match self.prefix.get(wo as usize) {
            Some(&p) => p + (wsbn as u64).min(self.objects[wo as usize].oti.source_blocks() as u64),
            None => total,
        };
        if !self.receivers.contains_key(&st.receiver) {
            // First heard in a NACK: bound to the address that NACK came from.
            if let (Some(src), Some(&first)) = (source, self.nack_ids.get(&st.receiver))
                && src != first
            {
                self.stats.feedback_rejected += 1;
                return;
            }
            // Caps per address, per /64 and over time (protocol.md §13.4,
            // "Receivers admitted"): a host reporting under made-up ids
            // from its /64 cannot fill the table.
            let admitted = self.roster.admit(
                &self.config.feedback,
                now,
                st.receiver,
                source,
                self.receivers.len(),
            );
            if let Err(why) = admitted {
                self.stats.receivers_refused += 1;
                match why {
                    Refusal::Table => self.stats.receivers_refused_table += 1,
                    Refusal::Source => self.stats.receivers_refused_source += 1,
                    Refusal::Prefix => self.stats.receivers_refused_prefix += 1,
                    Refusal::Rate => self.stats.receivers_refused_rate += 1,
                }
                // (It stays bound to its NACK's address, if any.)
                return;
            }
            // (Its entry in `nack_id_order` goes when it reaches the front.)
            self.forget_nack_source(st.receiver);
            self.stats.receiver_prefixes_heard = self.roster.prefixes_heard();
            tracing::debug!(receiver = %format_args!("{:016x}", st.receiver), "receiver joined");
            self.events
                .push_back(SenderEvent::ReceiverJoined { id: st.receiver });
            self.stats.receivers_heard += 1;
        }
        let complete = st.flags & STATUS_COMPLETE != 0 && edge >= total;
        let known = self.receivers.get(&st.receiver);
        // A receiver id is bound to the address it was first heard from, so
        // that a forger who read the id off a NACK cannot speak for it.
        if let Some(r) = known
            && r.source.is_some()
            && source != r.source
        {
            self.stats.feedback_rejected += 1;
            return;
        }
        self.stats.status_received += 1;
        if known.is_none_or(|r| edge > r.edge || (complete && !r.complete)) {
            self.feedback_at = Some(now);
        }
        let full = self.config.feedback.stall_timeout;
        let (credit, stalled) = match known {
            Some(r) if edge > r.edge || (complete && !r.complete) => {
                let credit = self
                    .credit_now(r, now)
                    .saturating_add(self.credit_earned(r.edge, edge))
                    .min(full);
                (credit, !complete && credit.is_zero())
            }
            Some(r) => (self.credit_now(r, now), r.stalled),
            // First heard at or behind the edge where a receiver stalled:
            // stalled from the start, until it moves (so that new ids
            // reporting the same stuck edge cannot hold the sender again).
            // Else a new id starts with the newcomers' credit ([`Newcomers`]).
            None if !complete && self.stall_floor.is_some_and(|f| edge <= f) => {
                (Duration::ZERO, true)
            }
            None if !complete => {
                let credit = match self.newcomers {
                    Some(n) => n
                        .credit
                        .saturating_add(self.credit_earned(n.edge, edge.max(n.edge)))
                        .min(full),
                    None => full,
                };
                self.newcomers = Some(Newcomers {
                    edge: self.newcomers.map_or(edge, |n| n.edge.max(edge)),
                    credit,
                    at: self.newcomers.map_or(now, |n| n.at),
                });
                (credit, credit.is_zero())
            }
            None => (full, false),
        };
        // A tracked receiver whose window waits for its own work (a solve,
        // its application) needs no repair: no fallback round for it. One
        // the sender no longer waits for (stalled) holds nothing off.
        if st.flags & STATUS_BUSY != 0 && known.is_some() && !complete && !stalled {
            self.feedback_at = Some(now);
            self.busy_at = Some(now);
        }
        // Little credit (unstalled by a step, or new ahead of a stall): the
        // check comes when it runs out, not at the next periodic one.
        if !stalled && !complete {
            let at = now + credit.max(self.config.feedback.probe_interval);
            if self.timers.get(Timer::Expiry).is_none_or(|e| at < e) {
                self.timers.set(Timer::Expiry, at);
            }
        }
        let source = known.map_or(source, |r| r.source);
        let mut rtt = known.map_or(RttFilter::default(), |r| r.rtt);
        let (echo, echoed) = known.map_or((None, 0), |r| (r.echo, r.echoed));
        // Only a measured Loss counts: a receiver's first STATUS comes
        // before its first loss sample and says 0, and averaged in, such
        // reports would have the sender size its first windows' proactive repair
        // for a third to a half of the loss.
        let reported = (st.loss_ppm as f64 / 1e6).min(0.5);
        let (mut loss, mut loss_reports, mut loss_sd) =
            known.map_or((0.0, 0, 0.0), |r| (r.loss, r.loss_reports, r.loss_sd));
        if st.flags & STATUS_LOSS != 0 {
            let sd = if st.loss_span > 0 {
                1.0 / (st.loss_span as f64).sqrt()
            } else {
                0.0
            };
            loss = average_loss(loss, loss_reports, reported);
            loss_sd = average_loss(loss_sd, loss_reports, sd);
            loss_reports = loss_reports.saturating_add(1);
        }
        self.receivers.insert(
            st.receiver,
            Tracked {
                last_heard: now,
                edge,
                complete,
                credit,
                credit_at: now,
                stalled,
                source,
                rtt,
                echo,
                echoed,
                loss,
                loss_reports,
                loss_sd,
            },
        );
        if st.loss_ppm > 0 && self.window.as_ref().is_some_and(|w| !w.encoders_asked) {
            self.prepare_window_encoders();
        }
        // Only a receiver's first measured report can complete the set that
        // restaging waits for: trying on every STATUS scanned every receiver
        // per report while a first window of blocks too small for proactive
        // repair went out (O(G) per STATUS, at 10,000 receivers).
        if st.flags & STATUS_LOSS != 0 && loss_reports == 1 {
            self.restage_window();
        }
        self.stats.receivers_tracked = self.receivers.len() as u64;
        if st.flags & STATUS_ECHO != 0 {
            let now_us = self.micros(now);
            // The echo must name a PROBE actually sent lately, no earlier
            // than the one this receiver's last echo named, and the hold
            // must fit in the time since: anything else is forged or stale.
            let since = now_us.checked_sub(st.echo_us);
            if !self.probe_times.contains(&st.echo_us)
                || echo.is_some_and(|e| st.echo_us < e)
                || since.is_none_or(|d| (st.hold_us as u64) > d)
            {
                self.stats.echoes_refused += 1;
            } else if let Some(since) = since {
                // Queueing (in sockets, behind a decode) only adds to a
                // sample: the receiver's least over its last samples is its
                // path, and the GRTT follows the largest of those.
                let sample = Duration::from_micros(since - st.hold_us as u64);
                let least = rtt.sample(sample);
                let echoed = if echo.is_some_and(|e| e == st.echo_us) {
                    echoed
                } else {
                    echoed.saturating_add(1).min(2)
                };
                if let Some(r) = self.receivers.get_mut(&st.receiver) {
                    r.rtt = rtt;
                    r.echo = Some(st.echo_us);
                    r.echoed = echoed;
                }
                // Only a receiver that echoed two PROBEs, and that counts
                // (neither complete nor stalled), may raise the GRTT: a
                // fresh id, or one that holds nothing back, may only hold
                // it (protocol.md §13.4, "GRTT").
                let may_raise = echoed >= 2 && !complete && !stalled;
                if self.rc.on_rtt_sample(least, may_raise) {
                    self.stats.grtt_us = self.rc.grtt().as_micros() as u64;
                }
            }
        }
        if st.flags & STATUS_LOSS != 0 && self.rc.on_loss_report(now, st.loss_ppm) {
            self.stats.rate = self.rc.rate();
        }
    }

    /// The window edge flow control follows, if any receiver is tracked.
    fn flow_edge(&self) -> Option<u64> {
        let mut edges = self
            .receivers
            .values()
            .filter(|r| !r.stalled)
            .map(|r| r.edge)
            .peekable();
        edges.peek()?;
        // Asked on every poll: only a quorum needs the edges gathered.
        Some(match self.config.feedback.policy {
            FlowPolicy::Min => edges.min().unwrap_or(0),
            FlowPolicy::Max => edges.max().unwrap_or(0),
            FlowPolicy::Quorum(n) => {
                let mut edges: Vec<u64> = edges.collect();
                let i = (n as usize).min(edges.len()).max(1) - 1;
                // The i-th largest edge.
                *edges.select_nth_unstable_by(i, |a, b| b.cmp(a)).1
            }
        })
    }

    /// Periodic feedback work: matured NACKs, receiver timeouts, AIMD increase,
    /// and the finish condition.
    fn tick(&mut self, now: Instant) {
        self.repair.release(now, self.rc.loss());
        if self.timers.is_expired(Timer::Expiry, now) {
            let timeout = self.config.feedback.receiver_timeout;
            self.timers.set(Timer::Expiry, now + timeout / 4);
            let dead: Vec<u64> = self
                .receivers
                .iter()
                .filter(|(_, r)| now.saturating_duration_since(r.last_heard) >= timeout)
                .map(|(id, _)| *id)
                .collect();
            for id in dead {
                tracing::info!(receiver = %format_args!("{id:016x}"), "receiver timed out");
                // One that went silent unfinished marks its edge as stuck too:
                // else ids that report once and fall silent, a new one every
                // moment, would each hold the sender for `receiver_timeout`
                // and never stall (`stall_timeout` is longer).
                if let Some(r) = self.receivers.get(&id)
                    && !r.complete
                {
                    self.stall_floor = Some(self.stall_floor.map_or(r.edge, |f| f.max(r.edge)));
                }
                if let Some(r) = self.receivers.remove(&id) {
                    self.roster.release(r.source);
                }
                self.stats.receivers_timed_out += 1;
                self.events.push_back(SenderEvent::ReceiverTimedOut { id });
            }
            self.stats.receivers_tracked = self.receivers.len() as u64;
            self.repair.expire_quiet(now);
            let (behind, window) = (self.behind_edge(), self.flow_blocks);
            // Flow control's edge a window behind: the pass is held there.
            // (Checked here, not per STATUS: the edge takes every receiver.)
            self.flow_held = self
                .flow_edge()
                .is_some_and(|e| e.saturating_add(window) <= behind);
            let flow_held = self.flow_held;
            let mut held = false;
            for (&id, r) in self.receivers.iter_mut() {
                if !r.complete && Self::holds_back(r.edge, behind, window, flow_held) {
                    let spent = now.saturating_duration_since(r.credit_at);
                    r.credit = r.credit.saturating_sub(spent);
                    held |= !r.stalled;
                }
                r.credit_at = now;
                if !r.stalled && !r.complete && r.credit.is_zero() {
                    r.stalled = true;
                    tracing::info!(
                        receiver = %format_args!("{id:016x}"),
                        edge = r.edge,
                        "receiver stalled: it no longer holds the sender back"
                    );
                    self.stats.receivers_stalled += 1;
                    self.stall_floor = Some(self.stall_floor.map_or(r.edge, |f| f.max(r.edge)));
                    self.events
                        .push_back(SenderEvent::ReceiverStalled { id, edge: r.edge });
                }
            }
            if let Some(n) = &mut self.newcomers {
                if held {
                    n.credit = n.credit.saturating_sub(now.saturating_duration_since(n.at));
                }
                n.at = now;
            }
        }
        self.maybe_fallback(now);
        let idle = self.first_pass_done
            && !self.open
            // Receivers from distinct /64s: one host's forged ids count once.
            && self.roster.distinct_heard() >= self.config.feedback.min_receivers as u64
            // Nobody ever heard: the fallback rounds go out first.
            && (self.stats.receivers_heard > 0
                || self.stats.fallback_rounds >= self.config.feedback.fallback_rounds as u64)
            // The last fallback round goes out whole. (Any accepted NACK ends
            // the fallback, so forged ones cannot hold the sender here.)
            && !(self.in_fallback() && self.repair.front().is_some())
            // Repair still queued is for nobody who counts: every tracked
            // receiver is complete or stalled. (So NACKs, which anyone can
            // forge, cannot keep the sender from finishing.)
            && self.receivers.values().all(|r| r.complete || r.stalled);
        if !idle {
            self.stop_linger();
        } else {
            if self.timers.get(Timer::Linger).is_none() {
                let linger = self.linger();
                self.timers.set(Timer::Linger, now + linger);
            }
            if self.timers.is_expired(Timer::Linger, now) {
                self.finished = true;
                self.stats.receivers_left_stalled = self
                    .receivers
                    .values()
                    .filter(|r| r.stalled && !r.complete)
                    .count() as u64;
                self.stats.receivers_left_refused = self
                    .roster
                    .left_refused(now, self.config.feedback.receiver_timeout);
                self.events.push_back(SenderEvent::Finished);
            }
        }
    }

    /// After the first pass, with no feedback that moves anything for
    /// [`Sender::fallback_delay`] while receivers are unfinished (or none was
    /// ever heard), and no BUSY for [`BUSY_HOLD`], queues a fallback round:
    /// fresh repair (nack mode: the
    /// source symbols again) for every block beyond the lowest unfinished
    /// receiver's window, `round_repair` × K of each (at least one symbol).
    fn maybe_fallback(&mut self, now: Instant) {
        if self.fallback_due().is_none_or(|due| now < due) {
            return;
        }
        let limit = self.config.feedback.fallback_rounds;
        self.fallback_at = Some(now);
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
        let floor = self
            .receivers
            .values()
            .filter(|r| !r.complete && !r.stalled)
            .map(|r| r.edge)
            .min()
            .unwrap_or(0);
        let share = self.config.round_repair.max(0.05);
        for (i, o) in self.objects.iter().enumerate().skip(self.retired as usize) {
            for sbn in 0..o.oti.source_blocks() {
                if self.prefix[i] + (sbn as u64) < floor {
                    continue;
                }
                let Some(b) = o.oti.block(sbn) else { continue };
                let k = b.source_symbols;
                let need = ((k as f64 * share).ceil() as u32).clamp(1, k);
                self.repair
                    .request((o.id.0, b.sbn), k, now, need, &[(0, k)]);
            }
        }
    }

    /// When the next fallback round is due, if one may come: after the first
    /// pass, rounds left, receivers unfinished (or none ever heard), no
    /// repair queued, 20 GRTTs of quiet, and [`BUSY_HOLD`] since the last
    /// BUSY.
    fn fallback_due(&self) -> Option<Instant> {
        let limit = self.config.feedback.fallback_rounds as u64;
        if !self.first_pass_done || self.stats.fallback_rounds >= limit {
            return None;
        }
        // The cheap checks first: this is asked on every poll.
        if self.repair.front().is_some() {
            return None;
        }
        let unfinished = || self.receivers.values().any(|r| !r.complete && !r.stalled);
        if self.stats.receivers_heard > 0 && !unfinished() {
            return None;
        }
        let quiet_since = [self.first_pass_at, self.feedback_at, self.fallback_at]
            .into_iter()
            .flatten()
            .max()?;
        let busy = self.busy_at.map(|b| b + BUSY_HOLD);
        Some((quiet_since + self.fallback_delay()).max(busy.unwrap_or(quiet_since)))
    }

    /// How long the sender waits, quiet, before a fallback round: 20 GRTTs,
    /// at least 500 ms.
    fn fallback_delay(&self) -> Duration {
        (self.rc.grtt() * 20).max(Duration::from_millis(500))
    }

    /// Whether the sender is in a fallback round: repair then goes at half
    /// the rate.
    fn in_fallback(&self) -> bool {
        self.fallback_at
            .is_some_and(|f| self.feedback_at.is_none_or(|h| h < f))
    }

    /// How long the sender waits for late NACKs once everyone tracked is
    /// done: four GRTTs (a late receiver's NACK backoff and its repair's
    /// round trip), at least two PROBE intervals, at most `linger`.
    fn linger(&self) -> Duration {
        let fb = &self.config.feedback;
        (self.rc.grtt() * 4)
            .max(fb.probe_interval * 2)
            .min(fb.linger)
    }

    /// Whether sending this repair symbol waits for the block's encoder (of
    /// a block of at least `COSTLY_BLOCK_SYMBOLS` source symbols),
    /// which a worker is building now: building it here too would double
    /// the work (on a busy host the workers fall behind the sending thread,
    /// and then the two built nearly every encoder twice). The wait ends
    /// when the encoder is back, or after `MAX_BUILD_WAIT`.
    fn waits_for_encoder(&mut self, object: u32, sbn: u8, esi: u32, now: Instant) -> bool {
        let o = &self.objects[object as usize];
        // A small block builds in microseconds: building it again here
        // costs less than the hand-over back from a worker.
        if !self.repairs
            || !self.config.wait_for_encoders
            || o.oti.block(sbn as u32).is_none_or(|b| {
                esi < b.source_symbols || b.source_symbols < super::COSTLY_BLOCK_SYMBOLS
            })
        {
            return false;
        }
        let key = (o.id.0, sbn);
        self.encoder_wait = self.encoders.building_elsewhere(key, now);
        self.encoder_wait.is_some()
    }

    /// Whether sending this symbol means building the block's encoder first.
    fn needs_build(&self, object: u32, sbn: u8, esi: u32) -> bool {
        let o = &self.objects[object as usize];
        self.repairs
            && o.oti
                .block(sbn as u32)
                .is_some_and(|b| esi >= b.source_symbols)
            && !self.encoders.has((o.id.0, sbn))
    }

    /// Building an encoder costs CPU like sending part of its block. Builds
    /// for repair draw on their own budget, refilled like the repair budget and
    /// charged an eighth of the block each, so that NACKs spread thinly over
    /// many blocks cannot keep the sender busy rebuilding encoders.
    fn charge_build(&mut self, object: u32, sbn: u8) {
        let len = self.objects[object as usize]
            .oti
            .block(sbn as u32)
            .map_or(0, |b| b.len);
        self.build_tokens.spend(len as f64 / 8.0);
        self.stats.encoders_built_for_repair += 1;
    }

    fn has_data_ready(&self) -> bool {
        !self.first_pass_done && !self.flow_blocked()
            || (!self.info_queue.is_empty() && self.repair_tokens.has_any())
            || self
                .timers
                .get(Timer::Probe)
                .is_some_and(|p| self.last.is_some_and(|l| l >= p))
    }

    /// Whether flow control holds the first pass back before its next window.
    fn flow_blocked(&self) -> bool {
        if !self.feedback() || self.window.is_some() || self.first_pass_done {
            return false;
        }
        let seq = self.prefix[self.cursor.object] + self.cursor.next_first as u64;
        let Some(edge) = self.flow_edge() else {
            // Nobody has reported yet. Receivers hold a bounded number of
            // blocks, so the first window waits up to `first_status_wait` for
            // a first STATUS instead of racing ahead of them (receivers that
            // never report, or none at all, then get the rest unpaced by them).
            let waited = self
                .epoch
                .zip(self.last)
                .map_or(Duration::ZERO, |(s, l)| l.saturating_duration_since(s));
            return self.stats.receivers_heard == 0
                && waited < self.config.feedback.first_status_wait
                && seq >= self.flow_blocks;
        };
        seq >= edge + self.flow_blocks
    }

    /// The global block sequence number the sender has sent past: a
    /// receiver whose edge is below it is left behind (one waiting at the
    /// sender's own progress is not). Every block once the first pass is
    /// over; an open sender that has sent all it holds is past every block of
    /// it. (Counted as 0 there, a receiver stuck at the start of an idle
    /// stream would never be found stalled.)
    fn behind_edge(&self) -> u64 {
        if self.first_pass_done {
            return u64::MAX;
        }
        self.prefix
            .get(self.cursor.object)
            .map_or(self.total_blocks(), |&p| p + self.progress().1 as u64)
    }

    /// Whether a receiver whose edge is `edge` holds the sender back, given
    /// [`Sender::behind_edge`] and whether flow control's edge is a window
    /// behind too (`held`, [`Sender::flow_held`]): a flow window or more
    /// behind the first pass while flow control stops the pass there (under
    /// `--policy max`, a laggard does not stop it), or anywhere once the pass
    /// is over (where the sender waits for it to complete). One that keeps
    /// within the window, or a sender slower than `min_progress` (a quiet
    /// feed), costs no credit.
    fn holds_back(edge: u64, behind: u64, flow_blocks: u64, held: bool) -> bool {
        (held || behind == u64::MAX) && edge.saturating_add(flow_blocks) <= behind
    }

    /// `r`'s hold credit at `now`: what it had, less the time since, if it
    /// holds the sender back ([`Sender::holds_back`]) and is not complete.
    fn credit_now(&self, r: &Tracked, now: Instant) -> Duration {
        let (behind, held) = (self.behind_edge(), self.flow_held);
        if r.complete || !Self::holds_back(r.edge, behind, self.flow_blocks, held) {
            return r.credit;
        }
        r.credit
            .saturating_sub(now.saturating_duration_since(r.credit_at))
    }

    /// The hold credit a receiver earns by moving its edge from block `from`
    /// to block `to` (global sequence numbers): their bytes over
    /// `min_progress`, or all of `stall_timeout` with `min_progress` 0.
    fn credit_earned(&self, from: u64, to: u64) -> Duration {
        let full = self.config.feedback.stall_timeout;
        let floor = match self.config.feedback.min_progress {
            Some(0) => return full,
            Some(b) => b,
            None => match (self.config.rate, &self.config.feedback.aimd) {
                (Some(r), Some(a)) => (r / 32).min(a.floor / 2).max(1),
                (Some(r), None) => (r / 32).max(1),
                (None, _) => 125_000,
            },
        };
        // Enough bytes for the whole credit: the count stops there, so that
        // a jump over many small objects costs no more than that.
        let cap = (floor as f64 * full.as_secs_f64()).min(u64::MAX as f64) as u64;
        let secs = self.block_bytes_between(from, to, cap) as f64 / floor as f64;
        Duration::try_from_secs_f64(secs).map_or(full, |d| d.min(full))
    }

    /// The bytes of the blocks with global sequence numbers `from..to`, each
    /// block of an object counted as its share of the object (F / Z), or
    /// some number of them at least `cap`.
    fn block_bytes_between(&self, from: u64, to: u64, cap: u64) -> u64 {
        let mut bytes = 0u64;
        let mut i = self
            .prefix
            .partition_point(|&p| p <= from)
            .saturating_sub(1);
        while let (Some(&start), Some(o)) = (self.prefix.get(i), self.objects.get(i)) {
            if start >= to || bytes >= cap {
                break;
            }
            let z = o.oti.source_blocks() as u64;
            let (a, b) = (from.max(start), to.min(start + z));
            if b > a && z > 0 {
                bytes = bytes.saturating_add(
                    ((o.oti.transfer_length() as u128 * (b - a) as u128) / z as u128) as u64,
                );
            }
            i += 1;
        }
        bytes
    }

    /// Source blocks of every object added, in the sequence STATUS windows
    /// and flow control count in.
    fn total_blocks(&self) -> u64 {
        self.prefix.last().copied().unwrap_or(0)
            + self
                .objects
                .last()
                .map_or(0, |o| o.oti.source_blocks() as u64)
    }

    /// (object, SBN) of the first block whose first pass is not finished.
    fn progress(&self) -> (u32, u8) {
        if self.first_pass_done {
            return (self.objects.len() as u32, 0);
        }
        let first = self
            .window
            .as_ref()
            .map_or(self.cursor.next_first, |w| w.first);
        (self.cursor.object as u32, first.min(255) as u8)
    }

    fn emit_probe(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let fb = &self.config.feedback;
        if self.rc.on_probe(now) {
            self.stats.rate = self.rc.rate();
        }
        self.stats.grtt_us = self.rc.grtt().as_micros() as u64;
        self.timers.set(Timer::Probe, now + fb.probe_interval);
        let probe = wire::ProbeRepr {
            session: self.config.session.0,
            timestamp_us: self.micros(now),
            sent: self.stats.source_symbols_sent + self.stats.repair_symbols_sent,
            grtt_us: self.rc.grtt().as_micros().min(u32::MAX as u128) as u32,
            objects: self.objects.len() as u32,
            progress: self.progress(),
            mode: if self.config.mode == Mode::Nack {
                wire::WireMode::Nack
            } else {
                wire::WireMode::Hybrid
            },
            flags: if self.first_pass_done {
                wire::feedback::PROBE_END
            } else {
                0
            },
            group_log2: ((u64::BITS - (self.receivers.len() as u64).leading_zeros()) as u8)
                .min(wire::feedback::MAX_GROUP_LOG2),
            hops: self.config.hops.max(1),
            retained: self.retired,
        };
        self.stats.probes_sent += 1;
        if self.probe_times.len() >= PROBE_HISTORY {
            self.probe_times.pop_front();
        }
        self.probe_times.push_back(probe.timestamp_us);
        probe.write(buf).expect("max_datagram holds a PROBE")
    }

    /// The next repeat of the first object, amid later objects: its
    /// OBJECT_INFO and its source symbols in turn, leaving the OBJECT_INFO
    /// schedule of the object being sent as it was.
    fn emit_lead(&mut self, buf: &mut [u8]) -> usize {
        let oti = self.objects[0].oti;
        match self.lead.next(oti.total_source_symbols()) {
            Lead::Info => {
                let info = self.info;
                let len = self.emit_info(0, buf);
                self.info = info;
                len
            }
            Lead::Symbol(at) => {
                // The `at`-th source symbol of the object, block by block.
                let (mut sbn, mut esi) = (0u32, at);
                while let Some(b) = oti.block(sbn)
                    && esi >= b.source_symbols as u64
                {
                    esi -= b.source_symbols as u64;
                    sbn += 1;
                }
                match self.block_bytes(0, sbn as u8) {
                    Some(bytes) => self.emit_data(0, sbn as u8, esi as u32, true, &bytes, buf),
                    // Not handed over yet (a block-supplied first object):
                    // its OBJECT_INFO repeats instead.
                    None => {
                        let info = self.info;
                        let len = self.emit_info(0, buf);
                        self.info = info;
                        len
                    }
                }
            }
        }
    }

    fn emit_info(&mut self, object: usize, buf: &mut [u8]) -> usize {
        self.info.sent_info(object);
        let o = &self.objects[object];
        let info = InfoRepr {
            session: self.config.session.0,
            object: o.id.0,
            fec: self.config.fec,
            oti: o.oti,
            hash: o.hash,
            name: &o.name,
        };
        let len = info.write(buf).expect("name length checked in add_object");
        self.stats.info_packets_sent += 1;
        len
    }

    fn wants_info(&self, object: usize) -> bool {
        let interval = if object == 0 && self.config.lead_protection {
            LEAD_INFO_INTERVAL.min(self.config.info_interval)
        } else if object == self.cursor.object
            && self.window.as_ref().is_some_and(|w| w.copies == 2)
        {
            // A copied single-symbol object: its OBJECT_INFO before each copy.
            1
        } else {
            self.config.info_interval
        };
        self.info.due(object, interval)
    }

    fn next_packet(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.encoder_wait = None;
        if self.feedback() {
            if self.timers.is_expired(Timer::Probe, now) {
                return Some(self.emit_probe(now, buf));
            }
            // OBJECT_INFO asked for by NACKs is repair too: it waits for,
            // and spends, the repair budget.
            if !self.info_queue.is_empty()
                && self.repair_tokens.has_any()
                && let Some(o) = self.info_queue.pop_front()
            {
                let len = self.emit_info(o as usize, buf);
                self.repair_tokens.spend(len as f64);
                return Some(len);
            }
            if let Some((o, sbn, esi)) = self.repair.front()
                && self.repair_tokens.has_any()
                && (self.build_tokens.has_any() || !self.needs_build(o, sbn, esi))
                && let Some(bytes) = self.block_bytes(o, sbn)
                && !self.waits_for_encoder(o, sbn, esi, now)
            {
                if self.wants_info(o as usize) {
                    return Some(self.emit_info(o as usize, buf));
                }
                if self.needs_build(o, sbn, esi) {
                    self.charge_build(o, sbn);
                }
                let len = self.emit_data(o as usize, sbn, esi, true, &bytes, buf);
                self.info.sent_data();
                self.repair_tokens.spend(len as f64);
                self.repair.sent_front(now, self.rc.grtt());
                return Some(len);
            }
            if self.first_pass_done {
                return None;
            }
        }
        // Bounded: each pass either emits or advances the cursor, and a round
        // over objects that all have data emits something.
        loop {
            if self.info.opening() {
                // Each object opens with its OBJECT_INFO, even one with no data.
                return Some(self.emit_info(self.cursor.object, buf));
            }
            if self.window.is_none() {
                if self.flow_blocked() {
                    self.stats.flow_blocked += 1;
                    return None;
                }
                self.window = Some(self.build_window(self.cursor.next_first));
                self.prefetch_blocks();
            }
            // Sized once the window's symbols are all out, those passed
            // over for blocks not yet handed over included: the plan alone
            // empties early while a driver reads the first blocks, and
            // sized then, the first window would go without repair.
            if self
                .window
                .as_ref()
                .is_some_and(|w| !w.pending() && w.proactive_due)
            {
                self.plan_proactive();
            }
            if self.window.as_ref().is_some_and(Window::pending) {
                // Blocks the driver has not handed over yet are passed over;
                // with none held, wait for them.
                let (sbn, esi, bytes, pick) = self.front_held()?;
                if self.waits_for_encoder(self.cursor.object as u32, sbn, esi, now) {
                    return None;
                }
                if self.wants_info(self.cursor.object) {
                    return Some(self.emit_info(self.cursor.object, buf));
                }
                if self.config.lead_protection
                    && self.cursor.object != 0
                    && self.lead.due(LEAD_REPEAT_INTERVAL)
                {
                    return Some(self.emit_lead(buf));
                }
                if self.cursor.object != 0 {
                    self.lead.sent_other();
                }
                if let Some(w) = self.window.as_mut() {
                    match pick {
                        Pick::Plan => w.plan.pop_front(),
                        Pick::Deferred(slot) => w.deferred[slot].pop_front().map(|e| (sbn, e)),
                    };
                }
                self.ask_due_encoders();
                let replay = self.cursor.round > 0;
                let len = self.emit_data(self.cursor.object, sbn, esi, replay, &bytes, buf);
                self.info.sent_data();
                return Some(len);
            }
            if !self.advance() {
                return None;
            }
        }
    }

    /// The window's next symbol whose block the sender holds, and where it
    /// is taken from. Symbols of blocks the driver has not handed over yet
    /// (they are asked for) are passed over into `deferred`, up to
    /// `interleave` of them a call, so that the pass goes on from the blocks
    /// held while the driver reads the rest, instead of idling, and losing
    /// its pacing, for each read; once their block is in, passed-over symbols
    /// go first, the blocks taking turns. `None` if nothing within reach is
    /// held.
    fn front_held(&mut self) -> Option<(u8, u32, BlockBytes, Pick)> {
        let object = self.cursor.object as u32;
        let (first, slots, start) = {
            let w = self.window.as_ref()?;
            (w.first, w.deferred.len(), w.next_deferred)
        };
        for k in 0..slots {
            let slot = (start + k) % slots;
            let Some(&esi) = self.window.as_ref()?.deferred[slot].front() else {
                continue;
            };
            let sbn = (first as usize + slot) as u8;
            if let Some(bytes) = self.block_bytes(object, sbn) {
                self.window.as_mut()?.next_deferred = (slot + 1) % slots;
                return Some((sbn, esi, bytes, Pick::Deferred(slot)));
            }
        }
        for _ in 0..=self.config.interleave.max(1) {
            let (sbn, esi) = *self.window.as_ref()?.plan.front()?;
            if let Some(bytes) = self.block_bytes(object, sbn) {
                return Some((sbn, esi, bytes, Pick::Plan));
            }
            let w = self.window.as_mut()?;
            let slot = (sbn as u32).checked_sub(first)? as usize;
            let deferred = w.deferred.get_mut(slot)?;
            deferred.push_back(esi);
            w.plan.pop_front();
        }
        None
    }

    /// Moves to the next window, object or round. Returns false once finished
    /// (carousel) or once the first pass is over (feedback modes).
    fn advance(&mut self) -> bool {
        let first = self
            .window
            .take()
            .map_or(self.cursor.next_first, |w| w.first);
        let z = self.objects[self.cursor.object].oti.source_blocks();
        let step = self
            .cursor
            .step(first, z, self.config.interleave, self.objects.len());
        if step == Step::Window {
            return true;
        }
        self.info.open();
        if step == Step::End {
            if self.feedback() {
                self.cursor.stay_at_last();
                self.first_pass_done = true;
                self.first_pass_at = self.last;
                self.info.close();
                self.stats.rounds_completed = 1;
                // Tell receivers at once that the pass is over.
                self.timers.set_opt(Timer::Probe, self.last);
                return false;
            }
            self.cursor.next_round();
            self.stats.rounds_completed = self.cursor.round;
            self.events.push_back(SenderEvent::RoundComplete {
                round: self.cursor.round,
            });
            if self.config.rounds == Rounds::Fixed(self.cursor.round) {
                self.finished = true;
                self.events.push_back(SenderEvent::Finished);
                return false;
            }
        } else if self.feedback() {
            // Progress moved: say so soon.
            let soon = self.timers.get(Timer::Probe).min(self.last);
            self.timers.set_opt(Timer::Probe, soon);
        }
        true
    }

    /// The loss the first pass's proactive repair is sized for (hybrid mode,
    /// round 0): the neediest loss the tracked receivers that still count
    /// report, less what the largest of their noise would add
    /// ([`neediest_loss`]), or the prior before any has reported.
    fn proactive_loss(&self, round: u32) -> Option<f64> {
        self.proactive_loss_from(round, false)
    }

    /// [`Self::proactive_loss`]; with `first`, for a first sizing from the
    /// receivers' first reports (see [`neediest_loss`]).
    fn proactive_loss_from(&self, round: u32, first: bool) -> Option<f64> {
        let fb = &self.config.feedback;
        if self.config.mode != Mode::Hybrid || round != 0 || !fb.proactive {
            return None;
        }
        let counted = self.loss_reporters().map(|r| (r.loss, r.loss_sd));
        Some(neediest_loss(counted, first).unwrap_or(fb.loss_prior))
    }

    /// The largest average loss a tracked receiver that still counts (not
    /// stalled, not complete) reports; `None` with none.
    fn reported_loss(&self) -> Option<f64> {
        self.loss_reporters().map(|r| r.loss).reduce(f64::max)
    }

    /// The tracked receivers whose loss counts: neither stalled nor complete,
    /// with a measured report.
    fn loss_reporters(&self) -> impl Iterator<Item = &Tracked> {
        self.receivers
            .values()
            .filter(|r| !r.stalled && !r.complete && r.loss_reports > 0)
    }

    fn build_window(&mut self, first: u32) -> Window {
        let round = self.cursor.round;
        let share = if round == 0 {
            self.config.repair_overhead
        } else {
            self.config.round_repair
        };
        let share = if self.config.mode == Mode::Nack {
            0.0
        } else {
            share
        };
        let proactive = self.proactive_loss(round);
        let lossy_group = self.feedback() && self.reported_loss().is_some_and(|p| p > 0.0);
        let o = &mut self.objects[self.cursor.object];
        let z = o.oti.source_blocks();
        let last = (first + self.config.interleave).min(z);
        let blocks: Vec<_> = (first..last).filter_map(|s| o.oti.block(s)).collect();
        // Only blocks the driver hands over can be passed over.
        let supplied = o.data.is_none();
        let mut plan = VecDeque::new();
        let mut encoders_due = VecDeque::new();
        let mut sized_repair = false;
        // Without repair symbols, every round sends the source symbols again.
        let repairs = self.repairs;
        let send_source = round == 0 || !repairs;
        // Without repair symbols, the first object's protection is two more
        // copies of its source symbols.
        let single = z == 1 && blocks.first().is_some_and(|b| b.source_symbols == 1);
        let copies = if !repairs && self.cursor.object == 0 && self.config.lead_protection {
            3
        } else if single && round == 0 && self.config.copy_single_symbol_objects && lossy_group {
            2
        } else {
            1
        };
        // Share-based repair of each block (and the first object's lead
        // protection), planned after the source symbols, round-robin.
        let lead = self.cursor.object == 0 && self.config.lead_protection;
        let shared: Vec<u32> = blocks
            .iter()
            .map(|b| {
                let k = b.source_symbols;
                (k as f64 * share).ceil() as u32 + if lead { k.div_ceil(2) + 3 } else { 0 }
            })
            .collect();
        // A hybrid first pass with loss reported plans its proactive repair
        // (and the share-based) with the source symbols, each block's whole
        // run staggered (see `plan_staggered_window`).
        let group = self.receivers.len().max(1);
        let proactive_planned: Vec<u32> = match proactive {
            Some(loss) if send_source && repairs && copies == 1 => blocks
                .iter()
                .zip(&shared)
                .map(|(b, &sent)| {
                    super::repair::proactive_repair(b.source_symbols, loss, group)
                        .saturating_sub(sent)
                })
                .collect(),
            _ => Vec::new(),
        };
        if proactive_planned.iter().any(|&n| n > 0) {
            let counts: Vec<u32> = shared
                .iter()
                .zip(&proactive_planned)
                .map(|(a, b)| a + b)
                .collect();
            sized_repair = true;
            plan_staggered_window(&mut self.repair, o.id.0, &blocks, &counts, &mut plan);
            if self.config.encoder_threads > 0 {
                encoders_due = encoder_requests(&blocks, &plan);
            }
        } else {
            if send_source {
                let max_k = blocks.iter().map(|b| b.source_symbols).max().unwrap_or(0);
                for i in (0..max_k).cycle().take(max_k as usize * copies) {
                    for b in &blocks {
                        if i < b.source_symbols {
                            plan.push_back((b.sbn, i));
                        }
                    }
                }
            }
            if repairs {
                sized_repair = shared.iter().any(|&n| n > 0);
                plan_fresh_repair(&mut self.repair, o.id.0, &blocks, &shared, &mut plan);
            }
        }
        // Encoders ahead for the proactive repair too, once losses are known
        // (or, failing that, as soon as they are: see `handle_status`).
        let lossy = proactive.is_some_and(|p| p > 0.0);
        let mut window = Window {
            first,
            plan,
            deferred: vec![VecDeque::new(); if supplied { blocks.len() } else { 0 }],
            next_deferred: 0,
            proactive_due: repairs && proactive.is_some(),
            proactive_planned,
            copies,
            encoders_asked: !repairs,
            encoders_due,
        };
        if repairs && (share > 0.0 || sized_repair || lossy) {
            window.encoders_asked = true;
            let len = window.plan.len();
            while window.encoders_due.front().is_some_and(|d| d.0 >= len) {
                window.encoders_due.pop_front();
            }
            let later: Vec<u8> = window.encoders_due.iter().map(|d| d.1).collect();
            self.prepare_encoders(first, send_source, &later);
        }
        window
    }

    /// Restages the current window, if it opened before any loss was
    /// measured, once the receivers have measured theirs. Such a window sends
    /// its source symbols interleaved over its blocks and sizes its proactive
    /// repair once they are out, so that every block becomes decodable in its
    /// last few milliseconds; in a transfer of one window (5 MB at 50 Mbit/s
    /// to three receivers on two shared cores) their decodes then crowded
    /// into its tail. What is left of each block's symbols becomes its run,
    /// with the proactive repair the loss now reported asks for (as when a
    /// window opens with loss reported), and the runs are laid out as
    /// [`plan_staggered_window`] does. The window's end still tops the
    /// repair up for the reports in by then ([`Self::plan_proactive`]).
    /// It is tried on each receiver's first measured report; a window with
    /// symbols passed over for blocks the driver has not handed over yet
    /// then is not restaged, and sizes its repair at its end as before.
    fn restage_window(&mut self) {
        // A window whose runs are staggered already (it opened with loss
        // reported, or was restaged) plans its repair with them.
        let Some(w) = self.window.as_ref() else {
            return;
        };
        if !self.repairs
            || !w.proactive_due
            || w.proactive_planned.iter().any(|&n| n > 0)
            || w.copies != 1
            || w.plan.is_empty()
            || w.deferred.iter().any(|d| !d.is_empty())
        {
            return;
        }
        // Once every receiver that counts has measured its loss, so that the
        // neediest of them is sized as a window opening later would be (the
        // first report alone, one receiver's estimate over about 1000 DATA,
        // sized 1000 simulated receivers' windows 0.2-0.3% above the ideal).
        let measured = |r: &Tracked| r.stalled || r.complete || r.loss_reports > 0;
        if self.loss_reporters().next().is_none() || !self.receivers.values().all(measured) {
            return;
        }
        // Sized for the neediest loss itself, without the σ the window's end
        // keeps for the estimate's error: these are the receivers' first
        // reports (about 1000 DATA each, one σ a point of loss at 10%), and
        // the end tops the repair up for what the reports say by then.
        let Some(loss) = self
            .proactive_loss_from(self.cursor.round, true)
            .filter(|&p| p > 0.0)
        else {
            return;
        };
        let group = self.receivers.len().max(1);
        let first = w.first;
        let blocks = self.window_blocks(first);
        let counts = proactive_counts(&blocks, loss, group, self.config.repair_overhead, &[]);
        if counts.iter().all(|&n| n == 0) {
            return;
        }
        let object = self.objects[self.cursor.object].id.0;
        let Some(w) = self.window.as_mut() else {
            return;
        };
        let mut runs = vec![Vec::new(); blocks.len()];
        for &(sbn, esi) in &w.plan {
            let Some(run) = (sbn as u32)
                .checked_sub(first)
                .and_then(|i| runs.get_mut(i as usize))
            else {
                return;
            };
            run.push(esi);
        }
        for ((run, b), &count) in runs.iter_mut().zip(&blocks).zip(&counts) {
            let k = b.source_symbols;
            run.extend((0..count).map(|_| self.repair.fresh_esi((object, b.sbn), k)));
        }
        tracing::debug!(first, loss, group, "window restaged");
        let mut plan = VecDeque::new();
        lay_out_staggered(&blocks, &runs, &mut plan);
        w.plan = plan;
        w.proactive_planned = counts;
    }

    /// The blocks of the current object's window that starts at block `first`.
    fn window_blocks(&self, first: u32) -> Vec<BlockInfo> {
        let oti = &self.objects[self.cursor.object].oti;
        let last = (first + self.config.interleave).min(oti.source_blocks());
        (first..last).filter_map(|s| oti.block(s)).collect()
    }

    /// Asks for the encoders of the window's blocks that the plan has got to
    /// (see [`Window::encoders_due`]).
    fn ask_due_encoders(&mut self) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        let len = w.plan.len();
        let mut due = Vec::new();
        while let Some(&(at, sbn)) = w.encoders_due.front() {
            if len > at {
                break;
            }
            w.encoders_due.pop_front();
            due.push(sbn);
        }
        for sbn in due {
            self.ask_encoder(sbn);
        }
    }

    /// Asks for the encoder of block `sbn` of the current object. A block
    /// not handed over yet asks for its encoder on arrival instead.
    fn ask_encoder(&mut self, sbn: u8) {
        let object = self.cursor.object;
        if let Some(bytes) = self.block_bytes(object as u32, sbn) {
            let o = &self.objects[object];
            if let Some(b) = o.oti.block(sbn as u32) {
                self.encoders.prepare((o.id.0, sbn), &o.oti, &b, &bytes);
            }
        }
    }

    /// Asks for the encoders of the current window's blocks (see
    /// [`Window::encoders_asked`]).
    fn prepare_window_encoders(&mut self) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        w.encoders_asked = true;
        let first = w.first;
        let later: Vec<u8> = w.encoders_due.iter().map(|d| d.1).collect();
        let send_source = self.cursor.round == 0 || !self.repairs;
        self.prepare_encoders(first, send_source, &later);
    }

    /// Asks for the encoders of the blocks of the window that starts at
    /// `first` of the current object, and of the next window too when this one
    /// sends repair only (its symbols go out faster than a build); but not
    /// those of `later`, asked for as the plan gets to them.
    fn prepare_encoders(&mut self, first: u32, send_source: bool, later: &[u8]) {
        let object = self.cursor.object;
        let z = self.objects[object].oti.source_blocks();
        let last = (first + self.config.interleave).min(z);
        let ahead = if send_source {
            last
        } else {
            (last + self.config.interleave).min(z)
        };
        for sbn in first..ahead {
            if !later.contains(&(sbn as u8)) {
                self.ask_encoder(sbn as u8);
            }
        }
    }

    /// Asks for the blocks of the current window and the first 4 of the next
    /// (for objects the driver supplies block by block), so that they are in
    /// by the time they are sent.
    fn prefetch_blocks(&mut self) {
        let Some(first) = self.window.as_ref().map(|w| w.first) else {
            return;
        };
        let object = self.cursor.object;
        if self.objects[object].data.is_some() {
            return;
        }
        let z = self.objects[object].oti.source_blocks();
        let end = (first + self.config.interleave + 4).min(z);
        for sbn in first..end {
            let _ = self.block_bytes(object as u32, sbn as u8);
        }
    }

    /// Plans the current window's proactive repair: for each block, what
    /// [`super::repair::proactive_repair`] gives for the loss now reported,
    /// less the share-based repair already sent, as fresh symbols.
    fn plan_proactive(&mut self) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        w.proactive_due = false;
        // Planned once per window: what went with the source symbols is not
        // needed after this.
        let planned = std::mem::take(&mut w.proactive_planned);
        let first = w.first;
        let Some(loss) = self.proactive_loss(self.cursor.round) else {
            return;
        };
        let group = self.receivers.len().max(1);
        tracing::debug!(first, loss, group, "proactive repair sized");
        let blocks = self.window_blocks(first);
        let counts = proactive_counts(&blocks, loss, group, self.config.repair_overhead, &planned);
        let o = &self.objects[self.cursor.object];
        let mut plan = VecDeque::new();
        plan_staggered_repair(&mut self.repair, o.id.0, &blocks, &counts, &mut plan);
        if let Some(w) = self.window.as_mut() {
            w.plan = plan;
        }
    }

    /// Writes a DATA packet of `bytes`, block `sbn` of `object`.
    fn emit_data(
        &mut self,
        object: usize,
        sbn: u8,
        esi: u32,
        replay: bool,
        bytes: &BlockBytes,
        buf: &mut [u8],
    ) -> usize {
        let o = &self.objects[object];
        let block = o.oti.block(sbn as u32).expect("planned block exists");
        let mut packet = wire::data::start_data(
            buf,
            self.config.session.0,
            o.id.0,
            self.config.fec,
            &o.oti,
            sbn,
            esi,
        );
        let out = packet.symbol_mut();
        let data = bytes.as_slice();
        if esi < block.source_symbols {
            copy_source_symbol(data, esi, out);
        } else {
            self.encoders
                .get((o.id.0, sbn), &o.oti, &block, data)
                .write_symbol(esi, out)
                .expect("ESI and length are in range");
            self.stats.encoders_built_inline = self.encoders.built_here;
            self.stats.encoders_built_twice = self.encoders.built_twice;
        }
        // A source symbol sent again (a no-code replay) repairs loss, so it
        // counts as repair.
        if esi < block.source_symbols && !replay {
            self.stats.source_symbols_sent += 1;
        } else {
            self.stats.repair_symbols_sent += 1;
        }
        wire::data::finish_data(packet)
    }
}

/// Queues `counts[i]` fresh repair symbols of each block, staggered: the
/// i-th of the window's n blocks spreads its symbols evenly over the first
/// (i + 1) / n of the repair, so that the blocks become decodable one after
/// another rather than all at its end. (Interleaved evenly, every block
/// completed with the window's last symbol, and the receivers' decoders
/// all started then: on a host whose cores are shared, the last window's
/// decodes were most of a transfer's tail.) Each block's symbols still
/// spread over a span, and every block's over the first 1/n, so a burst
/// still falls on several blocks.
fn plan_staggered_repair(
    repair: &mut RepairScheduler,
    object: u32,
    blocks: &[BlockInfo],
    counts: &[u32],
    plan: &mut VecDeque<(u8, u32)>,
) {
    let n = blocks.len().max(1) as f64;
    let mut slots: Vec<(f64, usize, u8, u32)> =
        Vec::with_capacity(counts.iter().sum::<u32>() as usize);
    for (i, (b, &count)) in blocks.iter().zip(counts).enumerate() {
        let span = (i + 1) as f64 / n;
        for j in 0..count {
            let at = (j + 1) as f64 / count as f64 * span;
            let esi = repair.fresh_esi((object, b.sbn), b.source_symbols);
            slots.push((at, i, b.sbn, esi));
        }
    }
    slots.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    plan.extend(slots.into_iter().map(|(_, _, sbn, esi)| (sbn, esi)));
}

/// Plans a hybrid first pass's window with its repair: each block's run is
/// its source symbols, then `counts[i]` fresh repair symbols. The first half
/// of every run goes out interleaved over the blocks (the window's first
/// half), then the blocks' second halves one block after another, so that
/// block i of n becomes decodable at about 1/2 + (i + 1) / 2n of the window.
/// (Source symbols interleaved over the whole window, with the repair after
/// them, made every block decodable in the window's last few milliseconds:
/// with three receivers on two shared cores, the last window's decodes were
/// 50-80 ms of a 1 s transfer's tail.) A burst in the first half is spread
/// over every block; one in the second falls on one or two, and NACKs
/// repair what the proactive repair does not cover.
fn plan_staggered_window(
    repair: &mut RepairScheduler,
    object: u32,
    blocks: &[BlockInfo],
    counts: &[u32],
    plan: &mut VecDeque<(u8, u32)>,
) {
    let runs: Vec<Vec<u32>> = blocks
        .iter()
        .zip(counts)
        .map(|(b, &count)| {
            let k = b.source_symbols;
            (0..k)
                .chain((0..count).map(|_| repair.fresh_esi((object, b.sbn), k)))
                .collect()
        })
        .collect();
    lay_out_staggered(blocks, &runs, plan);
}

/// The proactive repair each of `blocks` still needs for `loss` in a group of
/// `group` ([`super::repair::proactive_repair`]), less what it was planned
/// already: its share-based repair (`share` × K) and `planned[i]` (none
/// where `planned` is shorter).
fn proactive_counts(
    blocks: &[BlockInfo],
    loss: f64,
    group: usize,
    share: f64,
    planned: &[u32],
) -> Vec<u32> {
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let k = b.source_symbols;
            let sent = (k as f64 * share).ceil() as u32 + planned.get(i).copied().unwrap_or(0);
            super::repair::proactive_repair(k, loss, group).saturating_sub(sent)
        })
        .collect()
}

/// Lays each block's run (`runs[i]`, the ESIs of `blocks[i]` in order) onto
/// `plan` as [`plan_staggered_window`] does: the first half of every run
/// interleaved over the blocks, then the second halves one block after
/// another.
fn lay_out_staggered(blocks: &[BlockInfo], runs: &[Vec<u32>], plan: &mut VecDeque<(u8, u32)>) {
    let mut first: Vec<(f64, usize, u32)> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let half = run.len().div_ceil(2);
        for (j, &esi) in run[..half].iter().enumerate() {
            first.push(((j + 1) as f64 / half as f64, i, esi));
        }
    }
    first.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    plan.extend(first.into_iter().map(|(_, i, esi)| (blocks[i].sbn, esi)));
    for (b, run) in blocks.iter().zip(runs) {
        let half = run.len().div_ceil(2);
        plan.extend(run[half..].iter().map(|&esi| (b.sbn, esi)));
    }
}

/// When to ask for each block's encoder in a staggered window's `plan`
/// ([`plan_staggered_window`]): half a window (the first half's length)
/// before the block's first repair symbol, as (the plan's length then, SBN),
/// in the order asked. All at the window's opening, the window's requests
/// would evict the window before's encoders from the cache (it holds one window
/// and four blocks) while NACKs for its last blocks were still to come, and
/// those would be built again; asked this way, the blocks of the window before
/// leave it one by one over the first half, and the one worker builds them
/// in the order needed, each with half a window to spare.
fn encoder_requests(blocks: &[BlockInfo], plan: &VecDeque<(u8, u32)>) -> VecDeque<(usize, u8)> {
    let total = plan.len();
    let base = blocks.first().map_or(0, |b| b.sbn as usize);
    let mut runs = vec![0usize; blocks.len()];
    let mut first_repair: Vec<Option<usize>> = vec![None; blocks.len()];
    for (i, &(sbn, esi)) in plan.iter().enumerate() {
        let Some(slot) = (sbn as usize).checked_sub(base) else {
            continue;
        };
        let (Some(b), Some(run), Some(f)) = (
            blocks.get(slot),
            runs.get_mut(slot),
            first_repair.get_mut(slot),
        ) else {
            continue;
        };
        *run += 1;
        if f.is_none() && esi >= b.source_symbols {
            *f = Some(i);
        }
    }
    // The first half: half of every block's run.
    let lead: usize = runs.iter().map(|r| r.div_ceil(2)).sum();
    let mut due: Vec<(usize, u8)> = blocks
        .iter()
        .zip(first_repair)
        .filter_map(|(b, f)| f.map(|at| (total - at.saturating_sub(lead), b.sbn)))
        .collect();
    due.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    due.into()
}

/// Plans `counts[i]` fresh repair symbols of each of `blocks` (of `object`)
/// onto `plan`, round-robin over the blocks, so that a burst of loss is
/// spread over them: a window's share-based repair.
fn plan_fresh_repair(
    repair: &mut RepairScheduler,
    object: u32,
    blocks: &[BlockInfo],
    counts: &[u32],
    plan: &mut VecDeque<(u8, u32)>,
) {
    for i in 0..counts.iter().copied().max().unwrap_or(0) {
        for (b, &n) in blocks.iter().zip(counts) {
            if i < n {
                plan.push_back((b.sbn, repair.fresh_esi((object, b.sbn), b.source_symbols)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first reports are averaged alike, later ones with weight 1/16: one
    /// noisy report moves the average by a sixteenth of its error.
    #[test]
    fn a_receiver_s_loss_is_the_average_of_its_reports() {
        let mut avg = 0.0;
        for (n, r) in [0.08, 0.12, 0.10, 0.10].into_iter().enumerate() {
            avg = average_loss(avg, n as u32, r);
        }
        assert!((avg - 0.10).abs() < 1e-9, "{avg}");
        for n in 4..100 {
            avg = average_loss(avg, n, 0.10);
        }
        let moved = average_loss(avg, 100, 0.26);
        assert!((moved - 0.11).abs() < 1e-9, "{moved}");
    }

    /// The expected largest of n standard normals, between its table's
    /// points, stays within 0.02 of the integral (2.746 at 200, 3.037 at
    /// 500, 3.435 at 2000), and grows with n.
    #[test]
    fn the_expected_largest_normal_interpolates_the_integral() {
        for (n, e) in [
            (1, 0.0),
            (4, 1.0294),
            (200, 2.746),
            (500, 3.0367),
            (2000, 3.4353),
        ] {
            let got = expected_max_normal(n);
            assert!((got - e).abs() < 0.02, "n = {n}: {got}, not {e}");
        }
        let mut last = -1.0;
        for n in [0, 1, 2, 7, 30, 300, 3000, 30_000, 1_000_000] {
            assert!(expected_max_normal(n) >= last, "{n}");
            last = expected_max_normal(n);
        }
        // No receivers, no loss to size for; a lone report is taken as is.
        assert_eq!(neediest_loss(std::iter::empty(), false), None);
        assert_eq!(neediest_loss([(0.2, 0.05)].into_iter(), false), Some(0.2));
    }

    /// A first sizing (receivers' first reports, topped up later) keeps no
    /// σ for the estimate's error and takes σ from the spans alone: three
    /// reports that happen to lie close together are still each a ratio over
    /// 1000 DATA, and their largest runs 0.85 σ high. The window's end keeps
    /// the σ (for three receivers, E(3) − 1 < 0: the largest as it is).
    #[test]
    fn a_first_sizing_takes_the_noise_off_whatever_the_spread() {
        let s = 1.0 / 1000f64.sqrt();
        let close = [(0.100, s), (0.101, s), (0.102, s)];
        let first = neediest_loss(close.into_iter(), true).unwrap();
        let sd = s * (0.102f64 * 0.898).sqrt();
        let e3 = expected_max_normal(3);
        assert!((first - (0.102 - e3 * sd)).abs() < 1e-9, "{first}");
        assert_eq!(neediest_loss(close.into_iter(), false), Some(0.102));
    }

    /// Staggered proactive repair: each block's symbols come in ESI order,
    /// block i's last one by (i + 1) / n of the plan, so the blocks become
    /// decodable one after another; and every block has symbols in the first
    /// part of the plan (a burst there falls on all of them).
    #[test]
    fn proactive_repair_is_staggered_across_the_window() {
        let blocks: Vec<BlockInfo> = (0..4u8)
            .map(|sbn| BlockInfo {
                sbn,
                source_symbols: 100,
                offset: 0,
                len: 0,
            })
            .collect();
        let counts = [20u32; 4];
        let mut repair = RepairScheduler::new(false, 1 << 20, 2);
        let mut plan = VecDeque::new();
        plan_staggered_repair(&mut repair, 0, &blocks, &counts, &mut plan);
        assert_eq!(plan.len(), 80);
        let plan: Vec<(u8, u32)> = plan.into_iter().collect();
        let last: Vec<usize> = (0..4u8)
            .map(|sbn| plan.iter().rposition(|&(b, _)| b == sbn).unwrap())
            .collect();
        assert!(last.windows(2).all(|w| w[0] < w[1]), "{last:?}");
        assert!(last[0] < 40, "block 0 complete early: {last:?}");
        assert_eq!(last[3], 79);
        for sbn in 0..4u8 {
            let esis: Vec<u32> = plan.iter().filter(|p| p.0 == sbn).map(|p| p.1).collect();
            assert_eq!(esis, (100..120).collect::<Vec<_>>(), "fresh, in order");
            assert!(plan[..20].iter().any(|p| p.0 == sbn), "block {sbn} early");
        }
    }
}
