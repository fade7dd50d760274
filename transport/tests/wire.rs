//! Wire-format tests: byte-exact examples from docs/protocol.md, round trips,
//! and parsing of hostile input.

use groupcast::FecId;
use groupcast::wire::{self, DataRepr, InfoRepr, Repr, WireError};
use groupcast_fec::Oti;
use proptest::prelude::*;

const PROTOCOL_MD: &str = include_str!("../../docs/protocol.md");

/// The 40-byte object used by the examples in protocol.md.
const EXAMPLE_OBJECT: &[u8] = b"groupcast carries this over multicast.\n\n";

fn example_oti() -> Oti {
    Oti::for_object(EXAMPLE_OBJECT.len() as u64, 16, 1000, 4).unwrap()
}

fn example_data() -> DataRepr<'static> {
    DataRepr {
        session: 0x0123_4567_89ab_cdef,
        object: 7,
        fec: FecId::RaptorQ,
        oti: example_oti(),
        sbn: 0,
        esi: 1,
        symbol: &EXAMPLE_OBJECT[16..32],
    }
}

fn example_info() -> InfoRepr<'static> {
    InfoRepr {
        session: 0x0123_4567_89ab_cdef,
        object: 7,
        fec: FecId::RaptorQ,
        oti: example_oti(),
        hash: *blake3::hash(EXAMPLE_OBJECT).as_bytes(),
        name: "hello.txt",
    }
}

fn emit(repr: &Repr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut buf).unwrap();
    assert_eq!(n, repr.buffer_len(), "buffer_len must equal bytes written");
    buf
}

/// The text of the code block that follows `<!-- example: NAME -->` in protocol.md.
fn doc_block(name: &str) -> &'static str {
    let marker = format!("<!-- example: {name} -->");
    let start = PROTOCOL_MD
        .find(&marker)
        .unwrap_or_else(|| panic!("protocol.md has no example {name}"));
    let rest = &PROTOCOL_MD[start + marker.len()..];
    let open = rest.find("```text\n").expect("code block after marker") + 8;
    let close = rest[open..].find("```").expect("closed code block") + open;
    &rest[open..close]
}

/// Extracts the hex dump that follows `<!-- example: NAME -->` in protocol.md.
fn doc_example(name: &str) -> Vec<u8> {
    doc_block(name)
        .lines()
        .flat_map(|line| {
            // Each line is "OFFSET: hex bytes..."; the offset is not data.
            let bytes = line.split_once(':').map_or(line, |(_, b)| b);
            bytes
                .split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).expect("hex byte"))
        })
        .collect()
}

/// Formats bytes the way protocol.md shows them (used to write the doc).
fn hexdump(b: &[u8]) -> String {
    b.chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let hex: Vec<String> = c.iter().map(|x| format!("{x:02x}")).collect();
            format!("{:04x}: {}\n", i * 16, hex.join(" "))
        })
        .collect()
}

#[test]
fn data_example_matches_protocol_md() {
    let bytes = emit(&Repr::Data(example_data()));
    assert_eq!(bytes, doc_example("data"), "emitted:\n{}", hexdump(&bytes));
    assert_eq!(Repr::parse(&bytes).unwrap(), Repr::Data(example_data()));
}

#[test]
fn info_example_matches_protocol_md() {
    let bytes = emit(&Repr::ObjectInfo(example_info()));
    assert_eq!(
        bytes,
        doc_example("object_info"),
        "emitted:\n{}",
        hexdump(&bytes)
    );
    assert_eq!(
        Repr::parse(&bytes).unwrap(),
        Repr::ObjectInfo(example_info())
    );
}

fn example_probe() -> wire::ProbeRepr {
    wire::ProbeRepr {
        session: 0x0123_4567_89ab_cdef,
        timestamp_us: 1_500_000,
        sent: 4242,
        grtt_us: 20_000,
        objects: 2,
        progress: (1, 16),
        mode: wire::WireMode::Hybrid,
        flags: wire::feedback::PROBE_LIMIT,
        group_log2: 10,
        hops: 4,
        retained: 1,
        ask: wire::ReportAsk {
            sample: 8,
            limit: Some((1, 4)),
            loss: 6554,
        },
    }
}

fn example_nack() -> wire::NackRepr {
    wire::NackRepr {
        session: 0x0123_4567_89ab_cdef,
        receiver: 0x1122_3344_5566_7788,
        entries: vec![
            wire::NackEntry {
                object: 1,
                sbn: 3,
                flags: 0,
                need: 5,
                ranges: vec![],
            },
            wire::NackEntry {
                object: 1,
                sbn: 4,
                flags: 0,
                need: 3,
                ranges: vec![(10, 2), (700, 1)],
            },
            wire::NackEntry {
                object: 2,
                sbn: 0,
                flags: 0,
                need: 5,
                ranges: vec![(0, 1), (2, 1), (4, 1), (6, 1), (9, 1)],
            },
        ],
    }
}

