//! The codec traits shared by every FEC scheme.

use crate::{BlockInfo, Oti};

/// FEC Encoding IDs, as registered with IANA (RFC 5445, RFC 6330).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FecId {
    /// Compact No-Code (RFC 5445): replication only, no repair symbols.
    NoCode = 0,
    /// RaptorQ (RFC 6330).
    RaptorQ = 6,
}

impl FecId {
    /// Maps a wire value to a known FEC scheme.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::NoCode),
            6 => Some(Self::RaptorQ),
            _ => None,
        }
    }

    /// A short lower-case name, for output and command-line flags.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoCode => "nocode",
            Self::RaptorQ => "raptorq",
        }
    }
}

/// Why a codec refused a symbol or a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FecError {
    /// A symbol's length was not the OTI's T.
    #[error("symbol is {got} bytes, expected T={expected}")]
    SymbolLength {
        /// Length received.
        got: usize,
        /// The OTI's symbol size.
        expected: usize,
    },
    /// The ESI lies outside what this codec can produce for the block.
    #[error("ESI {esi} is out of range for this block (limit {limit})")]
    EsiOutOfRange {
        /// ESI received.
        esi: u32,
        /// Exclusive upper bound for the block.
        limit: u32,
    },
    /// A repair-only encoder ([`Codec::repair_encoder`]) was asked for a
    /// source symbol: copy it from the block.
    #[error("source symbol {esi} is not held by a repair-only encoder")]
    SourceNotHeld {
        /// ESI asked for.
        esi: u32,
    },
    /// The block data handed to an encoder did not match the block's length.
    #[error("block data is {got} bytes, expected {expected}")]
    BlockLength {
        /// Length given.
        got: usize,
        /// Length the OTI implies.
        expected: u64,
    },
}

/// Outcome of handing one symbol to a [`BlockDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The symbol was new and is buffered; the block is not decoded yet.
    Stored,
    /// The symbol had been seen before and was ignored.
    Duplicate,
    /// The block is decoded; collect it with [`BlockDecoder::take_decoded`].
    Decoded,
    /// The block was decoded earlier, so the symbol was not needed.
    AlreadyDecoded,
    /// From [`BlockDecoder::store`] only: the symbol is buffered, and enough
    /// are held for a decoding attempt, which [`BlockDecoder::attempt`] makes
    /// (on any thread: the decoder is `Send`).
    Ready,
}

/// A FEC scheme: makes per-block encoders and decoders. Object safe.
pub trait Codec: Send + Sync + std::fmt::Debug {
    /// Exclusive upper bound on the ESIs of a block of `k` source symbols.
    fn esi_limit(&self, k: u32) -> u32;

    /// Whether the scheme makes repair symbols (ESIs beyond K): RaptorQ does;
    /// with No-Code, loss is repaired by sending source symbols again.
    fn makes_repair(&self) -> bool {
        self.esi_limit(1) > 1
    }

    /// Whether decoders hand out the block's bytes. False only for
    /// [`crate::Model`], which models when blocks decode and carries no data.
    fn carries_data(&self) -> bool {
        true
    }

