//! Sealed datagrams (protocol.md §16): the one place where a datagram is
//! encrypted under a channel key, and opened again.
//!
//! A sealed datagram is a plain one whose body after its type's clear
//! fields ([`clear_len`]) is encrypted with ChaCha20-Poly1305 (ring), with
//! the header and the clear fields as associated data, and a Sequence and
//! the AEAD tag before the CRC. Each party seals under a key of its own,
//! derived from the channel key and what names it (the session; the
//! receiver's id for feedback), and numbers what it seals, so that no nonce
//! repeats under a key, from a Sequence drawn at random as each party
//! starts. Opening gives the plain datagram back for the ordinary parsers
//! ([`Repr::parse_opened`](super::Repr::parse_opened)).

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroize;

use super::{
    CRC_LEN, DATA_HEADER_LEN, HEADER_LEN, MAX_DATAGRAM, Packet, PacketType, WireError, field, flags,
};

/// Length of the Sequence of a sealed datagram.
pub const SEQUENCE_LEN: usize = 8;
/// Length of the AEAD tag (Poly1305).
pub const AEAD_TAG_LEN: usize = 16;
/// Bytes sealing adds to a datagram: the Sequence and the AEAD tag, the
/// Tag Len of a sealed datagram's header.
pub const SEAL_LEN: usize = SEQUENCE_LEN + AEAD_TAG_LEN;
/// Clear fields of an OBJECT_INFO: everything before its Hash.
const INFO_CLEAR_LEN: usize = 36;

/// Key-derivation contexts (BLAKE3 `derive_key`), one per party.
const SENDER_CONTEXT: &str = "groupcast 2026-12 sealed datagram v1 sender";
const RECEIVER_CONTEXT: &str = "groupcast 2026-12 sealed datagram v1 receiver";

/// A channel key: 32 secret bytes that every party of the channel holds.
/// Wiped when dropped; never printed; compared in constant time.
#[derive(Clone)]
pub struct ChannelKey([u8; 32]);

impl PartialEq for ChannelKey {
    fn eq(&self, other: &Self) -> bool {
        let diff = (self.0.iter().zip(other.0.iter())).fold(0u8, |d, (a, b)| d | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl Eq for ChannelKey {}

impl ChannelKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key of one sealing party (protocol.md §16.2): the sender of
    /// `session`, or, with `receiver`, that receiver's feedback to it.
    fn party(&self, session: u64, receiver: Option<u64>) -> LessSafeKey {
        let mut material = [0u8; 48];
        material[..32].copy_from_slice(&self.0);
        material[32..40].copy_from_slice(&session.to_be_bytes());
        let (context, len) = match receiver {
            Some(r) => {
                material[40..].copy_from_slice(&r.to_be_bytes());
                (RECEIVER_CONTEXT, 48)
            }
            None => (SENDER_CONTEXT, 40),
        };
        let mut k = blake3::derive_key(context, &material[..len]);
        material.zeroize();
        let key = UnboundKey::new(&CHACHA20_POLY1305, &k).expect("a 32-byte ChaCha20 key");
        k.zeroize();
        LessSafeKey::new(key)
    }
}

impl Drop for ChannelKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelKey(..)")
    }
}

/// Why a datagram could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not sealed, on a channel with a key: only AUTH goes unsealed.
    #[error("not sealed on a sealed channel")]
    Unsealed,
    /// The AEAD tag did not verify: forged, modified, or another key's.
    #[error("seal does not open: forged, modified or sealed under another key")]
    BadSeal,
    /// The datagram failed a check of its header or length.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// The bytes of a datagram of type `ty` and plain length `len` (CRC
/// included) that stay clear: the header and the fields that route and
/// decode it (protocol.md §16.1). `None` for AUTH, which is never sealed,
/// and for unknown types.
pub fn clear_len(ty: u8, len: usize) -> Option<usize> {
    match ty {
        t if t == PacketType::Data as u8 => Some(DATA_HEADER_LEN),
        t if t == PacketType::ObjectInfo as u8 => Some(INFO_CLEAR_LEN),
        t if t == PacketType::Probe as u8
            || t == PacketType::Nack as u8
            || t == PacketType::Status as u8 =>
        {
            len.checked_sub(CRC_LEN)
        }
        _ => None,
    }
}

/// Whose key seals a datagram of type `ty`: the receiver id of feedback
/// (at offset 16 of NACK and STATUS), `None` for the sender's types.
fn receiver_of(ty: u8, d: &[u8]) -> Option<u64> {
    let feedback = ty == PacketType::Nack as u8 || ty == PacketType::Status as u8;
    let id = d.get(HEADER_LEN..HEADER_LEN + 8)?;
    feedback.then(|| u64::from_be_bytes(id.try_into().expect("8 bytes")))
}

