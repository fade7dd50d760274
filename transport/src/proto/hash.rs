//! Out-of-order BLAKE3 verification with bounded memory.
//!
//! Blocks decode in any order, but BLAKE3 is a tree hash: the object is cut into
//! aligned [`UNIT`]-byte subtrees whose chaining values are computed as soon as
//! each unit's bytes are all present, then merged along BLAKE3's left-balanced
//! tree at the end. The result equals `blake3::hash(object)` (what `b3sum`
//! prints), yet the verifier never holds the object: only the units that straddle
//! a block boundary and have not been completed yet, plus 33 bytes per unit.

use std::collections::HashMap;

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

/// Size of one hashed subtree: a power-of-two multiple of BLAKE3's 1 KiB chunk.
pub const UNIT: u64 = 64 * 1024;

struct Partial {
    buf: Vec<u8>,
    filled: u64,
}

/// Hashes an object whose byte ranges arrive in any order, each exactly once.
pub(crate) struct TreeHasher {
    len: u64,
    cvs: Vec<Option<ChainingValue>>,
    partial: HashMap<u64, Partial>,
    /// For objects of at most one unit, which BLAKE3 hashes without a tree.
    small: Option<Partial>,
    buffered: usize,
}

impl TreeHasher {
    pub(crate) fn new(len: u64) -> Self {
        let units = len.div_ceil(UNIT);
        if units <= 1 {
            Self {
                len,
                cvs: Vec::new(),
                partial: HashMap::new(),
                small: Some(Partial {
                    buf: Vec::new(),
                    filled: 0,
                }),
                buffered: 0,
            }
        } else {
            Self {
                len,
                cvs: vec![None; units as usize],
                partial: HashMap::new(),
                small: None,
                buffered: 0,
            }
        }
    }

    /// Bytes held for units that are not complete yet.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Adds `data` found at `offset`. The caller guarantees each byte is written
    /// once and lies within the object. `cvs` may hold the chaining values of
    /// some of the units `data` holds whole, computed already ([`unit_cvs`],
    /// for example on a decode worker): those are taken as they are, the
    /// rest are hashed here.
    pub(crate) fn write_with(&mut self, offset: u64, data: &[u8], cvs: &[UnitCv]) {
        debug_assert!(offset + data.len() as u64 <= self.len);
        if let Some(small) = self.small.as_mut() {
            if small.buf.is_empty() {
                small.buf = vec![0; self.len as usize];
                self.buffered += small.buf.len();
            }
            small.buf[offset as usize..][..data.len()].copy_from_slice(data);
            small.filled += data.len() as u64;
            return;
        }
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let unit = pos / UNIT;
            let ustart = unit * UNIT;
            let uend = (ustart + UNIT).min(self.len);
            let take_end = uend.min(end);
            let slice = &data[(pos - offset) as usize..(take_end - offset) as usize];
            if pos == ustart && take_end == uend {
                let known = cvs.iter().find(|c| c.0 == unit).map(|c| c.1);
                self.cvs[unit as usize] = Some(known.unwrap_or_else(|| unit_cv(ustart, slice)));
            } else {
                let p = self.partial.entry(unit).or_insert_with(|| Partial {
                    buf: vec![0; (uend - ustart) as usize],
                    filled: 0,
                });
                if p.filled == 0 {
                    self.buffered += p.buf.len();
                }
                p.buf[(pos - ustart) as usize..][..slice.len()].copy_from_slice(slice);
                p.filled += slice.len() as u64;
                if p.filled == uend - ustart {
                    let p = self.partial.remove(&unit).expect("present");
                    self.buffered -= p.buf.len();
                    self.cvs[unit as usize] = Some(unit_cv(ustart, &p.buf));
                }
            }
            pos = take_end;
        }
    }

    /// The object's BLAKE3 hash, once every byte has been written.
    pub(crate) fn finish(&self) -> Option<blake3::Hash> {
        if let Some(small) = &self.small {
            return (small.filled == self.len).then(|| blake3::hash(&small.buf));
        }
        if self.cvs.iter().any(Option::is_none) {
            return None;
        }
        let split = blake3::hazmat::left_subtree_len(self.len);
        let left = self.subtree(0, split);
        let right = self.subtree(split, self.len);
        Some(merge_subtrees_root(&left, &right, Mode::Hash))
    }

    fn subtree(&self, start: u64, end: u64) -> ChainingValue {
        if end - start <= UNIT {
            return self.cvs[(start / UNIT) as usize].expect("checked complete");
        }
        let split = start + blake3::hazmat::left_subtree_len(end - start);
        merge_subtrees_non_root(
            &self.subtree(start, split),
            &self.subtree(split, end),
            Mode::Hash,
        )
    }
}