fn example_status() -> wire::StatusRepr {
    wire::StatusRepr {
        session: 0x0123_4567_89ab_cdef,
        receiver: 0x1122_3344_5566_7788,
        echo_us: 1_500_000,
        hold_us: 250,
        loss_ppm: 12_500,
        loss_span: 3500,
        rate: 50_000_000,
        window: (1, 2),
        flags: wire::feedback::STATUS_ECHO | wire::feedback::STATUS_LOSS,
    }
}

#[test]
fn feedback_examples_match_protocol_md() {
    for (name, repr) in [
        ("probe", Repr::Probe(example_probe())),
        ("nack", Repr::Nack(example_nack())),
        ("status", Repr::Status(example_status())),
    ] {
        let bytes = emit(&repr);
        assert_eq!(
            bytes,
            doc_example(name),
            "{name} emitted:\n{}",
            hexdump(&bytes)
        );
        assert_eq!(Repr::parse(&bytes).unwrap(), repr);
    }
}

/// AUTH (protocol.md §15.3): the DATA and OBJECT_INFO examples, listed by
/// the signing key whose seed is 32 bytes of 0x42, 20 ms after they went.
#[test]
fn auth_example_matches_protocol_md() {
    use groupcast::proto::auth::{
        AUTH_MAX_DELAY, Gate, Signer, SigningKey, Verifier, datagram_hash,
    };
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let (data, info) = (doc_example("data"), doc_example("object_info"));
    let t = std::time::Instant::now();
    // Signed at 2027-01-15 08:00:00.02 UTC (the clock read 20 ms before).
    let clock = groupcast::proto::auth::WallClock {
        at: t,
        unix: std::time::Duration::from_secs(1_800_000_000),
    };
    let mut signer = Signer::new(key.clone(), 0x0123_4567_89ab_cdef, 1232)
        .unwrap()
        .with_clock(Some(clock));
    signer.sent(t, &data);
    signer.sent(t, &info);
    let mut buf = vec![0u8; 1232];
    assert_eq!(signer.poll_auth(t, &mut buf), None, "not due yet");
    let n = signer.poll_auth(t + AUTH_MAX_DELAY, &mut buf).unwrap();
    let bytes = &buf[..n];
    assert_eq!(bytes, doc_example("auth"), "emitted:\n{}", hexdump(bytes));
    assert_eq!(
        hexdump(key.verifying_key().as_bytes()),
        doc_block("auth_public_key")
    );
    let Ok(Repr::Auth(a)) = Repr::parse(bytes) else {
        panic!("not an AUTH")
    };
    let hashes: Vec<_> = a.each_hash().collect();
    assert_eq!(hashes, [datagram_hash(&data), datagram_hash(&info)]);
    // The receiver's side: both held until the AUTH, then let through.
    let mut v = Verifier::<()>::new(key.verifying_key());
    assert_eq!(v.check(t, &data, ()), Gate::Held);
    assert_eq!(v.check(t, &info, ()), Gate::Held);
    v.on_auth(t, &a).unwrap();
    assert_eq!(v.poll_released(), Some((data, ())));
    assert_eq!(v.poll_released(), Some((info, ())));
}

#[test]
fn sealed_example_matches_protocol_md() {
    use groupcast::wire::seal::{ChannelKey, Opener, SEAL_LEN, Sealer};
    let key = ChannelKey::from_bytes([0x24; 32]);
    let data = doc_example("data");
    let mut buf = data.clone();
    buf.resize(data.len() + SEAL_LEN, 0);
    let n = Sealer::new(key.clone()).seal(&mut buf, data.len()).unwrap();
    let sealed = &buf[..n];
    assert_eq!(
        sealed,
        doc_example("sealed_data"),
        "emitted:\n{}",
        hexdump(sealed)
    );
    // The clear fields are the DATA's; the symbol is not.
    assert_eq!(sealed[16..40], data[16..40]);
    assert_ne!(sealed[40..56], data[40..56]);
    assert_eq!(Repr::parse(sealed), Err(WireError::Sealed));
    assert_eq!(Opener::new(key).open(sealed), Ok(Some(data)));
}

