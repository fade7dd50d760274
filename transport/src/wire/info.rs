//! OBJECT_INFO packets (protocol.md §6): an object's OTI, hash and name.

use groupcast_fec::{FecId, Oti};

use super::{
    CRC_LEN, HEADER_LEN, INFO_HEADER_LEN, MAX_DATAGRAM, MAX_NAME_LEN, PacketType, WireError,
    emit_crc, emit_header, read_u32,
};

/// OBJECT_INFO field offsets, relative to the end of the common header.
pub mod field {
    use std::ops::Range;
    /// Object id.
    pub const OBJECT: Range<usize> = 0..4;
    /// FEC Encoding ID.
    pub const FEC: usize = 4;
    /// Reserved, zero.
    pub const RESERVED: usize = 5;
    /// Length of the name in bytes.
    pub const NAME_LEN: Range<usize> = 6..8;
    /// RFC 6330 OTI.
    pub const OTI: Range<usize> = 8..20;
    /// BLAKE3 hash of the whole object.
    pub const HASH: Range<usize> = 20..52;
    /// The name, UTF-8.
    pub const NAME: usize = 52;
}

/// A parsed OBJECT_INFO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRepr<'a> {
    /// Session id.
    pub session: u64,
    /// Object id within the session.
    pub object: u32,
    /// FEC scheme.
    pub fec: FecId,
    /// The object's transmission information.
    pub oti: Oti,
    /// BLAKE3 hash of the object's bytes.
    pub hash: [u8; 32],
    /// The object's name (a file name or relative path), possibly empty.
    pub name: &'a str,
}

impl<'a> InfoRepr<'a> {
    pub(super) fn parse(session: u64, body: &'a [u8]) -> Result<Self, WireError> {
        if body.len() < field::NAME {
            return Err(WireError::Truncated);
        }
        if body[field::RESERVED] != 0 {
            return Err(WireError::Reserved);
        }
        let fec = FecId::from_u8(body[field::FEC]).ok_or(WireError::UnknownFec)?;
        let name_len = u16::from_be_bytes([body[6], body[7]]) as usize;
        if name_len > MAX_NAME_LEN || body.len() != field::NAME + name_len {
            return Err(WireError::NameLength);
        }
        let oti = Oti::parse(&body[field::OTI], u64::MAX)?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&body[field::HASH]);
        let name =
            std::str::from_utf8(&body[field::NAME..]).map_err(|_| WireError::NameEncoding)?;
        Ok(Self {
            session,
            object: read_u32(body, field::OBJECT),
            fec,
            oti,
            hash,
            name,
        })
    }

    /// Bytes [`InfoRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        INFO_HEADER_LEN + self.name.len() + CRC_LEN
    }

    /// Writes the datagram into `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if self.name.len() > MAX_NAME_LEN {
            return Err(WireError::NameLength);
        }
        let len = self.buffer_len();
        if buf.len() < len || len > MAX_DATAGRAM {
            return Err(WireError::BufferTooSmall);
        }
        emit_header(buf, PacketType::ObjectInfo, self.session);
        let body = &mut buf[HEADER_LEN..];
        body[field::OBJECT].copy_from_slice(&self.object.to_be_bytes());
        body[field::FEC] = self.fec as u8;
        body[field::RESERVED] = 0;
        body[field::NAME_LEN].copy_from_slice(&(self.name.len() as u16).to_be_bytes());
        body[field::OTI].copy_from_slice(&self.oti.to_bytes());
        body[field::HASH].copy_from_slice(&self.hash);
        body[field::NAME..][..self.name.len()].copy_from_slice(self.name.as_bytes());
        Ok(emit_crc(buf, INFO_HEADER_LEN + self.name.len()))
    }
}
