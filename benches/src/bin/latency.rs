//! One-way message latency: percentiles of the time from
//! `Publisher::send` to the subscriber handing the message out, for single
//! small messages (one every 20 ms, each alone in its object) and a steady
//! stream of them (one every millisecond, batched), at 0% and 1% loss, in
//! hybrid mode with the default 5 ms flush delay.
//!
//! ```sh
//! cargo run --release -p groupcast-benches --bin latency            # simulator and namespaces
//! cargo run --release -p groupcast-benches --bin latency -- sim     # simulator only (no root)
//! cargo run --release -p groupcast-benches --bin latency -- netns   # namespaces only
//! cargo run --release -p groupcast-benches --bin latency -- netns steady 1%   # one row
//! ```
//!
//! With `LATENCY_WORST=1` each namespace row also prints its eight slowest
//! messages (sequence number, ms) and the publisher's repair and NACK counts.
//!
//! The simulator drives the real Sender and Receivers with the feed's real
//! framing (`proto::feed`) over links of 5 ms one way (RTT 10 ms) on a
//! virtual clock; the namespaces run a real Publisher and Subscriber over a
//! veth pair (root, iproute2, nftables), both in this process, so that one
//! clock times both ends. The target: p99 at most 3 × RTT + the flush delay.

use std::time::{Duration, Instant};

use groupcast::proto::feed::{Batching, Delivery, Inbox, Outbox};
use groupcast::{Mode, ObjectId, SenderConfig, SessionId};
use groupcast_testing::Pair;

const FLUSH: Duration = Duration::from_millis(5);

/// (pattern, messages, interval between them).
const PATTERNS: [(&str, usize, Duration); 2] = [
    ("single", 300, Duration::from_millis(20)),
    ("steady", 5000, Duration::from_millis(1)),
];

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.9), at(0.99), *v.last().unwrap())
}

fn row(place: &str, pattern: &str, loss: f64, rtt_ms: f64, lat_ms: Vec<f64>, lost: usize) {
    let n = lat_ms.len();
    let (p50, p90, p99, max) = percentiles(lat_ms);
    let target = 3.0 * rtt_ms + FLUSH.as_secs_f64() * 1e3;
    println!(
        "| {place} | {pattern} | {:.0}% | {rtt_ms:.2} ms | {n} | {p50:.2} | {p90:.2} | {p99:.2} | {max:.2} | {target:.2} | {} |",
        loss * 100.0,
        if lost > 0 {
            format!("{lost} lost")
        } else if p99 <= target {
            "met".into()
        } else {
            "not met".into()
        }
    );
}

