//! Property tests: decoding from arbitrary symbol subsets, for every codec.

use groupcast_fec::{FecError, FecId, Oti, Push, codec_for};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A reproducible pseudo-random object: the workspace's one generator.
use groupcast_fec::pseudo_random_bytes as object;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any K+2 distinct symbols of a block (source or repair, any order) decode it.
    #[test]
    fn raptorq_decodes_from_any_k_plus_2(
        (len, t) in prop_oneof![
            (0usize..5000, (1u16..=400).prop_map(|x| x * 4)),
            (5000usize..3_000_000, (64u16..=400).prop_map(|x| x * 4)),
        ],
        block_symbols in 1u32..1200,
        seed in any::<u64>(),
    ) {
        let data = object(len, seed);
        let oti = Oti::for_object(len as u64, t, block_symbols, 4).unwrap();
        let codec = codec_for(FecId::RaptorQ);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let mut out = Vec::with_capacity(len);
        for block in oti.blocks() {
            let k = block.source_symbols;
            let mut enc = codec.encoder(&oti, &block, &data[block.range()]).unwrap();
            let mut dec = codec.decoder(&oti, &block).unwrap();
            // Choose K+2 distinct ESIs among source symbols and 2K repair symbols.
            let mut esis: Vec<u32> = (0..3 * k + 2).collect();
            esis.shuffle(&mut rng);
            esis.truncate(k as usize + 2);
            let mut sym = vec![0u8; t as usize];
            for (i, &esi) in esis.iter().enumerate() {
                enc.write_symbol(esi, &mut sym).unwrap();
                let before = dec.needed();
                prop_assert!(before >= 1);
                match dec.push(esi, &sym).unwrap() {
                    Push::Decoded => break,
                    Push::Stored => prop_assert!(i + 1 < k as usize + 2),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert!(dec.is_decoded(), "block {} not decoded from K+2 symbols", block.sbn);
            prop_assert_eq!(dec.needed(), 0);
            out.extend_from_slice(&dec.take_decoded().unwrap());
        }
        prop_assert_eq!(out, data);
    }

    /// `store` then `attempt` (decoding left to the caller, as the receiver
    /// does on its decode workers) decodes exactly what `push` decodes, from
    /// the same symbols in the same order, failed attempts included: `store`
    /// never solves, and says `Ready` whenever `push` would have tried.
    #[test]
    fn raptorq_store_then_attempt_matches_push(
        len in 1usize..400_000,
        block_symbols in 1u32..600,
        seed in any::<u64>(),
    ) {
        let t = 64u16;
        let data = object(len, seed);
        let oti = Oti::for_object(len as u64, t, block_symbols, 4).unwrap();
        let codec = codec_for(FecId::RaptorQ);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa77e);
        for block in oti.blocks() {
            let k = block.source_symbols;
            let mut enc = codec.encoder(&oti, &block, &data[block.range()]).unwrap();
            let mut pushed = codec.decoder(&oti, &block).unwrap();
            let mut stored = codec.decoder(&oti, &block).unwrap();
            // Exactly K first (a failed attempt is likely at small K), then more.
            let mut esis: Vec<u32> = (0..3 * k + 8).collect();
            esis.shuffle(&mut rng);
            let mut sym = vec![0u8; t as usize];
            for &esi in &esis {
                enc.write_symbol(esi, &mut sym).unwrap();
                let p = pushed.push(esi, &sym).unwrap();
                let got = match stored.store(esi, &sym).unwrap() {
                    Push::Ready => {
                        if stored.attempt() { Push::Decoded } else { Push::Stored }
                    }
                    other => other,
                };
                prop_assert_eq!(p, got);
                if p == Push::Decoded {
                    break;
                }
            }
            prop_assert!(stored.is_decoded());
            prop_assert_eq!(stored.take_decoded().unwrap(), &data[block.range()]);
        }
    }

    /// Replication decodes exactly when every source symbol is present.
    #[test]
    fn nocode_needs_every_source_symbol(
        len in 1usize..400_000,
        t in (16u16..=300).prop_map(|x| x * 4),
        block_symbols in 1u32..500,
        seed in any::<u64>(),
    ) {
        let data = object(len, seed);
        let oti = Oti::for_object(len as u64, t, block_symbols, 4).unwrap();
        let codec = codec_for(FecId::NoCode);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for block in oti.blocks() {
            let k = block.source_symbols;
            let mut enc = codec.encoder(&oti, &block, &data[block.range()]).unwrap();
            let mut dec = codec.decoder(&oti, &block).unwrap();
            let mut esis: Vec<u32> = (0..k).collect();
            esis.shuffle(&mut rng);
            let mut sym = vec![0u8; t as usize];
            // Every symbol but the last leaves the block undecoded, duplicates included.
            for (i, &esi) in esis.iter().enumerate() {
                enc.write_symbol(esi, &mut sym).unwrap();
                let r = dec.push(esi, &sym).unwrap();
                if i + 1 < k as usize {
                    prop_assert_eq!(r, Push::Stored);
                    prop_assert_eq!(dec.push(esi, &sym).unwrap(), Push::Duplicate);
                    prop_assert_eq!(dec.needed(), k - i as u32 - 1);
                } else {
                    prop_assert_eq!(r, Push::Decoded);
                }
            }
            prop_assert!(enc.write_symbol(k, &mut sym).is_err());
            out.extend_from_slice(&dec.take_decoded().unwrap());
        }
        prop_assert_eq!(out, data);
    }
}

