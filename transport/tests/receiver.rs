//! Receiver tests: hostile input, limits, and keeping sessions and objects apart.

use std::time::{Duration, Instant};

use groupcast::wire::{DataRepr, InfoRepr, Repr};
use groupcast::{
    FailReason, ObjectId, Receiver, ReceiverConfig, ReceiverEvent, RejectReason, SessionId,
};
use groupcast_fec::{FecId, Oti};
use proptest::prelude::*;

use groupcast_testing::{receive, transfer};

/// A reproducible pseudo-random object: the workspace's one generator.
use groupcast_fec::pseudo_random_bytes as object;

#[test]
fn sessions_and_objects_never_mix() {
    let a1 = object(20_000, 1);
    let a2 = object(7_000, 2);
    let b1 = object(20_000, 3);
    let empty: Vec<u8> = Vec::new();
    let ta = transfer(10, &[(&a1, "a1"), (&a2, "a2"), (&empty, "empty")], 1);
    // Session 11 reuses object id 0 with different content.
    let tb = transfer(11, &[(&b1, "b1")], 1);
    let mixed: Vec<Vec<u8>> = ta
        .iter()
        .zip(tb.iter().chain(std::iter::repeat(&Vec::new())))
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .filter(|p| !p.is_empty())
        .chain(ta.iter().skip(tb.len()).cloned())
        .collect();
    let mut r = Receiver::new(ReceiverConfig::default());
    let mut done = receive(&mut r, mixed);
    done.sort_by_key(|d| d.0);
    let got: Vec<_> = done
        .iter()
        .map(|d| (d.0, d.1.as_str(), d.2.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ((SessionId(10), ObjectId(0)), "a1", a1),
            ((SessionId(10), ObjectId(1)), "a2", a2),
            ((SessionId(10), ObjectId(2)), "empty", empty),
            ((SessionId(11), ObjectId(0)), "b1", b1),
        ]
    );
    assert_eq!(r.stats().objects_completed, 4);
    assert_eq!(r.stats().packets_rejected, 0);
    assert_eq!(r.objects_in_progress(), 0);
    assert_eq!(r.stats().buffered_bytes, 0);
}

#[test]
fn session_filter_counts_foreign_packets() {
    let data = object(5_000, 4);
    let mut r = Receiver::new(ReceiverConfig {
        session: Some(SessionId(2)),
        ..ReceiverConfig::default()
    });
    let foreign = transfer(1, &[(&data, "x")], 1);
    let n = foreign.len() as u64;
    assert!(receive(&mut r, foreign).is_empty());
    assert_eq!(r.stats().rejected(RejectReason::ForeignSession), n);
    assert_eq!(receive(&mut r, transfer(2, &[(&data, "x")], 1)).len(), 1);
}

#[test]
fn forged_symbol_fails_verification_and_object_restarts() {
    let data = object(30_000, 5);
    let packets = transfer(3, &[(&data, "f")], 8);
    // Corrupt the payload of the first DATA packet and fix up its CRC: only the
    // hash check can catch this.
    let mut forged = packets.clone();
    let first_data = forged.iter().position(|p| p[3] == 1).unwrap();
    let p = &mut forged[first_data];
    p[45] ^= 0xff;
    let n = p.len() - 4;
    let crc = crc32fast::hash(&p[..n]).to_be_bytes();
    p[n..].copy_from_slice(&crc);
    let mut r = Receiver::new(ReceiverConfig::default());
    let now = Instant::now();
    let mut failed = 0;
    let mut completed = 0;
    for p in forged {
        let _ = r.handle_datagram(now, &p);
        while let Some(e) = r.poll_event() {
            match e {
                ReceiverEvent::ObjectFailed { reason, .. } => {
                    assert_eq!(reason, FailReason::HashMismatch);
                    failed += 1;
                }
                ReceiverEvent::ObjectComplete { .. } => completed += 1,
                _ => {}
            }
        }
    }
    assert_eq!(failed, 1, "the forged symbol must fail the hash");
    assert_eq!(completed, 1, "later rounds must complete the object");
}

fn forged_data(oti: Oti, object: u32) -> Vec<u8> {
    let symbol = vec![0xaa; oti.symbol_size() as usize];
    let repr = Repr::Data(DataRepr {
        session: 9,
        object,
        fec: FecId::RaptorQ,
        oti,
        sbn: 0,
        esi: 0,
        symbol: &symbol,
    });
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf
}

#[test]
fn forged_terabyte_object_is_refused_without_allocating() {
    let oti = Oti::for_object(900_000_000_000, 65_480, 56_403, 4).unwrap();
    let mut r = Receiver::new(ReceiverConfig {
        max_object_size: 1 << 30,
        ..ReceiverConfig::default()
    });
    let _ = r.handle_datagram(Instant::now(), &forged_data(oti, 1));
    assert_eq!(r.stats().rejected(RejectReason::ObjectTooLarge), 1);
    assert_eq!(r.objects_in_progress(), 0);
    assert_eq!(r.stats().peak_buffered_bytes, 0);
    // Its OBJECT_INFO is refused the same way, with the default 4 GiB limit too.
    let mut r = Receiver::new(ReceiverConfig::default());
    let info = Repr::ObjectInfo(InfoRepr {
        session: 9,
        object: 1,
        fec: FecId::RaptorQ,
        oti,
        hash: [0; 32],
        name: "huge",
    });
    let mut buf = vec![0; info.buffer_len()];
    info.emit(&mut buf).unwrap();
    let _ = r.handle_datagram(Instant::now(), &buf);
    let _ = r.handle_datagram(Instant::now(), &forged_data(oti, 1));
    assert_eq!(r.stats().rejected(RejectReason::ObjectTooLarge), 2);
    assert_eq!(r.stats().peak_buffered_bytes, 0);
    // A claim of 1 TB and more (F is 40 bits) is beyond RFC 6330's largest
    // transfer: the OTI itself is refused.
    let mut raw = forged_data(oti, 1);
    raw[24..29].copy_from_slice(&[0xff; 5]);
    let n = raw.len() - 4;
    let crc = crc32fast::hash(&raw[..n]);
    raw[n..].copy_from_slice(&crc.to_be_bytes());
    let _ = r.handle_datagram(Instant::now(), &raw);
    assert_eq!(r.stats().rejected(RejectReason::InvalidOti), 1);
    assert_eq!(r.objects_in_progress(), 0);
}

/// A session refused for want of a slot is taken again after
/// `REFUSAL`, and never reported complete: what it sent meanwhile was lost.
/// The mark that says so outlasts any number of fresh sessions.
#[test]
fn refusals_expire_and_lost_sessions_stay_incomplete_whatever_comes_after() {
    let a = object(2_000, 3);
    let ta = transfer(10, &[(&a, "a")], 1);
    let t0 = Instant::now();
    let mut r = Receiver::new(ReceiverConfig::default());
    r.handle_timeout(t0);
    r.refuse_session(SessionId(10));
    for p in &ta {
        let _ = r.handle_datagram(t0, p);
    }
    assert_eq!(r.stats().objects_completed, 0, "refused");
    let later = t0 + groupcast::proto::REFUSAL;
    // Fresh sessions, each completing an object, fill every floor.
    for s in 100..1200u64 {
        for p in transfer(s, &[(&a[..10], "x")], 1) {
            let _ = r.handle_datagram(later, &p);
        }
    }
    for p in &ta {
        let _ = r.handle_datagram(later, p);
    }
    assert!(r.stats().objects_completed >= 1101, "taken again");
    assert!(
        r.is_lossy(SessionId(10)),
        "the mark outlasts 1,100 fresh sessions"
    );
}

/// The last object id there is, reached by a skip (a PROBE may say that the
/// sender retains from there on) and then completed, moves no counter past
/// the end of the id space, and stays complete.
#[test]
fn the_last_object_id_completes_without_overflow() {
    let content = [7u8; 100];
    let oti = Oti::for_object(100, 100, 1, 4).unwrap();
    let last = u32::MAX;
    let info = Repr::ObjectInfo(InfoRepr {
        session: 9,
        object: last,
        fec: FecId::NoCode,
        oti,
        hash: *blake3::hash(&content).as_bytes(),
        name: "last",
    });
    let data = Repr::Data(DataRepr {
        session: 9,
        object: last,
        fec: FecId::NoCode,
        oti,
        sbn: 0,
        esi: 0,
        symbol: &content,
    });
    let emit = |r: &Repr<'_>| {
        let mut buf = vec![0; r.buffer_len()];
        r.emit(&mut buf).unwrap();
        buf
    };
    let mut r = Receiver::new(ReceiverConfig::default());
    r.skip_before(SessionId(9), groupcast::ObjectId(last));
    let _ = r.handle_datagram(Instant::now(), &emit(&info));
    let _ = r.handle_datagram(Instant::now(), &emit(&data));
    assert_eq!(r.stats().objects_completed, 1);
    let _ = r.handle_datagram(Instant::now(), &emit(&data));
    assert_eq!(r.stats().objects_completed, 1, "complete once");
    assert_eq!(r.objects_in_progress(), 0);
}

#[test]
fn a_locked_receiver_drops_other_sessions() {
    let a = object(9_000, 21);
    let ta = transfer(10, &[(&a, "a")], 1);
    let tb = transfer(11, &[(&a, "b")], 1);
    let mut r = Receiver::new(ReceiverConfig::default());
    // Half of session 11 first: its state exists, then the lock drops it.
    for p in &tb[..tb.len() / 2] {
        let _ = r.handle_datagram(Instant::now(), p);
    }
    assert_eq!(r.objects_in_progress(), 1);
    r.lock_session(SessionId(10));
    assert_eq!(r.objects_in_progress(), 0);
    assert_eq!(r.stats().buffered_bytes, 0);
    let done = receive(&mut r, tb.iter().cloned().chain(ta.iter().cloned()));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0.0, SessionId(10));
    assert_eq!(
        r.stats().rejected(RejectReason::ForeignSession) as usize,
        tb.len()
    );
}

#[test]
fn object_and_block_limits_hold() {
    let oti = Oti::for_object(10_000_000, 1000, 100, 4).unwrap();
    let mut r = Receiver::new(ReceiverConfig {
        max_objects: 3,
        max_blocks_in_flight: 5,
        ..ReceiverConfig::default()
    });
    let now = Instant::now();
    for obj in 0..10 {
        let _ = r.handle_datagram(now, &forged_data(oti, obj));
    }
    assert_eq!(r.objects_in_progress(), 3);
    assert_eq!(r.stats().rejected(RejectReason::TooManyObjects), 7);
    // Symbols for blocks beyond the in-flight limit are deferred, not buffered.
    let symbol = vec![1u8; 1000];
    for sbn in 0..20u8 {
        let repr = Repr::Data(DataRepr {
            session: 9,
            object: 0,
            fec: FecId::RaptorQ,
            oti,
            sbn,
            esi: 5,
            symbol: &symbol,
        });
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        let _ = r.handle_datagram(now, &buf);
    }
    assert!(r.stats().symbols_deferred >= 15);
    // Five blocks are open: three objects' block 0 (object 0's holding two
    // distinct symbols), and object 0's blocks 1 and 2.
    assert_eq!(r.stats().symbols_deferred, 17);
    // Each open block holds one K × T buffer for its source symbols.
    assert_eq!(r.stats().peak_buffered_bytes, 5 * 100 * 1000);
    // A different OTI for a known object is refused.
    let other = Oti::for_object(9_999_996, 1000, 100, 4).unwrap();
    let _ = r.handle_datagram(now, &forged_data(other, 0));
    assert_eq!(r.stats().rejected(RejectReason::OtiMismatch), 1);
}

