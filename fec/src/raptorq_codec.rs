//! RaptorQ (RFC 6330) on the `raptorq` crate's per-block API.

use std::collections::HashSet;

use raptorq::{EncodingPacket, PayloadId, SourceBlockDecoder, SourceBlockEncoder};

use crate::codec::{check_block_data, check_symbol, copy_source_symbol};
use crate::{BlockDecoder, BlockEncoder, BlockInfo, Codec, FecError, MAX_ESI, Oti, Push};

/// H, the number of HDPC symbols of a block of `k` source symbols (RFC 6330
/// §5.6, Table 2: the row of the smallest K' ≥ `k`), as a step function of
/// `k`: 10 up to K' = 1032, one more at each of six later rows.
pub fn raptorq_hdpc_symbols(k: u32) -> u32 {
    // The last K' of Table 2 with each H from 10 to 15.
    const LAST_K_PRIME: [u32; 6] = [1032, 10787, 20564, 30346, 39980, 49978];
    10 + LAST_K_PRIME.iter().take_while(|&&last| k > last).count() as u32
}

/// Symbols beyond K + H that make a RaptorQ decoding cheap. With at least
/// K + H distinct symbols, `raptorq` first solves without the HDPC rows
/// (GF(2) only), about a third less work than the full solve, and falls back
/// to the full solve when that system is short of rank: likely with exactly
/// K + H, rare a few symbols beyond. So [`raptorq_cheap_symbols`] asks for
/// this margin, and an attempt with fewer holds back the symbols beyond
/// K + H − 1 rather than pay for both solves.
pub const CHEAP_MARGIN: u32 = 3;

/// The distinct symbols from which a RaptorQ block of `k` source symbols
/// decodes cheaply (without GF(256) work): K + H + [`CHEAP_MARGIN`].
pub fn raptorq_cheap_symbols(k: u32) -> u32 {
    k + raptorq_hdpc_symbols(k) + CHEAP_MARGIN
}

/// RaptorQ: K source symbols, then up to 2^24 − K fresh repair symbols per block.
///
/// Any K+2 distinct symbols decode with near certainty (failure about 6·10⁻⁸;
/// with exactly K symbols about 0.5%).
#[derive(Debug, Clone, Copy, Default)]
pub struct RaptorQ;

impl Codec for RaptorQ {
    fn esi_limit(&self, _k: u32) -> u32 {
        MAX_ESI + 1
    }

    fn encoder(
        &self,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> Result<Box<dyn BlockEncoder>, FecError> {
        self.build(oti, block, data, true)
    }

    /// Without its own copy of the block (a third of an encoder's memory:
    /// raptorq keeps the source symbols and the intermediate ones besides).
    fn repair_encoder(
        &self,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> Result<Box<dyn BlockEncoder>, FecError> {
        self.build(oti, block, data, false)
    }

    fn decoder(&self, oti: &Oti, block: &BlockInfo) -> Result<Box<dyn BlockDecoder>, FecError> {
        Ok(Box::new(RaptorQDecoder {
            inner: None,
            oti: *oti,
            block: *block,
            source: Vec::new(),
            have_source: Vec::new(),
            source_count: 0,
            repair: Vec::new(),
            repair_seen: HashSet::new(),
            decoded: None,
            done: false,
        }))
    }
}

impl RaptorQ {
    fn build(
        &self,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
        keep_source: bool,
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
            data: keep_source.then(|| data.to_vec()),
            k: block.source_symbols,
            t,
        }))
    }
}

struct RaptorQEncoder {
    inner: SourceBlockEncoder,
    /// The block, to serve source symbols; `None` for a repair-only encoder.
    data: Option<Vec<u8>>,
    k: u32,
    t: usize,
}

impl BlockEncoder for RaptorQEncoder {
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
            let Some(data) = &self.data else {
                return Err(FecError::SourceNotHeld { esi });
            };
            copy_source_symbol(data, esi, out);
        } else {
            let packet = self.inner.repair_packets(esi - self.k, 1);
            out.copy_from_slice(packet[0].data());
        }
        Ok(())
    }
}

struct RaptorQDecoder {
    /// Created at the first decoding attempt; dropped once the block decodes.
    inner: Option<SourceBlockDecoder>,
    oti: Oti,
    block: BlockInfo,
    /// Source symbols go straight to their place in the block (K × T bytes,
    /// allocated at the first source symbol): when all K arrive, this is the
    /// decoded block, with no RaptorQ work and no further copy.
    source: Vec<u8>,
    have_source: Vec<bool>,
    source_count: u32,
    /// Repair symbols, held until a decoding attempt.
    repair: Vec<EncodingPacket>,
    repair_seen: HashSet<u32>,
    decoded: Option<Vec<u8>>,
    done: bool,
}

impl RaptorQDecoder {
    fn received_count(&self) -> u32 {
        self.source_count + self.repair_seen.len() as u32
    }

