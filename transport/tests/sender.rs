//! Sender tests: the carousel schedule, fresh ESIs, pacing in virtual time, and
//! configuration errors.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use groupcast::wire::{DataRepr, Repr};
use groupcast::{FecId, Rounds, Sender, SenderConfig, SenderError, SenderEvent};

use groupcast_testing::drain;

fn data(p: &[u8]) -> Option<DataRepr<'_>> {
    match Repr::parse(p).expect("sender emits valid packets") {
        Repr::Data(d) => Some(d),
        _ => None,
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

/// The first object (a transfer's manifest) under `lead_protection`: fresh
/// repair beyond its source symbols, and its OBJECT_INFO every two DATA
/// packets; later objects as usual.
#[test]
fn lead_protection_sends_the_first_object_redundantly() {
    for (fec, lead) in [
        (FecId::RaptorQ, true),
        (FecId::RaptorQ, false),
        (FecId::NoCode, true),
    ] {
        let mut s = Sender::new(SenderConfig {
            max_datagram: 144, // T = 100
            block_symbols: 10,
            repair_overhead: 0.0,
            fec,
            lead_protection: lead,
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![1u8; 250], "m").unwrap(); // K = 3
        s.add_object(vec![2u8; 2_000], "f").unwrap(); // K = 10, 2 blocks
        let packets = drain(&mut s, Instant::now());
        let of = |object: u32| {
            packets
                .iter()
                .filter_map(|p| data(p))
                .filter(|d| d.object == object)
                .count()
        };
        let infos = packets
            .iter()
            .filter(|p| matches!(Repr::parse(p), Ok(Repr::ObjectInfo(i)) if i.object == 0))
            .count();
        let want = match (fec, lead) {
            (FecId::RaptorQ, true) => 3 + 2 + 3,
            (FecId::NoCode, true) => 3 * 3,
            _ => 3,
        };
        assert_eq!(of(0), want, "{fec:?} {lead}");
        assert_eq!(of(1), 20, "later objects are not touched");
        assert!(
            if lead { infos >= want / 2 } else { infos == 1 },
            "{infos} infos"
        );
    }
    // Amid a long later object, the first one comes round again every 256
    // DATA packets: its OBJECT_INFO, then one of its symbols. An empty first
    // object is all OBJECT_INFO.
    for first in [vec![1u8; 250], Vec::new()] {
        let mut s = Sender::new(SenderConfig {
            max_datagram: 144, // T = 100
            block_symbols: 10,
            repair_overhead: 0.0,
            lead_protection: true,
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(first.clone(), "m").unwrap();
        s.add_object(vec![2u8; 300_000], "f").unwrap(); // 3000 DATA packets
        let packets = drain(&mut s, Instant::now());
        let later = packets
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                *i > 20 && matches!(Repr::parse(p), Ok(Repr::ObjectInfo(info)) if info.object == 0)
            })
            .count();
        assert!(
            later >= 10,
            "{later} repeats of the first object's OBJECT_INFO"
        );
        let is_lead_info =
            |p: &Vec<u8>| matches!(Repr::parse(p), Ok(Repr::ObjectInfo(info)) if info.object == 0);
        let doubled = packets
            .windows(2)
            .skip(20)
            .filter(|w| is_lead_info(&w[0]) && is_lead_info(&w[1]))
            .count();
        assert_eq!(
            doubled, 0,
            "a repeat sent the same OBJECT_INFO twice in a row"
        );
        let of = |object: u32| {
            packets
                .iter()
                .filter_map(|p| data(p))
                .filter(|d| d.object == object)
                .count()
        };
        assert_eq!(of(1), 3000);
        assert_eq!(
            of(0) > 8,
            !first.is_empty(),
            "{} DATA of the first object",
            of(0)
        );
    }
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

/// A driver on a busy machine wakes late: every wake-up here comes 6 ms
/// after the deadline the sender asked for. The bucket holds 8 ms of the
/// rate by default, so the sender makes each delay up and still holds the
/// rate; with a 1 ms bucket it would send about a sixth of it.
#[test]
fn late_wake_ups_are_made_up_for() {
    let rate = 62_500_000u64; // 500 Mbit/s
    let mut s = Sender::new(SenderConfig {
        rate: Some(rate),
        rounds: Rounds::Unlimited,
        ..SenderConfig::default()
    })
    .unwrap();
    s.add_object(vec![9u8; 4_000_000], "late").unwrap();
    let t0 = Instant::now();
    let mut now = t0;
    let mut buf = vec![0u8; 1232];
    let mut bytes = 0u64;
    let end = t0 + Duration::from_millis(500);
    while now < end {
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            bytes += n as u64;
        }
        let next = s.poll_timeout().expect("a paced sender has a deadline");
        now = next.max(now) + Duration::from_millis(6);
        s.handle_timeout(now);
    }
    let held = bytes as f64 / (rate as f64 * (now - t0).as_secs_f64());
    assert!(held > 0.95, "held {held:.3} of the rate with late wake-ups");
    assert!(
        held < 1.01,
        "sent {held:.3} of the rate: more than it allows"
    );
}

/// `None` means idle and nothing else: an unpaced sender with data is due at
/// once (its deadline is the last time it was given), and one that is done
/// has no deadline.
#[test]
fn unpaced_sender_is_due_at_once_and_idle_only_when_done() {
    let mut s = Sender::new(SenderConfig::default()).unwrap();
    assert_eq!(s.poll_timeout(), None, "no object");
    s.add_object(vec![1u8; 10], "u").unwrap();
    assert_eq!(s.poll_timeout(), None, "never given a time");
    let t0 = Instant::now();
    s.handle_timeout(t0);
    assert_eq!(s.poll_timeout(), Some(t0), "due at once");
    assert!(drain(&mut s, t0).len() >= 2);
    assert!(s.is_finished());
    assert_eq!(s.poll_timeout(), None, "done");
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

/// Sends until `s` has nothing more to send at `now`, into `out`, handing
/// each encoder request it makes to `answer` first (a driver's part: build it
/// and hand it back, or keep it).
fn send_until_idle(
    s: &mut Sender,
    now: Instant,
    out: &mut Vec<Vec<u8>>,
    mut answer: impl FnMut(&mut Sender, groupcast::proto::EncoderRequest),
) {
    let mut buf = vec![0u8; s.config().max_datagram];
    loop {
        while let Some(req) = s.poll_encoder_request() {
            answer(s, req);
        }
        match s.poll_transmit(now, &mut buf) {
            Some(n) => out.push(buf[..n].to_vec()),
            None => break,
        }
    }
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
        // A driver with workers: every request built on another thread and
        // handed back before the next datagram (`threads` > 1), or never
        // answered (1: the sender builds it itself).
        let mut out = Vec::new();
        let mut unanswered = Vec::new();
        let mut asked = 0;
        send_until_idle(&mut s, Instant::now(), &mut out, |s, req| {
            asked += 1;
            if threads > 1 {
                let built = std::thread::spawn(move || req.build()).join().unwrap();
                s.handle_encoder(built.expect("a request not built yet"));
            } else {
                unanswered.push(req);
            }
        });
        assert_eq!(asked > 0, threads > 0, "{asked} encoder requests");
        // A worker that takes a request only after the sender built the
        // encoder itself (or dropped it) skips the work.
        for req in unanswered {
            assert!(req.build().is_none(), "a request built twice");
        }
        let stats = s.stats();
        assert_eq!(stats.encoders_built_twice, 0);
        (out, stats.encoders_built_inline)
    };
    let (inline, all) = run(0);
    assert!(inline.len() > 1000);
    let (unanswered, built_here) = run(1);
    assert_eq!(unanswered, inline);
    assert_eq!(built_here, all, "unanswered requests: every build inline");
    let (answered, built_here) = run(3);
    assert_eq!(answered, inline);
    // Only the encoders built again after their eviction, never asked for.
    assert!(built_here < all / 2, "{built_here} of {all} built inline");
}

/// A repair symbol whose encoder a worker has taken but not handed back
/// waits for it, up to a bound, instead of the sending thread building the
/// encoder a second time (on a busy host the workers fall behind, and the
/// two then built nearly every encoder twice); once the encoder is back the
/// datagrams are those of an inline run. A worker that never hands it back
/// holds the sender up only for the bound.
#[test]
fn repair_waits_for_the_encoder_a_worker_is_building() {
    // Blocks of 500 symbols: smaller ones are built again rather than
    // waited for.
    let config = |threads: usize| SenderConfig {
        max_datagram: 244, // T = 200
        block_symbols: 500,
        interleave: 4,
        repair_overhead: 0.3,
        rounds: Rounds::Fixed(1),
        encoder_threads: threads,
        wait_for_encoders: true,
        ..SenderConfig::default()
    };
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let now = Instant::now();
    let mut buf = vec![0u8; 244];
    let mut inline = Sender::new(config(0)).unwrap();
    inline.add_object(data.clone(), "o").unwrap();
    let expected: Vec<Vec<u8>> = std::iter::from_fn(|| {
        inline
            .poll_transmit(now, &mut buf)
            .map(|n| buf[..n].to_vec())
    })
    .collect();
    assert!(expected.len() > 300);

    // A worker takes every request at once (the build is done: its claim is
    // taken) and hands nothing back while the sender runs.
    let mut s = Sender::new(config(1)).unwrap();
    s.add_object(data.clone(), "o").unwrap();
    let mut out = Vec::new();
    let mut held = Vec::new();
    send_until_idle(&mut s, now, &mut out, |_, req| {
        held.push(req.build().expect("a fresh request"));
    });
    assert!(
        !held.is_empty() && out.len() < expected.len(),
        "the sender stops at the first repair symbol: {} of {} sent",
        out.len(),
        expected.len()
    );
    assert_eq!(s.stats().encoders_built_inline, 0, "nothing built inline");
    let wake = s.poll_timeout().expect("a deadline while waiting");
    assert!(
        wake > now && wake <= now + Duration::from_millis(50),
        "{wake:?}"
    );
    // Handed back, they are used; later requests are answered at once.
    for built in held.drain(..) {
        s.handle_encoder(built);
    }
    send_until_idle(&mut s, now, &mut out, |s, req| {
        s.handle_encoder(req.build().expect("a fresh request"));
    });
    assert_eq!(out, expected);
    assert_eq!(s.stats().encoders_built_twice, 0);

    // A worker that never hands back: after the bound the sender builds the
    // encoders itself, the same datagrams again.
    let mut s = Sender::new(config(1)).unwrap();
    s.add_object(data, "o").unwrap();
    let mut out = Vec::new();
    let mut t = now;
    while out.len() < expected.len() {
        while let Some(req) = s.poll_encoder_request() {
            held.push(req.build().expect("a fresh request"));
        }
        match s.poll_transmit(t, &mut buf) {
            Some(n) => out.push(buf[..n].to_vec()),
            None => {
                let wake = s.poll_timeout().expect("a deadline");
                assert!(wake <= t + Duration::from_millis(50));
                assert!(wake < now + Duration::from_secs(5), "stuck");
                t = wake;
            }
        }
    }
    assert_eq!(out, expected);
    assert!(s.stats().encoders_built_twice > 0);
}

/// An object whose blocks the driver hands over on request sends the very
/// datagrams the same object held whole does, in carousel and hybrid modes,
/// with and without encoder workers; and the sender never holds more than
/// its bound of blocks (interleave + 8), whatever the object's size.
#[test]
fn block_supplied_objects_send_the_same_datagrams_in_bounded_memory() {
    use groupcast::{BlockRequest, Mode};
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let run = |mode: Mode, threads: usize, supplied: bool| {
        let mut s = Sender::new(SenderConfig {
            mode,
            max_datagram: 244, // T = 200
            block_symbols: 20,
            interleave: 4,
            repair_overhead: 0.3,
            round_repair: 0.2,
            rounds: Rounds::Fixed(2),
            encoder_threads: threads,
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![9u8; 5000], "first").unwrap();
        let id = if supplied {
            let hash = *blake3::hash(&data).as_bytes();
            s.add_object_blocks(data.len() as u64, hash, "big").unwrap()
        } else {
            s.add_object(data.clone(), "big").unwrap()
        };
        let mut buf = vec![0u8; 244];
        let mut out = Vec::new();
        let now = Instant::now();
        let mut served = 0;
        loop {
            while let Some(req) = s.poll_encoder_request() {
                s.handle_encoder(req.build().expect("a request not built yet"));
            }
            let sent = s.poll_transmit(now, &mut buf);
            if let Some(n) = sent {
                out.push(buf[..n].to_vec());
            }
            // Every block asked for is handed over before the next poll.
            let mut any = sent.is_some();
            while let Some(BlockRequest {
                object,
                sbn,
                offset,
                len,
            }) = s.poll_block_request()
            {
                assert_eq!(object, id);
                let at = offset as usize;
                s.handle_block(object, sbn, data[at..at + len].to_vec())
                    .unwrap();
                served += 1;
                any = true;
            }
            if !any || out.len() > 100_000 {
                break;
            }
        }
        let st = s.stats();
        if supplied {
            assert!(served > 0);
            assert_eq!(st.blocks_loaded, served);
            // 250 blocks of 4000 bytes; at most 12 held.
            assert!(
                st.peak_loaded_bytes <= 12 * 4000,
                "{}",
                st.peak_loaded_bytes
            );
        } else {
            assert_eq!(st.blocks_loaded, 0);
        }
        // Only what was asked for, at its length, is taken.
        assert!(s.handle_block(id, 0, vec![0; 3]).is_err());
        out
    };
    for mode in [Mode::Carousel, Mode::Hybrid] {
        for threads in [0, 1] {
            let whole = run(mode, threads, false);
            assert!(whole.len() > 1000, "{mode:?}");
            assert!(
                run(mode, threads, true) == whole,
                "{mode:?}, {threads} encoder threads: the datagrams differ"
            );
        }
    }
}

mod feedback {
    use std::time::{Duration, Instant};

    use groupcast::wire::feedback::{STATUS_BUSY, STATUS_COMPLETE, STATUS_ECHO};
    use groupcast::wire::{NackEntry, NackRepr, Repr, StatusRepr};
    use groupcast::{FeedbackConfig, FlowPolicy, Mode, Sender, SenderConfig, SenderEvent};

    const SESSION: u64 = 1;

    fn sender(policy: FlowPolicy, rate: Option<u64>) -> Sender {
        sender_with(policy, rate, |_| {})
    }

    /// [`sender`], with its feedback settings changed by `tune`.
    fn sender_with(
        policy: FlowPolicy,
        rate: Option<u64>,
        tune: impl FnOnce(&mut FeedbackConfig),
    ) -> Sender {
        let mut feedback = FeedbackConfig {
            policy,
            flow_window: 4,
            receiver_timeout: Duration::from_secs(1),
            linger: Duration::from_millis(100),
            ..FeedbackConfig::default()
        };
        tune(&mut feedback);
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            max_datagram: 144, // T = 100
            block_symbols: 10,
            interleave: 2,
            repair_overhead: 0.0,
            rate,
            feedback,
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![3u8; 20_000], "o").unwrap(); // 200 symbols: 20 blocks
        s
    }

    fn status(receiver: u64, window: (u32, u8), complete: bool) -> Vec<u8> {
        let flags = if complete { STATUS_COMPLETE } else { 0 };
        report(receiver, window, flags, 0, 0)
    }

    /// A STATUS with every field the tests vary.
    fn report(receiver: u64, window: (u32, u8), flags: u8, echo_us: u64, hold_us: u32) -> Vec<u8> {
        let st = StatusRepr {
            session: SESSION,
            receiver,
            echo_us,
            hold_us,
            loss_ppm: 0,
            loss_span: 0,
            rate: 0,
            window,
            flags,
        };
        let mut buf = vec![0; 64];
        let n = st.write(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// Highest SBN of the DATA packets sent until the sender stops.
    fn send_all(s: &mut Sender, now: Instant) -> Option<u8> {
        let mut buf = vec![0u8; 144];
        let mut top = None;
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            if let Ok(Repr::Data(d)) = Repr::parse(&buf[..n]) {
                top = top.max(Some(d.sbn));
            }
        }
        top
    }

    /// Sends everything due over `span`, in 1 ms steps from `from`; returns
    /// the time reached and the repair symbols sent.
    fn run_for(s: &mut Sender, from: Instant, span: Duration) -> (Instant, u64) {
        let before = s.stats().repair_symbols_sent;
        let mut t = from;
        while t < from + span && !s.is_finished() {
            s.handle_timeout(t);
            send_all(s, t);
            t += Duration::from_millis(1);
        }
        (t, s.stats().repair_symbols_sent - before)
    }

    fn fallback_rounds(s: &mut Sender) -> Vec<u32> {
        std::iter::from_fn(|| s.poll_event())
            .filter_map(|e| match e {
                SenderEvent::FallbackRound { round } => Some(round),
                _ => None,
            })
            .collect()
    }

    /// A hybrid sender that hears nothing after its first pass
    /// (feedback blocked at a router, say) sends fallback repair rounds, up to
    /// `fallback_rounds`, and only then finishes.
    #[test]
    fn a_sender_heard_by_nobody_falls_back_to_repair_rounds() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, Some(1_000_000));
        let (t, first_pass_repair) = run_for(&mut s, t0, Duration::from_millis(400));
        assert_eq!(first_pass_repair, 0);
        assert!(
            !s.is_finished(),
            "finished with nobody heard and no fallback"
        );
        let (_, repair) = run_for(&mut s, t, Duration::from_secs(30));
        assert!(s.is_finished());
        assert_eq!(fallback_rounds(&mut s), (1..=10).collect::<Vec<_>>());
        assert_eq!(s.stats().fallback_rounds, 10);
        // Each round: 10% of each of the 20 blocks of 10 symbols, at least one.
        assert!(repair >= 10 * 20, "{repair} repair symbols");
    }

    /// A receiver whose STATUS came once but whose NACKs never arrive, left
    /// unfinished: fallback rounds; its NACK then ends them.
    #[test]
    fn fallback_rounds_end_when_feedback_comes() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Max, Some(1_000_000));
        // Its STATUS keeps coming (unicast gets through), its window stuck.
        let mut t = t0;
        let mut repair = 0;
        for _ in 0..15 {
            s.handle_datagram(t, &status(1, (0, 15), false));
            let (next, r) = run_for(&mut s, t, Duration::from_millis(100));
            (t, repair) = (next, repair + r);
        }
        assert!(!fallback_rounds(&mut s).is_empty(), "{:?}", s.stats());
        assert!(repair >= 5, "blocks 15 to 19 each get repair: {repair}");
        s.handle_datagram(t, &nack_for(1, 7, 3));
        s.handle_datagram(t, &status(1, (0, 16), false));
        let (t, _) = run_for(&mut s, t, Duration::from_millis(400));
        assert!(
            fallback_rounds(&mut s).is_empty(),
            "a round right after a NACK"
        );
        // Complete: the sender finishes.
        s.handle_datagram(t, &status(1, (0, 20), true));
        run_for(&mut s, t, Duration::from_secs(2));
        assert!(s.is_finished());
    }

    /// A receiver whose window stands still while it solves (STATUS with
    /// BUSY, about one a second: the keep-alive) draws no fallback round;
    /// the same STATUS without BUSY does.
    #[test]
    fn a_busy_receiver_draws_no_fallback_round() {
        for busy in [true, false] {
            let t0 = Instant::now();
            let mut s = sender(FlowPolicy::Min, Some(1_000_000));
            let flags = if busy { STATUS_BUSY } else { 0 };
            let mut t = t0;
            for _ in 0..8 {
                s.handle_datagram(t, &report(1, (0, 15), flags, 0, 0));
                (t, _) = run_for(&mut s, t, Duration::from_millis(900));
            }
            let rounds = fallback_rounds(&mut s);
            assert_eq!(rounds.is_empty(), busy, "busy {busy}: {rounds:?}");
            assert!(!s.is_finished());
        }
    }

    /// BUSY from a receiver the sender no longer waits for (stalled) holds
    /// no fallback round off for another that is unfinished and silent: A
    /// holds the first pass until it stalls (its credit checked every 2 s),
    /// C joins ahead and falls silent; rounds come once A is stalled.
    #[test]
    fn a_stalled_receivers_busy_holds_off_no_fallback() {
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Min, Some(1_000_000), |fb| {
            fb.stall_timeout = Duration::from_secs(4);
            fb.receiver_timeout = Duration::from_secs(8);
        });
        // A holds the first pass at its edge until it stalls; C joins
        // ahead of it, then falls silent, unfinished.
        s.handle_datagram(t0, &report(1, (0, 0), 0, 0, 0));
        let (mut t, _) = run_for(&mut s, t0, Duration::from_secs(1));
        s.handle_datagram(t, &report(3, (0, 19), 0, 0, 0));
        let mut rounds = Vec::new();
        while t < t0 + Duration::from_millis(8500) {
            // A, stalled and stuck, keeps saying BUSY at its keep-alive.
            s.handle_datagram(t, &report(1, (0, 0), STATUS_BUSY, 0, 0));
            (t, _) = run_for(&mut s, t, Duration::from_millis(900));
            rounds.extend(fallback_rounds(&mut s));
        }
        assert!(s.stats().receivers_stalled >= 1, "{:?}", s.stats());
        assert!(
            !rounds.is_empty(),
            "no fallback round for C: {:?}",
            s.stats()
        );
    }

    #[test]
    fn min_policy_holds_the_first_pass_to_the_slowest_window() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, None);
        s.handle_datagram(t0, &status(1, (0, 0), false));
        s.handle_datagram(t0, &status(2, (0, 10), false));
        // Edge 0 plus a window of 4 blocks: windows of 2 blocks start at 0 and 2.
        assert_eq!(send_all(&mut s, t0), Some(3));
        assert!(s.stats().flow_blocked > 0);
        // The slow receiver moves on; the sender follows.
        s.handle_datagram(t0, &status(1, (0, 6), false));
        assert_eq!(send_all(&mut s, t0), Some(9));
        // It goes silent: after the timeout it no longer counts.
        let later = t0 + Duration::from_secs(2);
        s.handle_datagram(later, &status(2, (0, 20), false));
        s.handle_timeout(later);
        assert_eq!(send_all(&mut s, later), Some(19));
        assert_eq!(s.stats().receivers_timed_out, 1);
        let mut timed_out = false;
        while let Some(e) = s.poll_event() {
            timed_out |= e == SenderEvent::ReceiverTimedOut { id: 1 };
        }
        assert!(timed_out);
    }

    /// `flow_window_bytes` bounds the window in bytes of K × T blocks when
    /// it is the smaller: here 2,500 bytes are 2 blocks of 1,000 (K = 10,
    /// T = 100) against a `flow_window` of 4, so that large blocks keep a
    /// receiver's memory bounded.
    #[test]
    fn flow_window_bytes_bounds_the_window_of_large_blocks() {
        let window = |bytes: u64| {
            let t0 = Instant::now();
            let mut s = sender_with(FlowPolicy::Min, None, |fb| fb.flow_window_bytes = bytes);
            s.handle_datagram(t0, &status(1, (0, 0), false));
            send_all(&mut s, t0)
        };
        // Edge 0 plus 2 blocks: one window of 2 blocks, 0 and 1.
        assert_eq!(window(2_500), Some(1));
        // Less than a block still lets one window out.
        assert_eq!(window(1), Some(1));
        // The block bound applies when it is the smaller.
        assert_eq!(window(1 << 20), Some(3));
        let mut bad = SenderConfig::default();
        bad.feedback.flow_window_bytes = 0;
        assert!(Sender::new(bad).is_err());
    }

    #[test]
    fn quorum_and_max_follow_the_faster_receivers() {
        for policy in [FlowPolicy::Quorum(1), FlowPolicy::Max] {
            let t0 = Instant::now();
            let mut s = sender(policy, None);
            s.handle_datagram(t0, &status(1, (0, 0), false));
            s.handle_datagram(t0, &status(2, (0, 12), false));
            assert_eq!(send_all(&mut s, t0), Some(15), "{policy:?}");
        }
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Quorum(2), None);
        s.handle_datagram(t0, &status(1, (0, 0), false));
        s.handle_datagram(t0, &status(2, (0, 12), false));
        assert_eq!(send_all(&mut s, t0), Some(3));
    }

    #[test]
    fn finishes_once_every_tracked_receiver_is_complete() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, None);
        s.handle_datagram(t0, &status(7, (0, 0), false));
        s.handle_datagram(t0, &status(7, (0, 20), false));
        assert_eq!(send_all(&mut s, t0), Some(19));
        assert!(!s.is_finished());
        s.handle_datagram(t0, &status(7, (1, 0), true));
        let t1 = t0 + Duration::from_millis(50);
        s.handle_timeout(t1);
        assert!(!s.is_finished(), "the linger has not passed");
        let t2 = t0 + Duration::from_millis(200);
        s.handle_timeout(t2);
        send_all(&mut s, t2);
        assert!(s.is_finished());
    }

    #[test]
    fn min_receivers_keeps_an_early_sender_waiting() {
        let t0 = Instant::now();
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            max_datagram: 144,
            block_symbols: 10,
            feedback: FeedbackConfig {
                min_receivers: 1,
                linger: Duration::from_millis(100),
                ..FeedbackConfig::default()
            },
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![3u8; 2_000], "o").unwrap();
        send_all(&mut s, t0);
        let later = t0 + Duration::from_secs(10);
        s.handle_timeout(later);
        send_all(&mut s, later);
        assert!(!s.is_finished(), "finished before any receiver reported");
        s.handle_datagram(later, &status(4, (1, 0), true));
        // The linger starts once everything is in place, and then runs out.
        for ms in [10, 200] {
            let t = later + Duration::from_millis(ms);
            s.handle_timeout(t);
            send_all(&mut s, t);
        }
        assert!(s.is_finished());
        assert_eq!(s.stats().receivers_heard, 1);
    }

    /// A hybrid sender of 200 blocks of 100 symbols of 100 bytes, paced at
    /// `rate` bytes per second, that follows the fastest receiver.
    fn big_sender(rate: u64) -> Sender {
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            max_datagram: 144,
            block_symbols: 100,
            repair_overhead: 0.0,
            rate: Some(rate),
            feedback: FeedbackConfig {
                policy: FlowPolicy::Max,
                ..FeedbackConfig::default()
            },
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![3u8; 2_000_000], "o").unwrap();
        s
    }

    /// After the first pass repair is all that is left and may use the whole
    /// rate, but a flood of forged NACKs cannot push the total beyond it.
    #[test]
    fn forged_nack_floods_get_no_more_than_the_rate() {
        let t0 = Instant::now();
        let rate = 1_000_000; // bytes/s
        let mut s = big_sender(rate);
        // A real receiver that is not complete keeps the sender going.
        s.handle_datagram(t0, &status(1, (0, 200), false));
        let mut buf = vec![0u8; 144];
        // The first pass, in virtual time.
        let mut now = t0;
        while s.stats().source_symbols_sent < 20_000 {
            if s.poll_transmit(now, &mut buf).is_none() {
                now += Duration::from_micros(100);
            }
        }
        assert!(!s.is_finished());
        let before = s.stats().clone();
        // 10,000 forged NACKs per second, each asking for a whole block, for 2 s.
        let mut t = now;
        let end = now + Duration::from_secs(2);
        let mut i = 0u64;
        while t < end {
            s.handle_datagram(t, &nack_for(1000 + i, (i % 200) as u8, 100));
            if i.is_multiple_of(1000) {
                s.handle_datagram(t, &status(1, (0, 200), false));
            }
            while s.poll_transmit(t, &mut buf).is_some() {}
            t += Duration::from_micros(100);
            i += 1;
        }
        let after = s.stats();
        let repair_bytes = (after.repair_symbols_sent - before.repair_symbols_sent) * 144;
        let all = after.bytes_sent - before.bytes_sent;
        // The rate for 2 s, and the pacing bucket (16 KiB) full at the start.
        let cap = rate as f64 * 2.0 + 16.0 * 1024.0 + 144.0;
        assert!(
            repair_bytes as f64 > 0.8 * rate as f64 * 2.0,
            "repair held to a share after the first pass: {repair_bytes} bytes"
        );
        assert!(
            (all as f64) <= cap,
            "{all} bytes in 2 s against a cap of {cap}"
        );
        assert!(after.nacks_received + after.nacks_dropped >= 19_999);
        let _ = STATUS_ECHO;
    }

    /// While the first pass lasts, forged NACKs get at most the repair share,
    /// and the first pass keeps the rest of the rate.
    #[test]
    fn forged_nacks_cannot_starve_the_first_pass() {
        let t0 = Instant::now();
        let rate = 1_000_000; // bytes/s: the first pass takes 2.9 s at the full rate
        let mut s = big_sender(rate);
        s.handle_datagram(t0, &status(1, (0, 200), false));
        let mut buf = vec![0u8; 144];
        let mut t = t0;
        let end = t0 + Duration::from_secs(1);
        let mut i = 0u64;
        while t < end {
            s.handle_datagram(t, &nack_for(1000 + i, 0, 10));
            while s.poll_transmit(t, &mut buf).is_some() {}
            t += Duration::from_micros(100);
            i += 1;
        }
        let st = s.stats();
        let repair = st.repair_symbols_sent as f64 * 144.0;
        let source = st.source_symbols_sent as f64 * 144.0;
        assert!(st.repair_symbols_sent > 0, "{st:?}");
        // Half the rate for 1 s, and the repair bucket full at the start.
        assert!(repair <= 0.5 * rate as f64 + 64.0 * 1024.0, "{st:?}");
        assert!(source >= 0.4 * rate as f64, "{st:?}");
    }

    /// NACKs asking for one symbol each of ever different blocks: every answer
    /// needs a fresh encoder, and those builds are charged to the repair budget.
    #[test]
    fn thin_nacks_over_many_blocks_cannot_force_encoder_rebuilds() {
        for threads in [0, 1] {
            thin_nacks(threads);
        }
    }

    fn thin_nacks(threads: usize) {
        let t0 = Instant::now();
        let rate = 1_000_000;
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            max_datagram: 144,
            block_symbols: 10,
            interleave: 2,
            repair_overhead: 0.0,
            rate: Some(rate),
            encoder_threads: threads,
            feedback: FeedbackConfig {
                policy: FlowPolicy::Max,
                ..FeedbackConfig::default()
            },
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![3u8; 250_000], "o").unwrap(); // 250 blocks of 1000 bytes
        s.handle_datagram(t0, &status(1, (1, 0), false));
        let mut buf = vec![0u8; 144];
        let mut now = t0;
        while s.stats().source_symbols_sent < 2500 {
            if s.poll_transmit(now, &mut buf).is_none() {
                now += Duration::from_micros(100);
            }
        }
        let before = s.stats().clone();
        let start = now;
        let end = now + Duration::from_secs(2);
        let mut i = 0u64;
        while now < end {
            s.handle_datagram(now, &nack_for(5000 + i, (i % 250) as u8, 1));
            if i.is_multiple_of(500) {
                s.handle_datagram(now, &status(1, (0, 0), false));
            }
            while s.poll_transmit(now, &mut buf).is_some() {}
            now += Duration::from_micros(100);
            i += 1;
        }
        let after = s.stats();
        let builds = after.encoders_built_for_repair - before.encoders_built_for_repair;
        let repair = (after.repair_symbols_sent - before.repair_symbols_sent) * 144;
        let built = builds as f64 * 1000.0 / 8.0;
        // After the first pass, repair may use the whole rate.
        let cap = rate as f64 * (now - start).as_secs_f64() + 64.0 * 1024.0 + 1000.0;
        assert!(builds > 0);
        // Repair bytes and encoder builds each stay within their budget.
        assert!(
            (repair as f64) <= cap,
            "{threads} threads: {repair} repair bytes > {cap}"
        );
        assert!(
            built <= cap,
            "{threads} threads: {builds} builds ({built} bytes' worth) > {cap}"
        );
    }

    #[test]
    fn a_stalled_receiver_stops_holding_back_and_new_ids_at_its_edge_start_stalled() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, None);
        let mut t = t0;
        // Receiver 1 reports every 200 ms, its window never moving; receiver 2 keeps up.
        while t < t0 + Duration::from_secs(29) {
            s.handle_datagram(t, &status(1, (0, 0), false));
            s.handle_datagram(t, &status(2, (0, 20), false));
            s.handle_timeout(t);
            assert!(send_all(&mut s, t) <= Some(3), "held at the slowest window");
            t += Duration::from_millis(200);
        }
        assert_eq!(s.stats().receivers_stalled, 0);
        while t < t0 + Duration::from_secs(31) {
            s.handle_datagram(t, &status(1, (0, 0), false));
            s.handle_datagram(t, &status(2, (0, 20), false));
            s.handle_timeout(t);
            t += Duration::from_millis(200);
        }
        assert_eq!(s.stats().receivers_stalled, 1);
        let stalled = std::iter::from_fn(|| s.poll_event())
            .any(|e| e == SenderEvent::ReceiverStalled { id: 1, edge: 0 });
        assert!(stalled);
        // A new id at the same stuck edge holds nothing back either.
        s.handle_datagram(t, &status(3, (0, 0), false));
        assert_eq!(send_all(&mut s, t), Some(19));
        // Only the receiver that progresses is waited for.
        s.handle_datagram(t, &status(2, (1, 0), true));
        for _ in 0..10 {
            t += Duration::from_millis(50);
            s.handle_datagram(t, &status(1, (0, 0), false));
            s.handle_timeout(t);
            send_all(&mut s, t);
        }
        assert!(s.is_finished());
        // Receivers 1 and 3, stalled, were not waited for; the stats say so.
        assert_eq!(s.stats().receivers_left_stalled, 2);
        // A stalled receiver that moves again counts again.
        let mut s = sender(FlowPolicy::Min, None);
        let mut t = t0;
        while t < t0 + Duration::from_secs(31) {
            s.handle_datagram(t, &status(1, (0, 0), false));
            s.handle_timeout(t);
            send_all(&mut s, t);
            t += Duration::from_millis(200);
        }
        assert_eq!(s.stats().receivers_stalled, 1);
        s.handle_datagram(t, &status(1, (0, 2), false));
        assert!(send_all(&mut s, t) <= Some(5));
    }

    /// Runs a sender of 20 blocks of 1000 bytes (flow window 4, a minimum
    /// progress of 100 bytes a second: 10 s of credit a block) beside a
    /// receiver whose edge moves one block every `step` (under a new id at
    /// each step with `fresh_ids`), and receiver 2, which keeps up and
    /// completes. Returns when the first pass sent its last block, and when
    /// the sender finished (at most 400 s).
    fn held_by_a_stepping_receiver(
        step: Duration,
        fresh_ids: bool,
    ) -> (Option<Duration>, Option<Duration>) {
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Min, None, |f| {
            f.min_progress = Some(100);
        });
        let (mut t, mut edge, mut moved) = (t0, 0u8, t0);
        let (mut last_block, mut finished) = (None, None);
        while t < t0 + Duration::from_secs(400) && finished.is_none() {
            if t - moved >= step && edge < 19 {
                edge += 1;
                moved = t;
            }
            let id = if fresh_ids { 100 + edge as u64 } else { 1 };
            s.handle_datagram(t, &status(id, (0, edge), false));
            s.handle_datagram(t, &status(2, (0, 20), false));
            s.handle_datagram(t, &status(2, (1, 0), true));
            s.handle_timeout(t);
            if send_all(&mut s, t) == Some(19) && last_block.is_none() {
                last_block = Some(t - t0);
            }
            if s.is_finished() {
                finished = Some(t - t0);
            }
            t += Duration::from_millis(200);
        }
        (last_block, finished)
    }

    #[test]
    fn a_receiver_that_feigns_progress_slows_the_sender_only_to_the_minimum_progress() {
        // One step every 20 s (below the 30 s stall timeout) earns 10 s of
        // the 20 s it holds: its 30 s run out after about 50 s, and each
        // later step holds the sender for its 10 s at most. Under a fresh id
        // at each step, the ids share the newcomers' credit: its 30 s run
        // out after about 30 s, and later ids start with nothing. (With every
        // step, or every new id, given the whole credit, as before
        // `min_progress`, the first pass ended after 300 s either way.)
        for fresh_ids in [false, true] {
            let (last_block, finished) =
                held_by_a_stepping_receiver(Duration::from_secs(20), fresh_ids);
            let last_block = last_block.expect("the first pass ends");
            assert!(
                last_block < Duration::from_secs(60),
                "fresh ids {fresh_ids}: first pass held {last_block:?}"
            );
            let finished = finished.expect("the sender finishes");
            assert!(
                finished < Duration::from_secs(90),
                "fresh ids {fresh_ids}: finished after {finished:?}"
            );
        }
    }

    #[test]
    fn a_receiver_keeping_up_with_a_feed_slower_than_the_minimum_progress_never_stalls() {
        // A message of 100 bytes every 100 ms (1 kB/s, far below the
        // minimum progress of 125 kB/s unpaced): the receiver is always a
        // message behind, within the flow window, and so holds nothing back
        // and spends no credit. (Spending it whenever behind, it stalled
        // within a minute: it cannot move faster than the feed.)
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Min, None, |_| {});
        s.set_open(true);
        let mut t = t0;
        let mut n = 1u32;
        while t < t0 + Duration::from_secs(120) {
            s.add_object(vec![n as u8; 100], "m").unwrap();
            send_all(&mut s, t);
            s.handle_datagram(t, &status(1, (n, 0), false));
            s.handle_timeout(t);
            n += 1;
            t += Duration::from_millis(100);
        }
        assert_eq!(s.stats().receivers_stalled, 0);
    }

    #[test]
    fn under_policy_max_a_laggard_spends_no_credit_while_the_first_pass_goes_on() {
        // 20 blocks of 1000 bytes at 500 bytes a second: a first pass of 40
        // s, paced by receiver 2, which keeps up. Receiver 1 stays at block
        // 0, a window behind from the 8th second: flow control does not wait
        // for it, so it holds nothing back until the pass is over. (Spending
        // whenever a window behind, it stalled after 38 s.)
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Max, Some(500), |_| {});
        let mut t = t0;
        let mut top = 0u8;
        while t < t0 + Duration::from_secs(39) {
            if let Some(b) = send_all(&mut s, t) {
                top = top.max(b);
            }
            s.handle_datagram(t, &status(1, (0, 0), false));
            s.handle_datagram(t, &status(2, (0, top), false));
            s.handle_timeout(t);
            t += Duration::from_millis(100);
        }
        assert!(top < 19, "the first pass is still going on (block {top})");
        assert_eq!(s.stats().receivers_stalled, 0);
    }

    #[test]
    fn receivers_of_a_sender_started_long_before_them_start_with_the_whole_credit() {
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Min, None, |f| {
            f.min_receivers = 1;
            f.receiver_timeout = Duration::from_secs(5);
        });
        // A minute with nobody to wait for.
        let mut t = t0;
        while t < t0 + Duration::from_secs(60) {
            s.handle_timeout(t);
            send_all(&mut s, t);
            t += Duration::from_millis(200);
        }
        // The receiver that comes then is waited for while it stands still,
        // for the whole stall timeout.
        let joined = t;
        while t < joined + Duration::from_secs(25) {
            s.handle_datagram(t, &status(1, (0, 0), false));
            s.handle_timeout(t);
            send_all(&mut s, t);
            t += Duration::from_millis(200);
        }
        assert_eq!(s.stats().receivers_stalled, 0);
        assert!(!s.is_finished());
        // One that joins when the first has held the sender that long starts
        // with what is left of the newcomers' credit: it must move to count.
        s.handle_datagram(t, &status(2, (0, 0), false));
        t += Duration::from_secs(6);
        s.handle_datagram(t, &status(1, (0, 0), false));
        s.handle_datagram(t, &status(2, (0, 0), false));
        s.handle_timeout(t);
        assert_eq!(s.stats().receivers_stalled, 2);
    }

    #[test]
    fn a_receiver_moving_faster_than_the_minimum_progress_is_waited_for() {
        // One step every 8 s earns 10 s: never stalled, it paces the first
        // pass, a block per step (4 blocks ahead of its edge).
        let (last_block, _) = held_by_a_stepping_receiver(Duration::from_secs(8), false);
        let last_block = last_block.expect("the first pass ends");
        assert!(
            last_block >= Duration::from_secs(15 * 8),
            "first pass done after {last_block:?}: not paced by the slow receiver"
        );
    }

    #[test]
    fn a_nack_flood_cannot_keep_the_sender_from_finishing() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, None);
        s.handle_datagram(t0, &status(7, (0, 20), false));
        assert_eq!(send_all(&mut s, t0), Some(19));
        s.handle_datagram(t0, &status(7, (1, 0), true));
        let mut t = t0;
        while !s.is_finished() && t < t0 + Duration::from_secs(5) {
            t += Duration::from_millis(10);
            // Forged NACKs for real blocks, under ids nobody reported, and
            // under the complete receiver's own id.
            for (i, id) in [666, 667, 7].iter().enumerate() {
                s.handle_datagram(t, &nack(*id, (i * 3) as u8));
            }
            s.handle_timeout(t);
            send_all(&mut s, t);
        }
        assert!(s.is_finished(), "still sending after {:?}", t - t0);
        assert!(t - t0 < Duration::from_millis(500), "{:?}", t - t0);
    }

    #[test]
    fn a_sender_with_no_object_yet_tracks_a_receiver_times_it_out_and_sends_only_once_given_one() {
        let t0 = Instant::now();
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            ..SenderConfig::default()
        })
        .unwrap();
        let timeout = s.config().feedback.receiver_timeout;
        s.handle_timeout(t0);
        s.handle_datagram(t0, &status(1, (0, 0), false));
        let st = s.stats();
        assert_eq!((st.status_received, st.receivers_tracked), (1, 1), "{st:?}");
        // Within the receiver timeout it stays tracked; after it, it is timed
        // out. Nothing is sent meanwhile, and no deadline is asked for.
        let mut buf = vec![0u8; s.config().max_datagram];
        for (at, tracked, timed_out) in [
            (timeout / 2, 1, 0),
            (timeout * 8, 0, 1),
            (timeout * 16, 0, 1),
        ] {
            s.handle_timeout(t0 + at);
            assert!(
                s.poll_transmit(t0 + at, &mut buf).is_none(),
                "sent at {at:?}"
            );
            assert_eq!(s.poll_timeout(), None, "a deadline at {at:?}");
            let st = s.stats();
            assert_eq!(
                (st.receivers_tracked, st.receivers_timed_out),
                (tracked, timed_out),
                "at {at:?}: {st:?}"
            );
        }
        assert_eq!(s.stats().packets_sent, 0);
        // Given an object, it sends at once.
        let now = t0 + timeout * 16;
        s.add_object(vec![3u8; 2_000], "o").unwrap();
        assert!(
            s.poll_timeout().is_some_and(|t| t <= now),
            "{:?}",
            s.poll_timeout()
        );
        let mut data = 0;
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            data += usize::from(matches!(Repr::parse(&buf[..n]), Ok(Repr::Data(_))));
        }
        assert!(data > 0, "no DATA sent");
    }

    #[test]
    fn nacks_for_blocks_the_first_pass_has_not_reached_are_ignored() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, None);
        s.handle_datagram(t0, &status(1, (0, 0), false));
        assert_eq!(send_all(&mut s, t0), Some(3), "held at block 4");
        let ignored = s.stats().nack_entries_ignored;
        s.handle_datagram(t0, &nack(666, 10));
        assert_eq!(s.stats().nack_entries_ignored, ignored + 1);
        // A block behind the first pass is answered as ever.
        s.handle_datagram(t0, &nack(1, 1));
        assert_eq!(s.stats().nack_entries_ignored, ignored + 1);
    }

    #[test]
    fn ids_that_report_once_and_fall_silent_cannot_hold_the_sender() {
        // Default timeouts: a receiver times out (1 s here) long before it
        // would stall (30 s).
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, None);
        s.handle_datagram(t0, &status(7, (0, 20), false));
        assert_eq!(send_all(&mut s, t0), Some(19));
        s.handle_datagram(t0, &status(7, (1, 0), false));
        s.handle_datagram(t0, &status(7, (1, 0), true));
        // A forger: a fresh id every 100 ms, each reporting once, never complete.
        let mut t = t0;
        let mut id = 1000;
        while !s.is_finished() && t < t0 + Duration::from_secs(20) {
            t += Duration::from_millis(100);
            id += 1;
            s.handle_datagram(t, &status(id, (0, 19), false));
            if id % 5 == 0 {
                s.handle_datagram(t, &status(7, (1, 0), true));
            }
            s.handle_timeout(t);
            send_all(&mut s, t);
        }
        assert!(s.is_finished(), "held for {:?} by one-shot ids", t - t0);
        assert!(t - t0 < Duration::from_secs(5), "{:?}", t - t0);
    }

    fn echo(receiver: u64, echo_us: u64, hold_us: u32) -> Vec<u8> {
        report(receiver, (0, 0), STATUS_ECHO, echo_us, hold_us)
    }

    #[test]
    fn echoes_must_name_a_recent_probe_and_move_the_grtt_little() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, Some(1_000_000));
        s.handle_timeout(t0);
        let grtt = s.grtt();
        let mut buf = vec![0u8; 144];
        let mut t = t0;
        let mut probes = Vec::new();
        while t < t0 + Duration::from_secs(3) {
            // A receiver that is never complete keeps the sender going.
            s.handle_datagram(t, &status(9, (0, 0), false));
            s.handle_timeout(t);
            while let Some(n) = s.poll_transmit(t, &mut buf) {
                if let Ok(Repr::Probe(p)) = Repr::parse(&buf[..n]) {
                    probes.push(p.timestamp_us);
                }
            }
            t += Duration::from_millis(5);
        }
        assert!(probes.len() > 64);
        // An echo of a timestamp never sent, of one too old (the first PROBE,
        // at 0), or a hold longer than the time since: refused.
        let refused = s.stats().echoes_refused;
        s.handle_datagram(t, &echo(1, 12_345, 0));
        s.handle_datagram(t, &echo(1, probes[0], 0));
        let last = *probes.last().unwrap();
        s.handle_datagram(t, &echo(1, last, u32::MAX));
        assert_eq!(s.stats().echoes_refused, refused + 3);
        assert!(s.grtt() <= grtt);
        // A real but slow echo moves the GRTT at most to twice its value.
        let recent = probes[probes.len() - 60];
        s.handle_datagram(t, &echo(1, recent, 0));
        assert!(s.grtt() <= grtt * 2, "{:?} > 2 × {grtt:?}", s.grtt());
    }

    fn nack(receiver: u64, sbn: u8) -> Vec<u8> {
        nack_for(receiver, sbn, 2)
    }

    /// A hybrid NACK of `receiver` for `need` symbols of object 0's block `sbn`.
    fn nack_for(receiver: u64, sbn: u8, need: u32) -> Vec<u8> {
        let n = NackRepr {
            session: SESSION,
            receiver,
            entries: vec![NackEntry {
                object: 0,
                sbn,
                flags: 0,
                need,
                ranges: vec![],
            }],
        };
        let mut buf = vec![0; 256];
        let len = n.write(&mut buf).unwrap();
        buf.truncate(len);
        buf
    }

    #[test]
    fn each_source_has_its_own_nack_budget_and_owns_its_receiver_ids() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, None);
        s.handle_timeout(t0);
        let flooder = Some("fe80::666".parse().unwrap());
        let honest = Some("fe80::1".parse().unwrap());
        for i in 0..5_000 {
            s.handle_feedback(t0, flooder, &nack(666, (i % 20) as u8));
        }
        assert!(s.stats().nacks_dropped_per_source >= 4_000);
        let before = s.stats().nacks_received;
        s.handle_feedback(t0, honest, &nack(1, 3));
        assert_eq!(
            s.stats().nacks_received,
            before + 1,
            "the honest NACK is heard"
        );
        // A receiver id speaks from the address it was first heard from only.
        s.handle_feedback(t0, honest, &status(1, (0, 0), false));
        s.handle_feedback(t0, flooder, &status(1, (1, 0), true));
        assert_eq!(
            send_all(&mut s, t0),
            Some(3),
            "still held by receiver 1's real window"
        );
        assert!(s.stats().feedback_rejected >= 1);
    }

    /// NACKs are multicast, so any host reads the ids in them. An id first
    /// heard in a NACK is bound to that NACK's address: a forger who copies
    /// it into a STATUS of completion before the receiver's own first STATUS
    /// arrives is refused, and the receiver still holds the sender.
    #[test]
    fn an_id_read_off_a_nack_cannot_be_claimed_by_a_forged_first_status() {
        let t0 = Instant::now();
        let mut s = sender(FlowPolicy::Min, None);
        s.handle_timeout(t0);
        let honest = Some("fe80::1".parse().unwrap());
        let forger = Some("fe80::666".parse().unwrap());
        s.handle_feedback(t0, honest, &nack(7, 0));
        let rejected = s.stats().feedback_rejected;
        s.handle_feedback(t0, forger, &status(7, (1, 0), true));
        assert_eq!(s.stats().feedback_rejected, rejected + 1);
        assert_eq!(s.stats().receivers_heard, 0, "the forgery joined nothing");
        s.handle_feedback(t0, honest, &status(7, (0, 0), false));
        assert_eq!(
            send_all(&mut s, t0),
            Some(3),
            "held by receiver 7's real window"
        );
    }

    /// A host NACKing under made-up ids binds at most its share of them to its
    /// address: it cannot push out the binding of a real receiver's id, read
    /// off that receiver's NACK, and then claim the id with a forged STATUS
    /// of completion.
    #[test]
    fn a_nack_flood_cannot_unbind_a_real_receivers_id() {
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Min, None, |f| {
            f.max_receivers = 100;
            f.max_receivers_per_source = 8;
            f.receiver_timeout = Duration::from_secs(60);
        });
        s.handle_timeout(t0);
        let honest = Some("fe80::1".parse().unwrap());
        let forger = Some("fe80::666".parse().unwrap());
        s.handle_feedback(t0, honest, &nack(7, 0));
        let mut t = t0;
        for id in 1000..1300 {
            t += Duration::from_millis(1);
            s.handle_feedback(t, forger, &nack(id, (id % 20) as u8));
        }
        assert!(s.stats().nacks_received >= 300);
        let rejected = s.stats().feedback_rejected;
        s.handle_feedback(t, forger, &status(7, (1, 0), true));
        assert_eq!(s.stats().feedback_rejected, rejected + 1, "still bound");
        assert_eq!(s.stats().receivers_heard, 0);
        s.handle_feedback(t, honest, &status(7, (0, 0), false));
        assert_eq!(s.stats().receivers_heard, 1);
    }

    /// One host reporting under made-up ids, each complete, fills at most its
    /// share of the receiver table: a real receiver from another address is
    /// still tracked, and the sender waits for it instead of finishing as
    /// if every receiver were done.
    #[test]
    fn one_host_cannot_fill_the_receiver_table_and_fake_the_end() {
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Min, None, |f| {
            f.max_receivers = 100;
            f.max_receivers_per_source = 8;
        });
        s.handle_timeout(t0);
        let forger = Some("fe80::666".parse().unwrap());
        let honest = Some("fe80::1".parse().unwrap());
        for id in 1000..1200 {
            s.handle_feedback(t0, forger, &status(id, (1, 0), true));
        }
        assert_eq!(s.stats().receivers_tracked, 8);
        assert_eq!(s.stats().receivers_refused, 192);
        s.handle_feedback(t0, honest, &status(1, (0, 0), false));
        assert_eq!(
            s.stats().receivers_tracked,
            9,
            "the real receiver is tracked"
        );
        let mut t = t0;
        while t < t0 + Duration::from_millis(500) {
            s.handle_feedback(t, honest, &status(1, (0, 0), false));
            s.handle_timeout(t);
            send_all(&mut s, t);
            t += Duration::from_millis(10);
        }
        assert!(!s.is_finished(), "waits for the real receiver");
        s.handle_feedback(t, honest, &status(1, (1, 0), true));
        for _ in 0..100 {
            t += Duration::from_millis(10);
            s.handle_timeout(t);
            send_all(&mut s, t);
        }
        assert!(s.is_finished());
        // Once the forged ids time out, their address may be heard again.
        let later = t + Duration::from_secs(2);
        s.handle_timeout(later);
        s.handle_feedback(later, forger, &status(2000, (1, 0), true));
        //Y
    }

    /// Address `i` of the forger's /64.
    fn forged(i: u32) -> Option<std::net::IpAddr> {
        Some(format!("2001:db8:666:1::{i:x}").parse().unwrap())
    }

    /// A host owns a /64, and STATUS needs no reply. Reporting
    /// COMPLETE under made-up ids from 40 of its addresses (8 ids each, the
    /// per-address cap) is more than the whole table, yet it fills no more
    /// than its /64's share: a real receiver from another /64 that joins
    /// later is tracked and waited for, and since ids were still refused
    /// at the end the sender does not count itself confirmed.
    #[test]
    fn forged_ids_from_many_addresses_of_one_64_leave_room_for_a_real_receiver() {
        let t0 = Instant::now();
        // A first pass of 2 s, so that the real receiver comes before its end.
        let mut s = sender_with(FlowPolicy::Min, Some(10_000), |f| {
            f.max_receivers = 100;
            f.max_receivers_per_source = 8;
            f.max_receivers_per_prefix = 25;
        });
        s.handle_timeout(t0);
        let honest = Some("2001:db8:1:1::1".parse().unwrap());
        // The forger keeps its ids alive: every one reports every 100 ms.
        let forge = |s: &mut Sender, t: Instant| {
            for a in 0..40u32 {
                for k in 0..8u64 {
                    s.handle_feedback(
                        t,
                        forged(a),
                        &status(1000 + (a as u64) * 8 + k, (1, 0), true),
                    );
                }
            }
        };
        let mut t = t0;
        for _ in 0..5 {
            forge(&mut s, t);
            s.handle_timeout(t);
            send_all(&mut s, t);
            t += Duration::from_millis(100);
        }
        assert_eq!(s.stats().receivers_tracked, 25, "the /64's share");
        assert!(s.stats().receivers_refused_prefix > 0);
        // The real receiver joins late, from another /64.
        s.handle_feedback(t, honest, &status(1, (0, 0), false));
        assert_eq!(
            s.stats().receivers_tracked,
            26,
            "the real receiver is tracked"
        );
        let end = t + Duration::from_secs(3);
        while t < end {
            forge(&mut s, t);
            s.handle_feedback(t, honest, &status(1, (0, 0), false));
            s.handle_timeout(t);
            send_all(&mut s, t);
            t += Duration::from_millis(100);
        }
        assert!(!s.is_finished(), "waits for the real receiver");
        s.handle_feedback(t, honest, &status(1, (1, 0), true));
        for _ in 0..20 {
            forge(&mut s, t);
            s.handle_timeout(t);
            send_all(&mut s, t);
            t += Duration::from_millis(10);
        }
        assert!(s.is_finished());
        let st = s.stats();
        // (It remembers at most `max_receivers` refused ids.)
        assert!(
            (1..=40 * 8 - 25).contains(&st.receivers_left_refused),
            "the forged ids still refused at the end are reported, not taken as complete: {}",
            st.receivers_left_refused
        );
        assert_eq!(st.receiver_prefixes_heard, 2);
    }

    /// New ids from one /64 are admitted at most at `new_receivers_per_prefix`
    /// a second (four seconds' worth at once): fresh ids cannot churn the
    /// table. One refused for the rate gets in once the bucket allows, and
    /// meanwhile keeps the address its NACK bound it to.
    #[test]
    fn new_ids_from_one_64_are_admitted_at_a_bounded_rate() {
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Min, None, |f| {
            f.max_receivers_per_source = 1;
            f.new_receivers_per_prefix = 5;
        });
        s.handle_timeout(t0);
        for i in 0..30u32 {
            s.handle_feedback(t0, forged(i), &status(100 + i as u64, (0, 0), false));
        }
        assert_eq!(s.stats().receivers_tracked, 20, "a burst of 4 s × 5");
        assert_eq!(s.stats().receivers_refused_rate, 10);
        // A real receiver of that /64 is let in as the bucket refills: one a
        // fifth of a second.
        let real = Some("2001:db8:666:1::beef".parse().unwrap());
        let t1 = t0 + Duration::from_millis(100);
        s.handle_feedback(t1, real, &nack(7, 0));
        s.handle_feedback(t1, real, &status(7, (0, 0), false));
        assert_eq!(s.stats().receivers_tracked, 20);
        // Refused for now, its id stays bound to the address of its NACK: a
        // forger cannot claim it once the bucket has room.
        let t2 = t0 + Duration::from_millis(250);
        let rejected = s.stats().feedback_rejected;
        s.handle_feedback(t2, forged(99), &status(7, (1, 0), true));
        assert_eq!(s.stats().feedback_rejected, rejected + 1);
        s.handle_feedback(t2, real, &status(7, (0, 0), false));
        assert_eq!(s.stats().receivers_tracked, 21);
        assert_eq!(s.stats().receivers_refused_rate, 11);
    }

    /// `min_receivers` counts /64s: two forged ids from one /64, however many
    /// addresses they use, are one receiver, and the sender goes on waiting
    /// for a second until one from another /64 reports.
    #[test]
    fn min_receivers_counts_distinct_64s() {
        let t0 = Instant::now();
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            max_datagram: 144,
            block_symbols: 10,
            feedback: FeedbackConfig {
                min_receivers: 2,
                linger: Duration::from_millis(100),
                ..FeedbackConfig::default()
            },
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![3u8; 2_000], "o").unwrap();
        let mut t = t0;
        while t < t0 + Duration::from_secs(10) {
            s.handle_feedback(t, forged(1), &status(41, (1, 0), true));
            s.handle_feedback(t, forged(2), &status(42, (1, 0), true));
            s.handle_timeout(t);
            send_all(&mut s, t);
            t += Duration::from_millis(50);
        }
        assert_eq!(s.stats().receivers_heard, 2);
        assert_eq!(s.stats().receiver_prefixes_heard, 1);
        assert!(!s.is_finished(), "two ids of one /64 are one receiver");
        let other = Some("2001:db8:2:2::2".parse().unwrap());
        s.handle_feedback(t, other, &status(43, (1, 0), true));
        for _ in 0..10 {
            t += Duration::from_millis(50);
            s.handle_feedback(t, forged(1), &status(41, (1, 0), true));
            s.handle_timeout(t);
            send_all(&mut s, t);
        }
        assert!(s.is_finished());
        assert_eq!(s.stats().receivers_left_refused, 0);
    }

    /// Runs a sender with one honest receiver that echoes each PROBE 1 ms
    /// after it, for `span` from `t`, calling `forge` at each PROBE with its
    /// timestamp and every timestamp sent so far. Returns the time reached
    /// and the GRTT after each PROBE.
    fn with_echoes(
        s: &mut Sender,
        t: Instant,
        span: Duration,
        probes: &mut Vec<u64>,
        mut forge: impl FnMut(&mut Sender, Instant, &[u64]),
    ) -> (Instant, Vec<Duration>) {
        let honest = Some("2001:db8:1:1::1".parse().unwrap());
        let mut buf = vec![0u8; 144];
        let mut grtts = Vec::new();
        let mut now = t;
        let mut due: Option<u64> = None;
        while now < t + span {
            if let Some(ts) = due.take() {
                s.handle_feedback(now, honest, &report(9, (0, 0), STATUS_ECHO, ts, 0));
            }
            s.handle_timeout(now);
            while let Some(n) = s.poll_transmit(now, &mut buf) {
                if let Ok(Repr::Probe(p)) = Repr::parse(&buf[..n]) {
                    probes.push(p.timestamp_us);
                    grtts.push(s.grtt());
                    due = Some(p.timestamp_us);
                    forge(s, now, probes);
                }
            }
            now += Duration::from_millis(1);
        }
        (now, grtts)
    }

    /// Forged echoes of old PROBE timestamps, from fresh ids, at every PROBE
    /// (unbounded, they would double the GRTT each time). A fresh id's
    /// echo, and one of an id that holds nothing back (complete), only hold
    /// the GRTT; an id that echoed two PROBEs and is not complete may raise
    /// it, but by at most twice per PROBE and twice per its own value in
    /// time, whatever the number of ids: from G, at most 2 (G + t) after t.
    #[test]
    fn forged_echoes_move_the_grtt_at_most_the_bound_per_probe() {
        let t0 = Instant::now();
        let mut s = sender_with(FlowPolicy::Min, Some(1_000_000), |f| {
            f.receiver_timeout = Duration::from_secs(60);
            f.stall_timeout = Duration::from_secs(60);
        });
        let mut probes = Vec::new();
        let (t, _) = with_echoes(
            &mut s,
            t0,
            Duration::from_secs(2),
            &mut probes,
            |_, _, _| {},
        );
        let honest = s.grtt();
        assert!(honest < Duration::from_millis(3), "{honest:?}");
        // Fresh ids, 50 a PROBE from 50 addresses, echo the oldest PROBE
        // remembered with no hold (a 1.6 s sample), or report COMPLETE too.
        let mut next = 10_000u64;
        let (t, grtts) = with_echoes(
            &mut s,
            t,
            Duration::from_secs(1),
            &mut probes,
            |s, now, p| {
                let old = p[p.len() - 64];
                for i in 0..50 {
                    next += 1;
                    let flags = STATUS_ECHO | if i % 2 == 0 { STATUS_COMPLETE } else { 0 };
                    s.handle_feedback(now, forged(i), &report(next, (0, 0), flags, old, 0));
                }
            },
        );
        // (Within the rounding of the GRTT's decay.)
        let held = honest + Duration::from_micros(1);
        assert!(
            grtts.iter().all(|&g| g <= held),
            "fresh ids raised the GRTT: {grtts:?} above {honest:?}"
        );
        // Ids that complete echo old PROBEs, two each and in order: they
        // hold nothing back, and raise nothing.
        let (t, grtts) = with_echoes(
            &mut s,
            t,
            Duration::from_secs(1),
            &mut probes,
            |s, now, p| {
                for i in 0..20u32 {
                    let id = 20_000 + i as u64;
                    let old = p[p.len() - 64 + (i as usize % 8)];
                    let flags = STATUS_ECHO | STATUS_COMPLETE;
                    s.handle_feedback(now, forged(100 + i), &report(id, (1, 0), flags, old, 0));
                }
            },
        );
        assert!(grtts.iter().all(|&g| g <= held), "{grtts:?}");
        // An echo older than the id's previous one is refused.
        let refused = s.stats().echoes_refused;
        let older = probes[probes.len() - 64];
        s.handle_feedback(
            t,
            forged(107),
            &report(20_007, (1, 0), STATUS_ECHO, older, 0),
        );
        assert_eq!(s.stats().echoes_refused, refused + 1);
        // Ids that are not complete, each echoing two old PROBEs in order,
        // raise it, within the bound.
        let start = s.grtt();
        let attack = t;
        let mut at = Vec::new();
        let (_, grtts) = with_echoes(
            &mut s,
            t,
            Duration::from_secs(1),
            &mut probes,
            |s, now, p| {
                at.push(now);
                for i in 0..20u32 {
                    let id = 30_000 + i as u64;
                    let old = p[p.len() - 64];
                    s.handle_feedback(
                        now,
                        forged(200 + i),
                        &report(id, (0, 0), STATUS_ECHO, old, 0),
                    );
                }
            },
        );
        assert!(
            *grtts.last().unwrap() > start * 8,
            "a far receiver is believed: {grtts:?}"
        );
        let mut last = start;
        for (g, now) in grtts.iter().zip(&at) {
            assert!(*g <= last * 2, "{g:?} after {last:?}");
            let bound = (start + (*now - attack)) * 2;
            assert!(*g <= bound, "{g:?} above {bound:?} at {:?}", *now - attack);
            last = *g;
        }
    }
}