#[test]
fn feedback_packets_refuse_bad_fields() {
    let reseal = |mut b: Vec<u8>| {
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_be_bytes());
        b
    };
    // NACK: a range past 2^24, a zero-length range, a count of entries the
    // body does not hold, and ranges that do not add up to the need.
    let good = emit(&Repr::Nack(example_nack()));
    let mut b = good.clone();
    b[16 + 12 + 12 + 12..][..4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::BadRange));
    let mut b = good.clone();
    b[16 + 12 + 12 + 12 + 4..][..4].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::BadRange));
    let mut b = good.clone();
    b[16 + 8..][..2].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::Truncated));
    let mut b = good.clone();
    b[16 + 12 + 12 + 8..][..4].copy_from_slice(&4u32.to_be_bytes());
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::BadRange));
    let mut b = good.clone();
    b[16 + 8..][..2].copy_from_slice(&60_000u16.to_be_bytes());
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::TooManyEntries));
    // Bytes after the last entry.
    let mut b = good.clone();
    b.splice(good.len() - 4..good.len() - 4, [0u8; 8]);
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::BadLength));
    // PROBE: unknown mode, unknown flag; STATUS: loss above one million ppm.
    let good = emit(&Repr::Probe(example_probe()));
    let mut b = good.clone();
    b[16 + 29] = 9;
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::UnknownMode));
    let mut b = good.clone();
    b[16 + 30] = 0x80;
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::UnknownFlags));
    let mut b = good.clone();
    b[16 + 31] = 33;
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::OutOfRange));
    // Retained beyond the session's objects (2): forged.
    let mut b = good.clone();
    b[wire::feedback::probe::RETAINED].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::OutOfRange));
    let mut b = good.clone();
    b.splice(good.len() - 4..good.len() - 4, [0u8; 4]);
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::BadLength));
    let status = emit(&Repr::Status(example_status()));
    let mut b = status.clone();
    b[16 + 20..][..4].copy_from_slice(&2_000_000u32.to_be_bytes());
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::OutOfRange));
    let mut b = status.clone();
    b[16 + 37] = 0x10;
    assert_eq!(Repr::parse(&reseal(b)), Err(WireError::UnknownFlags));
    // BUSY (0x08) is a known flag.
    let mut b = status.clone();
    b[16 + 37] |= wire::feedback::STATUS_BUSY;
    assert!(
        matches!(Repr::parse(&reseal(b)), Ok(Repr::Status(s)) if s.flags & wire::feedback::STATUS_BUSY != 0)
    );
    // Any Loss span parses: it only says how precise Loss is.
    let mut b = status.clone();
    b[16 + 38..][..2].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(Repr::parse(&reseal(b)), Ok(Repr::Status(s)) if s.loss_span == u16::MAX));
    // Truncated feedback of every type.
    for repr in [
        Repr::Probe(example_probe()),
        Repr::Nack(example_nack()),
        Repr::Status(example_status()),
    ] {
        let full = emit(&repr);
        for cut in [17, 20, full.len() - 5] {
            let mut b = full[..cut].to_vec();
            b.extend_from_slice(&[0; 4]);
            assert!(Repr::parse(&reseal(b)).is_err(), "{repr:?} cut at {cut}");
        }
    }
}

#[test]
fn constants_table_matches_code() {
    let table = [
        ("MAGIC", wire::MAGIC as u64),
        ("VERSION", wire::VERSION as u64),
        ("HEADER_LEN", wire::HEADER_LEN as u64),
        ("CRC_LEN", wire::CRC_LEN as u64),
        ("DATA_HEADER_LEN", wire::DATA_HEADER_LEN as u64),
        ("DATA_OVERHEAD", wire::DATA_OVERHEAD as u64),
        ("INFO_HEADER_LEN", wire::INFO_HEADER_LEN as u64),
        ("MAX_NAME_LEN", wire::MAX_NAME_LEN as u64),
        ("DEFAULT_MAX_DATAGRAM", wire::DEFAULT_MAX_DATAGRAM as u64),
        ("MAX_DATAGRAM", wire::MAX_DATAGRAM as u64),
        ("SYMBOL_ALIGNMENT", wire::SYMBOL_ALIGNMENT as u64),
        ("DEFAULT_PORT", groupcast::channel::DEFAULT_PORT as u64),
        (
            "MAX_SOURCE_SYMBOLS_PER_BLOCK",
            groupcast_fec::MAX_SOURCE_SYMBOLS_PER_BLOCK as u64,
        ),
        ("MAX_SOURCE_BLOCKS", groupcast_fec::MAX_SOURCE_BLOCKS as u64),
        ("MAX_TRANSFER_LENGTH", groupcast_fec::MAX_TRANSFER_LENGTH),
        ("HASH_UNIT", groupcast::proto::HASH_UNIT),
        ("PROBE_LEN", wire::feedback::PROBE_LEN as u64),
        ("STATUS_LEN", wire::feedback::STATUS_LEN as u64),
        ("NACK_HEADER_LEN", wire::feedback::NACK_HEADER_LEN as u64),
        ("NACK_ENTRY_LEN", wire::feedback::NACK_ENTRY_LEN as u64),
        ("NACK_RANGE_LEN", wire::feedback::NACK_RANGE_LEN as u64),
        ("MAX_NACK_ENTRIES", wire::feedback::MAX_NACK_ENTRIES as u64),
        ("MAX_NACK_BITMAP", wire::feedback::MAX_NACK_BITMAP as u64),
    ];
    for (name, value) in table {
        let row = PROTOCOL_MD
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("protocol.md lists no constant {name}"));
        let cell = row
            .split('|')
            .nth(2)
            .unwrap()
            .trim()
            .replace([',', '_'], "");
        let parsed = if let Some(hex) = cell.strip_prefix("0x") {
            u64::from_str_radix(hex, 16).unwrap()
        } else {
            cell.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}: bad value {cell}"))
        };
        assert_eq!(parsed, value, "protocol.md value of {name}");
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    for repr in [Repr::Data(example_data()), Repr::ObjectInfo(example_info())] {
        let good = emit(&repr);
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Repr::parse(&bad).is_err(), "flip of bit {bit} accepted");
        }
        for len in 0..good.len() {
            assert!(
                Repr::parse(&good[..len]).is_err(),
                "truncation to {len} accepted"
            );
        }
    }
}

