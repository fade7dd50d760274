//! Drives the file sink with arbitrary receiver events (manifests valid or
//! not, with hostile names; blocks at any offset; completions with right or
//! wrong hashes; failures; files in parts and packed files) over a temporary
//! output directory in which a link to a directory outside, a file and a
//! directory were planted. It binds as
//! the driver does. Whatever happens, nothing outside the output directory is
//! created or changed, the planted entries stay as they are, every file
//! written is listed by the bound manifest with its content's hash, a
//! transfer is placed whole or not at all, and no temporary file is left
//! once the sink is dropped but the resumable ones of files in parts (in the
//! staging directory).
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use groupcast::io::files::{
    Entry, FileSink, MANIFEST_NAME, Manifest, Pack, Part, STAGING_DIR, SinkConfig, TransferId,
    part_ranges, resume_name,
};
use groupcast::{ObjectId, ReceiverEvent, SessionId};
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    ".bashrc",
    "evil",
    "evil/x",
    "evil/new/y",
    "keep",
    "dir",
    "dir/f",
    "a",
    "a/b",
    "a/b/c",
    "../escape",
    "/abs",
    "d/../e",
    "",
    ".groupcast-tmp-00",
    ".groupcast-manifest",
    "x/y",
    "ok",
    "ok/ok",
    "sp ace",
    "ünï",
    "a\nb",
];

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Any(String),
}

impl Name {
    fn get(&self) -> String {
        match self {
            Name::Known(i) => NAMES[*i as usize % NAMES.len()].to_owned(),
            Name::Any(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// A manifest built from entries (object ids in order), delivered in two parts.
    Manifest {
        session: u8,
        files: Vec<(Name, u8, u16)>,
        split: u16,
        right_hash: bool,
    },
    /// Arbitrary bytes as object 0.
    RawManifest {
        session: u8,
        bytes: Vec<u8>,
    },
    Block {
        session: u8,
        object: u8,
        offset: u32,
        data: Vec<u8>,
    },
    /// A forged completion (a hash no content has).
    Complete {
        session: u8,
        object: u8,
        size: u32,
        hash: u8,
        name: Name,
    },
    /// A file of a manifest built by `Manifest`, delivered whole.
    File {
        pick: u8,
        split: u16,
    },
    Failed {
        session: u8,
        object: u8,
    },
}

/// The content of file `i` of a manifest: the same for its entry and its data.
fn content(seed: u8, len: u16) -> Vec<u8> {
    (0..len as u32 % 10_000)
        .map(|j| (j as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<(String, bool)>) {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            }
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, t.is_symlink()));
        }
    }
    out.sort();
}

static RUN: AtomicU64 = AtomicU64::new(0);

fn base() -> PathBuf {
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("gc-fuzz-sink-{}-{n}", std::process::id()))
}

