//! The model codec against real RaptorQ: how often decoding fails with
//! exactly K, K+1 and K+2 symbols, over the same random symbol sets.

use groupcast_fec::{Codec, FecId, Model, Oti, Push, codec_for, model_failure_probability};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Offers `n` symbols with the chosen ESIs; returns whether the block decoded.
fn decodes(codec: &dyn Codec, oti: &Oti, data: &[u8], esis: &[u32]) -> bool {
    let block = oti.block(0).unwrap();
    let mut enc = codec.encoder(oti, &block, data).unwrap();
    let mut dec = codec.decoder(oti, &block).unwrap();
    let mut sym = vec![0u8; oti.symbol_size() as usize];
    let mut decoded = false;
    for &esi in esis {
        enc.write_symbol(esi, &mut sym).unwrap();
        decoded |= dec.push(esi, &sym).unwrap() == Push::Decoded;
    }
    decoded
}

/// Failure rates with K + h symbols (at least one of them repair) over
/// `trials` random symbol sets, for both codecs.
fn failure_rates(h: u32, trials: u32) -> (f64, f64) {
    const K: u32 = 10;
    const T: u16 = 8;
    let oti = Oti::for_object((K * T as u32) as u64, T, K, 4).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0x6d6f_64656c + h as u64);
    let mut data = vec![0u8; (K * T as u32) as usize];
    let real = codec_for(FecId::RaptorQ);
    let (mut fail_real, mut fail_model) = (0, 0);
    for _ in 0..trials {
        rng.fill(&mut data[..]);
        let mut esis: Vec<u32> = (0..4 * K).collect();
        esis.shuffle(&mut rng);
        esis.truncate((K + h) as usize);
        if esis.iter().all(|&e| e < K) {
            esis[0] = K + rng.random_range(0..3 * K);
            esis.dedup();
        }
        fail_real += u32::from(!decodes(real, &oti, &data, &esis));
        fail_model += u32::from(!decodes(&Model, &oti, &data, &esis));
    }
    (
        fail_real as f64 / trials as f64,
        fail_model as f64 / trials as f64,
    )
}

#[test]
fn model_fails_about_as_often_as_raptorq() {
    // Exactly K symbols: RaptorQ fails about 0.4-0.5% of the time (RFC 6330 §5.5),
    // the model 1/256 = 0.39%. 20,000 trials see about 80 failures each; the
    // window is about ±3.5 standard deviations.
    let (real, model) = failure_rates(0, 20_000);
    eprintln!("K: RaptorQ {real:.5}, model {model:.5}");
    assert!((0.0022..0.0075).contains(&real), "RaptorQ at K: {real}");
    assert!((0.0022..0.0060).contains(&model), "model at K: {model}");
    assert!((model_failure_probability(0) - 1.0 / 256.0).abs() < 1e-12);
    // K+1 and K+2: failures are rare enough (1.5e-5, 6e-8) that 5,000 trials
    // see none from either.
    for h in [1, 2] {
        let (real, model) = failure_rates(h, 5_000);
        eprintln!("K+{h}: RaptorQ {real:.5}, model {model:.5}");
        assert!(real <= 0.0006 && model <= 0.0006, "K+{h}: {real} {model}");
    }
}

#[test]
fn model_always_decodes_from_all_source_symbols_and_carries_no_data() {
    let oti = Oti::for_object(4000, 40, 100, 4).unwrap();
    let block = oti.block(0).unwrap();
    let data = vec![7u8; 4000];
    let esis: Vec<u32> = (0..100).rev().collect();
    assert!(decodes(&Model, &oti, &data, &esis));
    let mut dec = Model.decoder(&oti, &block).unwrap();
    let sym = vec![0u8; 40];
    for esi in 0..99 {
        assert_eq!(dec.push(esi, &sym).unwrap(), Push::Stored);
    }
    assert_eq!(dec.push(5, &sym).unwrap(), Push::Duplicate);
    assert_eq!(dec.needed(), 1);
    assert_eq!(dec.buffered_bytes(), 4000);
    assert_eq!(dec.push(99, &sym).unwrap(), Push::Decoded);
    assert_eq!(dec.take_decoded(), Some(Vec::new()));
    assert!(!Model.carries_data());
    // Hostile input is refused as by the real codec.
    let mut dec = Model.decoder(&oti, &block).unwrap();
    assert!(dec.push(0, &[0u8; 39]).is_err());
    assert!(dec.push(1 << 24, &sym).is_err());
}
