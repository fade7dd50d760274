//! Writing a received transfer into a directory, safely.
//!
//! Every name and size here comes from the network, so the sink trusts
//! nothing but the verified manifest, and the file system nothing but the
//! descriptors it opened itself:
//! - before a manifest is bound, only manifests are buffered (in memory,
//!   bounded); after, only the objects the manifest lists are written, and
//!   only once their size and hash match its line;
//! - every path is resolved one component at a time from a descriptor of the
//!   output directory with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//!   so no `..` and no symbolic link is ever followed;
//! - data goes to a temporary file created with `O_CREAT | O_EXCL |
//!   O_NOFOLLOW` under a random name in the staging directory
//!   ([`STAGING_DIR`], in the output directory: created mode 0700, and used
//!   only if it is a directory of the receiving user that nobody else can
//!   write);
//! - a transfer is all or nothing: a file that verified waits there
//!   (staged), and files are renamed into place only once every file of the
//!   manifest has verified (or is kept), without replacing anything unless
//!   asked to (`RENAME_NOREPLACE`); once one file is refused, none is
//!   placed. [`FileSink::changed`] lists the paths placed;
//! - a regular file already in place with the manifest's size and BLAKE3
//!   hash (opened without following links, hashed in chunks) is kept as it
//!   is and not received at all (`kept`): an update sends what changed;
//! - a file in parts goes into a temporary file in the staging directory
//!   named after its content and path ([`resume_name`]), which is kept when
//!   the sink stops with parts of it verified; a later sink bound to a
//!   manifest listing the same file hashes each part found there against its
//!   part line and receives only the rest (`resumed`). Such a file is
//!   created `O_EXCL` and reopened only if it is a regular file of the
//!   receiving user with one link, opened without following a link;
//!   anything else under its name is removed, reported
//!   ([`FileSink::notes`]), and the file received from its start. Files in
//!   the staging directory not modified for [`STALE_STAGING_AGE`] are
//!   removed when a sink starts;
//! - modes are masked by the umask and never world-writable, unless asked;
//! - a file-system failure caused by a name or size refuses that file: it is
//!   counted and reported, and the sink settles with nothing of the
//!   transfer placed (a local failure of the output directory itself is an
//!   error instead).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

use super::IoError;
use super::files::hashing::{hash_file_part, hash_open_file};
use super::manifest::{
    MANIFEST_NAME, MAX_MANIFEST_BYTES, Manifest, ObjectLayout, STAGING_DIR, Segment, TEMP_PREFIX,
    TransferId,
};
use super::writer::{Piece as WritePiece, Writer};
use crate::proto::{BoundObject, ObjectId, ReceiverEvent, SessionId};

/// Why the sink refused an object or a file. Each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// An object of a session the sink is not bound to, or one its manifest
    /// does not list.
    NotInManifest,
    /// Size, hash or offset differ from the manifest's line.
    ManifestMismatch,
    /// Object 0 did not decode as a valid manifest (§11).
    InvalidManifest,
    /// A manifest whose transfer id is not the one expected.
    WrongTransfer,
    /// The file exists already (and `overwrite` is off).
    Exists,
    /// The path crosses a symbolic link, or something not a directory.
    UnsafePath,
    /// The file is larger than `max_file_size`.
    TooLarge,
    /// Any other file-system failure for this name or size.
    FileSystem,
}

impl Refusal {
    /// Every reason, in a stable order.
    pub const ALL: [Refusal; 8] = [
        Self::NotInManifest,
        Self::ManifestMismatch,
        Self::InvalidManifest,
        Self::WrongTransfer,
        Self::Exists,
        Self::UnsafePath,
        Self::TooLarge,
        Self::FileSystem,
    ];

    /// A stable snake_case name, as in `--stats-json`'s `refused_by_reason`.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotInManifest => "not_in_manifest",
            Self::ManifestMismatch => "manifest_mismatch",
            Self::InvalidManifest => "invalid_manifest",
            Self::WrongTransfer => "wrong_transfer",
            Self::Exists => "exists",
            Self::UnsafePath => "unsafe_path",
            Self::TooLarge => "too_large",
            Self::FileSystem => "file_system",
        }
    }
}

/// Settings of a [`FileSink`].
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Replace files that exist already. Default false: such a file is refused.
    pub overwrite: bool,
    /// Apply the manifest's modes as they are. Default false: masked by the
    /// umask, and never writable by others.
    pub keep_modes: bool,
    /// Accept only the manifest with this transfer id.
    pub expect: Option<TransferId>,
    /// Largest file accepted; a larger manifest line is refused (`too_large`).
    pub max_file_size: u64,
    /// Refuse (fail early) a manifest whose files do not fit the free space.
    pub check_space: bool,
    /// [`super::files::receive_into`] drops the bound session (and ends,
    /// placing nothing) after this long without progress: no block of an
    /// object it lists decoded for the first time, and no object verified.
    /// `None`: never. Default [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Option<std::time::Duration>,
    /// Files in the staging directory whose last change is older than this
    /// are removed when a sink starts. Default [`STALE_STAGING_AGE`].
    pub stale_after: std::time::Duration,
}

/// How long [`super::files::receive_into`] waits for progress from the bound
/// session before it drops it: the receiver core's own idle timeout for an
/// object (`ReceiverConfig::idle_timeout`).
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Files in the staging directory (resumable files of files in parts,
/// temporary files of a process that died) older than this, by their
/// modification time, are removed when a sink starts: 7 days.
pub const STALE_STAGING_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            overwrite: false,
            keep_modes: false,
            expect: None,
            max_file_size: u64::MAX,
            check_space: true,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            stale_after: STALE_STAGING_AGE,
        }
    }
}

/// A pack's bytes, written into one temporary file of its own; once the
/// pack verifies, each of its files is copied out of it and placed. (A
/// temporary file per packed file would hold a descriptor per file: a pack of
/// tiny files would run out of them.)
struct PackTemp {
    tmp: String,
    file: Arc<File>,
    /// The writer's sequence number of its last queued write.
    last_write: u64,
}

/// The writer's key for a pack's temporary file: counted down from the top,
/// apart from the files' keys (their places in the manifest).
fn pack_key(object: ObjectId) -> usize {
    usize::MAX - object.0 as usize
}

enum State {
    /// Nothing written yet.
    Waiting,
    /// Blocks are being written into a temporary file (by the writer thread,
    /// which holds the descriptor too while writes are queued).
    Writing { tmp: String, file: Arc<File> },
    /// Verified whole, sized and given its mode, and waiting in the staging
    /// directory under `tmp` until every file of the manifest has verified.
    Staged { tmp: String },
    /// Renamed into place (or kept, identical): never written again.
    Done,
    /// Refused: never written.
    Refused,
}

/// One file of the bound manifest, keyed by its place in it.
struct Slot {
    entry: super::manifest::Entry,
    state: State,
    /// Its objects (parts) verified and written so far.
    parts_done: HashSet<ObjectId>,
    /// The writer's sequence number of its last queued write.
    last_write: u64,
    /// Verified whole, and waiting for its writes to be placed.
    placing: bool,
}

/// Files placed at most per event or [`FileSink::service`] call (about 35
/// µs each).
const PLACE_BUDGET: usize = 16;

/// Most sessions whose manifest is buffered at once, before one is bound.
const MAX_MANIFEST_SESSIONS: usize = 8;