fuzz_target!(|ops: Vec<Op>| {
    let root = base();
    let out = root.join("out");
    let outside = root.join("outside");
    fs::create_dir_all(&out).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("x"), b"precious").unwrap();
    std::os::unix::fs::symlink(&outside, out.join("evil")).unwrap();
    fs::write(out.join("keep"), b"mine").unwrap();
    fs::create_dir_all(out.join("dir")).unwrap();

    let mut sink = FileSink::new(
        &out,
        SinkConfig {
            check_space: false,
            ..SinkConfig::default()
        },
    )
    .unwrap();
    let mut bound: Option<Manifest> = None;
    // (session, object) and its bytes and hash.
    type Content = ((SessionId, u32), (Vec<u8>, [u8; 32]));
    let mut contents: Vec<Content> = Vec::new();
    for op in ops.into_iter().take(64) {
        let events = match op {
            Op::Manifest {
                session,
                files,
                split,
                right_hash,
            } => {
                // Files over 4 KiB are in parts, one object each.
                const PART: u64 = 4096;
                let mut object = 1u32;
                let mut entries = Vec::new();
                for (name, seed, len) in files.iter().take(8) {
                    let c = content(*seed, *len);
                    let ranges = part_ranges(c.len() as u64, PART);
                    let mut parts = Vec::new();
                    for (i, &(offset, size)) in ranges.iter().enumerate() {
                        let bytes = c[offset as usize..(offset + size) as usize].to_vec();
                        let h = TransferId::of(&bytes).0;
                        let o = object + i as u32;
                        contents.push(((SessionId(session as u64), o), (bytes, h)));
                        parts.push(Part {
                            object: ObjectId(o),
                            offset,
                            size,
                            hash: h,
                        });
                    }
                    entries.push(Entry {
                        object: ObjectId(object),
                        path: name.get(),
                        size: c.len() as u64,
                        mode: 0o644,
                        hash: TransferId::of(&c).0,
                        parts: if parts.len() > 1 { parts } else { Vec::new() },
                        pack: None,
                    });
                    object += ranges.len() as u32;
                }
                // Half the time, two small files packed into the last object.
                if split % 2 == 1 {
                    let (x, y) = (content(split as u8, 700), content(!(split as u8), 300));
                    let pack = [x.clone(), y.clone()].concat();
                    let ph = TransferId::of(&pack).0;
                    contents.push(((SessionId(session as u64), object), (pack.clone(), ph)));
                    for (path, data, offset) in [("pk/a", &x, 0), ("pk/b", &y, x.len() as u64)] {
                        entries.push(Entry {
                            object: ObjectId(object),
                            path: path.into(),
                            size: data.len() as u64,
                            mode: 0o644,
                            hash: TransferId::of(data).0,
                            parts: Vec::new(),
                            pack: Some(Pack {
                                offset,
                                size: pack.len() as u64,
                                hash: ph,
                            }),
                        });
                    }
                }
                let m = Manifest {
                    part_size: PART,
                    entries,
                };
                let bytes = m.encode();
                let at = split as usize % (bytes.len() + 1);
                let hash = if right_hash {
                    TransferId::of(&bytes).0
                } else {
                    [1; 32]
                };
                let s = SessionId(session as u64);
                vec![
                    ReceiverEvent::BlockDecoded {
                        session: s,
                        object: ObjectId(0),
                        offset: 0,
                        sbn: 0,
                        data: bytes[..at].to_vec(),
                    },
                    ReceiverEvent::BlockDecoded {
                        session: s,
                        object: ObjectId(0),
                        offset: at as u64,
                        sbn: 0,
                        data: bytes[at..].to_vec(),
                    },
                    ReceiverEvent::ObjectComplete {
                        session: s,
                        object: ObjectId(0),
                        size: bytes.len() as u64,
                        hash,
                        name: MANIFEST_NAME.into(),
                    },
                ]
            }
            Op::RawManifest { session, bytes } => {
                let s = SessionId(session as u64);
                vec![
                    ReceiverEvent::BlockDecoded {
                        session: s,
                        object: ObjectId(0),
                        offset: 0,
                        sbn: 0,
                        data: bytes.clone(),
                    },
                    ReceiverEvent::ObjectComplete {
                        session: s,
                        object: ObjectId(0),
                        size: bytes.len() as u64,
                        hash: TransferId::of(&bytes).0,
                        name: MANIFEST_NAME.into(),
                    },
                ]
            }
            Op::Block {
                session,
                object,
                offset,
                data,
            } => vec![ReceiverEvent::BlockDecoded {
                session: SessionId(session as u64),
                object: ObjectId(object as u32),
                offset: (offset % (1 << 20)) as u64,
                sbn: offset as u8,
                data,
            }],
            Op::File { pick, split } => {
                // A file of a manifest built above, with its bytes and its
                // completion, as an honest receiver core reports them once
                // the hash matched.
                if contents.is_empty() {
                    Vec::new()
                } else {
                    let ((s, object), (c, hash)) = &contents[pick as usize % contents.len()];
                    let (s, object) = (*s, ObjectId(*object));
                    let at = split as usize % (c.len() + 1);
                    vec![
                        ReceiverEvent::BlockDecoded {
                            session: s,
                            object,
                            offset: 0,
                            sbn: 0,
                            data: c[..at].to_vec(),
                        },
                        ReceiverEvent::BlockDecoded {
                            session: s,
                            object,
                            offset: at as u64,
                            sbn: 0,
                            data: c[at..].to_vec(),
                        },
                        ReceiverEvent::ObjectComplete {
                            session: s,
                            object,
                            size: c.len() as u64,
                            hash: *hash,
                            name: String::new(),
                        },
                    ]
                }
            }
            Op::Complete {
                session,
                object,
                size,
                hash,
                name,
            } => vec![ReceiverEvent::ObjectComplete {
                session: SessionId(session as u64),
                object: ObjectId(object as u32),
                size: size as u64 % 4096,
                hash: [hash; 32],
                name: name.get(),
            }],
            Op::Failed { session, object } => vec![ReceiverEvent::ObjectFailed {
                session: SessionId(session as u64),
                object: ObjectId(object as u32),
                reason: groupcast::FailReason::HashMismatch,
            }],
        };
        for e in events {
            // Local failures only (none expected here: space is not checked).
            sink.handle(e).unwrap();
            if sink.take_binding().is_some() && bound.is_none() {
                // The bytes of the bound manifest, as the sink decoded them.
                bound = Some(Manifest {
                    entries: sink.entries().cloned().collect(),
                    ..Manifest::default()
                });
            }
        }
    }
    let whole = sink.is_done();
    drop(sink);

    // Nothing outside changed.
    let mut o = Vec::new();
    walk(&outside, &mut o);
    assert_eq!(o, vec![("x".to_owned(), false)]);
    assert_eq!(fs::read(outside.join("x")).unwrap(), b"precious");
    let mut top: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, vec!["out", "outside"]);
    // The planted entries are as they were.
    assert!(
        fs::symlink_metadata(out.join("evil"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(out.join("keep")).unwrap(), b"mine");
    assert!(out.join("dir").is_dir());
    // Every file written is listed by the bound manifest, with that content;
    // no temporary file is left.
    let mut inside = Vec::new();
    walk(&out, &mut inside);
    for (rel, link) in &inside {
        if rel == STAGING_DIR {
            continue;
        }
        // The only temporary files left are those a later run resumes: of
        // files in parts of the bound manifest, in the staging directory.
        if rel.starts_with(".groupcast-tmp-") {
            let name = rel
                .strip_prefix(STAGING_DIR)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or_else(|| panic!("left {rel} beside the staging directory"));
            let m = bound
                .as_ref()
                .unwrap_or_else(|| panic!("left {rel} with no manifest bound"));
            assert!(
                m.entries
                    .iter()
                    .any(|e| !e.parts.is_empty() && resume_name(e) == name),
                "left {rel}"
            );
            continue;
        }

        if *link || ["evil", "keep", "dir"].contains(&rel.as_str()) {
            assert!(
                ["evil", "keep", "dir"].contains(&rel.as_str()),
                "a link was made: {rel}"
            );
            continue;
        }
        let p = out.join(rel);
        if p.is_dir() {
            continue;
        }
        let m = bound
            .as_ref()
            .unwrap_or_else(|| panic!("{rel} written with no manifest bound"));
        let e = m
            .entries
            .iter()
            .find(|e| &e.path == rel)
            .unwrap_or_else(|| panic!("{rel} is not in the manifest"));
        // All or nothing: a transfer not placed whole placed no file.
        assert!(whole, "{rel} placed, but the transfer was not placed whole");
        let got = fs::read(&p).unwrap();
        assert_eq!(got.len() as u64, e.size, "{rel}");
        assert_eq!(
            TransferId::of(&got).0,
            e.hash,
            "{rel}: content is not what the manifest says"
        );
    }
    let _ = fs::remove_dir_all(&root);
});
