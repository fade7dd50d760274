//! DATA packets (protocol.md §5): one encoding symbol, self-describing.

use groupcast_fec::{FecId, Oti, codec_for};

use super::{
    CRC_LEN, DATA_HEADER_LEN, MAX_DATAGRAM, PacketType, WireError, put, read_u24, read_u32,
};

/// DATA field offsets, from the start of the datagram (after the common
/// header, `wire::field`).
pub mod field {
    use std::ops::Range;
    /// Object id.
    pub const OBJECT: Range<usize> = 16..20;
    /// FEC Encoding ID.
    pub const FEC: usize = 20;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 21..24;
    /// RFC 6330 OTI.
    pub const OTI: Range<usize> = 24..36;
    /// Source block number.
    pub const SBN: usize = 36;
    /// Encoding symbol id, 24 bits.
    pub const ESI: Range<usize> = 37..40;
    /// The symbol: from here to the CRC trailer.
    pub const SYMBOL: usize = 40;
}

/// A view of a DATA datagram, after smoltcp's `wire::udp::Packet`. Its
/// getters read named fields and cannot panic once [`DataPacket::new_checked`]
/// passed; they do not validate values ([`DataRepr::parse`] does).
#[derive(Debug, Clone)]
pub struct DataPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DataPacket<T> {
    /// Wraps a buffer without checks; getters may then panic.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds the fixed fields and a trailer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < DATA_HEADER_LEN + CRC_LEN {
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

    /// The reserved bytes, which must be zero.
    pub fn reserved(&self) -> &[u8] {
        &self.buffer.as_ref()[field::RESERVED]
    }

    /// The OTI's 12 bytes.
    pub fn oti(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OTI]
    }

    /// Source block number.
    pub fn sbn(&self) -> u8 {
        self.buffer.as_ref()[field::SBN]
    }

    /// Encoding symbol id.
    pub fn esi(&self) -> u32 {
        read_u24(self.buffer.as_ref(), field::ESI)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> DataPacket<&'a T> {
    /// The symbol: every byte between the fixed fields and the trailer.
    pub fn symbol(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        &b[field::SYMBOL..b.len() - CRC_LEN]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DataPacket<T> {
    /// Sets the object id.
    pub fn set_object(&mut self, object: u32) {
        put(self.buffer.as_mut(), field::OBJECT, &object.to_be_bytes());
    }

    /// Sets the FEC Encoding ID and clears the reserved bytes.
    pub fn set_fec(&mut self, fec: FecId) {
        let b = self.buffer.as_mut();
        b[field::FEC] = fec as u8;
        b[field::RESERVED].fill(0);
    }

    /// Sets the OTI.
    pub fn set_oti(&mut self, oti: &Oti) {
        put(self.buffer.as_mut(), field::OTI, &oti.to_bytes());
    }

    /// Sets the source block number.
    pub fn set_sbn(&mut self, sbn: u8) {
        self.buffer.as_mut()[field::SBN] = sbn;
    }

    /// Sets the encoding symbol id (its low 24 bits).
    pub fn set_esi(&mut self, esi: u32) {
        put(self.buffer.as_mut(), field::ESI, &esi.to_be_bytes()[1..]);
    }

    /// The symbol, to be written in place.
    pub fn symbol_mut(&mut self) -> &mut [u8] {
        let b = self.buffer.as_mut();
        let end = b.len() - CRC_LEN;
        &mut b[field::SYMBOL..end]
    }
}

/// A parsed DATA packet. Every field has been validated: the OTI is sound, the
/// SBN names a block, the ESI is in range for the FEC scheme, and the symbol is
/// exactly T bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRepr<'a> {
    /// Session id.
    pub session: u64,
    /// Object id within the session.
    pub object: u32,
    /// FEC scheme.
    pub fec: FecId,
    /// The object's transmission information.
    pub oti: Oti,
    /// Source block number.
    pub sbn: u8,
    /// Encoding symbol id.
    pub esi: u32,
    /// The symbol, T bytes.
    pub symbol: &'a [u8],
}

impl<'a> DataRepr<'a> {
    /// Validates a DATA packet's fields (its common header was checked by
    /// [`super::Packet::check`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        session: u64,
        p: &DataPacket<&'a T>,
    ) -> Result<Self, WireError> {
        if p.reserved().iter().any(|&b| b != 0) {
            return Err(WireError::Reserved);
        }
        let fec = FecId::from_u8(p.fec_id()).ok_or(WireError::UnknownFec)?;
        let oti = Oti::parse(p.oti(), u64::MAX)?;
        let (sbn, esi, symbol) = (p.sbn(), p.esi(), p.symbol());
        check_symbol(fec, &oti, sbn, esi, symbol.len())?;
        Ok(Self {
            session,
            object: p.object(),
            fec,
            oti,
            sbn,
            esi,
            symbol,
        })
    }

    /// Bytes the datagram takes.
    pub fn buffer_len(&self) -> usize {
        DATA_HEADER_LEN + self.symbol.len() + CRC_LEN
    }

    /// Writes the fields and the symbol into a view of exactly
    /// [`DataRepr::buffer_len`] bytes, refusing what [`DataRepr::parse`]
    /// would. The caller then fills in the checksum
    /// ([`super::Packet::fill_checksum`]); [`DataRepr::write`] does it all.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut DataPacket<T>,
    ) -> Result<(), WireError> {
        check_symbol(self.fec, &self.oti, self.sbn, self.esi, self.symbol.len())?;
        if p.buffer.as_ref().len() != self.buffer_len() {
            return Err(WireError::BufferTooSmall);
        }
        set_fields(p, self.object, self.fec, &self.oti, self.sbn, self.esi);
        p.symbol_mut().copy_from_slice(self.symbol);
        Ok(())
    }

    /// Writes the whole datagram into `buf` and returns its length.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        if len > MAX_DATAGRAM {
            return Err(WireError::Oversized);
        }
        let buf = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        super::Packet::new_unchecked(&mut *buf).set_header(PacketType::Data, self.session);
        self.emit(&mut DataPacket::new_unchecked(&mut *buf))?;
        super::Packet::new_unchecked(buf).fill_checksum();
        Ok(len)
    }
}