/// Re-signs a datagram after tampering, so that the CRC passes and the field
/// validation is what gets tested.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len() - 4;
    let crc = crc32fast::hash(&b[..n]);
    b[n..].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn field_validation_names_the_problem() {
    let data = emit(&Repr::Data(example_data()));
    let info = emit(&Repr::ObjectInfo(example_info()));
    let with = |base: &Vec<u8>, at: usize, v: u8| {
        let mut b = base.clone();
        b[at] = v;
        reseal(b)
    };
    assert_eq!(
        Repr::parse(&with(&data, 2, 2)),
        Err(WireError::UnsupportedVersion)
    );
    assert_eq!(Repr::parse(&with(&data, 3, 9)), Err(WireError::UnknownType));
    assert_eq!(
        Repr::parse(&with(&data, 4, 1)),
        Err(WireError::UnsupportedFlags)
    );
    assert_eq!(
        Repr::parse(&with(&data, 5, 8)),
        Err(WireError::UnsupportedFlags)
    );
    assert_eq!(Repr::parse(&with(&data, 7, 1)), Err(WireError::Reserved));
    assert_eq!(Repr::parse(&with(&data, 20, 5)), Err(WireError::UnknownFec));
    assert_eq!(Repr::parse(&with(&data, 21, 1)), Err(WireError::Reserved));
    // T = 0 in the OTI (bytes 30..32).
    let mut zero_t = data.clone();
    zero_t[30] = 0;
    zero_t[31] = 0;
    assert!(matches!(
        Repr::parse(&reseal(zero_t)),
        Err(WireError::Oti(_))
    ));
    assert_eq!(
        Repr::parse(&with(&data, 36, 1)),
        Err(WireError::SbnOutOfRange)
    );
    // No-code has no ESIs beyond K (3 here).
    let mut nocode = with(&data, 20, 0);
    nocode[39] = 3;
    assert_eq!(Repr::parse(&reseal(nocode)), Err(WireError::EsiOutOfRange));
    let mut short_symbol = data.clone();
    short_symbol.remove(41);
    assert_eq!(
        Repr::parse(&reseal(short_symbol)),
        Err(WireError::SymbolLength)
    );
    // OBJECT_INFO: name length and encoding.
    assert_eq!(
        Repr::parse(&with(&info, 23, 200)),
        Err(WireError::NameLength)
    );
    assert_eq!(
        Repr::parse(&with(&info, 68, 0xff)),
        Err(WireError::NameEncoding)
    );
    assert_eq!(Repr::parse(&with(&info, 0, b'X')), Err(WireError::BadMagic));
    assert_eq!(Repr::parse(&[0x47, 0x43, 1]), Err(WireError::Truncated));
    let mut huge = vec![0u8; wire::MAX_DATAGRAM + 1];
    huge[..2].copy_from_slice(&wire::MAGIC.to_be_bytes());
    assert_eq!(Repr::parse(&huge), Err(WireError::Oversized));
}

fn arb_oti() -> impl Strategy<Value = Oti> {
    (
        0u64..50_000_000,
        (1u16..=300).prop_map(|t| t * 4),
        1u32..3000,
    )
        .prop_filter_map("valid", |(f, t, k)| Oti::for_object(f, t, k, 4).ok())
        .prop_filter("has blocks", |o| o.source_blocks() > 0)
}

proptest! {
    #[test]
    fn data_round_trips(
        session in any::<u64>(),
        object in any::<u32>(),
        oti in arb_oti(),
        sbn_pick in any::<u32>(),
        esi in 0u32..(1 << 24),
        fill in any::<u8>(),
    ) {
        let sbn = (sbn_pick % oti.source_blocks()) as u8;
        let symbol = vec![fill; oti.symbol_size() as usize];
        let repr = Repr::Data(DataRepr { session, object, fec: FecId::RaptorQ, oti, sbn, esi, symbol: &symbol });
        let bytes = emit(&repr);
        prop_assert_eq!(Repr::parse(&bytes).unwrap(), repr);
    }

    #[test]
    fn info_round_trips(
        session in any::<u64>(),
        object in any::<u32>(),
        oti in arb_oti(),
        hash in any::<[u8; 32]>(),
        name in "\\PC{0,40}",
        nocode in any::<bool>(),
    ) {
        let fec = if nocode { FecId::NoCode } else { FecId::RaptorQ };
        let repr = Repr::ObjectInfo(InfoRepr { session, object, fec, oti, hash, name: &name });
        let bytes = emit(&repr);
        prop_assert_eq!(Repr::parse(&bytes).unwrap(), repr);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Repr::parse(&bytes);
        let _ = Repr::parse(&reseal_if_long(bytes));
    }
}

