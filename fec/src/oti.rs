//! Object Transmission Information (RFC 6330 §3.3.2, §3.3.3) and block partitioning (§4.4.1).

use std::ops::Range;

/// Length of a serialised OTI: 8 bytes of common and 4 of scheme-specific information.
pub const OTI_LEN: usize = 12;
/// Largest transfer length F that RFC 6330 allows (errata 5548).
pub const MAX_TRANSFER_LENGTH: u64 = 942_574_504_275;
/// Largest number of source symbols in one block, K'max (RFC 6330 §5.1.2).
pub const MAX_SOURCE_SYMBOLS_PER_BLOCK: u32 = 56_403;
/// Largest number of source blocks that the 8-bit Z field and 8-bit SBN can name.
pub const MAX_SOURCE_BLOCKS: u32 = 255;
/// Largest encoding symbol id: the ESI is a 24-bit field.
pub const MAX_ESI: u32 = (1 << 24) - 1;

/// Why an OTI was refused. Each variant names the rule that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtiError {
    /// The buffer was not exactly [`OTI_LEN`] bytes.
    #[error("OTI must be {OTI_LEN} bytes, got {0}")]
    BadLength(usize),
    /// The reserved byte of the common OTI was not zero.
    #[error("OTI reserved byte is not zero")]
    Reserved,
    /// The symbol size T was zero.
    #[error("symbol size T is zero")]
    ZeroSymbolSize,
    /// The alignment Al was zero, or T is not a multiple of it.
    #[error("symbol size T={t} is not a positive multiple of alignment Al={al}")]
    Alignment {
        /// Symbol size.
        t: u16,
        /// Symbol alignment.
        al: u8,
    },
    /// F exceeded the RFC 6330 limit.
    #[error("transfer length {0} exceeds the RFC 6330 limit of {MAX_TRANSFER_LENGTH}")]
    TransferTooLong(u64),
    /// F exceeded the caller's maximum object size.
    #[error("transfer length {size} exceeds the configured maximum object size {max}")]
    ObjectTooLarge {
        /// Transfer length claimed.
        size: u64,
        /// Limit configured by the caller.
        max: u64,
    },
    /// Z was zero for a non-empty object, non-zero for an empty one, or above the limit.
    #[error("number of source blocks Z={z} is invalid for an object of {symbols} symbols")]
    SourceBlocks {
        /// Number of source blocks claimed.
        z: u32,
        /// Total source symbols, ceil(F/T).
        symbols: u64,
    },
    /// A block would hold more than [`MAX_SOURCE_SYMBOLS_PER_BLOCK`] symbols.
    #[error(
        "a source block would hold {0} symbols, above the limit of {MAX_SOURCE_SYMBOLS_PER_BLOCK}"
    )]
    BlockTooLarge(u64),
    /// The number of sub-blocks N was not 1; groupcast does not use sub-blocking.
    #[error("sub-blocks N={0} is not supported (must be 1)")]
    SubBlocks(u16),
}

/// RFC 6330 Object Transmission Information, validated.
///
/// Construct it with [`Oti::for_object`] (sender side) or [`Oti::parse`]
/// (network side). Either way every rule has been checked, so the accessors and
/// [`Oti::block`] never panic and the values are safe to hand to `raptorq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Oti {
    transfer_length: u64,
    symbol_size: u16,
    source_blocks: u32,
    alignment: u8,
}

/// One source block of an object: where it lies and how many source symbols it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockInfo {
    /// Source block number.
    pub sbn: u8,
    /// K: the number of source symbols in this block.
    pub source_symbols: u32,
    /// Byte offset of the block in the object.
    pub offset: u64,
    /// Bytes of object data in the block (K·T, less padding in the last block).
    pub len: u64,
}

impl BlockInfo {
    /// The block's byte range in the object, as `usize` for slicing in memory.
    pub fn range(&self) -> Range<usize> {
        self.offset as usize..(self.offset + self.len) as usize
    }
}

impl Oti {
    /// Chooses the OTI for an object of `size` bytes.
    ///
    /// `target_block_symbols` is the wanted K per block; the object is split into
    /// the fewest blocks of at most that many symbols, as evenly as RFC 6330's
    /// partition function allows. If that needs more than [`MAX_SOURCE_BLOCKS`]
    /// blocks, the blocks grow instead.
    pub fn for_object(
        size: u64,
        symbol_size: u16,
        target_block_symbols: u32,
        alignment: u8,
    ) -> Result<Self, OtiError> {
        if symbol_size == 0 {
            return Err(OtiError::ZeroSymbolSize);
        }
        if alignment == 0 || !symbol_size.is_multiple_of(alignment as u16) {
            return Err(OtiError::Alignment {
                t: symbol_size,
                al: alignment,
            });
        }
        if size > MAX_TRANSFER_LENGTH {
            return Err(OtiError::TransferTooLong(size));
        }
        let kt = size.div_ceil(symbol_size as u64);
        let target = target_block_symbols.clamp(1, MAX_SOURCE_SYMBOLS_PER_BLOCK) as u64;
        let z = kt
            .div_ceil(target)
            .max(kt.div_ceil(MAX_SOURCE_SYMBOLS_PER_BLOCK as u64))
            .min(MAX_SOURCE_BLOCKS as u64);
        let oti = Self {
            transfer_length: size,
            symbol_size,
            source_blocks: z as u32,
            alignment,
        };
        oti.validate(u64::MAX)?;
        Ok(oti)
    }