/// Writes a received transfer into a directory. Feed it every [`ReceiverEvent`];
/// see the [module docs](self) for what it refuses.
pub struct FileSink {
    root: OwnedFd,
    /// The staging directory ([`STAGING_DIR`]): every temporary file is here.
    stage: OwnedFd,
    /// The owner this process's files get (checked on every resumable file).
    uid: u32,
    dir: PathBuf,
    config: SinkConfig,
    umask: u32,
    manifest_bufs: HashMap<SessionId, Vec<u8>>,
    bound: Option<(SessionId, TransferId)>,
    binding: Option<Vec<BoundObject>>,
    slots: HashMap<usize, Slot>,
    /// Every object of the bound manifest: its size and hash, and where its
    /// bytes go (one file, or the files of a pack; a pack's bytes go to a
    /// temporary file of its own first, [`PackTemp`]).
    objects: HashMap<ObjectId, ObjectLayout>,
    refused: HashMap<Refusal, u64>,
    refused_files: Vec<(String, String)>,
    done: usize,
    kept: usize,
    /// Files verified whole and waiting in the staging directory.
    staged: usize,
    /// A file was refused: the transfer cannot be placed whole, so nothing is.
    failed: bool,
    /// Paths placed (renamed into place), in manifest order.
    changed: Vec<String>,
    /// What the sink found and dealt with that the user should hear of.
    notes: Vec<String>,
    /// Blocks of the bound transfer seen decoded, by object and SBN (a block
    /// decoded again after its object failed is no progress).
    blocks_seen: HashSet<(ObjectId, u8)>,
    /// Steps of progress of the bound transfer: blocks seen for the first
    /// time, objects verified.
    progress: u64,
    /// Parts found verified in a resumable temporary file, and their bytes.
    resumed: (usize, u64),
    /// Bytes written into files so far (queued for the writer thread).
    pub bytes_written: u64,
    writer: Writer,
    /// Files verified whole whose writes are still queued (`Slot::placing`).
    placing: Vec<usize>,
    /// The bound session's blocks queued for the writer: sequence number,
    /// object and SBN, in queueing order.
    queued: VecDeque<(u64, ObjectId, u8)>,
    /// Packs being written, by object.
    packs: HashMap<ObjectId, PackTemp>,
    dirs: RefCell<DirCache>,
}

fn fs_err(path: &str) -> impl FnOnce(Errno) -> IoError + '_ {
    move |e| IoError::File {
        path: path.to_owned(),
        source: e.into(),
    }
}

impl FileSink {
    /// A sink writing under `dir`, which must exist and be writable.
    pub fn new(dir: &Path, config: SinkConfig) -> Result<Self, IoError> {
        let shown = dir.display().to_string();
        let root = rustix::fs::open(
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fs_err(&shown))?;
        let (name, file) = create_temp(&root).map_err(|e| IoError::File {
            path: format!("{shown} (output directory is not writable)"),
            source: e.into(),
        })?;
        // The owner our files get: the only one trusted in the staging directory.
        let uid = rustix::fs::fstat(&file).map(|st| st.st_uid);
        drop(file);
        remove_temp(&root, &name);
        let uid = uid.map_err(fs_err(&shown))?;
        let stage = open_stage(&root, uid).map_err(|detail| IoError::File {
            path: format!("{shown}/{STAGING_DIR}"),
            source: std::io::Error::other(detail),
        })?;
        let notes = remove_stale(&stage, config.stale_after);
        Ok(Self {
            root,
            stage,
            uid,
            dir: dir.to_owned(),
            config,
            umask: umask(),
            manifest_bufs: HashMap::new(),
            bound: None,
            binding: None,
            slots: HashMap::new(),
            objects: HashMap::new(),
            refused: HashMap::new(),
            refused_files: Vec::new(),
            done: 0,
            kept: 0,
            staged: 0,
            failed: false,
            changed: Vec::new(),
            notes,
            blocks_seen: HashSet::new(),
            progress: 0,
            resumed: (0, 0),
            bytes_written: 0,
            placing: Vec::new(),
            queued: VecDeque::new(),
            packs: HashMap::new(),
            dirs: RefCell::default(),
            writer: Writer::new().map_err(|e| IoError::File {
                path: format!("{shown} (starting the writer thread)"),
                source: e,
            })?,
        })
    }

    /// The session and transfer id of the bound manifest, once one verified.
    pub fn bound(&self) -> Option<(SessionId, TransferId)> {
        self.bound
    }

    /// The objects the receiver core should be bound to
    /// ([`crate::Receiver::bind`]), once, right after the manifest verified.
    /// Refused files are left out.
    pub fn take_binding(&mut self) -> Option<(SessionId, Vec<BoundObject>)> {
        let session = self.bound?.0;
        self.binding.take().map(|b| (session, b))
    }

    /// The first block (session, object, SBN) of the bound transfer whose
    /// bytes are still queued for the writer thread, if any: what the
    /// receiver's reported window should be held at
    /// ([`crate::Receiver::hold_window`]), so that a writer slower than the
    /// network slows the sender instead of the receiving thread.
    pub fn write_backlog(&mut self) -> Option<(SessionId, ObjectId, u8)> {
        let done = self.writer.done();
        while self.queued.front().is_some_and(|q| q.0 <= done) {
            self.queued.pop_front();
        }
        let session = self.bound?.0;
        let (_, object, sbn) = self.queued.iter().min_by_key(|q| (q.1, q.2))?;
        Some((session, *object, *sbn))
    }

    /// Places some of the files verified whole whose writes are done (a few
    /// at a time, so that the receiving thread can call it between
    /// datagrams), and says whether more wait for it or for the writer.
    pub fn service(&mut self) -> bool {
        self.place_ready(false);
        !self.placing.is_empty()
    }

    /// Waits for every queued write, and places the files verified whole
    /// meanwhile. (The sink places them by itself at later events, and waits
    /// by itself once nothing but them is left.)
    pub fn flush(&mut self) {
        self.place_ready(true);
    }