#[test]
fn idle_objects_are_abandoned() {
    let oti = Oti::for_object(100_000, 1000, 100, 4).unwrap();
    let mut r = Receiver::new(ReceiverConfig {
        idle_timeout: Duration::from_secs(5),
        ..ReceiverConfig::default()
    });
    let t0 = Instant::now();
    let _ = r.handle_datagram(t0, &forged_data(oti, 0));
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    assert!(r.stats().buffered_bytes > 0);
    // A later packet of the object moves its idle deadline on.
    let t3 = t0 + Duration::from_secs(3);
    let _ = r.handle_datagram(t3, &forged_data(oti, 0));
    assert_eq!(r.poll_timeout(), Some(t3 + Duration::from_secs(5)));
    r.handle_timeout(t0 + Duration::from_secs(7));
    assert_eq!(r.objects_in_progress(), 1);
    r.handle_timeout(t3 + Duration::from_secs(5));
    assert_eq!(r.objects_in_progress(), 0);
    assert_eq!(r.poll_timeout(), None, "no timer left behind");
    assert_eq!(r.stats().buffered_bytes, 0);
    assert_eq!(
        r.poll_event(),
        Some(ReceiverEvent::ObjectFailed {
            session: SessionId(9),
            object: ObjectId(0),
            reason: FailReason::Idle
        })
    );
}

#[test]
fn conflicting_info_is_rejected() {
    let oti = Oti::for_object(1000, 100, 100, 4).unwrap();
    let emit = |name: &str| {
        let repr = Repr::ObjectInfo(InfoRepr {
            session: 1,
            object: 0,
            fec: FecId::RaptorQ,
            oti,
            hash: [1; 32],
            name,
        });
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        buf
    };
    let mut r = Receiver::new(ReceiverConfig::default());
    let _ = r.handle_datagram(Instant::now(), &emit("a"));
    let _ = r.handle_datagram(Instant::now(), &emit("a"));
    let _ = r.handle_datagram(Instant::now(), &emit("b"));
    assert_eq!(r.stats().rejected(RejectReason::InfoMismatch), 1);
    assert_eq!(r.stats().info_received, 2);
}

fn mutate(p: &[u8], ops: &[(u16, u8, u8)]) -> Vec<u8> {
    let mut p = p.to_vec();
    for &(pos, kind, val) in ops {
        if p.is_empty() {
            break;
        }
        let i = pos as usize % p.len();
        match kind % 4 {
            0 => p[i] ^= val | 1,
            1 => p.truncate(i),
            2 => p.insert(i, val),
            _ => {
                // Tamper, then fix the CRC so field validation is exercised.
                p[i] = val;
                if p.len() >= 4 {
                    let n = p.len() - 4;
                    let crc = crc32fast::hash(&p[..n]).to_be_bytes();
                    p[n..].copy_from_slice(&crc);
                }
            }
        }
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random bytes and mutated valid packets (some with the CRC recomputed,
    /// so that they reach field validation) never panic the receiver, and
    /// every datagram, these and the genuine ones after them, is either used
    /// or counted under a reason.
    #[test]
    fn hostile_datagrams_never_panic_and_each_is_used_or_counted(
        noise in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 0..20),
        mutations in proptest::collection::vec((any::<u16>(), proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 1..4)), 0..60),
        seed in any::<u64>(),
    ) {
        let data = object(12_000, seed);
        let packets = transfer(seed, &[(&data, "p")], 2);
        let mut r = Receiver::new(ReceiverConfig { max_blocks_in_flight: 3, max_objects: 2, ..ReceiverConfig::default() });
        let now = Instant::now();
        for n in &noise {
            let _ = r.handle_datagram(now, n);
        }
        for (which, ops) in &mutations {
            let p = &packets[*which as usize % packets.len()];
            let _ = r.handle_datagram(now, &mutate(p, ops));
            while r.poll_event().is_some() {}
        }
        // Genuine traffic afterwards. (A mutation with its CRC recomputed
        // may have poisoned the object, so whether it completes is not
        // checked here: see the next property.)
        for p in &packets {
            let _ = r.handle_datagram(now, p);
            while r.poll_event().is_some() {}
        }
        let s = r.stats();
        prop_assert_eq!(s.packets_received, (noise.len() + mutations.len() + packets.len()) as u64);
        prop_assert_eq!(s.packets_rejected, s.rejected_by_reason().map(|(_, n)| n).sum::<u64>());
    }

    /// Random bytes and valid packets damaged without their CRC recomputed
    /// (bits flipped, cut short, bytes inserted), all of which fail
    /// validation, leave the receiver as it was: the genuine transfer after
    /// them completes its one object, with exactly its bytes, and every
    /// damaged datagram is counted as rejected.
    #[test]
    fn after_datagrams_that_fail_validation_the_genuine_object_completes_with_its_bytes(
        noise in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 0..20),
        damage in proptest::collection::vec((any::<u16>(), proptest::collection::vec((any::<u16>(), 0u8..3, any::<u8>()), 1..4)), 0..60),
        seed in any::<u64>(),
    ) {
        let data = object(12_000, seed);
        let packets = transfer(seed, &[(&data, "p")], 2);
        let mut r = Receiver::new(ReceiverConfig { max_blocks_in_flight: 3, max_objects: 2, ..ReceiverConfig::default() });
        let now = Instant::now();
        let mut damaged = 0u64;
        for n in &noise {
            let _ = r.handle_datagram(now, n);
        }
        for (which, ops) in &damage {
            let p = &packets[*which as usize % packets.len()];
            let m = mutate(p, ops);
            // Flips that cancel out give the genuine packet back.
            if m != *p {
                damaged += 1;
            }
            let _ = r.handle_datagram(now, &m);
            while r.poll_event().is_some() {}
        }
        prop_assert_eq!(r.stats().packets_rejected, noise.len() as u64 + damaged);
        let done = receive(&mut r, packets);
        prop_assert_eq!(done.len(), 1, "objects completed: {:?}", done.iter().map(|d| (d.0, d.2.len())).collect::<Vec<_>>());
        prop_assert_eq!(done[0].0, (SessionId(seed), ObjectId(0)));
        prop_assert_eq!(done[0].1.as_str(), "p");
        prop_assert!(done[0].2 == data, "the object's bytes differ");
    }
}

mod feedback {
    use std::time::{Duration, Instant};

    use groupcast::wire::feedback::{STATUS_COMPLETE, STATUS_ECHO};
    use groupcast::wire::{NackEntry, NackRepr, ProbeRepr, Repr, WireMode};
    use groupcast::{
        Destination, Mode, Receiver, ReceiverConfig, Rounds, Sender, SenderConfig, SessionId,
    };

    const SESSION: u64 = 77;

