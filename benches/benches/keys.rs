//! The cost of keys at each end, in one run (docs/results.md, "Signed and
//! encrypted channels"): a 64 MiB object sent by the sans-IO core in
//! 1232-byte datagrams, with no key, with a signing key (protocol.md §15),
//! with a channel key (§16), and with both; each sender's datagrams then
//! handed to a receiver holding the same keys, which decodes the object. The
//! sender's and the receiver's time per GB of object (one core each, the
//! median of five runs), the bytes on the wire, and each keyed run against
//! the plain one: the extra CPU at 1 Gbit/s of goodput, and the goodput one
//! core reaches.
//!
//! `cargo bench -p groupcast-benches --bench keys`

use std::time::{Duration, Instant};

use groupcast::proto::auth::SigningKey;
use groupcast::wire::seal::ChannelKey;
use groupcast::{Mode, Receiver, ReceiverConfig, ReceiverEvent, Rounds, Sender, SenderConfig};
use groupcast_benches::object;

const SIZE: usize = 64 << 20;
const RUNS: usize = 7;

struct Keys {
    name: &'static str,
    sign: Option<SigningKey>,
    seal: Option<ChannelKey>,
}

/// Every datagram a one-round carousel with `keys` sends for `data`, and
/// the time it took.
fn send(data: &[u8], keys: &Keys) -> (Duration, Vec<Vec<u8>>) {
    let started = Instant::now();
    let mut s = Sender::new(SenderConfig {
        mode: Mode::Carousel,
        rounds: Rounds::Fixed(1),
        repair_overhead: 0.0,
        rate: None,
        signing_key: keys.sign.clone(),
        channel_key: keys.seal.clone(),
        seal_start: Some(7),
        ..SenderConfig::default()
    })
    .expect("valid config");
    s.add_object(data.to_vec(), "bench.bin").expect("object");
    let mut buf = vec![0u8; 1500];
    let mut out = Vec::with_capacity(SIZE / 1100);
    let mut t = Instant::now();
    while !s.is_finished() {
        while let Some(n) = s.poll_transmit(t, &mut buf) {
            out.push(buf[..n].to_vec());
        }
        // The last AUTH goes when its delay runs out.
        t += Duration::from_millis(5);
    }
    (started.elapsed(), out)
}

/// A receiver with `keys` takes `wire` whole and decodes the object; the
/// time it took.
fn receive(data: &[u8], keys: &Keys, wire: &[Vec<u8>]) -> Duration {
    let started = Instant::now();
    let mut r = Receiver::new(ReceiverConfig {
        sender_keys: keys.sign.iter().map(SigningKey::verifying_key).collect(),
        channel_keys: keys.seal.iter().cloned().collect(),
        max_object_size: 1 << 30,
        ..ReceiverConfig::default()
    });
    let now = Instant::now();
    let mut got = 0usize;
    let mut complete = false;
    for d in wire {
        let _ = r.handle_datagram(now, d);
        while let Some(e) = r.poll_event() {
            match e {
                ReceiverEvent::BlockDecoded { data, .. } => got += data.len(),
                ReceiverEvent::ObjectComplete { .. } => complete = true,
                _ => {}
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(complete && got == data.len(), "{}: not decoded", keys.name);
    assert_eq!(r.stats().symbols_unvouched, 0);
    elapsed
}

/// The least of the runs: the cost with the least interference from the
/// rest of the machine (the allocator's page faults included).
fn least(v: Vec<Duration>) -> Duration {
    v.into_iter().min().expect("one run at least")
}

fn main() {
    // `cargo bench` passes --bench; anything else (`cargo test --benches`)
    // runs it once on a small object, as a test.
    let quick = !std::env::args().any(|a| a == "--bench");
    let size = if quick { 1 << 20 } else { SIZE };
    let runs = if quick { 1 } else { RUNS };
    let data = object(size, 3);
    let signing = SigningKey::from_bytes(&[7; 32]);
    let channel = ChannelKey::from_bytes([9; 32]);
    let configs = [
        Keys {
            name: "plain",
            sign: None,
            seal: None,
        },
        Keys {
            name: "signed",
            sign: Some(signing.clone()),
            seal: None,
        },
        Keys {
            name: "encrypted",
            sign: None,
            seal: Some(channel.clone()),
        },
        Keys {
            name: "signed + encrypted",
            sign: Some(signing),
            seal: Some(channel),
        },
    ];
    let gb = size as f64 / 1e9;
    let mut rows = Vec::new();
    for keys in &configs {
        let (mut sends, mut recvs) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for _ in 0..runs {
            let (t, wire) = send(&data, keys);
            sends.push(t);
            bytes = wire.iter().map(Vec::len).sum::<usize>();
            recvs.push(receive(&data, keys, &wire));
        }
        rows.push((
            keys.name,
            least(sends).as_secs_f64() / gb,
            least(recvs).as_secs_f64() / gb,
            bytes as f64,
        ));
    }
    let (_, s0, r0, b0) = rows[0];
    println!(
        "{} MiB in 1232-byte datagrams, one core each end, least of {runs} runs:",
        size >> 20
    );
    println!(
        "| keys | bytes on the wire | against plain | sender CPU s/GB | extra | receiver CPU s/GB \
         | extra | receiver's extra CPU at 1 Gbit/s | one receiver core's goodput | against plain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &(name, s, r, b) in &rows {
        println!(
            "| {name} | {b:.0} | {:+.2}% | {s:.2} | {:+.2} | {r:.2} | {:+.2} | {:.3} core | {:.0} MB/s | {:+.1}% |",
            (b / b0 - 1.0) * 100.0,
            s - s0,
            r - r0,
            // 1 Gbit/s of goodput is 0.125 GB a second.
            (r - r0) * 0.125,
            1e3 / r,
            (r0 / r - 1.0) * 100.0,
        );
    }
}
