//! What a receiver says: events, counters, refusal and failure reasons,
//! the datagram destinations and arrival sockets of protocol.md §12. Plain
//! data and its naming only: no receiver state changes here.

use crate::proto::{ObjectId, SessionId};
use crate::wire::WireError;

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
    /// before a manifest is bound ([`Admission::Manifest`](super::Admission::Manifest)). Counted in
    /// [`ReceiverStats::awaiting_manifest`], not in `packets_rejected`.
    AwaitingManifest,
    /// A PROBE whose counters cannot be true (for example more DATA sent since
    /// the last PROBE than could be); its counters are ignored.
    Implausible,
    /// Of an object its application gave up ([`Receiver::abandon`](super::Receiver::abandon)).
    Abandoned,
    /// An AUTH whose signature does not verify under the sender key
    /// (protocol.md §15.2).
    BadSignature,
    /// An AUTH far behind the latest its session verified: a replay
    /// (protocol.md §15.2).
    StaleAuth,
    /// Sealed (protocol.md §16), and this receiver has no channel key.
    Sealed,
    /// Not sealed, on a channel whose key this receiver holds: only AUTH
    /// goes unsealed (protocol.md §16.3).
    Unsealed,
    /// A seal that does not open under the channel key: forged, modified,
    /// or another channel's (protocol.md §16.3).
    BadSeal,
    /// With a sender key: a datagram of the sender's that reached dispatch
    /// without a verified AUTH listing it. The gate lets none through: a
    /// count above 0 is a defect (protocol.md §15.2).
    Unvouched,
}

impl RejectReason {
    /// Every reason, in a stable order.
    pub const ALL: [RejectReason; 38] = [
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
        Self::BadSignature,
        Self::StaleAuth,
        Self::Sealed,
        Self::Unsealed,
        Self::BadSeal,
        Self::Unvouched,
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
            Self::BadSignature => "bad_signature",
            Self::StaleAuth => "stale_auth",
            Self::Sealed => "sealed",
            Self::Unsealed => "unsealed",
            Self::BadSeal => "bad_seal",
            Self::Unvouched => "unvouched",
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
            WireError::Sealed => Self::Sealed,
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
    /// A candidate manifest evicted by a newer one ([`Admission::Manifest`](super::Admission::Manifest)).
    Evicted,
    /// Its application gave it up ([`Receiver::abandon`](super::Receiver::abandon)).
    Abandoned,
    /// An OBJECT_INFO named another hash than the object this receiver
    /// completed under the same id: two objects were sent under one id, so
    /// one of them is forged, and a receiver without keys cannot tell which.
    /// The object stays as it was completed; the session is never reported
    /// complete from then on.
    Conflict,
}

/// Where a sender is, from its PROBEs ([`Receiver::sender_progress`](super::Receiver::sender_progress)).
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
        /// The block's number in the object (see [`Receiver::hold_window`](super::Receiver::hold_window)).
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

/// Datagrams refused, by [`RejectReason::ALL`]'s order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rejected(pub(super) [u64; RejectReason::ALL.len()]);

impl Default for Rejected {
    fn default() -> Self {
        Self([0; RejectReason::ALL.len()])
    }
}

/// Counters kept by a [`Receiver`](super::Receiver).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Datagrams handed to the receiver.
    pub packets_received: u64,
    /// Bytes of those datagrams.
    pub bytes_received: u64,
    /// Datagrams refused; see [`ReceiverStats::rejected_by_reason`].
    pub packets_rejected: u64,
    pub(super) rejected: Rejected,
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
    /// Decode jobs ([`ReceiverConfig::decode_threads`](super::ReceiverConfig::decode_threads)) that came back still
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
    /// STATUS sent though the PROBE did not sample this receiver: it lagged
    /// the sender's Limit or lost more than the sender's Loss
    /// (protocol.md §13.3, "Who reports").
    pub status_unasked: u64,
    /// Feedback packets that were not for a receiver (STATUS), or of sessions
    /// beyond `max_sessions`, ignored.
    pub feedback_ignored: u64,
    /// AUTH packets (protocol.md §15.1) taken by a receiver that holds no
    /// sender key, which has nothing to check them against: ignored.
    pub auth_ignored: u64,
    /// With a sender key: AUTH verified and refused, datagrams vouched
    /// for and let go unvouched, and what is held waiting (protocol.md
    /// §15.2).
    pub auth: crate::proto::auth::AuthStats,
    /// With a channel key: datagrams opened (protocol.md §16.3). Those
    /// that did not open are refused as `sealed`, `unsealed` or `bad_seal`.
    pub opened: u64,
    /// With a sender key: DATA that reached the last check before the
    /// decoders without a verified AUTH listing it, and was refused there
    /// (`unvouched`). The gate lets none through: a count above 0 is a
    /// defect.
    pub symbols_unvouched: u64,
    /// Candidate manifests evicted by newer ones ([`Admission::Manifest`](super::Admission::Manifest)).
    pub candidates_evicted: u64,
    /// Packets of objects other than the manifest that came before a manifest
    /// was bound ([`Admission::Manifest`](super::Admission::Manifest)), dropped (the sender repairs them).
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
    /// Feedback datagrams for a session's sender alone (STATUS, and NACKs
    /// under `nack_unicast`) that
    /// [`Receiver::poll_transmit_to`](super::Receiver::poll_transmit_to)
    /// dropped: no datagram of the session that may aim it had said where
    /// its sender is.
    pub feedback_unaddressed: u64,
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

impl ReceiverStats {
    /// Rejections counted under one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        // AwaitingManifest is not a rejection, and not in ALL.
        RejectReason::ALL
            .iter()
            .position(|&r| r == reason)
            .map_or(0, |i| self.rejected.0[i])
    }

    /// Every reason with a non-zero count, in [`RejectReason::ALL`] order.
    pub fn rejected_by_reason(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .iter()
            .map(|&r| (r, self.rejected(r)))
            .filter(|&(_, n)| n > 0)
    }

    pub(super) fn index(reason: RejectReason) -> usize {
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
    /// Whether `datagram` may be handed to [`Receiver::handle_datagram`](super::Receiver::handle_datagram)
    /// from this socket: on the data group only DATA, OBJECT_INFO, PROBE
    /// and AUTH, on the feedback group only NACK (protocol.md §12; a driver
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
                    || is(PacketType::Auth)
            }
            Arrival::FeedbackGroup => is(PacketType::Nack),
        }
    }
}

/// A datagram [`Receiver::handle_datagram`](super::Receiver::handle_datagram) took.
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
    /// A PROBE's Hops (protocol.md §13.1), from which
    /// [`Receiver::handle`](super::Receiver::handle) sizes the NACKs' hop
    /// limit (§13.5).
    pub probe_hops: Option<u8>,
}
