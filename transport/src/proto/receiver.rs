//! The receiving side: decodes, verifies and hands out objects.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use groupcast_fec::{BlockDecoder, FecId, Oti, Push, codec_for};

use super::hash::TreeHasher;
use super::{ObjectId, SessionId};
use crate::wire::{DataRepr, InfoRepr, MAX_DATAGRAM, Repr, WireError};

/// Receiver settings. Start from [`ReceiverConfig::default`].
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Accept only this session; `None` accepts every session (each kept apart).
    pub session: Option<SessionId>,
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
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            session: None,
            max_object_size: 4 << 30,
            max_objects: 16,
            max_blocks_in_flight: 64,
            max_datagram: MAX_DATAGRAM,
            idle_timeout: Duration::from_secs(120),
            completed_history: 4096,
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
        let per_block = 2 * t as u64 * max_k as u64 + 2 * super::hash::UNIT;
        self.max_blocks_in_flight as u64 * per_block + self.max_objects as u64 * super::hash::UNIT
    }
}

/// Why a datagram was refused. Each is counted in [`ReceiverStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// From a session this receiver does not accept.
    ForeignSession,
    /// Object larger than `max_object_size`.
    ObjectTooLarge,
    /// More objects at once than `max_objects`.
    TooManyObjects,
    /// OTI or FEC scheme differs from what earlier packets of the object said.
    OtiMismatch,
    /// Hash or name differs from an earlier OBJECT_INFO of the object.
    InfoMismatch,
}

impl RejectReason {
    /// Every reason, in a stable order.
    pub const ALL: [RejectReason; 20] = [
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
        Self::ForeignSession,
        Self::ObjectTooLarge,
        Self::TooManyObjects,
        Self::OtiMismatch,
        Self::InfoMismatch,
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
            Self::ForeignSession => "foreign_session",
            Self::ObjectTooLarge => "object_too_large",
            Self::TooManyObjects => "too_many_objects",
            Self::OtiMismatch => "oti_mismatch",
            Self::InfoMismatch => "info_mismatch",
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
        }
    }
}

/// Why an object was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// Every block decoded but the BLAKE3 hash did not match: the data already
    /// handed out must be discarded. The object starts over.
    HashMismatch,
    /// Nothing was heard of the object for `idle_timeout`.
    Idle,
}

/// Something the receiver hands to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Objects completed and verified.
    pub objects_completed: u64,
    /// Objects that failed verification or went idle.
    pub objects_failed: u64,
    /// Bytes currently buffered: symbols held by block decoders and partial hash units.
    pub buffered_bytes: u64,
    /// Highest `buffered_bytes` seen.
    pub peak_buffered_bytes: u64,
}