    /// The bound manifest's entries.
    pub fn entries(&self) -> impl Iterator<Item = &super::manifest::Entry> + '_ {
        let mut v: Vec<_> = self.slots.iter().collect();
        v.sort_by_key(|(k, _)| **k);
        v.into_iter().map(|(_, s)| &s.entry)
    }

    /// Files in the bound manifest (0 before one is bound).
    pub fn files(&self) -> usize {
        self.slots.len()
    }

    /// Files in place: renamed into place once the whole transfer verified,
    /// or kept (identical already).
    pub fn completed(&self) -> usize {
        self.done
    }

    /// Files verified so far: in place, kept, or staged (waiting for the
    /// rest of the transfer).
    pub fn verified(&self) -> usize {
        self.done + self.staged
    }

    /// The paths placed (renamed into place), in manifest order; files kept
    /// as they were are not listed. Empty until the whole transfer verified.
    pub fn changed(&self) -> &[String] {
        &self.changed
    }

    /// What the sink found and dealt with on its own that the user should
    /// hear of: stale files removed from the staging directory, a planted
    /// resumable file removed.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// A count that grows while the bound transfer makes progress (a block
    /// of a listed object decoded for the first time, an object verified):
    /// what [`SinkConfig::idle_timeout`] watches.
    pub fn progress(&self) -> u64 {
        self.progress
    }

    /// Whether every file of the bound manifest is in place.
    pub fn is_done(&self) -> bool {
        self.bound.is_some() && self.done == self.slots.len()
    }

    /// Whether nothing more can happen: every file of the bound manifest is
    /// in place, or one was refused (and so none is placed).
    pub fn is_settled(&self) -> bool {
        self.bound.is_some()
            && (self.failed
                || self
                    .slots
                    .values()
                    .all(|s| matches!(s.state, State::Done | State::Refused)))
    }

    /// Refusals, by reason (non-zero only).
    pub fn refused_by_reason(&self) -> impl Iterator<Item = (Refusal, u64)> + '_ {
        Refusal::ALL
            .iter()
            .filter_map(|r| self.refused.get(r).map(|n| (*r, *n)))
    }

    /// Refusals in all.
    pub fn refused(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Files of the bound manifest that were refused, with why.
    pub fn refused_files(&self) -> &[(String, String)] {
        &self.refused_files
    }

    fn count(&mut self, why: Refusal) {
        *self.refused.entry(why).or_default() += 1;
    }

    /// Refuses the files whose queued writes failed (those not placed or
    /// refused already); whether any write had failed.
    fn take_write_failures(&mut self) -> bool {
        let failures = self.writer.take_failures();
        let any = !failures.is_empty();
        for (key, e) in failures {
            let pack = self
                .packs
                .keys()
                .copied()
                .find(|&object| pack_key(object) == key);
            if let Some(object) = pack {
                // A pack's write failed: each of its files still waiting.
                let keys: Vec<usize> = self.objects[&object]
                    .segments
                    .iter()
                    .map(|p| p.entry)
                    .collect();
                for key in keys {
                    let slot = &self.slots[&key];
                    if !matches!(
                        slot.state,
                        State::Staged { .. } | State::Done | State::Refused
                    ) {
                        let path = slot.entry.path.clone();
                        self.refuse_file(key, Refusal::FileSystem, format!("{path}: {e}"));
                    }
                }
                continue;
            }
            if let Some(slot) = self.slots.get(&key)
                && matches!(slot.state, State::Writing { .. })
            {
                let path = slot.entry.path.clone();
                self.refuse_file(key, Refusal::FileSystem, format!("{path}: {e}"));
            }
        }
        any
    }

    /// A file being written goes back to waiting, its temporary file removed.
    /// A file that waits, is in place or was refused stays as it is.
    /// `key` is the file's place in the manifest.
    fn drop_temp(&mut self, key: usize) {
        if let Some(slot) = self.slots.get_mut(&key)
            && matches!(slot.state, State::Writing { .. })
            && let State::Writing { tmp, .. } = std::mem::replace(&mut slot.state, State::Waiting)
        {
            remove_temp(&self.stage, &tmp);
        }
    }

    /// Refuses one file of the manifest, removing its temporary file.
    fn refuse_file(&mut self, key: usize, why: Refusal, detail: String) {
        self.count(why);
        self.drop_temp(key);
        self.failed = true;
        if let Some(slot) = self.slots.get_mut(&key) {
            if let State::Staged { tmp } = &slot.state {
                if slot.entry.parts.is_empty() {
                    remove_temp(&self.stage, tmp);
                }
                self.staged -= 1;
            }
            slot.state = State::Refused;
            slot.placing = false;
            self.refused_files.push((slot.entry.path.clone(), detail));
        }
    }

    /// Handles one receiver event. Errors are local failures that end the
    /// transfer (the output directory itself failing, or too little space
    /// for a verified manifest); everything the network can cause is a
    /// counted refusal.
    pub fn handle(&mut self, event: ReceiverEvent) -> Result<(), IoError> {
        self.place_ready(false);
        let ends_object = matches!(
            event,
            ReceiverEvent::ObjectComplete { .. } | ReceiverEvent::ObjectFailed { .. }
        );
        self.handle_event(event)?;
        // Files wait for their writes to be placed; once nothing else is
        // left to receive, wait for the writer here, so the sink settles.
        if ends_object
            && !self.placing.is_empty()
            && self.slots.values().all(|s| {
                s.placing || matches!(s.state, State::Staged { .. } | State::Done | State::Refused)
            })
        {
            self.place_ready(true);
        }
        Ok(())
    }

    fn handle_event(&mut self, event: ReceiverEvent) -> Result<(), IoError> {
        match event {
            ReceiverEvent::BlockDecoded {
                session,
                object,
                offset,
                sbn,
                data,
            } => self.block(session, object, offset, sbn, data),
            ReceiverEvent::ObjectComplete {
                session,
                object,
                size,
                hash,
                name,
            } => {
                if self.bound.is_none() && object == ObjectId(0) {
                    return self.manifest(session, size, hash, &name);
                }
                self.complete(session, object, size, hash);
                Ok(())
            }
            // A conflict concerns an object completed without a manifest to
            // pin it; what the sink holds stays as it was verified.
            ReceiverEvent::ObjectFailed {
                reason: crate::FailReason::Conflict,
                ..
            } => Ok(()),
            ReceiverEvent::ObjectFailed {
                session, object, ..
            } => {
                if self.bound.is_some_and(|b| b.0 == session) {
                    self.part_failed(object);
                } else if object == ObjectId(0) {
                    self.manifest_bufs.remove(&session);
                }
                Ok(())
            }
            ReceiverEvent::ObjectAnnounced { .. } => Ok(()),
        }
    }

    /// A block decoded: buffered if it is of a manifest (before one is
    /// bound), written if it is of an object of the bound manifest, refused
    /// otherwise.
    fn block(
        &mut self,
        session: SessionId,
        object: ObjectId,
        offset: u64,
        sbn: u8,
        data: Vec<u8>,
    ) -> Result<(), IoError> {
        match self.bound {
            None if object == ObjectId(0) => {
                self.manifest_block(session, offset, &data);
                Ok(())
            }
            Some((s, _)) if s == session => self.bound_block(object, offset, sbn, data),
            _ => {
                self.count(Refusal::NotInManifest);
                Ok(())
            }
        }
    }

    /// A block of a manifest, buffered: within [`MAX_MANIFEST_BYTES`], for
    /// at most [`MAX_MANIFEST_SESSIONS`] sessions at once.
    fn manifest_block(&mut self, session: SessionId, offset: u64, data: &[u8]) {
        let end = offset.saturating_add(data.len() as u64);
        if end > MAX_MANIFEST_BYTES as u64 {
            self.manifest_bufs.remove(&session);
            self.count(Refusal::InvalidManifest);
            return;
        }
        if !self.manifest_bufs.contains_key(&session)
            && self.manifest_bufs.len() >= MAX_MANIFEST_SESSIONS
        {
            self.count(Refusal::NotInManifest);
            return;
        }
        let buf = self.manifest_bufs.entry(session).or_default();
        if buf.len() < end as usize {
            buf.resize(end as usize, 0);
        }
        buf[offset as usize..end as usize].copy_from_slice(data);
    }

    /// A block of the bound session: refused unless the manifest lists its
    /// object and it ends within the object's size; a pack's goes whole
    /// into the pack's temporary file, anything else's into the files its
    /// bytes belong to ([`Manifest::objects`]).
    fn bound_block(
        &mut self,
        object: ObjectId,
        offset: u64,
        sbn: u8,
        data: Vec<u8>,
    ) -> Result<(), IoError> {
        let end = offset.saturating_add(data.len() as u64);
        let Some(layout) = self.objects.get(&object) else {
            self.count(Refusal::NotInManifest);
            return Ok(());
        };
        if self.blocks_seen.insert((object, sbn)) {
            self.progress += 1;
        }
        if end > layout.size {
            for key in layout.segments.iter().map(|p| p.entry).collect::<Vec<_>>() {
                self.refuse_file(key, Refusal::ManifestMismatch, "data past its size".into());
            }
            return Ok(());
        }
        if layout.packed {
            return self.pack_block(object, offset, sbn, data);
        }
        // Segments are in object order: only those the block overlaps.
        let first = layout
            .segments
            .partition_point(|p| p.at_object + p.len <= offset);
        let segments: Vec<Segment> = layout.segments[first..]
            .iter()
            .take_while(|p| p.at_object < end)
            .copied()
            .collect();
        let mut writes = Vec::new();
        for seg in segments {
            writes.extend(self.segment_write(seg, object, offset, end)?);
        }
        self.queue_writes(object, sbn, data, writes);
        Ok(())
    }

    /// The write of a block's bytes `offset..end` that fall in `seg`, into
    /// its file's temporary file (begun if need be). `None` if none fall
    /// there, or the file needs no more of `object` (staged, placed,
    /// refused, or that part of it done).
    fn segment_write(
        &mut self,
        seg: Segment,
        object: ObjectId,
        offset: u64,
        end: u64,
    ) -> Result<Option<WritePiece>, IoError> {
        let (from, to) = (offset.max(seg.at_object), end.min(seg.at_object + seg.len));
        if from >= to {
            return Ok(None);
        }
        let slot = self
            .slots
            .get_mut(&seg.entry)
            .expect("every piece has its file");
        if matches!(
            slot.state,
            State::Staged { .. } | State::Done | State::Refused
        ) || slot.parts_done.contains(&object)
        {
            return Ok(None);
        }
        if let Err(e) = begin(&self.stage, self.uid, slot, &mut self.notes) {
            return Err(IoError::File {
                path: format!("{} (temporary file)", self.dir.display()),
                source: e.into(),
            });
        }
        let State::Writing { file, .. } = &slot.state else {
            unreachable!("writing here")
        };
        let range = (from - offset) as usize..(to - offset) as usize;
        self.bytes_written += range.len() as u64;
        Ok(Some(WritePiece {
            key: seg.entry,
            file: Arc::clone(file),
            at: seg.at_file + from - seg.at_object,
            range,
            behind: true,
        }))
    }

    /// Queues one writer job for a block's writes, if it has any. A failure
    /// (a full disk, a size the file system refuses) comes back later and
    /// refuses that file only.
    fn queue_writes(&mut self, object: ObjectId, sbn: u8, data: Vec<u8>, writes: Vec<WritePiece>) {
        if writes.is_empty() {
            return;
        }
        let keys: Vec<usize> = writes.iter().map(|w| w.key).collect();
        let seq = self.writer.write(data, writes);
        self.queued.push_back((seq, object, sbn));
        for key in keys {
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.last_write = seq;
            }
        }
    }

    /// Object 0 of a session completed (its hash verified by the receiver):
    /// decode it as a manifest and, if it is one, bind to it.
    fn manifest(
        &mut self,
        session: SessionId,
        size: u64,
        hash: [u8; 32],
        name: &str,
    ) -> Result<(), IoError> {
        let buf = self.manifest_bufs.remove(&session).unwrap_or_default();
        if name != MANIFEST_NAME || size > MAX_MANIFEST_BYTES as u64 || buf.len() as u64 > size {
            self.count(Refusal::InvalidManifest);
            return Ok(());
        }
        let mut buf = buf;
        buf.resize(size as usize, 0);
        let id = TransferId::of(&buf);
        if id.0 != hash {
            self.count(Refusal::ManifestMismatch);
            return Ok(());
        }
        if self.config.expect.is_some_and(|want| want != id) {
            self.count(Refusal::WrongTransfer);
            return Ok(());
        }
        let Ok(manifest) = Manifest::decode(&buf) else {
            self.count(Refusal::InvalidManifest);
            return Ok(());
        };
        self.bind(session, id, manifest)
    }

    /// Binds the sink to a verified manifest: lays out its objects and
    /// files, refuses up front what cannot be written, checks the space,
    /// and says which objects the receiver is to take.
    fn bind(
        &mut self,
        session: SessionId,
        id: TransferId,
        manifest: Manifest,
    ) -> Result<(), IoError> {
        self.bound = Some((session, id));
        self.manifest_bufs.clear();
        self.objects = manifest
            .objects()
            .into_iter()
            .map(|o| (o.object, o))
            .collect();
        for (key, e) in manifest.entries.into_iter().enumerate() {
            self.slots.insert(
                key,
                Slot {
                    entry: e,
                    state: State::Waiting,
                    parts_done: HashSet::new(),
                    last_write: 0,
                    placing: false,
                },
            );
        }
        let mut keys: Vec<usize> = self.slots.keys().copied().collect();
        keys.sort();
        // Refuse up front what cannot be written, so it is not received at all.
        // (Nothing is created meanwhile: a directory found missing stays so.)
        self.dirs.borrow_mut().absent = Some(HashSet::new());
        let mut need = 0u64;
        for key in keys {
            need = need.saturating_add(self.admit(key));
        }
        self.dirs.borrow_mut().absent = None;
        self.check_space(need)?;
        self.binding = Some(self.binding_objects());
        // Every file may be there already: kept, or resumed whole.
        self.commit_if_whole();
        Ok(())
    }

    /// Decides at binding whether file `key` is to be received: refused if
    /// larger than `max_file_size`, or something is at its path (without
    /// `overwrite`), or its resumable file fails; kept if the very file is
    /// in place already. Returns the bytes left to write of it.
    fn admit(&mut self, key: usize) -> u64 {
        let e = &self.slots[&key].entry;
        let (path, size, hash) = (e.path.clone(), e.size, e.hash);
        if size > self.config.max_file_size {
            self.refuse_file(
                key,
                Refusal::TooLarge,
                format!("{path}: {size} bytes is larger than the --max-object-size"),
            );
            return 0;
        }
        // The very file is there already: kept as it is, not received.
        if self.holds(&path, size, &hash) {
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.state = State::Done;
            }
            self.done += 1;
            self.kept += 1;
            return 0;
        }
        if !self.config.overwrite && self.exists(&path) {
            self.refuse_file(
                key,
                Refusal::Exists,
                format!("{path}: exists already (pass --overwrite to replace it)"),
            );
            return 0;
        }
        match self.resume(key) {
            Ok(resumed) => size - resumed,
            Err(e) => {
                let (why, detail) = classify(e);
                self.refuse_file(key, why, format!("{path}: {detail}"));
                0
            }
        }
    }

    /// With `check_space`, refuses (an error) a transfer whose `need` bytes
    /// do not fit the output directory's free space.
    fn check_space(&self, need: u64) -> Result<(), IoError> {
        if self.config.check_space
            && let Ok(st) = rustix::fs::fstatvfs(&self.root)
        {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if need > free {
                return Err(IoError::NoSpace {
                    dir: self.dir.display().to_string(),
                    need,
                    free,
                });
            }
        }
        Ok(())
    }

    /// The objects the receiver is bound to, in order: every one some file
    /// still waits for, once (a pack for any of its files). None once a
    /// file was refused: nothing will be placed, so nothing is received.
    fn binding_objects(&self) -> Vec<BoundObject> {
        if self.failed {
            return Vec::new();
        }
        let mut objects: Vec<&ObjectLayout> = self
            .objects
            .values()
            .filter(|o| {
                o.segments.iter().any(|p| {
                    let s = &self.slots[&p.entry];
                    matches!(s.state, State::Waiting | State::Writing { .. })
                        && !s.parts_done.contains(&o.object)
                })
            })
            .collect();
        objects.sort_by_key(|o| o.object);
        objects
            .into_iter()
            .map(|o| BoundObject {
                object: o.object,
                size: o.size,
                hash: o.hash,
                // A part's hash is its chaining value at its offset.
                hash_offset: o.hash_offset,
                // A pack's name is empty; a file's or a part's, the path.
                name: o.name.clone(),
            })
            .collect()
    }

    /// Whether a regular file of `size` bytes whose BLAKE3 hash is `hash` is
    /// at `path` already (looked up without following any link, and hashed
    /// as [`hash_file`](super::files::hash_file) does).
    fn holds(&self, path: &str, size: u64, hash: &[u8; 32]) -> bool {
        let (parent, base) = split(path);
        let mut dirs = self.dirs.borrow_mut();
        let Ok(Some(dir)) = dirs.open(&self.root, parent, false) else {
            return false;
        };
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let Ok(fd) = rustix::fs::openat(dir, base, flags, Mode::empty()) else {
            return false;
        };
        drop(dirs);
        match rustix::fs::fstat(&fd) {
            Ok(st)
                if rustix::fs::FileType::from_raw_mode(st.st_mode).is_file()
                    && st.st_size as u64 == size => {}
            _ => return false,
        }
        hash_open_file(File::from(fd), size).is_ok_and(|h| &h == hash)
    }

    /// Files of the bound manifest that were in place already, identical,
    /// and kept as they were (counted in [`FileSink::completed`] too).
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// Parts of files found verified in resumable temporary files at binding,
    /// and their bytes: not received again.
    pub fn resumed(&self) -> (usize, u64) {
        self.resumed
    }

    /// A file in parts whose resumable temporary file is there already: its
    /// parts whose bytes hash to their lines count as done, and the file is
    /// being written. The bytes found; 0 if there is no such file. Anything
    /// under that name that is not a regular file of ours with one link is
    /// removed (and noted), and the file received from its start.
    fn resume(&mut self, key: usize) -> Result<u64, Errno> {
        let slot = self.slots.get_mut(&key).expect("present");
        if slot.entry.parts.is_empty() {
            return Ok(0);
        }
        let name = resume_name(&slot.entry);
        let file = match open_owned(&self.stage, &name, self.uid)? {
            Owned::File(file) => file,
            Owned::Missing => return Ok(0),
            Owned::Planted(why) => {
                self.notes.push(planted_note(&name, &slot.entry.path, &why));
                return Ok(0);
            }
        };
        let st = rustix::fs::fstat(&file)?;
        let mut bytes = 0;
        for p in &slot.entry.parts {
            if p.offset + p.size <= st.st_size as u64
                && hash_file_part(&file, p.offset, p.size).is_ok_and(|h| h == p.hash)
            {
                slot.parts_done.insert(p.object);
                bytes += p.size;
            }
        }
        slot.state = State::Writing {
            tmp: name,
            file: Arc::new(file),
        };
        self.resumed.0 += slot.parts_done.len();
        self.resumed.1 += bytes;
        if slot.parts_done.len() == slot.entry.parts.len() {
            // Every part is there: it only needs placing.
            let last = slot.entry.parts.last().expect("in parts").object;
            self.piece_complete(key, last);
        }
        Ok(bytes)
    }

    /// Whether something (a file, a directory, a link) is at `path` already,
    /// looked up without following any link.
    fn exists(&self, path: &str) -> bool {
        let (parent, base) = split(path);
        match self.dirs.borrow_mut().open(&self.root, parent, false) {
            Ok(Some(dir)) => rustix::fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW).is_ok(),
            // A directory on the way is missing: nothing is there.
            Ok(None) => false,
            // A link or a file on the way: the path is taken by something.
            Err(_) => true,
        }
    }

    /// One object failed at the receiver, which starts it over: its bytes
    /// will be written again. A file in one object (or packed) drops its
    /// temporary file; a file in parts keeps it, and its other parts.
    fn part_failed(&mut self, object: ObjectId) {
        let Some(map) = self.objects.get(&object) else {
            return;
        };
        for key in map.segments.iter().map(|p| p.entry).collect::<Vec<_>>() {
            let slot = self.slots.get_mut(&key).expect("every piece has its file");
            slot.parts_done.remove(&object);
            // Never for a file in parts: its other parts' blocks, handed out
            // already, are in the temporary file and would not come again.
            if slot.entry.parts.is_empty() {
                self.drop_temp(key);
            }
        }
    }

    fn complete(&mut self, session: SessionId, object: ObjectId, size: u64, hash: [u8; 32]) {
        if self.bound.is_none_or(|b| b.0 != session) {
            self.count(Refusal::NotInManifest);
            return;
        }
        let Some(map) = self.objects.get(&object) else {
            self.count(Refusal::NotInManifest);
            return;
        };
        let matches = map.size == size && map.hash == hash;
        if matches {
            self.progress += 1;
        }
        for key in map.segments.iter().map(|p| p.entry).collect::<Vec<_>>() {
            if matches {
                self.piece_complete(key, object);
            } else if !self.slots[&key].placing
                && !matches!(
                    self.slots[&key].state,
                    State::Staged { .. } | State::Done | State::Refused
                )
            {
                self.refuse_file(
                    key,
                    Refusal::ManifestMismatch,
                    "size or hash differ from the manifest".into(),
                );
            }
        }
    }

    /// `object` verified, and its bytes for file `key` are written: the file
    /// is placed if that was its last object.
    fn piece_complete(&mut self, key: usize, object: ObjectId) {
        let slot = self.slots.get_mut(&key).expect("every piece has its file");
        match slot.state {
            State::Staged { .. } | State::Done | State::Refused => return,
            State::Waiting | State::Writing { .. } => {}
        }
        if slot.entry.pack.is_some() {
            // Its bytes are in the pack's temporary file.
            slot.last_write = self.packs.get(&object).map_or(0, |p| p.last_write);
        } else if let Err(e) = begin(&self.stage, self.uid, slot, &mut self.notes) {
            // (An empty file decodes no block, so may have no temporary file yet.)
            let path = slot.entry.path.clone();
            self.refuse_file(key, Refusal::FileSystem, format!("{path}: {e}"));
            return;
        }
        slot.parts_done.insert(object);
        if slot.parts_done.len() < slot.entry.parts.len().max(1) {
            // More parts to come.
            return;
        }
        // Its bytes must all be written before it is placed: it is placed
        // once the writer is past its last write (`place_ready`), without
        // holding up the receiving thread meanwhile.
        if !slot.placing {
            slot.placing = true;
            self.placing.push(key);
        }
        self.place_ready(false);
    }

    /// Places the files verified whole whose writes are done; with `wait`,
    /// waits for the writer to finish every one of them first. Files whose
    /// writes failed are refused instead.
    fn place_ready(&mut self, wait: bool) {
        if wait
            && let Some(last) = self.placing.iter().map(|k| self.slots[k].last_write).max()
            && !self.writer.wait(last)
        {
            // The writer is gone with writes not done: those files cannot be
            // placed, and nothing may wait for them.
            let done = self.writer.done();
            for key in std::mem::take(&mut self.placing) {
                if self.slots[&key].last_write > done {
                    let path = self.slots[&key].entry.path.clone();
                    self.refuse_file(
                        key,
                        Refusal::FileSystem,
                        format!("{path}: the writer thread stopped before writing it"),
                    );
                } else {
                    self.placing.push(key);
                }
            }
        }
        let failed = self.take_write_failures();
        if self.placing.is_empty() {
            return;
        }
        let done = self.writer.done();
        // A pack's hundreds of files are placed a few at a time, between
        // the receiving thread's other work, unless asked to finish.
        let start = if wait { usize::MAX } else { PLACE_BUDGET };
        let mut budget = start;
        for key in std::mem::take(&mut self.placing) {
            let slot = &self.slots[&key];
            if matches!(
                slot.state,
                State::Staged { .. } | State::Done | State::Refused
            ) {
                // Refused meanwhile.
                continue;
            }
            if slot.last_write > done || budget == 0 {
                self.placing.push(key);
            } else {
                budget -= 1;
                self.place_file(key);
            }
        }
        if budget == start && !failed {
            // Nothing placed or refused: no pack can have finished. (This runs every
            // turn of the receiving loop while files wait for the writer.)
            return;
        }
        // A pack whose files are all placed (or refused) is done with.
        let finished: Vec<ObjectId> = self
            .packs
            .keys()
            .copied()
            .filter(|object| {
                self.objects[object].segments.iter().all(|p| {
                    matches!(
                        self.slots[&p.entry].state,
                        State::Staged { .. } | State::Done | State::Refused
                    )
                })
            })
            .collect();
        for object in finished {
            if let Some(p) = self.packs.remove(&object) {
                remove_temp(&self.stage, &p.tmp);
            }
        }
    }

    /// A block of a pack: written whole into the pack's temporary file
    /// (unless every file of the pack is placed or refused already).
    fn pack_block(
        &mut self,
        object: ObjectId,
        offset: u64,
        sbn: u8,
        data: Vec<u8>,
    ) -> Result<(), IoError> {
        let waiting = self.objects[&object].segments.iter().any(|p| {
            let s = &self.slots[&p.entry];
            !matches!(s.state, State::Staged { .. } | State::Done | State::Refused)
                && !s.parts_done.contains(&object)
        });
        if !waiting {
            return Ok(());
        }
        if !self.packs.contains_key(&object) {
            let (tmp, file) = create_temp(&self.stage).map_err(|e| IoError::File {
                path: format!("{} (temporary file)", self.dir.display()),
                source: e.into(),
            })?;
            self.packs.insert(
                object,
                PackTemp {
                    tmp,
                    file: Arc::new(file),
                    last_write: 0,
                },
            );
        }
        let pack = self.packs.get_mut(&object).expect("just made");
        let len = data.len();
        let piece = WritePiece {
            key: pack_key(object),
            file: Arc::clone(&pack.file),
            at: offset,
            range: 0..len,
            behind: false,
        };
        pack.last_write = self.writer.write(data, vec![piece]);
        self.queued.push_back((pack.last_write, object, sbn));
        Ok(())
    }

    /// A packed file's own temporary file, copied out of its pack's.
    fn copy_out_of_pack(&self, entry: &super::manifest::Entry) -> Result<(String, File), String> {
        let pack = self
            .packs
            .get(&entry.object)
            .ok_or_else(|| format!("{}: its pack was never written", entry.path))?;
        let at = entry.pack.as_ref().map_or(0, |p| p.offset);
        let (tmp, file) = create_temp(&self.stage).map_err(|e| format!("{}: {e}", entry.path))?;
        if let Err(e) = copy_range(&pack.file, at, &file, entry.size) {
            remove_temp(&self.stage, &tmp);
            return Err(format!("{}: {e}", entry.path));
        }
        Ok((tmp, file))
    }

    /// Sizes, chmods and renames a file verified whole and written.
    fn place_file(&mut self, key: usize) {
        let slot = self.slots.get_mut(&key).expect("present");
        slot.placing = false;
        let size = slot.entry.size;
        let entry = slot.entry.clone();
        let (tmp, file) = if entry.pack.is_some() {
            match self.copy_out_of_pack(&entry) {
                Ok((tmp, file)) => {
                    self.bytes_written += size;
                    (tmp, Arc::new(file))
                }
                Err(detail) => {
                    self.refuse_file(key, Refusal::FileSystem, detail);
                    return;
                }
            }
        } else {
            let slot = self.slots.get_mut(&key).expect("present");
            let State::Writing { tmp, file } = std::mem::replace(&mut slot.state, State::Waiting)
            else {
                unreachable!("writing here")
            };
            (tmp, file)
        };
        let mode = if self.config.keep_modes {
            entry.mode & 0o777
        } else {
            entry.mode & 0o777 & !self.umask & !0o002
        };
        // (A file copied out of its pack has its size already.)
        let sized = if entry.pack.is_some() {
            Ok(())
        } else {
            file.set_len(size)
        };
        let placed = sized
            .map_err(|e| (Refusal::FileSystem, e.to_string()))
            .and_then(|()| {
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                    .map_err(|e| (Refusal::FileSystem, std::io::Error::from(e).to_string()))
            });
        drop(file);
        let slot = self.slots.get_mut(&key).expect("present");
        match placed {
            Ok(()) => {
                slot.state = State::Staged { tmp };
                self.staged += 1;
                self.commit_if_whole();
            }
            Err((why, detail)) => {
                if entry.parts.is_empty() {
                    remove_temp(&self.stage, &tmp);
                }
                self.refuse_file(key, why, format!("{}: {detail}", entry.path));
            }
        }
    }

    /// Once every file of the manifest is staged or kept (and none was
    /// refused), places the staged ones: first checks every path (without
    /// creating anything), then renames each into place. A path found taken
    /// or unsafe at the check refuses the file and places nothing. Only a
    /// change made to the output directory by someone else between the
    /// check and the renames can stop the renames part way (the files placed
    /// by then stay, each verified; the failure is reported).
    fn commit_if_whole(&mut self) {
        if self.failed
            || !self
                .slots
                .values()
                .all(|s| matches!(s.state, State::Staged { .. } | State::Done))
        {
            return;
        }
        let mut keys: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Staged { .. }))
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        // Check every path first: nothing is created while checking.
        self.dirs.borrow_mut().absent = Some(HashSet::new());
        let mut refuse = Vec::new();
        for &key in &keys {
            let path = &self.slots[&key].entry.path;
            if let Err((why, detail)) = self.check_target(path) {
                refuse.push((key, why, format!("{path}: {detail}")));
            }
        }
        self.dirs.borrow_mut().absent = None;
        if !refuse.is_empty() {
            for (key, why, detail) in refuse {
                self.refuse_file(key, why, detail);
            }
            return;
        }
        for key in keys {
            let slot = self.slots.get_mut(&key).expect("present");
            let State::Staged { tmp } = std::mem::replace(&mut slot.state, State::Waiting) else {
                unreachable!("staged here")
            };
            let path = slot.entry.path.clone();
            self.staged -= 1;
            match self.place(&tmp, &path) {
                Ok(()) => {
                    self.slots.get_mut(&key).expect("present").state = State::Done;
                    self.done += 1;
                    self.changed.push(path);
                }
                Err((why, detail)) => {
                    remove_temp(&self.stage, &tmp);
                    self.refuse_file(key, why, format!("{path}: {detail}"));
                    // (The rest stay staged, and are removed with the sink.)
                    return;
                }
            }
        }
    }

    /// Whether the file `path` can be placed: no link or non-directory on
    /// its way, and (without `overwrite`) nothing there already.
    fn check_target(&self, path: &str) -> Result<(), (Refusal, String)> {
        let (parent, base) = split(path);
        let mut dirs = self.dirs.borrow_mut();
        match dirs.open(&self.root, parent, false) {
            // Missing directories on the way are made when placing.
            Ok(None) => Ok(()),
            Ok(Some(dir)) => match rustix::fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st)
                    if rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::Directory =>
                {
                    Err(classify(Errno::ISDIR))
                }
                Ok(_) if !self.config.overwrite => Err((
                    Refusal::Exists,
                    "exists already (pass --overwrite to replace it)".into(),
                )),
                Ok(_) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(classify(e)),
            },
            Err(e) => Err(classify(e)),
        }
    }

    /// Renames the temporary file `tmp` to `path`, making the directories on
    /// the way, following no link, replacing nothing unless `overwrite`.
    fn place(&self, tmp: &str, path: &str) -> Result<(), (Refusal, String)> {
        let (parent, base) = split(path);
        let mut dirs = self.dirs.borrow_mut();
        let dir = match dirs.open(&self.root, parent, true) {
            Ok(Some(d)) => d,
            Ok(None) => unreachable!("created on the way"),
            Err(e) => return Err(classify(e)),
        };
        let flags = if self.config.overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        match rustix::fs::renameat_with(&self.stage, tmp, dir, base, flags) {
            Ok(()) => Ok(()),
            // A file system without RENAME_NOREPLACE: link (which never
            // replaces), then unlink the temporary name.
            Err(Errno::INVAL) if !self.config.overwrite => {
                rustix::fs::linkat(&self.stage, tmp, dir, base, AtFlags::empty())
                    .map_err(classify)?;
                remove_temp(&self.stage, tmp);
                Ok(())
            }
            Err(e) => Err(classify(e)),
        }
    }
}