mod congestion {
    use std::time::{Duration, Instant};

    use groupcast::wire::feedback::STATUS_LOSS;
    use groupcast::wire::{Repr, StatusRepr};
    use groupcast::{Aimd, FeedbackConfig, Mode, Sender, SenderConfig};

    // (Also the hybrid first pass's encoder requests, sized by reported loss.)
    /// A STATUS of receiver 3 with a measured loss.
    fn status(loss_ppm: u32) -> Vec<u8> {
        report(loss_ppm, STATUS_LOSS)
    }

    /// A STATUS of receiver 3 with these flags.
    fn report(loss_ppm: u32, flags: u8) -> Vec<u8> {
        let st = StatusRepr {
            session: 1,
            receiver: 3,
            echo_us: 0,
            hold_us: 0,
            loss_ppm,
            loss_span: 0,
            rate: 0,
            window: (0, 0),
            flags,
        };
        let mut buf = vec![0; 64];
        let n = st.write(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// A hybrid sender (T = 200) of one object of 8 blocks of 600 symbols,
    /// in windows of 4, without lead protection, started at the instant
    /// returned; `tune` adjusts its configuration first.
    fn eight_blocks(tune: impl FnOnce(&mut SenderConfig)) -> (Sender, Instant) {
        let mut config = SenderConfig {
            mode: Mode::Hybrid,
            max_datagram: 244,
            block_symbols: 600,
            interleave: 4,
            lead_protection: false,
            ..SenderConfig::default()
        };
        tune(&mut config);
        let mut s = Sender::new(config).unwrap();
        s.add_object(vec![7u8; 600 * 200 * 8], "o").unwrap();
        let now = Instant::now();
        s.handle_timeout(now);
        (s, now)
    }

    /// A hybrid first pass that starts with no reported loss asks for no
    /// encoder; the first STATUS that reports loss asks at once for the
    /// current window's, while its source symbols are still going out, so
    /// that the proactive repair sized at the window's end does not wait on
    /// builds on the sending thread.
    #[test]
    fn the_first_reported_loss_asks_for_the_window_s_encoders() {
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            max_datagram: 244, // T = 200
            block_symbols: 600,
            interleave: 2,
            encoder_threads: 1,
            // (The first object's lead protection would ask for encoders anyway.)
            lead_protection: false,
            repair_overhead: Mode::Hybrid.default_repair_overhead(),
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![7u8; 600 * 200 * 6], "o").unwrap(); // 6 blocks
        let mut buf = vec![0u8; 244];
        let now = Instant::now();
        s.handle_timeout(now);
        // The receiver is heard (at no loss) before the first window opens.
        s.handle_datagram(now, &status(0));
        for _ in 0..300 {
            s.poll_transmit(now, &mut buf).unwrap();
        }
        assert!(
            s.poll_encoder_request().is_none(),
            "no loss reported: no encoder asked for"
        );
        s.handle_datagram(now, &status(100_000));
        let mut asked = Vec::new();
        while let Some(r) = s.poll_encoder_request() {
            asked.push(format!("{r:?}"));
        }
        assert_eq!(asked.len(), 2, "the window's two blocks: {asked:?}");
        // Later windows ask as they open.
        for _ in 0..3000 {
            s.poll_transmit(now, &mut buf).unwrap();
        }
        assert!(s.poll_encoder_request().is_some());
    }

    /// A STATUS without LOSS says nothing of loss: a receiver's first ones,
    /// sent before its first loss sample, leave the sender's average alone.
    /// (Averaged in as 0, they would have the first windows sized for a third
    /// to a half of the loss, and their blocks would go to NACKs.)
    #[test]
    fn unmeasured_loss_reports_leave_the_average_alone() {
        let unmeasured = report(0, 0);
        let measured = repair_in_first_window(&[unmeasured.clone(), unmeasured, status(100_000)]);
        assert!(measured >= 4 * 70, "sized for 10%: {measured}");
        let zeros = repair_in_first_window(&[status(0), status(0), status(100_000)]);
        assert!(
            zeros < measured / 2,
            "measured zeros do count: {zeros} of {measured}"
        );
    }

    /// A window that opens before any loss is measured sends its source
    /// symbols interleaved and sizes its repair at their end, so that every
    /// block becomes decodable only in its last symbols: in a transfer of one
    /// window, the receivers' decodes would crowd into its tail. The first
    /// measured report restages what is left: each block's remaining source
    /// symbols with its proactive repair as one run, the runs staggered, so
    /// that the blocks complete one after another.
    #[test]
    fn the_first_measured_loss_restages_the_open_window() {
        let (mut s, now) = eight_blocks(|c| c.repair_overhead = 0.0);
        let mut buf = vec![0u8; 244];
        let mut first = Vec::new();
        while first.len() < 600 {
            let n = s.poll_transmit(now, &mut buf).expect("the window goes out");
            if let Ok(Repr::Data(d)) = Repr::parse(&buf[..n]) {
                assert!(d.esi < 600, "no repair before a report: {d:?}");
                first.push((d.sbn, d.esi));
            }
        }
        s.handle_datagram(now, &status(100_000));
        let mut rest = Vec::new();
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            if let Ok(Repr::Data(d)) = Repr::parse(&buf[..n]) {
                if d.sbn >= 4 {
                    break;
                }
                rest.push((d.sbn, d.esi));
            }
        }
        // Every source symbol of the window once, and repair for 10%.
        let mut source: Vec<_> = first.iter().chain(&rest).filter(|p| p.1 < 600).collect();
        source.sort_unstable();
        source.dedup();
        assert_eq!(source.len(), 2400);
        let repair = rest.iter().filter(|p| p.1 >= 600).count();
        assert!(repair >= 4 * 67, "repair for 10%: {repair}");
        // Each block's last symbol, in what followed the report: one block
        // after another, the first well before the end.
        let last: Vec<usize> = (0..4u8)
            .map(|sbn| rest.iter().rposition(|p| p.0 == sbn).unwrap())
            .collect();
        assert!(last.windows(2).all(|w| w[0] < w[1]), "{last:?}");
        assert!(
            last[0] < rest.len() * 7 / 10,
            "block 0 complete early: {last:?} of {}",
            rest.len()
        );
        // Its repair came with its source symbols, not after all of them.
        let first_repair = rest.iter().position(|p| p.0 == 0 && p.1 >= 600).unwrap();
        let last_source = rest.iter().rposition(|p| p.1 < 600).unwrap();
        assert!(first_repair < last_source, "{first_repair} {last_source}");
    }

