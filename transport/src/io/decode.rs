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
    /// Set when the pool is dropped: workers then take no further job.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Decode workers, at nice 10: see the module docs.
pub type DecodePool = WorkerPool<DecodeJob, DecodedBlock>;

impl DecodePool {
    /// Starts `threads` decode workers (at least one), at a lower scheduling
    /// priority; `wake` runs after each result. The first pool of the process
    /// also times a RaptorQ solve, on a thread of its own at the same
    /// priority ([`check_codec_speed`]).
    pub fn decoders(threads: usize, wake: Option<Wake>) -> std::io::Result<Self> {
        static CHECKED: std::sync::Once = std::sync::Once::new();
        CHECKED.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("groupcast-codec-check".into())
                .spawn(check_codec_speed);
        });
        Self::new(threads, "groupcast-dec", true, run_slowed, wake)
    }

    /// Queues every job the receiver has to hand out.
    pub fn submit_all(&mut self, receiver: &mut crate::Receiver) {
        while let Some(job) = receiver.poll_decode() {
            self.submit(job);
        }
    }
}

/// Every solve of the process takes this many times its CPU time
/// ([`slow_decoding_down`]); 1: as fast as it runs.
static SLOWDOWN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Makes every later solve of this process's decode pools take `factor`
/// times the thread CPU time it used (the worker sleeps the rest), as on a
/// machine or a build `factor` times slower. For tests and labs of slow
/// receivers; a publisher in the same process is not slowed (it solves
/// nothing).
#[doc(hidden)]
pub fn slow_decoding_down(factor: u32) {
    SLOWDOWN.store(factor.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// Thread CPU time, in seconds.
fn thread_cpu() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// [`DecodeJob::run`], slowed as [`slow_decoding_down`] says.
fn run_slowed(job: DecodeJob) -> DecodedBlock {
    let factor = SLOWDOWN.load(std::sync::atomic::Ordering::Relaxed);
    if factor <= 1 {
        return job.run();
    }
    let started = thread_cpu();
    let out = job.run();
    let spent = (thread_cpu() - started).max(0.0);
    std::thread::sleep(std::time::Duration::from_secs_f64(
        spent * (factor - 1) as f64,
    ));
    out
}

/// Bytes per second below which one RaptorQ solve of [`solve_speed`]'s block
/// marks an unoptimised codec: an optimised build solves it at hundreds of
/// MB/s on any machine groupcast runs on, an unoptimised one (a dependent
/// crate's debug profile) about a hundred times slower.
pub const SLOW_CODEC: f64 = 8e6;

/// Times one RaptorQ solve of a 256 KiB block (256 symbols of 1 KiB, the
/// first 16 lost and 20 repair symbols in their place) with this build's
/// codec; returns bytes of block per second, or `None` if it did not decode.
pub fn solve_speed() -> Option<f64> {
    timed_block(256, 16, 20, false)
}

/// Encodes a block of `k` symbols of 1 KiB and solves it from the symbols
/// after the first `lost` and up to `repair` repair symbols, in this
/// thread's CPU time (a busy machine that preempts the work does not make
/// the codec look slow); with `with_encoder`, the encoder's build is timed
/// too. Returns bytes of block per second of what was timed, or `None` if
/// the block did not decode to what was encoded.
fn timed_block(k: u32, lost: u32, repair: u32, with_encoder: bool) -> Option<f64> {
    use groupcast_fec::{FecId, Oti, codec_for};
    let codec = codec_for(FecId::RaptorQ);
    let data: Vec<u8> = (0..k << 10).map(|i| (i * 31 + i / 7) as u8).collect();
    let oti = Oti::for_object(data.len() as u64, 1024, k, 1).ok()?;
    let block = oti.block(0)?;
    let before_encoder = thread_cpu();
    let mut enc = codec.encoder(&oti, &block, &data).ok()?;
    let mut dec = codec.decoder(&oti, &block).ok()?;
    let k = block.source_symbols;
    let mut symbol = vec![0u8; 1024];
    let started = if with_encoder {
        before_encoder
    } else {
        thread_cpu()
    };
    for esi in (lost..k).chain(k..k + repair) {
        enc.write_symbol(esi, &mut symbol).ok()?;
        dec.push(esi, &symbol).ok()?;
        if dec.is_decoded() {
            break;
        }
    }
    let secs = thread_cpu() - started;
    (dec.take_decoded()? == data).then(|| block.len as f64 / secs.max(1e-9))
}

/// The better of two runs of `f` (the first also warms the caches).
fn best_of_two(f: impl Fn() -> Option<f64>) -> Option<f64> {
    [f(), f()].into_iter().flatten().reduce(f64::max)
}

/// Warns once (tracing) if this build's RaptorQ solves slower than
/// [`SLOW_CODEC`]: such a receiver cannot keep up with a sender at the
/// default rate, and the sender's flow control then runs at its pace, or
/// leaves it behind as stalled (protocol.md §13.4).
pub fn check_codec_speed() {
    super::sys::lower_thread_priority();
    let Some(speed) = best_of_two(solve_speed) else {
        return;
    };
    SOLVE_SPEED.store(speed as u64, std::sync::atomic::Ordering::Relaxed);
    if speed < SLOW_CODEC {
        tracing::warn!("{}", slow_codec_hint(speed));
    }
}

/// What [`check_codec_speed`] measured, in bytes per second (0 until then).
static SOLVE_SPEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The advice for a codec this slow, in one sentence.
fn slow_codec_hint(speed: f64) -> String {
    format!(
        "RaptorQ solves at {:.1} MB/s in this build, about a hundred times slower than \
         optimised: a sender waits for such a receiver only down to its min_progress (`send \
         --min-progress`). Build optimised (--release), or add `[profile.dev.package.raptorq]` \
         with `opt-level = 3`, `debug-assertions = false` and `overflow-checks = false` to the \
         Cargo.toml of the crate you build (README, \"As a library\")",
        speed / 1e6
    )
}

/// Source symbols per block that a sender whose own RaptorQ is unoptimised
/// sends at most ([`fit_blocks_to_codec`]). Such a build (raptorq's debug
/// assertions on) encodes and solves a block of 64 symbols at about 2 MB/s,
/// 256 at 0.2 MB/s and 850 at 0.02 MB/s, that is 47 s a block, longer than
/// a receiver's default hold credit (docs/results.md).
pub const SLOW_CODEC_BLOCK_SYMBOLS: u32 = 64;

/// Whether this build's RaptorQ is unoptimised: an encoder build and a
/// solve of a block of [`SLOW_CODEC_BLOCK_SYMBOLS`] 1 KiB symbols, timed in
/// thread CPU time, the better of two, run slower than [`SLOW_CODEC`].
/// Measured once per process, on the calling thread: about a millisecond
/// optimised, 100 ms unoptimised.
pub fn codec_is_slow() -> bool {
    static SLOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SLOW.get_or_init(|| {
        // An encoder's build and a solve: two passes over the block.
        best_of_two(|| timed_block(SLOW_CODEC_BLOCK_SYMBOLS, 4, 8, true).map(|b| 2.0 * b))
            .is_some_and(|speed| speed < SLOW_CODEC)
    })
}

/// Caps a RaptorQ sender's blocks at [`SLOW_CODEC_BLOCK_SYMBOLS`] when this
/// build's codec is unoptimised ([`codec_is_slow`]), and warns once: with
/// its default blocks such a sender, and receivers built the same way, take
/// most of a minute per block, and receivers are left behind as stalled.
/// Receivers built optimised decode the smaller blocks as well. The socket
/// drivers' senders (publishers, `send_path`) call it.
pub fn fit_blocks_to_codec(config: &mut crate::proto::SenderConfig) {
    // Nack mode sends Compact No-Code, which solves nothing.
    if config.fec != groupcast_fec::FecId::RaptorQ
        || config.mode == crate::Mode::Nack
        || config.block_symbols <= SLOW_CODEC_BLOCK_SYMBOLS
        || !codec_is_slow()
    {
        return;
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "RaptorQ is unoptimised in this build, so this sender sends blocks of {} source \
             symbols instead of {} (objects of more than 255 such blocks get larger ones), \
             which such a build encodes and solves at about 2 MB/s (a block of 1000 takes \
             most of a minute). Build optimised (--release), or add \
             `[profile.dev.package.raptorq]` with `opt-level = 3`, `debug-assertions = false` \
             and `overflow-checks = false` to the Cargo.toml of the crate you build (README, \
             \"As a library\")",
            SLOW_CODEC_BLOCK_SYMBOLS,
            config.block_symbols
        );
    });
    config.block_symbols = SLOW_CODEC_BLOCK_SYMBOLS;
}