#[test]
fn decoders_reject_bad_symbols_before_raptorq() {
    let oti = Oti::for_object(100_000, 1000, 50, 4).unwrap();
    let block = oti.block(0).unwrap();
    for id in [FecId::RaptorQ, FecId::NoCode] {
        let mut dec = codec_for(id).decoder(&oti, &block).unwrap();
        assert_eq!(
            dec.push(0, &[0u8; 999]),
            Err(FecError::SymbolLength {
                got: 999,
                expected: 1000
            })
        );
        assert_eq!(
            dec.push(0, &[]),
            Err(FecError::SymbolLength {
                got: 0,
                expected: 1000
            })
        );
        assert!(matches!(
            dec.push(1 << 24, &[0u8; 1000]),
            Err(FecError::EsiOutOfRange { .. })
        ));
        assert!(matches!(
            dec.push(u32::MAX, &[0u8; 1000]),
            Err(FecError::EsiOutOfRange { .. })
        ));
        assert_eq!(dec.buffered_bytes(), 0, "refused symbols are not held");
    }
    let mut dec = codec_for(FecId::NoCode).decoder(&oti, &block).unwrap();
    assert!(matches!(
        dec.push(block.source_symbols, &[0u8; 1000]),
        Err(FecError::EsiOutOfRange { .. })
    ));
}

#[test]
fn repair_symbols_are_fresh_up_to_the_esi_limit() {
    let data = object(50_000, 7);
    let oti = Oti::for_object(50_000, 1000, 50, 4).unwrap();
    let block = oti.block(0).unwrap();
    let codec = codec_for(FecId::RaptorQ);
    let mut enc = codec.encoder(&oti, &block, &data[block.range()]).unwrap();
    let mut dec = codec.decoder(&oti, &block).unwrap();
    // Decode from repair symbols only, taken from the top of the 24-bit ESI space.
    let mut sym = vec![0u8; 1000];
    let top = groupcast_fec::MAX_ESI;
    for esi in (top - 60..=top).rev() {
        enc.write_symbol(esi, &mut sym).unwrap();
        if dec.push(esi, &sym).unwrap() == Push::Decoded {
            break;
        }
    }
    assert_eq!(dec.take_decoded().unwrap(), data);
    assert!(enc.write_symbol(top + 1, &mut sym).is_err());
}

/// The systematic path: the K source symbols alone, in any order, give the
/// block back on the K-th, with duplicates refused and the block's source
/// buffer counted while it fills.
#[test]
fn raptorq_source_symbols_alone_decode_without_repair() {
    let len = 50_000;
    let data = object(len, 3);
    let oti = Oti::for_object(len as u64, 400, 64, 4).unwrap();
    let codec = codec_for(FecId::RaptorQ);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut out = Vec::new();
    for block in oti.blocks() {
        let k = block.source_symbols;
        let mut enc = codec.encoder(&oti, &block, &data[block.range()]).unwrap();
        let mut dec = codec.decoder(&oti, &block).unwrap();
        let mut esis: Vec<u32> = (0..k).collect();
        esis.shuffle(&mut rng);
        let mut sym = vec![0u8; 400];
        for (i, &esi) in esis.iter().enumerate() {
            enc.write_symbol(esi, &mut sym).unwrap();
            let push = dec.push(esi, &sym).unwrap();
            if i + 1 < k as usize {
                assert_eq!(push, Push::Stored);
                assert_eq!(dec.buffered_bytes(), k as usize * 400);
                assert_eq!(dec.push(esi, &sym).unwrap(), Push::Duplicate);
                assert_eq!(dec.needed(), k - i as u32 - 1);
            } else {
                assert_eq!(push, Push::Decoded);
            }
        }
        out.extend(dec.take_decoded().unwrap());
    }
    assert_eq!(out, data);
}

