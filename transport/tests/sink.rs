//! The file sink against hostile events and a hostile output directory: it
//! writes only what the verified manifest lists, beneath the output
//! directory, following no link, replacing nothing unless told to, and
//! places a transfer only whole.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use groupcast::io::IoError;
use groupcast::io::files::{
    DEFAULT_PART_SIZE, Entry, FileSink, MANIFEST_NAME, Manifest, Pack, Part, Refusal, STAGING_DIR,
    SinkConfig, TransferId, part_ranges,
};
use groupcast::proto::part_cv;
use groupcast::{ObjectId, ReceiverEvent, SessionId};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("gc-sink-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("out")).unwrap();
        Self(p)
    }
    fn out(&self) -> PathBuf {
        self.0.join("out")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn manifest(files: &[(&str, &[u8], u32)]) -> Manifest {
    manifest_in_parts(files, DEFAULT_PART_SIZE)
}

/// The manifest of `files`, those larger than `part_size` in parts.
fn manifest_in_parts(files: &[(&str, &[u8], u32)], part_size: u64) -> Manifest {
    let mut object = 1;
    let mut entries = Vec::new();
    for (path, data, mode) in files {
        let ranges = part_ranges(data.len() as u64, part_size);
        let parts = if ranges.len() > 1 {
            ranges
                .iter()
                .enumerate()
                .map(|(i, &(offset, size))| Part {
                    object: ObjectId(object + i as u32),
                    offset,
                    size,
                    hash: part_cv(offset, &data[offset as usize..(offset + size) as usize])
                        .unwrap(),
                })
                .collect()
        } else {
            Vec::new()
        };
        entries.push(Entry {
            object: ObjectId(object),
            path: (*path).into(),
            size: data.len() as u64,
            mode: *mode,
            hash: *blake3::hash(data).as_bytes(),
            parts,
            pack: None,
        });
        object += ranges.len() as u32;
    }
    Manifest { part_size, entries }
}

fn block(session: u64, object: u32, offset: u64, data: &[u8]) -> ReceiverEvent {
    ReceiverEvent::BlockDecoded {
        session: SessionId(session),
        object: ObjectId(object),
        offset,
        sbn: 0,
        data: data.to_vec(),
    }
}

fn complete(session: u64, object: u32, data: &[u8], name: &str) -> ReceiverEvent {
    ReceiverEvent::ObjectComplete {
        session: SessionId(session),
        object: ObjectId(object),
        size: data.len() as u64,
        hash: *blake3::hash(data).as_bytes(),
        name: name.into(),
    }
}

/// `files` packed into `object`, in order, with `mode`: their entries and
/// the pack's bytes.
fn packed(object: u32, files: &[(String, &[u8])], mode: u32) -> (Vec<Entry>, Vec<u8>) {
    let pack: Vec<u8> = files.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    let ph = *blake3::hash(&pack).as_bytes();
    let mut at = 0;
    let entries = files
        .iter()
        .map(|(path, data)| {
            let e = Entry {
                object: ObjectId(object),
                path: path.clone(),
                size: data.len() as u64,
                mode,
                hash: *blake3::hash(data).as_bytes(),
                parts: Vec::new(),
                pack: Some(Pack {
                    offset: at,
                    size: pack.len() as u64,
                    hash: ph,
                }),
            };
            at += data.len() as u64;
            e
        })
        .collect();
    (entries, pack)
}

/// Delivers a manifest as the receiver would: its block, then its completion.
fn deliver_manifest(sink: &mut FileSink, session: u64, m: &Manifest) {
    let bytes = m.encode();
    sink.handle(block(session, 0, 0, &bytes)).unwrap();
    sink.handle(complete(session, 0, &bytes, MANIFEST_NAME))
        .unwrap();
}

/// The completion of a part at `offset` of its file: its hash is its
/// chaining value there (protocol.md §11.1), as the receiver verified it.
fn complete_part(session: u64, object: u32, offset: u64, data: &[u8], name: &str) -> ReceiverEvent {
    ReceiverEvent::ObjectComplete {
        session: SessionId(session),
        object: ObjectId(object),
        size: data.len() as u64,
        hash: part_cv(offset, data).unwrap(),
        name: name.into(),
    }
}

/// [`deliver_file`] for a part at `offset` of its file.
fn deliver_part(
    sink: &mut FileSink,
    session: u64,
    object: u32,
    offset: u64,
    data: &[u8],
    name: &str,
) {
    sink.handle(block(session, object, 0, data)).unwrap();
    sink.handle(complete_part(session, object, offset, data, name))
        .unwrap();
}

fn deliver_file(sink: &mut FileSink, session: u64, object: u32, data: &[u8], name: &str) {
    if !data.is_empty() {
        sink.handle(block(session, object, 0, data)).unwrap();
    }
    sink.handle(complete(session, object, data, name)).unwrap();
}

/// Every path beneath `dir`, but the staging directory (see [`staged`]).
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if rel == STAGING_DIR {
                continue;
            }
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

/// The names in the staging directory of the output directory `out` (none
/// if it is gone).
fn staged(out: &Path) -> Vec<String> {
    let Ok(dir) = fs::read_dir(out.join(STAGING_DIR)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn count(sink: &FileSink, why: Refusal) -> u64 {
    sink.refused_by_reason()
        .find(|(r, _)| *r == why)
        .map_or(0, |(_, n)| n)
}

#[test]
fn only_the_verified_manifest_s_files_are_written() {
    let d = Dir::new("bind");
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    // Before any manifest: file objects are refused, and nothing is created.
    deliver_file(&mut sink, 1, 1, b"evil", ".bashrc");
    // A forged empty manifest, and garbage as a manifest, do not bind.
    sink.handle(complete(666, 0, b"", MANIFEST_NAME)).unwrap();
    sink.handle(block(667, 0, 0, b"not a manifest")).unwrap();
    sink.handle(complete(667, 0, b"not a manifest", MANIFEST_NAME))
        .unwrap();
    assert!(sink.bound().is_none());
    assert_eq!(listing(&d.out()), Vec::<String>::new());
    assert!(count(&sink, Refusal::InvalidManifest) >= 2);

    let m = manifest(&[("a.txt", b"alpha", 0o644), ("d/e/empty", b"", 0o600)]);
    deliver_manifest(&mut sink, 1, &m);
    let (session, objects) = sink.take_binding().expect("bound");
    assert_eq!(session, SessionId(1));
    assert_eq!(objects.len(), 2);
    assert_eq!(sink.bound().unwrap().1, m.transfer_id());
    // Another session's manifest, and objects the manifest does not list, are ignored.
    deliver_manifest(&mut sink, 2, &manifest(&[("b", b"x", 0o644)]));
    deliver_file(&mut sink, 2, 1, b"x", "b");
    deliver_file(&mut sink, 1, 9, b"evil", ".bashrc");
    // A listed object whose hash is not the manifest's is refused, not
    // written; and the transfer can no longer be placed whole, so nothing is.
    deliver_file(&mut sink, 1, 1, b"omega", "a.txt");
    assert_eq!(count(&sink, Refusal::ManifestMismatch), 1);
    assert!(!d.out().join("a.txt").exists());
    assert!(sink.is_settled(), "a.txt refused: nothing more can happen");
    deliver_file(&mut sink, 1, 2, b"", "d/e/empty");
    assert!(!sink.is_done());
    assert_eq!(sink.completed(), 0);
    assert!(count(&sink, Refusal::NotInManifest) >= 3);
    drop(sink);
    assert_eq!(listing(&d.out()), Vec::<String>::new());
    assert!(!d.out().join(STAGING_DIR).exists(), "staging left behind");
}

#[test]
fn a_file_once_complete_is_never_written_again() {
    let d = Dir::new("once");
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    let m = manifest(&[("a", b"first", 0o644)]);
    deliver_manifest(&mut sink, 1, &m);
    deliver_file(&mut sink, 1, 1, b"first", "a");
    assert!(sink.is_done());
    // The same object again, even with other bytes, changes nothing.
    sink.handle(block(1, 1, 0, b"XXXXX")).unwrap();
    deliver_file(&mut sink, 1, 1, b"first", "a");
    assert_eq!(fs::read(d.out().join("a")).unwrap(), b"first");
}

#[test]
fn links_planted_in_the_output_are_never_followed() {
    let d = Dir::new("links");
    let target = d.0.join("target");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("x"), b"precious").unwrap();
    std::os::unix::fs::symlink(&target, d.out().join("evil")).unwrap();
    std::os::unix::fs::symlink(target.join("x"), d.out().join("link")).unwrap();
    for overwrite in [false, true] {
        let mut sink = FileSink::new(
            &d.out(),
            SinkConfig {
                overwrite,
                ..SinkConfig::default()
            },
        )
        .unwrap();
        let m = manifest(&[
            ("evil/x", b"owned", 0o644),
            ("evil/new", b"owned", 0o644),
            ("link", b"owned", 0o644),
            ("ok", b"fine", 0o644),
        ]);
        deliver_manifest(&mut sink, 1, &m);
        let (_, objects) = sink.take_binding().unwrap();
        for b in objects {
            let data: &[u8] = if b.name == "ok" { b"fine" } else { b"owned" };
            deliver_file(&mut sink, 1, b.object.0, data, &b.name);
        }
        assert!(sink.is_settled());
        assert!(!sink.is_done());
        assert_eq!(fs::read(target.join("x")).unwrap(), b"precious");
        assert!(!target.join("new").exists());
        // Files refused: the transfer is not placed, "ok" included.
        assert!(!d.out().join("ok").exists());
        assert!(
            count(&sink, Refusal::UnsafePath) + count(&sink, Refusal::Exists) >= 2,
            "{:?}",
            sink.refused_files()
        );
        // With --overwrite the link itself may be replaced by a file, never its target.
        let link = fs::symlink_metadata(d.out().join("link")).unwrap();
        assert!(link.file_type().is_symlink());
    }
}

#[test]
fn existing_files_are_kept_unless_overwrite_and_names_the_fs_refuses_refuse_the_transfer() {
    let d = Dir::new("exists");
    fs::write(d.out().join("keep"), b"mine").unwrap();
    fs::create_dir_all(d.out().join("dir")).unwrap();
    fs::write(d.out().join("file"), b"a file").unwrap();
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    let m = manifest(&[
        ("dir", b"a file over a directory", 0o644),
        ("file/under", b"beneath a file", 0o644),
        ("keep", b"theirs", 0o644),
        ("z", b"zz", 0o777),
    ]);
    deliver_manifest(&mut sink, 1, &m);
    let (_, objects) = sink.take_binding().unwrap();
    // Existing names are refused before anything is received, and so the
    // transfer (which cannot be placed whole) is not received at all.
    assert!(objects.is_empty(), "{objects:?}");
    assert_eq!(count(&sink, Refusal::Exists), 3);
    assert!(sink.is_settled() && !sink.is_done());
    deliver_file(&mut sink, 1, 4, b"zz", "z");
    assert!(!d.out().join("z").exists());
    assert_eq!(fs::read(d.out().join("keep")).unwrap(), b"mine");
    drop(sink);

    // Modes: masked by the umask (022 here at least), never world-writable.
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 1, &manifest(&[("z", b"zz", 0o777)]));
    deliver_file(&mut sink, 1, 1, b"zz", "z");
    assert!(sink.is_done());
    let mode = fs::metadata(d.out().join("z"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o002, 0, "world-writable: {mode:o}");
    drop(sink);

    // With --overwrite, a directory or a file on the way still refuses its
    // file, and so the transfer: "keep" is not replaced.
    let mut sink = FileSink::new(
        &d.out(),
        SinkConfig {
            overwrite: true,
            keep_modes: true,
            ..SinkConfig::default()
        },
    )
    .unwrap();
    let m = manifest(&[
        ("dir", b"a file over a directory", 0o644),
        ("file/under", b"beneath a file", 0o644),
        ("keep", b"theirs", 0o777),
    ]);
    deliver_manifest(&mut sink, 1, &m);
    let (_, objects) = sink.take_binding().unwrap();
    assert_eq!(objects.len(), 3);
    deliver_file(&mut sink, 1, 1, b"a file over a directory", "dir");
    deliver_file(&mut sink, 1, 2, b"beneath a file", "file/under");
    deliver_file(&mut sink, 1, 3, b"theirs", "keep");
    assert!(sink.is_settled());
    assert_eq!(sink.completed(), 0);
    assert_eq!(
        count(&sink, Refusal::UnsafePath) + count(&sink, Refusal::FileSystem),
        2,
        "{:?}",
        sink.refused_files()
    );
    assert_eq!(fs::read(d.out().join("keep")).unwrap(), b"mine");
    assert!(d.out().join("dir").is_dir());
    assert_eq!(fs::read(d.out().join("file")).unwrap(), b"a file");
    drop(sink);

    // The same with nothing in the way: "keep" is replaced, its mode kept.
    let mut sink = FileSink::new(
        &d.out(),
        SinkConfig {
            overwrite: true,
            keep_modes: true,
            ..SinkConfig::default()
        },
    )
    .unwrap();
    deliver_manifest(&mut sink, 2, &manifest(&[("keep", b"theirs", 0o777)]));
    deliver_file(&mut sink, 2, 1, b"theirs", "keep");
    assert!(sink.is_done());
    assert_eq!(sink.changed(), ["keep"]);
    assert_eq!(fs::read(d.out().join("keep")).unwrap(), b"theirs");
    let mode = fs::metadata(d.out().join("keep"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o777, "--keep-modes keeps the mode");
    drop(sink);
    // No temporary file is left behind, whatever failed.
    assert!(
        listing(&d.out())
            .iter()
            .all(|p| !p.starts_with(".groupcast-tmp-")),
        "{:?}",
        listing(&d.out())
    );
}

/// A file that is in place already with the manifest's size and hash is kept
/// as it is and not received (nothing is bound for it), with or without
/// --overwrite; one that differs is refused (or, with --overwrite, received);
/// a link to an identical file is not taken for it.
#[test]
fn identical_files_in_place_are_kept_and_not_received_again() {
    let d = Dir::new("same");
    fs::write(d.out().join("same"), b"the same bytes").unwrap();
    fs::write(d.out().join("other"), b"other bytes").unwrap();
    fs::write(d.out().join("target"), b"linked").unwrap();
    std::os::unix::fs::symlink(d.out().join("target"), d.out().join("link")).unwrap();
    for overwrite in [false, true] {
        let mut sink = FileSink::new(
            &d.out(),
            SinkConfig {
                overwrite,
                ..SinkConfig::default()
            },
        )
        .unwrap();
        let m = manifest(&[
            ("link", b"linked", 0o644),
            ("other", b"their bytes", 0o644),
            ("same", b"the same bytes", 0o644),
        ]);
        deliver_manifest(&mut sink, 1, &m);
        let (_, objects) = sink.take_binding().unwrap();
        let names: Vec<_> = objects.iter().map(|b| b.name.as_str()).collect();
        if overwrite {
            assert_eq!(names, vec!["link", "other"]);
        } else {
            assert!(names.is_empty(), "{names:?}");
            assert_eq!(count(&sink, Refusal::Exists), 2);
        }
        assert_eq!((sink.kept(), sink.completed()), (1, 1));
        assert_eq!(fs::read(d.out().join("same")).unwrap(), b"the same bytes");
    }
}

#[test]
fn an_expected_id_admits_only_its_manifest_and_space_is_checked_first() {
    let d = Dir::new("expect");
    let real = manifest(&[("a", b"real", 0o644)]);
    let fake = manifest(&[("a", b"fake", 0o644)]);
    let mut sink = FileSink::new(
        &d.out(),
        SinkConfig {
            expect: Some(real.transfer_id()),
            ..SinkConfig::default()
        },
    )
    .unwrap();
    deliver_manifest(&mut sink, 7, &fake);
    assert!(sink.bound().is_none());
    assert_eq!(count(&sink, Refusal::WrongTransfer), 1);
    deliver_manifest(&mut sink, 8, &real);
    assert_eq!(sink.bound(), Some((SessionId(8), real.transfer_id())));
    drop(sink);

    // A manifest whose files cannot fit fails at once, naming the problem.
    let size = 1u64 << 39;
    let huge = Manifest {
        entries: vec![Entry {
            object: ObjectId(1),
            path: "huge".into(),
            size,
            mode: 0o644,
            // What parts of [7; 32] make up: a manifest's parts must.
            hash: groupcast::proto::root_of_parts(
                &vec![[7; 32]; size.div_ceil(DEFAULT_PART_SIZE) as usize],
                DEFAULT_PART_SIZE,
                size,
            )
            .unwrap(),
            parts: part_ranges(size, DEFAULT_PART_SIZE)
                .into_iter()
                .enumerate()
                .map(|(i, (offset, size))| Part {
                    object: ObjectId(1 + i as u32),
                    offset,
                    size,
                    hash: [7; 32],
                })
                .collect(),
            pack: None,
        }],
        ..Manifest::default()
    };
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    let bytes = huge.encode();
    sink.handle(block(1, 0, 0, &bytes)).unwrap();
    let err = sink
        .handle(complete(1, 0, &bytes, MANIFEST_NAME))
        .unwrap_err();
    assert!(matches!(err, IoError::NoSpace { .. }), "{err}");
    assert!(err.to_string().contains("not enough free space"), "{err}");
    assert!("0".repeat(64).parse::<TransferId>().is_ok());
}

#[test]
fn a_failure_reported_after_a_file_is_placed_or_refused_changes_nothing() {
    let d = Dir::new("late-fail");
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    let m = manifest(&[("a", b"first", 0o644), ("b", b"second", 0o644)]);
    deliver_manifest(&mut sink, 1, &m);
    deliver_file(&mut sink, 1, 1, b"first", "a");
    deliver_file(&mut sink, 1, 2, b"other", "b"); // refused: not the manifest's hash
    // a verified, but the transfer is not whole: a is not placed.
    assert_eq!((sink.verified(), sink.completed()), (1, 0));
    for object in [1, 2] {
        sink.handle(ReceiverEvent::ObjectFailed {
            session: SessionId(1),
            object: ObjectId(object),
            reason: groupcast::FailReason::HashMismatch,
        })
        .unwrap();
    }
    // Neither may be taken up again.
    deliver_file(&mut sink, 1, 1, b"first", "a");
    deliver_file(&mut sink, 1, 2, b"second", "b");
    assert_eq!(
        sink.completed(),
        0,
        "a file of a refused transfer was placed"
    );
    assert!(sink.is_settled() && !sink.is_done());
    assert!(!d.out().join("b").exists(), "a refused file was written");
    assert!(!d.out().join("a").exists(), "a half transfer was placed");
}

/// A file in parts is written part by part at each part's offset, in any
/// order, and placed only once every part verified; a part that fails keeps
/// the others, and a part whose size or hash lies refuses the file.
#[test]
fn a_file_in_parts_is_assembled_at_the_offsets_and_placed_once_whole() {
    let d = Dir::new("parts");
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let other: Vec<u8> = big.iter().rev().copied().collect();
    let m = manifest_in_parts(
        &[
            ("a", b"small", 0o644),
            ("big", &big, 0o644),
            ("z", &other, 0o644),
        ],
        4096,
    );
    // a is object 1; big objects 2, 3, 4; z objects 5, 6, 7.
    assert_eq!(m.entries[2].object, ObjectId(5));
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 1, &m);
    let (session, binding) = sink.take_binding().unwrap();
    assert_eq!(session, SessionId(1));
    let bound: Vec<(u32, u64, &str)> = binding
        .iter()
        .map(|b| (b.object.0, b.size, b.name.as_str()))
        .collect();
    assert_eq!(
        bound,
        [
            (1, 5, "a"),
            (2, 4096, "big"),
            (3, 4096, "big"),
            (4, 1808, "big"),
            (5, 4096, "z"),
            (6, 4096, "z"),
            (7, 1808, "z"),
        ]
    );
    let part = |data: &[u8], i: usize| data[i * 4096..((i + 1) * 4096).min(data.len())].to_vec();
    deliver_file(&mut sink, 1, 1, b"small", "a");
    // big's last part first, in two blocks, then its first part.
    let p2 = part(&big, 2);
    sink.handle(block(1, 4, 1000, &p2[1000..])).unwrap();
    sink.handle(block(1, 4, 0, &p2[..1000])).unwrap();
    sink.handle(complete_part(1, 4, 8192, &p2, "big")).unwrap();
    deliver_part(&mut sink, 1, 2, 0, &part(&big, 0), "big");
    assert!(!d.out().join("big").exists(), "placed before every part");
    // The middle part fails once (the receiver starts it over), then
    // arrives: the other parts stay.
    sink.handle(block(1, 3, 0, &[0xee; 4096])).unwrap();
    sink.handle(ReceiverEvent::ObjectFailed {
        session: SessionId(1),
        object: ObjectId(3),
        reason: groupcast::FailReason::HashMismatch,
    })
    .unwrap();
    deliver_part(&mut sink, 1, 3, 4096, &part(&big, 1), "big");
    sink.flush();
    // big is whole, but z is not: nothing is placed yet.
    assert_eq!((sink.verified(), sink.completed()), (2, 0));
    assert_eq!(listing(&d.out()), Vec::<String>::new());
    // z's parts complete the transfer: every file is placed.
    deliver_part(&mut sink, 1, 6, 4096, &part(&other, 1), "z");
    deliver_part(&mut sink, 1, 5, 0, &part(&other, 0), "z");
    deliver_part(&mut sink, 1, 7, 2 * 4096, &part(&other, 2), "z");
    sink.flush();
    assert!(sink.is_done());
    assert_eq!(fs::read(d.out().join("big")).unwrap(), big);
    assert_eq!(fs::read(d.out().join("z")).unwrap(), other);
    assert_eq!(sink.changed(), ["a", "big", "z"]);
    drop(sink);

    // A part of z longer than the manifest says refuses z, its bytes never
    // land, and nothing of the transfer is placed.
    let d = Dir::new("parts-long");
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 1, &m);
    deliver_file(&mut sink, 1, 1, b"small", "a");
    for i in 0..3 {
        deliver_part(
            &mut sink,
            1,
            2 + i,
            i as u64 * 4096,
            &part(&big, i as usize),
            "big",
        );
    }
    deliver_part(&mut sink, 1, 5, 0, &part(&other, 0), "z");
    sink.handle(block(1, 7, 0, &[1; 1809])).unwrap();
    assert_eq!(count(&sink, Refusal::ManifestMismatch), 1);
    deliver_part(&mut sink, 1, 6, 4096, &part(&other, 1), "z");
    deliver_part(&mut sink, 1, 7, 2 * 4096, &part(&other, 2), "z");
    assert!(sink.is_settled() && !sink.is_done());
    assert_eq!(sink.completed(), 0);
    assert_eq!(listing(&d.out()), Vec::<String>::new());
    drop(sink);

    // A part whose completion gives another hash than its line refuses the file.
    let d = Dir::new("parts-hash");
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    let m = manifest_in_parts(&[("big", &big, 0o600)], 4096);
    deliver_manifest(&mut sink, 2, &m);
    deliver_part(&mut sink, 2, 1, 0, &part(&big, 0), "big");
    deliver_part(&mut sink, 2, 2, 4096, &part(&other, 1), "big");
    deliver_part(&mut sink, 2, 3, 2 * 4096, &part(&big, 2), "big");
    assert_eq!(count(&sink, Refusal::ManifestMismatch), 1);
    assert!(sink.is_settled() && !sink.is_done());
    assert_eq!(listing(&d.out()), Vec::<String>::new());
}

/// A sink that stops with parts of a file verified leaves
/// that file's temporary file; a later sink bound to a manifest listing the
/// same file finds it, hashes each part against its line, and is bound only
/// to the rest. A part whose bytes changed meanwhile is received again, and
/// a link planted under the temporary name is never followed.
#[test]
fn a_file_in_parts_resumes_from_the_parts_a_stopped_sink_verified() {
    let d = Dir::new("resume");
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let m = manifest_in_parts(&[("small", b"tiny", 0o644), ("big", &big, 0o644)], 4096);
    // small is object 1; big objects 2..=6, of 4096 bytes but the last (3616).
    let part = |i: usize| big[i * 4096..((i + 1) * 4096).min(big.len())].to_vec();
    let temps = |dir: &Path| -> Vec<String> { staged(dir) };
    let stage = d.out().join(STAGING_DIR);
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 1, &m);
    assert_eq!(sink.take_binding().unwrap().1.len(), 6);
    assert_eq!(sink.resumed(), (0, 0));
    sink.handle(block(1, 1, 0, b"ti")).unwrap();
    deliver_part(&mut sink, 1, 2, 0, &part(0), "big");
    deliver_part(&mut sink, 1, 4, 2 * 4096, &part(2), "big");
    deliver_part(&mut sink, 1, 6, 4 * 4096, &part(4), "big");
    // Part 1 half written, unverified, when the sink stops.
    sink.handle(block(1, 3, 0, &part(1)[..2000])).unwrap();
    drop(sink);
    let left = temps(&d.out());
    assert_eq!(left.len(), 1, "only big's temporary file stays: {left:?}");

    // Another session of the same transfer: parts 0, 2 and 4 are resumed.
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 2, &m);
    let bound: Vec<u32> = sink
        .take_binding()
        .unwrap()
        .1
        .iter()
        .map(|b| b.object.0)
        .collect();
    assert_eq!(bound, [1, 3, 5]);
    assert_eq!(sink.resumed(), (3, 3 * 4096 - 4096 + 3616));
    deliver_file(&mut sink, 2, 1, b"tiny", "small");
    deliver_part(&mut sink, 2, 3, 4096, &part(1), "big");
    deliver_part(&mut sink, 2, 5, 3 * 4096, &part(3), "big");
    assert!(sink.is_done());
    assert_eq!(fs::read(d.out().join("big")).unwrap(), big);
    drop(sink);
    assert!(temps(&d.out()).is_empty());

    // A changed part is received again; the others are still resumed.
    fs::remove_file(d.out().join("big")).unwrap();
    fs::remove_file(d.out().join("small")).unwrap();
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 3, &m);
    sink.take_binding().unwrap();
    deliver_part(&mut sink, 3, 2, 0, &part(0), "big");
    deliver_part(&mut sink, 3, 3, 4096, &part(1), "big");
    drop(sink);
    let tmp = stage.join(&temps(&d.out())[0]);
    let f = fs::OpenOptions::new().write(true).open(&tmp).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"XX", 5000).unwrap();
    drop(f);
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 4, &m);
    let bound: Vec<u32> = sink
        .take_binding()
        .unwrap()
        .1
        .iter()
        .map(|b| b.object.0)
        .collect();
    assert_eq!(bound, [1, 3, 4, 5, 6], "part 1 changed on disk");
    assert_eq!(sink.resumed(), (1, 4096));
    drop(sink);

    // Every part there already: the file is verified at binding, not
    // received, and placed with the rest of the transfer.
    let name = temps(&d.out())[0].clone();
    fs::write(stage.join(&name), &big).unwrap();
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 6, &m);
    let bound: Vec<u32> = sink
        .take_binding()
        .unwrap()
        .1
        .iter()
        .map(|b| b.object.0)
        .collect();
    assert_eq!(bound, [1], "only small");
    assert_eq!(sink.resumed(), (5, big.len() as u64));
    assert!(!d.out().join("big").exists(), "placed before small");
    deliver_file(&mut sink, 6, 1, b"tiny", "small");
    assert!(sink.is_done());
    assert_eq!(fs::read(d.out().join("big")).unwrap(), big);
    assert!(temps(&d.out()).is_empty());
    drop(sink);
    assert!(!stage.exists(), "the empty staging directory stays");
}

