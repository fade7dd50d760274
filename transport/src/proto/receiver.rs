//! The receiving side: decodes, verifies and hands out objects.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

use groupcast_fec::{BlockDecoder, CodecSet, FecId, Oti, Push};

use super::hash::{self, TreeHasher, UnitCv, unit_cvs};
use super::timer::BlockTimers;
use super::{ObjectId, SessionId};
use crate::wire::feedback::{
    NACK_NEED_INFO, PROBE_END, STATUS_BUSY, STATUS_COMPLETE, STATUS_ECHO, STATUS_LOSS,
};
use crate::wire::{
    DataRepr, InfoRepr, MAX_DATAGRAM, NackEntry, NackRepr, ProbeRepr, Repr, StatusRepr, WireError,
};

/// Receiver settings. Start from [`ReceiverConfig::default`].
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Accept only this session; `None` accepts every session (each kept apart).
    pub session: Option<SessionId>,
    /// Sessions to refuse (`foreign_session`), with no feedback to them: for
    /// a driver that has finished with them (`recv --follow`).
    pub refused_sessions: Vec<SessionId>,
    /// Largest object accepted, in bytes. Default 4 GiB.
    pub max_object_size: u64,
    /// Objects decoded at once. Default 16.
    pub max_objects: usize,
    /// Blocks being decoded at once, over all objects. A symbol for a new block
    /// beyond this is deferred (dropped and counted); the carousel sends more
    /// later. Default 64.
    pub max_blocks_in_flight: usize,
    /// Largest datagram accepted. Default 65527.
    pub max_datagram: usize,
    /// An unfinished object that hears nothing for this long is abandoned.
    /// Default 120 s.
    pub idle_timeout: Duration,
    /// Completed objects remembered, so that their late packets are recognised
    /// as duplicates rather than restarting the object. Default 4096.
    pub completed_history: usize,
    /// This receiver's id in NACK and STATUS packets. Pick it at random per
    /// run (the default, 0, is only fit for tests).
    pub id: u64,
    /// Whether to answer a nack or hybrid sender's PROBEs with NACK and STATUS
    /// packets. Default true. Carousel senders send no PROBE, so receivers of
    /// a carousel stay silent either way.
    pub feedback: bool,
    /// Longest NACK backoff, as a multiple of the sender's GRTT. Default 6:
    /// the GRTT measures the path, and the window must cover a peer's NACK
    /// reaching the others as well.
    pub nack_backoff: f64,
    /// Least group size assumed when drawing NACK backoffs; the sender's own
    /// count (in its PROBEs) is used when larger. Larger values hold more
    /// receivers back for suppression. Default 1.
    pub group_size: u32,
    /// Least time between two STATUS packets. Default 50 ms.
    pub status_interval: Duration,
    /// Send NACKs to the sender alone instead of the feedback group (no
    /// suppression among receivers then). Default false.
    pub nack_unicast: bool,
    /// Sessions whose feedback state is kept at once. Default 4.
    pub max_sessions: usize,

    /// Which objects the receiver takes before [`Receiver::bind`]. Default
    /// [`Admission::Open`].
    pub admission: Admission,
    /// Largest block accepted, K × T bytes. An object whose largest block is
    /// larger is refused (`block_too_large`) before anything is allocated.
    /// Default 64 MiB (a block of the default K = 1000, T = 1188 is 1.2 MB).
    pub max_block_bytes: u64,
    /// Bytes that blocks in flight may hold at once, each block counted at its
    /// most (2 × K × T + 2 × `HASH_UNIT`). A symbol for a new block that would
    /// pass this is deferred, like one beyond `max_blocks_in_flight`. Default
    /// 256 MiB.
    pub max_buffered_bytes: u64,

    /// Which codecs serve the FEC schemes named on the wire. Default
    /// [`CodecSet::Real`]. With [`CodecSet::Model`] (simulations of large
    /// groups) RaptorQ blocks decode by the model's statistics,
    /// [`ReceiverEvent::BlockDecoded`] carries no bytes, and objects complete
    /// without their hash being checked.
    pub codecs: CodecSet,
    /// Threads that solve blocks, for the driver to start (the core starts
    /// none). Above 0, a block that holds enough symbols becomes a
    /// [`DecodeJob`] (from [`Receiver::poll_decode`]), which the driver runs
    /// where it likes and hands back ([`Receiver::handle_decoded`]), while
    /// its receiving thread goes on draining the socket; blocks may then
    /// decode out of order. Blocks whose source symbols all arrived complete
    /// at once either way. Default 0: the receiver decodes inline.
    pub decode_threads: usize,
    /// With decode workers, let a solvable block of 500 symbols or more
    /// wait (ripen) up to 5 ms, or until the next PROBE, for the few more
    /// symbols that make its solve the cheap one
    /// ([`groupcast_fec::BlockDecoder::cheap`]). `groupcast recv` turns it
    /// on; default off (the message layer keeps it off: see
    /// docs/architecture.md).
    pub ripen: bool,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            session: None,
            refused_sessions: Vec::new(),
            max_object_size: 4 << 30,
            max_objects: 16,
            max_blocks_in_flight: 64,
            max_datagram: MAX_DATAGRAM,
            idle_timeout: Duration::from_secs(120),
            completed_history: 4096,
            id: 0,
            feedback: true,
            nack_backoff: 6.0,
            group_size: 1,
            status_interval: Duration::from_millis(50),
            nack_unicast: false,
            max_sessions: 4,
            admission: Admission::Open,
            max_block_bytes: 64 << 20,
            max_buffered_bytes: 256 << 20,
            codecs: CodecSet::Real,
            decode_threads: 0,
            ripen: false,
        }
    }
}

impl ReceiverConfig {
    /// Upper bound on [`ReceiverStats::buffered_bytes`] for objects sent with
    /// symbol size `t` and at most `max_k` source symbols per block. Each block
    /// in flight holds at most its source symbols in place (K × T, allocated at
    /// its first source symbol) and fewer than K repair symbols, plus two
    /// partial hash units (2 × 64 KiB); add one whole-object buffer per object
    /// of at most one hash unit.
    pub fn buffer_bound(&self, t: u16, max_k: u32) -> u64 {
        let block = (t as u64 * max_k as u64).min(self.max_block_bytes);
        let per_block = 2 * block + 2 * super::hash::UNIT;
        let blocks = (self.max_blocks_in_flight as u64 * per_block).min(self.max_buffered_bytes);
        blocks + self.max_objects as u64 * super::hash::UNIT
    }

    /// Upper bound on [`ReceiverStats::buffered_bytes`] whatever the senders
    /// claim: the blocks in flight within `max_buffered_bytes`, plus one
    /// whole-object hash unit per object.
    pub fn worst_case_buffer(&self) -> u64 {
        self.max_buffered_bytes + self.max_objects as u64 * super::hash::UNIT
    }
}

/// Which objects a receiver takes before it is bound to a manifest
/// ([`Receiver::bind`]). See protocol.md §11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every object of every accepted session. For library users and the
    /// simulator, who decide themselves what to keep.
    Open,
    /// Only object 0, the manifest, of each session; its state is created by
    /// its OBJECT_INFO alone (DATA that comes first is deferred). At most
    /// `max_sessions` sessions are candidates at once: a further one evicts
    /// the oldest (`candidates_evicted`). Packets of every other object are
    /// dropped (`awaiting_manifest`) until [`Receiver::bind`] names the
    /// objects.
    Manifest {
        /// Accept only a manifest with this BLAKE3 hash (the transfer id):
        /// an OBJECT_INFO for object 0 with another hash is `wrong_transfer`.
        expect: Option<[u8; 32]>,
        /// Largest manifest accepted (`object_too_large` beyond).
        max_size: u64,
    },
}

/// One object a verified manifest names: see [`Receiver::bind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    /// Its object id.
    pub object: ObjectId,
    /// Its size in bytes.
    pub size: u64,
    /// Its BLAKE3 hash; for a part of a file, its chaining value at
    /// `hash_offset`.
    pub hash: [u8; 32],
    /// Its name (the manifest path); OBJECT_INFO must carry the same.
    pub name: String,
    /// For a part of a file (protocol.md §11.1), where it starts in the
    /// file: its hash is then the chaining value of its bytes as that
    /// subtree of the file's BLAKE3 tree. `None` for an object hashed alone.
    pub hash_offset: Option<u64>,
}

/// Why a datagram was refused. Each is counted in [`ReceiverStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RejectReason {
    /// Shorter than its fixed fields.
    Truncated,
    /// Longer than the configured maximum.
    Oversized,
    /// Not a groupcast datagram.
    BadMagic,
    /// Another protocol version.
    UnsupportedVersion,
    /// CRC-32 mismatch: corrupted in transit.
    BadChecksum,
    /// Unknown packet type.
    UnknownType,
    /// Flags or an authentication tag this version does not support.
    UnsupportedFlags,
    /// A reserved field was not zero.
    Reserved,
    /// The OTI failed validation.
    InvalidOti,
    /// Unknown FEC Encoding ID.
    UnknownFec,
    /// SBN outside the object.
    SbnOutOfRange,
    /// ESI outside the FEC scheme's range.
    EsiOutOfRange,
    /// Symbol length is not T.
    SymbolLength,
    /// Object name too long.
    NameLength,
    /// Object name not UTF-8.
    NameEncoding,
    /// A PROBE mode that is neither nack nor hybrid.
    UnknownMode,
    /// A flag bit the packet type does not define.
    UnknownFlags,
    /// A field's value beyond its range (group size, loss).
    OutOfRange,
    /// A fixed-length packet of another length, or bytes after a NACK's entries.
    BadLength,
    /// More NACK entries than allowed.
    TooManyEntries,
    /// A NACK range that is empty, past 2^24, or does not add up to the need.
    BadRange,
    /// From a session this receiver does not accept.
    ForeignSession,
    /// Object larger than `max_object_size`.
    ObjectTooLarge,
    /// More objects at once than `max_objects`.
    TooManyObjects,
    /// OTI or FEC scheme differs from what earlier packets of the object said.
    OtiMismatch,
    /// Hash or name differs from an earlier OBJECT_INFO of the object, or
    /// from the object completed under its id ([`FailReason::Conflict`]).
    InfoMismatch,
    /// An object the bound manifest does not list.
    UnexpectedObject,
    /// Size, hash or name differ from the bound manifest's line for the object.
    ManifestMismatch,
    /// A manifest whose hash is not the transfer id the receiver expects.
    WrongTransfer,
    /// A block larger than `max_block_bytes`.
    BlockTooLarge,
    /// Not a datagram refusal: a packet of an object other than the manifest
    /// before a manifest is bound ([`Admission::Manifest`]). Counted in
    /// [`ReceiverStats::awaiting_manifest`], not in `packets_rejected`.
    AwaitingManifest,
    /// A PROBE whose counters cannot be true (for example more DATA sent since
    /// the last PROBE than could be); its counters are ignored.
    Implausible,
    /// Of an object its application gave up ([`Receiver::abandon`]).
    Abandoned,
}

impl RejectReason {
    /// Every reason, in a stable order.
    pub const ALL: [RejectReason; 32] = [
        Self::Truncated,
        Self::Oversized,
        Self::BadMagic,
        Self::UnsupportedVersion,
        Self::BadChecksum,
        Self::UnknownType,
        Self::UnsupportedFlags,
        Self::Reserved,
        Self::InvalidOti,
        Self::UnknownFec,
        Self::SbnOutOfRange,
        Self::EsiOutOfRange,
        Self::SymbolLength,
        Self::NameLength,
        Self::NameEncoding,
        Self::UnknownMode,
        Self::UnknownFlags,
        Self::OutOfRange,
        Self::BadLength,
        Self::TooManyEntries,
        Self::BadRange,
        Self::ForeignSession,
        Self::ObjectTooLarge,
        Self::TooManyObjects,
        Self::OtiMismatch,
        Self::InfoMismatch,
        Self::UnexpectedObject,
        Self::ManifestMismatch,
        Self::WrongTransfer,
        Self::BlockTooLarge,
        Self::Implausible,
        Self::Abandoned,
    ];