/// What parse refuses in a symbol's coordinates: an SBN past the last block,
/// an ESI the scheme never produces, a symbol of other than T bytes.
fn check_symbol(fec: FecId, oti: &Oti, sbn: u8, esi: u32, len: usize) -> Result<(), WireError> {
    let block = oti.block(sbn as u32).ok_or(WireError::SbnOutOfRange)?;
    if esi >= codec_for(fec).esi_limit(block.source_symbols) || esi >= 1 << 24 {
        return Err(WireError::EsiOutOfRange);
    }
    if len != oti.symbol_size() as usize {
        return Err(WireError::SymbolLength);
    }
    Ok(())
}

fn set_fields<T: AsRef<[u8]> + AsMut<[u8]>>(
    p: &mut DataPacket<T>,
    object: u32,
    fec: FecId,
    oti: &Oti,
    sbn: u8,
    esi: u32,
) {
    p.set_object(object);
    p.set_fec(fec);
    p.set_oti(oti);
    p.set_sbn(sbn);
    p.set_esi(esi);
}

/// The sender's hot path: writes a DATA packet's header fields into
/// `buf[..len]` (`len` = [`DATA_HEADER_LEN`] + T + [`CRC_LEN`]) and returns a
/// view whose symbol the caller writes in place, saving a copy. Call
/// [`finish_data`] once the symbol is written.
pub(crate) fn start_data<'b>(
    buf: &'b mut [u8],
    session: u64,
    object: u32,
    fec: FecId,
    oti: &Oti,
    sbn: u8,
    esi: u32,
) -> DataPacket<&'b mut [u8]> {
    let len = DATA_HEADER_LEN + oti.symbol_size() as usize + CRC_LEN;
    let buf = &mut buf[..len];
    super::Packet::new_unchecked(&mut *buf).set_header(PacketType::Data, session);
    let mut p = DataPacket::new_unchecked(buf);
    set_fields(&mut p, object, fec, oti, sbn, esi);
    p
}

/// Completes a packet started by [`start_data`]; returns its length.
pub(crate) fn finish_data(p: DataPacket<&mut [u8]>) -> usize {
    let buf = p.into_inner();
    let len = buf.len();
    super::Packet::new_unchecked(buf).fill_checksum();
    len
}
