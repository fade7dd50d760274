//! Nack and hybrid modes through the simulator, against the analytic values
//! of Nonnenmacher, Biersack and Towsley (SIGCOMM 1997): ARQ's expected
//! transmissions per packet, E[M] =
//! Σ_{i≥0} (1 − (1 − p^i)^R), and the ideal code's value for a block size.

use std::time::Duration;

use groupcast::{Mode, SenderConfig};
use groupcast_sim::{LinkConfig, SimConfig, SimReport, Simulation};

/// A reproducible pseudo-random object: the workspace's one generator.
use groupcast_fec::pseudo_random_bytes as object;

const T: usize = 64;

fn config(mode: Mode, receivers: usize, loss: f64, k: u32, seed: u64) -> SimConfig {
    SimConfig {
        receivers,
        link: LinkConfig {
            loss,
            delay: Duration::from_millis(10),
            ..LinkConfig::default()
        },
        seed,
        sender: SenderConfig {
            mode,
            rate: Some(10_000_000),
            max_datagram: groupcast::wire::DATA_OVERHEAD + T,
            block_symbols: k,
            repair_overhead: 0.0,
            ..SenderConfig::default()
        },
        time_limit: Duration::from_secs(600),
        ..SimConfig::default()
    }
}

/// `blocks` blocks of `k` symbols of T bytes, to every receiver, byte-identical.
fn run(cfg: SimConfig, blocks: usize) -> SimReport {
    let receivers = cfg.receivers;
    let k = cfg.sender.block_symbols as usize;
    let seed = cfg.seed;
    let mut sim = Simulation::new(cfg).unwrap();
    sim.add_object(object(T * k * blocks, seed), "o");
    let report = sim.run(|_, _, _| {}).unwrap();
    assert_eq!(report.completed_receivers, receivers, "{report:#?}");
    assert_eq!(report.identical_receivers, receivers);
    report
}

fn per_source(r: &SimReport) -> f64 {
    r.symbols_sent as f64 / r.source_symbols as f64
}

/// ARQ's E[M] for R receivers behind independent loss p.
fn arq_expected(receivers: usize, p: f64) -> f64 {
    (0..64)
        .map(|i| 1.0 - (1.0 - p.powi(i)).powi(receivers as i32))
        .sum()
}

/// Nack mode reproduces ARQ's E[M] = 2.096
/// for 1000 receivers at 1% loss, within 3%.
#[test]
fn nack_mode_reproduces_arq_expected_transmissions() {
    let anchor = arq_expected(1000, 0.01);
    assert!((anchor - 2.096).abs() < 0.001, "{anchor}");
    let r = run(config(Mode::Nack, 1000, 0.01, 100, 3), 10);
    let m = per_source(&r);
    eprintln!(
        "nack: E[M] {m:.4} (ARQ {anchor:.4}), {} NACKs",
        r.nacks_sent
    );
    assert!((m / anchor - 1.0).abs() < 0.03, "E[M] {m} vs {anchor}");
}

/// Hybrid stays within 5% of the ideal code for k = 100
/// (1.056), RaptorQ's overhead included, with fewer than 3 NACK packets per block.
#[test]
fn hybrid_mode_stays_near_the_ideal_code_with_few_nacks() {
    let blocks = 50;
    let r = run(config(Mode::Hybrid, 1000, 0.01, 100, 4), blocks);
    let m = per_source(&r);
    let per_block = r.nacks_sent as f64 / blocks as f64;
    eprintln!(
        "hybrid: E[M] {m:.4} (ideal 1.056), {} NACKs = {per_block:.2} per block, {} suppressed, GRTT {} us",
        r.nacks_sent, r.nacks_suppressed, r.sender_grtt_us
    );
    assert!((m / 1.056 - 1.0).abs() < 0.05, "E[M] {m}");
    assert!(per_block < 3.0, "{per_block} NACKs per block");
    assert!(r.nacks_suppressed > r.nacks_sent, "suppression did nothing");
    assert_eq!(r.nacks_received, r.nacks_sent.min(r.nacks_received));
}

/// Small groups in both modes, with reordering and duplication as well.
#[test]
fn nack_and_hybrid_survive_reordering_and_duplication() {
    for mode in [Mode::Nack, Mode::Hybrid] {
        let mut cfg = config(mode, 20, 0.1, 64, 7);
        cfg.link.reorder = 0.1;
        cfg.link.duplicate = 0.05;
        cfg.link.jitter = Duration::from_millis(2);
        let r = run(cfg, 12);
        assert!(r.nacks_sent > 0);
        assert!(r.status_sent > 0);
    }
}

/// The same seed gives the same run, feedback included.
#[test]
fn feedback_runs_are_deterministic() {
    let a = run(config(Mode::Hybrid, 30, 0.05, 50, 11), 8);
    let b = run(config(Mode::Hybrid, 30, 0.05, 50, 11), 8);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.symbols_sent, b.symbols_sent);
}

/// The sender's GRTT measures the path: within 2 × the round trip + 1 ms at
/// round trips of 1, 10 and 100 ms, with 10% loss (the repair, NACKs and
/// decodes that come with it), and never below the round trip itself.
#[test]
fn grtt_measures_the_path() {
    for rtt_ms in [1.0f64, 10.0, 100.0] {
        let mut cfg = config(Mode::Hybrid, 20, 0.1, 100, 3);
        cfg.link.delay = Duration::from_secs_f64(rtt_ms / 2000.0);
        let r = run(cfg, 400);
        let grtt_ms = r.sender_grtt_us as f64 / 1000.0;
        eprintln!("GRTT {grtt_ms} ms on a {rtt_ms} ms round trip");
        assert!(
            grtt_ms <= 2.0 * rtt_ms + 1.0 && grtt_ms >= rtt_ms * 0.99,
            "GRTT {grtt_ms} ms on a {rtt_ms} ms round trip"
        );
    }
}