    /// Parses and validates 12 bytes of OTI, refusing objects above `max_object_size`.
    pub fn parse(bytes: &[u8], max_object_size: u64) -> Result<Self, OtiError> {
        let b: &[u8; OTI_LEN] = bytes
            .try_into()
            .map_err(|_| OtiError::BadLength(bytes.len()))?;
        let transfer_length = u64::from_be_bytes([0, 0, 0, b[0], b[1], b[2], b[3], b[4]]);
        if b[5] != 0 {
            return Err(OtiError::Reserved);
        }
        let symbol_size = u16::from_be_bytes([b[6], b[7]]);
        let sub_blocks = u16::from_be_bytes([b[9], b[10]]);
        if sub_blocks != 1 {
            return Err(OtiError::SubBlocks(sub_blocks));
        }
        let oti = Self {
            transfer_length,
            symbol_size,
            source_blocks: b[8] as u32,
            alignment: b[11],
        };
        oti.validate(max_object_size)?;
        Ok(oti)
    }

    fn validate(&self, max_object_size: u64) -> Result<(), OtiError> {
        let (f, t, z, al) = (
            self.transfer_length,
            self.symbol_size,
            self.source_blocks,
            self.alignment,
        );
        if t == 0 {
            return Err(OtiError::ZeroSymbolSize);
        }
        if al == 0 || !t.is_multiple_of(al as u16) {
            return Err(OtiError::Alignment { t, al });
        }
        if f > MAX_TRANSFER_LENGTH {
            return Err(OtiError::TransferTooLong(f));
        }
        if f > max_object_size {
            return Err(OtiError::ObjectTooLarge {
                size: f,
                max: max_object_size,
            });
        }
        let kt = f.div_ceil(t as u64);
        let z_ok = if kt == 0 {
            z == 0
        } else {
            (1..=MAX_SOURCE_BLOCKS).contains(&z) && z as u64 <= kt
        };
        if !z_ok {
            return Err(OtiError::SourceBlocks { z, symbols: kt });
        }
        if kt > 0 {
            let per_block = kt.div_ceil(z as u64);
            if per_block > MAX_SOURCE_SYMBOLS_PER_BLOCK as u64 {
                return Err(OtiError::BlockTooLarge(per_block));
            }
        }
        Ok(())
    }

    /// Serialises the OTI into its 12-byte wire form.
    pub fn to_bytes(&self) -> [u8; OTI_LEN] {
        let f = self.transfer_length.to_be_bytes();
        let t = self.symbol_size.to_be_bytes();
        [
            f[3],
            f[4],
            f[5],
            f[6],
            f[7],
            0,
            t[0],
            t[1],
            self.source_blocks as u8,
            0,
            1,
            self.alignment,
        ]
    }

    /// F: the object's length in bytes.
    pub fn transfer_length(&self) -> u64 {
        self.transfer_length
    }

    /// T: the symbol size in bytes.
    pub fn symbol_size(&self) -> u16 {
        self.symbol_size
    }

    /// Z: the number of source blocks (0 only for an empty object).
    pub fn source_blocks(&self) -> u32 {
        self.source_blocks
    }

    /// Al: the symbol alignment.
    pub fn alignment(&self) -> u8 {
        self.alignment
    }

    /// Kt: the total number of source symbols, ceil(F/T).
    pub fn total_source_symbols(&self) -> u64 {
        self.transfer_length.div_ceil(self.symbol_size as u64)
    }

    /// The largest K of any block of this object.
    pub fn max_block_symbols(&self) -> u32 {
        if self.source_blocks == 0 {
            0
        } else {
            self.total_source_symbols()
                .div_ceil(self.source_blocks as u64) as u32
        }
    }