    fn finish(&mut self, mut data: Vec<u8>) -> Push {
        data.truncate(self.block.len as usize);
        self.decoded = Some(data);
        self.inner = None;
        self.source = Vec::new();
        self.have_source = Vec::new();
        self.repair = Vec::new();
        self.repair_seen = HashSet::new();
        self.done = true;
        Push::Decoded
    }
}

impl BlockDecoder for RaptorQDecoder {
    fn push(&mut self, esi: u32, symbol: &[u8]) -> Result<Push, FecError> {
        Ok(match self.store(esi, symbol)? {
            Push::Ready if self.attempt() => Push::Decoded,
            Push::Ready => Push::Stored,
            other => other,
        })
    }

    fn store(&mut self, esi: u32, symbol: &[u8]) -> Result<Push, FecError> {
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
        let k = self.block.source_symbols;
        let t = symbol.len();
        if esi < k {
            if self.have_source.is_empty() {
                self.have_source = vec![false; k as usize];
                self.source = vec![0; k as usize * t];
            }
            if std::mem::replace(&mut self.have_source[esi as usize], true) {
                return Ok(Push::Duplicate);
            }
            let at = esi as usize * t;
            self.source[at..at + t].copy_from_slice(symbol);
            self.source_count += 1;
            if self.source_count == k {
                let data = std::mem::take(&mut self.source);
                return Ok(self.finish(data));
            }
            // Only needed once a decoder exists (after a failed attempt):
            // the next attempt feeds it.
            if self.inner.is_some() {
                self.repair.push(EncodingPacket::new(
                    PayloadId::new(self.block.sbn, esi),
                    symbol.to_vec(),
                ));
            }
        } else {
            if !self.repair_seen.insert(esi) {
                return Ok(Push::Duplicate);
            }
            self.repair.push(EncodingPacket::new(
                PayloadId::new(self.block.sbn, esi),
                symbol.to_vec(),
            ));
        }
        Ok(if self.received_count() < k {
            Push::Stored
        } else {
            Push::Ready
        })
    }

    fn attempt(&mut self) -> bool {
        if self.done {
            return true;
        }
        let k = self.block.source_symbols;
        if self.received_count() < k || (self.inner.is_some() && self.repair.is_empty()) {
            return false;
        }
        let t = self.oti.symbol_size() as usize;
        // Between K + H and the cheap count, raptorq would try the GF(2)
        // solve, likely fail, and solve again: hold back what lies beyond
        // K + H − 1 (repair symbols, the last ones) for a later attempt.
        let got = self.received_count();
        let full_solve = k + raptorq_hdpc_symbols(k) - 1;
        let keep_back =
            if self.inner.is_none() && got > full_solve && got < raptorq_cheap_symbols(k) {
                ((got - full_solve) as usize).min(self.repair.len())
            } else {
                0
            };
        let held_back = self.repair.split_off(self.repair.len() - keep_back);
        let result = match self.inner.as_mut() {
            // A decoder from an earlier, failed attempt takes just the new symbols.
            Some(inner) => inner.decode(self.repair.drain(..)),
            None => {
                // First attempt: every symbol so far, in one batch.
                let mut inner = SourceBlockDecoder::new(
                    self.block.sbn,
                    &self.oti.to_raptorq(),
                    k as u64 * t as u64,
                );
                let sbn = self.block.sbn;
                let sources = self
                    .have_source
                    .iter()
                    .enumerate()
                    .filter(|(_, have)| **have)
                    .map(|(i, _)| {
                        EncodingPacket::new(
                            PayloadId::new(sbn, i as u32),
                            self.source[i * t..(i + 1) * t].to_vec(),
                        )
                    })
                    .collect::<Vec<_>>();
                let packets = sources.into_iter().chain(self.repair.drain(..));
                let r = inner.decode(packets);
                self.inner = Some(inner);
                r
            }
        };
        // Rarely, K + H − 1 symbols do not decode: the held-back ones are
        // then fed at once (with them the block may decode, and no further
        // symbol need come).
        let result = match (result, self.inner.as_mut()) {
            (None, Some(inner)) if !held_back.is_empty() => inner.decode(held_back),
            (result, _) => result,
        };
        match result {
            Some(data) => {
                self.finish(data);
                true
            }
            None => false,
        }
    }

    fn cheap(&self) -> bool {
        let k = self.block.source_symbols;
        self.done || self.source_count == k || self.received_count() >= raptorq_cheap_symbols(k)
    }

    fn needed(&self) -> u32 {
        if self.done {
            return 0;
        }
        let k = self.block.source_symbols;
        let got = self.received_count();
        if got < k { k - got } else { 1 }
    }

    fn buffered_bytes(&self) -> usize {
        let t = self.oti.symbol_size() as usize;
        self.source.len() + self.repair.len() * t + self.decoded.as_ref().map_or(0, Vec::len)
    }

    fn is_decoded(&self) -> bool {
        self.done
    }

    fn take_decoded(&mut self) -> Option<Vec<u8>> {
        self.decoded.take()
    }
}
