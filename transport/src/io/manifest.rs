//! The manifest of a file transfer (protocol.md §11), and the transfer id.
//!
//! The manifest is object 0 of a transfer's session. It names every object
//! that follows, with its path, size, mode and BLAKE3 hash, so a receiver
//! writes nothing the manifest does not list, and only bytes whose hash the
//! manifest gave. Its own BLAKE3 hash is the *transfer id*: it depends only on
//! the files, so it can be handed out beforehand (`groupcast id`) and pinned
//! (`recv --expect`), like a magnet link.
//!
//! The format is text, one canonical byte form per content: a decoder refuses
//! anything [`Manifest::encode`] would not have written.

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, PathBuf};
use std::str::FromStr;

use super::IoError;
use crate::proto::ObjectId;

/// Name of the manifest object.
pub const MANIFEST_NAME: &str = ".groupcast-manifest";
/// Prefix of temporary files, and of the staging directory, in the output
/// directory: a manifest can name nothing that begins with it.
pub const TEMP_PREFIX: &str = ".groupcast-tmp-";
/// The staging directory in the output directory (`FileSink`): private to
/// the receiving user (mode 0700, its owner checked), it holds a transfer's
/// files until every one has verified, and the resumable files of files in
/// parts.
pub const STAGING_DIR: &str = ".groupcast-tmp-staging";
/// Largest manifest a receiver buffers; a larger object 0 is refused.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;
/// The manifest's first line begins with this, then a space and the part size.
pub const MANIFEST_HEADER: &str = "groupcast-manifest 4";
/// The part size senders use unless told otherwise: a file larger than this
/// travels as a sequence of objects of this size (the last one shorter).
/// 64 MiB keeps an object within 255 blocks of 1000 symbols of 1188 bytes
/// (to 56 blocks), and is how much a stopped receiver may have to receive
/// again of a file when it resumes (`FileSink`).
pub const DEFAULT_PART_SIZE: u64 = 64 << 20;
/// The smallest and largest part size a manifest may give; it must also be
/// a power of two, so that each part is a subtree of the file's BLAKE3 tree.
pub const PART_SIZE_RANGE: std::ops::RangeInclusive<u64> = 4096..=(1 << 30);
/// Longest path component (Linux's NAME_MAX).
pub const MAX_COMPONENT_LEN: usize = 255;

/// One file of a transfer, as its manifest lines give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The object that carries it (1, 2, ... in manifest order); for a file
    /// in parts, the object of its first part.
    pub object: ObjectId,
    /// Relative path, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Unix permission bits (at most 0o777).
    pub mode: u32,
    /// BLAKE3 hash of the file's bytes.
    pub hash: [u8; 32],
    /// A file larger than the manifest's part size travels as these objects,
    /// in order: every one the part size long but the last. Empty for a file
    /// carried whole by `object`.
    pub parts: Vec<Part>,
    /// A small file packed with others into one object (`object`): where.
    pub pack: Option<Pack>,
}

/// Where a packed file is in its pack: an object that carries several small
/// files back to back, in manifest order (§11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pack {
    /// The file's offset in the pack.
    pub offset: u64,
    /// The pack's size in bytes (the object's).
    pub size: u64,
    /// BLAKE3 hash of the pack's bytes (the object's).
    pub hash: [u8; 32],
}

/// Files smaller than this are packed together (`send_path`), when two or
/// more of them come one after the other in path order.
pub const PACK_BELOW: u64 = 1 << 20;
/// The largest pack a sender makes (or the part size, if smaller).
pub const PACK_SIZE: u64 = 16 << 20;

/// One object of a file in parts (§11): its bytes at `offset` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The object that carries it.
    pub object: ObjectId,
    /// Where its bytes go in the file.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
    /// BLAKE3 hash of its bytes (the object's hash).
    pub hash: [u8; 32],
}

impl Entry {
    /// Every object of the file with its offset in it: the parts, or the
    /// one object that carries it whole. (A packed file's object is its
    /// pack, which carries other files too: see `pack`.)
    pub fn objects(&self) -> Vec<Part> {
        if self.parts.is_empty() {
            vec![Part {
                object: self.object,
                offset: 0,
                size: self.size,
                hash: self.hash,
            }]
        } else {
            self.parts.clone()
        }
    }
}

