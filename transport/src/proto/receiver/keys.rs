//! The receiver's keys: with a sender key, the verifier that holds each
//! datagram of the sender's until a verified AUTH lists it (protocol.md
//! §15.2); with a channel key, what opens datagrams and seals feedback
//! (§16.3).

use super::config::ReceiverConfig;
use crate::proto::auth::{MAX_KEYS, Verifier};
use crate::wire::seal::{Opener, Sealer};

/// A receiver's verifier and seal, each if its key is set; `M` is what a
/// held datagram keeps of where it came from.
pub(super) struct Keys<M> {
    pub(super) auth: Option<Verifier<M>>,
    /// What opens, and a sealer for each channel key: feedback to a
    /// session is sealed under the key its datagrams opened with.
    pub(super) seal: Option<(Opener, Vec<Sealer>)>,
    /// The last datagram opened.
    pub(super) opened: Vec<u8>,
    /// Whether the datagram being dispatched was vouched for by a verified
    /// AUTH.
    pub(super) vouched: bool,
}

impl<M> Keys<M> {
    /// Keys beyond the first [`MAX_KEYS`] of each kind are not used.
    pub(super) fn new(config: &ReceiverConfig) -> Self {
        let sender = &config.sender_keys[..config.sender_keys.len().min(MAX_KEYS)];
        let channel = &config.channel_keys[..config.channel_keys.len().min(MAX_KEYS)];
        let keyed = !sender.is_empty() || !config.sender_fingerprints.is_empty();
        Self {
            auth: keyed.then(|| {
                Verifier::with_keys(sender.to_vec())
                    .with_fingerprints(config.sender_fingerprints.clone())
                    .with_clock(config.wall_clock, config.auth_max_age)
            }),
            seal: (!channel.is_empty()).then(|| {
                let sealers = (channel.iter().cloned())
                    .map(|k| Sealer::starting_at(k, config.seal_start))
                    .collect();
                (Opener::with_keys(channel.to_vec()), sealers)
            }),
            opened: Vec::new(),
            vouched: false,
        }
    }

    /// Seals feedback to `session` in `buf` (its plain length `len`) under
    /// the key that opened the session's datagrams.
    pub(super) fn seal_feedback(
        &mut self,
        session: u64,
        buf: &mut [u8],
        len: usize,
    ) -> Option<usize> {
        let (opener, sealers) = self.seal.as_mut()?;
        sealers.get_mut(opener.key_of(session))?.seal(buf, len)
    }
}