/// Small files packed into one object are each written
/// from the pack's blocks (which cross their boundaries) and placed once the
/// pack verified; one refused (it exists) does not hold back the others, and
/// a pack whose hash is wrong refuses every file in it.
#[test]
fn files_packed_into_one_object_are_placed_when_the_pack_verifies() {
    let d = Dir::new("pack");
    let files: [(&str, &[u8]); 3] = [
        ("a/one", b"first file"),
        ("a/two", b"2"),
        ("b/three", b"the third"),
    ];
    let named: Vec<(String, &[u8])> = files.iter().map(|(p, d)| (p.to_string(), *d)).collect();
    let (mut entries, pack) = packed(1, &named, 0o640);
    entries.push(Entry {
        object: ObjectId(2),
        path: "z".into(),
        size: 3,
        mode: 0o644,
        hash: *blake3::hash(b"zzz").as_bytes(),
        parts: Vec::new(),
        pack: None,
    });
    let m = Manifest {
        entries,
        ..Manifest::default()
    };
    // b/three is there already: refused, and so nothing is received.
    fs::create_dir_all(d.out().join("b")).unwrap();
    fs::write(d.out().join("b/three"), b"mine").unwrap();
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 1, &m);
    assert!(sink.take_binding().unwrap().1.is_empty());
    assert_eq!(count(&sink, Refusal::Exists), 1);
    assert!(sink.is_settled() && !sink.is_done());
    drop(sink);
    assert_eq!(listing(&d.out()), ["b", "b/three"]);
    fs::remove_file(d.out().join("b/three")).unwrap();

    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 1, &m);
    let bound: Vec<(u32, u64, String)> = sink
        .take_binding()
        .unwrap()
        .1
        .into_iter()
        .map(|b| (b.object.0, b.size, b.name))
        .collect();
    assert_eq!(bound, [(1, 20, String::new()), (2, 3, "z".into())]);
    // Blocks across the files' boundaries, in any order.
    sink.handle(block(1, 1, 7, &pack[7..15])).unwrap();
    sink.handle(block(1, 1, 0, &pack[..7])).unwrap();
    sink.handle(block(1, 1, 15, &pack[15..])).unwrap();
    assert!(
        !d.out().join("a/one").exists(),
        "placed before the pack verified"
    );
    sink.handle(complete(1, 1, &pack, "")).unwrap();
    assert!(
        !d.out().join("a/one").exists(),
        "placed before the transfer verified whole"
    );
    deliver_file(&mut sink, 1, 2, b"zzz", "z");
    assert_eq!(fs::read(d.out().join("a/one")).unwrap(), b"first file");
    assert_eq!(fs::read(d.out().join("a/two")).unwrap(), b"2");
    assert_eq!(fs::read(d.out().join("b/three")).unwrap(), b"the third");
    assert_eq!(
        fs::metadata(d.out().join("a/two"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640 & !0o022
    );
    assert_eq!(sink.completed(), 4);
    drop(sink);

    // A pack whose completion gives another hash refuses all of its files.
    let d = Dir::new("pack-hash");
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 2, &m);
    let mut forged = pack.clone();
    forged[3] ^= 1;
    deliver_file(&mut sink, 2, 1, &forged, "");
    assert_eq!(count(&sink, Refusal::ManifestMismatch), 3);
    deliver_file(&mut sink, 2, 2, b"zzz", "z");
    assert!(sink.is_settled() && !sink.is_done());
    assert_eq!(listing(&d.out()), Vec::<String>::new());
}