impl ReceiverStats {
    /// Rejections counted under one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[Self::index(reason)]
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

enum Slot {
    Idle,
    Active(Box<dyn BlockDecoder>),
    Done,
}

struct Info {
    hash: [u8; 32],
    name: String,
}

struct ObjectState {
    fec: FecId,
    oti: Oti,
    info: Option<Info>,
    slots: Vec<Slot>,
    decoded_blocks: u32,
    hasher: TreeHasher,
    last_activity: Instant,
}

type Key = (SessionId, ObjectId);

/// The sans-IO receiver. See the [module docs](super) for the driver loop.
///
/// It decodes every object of every accepted session independently, hands out
/// each block as soon as it decodes ([`ReceiverEvent::BlockDecoded`]), and
/// reports [`ReceiverEvent::ObjectComplete`] only after the whole object's
/// BLAKE3 hash has matched. Memory is bounded by the blocks in flight, not by
/// object size: see [`ReceiverConfig::buffer_bound`].
pub struct Receiver {
    config: ReceiverConfig,
    objects: HashMap<Key, ObjectState>,
    completed: HashSet<Key>,
    completed_order: VecDeque<Key>,
    in_flight: usize,
    events: VecDeque<ReceiverEvent>,
    stats: ReceiverStats,
}

impl Receiver {
    /// A receiver with no objects.
    pub fn new(config: ReceiverConfig) -> Self {
        Self {
            config,
            objects: HashMap::new(),
            completed: HashSet::new(),
            completed_order: VecDeque::new(),
            in_flight: 0,
            events: VecDeque::new(),
            stats: ReceiverStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// Objects currently being received.
    pub fn objects_in_progress(&self) -> usize {
        self.objects.len()
    }

    /// Source symbols still needed over all objects in progress (a lower bound:
    /// a RaptorQ block may need one or two more).
    pub fn symbols_needed(&self) -> u64 {
        let mut n = 0u64;
        for o in self.objects.values() {
            for (sbn, slot) in o.slots.iter().enumerate() {
                n += match slot {
                    Slot::Idle => o.oti.block(sbn as u32).map_or(0, |b| b.source_symbols) as u64,
                    Slot::Active(d) => d.needed() as u64,
                    Slot::Done => 0,
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

    /// When an unfinished object will be abandoned, if any is in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.objects
            .values()
            .map(|o| o.last_activity + self.config.idle_timeout)
            .min()
    }

    /// Abandons objects that have been idle for `idle_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.config.idle_timeout;
        let expired: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| now.saturating_duration_since(o.last_activity) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.fail(key, FailReason::Idle);
        }
    }

    /// Handles one datagram. Malformed or foreign datagrams are counted and
    /// dropped; nothing on the network can make this panic.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        self.stats.packets_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        if datagram.len() > self.config.max_datagram {
            return self.reject(RejectReason::Oversized);
        }
        let result = match Repr::parse(datagram) {
            Ok(Repr::Data(d)) => self.handle_data(now, d),
            Ok(Repr::ObjectInfo(i)) => self.handle_info(now, i),
            Err(e) => Err(e.into()),
        };
        if let Err(reason) = result {
            self.reject(reason);
        }
        self.stats.peak_buffered_bytes = self
            .stats
            .peak_buffered_bytes
            .max(self.stats.buffered_bytes);
    }

    fn reject(&mut self, reason: RejectReason) {
        self.stats.packets_rejected += 1;
        self.stats.rejected[ReceiverStats::index(reason)] += 1;
    }

    fn accept_session(&self, session: u64) -> Result<(), RejectReason> {
        match self.config.session {
            Some(s) if s.0 != session => Err(RejectReason::ForeignSession),
            _ => Ok(()),
        }
    }

    fn handle_data(&mut self, now: Instant, d: DataRepr<'_>) -> Result<(), RejectReason> {
        self.accept_session(d.session)?;
        let key = (SessionId(d.session), ObjectId(d.object));
        if self.completed.contains(&key) {
            self.stats.duplicates += 1;
            return Ok(());
        }
        let Self {
            config,
            objects,
            in_flight,
            events,
            stats,
            ..
        } = self;
        let o = object_state(objects, config, now, key, d.fec, d.oti)?;
        let slot = &mut o.slots[d.sbn as usize];
        if matches!(slot, Slot::Done) {
            stats.duplicates += 1;
            return Ok(());
        }
        if matches!(slot, Slot::Idle) {
            if *in_flight >= config.max_blocks_in_flight {
                stats.symbols_deferred += 1;
                return Ok(());
            }
            let block = o
                .oti
                .block(d.sbn as u32)
                .expect("SBN validated by the parser");
            let decoder = codec_for(o.fec)
                .decoder(&o.oti, &block)
                .map_err(|_| RejectReason::InvalidOti)?;
            *slot = Slot::Active(decoder);
            *in_flight += 1;
        }
        let Slot::Active(decoder) = slot else {
            unreachable!("slot is active here")
        };
        let before = decoder.buffered_bytes() as u64;
        let push = decoder.push(d.esi, d.symbol).map_err(|e| match e {
            groupcast_fec::FecError::SymbolLength { .. } => RejectReason::SymbolLength,
            _ => RejectReason::EsiOutOfRange,
        })?;
        let after = decoder.buffered_bytes() as u64;
        stats.buffered_bytes = stats.buffered_bytes - before + after;
        match push {
            Push::Stored => stats.symbols_accepted += 1,
            Push::Duplicate | Push::AlreadyDecoded => stats.duplicates += 1,
            Push::Decoded => {
                stats.symbols_accepted += 1;
                let data = decoder.take_decoded().expect("decoded just now");
                // The decoder is released; only its output lives on, in the event.
                stats.buffered_bytes -= after;
                *slot = Slot::Done;
                *in_flight -= 1;
                stats.blocks_decoded += 1;
                o.decoded_blocks += 1;
                let block = o
                    .oti
                    .block(d.sbn as u32)
                    .expect("SBN validated by the parser");
                let hb = o.hasher.buffered_bytes() as u64;
                o.hasher.write(block.offset, &data);
                let ha = o.hasher.buffered_bytes() as u64;
                stats.buffered_bytes = stats.buffered_bytes - hb + ha;
                events.push_back(ReceiverEvent::BlockDecoded {
                    session: key.0,
                    object: key.1,
                    offset: block.offset,
                    data,
                });
            }
        }
        if matches!(push, Push::Decoded) {
            self.try_complete(key);
        }
        Ok(())
    }

    fn handle_info(&mut self, now: Instant, i: InfoRepr<'_>) -> Result<(), RejectReason> {
        self.accept_session(i.session)?;
        let key = (SessionId(i.session), ObjectId(i.object));
        if self.completed.contains(&key) {
            return Ok(());
        }
        let o = object_state(&mut self.objects, &self.config, now, key, i.fec, i.oti)?;
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
            }
        }
        self.stats.info_received += 1;
        self.try_complete(key);
        Ok(())
    }

