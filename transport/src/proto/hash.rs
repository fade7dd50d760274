//! Out-of-order BLAKE3 verification with bounded memory.
//!
//! Blocks decode in any order, but BLAKE3 is a tree hash: the object is cut into
//! aligned [`UNIT`]-byte subtrees whose chaining values are computed as soon as
//! each unit's bytes are all present, then merged along BLAKE3's left-balanced
//! tree at the end. The result equals `blake3::hash(object)` (what `b3sum`
//! prints), yet the verifier never holds the object: only the units that straddle
//! a block boundary and have not been completed yet, plus 33 bytes per unit.
//!
//! An object that is a part of a larger file (protocol.md §11.1) is hashed as
//! the subtree it is in the file's tree: its chaining value at its offset
//! ([`TreeHasher::new_at`], [`part_cv`]), from which, part by part, the whole
//! file's hash follows ([`root_of_parts`]) without hashing the file again.

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
    /// Where the object starts in the file it is a part of: it is then
    /// hashed as that subtree, to its chaining value.
    base: Option<u64>,
    cvs: Vec<Option<ChainingValue>>,
    partial: HashMap<u64, Partial>,
    /// For objects of at most one unit, which BLAKE3 hashes without a tree.
    small: Option<Partial>,
    buffered: usize,
}

impl TreeHasher {
    pub(crate) fn new(len: u64) -> Self {
        Self::new_at(len, None)
    }

    /// A hasher for an object of `len` bytes found at `base` in a larger
    /// file ([`subtree_fits`] must hold): [`TreeHasher::finish`] gives its
    /// chaining value there. `None` hashes the object alone.
    pub(crate) fn new_at(len: u64, base: Option<u64>) -> Self {
        debug_assert!(base.is_none_or(|b| subtree_fits(b, len)));
        let units = len.div_ceil(UNIT);
        if units <= 1 {
            Self {
                len,
                base,
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
                base,
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
                let at = self.base.unwrap_or(0) + ustart;
                self.cvs[unit as usize] = Some(known.unwrap_or_else(|| unit_cv(at, slice)));
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
                    let at = self.base.unwrap_or(0) + ustart;
                    self.cvs[unit as usize] = Some(unit_cv(at, &p.buf));
                }
            }
            pos = take_end;
        }
    }

    /// The object's BLAKE3 hash (its chaining value at its base, for a
    /// part), once every byte has been written.
    pub(crate) fn finish(&self) -> Option<[u8; 32]> {
        if let Some(small) = &self.small {
            if small.filled != self.len {
                return None;
            }
            return Some(match self.base {
                None => *blake3::hash(&small.buf).as_bytes(),
                Some(base) => unit_cv(base, &small.buf),
            });
        }
        if self.cvs.iter().any(Option::is_none) {
            return None;
        }
        let cv = |i: usize| self.cvs[i].expect("checked complete");
        Some(match self.base {
            Some(_) => merge_subtree(UNIT, 0, self.len, &cv),
            None => merge_root(UNIT, self.len, &cv),
        })
    }
}

/// The chaining value of bytes `start..end` of a tree whose aligned
/// `unit`-byte subtrees (a power of two of chunks) have the chaining values
/// `cv(i)`, merged along BLAKE3's left-balanced tree.
fn merge_subtree(
    unit: u64,
    start: u64,
    end: u64,
    cv: &impl Fn(usize) -> ChainingValue,
) -> ChainingValue {
    if end - start <= unit {
        return cv((start / unit) as usize);
    }
    let split = start + blake3::hazmat::left_subtree_len(end - start);
    merge_subtrees_non_root(
        &merge_subtree(unit, start, split, cv),
        &merge_subtree(unit, split, end, cv),
        Mode::Hash,
    )
}

/// The hash of a file of `size` bytes (more than one `stretch`, a power of
/// two of chunks) from the chaining values `cv(i)` of its aligned stretches,
/// and, with `part_size` (a power of two, at least `stretch`, below `size`),
/// the chaining value of each of its parts: what [`PartHasher`] gives, from
/// stretches hashed apart (on several threads).
#[cfg(feature = "net")]
pub(crate) fn hash_from_stretches(
    stretch: u64,
    size: u64,
    part_size: Option<u64>,
    cv: &impl Fn(usize) -> ChainingValue,
) -> ([u8; 32], Vec<[u8; 32]>) {
    let parts = match part_size {
        Some(p) if size > p => (0..size.div_ceil(p))
            .map(|i| merge_subtree(stretch, i * p, ((i + 1) * p).min(size), cv))
            .collect(),
        _ => Vec::new(),
    };
    (merge_root(stretch, size, cv), parts)
}