fn reseal_if_long(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= 4 {
        b[0] = 0x47;
        b[1] = 0x43;
        b = reseal(b);
    }
    b
}

#[test]
#[ignore = "prints the examples for docs/protocol.md"]
fn print_examples() {
    println!("data:\n{}", hexdump(&emit(&Repr::Data(example_data()))));
    println!(
        "info:\n{}",
        hexdump(&emit(&Repr::ObjectInfo(example_info())))
    );
    println!("hash: {}", blake3::hash(EXAMPLE_OBJECT));
    println!("probe:\n{}", hexdump(&emit(&Repr::Probe(example_probe()))));
    println!("nack:\n{}", hexdump(&emit(&Repr::Nack(example_nack()))));
    println!(
        "status:\n{}",
        hexdump(&emit(&Repr::Status(example_status())))
    );
    println!("oti: {:02x?}", example_oti().to_bytes());
}

/// Regenerates the committed fuzz seed corpus from a real transfer:
/// `cargo test -p groupcast --test wire write_fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_fuzz_corpus() {
    use groupcast::{Rounds, Sender, SenderConfig};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut packets = Vec::new();
    for (fec, size) in [
        (FecId::RaptorQ, 5_000usize),
        (FecId::NoCode, 2_000),
        (FecId::RaptorQ, 0),
    ] {
        let mut s = Sender::new(SenderConfig {
            max_datagram: 200,
            block_symbols: 8,
            fec,
            rounds: Rounds::Fixed(2),
            repair_overhead: 0.3,
            round_repair: 0.3,
            ..SenderConfig::default()
        })
        .unwrap();
        s.add_object(
            (0..size).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>(),
            "seed.bin",
        )
        .unwrap();
        let mut buf = vec![0u8; 200];
        let now = std::time::Instant::now();
        let mut transfer = Vec::new();
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            transfer.push(buf[..n].to_vec());
        }
        packets.push(transfer);
    }
    let wire = root.join("wire_parse");
    std::fs::create_dir_all(&wire).unwrap();
    for (i, p) in packets.iter().flatten().enumerate().step_by(7) {
        std::fs::write(wire.join(format!("packet-{i:03}")), p).unwrap();
    }
    let rx = root.join("receiver_datagrams");
    std::fs::create_dir_all(&rx).unwrap();
    for (i, transfer) in packets.iter().enumerate() {
        let mut framed = Vec::new();
        for p in transfer {
            framed.extend_from_slice(&(p.len() as u16).to_be_bytes());
            framed.extend_from_slice(p);
        }
        std::fs::write(rx.join(format!("transfer-{i}")), framed).unwrap();
    }
}

/// protocol.md §11.1: the manifest example is what the encoder writes for its
/// three files, byte for byte (the third in two parts), and its transfer id is
/// BLAKE3 of those bytes.
#[test]
fn manifest_example_matches_protocol_md() {
    use groupcast::io::files::{Entry, Manifest, Part, TransferId};
    let hello = b"hello, multicast\n";
    let zeros = vec![0u8; 5000];
    let hash = |b: &[u8]| *blake3::hash(b).as_bytes();
    let m = Manifest {
        part_size: 4096,
        entries: vec![
            Entry {
                object: groupcast::ObjectId(1),
                path: "docs/empty".into(),
                size: 0,
                mode: 0o600,
                hash: hash(b""),
                parts: Vec::new(),
                pack: None,
            },
            Entry {
                object: groupcast::ObjectId(2),
                path: "hello.txt".into(),
                size: hello.len() as u64,
                mode: 0o644,
                hash: hash(hello),
                parts: Vec::new(),
                pack: None,
            },
            Entry {
                object: groupcast::ObjectId(3),
                path: "zeros.bin".into(),
                size: 5000,
                mode: 0o644,
                hash: hash(&zeros),
                parts: vec![
                    Part {
                        object: groupcast::ObjectId(3),
                        offset: 0,
                        size: 4096,
                        hash: groupcast::proto::part_cv(0, &zeros[..4096]).unwrap(),
                    },
                    Part {
                        object: groupcast::ObjectId(4),
                        offset: 4096,
                        size: 904,
                        hash: groupcast::proto::part_cv(4096, &zeros[4096..]).unwrap(),
                    },
                ],
                pack: None,
            },
        ],
    };
    let doc = doc_block("manifest").as_bytes();
    assert_eq!(
        std::str::from_utf8(&m.encode()).unwrap(),
        std::str::from_utf8(doc).unwrap()
    );
    assert_eq!(Manifest::decode(doc).unwrap(), m);
    let id: TransferId = doc_block("manifest-id").trim().parse().unwrap();
    assert_eq!(id, TransferId::of(doc));
    assert_eq!(id, m.transfer_id());
}

