//! The simulator's own speed: receptions simulated per second (one packet
//! handed to one receiver, through the real Receiver code), for a hybrid
//! transfer at 10% loss with the model codec, at 100 and 2000 receivers (the
//! latter fans out on worker threads). Also the real-RaptorQ codec at 100
//! receivers, for comparison.
//!
//! `cargo bench -p groupcast-benches --bench sim`

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use groupcast::{CodecSet, Mode, SenderConfig};
use groupcast_benches::object;
use groupcast_sim::{LinkConfig, SimConfig, SimReport, Simulation};

const SIZE: usize = 2_000_000;

fn scenario(receivers: usize, codecs: CodecSet) -> SimReport {
    let mut sim = Simulation::new(SimConfig {
        receivers,
        link: LinkConfig {
            loss: 0.1,
            ..LinkConfig::default()
        },
        sender: SenderConfig {
            mode: Mode::Hybrid,
            rate: Some(100_000_000),
            repair_overhead: 0.0,
            ..SenderConfig::default()
        },
        codecs,
        time_limit: Duration::from_secs(600),
        ..SimConfig::default()
    })
    .unwrap();
    sim.add_object(object(SIZE, 1), "bench.bin");
    let r = sim.run(|_, _, _| {}).unwrap();
    assert_eq!(r.completed_receivers, receivers);
    r
}

fn sim(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    for (receivers, codecs) in [
        (100, CodecSet::Model),
        (2000, CodecSet::Model),
        (100, CodecSet::Real),
    ] {
        let deliveries = scenario(receivers, codecs).deliveries;
        g.throughput(Throughput::Elements(deliveries));
        g.bench_with_input(
            BenchmarkId::new(format!("receptions/{}", codecs.name()), receivers),
            &receivers,
            |b, &r| b.iter(|| scenario(r, codecs)),
        );
    }
    g.finish();
}

criterion_group!(benches, sim);
criterion_main!(benches);
