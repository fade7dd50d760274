//! A bounded cache of block encoders, optionally built ahead on worker threads.
//!
//! Building a RaptorQ encoder (the intermediate symbols of a block) costs about
//! as much as decoding the block, and the sender needs one before the first
//! repair symbol of every block. With worker threads, the sender asks for a
//! block's encoder when it starts sending the block's source symbols, and the
//! encoder is ready by the time repair is due. Encoding is deterministic, so the
//! symbols are the same with or without workers; only the timing differs, and
//! the simulator uses none.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use groupcast_fec::{BlockEncoder, BlockInfo, Codec, Oti};

/// Which block: (object index, SBN).
pub(crate) type Key = (u32, u8);

struct Job {
    codec: &'static dyn Codec,
    oti: Oti,
    block: BlockInfo,
    data: Arc<Vec<u8>>,
    reply: mpsc::SyncSender<Box<dyn BlockEncoder>>,
}

impl Job {
    fn build(
        codec: &'static dyn Codec,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> Box<dyn BlockEncoder> {
        codec
            .encoder(oti, block, &data[block.range()])
            .expect("block data matches its OTI")
    }
}

enum Slot {
    Pending(mpsc::Receiver<Box<dyn BlockEncoder>>),
    Ready(Box<dyn BlockEncoder>),
}

struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|i| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("groupcast-enc{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only while waiting for a job.
                            let job = match rx.lock() {
                                Ok(guard) => guard.recv(),
                                Err(_) => return,
                            };
                            let Ok(job) = job else { return };
                            let enc = Job::build(job.codec, &job.oti, &job.block, &job.data);
                            // The sender may have evicted the slot; that is fine.
                            let _ = job.reply.send(enc);
                        }
                    })
                    .expect("spawn encoder worker")
            })
            .collect();
        Self {
            jobs: Some(tx),
            workers,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Encoders by block, at most `capacity` of them, oldest evicted first.
pub(crate) struct Encoders {
    codec: &'static dyn Codec,
    pool: Option<Pool>,
    slots: VecDeque<(Key, Slot)>,
    capacity: usize,
}

impl Encoders {
    pub(crate) fn new(codec: &'static dyn Codec, threads: usize, capacity: usize) -> Self {
        Self {
            codec,
            pool: (threads > 0).then(|| Pool::new(threads)),
            slots: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn position(&self, key: Key) -> Option<usize> {
        self.slots.iter().position(|(k, _)| *k == key)
    }

    fn insert(&mut self, key: Key, slot: Slot) -> usize {
        while self.slots.len() >= self.capacity {
            self.slots.pop_front();
        }
        self.slots.push_back((key, slot));
        self.slots.len() - 1
    }

    /// Whether the block's encoder is built or being built.
    pub(crate) fn has(&self, key: Key) -> bool {
        self.position(key).is_some()
    }

    /// Starts building a block's encoder on a worker, if there are workers and
    /// the encoder is neither built nor under way.
    pub(crate) fn prepare(&mut self, key: Key, oti: &Oti, block: &BlockInfo, data: &Arc<Vec<u8>>) {
        let Some(jobs) = self.pool.as_ref().and_then(|p| p.jobs.as_ref()) else {
            return;
        };
        if self.position(key).is_some() {
            return;
        }
        let (reply, rx) = mpsc::sync_channel(1);
        let job = Job {
            codec: self.codec,
            oti: *oti,
            block: *block,
            data: Arc::clone(data),
            reply,
        };
        if jobs.send(job).is_ok() {
            self.insert(key, Slot::Pending(rx));
        }
    }

    /// The block's encoder: waits for a worker that is building it, or builds
    /// it here.
    pub(crate) fn get(
        &mut self,
        key: Key,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> &mut dyn BlockEncoder {
        let i = match self.position(key) {
            Some(i) => i,
            None => self.insert(key, Slot::Ready(Job::build(self.codec, oti, block, data))),
        };
        let slot = &mut self.slots[i].1;
        if let Slot::Pending(rx) = slot {
            let enc = rx
                .recv()
                .unwrap_or_else(|_| Job::build(self.codec, oti, block, data));
            *slot = Slot::Ready(enc);
        }
        match slot {
            Slot::Ready(enc) => enc.as_mut(),
            Slot::Pending(_) => unreachable!("resolved above"),
        }
    }
}
