//! The groupcast wire format (`docs/protocol.md`).
//!
//! Every datagram is a 16-byte common header ([`Packet`], protocol.md §4.1),
//! a type-specific body, an optional authentication tag, and a CRC-32 trailer
//! over everything before it. [`Packet`] is a zero-copy view whose accessors
//! cannot panic once [`Packet::new_checked`] has passed; [`Repr`] is the parsed,
//! fully validated form, with [`Repr::parse`] and [`Repr::emit`].
//!
//! The objects of a feed carry frames ([`frame`], protocol.md §14.1) inside
//! them: a layout of their own, with its own view and [`FrameRepr`].
//!
//! Nothing in this module panics on any input: every length, offset and field
//! is checked before use.

pub mod auth;
pub mod data;
pub mod feedback;
pub mod frame;
pub mod info;
pub mod seal;

use std::ops::Range;

pub use auth::{AuthPacket, AuthRepr};
pub use data::{DataPacket, DataRepr};
pub use feedback::{
    NackEntry, NackPacket, NackRepr, ProbePacket, ProbeRepr, ReportAsk, StatusPacket, StatusRepr,
    WireMode,
};
pub use frame::{FrameError, FrameKind, FrameRepr};
pub use info::{InfoPacket, InfoRepr};

/// First two bytes of every datagram: ASCII "GC".
pub const MAGIC: u16 = 0x4743;
/// Protocol version carried in every datagram.
pub const VERSION: u8 = 1;
/// Length of the common header.
pub const HEADER_LEN: usize = 16;
/// Length of the CRC-32 trailer.
pub const CRC_LEN: usize = 4;
/// Length of a DATA packet before its symbol: common header and DATA fields.
pub const DATA_HEADER_LEN: usize = 40;
/// Bytes a DATA packet adds to its symbol (no authentication tag).
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + CRC_LEN;
/// Length of an OBJECT_INFO packet before its name.
pub const INFO_HEADER_LEN: usize = 68;
/// Longest object name an OBJECT_INFO packet may carry, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 1024;
/// Default largest datagram: the IPv6 minimum MTU (1280) less the IPv6 (40) and UDP (8) headers.
pub const DEFAULT_MAX_DATAGRAM: usize = 1232;
/// Largest datagram the format allows (the UDP payload limit over IPv6 without jumbograms).
pub const MAX_DATAGRAM: usize = 65_527;
/// Symbol alignment Al used by groupcast senders.
pub const SYMBOL_ALIGNMENT: u8 = 4;

/// Packet type field values (protocol.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    /// One encoding symbol of one block of one object.
    Data = 1,
    /// Announces an object: its OTI, BLAKE3 hash and name.
    ObjectInfo = 2,
    /// PROBE (§13.1): the sender's clock, progress and GRTT, in nack and hybrid modes.
    Probe = 3,
    /// NACK (§13.2): a receiver's requests for repair.
    Nack = 4,
    /// STATUS (§13.3): a receiver's window, loss, rate and RTT echo.
    Status = 5,
    /// AUTH (protocol.md §15.1).
    Auth = 6,
}

impl PacketType {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Data),
            2 => Some(Self::ObjectInfo),
            3 => Some(Self::Probe),
            4 => Some(Self::Nack),
            5 => Some(Self::Status),
            6 => Some(Self::Auth),
            _ => None,
        }
    }
}

/// Flag bits of the common header (protocol.md §4.3): ENCRYPTED marks a
/// sealed datagram (§16); AUTH_TAG is reserved, and refused.
pub mod flags {
    /// Reserved for a per-datagram authentication tag: refused.
    pub const AUTH_TAG: u8 = 0x01;
    /// The body after the type-specific header is encrypted.
    pub const ENCRYPTED: u8 = 0x02;
}

/// Field offsets of the common header.
pub mod field {
    use std::ops::Range;
    /// Magic, "GC".
    pub const MAGIC: Range<usize> = 0..2;
    /// Version.
    pub const VERSION: usize = 2;
    /// Packet type.
    pub const TYPE: usize = 3;
    /// Flags.
    pub const FLAGS: usize = 4;
    /// Authentication tag length.
    pub const TAG_LEN: usize = 5;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 6..8;
    /// Session id.
    pub const SESSION: Range<usize> = 8..16;
}

