//! AUTH (protocol.md §15.1): a signed list of the hashes of datagrams a
//! sender sent. The view and the parsed form only; signing and verifying
//! are `proto::auth`'s.

use super::{
    CRC_LEN, HEADER_LEN, Packet, PacketType, WireError, put, read_u16, read_u32, read_u64,
};

/// Bytes of one datagram's hash in an AUTH: SHA-256, truncated.
pub const AUTH_HASH_LEN: usize = 12;
/// Bytes of an AUTH's signature (Ed25519, RFC 8032).
pub const AUTH_SIGNATURE_LEN: usize = 64;
/// Bytes of an AUTH before its hashes.
pub const AUTH_HEADER_LEN: usize = HEADER_LEN + 48;
/// Bytes of the signer's public key (Ed25519) an AUTH names.
pub const AUTH_KEY_LEN: usize = 32;
/// Bytes of an AUTH besides its hashes: header, signature, CRC.
pub const AUTH_OVERHEAD: usize = AUTH_HEADER_LEN + AUTH_SIGNATURE_LEN + CRC_LEN;
/// Most hashes one AUTH may carry.
pub const MAX_AUTH_HASHES: usize = 1024;

/// AUTH field offsets, from the start of the datagram.
pub mod field {
    use std::ops::Range;
    /// The AUTH's number in its session, from 0.
    pub const SEQUENCE: Range<usize> = 16..20;
    /// Hashes that follow.
    pub const COUNT: Range<usize> = 20..22;
    /// Bytes of each hash: 12.
    pub const HASH_LEN: usize = 22;
    /// Reserved, zero.
    pub const RESERVED: usize = 23;
    /// The sender's wall clock when it signed, microseconds since the Unix
    /// epoch; 0 if it has none.
    pub const TIME: Range<usize> = 24..32;
    /// The signer's public key.
    pub const KEY: Range<usize> = 32..64;
    /// The first hash.
    pub const HASHES: usize = 64;
}

/// The length of an AUTH of `count` hashes.
pub const fn auth_len(count: usize) -> usize {
    AUTH_OVERHEAD + count * AUTH_HASH_LEN
}

/// The hashes an AUTH may carry in a datagram of at most `max_datagram`
/// bytes (0 if none fits).
pub fn auth_capacity(max_datagram: usize) -> usize {
    (max_datagram.saturating_sub(AUTH_OVERHEAD) / AUTH_HASH_LEN).min(MAX_AUTH_HASHES)
}

/// A view of an AUTH datagram whose length matches its Count.
#[derive(Debug, Clone)]
pub struct AuthPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AuthPacket<T> {
    /// Wraps `buffer` without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer`, checking that its length is that of its Count.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < AUTH_OVERHEAD {
            return Err(WireError::Truncated);
        }
        let count = read_u16(b, field::COUNT) as usize;
        if count == 0 || count > MAX_AUTH_HASHES {
            return Err(WireError::OutOfRange);
        }
        if b.len() != auth_len(count) {
            return Err(WireError::BadLength);
        }
        Ok(Self { buffer })
    }

    /// The AUTH's number in its session.
    pub fn sequence(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// Hashes carried.
    pub fn count(&self) -> usize {
        read_u16(self.buffer.as_ref(), field::COUNT) as usize
    }

    /// Hash Len.
    pub fn hash_len(&self) -> u8 {
        self.buffer.as_ref()[field::HASH_LEN]
    }

    /// Reserved.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }

    /// Time, microseconds since the Unix epoch (0: none).
    pub fn time_us(&self) -> u64 {
        read_u64(self.buffer.as_ref(), field::TIME)
    }

    /// The signer's public key, as sent.
    pub fn key(&self) -> [u8; AUTH_KEY_LEN] {
        let mut k = [0; AUTH_KEY_LEN];
        k.copy_from_slice(&self.buffer.as_ref()[field::KEY]);
        k
    }

    /// The hashes, `count` × [`AUTH_HASH_LEN`] bytes.
    pub fn hashes(&self) -> &[u8] {
        let end = field::HASHES + self.count() * AUTH_HASH_LEN;
        &self.buffer.as_ref()[field::HASHES..end]
    }

    /// The bytes the signature covers: every byte before it.
    pub fn signed(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..b.len() - CRC_LEN - AUTH_SIGNATURE_LEN]
    }

    /// The signature.
    pub fn signature(&self) -> [u8; AUTH_SIGNATURE_LEN] {
        let b = self.buffer.as_ref();
        let at = b.len() - CRC_LEN - AUTH_SIGNATURE_LEN;
        let mut s = [0; AUTH_SIGNATURE_LEN];
        s.copy_from_slice(&b[at..at + AUTH_SIGNATURE_LEN]);
        s
    }
}

/// A parsed AUTH: what it says, not yet whether its signature holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRepr<'a> {
    /// Session.
    pub session: u64,
    /// The AUTH's number in its session.
    pub sequence: u32,
    /// The sender's wall clock when it signed, microseconds since the Unix
    /// epoch; 0 if it has none.
    pub time_us: u64,
    /// The public key the AUTH says it is signed with (Ed25519, as sent:
    /// not yet checked to be a point).
    pub key: [u8; AUTH_KEY_LEN],
    /// The hashes, each [`AUTH_HASH_LEN`] bytes, in order.
    pub hashes: &'a [u8],
    /// The bytes the signature covers (the datagram up to the signature;
    /// empty in a repr to be written).
    pub signed: &'a [u8],
    /// The signature over `signed` (protocol.md §15.1).
    pub signature: [u8; AUTH_SIGNATURE_LEN],
}

