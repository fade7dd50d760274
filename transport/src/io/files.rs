//! Files and directories over a channel.
//!
//! A transfer is a session of objects. Object 0 is the [manifest](super::manifest):
//! every file's object id, mode, size, BLAKE3 hash and path. Every file
//! follows as its own object. Its hash names the transfer (the
//! [`TransferId`]), so a receiver can pin the transfer it wants before any
//! packet arrives.
//!
//! A receiver takes nothing but manifests until one verifies (and, with an
//! expected id, has that id); then it is bound to that session and that
//! manifest, and the [`FileSink`] writes each listed object into a
//! temporary file in its private staging directory; the files are renamed
//! into place only once every file of the manifest has verified, so a
//! transfer is placed whole or not at all. A bound session that stops making
//! progress is dropped after [`SinkConfig::idle_timeout`].

use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub mod hashing;

use super::IoError;
pub use super::manifest::{
    DEFAULT_PART_SIZE, Entry, MANIFEST_HEADER, MANIFEST_NAME, MAX_MANIFEST_BYTES, Manifest,
    ObjectLayout, PACK_BELOW, PACK_SIZE, PART_SIZE_RANGE, Pack, Part, STAGING_DIR, Segment,
    TEMP_PREFIX, TransferId, part_ranges, safe_relative_path,
};
pub use super::sink::{
    DEFAULT_IDLE_TIMEOUT, FileSink, Refusal, STALE_STAGING_AGE, SinkConfig, resume_name,
};
use crate::proto::{Admission, ObjectId};
use crate::units::format_size;
use hashing::file_changed;
pub use hashing::{FileHash, hash_file, hash_file_part, hash_file_parts, hash_open_file};

/// A file to send: where it is, and what the manifest will say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Relative path in the manifest, `/`-separated.
    pub path: String,
    /// Size in bytes when collected.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// The file on disk.
    pub file: PathBuf,
}

