//! Files and directories over a channel.
//!
//! A transfer is a session of objects. Object 0 is the *manifest*: a UTF-8 text
//! object named [`MANIFEST_NAME`] with one line per file, `MODE SIZE PATH`
//! (mode in octal, size in decimal, path relative with `/` separators). Every
//! file follows as its own object, named by its relative path.
//!
//! A receiver writes each object into a temporary file in the output
//! directory as its blocks decode, and renames it to its final name only after
//! the object's BLAKE3 hash has matched. It is done once the manifest and every
//! file it lists are complete. Paths from the network are hostile: absolute
//! paths, `..`, empty components and control characters are refused.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::IoError;
use crate::proto::{ObjectId, ReceiverEvent, SessionId};

/// Name of the manifest object.
pub const MANIFEST_NAME: &str = ".groupcast-manifest";
/// Prefix of temporary files in the output directory.
pub const TEMP_PREFIX: &str = ".groupcast-tmp-";
/// Largest manifest a receiver buffers; a larger object 0 is refused.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// One file of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
}

/// Serialises a manifest.
pub fn encode_manifest(entries: &[Entry]) -> Vec<u8> {
    let mut out = String::new();
    for e in entries {
        out.push_str(&format!("{:o} {} {}\n", e.mode & 0o7777, e.size, e.path));
    }
    out.into_bytes()
}

/// Parses a manifest received from the network, validating every path.
pub fn decode_manifest(bytes: &[u8]) -> Result<Vec<Entry>, IoError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| IoError::Invalid("manifest is not UTF-8".into()))?;
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(mode), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(IoError::Invalid(format!(
                "malformed manifest line '{line}'"
            )));
        };
        let mode = u32::from_str_radix(mode, 8)
            .map_err(|_| IoError::Invalid(format!("bad mode in manifest line '{line}'")))?;
        let size = size
            .parse()
            .map_err(|_| IoError::Invalid(format!("bad size in manifest line '{line}'")))?;
        safe_relative_path(path)?;
        if !seen.insert(path.to_owned()) {
            return Err(IoError::Invalid(format!("manifest lists '{path}' twice")));
        }
        entries.push(Entry {
            path: path.to_owned(),
            size,
            mode: mode & 0o777,
        });
    }
    Ok(entries)
}

/// Checks that a path from the network stays inside the output directory.
pub fn safe_relative_path(path: &str) -> Result<PathBuf, IoError> {
    let bad =
        |why: &str| IoError::Invalid(format!("refusing path '{}': {why}", path.escape_debug()));
    if path.is_empty() || path.starts_with('/') {
        return Err(bad("not a relative path"));
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
    if path.starts_with(TEMP_PREFIX) || path == MANIFEST_NAME {
        return Err(bad("reserved name"));
    }
    let p = PathBuf::from(path);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("not a plain relative path"));
    }
    Ok(p)
}

