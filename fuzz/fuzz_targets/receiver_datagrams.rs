//! Feeds a Receiver, with tight limits, an arbitrary sequence of operations:
//! real packets of a real transfer (in any order, repeated or not), mutated
//! copies of them (bit flips, truncation, extension, CRC resealed or not),
//! arbitrary bytes, and jumps of the clock with timeouts. It must never panic,
//! its stats must stay consistent and within the configured memory bound, and
//! whatever it completes must be byte-identical to the source.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use groupcast::{Mode, Receiver, ReceiverConfig, ReceiverEvent, Rounds, SenderConfig};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Real(u16),
    Flip {
        packet: u16,
        at: u16,
        bits: u8,
    },
    Cut {
        packet: u16,
        len: u16,
    },
    Extend {
        packet: u16,
        tail: Vec<u8>,
    },
    Reseal {
        packet: u16,
        at: u16,
        value: u8,
    },
    Raw(Vec<u8>),
    Advance(u16),
    Timeout,
    /// Bind to the real session's objects 1.. (as a file receiver does once
    /// its manifest verified); with a number, as parts of a file at that many
    /// KiB (protocol.md §11.1), each hashed to its chaining value there (a
    /// line no subtree can be is not bound).
    Bind(Option<u16>),
}

struct Transfer {
    objects: Vec<Vec<u8>>,
    packets: Vec<Vec<u8>>,
}

fn transfer() -> &'static Transfer {
    static T: OnceLock<Transfer> = OnceLock::new();
    T.get_or_init(|| {
        let objects: Vec<Vec<u8>> = vec![
            (0..3000u32).map(|i| (i * 7 % 251) as u8).collect(),
            (0..700u32).map(|i| (i * 13 % 241) as u8).collect(),
            Vec::new(),
        ];
        let names: Vec<String> = (0..objects.len()).map(|i| format!("o{i}")).collect();
        let named: Vec<(&[u8], &str)> = objects
            .iter()
            .zip(&names)
            .map(|(o, n)| (&o[..], n.as_str()))
            .collect();
        let mut packets = Vec::new();
        // A carousel's two rounds and a hybrid sender's first pass (as far
        // as it goes before any STATUS), through the shared test driver.
        for mode in [Mode::Carousel, Mode::Hybrid] {
            let config = SenderConfig {
                max_datagram: 200,
                block_symbols: 8,
                interleave: 2,
                repair_overhead: 0.5,
                round_repair: 0.5,
                rounds: Rounds::Fixed(2),
                mode,
                ..SenderConfig::default()
            };
            packets.extend(groupcast_testing::datagrams_of(config, &named));
        }
        packets.truncate(4001);
        Transfer { objects, packets }
    })
}

