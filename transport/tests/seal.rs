//! Sealed channels end to end in the sans-IO core (protocol.md §16): a
//! sender and receivers that hold the channel key, receivers that do not,
//! and a forger who holds the channel key but not the signing key.

use std::time::Instant;

use groupcast::proto::auth::{HOLD_FOR, SigningKey};
use groupcast::wire::seal::{ChannelKey, Opener, SEAL_LEN, Sealer};
use groupcast::wire::{DATA_HEADER_LEN, Packet, Repr};
use groupcast::{
    Mode, Receiver, ReceiverConfig, ReceiverEvent, RejectReason, Rounds, Sender, SenderConfig,
    SessionId,
};
use groupcast_testing::{Pair, datagrams_of};

const MARKER: &[u8] = b"PLAINTEXT-MARKER";
const NAME: &str = "secret-name.txt";

fn object() -> Vec<u8> {
    let mut o: Vec<u8> = (0..40_000).map(|i| (i * 7 % 251) as u8).collect();
    for at in (0..o.len() - MARKER.len()).step_by(997) {
        o[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    o
}

fn channel() -> ChannelKey {
    ChannelKey::from_bytes([9; 32])
}

fn carousel(channel_key: Option<ChannelKey>, signing_key: Option<SigningKey>) -> SenderConfig {
    SenderConfig {
        session: SessionId(77),
        mode: Mode::Carousel,
        rounds: Rounds::Fixed(1),
        repair_overhead: 0.2,
        max_datagram: 600,
        block_symbols: 20,
        rate: None,
        channel_key,
        seal_start: Some(u64::MAX - 100),
        signing_key,
        ..SenderConfig::default()
    }
}

fn contains(d: &[u8], needle: &[u8]) -> bool {
    d.windows(needle.len()).any(|w| w == needle)
}

/// What a receiver of `config` makes of `wire`: the bytes of the one object
/// it completed, if any.
fn receive(config: ReceiverConfig, wire: &[Vec<u8>]) -> (Option<Vec<u8>>, Receiver) {
    let mut r = Receiver::new(ReceiverConfig {
        max_datagram: 600,
        ..config
    });
    let t = Instant::now();
    let mut data = vec![0u8; object().len()];
    let mut complete = false;
    for d in wire {
        let _ = r.handle_datagram(t, d);
    }
    r.handle_timeout(t + HOLD_FOR);
    while let Some(e) = r.poll_event() {
        match e {
            ReceiverEvent::BlockDecoded {
                offset, data: b, ..
            } => data[offset as usize..offset as usize + b.len()].copy_from_slice(&b),
            ReceiverEvent::ObjectComplete { .. } => complete = true,
            _ => {}
        }
    }
    (complete.then_some(data), r)
}

#[test]
fn a_sealed_carousel_hides_the_payload_and_the_name_and_a_keyed_receiver_reads_it() {
    let o = object();
    let plain = datagrams_of(carousel(None, None), &[(&o, NAME)]);
    // The control: without a key the marker and the name are on the wire.
    assert!(plain.iter().any(|d| contains(d, MARKER)));
    assert!(plain.iter().any(|d| contains(d, NAME.as_bytes())));

    let sealed = datagrams_of(carousel(Some(channel()), None), &[(&o, NAME)]);
    assert!(sealed.iter().all(|d| d.len() <= 600));
    for d in &sealed {
        assert!(!contains(d, MARKER) && !contains(d, NAME.as_bytes()));
    }
    let (got, r) = receive(
        ReceiverConfig {
            channel_keys: vec![channel()],
            ..ReceiverConfig::default()
        },
        &sealed,
    );
    assert_eq!(got.as_deref(), Some(&o[..]));
    assert_eq!(r.stats().opened, sealed.len() as u64);
    assert_eq!(r.stats().packets_rejected, 0);
}

#[test]
fn without_the_channel_key_or_with_another_nothing_is_taken() {
    let o = object();
    let sealed = datagrams_of(carousel(Some(channel()), None), &[(&o, NAME)]);
    let n = sealed.len() as u64;
    let (got, r) = receive(ReceiverConfig::default(), &sealed);
    assert!(got.is_none());
    assert_eq!(r.stats().rejected(RejectReason::Sealed), n);
    let (got, r) = receive(
        ReceiverConfig {
            channel_keys: vec![ChannelKey::from_bytes([8; 32])],
            ..ReceiverConfig::default()
        },
        &sealed,
    );
    assert!(got.is_none());
    assert_eq!(r.stats().rejected(RejectReason::BadSeal), n);
    // A keyed receiver takes nothing unsealed: a plain carousel of the
    // same object is refused whole.
    let plain = datagrams_of(carousel(None, None), &[(&o, NAME)]);
    let (got, r) = receive(
        ReceiverConfig {
            channel_keys: vec![channel()],
            ..ReceiverConfig::default()
        },
        &plain,
    );
    assert!(got.is_none());
    assert_eq!(
        r.stats().rejected(RejectReason::Unsealed),
        plain.len() as u64
    );
}

/// Hybrid mode with loss: every STATUS and NACK goes sealed, the sender
/// takes them, and refuses feedback that is not sealed under the key.
#[test]
fn feedback_is_sealed_and_the_sender_takes_only_sealed_feedback() {
    let key = channel();
    let receivers = (1..=3)
        .map(|id| ReceiverConfig {
            id,
            channel_keys: vec![key.clone()],
            ..ReceiverConfig::default()
        })
        .collect();
    let mut pair = Pair::with(
        SenderConfig {
            mode: Mode::Hybrid,
            rate: Some(2_000_000),
            channel_key: Some(key.clone()),
            seal_start: Some(1 << 40),
            ..SenderConfig::default()
        },
        receivers,
    )
    .losing(|i, n| (n * 31 + i as u64 * 17) % 100 < 10);
    let o = object();
    pair.sender.add_object(o.clone(), NAME).unwrap();
    // (The sender's first PROBEs sample a few receivers at most: protocol.md
    // §13.4, "Group size".)
    pair.drive(200_000, |p| {
        p.all_have(1) && p.sender.stats().status_received > 0
    });
    for got in &pair.objects {
        assert_eq!(got[0].data, o);
    }
    let s = pair.sender.stats();
    assert!(s.status_received > 0, "{s:?}");
    assert_eq!((s.feedback_unsealed, s.feedback_rejected), (0, 0));

    // Plain feedback, and feedback sealed under another key, is refused.
    let session = SessionId(7);
    let mut sender = Sender::new(SenderConfig {
        session,
        mode: Mode::Hybrid,
        channel_key: Some(key.clone()),
        seal_start: Some(5),
        ..SenderConfig::default()
    })
    .unwrap();
    let now = Instant::now();
    let mut plain = sealed_status(&key, session);
    let n = plain.len();
    let opened = Opener::new(key.clone()).open(&plain).unwrap().unwrap();
    plain = opened;
    assert_eq!(plain.len(), n - SEAL_LEN);
    sender.handle_datagram(now, &plain);
    sender.handle_datagram(
        now,
        &sealed_status(&ChannelKey::from_bytes([1; 32]), session),
    );
    assert_eq!(sender.stats().feedback_unsealed, 2);
    assert_eq!(sender.stats().status_received, 0);
    sender.handle_datagram(now, &sealed_status(&key, session));
    assert_eq!(sender.stats().status_received, 1);
}

/// A STATUS of receiver 5 for `session`, sealed under `key`.
fn sealed_status(key: &ChannelKey, session: SessionId) -> Vec<u8> {
    let st = groupcast::wire::StatusRepr {
        session: session.0,
        receiver: 5,
        echo_us: 0,
        hold_us: 0,
        loss_ppm: 0,
        loss_span: 0,
        rate: 0,
        window: (0, 0),
        flags: groupcast::wire::feedback::STATUS_COMPLETE,
    };
    let mut buf = vec![0u8; 200];
    let n = st.write(&mut buf).unwrap();
    let n = Sealer::new(key.clone()).seal(&mut buf, n).unwrap();
    buf.truncate(n);
    buf
}

/// The forger holds the channel key: it opens the sender's DATA, puts a
/// symbol of its own in, and seals it again under the sender's session, a
/// forgery the seal cannot tell from the real thing. Before each genuine
/// DATA: that forgery, a genuine copy with a bit flipped (no longer opens),
/// and a replay of an earlier genuine datagram.
fn attacked(wire: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut opener = Opener::new(channel());
    let mut forger = Sealer::new(channel());
    let mut out = Vec::new();
    for (i, d) in wire.iter().enumerate() {
        if let Ok(Some(mut plain)) = opener.open(d)
            && matches!(Repr::parse(&plain[..]), Ok(Repr::Data(_)))
        {
            let n = plain.len();
            plain[DATA_HEADER_LEN..n - 4].fill(0);
            Packet::new_unchecked(&mut plain[..]).fill_checksum();
            let mut buf = plain.clone();
            buf.resize(n + SEAL_LEN, 0);
            let sealed = forger.seal(&mut buf, n).unwrap();
            out.push(buf[..sealed].to_vec());
            let mut flipped = d.clone();
            let at = flipped.len() - 10;
            flipped[at] ^= 0x40;
            Packet::new_unchecked(&mut flipped[..]).fill_checksum();
            out.push(flipped);
            if i > 3 {
                out.push(wire[i - 3].clone());
            }
        }
        out.push(d.clone());
    }
    out
}

#[test]
fn a_channel_key_holder_without_the_signing_key_pollutes_no_decode() {
    let o = object();
    let signer = SigningKey::from_bytes(&[3; 32]);
    let wire = datagrams_of(
        carousel(Some(channel()), Some(signer.clone())),
        &[(&o, NAME)],
    );
    let hostile = attacked(&wire);

    // Signed and sealed: byte-identical, every forgery counted by reason,
    // and no unvouched symbol reached a decoder.
    let (got, r) = receive(
        ReceiverConfig {
            channel_keys: vec![channel()],
            sender_keys: vec![signer.verifying_key()],
            ..ReceiverConfig::default()
        },
        &hostile,
    );
    let s = r.stats();
    assert_eq!(got.as_deref(), Some(&o[..]), "{s:?}");
    assert_eq!(s.symbols_unvouched, 0);
    let data = wire
        .iter()
        .filter(|d| Packet::new_unchecked(&d[..]).packet_type() == 1)
        .count() as u64;
    assert!(s.auth.unvouched >= data, "each re-sealed forgery: {s:?}");
    assert!(s.auth.replayed > 0, "{s:?}");
    assert!(s.auth.vouched > 0 && s.auth.auths_verified > 0);

    // Sealed only: the same forgeries open and reach the decoder, and the
    // object is polluted. This is what the signing key adds.
    let (got, r) = receive(
        ReceiverConfig {
            channel_keys: vec![channel()],
            ..ReceiverConfig::default()
        },
        &hostile,
    );
    assert_ne!(got.as_deref(), Some(&o[..]), "the forgery proved nothing");
    assert!(r.stats().rejected(RejectReason::BadSeal) > 0);
}

/// Rotation (docs/security.md, "Rotating keys"): receivers that hold the
/// old and the new keys take a transfer under the old ones, then one from
/// a sender restarted under the new ones, without a restart of their own;
/// their feedback to the new session is sealed under the new key, which is
/// all the new sender holds.
#[test]
fn receivers_given_the_next_keys_follow_a_sender_that_rotates() {
    let (old_seal, new_seal) = (channel(), ChannelKey::from_bytes([10; 32]));
    let (old_sign, new_sign) = (
        SigningKey::from_bytes(&[3; 32]),
        SigningKey::from_bytes(&[4; 32]),
    );
    let o = object();
    let config = ReceiverConfig {
        channel_keys: vec![old_seal.clone(), new_seal.clone()],
        sender_keys: vec![old_sign.verifying_key(), new_sign.verifying_key()],
        ..ReceiverConfig::default()
    };
    // Carousels: one receiver takes the old session, then the new one.
    let old = datagrams_of(
        carousel(Some(old_seal.clone()), Some(old_sign.clone())),
        &[(&o, NAME)],
    );
    let mut new_config = carousel(Some(new_seal.clone()), Some(new_sign.clone()));
    new_config.session = SessionId(78);
    let new = datagrams_of(new_config, &[(&o, NAME)]);
    let mut r = Receiver::new(ReceiverConfig {
        max_datagram: 600,
        ..config.clone()
    });
    let t = Instant::now();
    let mut complete = Vec::new();
    for (i, wire) in [old, new].iter().enumerate() {
        let at = t + HOLD_FOR * 2 * i as u32;
        for d in wire {
            let _ = r.handle_datagram(at, d);
        }
        r.handle_timeout(at + HOLD_FOR);
        while let Some(e) = r.poll_event() {
            if let ReceiverEvent::ObjectComplete { session, .. } = e {
                complete.push(session);
            }
        }
    }
    assert_eq!(complete, [SessionId(77), SessionId(78)], "{:?}", r.stats());
    assert_eq!(r.stats().symbols_unvouched, 0);

    // Hybrid: the new sender holds only the new keys, and hears the
    // receivers' feedback, sealed under the key its datagrams opened with.
    let receivers = (1..=2)
        .map(|id| ReceiverConfig {
            id,
            ..config.clone()
        })
        .collect();
    let mut pair = Pair::with(
        SenderConfig {
            mode: Mode::Hybrid,
            rate: Some(2_000_000),
            channel_key: Some(new_seal),
            seal_start: Some(u64::MAX - 3),
            signing_key: Some(new_sign),
            ..SenderConfig::default()
        },
        receivers,
    )
    .losing(|i, n| (n * 31 + i as u64 * 17) % 100 < 10);
    pair.sender.add_object(o.clone(), NAME).unwrap();
    pair.drive(200_000, |p| {
        p.all_have(1) && p.sender.stats().status_received > 0
    });
    let s = pair.sender.stats();
    assert!(s.status_received > 0, "{s:?}");
    assert_eq!(s.feedback_unsealed, 0, "{s:?}");
    for got in &pair.objects {
        assert_eq!(got[0].data, o);
    }
}

/// A member seals, under the real session, a datagram whose plain length
/// fits the receiver's maximum but whose sealed length does not: it is
/// refused as oversized before it is opened, held or decoded.
#[test]
fn a_sealed_datagram_over_the_limit_is_refused_before_it_is_opened() {
    let signer = SigningKey::from_bytes(&[3; 32]);
    let o = object();
    // Plain DATA of 600 bytes: sealed, 624.
    let plain = datagrams_of(carousel(None, None), &[(&o, NAME)]);
    let mut forger = Sealer::new(channel());
    let forged: Vec<Vec<u8>> = plain
        .iter()
        .map(|d| {
            let mut b = d.clone();
            b.resize(d.len() + SEAL_LEN, 0);
            let n = forger.seal(&mut b, d.len()).unwrap();
            b.truncate(n);
            b
        })
        .collect();
    assert!(forged.iter().any(|d| d.len() > 600));
    let (got, r) = receive(
        ReceiverConfig {
            channel_keys: vec![channel()],
            sender_keys: vec![signer.verifying_key()],
            ..ReceiverConfig::default()
        },
        &forged,
    );
    assert!(got.is_none());
    let s = r.stats();
    assert_eq!((s.opened, s.symbols_unvouched), (0, 0), "{s:?}");
    assert!(s.rejected(RejectReason::Oversized) > 0, "{s:?}");
}