/// Why a datagram was refused by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than a header and trailer, or than its type's fixed fields.
    #[error("datagram truncated")]
    Truncated,
    /// Longer than [`MAX_DATAGRAM`] or the receiver's limit.
    #[error("datagram too large")]
    Oversized,
    /// Does not start with the magic: not a groupcast datagram.
    #[error("bad magic")]
    BadMagic,
    /// Another protocol version.
    #[error("unsupported protocol version")]
    UnsupportedVersion,
    /// The CRC-32 trailer does not match.
    #[error("checksum mismatch")]
    BadChecksum,
    /// An unknown packet type.
    #[error("unknown packet type")]
    UnknownType,
    /// Flags or an authentication tag that this version does not support.
    #[error("unsupported flags")]
    UnsupportedFlags,
    /// Sealed under a channel key (protocol.md §16): only a holder of the
    /// key opens it.
    #[error("sealed: the channel is encrypted")]
    Sealed,
    /// A reserved field was not zero.
    #[error("reserved field not zero")]
    Reserved,
    /// A PROBE's mode is neither nack nor hybrid.
    #[error("unknown mode")]
    UnknownMode,
    /// A flag bit that the packet type does not define (PROBE, STATUS, a NACK entry).
    #[error("unknown flag bits")]
    UnknownFlags,
    /// A field's value beyond its range (a PROBE's group size, a STATUS's loss).
    #[error("field value out of range")]
    OutOfRange,
    /// A fixed-length packet of another length, or bytes after a NACK's last entry.
    #[error("packet length does not match its fields")]
    BadLength,
    /// More NACK entries than [`feedback::MAX_NACK_ENTRIES`] (or ranges than 65,535).
    #[error("too many NACK entries")]
    TooManyEntries,
    /// A NACK range of no ESIs or past 2^24, or ranges that do not add up to the need.
    #[error("bad NACK range")]
    BadRange,
    /// The OTI failed validation.
    #[error("invalid OTI: {0}")]
    Oti(#[from] groupcast_fec::OtiError),
    /// An unknown FEC Encoding ID.
    #[error("unknown FEC encoding id")]
    UnknownFec,
    /// The SBN names no block of the object.
    #[error("source block number out of range")]
    SbnOutOfRange,
    /// The ESI lies outside what the FEC scheme produces for the block.
    #[error("encoding symbol id out of range")]
    EsiOutOfRange,
    /// The symbol's length is not the OTI's T.
    #[error("symbol length does not match T")]
    SymbolLength,
    /// The object name is too long, or does not fit the datagram.
    #[error("object name too long")]
    NameLength,
    /// The object name is not UTF-8.
    #[error("object name is not UTF-8")]
    NameEncoding,
    /// The emit buffer is too small for the packet.
    #[error("buffer too small")]
    BufferTooSmall,
}