    /// Repair symbols in the first window (blocks 0-3) of [`eight_blocks`]
    /// after these receivers' measured reports: (loss, Loss span).
    fn first_window_repair(reports: &[(f64, u16)]) -> usize {
        let reports: Vec<Vec<u8>> = reports
            .iter()
            .enumerate()
            .map(|(i, &(loss, span))| {
                let st = StatusRepr {
                    session: 1,
                    receiver: 100 + i as u64,
                    echo_us: 0,
                    hold_us: 0,
                    loss_ppm: (loss * 1e6) as u32,
                    loss_span: span,
                    rate: 0,
                    window: (0, 0),
                    flags: STATUS_LOSS,
                };
                let mut buf = vec![0u8; 64];
                let n = st.write(&mut buf).unwrap();
                buf.truncate(n);
                buf
            })
            .collect();
        repair_in_first_window(&reports)
    }

    /// Repair symbols in the first window (blocks 0-3) of [`eight_blocks`]
    /// after these STATUS datagrams.
    fn repair_in_first_window(reports: &[Vec<u8>]) -> usize {
        let (mut s, now) = eight_blocks(|c| c.repair_overhead = 0.0);
        let mut buf = vec![0u8; 244];
        for r in reports {
            s.handle_datagram(now, r);
        }
        let mut repair = 0;
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            if let Ok(Repr::Data(d)) = Repr::parse(&buf[..n]) {
                if d.sbn >= 4 {
                    break;
                }
                repair += usize::from(d.esi >= 600);
            }
        }
        repair
    }

    /// The largest of a group's loss reports runs high by the noise of the
    /// estimates: of 100 receivers at 25%, each measured as precisely as a
    /// ratio over 2000 DATA (one standard deviation: 0.97 points), the
    /// largest says 27.4% on average. With the Loss span reported, the
    /// proactive repair is sized for the loss plus one standard deviation
    /// (for the estimate's own error), not for the noise of the largest
    /// report. (Sized from the raw largest, hybrid at 1000 receivers and 25%
    /// sent 5% more than the ideal code.) A receiver whose need stands out
    /// beyond the noise still sizes it.
    #[test]
    fn proactive_repair_is_sized_for_the_loss_not_the_noise_of_its_reports() {
        let sd = (0.25f64 * 0.75 / 2000.0).sqrt();
        // 100 draws of N(0.25, sd²): Box-Muller over a fixed LCG.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let noisy: Vec<f64> = (0..100)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                0.25 + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect();
        let top = noisy.iter().copied().fold(0.0, f64::max);
        assert!(top > 0.25 + 2.0 * sd, "the draws' largest: {top}");
        let with_span =
            |span: u16| -> Vec<(f64, u16)> { noisy.iter().map(|&p| (p, span)).collect() };
        let flat = |p: f64| vec![(p, 0u16); 100];
        let corrected = first_window_repair(&with_span(2000));
        let raw = first_window_repair(&with_span(0));
        let at_loss = first_window_repair(&flat(0.25));
        let at_two_sd = first_window_repair(&flat(0.25 + 2.0 * sd));
        assert!(
            (at_loss..=at_two_sd).contains(&corrected),
            "sized for 25% to 25% + 2 sd ({at_loss} to {at_two_sd} repair): {corrected}"
        );
        assert!(
            raw >= corrected + 40,
            "without spans the noise sizes it: {raw} against {corrected}"
        );
        // Forged ids (from other addresses) reporting no loss with a span of
        // 1 widen the spread and the group, but each real receiver's
        // correction stays within what its own span allows: still sized for
        // at least 25%.
        let mut forged = with_span(2000);
        forged.extend(std::iter::repeat_n((0.0, 1u16), 60));
        let forged = first_window_repair(&forged);
        assert!(
            (at_loss..=raw).contains(&forged),
            "with 60 forged reports: {forged} repair, not within {at_loss} to {raw}"
        );
        // A receiver at 40% among them is need, not noise.
        let mut needy = with_span(2000);
        needy[0].0 = 0.40;
        let needy = first_window_repair(&needy);
        let at_38 = first_window_repair(&flat(0.38));
        assert!(needy >= at_38, "{needy} repair, sized below 38%: {at_38}");
    }

    /// A window whose blocks the driver hands over late (its symbols passed
    /// over while they are read) sizes its proactive repair from the loss
    /// reported by the time all its symbols are out, not when the plan alone
    /// ran dry: sized then, before the first report of loss, the first
    /// window of every large file would go without repair and its blocks
    /// would all be repaired by NACKs.
    #[test]
    fn a_window_of_late_blocks_sizes_its_repair_when_its_symbols_are_out() {
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            max_datagram: 244, // T = 200
            block_symbols: 600,
            interleave: 2,
            lead_protection: false,
            repair_overhead: 0.0,
            ..SenderConfig::default()
        })
        .unwrap();
        let data = vec![7u8; 600 * 200 * 2]; // 2 blocks: one window
        let hash = *blake3::hash(&data).as_bytes();
        s.add_object_blocks(data.len() as u64, hash, "o").unwrap();
        let mut buf = vec![0u8; 244];
        let now = Instant::now();
        s.handle_timeout(now);
        // Heard at no loss when the window opens; no block is in yet.
        s.handle_datagram(now, &status(0));
        let mut requests = Vec::new();
        for _ in 0..2000 {
            s.poll_transmit(now, &mut buf);
            requests.extend(std::iter::from_fn(|| s.poll_block_request()));
        }
        assert_eq!(requests.len(), 2, "both blocks asked for");
        // Loss is reported while the blocks are read (the sender averages
        // what a receiver reports); then they come.
        for _ in 0..4 {
            s.handle_datagram(now, &status(100_000));
        }
        for r in requests {
            let at = r.offset as usize;
            s.handle_block(r.object, r.sbn, data[at..at + r.len].to_vec())
                .unwrap();
        }
        let mut repair = 0;
        for i in 0..20_000 {
            // (Repair draws on its own budget, refilled as time goes.)
            let t = now + Duration::from_micros(100 * i);
            if s.stats().rounds_completed > 0 {
                break; // the first pass only
            }
            let Some(n) = s.poll_transmit(t, &mut buf) else {
                continue;
            };
            if let Ok(Repr::Data(d)) = Repr::parse(&buf[..n])
                && d.esi >= 600
            {
                repair += 1;
            }
        }
        assert!(repair >= 2 * 60, "proactive repair at 10%: {repair}");
    }

    /// A lossy window asks for each block's encoder half a window before the
    /// block's first repair symbol, in the order needed, rather than all at
    /// its opening: the window before keeps its encoders in the cache while
    /// NACKs for its last blocks come in.
    #[test]
    fn a_lossy_window_asks_for_its_encoders_as_the_plan_gets_to_them() {
        let (mut s, now) = eight_blocks(|c| c.encoder_threads = 1);
        let mut buf = vec![0u8; 244];
        s.handle_datagram(now, &status(100_000));
        // (datagram index when asked, SBN) and each block's first repair.
        let (mut asked, mut first_repair) = (Vec::new(), [None; 4]);
        let mut i = 0usize;
        while first_repair.iter().any(Option::is_none) {
            let Some(n) = s.poll_transmit(now, &mut buf) else {
                break;
            };
            while let Some(r) = s.poll_encoder_request() {
                asked.push((i, r.block().1));
                if let Some(b) = r.build() {
                    s.handle_encoder(b);
                }
            }
            if let Ok(Repr::Data(d)) = Repr::parse(&buf[..n])
                && d.sbn < 4
                && d.esi >= 600
            {
                first_repair[d.sbn as usize].get_or_insert(i);
            }
            i += 1;
        }
        let window: Vec<_> = asked.iter().filter(|a| a.1 < 4).collect();
        let order: Vec<u8> = window.iter().map(|a| a.1).collect();
        assert_eq!(order, [0, 1, 2, 3], "asked once each, in order: {asked:?}");
        // The window's first half is about 4 × 700 / 2 datagrams.
        let half = 1300;
        for &&(at, sbn) in &window {
            let repair = first_repair[sbn as usize].unwrap();
            assert!(
                at < repair && repair - at >= half,
                "block {sbn} asked at {at}, its first repair at {repair}"
            );
        }
        assert!(window[3].0 > window[0].0 + half / 2, "spread: {asked:?}");
    }

    /// With loss reported when a window opens, a hybrid first pass sends each
    /// block's source symbols and proactive repair together, the blocks'
    /// runs staggered: block i of 4 is complete at about 1/2 + (i + 1) / 8 of
    /// the window, rather than every block at its end (where the receivers'
    /// decoders would all start at once).
    #[test]
    fn a_lossy_window_completes_its_blocks_one_after_another() {
        let (mut s, now) = eight_blocks(|_| {});
        let mut buf = vec![0u8; 244];
        s.handle_datagram(now, &status(100_000));
        let mut window = Vec::new();
        while window.len() < 4 * 700 {
            let n = s.poll_transmit(now, &mut buf).unwrap();
            if let Ok(Repr::Data(d)) = Repr::parse(&buf[..n]) {
                if d.sbn >= 4 {
                    break;
                }
                window.push((d.sbn, d.esi));
            }
        }
        let repair = window.iter().filter(|p| p.1 >= 600).count();
        assert!(repair >= 4 * 60, "proactive repair at 10%: {repair}");
        let last: Vec<usize> = (0..4u8)
            .map(|sbn| window.iter().rposition(|p| p.0 == sbn).unwrap())
            .collect();
        for (i, &at) in last.iter().enumerate() {
            let want = 0.5 + (i + 1) as f64 / 8.0;
            let got = (at + 1) as f64 / window.len() as f64;
            assert!(
                (got - want).abs() < 0.01,
                "block {i} complete at {got:.3} of the window, not {want}: {last:?}"
            );
        }
        // Every block starts in the window's first packets, its source
        // symbols in order before its repair.
        for sbn in 0..4u8 {
            assert!(window[..16].iter().any(|p| p.0 == sbn), "block {sbn} early");
            let esis: Vec<u32> = window.iter().filter(|p| p.0 == sbn).map(|p| p.1).collect();
            assert!(
                esis.windows(2).all(|w| w[0] < w[1]),
                "block {sbn} in ESI order"
            );
            assert_eq!(esis[..600], (0..600).collect::<Vec<_>>()[..]);
        }
    }

    /// A publisher's batch of one symbol goes out twice, OBJECT_INFO and
    /// DATA, once a receiver reports loss: one lost packet then costs no NACK
    /// round. Before any loss is reported it goes once.
    #[test]
    fn single_symbol_objects_are_copied_under_loss() {
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            copy_single_symbol_objects: true,
            repair_overhead: Mode::Hybrid.default_repair_overhead(),
            ..SenderConfig::default()
        })
        .unwrap();
        s.set_open(true);
        let mut buf = vec![0u8; 1232];
        let now = Instant::now();
        s.handle_timeout(now);
        let kinds = |s: &mut Sender, buf: &mut [u8]| {
            let mut out = Vec::new();
            while let Some(n) = s.poll_transmit(now, buf) {
                match Repr::parse(&buf[..n]).unwrap() {
                    Repr::ObjectInfo(_) => out.push('I'),
                    Repr::Data(_) => out.push('D'),
                    _ => {}
                }
            }
            out.into_iter().collect::<String>()
        };
        s.handle_datagram(now, &status(0));
        s.add_object(vec![1u8; 100], "a").unwrap();
        assert_eq!(kinds(&mut s, &mut buf), "ID", "no loss reported: once");
        s.handle_datagram(now, &status(10_000));
        s.add_object(vec![2u8; 100], "b").unwrap();
        assert_eq!(kinds(&mut s, &mut buf), "IDID", "loss reported: twice");
        // Objects of more than one symbol are not copied.
        s.add_object(vec![3u8; 3000], "c").unwrap();
        assert_eq!(kinds(&mut s, &mut buf), "IDDD");
    }

    /// Reported loss above the threshold cuts the rate (at most once per GRTT)
    /// down to the floor; loss-free reports let it climb back to the configured rate.
    #[test]
    fn aimd_backs_off_on_loss_and_recovers() {
        let rate = 10_000_000;
        let floor = 1_000_000;
        let mut s = Sender::new(SenderConfig {
            mode: Mode::Hybrid,
            rate: Some(rate),
            feedback: FeedbackConfig {
                aimd: Some(Aimd {
                    loss_threshold: 0.05,
                    decrease: 0.5,
                    increase: 1_000_000,
                    floor,
                }),
                ..FeedbackConfig::default()
            },
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![1u8; 100_000_000], "big").unwrap();
        let mut buf = vec![0u8; 1232];
        let t0 = Instant::now();
        let mut now = t0;
        let mut rates = Vec::new();
        // Two seconds of 20% loss reports, then four of none.
        for step in 0..600 {
            let loss = if step < 200 { 200_000 } else { 0 };
            s.handle_datagram(now, &status(loss));
            s.handle_timeout(now);
            while s.poll_transmit(now, &mut buf).is_some() {}
            rates.push(s.stats().rate);
            now += Duration::from_millis(10);
        }
        let low = rates[150..200].iter().copied().max().unwrap();
        assert_eq!(
            low,
            floor,
            "the rate should have fallen to the floor: {:?}",
            &rates[..200]
        );
        // One cut per GRTT (50 ms here), not one per report.
        assert!(rates[1] >= rate / 2, "{:?}", &rates[..10]);
        let end = *rates.last().unwrap();
        assert_eq!(
            end,
            rate,
            "the rate should have climbed back: {:?}",
            &rates[200..]
        );
        assert!(rates.windows(2).skip(201).all(|w| w[1] >= w[0]));
    }
}

