//! The sender's keys (protocol.md §15, §16): what lists every datagram it
//! sends in signed AUTH packets, what seals them, and what opens the
//! receivers' feedback on a sealed channel.

use std::time::Instant;

use super::config::SenderConfig;
use crate::proto::auth::Signer;
use crate::wire::seal::{Opener, Sealer};

/// A sender's signer and sealer, each if its key is set.
pub(super) struct Keys {
    signer: Option<Signer>,
    /// What seals, what opens feedback, and the buffer feedback opens into.
    seal: Option<(Sealer, Opener, Vec<u8>)>,
}

impl Keys {
    pub(super) fn new(config: &SenderConfig) -> Self {
        Self {
            signer: (config.signing_key.clone())
                .and_then(|k| Signer::new(k, config.session.0, config.max_datagram))
                .map(|s| s.with_clock(config.wall_clock)),
            seal: (config.channel_key.clone()).map(|k| {
                let start = config.seal_start.unwrap_or(0);
                (
                    Sealer::starting_at(k.clone(), start),
                    Opener::new(k),
                    Vec::new(),
                )
            }),
        }
    }

    /// The plain datagram just written into `buf[..len]` is sealed in
    /// `buf` and listed for the next AUTH: its length as it goes; `None` if
    /// it did not seal (`buf` too short), and then it does not go.
    pub(super) fn sent(&mut self, now: Instant, buf: &mut [u8], len: usize) -> Option<usize> {
        let len = match &mut self.seal {
            Some((sealer, ..)) => sealer.seal(buf, len)?,
            None => len,
        };
        if let Some(signer) = &mut self.signer {
            signer.sent(now, &buf[..len]);
        }
        Some(len)
    }

    /// The AUTH due at `now`, if any, written into `buf` (protocol.md
    /// §15.2).
    pub(super) fn poll_auth(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.signer.as_mut()?.poll_auth(now, buf)
    }

    /// When the next AUTH falls due.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.signer.as_ref().and_then(Signer::deadline)
    }

    /// Feedback as the sender reads it (protocol.md §16.3): `Ok(None)`
    /// without a channel key (read it as it came), `Ok(Some(opened))` with
    /// one (read it with `Repr::parse_opened`, and hand the buffer back to
    /// [`Keys::recycle`]); `Err` if it is not sealed under the key.
    pub(super) fn open_feedback(&mut self, datagram: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        let Some((_, opener, scratch)) = &mut self.seal else {
            return Ok(None);
        };
        let mut out = std::mem::take(scratch);
        match opener.open_into(datagram, &mut out) {
            Ok(true) => Ok(Some(out)),
            Ok(false) | Err(_) => {
                *scratch = out;
                Err(())
            }
        }
    }

    /// The wall clock AUTH's Time is stamped from, read again.
    pub(super) fn set_wall_clock(&mut self, clock: crate::proto::auth::WallClock) {
        if let Some(signer) = &mut self.signer {
            signer.set_clock(clock);
        }
    }

    /// Takes back the buffer [`Keys::open_feedback`] gave out.
    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        if let Some((_, _, scratch)) = &mut self.seal {
            *scratch = buf;
        }
    }
}