/// The views, field by field, in each direction: getters read protocol.md's
/// example bytes as the example says, and setters on a zeroed buffer write
/// exactly those bytes.
#[test]
fn views_read_and_write_the_examples_field_by_field() {
    use wire::{DataPacket, InfoPacket, NackPacket, Packet, PacketType, ProbePacket, StatusPacket};
    let seal = |mut b: Vec<u8>, ty: PacketType, session: u64| {
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_header(ty, session);
        p.fill_checksum();
        b
    };
    let session = 0x0123_4567_89ab_cdef;

    // DATA.
    let bytes = doc_example("data");
    let (d, p) = (example_data(), DataPacket::new_checked(&bytes[..]).unwrap());
    assert_eq!(Packet::new_checked(&bytes[..]).unwrap().session(), session);
    assert_eq!((p.object(), p.fec_id(), p.sbn(), p.esi()), (7, 6, 0, 1));
    assert_eq!(p.oti(), d.oti.to_bytes());
    assert_eq!(p.symbol(), d.symbol);
    let mut b = vec![0u8; bytes.len()];
    let mut v = DataPacket::new_unchecked(&mut b[..]);
    v.set_object(7);
    v.set_fec(FecId::RaptorQ);
    v.set_oti(&d.oti);
    v.set_sbn(0);
    v.set_esi(1);
    v.symbol_mut().copy_from_slice(d.symbol);
    assert_eq!(seal(b, PacketType::Data, session), bytes);

    // OBJECT_INFO.
    let bytes = doc_example("object_info");
    let (i, p) = (example_info(), InfoPacket::new_checked(&bytes[..]).unwrap());
    assert_eq!((p.object(), p.fec_id(), p.name_len()), (7, 6, 9));
    assert_eq!((p.hash(), p.name()), (i.hash, &b"hello.txt"[..]));
    let mut b = vec![0u8; bytes.len()];
    let mut v = InfoPacket::new_unchecked(&mut b[..]);
    v.set_object(7);
    v.set_fec(FecId::RaptorQ);
    v.set_oti(&i.oti);
    v.set_hash(&i.hash);
    v.set_name(b"hello.txt");
    assert_eq!(seal(b, PacketType::ObjectInfo, session), bytes);

    // PROBE.
    let bytes = doc_example("probe");
    let (e, p) = (
        example_probe(),
        ProbePacket::new_checked(&bytes[..]).unwrap(),
    );
    assert_eq!(
        (
            p.timestamp_us(),
            p.sent(),
            p.grtt_us(),
            p.objects(),
            p.progress()
        ),
        (e.timestamp_us, e.sent, e.grtt_us, e.objects, e.progress)
    );
    assert_eq!(
        (
            p.mode(),
            p.flags(),
            p.group_log2(),
            p.hops(),
            p.reserved_zero(),
            p.retained()
        ),
        (3, wire::feedback::PROBE_LIMIT, 10, 4, true, 1)
    );
    assert_eq!((p.sample(), p.limit(), p.loss()), (8, (1, 4), 6554));
    let mut b = vec![0u8; bytes.len()];
    let mut v = ProbePacket::new_unchecked(&mut b[..]);
    v.set_timestamp_us(e.timestamp_us);
    v.set_sent(e.sent);
    v.set_grtt_us(e.grtt_us);
    v.set_objects(e.objects);
    v.set_progress(e.progress);
    v.set_mode(e.mode);
    v.set_flags(e.flags);
    v.set_group_log2(e.group_log2);
    v.set_hops(e.hops);
    v.set_retained(e.retained);
    v.set_sample(e.ask.sample);
    v.set_limit(e.ask.limit.unwrap());
    v.set_loss(e.ask.loss);
    assert_eq!(seal(b, PacketType::Probe, session), bytes);

    // STATUS.
    let bytes = doc_example("status");
    let (e, p) = (
        example_status(),
        StatusPacket::new_checked(&bytes[..]).unwrap(),
    );
    assert_eq!(
        (
            p.receiver(),
            p.echo_us(),
            p.hold_us(),
            p.loss_ppm(),
            p.rate()
        ),
        (e.receiver, e.echo_us, e.hold_us, e.loss_ppm, e.rate)
    );
    assert_eq!(
        (p.window(), p.flags(), p.loss_span()),
        (e.window, e.flags, e.loss_span)
    );
    let mut b = vec![0u8; bytes.len()];
    let mut v = StatusPacket::new_unchecked(&mut b[..]);
    v.set_receiver(e.receiver);
    v.set_echo_us(e.echo_us);
    v.set_hold_us(e.hold_us);
    v.set_loss_ppm(e.loss_ppm);
    v.set_rate(e.rate);
    v.set_window(e.window);
    v.set_flags(e.flags);
    v.set_loss_span(e.loss_span);
    assert_eq!(seal(b, PacketType::Status, session), bytes);

    // NACK: the fixed part through the view, the entries through the repr's
    // emit into the view.
    let bytes = doc_example("nack");
    let (e, p) = (example_nack(), NackPacket::new_checked(&bytes[..]).unwrap());
    assert_eq!((p.receiver(), p.count(), p.reserved()), (e.receiver, 3, 0));
    // The third entry's scattered ESIs go as a bitmap: 4 + 2 bytes, not 5 ranges.
    assert_eq!(p.entries().len(), 12 + 12 + 2 * 8 + 12 + 4 + 2);
    let mut b = vec![0u8; bytes.len()];
    e.emit(&mut NackPacket::new_unchecked(&mut b[..])).unwrap();
    assert_eq!(seal(b, PacketType::Nack, session), bytes);
}