fn classify(e: Errno) -> (Refusal, String) {
    let why = match e {
        Errno::EXIST => Refusal::Exists,
        Errno::LOOP | Errno::NOTDIR | Errno::XDEV => Refusal::UnsafePath,
        _ => Refusal::FileSystem,
    };
    (why, std::io::Error::from(e).to_string())
}

fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((p, b)) => (p, b),
        None => ("", path),
    }
}

/// Directories beneath the output directory opened lately, by path: the
/// files of a tree come in path order, so most share one of the last few,
/// and placing or looking one up costs no walk from the root.
#[derive(Default)]
struct DirCache {
    recent: Vec<(String, OwnedFd)>,
    /// While binding (nothing is created then): directories found missing.
    absent: Option<HashSet<String>>,
}

/// Directories a [`DirCache`] keeps open.
const DIR_CACHE: usize = 16;

impl DirCache {
    /// [`open_dir_beneath`] the root, from the cache when it holds `parent`
    /// or a directory on the way.
    fn open(
        &mut self,
        root: &OwnedFd,
        parent: &str,
        create: bool,
    ) -> Result<Option<BorrowedFd<'_>>, Errno> {
        if let Some(i) = self.recent.iter().position(|(p, _)| p == parent) {
            let hit = self.recent.remove(i);
            self.recent.insert(0, hit);
        } else {
            if !create && self.absent.as_ref().is_some_and(|a| a.contains(parent)) {
                return Ok(None);
            }
            // From the deepest cached directory on the way, else the root.
            let from = self
                .recent
                .iter()
                .filter(|(p, _)| {
                    p.is_empty()
                        || parent
                            .strip_prefix(p.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                })
                .max_by_key(|(p, _)| p.len());
            let (start, rest) = match from {
                Some((p, fd)) => (fd.as_fd(), parent[p.len()..].trim_start_matches('/')),
                None => (root.as_fd(), parent),
            };
            let Some(fd) = open_dir_beneath(start, rest, create)? else {
                if let Some(a) = self.absent.as_mut() {
                    a.insert(parent.to_owned());
                }
                return Ok(None);
            };
            self.recent.insert(0, (parent.to_owned(), fd));
            self.recent.truncate(DIR_CACHE);
        }
        Ok(Some(self.recent[0].1.as_fd()))
    }
}

