//! Hashing files (protocol.md §8.2, §11.1): a file's BLAKE3 hash, its parts'
//! chaining values, a part of a file read alone. The sender hashes what it
//! sends with these ([`super::transfer_id`], [`super::send_path`]); the file
//! sink hashes what it finds in place and what a resumable file holds.
//!
//! A file is read in 1 MiB chunks or stretches, so memory stays at a few of
//! them whatever its size; one whose length is not the one it was listed
//! with changed since, and is an error.

use std::fs;
use std::path::Path;

use crate::io::manifest::Pack;

/// A file's BLAKE3 hash, and its parts' when it is larger than the part
/// size ([`hash_file_parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    /// The whole file's hash.
    pub hash: [u8; 32],
    /// Each part's hash, in order; empty for a file no larger than a part.
    pub parts: Vec<[u8; 32]>,
    /// A small file packed with its neighbours: where, in which pack.
    pub pack: Option<Pack>,
}

/// BLAKE3 of a file that must be `size` bytes long, read in 1 MiB chunks and
/// hashed on a second thread a chunk behind the reading; memory stays at a
/// few chunks whatever the size. A file that is not `size` bytes long when
/// read (it changed since it was listed) is an error.
pub fn hash_file(path: &Path, size: u64) -> std::io::Result<[u8; 32]> {
    hash_open_file(fs::File::open(path)?, size)
}

/// [`hash_file`] for a file already open (for example one opened beneath a
/// directory without following links), read from its start.
pub fn hash_open_file(mut file: fs::File, size: u64) -> std::io::Result<[u8; 32]> {
    use std::io::Seek;
    if let Some(h) = hash_in_stretches(&file, size, None, hashing_threads())? {
        return Ok(h.hash);
    }
    file.rewind()?;
    hash_stream(file, size, Lane::Whole(blake3::Hasher::new())).map(|h| h.hash)
}

/// The error for a file whose length is not the one it was listed with.
pub(super) fn file_changed() -> std::io::Error {
    std::io::Error::other("file changed while it was read")
}

/// Stretches that [`hash_in_stretches`] hashes apart: a power of two of
/// BLAKE3 chunks, and at most the smallest part size.
const STRETCH: u64 = 1 << 20;

/// Threads that hash a large file: one a core, at most 8.
fn hashing_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Hashes a file of `size` bytes (and its parts of `part_size`) on
/// `threads` threads ([`hashing_threads`]): each reads aligned 1 MiB stretches
/// of it (`pread`, its own buffer) and hashes them to their chaining values,
/// which are then merged along BLAKE3's tree (the result equals
/// `blake3::hash` of the file, and [`PartHasher`]'s parts). One thread hashes
/// at about the speed of memory on a modern core; a large file's hashing pass
/// before its first packet is then shorter by the number of cores. `None`
/// (nothing read) for a file of two stretches or less, one thread, or parts
/// smaller than a stretch: [`hash_stream`] then hashes it, reading on one
/// thread and hashing on another. Reads from the start, whatever `file`'s
/// offset; a file that is not `size` bytes long is an error, as there.
///
/// [`PartHasher`]: crate::proto::PartHasher
fn hash_in_stretches(
    file: &fs::File,
    size: u64,
    part_size: Option<u64>,
    threads: usize,
) -> std::io::Result<Option<FileHash>> {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    if size <= 2 * STRETCH || threads < 2 || part_size.is_some_and(|p| p < STRETCH) {
        return Ok(None);
    }
    let stretches = size.div_ceil(STRETCH);
    let next = AtomicU64::new(0);
    let hashed: Vec<std::io::Result<Vec<(u64, blake3::hazmat::ChainingValue)>>> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.min(stretches as usize))
                .map(|_| {
                    scope.spawn(|| {
                        let mut buf = vec![0u8; STRETCH as usize];
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= stretches {
                                return Ok(done);
                            }
                            let at = i * STRETCH;
                            let len = STRETCH.min(size - at) as usize;
                            file.read_exact_at(&mut buf[..len], at).map_err(|e| {
                                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                    file_changed()
                                } else {
                                    e
                                }
                            })?;
                            done.push((i, crate::proto::unit_cv(at, &buf[..len])));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
    let mut cvs = vec![[0u8; 32]; stretches as usize];
    for r in hashed {
        for (i, cv) in r? {
            cvs[i as usize] = cv;
        }
    }
    // Longer than listed: changed too.
    if file.read_at(&mut [0u8; 1], size)? != 0 {
        return Err(file_changed());
    }
    let (hash, parts) = crate::proto::hash_from_stretches(STRETCH, size, part_size, &|i| cvs[i]);
    Ok(Some(FileHash {
        hash,
        parts,
        pack: None,
    }))
}

/// [`hash_file`], and when the file is larger than `part_size` (a power of
/// two) the hash of each part of it ([`part_ranges`](crate::io::manifest::part_ranges)) too, in the same
/// pass: each part is hashed as the subtree it is of the file's BLAKE3 tree,
/// to its chaining value (protocol.md §11.1), and the file's hash follows
/// from those, so that the bytes are hashed once.
pub fn hash_file_parts(path: &Path, size: u64, part_size: u64) -> std::io::Result<FileHash> {
    let file = fs::File::open(path)?;
    if let Some(h) = hash_in_stretches(&file, size, Some(part_size), hashing_threads())? {
        return Ok(h);
    }
    let lane = if size > part_size {
        Lane::Parts(crate::proto::PartHasher::new(size, part_size))
    } else {
        Lane::Whole(blake3::Hasher::new())
    };
    hash_stream(file, size, lane)
}

/// The hash a manifest gives the part of `len` bytes at `offset` of `file`
/// (its chaining value there, §11.1), read as [`hash_file`] reads (through a
/// second descriptor: `file`'s own offset is shared, and moved). An error if
/// no part can be there (`offset` not on a 1 KiB chunk, or `len` too long
/// for a subtree at it).
pub fn hash_file_part(file: &fs::File, offset: u64, len: u64) -> std::io::Result<[u8; 32]> {
    use blake3::hazmat::HasherExt;
    use std::io::{Read, Seek, SeekFrom};
    if !crate::proto::subtree_fits(offset, len) {
        return Err(std::io::Error::other(format!(
            "no part of {len} bytes can start at {offset}"
        )));
    }
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    hash_stream(f.take(len), len, Lane::Subtree(h)).map(|h| h.hash)
}

/// What the hashing thread of [`hash_stream`] computes.
enum Lane {
    /// The BLAKE3 hash of the whole.
    Whole(blake3::Hasher),
    /// The chaining value of a subtree (a part read alone).
    Subtree(blake3::Hasher),
    /// Parts' chaining values, and the whole's hash from them.
    Parts(crate::proto::PartHasher),
}

impl Lane {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Lane::Whole(h) | Lane::Subtree(h) => {
                h.update(bytes);
            }
            Lane::Parts(p) => p.update(bytes),
        }
    }

    fn finish(self) -> Option<FileHash> {
        use blake3::hazmat::HasherExt;
        let (hash, parts) = match self {
            Lane::Whole(h) => (*h.finalize().as_bytes(), Vec::new()),
            Lane::Subtree(h) => (h.finalize_non_root(), Vec::new()),
            Lane::Parts(p) => {
                let (parts, root) = p.finish()?;
                (root, parts)
            }
        };
        Some(FileHash {
            hash,
            parts,
            pack: None,
        })
    }
}