fn reseal(p: &mut [u8]) {
    if p.len() >= 4 {
        let n = p.len() - 4;
        let crc = crc32fast::hash(&p[..n]);
        p[n..].copy_from_slice(&crc.to_be_bytes());
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let t = transfer();
    // Half the runs start as a file receiver does: manifests only, pinned to
    // the real object 0's hash.
    let admission = if ops.len() % 2 == 1 {
        groupcast::Admission::Manifest {
            expect: Some(*blake3::hash(&transfer().objects[0]).as_bytes()),
            max_size: 1 << 16,
        }
    } else {
        groupcast::Admission::Open
    };
    let config = ReceiverConfig {
        admission,
        max_buffered_bytes: 1 << 20,
        max_block_bytes: 1 << 18,
        max_object_size: 1 << 20,
        max_objects: 4,
        max_blocks_in_flight: 4,
        max_sessions: 2,
        ..ReceiverConfig::default()
    };
    let mut r = Receiver::new(config.clone());
    let t0 = Instant::now();
    let mut now = t0;
    let mut fed = 0u64;
    let mut out = [0u8; 1232];
    let pick = |i: u16| &t.packets[i as usize % t.packets.len()];
    let mut delivered: Vec<Vec<u8>> = t.objects.iter().map(|o| vec![0u8; o.len()]).collect();
    let mut bound = false;
    let mut part_at: Option<u64> = None;
    for op in ops.iter().take(2000) {
        let datagram: Option<Vec<u8>> = match op {
            Op::Real(i) => Some(pick(*i).clone()),
            Op::Flip { packet, at, bits } => {
                let mut p = pick(*packet).clone();
                let i = *at as usize % p.len();
                p[i] ^= bits | 1;
                Some(p)
            }
            Op::Cut { packet, len } => {
                let p = pick(*packet);
                Some(p[..*len as usize % (p.len() + 1)].to_vec())
            }
            Op::Extend { packet, tail } => {
                let mut p = pick(*packet).clone();
                p.extend_from_slice(tail);
                Some(p)
            }
            Op::Reseal { packet, at, value } => {
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
            Op::Bind(kib) => {
                bound = true;
                part_at = kib.map(|k| k as u64 * 1024);
                r.bind(
                    groupcast::SessionId(1),
                    t.objects
                        .iter()
                        .enumerate()
                        .skip(1)
                        .map(|(i, o)| groupcast::BoundObject {
                            object: groupcast::ObjectId(i as u32),
                            size: o.len() as u64,
                            hash: part_at
                                .and_then(|at| groupcast::proto::part_cv(at, o))
                                .unwrap_or(*blake3::hash(o).as_bytes()),
                            name: format!("o{i}"),
                            hash_offset: part_at,
                        }),
                );
                None
            }
        };
        if let Some(d) = datagram {
            // Taken or refused, it must not panic; what it did shows below.
            let _ = r.handle_datagram(now, &d);
            fed += 1;
        }
        while let Some(e) = r.poll_event() {
            match e {
                ReceiverEvent::BlockDecoded {
                    session,
                    object,
                    offset,
                    data,
                    ..
                } => {
                    // Forged sessions may carry anything; only the real
                    // session's (1) deliveries are checked.
                    if session.0 == 1
                        && let Some(d) = delivered.get_mut(object.0 as usize)
                        && let Some(slot) = d.get_mut(offset as usize..offset as usize + data.len())
                    {
                        slot.copy_from_slice(&data);
                    }
                }
                ReceiverEvent::ObjectComplete {
                    session,
                    object,
                    size,
                    hash,
                    ..
                } => {
                    // Once bound, only the listed objects of the bound session complete.
                    if bound {
                        assert_eq!(session.0, 1);
                        assert!(object.0 >= 1 && (object.0 as usize) < t.objects.len());
                        assert_eq!(size, t.objects[object.0 as usize].len() as u64);
                    }
                    // A completed object always matches the hash it was announced
                    // with (or bound with, as a part).
                    if session.0 == 1
                        && let Some(src) = t.objects.get(object.0 as usize)
                        && (*blake3::hash(src).as_bytes() == hash
                            || part_at.and_then(|at| groupcast::proto::part_cv(at, src))
                                == Some(hash))
                    {
                        assert_eq!(&delivered[object.0 as usize], src);
                    }
                }
                _ => {}
            }
        }
        for _ in 0..16 {
            match r.poll_transmit(now, &mut out) {
                Some((len, _)) => assert!(groupcast::wire::Repr::parse(&out[..len]).is_ok()),
                None => break,
            }
        }
    }
    r.handle_timeout(now + Duration::from_secs(3600));
    while r.poll_event().is_some() {}
    let s = r.stats();
    assert_eq!(s.packets_received, fed);
    assert_eq!(
        s.packets_rejected,
        s.rejected_by_reason().map(|(_, c)| c).sum::<u64>()
    );
    assert!(s.peak_buffered_bytes <= config.buffer_bound(u16::MAX, 56_403));
    assert!(s.peak_buffered_bytes <= config.worst_case_buffer());
    assert_eq!(r.objects_in_progress(), 0);
    assert_eq!(s.buffered_bytes, 0);
});
