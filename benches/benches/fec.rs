//! FEC throughput: encode and decode 10 MB at T = 1200 with blocks of about 1000
//! symbols, at 0%, 10% and 30% loss. Throughput is in bytes of object per second.
//!
//! `cargo bench -p groupcast-benches --bench fec`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use groupcast_benches::{object, received_symbols, repair_for_loss};
use groupcast_fec::{FecId, Oti, Push, codec_for};

const SIZE: usize = 10_000_000;
const T: u16 = 1200;
const K: u32 = 1000;

fn fec(c: &mut Criterion) {
    let data = object(SIZE, 1);
    let oti = Oti::for_object(SIZE as u64, T, K, 4).unwrap();
    let codec = codec_for(FecId::RaptorQ);
    let blocks: Vec<_> = oti.blocks().collect();

    let mut g = c.benchmark_group("fec");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    for loss in [0.0, 0.1, 0.3] {
        // Encoding: build every block's encoder and emit its K source symbols
        // plus the repair a sender needs at this loss.
        g.bench_with_input(
            BenchmarkId::new("encode", format!("{}%", loss * 100.0)),
            &loss,
            |b, &p| {
                let mut sym = vec![0u8; T as usize];
                b.iter(|| {
                    for block in &blocks {
                        let mut enc = codec.encoder(&oti, block, &data[block.range()]).unwrap();
                        let n = block.source_symbols + repair_for_loss(block.source_symbols, p);
                        for esi in 0..n {
                            enc.write_symbol(esi, &mut sym).unwrap();
                        }
                    }
                })
            },
        );
        // Decoding: what a receiver behind this loss receives, in arrival order.
        let received: Vec<_> = blocks
            .iter()
            .map(|b| received_symbols(codec, &oti, b, &data[b.range()], loss, b.sbn as u64))
            .collect();
        g.bench_with_input(
            BenchmarkId::new("decode", format!("{}%", loss * 100.0)),
            &loss,
            |b, _| {
                b.iter(|| {
                    for (block, symbols) in blocks.iter().zip(&received) {
                        let mut dec = codec.decoder(&oti, block).unwrap();
                        for (esi, sym) in symbols {
                            if dec.push(*esi, sym).unwrap() == Push::Decoded {
                                break;
                            }
                        }
                        assert!(dec.take_decoded().is_some());
                    }
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, fec);
criterion_main!(benches);
