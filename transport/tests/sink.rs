//! The file sink against hostile events and a hostile output directory: it
//! writes only what the verified manifest lists, beneath the output
//! directory, following no link, replacing nothing unless told to.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use groupcast::io::IoError;
use groupcast::io::files::{
    Entry, FileSink, MANIFEST_NAME, Manifest, Refusal, SinkConfig, TransferId,
};
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
    Manifest {
        entries: files
            .iter()
            .enumerate()
            .map(|(i, (path, data, mode))| Entry {
                object: ObjectId(i as u32 + 1),
                path: (*path).into(),
                size: data.len() as u64,
                mode: *mode,
                hash: *blake3::hash(data).as_bytes(),
            })
            .collect(),
    }
}

fn block(session: u64, object: u32, offset: u64, data: &[u8]) -> ReceiverEvent {
    ReceiverEvent::BlockDecoded {
        session: SessionId(session),
        object: ObjectId(object),
        offset,
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

/// Delivers a manifest as the receiver would: its block, then its completion.
fn deliver_manifest(sink: &mut FileSink, session: u64, m: &Manifest) {
    let bytes = m.encode();
    sink.handle(block(session, 0, 0, &bytes)).unwrap();
    sink.handle(complete(session, 0, &bytes, MANIFEST_NAME))
        .unwrap();
}

fn deliver_file(sink: &mut FileSink, session: u64, object: u32, data: &[u8], name: &str) {
    if !data.is_empty() {
        sink.handle(block(session, object, 0, data)).unwrap();
    }
    sink.handle(complete(session, object, data, name)).unwrap();
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
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
    // A listed object whose hash is not the manifest's is refused, not written.
    deliver_file(&mut sink, 1, 1, b"omega", "a.txt");
    assert_eq!(count(&sink, Refusal::ManifestMismatch), 1);
    assert!(!d.out().join("a.txt").exists());
    assert!(sink.is_settled() || !sink.is_done());
    deliver_file(&mut sink, 1, 2, b"", "d/e/empty");
    assert_eq!(fs::read(d.out().join("d/e/empty")).unwrap(), b"");
    assert!(!sink.is_done());
    assert!(sink.is_settled(), "a.txt refused, empty written");
    assert!(count(&sink, Refusal::NotInManifest) >= 3);
    drop(sink);
    assert_eq!(listing(&d.out()), vec!["d", "d/e", "d/e/empty"]);
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
        assert_eq!(fs::read(d.out().join("ok")).unwrap(), b"fine");
        assert!(
            count(&sink, Refusal::UnsafePath) + count(&sink, Refusal::Exists) >= 2,
            "{:?}",
            sink.refused_files()
        );
        // With --overwrite the link itself may be replaced by a file, never its target.
        let link = fs::symlink_metadata(d.out().join("link")).unwrap();
        assert!(link.file_type().is_symlink() || overwrite);
        fs::remove_file(d.out().join("ok")).unwrap();
    }
}

#[test]
fn existing_files_are_kept_unless_overwrite_and_names_the_fs_refuses_refuse_one_file() {
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
    // Existing names are refused before anything is received.
    let names: Vec<_> = objects.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, vec!["z"]);
    assert_eq!(count(&sink, Refusal::Exists), 3);
    deliver_file(&mut sink, 1, 4, b"zz", "z");
    assert!(sink.is_settled() && !sink.is_done());
    assert_eq!(fs::read(d.out().join("keep")).unwrap(), b"mine");
    // Modes: masked by the umask (022 here at least), never world-writable.
    let mode = fs::metadata(d.out().join("z"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o002, 0, "world-writable: {mode:o}");
    drop(sink);

    // With --overwrite the file is replaced; a directory or a file on the way still refuses that one file.
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
    assert_eq!(sink.completed(), 1);
    assert_eq!(fs::read(d.out().join("keep")).unwrap(), b"theirs");
    let mode = fs::metadata(d.out().join("keep"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o777, "--keep-modes keeps the mode");
    assert!(d.out().join("dir").is_dir());
    assert_eq!(fs::read(d.out().join("file")).unwrap(), b"a file");
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
    let huge = Manifest {
        entries: vec![Entry {
            object: ObjectId(1),
            path: "huge".into(),
            size: 1 << 39,
            mode: 0o644,
            hash: [7; 32],
        }],
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
    assert_eq!(sink.completed(), 1);
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
    assert_eq!(sink.completed(), 1, "a placed file was counted twice");
    assert!(sink.is_settled() && !sink.is_done());
    assert!(!d.out().join("b").exists(), "a refused file was written");
}