/// Reads `size` bytes of `file` in 1 MiB chunks and hashes them on a second
/// thread, a chunk behind the reading; memory stays at a few chunks.
fn hash_stream(
    mut file: impl std::io::Read,
    size: u64,
    mut lane: Lane,
) -> std::io::Result<FileHash> {
    use std::sync::mpsc::{channel, sync_channel};
    const CHUNK: usize = 1 << 20;
    let (filled, chunks) = sync_channel::<Vec<u8>>(2);
    // Hashed chunks come back for reuse.
    let (empty, spare) = channel::<Vec<u8>>();
    let (read, hashed) = std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            for chunk in chunks {
                lane.update(&chunk);
                // The reader may have gone: the buffer is then dropped.
                let _ = empty.send(chunk);
            }
            lane
        });
        let mut total = 0u64;
        let result = (|| -> std::io::Result<()> {
            loop {
                let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
                buf.resize(CHUNK, 0);
                let mut n = 0;
                while n < CHUNK {
                    match file.read(&mut buf[n..])? {
                        0 => break,
                        m => n += m,
                    }
                }
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                total += n as u64;
                if total > size || filled.send(buf).is_err() {
                    return Ok(());
                }
            }
        })();
        drop(filled);
        let lane = hasher
            .join()
            .map_err(|_| std::io::Error::other("hashing thread failed"));
        (result.map(|()| total), lane)
    });
    let (read, lane) = (read?, hashed?);
    if read != size {
        return Err(file_changed());
    }
    lane.finish().ok_or_else(file_changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_hashed_in_stretches_on_threads_hash_as_in_one_stream() {
        let dir = std::env::temp_dir().join(format!("gc-his-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for len in [(2 << 20) + 1, 3 << 20, 5_000_000, (9 << 20) + 3] {
            let p = dir.join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            fs::write(&p, &data).unwrap();
            let file = fs::File::open(&p).unwrap();
            for part in [None, Some(1 << 20), Some(2 << 20), Some(4 << 20)] {
                for threads in [2, 3, 8] {
                    let h = hash_in_stretches(&file, len as u64, part, threads)
                        .unwrap()
                        .expect("hashed in stretches");
                    assert_eq!(h.hash, *blake3::hash(&data).as_bytes(), "{len} {part:?}");
                    let streamed = match part {
                        Some(p) if len as u64 > p => hash_stream(
                            &data[..],
                            len as u64,
                            Lane::Parts(crate::proto::PartHasher::new(len as u64, p)),
                        ),
                        _ => hash_stream(&data[..], len as u64, Lane::Whole(blake3::Hasher::new())),
                    }
                    .unwrap();
                    assert_eq!(h.parts, streamed.parts, "{len} {part:?}");
                }
            }
            // Not of the size listed: changed since, refused.
            assert!(hash_in_stretches(&file, len as u64 + 1, None, 2).is_err());
            assert!(!matches!(
                hash_in_stretches(&file, len as u64 - 1, None, 2),
                Ok(Some(_))
            ));
            // Small files, one thread, parts below a stretch: streamed.
            assert!(
                hash_in_stretches(&file, len as u64, None, 1)
                    .unwrap()
                    .is_none()
            );
            assert!(
                hash_in_stretches(&file, len as u64, Some(4096), 2)
                    .unwrap()
                    .is_none()
            );
        }
        let p = dir.join("small");
        fs::write(&p, vec![7u8; 2 << 20]).unwrap();
        let file = fs::File::open(&p).unwrap();
        assert!(
            hash_in_stretches(&file, 2 << 20, None, 4)
                .unwrap()
                .is_none()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
