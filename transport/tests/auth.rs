//! Source authentication end to end in the sans-IO core (protocol.md §15):
//! a signing sender, receivers with and without its key, and a forger on
//! the group who reads every packet but holds another key.

use std::time::{Duration, Instant};

use groupcast::proto::auth::{AUTH_MAX_DELAY, HOLD_FOR, Signer, SigningKey};
use groupcast::wire::{DataRepr, Packet, Repr};
use groupcast::{
    Receiver, ReceiverConfig, ReceiverEvent, RejectReason, Rounds, Sender, SenderConfig,
};

const SIZE: usize = 60_000;

fn object() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 7 % 251) as u8).collect()
}

/// Every datagram a signing carousel sends (one round and 20% repair), and
/// when: AUTHs come as they fall due, the last ones after the data.
fn signed_wire(key: &SigningKey, t0: Instant) -> Vec<(Instant, Vec<u8>)> {
    let mut s = Sender::new(SenderConfig {
        mode: groupcast::Mode::Carousel,
        rounds: Rounds::Fixed(1),
        repair_overhead: 0.2,
        max_datagram: 600,
        block_symbols: 20,
        rate: None,
        signing_key: Some(key.clone()),
        ..SenderConfig::default()
    })
    .unwrap();
    s.add_object(object(), "o").unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 600];
    let mut t = t0;
    while !s.is_finished() {
        while let Some(n) = s.poll_transmit(t, &mut buf) {
            out.push((t, buf[..n].to_vec()));
        }
        t += Duration::from_millis(1);
        assert!(t < t0 + Duration::from_secs(5), "never finished");
    }
    assert!(s.stats().auth_packets_sent > 0);
    out
}

fn is_auth(d: &[u8]) -> bool {
    matches!(Repr::parse(d), Ok(Repr::Auth(_)))
}

/// A copy of genuine DATA with its symbol replaced by `fill`, CRC fixed:
/// what a forger on the group sends for the sender's real blocks.
fn forge(d: &[u8], fill: u8) -> Option<Vec<u8>> {
    let Ok(Repr::Data(DataRepr { .. })) = Repr::parse(d) else {
        return None;
    };
    let mut f = d.to_vec();
    let n = f.len();
    // The symbol is what follows the 40-byte DATA header, before the CRC.
    f[40..n - 4].fill(fill);
    Packet::new_unchecked(&mut f[..]).fill_checksum();
    Some(f)
}

struct Outcome {
    data: Vec<u8>,
    complete: bool,
    failed: bool,
    stats: groupcast::ReceiverStats,
}

/// Feeds `wire` to a receiver with `key` (if any), then lets `HOLD_FOR`
/// pass; what it assembled.
fn receive(key: Option<&SigningKey>, wire: &[(Instant, Vec<u8>)]) -> Outcome {
    let mut r = Receiver::new(ReceiverConfig {
        max_datagram: 600,
        sender_keys: key.map(SigningKey::verifying_key).into_iter().collect(),
        ..ReceiverConfig::default()
    });
    let mut out = Outcome {
        data: vec![0; SIZE],
        complete: false,
        failed: false,
        stats: Default::default(),
    };
    let mut last = wire[0].0;
    for (t, d) in wire {
        let _ = r.handle_datagram(*t, d);
        last = *t;
        while let Some(e) = r.poll_event() {
            match e {
                ReceiverEvent::BlockDecoded { offset, data, .. } => {
                    out.data[offset as usize..offset as usize + data.len()].copy_from_slice(&data)
                }
                ReceiverEvent::ObjectComplete { .. } => out.complete = true,
                ReceiverEvent::ObjectFailed { .. } => out.failed = true,
                _ => {}
            }
        }
    }
    r.handle_timeout(last + HOLD_FOR);
    out.stats = r.stats().clone();
    out
}