/// Opens the directory `parent` (`/`-separated, possibly empty) beneath
/// `root`, one component at a time, following no link and never leaving
/// `root`; with `create`, makes the missing ones. Without `create`, `None` if
/// one is missing.
fn open_dir_beneath(
    root: BorrowedFd<'_>,
    parent: &str,
    create: bool,
) -> Result<Option<OwnedFd>, Errno> {
    let mut dir = root
        .try_clone_to_owned()
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    for comp in parent.split('/').filter(|c| !c.is_empty()) {
        if create {
            match rustix::fs::mkdirat(&dir, comp, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let next = match rustix::fs::openat2(
            &dir,
            comp,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            // Kernels before 5.6: one component with O_NOFOLLOW is as safe.
            Err(Errno::NOSYS) => rustix::fs::openat(&dir, comp, flags, Mode::empty()),
            r => r,
        };
        dir = match next {
            Ok(d) => d,
            Err(Errno::NOENT) if !create => return Ok(None),
            Err(e) => return Err(e),
        };
    }
    Ok(Some(dir))
}

/// Starts a waiting file's temporary file; one being written already keeps its own.
/// A file in parts gets its resumable name ([`resume_name`]), created
/// `O_EXCL`; one found there already is reopened only if [`open_owned`]
/// trusts it, and anything else under the name is removed (and noted) first.
fn begin(stage: &OwnedFd, uid: u32, slot: &mut Slot, notes: &mut Vec<String>) -> Result<(), Errno> {
    if matches!(slot.state, State::Waiting) {
        let (tmp, file) = if slot.entry.parts.is_empty() {
            create_temp(stage)?
        } else {
            let name = resume_name(&slot.entry);
            let file = match create_excl(stage, &name) {
                Ok(file) => file,
                Err(Errno::EXIST) => match open_owned(stage, &name, uid)? {
                    Owned::File(file) => file,
                    Owned::Missing => create_excl(stage, &name)?,
                    Owned::Planted(why) => {
                        notes.push(planted_note(&name, &slot.entry.path, &why));
                        create_excl(stage, &name)?
                    }
                },
                Err(e) => return Err(e),
            };
            (name, file)
        };
        slot.state = State::Writing {
            tmp,
            file: Arc::new(file),
        };
    }
    Ok(())
}

/// Creates `name` in `dir` exclusively, following no link, readable by the
/// owner only.
fn create_excl(dir: &OwnedFd, name: &str) -> Result<File, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map(File::from)
}

/// What [`open_owned`] found under a name.
enum Owned {
    /// A regular file of ours with one link, open for reading and writing.
    File(File),
    /// Nothing.
    Missing,
    /// Something else, now removed: why it was not trusted.
    Planted(String),
}

/// Opens `name` in the staging directory only if it is a regular file owned
/// by `uid` with a single link, without following a link, and (being looked
/// at first) without opening a FIFO or a device. Anything else there is
/// removed.
fn open_owned(stage: &OwnedFd, name: &str, uid: u32) -> Result<Owned, Errno> {
    use rustix::fs::FileType;
    let distrust = |st: &rustix::fs::Stat| -> Option<String> {
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::RegularFile {
            Some(format!("not a regular file ({kind:?})"))
        } else if st.st_uid != uid {
            Some(format!("owned by uid {}, not {uid}", st.st_uid))
        } else if st.st_nlink != 1 {
            Some(format!("{} hard links to it", st.st_nlink))
        } else {
            None
        }
    };
    let planted = |why: String| {
        let _ = rustix::fs::unlinkat(stage, name, AtFlags::empty());
        Ok(Owned::Planted(why))
    };
    let before = match rustix::fs::statat(stage, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Owned::Missing),
        Err(e) => return Err(e),
    };
    if let Some(why) = distrust(&before) {
        return planted(why);
    }
    let flags =
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match rustix::fs::openat(stage, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Owned::Missing),
        Err(Errno::LOOP) => return planted("a symbolic link".into()),
        Err(e) => return Err(e),
    };
    // The very file looked at, still trusted.
    let st = rustix::fs::fstat(&fd)?;
    if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) {
        return planted("replaced while it was opened".into());
    }
    if let Some(why) = distrust(&st) {
        return planted(why);
    }
    Ok(Owned::File(File::from(fd)))
}

