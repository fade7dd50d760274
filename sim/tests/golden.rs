//! Golden runs: a documented list of simulated scenarios whose trace hashes
//! and reports are held in `tests/golden.txt`. A change to the core that is
//! meant to keep behaviour (in timers, parts or wire views, say)
//! must keep every line; a change that alters behaviour must say why in the
//! commit that rewrites them:
//!
//! ```sh
//! GROUPCAST_BLESS=1 cargo test -p groupcast-sim --test golden
//! ```
//!
//! The scenarios (each with seed 7):
//! - `carousel`: 20 receivers, 5% loss, 3 rounds of 20% fresh repair, 400 KB;
//! - `nack`: 50 receivers, 5% loss, ARQ replays, 200 KB;
//! - `hybrid`: 50 receivers, 10% loss, fresh repair on NACK, 400 KB;
//! - `hybrid-bursts`: 20 receivers, Gilbert–Elliott bursts, 2 ms jitter,
//!   reordering and duplicates, 400 KB;
//! - `hybrid-1000`: 1000 receivers, 1% loss, 100 KB.

use std::time::Duration;

use groupcast::{Mode, Rounds, SenderConfig};
use groupcast_sim::{Burst, LinkConfig, SimConfig, SimReport, Simulation};

const T: usize = 64;
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden.txt");

fn object(len: usize) -> Vec<u8> {
    // A fixed pattern: the golden runs must not depend on an RNG crate's version.
    (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect()
}

/// Written out here, not shared with models.rs: the golden runs must not move
/// when another test's settings do.
fn config(mode: Mode, receivers: usize, loss: f64) -> SimConfig {
    SimConfig {
        receivers,
        link: LinkConfig {
            loss,
            ..LinkConfig::default()
        },
        seed: 7,
        sender: SenderConfig {
            mode,
            rate: Some(10_000_000),
            max_datagram: groupcast::wire::DATA_OVERHEAD + T,
            block_symbols: 100,
            repair_overhead: if mode == Mode::Carousel { 0.3 } else { 0.0 },
            round_repair: 0.2,
            rounds: if mode == Mode::Carousel {
                Rounds::Fixed(3)
            } else {
                Rounds::Unlimited
            },
            ..SenderConfig::default()
        },
        time_limit: Duration::from_secs(120),
        ..SimConfig::default()
    }
}

fn scenarios() -> Vec<(&'static str, SimConfig, usize)> {
    let mut bursts = config(Mode::Hybrid, 20, 0.0);
    bursts.link.burst = Some(Burst {
        p_enter: 0.01,
        p_leave: 0.2,
    });
    bursts.link.jitter = Duration::from_millis(2);
    bursts.link.reorder = 0.02;
    bursts.link.duplicate = 0.01;
    vec![
        ("carousel", config(Mode::Carousel, 20, 0.05), 400_000),
        ("nack", config(Mode::Nack, 50, 0.05), 200_000),
        ("hybrid", config(Mode::Hybrid, 50, 0.10), 400_000),
        ("hybrid-bursts", bursts, 400_000),
        ("hybrid-1000", config(Mode::Hybrid, 1000, 0.01), 100_000),
    ]
}

/// One line: the name, the trace hash, and the report's counts.
fn line(name: &str, r: &SimReport) -> String {
    format!(
        "{name} {} completed={} identical={} symbols_sent={} repair={} packets={} bytes={} \
steps={} deliveries={} nacks={}/{}/{} status={} sim_time_us={}",
        r.trace_hash,
        r.completed_receivers,
        r.identical_receivers,
        r.symbols_sent,
        r.repair_symbols,
        r.packets_sent,
        r.bytes_sent,
        r.steps,
        r.deliveries,
        r.nacks_sent,
        r.nacks_suppressed,
        r.nacks_received,
        r.status_sent,
        (r.sim_time_s * 1e6).round() as u64,
    )
}

#[test]
fn golden_scenarios_keep_their_trace_hashes() {
    let mut got = Vec::new();
    for (name, cfg, size) in scenarios() {
        let receivers = cfg.receivers;
        let mut sim = Simulation::new(cfg).unwrap();
        sim.add_object(object(size), "o");
        let r = sim.run(|_, _, _| {}).unwrap();
        assert_eq!(r.identical_receivers, receivers, "{name}");
        got.push(line(name, &r));
    }
    let got = got.join("\n") + "\n";
    if std::env::var("GROUPCAST_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(GOLDEN, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(
            g, w,
            "a golden run changed; if on purpose, rewrite tests/golden.txt with \
GROUPCAST_BLESS=1 and say why in the commit"
        );
    }
    assert_eq!(got.lines().count(), want.lines().count(), "{GOLDEN}");
}