/// The forger's traffic, woven into the sender's: before each genuine DATA
/// of the first pass, a forged copy (its symbol zeroed) goes first, so that
/// a receiver that takes what comes first decodes garbage; and an AUTH
/// signed with the forger's own key that lists its forgeries.
fn attacked(wire: &[(Instant, Vec<u8>)]) -> (Vec<(Instant, Vec<u8>)>, u64) {
    let mut out = Vec::new();
    let mut forged = 0;
    let mut forger = Signer::new(SigningKey::from_bytes(&[66; 32]), 1, 600).unwrap();
    let mut buf = vec![0u8; 600];
    for (t, d) in wire {
        if let Some(f) = forge(d, 0) {
            forger.sent(*t, &f);
            out.push((*t, f));
            forged += 1;
        }
        if let Some(n) = forger.poll_auth(*t, &mut buf) {
            out.push((*t, buf[..n].to_vec()));
        }
        out.push((*t, d.clone()));
    }
    (out, forged)
}

#[test]
fn a_keyed_receiver_takes_only_the_signers_datagrams_and_counts_the_rest() {
    let t0 = Instant::now();
    let key = SigningKey::from_bytes(&[1; 32]);
    let wire = signed_wire(&key, t0);
    let (hostile, forged) = attacked(&wire);
    let auths = hostile.iter().filter(|(_, d)| is_auth(d)).count() as u64;
    let ours = wire.iter().filter(|(_, d)| is_auth(d)).count() as u64;

    let keyed = receive(Some(&key), &hostile);
    assert!(keyed.complete && !keyed.failed, "{:?}", keyed.stats);
    assert_eq!(keyed.data, object());
    let a = keyed.stats.auth;
    // Each of the sender's AUTHs goes twice: verified once.
    assert_eq!(a.auths_verified + a.auths_repeated, ours);
    assert_eq!(a.auths_verified, ours / 2);
    assert_eq!(a.auths_refused, auths - ours, "the forger's AUTHs");
    assert_eq!(
        keyed.stats.rejected(RejectReason::BadSignature),
        auths - ours
    );
    // Every forgery waited and was let go, unvouched; none reached a
    // decoder (the object would have failed its hash). Copies (a forgery
    // that came out as another, OBJECT_INFO repeated) count once.
    let distinct = |auth: bool, v: &[(Instant, Vec<u8>)]| {
        let set: std::collections::HashSet<&Vec<u8>> = v
            .iter()
            .filter(|(_, d)| is_auth(d) == auth)
            .map(|(_, d)| d)
            .collect();
        set.len() as u64
    };
    let genuine = distinct(false, &wire);
    let all = distinct(false, &hostile);
    assert_eq!(a.unvouched, all - genuine);
    assert_eq!((a.held, a.held_bytes), (0, 0));
    assert_eq!(a.vouched, genuine);
    let copies = hostile.iter().filter(|(_, d)| !is_auth(d)).count() as u64 - all;
    assert_eq!(a.replayed, copies);
    assert!(all - genuine > 0 && forged >= all - genuine);
}

/// The same traffic without the key: the forged symbols come first and
/// reach the decoder, so the object fails. This is what the key prevents.
#[test]
fn without_the_key_the_same_forgeries_pollute_the_decode() {
    let t0 = Instant::now();
    let key = SigningKey::from_bytes(&[1; 32]);
    let (hostile, _) = attacked(&signed_wire(&key, t0));
    let open = receive(None, &hostile);
    assert!(
        open.failed || open.data != object(),
        "forgeries had no effect: the test proves nothing"
    );
    assert!(open.stats.auth_ignored > 0);
}

#[test]
fn a_receiver_with_the_wrong_key_takes_nothing() {
    let t0 = Instant::now();
    let key = SigningKey::from_bytes(&[1; 32]);
    let wire = signed_wire(&key, t0);
    let wrong = SigningKey::from_bytes(&[2; 32]);
    let r = receive(Some(&wrong), &wire);
    assert!(!r.complete);
    assert_eq!(r.data, vec![0; SIZE], "nothing decoded");
    let a = r.stats.auth;
    assert_eq!((a.auths_verified, a.vouched), (0, 0));
    assert!(a.auths_refused > 0 && a.unvouched > 0, "{a:?}");
}

