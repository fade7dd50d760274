//! The sans-IO protocol core.
//!
//! [`Sender`] and [`Receiver`] are state machines in the style of quinn-proto:
//! datagrams, time and commands go in through `handle_*` (and
//! [`Sender::add_object`]); datagrams, deadlines and events come out through
//! `poll_transmit`, `poll_timeout` and `poll_event`. Nothing here reads a clock,
//! touches a socket or draws from a global RNG; time is always a parameter and
//! must not go backwards.
//!
//! A driver's loop, for either side:
//! 1. feed every datagram that arrived to `handle_datagram(now, ..)`;
//! 2. if the deadline from `poll_timeout()` has passed, call `handle_timeout(now)`;
//! 3. call `poll_transmit(now, ..)` until it returns `None`, sending each datagram;
//! 4. drain `poll_event()`;
//! 5. sleep until the next datagram or `poll_timeout()`.

pub mod auth;
mod encoders;
pub mod feed;
mod feedback;
mod hash;
mod pacing;
mod rate;
mod reassemble;
mod receiver;
mod repair;
mod roster;
mod schedule;
mod sender;
mod timer;

pub use feedback::{Aimd, FeedbackConfig, FlowPolicy, Mode};

/// Blocks of fewer source symbols are cheap to build an encoder for and to
/// solve (well under a millisecond), so the sender never waits for a worker's
/// build of one (`SenderConfig::wait_for_encoders`) and a receiver never
/// holds one back for a cheaper solve (`ReceiverConfig::ripen`): either
/// wait would delay small objects, such as messages, for nothing.
pub(crate) const COSTLY_BLOCK_SYMBOLS: u32 = 500;
pub use hash::UNIT as HASH_UNIT;
pub use hash::{PartHasher, part_cv, root_of_parts, subtree_fits};
#[cfg(feature = "net")]
pub(crate) use hash::{hash_from_stretches, unit_cv};
pub use reassemble::{Reassembled, Reassembler};
pub use receiver::{
    Accepted, Admission, Arrival, BoundObject, CONTRADICTION_GRACE, DecodeJob, DecodedBlock,
    Destination, FailReason, KEEPALIVE, MAX_FEEDBACK_HOPS, REFUSAL, Receiver, ReceiverConfig,
    ReceiverEvent, ReceiverStats, RejectReason, SenderProgress, Transmit, TransmitTo,
};
pub use sender::{
    BUSY_HOLD, BlockRequest, BuiltEncoder, EncoderRequest, MAX_PACING_CATCH_UP,
    MAX_REPAIR_OVERHEAD, MAX_REPAIR_SHARE, Rounds, Sender, SenderConfig, SenderError, SenderEvent,
    SenderStats,
};

/// Identifies one run of a sender. Receivers never mix objects of different sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Sixteen hex digits, as the CLI prints and takes session ids.
impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl SessionId {
    /// A session id derived from a seed, for drivers that want reproducible ids.
    pub fn from_seed(seed: u64) -> Self {
        let h = blake3::hash(&seed.to_le_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        Self(u64::from_le_bytes(b))
    }
}

/// Identifies an object within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u32);