/// A pack of 5,000 tiny files arrives whole with the process limited to
/// 1,024 descriptors: the pack is written into one temporary file and its
/// files copied out of it when it verifies (a descriptor per packed file ran
/// out of them, and the transfer failed).
#[test]
fn a_pack_of_thousands_of_tiny_files_needs_no_descriptor_per_file() {
    let d = Dir::new("tiny-pack");
    let n = 5000usize;
    let data: Vec<Vec<u8>> = (0..n).map(|i| format!("{i:04}").into_bytes()).collect();
    let named: Vec<(String, &[u8])> = data
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("d{:02}/f{i:04}", i / 100), d.as_slice()))
        .collect();
    let (entries, pack) = packed(1, &named, 0o644);
    let m = Manifest {
        entries,
        ..Manifest::default()
    };
    // This process's own soft limit, lowered for the test (util-linux prlimit).
    let pid = std::process::id().to_string();
    let limit = |v: &str| {
        let ok = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={v}")])
            .status()
            .expect("prlimit (util-linux) runs")
            .success();
        assert!(ok, "prlimit --nofile={v}");
    };
    let before = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft = before
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_owned();
    limit("1024:");
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 1, &m);
    sink.take_binding().unwrap();
    // Blocks of 1,000 bytes, crossing the files' boundaries.
    let result = (|| {
        for (i, chunk) in pack.chunks(1000).enumerate() {
            sink.handle(block(1, 1, (i * 1000) as u64, chunk))?;
        }
        sink.handle(complete(1, 1, &pack, ""))
    })();
    limit(&format!("{soft}:"));
    result.unwrap();
    assert!(sink.is_done(), "{} of {n} placed", sink.completed());
    for i in [0, 1234, n - 1] {
        let got = fs::read(d.out().join(format!("d{:02}/f{i:04}", i / 100))).unwrap();
        assert_eq!(got, data[i]);
    }
    drop(sink);
    // Nothing temporary is left, the pack's file included.
    assert_eq!(listing(&d.out()).len(), n + n / 100);
}

