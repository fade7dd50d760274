//! Feeds a Receiver that holds the sender's public key (protocol.md §15) a
//! signed transfer's real datagrams (AUTH included), in any order, with
//! forged copies (any byte changed, the CRC made good), forged AUTHs and
//! arbitrary bytes, and jumps of the clock. It must never panic, never hold
//! more than its bound while waiting for AUTH, and whatever it delivers of
//! the signed session must be the sender's bytes: no forged symbol may
//! reach a decoder, so no object of the session ever fails its hash or
//! conflicts.
//!
//! Half the inputs run the same over a signed and sealed transfer (§16),
//! with a receiver that holds the channel key too, and a forger that holds
//! it as well: it opens real datagrams, changes a byte, and seals them
//! again, which the seal cannot tell; the signature must.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use groupcast::proto::auth::{MAX_HELD_BYTES, SigningKey};
use groupcast::wire::seal::{ChannelKey, Opener, SEAL_LEN, Sealer};
use groupcast::{FailReason, Mode, Receiver, ReceiverConfig, ReceiverEvent, Rounds, SenderConfig};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Real(u16),
    Forge {
        packet: u16,
        at: u16,
        value: u8,
    },
    Raw(Vec<u8>),
    Advance(u16),
    Timeout,
    /// With the channel key: a real datagram opened, changed, sealed again.
    Reseal {
        packet: u16,
        at: u16,
        value: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    sealed: bool,
    ops: Vec<Op>,
}

struct Transfer {
    key: SigningKey,
    objects: Vec<Vec<u8>>,
    packets: Vec<Vec<u8>>,
}

fn channel_key() -> ChannelKey {
    ChannelKey::from_bytes([6; 32])
}

fn transfer(sealed: bool) -> &'static Transfer {
    static T: [OnceLock<Transfer>; 2] = [OnceLock::new(), OnceLock::new()];
    T[sealed as usize].get_or_init(|| {
        let key = SigningKey::from_bytes(&[5; 32]);
        let objects: Vec<Vec<u8>> = vec![
            (0..3000u32).map(|i| (i * 7 % 251) as u8).collect(),
            (0..700u32).map(|i| (i * 13 % 241) as u8).collect(),
        ];
        let named: Vec<(&[u8], &str)> = objects.iter().map(|o| (&o[..], "o")).collect();
        let config = SenderConfig {
            max_datagram: 200,
            block_symbols: 8,
            interleave: 2,
            repair_overhead: 0.5,
            round_repair: 0.5,
            rounds: Rounds::Fixed(2),
            mode: Mode::Carousel,
            signing_key: Some(key.clone()),
            channel_key: sealed.then(channel_key),
            seal_start: Some(3),
            ..SenderConfig::default()
        };
        let packets = groupcast_testing::datagrams_of(config, &named);
        Transfer {
            key,
            objects,
            packets,
        }
    })
}

fn reseal(p: &mut [u8]) {
    if p.len() >= 4 {
        let n = p.len() - 4;
        let crc = crc32fast::hash(&p[..n]);
        p[n..].copy_from_slice(&crc.to_be_bytes());
    }
}

/// `p` opened with the channel key, byte `at` set to `value`, and sealed
/// again by a forger's own sealer: a datagram the seal takes.
fn reseal_forged(forger: &mut Sealer, p: &[u8], at: u16, value: u8) -> Option<Vec<u8>> {
    let mut plain = Opener::new(channel_key()).open(p).ok()??;
    let i = at as usize % plain.len();
    plain[i] = value;
    reseal(&mut plain);
    let n = plain.len();
    plain.resize(n + SEAL_LEN, 0);
    let sealed = forger.seal(&mut plain, n)?;
    plain.truncate(sealed);
    Some(plain)
}

fuzz_target!(|input: Input| {
    let Input { sealed, ops } = input;
    let t = transfer(sealed);
    let mut r = Receiver::new(ReceiverConfig {
        max_buffered_bytes: 1 << 20,
        max_object_size: 1 << 20,
        max_objects: 4,
        sender_keys: vec![t.key.verifying_key()],
        channel_keys: if sealed {
            vec![channel_key()]
        } else {
            Vec::new()
        },
        ..ReceiverConfig::default()
    });
    let mut forger = Sealer::new(channel_key());
    let mut now = Instant::now();
    let pick = |i: u16| &t.packets[i as usize % t.packets.len()];
    for op in ops.iter().take(3000) {
        let datagram = match op {
            Op::Real(i) => Some(pick(*i).clone()),
            Op::Forge { packet, at, value } => {
                let mut p = pick(*packet).clone();
                let i = *at as usize % p.len();
                p[i] = *value;
                reseal(&mut p);
                Some(p)
            }
            Op::Raw(bytes) => Some(bytes.clone()),
            Op::Advance(ms) => {
                now += Duration::from_millis(*ms as u64);
                None
            }
            Op::Timeout => {
                r.handle_timeout(now);
                None
            }
            Op::Reseal { packet, at, value } => {
                reseal_forged(&mut forger, pick(*packet), *at, *value)
            }
        };
        if let Some(d) = datagram {
            let _ = r.handle_datagram(now, &d);
        }
        assert!(r.stats().auth.held_bytes as usize <= MAX_HELD_BYTES);
        assert_eq!(r.stats().symbols_unvouched, 0);
        while let Some(e) = r.poll_event() {
            match e {
                ReceiverEvent::BlockDecoded {
                    session,
                    object,
                    offset,
                    data,
                    ..
                } => {
                    assert_eq!(session.0, 1, "a session nobody signed");
                    let src = &t.objects[object.0 as usize];
                    assert_eq!(
                        &src[offset as usize..offset as usize + data.len()],
                        &data[..]
                    );
                }
                // Idle is time passing; a hash mismatch or a conflict would
                // be a forgery that reached a decoder or the object table.
                ReceiverEvent::ObjectFailed { reason, .. } => assert!(
                    !matches!(reason, FailReason::HashMismatch | FailReason::Conflict),
                    "a forgery got through: {reason:?}"
                ),
                _ => {}
            }
        }
    }
});
