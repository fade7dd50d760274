//! Channels: names hashed to IPv6 multicast group addresses.
//!
//! A channel's data group is `ff1e::/16` followed by the first 14 bytes of
//! BLAKE3(name). This is the address Librecast derives for the same name, so
//! both can share a namespace of channels. `ff1e` is a transient (T flag),
//! global-scope multicast prefix.
//!
//! The feedback side channel (used by the NACK and hybrid modes) is
//! `ff1e::/16` followed by the first 14 bytes of the BLAKE3 keyed hash of the
//! name, keyed with BLAKE3("NACK"). See `docs/protocol.md` §3.

use std::net::Ipv6Addr;

/// The default UDP port of a channel.
pub const DEFAULT_PORT: u16 = 4242;

/// The 16-bit prefix of every channel address.
pub const CHANNEL_PREFIX: [u8; 2] = [0xff, 0x1e];

/// A named channel and the group addresses derived from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    name: String,
    group: Ipv6Addr,
    feedback: Ipv6Addr,
    port: u16,
}

fn group_from_hash(hash: &[u8; 32]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets[..2].copy_from_slice(&CHANNEL_PREFIX);
    octets[2..].copy_from_slice(&hash[..14]);
    Ipv6Addr::from(octets)
}

impl Channel {
    /// Derives the channel for `name`, on [`DEFAULT_PORT`].
    ///
    /// ```
    /// let ch = groupcast::Channel::new("example.com");
    /// assert_eq!(ch.group().to_string(), "ff1e:7492:7756:a0a0:8c17:da48:407c:8adc");
    /// ```
    pub fn new(name: &str) -> Self {
        let group = group_from_hash(blake3::hash(name.as_bytes()).as_bytes());
        let key = blake3::hash(b"NACK");
        let feedback =
            group_from_hash(blake3::keyed_hash(key.as_bytes(), name.as_bytes()).as_bytes());
        Self {
            name: name.to_owned(),
            group,
            feedback,
            port: DEFAULT_PORT,
        }
    }

    /// The same channel on another UDP port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The multicast group that carries the channel's data.
    pub fn group(&self) -> Ipv6Addr {
        self.group
    }

    /// The multicast group of the feedback side channel.
    pub fn feedback_group(&self) -> Ipv6Addr {
        self.feedback
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_librecast_derivation() {
        // Librecast: lc_channel_new("example.com") joins this group.
        assert_eq!(
            Channel::new("example.com").group(),
            "ff1e:7492:7756:a0a0:8c17:da48:407c:8adc"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        for name in ["", "a", "groupcast", "ünïcødé channel"] {
            let h = blake3::hash(name.as_bytes());
            let g = Channel::new(name).group().octets();
            assert_eq!(g[..2], [0xff, 0x1e]);
            assert_eq!(g[2..], h.as_bytes()[..14]);
        }
    }

    #[test]
    fn the_feedback_group_is_the_keyed_hash_of_protocol_section_3_and_not_the_data_group() {
        // A fixed vector, so that a change of the derivation shows.
        assert_eq!(
            Channel::new("example.com").feedback_group(),
            "ff1e:c66:275e:5689:6c95:2671:6841:655a"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        // ff1e, then the first 14 bytes of BLAKE3 keyed with BLAKE3("NACK").
        let key = *blake3::hash(b"NACK").as_bytes();
        for name in ["", "a", "example.com", "groupcast", "ünïcødé channel"] {
            let ch = Channel::new(name);
            let h = blake3::keyed_hash(&key, name.as_bytes());
            let g = ch.feedback_group().octets();
            assert_eq!(g[..2], [0xff, 0x1e], "{name:?}");
            assert_eq!(g[2..], h.as_bytes()[..14], "{name:?}");
            assert_ne!(ch.group(), ch.feedback_group(), "{name:?}");
        }
    }

    #[test]
    fn a_channel_is_on_the_default_port_unless_given_another() {
        let ch = Channel::new("example.com");
        assert_eq!(ch.port(), DEFAULT_PORT);
        assert_eq!(DEFAULT_PORT, 4242);
        let other = ch.clone().with_port(9);
        assert_eq!(other.port(), 9);
        assert_eq!(
            (other.group(), other.feedback_group(), other.name()),
            (ch.group(), ch.feedback_group(), "example.com"),
            "the port changes nothing else"
        );
    }
}