impl<'a> AuthRepr<'a> {
    /// Parses an AUTH view.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        session: u64,
        p: &AuthPacket<&'a T>,
    ) -> Result<Self, WireError> {
        if p.hash_len() as usize != AUTH_HASH_LEN {
            return Err(WireError::OutOfRange);
        }
        if p.reserved() != 0 {
            return Err(WireError::Reserved);
        }
        let b: &'a [u8] = p.buffer.as_ref();
        let end = field::HASHES + p.count() * AUTH_HASH_LEN;
        Ok(Self {
            session,
            sequence: p.sequence(),
            time_us: p.time_us(),
            key: p.key(),
            hashes: &b[field::HASHES..end],
            signed: &b[..end],
            signature: p.signature(),
        })
    }

    /// The hashes, one by one.
    pub fn each_hash(&self) -> impl Iterator<Item = [u8; AUTH_HASH_LEN]> + 'a {
        self.hashes.chunks_exact(AUTH_HASH_LEN).map(|h| {
            let mut a = [0; AUTH_HASH_LEN];
            a.copy_from_slice(h);
            a
        })
    }

    /// Bytes [`AuthRepr::write`] writes.
    pub fn buffer_len(&self) -> usize {
        auth_len(self.hashes.len() / AUTH_HASH_LEN)
    }

    /// Writes the whole datagram, with `signature`, into `buf` and returns
    /// its length. A signer writes it with any signature, signs the bytes
    /// [`AuthPacket::signed`] gives, and puts the signature in with
    /// [`set_auth_signature`].
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let count = self.hashes.len() / AUTH_HASH_LEN;
        if count == 0 || count > MAX_AUTH_HASHES || !self.hashes.len().is_multiple_of(AUTH_HASH_LEN)
        {
            return Err(WireError::OutOfRange);
        }
        let len = auth_len(count);
        let buf = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        put(buf, field::SEQUENCE, &self.sequence.to_be_bytes());
        put(buf, field::TIME, &self.time_us.to_be_bytes());
        put(buf, field::KEY, &self.key);
        put(buf, field::COUNT, &(count as u16).to_be_bytes());
        buf[field::HASH_LEN] = AUTH_HASH_LEN as u8;
        buf[field::RESERVED] = 0;
        let end = field::HASHES + self.hashes.len();
        buf[field::HASHES..end].copy_from_slice(self.hashes);
        Packet::new_unchecked(&mut *buf).set_header(PacketType::Auth, self.session);
        set_auth_signature(buf, &self.signature);
        Ok(len)
    }
}

/// Puts `signature` into the AUTH datagram `buf` (its whole length) and
/// fills its CRC again.
pub fn set_auth_signature(buf: &mut [u8], signature: &[u8; AUTH_SIGNATURE_LEN]) {
    let at = buf.len() - CRC_LEN - AUTH_SIGNATURE_LEN;
    buf[at..at + AUTH_SIGNATURE_LEN].copy_from_slice(signature);
    Packet::new_unchecked(buf).fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Repr;

    #[test]
    fn an_auth_round_trips_and_its_signed_part_ends_at_the_signature() {
        let hashes: Vec<u8> = (0..36u8).collect();
        let a = AuthRepr {
            session: 7,
            sequence: 3,
            time_us: 5,
            key: [7; AUTH_KEY_LEN],
            hashes: &hashes,
            signed: &[],
            signature: [9; AUTH_SIGNATURE_LEN],
        };
        let mut buf = [0u8; 256];
        let n = a.write(&mut buf).unwrap();
        assert_eq!(n, auth_len(3));
        assert_eq!(n, a.buffer_len());
        let Ok(Repr::Auth(b)) = Repr::parse(&buf[..n]) else {
            panic!("not an AUTH");
        };
        assert_eq!((b.session, b.sequence, b.hashes), (7, 3, &hashes[..]));
        assert_eq!(b.signature, [9; AUTH_SIGNATURE_LEN]);
        assert_eq!(b.signed, &buf[..64 + 36]);
        assert_eq!((b.time_us, b.key), (5, [7; AUTH_KEY_LEN]));
        assert_eq!(b.each_hash().nth(1).unwrap()[0], 12);
    }

    #[test]
    fn an_auth_whose_length_or_fields_do_not_match_is_refused() {
        let hashes = [1u8; 24];
        let a = AuthRepr {
            session: 1,
            sequence: 0,
            time_us: 0,
            key: [0; AUTH_KEY_LEN],
            hashes: &hashes,
            signed: &[],
            signature: [0; AUTH_SIGNATURE_LEN],
        };
        let mut buf = [0u8; 256];
        let n = a.write(&mut buf).unwrap();
        let reseal = |b: &mut [u8]| Packet::new_unchecked(b).fill_checksum();
        // One byte short of its Count.
        let mut short = buf[..n - 1].to_vec();
        reseal(&mut short);
        assert_eq!(Repr::parse(&short).unwrap_err(), WireError::BadLength);
        // Count 0, or a Hash Len other than 12, or Reserved set.
        for (at, v, want) in [
            (21, 0, WireError::OutOfRange),
            (22, 32, WireError::OutOfRange),
            (23, 1, WireError::Reserved),
        ] {
            let mut b = buf[..n].to_vec();
            b[at] = v;
            reseal(&mut b);
            assert_eq!(Repr::parse(&b).unwrap_err(), want, "byte {at}");
        }
        // No hashes, or a ragged list, cannot be written.
        let ragged = AuthRepr {
            hashes: &hashes[..20],
            ..a
        };
        assert_eq!(ragged.write(&mut buf), Err(WireError::OutOfRange));
        assert_eq!(auth_capacity(1232), 91);
        assert_eq!(auth_capacity(80), 0);
    }
}