    /// An encoder for one block. `data` is the block's bytes (`block.len` of them;
    /// the codec pads the final symbol).
    fn encoder(
        &self,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> Result<Box<dyn BlockEncoder>, FecError>;

    /// An encoder for one block's repair symbols only, which may hold less:
    /// its `write_symbol` may refuse source ESIs ([`FecError::SourceNotHeld`]),
    /// which callers copy from the block themselves
    /// ([`crate::copy_source_symbol`]). By default, [`Codec::encoder`].
    fn repair_encoder(
        &self,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> Result<Box<dyn BlockEncoder>, FecError> {
        self.encoder(oti, block, data)
    }

    /// A decoder for one block.
    fn decoder(&self, oti: &Oti, block: &BlockInfo) -> Result<Box<dyn BlockDecoder>, FecError>;
}

/// Produces the encoding symbols of one block, by ESI, in any order.
pub trait BlockEncoder: Send {
    /// Writes symbol `esi` into `out`, which must be exactly T bytes long.
    fn write_symbol(&mut self, esi: u32, out: &mut [u8]) -> Result<(), FecError>;
}

/// Rebuilds one block from symbols that arrive in any order.
pub trait BlockDecoder: Send {
    /// Offers one symbol. Wrong lengths and ESIs are refused before any decoding
    /// work; duplicates are ignored.
    fn push(&mut self, esi: u32, symbol: &[u8]) -> Result<Push, FecError>;

    /// Offers one symbol like [`push`](Self::push), but leaves costly
    /// decoding work to [`attempt`](Self::attempt): where `push` would solve,
    /// this returns [`Push::Ready`]. Cheap completions (every source symbol
    /// present, a codec without solving) still return [`Push::Decoded`]. By
    /// default, `push`.
    fn store(&mut self, esi: u32, symbol: &[u8]) -> Result<Push, FecError> {
        self.push(esi, symbol)
    }

    /// Attempts to decode from the symbols held (after [`Push::Ready`]), and
    /// says whether the block is decoded. A failed attempt keeps what it
    /// learnt: more symbols, then another attempt, finish the job.
    fn attempt(&mut self) -> bool {
        self.is_decoded()
    }

    /// Whether an [`attempt`](Self::attempt) now would take the codec's
    /// cheapest way to decode, so that a caller who expects more symbols of
    /// the block soon gains nothing by waiting for them. RaptorQ solves
    /// without its GF(256) rows once it holds a few symbols beyond K + H
    /// ([`raptorq_cheap_symbols`](crate::raptorq_cheap_symbols)), at about
    /// two thirds of the work. By default, true.
    fn cheap(&self) -> bool {
        true
    }

    /// How many more symbols the decoder needs before its next decoding attempt
    /// (0 once decoded).
    fn needed(&self) -> u32;

    /// Bytes of symbol data this decoder holds.
    fn buffered_bytes(&self) -> usize;

    /// Whether the block has been decoded.
    fn is_decoded(&self) -> bool;

    /// Hands out the decoded block (exactly `block.len` bytes) once, after decoding.
    fn take_decoded(&mut self) -> Option<Vec<u8>>;

    /// The source ESIs still missing, as (first, count) runs in order, for
    /// codecs that need exactly those symbols (no-code). `None` for codecs
    /// that decode from any K symbols.
    fn missing(&self) -> Option<Vec<(u32, u32)>> {
        None
    }
}

/// The codec for a FEC Encoding ID.
pub fn codec_for(id: FecId) -> &'static dyn Codec {
    match id {
        FecId::NoCode => &crate::NoCode,
        FecId::RaptorQ => &crate::RaptorQ,
    }
}

pub(crate) fn check_block_data(block: &BlockInfo, data: &[u8]) -> Result<(), FecError> {
    if data.len() as u64 != block.len {
        return Err(FecError::BlockLength {
            got: data.len(),
            expected: block.len,
        });
    }
    Ok(())
}

pub(crate) fn check_symbol(oti: &Oti, symbol: &[u8]) -> Result<(), FecError> {
    let t = oti.symbol_size() as usize;
    if symbol.len() != t {
        return Err(FecError::SymbolLength {
            got: symbol.len(),
            expected: t,
        });
    }
    Ok(())
}

/// Copies source symbol `esi` of a block's `data` into `out` (T bytes),
/// zero-padding past the end of the data. With one sub-block (N = 1), as
/// groupcast uses, source symbols are the block's own bytes.
pub fn copy_source_symbol(data: &[u8], esi: u32, out: &mut [u8]) {
    let t = out.len();
    let start = (esi as usize * t).min(data.len());
    let end = (start + t).min(data.len());
    let n = end - start;
    out[..n].copy_from_slice(&data[start..end]);
    out[n..].fill(0);
}
