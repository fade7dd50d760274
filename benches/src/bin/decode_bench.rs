//! The receiver alone, from memory: a recorded packet stream at a loss rate
//! goes through the real `Receiver` with 0 (inline), 1, 2 and 4 decode
//! threads, three times each in turn, and prints for each count its fastest
//! run's goodput (MB/s of verified object per second of wall time) and its
//! ratios to the inline run and to one thread, measured in the same process,
//! with the allocator tuned as `groupcast recv` tunes it.
//!
//! ```sh
//! cargo run --release -p groupcast-benches --bin decode-bench -- [SIZE_MIB] [LOSS] [THREADS,...]
//! ```
//!
//! Defaults: 64 MiB, 0.1, `0,1,2,4`. The stream is a hybrid-style first pass
//! (source symbols plus enough fresh repair for the loss) sent by the real
//! `Sender`, with the lost datagrams dropped by a seeded draw before the
//! clock starts. No socket is involved: this measures decoding, hashing and
//! the receiver's bookkeeping, where the CPU goes at a loss.

use std::time::Instant;

use groupcast::io::DecodePool;
use groupcast::{Mode, Receiver, ReceiverConfig, ReceiverEvent, Rounds, Sender, SenderConfig};
use groupcast_fec::{pseudo_random_bytes, splitmix64};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(64);
    let loss: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let threads: Vec<usize> = args
        .get(2)
        .map(|a| a.split(',').filter_map(|t| t.parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 1, 2, 4]);
    if !(0.0..0.5).contains(&loss) || mib == 0 {
        eprintln!("usage: decode-bench [SIZE_MIB > 0] [LOSS in 0..0.5] [THREADS,...]");
        std::process::exit(2);
    }
    // The allocator as `groupcast recv` sets it, for the most threads asked.
    groupcast::io::tune_allocator(groupcast::io::AllocatorRole::Receiver {
        decode_threads: threads.iter().copied().max().unwrap_or(0),
    });
    let size = mib << 20;
    let data = pseudo_random_bytes(size, 14);
    let stream = record(&data, loss);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "decode-bench: {mib} MiB, {} datagrams kept of a first pass at {:.0}% loss, {cores} cores",
        stream.len(),
        loss * 100.0
    );
    // Each count runs REPS times, in turn with the others, and keeps its
    // fastest run: the machine is shared, and the first runs also grow the
    // heaps.
    let mut best = vec![f64::INFINITY; threads.len()];
    for _ in 0..REPS {
        for (i, &t) in threads.iter().enumerate() {
            best[i] = best[i].min(receive(&stream, size, t));
        }
    }
    let rate_of = |t: usize| {
        threads
            .iter()
            .position(|&x| x == t)
            .map(|i| size as f64 / best[i] / 1e6)
    };
    println!("| decode threads | seconds (best of {REPS}) | MB/s | × inline | × 1 thread |");
    println!("|---|---|---|---|---|");
    for (i, &t) in threads.iter().enumerate() {
        let rate = size as f64 / best[i] / 1e6;
        let label = if t == 0 {
            "0 (inline)".to_owned()
        } else {
            t.to_string()
        };
        let ratio = |base: Option<f64>| base.map_or("".to_owned(), |b| format!("{:.2}", rate / b));
        println!(
            "| {label} | {:.3} | {rate:.0} | {} | {} |",
            best[i],
            ratio(rate_of(0)),
            ratio(rate_of(1)),
        );
    }
}

/// Runs of each thread count; the fastest is printed.
const REPS: usize = 3;

/// The datagrams a sender's first pass puts out for `data`, with repair for
/// `loss`, less those a seeded draw loses.
fn record(data: &[u8], loss: f64) -> Vec<Vec<u8>> {
    let mut sender = Sender::new(SenderConfig {
        mode: Mode::Carousel,
        rounds: Rounds::Fixed(1),
        // Enough repair that nearly every block decodes from the first pass.
        repair_overhead: loss / (1.0 - loss) + 0.04,
        ..SenderConfig::default()
    })
    .expect("a valid configuration");
    sender
        .add_object(data.to_vec(), "bench")
        .expect("the object fits");
    let now = Instant::now();
    let mut buf = vec![0u8; sender.config().max_datagram];
    let mut out = Vec::new();
    let mut i = 0u64;
    while let Some(n) = sender.poll_transmit(now, &mut buf) {
        i += 1;
        let u = (splitmix64(i ^ 0x5eed) >> 11) as f64 / (1u64 << 53) as f64;
        if u >= loss {
            out.push(buf[..n].to_vec());
        }
    }
    out
}

/// Feeds the stream to a receiver with `threads` decode threads (0: inline)
/// and returns the seconds until the object completed and verified.
fn receive(stream: &[Vec<u8>], size: usize, threads: usize) -> f64 {
    let mut r = Receiver::new(ReceiverConfig {
        decode_threads: threads,
        // As `groupcast recv` runs it.
        ripen: true,
        max_object_size: size as u64 + 1,
        ..ReceiverConfig::default()
    });
    let mut pool =
        (threads > 0).then(|| DecodePool::decoders(threads, None).expect("threads start"));
    let now = Instant::now();
    let start = Instant::now();
    let mut complete = 0usize;
    let mut bytes = 0usize;
    let mut events = |r: &mut Receiver| {
        while let Some(e) = r.poll_event() {
            match e {
                ReceiverEvent::BlockDecoded { data, .. } => bytes += data.len(),
                ReceiverEvent::ObjectComplete { .. } => complete += 1,
                _ => {}
            }
        }
    };
    for d in stream {
        let _ = r.handle_datagram(now, d);
        events(&mut r);
        if let Some(p) = pool.as_mut() {
            p.submit_all(&mut r);
            while let Some(b) = p.try_take() {
                r.handle_decoded(now, b);
                events(&mut r);
            }
        }
    }
    if let Some(p) = pool.as_mut() {
        // The clock moves on 10 ms after the stream (well within the idle
        // timeout): a last block held back for more of its run, which will
        // not come, goes out to solve.
        r.handle_timeout(now + std::time::Duration::from_millis(10));
        // What is still out, and what failed attempts send out again.
        loop {
            p.submit_all(&mut r);
            let Some(b) = p.take() else { break };
            r.handle_decoded(now, b);
            events(&mut r);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(bytes, size, "{threads} threads: every block decoded");
    assert_eq!(complete, 1, "{threads} threads: the object verified");
    secs
}