/// One object of a transfer, as its manifest lays it out (§11.1): its size
/// and hash, the name its OBJECT_INFO gives, and the files its bytes belong
/// to. Object 0, the manifest itself, is not one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLayout {
    /// The object.
    pub object: ObjectId,
    /// Its size in bytes.
    pub size: u64,
    /// BLAKE3 hash of its bytes: a file's hash, a part's chaining value at
    /// its offset (`hash_offset`), or a pack's hash.
    pub hash: [u8; 32],
    /// For a part of a file in parts, its offset in the file, where its
    /// hash is the chaining value of its subtree (§11.1); `None` for a file
    /// carried whole, or a pack.
    pub hash_offset: Option<u64>,
    /// The name its OBJECT_INFO carries: a file's path (a part's too), or
    /// nothing for a pack.
    pub name: String,
    /// Whether it is a pack of small files.
    pub packed: bool,
    /// Its bytes, in object order: one segment for a file or a part, one a
    /// file for a pack.
    pub segments: Vec<Segment>,
}

/// Bytes `at_object..at_object + len` of an object are bytes
/// `at_file..at_file + len` of the manifest's entry `entry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The file: its place in [`Manifest::entries`].
    pub entry: usize,
    /// Where the bytes start in the object.
    pub at_object: u64,
    /// Where they start in the file.
    pub at_file: u64,
    /// How many.
    pub len: u64,
}

/// The byte ranges `(offset, size)` a file of `size` bytes is cut into at
/// `part_size`: one range (the whole file) when it is no larger.
pub fn part_ranges(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    if size <= part_size {
        return vec![(0, size)];
    }
    (0..size.div_ceil(part_size))
        .map(|i| {
            let at = i * part_size;
            (at, part_size.min(size - at))
        })
        .collect()
}

/// A transfer's manifest: its entries in object order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Files larger than this are in parts of this size.
    pub part_size: u64,
    /// The files, object 1 first.
    pub entries: Vec<Entry>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            entries: Vec::new(),
        }
    }
}

/// The BLAKE3 hash of a manifest's bytes: names a transfer by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransferId(pub [u8; 32]);

impl TransferId {
    /// The id of a manifest's bytes.
    pub fn of(manifest: &[u8]) -> Self {
        Self(*blake3::hash(manifest).as_bytes())
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl FromStr for TransferId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_hash(s).map(Self).ok_or_else(|| {
            format!(
                "'{s}' is not a transfer id: 64 lower-case hex digits, as `groupcast id` prints"
            )
        })
    }
}

/// The 64 lower-case hex digits of a hash, appended to `out`.
fn push_hex(out: &mut String, hash: &[u8; 32]) {
    out.push_str(&blake3::Hash::from_bytes(*hash).to_hex());
}

fn hex(hash: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*hash).to_hex().to_string()
}

/// 64 lower-case hex digits (no other form: the manifest is canonical).
fn parse_hash(s: &str) -> Option<[u8; 32]> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    blake3::Hash::from_hex(s).ok().map(|h| *h.as_bytes())
}

impl Manifest {
    /// The manifest's bytes, in the one form receivers accept.
    pub fn encode(&self) -> Vec<u8> {
        use std::fmt::Write;
        // (Writing into a String cannot fail.)
        let mut out = String::with_capacity(32 + self.entries.len() * 100);
        let _ = writeln!(out, "{MANIFEST_HEADER} {}", self.part_size);
        for e in &self.entries {
            if let Some(p) = e.pack
                && p.offset == 0
            {
                let _ = write!(out, "pack {} {} ", e.object.0, p.size);
                push_hex(&mut out, &p.hash);
                out.push('\n');
            }
            let _ = write!(out, "{} {:o} {} ", e.object.0, e.mode & 0o777, e.size);
            push_hex(&mut out, &e.hash);
            out.push(' ');
            out.push_str(&e.path);
            out.push('\n');
            for p in &e.parts {
                let _ = write!(out, "part {} {} {} ", p.object.0, p.offset, p.size);
                push_hex(&mut out, &p.hash);
                out.push('\n');
            }
        }
        out.into_bytes()
    }