    /// Describes block `sbn`, or `None` if the object has no such block.
    pub fn block(&self, sbn: u32) -> Option<BlockInfo> {
        if sbn >= self.source_blocks {
            return None;
        }
        let kt = self.total_source_symbols();
        let z = self.source_blocks as u64;
        // RFC 6330 §4.4.1.2: Partition[Kt, Z] = (KL, KS, ZL, ZS).
        let kl = kt.div_ceil(z);
        let ks = kt / z;
        let zl = kt - ks * z;
        let sbn64 = sbn as u64;
        let (k, first_symbol) = if sbn64 < zl {
            (kl, sbn64 * kl)
        } else {
            (ks, zl * kl + (sbn64 - zl) * ks)
        };
        let t = self.symbol_size as u64;
        let offset = first_symbol * t;
        let len = (k * t).min(self.transfer_length - offset);
        Some(BlockInfo {
            sbn: sbn as u8,
            source_symbols: k as u32,
            offset,
            len,
        })
    }

    /// Iterates over every block of the object in order.
    pub fn blocks(&self) -> impl Iterator<Item = BlockInfo> + '_ {
        (0..self.source_blocks).filter_map(|sbn| self.block(sbn))
    }

    pub(crate) fn to_raptorq(self) -> raptorq::ObjectTransmissionInformation {
        raptorq::ObjectTransmissionInformation::new(
            self.transfer_length,
            self.symbol_size,
            self.source_blocks as u8,
            1,
            self.alignment,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_matches_raptorq_serialisation() {
        let oti = Oti::for_object(10_000_000, 1200, 1000, 4).unwrap();
        let bytes = oti.to_bytes();
        assert_eq!(Oti::parse(&bytes, u64::MAX).unwrap(), oti);
        assert_eq!(oti.to_raptorq().serialize(), bytes);
        assert_eq!(oti.source_blocks(), 9);
    }

    #[test]
    fn blocks_cover_object_exactly() {
        for size in [0u64, 1, 1199, 1200, 1201, 5_000_000, 12_345_678] {
            let oti = Oti::for_object(size, 1200, 1000, 4).unwrap();
            let mut next = 0;
            for b in oti.blocks() {
                assert_eq!(b.offset, next);
                assert!(b.source_symbols >= 1 && b.source_symbols <= 1000);
                next += b.len;
            }
            assert_eq!(next, size);
        }
    }

    #[test]
    fn rejects_invalid() {
        let good = Oti::for_object(1_000_000, 1200, 1000, 4)
            .unwrap()
            .to_bytes();
        let mut zero_t = good;
        zero_t[6] = 0;
        zero_t[7] = 0;
        assert_eq!(Oti::parse(&zero_t, u64::MAX), Err(OtiError::ZeroSymbolSize));
        let mut bad_al = good;
        bad_al[11] = 7;
        assert!(matches!(
            Oti::parse(&bad_al, u64::MAX),
            Err(OtiError::Alignment { .. })
        ));
        let mut zero_al = good;
        zero_al[11] = 0;
        assert!(matches!(
            Oti::parse(&zero_al, u64::MAX),
            Err(OtiError::Alignment { .. })
        ));
        let mut zero_z = good;
        zero_z[8] = 0;
        assert!(matches!(
            Oti::parse(&zero_z, u64::MAX),
            Err(OtiError::SourceBlocks { .. })
        ));
        let mut huge = good;
        huge[0..5].copy_from_slice(&[0xff; 5]);
        assert!(matches!(
            Oti::parse(&huge, u64::MAX),
            Err(OtiError::TransferTooLong(_))
        ));
        assert!(matches!(
            Oti::parse(&good, 1000),
            Err(OtiError::ObjectTooLarge { .. })
        ));
        let mut one_block = good;
        one_block[6..8].copy_from_slice(&4u16.to_be_bytes());
        one_block[8] = 1;
        assert!(matches!(
            Oti::parse(&one_block, u64::MAX),
            Err(OtiError::BlockTooLarge(_))
        ));
        let mut sub = good;
        sub[10] = 2;
        assert_eq!(Oti::parse(&sub, u64::MAX), Err(OtiError::SubBlocks(2)));
        let mut reserved = good;
        reserved[5] = 1;
        assert_eq!(Oti::parse(&reserved, u64::MAX), Err(OtiError::Reserved));
        assert_eq!(
            Oti::parse(&good[..11], u64::MAX),
            Err(OtiError::BadLength(11))
        );
        // More blocks than symbols would leave blocks empty.
        let mut too_many = Oti::for_object(2400, 1200, 1000, 4).unwrap().to_bytes();
        too_many[8] = 3;
        assert!(matches!(
            Oti::parse(&too_many, u64::MAX),
            Err(OtiError::SourceBlocks { .. })
        ));
    }

    #[test]
    fn large_objects_grow_blocks_instead_of_exceeding_z() {
        let oti = Oti::for_object(2_000_000_000, 1200, 1000, 4).unwrap();
        assert_eq!(oti.source_blocks(), MAX_SOURCE_BLOCKS);
        assert!(oti.max_block_symbols() <= MAX_SOURCE_SYMBOLS_PER_BLOCK);
        assert!(Oti::for_object(MAX_TRANSFER_LENGTH, 4, 1000, 4).is_err());
    }
}