/// A forged manifest listing a file that is there and one
/// that never comes replaces nothing (not even with `overwrite`, as under
/// `--follow`): the verified file waits staged, and goes with the sink. The
/// real transfer after it places every file at once, keeps the identical
/// one, and lists what it changed.
#[test]
fn a_transfer_is_placed_only_whole_and_reports_what_changed() {
    let d = Dir::new("whole");
    fs::write(d.out().join("a.txt"), b"original").unwrap();
    fs::write(d.out().join("keep.txt"), b"same").unwrap();
    let config = SinkConfig {
        overwrite: true,
        ..SinkConfig::default()
    };
    let mut sink = FileSink::new(&d.out(), config.clone()).unwrap();
    let forged = manifest(&[
        ("a.txt", b"forged", 0o644),
        ("b.txt", b"never sent", 0o644),
        ("keep.txt", b"same", 0o644),
    ]);
    deliver_manifest(&mut sink, 1, &forged);
    let bound: Vec<String> = sink
        .take_binding()
        .unwrap()
        .1
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(bound, ["a.txt", "b.txt"], "keep.txt is kept, not received");
    deliver_file(&mut sink, 1, 1, b"forged", "a.txt");
    sink.flush();
    assert_eq!((sink.verified(), sink.completed()), (2, 1));
    assert!(!sink.is_settled() && !sink.is_done());
    assert!(sink.changed().is_empty());
    assert_eq!(fs::read(d.out().join("a.txt")).unwrap(), b"original");
    assert_eq!(listing(&d.out()), ["a.txt", "keep.txt"]);
    // The staged file is in the private staging directory, and goes with
    // the sink (dropped idle, or stopped).
    assert_eq!(staged(&d.out()).len(), 1);
    drop(sink);
    assert_eq!(fs::read(d.out().join("a.txt")).unwrap(), b"original");
    assert_eq!(listing(&d.out()), ["a.txt", "keep.txt"]);
    assert!(!d.out().join(STAGING_DIR).exists());

    // The real transfer: nothing is placed until its last file verified.
    let mut sink = FileSink::new(&d.out(), config).unwrap();
    let real = manifest(&[
        ("a.txt", b"new a", 0o644),
        ("b.txt", b"new b", 0o644),
        ("keep.txt", b"same", 0o644),
    ]);
    deliver_manifest(&mut sink, 2, &real);
    sink.take_binding().unwrap();
    deliver_file(&mut sink, 2, 2, b"new b", "b.txt");
    sink.flush();
    assert!(!d.out().join("b.txt").exists(), "placed before a.txt");
    deliver_file(&mut sink, 2, 1, b"new a", "a.txt");
    assert!(sink.is_done());
    assert_eq!(sink.changed(), ["a.txt", "b.txt"]);
    assert_eq!(sink.kept(), 1);
    assert_eq!(fs::read(d.out().join("a.txt")).unwrap(), b"new a");
    assert_eq!(fs::read(d.out().join("b.txt")).unwrap(), b"new b");
    drop(sink);
    assert_eq!(listing(&d.out()), ["a.txt", "b.txt", "keep.txt"]);
    assert!(!d.out().join(STAGING_DIR).exists());
}