    /// Every object the manifest lists after itself, in object order, with
    /// the bytes of files each carries (§11.1): a file whole, a part of a
    /// file at its offset, or the files of a pack back to back. The one
    /// layout the sender reads blocks by and the receiver writes them by.
    pub fn objects(&self) -> Vec<ObjectLayout> {
        let mut out: Vec<ObjectLayout> = Vec::new();
        for (entry, e) in self.entries.iter().enumerate() {
            if let Some(pack) = e.pack {
                let segment = Segment {
                    entry,
                    at_object: pack.offset,
                    at_file: 0,
                    len: e.size,
                };
                match out.last_mut() {
                    Some(o) if o.packed && o.object == e.object => o.segments.push(segment),
                    _ => out.push(ObjectLayout {
                        object: e.object,
                        size: pack.size,
                        hash: pack.hash,
                        hash_offset: None,
                        name: String::new(),
                        packed: true,
                        segments: vec![segment],
                    }),
                }
                continue;
            }
            for p in e.objects() {
                out.push(ObjectLayout {
                    object: p.object,
                    size: p.size,
                    hash: p.hash,
                    hash_offset: (!e.parts.is_empty()).then_some(p.offset),
                    name: e.path.clone(),
                    packed: false,
                    segments: vec![Segment {
                        entry,
                        at_object: 0,
                        at_file: p.offset,
                        len: p.size,
                    }],
                });
            }
        }
        out
    }

    /// The transfer id: the BLAKE3 hash of [`Manifest::encode`].
    pub fn transfer_id(&self) -> TransferId {
        TransferId::of(&self.encode())
    }

    /// Parses a manifest from the network, refusing anything but the
    /// canonical form of a valid manifest: the header with a part size in
    /// [`PART_SIZE_RANGE`], then at least one entry, objects numbered 1, 2,
    /// ... in order, a file larger than the part size followed by exactly
    /// its parts (and no other by any), packs of two or more files that fill
    /// them exactly, safe paths (§11) listed once, no
    /// path beneath another's file, and the hash of an empty file equal to
    /// BLAKE3 of nothing.
    pub fn decode(bytes: &[u8]) -> Result<Self, IoError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(bad(format!("larger than {MAX_MANIFEST_BYTES} bytes")));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let (part_size, body) = decode_header(text)?;
        let mut d = Decoder::new(part_size, body);
        while let Some(line) = d.lines.next() {
            match line.strip_prefix("pack ") {
                Some(rest) => d.pack_line(line, rest)?,
                None => d.file_line(line)?,
            }
        }
        d.close_pack()?;
        if d.entries.is_empty() {
            return Err(bad("lists no file".into()));
        }
        no_file_is_a_directory(&d.entries, &d.paths)?;
        let m = Self {
            part_size,
            entries: d.entries,
        };
        if m.encode() != bytes {
            return Err(bad("not in canonical form".into()));
        }
        Ok(m)
    }
}

/// Why [`Manifest::decode`] refused a manifest.
fn bad(why: String) -> IoError {
    IoError::Invalid(format!("invalid manifest: {why}"))
}

/// A field of `line` that [`Manifest::decode`] refused.
fn bad_field(what: &str, line: &str) -> IoError {
    bad(format!("bad {what} in line '{}'", line.escape_debug()))
}

/// The header line, `groupcast-manifest 4 PART_SIZE` with a part size in
/// [`PART_SIZE_RANGE`] and a power of two: the part size, and the lines
/// after it.
fn decode_header(text: &str) -> Result<(u64, &str), IoError> {
    let (head, body) = text
        .strip_prefix(MANIFEST_HEADER)
        .and_then(|t| t.strip_prefix(' '))
        .and_then(|t| t.split_once('\n'))
        .ok_or_else(|| bad(format!("does not start with '{MANIFEST_HEADER} '")))?;
    let part_size: u64 = head
        .parse()
        .ok()
        .filter(|p| PART_SIZE_RANGE.contains(p) && p.is_power_of_two())
        .ok_or_else(|| bad(format!("bad part size '{}'", head.escape_debug())))?;
    Ok((part_size, body))
}

