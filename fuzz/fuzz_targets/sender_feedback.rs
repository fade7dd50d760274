//! Feeds a hybrid (or nack) Sender arbitrary feedback datagrams, framed as
//! repeated (length: u16 big-endian, bytes), with the sender transmitting and
//! time advancing between them. It must never panic, never emit more than
//! `max_datagram` bytes, and never let repair exceed its share by more than
//! its burst.
#![no_main]

use std::time::{Duration, Instant};

use groupcast::{FeedbackConfig, Mode, Sender, SenderConfig, SessionId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mode, data) = match data.split_first() {
        Some((m, rest)) if m & 1 == 1 => (Mode::Nack, rest),
        Some((_, rest)) => (Mode::Hybrid, rest),
        None => return,
    };
    let rate = 1_000_000u64;
    let mut s = Sender::new(SenderConfig {
        session: SessionId(1),
        mode,
        max_datagram: 144,
        block_symbols: 10,
        interleave: 2,
        rate: Some(rate),
        feedback: FeedbackConfig {
            max_receivers: 16,
            max_receivers_per_source: 4,
            ..FeedbackConfig::default()
        },
        ..SenderConfig::default()
    })
    .unwrap();
    s.add_object(vec![7u8; 3_000], "a").unwrap();
    s.add_object(vec![8u8; 500], "b").unwrap();
    let t0 = Instant::now();
    let mut now = t0;
    let mut buf = vec![0u8; 144];
    let mut rest = data;
    let mut i = 0u16;
    while !rest.is_empty() {
        let (chunk, tail) = if rest.len() >= 2 {
            let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            rest[2..].split_at(len)
        } else {
            (rest, &[][..])
        };
        // From three hosts in turn, each with its share of the receiver table.
        let host = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1 + i % 3);
        s.handle_feedback(now, Some(host.into()), chunk);
        i = i.wrapping_add(1);
        s.handle_timeout(now);
        for _ in 0..64 {
            match s.poll_transmit(now, &mut buf) {
                Some(n) => assert!(n <= 144),
                None => break,
            }
        }
        while s.poll_event().is_some() {}
        now += Duration::from_millis(3);
        rest = tail;
    }
    let st = s.stats();
    assert!(
        st.receivers_tracked <= 12,
        "3 hosts, 4 receivers each at most"
    );
    let elapsed = now.saturating_duration_since(t0).as_secs_f64();
    let repair_bytes = st.repair_symbols_sent as f64 * 144.0;
    assert!(repair_bytes <= 0.5 * rate as f64 * elapsed + 64.0 * 1024.0 + 144.0 * 2.0);
});