/// What a local attacker plants under a resumable file's name (which anyone
/// can compute from the public manifest).
#[derive(Debug, Clone, Copy)]
enum Plant {
    /// A file with the right bytes, owned by another user.
    OtherOwner,
    /// A hard link to a file elsewhere.
    HardLink,
    /// A symbolic link to a file elsewhere.
    SymLink,
    /// A FIFO.
    Fifo,
}

fn plant(kind: Plant, at: &Path, victim: &Path, content: &[u8]) {
    match kind {
        Plant::OtherOwner => {
            fs::write(at, content).unwrap();
            std::os::unix::fs::chown(at, Some(65534), Some(65534)).unwrap();
        }
        Plant::HardLink => fs::hard_link(victim, at).unwrap(),
        Plant::SymLink => std::os::unix::fs::symlink(victim, at).unwrap(),
        Plant::Fifo => {
            let ok = std::process::Command::new("mkfifo")
                .arg(at)
                .status()
                .unwrap()
                .success();
            assert!(ok, "mkfifo {}", at.display());
        }
    }
}

/// A file planted under a resumable file's name (owned by
/// another user, a hard link, a symbolic link, a FIFO), before the manifest
/// binds or between binding and the first block, is removed with a note,
/// never resumed from, never written through, and never becomes the output:
/// the file is received from its start into a file of the receiver's own.
#[test]
fn planted_resume_files_are_refused_and_never_become_the_output() {
    use std::os::unix::fs::MetadataExt;
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let m = manifest_in_parts(&[("big", &big, 0o644)], 4096);
    let name = groupcast::io::files::resume_name(&m.entries[0]);
    let part = |i: usize| big[i * 4096..((i + 1) * 4096).min(big.len())].to_vec();
    for kind in [
        Plant::OtherOwner,
        Plant::HardLink,
        Plant::SymLink,
        Plant::Fifo,
    ] {
        for after_binding in [false, true] {
            let d = Dir::new(&format!("plant-{kind:?}-{after_binding}"));
            // The victim holds the very bytes, so a trusted plant would pass
            // every part's hash.
            let victim = d.0.join("victim");
            fs::write(&victim, &big).unwrap();
            let victim_ino = fs::metadata(&victim).unwrap().ino();
            let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
            let at = d.out().join(STAGING_DIR).join(&name);
            if !after_binding {
                plant(kind, &at, &victim, &big);
            }
            deliver_manifest(&mut sink, 1, &m);
            let bound = sink.take_binding().unwrap().1;
            assert_eq!(bound.len(), 3, "{kind:?}: every part is received");
            assert_eq!(sink.resumed(), (0, 0), "{kind:?}: resumed from a plant");
            if after_binding {
                plant(kind, &at, &victim, &big);
            }
            for i in 0..3 {
                deliver_part(
                    &mut sink,
                    1,
                    1 + i,
                    i as u64 * 4096,
                    &part(i as usize),
                    "big",
                );
            }
            sink.flush();
            assert!(sink.is_done(), "{kind:?}: {:?}", sink.refused_files());
            let notes = sink.notes().join("\n");
            assert!(
                notes.contains(&name) && notes.contains("untrusted"),
                "{kind:?}, after binding {after_binding}: no note: {notes}"
            );
            drop(sink);
            let out = fs::symlink_metadata(d.out().join("big")).unwrap();
            assert!(out.file_type().is_file(), "{kind:?}");
            assert_ne!(
                out.ino(),
                victim_ino,
                "{kind:?}: the victim became the output"
            );
            assert_eq!(out.uid(), fs::metadata(&d.0).unwrap().uid(), "{kind:?}");
            assert_eq!(out.nlink(), 1, "{kind:?}");
            assert_eq!(fs::read(d.out().join("big")).unwrap(), big);
            assert_eq!(fs::read(&victim).unwrap(), big, "{kind:?}: victim written");
            assert_eq!(fs::metadata(&victim).unwrap().nlink(), 1, "{kind:?}");
            assert!(!d.out().join(STAGING_DIR).exists(), "{kind:?}");
        }
    }
}

