//! A statistical model of RaptorQ for large simulations.
//!
//! Simulating 10,000 receivers each decoding 100 MB with real RaptorQ would
//! take hours; what a transport study needs from the code is *when* a block
//! decodes, not its bytes. [`Model`] reproduces RaptorQ's measured behaviour
//! (RFC 6330 §5.5, and the failure rate measured in `fec/tests/model.rs`):
//!
//! - a block whose K source symbols all arrived always decodes (the code is
//!   systematic);
//! - otherwise, with K + h distinct symbols (h ≥ 0) a decoding attempt fails
//!   with probability 256^−(h+1): 0.39% at K, 1.5·10⁻⁵ at K+1, 6·10⁻⁸ at K+2;
//! - a failed attempt is retried at the next new symbol, as the real decoder does.
//!
//! Whether an attempt fails is a deterministic function of the *set* of ESIs
//! held (an order-independent hash), as it is for the real code: two
//! receivers holding the same symbols fail or succeed together, and a run is
//! reproducible without a random generator.
//!
//! The model carries no data. Its encoder writes source symbols as they are
//! and zeros for repair symbols; its decoder keeps only which ESIs it has seen
//! and hands out an empty block. [`Codec::carries_data`] is false, so a
//! receiver using it reports decoded blocks without bytes and cannot verify
//! them. It is never named on the wire: a simulation opts in with
//! [`CodecSet::Model`], which serves it where the wire says RaptorQ.

use std::collections::HashSet;

use crate::codec::{check_block_data, copy_source_symbol};
use crate::{BlockDecoder, BlockEncoder, BlockInfo, Codec, FecError, FecId, MAX_ESI, Oti, Push};

/// The RaptorQ model: when a block decodes, from the symbols that arrived, as measured against the real code.
#[derive(Debug, Clone, Copy, Default)]
pub struct Model;

/// Which codecs the protocol core uses for the FEC schemes named on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CodecSet {
    /// The real codecs: [`crate::RaptorQ`] and [`crate::NoCode`].
    #[default]
    Real,
    /// [`Model`] where the wire says RaptorQ; no-code stays real (it is cheap
    /// and exact). For simulations only: nothing can be verified.
    Model,
}

impl CodecSet {
    /// The codec serving FEC scheme `id`.
    pub fn codec(self, id: FecId) -> &'static dyn Codec {
        match (self, id) {
            (Self::Model, FecId::RaptorQ) => &Model,
            _ => crate::codec_for(id),
        }
    }

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Real => "raptorq",
            Self::Model => "model",
        }
    }
}

/// The probability that a decoding attempt with `k + h` distinct symbols, not
/// all of them source symbols, fails: 256^−(h+1).
pub fn model_failure_probability(h: u32) -> f64 {
    256f64.powi(-(h as i32 + 1))
}

impl Codec for Model {
    fn esi_limit(&self, _k: u32) -> u32 {
        MAX_ESI + 1
    }

    fn carries_data(&self) -> bool {
        false
    }

