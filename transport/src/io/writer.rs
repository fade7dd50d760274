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

/// Writes queued at most: the receiving thread waits when so many are out
/// (blocks of about 1.2 MB at the default K and T).
pub const QUEUE: usize = 16;

/// One write: `data[range]` at `at` in `file`, for the sink's file `key`.
struct Job {
    key: usize,
    file: Arc<File>,
    at: u64,
    data: Arc<Vec<u8>>,
    range: Range<usize>,
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

/// A thread that writes queued blocks in order; dropping it writes what is
/// queued and joins it.
pub struct Writer {
    jobs: Option<SyncSender<Job>>,
    shared: Shared,
    thread: Option<JoinHandle<()>>,
    seq: u64,
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
        })
    }

    /// Queues `data[range]` for `at` in `file` (file `key` of the sink),
    /// waiting while the queue is full. Its sequence number, for
    /// [`Writer::wait`].
    pub fn write(
        &mut self,
        key: usize,
        file: &Arc<File>,
        at: u64,
        data: &Arc<Vec<u8>>,
        range: Range<usize>,
    ) -> u64 {
        self.seq += 1;
        let job = Job {
            key,
            file: Arc::clone(file),
            at,
            data: Arc::clone(data),
            range,
            seq: self.seq,
        };
        if let Some(jobs) = &self.jobs
            && let Err(e) = jobs.send(job)
        {
            // The thread is gone (it cannot panic but by a bug): write here.
            let job = e.0;
            let done = job.file.write_all_at(&job.data[job.range], job.at);
            let (lock, cv) = &*self.shared;
            let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = done {
                p.failed.push((job.key, e));
            }
            p.done = p.done.max(job.seq);
            cv.notify_all();
        }
        self.seq
    }

    /// Waits until every write up to `seq` is done (or failed).
    pub fn wait(&self, seq: u64) {
        let (lock, cv) = &*self.shared;
        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
        while p.done < seq {
            p = cv.wait(p).unwrap_or_else(|e| e.into_inner());
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
#[derive(Default)]
struct Behind {
    file: Option<Arc<File>>,
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
    // Files by the address of their shared descriptor.
    let mut behind: HashMap<usize, Behind> = HashMap::new();
    while let Ok(job) = rx.recv() {
        let bytes = &job.data[job.range.clone()];
        let done = job.file.write_all_at(bytes, job.at);
        let id = Arc::as_ptr(&job.file) as usize;
        if done.is_ok() {
            let b = behind.entry(id).or_default();
            b.file.get_or_insert_with(|| Arc::clone(&job.file));
            b.dirty.push((job.at, job.at + bytes.len() as u64));
            b.bytes += bytes.len() as u64;
            if b.bytes >= BATCH {
                let batch = merge(std::mem::take(&mut b.dirty));
                b.bytes = 0;
                for &(lo, hi) in &batch {
                    super::sys::start_write_back(&job.file, lo, hi - lo);
                }
                for (lo, hi) in std::mem::replace(&mut b.started, batch) {
                    super::sys::drop_behind(&job.file, lo, hi - lo);
                }
            }
        }
        let (key, seq) = (job.key, job.seq);
        drop(job);
        {
            let (lock, cv) = &*shared;
            let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = done {
                p.failed.push((key, e));
            }
            p.done = seq;
            cv.notify_all();
        }
        // Forget files the sink has let go of (placed or removed).
        behind.retain(|_, b| b.file.as_ref().is_some_and(|f| Arc::strong_count(f) > 1));
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
        let blocks: Vec<Arc<Vec<u8>>> = (0..20u8).map(|i| Arc::new(vec![i; 1 << 20])).collect();
        let mut last = 0;
        for i in (0..20).rev() {
            last = w.write(7, &file, (i as u64) << 20, &blocks[i], 0..1 << 20);
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
        let seq = w.write(9, &ro, 0, &blocks[1], 10..20);
        w.wait(seq);
        let failed = w.take_failures();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, 9);
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