    /// A hybrid sender's first pass over one 20-block object, datagrams only.
    fn first_pass(mode: Mode) -> Vec<Vec<u8>> {
        let mut s = Sender::new(SenderConfig {
            session: SessionId(SESSION),
            mode,
            max_datagram: 144,
            block_symbols: 10,
            interleave: 4,
            repair_overhead: 0.0,
            rounds: Rounds::Fixed(1),
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![9u8; 20_000], "o").unwrap();
        let now = Instant::now();
        let mut buf = vec![0u8; 144];
        let mut out = Vec::new();
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    /// A PROBE of `session` stamped `ts`, as `probe` builds it.
    fn probe_of(session: u64, ts: u64) -> Vec<u8> {
        probe_with(|p| {
            p.session = session;
            p.timestamp_us = ts;
        })
    }

    /// A PROBE as `probe(false)` builds it, with the fields `edit` changes.
    fn probe_with(edit: impl FnOnce(&mut ProbeRepr)) -> Vec<u8> {
        let Ok(Repr::Probe(mut p)) = Repr::parse(&probe(false)) else {
            unreachable!("a PROBE")
        };
        edit(&mut p);
        let mut b = vec![0; groupcast::wire::feedback::PROBE_LEN];
        let n = p.write(&mut b).unwrap();
        b.truncate(n);
        b
    }

    fn probe(end: bool) -> Vec<u8> {
        let p = ProbeRepr {
            session: SESSION,
            timestamp_us: 1000,
            sent: 200,
            grtt_us: 10_000,
            objects: 1,
            progress: (0, 0),
            mode: WireMode::Hybrid,
            flags: if end { 1 } else { 0 },
            group_log2: 1,
            hops: 1,
            retained: 0,
            ask: Default::default(),
        };
        let mut b = vec![0; groupcast::wire::feedback::PROBE_LEN];
        let n = p.write(&mut b).unwrap();
        b.truncate(n);
        b
    }

    /// Everything the receiver wants to send within `horizon`.
    fn drain(
        r: &mut Receiver,
        t0: Instant,
        horizon: Duration,
    ) -> Vec<(Repr<'static>, Destination)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1232];
        let mut now = t0;
        while now <= t0 + horizon {
            r.handle_timeout(now);
            while let Some((n, to)) = r.poll_transmit(now, &mut buf) {
                let bytes: &'static [u8] = Box::leak(buf[..n].to_vec().into_boxed_slice());
                out.push((Repr::parse(bytes).unwrap(), to));
            }
            now += Duration::from_millis(1);
        }
        out
    }

    /// The first pass, but for every DATA packet of block 3 and the PROBEs.
    fn feed_all_but_block_3(r: &mut Receiver, t0: Instant) {
        for p in first_pass(Mode::Hybrid) {
            match Repr::parse(&p) {
                Ok(Repr::Data(d)) if d.sbn == 3 => continue,
                Ok(Repr::Probe(_)) => continue,
                _ => {}
            }
            let _ = r.handle_datagram(t0, &p);
        }
    }

    /// `handle_datagram` says what it took and why it refused: the
    /// sender's DATA and PROBEs may aim STATUS (a PROBE with its Hops), a
    /// peer's NACK may not, and a datagram of another session, once locked,
    /// or a damaged one, is refused with its reason.
    #[test]
    fn handle_datagram_says_what_it_took() {
        use groupcast::{Accepted, RejectReason};
        let t0 = Instant::now();
        let mut r = Receiver::new(ReceiverConfig {
            id: 5,
            ..ReceiverConfig::default()
        });
        let pass = first_pass(Mode::Hybrid);
        let data = pass
            .iter()
            .find(|p| matches!(Repr::parse(p), Ok(Repr::Data(_))))
            .expect("a DATA packet");
        let taken: Accepted = r.handle_datagram(t0, data).expect("taken");
        assert_eq!(taken.session, SessionId(SESSION));
        assert!(taken.from_sender);
        assert_eq!(taken.probe_hops, None);
        let probe = r.handle_datagram(t0, &probe(false)).expect("taken");
        assert!(probe.from_sender);
        assert_eq!(probe.probe_hops, Some(1));
        let nack = NackRepr {
            session: SESSION,
            receiver: 9,
            entries: vec![NackEntry {
                object: 0,
                sbn: 0,
                flags: 0,
                need: 1,
                ranges: Vec::new(),
            }],
        };
        let mut b = vec![0u8; 256];
        let n = Repr::Nack(nack).emit(&mut b).unwrap();
        let peer = r.handle_datagram(t0, &b[..n]).expect("taken");
        assert!(!peer.from_sender, "a peer's NACK aims nothing");
        let mut damaged = data.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(r.handle_datagram(t0, &damaged).is_err());
        r.lock_session(SessionId(SESSION + 1));
        assert_eq!(
            r.handle_datagram(t0, data),
            Err(RejectReason::ForeignSession)
        );
    }

    /// A receiver whose window waits for a solve says BUSY in its STATUS
    /// (so the sender sends it no fallback repair), and no longer once
    /// the block is solved.
    #[test]
    fn a_receiver_waiting_for_its_solves_says_busy() {
        use groupcast::wire::feedback::STATUS_BUSY;
        let mut s = Sender::new(SenderConfig {
            session: SessionId(SESSION),
            mode: Mode::Hybrid,
            max_datagram: 144,
            block_symbols: 10,
            interleave: 4,
            repair_overhead: 0.3,
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(vec![9u8; 20_000], "o").unwrap();
        let t0 = Instant::now();
        let mut buf = vec![0u8; 144];
        let mut r = Receiver::new(ReceiverConfig {
            id: 5,
            decode_threads: 1,
            ..ReceiverConfig::default()
        });
        // Every block lost its first symbol: each needs a solve.
        while let Some(n) = s.poll_transmit(t0, &mut buf) {
            if !matches!(Repr::parse(&buf[..n]), Ok(Repr::Data(d)) if d.esi == 0) {
                let _ = r.handle_datagram(t0, &buf[..n]);
            }
        }
        let _ = r.handle_datagram(t0, &probe(true));
        let jobs: Vec<_> = std::iter::from_fn(|| r.poll_decode()).collect();
        assert_eq!(jobs.len(), 20);
        let statuses = |sent: Vec<(Repr<'static>, Destination)>| -> Vec<_> {
            sent.into_iter()
                .filter_map(|(p, _)| match p {
                    Repr::Status(st) => Some(st),
                    _ => None,
                })
                .collect()
        };
        let before = statuses(drain(&mut r, t0, Duration::from_millis(100)));
        assert!(!before.is_empty());
        for st in &before {
            assert_eq!(st.window, (0, 0));
            assert_ne!(st.flags & STATUS_BUSY, 0, "{st:?}");
            assert_eq!(st.flags & STATUS_COMPLETE, 0);
        }
        let t1 = t0 + Duration::from_millis(200);
        for job in jobs {
            r.handle_decoded(t1, job.run());
        }
        let after = statuses(drain(&mut r, t1, Duration::from_millis(100)));
        let last = after.last().expect("a STATUS once solved");
        assert_ne!(last.flags & STATUS_COMPLETE, 0, "{last:?}");
        assert_eq!(last.flags & STATUS_BUSY, 0, "{last:?}");
    }

    #[test]
    fn silent_without_probes_then_nacks_what_is_missing() {
        let t0 = Instant::now();
        let mut r = Receiver::new(ReceiverConfig {
            id: 5,
            ..ReceiverConfig::default()
        });
        // Every DATA packet of block 3 is lost, and the sender's PROBEs too.
        feed_all_but_block_3(&mut r, t0);
        // A carousel receiver's life: no PROBE, nothing to say.
        assert!(drain(&mut r, t0, Duration::from_millis(100)).is_empty());
        let _ = r.handle_datagram(t0, &probe(true));
        let sent = drain(&mut r, t0, Duration::from_millis(100));
        let nacks: Vec<_> = sent
            .iter()
            .filter_map(|(p, to)| match p {
                Repr::Nack(n) => Some((n.clone(), *to)),
                _ => None,
            })
            .collect();
        assert_eq!(nacks.len(), 1, "{sent:?}");
        let (nack, to) = &nacks[0];
        assert_eq!(*to, Destination::Feedback);
        assert_eq!(nack.receiver, 5);
        assert_eq!(nack.entries.len(), 1);
        assert_eq!((nack.entries[0].sbn, nack.entries[0].need), (3, 10));
        let status = sent
            .iter()
            .find_map(|(p, to)| match p {
                Repr::Status(s) => Some((*s, *to)),
                _ => None,
            })
            .expect("a STATUS");
        assert_eq!(status.1, Destination::Sender(SessionId(SESSION)));
        assert_eq!(status.0.window, (0, 3));
        assert_eq!(status.0.flags & STATUS_COMPLETE, 0);
        assert_ne!(status.0.flags & STATUS_ECHO, 0);
        assert_eq!(status.0.echo_us, 1000);
        assert_eq!(r.stats().nacks_sent, 1);
    }

    #[test]
    fn a_covering_peer_nack_suppresses_and_unicast_nacks_go_to_the_sender() {
        for unicast in [false, true] {
            let t0 = Instant::now();
            let mut r = Receiver::new(ReceiverConfig {
                id: 6,
                nack_unicast: unicast,
                ..ReceiverConfig::default()
            });
            for p in first_pass(Mode::Hybrid) {
                if let Ok(Repr::Data(d)) = Repr::parse(&p)
                    && d.sbn == 3
                    && d.esi < 2
                {
                    continue;
                }
                let _ = r.handle_datagram(t0, &p);
            }
            let _ = r.handle_datagram(t0, &probe(true));
            // Before our backoff runs out, a peer asks for 2 symbols of block 3: covered.
            let peer = NackRepr {
                session: SESSION,
                receiver: 99,
                entries: vec![NackEntry {
                    object: 0,
                    sbn: 3,
                    flags: 0,
                    need: if unicast { 1 } else { 2 },
                    ranges: vec![],
                }],
            };
            let mut b = vec![0; 200];
            let n = peer.write(&mut b).unwrap();
            let _ = r.handle_datagram(t0, &b[..n]);
            let sent = drain(&mut r, t0, Duration::from_millis(20));
            let nacks: Vec<_> = sent
                .iter()
                .filter(|(p, _)| matches!(p, Repr::Nack(_)))
                .collect();
            if unicast {
                // A need of 1 does not cover our 2: we ask, to the sender alone.
                assert_eq!(nacks.len(), 1, "{sent:?}");
                assert_eq!(nacks[0].1, Destination::Sender(SessionId(SESSION)));
            } else {
                assert!(nacks.is_empty(), "{sent:?}");
                assert_eq!(r.stats().nacks_suppressed, 1);
            }
        }
    }

    /// An application that has not consumed block 2 yet (a write queued
    /// behind a slow disk) holds the reported window there, though the
    /// receiver decoded up to block 3: the sender is paced by what was
    /// written. Released, the next STATUS reports the decoder's edge at once.
    #[test]
    fn a_held_window_paces_the_sender_by_what_the_application_consumed() {
        let t0 = Instant::now();
        let mut r = Receiver::new(ReceiverConfig {
            id: 8,
            ..ReceiverConfig::default()
        });
        feed_all_but_block_3(&mut r, t0);
        let _ = r.handle_datagram(t0, &probe(false));
        let windows = |sent: &[(Repr<'static>, Destination)]| -> Vec<(u32, u8)> {
            sent.iter()
                .filter_map(|(p, _)| match p {
                    Repr::Status(s) => Some(s.window),
                    _ => None,
                })
                .collect()
        };
        r.hold_window(SessionId(SESSION), Some((groupcast::ObjectId(0), 2)));
        let held = windows(&drain(&mut r, t0, Duration::from_millis(5)));
        assert_eq!(held, [(0, 2)]);
        // A hold beyond the decoder's edge reports the edge: never forward.
        r.hold_window(SessionId(SESSION), Some((groupcast::ObjectId(0), 9)));
        let t1 = t0 + Duration::from_secs(1);
        let _ = r.handle_datagram(t1, &probe(false));
        assert_eq!(
            windows(&drain(&mut r, t1, Duration::from_millis(5))),
            [(0, 3)]
        );
        // Released after a hold: a STATUS is due without waiting for a PROBE.
        r.hold_window(SessionId(SESSION), Some((groupcast::ObjectId(0), 1)));
        let t2 = t1 + Duration::from_secs(1);
        let _ = r.handle_datagram(t2, &probe(false));
        assert_eq!(
            windows(&drain(&mut r, t2, Duration::from_millis(5))),
            [(0, 1)]
        );
        r.hold_window(SessionId(SESSION), None);
        let t3 = t2 + Duration::from_secs(1);
        assert_eq!(
            windows(&drain(&mut r, t3, Duration::from_millis(5))),
            [(0, 3)]
        );
    }

    /// PROBEs of sessions that send nothing, from a spoofed source, draw no
    /// reply at all; a session that sends DATA gets one packet with nothing
    /// new per DATA or OBJECT_INFO heard, however many PROBEs it sends
    /// (protocol.md §13.5).
    #[test]
    fn probes_alone_draw_no_reply_and_replies_follow_the_data() {
        let t0 = Instant::now();
        let mut r = Receiver::new(ReceiverConfig {
            id: 3,
            max_sessions: 64,
            ..ReceiverConfig::default()
        });
        let mut buf = vec![0u8; 1232];
        let mut sent = 0;
        let mut t = t0;
        for i in 0..1200u64 {
            let _ = r.handle_datagram(t, &probe_of(1000 + i % 300, i));
            r.handle_timeout(t);
            while r.poll_transmit(t, &mut buf).is_some() {
                sent += 1;
            }
            t += Duration::from_millis(10);
        }
        assert_eq!(sent, 0, "replies to PROBEs alone");
        assert!(r.stats().status_withheld > 0);
        // A session that sent three DATA, then PROBEs every 10 ms for 12 s:
        // the first STATUS says where it is, then one more per DATA heard.
        let data = first_pass(Mode::Hybrid);
        let mut k = 0;
        for p in &data {
            if matches!(Repr::parse(p), Ok(Repr::Data(_))) && k < 3 {
                let _ = r.handle_datagram(t, p);
                k += 1;
            }
        }
        let mut statuses = 0;
        for i in 0..1200u64 {
            let _ = r.handle_datagram(t, &probe_of(SESSION, 5000 + i));
            r.handle_timeout(t);
            while let Some((n, to)) = r.poll_transmit(t, &mut buf) {
                assert_eq!(to, Destination::Sender(SessionId(SESSION)));
                assert!(matches!(Repr::parse(&buf[..n]), Ok(Repr::Status(_))));
                statuses += 1;
            }
            t += Duration::from_millis(10);
        }
        // Two to start with (DATA came before the first PROBE), then only a
        // keep-alive a second: the PROBEs after earned nothing.
        let keepalives = (12 * Duration::from_secs(1).as_nanos()
            / groupcast::proto::KEEPALIVE.as_nanos()) as usize;
        // A quiet sender keeps hearing its receiver (else it would time it
        // out, and a quiet feed would end unconfirmed).
        assert!(
            (keepalives..=2 + keepalives + 1).contains(&statuses),
            "{statuses} STATUS for three DATA and 1200 PROBEs over 12 s"
        );
        // The whole object: its window then follows the PROBEs' Objects,
        // which a forger sets. A window moved by a PROBE field is no news of
        // the receiver's: it spends credit too.
        for p in &data {
            let _ = r.handle_datagram(t, p);
        }
        let mut statuses = 0;
        for i in 0..1200u32 {
            let b = probe_with(|p| {
                p.timestamp_us = 20_000 + i as u64;
                p.objects = 2 + i;
            });
            let _ = r.handle_datagram(t, &b);
            r.handle_timeout(t);
            while r.poll_transmit(t, &mut buf).is_some() {
                statuses += 1;
            }
            t += Duration::from_millis(10);
        }
        let earned = data.len().min(64) + 3 + keepalives + 1;
        assert!(statuses <= earned, "{statuses} STATUS for 1200 PROBEs");
    }

    /// A forger that completes an id of a session first (it reads the
    /// session off the wire) cannot make the real object under that id a
    /// silent duplicate: the real OBJECT_INFO names another hash, the
    /// receiver says so (`FailReason::Conflict`, once), refuses it
    /// (`info_mismatch`), and never reports the session complete.
    #[test]
    fn a_second_object_under_a_completed_id_is_a_conflict() {
        let sized = |content: u8, len: usize| {
            let mut s = Sender::new(SenderConfig {
                session: SessionId(SESSION),
                mode: Mode::Hybrid,
                max_datagram: 144,
                block_symbols: 10,
                rounds: Rounds::Fixed(1),
                ..SenderConfig::default()
            })
            .unwrap();
            s.add_object(vec![content; len], "o").unwrap();
            let now = Instant::now();
            let mut buf = vec![0u8; 144];
            std::iter::from_fn(|| s.poll_transmit(now, &mut buf).map(|n| buf[..n].to_vec()))
                .collect::<Vec<_>>()
        };
        let datagrams = |content: u8| sized(content, 500);
        let t0 = Instant::now();
        let mut r = Receiver::new(ReceiverConfig::default());
        for p in datagrams(0xf0) {
            let _ = r.handle_datagram(t0, &p);
        }
        let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, groupcast::ReceiverEvent::ObjectComplete { .. }))
        );
        // The real object 0 comes, and again.
        for _ in 0..2 {
            for p in datagrams(0x11) {
                let _ = r.handle_datagram(t0, &p);
            }
        }
        let conflicts: Vec<_> = std::iter::from_fn(|| r.poll_event())
            .filter(|e| {
                matches!(
                    e,
                    groupcast::ReceiverEvent::ObjectFailed {
                        reason: groupcast::FailReason::Conflict,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(conflicts.len(), 1, "said once");
        assert!(r.stats().rejected(groupcast::RejectReason::InfoMismatch) >= 1);
        // Its PROBEs draw STATUS, never COMPLETE.
        let _ = r.handle_datagram(t0, &probe(true));
        for (p, _) in drain(&mut r, t0, Duration::from_millis(100)) {
            if let Repr::Status(st) = p {
                assert_eq!(st.flags & STATUS_COMPLETE, 0, "{st:?}");
            }
        }
        assert!(r.stats().status_sent > 0);
        // Its OBJECT_INFO lost, the real object still shows by its DATA: an
        // OTI other than the completed object's.
        let mut r = Receiver::new(ReceiverConfig::default());
        for p in datagrams(0xf0) {
            let _ = r.handle_datagram(t0, &p);
        }
        while r.poll_event().is_some() {}
        for p in sized(0x11, 700) {
            if matches!(Repr::parse(&p), Ok(Repr::Data(_))) {
                let _ = r.handle_datagram(t0, &p);
            }
        }
        let conflicts = std::iter::from_fn(|| r.poll_event())
            .filter(|e| {
                matches!(
                    e,
                    groupcast::ReceiverEvent::ObjectFailed {
                        reason: groupcast::FailReason::Conflict,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(conflicts, 1, "by its DATA, once");
    }

    /// A PROBE that says the session has no object this receiver completed
    /// well before it contradicts it (an END a forger completed first under
    /// the session's id, and the publisher's PROBEs still count fewer
    /// objects): a conflict. Within the grace, it is a PROBE sent before the
    /// object and overtaken by its DATA: nothing.
    #[test]
    fn a_probe_counting_fewer_objects_than_completed_is_a_conflict() {
        let t0 = Instant::now();
        let mut r = Receiver::new(ReceiverConfig::default());
        let _ = r.handle_datagram(t0, &probe(false));
        for p in first_pass(Mode::Hybrid) {
            let _ = r.handle_datagram(t0, &p);
        }
        assert_eq!(r.stats().objects_completed, 1);
        let fewer = |ts: u64| {
            probe_with(|p| {
                p.timestamp_us = ts;
                p.objects = 0;
            })
        };
        let conflicts = |r: &mut Receiver| {
            std::iter::from_fn(|| r.poll_event())
                .filter(|e| {
                    matches!(
                        e,
                        groupcast::ReceiverEvent::ObjectFailed {
                            reason: groupcast::FailReason::Conflict,
                            ..
                        }
                    )
                })
                .count()
        };
        conflicts(&mut r);
        let _ = r.handle_datagram(t0 + Duration::from_millis(50), &fewer(2000));
        assert_eq!(conflicts(&mut r), 0, "within the grace");
        let late = t0 + groupcast::proto::CONTRADICTION_GRACE;
        let _ = r.handle_datagram(late, &fewer(3000));
        assert_eq!(conflicts(&mut r), 1);
        let _ = r.handle_datagram(late, &fewer(4000));
        assert_eq!(conflicts(&mut r), 0, "said once");
    }

    /// A receiver a PROBE does not sample stays silent unless it has a
    /// reason the PROBE names: its window behind the Limit (protocol.md
    /// §13.3, "Who reports"). It then reports once, after its delay, and a
    /// sampled PROBE draws its routine STATUS again.
    #[test]
    fn a_receiver_not_sampled_reports_only_when_it_lags_the_limit() {
        use groupcast::wire::feedback::{PROBE_LIMIT, sampled};
        let t0 = Instant::now();
        let id = 42;
        let mut r = Receiver::new(ReceiverConfig {
            id,
            ..ReceiverConfig::default()
        });
        feed_all_but_block_3(&mut r, t0);
        let asked = |ts: u64, sample: u8, limit: Option<(u32, u8)>| {
            assert!(sample == 0 || !sampled(id, ts, sample));
            probe_with(|p| {
                p.timestamp_us = ts;
                p.ask.sample = sample;
                p.ask.limit = limit;
                p.flags = if limit.is_some() { PROBE_LIMIT } else { 0 };
            })
        };
        let statuses = |r: &mut Receiver, at: Instant| {
            drain(r, at, Duration::from_millis(100))
                .into_iter()
                .filter_map(|(p, _)| match p {
                    Repr::Status(s) => Some(s),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        // Not sampled, no Limit: silent. A Limit at or before its window
        // (block 3): silent.
        let mut at = t0;
        for (ts, limit) in [(1000, None), (2000, Some((0, 2))), (3000, Some((0, 3)))] {
            at += Duration::from_millis(200);
            let _ = r.handle_datagram(at, &asked(ts, 32, limit));
            assert!(statuses(&mut r, at).is_empty(), "limit {limit:?}");
        }
        assert_eq!(r.stats().status_sent, 0);
        // Behind the Limit: one STATUS, after its delay, saying where.
        at += Duration::from_millis(200);
        let _ = r.handle_datagram(at, &asked(4000, 32, Some((0, 5))));
        let lagging = statuses(&mut r, at);
        assert_eq!(lagging.len(), 1, "{lagging:?}");
        assert_eq!((lagging[0].window, lagging[0].echo_us), ((0, 3), 4000));
        assert_eq!(r.stats().status_unasked, 1);
        // Sampled: the routine STATUS.
        at += Duration::from_millis(200);
        let _ = r.handle_datagram(at, &asked(5000, 0, None));
        assert_eq!(statuses(&mut r, at).len(), 1);
        assert_eq!(r.stats().status_unasked, 1);
    }

    /// A forger reads the session off the group and PROBEs it every
    /// millisecond, asking every receiver (Sample 0), naming a Limit past
    /// every window and a Loss of 0, so that each receiver has a reason to
    /// report at every PROBE: STATUS still costs the credit the sender's
    /// own DATA earned (protocol.md §13.5), so two seconds of it draw no
    /// more than that credit and the keep-alives, and no NACK at all for a
    /// block not behind the sender's progress.
    #[test]
    fn forged_probes_asking_everyone_draw_no_more_status_than_data_earned() {
        use groupcast::wire::feedback::PROBE_LIMIT;
        let t0 = Instant::now();
        let mut r = Receiver::new(ReceiverConfig {
            id: 7,
            ..ReceiverConfig::default()
        });
        feed_all_but_block_3(&mut r, t0);
        let mut buf = vec![0u8; 1232];
        let (mut status, mut nacks) = (0, 0);
        for ms in 0..2000u64 {
            let at = t0 + Duration::from_millis(ms);
            let forged = probe_with(|p| {
                p.timestamp_us = 10_000 + ms;
                p.ask.sample = 0;
                p.ask.limit = Some((0, 19));
                p.ask.loss = 0;
                p.flags = PROBE_LIMIT;
                p.group_log2 = 17;
            });
            let _ = r.handle_datagram(at, &forged);
            r.handle_timeout(at);
            while let Some((n, _)) = r.poll_transmit(at, &mut buf) {
                match Repr::parse(&buf[..n]) {
                    Ok(Repr::Status(_)) => status += 1,
                    Ok(Repr::Nack(_)) => nacks += 1,
                    _ => {}
                }
            }
        }
        // 64 replies of credit at most, and a keep-alive a second.
        assert!(status <= 64 + 2, "{status} STATUS: {:?}", r.stats());
        assert_eq!(nacks, 0, "block 3 is ahead of the forged progress point");
    }

    #[test]
    fn completion_is_reported_three_times() {
        let t0 = Instant::now();
        let mut r = Receiver::new(ReceiverConfig::default());
        let _ = r.handle_datagram(t0, &probe(false));
        for p in first_pass(Mode::Hybrid) {
            let _ = r.handle_datagram(t0, &p);
        }
        // The sender's own first PROBEs sample a few receivers at most
        // (protocol.md §13.4, "Group size"); this one asks everyone.
        let _ = r.handle_datagram(t0, &probe(false));
        let sent = drain(&mut r, t0, Duration::from_millis(5));
        let complete = sent
            .iter()
            .filter(|(p, _)| matches!(p, Repr::Status(s) if s.flags & STATUS_COMPLETE != 0))
            .count();
        assert_eq!(complete, 3, "{sent:?}");
    }
}

fn info_packet(session: u64, object: u32, oti: Oti, hash: [u8; 32], name: &str) -> Vec<u8> {
    let info = Repr::ObjectInfo(InfoRepr {
        session,
        object,
        fec: FecId::RaptorQ,
        oti,
        hash,
        name,
    });
    let mut buf = vec![0; info.buffer_len()];
    info.emit(&mut buf).unwrap();
    buf
}

#[test]
fn the_largest_blocks_the_format_allows_are_refused_and_buffers_stay_bounded() {
    // One block of K'max symbols of the largest T: 3.7 GB, within 4 GiB.
    let oti = Oti::for_object(56_403 * 65_480, 65_480, 56_403, 4).unwrap();
    let config = ReceiverConfig::default();
    let mut r = Receiver::new(config.clone());
    let now = Instant::now();
    let _ = r.handle_datagram(now, &forged_data(oti, 1));
    let _ = r.handle_datagram(now, &info_packet(9, 2, oti, [0; 32], "x"));
    assert_eq!(r.stats().rejected(RejectReason::BlockTooLarge), 2);
    assert_eq!(r.objects_in_progress(), 0);
    // Blocks just under the cap, over many objects: the reserve of the blocks
    // in flight keeps what is buffered under the documented bound.
    let oti = Oti::for_object(60 << 20, 60_000, 1_048, 4).unwrap();
    for object in 0..16 {
        for sbn in 0..oti.source_blocks().min(4) {
            let symbol = vec![object as u8; 60_000];
            for esi in [0, 1, 2, 1200] {
                let repr = Repr::Data(DataRepr {
                    session: 9,
                    object,
                    fec: FecId::RaptorQ,
                    oti,
                    sbn: sbn as u8,
                    esi,
                    symbol: &symbol,
                });
                let mut buf = vec![0; repr.buffer_len()];
                repr.emit(&mut buf).unwrap();
                let _ = r.handle_datagram(now, &buf);
            }
        }
    }
    assert!(r.stats().buffer_full > 0);
    assert!(
        r.stats().peak_buffered_bytes <= config.worst_case_buffer(),
        "{} > {}",
        r.stats().peak_buffered_bytes,
        config.worst_case_buffer()
    );
}

#[test]
fn a_pinned_receiver_takes_only_its_manifest_then_only_what_it_lists() {
    use groupcast::{Admission, BoundObject};
    let manifest = object(700, 1);
    let file = object(9_000, 2);
    let real = transfer(10, &[(&manifest, ".m"), (&file, "f")], 2);
    let forged_manifest = object(700, 3);
    let forged = transfer(11, &[(&forged_manifest, ".m"), (&file, "f")], 1);
    let mut r = Receiver::new(ReceiverConfig {
        admission: Admission::Manifest {
            expect: Some(*blake3::hash(&manifest).as_bytes()),
            max_size: 1 << 20,
        },
        ..ReceiverConfig::default()
    });
    let done = receive(&mut r, forged.iter().cloned());
    assert!(done.is_empty());
    assert!(r.stats().rejected(RejectReason::WrongTransfer) > 0);
    assert!(r.stats().awaiting_manifest > 0);
    let done = receive(&mut r, real.iter().cloned());
    assert_eq!(done.len(), 1, "only the manifest completes before binding");
    assert_eq!(done[0].0, (SessionId(10), ObjectId(0)));
    assert_eq!(done[0].2, manifest);
    r.bind(
        SessionId(10),
        [BoundObject {
            object: ObjectId(1),
            size: file.len() as u64,
            hash: *blake3::hash(&file).as_bytes(),
            name: "f".into(),
            hash_offset: None,
        }],
    );
    // A forged OBJECT_INFO for the listed object, and an unlisted object, are refused.
    let oti = Oti::for_object(file.len() as u64, 256, 40, 4).unwrap();
    let _ = r.handle_datagram(Instant::now(), &info_packet(10, 1, oti, [1; 32], "f"));
    assert_eq!(r.stats().rejected(RejectReason::ManifestMismatch), 1);
    let unexpected = r.stats().rejected(RejectReason::UnexpectedObject);
    let _ = r.handle_datagram(Instant::now(), &info_packet(10, 2, oti, [1; 32], "g"));
    let done = receive(&mut r, forged.iter().cloned().chain(real.iter().cloned()));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, (SessionId(10), ObjectId(1)));
    assert_eq!(done[0].2, file);
    assert!(r.stats().rejected(RejectReason::UnexpectedObject) > unexpected);
    assert!(r.stats().rejected(RejectReason::ForeignSession) >= forged.len() as u64);
}

#[test]
fn candidate_manifests_beyond_the_limit_evict_the_oldest() {
    use groupcast::Admission;
    let mut r = Receiver::new(ReceiverConfig {
        admission: Admission::Manifest {
            expect: None,
            max_size: 1 << 20,
        },
        max_sessions: 2,
        ..ReceiverConfig::default()
    });
    let oti = Oti::for_object(4_000, 1000, 100, 4).unwrap();
    let now = Instant::now();
    for session in 1..=3 {
        let _ = r.handle_datagram(now, &info_packet(session, 0, oti, [0; 32], ".m"));
    }
    assert_eq!(r.objects_in_progress(), 2);
    assert_eq!(r.stats().candidates_evicted, 1);
    let evicted = std::iter::from_fn(|| r.poll_event()).any(|e| {
        matches!(
            e,
            ReceiverEvent::ObjectFailed {
                session: SessionId(1),
                reason: FailReason::Evicted,
                ..
            }
        )
    });
    assert!(evicted);
    // Objects other than the manifest, and manifests that are too large, are refused.
    let _ = r.handle_datagram(now, &info_packet(4, 1, oti, [0; 32], "x"));
    let big = Oti::for_object(2 << 20, 1000, 100, 4).unwrap();
    let _ = r.handle_datagram(now, &info_packet(4, 0, big, [0; 32], ".m"));
    assert_eq!(r.stats().awaiting_manifest, 1);
    assert_eq!(r.stats().rejected(RejectReason::ObjectTooLarge), 1);
}

/// A receiver of session 10 that has the OBJECT_INFO and a few symbols of a
/// 9,000-byte object: the object is known, its blocks lack.
fn lacking_receiver() -> (Receiver, Instant) {
    let file = object(9_000, 5);
    let packets = transfer(10, &[(&file, "f")], 1);
    let mut r = Receiver::new(ReceiverConfig {
        id: 1,
        ..ReceiverConfig::default()
    });
    let t0 = Instant::now();
    for p in &packets[..4] {
        let _ = r.handle_datagram(t0, p);
    }
    (r, t0)
}

/// A hybrid PROBE of session 10 at `ts`: 1 object, 4 DATA sent, a GRTT of
/// 10 ms, a group of 8, hop limit 1; the callers change what they test.
fn probe_of_session_10(ts: u64) -> groupcast::wire::ProbeRepr {
    groupcast::wire::ProbeRepr {
        session: 10,
        timestamp_us: ts,
        sent: 4,
        grtt_us: 10_000,
        objects: 1,
        progress: (0, 0),
        mode: groupcast::wire::WireMode::Hybrid,
        flags: 0,
        group_log2: 3,
        hops: 1,
        retained: 0,
        ask: Default::default(),
    }
}

/// `p` as a datagram.
fn emit_probe(p: groupcast::wire::ProbeRepr) -> Vec<u8> {
    let repr = Repr::Probe(p);
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf
}

/// A hybrid PROBE of session 10 after its first pass (END), at `ts`.
fn end_probe(ts: u64, grtt_us: u32, group_log2: u8) -> Vec<u8> {
    emit_probe(groupcast::wire::ProbeRepr {
        grtt_us,
        progress: (1, 0),
        flags: groupcast::wire::feedback::PROBE_END,
        group_log2,
        ..probe_of_session_10(ts)
    })
}

/// Fresh repair that leaves a block short ends the holdoff a peer's NACK
/// set, and the receiver asks for the rest in the next round by itself: no
/// PROBE needed, and within the first backoff rather than after the
/// holdoff and a PROBE (protocol.md §13.5, "Suppression").
#[test]
fn what_repair_leaves_is_asked_for_in_the_next_round() {
    use groupcast::wire::{NackEntry, NackRepr};
    let (mut r, t0) = lacking_receiver();
    let file = object(9_000, 5);
    let packets = transfer(10, &[(&file, "f")], 1);
    let repair = packets[4..]
        .iter()
        .find(|p| matches!(Repr::parse(p), Ok(Repr::Data(d)) if d.object == 0 && d.sbn == 0))
        .expect("more DATA of block 0");
    // After the first pass, a GRTT of 10 ms and a group of 1024: backoffs
    // of up to 6 GRTTs.
    let _ = r.handle_datagram(t0, &end_probe(1, 10_000, 10));
    // A peer asks at once for more than we lack: we are held off.
    let peer = Repr::Nack(NackRepr {
        session: 10,
        receiver: 2,
        entries: vec![NackEntry {
            object: 0,
            sbn: 0,
            flags: 0,
            need: 40,
            ranges: vec![],
        }],
    });
    let mut buf = vec![0; peer.buffer_len()];
    peer.emit(&mut buf).unwrap();
    let _ = r.handle_datagram(t0, &buf);
    assert_eq!(r.stats().nacks_suppressed, 1, "{:?}", r.stats());
    let mut out = vec![0u8; 1232];
    while r.poll_transmit(t0, &mut out).is_some() {}
    // Its repair comes 25 ms later, one symbol: still short. No PROBE
    // comes from here on.
    let t1 = t0 + Duration::from_millis(25);
    let _ = r.handle_datagram(t1, repair);
    assert!(
        r.objects_in_progress() == 1,
        "one symbol completed the block"
    );
    let mut asked = None;
    for i in 1..=40u32 {
        let t = t1 + Duration::from_millis(5) * i;
        r.handle_timeout(t);
        while let Some((_, to)) = r.poll_transmit(t, &mut out) {
            if to == groupcast::Destination::Feedback && asked.is_none() {
                asked = Some(t - t1);
            }
        }
    }
    // Half a GRTT of holdoff, then a backoff of at most 6 GRTTs.
    let asked = asked.expect("the receiver never asked for what repair left");
    assert!(asked <= Duration::from_millis(70), "asked after {asked:?}");
}

/// A forged NACK can hold a receiver's own NACK back once; if no repair for
/// the block follows, the next peer NACK is doubted and the receiver asks.
#[test]
fn suppression_that_brings_no_repair_is_doubted() {
    use groupcast::wire::{NackEntry, NackRepr};
    let (mut r, t0) = lacking_receiver();
    let emit = |repr: Repr| {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        buf
    };
    let probe = |ts: u64| end_probe(ts, 10_000, 10);
    let forged = emit(Repr::Nack(NackRepr {
        session: 10,
        receiver: 666,
        entries: (0..3)
            .map(|sbn| NackEntry {
                object: 0,
                sbn,
                flags: 0,
                need: 40,
                ranges: vec![],
            })
            .collect(),
    }));
    let mut out = vec![0u8; 1232];
    let mut t = t0;
    let mut sent_after_doubt = 0;
    for round in 0..6 {
        let _ = r.handle_datagram(t, &probe(round * 1000));
        // The forger's NACK comes at once, before any backoff ends.
        let _ = r.handle_datagram(t, &forged);
        for _ in 0..100 {
            t += Duration::from_millis(5);
            r.handle_timeout(t);
            while let Some((_, to)) = r.poll_transmit(t, &mut out) {
                if to == groupcast::Destination::Feedback && round > 0 {
                    sent_after_doubt += 1;
                }
            }
        }
    }
    assert!(r.stats().nacks_suppressed > 0);
    assert!(r.stats().suppressions_doubted > 0);
    assert!(
        sent_after_doubt > 0,
        "forged NACKs silenced the receiver: {:?}",
        r.stats()
    );
}

/// A forger can be first to PROBE a session (it reads the id off the
/// sender's first DATA), claiming a GRTT of hours, and PROBE again between
/// the sender's own PROBEs. NACK timers and holdoffs scale with the GRTT:
/// the receiver must still NACK within the sender's GRTT, not the forger's.
#[test]
fn forged_probes_cannot_push_nacks_out_of_reach() {
    let (mut r, t0) = lacking_receiver();
    let probe = |ts: u64, grtt_us: u32| end_probe(ts, grtt_us, 1);
    let mut out = vec![0u8; 1232];
    let mut t = t0;
    // The forger's PROBE first; its NACK timers are drawn over seconds.
    let _ = r.handle_datagram(t, &probe(1, u32::MAX));
    let mut first_nack = None;
    for i in 0..400u64 {
        // The sender PROBEs every 25 ms with a GRTT of 10 ms; the forger
        // answers each with a burst of its own.
        if i % 5 == 0 {
            let _ = r.handle_datagram(t, &probe(1000 + i, 10_000));
            for _ in 0..8 {
                let _ = r.handle_datagram(t, &probe(1, u32::MAX));
            }
        }
        r.handle_timeout(t);
        while let Some((_, to)) = r.poll_transmit(t, &mut out) {
            if to == groupcast::Destination::Feedback && first_nack.is_none() {
                first_nack = Some(t - t0);
            }
        }
        t += Duration::from_millis(5);
    }
    let first = first_nack.expect("no NACK in 2 s");
    // The backoff of a small group is well under 10 GRTT of the sender's.
    assert!(
        first < Duration::from_millis(200),
        "first NACK after {first:?}"
    );
    assert!(
        r.stats().nacks_sent >= 3,
        "NACKs held off by forged GRTTs: {:?}",
        r.stats()
    );
}

/// A PROBE of session 10 with the sender's DATA counter at `sent`.
fn counter_probe(ts: u64, sent: u64) -> Vec<u8> {
    emit_probe(groupcast::wire::ProbeRepr {
        sent,
        ..probe_of_session_10(ts)
    })
}

/// A forger reads the session off the sender's first DATA and can PROBE it
/// before the sender does, with an impossible DATA counter. That first PROBE
/// must not become the baseline that every later counter is measured from:
/// the sender's own would then seem to run behind it, freezing the loss
/// estimate, and the forger's next ones would pass. A baseline that does go
/// wrong (taken as it came after an outage) heals within two seconds.
#[test]
fn a_forged_first_probe_sets_no_counter_baseline() {
    let (mut r, t0) = lacking_receiver();
    let implausible = |r: &Receiver| r.stats().rejected(RejectReason::Implausible);
    let forged = |ts| counter_probe(ts, 1 << 60);
    let _ = r.handle_datagram(t0, &forged(0));
    assert_eq!(implausible(&r), 1, "the forger's first PROBE was believed");
    let _ = r.handle_datagram(t0 + Duration::from_millis(5), &counter_probe(1, 4));
    let _ = r.handle_datagram(t0 + Duration::from_millis(10), &forged(2));
    assert_eq!(implausible(&r), 2, "{:?}", r.stats());
    // The sender's own counter moves on, and is believed.
    let _ = r.handle_datagram(t0 + Duration::from_millis(30), &counter_probe(3, 60));
    assert_eq!(implausible(&r), 2);

    // Three silent seconds (an outage): the forger's counter is taken as it
    // comes, and the sender's own then runs behind it...
    let t1 = t0 + Duration::from_secs(3);
    let _ = r.handle_datagram(t1, &forged(4));
    assert_eq!(implausible(&r), 2);
    let mut t = t1;
    for ts in 5..100 {
        t += Duration::from_millis(25);
        let _ = r.handle_datagram(t, &counter_probe(ts, 60 + ts));
    }
    // ...until, two seconds on, the baseline is stale and is taken afresh
    // from the sender's own: the forger's counter is refused again.
    let _ = r.handle_datagram(t + Duration::from_millis(1), &forged(100));
    assert_eq!(implausible(&r), 3, "{:?}", r.stats());
}

/// A receiver whose NACKs bring no repair says so once (a stat and
/// a warning); one whose NACKs are answered does not.
#[test]
fn unanswered_nacks_are_noticed_once() {
    let mut out = vec![0u8; 1232];
    let mut run = |answer: bool| {
        let (mut r, t0) = lacking_receiver();
        let repair = transfer(10, &[(&object(9_000, 5), "f")], 1);
        let mut t = t0;
        for round in 0..40u64 {
            let _ = r.handle_datagram(t, &end_probe(round * 50_000, 10_000, 1));
            for _ in 0..10 {
                t += Duration::from_millis(5);
                r.handle_timeout(t);
                while r.poll_transmit(t, &mut out).is_some() {}
            }
            if answer {
                // A DATA packet behind the progress point: repair.
                let _ = r.handle_datagram(t, &repair[5 + round as usize % 4]);
            }
        }
        r.stats().nacks_unanswered
    };
    assert_eq!(run(false), 1, "unanswered NACKs went unnoticed");
    assert_eq!(run(true), 0);
}

/// Decoding left to the driver (`decode_threads` above 0) delivers exactly
/// what inline decoding does: the same blocks at the same offsets, the same
/// verified objects, and no buffered byte left behind. Jobs are run on another
/// thread and handed back late, so that symbols arrive while their block is
/// out; failed attempts (a block of 10 symbols fails often from exactly K)
/// take those symbols and decode later.
#[test]
fn decode_jobs_deliver_what_inline_decoding_does() {
    use groupcast::{DecodedBlock, Mode, Rounds, SenderConfig};
    use groupcast_testing::datagrams_of;
    let data = object(300_000, 9);
    let small = object(1_234, 10);
    let mut retries = 0;
    for seed in 0..12u64 {
        let packets = datagrams_of(
            SenderConfig {
                session: SessionId(77),
                mode: Mode::Carousel,
                max_datagram: 244, // T = 200
                block_symbols: 10,
                interleave: 8,
                repair_overhead: 1.0,
                round_repair: 1.0,
                rounds: Rounds::Fixed(3),
                ..SenderConfig::default()
            },
            &[(&data, "big"), (&small, "small")],
        );
        // A third of the datagrams lost, the same for both receivers.
        let kept: Vec<Vec<u8>> = packets
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !groupcast_fec::splitmix64(seed << 32 | *i as u64).is_multiple_of(3))
            .map(|(_, p)| p)
            .collect();
        let run = |threads: usize| {
            let mut r = Receiver::new(ReceiverConfig {
                decode_threads: threads,
                // Half the blocks are short after the first round.
                max_blocks_in_flight: 1024,
                ..ReceiverConfig::default()
            });
            let now = Instant::now();
            let mut blocks = Vec::new();
            let mut complete = Vec::new();
            let mut out: Vec<groupcast::DecodeJob> = Vec::new();
            let mut take = |r: &mut Receiver| {
                while let Some(e) = r.poll_event() {
                    match e {
                        ReceiverEvent::BlockDecoded {
                            object,
                            offset,
                            data,
                            ..
                        } => blocks.push((object.0, offset, data)),
                        ReceiverEvent::ObjectComplete { object, hash, .. } => {
                            complete.push((object.0, hash))
                        }
                        _ => {}
                    }
                }
            };
            for (i, p) in kept.iter().enumerate() {
                let _ = r.handle_datagram(now, p);
                take(&mut r);
                out.extend(std::iter::from_fn(|| r.poll_decode()));
                // Back 7 datagrams late, solved on another thread.
                if i % 7 == 6 {
                    let solved: Vec<DecodedBlock> = std::thread::spawn({
                        let jobs = std::mem::take(&mut out);
                        move || jobs.into_iter().map(|j| j.run()).collect()
                    })
                    .join()
                    .unwrap();
                    for b in solved {
                        r.handle_decoded(now, b);
                        take(&mut r);
                    }
                }
            }
            for j in std::mem::take(&mut out) {
                r.handle_decoded(now, j.run());
                take(&mut r);
            }
            blocks.sort_by_key(|b| (b.0, b.1));
            complete.sort();
            assert!(r.poll_decode().is_none());
            let s = r.stats();
            (blocks, complete, s.decode_retries, s.buffered_bytes)
        };
        let (inline_blocks, inline_complete, none, inline_left) = run(0);
        let (blocks, complete, n, left) = run(2);
        assert_eq!(none, 0);
        retries += n;
        // (A lost OBJECT_INFO may leave an object decoded but unverified.)
        assert_eq!(left, inline_left, "seed {seed}: bytes still buffered");
        if complete.len() == 2 {
            assert_eq!(left, 0, "seed {seed}: bytes left after both completed");
        }
        assert_eq!(complete, inline_complete, "seed {seed}");
        assert!(blocks == inline_blocks, "seed {seed}: blocks differ");
    }
    assert!(
        retries > 0,
        "no failed attempt in 12 seeds: the retry path went untested"
    );
}

/// PROBE's Retained (protocol.md §13.1): a receiver asks for nothing of the
/// objects before it, which the sender would not answer, and for what it
/// lacks of the others as before.
#[test]
fn a_receiver_asks_for_nothing_the_sender_no_longer_holds() {
    let files: Vec<Vec<u8>> = (0..4).map(|i| object(9_000, 20 + i)).collect();
    let refs: Vec<(&[u8], &str)> = files.iter().map(|f| (f.as_slice(), "")).collect();
    let packets = transfer(10, &refs, 1);
    let asked = |retained: u32| {
        let mut r = Receiver::new(ReceiverConfig {
            id: 1,
            ..ReceiverConfig::default()
        });
        let mut t = Instant::now();
        // Every third datagram lost: every object lacks something.
        for (i, p) in packets.iter().enumerate() {
            if i % 3 != 2 {
                let _ = r.handle_datagram(t, p);
            }
        }
        let mut objects = std::collections::BTreeSet::new();
        let mut out = vec![0u8; 1232];
        for round in 0..20u64 {
            let probe = emit_probe(groupcast::wire::ProbeRepr {
                objects: 4,
                progress: (4, 0),
                flags: groupcast::wire::feedback::PROBE_END,
                retained,
                ask: Default::default(),
                ..probe_of_session_10(round * 50_000)
            });
            let _ = r.handle_datagram(t, &probe);
            for _ in 0..10 {
                t += Duration::from_millis(5);
                r.handle_timeout(t);
                while let Some((n, _)) = r.poll_transmit(t, &mut out) {
                    if let Ok(Repr::Nack(nack)) = Repr::parse(&out[..n]) {
                        objects.extend(nack.entries.iter().map(|e| e.object));
                    }
                }
            }
        }
        objects.into_iter().collect::<Vec<u32>>()
    };
    assert_eq!(asked(0), [0, 1, 2, 3], "everything is asked for");
    assert_eq!(asked(2), [2, 3], "nothing before Retained");
}

/// Drains `r`'s feedback at `t` and returns the loss (ppm) its last STATUS
/// reported, if it sent one.
fn reported_loss(r: &mut Receiver, t: Instant) -> Option<u32> {
    last_status(r, t).map(|s| s.0)
}

/// Drains `r`'s feedback at `t`: the loss (ppm) and flags of its last STATUS.
fn last_status(r: &mut Receiver, t: Instant) -> Option<(u32, u8)> {
    last_report(r, t).map(|s| (s.loss_ppm, s.flags))
}

/// Drains `r`'s feedback at `t`: its last STATUS.
fn last_report(r: &mut Receiver, t: Instant) -> Option<groupcast::wire::StatusRepr> {
    let mut out = vec![0u8; 1232];
    let mut last = None;
    while let Some((n, _)) = r.poll_transmit(t, &mut out) {
        if let Ok(Repr::Status(s)) = Repr::parse(&out[..n]) {
            last = Some(s);
        }
    }
    last
}

/// The DATA datagrams of a transfer of one object of `size` bytes (seed
/// `seed`), and a receiver (id 1) to feed them to.
fn data_and_receiver(size: usize, seed: u64) -> (Vec<Vec<u8>>, Receiver) {
    let file = object(size, seed);
    let data = transfer(10, &[(&file, "f")], 1)
        .into_iter()
        .filter(|p| matches!(Repr::parse(p), Ok(Repr::Data(_))))
        .collect();
    let r = Receiver::new(ReceiverConfig {
        id: 1,
        ..ReceiverConfig::default()
    });
    (data, r)
}

/// The Loss a STATUS reports is the share of the sender's DATA that did not
/// arrive, from the first PROBE sample on: over the session's first 2000
/// DATA a plain ratio. (It was a moving average from 0, which said a quarter
/// of the loss after one sample, and the sender's proactive repair, sized
/// from the reports, fell short while it climbed.)
#[test]
fn reported_loss_is_the_ratio_from_the_first_sample() {
    let (data, mut r) = data_and_receiver(300_000, 5);
    let t0 = Instant::now();
    // The first PROBE sets the counter's baseline: the STATUS after it has
    // no loss measured yet, and says so (no LOSS flag); 100 of the next 125
    // DATA arrive, and the next PROBE's counter says 125 went: 20% lost.
    use groupcast::wire::feedback::STATUS_LOSS;
    let _ = r.handle_datagram(t0, &counter_probe(0, 0));
    // Nothing of the session heard but its PROBE: no reply (protocol.md
    // §13.5); the STATUS it makes due goes with the first DATA.
    assert_eq!(
        last_status(&mut r, t0),
        None,
        "a PROBE alone earns no reply"
    );
    let _ = r.handle_datagram(t0, &data[0]);
    let (loss, flags) = last_status(&mut r, t0).expect("a STATUS after the first DATA");
    assert_eq!((loss, flags & STATUS_LOSS), (0, 0), "nothing measured yet");
    for (i, p) in data.iter().skip(1).take(124).enumerate() {
        if i % 5 != 4 {
            let _ = r.handle_datagram(t0, p);
        }
    }
    let t1 = t0 + Duration::from_millis(25);
    let _ = r.handle_datagram(t1, &counter_probe(1, 125));
    let (loss, flags) = last_status(&mut r, t1).expect("a STATUS after the PROBE");
    assert!(
        (190_000..=210_000).contains(&loss),
        "reported {loss} ppm after one sample of 20% loss"
    );
    assert_eq!(
        flags & STATUS_LOSS,
        0,
        "one sample of 125 DATA: not yet taken as measured"
    );
}

/// After the first 2000 DATA, each PROBE's sample moves the reported loss
/// by a quarter only if it spans 500 DATA or more, and in proportion if
/// fewer: PROBEs close together (a window's end, a flow-blocked pass) give
/// samples of a few packets. (At a full quarter each, one of 11 packets with
/// none lost would take a 10% estimate to 7.5%, and the sender's proactive
/// repair with it: its first windows would go short and their blocks to NACKs.)
#[test]
fn short_loss_samples_move_the_reported_loss_little() {
    let (data, mut r) = data_and_receiver(4_000_000, 6);
    assert!(data.len() >= 3100, "{} DATA", data.len());
    let mut t = Instant::now();
    let _ = r.handle_datagram(t, &counter_probe(0, 0));
    reported_loss(&mut r, t);
    let mut sent = 0u64;
    let mut probe = |r: &mut Receiver, t: &mut Instant, seq: u64, n: u64, lose_every: u64| {
        for (i, p) in data[sent as usize..(sent + n) as usize].iter().enumerate() {
            if lose_every == 0 || i as u64 % lose_every != lose_every - 1 {
                let _ = r.handle_datagram(*t, p);
            }
        }
        sent += n;
        *t += Duration::from_millis(25);
        let _ = r.handle_datagram(*t, &counter_probe(seq, sent));
        let (loss, flags) = last_status(r, *t).expect("a STATUS after the PROBE");
        assert_ne!(
            flags & groupcast::wire::feedback::STATUS_LOSS,
            0,
            "{sent} DATA counted: measured"
        );
        loss
    };
    // 2500 DATA at 10%: past the warm-up, the plain ratio.
    let loss = probe(&mut r, &mut t, 1, 2500, 10);
    assert!((99_000..=101_000).contains(&loss), "{loss} ppm");
    // 11 DATA, none lost: the estimate hardly moves.
    let loss = probe(&mut r, &mut t, 2, 11, 0);
    assert!(loss >= 99_000, "{loss} ppm after a sample of 11 packets");
    // 600 DATA at 20%: a full quarter of the way.
    let loss = probe(&mut r, &mut t, 3, 600, 5);
    assert!((120_000..=130_000).contains(&loss), "{loss} ppm");
}

/// A STATUS's Loss span says how precise its Loss is: over the first 2000
/// DATA the ratio's count, then carried through each moving-average step
/// ((1 − w)²·V + w²/n). The sender takes the noise of a group's largest
/// report off by it.
#[test]
fn the_loss_span_says_how_precise_the_reported_loss_is() {
    let (data, mut r) = data_and_receiver(4_000_000, 6);
    let mut t = Instant::now();
    let span_after = |r: &mut Receiver, t: Instant| {
        last_report(r, t)
            .expect("a STATUS after the PROBE")
            .loss_span
    };
    // The PROBE's reply goes once the session's first DATA is heard.
    let _ = r.handle_datagram(t, &counter_probe(0, 0));
    let _ = r.handle_datagram(t, &data[0]);
    assert_eq!(span_after(&mut r, t), 0, "nothing measured: no span");
    let mut sent = 1usize;
    for (seq, n) in [(1u64, 1199usize), (2, 1300), (3, 600), (4, 600)] {
        for (i, p) in data[sent..sent + n].iter().enumerate() {
            if i % 10 != 9 {
                let _ = r.handle_datagram(t, p);
            }
        }
        sent += n;
        t += Duration::from_millis(25);
        let _ = r.handle_datagram(t, &counter_probe(seq, sent as u64));
        let span = span_after(&mut r, t);
        let want = match seq {
            1 => 1200.0,
            2 => 2500.0,
            3 => 1.0 / (0.5625 / 2500.0 + 0.0625 / 600.0),
            _ => 1.0 / (0.5625 * 0.5625 / 2500.0 + 0.5625 * 0.0625 / 600.0 + 0.0625 / 600.0),
        };
        assert!(
            (span as f64 - want).abs() <= 1.0,
            "after {sent} DATA: span {span}, not {want:.0}"
        );
    }
}

/// DATA the receiver cannot use yet (a file's, while its manifest is still
/// missing) was delivered all the same: the reported loss counts it as
/// received. (It counted as lost: a receiver dropping 25% that waited 260
/// packets for the manifest reported 28%, and the sender sized its
/// proactive repair for that, 1.49 × the file where 1.42 × does.)
#[test]
fn data_awaiting_the_manifest_is_not_reported_as_loss() {
    use groupcast::Admission;
    let manifest = object(1000, 1);
    let file = object(300_000, 2);
    let packets = transfer(10, &[(&manifest, "manifest"), (&file, "f")], 1);
    let data: Vec<&Vec<u8>> = packets
        .iter()
        .filter(|p| matches!(Repr::parse(p), Ok(Repr::Data(d)) if d.object == 1))
        .collect();
    let mut r = Receiver::new(ReceiverConfig {
        id: 1,
        admission: Admission::Manifest {
            expect: None,
            max_size: 1 << 20,
        },
        ..ReceiverConfig::default()
    });
    let t0 = Instant::now();
    let _ = r.handle_datagram(t0, &counter_probe(0, 0));
    reported_loss(&mut r, t0);
    // All of the next 125 DATA arrive, every one the file's.
    for p in data.iter().take(125) {
        let _ = r.handle_datagram(t0, p);
    }
    assert_eq!(r.stats().awaiting_manifest, 125, "{:?}", r.stats());
    let t1 = t0 + Duration::from_millis(25);
    let _ = r.handle_datagram(t1, &counter_probe(1, 125));
    let loss = reported_loss(&mut r, t1).expect("a STATUS after the PROBE");
    assert_eq!(loss, 0, "reported {loss} ppm with nothing lost");
}

/// A NACK that asks only for an OBJECT_INFO (NEED_INFO) is answered by that
/// OBJECT_INFO, not by DATA: a receiver that lost a small object's INFO, got
/// it back through NEED_INFO, and NACKs a block of a later object 300 ms
/// later does not warn that its NACKs go unanswered (were the first NACK's
/// time kept, any later NACK would find it "unanswered" for 300 ms).
#[test]
fn a_need_info_answered_by_its_object_info_is_not_unanswered() {
    let a = object(2_000, 7);
    let b = object(9_000, 8);
    let packets = transfer(10, &[(&a, "a"), (&b, "b")], 1);
    let parsed = |p: &Vec<u8>| match Repr::parse(p) {
        Ok(Repr::ObjectInfo(i)) => Some((true, i.object, 0)),
        Ok(Repr::Data(d)) => Some((false, d.object, d.sbn)),
        _ => None,
    };
    let info_a: Vec<u8> = packets
        .iter()
        .find(|p| parsed(p) == Some((true, 0, 0)))
        .expect("a's OBJECT_INFO")
        .clone();
    let mut r = Receiver::new(ReceiverConfig {
        id: 1,
        ..ReceiverConfig::default()
    });
    let mut out = vec![0u8; 1232];
    let mut t = Instant::now();
    // Object a: every DATA, but its OBJECT_INFO is lost.
    for p in packets
        .iter()
        .filter(|p| matches!(parsed(p), Some((false, 0, _))))
    {
        let _ = r.handle_datagram(t, p);
    }
    let probe = |ts: u64, objects: u32| {
        emit_probe(groupcast::wire::ProbeRepr {
            objects,
            progress: (objects, 0),
            grtt_us: 10_000,
            group_log2: 1,
            ..probe_of_session_10(ts)
        })
    };
    // The sender is past a: the receiver asks for its OBJECT_INFO...
    let _ = r.handle_datagram(t, &probe(0, 1));
    let mut nacks = 0;
    for _ in 0..20 {
        t += Duration::from_millis(5);
        r.handle_timeout(t);
        while r.poll_transmit(t, &mut out).is_some() {}
        nacks = r.stats().nacks_sent;
        if nacks > 0 {
            break;
        }
    }
    assert_eq!(nacks, 1, "no NEED_INFO for a lost OBJECT_INFO");
    // ...and the sender answers with it: a is complete.
    t += Duration::from_millis(2);
    let _ = r.handle_datagram(t, &info_a);
    assert_eq!(r.stats().objects_completed, 1);
    // 300 ms later, object b arrives with a block short, and the receiver
    // NACKs it: its first NACK, answered, is not unanswered.
    t += Duration::from_millis(300);
    let mut dropped = 0;
    for p in packets
        .iter()
        .filter(|p| matches!(parsed(p), Some((_, 1, _))))
    {
        if matches!(parsed(p), Some((false, 1, 0))) && dropped < 10 {
            dropped += 1;
            continue;
        }
        let _ = r.handle_datagram(t, p);
    }
    let _ = r.handle_datagram(t, &probe(300_000, 2));
    for _ in 0..20 {
        t += Duration::from_millis(5);
        r.handle_timeout(t);
        while r.poll_transmit(t, &mut out).is_some() {}
    }
    assert!(r.stats().nacks_sent >= 2, "no NACK for b's short block");
    assert_eq!(
        r.stats().nacks_unanswered,
        0,
        "a NEED_INFO answered by its OBJECT_INFO counted as unanswered"
    );
}

/// With decode workers, a block that holds K symbols waits (ripens) for the
/// few more that make RaptorQ's solve the cheap one (K + H + 3: 1013 for
/// K = 1000) before it goes out to solve; a PROBE, or RIPEN_LIMIT (5 ms)
/// with nothing more, sends it out with what it has.
#[test]
fn solvable_blocks_ripen_for_a_cheaper_solve() {
    use groupcast::{Mode, Rounds, SenderConfig};
    use groupcast_testing::datagrams_of;
    let data = object(200_000, 4);
    let packets = datagrams_of(
        SenderConfig {
            session: SessionId(77),
            mode: Mode::Carousel,
            max_datagram: 244, // T = 200: one block of K = 1000
            block_symbols: 1000,
            repair_overhead: 0.1,
            rounds: Rounds::Fixed(1),
            ..SenderConfig::default()
        },
        &[(&data, "one block")],
    );
    // 60 source symbols lost: the 1000th symbol is the 1060th DATA.
    let kept: Vec<&Vec<u8>> = packets
        .iter()
        .filter(|p| match Repr::parse(p) {
            Ok(Repr::Data(d)) => !(2..62).contains(&d.esi),
            _ => true,
        })
        .collect();
    let receiver = || {
        Receiver::new(ReceiverConfig {
            decode_threads: 1,
            ripen: true,
            ..ReceiverConfig::default()
        })
    };
    let now = Instant::now();
    // Feeds datagrams until `symbols` are held; says whether a job is out.
    let feed = |r: &mut Receiver, symbols: u64| {
        for p in &kept {
            if r.stats().symbols_accepted == symbols {
                break;
            }
            let _ = r.handle_datagram(now, p);
        }
        assert_eq!(r.stats().symbols_accepted, symbols);
        r.poll_decode()
    };

    // Held at K and up to K + 12; out at K + 13, and it decodes.
    let mut r = receiver();
    assert!(feed(&mut r, 1000).is_none(), "solvable, held back");
    let due = r.poll_timeout().expect("a deadline for the held block");
    assert!(due <= now + Duration::from_millis(5), "{due:?}");
    assert!(feed(&mut r, 1012).is_none(), "still held at K + 12");
    let job = feed(&mut r, 1013).expect("out at K + 13");
    r.handle_decoded(now, job.run());
    let mut got = None;
    while let Some(e) = r.poll_event() {
        if let ReceiverEvent::BlockDecoded { data, .. } = e {
            got = Some(data);
        }
    }
    assert_eq!(got.as_deref(), Some(&data[..]));

    // A PROBE ends the wait: the block goes out with its K symbols.
    let mut r = receiver();
    assert!(feed(&mut r, 1000).is_none());
    let _ = r.handle_datagram(
        now,
        &emit_probe(groupcast::wire::ProbeRepr {
            session: 77,
            ..probe_of_session_10(1)
        }),
    );
    assert!(r.poll_decode().is_some(), "out after a PROBE");

    // So does the deadline, with nothing more arriving.
    let mut r = receiver();
    assert!(feed(&mut r, 1005).is_none());
    r.handle_timeout(now + Duration::from_millis(4));
    assert!(r.poll_decode().is_none(), "held before its deadline");
    let due = r.poll_timeout().unwrap();
    r.handle_timeout(due);
    assert!(r.poll_decode().is_some(), "out at its deadline");
}

/// A bound part of a file (protocol.md §11.1) is verified as the subtree it
/// is at its offset: its chaining value there, which its OBJECT_INFO and
/// manifest line carry, completes it; the same bytes bound at another
/// offset fail their hash and are never handed out whole.
#[test]
fn a_bound_part_verifies_as_its_subtree_at_its_offset() {
    use groupcast::proto::part_cv;
    use groupcast::{BoundObject, FailReason, Rounds, SenderConfig};
    let part = object(150_000, 7);
    let base = 1u64 << 20;
    let cv = part_cv(base, &part).unwrap();
    let packets = || {
        let mut s = groupcast::Sender::new(SenderConfig {
            session: SessionId(12),
            max_datagram: 1200,
            block_symbols: 40,
            repair_overhead: 0.2,
            rounds: Rounds::Fixed(2),
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object_hashed(part.clone(), cv, "big").unwrap();
        groupcast_testing::drain(&mut s, Instant::now())
    };
    let bound = |offset: u64| BoundObject {
        object: ObjectId(0),
        size: part.len() as u64,
        hash: cv,
        name: "big".into(),
        hash_offset: Some(offset),
    };
    let mut r = Receiver::new(ReceiverConfig::default());
    r.bind(SessionId(12), [bound(base)]);
    let done = receive(&mut r, packets());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].2, part);
    // Bound at another offset, the same bytes are not that part.
    let mut r = Receiver::new(ReceiverConfig::default());
    r.bind(SessionId(12), [bound(2 * base)]);
    let mut failed = false;
    for p in packets() {
        let _ = r.handle_datagram(Instant::now(), &p);
        while let Some(e) = r.poll_event() {
            assert!(!matches!(e, ReceiverEvent::ObjectComplete { .. }));
            failed |= matches!(
                e,
                ReceiverEvent::ObjectFailed {
                    reason: FailReason::HashMismatch,
                    ..
                }
            );
        }
    }
    assert!(failed);
    // An offset no subtree can start at (off a 1 KiB chunk) is not bound at
    // all: its packets are refused, and nothing reaches blake3's hazmat.
    let mut r = Receiver::new(ReceiverConfig::default());
    r.bind(SessionId(12), [bound(base + 1)]);
    assert!(receive(&mut r, packets()).is_empty());
    assert!(r.stats().rejected(RejectReason::UnexpectedObject) > 0);
}

/// A block out for solving keeps its object from going idle, however long
/// the solve takes (a slow codec): the object completes when the result
/// comes back, after `idle_timeout` has passed several times over.
#[test]
fn an_object_whose_block_is_being_solved_never_goes_idle() {
    use groupcast::{Mode, Rounds, SenderConfig};
    use groupcast_testing::datagrams_of;
    let data = object(200_000, 5);
    let packets = datagrams_of(
        SenderConfig {
            session: SessionId(78),
            mode: Mode::Carousel,
            max_datagram: 244,
            block_symbols: 1000,
            repair_overhead: 0.1,
            rounds: Rounds::Fixed(1),
            ..SenderConfig::default()
        },
        &[(&data, "slow")],
    );
    let idle = Duration::from_secs(10);
    let mut r = Receiver::new(ReceiverConfig {
        decode_threads: 1,
        idle_timeout: idle,
        ..ReceiverConfig::default()
    });
    let now = Instant::now();
    for p in &packets {
        if matches!(Repr::parse(p), Ok(Repr::Data(d)) if (2..62).contains(&d.esi)) {
            continue;
        }
        let _ = r.handle_datagram(now, p);
    }
    // A PROBE sends the solvable block out.
    let _ = r.handle_datagram(
        now,
        &emit_probe(groupcast::wire::ProbeRepr {
            session: 78,
            ..probe_of_session_10(1)
        }),
    );
    let job = r.poll_decode().expect("the block is out to solve");
    let late = now + idle * 5;
    for t in 1..=5 {
        r.handle_timeout(now + idle * t);
    }
    while let Some(e) = r.poll_event() {
        assert!(
            !matches!(e, ReceiverEvent::ObjectFailed { .. }),
            "given up while its block was being solved: {e:?}"
        );
    }
    r.handle_decoded(late, job.run());
    let mut complete = false;
    while let Some(e) = r.poll_event() {
        complete |= matches!(e, ReceiverEvent::ObjectComplete { .. });
    }
    assert!(complete, "{:?}", r.stats());
}

/// Where feedback goes: the receiver remembers the source of each
/// session's accepted datagrams, and sends its STATUS there alone
/// (protocol.md §12); the PROBEs size its NACKs' hop limit (§13.5).
mod addresses {
    use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
    use std::time::{Duration, Instant};

    use groupcast::proto::MAX_FEEDBACK_HOPS;
    use groupcast::wire::{NackEntry, NackRepr, ProbeRepr, Repr};
    use groupcast::{Receiver, Transmit, TransmitTo};

    use super::{emit_probe, end_probe, lacking_receiver, object, probe_of_session_10, transfer};

    /// Port `port` of the documentation prefix's host `host`.
    fn addr(host: u16, port: u16) -> SocketAddr {
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, host);
        SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))
    }

    /// The sender of session 10.
    fn sender() -> SocketAddr {
        addr(1, 5000)
    }

    /// A receiver that took the first DATA of session 10 from [`sender`]:
    /// its STATUS has somewhere to go once a PROBE asks for it.
    fn addressed_receiver() -> (Receiver, Instant) {
        let file = object(9_000, 5);
        let packets = transfer(10, &[(&file, "f")], 1);
        let mut r = Receiver::new(groupcast::ReceiverConfig {
            id: 1,
            ..groupcast::ReceiverConfig::default()
        });
        let t0 = Instant::now();
        for p in &packets[..4] {
            let taken = r.handle(t0, sender(), Some(64), p).expect("DATA taken");
            assert!(taken.from_sender);
        }
        (r, t0)
    }

    /// Everything the receiver sends from `t` for `horizon`, datagram and
    /// transmit, after `each` every millisecond.
    fn drain(
        r: &mut Receiver,
        t: Instant,
        horizon: Duration,
        mut each: impl FnMut(&mut Receiver, Instant),
    ) -> Vec<(Repr<'static>, Transmit)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1232];
        let mut now = t;
        while now <= t + horizon {
            each(r, now);
            r.handle_timeout(now);
            while let Some(tx) = r.poll_transmit_to(now, &mut buf) {
                let bytes: &'static [u8] = Box::leak(buf[..tx.len].to_vec().into_boxed_slice());
                out.push((Repr::parse(bytes).unwrap(), tx));
            }
            now += Duration::from_millis(1);
        }
        out
    }

    /// A PROBE of a session nobody sends, announcing `hops`.
    fn made_up_probe(session: u64, hops: u8) -> Vec<u8> {
        emit_probe(ProbeRepr {
            session,
            hops,
            ..probe_of_session_10(1)
        })
    }

    /// The STATUS of a session goes to the address its sender's accepted
    /// datagrams came from; another receiver's NACK (which may not aim
    /// it) and other sessions' datagrams do not move it.
    #[test]
    fn status_goes_where_the_sessions_datagrams_came_from() {
        let (mut r, t0) = addressed_receiver();
        r.handle(t0, sender(), Some(64), &end_probe(1, 10_000, 1))
            .unwrap();
        // Another receiver's NACK of the session from elsewhere, every
        // millisecond, and DATA of another session from a third address.
        let nack = NackRepr {
            session: 10,
            receiver: 99,
            entries: vec![NackEntry {
                object: 0,
                sbn: 0,
                flags: 0,
                need: 1,
                ranges: Vec::new(),
            }],
        };
        let mut nack_bytes = vec![0u8; 256];
        let n = nack.write(&mut nack_bytes).unwrap();
        nack_bytes.truncate(n);
        let other = transfer(11, &[(&object(9_000, 6), "g")], 1);
        let mut i = 0;
        let out = drain(&mut r, t0, Duration::from_millis(1500), |r, t| {
            let peer = r.handle(t, addr(2, 6000), Some(64), &nack_bytes);
            assert!(peer.is_ok_and(|a| !a.from_sender), "{peer:?}");
            if i < other.len() {
                let _ = r.handle(t, addr(3, 7000), Some(64), &other[i]);
            }
            i += 1;
        });
        let statuses: Vec<_> = out
            .iter()
            .filter(|(p, _)| matches!(p, Repr::Status(_)))
            .collect();
        assert!(!statuses.is_empty(), "no STATUS: {:?}", r.stats());
        for (_, tx) in &statuses {
            assert_eq!(tx.destination, TransmitTo::Addr(sender()));
            assert_eq!(tx.hop_limit, None, "unicast goes with the system's");
        }
        assert_eq!(r.stats().feedback_unaddressed, 0);
    }

    /// Without an accepted datagram of the session from its sender, its
    /// STATUS goes nowhere: dropped, and counted.
    #[test]
    fn status_of_a_session_with_no_address_is_dropped() {
        let (mut r, t0) = lacking_receiver();
        let _ = r.handle_datagram(t0, &end_probe(1, 10_000, 1));
        let out = drain(&mut r, t0, Duration::from_millis(300), |_, _| {});
        assert!(
            out.iter()
                .all(|(_, tx)| tx.destination == TransmitTo::Feedback)
        );
        assert!(r.stats().status_sent > 0);
        assert_eq!(r.stats().feedback_unaddressed, r.stats().status_sent);
    }

    /// PROBEs of made-up sessions from a spoofed address, between the
    /// sender's own datagrams, make no datagram to that address.
    #[test]
    fn probes_of_made_up_sessions_from_a_spoofed_address_draw_nothing_there() {
        let (mut r, t0) = addressed_receiver();
        let spoofed = addr(666, 53);
        let mut i = 0u64;
        let out = drain(&mut r, t0, Duration::from_millis(500), |r, t| {
            if i.is_multiple_of(25) {
                let p = end_probe(1000 + i, 10_000, 1);
                r.handle(t, sender(), Some(64), &p).unwrap();
            }
            let taken = r.handle(t, spoofed, Some(64), &made_up_probe(5000 + i % 40, 1));
            assert!(taken.is_ok_and(|a| a.from_sender));
            i += 1;
        });
        assert!(
            out.iter().any(|(p, tx)| matches!(p, Repr::Status(_))
                && tx.destination == TransmitTo::Addr(sender())),
            "the sender heard no STATUS"
        );
        for (p, tx) in &out {
            assert_ne!(tx.destination, TransmitTo::Addr(spoofed), "{p:?}");
        }
    }

    /// Datagrams of many made-up sessions, each from its own address,
    /// cannot push out the address of the session the receiver answers.
    #[test]
    fn made_up_sessions_cannot_evict_an_answered_session() {
        let (mut r, t0) = addressed_receiver();
        r.handle(t0, sender(), Some(64), &end_probe(1, 10_000, 1))
            .unwrap();
        for s in 0..200u16 {
            let p = made_up_probe(3000 + u64::from(s), 1);
            let taken = r.handle(t0, addr(1000 + s, 53), Some(64), &p).unwrap();
            assert!(taken.from_sender);
        }
        assert!(r.answers(groupcast::SessionId(10)));
        let out = drain(&mut r, t0, Duration::from_millis(300), |_, _| {});
        assert!(
            out.iter().any(|(p, tx)| matches!(p, Repr::Status(_))
                && tx.destination == TransmitTo::Addr(sender())),
            "the answered session's STATUS went nowhere: {:?}",
            r.stats()
        );
        assert_eq!(r.stats().feedback_unaddressed, 0);
        for (p, tx) in &out {
            assert!(
                [TransmitTo::Feedback, TransmitTo::Addr(sender())].contains(&tx.destination),
                "{p:?} to {:?}",
                tx.destination
            );
        }
    }

    /// The NACKs' hop limit: the PROBE's Hops less its arrival hop limit,
    /// plus 1, within 1..=MAX_FEEDBACK_HOPS; without an arrival hop limit,
    /// the PROBE's Hops.
    #[test]
    fn nack_hop_limit_follows_the_probes() {
        for (announced, arrived, want) in [
            (1, Some(1), 1),
            (5, Some(3), 3),
            (64, Some(60), 5),
            (255, Some(1), MAX_FEEDBACK_HOPS),
            (1, Some(64), 1),
            (4, None, 4),
            (200, None, MAX_FEEDBACK_HOPS),
        ] {
            let (mut r, t0) = addressed_receiver();
            let probe = emit_probe(ProbeRepr {
                hops: announced,
                progress: (1, 0),
                flags: groupcast::wire::feedback::PROBE_END,
                group_log2: 1,
                ..probe_of_session_10(1)
            });
            r.handle(t0, sender(), arrived, &probe).unwrap();
            let out = drain(&mut r, t0, Duration::from_millis(300), |_, _| {});
            let nacks: Vec<_> = out
                .iter()
                .filter(|(p, _)| matches!(p, Repr::Nack(_)))
                .collect();
            assert!(!nacks.is_empty(), "no NACK: {:?}", r.stats());
            for (_, tx) in nacks {
                assert_eq!(tx.destination, TransmitTo::Feedback);
                assert_eq!(
                    tx.hop_limit,
                    Some(want),
                    "Hops {announced}, arrived with {arrived:?}"
                );
            }
        }
    }

    /// A PROBE handed in without a source sets no hop limit: NACKs say none.
    #[test]
    fn nacks_have_no_hop_limit_until_a_probe_comes_through_handle() {
        let (mut r, t0) = addressed_receiver();
        let _ = r.handle_datagram(t0, &end_probe(1, 10_000, 1));
        let out = drain(&mut r, t0, Duration::from_millis(300), |_, _| {});
        assert!(out.iter().any(|(p, _)| matches!(p, Repr::Nack(_))));
        for (_, tx) in &out {
            assert_eq!(tx.hop_limit, None);
        }
    }
}
