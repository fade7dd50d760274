//! Where a receiver's feedback goes: the source address of each session's
//! sender, the only address its STATUS may go to (protocol.md §12), and the
//! hop limit its NACKs need to go back as far as the PROBEs came (§13.5,
//! Hop limit). The driver hands in each datagram's source and arrival hop
//! limit ([`Receiver::handle`](super::Receiver::handle)) and sends where
//! [`Transmit`] says.

use std::net::SocketAddr;

use crate::proto::SessionId;

/// The most hops a receiver's NACKs take when the PROBEs size them
/// (protocol.md §13.5, Hop limit).
pub const MAX_FEEDBACK_HOPS: u32 = 32;

/// Sessions whose sender address a receiver remembers at once.
const MAX_SENDER_ADDRS: usize = 8;

/// A feedback datagram [`Receiver::poll_transmit_to`](super::Receiver::poll_transmit_to)
/// wrote, and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    /// Its length, from the start of the buffer.
    pub len: usize,
    /// Where it goes.
    pub destination: TransmitTo,
    /// For the feedback group: the hop limit NACKs leave with, as the
    /// PROBEs call for (protocol.md §13.5, Hop limit); `None` until a PROBE
    /// said, and for a unicast datagram (the system's unicast hop limit).
    pub hop_limit: Option<u32>,
}

/// Where a [`Transmit`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitTo {
    /// The channel's feedback group (NACKs, so that receivers hear each other).
    Feedback,
    /// A session's sender alone, at the source address of the session's
    /// latest datagram that may aim it ([`Accepted::from_sender`](super::Accepted::from_sender)).
    Addr(SocketAddr),
}

/// Where each session's accepted datagrams came from (a few sessions at
/// most: the locked one, or candidates before), and the NACKs' hop limit.
#[derive(Debug, Default)]
pub(super) struct SenderAddrs {
    /// Sessions and their senders' addresses, the latest last.
    addrs: Vec<(SessionId, SocketAddr)>,
    /// The NACKs' hop limit the latest PROBE calls for, once one did.
    nack_hops: Option<u32>,
}

impl SenderAddrs {
    /// Remembers `from` as `session`'s sender, the latest last. With
    /// [`MAX_SENDER_ADDRS`] remembered, the oldest of a session the receiver
    /// no longer keeps feedback state for (`kept` false) gives way, else the
    /// oldest: the receiver keeps feedback state for fewer sessions than
    /// this (`ReceiverConfig::max_sessions`, 4 by default), so that
    /// datagrams of made-up sessions cannot push out the address of a
    /// session it still answers (protocol.md §12).
    pub(super) fn remember(
        &mut self,
        session: SessionId,
        from: SocketAddr,
        kept: impl Fn(SessionId) -> bool,
    ) {
        let addrs = &mut self.addrs;
        if addrs.last() == Some(&(session, from)) {
            return;
        }
        addrs.retain(|(s, _)| *s != session);
        if addrs.len() >= MAX_SENDER_ADDRS {
            let gone = addrs.iter().position(|(s, _)| !kept(*s)).unwrap_or(0);
            addrs.remove(gone);
        }
        addrs.push((session, from));
    }

    /// Where `session`'s sender is, if a datagram of it that may aim it was
    /// accepted.
    pub(super) fn sender_of(&self, session: SessionId) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(s, _)| *s == session)
            .map(|(_, a)| *a)
    }

    /// A PROBE announcing `announced` hops arrived with `arrived` left (if
    /// the driver knows): NACKs leave with enough to go back as far; without
    /// the arrival hop limit, as far as the PROBE was sent (protocol.md
    /// §13.5, Hop limit).
    pub(super) fn follow_probe(&mut self, announced: u8, arrived: Option<u8>) {
        self.nack_hops = Some(match arrived {
            Some(arrived) => feedback_hops_for(announced, arrived),
            None => (announced.max(1) as u32).min(MAX_FEEDBACK_HOPS),
        });
    }

    /// The NACKs' hop limit the PROBEs call for, once one did.
    pub(super) fn nack_hops(&self) -> Option<u32> {
        self.nack_hops
    }
}

/// The hop limit NACKs need to go back as far as a PROBE came: the routers
/// it crossed (`announced` − `arrived`) and one to spare, within
/// 1..=[`MAX_FEEDBACK_HOPS`], whatever a forged PROBE announces.
fn feedback_hops_for(announced: u8, arrived: u8) -> u32 {
    (announced.saturating_sub(arrived) as u32 + 1).min(MAX_FEEDBACK_HOPS)
}

#[cfg(test)]
mod tests {
    use super::{MAX_FEEDBACK_HOPS, MAX_SENDER_ADDRS, SenderAddrs, feedback_hops_for};
    use crate::proto::SessionId;
    use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

    /// Datagrams of made-up sessions, however many, never push out the
    /// address of a session the receiver still answers; without one to
    /// keep, the oldest goes.
    #[test]
    fn made_up_sessions_cannot_push_out_a_kept_sender() {
        let addr = |i: u64| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, i as u16, 0, 0));
        let mut book = SenderAddrs::default();
        book.remember(SessionId(7), addr(7), |_| false);
        for forged in 100..200u64 {
            book.remember(SessionId(forged), addr(forged), |s| s == SessionId(7));
        }
        let addrs = &book.addrs;
        assert_eq!(addrs.len(), MAX_SENDER_ADDRS);
        assert!(addrs.contains(&(SessionId(7), addr(7))), "{addrs:?}");
        for forged in 200..220u64 {
            book.remember(SessionId(forged), addr(forged), |_| false);
        }
        let addrs = &book.addrs;
        assert!(!addrs.iter().any(|(s, _)| *s == SessionId(7)));
        assert_eq!(addrs.last(), Some(&(SessionId(219), addr(219))));
    }

    /// What a PROBE's Hops field, real or forged, makes of the NACKs' hop
    /// limit: never 0, never beyond MAX_FEEDBACK_HOPS.
    #[test]
    fn probe_hops_size_the_nacks_within_bounds() {
        assert_eq!(feedback_hops_for(1, 1), 1, "same link");
        assert_eq!(feedback_hops_for(4, 3), 2, "one router");
        assert_eq!(feedback_hops_for(255, 1), MAX_FEEDBACK_HOPS, "forged high");
        assert_eq!(feedback_hops_for(1, 64), 1, "forged below the arrival");
        assert_eq!(feedback_hops_for(0, 0), 1);
    }
}