    /// A stable snake_case name, as used in `rejected_by_reason`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Oversized => "oversized",
            Self::BadMagic => "bad_magic",
            Self::UnsupportedVersion => "unsupported_version",
            Self::BadChecksum => "bad_checksum",
            Self::UnknownType => "unknown_type",
            Self::UnsupportedFlags => "unsupported_flags",
            Self::Reserved => "reserved",
            Self::InvalidOti => "invalid_oti",
            Self::UnknownFec => "unknown_fec",
            Self::SbnOutOfRange => "sbn_out_of_range",
            Self::EsiOutOfRange => "esi_out_of_range",
            Self::SymbolLength => "symbol_length",
            Self::NameLength => "name_length",
            Self::NameEncoding => "name_encoding",
            Self::UnknownMode => "unknown_mode",
            Self::UnknownFlags => "unknown_flags",
            Self::OutOfRange => "out_of_range",
            Self::BadLength => "bad_length",
            Self::TooManyEntries => "too_many_entries",
            Self::BadRange => "bad_range",
            Self::ForeignSession => "foreign_session",
            Self::ObjectTooLarge => "object_too_large",
            Self::TooManyObjects => "too_many_objects",
            Self::OtiMismatch => "oti_mismatch",
            Self::InfoMismatch => "info_mismatch",
            Self::UnexpectedObject => "unexpected_object",
            Self::ManifestMismatch => "manifest_mismatch",
            Self::WrongTransfer => "wrong_transfer",
            Self::BlockTooLarge => "block_too_large",
            Self::Implausible => "implausible",
            Self::Abandoned => "abandoned",
            Self::AwaitingManifest => "awaiting_manifest",
        }
    }
}

impl From<WireError> for RejectReason {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated | WireError::BufferTooSmall => Self::Truncated,
            WireError::Oversized => Self::Oversized,
            WireError::BadMagic => Self::BadMagic,
            WireError::UnsupportedVersion => Self::UnsupportedVersion,
            WireError::BadChecksum => Self::BadChecksum,
            WireError::UnknownType => Self::UnknownType,
            WireError::UnsupportedFlags => Self::UnsupportedFlags,
            WireError::Reserved => Self::Reserved,
            WireError::Oti(_) => Self::InvalidOti,
            WireError::UnknownFec => Self::UnknownFec,
            WireError::SbnOutOfRange => Self::SbnOutOfRange,
            WireError::EsiOutOfRange => Self::EsiOutOfRange,
            WireError::SymbolLength => Self::SymbolLength,
            WireError::NameLength => Self::NameLength,
            WireError::NameEncoding => Self::NameEncoding,
            WireError::UnknownMode => Self::UnknownMode,
            WireError::UnknownFlags => Self::UnknownFlags,
            WireError::OutOfRange => Self::OutOfRange,
            WireError::BadLength => Self::BadLength,
            WireError::TooManyEntries => Self::TooManyEntries,
            WireError::BadRange => Self::BadRange,
        }
    }
}

/// Why an object was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// Every block decoded but the BLAKE3 hash did not match: the data already
    /// handed out must be discarded. The object starts over.
    HashMismatch,
    /// Nothing was heard of the object for `idle_timeout`.
    Idle,
    /// A candidate manifest evicted by a newer one ([`Admission::Manifest`]).
    Evicted,
    /// Its application gave it up ([`Receiver::abandon`]).
    Abandoned,
    /// An OBJECT_INFO named another hash than the object this receiver
    /// completed under the same id: two objects were sent under one id, so
    /// one of them is forged, and a receiver without keys cannot tell which.
    /// The object stays as it was completed; the session is never reported
    /// complete from then on.
    Conflict,
}

/// Where a sender is, from its PROBEs ([`Receiver::sender_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderProgress {
    /// Objects in the session: ids 0 .. `objects`.
    pub objects: u32,
    /// The first object whose first pass is not finished.
    pub progress: ObjectId,
    /// The first object the sender still holds (the highest any PROBE
    /// said): it answers nothing for those before.
    pub retained: ObjectId,
}

/// Something the receiver hands to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiverEvent {
    /// The first OBJECT_INFO of an object arrived.
    ObjectAnnounced {
        /// Session.
        session: SessionId,
        /// Object.
        object: ObjectId,
        /// Size in bytes.
        size: u64,
        /// Name given by the sender.
        name: String,
    },
    /// A block decoded: `data` belongs at `offset` in the object. Not yet
    /// verified; the object is verified as a whole before `ObjectComplete`.
    BlockDecoded {
        /// Session.
        session: SessionId,
        /// Object.
        object: ObjectId,
        /// Byte offset of `data` in the object.
        offset: u64,
        /// The block's number in the object (see [`Receiver::hold_window`]).
        sbn: u8,
        /// The block's bytes.
        data: Vec<u8>,
    },
    /// Every byte arrived and the object's BLAKE3 hash matched.
    ObjectComplete {
        /// Session.
        session: SessionId,
        /// Object.
        object: ObjectId,
        /// Size in bytes.
        size: u64,
        /// Verified BLAKE3 hash.
        hash: [u8; 32],
        /// Name given by the sender.
        name: String,
    },
    /// The object failed; data handed out for it must be discarded.
    ObjectFailed {
        /// Session.
        session: SessionId,
        /// Object.
        object: ObjectId,
        /// Why.
        reason: FailReason,
    },
}

/// Counters kept by a [`Receiver`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Datagrams handed to the receiver.
    pub packets_received: u64,
    /// Bytes of those datagrams.
    pub bytes_received: u64,
    /// Datagrams refused; see [`ReceiverStats::rejected_by_reason`].
    pub packets_rejected: u64,
    rejected: [u64; RejectReason::ALL.len()],
    /// Symbols already held, or for blocks or objects already finished.
    pub duplicates: u64,
    /// New symbols buffered for decoding.
    pub symbols_accepted: u64,
    /// Symbols dropped because `max_blocks_in_flight` blocks were already open.
    pub symbols_deferred: u64,
    /// OBJECT_INFO packets accepted.
    pub info_received: u64,
    /// Blocks decoded.
    pub blocks_decoded: u64,
    /// Decode jobs ([`ReceiverConfig::decode_threads`]) that came back still
    /// short of symbols (about 1 in 100 from exactly K), and took more.
    pub decode_retries: u64,
    /// Objects completed and verified.
    pub objects_completed: u64,
    /// Objects that failed verification or went idle.
    pub objects_failed: u64,
    /// Bytes currently buffered: symbols held by block decoders and partial hash units.
    pub buffered_bytes: u64,
    /// Highest `buffered_bytes` seen.
    pub peak_buffered_bytes: u64,
    /// PROBE packets accepted.
    pub probes_received: u64,
    /// NACK packets sent.
    pub nacks_sent: u64,
    /// Block requests held back because another receiver's NACK covered them.
    pub nacks_suppressed: u64,
    /// Other receivers' NACK packets heard.
    pub nacks_heard: u64,
    /// STATUS packets sent.
    pub status_sent: u64,
    /// STATUS packets not sent: due, but with nothing new to say and no
    /// credit left, the session having sent no DATA or OBJECT_INFO since
    /// (protocol.md §13.5). PROBEs of sessions that send nothing draw no
    /// reply.
    pub status_withheld: u64,
    /// Feedback packets that were not for a receiver (STATUS), or of sessions
    /// beyond `max_sessions`, ignored.
    pub feedback_ignored: u64,
    /// Candidate manifests evicted by newer ones ([`Admission::Manifest`]).
    pub candidates_evicted: u64,
    /// Packets of objects other than the manifest that came before a manifest
    /// was bound ([`Admission::Manifest`]), dropped (the sender repairs them).
    pub awaiting_manifest: u64,
    /// Feedback sessions dropped after `idle_timeout` without a PROBE.
    pub feedback_expired: u64,
    /// Symbols deferred because `max_buffered_bytes` was reached (also
    /// counted in `symbols_deferred`).
    pub buffer_full: u64,
    /// Peers' NACKs not allowed to hold this receiver back, because the last
    /// one that did was followed by no repair.
    pub suppressions_doubted: u64,
    /// Sessions whose sender answered none of this receiver's NACKs for 4
    /// GRTTs (at least 200 ms): it may not hear them. Warned once each.
    pub nacks_unanswered: u64,
}

/// Where a receiver's feedback datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The channel's feedback group (NACKs, so that receivers hear each other).
    Feedback,
    /// The sender of this session alone: the source address and port of
    /// the session's latest datagram that may aim it ([`Accepted::from_sender`];
    /// STATUS, and NACKs under `nack_unicast`).
    Sender(SessionId),
}

/// Feedback state for one session (nack and hybrid modes).
struct SessionFb {
    /// The sender's GRTT, as its PROBEs give it (see `handle_probe`).
    grtt: Duration,
    /// When `grtt` was last set.
    grtt_at: Instant,
    /// The sender's group size estimate (receivers it tracks), at least 1.
    group: f64,
    /// Whether `group` is the sender's count (its PROBEs' Group field), not
    /// the guess while it has heard nobody.
    group_counted: bool,
    objects: u32,
    progress: (u32, u8),
    /// The first object the sender still holds (PROBE's Retained).
    retained: u32,
    probe_ts: u64,
    probe_at: Instant,
    /// The sender's DATA counter at the last accepted PROBE; none before the
    /// first plausible one.
    probe_sent: Option<u64>,
    /// When `probe_sent` was last accepted (or the session first heard).
    counter_at: Instant,
    data_at_probe: u64,
    bytes_at_probe: u64,
    data: u64,
    bytes: u64,
    /// The loss reported in STATUS, which NACK backoffs also rank needs by
    /// (`need_rank`): the ratio of the DATA counted to the DATA the sender's
    /// counter says went out (`loss_got`, `loss_sent`) until [`LOSS_WARMUP`]
    /// went out, then a moving average of the PROBE samples (weight 1/4 for
    /// a sample of [`LOSS_SAMPLE`] DATA or more, in proportion below).
    /// (A moving average from 0 says a quarter of the loss after one sample:
    /// ranks drawn from it put most of a group first, and the sender's
    /// proactive repair, sized from the reports, fell short of the loss.)
    loss: f64,
    /// The PROBE loss samples' variance over what independent loss at
    /// `loss` would give them, a moving average from 1 (each sample's
    /// share at most 10): bursty loss makes it larger, and above
    /// [`DISPERSION_LIMIT`] `need_rank` gives up its binomial model.
    dispersion: f64,
    loss_got: u64,
    loss_sent: u64,
    /// The variance of `loss` over p(1 − p), were loss independent at a
    /// rate p: 1 / `loss_sent` while `loss` is a plain ratio, then carried
    /// through each moving-average step (weight w over a sample of n DATA:
    /// (1 − w)² V + w² / n). Its inverse is the Loss span STATUS reports,
    /// from which the sender tells noise from need in a group's reports.
    loss_var: f64,
    /// PROBE loss samples taken.
    loss_samples: u32,
    rate: f64,
    status_due: bool,
    final_statuses: u8,
    last_status: Option<Instant>,
    /// The window edge the application holds STATUS at (`hold_window`).
    hold: Option<(u32, u8)>,
    /// When each block's NACK is due.
    timers: BlockTimers,
    holdoff: HashMap<(u32, u8), Instant>,
    /// Blocks a peer's NACK held back, until when: if no repair for the block
    /// comes by then, the peer is doubted.
    suppressed: HashMap<(u32, u8), Instant>,
    /// Blocks whose last suppression brought no repair: their next NACK is
    /// sent whatever peers say, so forged NACKs (which the sender may well
    /// drop) cannot silence a receiver.
    doubt: HashSet<(u32, u8)>,
    complete: bool,
    /// When the first of our NACKs that no repair has followed yet went out.
    unanswered: Option<Instant>,
    /// Whether we warned that NACKs go unanswered.
    warned_unanswered: bool,
    /// Packets with nothing new this receiver may still send to the
    /// session's sender (STATUS whose window did not move, and NACKs under
    /// `nack_unicast`): one per DATA or OBJECT_INFO packet of the session
    /// heard, at most [`MAX_SENDER_CREDIT`]; two to start with if some was
    /// heard before its first PROBE. A PROBE earns none, so that PROBEs of a
    /// session that sends nothing, from a spoofed source, draw no reply
    /// (protocol.md §13.5).
    sender_credit: u32,
    /// The window the last STATUS reported.
    last_window: Option<(u32, u8)>,
    /// Whether a due STATUS waits for credit (counted once).
    withheld: bool,
    /// Whether the session ever earned credit (sent DATA or OBJECT_INFO):
    /// it then gets a keep-alive STATUS every [`KEEPALIVE`] without credit.
    earned: bool,
    /// Whether this receiver moved its window itself since the last STATUS
    /// (an object completed, the application moved its hold).
    news: bool,
    /// The highest object of the session completed, and when: a PROBE heard
    /// [`CONTRADICTION_GRACE`] later that says the session has no such
    /// object contradicts it (protocol.md §13.5).
    done_max: Option<(u32, Instant)>,
}