/// Emitters refuse what the parser would refuse, with the same error,
/// instead of clamping or writing it.
#[test]
fn emit_refuses_what_parse_rejects() {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let mut probe = example_probe();
    probe.group_log2 = 33;
    assert_eq!(
        Repr::Probe(probe).emit(&mut buf),
        Err(WireError::OutOfRange)
    );
    let mut probe = example_probe();
    probe.hops = 0;
    assert_eq!(
        Repr::Probe(probe).emit(&mut buf),
        Err(WireError::OutOfRange)
    );
    let mut probe = example_probe();
    probe.flags = 0x80;
    assert_eq!(
        Repr::Probe(probe).emit(&mut buf),
        Err(WireError::UnknownFlags)
    );
    let mut status = example_status();
    status.loss_ppm = 1_000_001;
    assert_eq!(
        Repr::Status(status).emit(&mut buf),
        Err(WireError::OutOfRange)
    );
    let mut status = example_status();
    status.flags = 0x10;
    assert_eq!(
        Repr::Status(status).emit(&mut buf),
        Err(WireError::UnknownFlags)
    );
    let nack = |f: &dyn Fn(&mut wire::NackEntry)| {
        let mut n = example_nack();
        f(&mut n.entries[1]);
        Repr::Nack(n).emit(&mut vec![0u8; 2000])
    };
    assert_eq!(nack(&|e| e.ranges[0].1 = 0), Err(WireError::BadRange));
    assert_eq!(nack(&|e| e.need = 4), Err(WireError::BadRange));
    assert_eq!(nack(&|e| e.ranges[1].0 = 1 << 24), Err(WireError::BadRange));
    assert_eq!(nack(&|e| e.flags = 0x02), Err(WireError::UnknownFlags));
    let mut many = example_nack();
    many.entries = vec![many.entries[0].clone(); 513];
    assert_eq!(
        Repr::Nack(many).emit(&mut buf),
        Err(WireError::TooManyEntries)
    );
    let mut data = example_data();
    data.symbol = &EXAMPLE_OBJECT[..15];
    assert_eq!(
        Repr::Data(data).emit(&mut buf),
        Err(WireError::SymbolLength)
    );
    let mut data = example_data();
    data.sbn = 1;
    assert_eq!(
        Repr::Data(data).emit(&mut buf),
        Err(WireError::SbnOutOfRange)
    );
    let mut data = example_data();
    data.fec = FecId::NoCode;
    data.esi = 3;
    assert_eq!(
        Repr::Data(data).emit(&mut buf),
        Err(WireError::EsiOutOfRange)
    );
    let long = "n".repeat(wire::MAX_NAME_LEN + 1);
    let mut info = example_info();
    info.name = &long;
    assert_eq!(
        Repr::ObjectInfo(info).emit(&mut buf),
        Err(WireError::NameLength)
    );
    // A buffer too short for the packet.
    let repr = Repr::Nack(example_nack());
    let mut short = vec![0u8; repr.buffer_len() - 1];
    assert_eq!(repr.emit(&mut short), Err(WireError::BufferTooSmall));
}

/// The NACK cursor: reads what is there, refuses to read past the end.
#[test]
fn reader_never_reads_past_the_end() {
    let mut r = wire::Reader::new(&[1, 2, 3]);
    assert_eq!(r.take(2), Ok(&[1u8, 2][..]));
    assert_eq!(r.take(2), Err(WireError::Truncated));
    assert_eq!(r.take(1), Ok(&[3u8][..]));
    assert!(r.is_empty());
    assert_eq!(r.take(usize::MAX), Err(WireError::Truncated));
}