/// A file cannot also be a directory: refuses "x" beside "x/y".
fn no_file_is_a_directory(entries: &[Entry], paths: &HashSet<&str>) -> Result<(), IoError> {
    for e in entries {
        let mut at = 0;
        while let Some(i) = e.path[at..].find('/') {
            let parent = &e.path[..at + i];
            if paths.contains(parent) {
                return Err(bad(format!(
                    "'{}' is both a file and the directory of '{}'",
                    parent.escape_debug(),
                    e.path.escape_debug()
                )));
            }
            at += i + 1;
        }
    }
    Ok(())
}

/// The pack being listed by [`Manifest::decode`].
struct OpenPack {
    object: u32,
    size: u64,
    hash: [u8; 32],
    /// Files listed in it so far, and their bytes.
    members: usize,
    bytes: u64,
}

/// [`Manifest::decode`]'s state from one line to the next.
struct Decoder<'a> {
    part_size: u64,
    lines: std::str::SplitTerminator<'a, char>,
    entries: Vec<Entry>,
    paths: HashSet<&'a str>,
    /// The object the next file or pack must be.
    next_object: u32,
    open: Option<OpenPack>,
    /// BLAKE3 of nothing: an empty file's hash.
    empty_hash: [u8; 32],
}

impl<'a> Decoder<'a> {
    fn new(part_size: u64, body: &'a str) -> Self {
        Self {
            part_size,
            lines: body.split_terminator('\n'),
            entries: Vec::new(),
            paths: HashSet::new(),
            next_object: 1,
            open: None,
            empty_hash: *blake3::hash(b"").as_bytes(),
        }
    }

    /// Closes the pack being listed, if any: it must hold two files or
    /// more, whose sizes fill it exactly. The next object follows it.
    fn close_pack(&mut self) -> Result<(), IoError> {
        if let Some(p) = self.open.take() {
            if p.members < 2 || p.bytes != p.size {
                return Err(bad(format!(
                    "pack {} lists {} file(s) of {} bytes, not two or more of {}",
                    p.object, p.members, p.bytes, p.size
                )));
            }
            self.next_object = p
                .object
                .checked_add(1)
                .ok_or_else(|| bad("too many objects".into()))?;
        }
        Ok(())
    }