/// A zero-copy view of a datagram's common header and trailer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks. Accessors may then panic; use
    /// [`Packet::new_checked`] on untrusted input.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`Packet::check`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self { buffer };
        p.check()?;
        Ok(p)
    }

    /// Checks length, magic, version, checksum, flags and reserved fields, in that
    /// order. After it succeeds no accessor can panic. A sealed datagram
    /// (protocol.md §16) is refused as [`WireError::Sealed`]: only
    /// [`seal::Opener`] reads it.
    pub fn check(&self) -> Result<(), WireError> {
        match self.check_header(true)? {
            true => Err(WireError::Sealed),
            false => Ok(()),
        }
    }

    /// [`Packet::check`], but a sealed datagram passes too: whether it is
    /// sealed (Flags ENCRYPTED with a Tag Len of [`seal::SEAL_LEN`], and
    /// room for the seal). The CRC is checked only if `crc`: not for a
    /// datagram whose every byte something stronger covers (a seal, or a
    /// hash an AUTH lists), which is checked before it is read.
    pub fn check_header(&self, crc: bool) -> Result<bool, WireError> {
        let b = self.buffer.as_ref();
        if b.len() < 2 {
            return Err(WireError::Truncated);
        }
        if u16::from_be_bytes([b[0], b[1]]) != MAGIC {
            return Err(WireError::BadMagic);
        }
        if b.len() > MAX_DATAGRAM {
            return Err(WireError::Oversized);
        }
        if b.len() < HEADER_LEN + CRC_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VERSION] != VERSION {
            return Err(WireError::UnsupportedVersion);
        }
        if crc && !self.crc_ok() {
            return Err(WireError::BadChecksum);
        }
        let sealed = match (b[field::FLAGS], b[field::TAG_LEN] as usize) {
            (0, 0) => false,
            (flags::ENCRYPTED, seal::SEAL_LEN)
                if b.len() >= HEADER_LEN + seal::SEAL_LEN + CRC_LEN =>
            {
                true
            }
            _ => return Err(WireError::UnsupportedFlags),
        };
        if b[field::RESERVED] != [0, 0] {
            return Err(WireError::Reserved);
        }
        Ok(sealed)
    }

    /// Whether the CRC trailer matches (the length is at least a header's
    /// and a CRC's).
    pub fn crc_ok(&self) -> bool {
        let b = self.buffer.as_ref();
        let (body, crc) = b.split_at(b.len().saturating_sub(CRC_LEN));
        crc.len() == CRC_LEN && crc32fast::hash(body).to_be_bytes() == crc
    }

    /// The packet type byte.
    pub fn packet_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        read_u64(self.buffer.as_ref(), field::SESSION)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the common header: magic, version, `ty`, no flags, no tag,
    /// reserved zero, `session`.
    pub fn set_header(&mut self, ty: PacketType, session: u64) {
        let b = self.buffer.as_mut();
        put(b, field::MAGIC, &MAGIC.to_be_bytes());
        b[field::VERSION] = VERSION;
        b[field::TYPE] = ty as u8;
        b[field::FLAGS] = 0;
        b[field::TAG_LEN] = 0;
        b[field::RESERVED].fill(0);
        self.set_session(session);
    }

    /// Sets the session id.
    pub fn set_session(&mut self, session: u64) {
        put(self.buffer.as_mut(), field::SESSION, &session.to_be_bytes());
    }

    /// Writes the CRC-32 trailer over everything before it (the buffer's last
    /// [`CRC_LEN`] bytes).
    pub fn fill_checksum(&mut self) {
        let b = self.buffer.as_mut();
        let n = b.len() - CRC_LEN;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A parsed, validated datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repr<'a> {
    /// A DATA packet (protocol.md §5).
    Data(DataRepr<'a>),
    /// An OBJECT_INFO packet (protocol.md §6).
    ObjectInfo(InfoRepr<'a>),
    /// A PROBE.
    Probe(ProbeRepr),
    /// A NACK.
    Nack(NackRepr),
    /// A STATUS.
    Status(StatusRepr),
    /// An AUTH: a signed list of datagram hashes.
    Auth(AuthRepr<'a>),
}

impl<'a> Repr<'a> {
    /// Parses and validates a datagram: the common header ([`Packet::check`]),
    /// then the type's view and fields. Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        Self::parse_with(buf, true)
    }

    /// [`Repr::parse`] of a datagram [`seal::Opener::open_into`] opened:
    /// its CRC is not checked (the seal covered every byte, protocol.md
    /// §16.3).
    pub fn parse_opened(buf: &'a [u8]) -> Result<Self, WireError> {
        Self::parse_with(buf, false)
    }

    fn parse_with(buf: &'a [u8], crc: bool) -> Result<Self, WireError> {
        let packet = Packet::new_unchecked(buf);
        if packet.check_header(crc)? {
            return Err(WireError::Sealed);
        }
        let session = packet.session();
        let ty = PacketType::from_u8(packet.packet_type()).ok_or(WireError::UnknownType)?;
        match ty {
            PacketType::Data => {
                DataRepr::parse(session, &DataPacket::new_checked(buf)?).map(Repr::Data)
            }
            PacketType::ObjectInfo => {
                InfoRepr::parse(session, &InfoPacket::new_checked(buf)?).map(Repr::ObjectInfo)
            }
            PacketType::Probe => {
                ProbeRepr::parse(session, &ProbePacket::new_checked(buf)?).map(Repr::Probe)
            }
            PacketType::Nack => {
                NackRepr::parse(session, &NackPacket::new_checked(buf)?).map(Repr::Nack)
            }
            PacketType::Status => {
                StatusRepr::parse(session, &StatusPacket::new_checked(buf)?).map(Repr::Status)
            }
            PacketType::Auth => {
                AuthRepr::parse(session, &AuthPacket::new_checked(buf)?).map(Repr::Auth)
            }
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::Data(d) => d.buffer_len(),
            Repr::ObjectInfo(i) => i.buffer_len(),
            Repr::Probe(_) => feedback::PROBE_LEN,
            Repr::Nack(n) => n.buffer_len(),
            Repr::Status(_) => feedback::STATUS_LEN,
            Repr::Auth(a) => a.buffer_len(),
        }
    }

    /// Writes the whole datagram into `buf` and returns its length, refusing
    /// what [`Repr::parse`] would.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        match self {
            Repr::Data(d) => d.write(buf),
            Repr::ObjectInfo(i) => i.write(buf),
            Repr::Probe(p) => p.write(buf),
            Repr::Nack(n) => n.write(buf),
            Repr::Status(st) => st.write(buf),
            Repr::Auth(a) => a.write(buf),
        }
    }
}

/// A cursor over bytes that refuses to read past their end (after
/// s2n-codec's `DecoderBuffer`): the variable-length NACK list decodes
/// through it.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next `n` bytes, or [`WireError::Truncated`] if fewer are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// Whether every byte has been taken.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// The one family of field reads: the bytes of the named range `r`, as an
/// array (the range's length is N by the field's definition).
fn be<const N: usize>(b: &[u8], r: Range<usize>) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[r]);
    a
}

fn read_u16(b: &[u8], r: Range<usize>) -> u16 {
    u16::from_be_bytes(be(b, r))
}

fn read_u24(b: &[u8], r: Range<usize>) -> u32 {
    let [x, y, z] = be(b, r);
    u32::from_be_bytes([0, x, y, z])
}

fn read_u32(b: &[u8], r: Range<usize>) -> u32 {
    u32::from_be_bytes(be(b, r))
}

fn read_u64(b: &[u8], r: Range<usize>) -> u64 {
    u64::from_be_bytes(be(b, r))
}

/// The one field write: `bytes` into the named range `r`.
fn put(b: &mut [u8], r: Range<usize>, bytes: &[u8]) {
    b[r].copy_from_slice(bytes);
}