/// If this process's codec was found slow ([`check_codec_speed`]), the
/// advice, for an error that a slow codec may have caused.
pub fn slow_codec() -> Option<String> {
    let speed = SOLVE_SPEED.load(std::sync::atomic::Ordering::Relaxed) as f64;
    (speed > 0.0 && speed < SLOW_CODEC).then(|| slow_codec_hint(speed))
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
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (job_rx, done_tx) = (Arc::clone(&job_rx), done_tx.clone());
            let stop = Arc::clone(&stop);
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
                            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                                return;
                            }
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
            stop,
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
        // Queued jobs are dropped, not run; closing the job channel ends
        // every worker's loop.
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
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

    /// This workspace builds RaptorQ optimised in every profile (its
    /// Cargo.toml), so the quick check finds it fast, and a publisher keeps
    /// its blocks.
    #[test]
    fn this_workspace_keeps_its_blocks() {
        assert!(!super::codec_is_slow());
        let mut config = crate::proto::SenderConfig::default();
        super::fit_blocks_to_codec(&mut config);
        assert_eq!(config.block_symbols, 1000);
    }

    /// The codec check runs a real solve: it decodes the block it encoded.
    #[test]
    fn the_codec_check_solves_a_real_block() {
        let speed = super::solve_speed().expect("the block decodes");
        println!("RaptorQ solves at {:.1} MB/s in this build", speed / 1e6);
        assert!(speed > 0.0);
    }
}
