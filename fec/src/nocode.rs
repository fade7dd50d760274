//! Compact No-Code: replication without FEC, the ARQ baseline.

use crate::codec::{check_block_data, check_symbol, copy_source_symbol};
use crate::{BlockDecoder, BlockEncoder, BlockInfo, Codec, FecError, Oti, Push};

/// Replication: a block's only symbols are its K source symbols, and a receiver
/// needs every one of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCode;

impl Codec for NoCode {
    fn esi_limit(&self, k: u32) -> u32 {
        k
    }

    fn encoder(
        &self,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> Result<Box<dyn BlockEncoder>, FecError> {
        check_block_data(block, data)?;
        Ok(Box::new(NoCodeEncoder {
            data: data.to_vec(),
            k: block.source_symbols,
            t: oti.symbol_size() as usize,
        }))
    }

    fn decoder(&self, oti: &Oti, block: &BlockInfo) -> Result<Box<dyn BlockDecoder>, FecError> {
        Ok(Box::new(NoCodeDecoder {
            oti: *oti,
            block: *block,
            buf: Vec::new(),
            have: vec![false; block.source_symbols as usize],
            received: 0,
            done: false,
            taken: false,
        }))
    }
}

struct NoCodeEncoder {
    data: Vec<u8>,
    k: u32,
    t: usize,
}

impl BlockEncoder for NoCodeEncoder {
    fn write_symbol(&mut self, esi: u32, out: &mut [u8]) -> Result<(), FecError> {
        if esi >= self.k {
            return Err(FecError::EsiOutOfRange { esi, limit: self.k });
        }
        if out.len() != self.t {
            return Err(FecError::SymbolLength {
                got: out.len(),
                expected: self.t,
            });
        }
        copy_source_symbol(&self.data, esi, out);
        Ok(())
    }
}

struct NoCodeDecoder {
    oti: Oti,
    block: BlockInfo,
    /// Allocated on the first symbol, so idle decoders cost nothing.
    buf: Vec<u8>,
    have: Vec<bool>,
    received: u32,
    done: bool,
    taken: bool,
}

impl BlockDecoder for NoCodeDecoder {
    fn push(&mut self, esi: u32, symbol: &[u8]) -> Result<Push, FecError> {
        check_symbol(&self.oti, symbol)?;
        let k = self.block.source_symbols;
        if esi >= k {
            return Err(FecError::EsiOutOfRange { esi, limit: k });
        }
        if self.done {
            return Ok(Push::AlreadyDecoded);
        }
        if self.have[esi as usize] {
            return Ok(Push::Duplicate);
        }
        let t = symbol.len();
        if self.buf.is_empty() {
            self.buf = vec![0; k as usize * t];
        }
        self.buf[esi as usize * t..][..t].copy_from_slice(symbol);
        self.have[esi as usize] = true;
        self.received += 1;
        if self.received == k {
            self.done = true;
            self.buf.truncate(self.block.len as usize);
            return Ok(Push::Decoded);
        }
        Ok(Push::Stored)
    }

    fn missing(&self) -> Option<Vec<(u32, u32)>> {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        if self.done {
            return Some(runs);
        }
        for (esi, have) in self.have.iter().enumerate() {
            if *have {
                continue;
            }
            match runs.last_mut() {
                Some((first, n)) if *first + *n == esi as u32 => *n += 1,
                _ => runs.push((esi as u32, 1)),
            }
        }
        Some(runs)
    }

    fn needed(&self) -> u32 {
        self.block.source_symbols - self.received
    }

    fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    fn is_decoded(&self) -> bool {
        self.done
    }

    fn take_decoded(&mut self) -> Option<Vec<u8>> {
        if !self.done || self.taken {
            return None;
        }
        self.taken = true;
        Some(std::mem::take(&mut self.buf))
    }
}