/// The staging directory is used only if it is a directory
/// of the receiving user (not a link); one that others could write is made
/// private.
#[test]
fn the_staging_directory_is_ours_and_private_or_refused() {
    use std::os::unix::fs::MetadataExt;
    let d = Dir::new("stage-owner");
    let stage = d.out().join(STAGING_DIR);
    fs::create_dir(&stage).unwrap();
    std::os::unix::fs::chown(&stage, Some(65534), Some(65534)).unwrap();
    let err = FileSink::new(&d.out(), SinkConfig::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(STAGING_DIR) && msg.contains("owned by uid 65534"),
        "{msg}"
    );
    fs::remove_dir(&stage).unwrap();

    let elsewhere = d.0.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &stage).unwrap();
    let msg = FileSink::new(&d.out(), SinkConfig::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a directory"), "{msg}");
    fs::remove_file(&stage).unwrap();

    fs::create_dir(&stage).unwrap();
    fs::set_permissions(&stage, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(stage.join("fresh"), b"x").unwrap();
    let sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    assert_eq!(fs::metadata(&stage).unwrap().mode() & 0o777, 0o700);
    drop(sink);
}

/// Files in the staging directory older than
/// `stale_after` (by modification time) are removed when a sink starts, with
/// a note; newer ones stay.
#[test]
fn stale_staging_files_are_removed_when_a_sink_starts() {
    let d = Dir::new("stale");
    let stage = d.out().join(STAGING_DIR);
    fs::create_dir(&stage).unwrap();
    let old = stage.join(".groupcast-tmp-0123456789abcdef0123456789abcdef");
    fs::write(&old, b"old").unwrap();
    let eight_days = std::time::Duration::from_secs(8 * 86_400);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - eight_days)
        .unwrap();
    let fresh = stage.join(".groupcast-tmp-fedcba9876543210fedcba9876543210");
    fs::write(&fresh, b"fresh").unwrap();
    let sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    assert!(!old.exists(), "a stale file stayed");
    assert!(fresh.exists(), "a fresh file went");
    assert_eq!(sink.notes().len(), 1, "{:?}", sink.notes());
    assert!(sink.notes()[0].contains("7 days"), "{:?}", sink.notes());
    drop(sink);
    assert!(fresh.exists());
}

