//! Builds arbitrary packets field by field, emits them, and parses them back:
//! whatever a sender or receiver can emit must parse to the same packet
//! (parse ∘ emit = identity). Fields out of range must be refused by emit or
//! parse, never mangled.
#![no_main]

use arbitrary::Arbitrary;
use groupcast::FecId;
use groupcast::wire::{
    DataRepr, InfoRepr, NackEntry, NackRepr, ProbeRepr, Repr, StatusRepr, WireMode,
};
use groupcast_fec::Oti;
use libfuzzer_sys::fuzz_target;

/// A NACK entry: object, SBN, NEED_INFO, need, and ESI ranges.
type EntryInput = (u32, u8, bool, u32, Vec<(u32, u32)>);

#[derive(Debug, Arbitrary)]
enum Input {
    Data {
        session: u64,
        object: u32,
        nocode: bool,
        len: u32,
        t: u8,
        sbn: u8,
        esi: u32,
        fill: u8,
    },
    Info {
        session: u64,
        object: u32,
        len: u32,
        hash: [u8; 32],
        name: String,
    },
    Probe {
        session: u64,
        timestamp_us: u64,
        sent: u64,
        grtt_us: u32,
        objects: u32,
        progress: (u32, u8),
        nack: bool,
        end: bool,
        group_log2: u8,
        hops: u8,
    },
    Nack {
        session: u64,
        receiver: u64,
        entries: Vec<EntryInput>,
    },
    Status {
        session: u64,
        receiver: u64,
        echo_us: u64,
        hold_us: u32,
        loss_ppm: u32,
        loss_span: u16,
        rate: u64,
        window: (u32, u8),
        flags: u8,
    },
}

fn check(repr: Repr<'_>) {
    let mut buf = vec![0u8; repr.buffer_len()];
    let Ok(n) = repr.emit(&mut buf) else { return };
    // Emit refuses what parse would: whatever it writes parses back to itself.
    assert_eq!(
        Repr::parse(&buf[..n]).as_ref(),
        Ok(&repr),
        "parse(emit(x)) != x"
    );
}

fuzz_target!(|input: Input| {
    match input {
        Input::Data {
            session,
            object,
            nocode,
            len,
            t,
            sbn,
            esi,
            fill,
        } => {
            let t = (t as u16).max(1) * 4;
            let Ok(oti) = Oti::for_object(len as u64 % 1_000_000, t, 64, 4) else {
                return;
            };
            if (sbn as u32) >= oti.source_blocks() {
                return;
            }
            let symbol = vec![fill; t as usize];
            let fec = if nocode {
                FecId::NoCode
            } else {
                FecId::RaptorQ
            };
            check(Repr::Data(DataRepr {
                session,
                object,
                fec,
                oti,
                sbn,
                esi: esi & 0xff_ffff,
                symbol: &symbol,
            }));
        }
        Input::Info {
            session,
            object,
            len,
            hash,
            name,
        } => {
            let Ok(oti) = Oti::for_object(len as u64, 1188, 1000, 4) else {
                return;
            };
            if name.len() > 1024 {
                return;
            }
            check(Repr::ObjectInfo(InfoRepr {
                session,
                object,
                fec: FecId::RaptorQ,
                oti,
                hash,
                name: &name,
            }));
        }
        Input::Probe {
            session,
            timestamp_us,
            sent,
            grtt_us,
            objects,
            progress,
            nack,
            end,
            group_log2,
            hops,
        } => {
            check(Repr::Probe(ProbeRepr {
                session,
                timestamp_us,
                sent,
                grtt_us,
                objects,
                progress,
                mode: if nack {
                    WireMode::Nack
                } else {
                    WireMode::Hybrid
                },
                flags: end as u8,
                group_log2: group_log2 % 33,
                hops: hops.max(1),
                retained: objects / 2,
                ask: Default::default(),
            }));
        }
        Input::Nack {
            session,
            receiver,
            entries,
        } => {
            let entries: Vec<NackEntry> = entries
                .into_iter()
                .take(64)
                .map(|(object, sbn, info, need, ranges)| {
                    let ranges: Vec<(u32, u32)> = ranges
                        .into_iter()
                        .take(16)
                        .map(|(f, c)| {
                            (
                                f & 0xff_ffff,
                                (c & 0xffff).max(1).min((1 << 24) - (f & 0xff_ffff)),
                            )
                        })
                        .collect();
                    let need = if ranges.is_empty() {
                        need
                    } else {
                        ranges.iter().map(|r| r.1).sum()
                    };
                    NackEntry {
                        object,
                        sbn,
                        flags: info as u8,
                        need,
                        ranges,
                    }
                })
                .collect();
            check(Repr::Nack(NackRepr {
                session,
                receiver,
                entries,
            }));
        }
        Input::Status {
            session,
            receiver,
            echo_us,
            hold_us,
            loss_ppm,
            loss_span,
            rate,
            window,
            flags,
        } => {
            check(Repr::Status(StatusRepr {
                session,
                receiver,
                echo_us,
                hold_us,
                loss_ppm: loss_ppm % 1_000_001,
                loss_span,
                rate,
                window,
                flags: flags & 7,
            }));
        }
    }
});