/// The root hash of `len` bytes (more than one `unit`) from their units'
/// chaining values, as [`merge_subtree`] merges them.
fn merge_root(unit: u64, len: u64, cv: &impl Fn(usize) -> ChainingValue) -> [u8; 32] {
    let split = blake3::hazmat::left_subtree_len(len);
    let left = merge_subtree(unit, 0, split, cv);
    let right = merge_subtree(unit, split, len, cv);
    *merge_subtrees_root(&left, &right, Mode::Hash).as_bytes()
}

/// A unit's index in its object and its chaining value.
pub(crate) type UnitCv = (u64, ChainingValue);

/// The chaining values of the units that `data`, found at `offset` of an
/// object of `len` bytes (itself at `base` in a file, for a part), holds
/// whole, for [`TreeHasher::write_with`]. None for an object of one unit,
/// which BLAKE3 hashes without a tree.
pub(crate) fn unit_cvs(len: u64, base: Option<u64>, offset: u64, data: &[u8]) -> Vec<UnitCv> {
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
            unit_cv(
                base.unwrap_or(0) + ustart,
                &data[at..at + (uend - ustart) as usize],
            ),
        ));
        unit += 1;
    }
    out
}

/// The chaining value of `data` as the subtree at `offset` of a larger tree
/// (`offset` a multiple of a power of two of chunks at least `data`'s length).
pub(crate) fn unit_cv(offset: u64, data: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(data);
    h.finalize_non_root()
}

/// Whether `len` bytes at `base` are a subtree of BLAKE3's tree that a
/// chaining value can be taken of: not empty, starting on a chunk, and no
/// longer than a subtree there may be. (blake3's `hazmat` panics otherwise.)
/// Every part of a manifest whose part size is a power of two passes.
pub fn subtree_fits(base: u64, len: u64) -> bool {
    len > 0
        && base.is_multiple_of(blake3::CHUNK_LEN as u64)
        && blake3::hazmat::max_subtree_len(base).is_none_or(|max| len <= max)
}

/// Hashes the parts of a file one after another, each to its chaining value
/// at its offset, as a manifest lists them (§11.1): feed the file's bytes in
/// order, any slicing; [`PartHasher::finish`] gives the parts' chaining
/// values and the whole file's BLAKE3 hash, from one pass over the bytes.
pub struct PartHasher {
    part_size: u64,
    size: u64,
    at: u64,
    h: blake3::Hasher,
    parts: Vec<[u8; 32]>,
}

impl PartHasher {
    /// For a file of `size` bytes in parts of `part_size` (a power of two of
    /// at least 1024 bytes), larger than one part.
    pub fn new(size: u64, part_size: u64) -> Self {
        assert!(part_size.is_power_of_two() && part_size >= blake3::CHUNK_LEN as u64);
        assert!(size > part_size, "a file in parts is larger than one part");
        Self {
            part_size,
            size,
            at: 0,
            h: blake3::Hasher::new(),
            parts: Vec::with_capacity(size.div_ceil(part_size) as usize),
        }
    }

    /// The next bytes of the file; past its size, they are ignored.
    pub fn update(&mut self, mut bytes: &[u8]) {
        let left = self.size.saturating_sub(self.at);
        bytes = &bytes[..bytes.len().min(left.min(usize::MAX as u64) as usize)];
        while !bytes.is_empty() {
            let room = (self.part_size - self.at % self.part_size) as usize;
            let n = room.min(bytes.len());
            self.h.update(&bytes[..n]);
            self.at += n as u64;
            bytes = &bytes[n..];
            if self.at.is_multiple_of(self.part_size) || self.at == self.size {
                self.parts.push(self.h.finalize_non_root());
                self.h = blake3::Hasher::new();
                if self.at < self.size {
                    self.h.set_input_offset(self.at);
                }
            }
        }
    }

    /// The parts' chaining values and the file's hash; `None` if fewer than
    /// `size` bytes were fed.
    pub fn finish(self) -> Option<(Vec<[u8; 32]>, [u8; 32])> {
        if self.at != self.size {
            return None;
        }
        let root = root_of_parts(&self.parts, self.part_size, self.size)?;
        Some((self.parts, root))
    }
}

/// The BLAKE3 hash of a file of `size` bytes from the chaining values of its
/// parts of `part_size` bytes (a power of two), in order: `None` if there are
/// not exactly as many as the file has parts, or only one (a file of one
/// part is hashed alone, not in parts).
pub fn root_of_parts(parts: &[[u8; 32]], part_size: u64, size: u64) -> Option<[u8; 32]> {
    if !part_size.is_power_of_two()
        || size <= part_size
        || parts.len() as u64 != size.div_ceil(part_size)
    {
        return None;
    }
    Some(merge_root(part_size, size, &|i| parts[i]))
}

