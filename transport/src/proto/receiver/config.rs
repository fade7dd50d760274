//! What a receiver is told: [`ReceiverConfig`], [`Admission`] and the
//! [`BoundObject`]s of a manifest (protocol.md §11). Plain settings only:
//! no state and no packet handling live here.

use std::time::Duration;

use groupcast_fec::CodecSet;

use crate::proto::hash::UNIT;
use crate::proto::{ObjectId, SessionId};
use crate::wire::MAX_DATAGRAM;

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
    /// later. Default 256 (the sender's default flow window of 240 blocks,
    /// plus its interleave); `max_buffered_bytes` bounds their bytes.
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

    /// Which objects the receiver takes before [`Receiver::bind`](super::Receiver::bind). Default
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
    /// [`ReceiverEvent::BlockDecoded`](super::ReceiverEvent::BlockDecoded) carries no bytes, and objects complete
    /// without their hash being checked.
    pub codecs: CodecSet,
    /// Threads that solve blocks, for the driver to start (the core starts
    /// none). Above 0, a block that holds enough symbols becomes a
    /// [`DecodeJob`](super::DecodeJob) (from [`Receiver::poll_decode`](super::Receiver::poll_decode)), which the driver runs
    /// where it likes and hands back ([`Receiver::handle_decoded`](super::Receiver::handle_decoded)), while
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
    /// Take only what a sender with one of these public keys signed
    /// (protocol.md §15): every datagram of a session is held until a
    /// verified AUTH lists it, and nothing else reaches the decoders, the
    /// objects or the feedback. One key, and while a sender rotates, the
    /// next beside it; the first [`MAX_KEYS`] are used. Default none: every
    /// datagram is taken as it comes.
    ///
    /// [`MAX_KEYS`]: crate::proto::auth::MAX_KEYS
    pub sender_keys: Vec<crate::proto::auth::VerifyingKey>,
    /// Fingerprints of sender keys ([`key_fingerprint`]), taken as
    /// `sender_keys` are, with the key itself read from each AUTH. A
    /// fingerprint pins 64 bits: the key pins all of it.
    ///
    /// [`key_fingerprint`]: crate::proto::auth::key_fingerprint
    pub sender_fingerprints: Vec<[u8; crate::proto::auth::FINGERPRINT_LEN]>,
    /// The keys of an encrypted channel (protocol.md §16): every datagram
    /// but AUTH must be sealed under one of them and is opened before it
    /// is read, and feedback to a session goes out sealed under the key its
    /// datagrams opened with. One key, and while the sender rotates, the
    /// next; the first [`MAX_KEYS`] are used. Default none: sealed
    /// datagrams are refused (`sealed`).
    ///
    /// [`MAX_KEYS`]: crate::proto::auth::MAX_KEYS
    pub channel_keys: Vec<crate::wire::seal::ChannelKey>,
    /// The wall clock (read by the drivers at start), against which an
    /// AUTH's Time is checked: with a sender key, an AUTH signed more than
    /// `auth_max_age` before or after it is refused as stale (protocol.md
    /// §15.2), so that a signed session recorded and replayed later is not
    /// taken. Default none: Time is not checked.
    pub wall_clock: Option<crate::proto::auth::WallClock>,
    /// How far an AUTH's Time may lie from `wall_clock`, either way
    /// ([`AUTH_MAX_AGE`], 2 minutes, by default): the replay window, and
    /// the clock skew between sender and receiver that signing allows.
    /// `None`: Time is not checked.
    ///
    /// [`AUTH_MAX_AGE`]: crate::proto::auth::AUTH_MAX_AGE
    pub auth_max_age: Option<std::time::Duration>,
    /// The first Sequence this receiver seals its feedback with (protocol.md
    /// §16.2). Drivers draw it at random as they start, so that a receiver
    /// restarted with the same id never seals twice under one nonce; set
    /// it at random when driving the core yourself with a channel key.
    pub seal_start: u64,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            session: None,
            refused_sessions: Vec::new(),
            max_object_size: 4 << 30,
            max_objects: 16,
            max_blocks_in_flight: 256,
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
            sender_keys: Vec::new(),
            channel_keys: Vec::new(),
            wall_clock: None,
            auth_max_age: Some(crate::proto::auth::AUTH_MAX_AGE),
            sender_fingerprints: Vec::new(),
            seal_start: 0,
        }
    }
}

impl ReceiverConfig {
    /// Upper bound on [`ReceiverStats::buffered_bytes`](super::ReceiverStats::buffered_bytes) for objects sent with
    /// symbol size `t` and at most `max_k` source symbols per block. Each block
    /// in flight holds at most its source symbols in place (K × T, allocated at
    /// its first source symbol) and fewer than K repair symbols, plus two
    /// partial hash units (2 × 64 KiB); add one whole-object buffer per object
    /// of at most one hash unit.
    pub fn buffer_bound(&self, t: u16, max_k: u32) -> u64 {
        let block = (t as u64 * max_k as u64).min(self.max_block_bytes);
        let per_block = 2 * block + 2 * UNIT;
        let blocks = (self.max_blocks_in_flight as u64 * per_block).min(self.max_buffered_bytes);
        blocks + self.max_objects as u64 * UNIT
    }

    /// Upper bound on [`ReceiverStats::buffered_bytes`](super::ReceiverStats::buffered_bytes) whatever the senders
    /// claim: the blocks in flight within `max_buffered_bytes`, plus one
    /// whole-object hash unit per object.
    pub fn worst_case_buffer(&self) -> u64 {
        self.max_buffered_bytes + self.max_objects as u64 * UNIT
    }
}

/// Which objects a receiver takes before it is bound to a manifest
/// ([`Receiver::bind`](super::Receiver::bind)). See protocol.md §11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every object of every accepted session. For library users and the
    /// simulator, who decide themselves what to keep.
    Open,
    /// Only object 0, the manifest, of each session; its state is created by
    /// its OBJECT_INFO alone (DATA that comes first is deferred). At most
    /// `max_sessions` sessions are candidates at once: a further one evicts
    /// the oldest (`candidates_evicted`). Packets of every other object are
    /// dropped (`awaiting_manifest`) until [`Receiver::bind`](super::Receiver::bind) names the
    /// objects.
    Manifest {
        /// Accept only a manifest with this BLAKE3 hash (the transfer id):
        /// an OBJECT_INFO for object 0 with another hash is `wrong_transfer`.
        expect: Option<[u8; 32]>,
        /// Largest manifest accepted (`object_too_large` beyond).
        max_size: u64,
    },
}

/// One object a verified manifest names: see [`Receiver::bind`](super::Receiver::bind).
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
