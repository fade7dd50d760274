//! Sender tests: the carousel schedule, fresh ESIs, pacing in virtual time, and
//! configuration errors.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use groupcast::wire::{DataRepr, Repr};
use groupcast::{FecId, Rounds, Sender, SenderConfig, SenderError, SenderEvent};

fn drain(s: &mut Sender, now: Instant) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; s.config().max_datagram];
    let mut out = Vec::new();
    while let Some(n) = s.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn data(p: &[u8]) -> Option<DataRepr<'_>> {
    match Repr::parse(p).expect("sender emits valid packets") {
        Repr::Data(d) => Some(d),
        Repr::ObjectInfo(_) => None,
    }
}

#[test]
fn carousel_rounds_send_fresh_esis_interleaved() {
    let mut s = Sender::new(SenderConfig {
        max_datagram: 144, // T = 100
        block_symbols: 10,
        interleave: 3,
        repair_overhead: 0.2,
        round_repair: 0.3,
        rounds: Rounds::Fixed(3),
        info_interval: 1000,
        ..SenderConfig::default()
    })
    .unwrap();
    assert_eq!(s.symbol_size(), 100);
    s.add_object(vec![7u8; 5000], "o").unwrap(); // 50 symbols: 5 blocks of 10
    let packets = drain(&mut s, Instant::now());
    assert!(s.is_finished());
    let syms: Vec<(u8, u32)> = packets
        .iter()
        .filter_map(|p| data(p))
        .map(|d| (d.sbn, d.esi))
        .collect();
    // Every (block, ESI) pair is sent once: repair symbols are always fresh.
    let unique: HashSet<_> = syms.iter().collect();
    assert_eq!(unique.len(), syms.len());
    // Round 1: 10 source + 2 repair per block; rounds 2 and 3: 3 repair per block.
    assert_eq!(syms.len(), 5 * (10 + 2 + 3 + 3));
    let st = s.stats();
    assert_eq!(st.source_symbols_sent, 50);
    assert_eq!(st.repair_symbols_sent, 5 * (2 + 3 + 3));
    assert_eq!(st.rounds_completed, 3);
    assert_eq!(st.info_packets_sent, 3); // one per object per round
    // The first window interleaves blocks 0, 1, 2: symbol i of each block in turn.
    assert_eq!(
        &syms[..6],
        &[(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    );
    // ESIs of each block continue across rounds: K, K+1, ...
    let block0: Vec<u32> = syms
        .iter()
        .filter(|(b, _)| *b == 0)
        .map(|&(_, e)| e)
        .collect();
    assert_eq!(block0, (0..18).collect::<Vec<u32>>());
    let mut events = Vec::new();
    while let Some(e) = s.poll_event() {
        events.push(e);
    }
    assert_eq!(
        events,
        vec![
            SenderEvent::RoundComplete { round: 1 },
            SenderEvent::RoundComplete { round: 2 },
            SenderEvent::RoundComplete { round: 3 },
            SenderEvent::Finished
        ]
    );
}

#[test]
fn nocode_rounds_replay_every_source_symbol() {
    let mut s = Sender::new(SenderConfig {
        max_datagram: 144,
        block_symbols: 10,
        fec: FecId::NoCode,
        repair_overhead: 0.5,
        rounds: Rounds::Fixed(2),
        ..SenderConfig::default()
    })
    .unwrap();
    s.add_object(vec![1u8; 2000], "n").unwrap();
    let packets = drain(&mut s, Instant::now());
    let syms: Vec<(u8, u32)> = packets
        .iter()
        .filter_map(|p| data(p))
        .map(|d| (d.sbn, d.esi))
        .collect();
    assert_eq!(syms.len(), 2 * 20);
    assert!(syms.iter().all(|&(_, e)| e < 10));
    assert_eq!(s.stats().repair_symbols_sent, 20);
}

#[test]
fn info_repeats_every_interval() {
    let mut s = Sender::new(SenderConfig {
        max_datagram: 144,
        info_interval: 10,
        repair_overhead: 0.0,
        ..SenderConfig::default()
    })
    .unwrap();
    s.add_object(vec![3u8; 10_000], "i").unwrap(); // 100 source symbols
    let packets = drain(&mut s, Instant::now());
    let infos = packets.iter().filter(|p| data(p).is_none()).count();
    assert_eq!(infos, 10); // at the start, then after every 10 DATA packets but the last
    assert_eq!(packets.len(), 110);
}

#[test]
fn pacing_follows_the_token_bucket_in_virtual_time() {
    let rate = 1_000_000u64; // bytes per second
    let mut s = Sender::new(SenderConfig {
        rate: Some(rate),
        burst: 10_000,
        rounds: Rounds::Unlimited,
        ..SenderConfig::default()
    })
    .unwrap();
    s.add_object(vec![9u8; 1_000_000], "p").unwrap();
    let t0 = Instant::now();
    let mut now = t0;
    let mut buf = vec![0u8; 1232];
    let mut bytes = 0u64;
    let end = t0 + Duration::from_secs(2);
    let mut wakes = 0;
    while now < end {
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            bytes += n as u64;
        }
        let next = s
            .poll_timeout()
            .expect("a paced, unfinished sender has a deadline");
        assert!(
            next > now,
            "the deadline must lie ahead when the bucket is empty"
        );
        now = next;
        s.handle_timeout(now);
        wakes += 1;
    }
    // Two seconds at the rate, plus the initial burst, give or take one datagram.
    let expected = 2 * rate + 10_000;
    assert!(
        bytes.abs_diff(expected) <= 1232 * 2,
        "{bytes} vs {expected}"
    );
    assert!(wakes > 1000, "paced sending wakes often: {wakes}");
}

#[test]
fn unpaced_sender_has_no_deadline() {
    let mut s = Sender::new(SenderConfig::default()).unwrap();
    assert_eq!(s.poll_timeout(), None);
    s.add_object(vec![1u8; 10], "u").unwrap();
    assert_eq!(s.poll_timeout(), None);
    assert!(drain(&mut s, Instant::now()).len() >= 2);
    assert!(s.is_finished());
}

#[test]
fn configuration_errors_name_the_problem() {
    let err = |c: SenderConfig| Sender::new(c).err().expect("must be refused");
    assert!(matches!(
        err(SenderConfig {
            max_datagram: 20,
            ..Default::default()
        }),
        SenderError::MaxDatagram(20)
    ));
    assert!(matches!(
        err(SenderConfig {
            symbol_size: Some(1200),
            ..Default::default()
        }),
        SenderError::SymbolSize { t: 1200, max: 1188 }
    ));
    assert!(matches!(
        err(SenderConfig {
            symbol_size: Some(1001),
            ..Default::default()
        }),
        SenderError::SymbolSize { .. }
    ));
    assert!(matches!(
        err(SenderConfig {
            rounds: Rounds::Fixed(0),
            ..Default::default()
        }),
        SenderError::Config(_)
    ));
    assert!(matches!(
        err(SenderConfig {
            repair_overhead: -1.0,
            ..Default::default()
        }),
        SenderError::Config(_)
    ));
    assert!(matches!(
        err(SenderConfig {
            rate: Some(0),
            ..Default::default()
        }),
        SenderError::Config(_)
    ));
    let mut s = Sender::new(SenderConfig::default()).unwrap();
    let long = "x".repeat(1200);
    assert!(matches!(
        s.add_object(vec![], &long),
        Err(SenderError::NameTooLong { .. })
    ));
    let msg = err(SenderConfig {
        symbol_size: Some(1200),
        ..Default::default()
    })
    .to_string();
    assert!(msg.contains("1200") && msg.contains("1188"), "{msg}");
}

/// Encoder worker threads change when encoders are built, never what is sent.
#[test]
fn encoder_threads_send_the_same_datagrams() {
    let run = |threads: usize| {
        let mut s = Sender::new(SenderConfig {
            max_datagram: 244, // T = 200
            block_symbols: 50,
            interleave: 4,
            repair_overhead: 0.3,
            round_repair: 0.2,
            rounds: Rounds::Fixed(3),
            encoder_threads: threads,
            ..SenderConfig::default()
        })
        .unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        s.add_object(data, "o").unwrap();
        s.add_object(vec![5u8; 33_333], "p").unwrap();
        drain(&mut s, Instant::now())
    };
    let inline = run(0);
    assert!(inline.len() > 1000);
    assert_eq!(run(1), inline);
    assert_eq!(run(3), inline);
}