    fn encoder(
        &self,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> Result<Box<dyn BlockEncoder>, FecError> {
        check_block_data(block, data)?;
        Ok(Box::new(ModelEncoder {
            k: block.source_symbols,
            t: oti.symbol_size() as usize,
            data: data.to_vec(),
        }))
    }

    fn decoder(&self, oti: &Oti, block: &BlockInfo) -> Result<Box<dyn BlockDecoder>, FecError> {
        let k = block.source_symbols;
        Ok(Box::new(ModelDecoder {
            k,
            t: oti.symbol_size() as usize,
            salt: splitmix64(((block.sbn as u64) << 32) | k as u64),
            source: vec![0u64; (k as usize).div_ceil(64)],
            source_count: 0,
            repair: HashSet::new(),
            set_hash: 0,
            next_attempt: k,
            state: State::Receiving,
        }))
    }
}

struct ModelEncoder {
    k: u32,
    t: usize,
    data: Vec<u8>,
}

impl BlockEncoder for ModelEncoder {
    fn write_symbol(&mut self, esi: u32, out: &mut [u8]) -> Result<(), FecError> {
        if out.len() != self.t {
            return Err(FecError::SymbolLength {
                got: out.len(),
                expected: self.t,
            });
        }
        if esi > MAX_ESI {
            return Err(FecError::EsiOutOfRange {
                esi,
                limit: MAX_ESI + 1,
            });
        }
        if esi < self.k {
            copy_source_symbol(&self.data, esi, out);
        } else {
            out.fill(0);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Receiving,
    Decoded,
    Taken,
}

struct ModelDecoder {
    k: u32,
    t: usize,
    salt: u64,
    /// Bitmap of source ESIs received.
    source: Vec<u64>,
    source_count: u32,
    /// Repair ESIs received.
    repair: HashSet<u32>,
    /// Wrapping sum of splitmix64(esi) over the distinct ESIs held: a hash of the set.
    set_hash: u64,
    /// Distinct symbols at which the next decoding attempt happens.
    next_attempt: u32,
    state: State,
}

impl ModelDecoder {
    fn received_count(&self) -> u32 {
        self.source_count + self.repair.len() as u32
    }

    /// A decoding attempt, as the real decoder makes one at K, K+1, ...
    fn attempt(&mut self) -> bool {
        let got = self.received_count();
        if self.source_count == self.k {
            return true;
        }
        let h = got - self.k;
        if h >= 8 {
            return true;
        }
        let u = splitmix64(self.set_hash ^ self.salt) as f64 / 2f64.powi(64);
        u >= model_failure_probability(h)
    }
}

impl BlockDecoder for ModelDecoder {
    fn push(&mut self, esi: u32, symbol: &[u8]) -> Result<Push, FecError> {
        if symbol.len() != self.t {
            return Err(FecError::SymbolLength {
                got: symbol.len(),
                expected: self.t,
            });
        }
        if esi > MAX_ESI {
            return Err(FecError::EsiOutOfRange {
                esi,
                limit: MAX_ESI + 1,
            });
        }
        if self.state != State::Receiving {
            return Ok(Push::AlreadyDecoded);
        }
        let new = if esi < self.k {
            let (w, b) = ((esi / 64) as usize, esi % 64);
            let seen = self.source[w] & (1 << b) != 0;
            self.source[w] |= 1 << b;
            self.source_count += u32::from(!seen);
            !seen
        } else {
            self.repair.insert(esi)
        };
        if !new {
            return Ok(Push::Duplicate);
        }
        self.set_hash = self
            .set_hash
            .wrapping_add(splitmix64(esi as u64 ^ self.salt));
        if self.received_count() < self.next_attempt {
            return Ok(Push::Stored);
        }
        if self.attempt() {
            self.state = State::Decoded;
            self.repair = HashSet::new();
            self.source = Vec::new();
            Ok(Push::Decoded)
        } else {
            self.next_attempt = self.received_count() + 1;
            Ok(Push::Stored)
        }
    }

    fn needed(&self) -> u32 {
        match self.state {
            State::Receiving => self
                .next_attempt
                .saturating_sub(self.received_count())
                .max(1),
            _ => 0,
        }
    }

    /// What the real decoder would hold: a source symbol array of K × T once a
    /// source symbol arrived, plus each repair symbol.
    fn buffered_bytes(&self) -> usize {
        if self.state != State::Receiving {
            return 0;
        }
        let source = if self.source_count > 0 {
            self.k as usize * self.t
        } else {
            0
        };
        source + self.repair.len() * self.t
    }

    fn is_decoded(&self) -> bool {
        self.state != State::Receiving
    }

    fn take_decoded(&mut self) -> Option<Vec<u8>> {
        if self.state == State::Decoded {
            self.state = State::Taken;
            Some(Vec::new())
        } else {
            None
        }
    }
}

/// splitmix64 (Steele, Lea and Flood): the output for state `z`, that is
/// the golden-ratio step and then the finaliser. The one copy every crate of
/// the workspace uses (the model codec, the receiver's backoff draws, the
/// simulator's link seeds and trace digests), so that seeded runs agree.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` reproducible pseudo-random bytes for `seed` (a splitmix64 stream):
/// the one object generator of the workspace's tests, benches and fuzz
/// targets.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut z = seed;
    while out.len() < len {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        out.extend_from_slice(&splitmix64(z).to_le_bytes());
    }
    out.truncate(len);
    out
}