/// How long after an object completed a PROBE that counts fewer objects is
/// taken as a contradiction, not as a PROBE sent before the object and
/// overtaken by its DATA on the way.
pub const CONTRADICTION_GRACE: Duration = Duration::from_millis(100);

impl SessionFb {
    /// A DATA or OBJECT_INFO packet of the session: one reply credit more.
    fn earn(&mut self) {
        self.sender_credit = (self.sender_credit + 1).min(MAX_SENDER_CREDIT);
        self.earned = true;
    }
}

/// Packets to a session's sender a receiver may bank (`SessionFb::sender_credit`).
const MAX_SENDER_CREDIT: u32 = 64;

/// How often a session that sent data once gets a STATUS without credit,
/// so that a sender with nothing to send for a while (a quiet feed) keeps
/// hearing its receivers: well within the sender's receiver timeout (5 s by
/// default). Reflection to a spoofed source is then bounded in rate too: one
/// STATUS a second per session per receiver.
pub const KEEPALIVE: Duration = Duration::from_secs(1);

/// One block's request, before it goes into a NACK.
struct Need {
    object: u32,
    sbn: u8,
    need: u32,
    ranges: Vec<(u32, u32)>,
    info: bool,
    /// The block's K, and how many of its symbols the sender has sent as far
    /// as this receiver can tell (the highest ESI seen, plus one; fresh
    /// repair ESIs go out in order). 0 when unknown.
    k: u32,
    sent: u32,
}

impl Need {
    /// A request for an object's OBJECT_INFO.
    fn info(object: u32) -> Self {
        Self {
            object,
            sbn: 0,
            need: 0,
            ranges: Vec::new(),
            info: true,
            k: 0,
            sent: 0,
        }
    }
}

impl ReceiverStats {
    /// Rejections counted under one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        // AwaitingManifest is not a rejection, and not in ALL.
        RejectReason::ALL
            .iter()
            .position(|&r| r == reason)
            .map_or(0, |i| self.rejected[i])
    }

    /// Every reason with a non-zero count, in [`RejectReason::ALL`] order.
    pub fn rejected_by_reason(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .iter()
            .map(|&r| (r, self.rejected(r)))
            .filter(|&(_, n)| n > 0)
    }

    fn index(reason: RejectReason) -> usize {
        RejectReason::ALL
            .iter()
            .position(|&r| r == reason)
            .expect("ALL lists every reason")
    }
}

/// Which of a receiving driver's sockets a datagram came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The channel's data group: the sender's DATA, OBJECT_INFO and PROBE.
    DataGroup,
    /// The channel's feedback group: other receivers' NACKs.
    FeedbackGroup,
}

impl Arrival {
    /// Whether `datagram` may be handed to [`Receiver::handle_datagram`]
    /// from this socket: on the data group only DATA, OBJECT_INFO and
    /// PROBE, on the feedback group only NACK (protocol.md §12; a driver
    /// counts the rest as `wrong_socket`). On the data group, what does not
    /// look like groupcast's at all goes to the receiver too, which refuses
    /// it under its own reason. Reads the type byte alone, unchecked.
    pub fn takes(self, datagram: &[u8]) -> bool {
        use crate::wire::{HEADER_LEN, MAGIC, PacketType, field};
        let kind = (datagram.len() >= HEADER_LEN && datagram[field::MAGIC] == MAGIC.to_be_bytes())
            .then(|| datagram[field::TYPE]);
        let is = |p: PacketType| kind == Some(p as u8);
        match self {
            Arrival::DataGroup => {
                kind.is_none()
                    || is(PacketType::Data)
                    || is(PacketType::ObjectInfo)
                    || is(PacketType::Probe)
            }
            Arrival::FeedbackGroup => is(PacketType::Nack),
        }
    }
}

/// A datagram [`Receiver::handle_datagram`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accepted {
    /// The session it belongs to.
    pub session: SessionId,
    /// A DATA, OBJECT_INFO or PROBE of a session this receiver takes (once
    /// locked, only the locked one's): its source address is where the
    /// session's STATUS may go (protocol.md §12). A datagram refused, held
    /// for a manifest (`Err(AwaitingManifest)`), or sent by another
    /// receiver cannot aim it.
    pub from_sender: bool,
    /// A PROBE's Hops (protocol.md §13.1), from which the driver sets the
    /// NACKs' hop limit (§13.5).
    pub probe_hops: Option<u8>,
}

enum Slot {
    Idle,
    Active(Box<dyn BlockDecoder>),
    /// Out as the [`DecodeJob`] of this ticket. `bytes` is what its decoder
    /// held when it left (still counted as buffered); `held` are symbols that
    /// arrived meanwhile, kept for a failed attempt (at most
    /// [`DECODING_HOLD`]).
    Decoding {
        ticket: u64,
        bytes: u64,
        held: Vec<(u32, Vec<u8>)>,
    },
    Done,
}

/// Symbols kept for a block while its decode job is out: a failed attempt
/// (about 1 in 100 from exactly K symbols) needs one or two more.
const DECODING_HOLD: usize = 16;

/// A block that holds enough symbols to be solved, for the driver to run
/// ([`DecodeJob::run`], on any thread) and hand back to
/// [`Receiver::handle_decoded`]. See [`ReceiverConfig::decode_threads`].
pub struct DecodeJob {
    key: Key,
    sbn: u8,
    ticket: u64,
    decoder: Box<dyn BlockDecoder>,
    /// The object's length, where it starts in its file (a part), and the
    /// block's offset in it, if the object is verified: the job then hashes
    /// what it decoded too.
    hash: Option<(u64, Option<u64>, u64)>,
}

impl DecodeJob {
    /// Solves the block, and hashes it for the object's verification: CPU
    /// work (a RaptorQ decode, BLAKE3 of the block's whole 64 KiB units),
    /// fit for any thread, which the receiving thread is then spared.
    pub fn run(mut self) -> DecodedBlock {
        let decoded = self.decoder.attempt();
        let mut out = None;
        if decoded
            && let Some((len, base, offset)) = self.hash
            && let Some(data) = self.decoder.take_decoded()
        {
            let cvs = unit_cvs(len, base, offset, &data);
            out = Some((data, cvs));
        }
        DecodedBlock {
            job: self,
            decoded,
            out,
        }
    }
}

impl std::fmt::Debug for DecodeJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeJob")
            .field("object", &self.key.1.0)
            .field("sbn", &self.sbn)
            .finish()
    }
}

/// A [`DecodeJob`] that ran: decoded, or (rarely) still short of symbols.
#[derive(Debug)]
pub struct DecodedBlock {
    job: DecodeJob,
    decoded: bool,
    /// The block, taken out of its decoder, and its units' chaining values.
    out: Option<Decoded>,
}

/// A decoded block's bytes and the chaining values of its whole units.
type Decoded = (Vec<u8>, Vec<UnitCv>);

struct Info {
    hash: [u8; 32],
    name: String,
}

struct ObjectState {
    fec: FecId,
    oti: Oti,
    info: Option<Info>,
    slots: Vec<Slot>,
    /// Per block, the highest ESI seen plus one (0: none yet).
    top_esi: Vec<u32>,
    decoded_blocks: u32,
    hasher: TreeHasher,
    /// Where the object starts in its file, for a part of one (its bound
    /// manifest line says): it is hashed as that subtree.
    hash_offset: Option<u64>,
    /// Whether the codec carries data, so the object can be hashed (false
    /// only for the model codec).
    verify: bool,
    last_activity: Instant,
    /// Order of creation, for evicting the oldest candidate manifest.
    created: u64,
}

impl ObjectState {
    /// Marks the object active at `now`: it goes idle `idle_timeout` later
    /// (its place in the table's `idle` order moves with it).
    fn touch(&mut self, idle: &mut BTreeSet<(Instant, Key)>, key: Key, now: Instant) {
        if self.last_activity != now {
            idle.remove(&(self.last_activity, key));
            idle.insert((now, key));
            self.last_activity = now;
        }
    }
}

type Key = (SessionId, ObjectId);

/// An object's FEC scheme and OTI, as its DATA carry them.
type Coding = (FecId, Oti);

/// A `Known` view of a receiver's object table (the fields, not the whole
/// receiver, are borrowed).
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
    fb: BTreeMap<SessionId, SessionFb>,
    rng: u64,
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
}

/// How long a solvable block waits for the few more of its symbols that
/// make its solve the cheap one (`BlockDecoder::cheap`: RaptorQ without its
/// GF(256) rows, about two thirds of the work). The symbols that follow a
/// block's K-th come within a few milliseconds at the rates where decoding
/// costs (16 blocks interleaved, 13 symbols more: 4 ms at 500 Mbit/s); a
/// PROBE (at every new window, and at the end of the first pass) ends every
/// wait at once.
const RIPEN_LIMIT: Duration = Duration::from_millis(5);

/// Blocks ripening at once, at most; more send the oldest to be solved.
const MAX_RIPENING: usize = 64;

