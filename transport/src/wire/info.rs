//! OBJECT_INFO packets (protocol.md §6): an object's OTI, hash and name.

use groupcast_fec::{FecId, Oti};

use super::{
    CRC_LEN, INFO_HEADER_LEN, MAX_DATAGRAM, MAX_NAME_LEN, PacketType, WireError, put, read_u16,
    read_u32,
};

/// OBJECT_INFO field offsets, from the start of the datagram.
pub mod field {
    use std::ops::Range;
    /// Object id.
    pub const OBJECT: Range<usize> = 16..20;
    /// FEC Encoding ID.
    pub const FEC: usize = 20;
    /// Reserved, zero.
    pub const RESERVED: usize = 21;
    /// Length of the name in bytes.
    pub const NAME_LEN: Range<usize> = 22..24;
    /// RFC 6330 OTI.
    pub const OTI: Range<usize> = 24..36;
    /// BLAKE3 hash of the whole object.
    pub const HASH: Range<usize> = 36..68;
    /// The name, UTF-8: from here to the CRC trailer.
    pub const NAME: usize = 68;
}

/// A view of an OBJECT_INFO datagram. Getters cannot panic once
/// [`InfoPacket::new_checked`] passed.
#[derive(Debug, Clone)]
pub struct InfoPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> InfoPacket<T> {
    /// Wraps a buffer without checks; getters may then panic.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds the fixed fields and a trailer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < INFO_HEADER_LEN + CRC_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Object id.
    pub fn object(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::OBJECT)
    }

    /// FEC Encoding ID, as sent.
    pub fn fec_id(&self) -> u8 {
        self.buffer.as_ref()[field::FEC]
    }

    /// The reserved byte, which must be zero.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }

    /// The Name Len field.
    pub fn name_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NAME_LEN)
    }

    /// The OTI's 12 bytes.
    pub fn oti(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OTI]
    }

    /// The object's BLAKE3 hash.
    pub fn hash(&self) -> [u8; 32] {
        super::be(self.buffer.as_ref(), field::HASH)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> InfoPacket<&'a T> {
    /// The name bytes: everything between the fixed fields and the trailer.
    pub fn name(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        &b[field::NAME..b.len() - CRC_LEN]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> InfoPacket<T> {
    /// Sets the object id.
    pub fn set_object(&mut self, object: u32) {
        put(self.buffer.as_mut(), field::OBJECT, &object.to_be_bytes());
    }

    /// Sets the FEC Encoding ID and clears the reserved byte.
    pub fn set_fec(&mut self, fec: FecId) {
        let b = self.buffer.as_mut();
        b[field::FEC] = fec as u8;
        b[field::RESERVED] = 0;
    }

    /// Sets the OTI.
    pub fn set_oti(&mut self, oti: &Oti) {
        put(self.buffer.as_mut(), field::OTI, &oti.to_bytes());
    }

    /// Sets the hash.
    pub fn set_hash(&mut self, hash: &[u8; 32]) {
        put(self.buffer.as_mut(), field::HASH, hash);
    }

    /// Sets the name and its length; the view must be exactly long enough.
    pub fn set_name(&mut self, name: &[u8]) {
        let b = self.buffer.as_mut();
        put(b, field::NAME_LEN, &(name.len() as u16).to_be_bytes());
        let end = b.len() - CRC_LEN;
        b[field::NAME..end].copy_from_slice(name);
    }
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
    /// Validates an OBJECT_INFO packet's fields.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        session: u64,
        p: &InfoPacket<&'a T>,
    ) -> Result<Self, WireError> {
        if p.reserved() != 0 {
            return Err(WireError::Reserved);
        }
        let fec = FecId::from_u8(p.fec_id()).ok_or(WireError::UnknownFec)?;
        let name = p.name();
        if p.name_len() as usize > MAX_NAME_LEN || name.len() != p.name_len() as usize {
            return Err(WireError::NameLength);
        }
        let oti = Oti::parse(p.oti(), u64::MAX)?;
        let name = std::str::from_utf8(name).map_err(|_| WireError::NameEncoding)?;
        Ok(Self {
            session,
            object: p.object(),
            fec,
            oti,
            hash: p.hash(),
            name,
        })
    }

    /// Bytes the datagram takes.
    pub fn buffer_len(&self) -> usize {
        INFO_HEADER_LEN + self.name.len() + CRC_LEN
    }

    /// Writes the fields into a view of exactly [`InfoRepr::buffer_len`]
    /// bytes, refusing a name [`InfoRepr::parse`] would.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut InfoPacket<T>,
    ) -> Result<(), WireError> {
        if self.name.len() > MAX_NAME_LEN {
            return Err(WireError::NameLength);
        }
        if p.buffer.as_ref().len() != self.buffer_len() {
            return Err(WireError::BufferTooSmall);
        }
        p.set_object(self.object);
        p.set_fec(self.fec);
        p.set_oti(&self.oti);
        p.set_hash(&self.hash);
        p.set_name(self.name.as_bytes());
        Ok(())
    }

    /// Writes the whole datagram into `buf` and returns its length.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if self.name.len() > MAX_NAME_LEN {
            return Err(WireError::NameLength);
        }
        let len = self.buffer_len();
        if len > MAX_DATAGRAM {
            return Err(WireError::Oversized);
        }
        let buf = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        super::Packet::new_unchecked(&mut *buf).set_header(PacketType::ObjectInfo, self.session);
        self.emit(&mut InfoPacket::new_unchecked(&mut *buf))?;
        super::Packet::new_unchecked(buf).fill_checksum();
        Ok(len)
    }
}