/// The chaining value of `data` as the part at `base` of a file (protocol.md
/// §11.1); `None` if it is no such subtree ([`subtree_fits`]).
pub fn part_cv(base: u64, data: &[u8]) -> Option<[u8; 32]> {
    subtree_fits(base, data.len() as u64).then(|| unit_cv(base, data))
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
                    h.write_with(a, bytes, &unit_cvs(len, None, a, bytes));
                } else {
                    h.write_with(a, bytes, &[]);
                }
            }
            prop_assert_eq!(h.finish(), Some(*blake3::hash(&data).as_bytes()));
            if len > UNIT {
                prop_assert_eq!(h.buffered_bytes(), 0);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        /// One pass over a file gives its parts' chaining values and its
        /// plain BLAKE3 hash; each part, verified alone at its offset in any
        /// order of pieces (as a receiver verifies a part's object), gives
        /// the same chaining value.
        #[test]
        fn parts_hashed_once_make_up_the_file_and_verify_alone(
            log2 in 12u32..19,
            extra in 1u64..600_000,
            slice in 1usize..300_000,
            piece in 1u64..100_000,
            seed in any::<u64>(),
        ) {
            let part = 1u64 << log2;
            let len = part + extra;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut data = vec![0u8; len as usize];
            rng.fill(&mut data[..]);
            let mut ph = PartHasher::new(len, part);
            for c in data.chunks(slice) {
                ph.update(c);
            }
            let (parts, root) = ph.finish().unwrap();
            prop_assert_eq!(root, *blake3::hash(&data).as_bytes());
            prop_assert_eq!(parts.len() as u64, len.div_ceil(part));
            for (i, cv) in parts.iter().enumerate() {
                let base = i as u64 * part;
                let bytes = &data[base as usize..(base + part).min(len) as usize];
                prop_assert_eq!(part_cv(base, bytes), Some(*cv));
                let n = bytes.len() as u64;
                let mut pieces: Vec<(u64, u64)> = (0..n.div_ceil(piece))
                    .map(|j| (j * piece, ((j + 1) * piece).min(n)))
                    .collect();
                pieces.shuffle(&mut rng);
                let mut h = TreeHasher::new_at(n, Some(base));
                for (j, &(a, b)) in pieces.iter().enumerate() {
                    let bytes = &bytes[a as usize..b as usize];
                    let cvs = if j % 2 == 0 { unit_cvs(n, Some(base), a, bytes) } else { Vec::new() };
                    h.write_with(a, bytes, &cvs);
                }
                prop_assert_eq!(h.finish(), Some(*cv));
                // The same bytes hashed alone, or elsewhere, are not the part.
                prop_assert_ne!(Some(*blake3::hash(bytes).as_bytes()), Some(*cv));
            }
            // Parts out of order, or one short, make up no such file.
            let mut swapped = parts.clone();
            swapped.swap(0, 1);
            prop_assert_ne!(root_of_parts(&swapped, part, len), Some(root));
            prop_assert_eq!(root_of_parts(&parts[1..], part, len), None);
        }
    }

    /// What cannot be a subtree is refused before blake3's `hazmat` would
    /// panic on it: an empty part, an offset off a chunk, a part longer
    /// than the subtree at its offset.
    #[test]
    fn only_real_subtrees_are_hashed_as_parts() {
        assert!(subtree_fits(0, 1));
        assert!(subtree_fits(0, u64::MAX));
        assert!(subtree_fits(4096, 4096));
        assert!(!subtree_fits(4096, 4097));
        assert!(!subtree_fits(1000, 10));
        assert!(!subtree_fits(8192, 0));
        assert_eq!(part_cv(4096, &[1; 4097]), None);
        assert_eq!(part_cv(1, &[1; 3]), None);
        assert!(part_cv(12288, &[1; 4096]).is_some());
        assert_eq!(
            root_of_parts(&[[0; 32]; 2], 3000, 5000),
            None,
            "not a power of two"
        );
        assert_eq!(
            root_of_parts(&[[0; 32]], 4096, 4096),
            None,
            "one part is no parts"
        );
    }

    /// Chaining values computed apart are the ones used: with them, a block
    /// whose whole units are zeroed still hashes to the object's hash.
    #[test]
    fn chaining_values_computed_apart_stand_for_their_units() {
        let len = 5 * UNIT + 777;
        let data: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
        let (a, b) = (UNIT / 2, 4 * UNIT + 100);
        let cvs = unit_cvs(len, None, a, &data[a as usize..b as usize]);
        assert_eq!(cvs.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        let mut blanked = data[a as usize..b as usize].to_vec();
        blanked[(UNIT - a) as usize..(4 * UNIT - a) as usize].fill(0);
        let mut h = TreeHasher::new(len);
        h.write_with(0, &data[..a as usize], &[]);
        h.write_with(a, &blanked, &cvs);
        h.write_with(
            b,
            &data[b as usize..],
            &unit_cvs(len, None, b, &data[b as usize..]),
        );
        assert_eq!(h.finish(), Some(*blake3::hash(&data).as_bytes()));
        assert!(
            unit_cvs(UNIT, None, 0, &data[..UNIT as usize]).is_empty(),
            "one unit: no tree"
        );
    }
}
