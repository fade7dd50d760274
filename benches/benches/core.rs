//! The sans-IO core's own cost per datagram, with no FEC work in it: a
//! carousel sender (one round, no repair) hands every DATA packet of 16 MB
//! straight to a Receiver (no loss, so every block completes from its source
//! symbols). `sender` times the sender alone (header, CRC, symbol copy, the
//! schedule); `sender+receiver` both, as on a loopback link without a
//! kernel (the receiver's share includes hashing the object to verify it).
//! The sender is made, and its object hashed, outside the timing.
//! Throughput is in bytes of object per second.
//!
//! `cargo bench -p groupcast-benches --bench core`

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use groupcast::{Receiver, ReceiverConfig};
use groupcast_benches::{carousel_sender, object};

const SIZE: usize = 16 << 20;

fn core(c: &mut Criterion) {
    let data = object(SIZE, 1);
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    g.bench_function("sender", |b| {
        let mut buf = vec![0u8; 1500];
        b.iter_batched(
            || carousel_sender(&data),
            |mut s| {
                let now = Instant::now();
                let mut n = 0u64;
                while let Some(len) = s.poll_transmit(now, &mut buf) {
                    n += len as u64;
                }
                assert!(n > SIZE as u64);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("sender+receiver", |b| {
        let mut buf = vec![0u8; 1500];
        b.iter_batched(
            || carousel_sender(&data),
            |mut s| {
                let mut r = Receiver::new(ReceiverConfig::default());
                let now = Instant::now();
                while let Some(len) = s.poll_transmit(now, &mut buf) {
                    let _ = r.handle_datagram(now, &buf[..len]);
                }
                assert_eq!(r.stats().objects_completed, 1);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
