//! The receiver's keys: with a sender key, the verifier that holds each
//! datagram of the sender's until a verified AUTH lists it (protocol.md
//! §15.2); with a channel key, what opens datagrams and seals feedback
//! (§16.3).

use crate::proto::auth::{Verifier, VerifyingKey};
use crate::wire::seal::{ChannelKey, Opener, Sealer};

/// A receiver's verifier and seal, each if its key is set; `M` is what a
/// held datagram keeps of where it came from.
pub(super) struct Keys<M> {
    pub(super) auth: Option<Verifier<M>>,
    pub(super) seal: Option<(Opener, Sealer)>,
    /// The last datagram opened.
    pub(super) opened: Vec<u8>,
    /// Whether the datagram being dispatched was vouched for by a verified
    /// AUTH.
    pub(super) vouched: bool,
}

impl<M> Keys<M> {
    pub(super) fn new(sender: Option<VerifyingKey>, channel: Option<ChannelKey>) -> Self {
        Self {
            auth: sender.map(Verifier::new),
            seal: channel.map(|k| (Opener::new(k.clone()), Sealer::new(k))),
            opened: Vec::new(),
            vouched: false,
        }
    }
}
