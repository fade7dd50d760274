//! The [`super::sink::FileSink`]'s writer thread.
//!
//! The receiving thread must keep draining its socket: a `pwrite` that the
//! kernel throttles (dirty page limits, a slow disk, memory that a virtual
//! machine hands out slowly) would stall it long enough for the socket to
//! overflow, and every datagram lost there costs repair. So the sink queues
//! its writes here, a bounded queue of decoded blocks, and one thread writes
//! them in order.
//!
//! It writes behind: once a file has [`BATCH`] bytes written since the last
//! time, their write-back starts, and the batch before is waited for and
//! dropped from the page cache. A large transfer then recycles a few batches
//! of page cache instead of filling memory with pages nobody reads again, and
//! the disk runs at its own speed. Files smaller than a batch are left in the
//! cache as any write leaves them.
//!
//! [`Writer::wait`] returns once every write queued up to a sequence number
//! is done: the sink waits so before it places a file, and takes the
//! failures ([`Writer::take_failures`]) first.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Bytes of one file written between two write-back batches.
pub const BATCH: u64 = 8 << 20;

/// Blocks queued at most: the receiving thread waits when so many are out,
/// or when they hold [`QUEUE_BYTES`]. As many as the sender's default flow
/// window and its interleave (240 + 16), and as many bytes as that window's
/// byte bound and an interleave of the default blocks: while the receiver
/// holds its reported window at the first block still queued
/// ([`super::sink::FileSink::write_backlog`]), the sender sends no more than
/// that beyond it, so the queue does not fill.
pub const QUEUE: usize = 256;

/// Bytes queued at most (see [`QUEUE`]): 32 MiB of flow window and 16
/// blocks of about 1.2 MB, rounded up.
pub const QUEUE_BYTES: usize = 64 << 20;

/// Where a range of a block goes: `range` of its bytes at `at` in `file`,
/// the sink's file `key`.
pub struct Piece {
    /// The sink's key of the file.
    pub key: usize,
    /// The file.
    pub file: Arc<File>,
    /// Offset in the file.
    pub at: u64,
    /// Bytes of the block.
    pub range: Range<usize>,
    /// Whether its file is written behind (a pack's temporary file, removed
    /// within a moment, is not: written back, it would reach the disk twice).
    pub behind: bool,
}

/// One block's writes (one for a file's block, several for a pack's).
struct Job {
    data: Vec<u8>,
    pieces: Vec<Piece>,
    seq: u64,
}

#[derive(Default)]
struct Progress {
    /// Every job up to this sequence number is done.
    done: u64,
    /// Writes that failed: the file's key and the error.
    failed: Vec<(usize, std::io::Error)>,
}

type Shared = Arc<(Mutex<Progress>, Condvar)>;

/// Says that every job up to `seq` is done, with the writes that failed.
fn report(shared: &Shared, seq: u64, mut failed: Vec<(usize, std::io::Error)>) {
    let (lock, cv) = &**shared;
    let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
    p.failed.append(&mut failed);
    p.done = p.done.max(seq);
    cv.notify_all();
}

/// Writes one piece of a job's block.
fn write_piece(data: &[u8], piece: &Piece) -> std::io::Result<()> {
    piece
        .file
        .write_all_at(&data[piece.range.clone()], piece.at)
}

/// A thread that writes queued blocks in order; dropping it writes what is
/// queued and joins it.
pub struct Writer {
    jobs: Option<SyncSender<Job>>,
    shared: Shared,
    thread: Option<JoinHandle<()>>,
    seq: u64,
    /// The jobs queued and not known done: sequence number and bytes.
    queued: std::collections::VecDeque<(u64, usize)>,
    /// Their bytes.
    queued_bytes: usize,
}

impl Writer {
    /// Starts the thread.
    pub fn new() -> std::io::Result<Self> {
        let (jobs, rx) = sync_channel(QUEUE);
        let shared: Shared = Arc::default();
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("groupcast-write".into())
            .spawn(move || run(rx, theirs))?;
        Ok(Self {
            jobs: Some(jobs),
            shared,
            thread: Some(thread),
            seq: 0,
            queued: Default::default(),
            queued_bytes: 0,
        })
    }

    /// Queues a block's `pieces` of `data`, waiting while the queue is
    /// full ([`QUEUE`] blocks or [`QUEUE_BYTES`]). Its sequence number, for
    /// [`Writer::wait`].
    pub fn write(&mut self, data: Vec<u8>, pieces: Vec<Piece>) -> u64 {
        let done = self.done();
        while self.queued.front().is_some_and(|&(seq, _)| {
            seq <= done || (self.queued_bytes + data.len() > QUEUE_BYTES && self.wait(seq))
        }) {
            let (_, bytes) = self.queued.pop_front().expect("checked");
            self.queued_bytes -= bytes;
        }
        self.queued.push_back((self.seq + 1, data.len()));
        self.queued_bytes += data.len();
        self.seq += 1;
        let job = Job {
            data,
            pieces,
            seq: self.seq,
        };
        if let Some(jobs) = &self.jobs
            && let Err(e) = jobs.send(job)
        {
            // The thread is gone (it cannot panic but by a bug): write here.
            let job = e.0;
            let failed = job
                .pieces
                .iter()
                .filter_map(|piece| write_piece(&job.data, piece).err().map(|e| (piece.key, e)))
                .collect();
            report(&self.shared, job.seq, failed);
        }
        self.seq
    }