fn nonce(sequence: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&sequence.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals datagrams under one party's key, numbering them.
pub struct Sealer {
    key: ChannelKey,
    /// The party's key and the session it is for, as last derived.
    party: Option<(u64, Option<u64>, LessSafeKey)>,
    /// The next Sequence.
    next: u64,
}

impl Sealer {
    /// A sealer whose first Sequence is 0: for tests and examples. A
    /// sealer that may be restarted under the same ids needs a random start
    /// ([`Sealer::starting_at`]).
    pub fn new(key: ChannelKey) -> Self {
        Self::starting_at(key, 0)
    }

    /// A sealer whose first Sequence is `start`, drawn at random as its
    /// party starts (protocol.md §16.2): two runs under the same session
    /// and receiver ids then use the same nonce only if their ranges of
    /// Sequences meet, a chance of about their lengths over 2⁶⁴.
    pub fn starting_at(key: ChannelKey, start: u64) -> Self {
        Self {
            key,
            party: None,
            next: start,
        }
    }

    /// Seals the plain datagram in `buf[..len]` in place (protocol.md
    /// §16.2) and returns its sealed length, `len` + [`SEAL_LEN`]; `None` if
    /// `buf` has no room for the seal, or the datagram is not one that is
    /// sealed (AUTH, or not a well-formed plain datagram).
    pub fn seal(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let plain = buf.get(..len)?;
        let p = Packet::new_checked(plain).ok()?;
        let (ty, session) = (p.packet_type(), p.session());
        let clear = clear_len(ty, len)?;
        let receiver = receiver_of(ty, plain);
        let body_end = len - CRC_LEN;
        if clear > body_end || len + SEAL_LEN > buf.len().min(MAX_DATAGRAM) {
            return None;
        }
        // Wrapping: a run seals fewer than 2⁶⁴ datagrams.
        let sequence = self.next;
        self.next = self.next.wrapping_add(1);
        if self
            .party
            .as_ref()
            .is_none_or(|(s, r, _)| (*s, *r) != (session, receiver))
        {
            self.party = Some((session, receiver, self.key.party(session, receiver)));
        }
        let (_, _, key) = self.party.as_ref().expect("derived above");
        buf[field::FLAGS] = flags::ENCRYPTED;
        buf[field::TAG_LEN] = SEAL_LEN as u8;
        let (aad, rest) = buf.split_at_mut(clear);
        let tag = key
            .seal_in_place_separate_tag(
                nonce(sequence),
                Aad::from(&*aad),
                &mut rest[..body_end - clear],
            )
            .ok()?;
        let mut at = body_end;
        buf[at..at + SEQUENCE_LEN].copy_from_slice(&sequence.to_be_bytes());
        at += SEQUENCE_LEN;
        buf[at..at + AEAD_TAG_LEN].copy_from_slice(tag.as_ref());
        let sealed = at + AEAD_TAG_LEN + CRC_LEN;
        Packet::new_unchecked(&mut buf[..sealed]).fill_checksum();
        Some(sealed)
    }
}

/// Opens sealed datagrams of a channel.
pub struct Opener {
    /// The channel's keys: the one in use, and while the sender rotates,
    /// the next.
    keys: Vec<ChannelKey>,
    /// The last sender key derived: session, which key, the key. A receiver
    /// hears one session's datagrams in runs.
    sender: Option<(u64, usize, LessSafeKey)>,
    /// Which key opened each session's datagrams, of the last
    /// [`MAX_SESSIONS`] sessions: feedback to a session is sealed under it.
    sessions: Vec<(u64, usize)>,
}

/// Sessions whose key an [`Opener`] remembers.
const MAX_SESSIONS: usize = 64;

impl Opener {
    /// An opener for the channel of `key`.
    pub fn new(key: ChannelKey) -> Self {
        Self::with_keys(vec![key])
    }

    /// An opener that opens what any of `keys` sealed (protocol.md §16.3:
    /// rotation). Each key is one more try for a datagram that opens under
    /// none: keep the list short.
    pub fn with_keys(keys: Vec<ChannelKey>) -> Self {
        Self {
            keys,
            sender: None,
            sessions: Vec::new(),
        }
    }

    /// Which of the keys opened `session`'s datagrams last (0 if none did).
    pub fn key_of(&self, session: u64) -> usize {
        self.sessions
            .iter()
            .find(|(s, _)| *s == session)
            .map_or(0, |(_, k)| *k)
    }

    /// Remembers that key `k` opened `session`'s datagrams.
    fn opened_by(&mut self, session: u64, k: usize) {
        match self.sessions.iter_mut().find(|(s, _)| *s == session) {
            Some(e) => e.1 = k,
            None => {
                if self.sessions.len() >= MAX_SESSIONS {
                    self.sessions.remove(0);
                }
                self.sessions.push((session, k));
            }
        }
    }

    /// Opens `datagram` into `out` (protocol.md §16.3): the plain datagram,
    /// CRC and all; `false`, and `out` untouched, for an AUTH, which is
    /// never sealed and is taken as it is. A plain datagram of any other
    /// type is refused ([`SealError::Unsealed`]), as is one whose tag does
    /// not verify ([`SealError::BadSeal`]).
    ///
    /// The tag covers every byte but the CRC, so the CRC is checked only
    /// when the tag fails, to tell corruption (`bad_checksum`) from
    /// forgery; `out`'s CRC is left 0: read it with [`Repr::parse_opened`].
    ///
    /// [`Repr::parse_opened`]: super::Repr::parse_opened
    pub fn open_into(&mut self, datagram: &[u8], out: &mut Vec<u8>) -> Result<bool, SealError> {
        let p = Packet::new_unchecked(datagram);
        let sealed = p.check_header(false)?;
        let ty = p.packet_type();
        if !sealed {
            return if ty == PacketType::Auth as u8 {
                Ok(false)
            } else {
                Err(SealError::Unsealed)
            };
        }
        let len = datagram.len();
        // check_header: len ≥ HEADER_LEN + SEAL_LEN + CRC_LEN.
        let plain_len = len - SEAL_LEN;
        let body_end = plain_len - CRC_LEN;
        let clear = clear_len(ty, plain_len).ok_or(SealError::Wire(WireError::UnknownType))?;
        if clear > body_end {
            return Err(SealError::Wire(WireError::Truncated));
        }
        let sequence = u64::from_be_bytes(
            datagram[body_end..body_end + SEQUENCE_LEN]
                .try_into()
                .expect("8 bytes"),
        );
        let tag: [u8; AEAD_TAG_LEN] = datagram[body_end + SEQUENCE_LEN..len - CRC_LEN]
            .try_into()
            .expect("16 bytes");
        let session = p.session();
        let receiver = receiver_of(ty, datagram);
        // The key that opened the session last is tried first.
        let first = match (receiver, &self.sender) {
            (None, Some((s, k, _))) if *s == session => *k,
            _ => self.key_of(session),
        };
        let n = self.keys.len();
        let order = (first < n)
            .then_some(first)
            .into_iter()
            .chain((0..n).filter(|&k| k != first));
        let (mut opened, mut fresh) = (None, false);
        for k in order {
            // The cached key when it is this one; else derived aside, and
            // cached only if it opens (a forgery moves nothing).
            let cached = receiver.is_none()
                && self
                    .sender
                    .as_ref()
                    .is_some_and(|(s, i, _)| (*s, *i) == (session, k));
            let derived = (!cached).then(|| self.keys[k].party(session, receiver));
            let key = match &derived {
                Some(d) => d,
                None => &self.sender.as_ref().expect("cached").2,
            };
            out.clear();
            out.extend_from_slice(&datagram[..body_end]);
            let (aad, body) = out.split_at_mut(clear);
            let result = key.open_in_place_separate_tag(
                nonce(sequence),
                Aad::from(&*aad),
                Tag::from(tag),
                body,
                0..,
            );
            if result.is_ok() {
                if let (None, Some(d)) = (receiver, derived) {
                    self.sender = Some((session, k, d));
                    fresh = true;
                }
                opened = Some(k);
                break;
            }
        }
        let Some(k) = opened else {
            out.clear();
            return Err(if p.crc_ok() {
                SealError::BadSeal
            } else {
                SealError::Wire(WireError::BadChecksum)
            });
        };
        if fresh {
            self.opened_by(session, k);
        }
        out[field::FLAGS] = 0;
        out[field::TAG_LEN] = 0;
        out.extend_from_slice(&[0; CRC_LEN]);
        Ok(true)
    }

    /// [`Opener::open_into`] a new buffer, with its CRC: the plain datagram,
    /// or `None` for an AUTH. A datagram that does not open because its
    /// CRC is wrong is refused as [`WireError::BadChecksum`].
    pub fn open(&mut self, datagram: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        let mut out = Vec::new();
        if !self.open_into(datagram, &mut out)? {
            return Ok(None);
        }
        Packet::new_unchecked(&mut out[..]).fill_checksum();
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DataRepr, ProbeRepr, Repr, StatusRepr, WireMode};
    use groupcast_fec::{FecId, Oti};

    fn key(b: u8) -> ChannelKey {
        ChannelKey::from_bytes([b; 32])
    }

    fn data_packet(marker: &[u8]) -> Vec<u8> {
        let mut symbol = vec![0u8; 64];
        symbol[..marker.len()].copy_from_slice(marker);
        let d = Repr::Data(DataRepr {
            session: 7,
            object: 1,
            fec: FecId::NoCode,
            oti: Oti::for_object(640, 64, 1000, 4).unwrap(),
            sbn: 0,
            esi: 2,
            symbol: &symbol,
        });
        let mut buf = vec![0u8; d.buffer_len()];
        d.emit(&mut buf).unwrap();
        buf
    }

    fn probe() -> ProbeRepr {
        ProbeRepr {
            session: 7,
            timestamp_us: 1000,
            sent: 0,
            grtt_us: 10_000,
            objects: 1,
            progress: (0, 0),
            mode: WireMode::Hybrid,
            flags: 0,
            group_log2: 0,
            hops: 1,
            retained: 0,
            ask: Default::default(),
        }
    }

    #[test]
    fn sealed_data_hides_its_symbol_and_opens_to_the_same_datagram() {
        let plain = data_packet(b"MARKER-secret");
        let mut buf = plain.clone();
        buf.resize(plain.len() + SEAL_LEN, 0);
        let len = Sealer::new(key(1)).seal(&mut buf, plain.len()).unwrap();
        assert_eq!(len, plain.len() + SEAL_LEN);
        let sealed = &buf[..len];
        assert!(!sealed.windows(6).any(|w| w == b"MARKER"));
        assert_eq!(sealed[..4], plain[..4]);
        assert_eq!(
            sealed[HEADER_LEN..DATA_HEADER_LEN],
            plain[HEADER_LEN..DATA_HEADER_LEN]
        );
        // A plain parser refuses it, and says why.
        assert_eq!(Repr::parse(sealed), Err(WireError::Sealed));
        let mut opener = Opener::new(key(1));
        assert_eq!(opener.open(sealed), Ok(Some(plain.clone())));
    }

    #[test]
    fn a_wrong_key_a_flipped_bit_or_a_plain_datagram_does_not_open() {
        let plain = data_packet(b"x");
        let mut buf = plain.clone();
        buf.resize(plain.len() + SEAL_LEN, 0);
        let len = Sealer::new(key(1)).seal(&mut buf, plain.len()).unwrap();
        assert_eq!(
            Opener::new(key(2)).open(&buf[..len]),
            Err(SealError::BadSeal)
        );
        // Every clear and sealed byte is covered: a flip in the clear
        // fields, the ciphertext, the Sequence or the tag (CRC fixed up).
        for at in [20, DATA_HEADER_LEN + 3, len - 20, len - 5] {
            let mut forged = buf[..len].to_vec();
            forged[at] ^= 1;
            Packet::new_unchecked(&mut forged[..]).fill_checksum();
            assert_eq!(
                Opener::new(key(1)).open(&forged),
                Err(SealError::BadSeal),
                "byte {at}"
            );
        }
        assert_eq!(Opener::new(key(1)).open(&plain), Err(SealError::Unsealed));
    }

    #[test]
    fn each_datagram_has_its_own_sequence_and_feedback_its_own_key() {
        let plain = data_packet(b"same");
        let mut sealer = Sealer::new(key(1));
        let mut seal = || {
            let mut buf = plain.clone();
            buf.resize(plain.len() + SEAL_LEN, 0);
            let len = sealer.seal(&mut buf, plain.len()).unwrap();
            buf.truncate(len);
            buf
        };
        let (a, b) = (seal(), seal());
        assert_ne!(a[DATA_HEADER_LEN..], b[DATA_HEADER_LEN..]);
        // A PROBE is all clear fields, under the tag.
        let mut buf = vec![0u8; 128];
        let len = probe().write(&mut buf).unwrap();
        assert!(Sealer::new(key(1)).seal(&mut buf[..len + 3], len).is_none());
        let sealed = Sealer::new(key(1)).seal(&mut buf, len).unwrap();
        let opened = Opener::new(key(1)).open(&buf[..sealed]).unwrap().unwrap();
        assert_eq!(Repr::parse(&opened[..]), Ok(Repr::Probe(probe())));
        // Feedback is sealed under its receiver's key: the sender's does not
        // open a STATUS whose Receiver ID was changed.
        let status = StatusRepr {
            session: 7,
            receiver: 42,
            echo_us: 0,
            hold_us: 0,
            loss_ppm: 0,
            loss_span: 0,
            rate: 0,
            window: (0, 0),
            flags: 0,
        };
        let len = status.write(&mut buf).unwrap();
        let sealed = Sealer::new(key(1)).seal(&mut buf, len).unwrap();
        let mut other = buf[..sealed].to_vec();
        assert!(Opener::new(key(1)).open(&other).unwrap().is_some());
        other[HEADER_LEN + 7] ^= 1;
        Packet::new_unchecked(&mut other[..]).fill_checksum();
        assert_eq!(Opener::new(key(1)).open(&other), Err(SealError::BadSeal));
    }
}
