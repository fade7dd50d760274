//! Feeds the fec decoders an arbitrary OTI and an arbitrary stream of symbols.
//! Input: 12 bytes of OTI, 1 byte choosing the codec (RaptorQ, no-code or the
//! simulator's RaptorQ model), then records of
//! (SBN: u8, ESI: u24, length: u16, bytes). Whatever the input, nothing may
//! panic, and a decoded block must be exactly the block's length (empty for the
//! model, which carries no data).
#![no_main]

use std::collections::HashMap;

use groupcast_fec::{CodecSet, FecId, Oti};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 13 {
        return;
    }
    // Keep objects small, as a receiver's limit would.
    let Ok(oti) = Oti::parse(&data[..12], 4 << 20) else {
        return;
    };
    let codec = match data[12] % 3 {
        0 => CodecSet::Real.codec(FecId::RaptorQ),
        1 => CodecSet::Real.codec(FecId::NoCode),
        _ => CodecSet::Model.codec(FecId::RaptorQ),
    };
    let mut decoders = HashMap::new();
    let mut rest = &data[13..];
    while rest.len() >= 6 {
        let sbn = rest[0] as u32;
        let esi = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]);
        let len = (u16::from_be_bytes([rest[4], rest[5]]) as usize).min(rest.len() - 6);
        let symbol = &rest[6..6 + len];
        rest = &rest[6 + len..];
        let Some(block) = oti.block(sbn) else {
            continue;
        };
        if decoders.len() >= 4 && !decoders.contains_key(&sbn) {
            continue;
        }
        let dec = decoders.entry(sbn).or_insert_with(|| {
            codec
                .decoder(&oti, &block)
                .expect("decoder for a valid block")
        });
        if dec.push(esi, symbol).is_ok()
            && dec.is_decoded()
            && let Some(out) = dec.take_decoded()
        {
            let want = if codec.carries_data() { block.len } else { 0 };
            assert_eq!(out.len() as u64, want);
        }
    }
});