/// The idle watch by which `receive_into` drops a bound session expires
/// once the progress count stood still for its limit, and not while it moves.
#[test]
fn the_idle_watch_expires_only_without_progress() {
    use groupcast::io::files::IdleWatch;
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut w = IdleWatch::new(10 * s, t0);
    assert!(!w.expired(t0, 0));
    assert!(!w.expired(t0 + 9 * s, 0));
    // Progress restarts the wait.
    assert!(!w.expired(t0 + 9 * s, 1));
    assert!(!w.expired(t0 + 18 * s, 1));
    assert!(w.expired(t0 + 19 * s, 1));
    assert!(!w.expired(t0 + 20 * s, 2));
    assert!(w.expired(t0 + 30 * s, 2));
}

/// A transfer whose files are all there at binding, kept or resumed whole
/// (in whatever order), is placed at once: nothing is left to receive, and
/// no event would come to place it later.
#[test]
fn a_transfer_whole_at_binding_is_placed_at_once() {
    let d = Dir::new("whole-at-bind");
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 253) as u8).collect();
    // big (resumed whole) comes before z.txt (kept) in the manifest.
    let m = manifest_in_parts(&[("big", &big, 0o644), ("z.txt", b"zz", 0o644)], 4096);
    fs::write(d.out().join("z.txt"), b"zz").unwrap();
    let name = groupcast::io::files::resume_name(&m.entries[0]);
    fs::create_dir(d.out().join(STAGING_DIR)).unwrap();
    fs::write(d.out().join(STAGING_DIR).join(&name), &big).unwrap();
    let mut sink = FileSink::new(&d.out(), SinkConfig::default()).unwrap();
    deliver_manifest(&mut sink, 1, &m);
    assert!(sink.take_binding().unwrap().1.is_empty());
    assert!(sink.is_done(), "{:?}", sink.refused_files());
    assert_eq!(sink.changed(), ["big"]);
    assert_eq!(fs::read(d.out().join("big")).unwrap(), big);
    drop(sink);
    assert!(!d.out().join(STAGING_DIR).exists());
}
