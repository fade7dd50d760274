//! The cost of source authentication (protocol.md §15) per datagram, in the
//! same run as the plain core: a carousel sender's 16 MB of DATA packets of
//! 1232 bytes, each hashed and listed in a signed AUTH (`sign`), and the
//! receiver's side: every datagram checked and every AUTH verified
//! (`verify`), against the sender alone (`plain`). The datagrams are made
//! outside the timing for `verify`. Throughput is in bytes of datagrams per
//! second; one core.
//!
//! `cargo bench -p groupcast-benches --bench auth`

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use groupcast::proto::auth::{Gate, Signer, SigningKey, Verifier};
use groupcast::wire::Repr;
use groupcast_benches::{carousel_sender, object};

const SIZE: usize = 16 << 20;

/// Sends everything, through a signer if `key` is given; the datagrams and
/// whether each is an AUTH.
fn send(data: &[u8], key: Option<&SigningKey>, keep: bool) -> (u64, Vec<(bool, Vec<u8>)>) {
    let mut s = carousel_sender(data);
    let mut signer = key.map(|k| Signer::new(k.clone(), 1, 1232).expect("fits"));
    let mut buf = vec![0u8; 1500];
    let mut abuf = vec![0u8; 1500];
    let now = Instant::now();
    let (mut bytes, mut out) = (0, Vec::new());
    while let Some(len) = s.poll_transmit(now, &mut buf) {
        bytes += len as u64;
        if keep {
            out.push((false, buf[..len].to_vec()));
        }
        if let Some(g) = &mut signer {
            g.sent(now, &buf[..len]);
            if let Some(n) = g.poll_auth(now, &mut abuf) {
                bytes += n as u64;
                if keep {
                    out.push((true, abuf[..n].to_vec()));
                }
            }
        }
    }
    (bytes, out)
}

fn auth(c: &mut Criterion) {
    let data = object(SIZE, 1);
    let key = SigningKey::from_bytes(&[7; 32]);
    let (plain, _) = send(&data, None, false);
    let (signed, wire) = send(&data, Some(&key), true);
    println!(
        "bytes on the wire: plain {plain}, signed {signed} ({:+.2}%)",
        (signed as f64 / plain as f64 - 1.0) * 100.0
    );
    let mut g = c.benchmark_group("auth");
    g.throughput(Throughput::Bytes(plain));
    g.sample_size(10);
    g.bench_function("plain", |b| b.iter(|| send(&data, None, false)));
    g.bench_function("sign", |b| b.iter(|| send(&data, Some(&key), false)));
    g.bench_function("verify", |b| {
        b.iter_batched(
            || Verifier::<()>::new(key.verifying_key()),
            |mut v| {
                let now = Instant::now();
                let mut through = 0u64;
                for (is_auth, d) in &wire {
                    if *is_auth {
                        if let Ok(Repr::Auth(a)) = Repr::parse(d) {
                            v.on_auth(now, &a).expect("signed");
                        }
                    } else if v.check(now, d, ()) == Gate::Pass {
                        through += 1;
                    }
                    while v.poll_released().is_some() {
                        through += 1;
                    }
                }
                assert_eq!(through, v.stats().vouched);
                assert_eq!(v.stats().unvouched, 0);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
