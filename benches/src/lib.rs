//! Shared fixtures for groupcast's criterion benchmarks (see `benches/`).
//!
//! Run them with `cargo bench -p groupcast-benches`.

use groupcast_fec::{BlockInfo, Codec, Oti};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A reproducible pseudo-random object: the workspace's one generator.
pub use groupcast_fec::pseudo_random_bytes as object;

/// A carousel sender of one round, no repair and no pacing, holding `data`
/// as its one object: what the core's own benches time.
pub fn carousel_sender(data: &[u8]) -> groupcast::Sender {
    let mut s = groupcast::Sender::new(groupcast::SenderConfig {
        mode: groupcast::Mode::Carousel,
        rounds: groupcast::Rounds::Fixed(1),
        repair_overhead: 0.0,
        rate: None,
        ..groupcast::SenderConfig::default()
    })
    .expect("valid config");
    s.add_object(data.to_vec(), "bench.bin").expect("object");
    s
}

/// Repair symbols per block a sender would add at loss `p` so that about K+2 arrive.
pub fn repair_for_loss(k: u32, p: f64) -> u32 {
    ((k as f64 + 2.0) / (1.0 - p)).ceil() as u32 - k
}

/// What one receiver got of one block at loss `p`: the ESIs and symbols that
/// survived, source symbols and the repair symbols that replace the lost ones,
/// in arrival order (shuffled).
pub fn received_symbols(
    codec: &dyn Codec,
    oti: &Oti,
    block: &BlockInfo,
    data: &[u8],
    p: f64,
    seed: u64,
) -> Vec<(u32, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = block.source_symbols;
    let mut enc = codec.encoder(oti, block, data).expect("valid block");
    let t = oti.symbol_size() as usize;
    let mut out = Vec::new();
    let mut esi = 0u32;
    // Keep going until K+2 symbols survive the loss.
    while out.len() < k as usize + 2 {
        if rng.random::<f64>() >= p {
            let mut sym = vec![0u8; t];
            enc.write_symbol(esi, &mut sym).expect("in range");
            out.push((esi, sym));
        }
        esi += 1;
    }
    out.shuffle(&mut rng);
    out
}
