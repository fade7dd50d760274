//! Pools of worker threads for the drivers: [`DecodePool`] solves the
//! receiver's blocks ([`DecodeJob`]s), and the sender's encoder builds run on
//! the same [`WorkerPool`]. [`super::run_receiver`] uses a `DecodePool`, and
//! so can a driver that feeds a [`crate::Receiver`] from elsewhere (a file, a
//! bench, a test).
//!
//! The receiver hands out jobs when [`crate::ReceiverConfig::decode_threads`]
//! is above 0 (`Receiver::poll_decode`); [`DecodePool::submit`] queues them,
//! workers run them at a lower scheduling priority (nice 10: the receiving
//! thread must keep draining its socket), and [`DecodePool::try_take`] or
//! [`DecodePool::take`] give the results back for
//! `Receiver::handle_decoded`. An optional `wake` callback runs after each
//! result, for a driver that sleeps in a poll.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::proto::{DecodeJob, DecodedBlock};

/// Called by a worker after each result it hands back.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Worker threads that turn jobs `J` into results `R`, in any order.
/// Dropping the pool stops them once their current job is done (queued jobs
/// are dropped) and joins them.
pub struct WorkerPool<J, R> {
    jobs: Option<mpsc::Sender<J>>,
    done: mpsc::Receiver<R>,
    workers: Vec<JoinHandle<()>>,
    pending: usize,
}

/// Decode workers, at nice 10: see the module docs.
pub type DecodePool = WorkerPool<DecodeJob, DecodedBlock>;

impl DecodePool {
    /// Starts `threads` decode workers (at least one), at a lower scheduling
    /// priority; `wake` runs after each result.
    pub fn decoders(threads: usize, wake: Option<Wake>) -> std::io::Result<Self> {
        Self::new(threads, "groupcast-dec", true, DecodeJob::run, wake)
    }

    /// Queues every job the receiver has to hand out.
    pub fn submit_all(&mut self, receiver: &mut crate::Receiver) {
        while let Some(job) = receiver.poll_decode() {
            self.submit(job);
        }
    }
}

impl<J: Send + 'static, R: Send + 'static> WorkerPool<J, R> {
    /// Starts `threads` workers (at least one) named `name` and their index,
    /// each running `work` on the jobs it takes, at nice 10 if `background`.
    pub fn new(
        threads: usize,
        name: &str,
        background: bool,
        work: fn(J) -> R,
        wake: Option<Wake>,
    ) -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<J>();
        let (done_tx, done) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (job_rx, done_tx) = (Arc::clone(&job_rx), done_tx.clone());
            let wake = wake.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("{name}{i}"))
                    .spawn(move || {
                        if background {
                            super::sys::lower_thread_priority();
                        }
                        loop {
                            // The lock is held only while waiting for a job.
                            let job = match job_rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            let Ok(job) = job else { return };
                            if done_tx.send(work(job)).is_err() {
                                return;
                            }
                            if let Some(w) = &wake {
                                w();
                            }
                        }
                    })?,
            );
        }
        Ok(Self {
            jobs: Some(jobs),
            done,
            workers,
            pending: 0,
        })
    }

    /// Queues a job for the next free worker.
    pub fn submit(&mut self, job: J) {
        if let Some(jobs) = &self.jobs
            && jobs.send(job).is_ok()
        {
            self.pending += 1;
        }
    }

    /// A result, if one is ready.
    pub fn try_take(&mut self) -> Option<R> {
        let r = self.done.try_recv().ok()?;
        self.pending -= 1;
        Some(r)
    }

    /// The next result, waiting for it; `None` when no job is out.
    pub fn take(&mut self) -> Option<R> {
        if self.pending == 0 {
            return None;
        }
        let r = self.done.recv().ok()?;
        self.pending -= 1;
        Some(r)
    }

    /// Jobs submitted whose results have not been taken.
    pub fn pending(&self) -> usize {
        self.pending
    }
}

impl<J, R> Drop for WorkerPool<J, R> {
    fn drop(&mut self) {
        // Closing the job channel ends every worker's loop.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerPool;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every job's result comes back once, whatever the order, each followed
    /// by a wake; `take` says None once nothing is out; dropping joins.
    #[test]
    fn every_job_comes_back_once_and_wakes() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&wakes);
        let mut pool = WorkerPool::new(
            3,
            "test",
            true,
            |x: u64| x * x,
            Some(Arc::new(move || {
                w.fetch_add(1, Ordering::Relaxed);
            })),
        )
        .unwrap();
        for x in 0..100 {
            pool.submit(x);
        }
        assert_eq!(pool.pending(), 100);
        let mut got: Vec<u64> = std::iter::from_fn(|| pool.take()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(pool.pending(), 0);
        assert!(pool.take().is_none() && pool.try_take().is_none());
        drop(pool);
        assert_eq!(wakes.load(Ordering::Relaxed), 100);
    }
}