    /// `pack OBJECT SIZE HASH`: opens a pack, the next object, of a size
    /// above zero.
    fn pack_line(&mut self, line: &str, rest: &str) -> Result<(), IoError> {
        self.close_pack()?;
        let field = |what: &str| bad_field(what, line);
        let f: Vec<&str> = rest.split(' ').collect();
        let [object, size, hash] = f[..] else {
            return Err(field("pack line"));
        };
        if object.parse::<u32>().ok() != Some(self.next_object)
            || object.len() != self.next_object.to_string().len()
        {
            return Err(field("object id (not the next in order)"));
        }
        let size: u64 = size
            .parse()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| field("pack size"))?;
        let hash = parse_hash(hash).ok_or_else(|| field("hash"))?;
        self.open = Some(OpenPack {
            object: self.next_object,
            size,
            hash,
            members: 0,
            bytes: 0,
        });
        Ok(())
    }

    /// `OBJECT MODE SIZE HASH PATH`: a file, in the open pack if its object
    /// is the pack's, followed by its part lines if it is larger than the
    /// part size.
    fn file_line(&mut self, line: &'a str) -> Result<(), IoError> {
        let mut f = line.splitn(5, ' ');
        let (Some(object), Some(mode), Some(size), Some(hash), Some(path)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad(format!("malformed line '{}'", line.escape_debug())));
        };
        let field = |what: &str| bad_field(what, line);
        let object: u32 = object.parse().map_err(|_| field("object id"))?;
        if self.open.as_ref().is_some_and(|o| o.object != object) {
            self.close_pack()?;
        }
        if self.open.is_none() && object != self.next_object {
            return Err(field("object id (not the next in order)"));
        }
        let mode = u32::from_str_radix(mode, 8).map_err(|_| field("mode"))?;
        let size: u64 = size.parse().map_err(|_| field("size"))?;
        let hash = parse_hash(hash).ok_or_else(|| field("hash"))?;
        if size == 0 && hash != self.empty_hash {
            return Err(field("hash (an empty file's must be BLAKE3 of nothing)"));
        }
        safe_relative_path(path)?;
        if !self.paths.insert(path) {
            return Err(bad(format!("'{}' is listed twice", path.escape_debug())));
        }
        let pack = self.pack_member(size, line)?;
        let count = size.div_ceil(self.part_size).max(1);
        let parts = if count > 1 {
            self.part_lines(object, path, size, hash, line)?
        } else {
            Vec::new()
        };
        if pack.is_none() {
            self.next_object = u32::try_from(count)
                .ok()
                .and_then(|n| object.checked_add(n))
                .ok_or_else(|| field("object id (too many objects)"))?;
        }
        self.entries.push(Entry {
            object: ObjectId(object),
            path: path.to_owned(),
            size,
            mode,
            hash,
            parts,
            pack,
        });
        Ok(())
    }

    /// A file of `size` bytes listed in the open pack, if one is: where it
    /// lies in it. It must be neither empty nor larger than a part, and fit
    /// what is left of the pack.
    fn pack_member(&mut self, size: u64, line: &str) -> Result<Option<Pack>, IoError> {
        let Some(o) = self.open.as_mut() else {
            return Ok(None);
        };
        if size == 0 || size > self.part_size || o.bytes + size > o.size {
            return Err(bad_field("size (of a packed file)", line));
        }
        let pack = Pack {
            offset: o.bytes,
            size: o.size,
            hash: o.hash,
        };
        o.members += 1;
        o.bytes += size;
        Ok(Some(pack))
    }

    /// The part lines of the file `path` of `size` bytes at `object`
    /// (listed by `line`): as many as [`part_ranges`] gives, read one by
    /// one, so that a forged size that claims any number of them allocates
    /// nothing for a part before its line is there. Their chaining values
    /// must make up the file's `hash`, which then names it truly (a file in
    /// place with that hash is kept, §11.2).
    fn part_lines(
        &mut self,
        object: u32,
        path: &str,
        size: u64,
        hash: [u8; 32],
        line: &str,
    ) -> Result<Vec<Part>, IoError> {
        let part_size = self.part_size;
        let count = size.div_ceil(part_size);
        let mut parts = Vec::new();
        for i in 0..count {
            let (offset, part_len) = (i * part_size, part_size.min(size - i * part_size));
            let line = self.lines.next().unwrap_or("");
            let pbad = |what: &str| {
                bad(format!(
                    "{what} of '{}' in line '{}'",
                    path.escape_debug(),
                    line.escape_debug()
                ))
            };
            let f: Vec<&str> = line.split(' ').collect();
            let want = u32::try_from(i)
                .ok()
                .and_then(|i| object.checked_add(i))
                .ok_or_else(|| pbad("too many objects"))?;
            if f.len() != 5
                || f[0] != "part"
                || f[1].parse::<u32>().ok() != Some(want)
                || f[2].parse::<u64>().ok() != Some(offset)
                || f[3].parse::<u64>().ok() != Some(part_len)
            {
                return Err(pbad(&format!("not part {} of {count}", i + 1)));
            }
            let hash = parse_hash(f[4]).ok_or_else(|| pbad("bad hash"))?;
            parts.push(Part {
                object: ObjectId(want),
                offset,
                size: part_len,
                hash,
            });
        }
        let hashes: Vec<[u8; 32]> = parts.iter().map(|p| p.hash).collect();
        if crate::proto::root_of_parts(&hashes, part_size, size) != Some(hash) {
            return Err(bad_field("hash (its parts' do not make it up)", line));
        }
        Ok(parts)
    }
}