/// Collects what to send for `path`: the file itself, or every regular file
/// beneath a directory, with paths relative to it, in sorted order.
pub fn collect(path: &Path) -> Result<Vec<(Entry, PathBuf)>, IoError> {
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
        out.push((
            Entry {
                path: name.to_owned(),
                size: meta.len(),
                mode: meta.permissions().mode() & 0o777,
            },
            path.to_owned(),
        ));
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
                out.push((
                    Entry {
                        path: rel,
                        size: m.len(),
                        mode: m.permissions().mode() & 0o777,
                    },
                    p,
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    Ok(out)
}

struct Partial {
    tmp: PathBuf,
    file: File,
}

/// Writes received objects into a directory. Feed it every [`ReceiverEvent`].
///
/// State is kept per session, so a forged packet from another session cannot
/// capture the sink: the transfer is done when *some* session's manifest and
/// every file it lists are complete. Hostile content (an oversized or invalid
/// manifest, an unsafe file name) is refused and counted, never fatal; only
/// local I/O errors are.
pub struct FileSink {
    dir: PathBuf,
    partial: HashMap<(SessionId, ObjectId), Partial>,
    manifests: HashMap<SessionId, Vec<Entry>>,
    first_manifest: Option<SessionId>,
    manifest_bufs: HashMap<SessionId, Vec<u8>>,
    completed: HashSet<(SessionId, String)>,
    done: Option<SessionId>,
    /// Bytes written into files so far.
    pub bytes_written: u64,
    /// Objects refused for hostile content (bad manifest, unsafe name).
    pub objects_refused: u64,
}

impl FileSink {
    /// A sink writing under `dir`, which must exist and be writable.
    pub fn new(dir: &Path) -> Result<Self, IoError> {
        let probe = dir.join(format!("{TEMP_PREFIX}probe-{}", std::process::id()));
        File::create(&probe).map_err(|source| IoError::File {
            path: format!("{} (output directory is not writable)", dir.display()),
            source,
        })?;
        let _ = fs::remove_file(&probe);
        Ok(Self {
            dir: dir.to_owned(),
            partial: HashMap::new(),
            manifests: HashMap::new(),
            first_manifest: None,
            manifest_bufs: HashMap::new(),
            completed: HashSet::new(),
            done: None,
            bytes_written: 0,
            objects_refused: 0,
        })
    }

    /// The manifest of the session that completed, else of any session heard.
    pub fn manifest(&self) -> Option<&[Entry]> {
        match self.done {
            Some(s) => self.manifests.get(&s).map(Vec::as_slice),
            None => self.manifests.values().next().map(Vec::as_slice),
        }
    }

    /// The first session whose manifest verified: the transfer this sink
    /// follows from then on (a receiver can then refuse every other session).
    pub fn session(&self) -> Option<SessionId> {
        self.first_manifest
    }

    /// Files completed and renamed into place.
    pub fn completed(&self) -> usize {
        self.completed.len()
    }

    /// Whether some session's manifest and every file it lists are complete.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    fn check_done(&mut self, session: SessionId) {
        if let Some(m) = self.manifests.get(&session)
            && m.iter()
                .all(|e| self.completed.contains(&(session, e.path.clone())))
        {
            self.done = Some(session);
        }
    }

    fn partial(&mut self, key: (SessionId, ObjectId)) -> Result<&mut Partial, IoError> {
        if !self.partial.contains_key(&key) {
            let tmp = self
                .dir
                .join(format!("{TEMP_PREFIX}{:016x}-{}", key.0.0, key.1.0));
            let file = File::create(&tmp).map_err(|source| IoError::File {
                path: tmp.display().to_string(),
                source,
            })?;
            self.partial.insert(key, Partial { tmp, file });
        }
        Ok(self.partial.get_mut(&key).expect("inserted"))
    }

    fn refuse(&mut self, key: (SessionId, ObjectId)) {
        self.objects_refused += 1;
        if let Some(p) = self.partial.remove(&key) {
            let _ = fs::remove_file(&p.tmp);
        }
    }

    /// Handles one receiver event. Errors are local I/O failures only.
    pub fn handle(&mut self, event: ReceiverEvent) -> Result<(), IoError> {
        match event {
            ReceiverEvent::BlockDecoded {
                session,
                object,
                offset,
                data,
            } => {
                if object.0 == 0 {
                    let end = offset as usize + data.len();
                    if end > MAX_MANIFEST_BYTES {
                        self.manifest_bufs.remove(&session);
                        return Ok(());
                    }
                    let buf = self.manifest_bufs.entry(session).or_default();
                    if buf.len() < end {
                        buf.resize(end, 0);
                    }
                    buf[offset as usize..end].copy_from_slice(&data);
                    return Ok(());
                }
                let p = self.partial((session, object))?;
                p.file
                    .write_all_at(&data, offset)
                    .map_err(|source| IoError::File {
                        path: p.tmp.display().to_string(),
                        source,
                    })?;
                self.bytes_written += data.len() as u64;
            }
            ReceiverEvent::ObjectComplete {
                session,
                object,
                size,
                name,
                ..
            } => {
                if object.0 == 0 {
                    let buf = self.manifest_bufs.remove(&session).unwrap_or_default();
                    if size as usize > MAX_MANIFEST_BYTES || buf.len() as u64 > size {
                        self.objects_refused += 1;
                        return Ok(());
                    }
                    let mut buf = buf;
                    buf.resize(size as usize, 0);
                    match decode_manifest(&buf) {
                        Ok(m) => {
                            self.manifests.insert(session, m);
                            self.first_manifest.get_or_insert(session);
                            self.check_done(session);
                        }
                        Err(_) => self.objects_refused += 1,
                    }
                    return Ok(());
                }
                let Ok(rel) = safe_relative_path(&name) else {
                    self.refuse((session, object));
                    return Ok(());
                };
                // An empty file decodes no blocks, so may have no temporary file yet.
                self.partial((session, object))?;
                let p = self.partial.remove(&(session, object)).expect("just made");
                p.file.set_len(size).map_err(|source| IoError::File {
                    path: p.tmp.display().to_string(),
                    source,
                })?;
                drop(p.file);
                let dest = self.dir.join(&rel);
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent).map_err(|source| IoError::File {
                        path: parent.display().to_string(),
                        source,
                    })?;
                }
                fs::rename(&p.tmp, &dest).map_err(|source| IoError::File {
                    path: dest.display().to_string(),
                    source,
                })?;
                self.completed.insert((session, name));
                self.check_done(session);
            }
            ReceiverEvent::ObjectFailed {
                session, object, ..
            } => {
                if let Some(p) = self.partial.remove(&(session, object)) {
                    let _ = fs::remove_file(&p.tmp);
                }
                if object.0 == 0 {
                    self.manifest_bufs.remove(&session);
                }
            }
            ReceiverEvent::ObjectAnnounced { .. } => {}
        }
        Ok(())
    }

    /// Applies the completed session's modes to its files.
    pub fn apply_modes(&self) -> Result<(), IoError> {
        for e in self.manifest().into_iter().flatten() {
            let p = self.dir.join(&e.path);
            if p.is_file() {
                fs::set_permissions(&p, fs::Permissions::from_mode(e.mode)).map_err(|source| {
                    IoError::File {
                        path: p.display().to_string(),
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }
}

impl Drop for FileSink {
    /// Leaves no partial file behind: unfinished temporary files are removed.
    fn drop(&mut self) {
        for p in self.partial.values() {
            let _ = fs::remove_file(&p.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_and_hash_matches_a_plain_read_across_chunks() {
        let dir = std::env::temp_dir().join(format!("gc-rah-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for len in [0usize, 1, (4 << 20) - 1, (9 << 20) + 3] {
            let p = dir.join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
            fs::write(&p, &data).unwrap();
            let (got, hash) = read_and_hash(&p).unwrap();
            assert!(got == data, "contents differ at length {len}");
            assert_eq!(
                hash,
                *blake3::hash(&data).as_bytes(),
                "hash at length {len}"
            );
        }
        assert!(read_and_hash(&dir.join("missing")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    fn block(session: u64, object: u32, offset: u64, data: &[u8]) -> ReceiverEvent {
        ReceiverEvent::BlockDecoded {
            session: SessionId(session),
            object: ObjectId(object),
            offset,
            data: data.to_vec(),
        }
    }

    fn complete(session: u64, object: u32, size: u64, name: &str) -> ReceiverEvent {
        ReceiverEvent::ObjectComplete {
            session: SessionId(session),
            object: ObjectId(object),
            size,
            hash: [0; 32],
            name: name.into(),
        }
    }

    #[test]
    fn forged_sessions_and_hostile_objects_cannot_capture_or_stop_the_sink() {
        let dir = std::env::temp_dir().join(format!("groupcast-sink-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut sink = FileSink::new(&dir).unwrap();
        // A forger's session arrives first, with an unsafe path and a bad manifest.
        sink.handle(block(666, 1, 0, b"evil")).unwrap();
        sink.handle(complete(666, 1, 4, "../escape")).unwrap();
        sink.handle(block(666, 0, 0, b"not a manifest")).unwrap();
        sink.handle(complete(666, 0, 14, MANIFEST_NAME)).unwrap();
        sink.handle(block(666, 0, MAX_MANIFEST_BYTES as u64, b"x"))
            .unwrap();
        assert_eq!(sink.objects_refused, 2);
        assert!(!dir.join("../escape").exists());
        // The real session still completes.
        let manifest = encode_manifest(&[Entry {
            path: "ok.txt".into(),
            size: 2,
            mode: 0o644,
        }]);
        sink.handle(block(1, 0, 0, &manifest)).unwrap();
        sink.handle(complete(1, 0, manifest.len() as u64, MANIFEST_NAME))
            .unwrap();
        assert!(!sink.is_done());
        sink.handle(block(1, 1, 0, b"hi")).unwrap();
        sink.handle(complete(1, 1, 2, "ok.txt")).unwrap();
        assert!(sink.is_done());
        assert_eq!(fs::read(dir.join("ok.txt")).unwrap(), b"hi");
        drop(sink);
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("ok.txt")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn manifest_round_trips_and_refuses_hostile_paths() {
        let entries = vec![
            Entry {
                path: "a.txt".into(),
                size: 3,
                mode: 0o644,
            },
            Entry {
                path: "dir/b c.bin".into(),
                size: 0,
                mode: 0o755,
            },
        ];
        assert_eq!(
            decode_manifest(&encode_manifest(&entries)).unwrap(),
            entries
        );
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
            "a\\b",
        ] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?} accepted");
            let line = format!("644 1 {bad}\n");
            assert!(
                decode_manifest(line.as_bytes()).is_err(),
                "{bad:?} accepted in manifest"
            );
        }
        assert!(decode_manifest(b"644 1 a\n644 2 a\n").is_err());
        assert!(decode_manifest(b"999 1 a\n").is_err());
        assert!(decode_manifest(b"644 x a\n").is_err());
    }
}

/// What a file transfer did, for `--stats-json`.
#[derive(Debug, Clone, Default)]
pub struct TransferReport {
    /// Seconds from the first packet to the end.
    pub duration_s: f64,
    /// Files in the transfer.
    pub files: usize,
    /// Bytes of file data.
    pub file_bytes: u64,
    /// Driver counters.
    pub driver: super::DriverStats,
    /// Objects the file sink refused for hostile content.
    pub objects_refused: u64,
}

/// Reads a whole file and hashes it with BLAKE3, the hashing on a second
/// thread a chunk behind the reading, so that it costs almost no extra time.
pub fn read_and_hash(path: &Path) -> std::io::Result<(Vec<u8>, [u8; 32])> {
    use std::io::Read;
    const CHUNK: usize = 4 << 20;
    let mut file = fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| std::io::Error::other("file too large for memory"))?;
    let mut data = vec![0u8; len];
    let hash = std::thread::scope(|scope| -> std::io::Result<blake3::Hash> {
        let (tx, rx) = std::sync::mpsc::channel::<&[u8]>();
        let hasher = scope.spawn(move || {
            let mut h = blake3::Hasher::new();
            for chunk in rx {
                h.update(chunk);
            }
            h.finalize()
        });
        for chunk in data.chunks_mut(CHUNK) {
            file.read_exact(chunk)?;
            let chunk: &[u8] = chunk;
            if tx.send(chunk).is_err() {
                break;
            }
        }
        drop(tx);
        hasher
            .join()
            .map_err(|_| std::io::Error::other("hashing thread failed"))
    })?;
    // The file may have grown since its length was read: refuse a moving target.
    let mut probe = [0u8; 1];
    if file.read(&mut probe)? != 0 {
        return Err(std::io::Error::other("file changed while it was read"));
    }
    Ok((data, *hash.as_bytes()))
}

/// Sends `path` (a file, or every file beneath a directory) with a manifest, until
/// the sender's rounds end or `stop` returns true.
pub fn send_path(
    net: &super::NetConfig,
    sender_config: crate::proto::SenderConfig,
    path: &Path,
    progress: impl FnMut(&crate::proto::SenderStats),
    stop: impl FnMut(&crate::proto::SenderStats) -> bool,
) -> Result<(crate::proto::SenderStats, TransferReport), IoError> {
    let files = collect(path)?;
    let entries: Vec<Entry> = files.iter().map(|(e, _)| e.clone()).collect();
    let mut sender = crate::proto::Sender::new(sender_config)?;
    sender.add_object(encode_manifest(&entries), MANIFEST_NAME)?;
    let mut file_bytes = 0;
    for (entry, p) in &files {
        let (data, hash) = read_and_hash(p).map_err(|source| IoError::File {
            path: p.display().to_string(),
            source,
        })?;
        file_bytes += data.len() as u64;
        sender.add_object_hashed(data, hash, &entry.path)?;
    }
    let mut sock = super::McastSocket::sender(net)?;
    let started = std::time::Instant::now();
    let driver = super::run_sender(&mut sender, &mut sock, progress, stop)?;
    Ok((
        sender.stats().clone(),
        TransferReport {
            duration_s: started.elapsed().as_secs_f64(),
            files: files.len(),
            file_bytes,
            driver,
            objects_refused: 0,
        },
    ))
}

/// Receives a transfer into `dir` until every file in its manifest is complete
/// and verified, or `timeout` passes. The last element of the result says which:
/// `Err` with a message on timeout, when no partial file is left under a final
/// name. Stats are returned either way.
pub fn receive_into(
    net: &super::NetConfig,
    receiver_config: crate::proto::ReceiverConfig,
    dir: &Path,
    timeout: Option<std::time::Duration>,
    stop: impl FnMut() -> bool,
    mut progress: impl FnMut(&crate::proto::Receiver, &FileSink),
) -> Result<
    (
        crate::proto::ReceiverStats,
        TransferReport,
        Result<(), String>,
    ),
    IoError,
> {
    let mut sink = FileSink::new(dir)?;
    let mut receiver = crate::proto::Receiver::new(receiver_config);
    let mut sock = super::McastSocket::receiver(net)?;
    let started = std::time::Instant::now();
    let deadline = timeout.map(|t| started + t);
    let mut last = started;
    let mut locked = false;
    let (outcome, driver) =
        super::run_receiver(&mut receiver, &mut sock, deadline, stop, |r, event| {
            sink.handle(event)?;
            if !locked && let Some(s) = sink.session() {
                // The first verified manifest names the transfer: from now on every
                // other session is foreign (counted, and dropped unread).
                r.lock_session(s);
                locked = true;
            }
            if last.elapsed() >= std::time::Duration::from_millis(100) {
                progress(r, &sink);
                last = std::time::Instant::now();
            }
            Ok(if sink.is_done() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            })
        })?;
    progress(&receiver, &sink);
    let report = TransferReport {
        duration_s: started.elapsed().as_secs_f64(),
        files: sink.completed(),
        file_bytes: sink.bytes_written,
        driver,
        objects_refused: sink.objects_refused,
    };
    if outcome != super::RecvOutcome::Done {
        let what = match sink.manifest() {
            None => "no manifest received".to_owned(),
            Some(m) => format!("{} of {} files complete", sink.completed(), m.len()),
        };
        let how = if outcome == super::RecvOutcome::TimedOut {
            "timed out"
        } else {
            "interrupted"
        };
        // Dropping the sink removes the unfinished temporary files.
        drop(sink);
        return Ok((
            receiver.stats().clone(),
            report,
            Err(format!(
                "{how} after {:.0} s: {what} ({} packets received)",
                started.elapsed().as_secs_f64(),
                receiver.stats().packets_received
            )),
        ));
    }
    sink.apply_modes()?;
    Ok((receiver.stats().clone(), report, Ok(())))
}