/// The simulator: one publisher, 3 subscribers, 5 ms each way.
fn sim(pattern: (&str, usize, Duration), loss: f64) {
    let one_way = Duration::from_millis(5);
    let config = SenderConfig {
        mode: Mode::Hybrid,
        repair_overhead: Mode::Hybrid.default_repair_overhead(),
        rate: Some(12_500_000),
        ..SenderConfig::default()
    };
    let threshold = (loss * u64::MAX as f64) as u64;
    let mut pair = Pair::new(config, 3).delayed(one_way).losing(move |i, n| {
        groupcast_fec::splitmix64((i as u64 + 1) << 40 ^ n ^ 0x5eed) < threshold
    });
    pair.sender.set_open(true);
    let mut outbox = Outbox::new(Batching::default());
    let mut inboxes: Vec<Inbox> = (0..3)
        .map(|_| Inbox::new(Duration::from_secs(10), 4))
        .collect();
    let mut taken = [0usize; 3];
    let session = SessionId(1);
    let (_, count, every) = pattern;
    let start = pair.now;
    let mut sent_at: Vec<Instant> = Vec::with_capacity(count);
    let mut latencies = Vec::new();
    let mut got = [0usize; 3];
    let deadline = start + every * count as u32 + Duration::from_secs(30);
    while got.iter().any(|&g| g < count) && pair.now < deadline {
        let now = pair.now;
        while sent_at.len() < count && start + every * sent_at.len() as u32 <= now {
            let seq = sent_at.len() as u64;
            outbox.push_message(now, &seq.to_be_bytes());
            sent_at.push(now);
        }
        outbox.handle_timeout(now);
        while let Some(o) = outbox.poll_object() {
            pair.sender.add_object(o, "").unwrap();
        }
        if let Some(a) = pair.sender.acknowledged() {
            pair.sender.retire_before(a);
        }
        for (i, inbox) in inboxes.iter_mut().enumerate() {
            if inbox.start(session).is_none() {
                inbox.start_at(session, ObjectId(0));
            }
            for o in &pair.objects[i][taken[i]..] {
                inbox.handle_object(now, o.session, o.object, o.data.clone());
            }
            taken[i] = pair.objects[i].len();
            while let Some(d) = inbox.poll() {
                if let Delivery::Message(m) = d {
                    let seq = u64::from_be_bytes(m.data[..8].try_into().unwrap()) as usize;
                    latencies.push((now - sent_at[seq]).as_secs_f64() * 1e3);
                    got[i] += 1;
                }
            }
        }
        let next_send = (sent_at.len() < count).then(|| start + every * sent_at.len() as u32);
        let cap = [next_send, outbox.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        pair.step_within(cap);
    }
    let lost = got.iter().map(|&g| count - g).sum();
    row(
        "simulator",
        pattern.0,
        loss,
        2.0 * one_way.as_secs_f64() * 1e3,
        latencies,
        lost,
    );
}

/// Namespaces: a Publisher and a Subscriber over a veth pair.
fn netns(pattern: (&str, usize, Duration), loss: f64) {
    use groupcast::io::pubsub::{Event, Publisher, Subscriber};
    use groupcast_testing::netns::{Netns, enter};
    let mut n = Netns::new("lat");
    let (a, b) = (n.ns("pub"), n.ns("sub"));
    n.link(&a, "e0", &b, "e0");
    n.drop_percent(&b, (loss * 100.0) as u32);
    n.wait_link(&a, "e0");
    n.wait_link(&b, "e0");
    let open_in = |ns: &str| {
        let ns = ns.to_owned();
        move || enter(&ns)
    };
    let rtt_ms = udp_rtt_ms(open_in(&a), open_in(&b));
    let enter_b = open_in(&b);
    let sub = std::thread::spawn(move || {
        enter_b();
        Subscriber::builder("latency", "e0").open().unwrap()
    })
    .join()
    .unwrap();
    let enter_a = open_in(&a);
    let publisher = std::thread::spawn(move || {
        enter_a();
        Publisher::builder("latency", "e0")
            .rate_bits(100_000_000)
            .open()
            .unwrap()
    })
    .join()
    .unwrap();
    let (_, count, every) = pattern;
    // The path's round trip, as the sender measures it (min-filtered echoes).
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut sent_at = Vec::with_capacity(count);
        for seq in 0..count as u64 {
            let due = t0 + every * seq as u32;
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            sent_at.push(Instant::now());
            publisher.send(&seq.to_be_bytes()).unwrap();
        }
        let grtt = publisher.stats().grtt_us;
        if std::env::var_os("LATENCY_WORST").is_some() {
            let st = publisher.stats();
            eprintln!(
                "publisher: grtt {} us, source {}, repair {}, nacks {}",
                st.grtt_us, st.source_symbols_sent, st.repair_symbols_sent, st.nacks_received
            );
        }
        let report = publisher.close().unwrap();
        (sent_at, grtt, report)
    });
    let mut arrived = vec![None; count];
    let mut got = 0;
    while got < count {
        match sub.next_event_timeout(Duration::from_secs(30)) {
            Ok(Event::Message(m)) => {
                let seq = u64::from_be_bytes(m.data[..8].try_into().unwrap()) as usize;
                arrived[seq] = Some(Instant::now());
                got += 1;
            }
            Ok(Event::End { .. }) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let (sent_at, _grtt_us, _) = sender.join().unwrap();
    if std::env::var_os("LATENCY_WORST").is_some() {
        let (rx, inbox) = sub.stats();
        eprintln!(
            "subscriber: nacks sent {}, suppressed {}, unanswered {}, doubted {}, info {}, \
             probes {}, duplicates {}, gaps {:?}",
            rx.nacks_sent,
            rx.nacks_suppressed,
            rx.nacks_unanswered,
            rx.suppressions_doubted,
            rx.info_received,
            rx.probes_received,
            rx.duplicates,
            inbox
        );
    }
    let lat: Vec<f64> = arrived
        .iter()
        .zip(&sent_at)
        .filter_map(|(a, s)| a.map(|a| (a - *s).as_secs_f64() * 1e3))
        .collect();
    let lost = count - lat.len();
    if std::env::var_os("LATENCY_WORST").is_some() {
        let mut worst: Vec<(usize, f64)> = lat.iter().copied().enumerate().collect();
        worst.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
        eprintln!("worst (seq, ms): {:?}", &worst[..worst.len().min(8)]);
    }
    row("namespaces", pattern.0, loss, rtt_ms, lat, lost);
}

/// The path's round trip: the median of 50 UDP echoes from `a` to `b` (to
/// the all-nodes group, answered by unicast).
fn udp_rtt_ms(
    enter_a: impl FnOnce() + Send + 'static,
    enter_b: impl FnOnce() + Send + 'static,
) -> f64 {
    use std::net::UdpSocket;
    let echo = std::thread::spawn(move || {
        enter_b();
        let s = UdpSocket::bind("[::]:5999").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..50 {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                break;
            };
            let _ = s.send_to(&buf[..n], from);
        }
    });
    let rtt = std::thread::spawn(move || {
        enter_a();
        std::thread::sleep(Duration::from_millis(100));
        let s = UdpSocket::bind("[::]:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let ifindex = std::fs::read_to_string("/proc/self/net/if_inet6")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.ends_with(" e0"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|i| u32::from_str_radix(i, 16).ok())
            })
            .unwrap_or(0);
        let to = std::net::SocketAddrV6::new("ff02::1".parse().unwrap(), 5999, 0, ifindex);
        let mut samples = Vec::new();
        let mut buf = [0u8; 64];
        for _ in 0..50 {
            let t = Instant::now();
            s.send_to(b"ping", to).unwrap();
            if s.recv_from(&mut buf).is_ok() {
                samples.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        samples.sort_by(|x, y| x.partial_cmp(y).unwrap());
        samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
    })
    .join()
    .unwrap();
    let _ = echo.join();
    rtt
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only_sim = args.iter().any(|a| a == "sim");
    let only_netns = args.iter().any(|a| a == "netns");
    // Pattern names (single, steady) and losses (0%, 1%) pick rows.
    let names: Vec<&String> = args
        .iter()
        .filter(|a| PATTERNS.iter().any(|p| p.0 == a.as_str()))
        .collect();
    let losses: Vec<&String> = args.iter().filter(|a| a.ends_with('%')).collect();
    let picked = |name: &str, loss: f64| {
        (names.is_empty() || names.iter().any(|n| n.as_str() == name))
            && (losses.is_empty()
                || losses
                    .iter()
                    .any(|l| **l == format!("{:.0}%", loss * 100.0)))
    };
    println!(
        "| where | pattern | loss | RTT | messages | p50 ms | p90 ms | p99 ms | max ms | target ms (3 × RTT + {} ms) | |",
        FLUSH.as_millis()
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in PATTERNS {
        for loss in [0.0, 0.01] {
            if !only_netns && picked(p.0, loss) {
                sim(p, loss);
            }
        }
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if only_sim || !root {
        if !only_sim {
            eprintln!("namespaces skipped: they need root");
        }
        return;
    }
    for p in PATTERNS {
        for loss in [0.0, 0.01] {
            if picked(p.0, loss) {
                netns(p, loss);
            }
        }
    }
}