/// Checks that a path from the network stays inside the output directory:
/// relative, no empty, `.` or `..` component, no control character or
/// backslash, no component over [`MAX_COMPONENT_LEN`] bytes, at most
/// `MAX_NAME_LEN` bytes in all, and not a reserved name.
pub fn safe_relative_path(path: &str) -> Result<PathBuf, IoError> {
    let bad =
        |why: &str| IoError::Invalid(format!("refusing path '{}': {why}", path.escape_debug()));
    if path.is_empty() || path.starts_with('/') {
        return Err(bad("not a relative path"));
    }
    if path.len() > crate::wire::MAX_NAME_LEN {
        return Err(bad("longer than an object name may be"));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad("control characters or backslashes"));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad("empty, '.' or '..' components"));
    }
    if path.split('/').any(|c| c.len() > MAX_COMPONENT_LEN) {
        return Err(bad("a component is longer than 255 bytes"));
    }
    if path.starts_with(TEMP_PREFIX) || path == MANIFEST_NAME {
        return Err(bad("reserved name"));
    }
    let p = PathBuf::from(path);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("not a plain relative path"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: u32, path: &str, data: &[u8], mode: u32) -> Entry {
        Entry {
            object: ObjectId(object),
            path: path.into(),
            size: data.len() as u64,
            mode,
            hash: *blake3::hash(data).as_bytes(),
            parts: Vec::new(),
            pack: None,
        }
    }

    /// Every one of `cases` is refused by `Manifest::decode`.
    fn assert_refused(cases: Vec<String>) {
        for bad in cases {
            assert!(
                Manifest::decode(bad.as_bytes()).is_err(),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn round_trips_and_the_id_is_the_hash_of_the_bytes() {
        let m = Manifest {
            entries: vec![
                entry(1, "a.txt", b"abc", 0o644),
                entry(2, "dir/b c.bin", b"", 0o755),
            ],
            ..Manifest::default()
        };
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        assert_eq!(m.transfer_id().0, *blake3::hash(&bytes).as_bytes());
        let id = m.transfer_id().to_string();
        assert_eq!(id.parse::<TransferId>().unwrap(), m.transfer_id());
        assert!("xyz".parse::<TransferId>().is_err());
        assert!(id.to_uppercase().parse::<TransferId>().is_err());
    }

    /// A file of 10,000 bytes at a part size of 4096: parts of 4096, 4096
    /// and 1808 bytes, objects 2, 3 and 4, then the next file is object 5.
    fn split_manifest() -> Manifest {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let parts = part_ranges(data.len() as u64, 4096)
            .into_iter()
            .enumerate()
            .map(|(i, (offset, size))| Part {
                object: ObjectId(2 + i as u32),
                offset,
                size,
                hash: crate::proto::part_cv(
                    offset,
                    &data[offset as usize..(offset + size) as usize],
                )
                .unwrap(),
            })
            .collect();
        Manifest {
            part_size: 4096,
            entries: vec![
                entry(1, "small", b"abc", 0o644),
                Entry {
                    parts,
                    ..entry(2, "big", &data, 0o600)
                },
                entry(5, "last", &data[..4096], 0o644),
            ],
        }
    }

    #[test]
    fn a_file_larger_than_the_part_size_is_listed_with_its_parts() {
        assert_eq!(part_ranges(0, 4096), vec![(0, 0)]);
        assert_eq!(part_ranges(4096, 4096), vec![(0, 4096)]);
        assert_eq!(part_ranges(4097, 4096), vec![(0, 4096), (4096, 1)]);
        let m = split_manifest();
        let bytes = m.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("groupcast-manifest 4 4096\n1 644 3 "));
        assert!(text.contains("\npart 2 0 4096 "));
        assert!(text.contains("\npart 4 8192 1808 "));
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        let objects = m.entries[1].objects();
        assert_eq!(objects.len(), 3);
        assert_eq!(objects.iter().map(|p| p.size).sum::<u64>(), 10_000);
        assert_eq!(m.entries[0].objects()[0].hash, m.entries[0].hash);

        // Every way a part line can lie is refused.
        let hostile: Vec<String> = vec![
            // A part missing, or one too many.
            text.replacen(&text[text.find("part 4").unwrap()..], "", 1),
            text.replace(
                "\n5 644",
                &format!("\npart 5 10000 0 {}\n5 644", hex(&[0; 32])),
            ),
            // Parts out of order, overlapping, of the wrong size.
            text.replace("part 3 4096", "part 3 4095"),
            text.replace("part 3 4096 4096", "part 3 4096 4097"),
            text.replace("part 2 0", "part 9 0"),
            text.replace("part 2 0", "part  2 0"),
            // The next file's object does not follow the parts.
            text.replace("\n5 644", "\n3 644"),
            // A part where no file is split.
            text.replace("groupcast-manifest 4 4096", "groupcast-manifest 4 16384"),
            text.replace("part 2", "part 2 extra"),
            // A part size that is not a power of two.
            text.replace("groupcast-manifest 4 4096", "groupcast-manifest 4 5000"),
            // A part whose hash is not what, with the others', makes up the
            // file's: swapped with its neighbour's, or the file's own.
            {
                let m = split_manifest();
                let (a, b) = (
                    hex(&m.entries[1].parts[0].hash),
                    hex(&m.entries[1].parts[1].hash),
                );
                text.replace(&a, "A").replace(&b, &a).replace("A", &b)
            },
            {
                let m = split_manifest();
                text.replace(&hex(&m.entries[1].parts[2].hash), &hex(&m.entries[1].hash))
            },
        ];
        assert_refused(hostile);
        // A size that claims 2^50 parts, with none listed, is refused at its
        // first missing part line, allocating nothing for the rest.
        let huge = format!(
            "groupcast-manifest 4 4096\n1 644 {} {} big\n",
            u64::MAX / 2,
            hex(&[0; 32])
        );
        assert!(Manifest::decode(huge.as_bytes()).is_err());
    }

    #[test]
    fn small_files_packed_into_one_object_are_listed_under_a_pack_line() {
        let (a, b, c) = (
            b"first".as_slice(),
            b"second".as_slice(),
            b"third!".as_slice(),
        );
        let mut pack = a.to_vec();
        pack.extend_from_slice(b);
        pack.extend_from_slice(c);
        let ph = *blake3::hash(&pack).as_bytes();
        let member = |path: &str, data: &[u8], offset: u64| Entry {
            pack: Some(Pack {
                offset,
                size: pack.len() as u64,
                hash: ph,
            }),
            ..entry(2, path, data, 0o644)
        };
        let m = Manifest {
            entries: vec![
                entry(1, "0", b"alone", 0o644),
                member("a", a, 0),
                member("b", b, 5),
                member("c", c, 11),
                entry(3, "d", b"after", 0o600),
            ],
            ..Manifest::default()
        };
        let bytes = m.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(&format!("\npack 2 17 {}\n2 644 5 ", hex(&ph))),
            "{text}"
        );
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        let hostile: Vec<String> = vec![
            // A pack of one file, a pack whose files do not fill it, or overfill it.
            text.replace("pack 2 17", "pack 2 5").replace(
                &text[text.find("2 644 6").unwrap()..text.find("3 600").unwrap()],
                "",
            ),
            text.replace("pack 2 17", "pack 2 18"),
            text.replace("pack 2 17", "pack 2 16"),
            // Not the next object, or an empty pack.
            text.replace("pack 2 17", "pack 3 17"),
            text.replace("pack 2 17", "pack 2 0"),
            text.replace("\npack 2 17", "\npack 2 17 extra"),
            // The object after a pack is not the next.
            text.replace("\n3 600", "\n4 600"),
            // A packed file that is empty.
            text.replace("2 644 5 ", "2 644 0 "),
        ];
        assert_refused(hostile);
    }

    /// The layout names every object once, in order: a file whole, each
    /// part at its offset (hashed there), a pack's files back to back.
    #[test]
    fn objects_lay_out_files_parts_and_packs() {
        let m = split_manifest();
        let objects = m.objects();
        let ids: Vec<u32> = objects.iter().map(|o| o.object.0).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert_eq!(objects[0].hash_offset, None);
        assert_eq!(objects[0].name, "small");
        let parts: Vec<(Option<u64>, u64, Segment)> = objects[1..4]
            .iter()
            .map(|o| (o.hash_offset, o.size, o.segments[0]))
            .collect();
        for (i, (offset, size, seg)) in parts.into_iter().enumerate() {
            let p = m.entries[1].parts[i];
            assert_eq!((offset, size), (Some(p.offset), p.size));
            let want = Segment {
                entry: 1,
                at_object: 0,
                at_file: p.offset,
                len: p.size,
            };
            assert_eq!(seg, want);
        }
        let pack = Pack {
            offset: 0,
            size: 7,
            hash: [9; 32],
        };
        let m = Manifest {
            entries: vec![
                Entry {
                    pack: Some(pack),
                    ..entry(1, "a", b"abc", 0o644)
                },
                Entry {
                    pack: Some(Pack { offset: 3, ..pack }),
                    ..entry(1, "b", b"defg", 0o644)
                },
                entry(2, "c", b"", 0o644),
            ],
            ..Manifest::default()
        };
        let objects = m.objects();
        assert_eq!(objects.len(), 2);
        let p = &objects[0];
        assert!(p.packed && p.name.is_empty() && p.hash == [9; 32] && p.size == 7);
        let segs: Vec<(usize, u64, u64, u64)> = p
            .segments
            .iter()
            .map(|s| (s.entry, s.at_object, s.at_file, s.len))
            .collect();
        assert_eq!(segs, [(0, 0, 0, 3), (1, 3, 0, 4)]);
        assert_eq!(objects[1].segments[0].len, 0);
    }

    #[test]
    fn refuses_hostile_and_non_canonical_manifests() {
        let good = Manifest {
            entries: vec![entry(1, "a", b"x", 0o644)],
            ..Manifest::default()
        }
        .encode();
        let text = String::from_utf8(good.clone()).unwrap();
        let h = hex(blake3::hash(b"x").as_bytes());
        let e = hex(blake3::hash(b"").as_bytes());
        let long = "x".repeat(256);
        let hd = format!("{MANIFEST_HEADER} 67108864");
        let cases: Vec<String> = vec![
            String::new(),
            format!("{MANIFEST_HEADER} 67108864\n"),
            text.replace("groupcast-manifest 4", "groupcast-manifest 2"),
            // Version 3 gave parts their own plain hashes.
            text.replace("groupcast-manifest 4", "groupcast-manifest 3"),
            text.replace(" 67108864\n", " 4095\n"),
            text.replace(" 67108864\n", " 067108864\n"),
            text.replace(" 67108864\n", "\n"),
            text.replace("1 644", "2 644"),
            text.replace("1 644", "01 644"),
            text.replace(" 644 ", " 0644 "),
            text.replace(" 644 ", " 7777 "),
            text.trim_end().to_owned(),
            format!("{hd}\n1 644 1 {h} a\n2 644 1 {h} a\n"),
            format!("{hd}\n1 644 1 {h} x\n2 644 1 {h} x/y\n"),
            format!("{hd}\n1 644 0 {h} a\n"),
            format!("{hd}\n1 644 1 {} a\n", h.to_uppercase()),
            format!("{hd}\n1 644 1 {h} {long}\n"),
            format!("{hd}\n1 644 0 {e} ../a\n"),
            format!("{hd}\n1 644 0 {e} /etc/passwd\n"),
            format!("{hd}\n1 644 0 {e} .groupcast-tmp-1\n"),
            format!("{hd}\n1 644 0 {e} a\r\n"),
            format!("{hd}\n1 644 99999999999999999999 {h} a\n"),
        ];
        assert_refused(cases);
        assert!(Manifest::decode(&good).is_ok());
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "",
            "a\nb",
            ".groupcast-tmp-x",
            ".groupcast-manifest",
            "a\\b",
        ] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
