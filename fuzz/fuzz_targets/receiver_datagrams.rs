//! Feeds a Receiver a sequence of arbitrary datagrams with tight limits. The
//! input is framed as repeated (length: u16 big-endian, bytes); a short tail is
//! one last datagram. It must never panic, and its stats must stay
//! consistent and within the configured memory bound.
#![no_main]

use std::time::{Duration, Instant};

use groupcast::{Receiver, ReceiverConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = ReceiverConfig {
        max_object_size: 1 << 20,
        max_objects: 4,
        max_blocks_in_flight: 4,
        ..ReceiverConfig::default()
    };
    let mut r = Receiver::new(config.clone());
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut rest = data;
    while !rest.is_empty() {
        let (chunk, tail) = if rest.len() >= 2 {
            let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            rest[2..].split_at(len)
        } else {
            (rest, &[][..])
        };
        let now = t0 + Duration::from_millis(n);
        r.handle_datagram(now, chunk);
        n += 1;
        while r.poll_event().is_some() {}
        // Feedback (after PROBEs) must stay well-formed and bounded.
        let mut out = [0u8; 1232];
        for _ in 0..16 {
            match r.poll_transmit(now, &mut out) {
                Some((len, _)) => assert!(groupcast::wire::Repr::parse(&out[..len]).is_ok()),
                None => break,
            }
        }
        rest = tail;
    }
    r.handle_timeout(t0 + Duration::from_secs(3600));
    while r.poll_event().is_some() {}
    let s = r.stats();
    assert_eq!(s.packets_received, n);
    assert_eq!(s.packets_rejected, s.rejected_by_reason().map(|(_, c)| c).sum::<u64>());
    // Symbols are at most 64 KiB, and at most 4 blocks of at most 56403 symbols are open.
    assert!(s.peak_buffered_bytes <= config.buffer_bound(u16::MAX, 56_403));
    assert_eq!(r.objects_in_progress(), 0);
    assert_eq!(s.buffered_bytes, 0);
});