/// The note for a resumable file found untrusted and removed.
fn planted_note(name: &str, path: &str, why: &str) -> String {
    format!(
        "removed {STAGING_DIR}/{name}, the resumable file of {}, untrusted: {why}; the file is \
         received from its start",
        path.escape_debug()
    )
}

/// Opens the staging directory beneath `root` (making it, mode 0700, if
/// missing), and trusts it only if it is a directory, not a link, owned by
/// `uid`; its mode is set to 0700 if it was anything else. The error says
/// why it is not trusted.
fn open_stage(root: &OwnedFd, uid: u32) -> Result<OwnedFd, String> {
    match rustix::fs::mkdirat(root, STAGING_DIR, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(format!("cannot create it: {}", std::io::Error::from(e))),
    }
    let fd = rustix::fs::openat(
        root,
        STAGING_DIR,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => {
            "the staging directory is not a directory (a link, or a file): remove it".to_owned()
        }
        e => format!("cannot open it: {}", std::io::Error::from(e)),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| std::io::Error::from(e).to_string())?;
    if st.st_uid != uid {
        return Err(format!(
            "the staging directory is owned by uid {}, not by this receiver (uid {uid}): \
             remove it, or receive as its owner",
            st.st_uid
        ));
    }
    if st.st_mode & 0o777 != 0o700 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))
            .map_err(|e| format!("cannot make it private: {}", std::io::Error::from(e)))?;
    }
    Ok(fd)
}