/// Half the AUTH packets lost cost nothing: each AUTH goes twice.
#[test]
fn every_other_auth_lost_loses_no_datagram() {
    let t0 = Instant::now();
    let key = SigningKey::from_bytes(&[1; 32]);
    let mut n = 0;
    let wire: Vec<_> = signed_wire(&key, t0)
        .into_iter()
        .filter(|(_, d)| {
            let auth = is_auth(d);
            n += auth as u32;
            !auth || n % 2 == 0
        })
        .collect();
    let r = receive(Some(&key), &wire);
    assert!(r.complete, "{:?}", r.stats.auth);
    assert_eq!(r.stats.auth.unvouched, 0);
    assert!(AUTH_MAX_DELAY < HOLD_FOR);
}

/// Copies of the sender's genuine AUTHs and PROBEs, sent from a spoofed
/// address with hop limit 255, teach the keyed receiver nothing: its STATUS
/// goes only where the sender's own datagrams came from, and its NACKs keep
/// the hop limit the sender's PROBEs called for.
#[test]
fn replayed_auths_and_probes_from_elsewhere_move_no_address_or_hop_limit() {
    use groupcast::{Mode, TransmitTo};
    use std::net::SocketAddr;
    let key = SigningKey::from_bytes(&[1; 32]);
    let real: SocketAddr = "[2001:db8::1]:4242".parse().unwrap();
    let spoof: SocketAddr = "[2001:db8::66]:4242".parse().unwrap();
    let mut s = Sender::new(SenderConfig {
        mode: Mode::Hybrid,
        max_datagram: 600,
        block_symbols: 20,
        rate: Some(2_000_000),
        hops: 8,
        signing_key: Some(key.clone()),
        ..SenderConfig::default()
    })
    .unwrap();
    s.add_object(object(), "o").unwrap();
    let mut r = Receiver::new(ReceiverConfig {
        max_datagram: 600,
        sender_keys: vec![key.verifying_key()],
        ..ReceiverConfig::default()
    });
    let (mut buf, mut out) = (vec![0u8; 600], vec![0u8; 600]);
    let t0 = Instant::now();
    let mut t = t0;
    let (mut statuses, mut nack_hops) = (0, Vec::new());
    let mut sent = 0u32;
    while !s.is_finished() && t < t0 + Duration::from_secs(20) {
        while let Some(n) = s.poll_transmit(t, &mut buf) {
            let d = buf[..n].to_vec();
            sent += 1;
            // Every fourth DATA lost, more than the first pass's repair
            // covers: the receiver NACKs.
            if sent.is_multiple_of(4) && matches!(Repr::parse(&d), Ok(Repr::Data(_))) {
                continue;
            }
            // Seven hops left of the eight the sender set: two routers.
            let _ = r.handle(t, real, Some(7), &d);
            if matches!(Repr::parse(&d), Ok(Repr::Auth(_) | Repr::Probe(_))) {
                let _ = r.handle(t, spoof, Some(255), &d);
            }
        }
        r.handle_timeout(t);
        while let Some(tx) = r.poll_transmit_to(t, &mut out) {
            match tx.destination {
                TransmitTo::Addr(a) => {
                    assert_eq!(a, real, "STATUS to a spoofed address");
                    statuses += 1;
                    s.handle_feedback(t, Some(a.ip()), &out[..tx.len]);
                }
                TransmitTo::Feedback => nack_hops.push(tx.hop_limit),
            }
        }
        while r.poll_event().is_some() {}
        t += Duration::from_millis(1);
    }
    assert!(s.is_finished(), "{:?}", s.stats());
    assert!(statuses > 0);
    assert!(
        !nack_hops.is_empty(),
        "no NACK: the hop limit is not checked"
    );
    assert!(nack_hops.iter().all(|h| *h == Some(2)), "{nack_hops:?}");
    assert!(r.stats().auth.replayed > 0 && r.stats().auth.auths_repeated > 0);
}

