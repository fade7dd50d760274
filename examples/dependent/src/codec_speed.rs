//! Times a RaptorQ encoder build and a solve of one block per K given (5%
//! of the source symbols lost), as this crate's build runs them: wall time,
//! one run each. `cargo run --bin codec-speed -- 64 256 850`.

use std::time::Instant;

use groupcast_fec::{FecId, Oti, codec_for};

fn main() {
    let t = 1228u16;
    for k in std::env::args().skip(1).map(|a| a.parse::<u32>().expect("K")) {
        let codec = codec_for(FecId::RaptorQ);
        let data: Vec<u8> = (0..k * t as u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let oti = Oti::for_object(data.len() as u64, t, k, 4).expect("an OTI");
        let block = oti.block(0).expect("one block");
        let k = block.source_symbols;
        let started = Instant::now();
        let mut enc = codec.encoder(&oti, &block, &data).expect("an encoder");
        let mut symbol = vec![0u8; t as usize];
        enc.write_symbol(k, &mut symbol).expect("a repair symbol");
        let encode = started.elapsed().as_secs_f64();
        let mut dec = codec.decoder(&oti, &block).expect("a decoder");
        let lost = (k / 20).max(1);
        let started = Instant::now();
        for esi in (lost..k).chain(k..k + lost + 4) {
            enc.write_symbol(esi, &mut symbol).expect("a symbol");
            dec.push(esi, &symbol).expect("taken");
            if dec.is_decoded() {
                break;
            }
        }
        let solve = started.elapsed().as_secs_f64();
        assert!(dec.take_decoded().expect("decoded") == data, "decoded wrong");
        let mb = data.len() as f64 / 1e6;
        println!(
            "K = {k}: encoder {encode:.2} s ({:.2} MB/s), solve {solve:.2} s ({:.2} MB/s)",
            mb / encode,
            mb / solve
        );
    }
}