/// The protocol's defaults live in the core, where the CLI takes them from.
#[test]
fn mode_and_congestion_defaults_come_from_the_core() {
    use groupcast::{Aimd, Mode};
    assert_eq!(Mode::Carousel.default_repair_overhead(), 0.25);
    assert_eq!(Mode::Hybrid.default_repair_overhead(), 0.0);
    assert_eq!(Mode::Nack.default_repair_overhead(), 0.0);
    let a = Aimd::for_rate(5_000_000, 0.05, Aimd::default_floor(5_000_000));
    assert_eq!(
        (a.decrease, a.increase, a.floor, a.loss_threshold),
        (0.875, 100_000, 312_500, 0.05)
    );
    // A floor above the rate is the rate.
    assert_eq!(Aimd::for_rate(1_000, 0.1, 9_000).floor, 1_000);
}

/// The sender's ranges are checked in one place, SenderConfig::validate,
/// which Sender::new calls and drivers may call first.
#[test]
fn validate_is_the_one_range_check() {
    use groupcast::{MAX_REPAIR_OVERHEAD, Sender, SenderConfig, SenderError};
    let ok = SenderConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let bad = SenderConfig {
        repair_overhead: MAX_REPAIR_OVERHEAD + 1.0,
        ..SenderConfig::default()
    };
    assert!(matches!(bad.validate(), Err(SenderError::Config(_))));
    assert_eq!(Sender::new(bad.clone()).err(), bad.validate().err());
    let tiny = SenderConfig {
        max_datagram: 10,
        ..SenderConfig::default()
    };
    assert_eq!(tiny.validate(), Err(SenderError::MaxDatagram(10)));
}