/// Replay across sessions (protocol.md §15.2): every AUTH carries the
/// sender's wall clock when it signed. A receiver whose clock says the
/// session was signed within `AUTH_MAX_AGE` takes it; one that hears it
/// replayed ten minutes later refuses every AUTH as stale, and takes
/// nothing.
#[test]
fn a_signed_session_replayed_later_is_stale() {
    use groupcast::proto::auth::{AUTH_MAX_AGE, WallClock};
    let t0 = Instant::now();
    let key = SigningKey::from_bytes(&[1; 32]);
    let unix = Duration::from_secs(1_800_000_000);
    let mut s = Sender::new(SenderConfig {
        mode: groupcast::Mode::Carousel,
        rounds: Rounds::Fixed(1),
        repair_overhead: 0.2,
        max_datagram: 600,
        block_symbols: 20,
        rate: None,
        signing_key: Some(key.clone()),
        wall_clock: Some(WallClock { at: t0, unix }),
        ..SenderConfig::default()
    })
    .unwrap();
    s.add_object(object(), "o").unwrap();
    let mut wire = Vec::new();
    let mut buf = vec![0u8; 600];
    let mut t = t0;
    while !s.is_finished() {
        while let Some(n) = s.poll_transmit(t, &mut buf) {
            wire.push(buf[..n].to_vec());
        }
        t += Duration::from_millis(1);
    }
    let hear = |late: Duration| {
        let mut r = Receiver::new(ReceiverConfig {
            max_datagram: 600,
            sender_keys: vec![key.verifying_key()],
            // The receiver's clock: `late` after the sender's.
            wall_clock: Some(WallClock {
                at: t0,
                unix: unix + late,
            }),
            ..ReceiverConfig::default()
        });
        let mut complete = false;
        for d in &wire {
            let _ = r.handle_datagram(t0, d);
            while let Some(e) = r.poll_event() {
                complete |= matches!(e, ReceiverEvent::ObjectComplete { .. });
            }
        }
        (complete, r.stats().auth)
    };
    let (complete, a) = hear(Duration::from_secs(10));
    assert!(complete && a.auths_untimely == 0, "{a:?}");
    let (complete, a) = hear(AUTH_MAX_AGE + Duration::from_secs(480));
    assert!(!complete, "a replayed session was taken: {a:?}");
    assert_eq!(a.auths_verified, 0);
    assert!(
        a.auths_untimely > 0 && a.auths_untimely == a.auths_stale,
        "{a:?}"
    );
    // A clock as far behind refuses it too: signed "in the future".
    let mut r = Receiver::new(ReceiverConfig {
        max_datagram: 600,
        sender_keys: vec![key.verifying_key()],
        wall_clock: Some(WallClock {
            at: t0,
            unix: unix - Duration::from_secs(600),
        }),
        ..ReceiverConfig::default()
    });
    for d in &wire {
        let _ = r.handle_datagram(t0, d);
    }
    assert_eq!(r.stats().auth.auths_verified, 0);
}

/// A receiver given only the key's fingerprint (`recv --sender-key` with 16
/// hex digits) takes the signed transfer, the key read from each AUTH's
/// Key; a fingerprint of another key takes nothing, and verifies nothing.
#[test]
fn a_fingerprint_pins_the_key_the_auths_name() {
    use groupcast::proto::auth::key_fingerprint;
    let t0 = Instant::now();
    let key = SigningKey::from_bytes(&[1; 32]);
    let wire = signed_wire(&key, t0);
    let hear = |fingerprint| {
        let mut r = Receiver::new(ReceiverConfig {
            max_datagram: 600,
            sender_fingerprints: vec![fingerprint],
            ..ReceiverConfig::default()
        });
        let mut complete = false;
        for (t, d) in &wire {
            let _ = r.handle_datagram(*t, d);
            while let Some(e) = r.poll_event() {
                complete |= matches!(e, ReceiverEvent::ObjectComplete { .. });
            }
        }
        (complete, r.stats().auth)
    };
    let (complete, a) = hear(key_fingerprint(&key.verifying_key()));
    assert!(complete && a.auths_verified > 0, "{a:?}");
    let other = SigningKey::from_bytes(&[2; 32]).verifying_key();
    let (complete, a) = hear(key_fingerprint(&other));
    assert!(!complete);
    assert_eq!(a.auths_verified, 0);
    assert!(a.auths_refused > 0, "{a:?}");
}