    fn try_complete(&mut self, key: Key) {
        let Some(o) = self.objects.get(&key) else {
            return;
        };
        if o.decoded_blocks < o.oti.source_blocks() {
            return;
        }
        let Some(info) = &o.info else {
            return;
        };
        let Some(hash) = o.hasher.finish() else {
            return;
        };
        if *hash.as_bytes() != info.hash {
            self.fail(key, FailReason::HashMismatch);
            return;
        }
        let o = self.remove(key).expect("present");
        let info = o.info.expect("checked above");
        self.stats.objects_completed += 1;
        if self.completed_order.len() >= self.config.completed_history.max(1)
            && let Some(old) = self.completed_order.pop_front()
        {
            self.completed.remove(&old);
        }
        self.completed.insert(key);
        self.completed_order.push_back(key);
        self.events.push_back(ReceiverEvent::ObjectComplete {
            session: key.0,
            object: key.1,
            size: o.oti.transfer_length(),
            hash: info.hash,
            name: info.name,
        });
    }

    fn remove(&mut self, key: Key) -> Option<ObjectState> {
        let o = self.objects.remove(&key)?;
        let mut freed = o.hasher.buffered_bytes() as u64;
        for slot in &o.slots {
            if let Slot::Active(d) = slot {
                freed += d.buffered_bytes() as u64;
                self.in_flight -= 1;
            }
        }
        self.stats.buffered_bytes -= freed.min(self.stats.buffered_bytes);
        Some(o)
    }

    fn fail(&mut self, key: Key, reason: FailReason) {
        if self.remove(key).is_some() {
            self.stats.objects_failed += 1;
            self.events.push_back(ReceiverEvent::ObjectFailed {
                session: key.0,
                object: key.1,
                reason,
            });
        }
    }
}

/// Finds or opens the state of an object, enforcing the limits.
fn object_state<'a>(
    objects: &'a mut HashMap<Key, ObjectState>,
    config: &ReceiverConfig,
    now: Instant,
    key: Key,
    fec: FecId,
    oti: Oti,
) -> Result<&'a mut ObjectState, RejectReason> {
    if !objects.contains_key(&key) {
        if oti.transfer_length() > config.max_object_size {
            return Err(RejectReason::ObjectTooLarge);
        }
        if objects.len() >= config.max_objects {
            return Err(RejectReason::TooManyObjects);
        }
        objects.insert(
            key,
            ObjectState {
                fec,
                oti,
                info: None,
                slots: (0..oti.source_blocks()).map(|_| Slot::Idle).collect(),
                decoded_blocks: 0,
                hasher: TreeHasher::new(oti.transfer_length()),
                last_activity: now,
            },
        );
    }
    let o = objects.get_mut(&key).expect("inserted above");
    if o.oti != oti || o.fec != fec {
        return Err(RejectReason::OtiMismatch);
    }
    o.last_activity = now;
    Ok(o)
}