/// Collects what to send for `path`: the file itself, or every regular file
/// beneath a directory, with paths relative to it, in sorted order. Symbolic
/// links are not followed. Refuses a directory with no file in it.
pub fn collect(path: &Path) -> Result<Vec<Source>, IoError> {
    let ferr = |p: &Path| {
        let p = p.display().to_string();
        move |source| IoError::File { path: p, source }
    };
    let meta = fs::metadata(path).map_err(ferr(path))?;
    let mut out = Vec::new();
    if meta.is_file() {
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            IoError::Invalid(format!("{}: file name is not UTF-8", path.display()))
        })?;
        safe_relative_path(name)?;
        out.push(Source {
            path: name.to_owned(),
            size: meta.len(),
            mode: meta.permissions().mode() & 0o777,
            file: path.to_owned(),
        });
        return Ok(out);
    }
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(ferr(&dir))? {
            let entry = entry.map_err(ferr(&dir))?;
            let p = entry.path();
            let m = fs::symlink_metadata(&p).map_err(ferr(&p))?;
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let rel = p.strip_prefix(path).expect("beneath the root");
                let rel = rel
                    .to_str()
                    .ok_or_else(|| IoError::Invalid(format!("{}: path is not UTF-8", p.display())))?
                    .to_owned();
                safe_relative_path(&rel)?;
                out.push(Source {
                    path: rel,
                    size: m.len(),
                    mode: m.permissions().mode() & 0o777,
                    file: p,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(IoError::Invalid(format!(
            "nothing to send: {} holds no regular file",
            path.display()
        )));
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The manifest of `sources`, given each file's hashes, in order: a file
/// larger than `part_size` is listed in parts, one object each; files packed
/// together (`FileHash::pack`) share one object.
pub fn manifest_of(sources: &[Source], hashes: &[FileHash], part_size: u64) -> Manifest {
    let mut object = 1u32;
    let mut pack_object = 0;
    let mut entries = Vec::with_capacity(sources.len());
    for (s, h) in sources.iter().zip(hashes) {
        if let Some(p) = h.pack {
            if p.offset == 0 {
                pack_object = object;
                object += 1;
            }
            entries.push(Entry {
                object: ObjectId(pack_object),
                path: s.path.clone(),
                size: s.size,
                mode: s.mode,
                hash: h.hash,
                parts: Vec::new(),
                pack: Some(p),
            });
            continue;
        }
        let parts: Vec<Part> = if h.parts.is_empty() {
            Vec::new()
        } else {
            part_ranges(s.size, part_size)
                .into_iter()
                .zip(&h.parts)
                .enumerate()
                .map(|(i, ((offset, size), hash))| Part {
                    object: ObjectId(object + i as u32),
                    offset,
                    size,
                    hash: *hash,
                })
                .collect()
        };
        entries.push(Entry {
            object: ObjectId(object),
            path: s.path.clone(),
            size: s.size,
            mode: s.mode,
            hash: h.hash,
            parts,
            pack: None,
        });
        object += h.parts.len().max(1) as u32;
    }
    Manifest { part_size, entries }
}

/// Which files `send_path` packs together: runs of two or more files, one
/// after the other in path order, each non-empty and smaller than
/// [`PACK_BELOW`], at most [`PACK_SIZE`] (or `part_size`) bytes a pack. Each
/// file's pack (an index) and offset in it, if packed.
pub fn packing(sources: &[Source], part_size: u64) -> Vec<Option<(usize, u64)>> {
    let limit = PACK_SIZE.min(part_size);
    let mut out = vec![None; sources.len()];
    let mut run: Vec<usize> = Vec::new();
    let mut bytes = 0u64;
    let mut packs = 0;
    let mut flush = |run: &mut Vec<usize>, out: &mut Vec<Option<(usize, u64)>>| {
        if run.len() >= 2 {
            let mut at = 0;
            for &i in run.iter() {
                out[i] = Some((packs, at));
                at += sources[i].size;
            }
            packs += 1;
        }
        run.clear();
    };
    for (i, s) in sources.iter().enumerate() {
        let small = s.size > 0 && s.size < PACK_BELOW;
        if !small || bytes + s.size > limit {
            flush(&mut run, &mut out);
            bytes = 0;
        }
        if small {
            run.push(i);
            bytes += s.size;
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Hashes every file of `sources` (and its parts), streaming, and each pack
/// of small files ([`packing`]) as it goes. Packs are hashed on a few threads
/// at once (a tree of ten thousand small files is mostly opening and reading
/// them); a large file streams through its own two-lane pass.
fn hash_sources(sources: &[Source], part_size: u64) -> Result<Vec<FileHash>, IoError> {
    let plan = packing(sources, part_size);
    // Each pack's members, in order.
    let mut packs: Vec<Vec<usize>> = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        if let Some((index, _)) = p {
            if packs.len() <= *index {
                packs.resize_with(index + 1, Vec::new);
            }
            packs[*index].push(i);
        }
    }
    let mut out: Vec<Option<FileHash>> = (0..sources.len()).map(|_| None).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(packs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let hashed: Vec<Result<Vec<(usize, FileHash)>, IoError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<Vec<(usize, FileHash)>, IoError> {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(members) = packs.get(k) else {
                            return Ok(done);
                        };
                        done.extend(hash_pack(sources, &plan, members)?);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for r in hashed {
        for (i, h) in r? {
            out[i] = Some(h);
        }
    }
    for (i, s) in sources.iter().enumerate() {
        if plan[i].is_none() {
            let h =
                hash_file_parts(&s.file, s.size, part_size).map_err(|source| IoError::File {
                    path: s.file.display().to_string(),
                    source,
                })?;
            out[i] = Some(h);
        }
    }
    Ok(out
        .into_iter()
        .map(|h| h.expect("every file hashed"))
        .collect())
}

/// One pack's files: each read whole, once, for its own hash and the pack's.
fn hash_pack(
    sources: &[Source],
    plan: &[Option<(usize, u64)>],
    members: &[usize],
) -> Result<Vec<(usize, FileHash)>, IoError> {
    let mut pack = blake3::Hasher::new();
    let mut out = Vec::with_capacity(members.len());
    let mut size = 0;
    for &i in members {
        let s = &sources[i];
        let ferr = |source| IoError::File {
            path: s.file.display().to_string(),
            source,
        };
        let data = fs::read(&s.file).map_err(ferr)?;
        if data.len() as u64 != s.size {
            return Err(ferr(file_changed()));
        }
        pack.update(&data);
        size += s.size;
        out.push((
            i,
            FileHash {
                hash: *blake3::hash(&data).as_bytes(),
                parts: Vec::new(),
                pack: Some(Pack {
                    offset: plan[i].map_or(0, |p| p.1),
                    size: 0,
                    hash: [0; 32],
                }),
            },
        ));
    }
    let hash = *pack.finalize().as_bytes();
    for (_, h) in &mut out {
        if let Some(p) = h.pack.as_mut() {
            p.size = size;
            p.hash = hash;
        }
    }
    Ok(out)
}

/// Checks a part size given by the user.
pub fn check_part_size(part_size: u64) -> Result<(), IoError> {
    if !PART_SIZE_RANGE.contains(&part_size) {
        Err(IoError::Invalid(format!(
            "a part size of {} is outside {}..={}",
            format_size(part_size),
            format_size(*PART_SIZE_RANGE.start()),
            format_size(*PART_SIZE_RANGE.end())
        )))
    } else if !part_size.is_power_of_two() {
        // Each part is then a subtree of the file's BLAKE3 tree, hashed once
        // for both the part and the file (protocol.md §11.1).
        Err(IoError::Invalid(format!(
            "a part size of {} is not a power of two (for example {} or {})",
            format_size(part_size),
            format_size(part_size.next_power_of_two() / 2),
            format_size(part_size.next_power_of_two())
        )))
    } else {
        Ok(())
    }
}

/// The transfer id `send_path` would announce for `path` at `part_size`,
/// computed by streaming every file through BLAKE3 once, without sending or
/// loading anything. Files that change size meanwhile are an error.
pub fn transfer_id(path: &Path, part_size: u64) -> Result<TransferId, IoError> {
    check_part_size(part_size)?;
    let sources = collect(path)?;
    let hashes = hash_sources(&sources, part_size)?;
    Ok(manifest_of(&sources, &hashes, part_size).transfer_id())
}

/// What a file transfer did, for `--stats-json`.
#[derive(Debug, Clone, Default)]
pub struct TransferReport {
    /// Seconds from the first packet to the end.
    pub duration_s: f64,
    /// Files in the transfer (receivers: written).
    pub files: usize,
    /// Bytes of file data.
    pub file_bytes: u64,
    /// Driver counters.
    pub driver: super::DriverStats,
    /// The transfer id (receivers: of the bound manifest, if any).
    pub transfer_id: Option<TransferId>,
    /// Receivers: the session of the bound manifest, if any.
    pub session: Option<crate::proto::SessionId>,
    /// Objects and files the file sink refused, by reason.
    pub refused: Vec<(Refusal, u64)>,
    /// Files of the manifest that were refused, with why.
    pub refused_files: Vec<(String, String)>,
    /// Files of the manifest in place already, identical, and kept as they
    /// were (counted in `files` too).
    pub files_kept: usize,
    /// Parts of files found verified in resumable temporary files, and their
    /// bytes: not received in this run.
    pub parts_resumed: usize,
    /// Bytes of those parts.
    pub bytes_resumed: u64,
    /// Receivers: the paths placed (renamed into place), in manifest order;
    /// empty unless the whole transfer verified. Files kept as they were are
    /// not listed.
    pub changed: Vec<String>,
    /// Receivers: what the file sink found and dealt with that the user
    /// should hear of ([`FileSink::notes`]).
    pub notes: Vec<String>,
    /// Receivers: the bound session was dropped after
    /// [`SinkConfig::idle_timeout`] without progress.
    pub idle_dropped: bool,
}

/// Watches a count of progress steps against a time limit: expired once the
/// count has not moved for the limit. Time comes in as a parameter.
#[derive(Debug, Clone)]
pub struct IdleWatch {
    limit: std::time::Duration,
    seen: Option<u64>,
    since: std::time::Instant,
}

impl IdleWatch {
    /// A watch that expires after `limit` without progress, from `now`.
    pub fn new(limit: std::time::Duration, now: std::time::Instant) -> Self {
        Self {
            limit,
            seen: None,
            since: now,
        }
    }

    /// Notes the count at `now` (a change restarts the wait); whether it has
    /// stood still for the limit.
    pub fn expired(&mut self, now: std::time::Instant, count: u64) -> bool {
        if self.seen != Some(count) {
            self.seen = Some(count);
            self.since = now;
        }
        now.saturating_duration_since(self.since) >= self.limit
    }
}

/// Reads the blocks a sender asks for from its files, keeping a few open.
struct BlockReader<'a> {
    files: &'a [Source],
    /// Each file object's bytes (object i + 1: object 0 is the manifest), as
    /// [`Manifest::objects`] lays them out: segments in order, each of a
    /// file (`entry`, an index in `files`). One segment for a file or a part,
    /// one a file for a pack.
    objects: Vec<Vec<Segment>>,
    /// Open files, by index in `files`, the most recently used last.
    open: VecDeque<(usize, fs::File)>,
}

impl BlockReader<'_> {
    /// Open files kept (the least recently used closed first).
    const OPEN: usize = 16;

    /// Reads the block `req` names into `buf` (emptied first; a buffer of
    /// the block's size is reused without a new allocation).
    fn read(
        &mut self,
        req: crate::proto::BlockRequest,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, IoError> {
        let Some(segments) = (req.object.0 as usize)
            .checked_sub(1)
            .and_then(|i| self.objects.get(i))
        else {
            return Err(IoError::Invalid(format!(
                "the sender asked for object {}, which is no file",
                req.object.0
            )));
        };
        // Filled from the files without being zeroed first.
        buf.clear();
        buf.reserve_exact(req.len);
        let (start, end) = (req.offset, req.offset + req.len as u64);
        for seg in segments {
            let (from, to) = (start.max(seg.at_object), end.min(seg.at_object + seg.len));
            // The segments are in order, so each continues the buffer.
            if from < to && buf.len() as u64 == from - start {
                let n = (to - from) as usize;
                Self::read_at(
                    self.files,
                    &mut self.open,
                    seg.entry,
                    seg.at_file + from - seg.at_object,
                    n,
                    &mut buf,
                )?;
            }
        }
        if buf.len() != req.len {
            return Err(IoError::Invalid(format!(
                "the sender asked for bytes {start}..{end} of object {}, past its end",
                req.object.0
            )));
        }
        Ok(buf)
    }

    /// Appends `len` bytes of `files[file]` at `offset` to `buf`, through the
    /// open files.
    fn read_at(
        files: &[Source],
        open: &mut VecDeque<(usize, fs::File)>,
        file: usize,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<(), IoError> {
        let s = &files[file];
        let ferr = |source| IoError::File {
            path: s.file.display().to_string(),
            source,
        };
        let at = match open.iter().position(|(f, _)| *f == file) {
            Some(at) => at,
            None => {
                if open.len() >= Self::OPEN {
                    open.pop_front();
                }
                open.push_back((file, fs::File::open(&s.file).map_err(ferr)?));
                open.len() - 1
            }
        };
        let read = super::sys::pread_append(&open[at].1, buf, len, offset);
        if let Some(entry) = open.remove(at) {
            open.push_back(entry);
        }
        read.map_err(|e| {
            ferr(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::other("file shrank while it was sent")
            } else {
                e
            })
        })
    }
}

/// Sends `path` (a file, or every file beneath a directory) with a manifest,
/// until the sender finishes or `stop` returns true. A file larger than
/// `part_size` goes as several objects of that size (its parts, §11).
/// `ready` is called once with the transfer id, before the first packet goes
/// out.
pub fn send_path(
    net: &super::NetConfig,
    sender_config: crate::proto::SenderConfig,
    path: &Path,
    part_size: u64,
    ready: impl FnOnce(TransferId),
    progress: impl FnMut(&crate::proto::SenderStats),
    stop: impl FnMut(&crate::proto::SenderStats) -> bool,
) -> Result<(crate::proto::SenderStats, TransferReport), IoError> {
    check_part_size(part_size)?;
    let sources = collect(path)?;
    // A first pass hashes every file, streaming; the sender then reads each
    // block when it needs it (`Sender::add_object_blocks`), so memory is
    // bounded by its window, not by the files.
    let hashes = hash_sources(&sources, part_size)?;
    let manifest = manifest_of(&sources, &hashes, part_size);
    let bytes = manifest.encode();
    let id = TransferId::of(&bytes);
    // Receivers take nothing before the manifest: protect it.
    let mut config = crate::proto::SenderConfig {
        lead_protection: true,
        ..sender_config
    };
    super::decode::fit_blocks_to_codec(&mut config);
    super::starting_sender(&mut config);
    let mut sender = crate::proto::Sender::new(config)?;
    sender.add_object_hashed(bytes, id.0, MANIFEST_NAME)?;
    let file_bytes = manifest.entries.iter().map(|e| e.size).sum();
    let mut objects = Vec::new();
    for o in manifest.objects() {
        sender.add_object_blocks(o.size, o.hash, &o.name)?;
        objects.push(o.segments);
    }

    let mut sock = super::McastSocket::sender(net)?;
    ready(id);
    let started = std::time::Instant::now();
    let mut reader = BlockReader {
        files: &sources,
        objects,
        open: VecDeque::new(),
    };
    let driver = super::run_sender_from(
        &mut sender,
        &mut sock,
        &mut |req, buf| reader.read(req, buf),
        progress,
        stop,
    )?;
    Ok((
        sender.stats().clone(),
        TransferReport {
            duration_s: started.elapsed().as_secs_f64(),
            files: sources.len(),
            file_bytes,
            driver,
            transfer_id: Some(id),
            ..TransferReport::default()
        },
    ))
}

/// The file sink as a receive driver's application ([`receive_into`]).
struct SinkApp<P, S> {
    sink: FileSink,
    /// Told of progress about ten times a second, and at the end.
    progress: P,
    /// The caller's stop check.
    stop: S,
    /// When `progress` was last told.
    last: std::time::Instant,
    idle: Option<IdleWatch>,
    /// Whether the bound session was dropped for standing still.
    idle_dropped: bool,
}

impl<P, S> super::RecvApp for SinkApp<P, S>
where
    P: FnMut(&crate::proto::Receiver, &FileSink),
    S: FnMut() -> bool,
{
    fn event(
        &mut self,
        r: &mut crate::proto::Receiver,
        event: crate::proto::ReceiverEvent,
        _now: std::time::Instant,
    ) -> Result<std::ops::ControlFlow<()>, IoError> {
        sink_event(r, &mut self.sink, event)?;
        if self.last.elapsed() >= std::time::Duration::from_millis(100) {
            (self.progress)(r, &self.sink);
            self.last = std::time::Instant::now();
        }
        Ok(if self.sink.is_settled() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        })
    }

    fn tick(
        &mut self,
        r: &mut crate::proto::Receiver,
        _now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        serve_sink(r, &mut self.sink)
    }

    fn stop(&mut self) -> bool {
        // Only a bound session is dropped: waiting for a manifest has no end.
        if self.sink.bound().is_some()
            && let Some(w) = self.idle.as_mut()
            && w.expired(std::time::Instant::now(), self.sink.progress())
        {
            self.idle_dropped = true;
            return true;
        }
        (self.stop)()
    }
}

/// Receives a transfer into `dir` until every file of its manifest is in
/// place, or one is refused, or `timeout` passes, or the bound session makes
/// no progress for `sink.idle_timeout` (it is dropped: `idle_dropped` in the
/// report). The receiver takes only manifests until one verifies (with
/// `sink.expect`, only that one), then is bound to it (see
/// [`crate::Receiver::bind`]). The last element of the result is `Ok` only if
/// every file of the manifest was placed: it names what was refused, or
/// what was missing at the end. Files are placed only once all of them
/// verified: a transfer that ends otherwise places none, and no partial file
/// is ever left under a final name. Stats are returned either way.
pub fn receive_into(
    net: &super::NetConfig,
    mut receiver_config: crate::proto::ReceiverConfig,
    sink_config: SinkConfig,
    dir: &Path,
    timeout: Option<std::time::Duration>,
    stop: impl FnMut() -> bool,
    progress: impl FnMut(&crate::proto::Receiver, &FileSink),
) -> Result<
    (
        crate::proto::ReceiverStats,
        TransferReport,
        Result<(), String>,
    ),
    IoError,
> {
    receiver_config.admission = Admission::Manifest {
        expect: sink_config.expect.map(|id| id.0),
        max_size: MAX_MANIFEST_BYTES as u64,
    };
    let idle_limit = sink_config.idle_timeout;
    let sink = FileSink::new(dir, sink_config)?;
    super::starting_receiver(&mut receiver_config);
    let mut receiver = crate::proto::Receiver::new(receiver_config);
    let mut sock = super::McastSocket::receiver(net)?;
    let started = std::time::Instant::now();
    let deadline = timeout.map(|t| started + t);
    let mut app = SinkApp {
        sink,
        progress,
        stop,
        last: started,
        idle: idle_limit.map(|l| IdleWatch::new(l, started)),
        idle_dropped: false,
    };
    let (outcome, driver) = super::run_receiver_app(&mut receiver, &mut sock, deadline, &mut app)?;
    let SinkApp {
        sink,
        mut progress,
        idle_dropped,
        ..
    } = app;
    progress(&receiver, &sink);
    let report = TransferReport::of_sink(&sink, started, driver, idle_dropped);
    let end = ReceiveEnd {
        outcome,
        idle_dropped,
        idle_limit,
        started,
        packets: receiver.stats().packets_received,
    };
    let result = end.result(&sink);
    // Dropping the sink removes any unfinished temporary file.
    drop(sink);
    Ok((receiver.stats().clone(), report, result))
}

/// Hands one receiver event to the sink; once the sink has bound a
/// manifest, binds the receiver to it.
fn sink_event(
    r: &mut crate::proto::Receiver,
    sink: &mut FileSink,
    event: crate::proto::ReceiverEvent,
) -> Result<(), IoError> {
    sink.handle(event)?;
    if let Some((session, objects)) = sink.take_binding() {
        // The verified manifest names the transfer: from now on every
        // other session is foreign, and every unlisted object unexpected.
        r.bind(session, objects);
    }
    Ok(())
}

/// The receiving loop's turn for the sink: blocks still queued for the
/// writer hold the reported window, so that a slow disk slows the sender,
/// not the receiving thread; files verified whole are placed, a few a turn.
/// When to look again: soon while writes are queued (they move the hold).
fn serve_sink(r: &mut crate::proto::Receiver, sink: &mut FileSink) -> Option<std::time::Duration> {
    let placing = sink.service();
    let backlog = sink.write_backlog();
    if let Some((session, _)) = sink.bound() {
        r.hold_window(session, backlog.map(|(_, o, s)| (o, s)));
    }
    (placing || backlog.is_some()).then_some(std::time::Duration::from_millis(1))
}

impl TransferReport {
    /// A receiver's report: what `sink` did since `started`.
    fn of_sink(
        sink: &FileSink,
        started: std::time::Instant,
        driver: super::DriverStats,
        idle_dropped: bool,
    ) -> Self {
        Self {
            duration_s: started.elapsed().as_secs_f64(),
            files: sink.completed(),
            files_kept: sink.kept(),
            parts_resumed: sink.resumed().0,
            bytes_resumed: sink.resumed().1,
            file_bytes: sink.bytes_written,
            driver,
            transfer_id: sink.bound().map(|b| b.1),
            session: sink.bound().map(|b| b.0),
            refused: sink.refused_by_reason().collect(),
            refused_files: sink.refused_files().to_vec(),
            changed: sink.changed().to_vec(),
            notes: sink.notes().to_vec(),
            idle_dropped,
        }
    }
}

/// How a receiving loop ended, for [`ReceiveEnd::result`].
struct ReceiveEnd {
    outcome: super::RecvOutcome,
    idle_dropped: bool,
    idle_limit: Option<std::time::Duration>,
    started: std::time::Instant,
    packets: u64,
}

impl ReceiveEnd {
    /// `Ok` if every file of the manifest was placed; else what was refused,
    /// or what was missing when the loop ended.
    fn result(&self, sink: &FileSink) -> Result<(), String> {
        if sink.is_done() {
            Ok(())
        } else if self.outcome == super::RecvOutcome::Done {
            Err(refused_message(sink))
        } else {
            Err(self.unfinished_message(sink))
        }
    }

    /// The transfer did not finish: how the loop ended, and how far the
    /// transfer got.
    fn unfinished_message(&self, sink: &FileSink) -> String {
        let what = match sink.bound() {
            None => "no manifest verified".to_owned(),
            Some(_) => format!(
                "{} of {} files verified, none placed (a transfer is placed only whole)",
                sink.verified(),
                sink.files()
            ),
        };
        let how = if self.idle_dropped {
            format!(
                "dropped the transfer, idle (no progress for {} s)",
                self.idle_limit.map_or(0, |l| l.as_secs())
            )
        } else if self.outcome == super::RecvOutcome::TimedOut {
            "timed out".to_owned()
        } else {
            "interrupted".to_owned()
        };
        format!(
            "{how} after {:.0} s: {what} ({} packets received)",
            self.started.elapsed().as_secs_f64(),
            self.packets
        )
    }
}

/// The transfer settled with files refused: which, and why.
fn refused_message(sink: &FileSink) -> String {
    let list: Vec<String> = sink
        .refused_files()
        .iter()
        .map(|(p, why)| format!("  {}: {why}", p.escape_debug()))
        .collect();
    format!(
        "{} of {} files placed{}; refused:\n{}",
        sink.completed(),
        sink.files(),
        if sink.completed() > sink.kept() {
            ""
        } else {
            " (a transfer is placed only whole: none of its files replaced anything)"
        },
        list.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks come from the right file at the right offset, through a few
    /// open files; a file that shrank since it was hashed, or an object that
    /// is no file, is an error that names the problem.
    #[test]
    fn block_reads_come_from_the_right_file_and_refuse_a_shrunk_one() {
        let dir = std::env::temp_dir().join(format!("gc-blocks-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut files = Vec::new();
        for i in 0..20u8 {
            let p = dir.join(format!("f{i:02}"));
            fs::write(&p, vec![i; 1000]).unwrap();
            files.push(Source {
                file: p,
                path: format!("f{i:02}"),
                size: 1000,
                mode: 0o644,
            });
        }
        // A last file in two parts, objects 21 and 22, the second from 3000.
        let big = dir.join("big");
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&big, &data).unwrap();
        files.push(Source {
            file: big,
            path: "big".into(),
            size: 5000,
            mode: 0o644,
        });
        let mut objects: Vec<Vec<(usize, u64, u64)>> =
            (0..20).map(|i| vec![(i, 0, 1000)]).collect();
        objects.extend([vec![(20, 0, 3000)], vec![(20, 3000, 2000)]]);
        // Object 23 packs f00 and f01.
        objects.push(vec![(0, 0, 1000), (1, 0, 1000)]);
        // Each (file, where in it, how many), back to back in the object.
        let segments = |o: Vec<(usize, u64, u64)>| {
            let mut at_object = 0;
            o.into_iter()
                .map(|(entry, at_file, len)| {
                    at_object += len;
                    Segment {
                        entry,
                        at_object: at_object - len,
                        at_file,
                        len,
                    }
                })
                .collect()
        };
        let mut reader = BlockReader {
            files: &files,
            objects: objects.into_iter().map(segments).collect(),
            open: VecDeque::new(),
        };
        let req = |object: u32, offset: u64, len: usize| crate::proto::BlockRequest {
            object: ObjectId(object),
            sbn: 0,
            offset,
            len,
        };
        for round in 0..2 {
            for i in 0..20u32 {
                // A buffer handed back dirty is emptied first.
                let got = reader
                    .read(req(i + 1, 100 * round, 10), vec![0xaa; 40])
                    .unwrap();
                assert_eq!(got, vec![i as u8; 10]);
            }
        }
        assert!(reader.open.len() <= BlockReader::OPEN);
        assert_eq!(
            reader.read(req(21, 10, 20), Vec::new()).unwrap(),
            &data[10..30]
        );
        assert_eq!(
            reader.read(req(22, 10, 20), Vec::new()).unwrap(),
            &data[3010..3030]
        );
        assert!(
            reader.read(req(22, 1990, 20), Vec::new()).is_err(),
            "past the file's end"
        );
        let mut across = vec![0u8; 10];
        across.extend([1u8; 10]);
        assert_eq!(reader.read(req(23, 990, 20), Vec::new()).unwrap(), across);
        assert!(
            reader.read(req(23, 1990, 20), Vec::new()).is_err(),
            "past the pack's end"
        );
        fs::write(&files[3].file, vec![3u8; 500]).unwrap();
        let err = reader
            .read(req(4, 600, 100), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("shrank") && err.contains("f03"), "{err}");
        assert!(
            reader.read(req(0, 0, 1), Vec::new()).is_err(),
            "object 0 is the manifest"
        );
        assert!(reader.read(req(99, 0, 1), Vec::new()).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hash_file_matches_a_plain_hash_across_chunks() {
        let dir = std::env::temp_dir().join(format!("gc-rah-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for len in [0usize, 1, (1 << 20) - 1, 1 << 20, (9 << 20) + 3] {
            let p = dir.join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
            fs::write(&p, &data).unwrap();
            assert_eq!(
                hash_file(&p, len as u64).unwrap(),
                *blake3::hash(&data).as_bytes(),
                "hash at length {len}"
            );
            // A file not of the size listed changed since: refused.
            assert!(hash_file(&p, len as u64 + 1).is_err());
            if len > 0 {
                assert!(hash_file(&p, len as u64 - 1).is_err());
            }
        }
        assert!(hash_file(&dir.join("missing"), 0).is_err());
        // The id is that of the manifest of the files' plain hashes.
        let sources = collect(&dir).unwrap();
        let part = 2 << 20;
        let plan = packing(&sources, part);
        // f1 and f1048575 are small and neighbours: one pack.
        assert_eq!(plan.iter().flatten().count(), 2, "{plan:?}");
        let mut pack_data = Vec::new();
        for (s, p) in sources.iter().zip(&plan) {
            if p.is_some() {
                pack_data.extend(fs::read(&s.file).unwrap());
            }
        }
        let hashes: Vec<_> = sources
            .iter()
            .zip(&plan)
            .map(|(s, plan)| {
                let data = fs::read(&s.file).unwrap();
                let parts = if data.len() as u64 > part {
                    data.chunks(part as usize)
                        .enumerate()
                        .map(|(i, c)| crate::proto::part_cv(i as u64 * part, c).unwrap())
                        .collect()
                } else {
                    Vec::new()
                };
                FileHash {
                    hash: *blake3::hash(&data).as_bytes(),
                    parts,
                    pack: plan.map(|(_, offset)| Pack {
                        offset,
                        size: pack_data.len() as u64,
                        hash: *blake3::hash(&pack_data).as_bytes(),
                    }),
                }
            })
            .collect();
        assert_eq!(hashes.iter().filter(|h| h.parts.len() == 5).count(), 1);
        let m = manifest_of(&sources, &hashes, part);
        assert_eq!(transfer_id(&dir, part).unwrap(), m.transfer_id());
        assert_ne!(transfer_id(&dir, part * 4).unwrap(), m.transfer_id());
        assert!(transfer_id(&dir, 100).is_err(), "a part size below 4 KiB");
        assert!(transfer_id(&dir, 3 << 20).is_err(), "not a power of two");
        // The file in parts (the last) is objects 4..=7.
        let objects: Vec<u32> = m.entries.iter().map(|e| e.object.0).collect();
        assert_eq!(objects, [1, 2, 2, 3, 4]);
        let parts: Vec<(u32, u64)> = m.entries[4]
            .parts
            .iter()
            .map(|p| (p.object.0, p.offset))
            .collect();
        assert_eq!(
            parts,
            [
                (4, 0),
                (5, 2 << 20),
                (6, 4 << 20),
                (7, 6 << 20),
                (8, 8 << 20)
            ]
        );
        // Parts hashed in one pass, at part sizes that do and do not meet
        // the 1 MiB read chunks.
        let p = dir.join(format!("f{}", (9 << 20) + 3));
        let data = fs::read(&p).unwrap();
        for part in [4096u64, 1 << 20, 8 << 20, 16 << 20] {
            let h = hash_file_parts(&p, data.len() as u64, part).unwrap();
            let want: Vec<[u8; 32]> = if data.len() as u64 > part {
                data.chunks(part as usize)
                    .enumerate()
                    .map(|(i, c)| crate::proto::part_cv(i as u64 * part, c).unwrap())
                    .collect()
            } else {
                Vec::new()
            };
            assert_eq!(h.hash, *blake3::hash(&data).as_bytes());
            assert!(h.parts == want, "parts of {part}");
        }
        fs::remove_dir_all(&dir).unwrap();
        fs::create_dir_all(&dir).unwrap();
        assert!(
            collect(&dir).is_err(),
            "an empty directory has nothing to send"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