/// A driver slow to hand blocks over does not idle the first pass: while it
/// reads a window's blocks, one every 8 datagrams, the sender goes on from
/// the blocks of the window it holds (those asked for a window ahead), and
/// the datagrams are those of the same object added whole, in another order.
/// The buffers of blocks it lets go come back for the next reads.
#[test]
fn a_slow_block_source_does_not_idle_the_pass() {
    use groupcast::{BlockRequest, Mode};
    let data: Vec<u8> = (0..400_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let config = SenderConfig {
        mode: Mode::Carousel,
        max_datagram: 244, // T = 200
        block_symbols: 20,
        interleave: 16,
        repair_overhead: 0.0,
        rounds: Rounds::Fixed(1),
        encoder_threads: 0,
        ..SenderConfig::default()
    };
    let now = Instant::now();
    let mut buf = vec![0u8; 244];
    let mut whole = Sender::new(config.clone()).unwrap();
    whole.add_object(data.clone(), "big").unwrap();
    let mut expect = Vec::new();
    while let Some(n) = whole.poll_transmit(now, &mut buf) {
        expect.push(buf[..n].to_vec());
    }
    let mut s = Sender::new(config).unwrap();
    let hash = *blake3::hash(&data).as_bytes();
    let id = s.add_object_blocks(data.len() as u64, hash, "big").unwrap();
    let (mut out, mut idle, mut queue) = (Vec::new(), 0, std::collections::VecDeque::new());
    let mut reused = 0;
    for polls in 0u64.. {
        let sent = s.poll_transmit(now, &mut buf);
        if let Some(n) = sent {
            out.push(buf[..n].to_vec());
        }
        queue.extend(std::iter::from_fn(|| s.poll_block_request()));
        // One block handed over every 8 datagrams (a read takes as long as
        // sending 8), or at once when nothing could go.
        if sent.is_some() && polls % 8 != 0 {
            continue;
        }
        let Some(BlockRequest {
            object,
            sbn,
            offset,
            len,
        }) = queue.pop_front()
        else {
            if sent.is_none() {
                break;
            }
            continue;
        };
        assert_eq!(object, id);
        if sent.is_none() && !out.is_empty() {
            idle += 1;
        }
        let at = offset as usize;
        // Read into a buffer of a block the sender let go, when there is one.
        let mut block = match s.take_block_buffer() {
            Some(b) => {
                assert!(
                    b.is_empty() && b.capacity() >= len,
                    "an empty buffer with room"
                );
                reused += 1;
                b
            }
            None => Vec::new(),
        };
        block.extend_from_slice(&data[at..at + len]);
        s.handle_block(object, sbn, block).unwrap();
    }
    assert!(
        reused > 50,
        "evicted blocks' buffers are handed back ({reused})"
    );
    assert_eq!(out.len(), expect.len());
    let (mut a, mut b) = (out.clone(), expect.clone());
    a.sort();
    b.sort();
    assert!(a == b, "the same datagrams");
    assert!(
        out != expect,
        "in another order: blocks not held were passed over"
    );
    // Only the first window (nothing held yet) waits for its blocks.
    assert!(idle <= 4, "the pass idled {idle} times waiting for a block");
}