    /// Waits until every write up to `seq` is done (or failed).
    /// Whether they are: false if the thread is gone first (it stopped, or
    /// died with writes queued, which only a bug could make it do), so that
    /// nobody waits forever.
    pub fn wait(&self, seq: u64) -> bool {
        let (lock, cv) = &*self.shared;
        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if p.done >= seq {
                return true;
            }
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return false;
            }
            p = cv
                .wait_timeout(p, std::time::Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every write up to this sequence number is done (or failed).
    pub fn done(&self) -> u64 {
        let (lock, _) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).done
    }

    /// The writes that failed since the last call: each file's key and error.
    pub fn take_failures(&self) -> Vec<(usize, std::io::Error)> {
        let (lock, _) = &*self.shared;
        std::mem::take(&mut lock.lock().unwrap_or_else(|e| e.into_inner()).failed)
    }

    /// Writes what is queued, and stops the thread.
    pub fn finish(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A file's bytes written since its last batch, and the batch whose
/// write-back was started last.
struct Behind {
    file: Arc<File>,
    dirty: Vec<(u64, u64)>,
    bytes: u64,
    started: Vec<(u64, u64)>,
}

/// Sorted, with touching ranges merged.
fn merge(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn run(rx: Receiver<Job>, shared: Shared) {
    // Below the receiving thread, as the decode workers are: on a busy
    // machine the socket must be drained first. A writer left behind holds
    // the reported window back (`write_backlog`), which slows the sender.
    super::sys::lower_thread_priority();
    // Files by the address of their shared descriptor.
    let mut behind: HashMap<usize, Behind> = HashMap::new();
    while let Ok(job) = rx.recv() {
        let mut failed = Vec::new();
        for piece in &job.pieces {
            if let Err(e) = write_piece(&job.data, piece) {
                failed.push((piece.key, e));
                continue;
            }
            if !piece.behind {
                continue;
            }
            let len = piece.range.len() as u64;
            let b = behind
                .entry(Arc::as_ptr(&piece.file) as usize)
                .or_insert_with(|| Behind {
                    file: Arc::clone(&piece.file),
                    dirty: Vec::new(),
                    bytes: 0,
                    started: Vec::new(),
                });
            b.dirty.push((piece.at, piece.at + len));
            b.bytes += len;
            if b.bytes >= BATCH {
                let batch = merge(std::mem::take(&mut b.dirty));
                b.bytes = 0;
                for &(lo, hi) in &batch {
                    super::sys::start_write_back(&piece.file, lo, hi - lo);
                }
                for (lo, hi) in std::mem::replace(&mut b.started, batch) {
                    super::sys::drop_behind(&piece.file, lo, hi - lo);
                }
            }
        }
        let seq = job.seq;
        drop(job);
        report(&shared, seq, failed);
        // Forget files the sink has let go of (placed or removed).
        behind.retain(|_, b| Arc::strong_count(&b.file) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes land at their offsets, in order, across batches; `wait`
    /// returns once they are done; a failed write is reported with its key.
    #[test]
    fn writes_land_and_failures_are_reported() {
        let dir = std::env::temp_dir().join(format!("gc-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = Arc::new(File::create(&path).unwrap());
        let mut w = Writer::new().unwrap();
        // 20 blocks of 1 MiB, written in reverse order, cross two batches.
        let piece = |key, file: &Arc<File>, at, range| Piece {
            key,
            file: Arc::clone(file),
            at,
            range,
            behind: true,
        };
        let mut last = 0;
        for i in (0..20u8).rev() {
            let at = u64::from(i) << 20;
            last = w.write(vec![i; 1 << 20], vec![piece(7, &file, at, 0..1 << 20)]);
        }
        w.wait(last);
        assert!(w.take_failures().is_empty());
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 20 << 20);
        for (i, chunk) in got.chunks(1 << 20).enumerate() {
            assert!(chunk.iter().all(|&b| b == i as u8), "block {i}");
        }
        // A descriptor opened read-only cannot be written: key 9 fails.
        let ro = Arc::new(File::open(&path).unwrap());
        let seq = w.write(vec![1; 100], vec![piece(9, &ro, 0, 10..20)]);
        w.wait(seq);
        let failed = w.take_failures();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, 9);
        // Stopped, it has nothing more to finish: waiting for a write that
        // was never queued says so instead of waiting forever.
        w.finish();
        assert!(w.wait(seq));
        assert!(!w.wait(seq + 1));
        drop(w);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ranges_merge_when_they_touch() {
        assert_eq!(
            merge(vec![(10, 20), (0, 10), (30, 40), (15, 25)]),
            vec![(0, 25), (30, 40)]
        );
    }
}
