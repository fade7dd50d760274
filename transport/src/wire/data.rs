//! DATA packets (protocol.md §5): one encoding symbol, self-describing.

use groupcast_fec::{FecId, Oti, codec_for};

use super::{
    CRC_LEN, DATA_HEADER_LEN, HEADER_LEN, MAX_DATAGRAM, PacketType, WireError, emit_crc,
    emit_header, read_u32,
};

/// DATA field offsets, relative to the end of the common header.
pub mod field {
    use std::ops::Range;
    /// Object id.
    pub const OBJECT: Range<usize> = 0..4;
    /// FEC Encoding ID.
    pub const FEC: usize = 4;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 5..8;
    /// RFC 6330 OTI.
    pub const OTI: Range<usize> = 8..20;
    /// Source block number.
    pub const SBN: usize = 20;
    /// Encoding symbol id, 24 bits.
    pub const ESI: Range<usize> = 21..24;
    /// The symbol.
    pub const SYMBOL: usize = 24;
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
    pub(super) fn parse(session: u64, body: &'a [u8]) -> Result<Self, WireError> {
        if body.len() < field::SYMBOL {
            return Err(WireError::Truncated);
        }
        if body[field::RESERVED] != [0, 0, 0] {
            return Err(WireError::Reserved);
        }
        let fec = FecId::from_u8(body[field::FEC]).ok_or(WireError::UnknownFec)?;
        let oti = Oti::parse(&body[field::OTI], u64::MAX)?;
        let sbn = body[field::SBN];
        let block = oti.block(sbn as u32).ok_or(WireError::SbnOutOfRange)?;
        let e = &body[field::ESI];
        let esi = u32::from_be_bytes([0, e[0], e[1], e[2]]);
        if esi >= codec_for(fec).esi_limit(block.source_symbols) {
            return Err(WireError::EsiOutOfRange);
        }
        let symbol = &body[field::SYMBOL..];
        if symbol.len() != oti.symbol_size() as usize {
            return Err(WireError::SymbolLength);
        }
        Ok(Self {
            session,
            object: read_u32(body, field::OBJECT),
            fec,
            oti,
            sbn,
            esi,
            symbol,
        })
    }

    /// Bytes [`DataRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        DATA_HEADER_LEN + self.symbol.len() + CRC_LEN
    }

    /// Writes the datagram into `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        if buf.len() < len || len > MAX_DATAGRAM {
            return Err(WireError::BufferTooSmall);
        }
        emit_data_header(
            buf,
            self.session,
            self.object,
            self.fec,
            &self.oti,
            self.sbn,
            self.esi,
        );
        buf[DATA_HEADER_LEN..][..self.symbol.len()].copy_from_slice(self.symbol);
        Ok(emit_crc(buf, DATA_HEADER_LEN + self.symbol.len()))
    }
}

/// Writes a DATA packet whose symbol the caller fills in afterwards, in place.
///
/// Returns the range of `buf` that holds the symbol. Call [`finish_data`] once the
/// symbol is written. This saves a copy on the sender's hot path.
pub(crate) fn emit_data_header(
    buf: &mut [u8],
    session: u64,
    object: u32,
    fec: FecId,
    oti: &Oti,
    sbn: u8,
    esi: u32,
) -> std::ops::Range<usize> {
    emit_header(buf, PacketType::Data, session);
    let body = &mut buf[HEADER_LEN..];
    body[field::OBJECT].copy_from_slice(&object.to_be_bytes());
    body[field::FEC] = fec as u8;
    body[field::RESERVED].fill(0);
    body[field::OTI].copy_from_slice(&oti.to_bytes());
    body[field::SBN] = sbn;
    body[field::ESI].copy_from_slice(&esi.to_be_bytes()[1..]);
    DATA_HEADER_LEN..DATA_HEADER_LEN + oti.symbol_size() as usize
}

/// Completes a packet started by [`emit_data_header`]; returns its length.
pub(crate) fn finish_data(buf: &mut [u8], oti: &Oti) -> usize {
    emit_crc(buf, DATA_HEADER_LEN + oti.symbol_size() as usize)
}