/// Scattered losses in nack mode go as a bitmap where it is
/// smaller than ranges, and read back as the same runs; only the canonical
/// bitmap parses.
#[test]
fn nack_bitmaps_are_smaller_and_read_back_as_the_same_runs() {
    use groupcast::wire::feedback::{NACK_BITMAP, NACK_ENTRY_LEN, NACK_HEADER_LEN};
    // Every third ESI of 300 lacking: 100 ranges (800 bytes) or a bitmap (4 + 38).
    let ranges: Vec<(u32, u32)> = (0..100).map(|i| (5 + 3 * i, 1)).collect();
    let nack = wire::NackRepr {
        session: 7,
        receiver: 9,
        entries: vec![wire::NackEntry {
            object: 0,
            sbn: 1,
            flags: 0,
            need: 100,
            ranges: ranges.clone(),
        }],
    };
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let n = nack.write(&mut buf).unwrap();
    assert_eq!(n, NACK_HEADER_LEN + NACK_ENTRY_LEN + 4 + 38 + 4);
    assert_eq!(buf[NACK_HEADER_LEN + 5], NACK_BITMAP);
    match Repr::parse(&buf[..n]).unwrap() {
        Repr::Nack(back) => assert_eq!(back, nack),
        other => panic!("{other:?}"),
    }
    // Adjacent ranges are not canonical: they go as ranges, and read back so.
    let mut loose = nack.clone();
    loose.entries[0].ranges = vec![(1, 1), (2, 1), (9, 1), (20, 1), (30, 1)];
    loose.entries[0].need = 5;
    let m = loose.write(&mut buf).unwrap();
    assert_eq!(buf[NACK_HEADER_LEN + 5], 0);
    assert!(matches!(Repr::parse(&buf[..m]).unwrap(), Repr::Nack(back) if back == loose));
    // A bitmap whose bit 0 is clear, or whose last byte is zero, is refused.
    let n = nack.write(&mut buf).unwrap();
    let body = NACK_HEADER_LEN + NACK_ENTRY_LEN + 4;
    for (at, byte) in [(body, buf[body] & !1), (body + 37, 0)] {
        let mut bad = buf[..n].to_vec();
        bad[at] = byte;
        let len = bad.len();
        let crc = crc32fast::hash(&bad[..len - 4]);
        bad[len - 4..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(Repr::parse(&bad), Err(WireError::BadRange), "byte {at}");
    }
}

/// A bitmap beyond MAX_NACK_BITMAP is refused, and never emitted: the
/// entry goes as ranges instead.
#[test]
fn nack_bitmaps_are_bounded() {
    use groupcast::wire::feedback::{MAX_NACK_BITMAP, NACK_BITMAP, NACK_HEADER_LEN};
    // Every other ESI over a span of 9000: a bitmap would take 1125 bytes.
    let ranges: Vec<(u32, u32)> = (0..4500).map(|i| (2 * i, 1)).collect();
    let entry = wire::NackEntry {
        object: 0,
        sbn: 0,
        flags: 0,
        need: 4500,
        ranges,
    };
    assert_eq!(entry.wire_len(), 12 + 4500 * 8, "ranges, not a bitmap");
    // A hand-made bitmap entry of MAX_NACK_BITMAP + 1 bytes.
    let n = MAX_NACK_BITMAP + 1;
    let mut d = vec![0u8; NACK_HEADER_LEN + 12 + 4 + n + 4];
    d[24..26].copy_from_slice(&1u16.to_be_bytes());
    let e = NACK_HEADER_LEN;
    d[e + 5] = NACK_BITMAP;
    d[e + 6..e + 8].copy_from_slice(&(n as u16).to_be_bytes());
    d[e + 8..e + 12].copy_from_slice(&(n as u32 * 8).to_be_bytes());
    d[e + 16..e + 16 + n].fill(0xff);
    d[..4].copy_from_slice(b"GC\x01\x04");
    let len = d.len();
    let crc = crc32fast::hash(&d[..len - 4]);
    d[len - 4..].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(Repr::parse(&d), Err(WireError::TooManyEntries));
}

/// protocol.md §14.1's frames are what the publisher's outbox cuts, byte for
/// byte, and what the subscriber's inbox reads back.
#[test]
fn feed_frames_match_protocol_md() {
    use groupcast::proto::feed::{Batching, Delivery, Inbox, Outbox};
    let now = std::time::Instant::now();
    let mut out = Outbox::new(Batching::default());
    for i in 0..5u8 {
        out.push_message(now, &[i]);
    }
    out.flush();
    out.push_message(now, b"hi");
    out.push_message(now, b"there");
    out.flush();
    out.end();
    let frames: Vec<Vec<u8>> = std::iter::from_fn(|| out.poll_object()).collect();
    // The first message went alone, at once (nothing had gone out before).
    assert_eq!(frames.len(), 4);
    assert_eq!(frames[2], doc_example("frame-messages"));
    assert_eq!(frames[3], doc_example("frame-end"));
    let s = groupcast::SessionId(1);
    let mut inbox = Inbox::new(std::time::Duration::from_secs(1), 1);
    inbox.start_at(s, groupcast::ObjectId(2));
    for (i, f) in frames.iter().enumerate().skip(2) {
        inbox.handle_object(now, s, groupcast::ObjectId(i as u32), f.clone());
    }
    let got: Vec<Delivery> = std::iter::from_fn(|| inbox.poll()).collect();
    assert!(matches!(&got[0], Delivery::Message(m) if m.seq == 5 && m.data == b"hi"));
    assert!(matches!(&got[1], Delivery::Message(m) if m.seq == 6 && m.data == b"there"));
    assert!(matches!(
        got[2],
        Delivery::End {
            messages: 7,
            stream_len: 0,
            ..
        }
    ));
}
