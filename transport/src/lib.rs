//! groupcast: TCP-like reliability over raw IPv6 multicast.
//!
//! One sender reaches any number of receivers with the same packets. Loss is
//! repaired with RaptorQ (RFC 6330): the sender streams each block's source
//! symbols and then fresh repair symbols, and every receiver decodes from any
//! K (+ a little) of them, whichever it happened to get.
//!
//! The crate is laid out by architecture:
//! - [`wire`]: the packet formats of `docs/protocol.md`, as zero-copy views and
//!   parsed `Repr`s. Parsing never panics.
//! - [`proto`]: the sans-IO core. [`Sender`] and [`Receiver`] are state machines
//!   that take datagrams and time in through `handle_*` and give datagrams,
//!   deadlines and events out through `poll_*`. They never touch a socket or the
//!   clock, so the same code runs under the socket driver, the simulator
//!   (`groupcast-sim`) and the tests.
//! - [`channel`]: channel names hashed to `ff1e::/16` group addresses.
//! - `io` (cargo feature `net`, on by default): the socket driver (mio,
//!   socket2), file transfer, and `io::pubsub`, the message and stream
//!   handles for applications (`Publisher`, `Subscriber`, `Endpoint`; async
//!   ones under the cargo feature `tokio`). Without it the crate builds as
//!   the sans-IO core alone.
//!
//! # Example
//!
//! A sender and a receiver wired back to back, dropping every fifth datagram:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use groupcast::{Reassembler, Receiver, ReceiverConfig, Rounds, Sender, SenderConfig};
//!
//! let object: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
//! let mut sender = Sender::new(SenderConfig {
//!     repair_overhead: 0.4,
//!     rounds: Rounds::Unlimited,
//!     ..SenderConfig::default()
//! })
//! .unwrap();
//! sender.add_object(object.clone(), "example.bin").unwrap();
//! let mut receiver = Receiver::new(ReceiverConfig::default());
//!
//! let now = Instant::now();
//! let mut buf = vec![0u8; 1232];
//! // Blocks decode in any order; the reassembler puts them back together.
//! let mut objects = Reassembler::new();
//! let mut n = 0;
//! let done = 'outer: loop {
//!     let len = sender.poll_transmit(now, &mut buf).expect("a carousel never ends");
//!     n += 1;
//!     if n % 5 == 0 {
//!         continue; // lost
//!     }
//!     // Err says why a datagram was refused; Ok what was taken.
//!     let _ = receiver.handle_datagram(now, &buf[..len]);
//!     while let Some(event) = receiver.poll_event() {
//!         if let Some(done) = objects.handle(event) {
//!             break 'outer done;
//!         }
//!     }
//! };
//! assert_eq!((done.name.as_str(), done.data), ("example.bin", object));
//! ```

pub mod channel;
#[cfg(feature = "net")]
pub mod io;
pub mod proto;
pub mod units;
pub mod wire;

pub use channel::Channel;
pub use groupcast_fec::{CodecSet, FecId};
#[cfg(feature = "net")]
pub use io::IoError;
#[cfg(feature = "tokio")]
pub use io::pubsub::tokio::{
    AsyncMessages, AsyncPublisher, AsyncPublisherStream, AsyncSubscriber, AsyncSubscriberStream,
};
#[cfg(feature = "net")]
pub use io::pubsub::{
    DEFAULT_RATE_BITS, Endpoint, Event, InboxLimits, InboxStats, Message, Messages, Publisher,
    PublisherBuilder, PublisherReport, PublisherStream, RecvError, Subscriber, SubscriberBuilder,
    SubscriberStream,
};
pub use proto::{
    Accepted, Admission, Aimd, Arrival, BlockRequest, BoundObject, DecodeJob, DecodedBlock,
    Destination, FailReason, FeedbackConfig, FlowPolicy, MAX_PACING_CATCH_UP, MAX_REPAIR_OVERHEAD,
    MAX_REPAIR_SHARE, Mode, ObjectId, Reassembled, Reassembler, Receiver, ReceiverConfig,
    ReceiverEvent, ReceiverStats, RejectReason, Rounds, Sender, SenderConfig, SenderError,
    SenderEvent, SenderStats, SessionId, Transmit, TransmitTo,
};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
