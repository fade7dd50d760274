//! The sender's settings, errors, events and counters: the public types
//! of its API other than [`super::Sender`] itself. Nothing here holds
//! state of a running sender.

use std::time::Duration;

use groupcast_fec::{CodecSet, FecId, OtiError};

use crate::proto::SessionId;
use crate::proto::feedback::{FeedbackConfig, FlowPolicy, Mode};
use crate::wire::seal::SEAL_LEN;
use crate::wire::{DATA_OVERHEAD, DEFAULT_MAX_DATAGRAM, MAX_DATAGRAM, SYMBOL_ALIGNMENT};

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
    ///
    /// [`Sender::poll_encoder_request`]: crate::proto::Sender::poll_encoder_request
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
    /// Sign what is sent (protocol.md §15): every datagram is listed in AUTH
    /// packets signed with this key, so that receivers holding its public
    /// key take nothing else. Default none.
    pub signing_key: Option<crate::proto::auth::SigningKey>,
    /// Encrypt what is sent (protocol.md §16): every datagram but AUTH is
    /// sealed under this channel key, within `max_datagram` (symbols are
    /// [`SEAL_LEN`] bytes shorter), and feedback is taken only sealed under
    /// it. Default none.
    pub channel_key: Option<crate::wire::seal::ChannelKey>,
    /// The wall clock that stamps each AUTH's Time (protocol.md §15.1), so
    /// that receivers refuse a signed session replayed later. The drivers
    /// read it at start; default none (Time 0, which receivers that check
    /// the time refuse).
    pub wall_clock: Option<crate::proto::auth::WallClock>,
    /// With a channel key, the first Sequence sealed (protocol.md §16.2):
    /// at random, so that a sender restarted under the same session id and
    /// key never seals twice under one nonce. The drivers draw it as they
    /// start; [`Sender::new`] refuses a channel key without one.
    ///
    /// [`Sender::new`]: crate::proto::Sender::new
    pub seal_start: Option<u64>,
}

/// How long a STATUS with BUSY holds the fallback off (protocol.md §13.4,
/// "Fallback"): two and a half of the receivers' keep-alive intervals
/// ([`crate::proto::KEEPALIVE`]), since a receiver whose window
/// stands still may report no oftener.
pub const BUSY_HOLD: Duration = Duration::from_millis(2500);

/// DATA packets between two OBJECT_INFO of the first object under
/// [`SenderConfig::lead_protection`].
pub(super) const LEAD_INFO_INTERVAL: u32 = 2;

/// DATA packets of later objects between two repeats of the first one (its
/// OBJECT_INFO, then one of its source symbols, in turn) under
/// [`SenderConfig::lead_protection`]: a receiver that missed the manifest has
/// it again within this many packets, at a cost of 2 / 256 of the traffic.
pub(super) const LEAD_REPEAT_INTERVAL: u32 = 256;

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
            signing_key: None,
            channel_key: None,
            wall_clock: None,
            seal_start: None,
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
    /// Nack mode: repair replays the source symbols NACKs name lost (the
    /// Compact No-Code scheme), never a repair symbol. The one place the
    /// sender tells nack mode from hybrid (see [`SenderConfig::answers_fresh`]).
    pub(super) fn replays(&self) -> bool {
        self.mode == Mode::Nack
    }

    /// Hybrid mode: NACKs are answered with fresh repair symbols, and the
    /// first pass sends proactive repair.
    pub(super) fn answers_fresh(&self) -> bool {
        self.mode == Mode::Hybrid
    }

    /// The largest plain datagram: `max_datagram`, less the seal on a
    /// sealed channel (protocol.md §16.2).
    pub fn plain_max_datagram(&self) -> usize {
        let seal = if self.channel_key.is_some() {
            SEAL_LEN
        } else {
            0
        };
        self.max_datagram.saturating_sub(seal)
    }

    /// The symbol size T this configuration uses.
    pub fn effective_symbol_size(&self) -> u16 {
        self.symbol_size.unwrap_or_else(|| {
            let room = self
                .plain_max_datagram()
                .saturating_sub(DATA_OVERHEAD)
                .min(u16::MAX as usize);
            let al = SYMBOL_ALIGNMENT as usize;
            (room / al * al) as u16
        })
    }

    /// Checks every setting, as [`Sender::new`] does: the one place the
    /// sender's ranges are defined (drivers name their flags, but check
    /// against these).
    ///
    /// [`Sender::new`]: crate::proto::Sender::new
    pub fn validate(&self) -> Result<(), SenderError> {
        if !(DATA_OVERHEAD + 4..=MAX_DATAGRAM).contains(&self.plain_max_datagram()) {
            return Err(SenderError::MaxDatagram(self.max_datagram));
        }
        if self.channel_key.is_some() && self.seal_start.is_none() {
            return Err(SenderError::Config(
                "a channel key needs seal_start, a random first Sequence (protocol.md §16.2)",
            ));
        }
        if self.signing_key.is_some() && crate::wire::auth::auth_capacity(self.max_datagram) < 2 {
            return Err(SenderError::Config(
                "max datagram too small to sign: an AUTH of two hashes needs 156 bytes",
            ));
        }
        let t = self.effective_symbol_size();
        let max_t = self.plain_max_datagram() - DATA_OVERHEAD;
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

/// Counters kept by a [`Sender`](crate::proto::Sender).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Datagrams emitted.
    pub packets_sent: u64,
    /// AUTH packets emitted (protocol.md §15), counted in `packets_sent`
    /// and `bytes_sent` too.
    pub auth_packets_sent: u64,
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
    /// Of those, on a sealed channel: feedback not sealed, or whose seal
    /// did not open under the channel key (protocol.md §16.3).
    pub feedback_unsealed: u64,
    /// Receivers tracked now.
    pub receivers_tracked: u64,
    /// Receivers that ever started tracking (a receiver that times out and
    /// comes back counts again).
    pub receivers_heard: u64,
    /// The group size the sender estimates (protocol.md §13.4, "Group
    /// size"): the receivers tracked while it asks all of them to report,
    /// else the census of the sampled reports; as of the latest PROBE.
    pub group_estimate: u64,
    /// The Sample exponent of the latest PROBE: one receiver in 2^this is
    /// asked for a routine STATUS (0: all).
    pub report_sample: u8,
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
    ///
    /// [`Sender::handle_block`]: crate::proto::Sender::handle_block
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