/// A block missing some source symbols decodes from repair symbols that
/// arrive before, between and after the source symbols.
#[test]
fn raptorq_mixes_in_place_source_with_repair() {
    let len = 120_000;
    let data = object(len, 5);
    let oti = Oti::for_object(len as u64, 1000, 120, 4).unwrap();
    let codec = codec_for(FecId::RaptorQ);
    let block = oti.block(0).unwrap();
    let k = block.source_symbols;
    let mut enc = codec.encoder(&oti, &block, &data[block.range()]).unwrap();
    let mut dec = codec.decoder(&oti, &block).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Lose 20% of the source symbols; send 30% repair, shuffled in.
    let mut esis: Vec<u32> = (0..k).filter(|_| rng.random_bool(0.8)).collect();
    esis.extend(k..k + k * 3 / 10);
    esis.shuffle(&mut rng);
    let mut sym = vec![0u8; 1000];
    let mut decoded = false;
    for esi in esis {
        enc.write_symbol(esi, &mut sym).unwrap();
        match dec.push(esi, &sym).unwrap() {
            Push::Decoded => decoded = true,
            Push::AlreadyDecoded => assert!(decoded),
            Push::Stored => assert!(!decoded),
            Push::Duplicate => panic!("no duplicates were sent"),
            Push::Ready => panic!("push never leaves the solving to the caller"),
        }
    }
    assert!(decoded);
    assert_eq!(dec.take_decoded().unwrap(), &data[block.range()]);
    assert_eq!(dec.buffered_bytes(), 0);
}

/// The codec answers whether it makes repair symbols, so that the sender
/// asks it rather than testing FEC ids.
#[test]
fn only_raptorq_makes_repair() {
    use groupcast_fec::{FecId, codec_for};
    assert!(codec_for(FecId::RaptorQ).makes_repair());
    assert!(!codec_for(FecId::NoCode).makes_repair());
}

/// H follows RFC 6330's Table 2 (the row of the smallest K' ≥ K).
#[test]
fn raptorq_hdpc_symbols_follow_rfc_6330_table_2() {
    use groupcast_fec::raptorq_hdpc_symbols as h;
    for (k, expected) in [
        (1, 10),
        (1000, 10),
        (1032, 10),
        (1033, 11),
        (10787, 11),
        (10788, 12),
        (20565, 13),
        (30347, 14),
        (39981, 15),
        (49979, 16),
        (56403, 16),
    ] {
        assert_eq!(h(k), expected, "K = {k}");
    }
}

/// A block stored up to K symbols, then on to K + H + margin, says when an
/// attempt is cheap; and every count from K up decodes it, including those
/// between K + H and the cheap count, where the decoder holds symbols back.
#[test]
fn raptorq_says_when_decoding_is_cheap_and_decodes_at_every_count() {
    use groupcast_fec::raptorq_cheap_symbols;
    let len = 1000 * 1000;
    let data = object(len, 9);
    let oti = Oti::for_object(len as u64, 1000, 1000, 4).unwrap();
    let codec = codec_for(FecId::RaptorQ);
    let block = oti.block(0).unwrap();
    let k = block.source_symbols;
    let cheap_at = raptorq_cheap_symbols(k);
    assert_eq!(cheap_at, k + 13);
    let mut enc = codec.encoder(&oti, &block, &data[block.range()]).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut sym = vec![0u8; 1000];
    for count in [k, k + 9, k + 10, k + 11, k + 12, k + 13, k + 20] {
        // 10% of the source symbols lost, repair making up the count.
        let mut esis: Vec<u32> = (0..k).filter(|_| rng.random_bool(0.9)).collect();
        let repair = count - esis.len() as u32;
        esis.extend(k..k + repair);
        let mut dec = codec.decoder(&oti, &block).unwrap();
        for (i, &esi) in esis.iter().enumerate() {
            enc.write_symbol(esi, &mut sym).unwrap();
            let push = dec.store(esi, &sym).unwrap();
            let held = i as u32 + 1;
            assert_eq!(push == Push::Ready, held >= k, "{held} held");
            assert_eq!(dec.cheap(), held >= cheap_at, "{held} held");
        }
        assert!(dec.attempt(), "{count} symbols decode");
        assert_eq!(dec.take_decoded().unwrap(), &data[block.range()]);
    }
}
