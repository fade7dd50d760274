//! RaptorQ (RFC 6330) on the `raptorq` crate's per-block API.

use std::collections::HashSet;

use raptorq::{EncodingPacket, PayloadId, SourceBlockDecoder, SourceBlockEncoder};

use crate::codec::{check_block_data, check_symbol, copy_source_symbol};
use crate::{BlockDecoder, BlockEncoder, BlockInfo, Codec, FecError, FecId, MAX_ESI, Oti, Push};

/// RaptorQ: K source symbols, then up to 2^24 − K fresh repair symbols per block.
///
/// Any K+2 distinct symbols decode with near certainty (failure about 6·10⁻⁸;
/// with exactly K symbols about 0.5%).
#[derive(Debug, Clone, Copy, Default)]
pub struct RaptorQ;

impl Codec for RaptorQ {
    fn id(&self) -> FecId {
        FecId::RaptorQ
    }

    fn esi_limit(&self, _k: u32) -> u32 {
        MAX_ESI + 1
    }

    fn encoder(
        &self,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> Result<Box<dyn BlockEncoder>, FecError> {
        check_block_data(block, data)?;
        let t = oti.symbol_size() as usize;
        let padded_len = block.source_symbols as usize * t;
        let inner = if data.len() == padded_len {
            SourceBlockEncoder::new(block.sbn, &oti.to_raptorq(), data)
        } else {
            let mut padded = vec![0; padded_len];
            padded[..data.len()].copy_from_slice(data);
            SourceBlockEncoder::new(block.sbn, &oti.to_raptorq(), &padded)
        };
        // Source symbols are the block's own bytes (N = 1), so keep a copy to
        // serve them without going through the encoder.
        Ok(Box::new(RaptorQEncoder {
            inner,
            data: data.to_vec(),
            k: block.source_symbols,
            t,
        }))
    }

    fn decoder(&self, oti: &Oti, block: &BlockInfo) -> Result<Box<dyn BlockDecoder>, FecError> {
        let t = oti.symbol_size() as u64;
        Ok(Box::new(RaptorQDecoder {
            inner: Some(SourceBlockDecoder::new(
                block.sbn,
                &oti.to_raptorq(),
                block.source_symbols as u64 * t,
            )),
            oti: *oti,
            block: *block,
            seen: HashSet::with_capacity(block.source_symbols as usize + 8),
            pending: Vec::new(),
            buffered: 0,
            decoded: None,
            done: false,
        }))
    }
}

struct RaptorQEncoder {
    inner: SourceBlockEncoder,
    data: Vec<u8>,
    k: u32,
    t: usize,
}

impl BlockEncoder for RaptorQEncoder {
    fn source_symbols(&self) -> u32 {
        self.k
    }

    fn write_symbol(&mut self, esi: u32, out: &mut [u8]) -> Result<(), FecError> {
        if esi > MAX_ESI {
            return Err(FecError::EsiOutOfRange {
                esi,
                limit: MAX_ESI + 1,
            });
        }
        if out.len() != self.t {
            return Err(FecError::SymbolLength {
                got: out.len(),
                expected: self.t,
            });
        }
        if esi < self.k {
            copy_source_symbol(&self.data, esi, out);
        } else {
            let packet = self.inner.repair_packets(esi - self.k, 1);
            out.copy_from_slice(packet[0].data());
        }
        Ok(())
    }
}

struct RaptorQDecoder {
    /// Dropped as soon as the block decodes, releasing its buffers.
    inner: Option<SourceBlockDecoder>,
    oti: Oti,
    block: BlockInfo,
    seen: HashSet<u32>,
    /// Symbols held back until K are present: raptorq gets them in one batch,
    /// which costs far less than one `decode` call per symbol.
    pending: Vec<EncodingPacket>,
    buffered: usize,
    decoded: Option<Vec<u8>>,
    done: bool,
}

impl BlockDecoder for RaptorQDecoder {
    fn push(&mut self, esi: u32, symbol: &[u8]) -> Result<Push, FecError> {
        check_symbol(&self.oti, symbol)?;
        if esi > MAX_ESI {
            return Err(FecError::EsiOutOfRange {
                esi,
                limit: MAX_ESI + 1,
            });
        }
        if self.done {
            return Ok(Push::AlreadyDecoded);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Ok(Push::AlreadyDecoded);
        };
        if !self.seen.insert(esi) {
            return Ok(Push::Duplicate);
        }
        self.buffered += symbol.len();
        let k = self.block.source_symbols;
        let packet = EncodingPacket::new(PayloadId::new(self.block.sbn, esi), symbol.to_vec());
        self.pending.push(packet);
        if (self.seen.len() as u32) < k {
            return Ok(Push::Stored);
        }
        match inner.decode(self.pending.drain(..)) {
            Some(mut data) => {
                data.truncate(self.block.len as usize);
                self.decoded = Some(data);
                self.inner = None;
                self.seen = HashSet::new();
                self.pending = Vec::new();
                self.buffered = 0;
                self.done = true;
                Ok(Push::Decoded)
            }
            None => Ok(Push::Stored),
        }
    }

    fn needed(&self) -> u32 {
        if self.done {
            return 0;
        }
        let k = self.block.source_symbols;
        let got = self.seen.len() as u32;
        if got < k { k - got } else { 1 }
    }

    fn received(&self) -> u32 {
        self.seen.len() as u32
    }

    fn buffered_bytes(&self) -> usize {
        self.buffered + self.decoded.as_ref().map_or(0, Vec::len)
    }

    fn is_decoded(&self) -> bool {
        self.done
    }

    fn take_decoded(&mut self) -> Option<Vec<u8>> {
        self.decoded.take()
    }
}