/// A unit's index in its object and its chaining value.
pub(crate) type UnitCv = (u64, ChainingValue);

/// The chaining values of the units that `data`, found at `offset` of an
/// object of `len` bytes, holds whole, for [`TreeHasher::write_with`]. None
/// for an object of one unit, which BLAKE3 hashes without a tree.
pub(crate) fn unit_cvs(len: u64, offset: u64, data: &[u8]) -> Vec<UnitCv> {
    if len <= UNIT {
        return Vec::new();
    }
    let end = (offset + data.len() as u64).min(len);
    let mut out = Vec::new();
    let mut unit = offset.div_ceil(UNIT);
    while unit * UNIT < end {
        let (ustart, uend) = (unit * UNIT, ((unit + 1) * UNIT).min(len));
        if uend > end {
            break;
        }
        let at = (ustart - offset) as usize;
        out.push((
            unit,
            unit_cv(ustart, &data[at..at + (uend - ustart) as usize]),
        ));
        unit += 1;
    }
    out
}

fn unit_cv(offset: u64, data: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(data);
    h.finalize_non_root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn equals_blake3_in_any_order_with_cvs_computed_apart_or_not(
            len in prop_oneof![0u64..3000, 60_000u64..70_000, 0u64..1_500_000],
            piece in 1u64..200_000,
            seed in any::<u64>(),
        ) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut data = vec![0u8; len as usize];
            rng.fill(&mut data[..]);
            let mut pieces: Vec<(u64, u64)> = (0..len.div_ceil(piece))
                .map(|i| (i * piece, ((i + 1) * piece).min(len)))
                .collect();
            pieces.shuffle(&mut rng);
            let mut h = TreeHasher::new(len);
            for (i, &(a, b)) in pieces.iter().enumerate() {
                if i + 1 < pieces.len() {
                    prop_assert!(h.finish().is_none());
                }
                // Every other piece comes with its whole units' chaining
                // values computed apart, as a decode worker does.
                let bytes = &data[a as usize..b as usize];
                if i % 2 == 0 {
                    h.write_with(a, bytes, &unit_cvs(len, a, bytes));
                } else {
                    h.write_with(a, bytes, &[]);
                }
            }
            prop_assert_eq!(h.finish(), Some(blake3::hash(&data)));
            if len > UNIT {
                prop_assert_eq!(h.buffered_bytes(), 0);
            }
        }
    }

    /// Chaining values computed apart are the ones used: with them, a block
    /// whose whole units are zeroed still hashes to the object's hash.
    #[test]
    fn chaining_values_computed_apart_stand_for_their_units() {
        let len = 5 * UNIT + 777;
        let data: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
        let (a, b) = (UNIT / 2, 4 * UNIT + 100);
        let cvs = unit_cvs(len, a, &data[a as usize..b as usize]);
        assert_eq!(cvs.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        let mut blanked = data[a as usize..b as usize].to_vec();
        blanked[(UNIT - a) as usize..(4 * UNIT - a) as usize].fill(0);
        let mut h = TreeHasher::new(len);
        h.write_with(0, &data[..a as usize], &[]);
        h.write_with(a, &blanked, &cvs);
        h.write_with(
            b,
            &data[b as usize..],
            &unit_cvs(len, b, &data[b as usize..]),
        );
        assert_eq!(h.finish(), Some(blake3::hash(&data)));
        assert!(
            unit_cvs(UNIT, 0, &data[..UNIT as usize]).is_empty(),
            "one unit: no tree"
        );
    }
}
