//! End-to-end transfers through the simulator, driving the real protocol core.

use std::time::Duration;

use groupcast::{ReceiverConfig, Rounds, SenderConfig};
use groupcast_sim::{LinkConfig, SimConfig, Simulation, carousel_overhead};

/// A reproducible pseudo-random object: the workspace's one generator.
use groupcast_fec::pseudo_random_bytes as object;

/// 64 MiB to 10 receivers through 20% loss, 10% reordering and 2%
/// duplication, byte-identical, with buffered memory bounded well below the
/// object size.
#[test]
fn sixty_four_mib_to_ten_receivers_through_loss_reorder_and_duplication() {
    const SIZE: usize = 64 << 20;
    let max_blocks_in_flight = 24;
    let sender = SenderConfig {
        rate: Some(1_000_000_000 / 8),
        rounds: Rounds::Unlimited,
        repair_overhead: carousel_overhead(0.2, 1000),
        round_repair: 0.05,
        ..SenderConfig::default()
    };
    let receiver = ReceiverConfig {
        max_blocks_in_flight,
        ..ReceiverConfig::default()
    };
    let t = sender.effective_symbol_size();
    let bound = receiver.buffer_bound(t, 1000);
    let mut sim = Simulation::new(SimConfig {
        receivers: 10,
        link: LinkConfig {
            loss: 0.2,
            reorder: 0.1,
            duplicate: 0.02,
            delay: Duration::from_millis(5),
            jitter: Duration::from_micros(200),
            reorder_delay: Duration::from_millis(3),
            ..LinkConfig::default()
        },
        seed: 64,
        sender,
        receiver,
        ..SimConfig::default()
    })
    .unwrap();
    sim.add_object(object(SIZE, 64), "big.bin");
    let report = sim.run(|_, _, _| {}).unwrap();
    assert_eq!(report.completed_receivers, 10, "{report:#?}");
    assert_eq!(report.identical_receivers, 10);
    for r in &report.per_receiver {
        // The documented bound (ReceiverConfig::buffer_bound), and far below the object.
        assert!(
            r.peak_buffered_bytes <= bound,
            "{} > {bound}",
            r.peak_buffered_bytes
        );
        assert!(r.peak_buffered_bytes < SIZE as u64 / 2);
        assert!(r.duplicates > 0, "duplication must be exercised");
        assert_eq!(r.packets_rejected, 0);
    }
    // Loss was real: more was sent than the object holds.
    assert!(report.symbols_sent as f64 > report.source_symbols as f64 * 1.25);
}

#[test]
fn same_seed_same_report_and_trace() {
    let run = |seed: u64| {
        let mut sim = Simulation::new(SimConfig {
            receivers: 7,
            link: LinkConfig {
                loss: 0.15,
                reorder: 0.05,
                duplicate: 0.05,
                jitter: Duration::from_millis(1),
                ..LinkConfig::default()
            },
            seed,
            sender: SenderConfig {
                rate: Some(10_000_000),
                rounds: Rounds::Unlimited,
                repair_overhead: 0.2,
                block_symbols: 100,
                ..SenderConfig::default()
            },
            ..SimConfig::default()
        })
        .unwrap();
        sim.add_object(object(500_000, 1), "a");
        sim.add_object(object(123_457, 2), "b");
        sim.run(|_, _, _| {}).unwrap()
    };
    let a = run(5);
    let b = run(5);
    let c = run(6);
    assert_eq!(a, b);
    assert_eq!(a.completed_receivers, 7);
    assert_eq!(a.identical_receivers, 7);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn fixed_rounds_end_the_run_even_if_receivers_cannot_finish() {
    let mut sim = Simulation::new(SimConfig {
        receivers: 3,
        link: LinkConfig {
            loss: 0.5,
            ..LinkConfig::default()
        },
        sender: SenderConfig {
            rate: Some(10_000_000),
            rounds: Rounds::Fixed(1),
            repair_overhead: 0.0,
            ..SenderConfig::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    sim.add_object(object(200_000, 3), "x");
    let report = sim.run(|_, _, _| {}).unwrap();
    assert_eq!(report.completed_receivers, 0);
    assert!(report.per_receiver.iter().all(|r| r.symbols_needed > 0));
    assert_eq!(report.symbols_sent, report.source_symbols);
}

#[test]
fn overhead_grows_with_loss() {
    assert!(carousel_overhead(0.0, 1000) < 0.01);
    let o10 = carousel_overhead(0.1, 1000);
    let o30 = carousel_overhead(0.3, 1000);
    assert!(o10 > 0.111 && o10 < 0.2, "{o10}");
    assert!(o30 > 0.43 && o30 < 0.6, "{o30}");
}

/// With no loss and no repair, exactly the source symbols are needed, however
/// many more were on the wire when the last receiver completed.
#[test]
fn packets_in_flight_are_not_counted_as_needed() {
    let mut sim = Simulation::new(SimConfig {
        receivers: 4,
        link: LinkConfig {
            delay: Duration::from_millis(50),
            ..LinkConfig::default()
        },
        sender: SenderConfig {
            rate: Some(100_000_000),
            rounds: Rounds::Unlimited,
            repair_overhead: 0.0,
            round_repair: 0.1,
            ..SenderConfig::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    sim.add_object(object(3_000_000, 9), "x");
    let r = sim.run(|_, _, _| {}).unwrap();
    assert_eq!(r.completed_receivers, 4);
    assert_eq!(r.symbols_sent, r.source_symbols);
    assert_eq!(r.repair_symbols, 0);
    assert!(r.symbols_sent_total > r.symbols_sent + 1000, "{r:?}");
    assert!(r.bytes_sent_total > r.bytes_sent);
}

/// A shared bottleneck at half the sending rate drops at the tail of its queue;
/// the carousel still gets everyone through, no faster than the bottleneck allows.
#[test]
fn bottleneck_queue_drops_and_paces_delivery() {
    let size = 2_000_000usize;
    let bottleneck_rate = 5_000_000u64;
    let mut sim = Simulation::new(SimConfig {
        receivers: 5,
        bottleneck: Some(groupcast_sim::Bottleneck {
            rate: bottleneck_rate,
            queue_bytes: 64 * 1024,
        }),
        sender: SenderConfig {
            rate: Some(2 * bottleneck_rate),
            rounds: Rounds::Unlimited,
            repair_overhead: 0.0,
            round_repair: 0.5,
            ..SenderConfig::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    sim.add_object(object(size, 11), "b");
    let r = sim.run(|_, _, _| {}).unwrap();
    assert_eq!(r.identical_receivers, 5);
    // About half the packets were dropped at the queue, for everyone alike.
    assert!(
        r.symbols_sent as f64 > 1.8 * r.source_symbols as f64,
        "{r:?}"
    );
    let fastest = r.completion_quantile(0.0).unwrap();
    assert!(fastest >= size as f64 / bottleneck_rate as f64, "{fastest}");
}