/// Removes the files in the staging directory last modified more than
/// `age` ago; a note for each.
fn remove_stale(stage: &OwnedFd, age: std::time::Duration) -> Vec<String> {
    let mut notes = Vec::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Ok(dir) = rustix::fs::Dir::read_from(stage) else {
        return notes;
    };
    for entry in dir.flatten() {
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let Ok(st) = rustix::fs::statat(stage, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let mtime = u64::try_from(st.st_mtime).unwrap_or(0);
        if now.saturating_sub(mtime) > age.as_secs()
            && rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory
            && rustix::fs::unlinkat(stage, name, AtFlags::empty()).is_ok()
        {
            notes.push(format!(
                "removed {STAGING_DIR}/{name}: not modified for more than {} days",
                age.as_secs() / 86_400
            ));
        }
    }
    notes
}

/// The temporary name of a file in parts: `.groupcast-tmp-` and 32 hex
/// digits of BLAKE3 of its hash, size and path, so that a later transfer of
/// the same file to the same path finds it, whatever its session or
/// transfer (and two paths of the same content do not share one).
pub fn resume_name(entry: &super::manifest::Entry) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"groupcast resume 1");
    h.update(&entry.hash);
    h.update(&entry.size.to_le_bytes());
    h.update(entry.path.as_bytes());
    let d = h.finalize();
    format!("{TEMP_PREFIX}{}", &d.to_hex()[..32])
}