impl Receiver {
    /// A receiver with no objects.
    pub fn new(config: ReceiverConfig) -> Self {
        Self {
            fb: BTreeMap::new(),
            rng: config.id ^ 0x9e37_79b9_7f4a_7c15,
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
        self.fb.retain(|s, _| *s == session);
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
        self.fb.remove(&session);
    }

    /// Holds the window edge this receiver reports for `session` (STATUS's
    /// Window, which paces the sender's first pass) at `at`: the first block
    /// the application has not consumed yet, while that is behind the blocks
    /// decoded; `None` releases it. A driver whose writes lag (a slow disk)
    /// so slows the sender down instead of blocking its receiving thread on
    /// them, and losing datagrams meanwhile. A hold never moves the reported
    /// edge forward; moving it on or releasing it makes a STATUS due.
    pub fn hold_window(&mut self, session: SessionId, at: Option<(ObjectId, u8)>) {
        let Some(f) = self.fb.get_mut(&session) else {
            return;
        };
        let at = at.map(|(o, s)| (o.0, s));
        if f.hold != at {
            if at.is_none() || f.hold.is_some_and(|h| at.is_some_and(|a| a > h)) {
                f.status_due = true;
                f.news = true;
            }
            f.hold = at;
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
        if let Some(f) = self.fb.get_mut(&session) {
            f.status_due = true;
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
        self.fb.get(&session).map(|f| SenderProgress {
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
        let fb = self.fb.values().flat_map(|f| {
            // A STATUS waiting for credit waits for a packet, or for its
            // keep-alive.
            let status = if f.sender_credit == 0 {
                (f.status_due && f.earned)
                    .then(|| f.last_status.map_or(f.probe_at, |l| l + KEEPALIVE))
            } else if f.final_statuses > 0 {
                Some(f.probe_at.min(f.last_status.unwrap_or(f.probe_at)))
            } else if f.status_due {
                Some(
                    f.last_status
                        .map_or(f.probe_at, |l| l + status_every(f, &self.config)),
                )
            } else {
                None
            };
            [
                f.timers.next(),
                status,
                Some(f.probe_at + self.config.idle_timeout),
            ]
        });
        let ripe = self.ripening.iter().map(|r| r.2).min();
        idle.into_iter().chain(fb.flatten()).chain(ripe).min()
    }

    /// Abandons objects that have been idle for `idle_timeout`, and feedback
    /// sessions that have heard no PROBE for as long.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        self.ship_ripening(Some(now));
        let timeout = self.config.idle_timeout;
        let before = self.fb.len();
        self.fb
            .retain(|_, f| now.saturating_duration_since(f.probe_at) < timeout);
        self.stats.feedback_expired += (before - self.fb.len()) as u64;
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

    /// Whether this receiver keeps feedback state for `session` (it heard
    /// a PROBE of it and may send it STATUS): at most
    /// [`ReceiverConfig::max_sessions`] sessions at once.
    pub fn answers(&self, session: SessionId) -> bool {
        self.fb.contains_key(&session)
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
        let result = match Repr::parse(datagram) {
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
        let n = &mut self.stats.rejected[ReceiverStats::index(reason)];
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

    fn handle_data(&mut self, now: Instant, d: DataRepr<'_>) -> Result<(), RejectReason> {
        self.accept_session(d.session)?;
        let key = (SessionId(d.session), ObjectId(d.object));
        if self.table.abandoned.contains(&key) {
            return Err(RejectReason::Abandoned);
        }
        // Every DATA of the session is a packet the path delivered, whether
        // or not it can be used yet: the loss estimate measures the path.
        // (Left uncounted, the DATA heard while the manifest was still
        // missing read as loss, and a 25% receiver that waited for it for
        // 260 packets made the sender size its proactive repair for 28%.)
        self.count_arrival(&d);
        if self.table.is_done(key) {
            self.count_data(now, key, &d);
            self.stats.duplicates += 1;
            // DATA of another FEC scheme or OTI under a completed id: a second
            // object under it, as an OBJECT_INFO of another hash would say.
            if self.table.bound.is_none()
                && self
                    .table
                    .done_hash
                    .get(&key)
                    .and_then(|h| h.1)
                    .is_some_and(|c| c != (d.fec, d.oti))
            {
                self.conflict(key);
            }
            return Ok(());
        }
        self.admit(key, d.oti.transfer_length(), None)?;
        if !self.table.objects.contains_key(&key)
            && matches!(self.config.admission, Admission::Manifest { .. })
            && self.table.bound.is_none()
        {
            // A candidate manifest is opened by its OBJECT_INFO, which names
            // its hash; its DATA is caught later.
            self.stats.symbols_deferred += 1;
            return Ok(());
        }
        self.open_object(now, key, d.fec, d.oti)?;
        self.count_data(now, key, &d);
        let Self {
            config,
            table: ObjectTable { objects, .. },
            in_flight,
            reserved,
            stats,
            ..
        } = self;
        let o = objects.get_mut(&key).expect("opened above");
        let top = &mut o.top_esi[d.sbn as usize];
        *top = (*top).max(d.esi.saturating_add(1));
        let slot = &mut o.slots[d.sbn as usize];
        if matches!(slot, Slot::Done) {
            stats.duplicates += 1;
            return Ok(());
        }
        if matches!(slot, Slot::Idle) {
            let reserve = reserve_of(&o.oti, d.sbn);
            if *in_flight >= config.max_blocks_in_flight {
                stats.symbols_deferred += 1;
                return Ok(());
            }
            if *reserved + reserve > config.max_buffered_bytes {
                stats.symbols_deferred += 1;
                stats.buffer_full += 1;
                return Ok(());
            }
            let block = o
                .oti
                .block(d.sbn as u32)
                .expect("SBN validated by the parser");
            let decoder = config
                .codecs
                .codec(o.fec)
                .decoder(&o.oti, &block)
                .map_err(|_| RejectReason::InvalidOti)?;
            *slot = Slot::Active(decoder);
            *in_flight += 1;
            *reserved += reserve;
        }
        self.offer(Some(now), key, d.sbn, d.esi, d.symbol)
    }

    /// Offers one symbol to a block that is active (or out to decode).
    /// `now` is `None` for symbols offered again after a failed attempt: the
    /// block then goes out again at once, without ripening.
    fn offer(
        &mut self,
        now: Option<Instant>,
        key: Key,
        sbn: u8,
        esi: u32,
        symbol: &[u8],
    ) -> Result<(), RejectReason> {
        let offload = self.config.decode_threads > 0;
        let ripen = self.config.ripen;
        let Self {
            table: ObjectTable { objects, .. },
            stats,
            ..
        } = self;
        let Some(o) = objects.get_mut(&key) else {
            return Ok(());
        };
        let t = o.oti.symbol_size() as usize;
        let slot = &mut o.slots[sbn as usize];
        let decoder = match slot {
            Slot::Active(decoder) => decoder,
            Slot::Decoding { held, .. } => {
                if symbol.len() != t {
                    return Err(RejectReason::SymbolLength);
                }
                if held.len() < DECODING_HOLD && held.iter().all(|h| h.0 != esi) {
                    held.push((esi, symbol.to_vec()));
                    stats.buffered_bytes += t as u64;
                    stats.symbols_accepted += 1;
                } else {
                    stats.duplicates += 1;
                }
                return Ok(());
            }
            Slot::Idle | Slot::Done => {
                stats.duplicates += 1;
                return Ok(());
            }
        };
        let before = decoder.buffered_bytes() as u64;
        let pushed = if offload {
            decoder.store(esi, symbol)
        } else {
            decoder.push(esi, symbol)
        };
        let push = pushed.map_err(|e| match e {
            groupcast_fec::FecError::SymbolLength { .. } => RejectReason::SymbolLength,
            _ => RejectReason::EsiOutOfRange,
        })?;
        let after = decoder.buffered_bytes() as u64;
        stats.buffered_bytes = stats.buffered_bytes - before + after;
        match push {
            Push::Stored => stats.symbols_accepted += 1,
            Push::Duplicate | Push::AlreadyDecoded => stats.duplicates += 1,
            Push::Ready => {
                stats.symbols_accepted += 1;
                match now {
                    // Solvable, but more of the block's symbols are likely on
                    // their way, and with a few more the solve is cheaper: it
                    // ripens until then, until the next PROBE (which follows
                    // every window and the first pass's end), or for
                    // RIPEN_LIMIT at most.
                    Some(now)
                        if ripen
                            && !decoder.cheap()
                            && o.oti.block(sbn as u32).is_some_and(|b| {
                                b.source_symbols >= super::COSTLY_BLOCK_SYMBOLS
                            }) =>
                    {
                        if !self.ripening.iter().any(|r| (r.0, r.1) == (key, sbn)) {
                            if self.ripening.len() >= MAX_RIPENING {
                                let (k, s, _) = self.ripening.remove(0);
                                self.ship(k, s);
                            }
                            self.ripening.push((key, sbn, now + RIPEN_LIMIT));
                        }
                    }
                    _ => self.ship(key, sbn),
                }
            }
            Push::Decoded => {
                stats.symbols_accepted += 1;
                self.block_decoded(key, sbn, None);
            }
        }
        Ok(())
    }

    /// Sends the ripening blocks whose wait ends by `until` (all of them
    /// with `None`) to be solved now.
    fn ship_ripening(&mut self, until: Option<Instant>) {
        while let Some(i) = self
            .ripening
            .iter()
            .position(|r| until.is_none_or(|t| r.2 <= t))
        {
            let (key, sbn, _) = self.ripening.remove(i);
            self.ship(key, sbn);
        }
    }

    /// Hands a block that holds enough symbols out to a decode job, if it is
    /// still active and undecoded.
    fn ship(&mut self, key: Key, sbn: u8) {
        self.ripening.retain(|r| (r.0, r.1) != (key, sbn));
        let Self {
            table: ObjectTable { objects, .. },
            jobs,
            tickets,
            ..
        } = self;
        let Some(o) = objects.get_mut(&key) else {
            return;
        };
        let (verify, oti, base) = (o.verify, o.oti, o.hash_offset);
        let Some(slot) = o.slots.get_mut(sbn as usize) else {
            return;
        };
        let bytes = match slot {
            Slot::Active(decoder) if !decoder.is_decoded() => decoder.buffered_bytes() as u64,
            _ => return,
        };
        *tickets += 1;
        let ticket = *tickets;
        let Slot::Active(decoder) = std::mem::replace(
            slot,
            Slot::Decoding {
                ticket,
                bytes,
                held: Vec::new(),
            },
        ) else {
            unreachable!("slot is active here")
        };
        // A verified object's block is hashed by its job too.
        let hash = verify
            .then(|| oti.block(sbn as u32))
            .flatten()
            .map(|b| (oti.transfer_length(), base, b.offset));
        jobs.push_back(DecodeJob {
            key,
            sbn,
            ticket,
            decoder,
            hash,
        });
    }

    /// A block's decoder (active in its slot) has decoded: hands the block
    /// out, hashes it (with what a decode job computed of it, `out`),
    /// releases the decoder, and completes the object if it was the last.
    fn block_decoded(&mut self, key: Key, sbn: u8, out: Option<Decoded>) {
        let Self {
            table: ObjectTable { objects, .. },
            in_flight,
            reserved,
            events,
            stats,
            ..
        } = self;
        let Some(o) = objects.get_mut(&key) else {
            return;
        };
        let slot = &mut o.slots[sbn as usize];
        let Slot::Active(decoder) = slot else {
            return;
        };
        let held = decoder.buffered_bytes() as u64;
        let (data, cvs) = match out {
            Some(out) => out,
            None => (
                decoder.take_decoded().expect("decoded just now"),
                Vec::new(),
            ),
        };
        // The decoder is released; only its output lives on, in the event.
        stats.buffered_bytes -= held.min(stats.buffered_bytes);
        *slot = Slot::Done;
        *in_flight -= 1;
        *reserved -= reserve_of(&o.oti, sbn);
        stats.blocks_decoded += 1;
        o.decoded_blocks += 1;
        let block = o
            .oti
            .block(sbn as u32)
            .expect("SBN validated by the parser");
        if o.verify {
            let hb = o.hasher.buffered_bytes() as u64;
            o.hasher.write_with(block.offset, &data, &cvs);
            let ha = o.hasher.buffered_bytes() as u64;
            stats.buffered_bytes = stats.buffered_bytes - hb + ha;
        }
        events.push_back(ReceiverEvent::BlockDecoded {
            session: key.0,
            object: key.1,
            offset: block.offset,
            sbn,
            data,
        });
        self.try_complete(key);
    }

    /// Counts a DATA packet of an accepted session for its loss and rate
    /// estimates.
    fn count_arrival(&mut self, d: &DataRepr<'_>) {
        if let Some(f) = self.fb.get_mut(&SessionId(d.session)) {
            f.data += 1;
            f.bytes += d.symbol.len() as u64;
            f.earn();
        }
    }

    /// For a DATA packet of a known object: notes that repair answered a
    /// request, and holds back our own request for a block behind the
    /// sender's progress (repair: more may be coming) for a GRTT.
    fn count_data(&mut self, now: Instant, key: Key, d: &DataRepr<'_>) {
        let Some(f) = self.fb.get_mut(&key.0) else {
            return;
        };
        let known = self.table.objects.contains_key(&key);
        // Repair for a block: whoever asked for it was answered.
        if f.suppressed.remove(&(d.object, d.sbn)).is_some() {
            f.doubt.remove(&(d.object, d.sbn));
        }
        if (d.object, d.sbn) < f.progress {
            // Repair (DATA behind the first pass): NACKs are heard.
            f.unanswered = None;
        }
        if known && (d.object, d.sbn) < f.progress {
            // Bounded: only objects in progress, and at most MAX_HOLDOFFS.
            if f.holdoff.len() >= MAX_HOLDOFFS {
                f.holdoff.retain(|_, h| *h > now);
            }
            if f.holdoff.len() < MAX_HOLDOFFS {
                let h = f.holdoff.entry((d.object, d.sbn)).or_insert(now);
                *h = (*h).max(now + f.grtt);
            }
        }
    }

    /// Whether the object may be received at all: listed by the bound
    /// manifest with this size (and `hash`, from an OBJECT_INFO), or allowed
    /// by the admission in force.
    fn admit(
        &self,
        key: Key,
        size: u64,
        info: Option<(&[u8; 32], &str)>,
    ) -> Result<(), RejectReason> {
        if let Some(bound) = &self.table.bound {
            let Some(b) = bound.get(&key.1) else {
                return Err(RejectReason::UnexpectedObject);
            };
            if b.size != size || info.is_some_and(|(h, n)| *h != b.hash || n != b.name) {
                return Err(RejectReason::ManifestMismatch);
            }
            return Ok(());
        }
        match self.config.admission {
            Admission::Open => Ok(()),
            Admission::Manifest { expect, max_size } => {
                if key.1 != ObjectId(0) {
                    // Not refused: the manifest may simply not be here yet.
                    return Err(RejectReason::AwaitingManifest);
                }
                if size > max_size {
                    return Err(RejectReason::ObjectTooLarge);
                }
                if let (Some(want), Some((h, _))) = (expect, info)
                    && *h != want
                {
                    return Err(RejectReason::WrongTransfer);
                }
                Ok(())
            }
        }
    }

    /// Finds or opens the state of an object, enforcing the limits. Under
    /// [`Admission::Manifest`], a new candidate beyond `max_sessions` evicts
    /// the oldest.
    fn open_object(
        &mut self,
        now: Instant,
        key: Key,
        fec: FecId,
        oti: Oti,
    ) -> Result<&mut ObjectState, RejectReason> {
        if !self.table.objects.contains_key(&key) {
            if oti.transfer_length() > self.config.max_object_size {
                return Err(RejectReason::ObjectTooLarge);
            }
            let largest = oti.max_block_symbols() as u64 * oti.symbol_size() as u64;
            if largest > self.config.max_block_bytes {
                return Err(RejectReason::BlockTooLarge);
            }
            let candidates = matches!(self.config.admission, Admission::Manifest { .. })
                && self.table.bound.is_none();
            if candidates && self.table.objects.len() >= self.config.max_sessions.max(1) {
                let oldest = self
                    .table
                    .objects
                    .iter()
                    .min_by_key(|(_, o)| o.created)
                    .map(|(k, _)| *k);
                if let Some(old) = oldest {
                    self.stats.candidates_evicted += 1;
                    self.fail(old, FailReason::Evicted);
                }
            }
            if self.table.objects.len() >= self.config.max_objects {
                return Err(RejectReason::TooManyObjects);
            }
        }
        let prefill = self
            .table
            .bound
            .as_ref()
            .and_then(|b| b.get(&key.1))
            .map(|b| Info {
                hash: b.hash,
                name: b.name.clone(),
            });
        self.created += 1;
        object_state(
            &mut self.table,
            &self.config,
            now,
            key,
            fec,
            oti,
            prefill,
            self.created,
        )
    }

    fn handle_info(&mut self, now: Instant, i: InfoRepr<'_>) -> Result<(), RejectReason> {
        self.accept_session(i.session)?;
        let key = (SessionId(i.session), ObjectId(i.object));
        if let Some(f) = self.fb.get_mut(&key.0) {
            f.earn();
        }
        if self.table.abandoned.contains(&key) {
            return Err(RejectReason::Abandoned);
        }
        // A bound manifest fixes each object's hash: there, another one is
        // a `manifest_mismatch`, refused below.
        if self.table.bound.is_none()
            && self
                .table
                .done_hash
                .get(&key)
                .is_some_and(|h| h.0 != i.hash)
        {
            self.conflict(key);
            return Err(RejectReason::InfoMismatch);
        }
        if self.table.is_done(key) {
            return Ok(());
        }
        self.admit(key, i.oti.transfer_length(), Some((&i.hash, i.name)))?;
        let o = self.open_object(now, key, i.fec, i.oti)?;
        match &o.info {
            Some(info) if info.hash != i.hash || info.name != i.name => {
                return Err(RejectReason::InfoMismatch);
            }
            Some(_) => {}
            None => {
                o.info = Some(Info {
                    hash: i.hash,
                    name: i.name.to_owned(),
                });
                self.events.push_back(ReceiverEvent::ObjectAnnounced {
                    session: key.0,
                    object: key.1,
                    size: i.oti.transfer_length(),
                    name: i.name.to_owned(),
                });
                // The OBJECT_INFO we lacked, for an object the sender is past:
                // the answer to a NEED_INFO, as repair DATA is to a NACK
                // (`count_data`), so our NACKs are heard.
                if let Some(f) = self.fb.get_mut(&key.0)
                    && key.1.0 < f.progress.0
                {
                    f.unanswered = None;
                }
            }
        }
        self.stats.info_received += 1;
        self.try_complete(key);
        Ok(())
    }

    fn try_complete(&mut self, key: Key) {
        let Some(o) = self.table.objects.get(&key) else {
            return;
        };
        if o.decoded_blocks < o.oti.source_blocks() {
            return;
        }
        let Some(info) = &o.info else {
            return;
        };
        if o.verify {
            let Some(hash) = o.hasher.finish() else {
                return;
            };
            if hash != info.hash {
                self.fail(key, FailReason::HashMismatch);
                return;
            }
        }
        let o = self.remove(key).expect("present");
        let info = o.info.expect("checked above");
        self.record_complete(
            key,
            o.oti.transfer_length(),
            info.hash,
            info.name,
            Some((o.fec, o.oti)),
        );
    }

    /// Remembers a verified object as complete and says so.
    fn record_complete(
        &mut self,
        key: Key,
        size: u64,
        hash: [u8; 32],
        name: String,
        coding: Option<Coding>,
    ) {
        tracing::debug!(
            session = %format_args!("{:016x}", key.0.0),
            object = key.1.0,
            size,
            name = %name.escape_debug(),
            "object complete"
        );
        self.stats.objects_completed += 1;
        if self.completed_order.len() >= self.config.completed_history.max(1)
            && let Some(old) = self.completed_order.pop_front()
        {
            self.table.completed.remove(&old);
        }
        self.table.completed.insert(key);
        self.completed_order.push_back(key);
        if self.table.done_order.len() >= self.config.completed_history.max(1)
            && let Some(old) = self.table.done_order.pop_front()
        {
            self.table.done_hash.remove(&old);
        }
        if self.table.done_hash.insert(key, (hash, coding)).is_none() {
            self.table.done_order.push_back(key);
        }
        if key.1.0 == self.table.floor(key.0) {
            self.table.raise_floor(key.0, key.1.0, self.created);
        }
        if let Some(f) = self.fb.get_mut(&key.0) {
            // Report progress at once; completion is said three times.
            f.status_due = true;
            f.news = true;
            if let Some(now) = self.now
                && f.done_max.is_none_or(|(o, _)| key.1.0 > o)
            {
                f.done_max = Some((key.1.0, now));
            }
            f.last_status = None;
        }
        self.events.push_back(ReceiverEvent::ObjectComplete {
            session: key.0,
            object: key.1,
            size,
            hash,
            name,
        });
    }

    /// Two objects under one id (`FailReason::Conflict`): said once per
    /// object; the session is never reported complete from then on.
    fn conflict(&mut self, key: Key) {
        self.table.done_hash.remove(&key);
        self.mark_lossy(key.0);
        tracing::warn!(
            session = %format_args!("{:016x}", key.0.0),
            object = key.1.0,
            "two different objects under one id: one of them is forged"
        );
        self.events.push_back(ReceiverEvent::ObjectFailed {
            session: key.0,
            object: key.1,
            reason: FailReason::Conflict,
        });
    }

    fn remove(&mut self, key: Key) -> Option<ObjectState> {
        let o = self.table.objects.remove(&key)?;
        self.table.idle.remove(&(o.last_activity, key));
        let mut freed = o.hasher.buffered_bytes() as u64;
        for (sbn, slot) in o.slots.iter().enumerate() {
            let held = match slot {
                Slot::Active(d) => d.buffered_bytes() as u64,
                // Its job comes back to no object, and is dropped.
                Slot::Decoding { bytes, held, .. } => {
                    bytes + held.iter().map(|h| h.1.len() as u64).sum::<u64>()
                }
                Slot::Idle | Slot::Done => continue,
            };
            freed += held;
            self.in_flight -= 1;
            self.reserved -= reserve_of(&o.oti, sbn as u8);
        }
        self.stats.buffered_bytes -= freed.min(self.stats.buffered_bytes);
        Some(o)
    }

    fn fail(&mut self, key: Key, reason: FailReason) {
        if self.remove(key).is_some() {
            tracing::debug!(
                session = %format_args!("{:016x}", key.0.0),
                object = key.1.0,
                ?reason,
                "object failed"
            );
            self.stats.objects_failed += 1;
            self.events.push_back(ReceiverEvent::ObjectFailed {
                session: key.0,
                object: key.1,
                reason,
            });
        }
    }
}

impl Receiver {
    fn handle_probe(&mut self, now: Instant, p: ProbeRepr) -> Result<(), RejectReason> {
        self.accept_session(p.session)?;
        let session = SessionId(p.session);
        self.stats.probes_received += 1;
        // A PROBE follows each new window and the end of the first pass:
        // the blocks held back for more symbols have what they will get.
        self.ship_ripening(None);
        if !self.config.feedback {
            return Ok(());
        }
        if !self.fb.contains_key(&session)
            && self.fb.len() >= self.config.max_sessions
            && !self.evict_feedback(session)
        {
            self.stats.feedback_ignored += 1;
            return Ok(());
        }
        // DATA heard before the session's first PROBE earns its first
        // replies (the receiver holds or completed some of its objects).
        let heard = !self.fb.contains_key(&session)
            && (self.table.floor(session) > 0
                || self.table.objects.keys().any(|k| k.0 == session)
                || self.table.completed.iter().any(|k| k.0 == session));
        let f = self.fb.entry(session).or_insert_with(|| SessionFb {
            grtt: Duration::ZERO,
            grtt_at: now,
            group: 1.0,
            group_counted: false,
            objects: 0,
            progress: (0, 0),
            retained: 0,
            probe_ts: p.timestamp_us,
            probe_at: now,
            probe_sent: None,
            counter_at: now,
            data_at_probe: 0,
            bytes_at_probe: 0,
            data: 0,
            bytes: 0,
            loss: 0.0,
            dispersion: 1.0,
            loss_got: 0,
            loss_var: 0.0,
            loss_sent: 0,
            loss_samples: 0,
            rate: 0.0,
            status_due: false,
            final_statuses: 0,
            last_status: None,
            hold: None,
            timers: BlockTimers::default(),
            holdoff: HashMap::new(),
            suppressed: HashMap::new(),
            doubt: HashSet::new(),
            complete: false,
            unanswered: None,
            warned_unanswered: false,
            sender_credit: if heard { 2 } else { 0 },
            last_window: None,
            withheld: false,
            earned: heard,
            news: false,
            done_max: None,
        });
        // The sender's counter starts at 0 with its session and grows by one
        // per DATA packet; anyone can forge it. So it may run ahead of the
        // DATA heard since the last accepted one (or since the session's first
        // PROBE) by at most 64 × (DATA + 16), or FIRST_PROBE_SLACK before any
        // was accepted. A first PROBE therefore sets no baseline that real
        // PROBEs would then seem to run behind. After two seconds without an
        // accepted counter (an outage, a late join, or a forged baseline that
        // the sender's own PROBEs run behind), the counter is taken as it comes.
        let got = f.data.saturating_sub(f.data_at_probe);
        let fresh = now.saturating_duration_since(f.counter_at) < Duration::from_secs(2);
        let (from, slack) = match f.probe_sent {
            Some(b) => (b, 64 * (got + 16)),
            None => (0, FIRST_PROBE_SLACK + 64 * got),
        };
        if fresh && p.sent > from && p.sent - from > slack {
            // Far more DATA claimed than could have gone by: a forged counter
            // would freeze or poison the loss estimate.
            return Err(RejectReason::Implausible);
        }
        // Behind the baseline (reordered, or forged low), a PROBE gives no
        // sample; the baseline stays, unless it is stale.
        if let Some(b) = f.probe_sent.filter(|&b| p.sent > b) {
            let sent = (p.sent - b) as f64;
            let sample = (1.0 - got as f64 / sent).clamp(0.0, 1.0);
            // How much more the samples vary than independent loss would make
            // them (bursts), for need_rank.
            let p0 = f.loss;
            if f.loss_sent > 0 && p0 > 0.0 && p0 < 1.0 {
                let ratio = (sample - p0).powi(2) * sent / (p0 * (1.0 - p0));
                f.dispersion = 0.9 * f.dispersion + 0.1 * ratio.min(10.0);
            }
            f.loss_samples = f.loss_samples.saturating_add(1);
            if f.loss_sent < LOSS_WARMUP {
                f.loss_sent += p.sent - b;
                f.loss_got += got.min(p.sent - b);
                f.loss = 1.0 - f.loss_got as f64 / f.loss_sent as f64;
                f.loss_var = 1.0 / f.loss_sent as f64;
            } else {
                // Each sample weighs by the DATA it spans: PROBEs close
                // together (a window's end, a flow-blocked pass) give samples
                // of a few packets, and at a full quarter each, one sample of
                // 11 packets with none lost would take a 10% estimate to 7%, and
                // the sender's proactive repair with it.
                let weight = 0.25 * (sent / LOSS_SAMPLE as f64).min(1.0);
                f.loss += weight * (sample - f.loss);
                f.loss_var = (1.0 - weight).powi(2) * f.loss_var + weight * weight / sent;
            }
            let dt = now.saturating_duration_since(f.counter_at).as_secs_f64();
            if dt > 0.0 {
                let r = f.bytes.saturating_sub(f.bytes_at_probe) as f64 / dt;
                f.rate = 0.75 * f.rate + 0.25 * r;
            }
        }
        if f.probe_sent.is_none_or(|b| p.sent > b || !fresh) {
            f.probe_sent = Some(p.sent);
            f.counter_at = now;
            f.data_at_probe = f.data;
            f.bytes_at_probe = f.bytes;
        }
        // NACK timers and holdoffs scale with the GRTT, and anyone can forge
        // a PROBE: a lower GRTT is taken at once, a higher one at most
        // twofold per GRTT_RISE, and never beyond MAX_PROBE_GRTT. So forged
        // PROBEs, however many, keep it within twice what the sender's own
        // (every 25 ms by default) last said.
        let grtt = Duration::from_micros(p.grtt_us as u64).min(MAX_PROBE_GRTT);
        let before = f.grtt;
        if f.grtt.is_zero() || grtt <= f.grtt {
            f.grtt = grtt;
            f.grtt_at = now;
        } else if now.saturating_duration_since(f.grtt_at) >= GRTT_RISE {
            f.grtt = grtt.min(f.grtt * 2);
            f.grtt_at = now;
        }
        if f.grtt * 4 < before {
            // What a higher GRTT (a forged first PROBE, say) scheduled comes
            // closer in proportion, keeping the timers' random order.
            let ratio = f.grtt.as_secs_f64() / before.as_secs_f64();
            let scale = |t: &mut Instant| {
                if let Some(left) = t.checked_duration_since(now) {
                    *t = now + left.mul_f64(ratio);
                }
            };
            f.holdoff.values_mut().for_each(scale);
            f.suppressed.values_mut().for_each(scale);
            f.timers.map(|mut t| {
                scale(&mut t);
                t
            });
        }
        // Group 0: the sender has heard from nobody yet (early in a session),
        // so the size is unknown; assume a large group until it says.
        f.group = match p.group_log2 {
            0 => UNKNOWN_GROUP,
            g => (2f64).powi(g as i32),
        };
        f.group_counted = p.group_log2 > 0;
        // Never more objects than the bound manifest has.
        f.objects = match &self.table.bound {
            Some(b) => p.objects.min(b.keys().map(|o| o.0 + 1).max().unwrap_or(0)),
            None => p.objects,
        };
        f.progress = if p.flags & PROBE_END != 0 {
            (p.objects, 0)
        } else {
            p.progress
        };
        // A PROBE that says the session has no object this receiver
        // completed well before it: two senders under one session id, one of
        // them forged (protocol.md §13.5).
        let contradicted = f
            .done_max
            .filter(|&(x, at)| {
                self.table.bound.is_none()
                    && p.objects <= x
                    && now.saturating_duration_since(at) >= CONTRADICTION_GRACE
            })
            .map(|(x, _)| x);
        if contradicted.is_some() {
            f.done_max = None;
        }
        // It only grows (a reordered PROBE does not bring objects back).
        f.retained = f.retained.max(p.retained);
        f.probe_ts = p.timestamp_us;
        f.probe_at = now;
        f.status_due = true;
        self.schedule_nack(now, session);
        if let Some(x) = contradicted {
            self.conflict((session, ObjectId(x)));
        }
        Ok(())
    }

    /// Makes room in the full feedback table for `session`'s state, if
    /// `session` has an object in progress and some session there has none:
    /// the one whose PROBE is oldest goes (counted in `feedback_expired`).
    /// PROBEs alone, which anyone can forge, thus never crowd out the feedback
    /// of a session whose objects (a candidate manifest) are arriving.
    fn evict_feedback(&mut self, session: SessionId) -> bool {
        let has_object = |s: SessionId| self.table.objects.keys().any(|k| k.0 == s);
        if !has_object(session) {
            return false;
        }
        let victim = self
            .fb
            .iter()
            .filter(|(s, _)| !has_object(**s))
            .min_by_key(|(_, f)| f.probe_at)
            .map(|(s, _)| *s);
        match victim {
            Some(v) => {
                self.fb.remove(&v);
                self.stats.feedback_expired += 1;
                true
            }
            None => false,
        }
    }

    /// Another receiver's NACK: hold back our own requests that it covers.
    fn handle_peer_nack(&mut self, now: Instant, n: &NackRepr) -> Result<(), RejectReason> {
        self.accept_session(n.session)?;
        let session = SessionId(n.session);
        let known = &self.table;
        let f = match self.fb.get_mut(&session) {
            Some(f) if n.receiver != self.config.id => f,
            _ => {
                self.stats.feedback_ignored += 1;
                return Ok(());
            }
        };
        self.stats.nacks_heard += 1;
        for e in &n.entries {
            let Some(mine) = known.need_of(session, e.object, e.sbn) else {
                continue;
            };
            let covered = if e.flags & NACK_NEED_INFO != 0 || mine.info {
                e.flags & NACK_NEED_INFO != 0 && mine.info
            } else if mine.ranges.is_empty() {
                e.ranges.is_empty() && e.need >= mine.need
            } else {
                covers(&e.ranges, &mine.ranges)
            };
            let key = (e.object, e.sbn);
            if covered && f.doubt.contains(&key) {
                self.stats.suppressions_doubted += 1;
            } else if covered {
                let until = now + holdoff(f, &self.config);
                if f.suppressed.len() < MAX_HOLDOFFS {
                    let s = f.suppressed.entry(key).or_insert(until);
                    *s = (*s).max(until);
                }
                let h = f.holdoff.entry(key).or_insert(now);
                if *h <= now || f.timers.contains(key) {
                    self.stats.nacks_suppressed += 1;
                }
                *h = (*h).max(until);
                f.timers.remove(key);
                // A peer asked for us: unanswered too, until repair comes.
                f.unanswered.get_or_insert(now);
            }
        }
        self.check_unanswered(now, session);
        Ok(())
    }

    /// Warns once per session (and counts `nacks_unanswered`) when no repair
    /// has come for 4 GRTTs, at least 200 ms, since the first NACK (ours, or
    /// a peer's that covered us) that none has followed.
    fn check_unanswered(&mut self, now: Instant, session: SessionId) {
        let Some(f) = self.fb.get_mut(&session) else {
            return;
        };
        let Some(since) = f.unanswered else {
            return;
        };
        let wait = (f.grtt * 4).max(Duration::from_millis(200));
        let waited = now.saturating_duration_since(since);
        if f.warned_unanswered || waited < wait {
            return;
        }
        f.warned_unanswered = true;
        self.stats.nacks_unanswered += 1;
        tracing::warn!(
            session = %format_args!("{:016x}", session.0),
            waited_ms = waited.as_millis() as u64,
            "NACKs unanswered: the sender may not hear this receiver. Likely causes: \
             the hop limit of its feedback (recv --hops; by default what the \
             sender's PROBEs need), a router that does not forward the channel's \
             feedback group towards the sender, or a firewall"
        );
    }

    /// Starts a backoff timer for the blocks that need asking about and have
    /// none, all with one delay drawn from NORM's truncated exponential, so
    /// that only a few receivers draw early and the rest hear them first. A
    /// receiver that lacks more draws a little earlier, so the NACK that goes
    /// first tends to cover everyone else's.
    fn schedule_nack(&mut self, now: Instant, session: SessionId) {
        let Some(f) = self.fb.get_mut(&session) else {
            return;
        };
        // A suppression whose holdoff ran out with no repair for the block:
        // the NACK that suppressed us was not answered.
        let SessionFb {
            suppressed, doubt, ..
        } = f;
        suppressed.retain(|key, until| {
            if *until > now {
                return true;
            }
            doubt.insert(*key);
            false
        });
        let needs: Vec<Need> = self
            .table
            .needs(f, now, session)
            .into_iter()
            .filter(|n| !f.timers.contains((n.object, n.sbn)))
            .collect();
        if needs.is_empty() {
            return;
        }
        // One draw for every block that needs a timer now. Where a block's
        // need ranks in the group's (`need_rank`), its timer sits at the
        // draw's place within that rank: per block, the neediest first, and
        // blocks of one rank share a time, so one NACK carries them all.
        // Without a rank, every block takes the draw itself.
        let v = draw(&mut self.rng);
        let max_need = needs.iter().map(|n| n.need.max(1)).max().unwrap_or(1);
        let plain = v * (0.5 + 0.5 / max_need as f64);
        // The group as the sender counts it, or as configured if larger. A
        // small group needs little room for suppression: the window shrinks
        // with log10(group) / 3 (full size from 1000 receivers up).
        let group = f.group.max(self.config.group_size as f64);
        let window = backoff_window(f, &self.config);
        let loss = f.loss;
        let dispersion = f.dispersion;
        let grtt = f.grtt.as_secs_f64();
        let counted = f.group_counted;
        for n in needs {
            let delay = match need_rank(&n, loss, dispersion) {
                // With a group the sender has counted, the neediest few go first.
                Some((lo, hi, lacking)) if counted => {
                    ranked_backoff(lo + (hi - lo) * v, grtt * window, group * lacking)
                }
                // With none (it has heard nobody, perhaps none of it reaches
                // the sender), the plain draw: ranks would push most NACKs to
                // the end of the window, and the unanswered ones warn later.
                _ => nack_backoff(plain, grtt * window, group),
            };
            let at = now + Duration::from_secs_f64(delay.max(0.0));
            f.timers.insert((n.object, n.sbn), at);
        }
    }

    /// Writes the next feedback datagram (a STATUS or a NACK) into `buf` and
    /// returns its length and destination, or `None` if nothing is due. Only
    /// sessions whose sender sends PROBEs (nack and hybrid modes) get feedback.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(usize, Destination)> {
        // Sessions in order, without collecting them (this runs after every packet).
        let mut next = self.fb.keys().next().copied();
        while let Some(session) = next {
            if let Some(t) = self.status_packet(now, session, buf) {
                return Some(t);
            }
            if self
                .fb
                .get(&session)
                .is_some_and(|f| f.timers.next().is_some_and(|t| t <= now))
                && let Some(t) = self.nack_packet(now, session, buf)
            {
                return Some(t);
            }
            next = self
                .fb
                .range((Bound::Excluded(session), Bound::Unbounded))
                .next()
                .map(|(k, _)| *k);
        }
        None
    }

    fn status_packet(
        &mut self,
        now: Instant,
        session: SessionId,
        buf: &mut [u8],
    ) -> Option<(usize, Destination)> {
        // Decide first whether a STATUS is due: this runs after every packet,
        // and the window edge below walks the receiver's objects. (Completing
        // an object makes a STATUS due at once, so the edge is computed then.)
        let f = self.fb.get_mut(&session)?;
        let interval = status_every(f, &self.config);
        let due = f.final_statuses > 0
            || (f.status_due && f.last_status.is_none_or(|l| now >= l + interval));
        if !due {
            return None;
        }
        let edge = self.table.edge(session, f.objects);
        // A receiver that lost objects is never complete (`skip_lost`).
        let complete = f.objects > 0 && edge == (f.objects, 0) && !self.table.is_lossy(session);
        // Complete, it says so whatever the application still holds.
        let window = match f.hold {
            Some(h) if !complete => h.min(edge),
            _ => edge,
        };
        // BUSY: the window waits for this receiver's own work, not for
        // symbols: the edge's block is out to be solved, or everything the
        // sender announced is here and the application holds the window
        // (protocol.md §13.3).
        let busy = !complete
            && (self.table.solving(session, edge) || (window < edge && edge.0 >= f.objects));
        // A STATUS spends the session's credit, which only its DATA and
        // OBJECT_INFO earn (protocol.md §13.5); without credit it waits for
        // the session's next packet. News goes at once: the window moved by
        // this receiver's own doing (an object completed, the application
        // moved its hold), which no PROBE field can bring about.
        let news = f.news && f.last_window.is_some_and(|w| w != window);
        f.news = false;
        if !news {
            // A session that sent data once gets a keep-alive without
            // credit every KEEPALIVE, so that a quiet sender keeps its
            // receivers (a PROBE-only session never does).
            let keepalive = f.earned && f.last_status.is_none_or(|l| now >= l + KEEPALIVE);
            if f.sender_credit > 0 {
                f.sender_credit -= 1;
            } else if !keepalive {
                if !f.withheld {
                    f.withheld = true;
                    self.stats.status_withheld += 1;
                }
                return None;
            }
        }
        f.withheld = false;
        f.last_window = Some(window);
        if complete && !f.complete {
            f.complete = true;
            f.final_statuses = 3;
        }
        f.final_statuses = f.final_statuses.saturating_sub(1);
        f.status_due = false;
        f.last_status = Some(now);
        let hold = now.saturating_duration_since(f.probe_at).as_micros();
        let st = StatusRepr {
            session: session.0,
            receiver: self.config.id,
            echo_us: f.probe_ts,
            hold_us: hold.min(u32::MAX as u128) as u32,
            loss_ppm: ((f.loss * 1e6) as u32).min(crate::wire::feedback::MAX_LOSS_PPM),
            loss_span: loss_span(f),
            rate: f.rate as u64,
            window,
            flags: STATUS_ECHO
                | if complete { STATUS_COMPLETE } else { 0 }
                | if loss_measured(f) { STATUS_LOSS } else { 0 }
                | if busy { STATUS_BUSY } else { 0 },
        };
        let len = st.write(buf).ok()?;
        self.stats.status_sent += 1;
        Some((len, Destination::Sender(session)))
    }

    fn nack_packet(
        &mut self,
        now: Instant,
        session: SessionId,
        buf: &mut [u8],
    ) -> Option<(usize, Destination)> {
        // Some timers are due: the packet carries every block whose timer is
        // due and that this receiver still lacks and holds no holdoff for.
        let f = self.fb.get_mut(&session)?;
        if f.timers.next().is_none_or(|t| t > now) {
            return None;
        }
        // NACKs to the sender alone spend its credit, as STATUS does; the due
        // timers go, and the next PROBE draws new ones.
        if self.config.nack_unicast && f.sender_credit == 0 {
            f.timers.remove_due(now);
            return None;
        }
        // Only blocks whose own timer is due: a block whose timer runs on is
        // still in its backoff, and asking for it early would defeat the
        // suppression that backoff is for. Timers of blocks no longer lacking
        // (decoded, or held off by a peer's NACK) expire silently.
        let mut needs = self.table.needs(f, now, session);
        needs.retain(|n| f.timers.get((n.object, n.sbn)).is_some_and(|t| t <= now));
        f.timers.remove_due(now);
        let room = buf.len().min(crate::wire::DEFAULT_MAX_DATAGRAM);
        let mut nack = NackRepr {
            session: session.0,
            receiver: self.config.id,
            entries: Vec::new(),
        };
        let mut len = crate::wire::feedback::NACK_HEADER_LEN + crate::wire::CRC_LEN;
        for n in needs {
            let mut entry = NackEntry {
                object: n.object,
                sbn: n.sbn,
                flags: if n.info { NACK_NEED_INFO } else { 0 },
                need: n.need,
                ranges: n.ranges,
            };
            // Scattered ESIs go as a bitmap where smaller (wire_len says);
            // long range lists are cut to fit, and blocks that do not fit
            // wait: their timers are gone, so the next PROBE draws new ones.
            if len + entry.wire_len() > room {
                let fixed = crate::wire::feedback::NACK_ENTRY_LEN;
                let per = crate::wire::feedback::NACK_RANGE_LEN;
                let fit = room.saturating_sub(len + fixed) / per;
                if fit == 0 || entry.ranges.is_empty() {
                    break;
                }
                entry.ranges.truncate(fit);
                entry.need = entry.ranges.iter().map(|r| r.1).sum();
            }
            len += entry.wire_len();
            f.doubt.remove(&(n.object, n.sbn));
            f.holdoff.insert(
                (n.object, n.sbn),
                now + holdoff(f, &self.config) + Duration::from_millis(1),
            );
            nack.entries.push(entry);
            if nack.entries.len() >= crate::wire::feedback::MAX_NACK_ENTRIES {
                break;
            }
        }
        if nack.entries.is_empty() {
            return None;
        }
        let len = nack.write(buf).ok()?;
        self.stats.nacks_sent += 1;
        if let Some(f) = self.fb.get_mut(&session) {
            f.unanswered.get_or_insert(now);
        }
        self.check_unanswered(now, session);
        tracing::trace!(
            session = %format_args!("{:016x}", session.0),
            entries = nack.entries.len(),
            "NACK sent"
        );

        let to = if self.config.nack_unicast {
            Destination::Sender(session)
        } else {
            Destination::Feedback
        };
        if to != Destination::Feedback
            && let Some(f) = self.fb.get_mut(&session)
        {
            f.sender_credit = f.sender_credit.saturating_sub(1);
        }
        Some((len, to))
    }
}

/// The receiver's object table, apart from its feedback state, so that one
/// session's feedback (`SessionFb`) can be changed while what the receiver
/// lacks is read: no re-lookup of the session is needed.
#[derive(Default)]
struct ObjectTable {
    objects: HashMap<Key, ObjectState>,
    completed: HashSet<Key>,
    /// Per session, the object before which every one is done: completed in
    /// a row from object 0, or skipped ([`Receiver::skip_before`]). With the
    /// stamp of its last move, to evict the stalest past [`MAX_FLOORS`], and
    /// whether the session is never to be reported complete (objects lost,
    /// [`Receiver::skip_lost`], or a conflict): such an entry gives way only
    /// to another such, so that fresh sessions cannot push the mark out.
    floors: HashMap<SessionId, (u32, u64, bool)>,
    /// The objects of the bound manifest, once [`Receiver::bind`] was called.
    bound: Option<HashMap<ObjectId, BoundObject>>,
    /// Each object in progress by when it was last heard from: the first
    /// goes idle first (a timer per object, kept in order).
    idle: BTreeSet<(Instant, Key)>,
    /// Objects the application gave up ([`Receiver::abandon`]), oldest
    /// first, at most `completed_history`: never taken again, never
    /// reported complete.
    abandoned: HashSet<Key>,
    abandoned_order: VecDeque<Key>,
    /// The hash, FEC scheme and OTI of each object completed lately (the
    /// last `completed_history`), to tell a second object under its id.
    done_hash: HashMap<Key, ([u8; 32], Option<Coding>)>,
    done_order: VecDeque<Key>,
    /// Where a floor goes that has no room ([`ObjectTable::floor_entry`]).
    spare: (u32, u64, bool),
}

/// Sessions whose floor ([`ObjectTable::floors`]) is kept at once.
const MAX_FLOORS: usize = 1024;

/// Sessions [`Receiver::refuse_session`] keeps refused at once.
const MAX_REFUSED: usize = 1024;

/// How long [`Receiver::refuse_session`] refuses a session: the time an idle
/// publisher keeps its slot (`InboxLimits::publisher_idle`), so that one
/// refused for want of a slot is taken again once slots may have freed.
pub const REFUSAL: Duration = Duration::from_secs(60);

impl ObjectTable {
    /// Whether an object is done: completed, or below its session's floor.
    fn is_done(&self, key: Key) -> bool {
        self.floor(key.0) > key.1.0 || self.completed.contains(&key)
    }

    fn floor(&self, session: SessionId) -> u32 {
        self.floors.get(&session).map_or(0, |f| f.0)
    }

    /// Raises `session`'s floor to at least `to`, then past every object
    /// completed in a row from there (which `completed` then need not hold).
    fn raise_floor(&mut self, session: SessionId, to: u32, stamp: u64) {
        let mut at = self.floor(session).max(to);
        // Object ids end at u32::MAX: its completion stays in `completed`.
        while at < u32::MAX && self.completed.remove(&(session, ObjectId(at))) {
            at += 1;
        }
        if at == 0 {
            return;
        }
        let f = self.floor_entry(session, stamp, false);
        f.0 = at;
        f.1 = stamp;
    }

    /// `session`'s floor entry, made if missing: past [`MAX_FLOORS`] the
    /// stalest entry that is not lossy gives way, or (for a `lossy` one, if
    /// every entry is) the stalest lossy one. A plain entry with no room
    /// left is kept apart and forgotten (its completions stay in
    /// `completed`).
    fn floor_entry(
        &mut self,
        session: SessionId,
        stamp: u64,
        lossy: bool,
    ) -> &mut (u32, u64, bool) {
        if !self.floors.contains_key(&session) && self.floors.len() >= MAX_FLOORS {
            let stalest = |want: bool| {
                self.floors
                    .iter()
                    .filter(|(_, f)| f.2 == want)
                    .min_by_key(|(_, f)| f.1)
                    .map(|(s, _)| *s)
            };
            match stalest(false).or_else(|| if lossy { stalest(true) } else { None }) {
                Some(s) => {
                    self.floors.remove(&s);
                }
                None => {
                    self.spare = (0, stamp, false);
                    return &mut self.spare;
                }
            }
        }
        self.floors.entry(session).or_insert((0, stamp, false))
    }

    /// Whether `session` is never to be reported complete.
    fn is_lossy(&self, session: SessionId) -> bool {
        self.floors.get(&session).is_some_and(|f| f.2)
    }
    /// What this receiver lacks of one block (or of an object's info), if
    /// anything, ignoring holdoffs.
    fn need_of(&self, session: SessionId, object: u32, sbn: u8) -> Option<Need> {
        let key = (session, ObjectId(object));
        if self.is_done(key) {
            return None;
        }
        let Some(o) = self.objects.get(&key) else {
            return Some(Need::info(object));
        };
        if o.info.is_none() && o.decoded_blocks == o.oti.source_blocks() {
            return Some(Need::info(object));
        }
        let block = o.oti.block(sbn as u32)?;
        let k = block.source_symbols;
        let (need, ranges) = match &o.slots[sbn as usize] {
            // Out to decode: it holds enough, and says so if it did not.
            Slot::Done | Slot::Decoding { .. } => return None,
            Slot::Idle => (
                k,
                if o.fec == FecId::NoCode {
                    vec![(0, k)]
                } else {
                    Vec::new()
                },
            ),
            Slot::Active(d) => match d.missing() {
                Some(r) => (r.iter().map(|x| x.1).sum(), r),
                None => (d.needed(), Vec::new()),
            },
        };
        (need > 0).then_some(Need {
            object,
            sbn,
            need,
            ranges,
            info: false,
            k,
            sent: o.top_esi[sbn as usize],
        })
    }

    /// Blocks this receiver should ask for now: behind the sender's progress,
    /// incomplete, and not held off.
    fn needs(&self, f: &SessionFb, now: Instant, session: SessionId) -> Vec<Need> {
        let mut out = Vec::new();
        // Objects wholly behind the progress point, and the one it is in.
        let upto = f.progress.0.saturating_add(1).min(f.objects);
        let mut missing_info = 0;
        // Nothing before what the sender still holds: it would not answer.
        for object in self.floor(session).max(f.retained)..upto {
            let key = (session, ObjectId(object));
            if self.is_done(key) || self.bound.as_ref().is_some_and(|b| !b.contains_key(&key.1)) {
                continue;
            }
            let Some(o) = self.objects.get(&key) else {
                if object >= f.progress.0 {
                    break;
                }
                // An object we never heard of: ask for its OBJECT_INFO, a few at a time.
                if missing_info < 8 && f.holdoff.get(&(object, 0)).is_none_or(|h| *h <= now) {
                    out.push(Need::info(object));
                }
                missing_info += 1;
                if missing_info >= 8 {
                    break;
                }
                continue;
            };
            let blocks = if object < f.progress.0 {
                o.slots.len()
            } else {
                (f.progress.1 as usize).min(o.slots.len())
            };
            // Every block decoded but no OBJECT_INFO (so no hash): ask for it.
            if o.info.is_none()
                && object < f.progress.0
                && o.decoded_blocks == o.oti.source_blocks()
                && f.holdoff.get(&(object, 0)).is_none_or(|h| *h <= now)
            {
                out.push(Need::info(object));
                continue;
            }
            for sbn in 0..blocks {
                if matches!(o.slots[sbn], Slot::Done) {
                    continue;
                }
                if f.holdoff
                    .get(&(object, sbn as u8))
                    .is_some_and(|h| *h > now)
                {
                    continue;
                }
                if let Some(n) = self.need_of(session, object, sbn as u8) {
                    out.push(n);
                }
            }
        }
        // Objects in progress beyond the first `upto` are not behind the sender yet.
        out
    }

    /// Whether the block at `at` (an [`ObjectTable::edge`]) is out to be
    /// solved: it holds all the symbols it needs, and waits for this
    /// receiver's CPU alone.
    fn solving(&self, session: SessionId, at: (u32, u8)) -> bool {
        self.objects
            .get(&(session, ObjectId(at.0)))
            .and_then(|o| o.slots.get(at.1 as usize))
            .is_some_and(|s| matches!(s, Slot::Decoding { .. }))
    }

    /// (object, SBN) of this receiver's window edge: the first block not yet
    /// decoded and handed out.
    fn edge(&self, session: SessionId, objects: u32) -> (u32, u8) {
        for object in self.floor(session)..objects {
            let key = (session, ObjectId(object));
            if self.is_done(key) {
                continue;
            }
            return match self.objects.get(&key) {
                Some(o) => {
                    let sbn = o
                        .slots
                        .iter()
                        .position(|s| !matches!(s, Slot::Done))
                        .unwrap_or(0);
                    (object, sbn.min(255) as u8)
                }
                None => (object, 0),
            };
        }
        (objects, 0)
    }
}

/// A uniform draw in [0, 1) from a receiver's own generator, seeded by its
/// id (splitmix64), so runs are reproducible.
fn draw(rng: &mut u64) -> f64 {
    let z = groupcast_fec::splitmix64(*rng);
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Where a block's need ranks among the receivers of a group that lack any
/// of it, when each loses a share `loss` of the sender's symbols
/// independently: (P(need > n), P(need ≥ n)), given need ≥ 1, for this need
/// n, with need = K − received, received ~ Binomial(sent,
/// 1 − loss), in the normal approximation (a logistic Φ, within 0.01). A
/// draw uniform between the two is uniform over the group, yet orders its
/// members by need, so that the first NACK of a round tends to come from the
/// neediest and covers the rest. `None` with too little to go on (no loss
/// estimate, ESI ranges of No-Code).
fn need_rank(n: &Need, loss: f64, dispersion: f64) -> Option<(f64, f64, f64)> {
    if n.info || !n.ranges.is_empty() || n.k == 0 || !(0.0..0.5).contains(&loss) {
        return None;
    }
    // A block is asked for once the first pass is past it: all K went out.
    let (sent, q) = (n.sent.max(n.k) as f64, 1.0 - loss);
    if dispersion > DISPERSION_LIMIT {
        return None;
    }
    let sd = (sent * loss * q).sqrt();
    if sd < 0.5 {
        return None;
    }
    let mean = sent * q;
    // P(need ≥ m) = P(received ≤ K − m).
    let at_least = |m: f64| {
        let x = (n.k as f64 - m + 0.5 - mean) / sd;
        1.0 / (1.0 + (-1.702 * x).exp())
    };
    // Among those who lack anything (need ≥ 1), who alone draw.
    let any = at_least(1.0);
    if any <= 0.0 {
        return None;
    }
    let need = n.need.max(1) as f64;
    Some((
        at_least(need + 1.0) / any,
        (at_least(need) / any).min(1.0),
        any,
    ))
}

/// Above this dispersion of its loss samples (see `SessionFb::dispersion`),
/// a receiver's loss is too bursty for the binomial model of `need_rank`.
const DISPERSION_LIMIT: f64 = 4.0;

/// The receivers a round's first NACKs are meant to come from: the
/// neediest this many of a block's lacking receivers (see [`ranked_backoff`]).
const FIRST_RANKS: f64 = 4.0;

/// The backoff of a block whose need ranks `u` (uniform in [0, 1) over the
/// about `lacking` receivers that lack it, the neediest first): the neediest
/// [`FIRST_RANKS`] or so draw NORM's truncated exponential over the first
/// window `max`, as a group of that size, and the rest theirs over a second
/// window after it, by when the first's NACKs, which ask for more than they
/// lack, have held them off. Only about `FIRST_RANKS`, not all who lack the
/// block, compete to be first: fewer NACKs cross before the first is heard.
fn ranked_backoff(u: f64, max: f64, lacking: f64) -> f64 {
    let first = (FIRST_RANKS / lacking.max(1.0)).min(1.0);
    if u < first || first >= 1.0 {
        nack_backoff((u / first).min(1.0), max, FIRST_RANKS.min(lacking))
    } else {
        max + nack_backoff((u - first) / (1.0 - first), max, lacking - FIRST_RANKS)
    }
}

/// DATA packets over which a session's first loss estimate is a plain ratio
/// (see `SessionFb::loss_got`).
const LOSS_WARMUP: u64 = 2000;

/// DATA, or PROBE samples, after which a session's loss estimate is taken as
/// measured (STATUS with LOSS): the first samples can span a few packets,
/// and a first report from one of 20 packets said 5% at 10% loss and sized
/// a window's repair for it. At high rates the DATA come first (1000 at
/// 10% loss: about ±2% at 95%), at low ones the samples (200 ms of PROBEs).
const LOSS_MEASURED: (u64, u32) = (1000, 8);

/// Whether the loss a session's STATUS reports is measured (see
/// [`LOSS_MEASURED`]).
fn loss_measured(f: &SessionFb) -> bool {
    f.loss_sent >= LOSS_MEASURED.0 || f.loss_samples >= LOSS_MEASURED.1
}

/// The Loss span a STATUS reports: 1 / `loss_var` in DATA packets,
/// saturating; 0 before the loss is measured.
fn loss_span(f: &SessionFb) -> u16 {
    if !loss_measured(f) || f.loss_var <= 0.0 {
        return 0;
    }
    (1.0 / f.loss_var).round().min(u16::MAX as f64) as u16
}

/// DATA packets a PROBE loss sample spans to weigh its full quarter in the
/// moving average; a shorter one weighs in proportion.
const LOSS_SAMPLE: u64 = 500;

/// Group size assumed while the sender tracks no receiver yet.
const UNKNOWN_GROUP: f64 = 1000.0;

/// Most holdoff entries one session keeps (expired ones are pruned first).
const MAX_HOLDOFFS: usize = 1 << 16;

/// Longest GRTT a receiver believes of a PROBE; a PROBE may also at most
/// double the GRTT the last one said, so one forged PROBE cannot push NACK
/// timers far away.
const MAX_PROBE_GRTT: Duration = Duration::from_secs(10);

/// How often the GRTT may rise (at most twofold): a little less than the
/// sender's default `probe_interval` (25 ms).
const GRTT_RISE: Duration = Duration::from_millis(20);

/// How far the sender's DATA counter may run ahead of the DATA heard, in its
/// session's first accepted PROBE: DATA sent before this receiver created its
/// feedback state (25 ms at 10 Gbit/s is about 26,000 packets).
const FIRST_PROBE_SLACK: u64 = 1 << 16;

/// Bytes a block in flight may hold at most: its source symbols in place,
/// fewer than K repair symbols beside them, and two partial hash units.
fn reserve_of(oti: &Oti, sbn: u8) -> u64 {
    let k = oti.block(sbn as u32).map_or(0, |b| b.source_symbols) as u64;
    2 * k * oti.symbol_size() as u64 + 2 * super::hash::UNIT
}

/// How long a block is held off after a NACK for it was sent or heard: the
/// longest backoff plus two GRTT (the repair's round trip), so that no timer
/// drawn in the same round outlives it.
fn holdoff(f: &SessionFb, config: &ReceiverConfig) -> Duration {
    f.grtt.mul_f64(backoff_window(f, config) + 2.0)
}

/// The longest NACK backoff, in GRTT: `nack_backoff`, shrunk for small groups
/// (log10(group) / 3 within [0.1, 1]).
fn backoff_window(f: &SessionFb, config: &ReceiverConfig) -> f64 {
    let group = f.group.max(config.group_size as f64);
    config.nack_backoff * (group.log10() / 3.0).clamp(0.1, 1.0)
}

/// STATUS goes every GRTT, within [10 ms, `status_interval`]: often enough to
/// keep flow control moving on a fast link, rarely enough for a large group.
fn status_every(f: &SessionFb, config: &ReceiverConfig) -> Duration {
    let most = config.status_interval.max(Duration::from_millis(10));
    f.grtt.clamp(Duration::from_millis(10), most)
}

/// NORM's randomised NACK backoff (RFC 5740 §5.5.1): a truncated exponential
/// over [0, `max`] that puts most of a group of about `group` receivers near
/// the end, so that the few who draw early are heard, and suppress the rest,
/// before the rest would send. `u` is uniform in [0, 1).
fn nack_backoff(u: f64, max: f64, group: f64) -> f64 {
    if max <= 0.0 {
        return 0.0;
    }
    let lambda = group.max(2.0).ln() + 1.0;
    let e = lambda.exp() - 1.0;
    let x = u * (lambda / max) + lambda / (max * e);
    ((max / lambda) * (x * e * (max / lambda)).ln()).clamp(0.0, max)
}

/// Whether the runs in `theirs` include every ESI of the runs in `mine`
/// (both sorted, as receivers send them).
fn covers(theirs: &[(u32, u32)], mine: &[(u32, u32)]) -> bool {
    let mut i = 0;
    for &(first, n) in mine {
        let end = first as u64 + n as u64;
        let mut at = first as u64;
        while at < end {
            while i < theirs.len() && (theirs[i].0 as u64 + theirs[i].1 as u64) <= at {
                i += 1;
            }
            let Some(&(tf, tn)) = theirs.get(i) else {
                return false;
            };
            if (tf as u64) > at {
                return false;
            }
            at = tf as u64 + tn as u64;
        }
    }
    true
}

/// Finds or opens the state of an object, enforcing the limits.
#[allow(clippy::too_many_arguments)]
fn object_state<'a>(
    table: &'a mut ObjectTable,
    config: &ReceiverConfig,
    now: Instant,
    key: Key,
    fec: FecId,
    oti: Oti,
    info: Option<Info>,
    created: u64,
) -> Result<&'a mut ObjectState, RejectReason> {
    let ObjectTable {
        objects,
        idle,
        bound,
        ..
    } = table;
    let o = match objects.entry(key) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(v) => {
            idle.insert((now, key));
            let verify = config.codecs.codec(fec).carries_data();
            // (Bound lines passed `subtree_fits` for their size, which the
            // OTI must match to get here.)
            let hash_offset = bound
                .as_ref()
                .and_then(|b| b.get(&key.1))
                .filter(|b| b.size == oti.transfer_length())
                .and_then(|b| b.hash_offset);
            v.insert(ObjectState {
                fec,
                oti,
                created,
                info,
                slots: (0..oti.source_blocks()).map(|_| Slot::Idle).collect(),
                top_esi: vec![0; oti.source_blocks() as usize],
                decoded_blocks: 0,
                // Without data there is nothing to hash, and no per-unit state to hold.
                hasher: if verify {
                    TreeHasher::new_at(oti.transfer_length(), hash_offset)
                } else {
                    TreeHasher::new(0)
                },
                hash_offset,
                verify,
                last_activity: now,
            })
        }
    };
    if o.oti != oti || o.fec != fec {
        return Err(RejectReason::OtiMismatch);
    }
    o.touch(idle, key, now);
    Ok(o)
}

#[cfg(test)]
mod rank_tests {
    use super::{Need, need_rank, ranked_backoff};

    fn need(need: u32, k: u32, sent: u32) -> Need {
        Need {
            object: 1,
            sbn: 0,
            need,
            ranges: Vec::new(),
            info: false,
            k,
            sent,
        }
    }

    /// Ranks run from the neediest (near 0) to need 1 (up to 1), each need's
    /// band next to the next one's: a draw within its band is uniform over
    /// the lacking receivers, and the needier always draw earlier.
    #[test]
    fn ranks_order_needs_and_tile_the_unit_interval() {
        let mut top = 1.0;
        for n in 1..=30 {
            let (lo, hi, lacking) = need_rank(&need(n, 100, 112), 0.1, 1.0).unwrap();
            assert!(
                lo <= hi && (hi - top).abs() < 1e-12,
                "need {n}: [{lo}, {hi}) after {top}"
            );
            assert!((0.0..=1.0).contains(&lacking));
            top = lo;
        }
        assert!(top < 1e-3, "need 30 of 100 at 10% is rare: {top}");
        // No rank without a loss estimate, for No-Code ranges, for bursty loss.
        assert!(need_rank(&need(3, 100, 100), 0.0, 1.0).is_none());
        let mut ranged = need(3, 100, 100);
        ranged.ranges = vec![(0, 3)];
        assert!(need_rank(&ranged, 0.1, 1.0).is_none());
        assert!(need_rank(&need(3, 100, 100), 0.1, 9.0).is_none());
    }

    /// The first few ranks draw over the first window; the rest after it.
    #[test]
    fn only_the_first_ranks_draw_in_the_first_window() {
        let max = 0.1;
        for i in 0..100 {
            let u = i as f64 / 100.0;
            let d = ranked_backoff(u, max, 1000.0);
            if u < 4.0 / 1000.0 {
                assert!(d <= max, "{u}: {d}");
            } else {
                assert!(d >= max && d <= 2.0 * max, "{u}: {d}");
            }
            // A group of four or fewer: all in the first window.
            assert!(ranked_backoff(u, max, 3.0) <= max);
        }
    }
}