/// Removes one of our temporary files (best effort: it may be gone already).
fn remove_temp(root: &OwnedFd, name: &str) {
    let _ = rustix::fs::unlinkat(root, name, AtFlags::empty());
}

/// Copies `len` bytes at `from` in `src` to the start of `dst`: in the
/// kernel where it can (`copy_file_range`, which file systems that share
/// extents turn into a reflink), else through a buffer.
fn copy_range(src: &File, from: u64, dst: &File, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let (mut off_in, mut off_out) = (from, 0u64);
    while off_out < len {
        let want = (len - off_out).min(1 << 30) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), want) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
                let mut buf = vec![0u8; (len - off_out).min(1 << 16) as usize];
                while off_out < len {
                    let n = buf.len().min((len - off_out) as usize);
                    src.read_exact_at(&mut buf[..n], off_in)?;
                    dst.write_all_at(&buf[..n], off_out)?;
                    off_in += n as u64;
                    off_out += n as u64;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A new temporary file in `root` under a name of its own, created
/// exclusively and without following a link, readable by the owner only
/// until placed. Names are 16 random hex digits drawn once per process and a
/// counter: unguessable before the first, and a name taken already (O_EXCL)
/// moves on to the next.
fn create_temp(root: &OwnedFd) -> Result<(String, File), Errno> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<Option<u64>> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX
        .get_or_init(|| {
            let mut r = [0u8; 8];
            getrandom::fill(&mut r).ok().map(|()| u64::from_le_bytes(r))
        })
        .ok_or(Errno::IO)?;
    for _ in 0..8 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{TEMP_PREFIX}{prefix:016x}{n:016x}");
        match rustix::fs::openat(
            root,
            name.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok((name, File::from(fd))),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EXIST)
}

/// The process's umask, as /proc says (022 if it cannot be read).
fn umask() -> u32 {
    super::process_status("Umask")
        .and_then(|v| u32::from_str_radix(&v, 8).ok())
        .unwrap_or(0o022)
}

impl Drop for FileSink {
    /// Leaves no partial file behind but resumable ones: unfinished
    /// temporary files and staged files of a transfer not placed are
    /// removed, except those of files in parts with a part verified, which a
    /// later transfer of the same file resumes. The staging directory goes
    /// too once it is empty.
    fn drop(&mut self) {
        // Queued writes first: a resumable file keeps what was verified,
        // and a transfer whose last file was verified meanwhile is placed.
        self.writer.finish();
        self.place_ready(true);
        for p in self.packs.values() {
            remove_temp(&self.stage, &p.tmp);
        }
        for slot in self.slots.values() {
            match &slot.state {
                State::Writing { tmp, .. } if slot.parts_done.is_empty() => {
                    remove_temp(&self.stage, tmp);
                }
                State::Staged { tmp } if slot.entry.parts.is_empty() => {
                    remove_temp(&self.stage, tmp);
                }
                _ => {}
            }
        }
        // (Fails, as it should, while anything is left in it.)
        let _ = rustix::fs::unlinkat(&self.root, STAGING_DIR, AtFlags::REMOVEDIR);
    }
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("dir", &self.dir)
            .field("bound", &self.bound)
            .field("files", &self.slots.len())
            .field("done", &self.done)
            .finish()
    }
}
