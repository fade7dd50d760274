//! `groupcast sim` and `groupcast demo`.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use groupcast::{FecId, Rounds, SenderConfig};
use groupcast_sim::{LinkConfig, SimConfig, SimReport, Simulation, carousel_overhead};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};

use crate::units::{parse_probability, parse_rate, parse_size};

/// Loss-recovery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Loop-and-repeat: source symbols, then rounds of fresh repair symbols; no back channel.
    Carousel,
    /// ARQ without FEC: source symbols once, then replays of the ESIs receivers report missing.
    Nack,
    /// Source symbols (plus --overhead proactive repair), then as many fresh repair symbols
    /// per block as the neediest receiver reports.
    Hybrid,
}

impl Mode {
    /// The protocol core's mode.
    pub fn core(self) -> groupcast::Mode {
        match self {
            Mode::Carousel => groupcast::Mode::Carousel,
            Mode::Nack => groupcast::Mode::Nack,
            Mode::Hybrid => groupcast::Mode::Hybrid,
        }
    }

    fn name(self) -> &'static str {
        self.core().name()
    }
}

/// FEC scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fec {
    /// RaptorQ (RFC 6330).
    Raptorq,
    /// No FEC: plain replication, a carousel of source symbols.
    Nocode,
}

/// Flags of `groupcast sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Loss-recovery mode.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: Mode,
    /// Number of receivers.
    #[arg(long, default_value_t = 10)]
    pub receivers: usize,
    /// Independent loss probability on each receiver's link, 0 to below 1.
    #[arg(long, default_value = "0.1", value_parser = parse_probability)]
    pub loss: f64,
    /// Object size, e.g. 32MiB, 100MB or 4096.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub size: u64,
    /// Symbol size T in bytes (a multiple of 4); default: the most that fits 1232-byte datagrams (1188).
    #[arg(long)]
    pub symbol_size: Option<u16>,
    /// Wanted source symbols per block (K).
    #[arg(long, default_value_t = 1000)]
    pub block_symbols: u32,
    /// Sending rate in bits/s, e.g. 100M or 1G (simulated time only).
    #[arg(long, default_value = "100M", value_parser = parse_rate)]
    pub rate: u64,
    /// Seed of every random choice: the same seed gives the same result.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First-round repair share per block; default in carousel mode: enough for K+2 symbols
    /// three standard deviations below the mean at --loss; in hybrid mode 0 (repair on
    /// request); nack mode sends none.
    #[arg(long)]
    pub overhead: Option<f64>,
    /// Repair share of each later carousel round.
    #[arg(long, default_value_t = 0.05)]
    pub round_repair: f64,
    /// Blocks interleaved together.
    #[arg(long, default_value_t = 16)]
    pub interleave: u32,
    /// Probability that a packet is held back and overtaken (reordering).
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub reorder: f64,
    /// Probability that a packet arrives twice.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub duplicate: f64,
    /// One-way delay of every link, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub delay_ms: f64,
    /// FEC scheme.
    #[arg(long, value_enum, default_value = "raptorq")]
    pub fec: Fec,
    /// A shared bottleneck in front of every receiver, in bits/s (e.g. 50M); its
    /// FIFO queue drops at the tail.
    #[arg(long, value_parser = parse_rate)]
    pub bottleneck: Option<u64>,
    /// Capacity of the bottleneck's queue, e.g. 64KiB.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub queue: u64,
    /// Print one JSON object with the results instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `groupcast demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of receivers.
    #[arg(long, default_value_t = 20)]
    pub receivers: usize,
    /// Independent loss probability per receiver, 0 to below 1.
    #[arg(long, default_value = "0.1", value_parser = parse_probability)]
    pub loss: f64,
    /// Object size, e.g. 32MiB or 100MB.
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    pub size: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl From<&DemoArgs> for SimArgs {
    fn from(d: &DemoArgs) -> Self {
        SimArgs {
            mode: Mode::Carousel,
            receivers: d.receivers,
            loss: d.loss,
            size: d.size,
            symbol_size: None,
            block_symbols: 1000,
            rate: 1_000_000_000,
            seed: d.seed,
            overhead: None,
            round_repair: 0.05,
            interleave: 16,
            reorder: 0.0,
            duplicate: 0.0,
            delay_ms: 10.0,
            fec: Fec::Raptorq,
            bottleneck: None,
            queue: 64 * 1024,
            json: false,
        }
    }
}

struct Outcome {
    report: SimReport,
    wall: Duration,
    symbol_size: u16,
    block_symbols: u32,
}

const MAX_SIM_SIZE: u64 = 4 << 30;

fn run(args: &SimArgs, show_progress: bool) -> Result<Outcome, String> {
    if args.receivers == 0 {
        return Err("--receivers must be at least 1".into());
    }
    if args.size > MAX_SIM_SIZE {
        return Err(format!(
            "--size {} is above the simulator's limit of 4 GiB (the object is held in memory)",
            args.size
        ));
    }
    if !(0.0..=60_000.0).contains(&args.delay_ms) {
        return Err("--delay-ms must lie between 0 and 60000".into());
    }
    let block_symbols = args
        .block_symbols
        .clamp(1, groupcast_fec::MAX_SOURCE_SYMBOLS_PER_BLOCK);
    let overhead = args.overhead.unwrap_or_else(|| match args.mode {
        Mode::Carousel => carousel_overhead(args.loss, block_symbols),
        Mode::Nack | Mode::Hybrid => 0.0,
    });
    let sender = SenderConfig {
        session: groupcast::SessionId::from_seed(args.seed),
        symbol_size: args.symbol_size,
        block_symbols,
        fec: match args.fec {
            Fec::Raptorq => FecId::RaptorQ,
            Fec::Nocode => FecId::NoCode,
        },
        repair_overhead: overhead,
        round_repair: args.round_repair,
        rounds: Rounds::Unlimited,
        rate: Some((args.rate / 8).max(1)),
        interleave: args.interleave,
        mode: args.mode.core(),
        ..SenderConfig::default()
    };
    let symbol_size = sender.effective_symbol_size();
    let mut sim = Simulation::new(SimConfig {
        receivers: args.receivers,
        link: LinkConfig {
            loss: args.loss,
            reorder: args.reorder,
            duplicate: args.duplicate,
            delay: Duration::from_secs_f64(args.delay_ms / 1000.0),
            ..LinkConfig::default()
        },
        bottleneck: args.bottleneck.map(|b| groupcast_sim::Bottleneck {
            rate: (b / 8).max(1),
            queue_bytes: args.queue,
        }),
        seed: args.seed,
        sender,
        ..SimConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let mut data = vec![0u8; args.size as usize];
    rand_chacha::ChaCha8Rng::seed_from_u64(args.seed).fill(&mut data[..]);
    sim.add_object(data, "demo.bin");

    let bar = if show_progress {
        let bar = ProgressBar::new(args.receivers as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} receivers complete {pos}/{len} {bar:30} {msg} [{elapsed}]",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let report = sim
        .run(|t, done, packets| {
            bar.set_position(done as u64);
            bar.set_message(format!("simulated {t:.2} s, {packets} packets sent"));
        })
        .map_err(|e| e.to_string())?;
    let wall = started.elapsed();
    bar.finish_and_clear();
    Ok(Outcome {
        report,
        wall,
        symbol_size,
        block_symbols,
    })
}

fn json(args: &SimArgs, o: &Outcome) -> serde_json::Value {
    let r = &o.report;
    let bound = args.size as f64 / (1.0 - args.loss);
    let all_done = r.completed_receivers == r.receivers;
    serde_json::json!({
        "mode": args.mode.name(),
        "receivers": r.receivers,
        "loss": args.loss,
        "size": args.size,
        "symbol_size": o.symbol_size,
        "block_symbols": o.block_symbols,
        "seed": args.seed,
        "completed_receivers": r.completed_receivers,
        "identical_receivers": r.identical_receivers,
        "source_symbols": r.source_symbols,
        "symbols_sent": r.symbols_sent,
        "repair_symbols": r.repair_symbols,
        "transmissions_per_symbol": if r.source_symbols > 0 { r.symbols_sent as f64 / r.source_symbols as f64 } else { 0.0 },
        "packets_sent": r.packets_sent,
        "bytes_sent": r.bytes_sent,
        "symbols_sent_total": r.symbols_sent_total,
        "bytes_sent_total": r.bytes_sent_total,
        "bound_bytes": bound,
        "completion_time_max_s": if all_done { r.completion_quantile(1.0) } else { None },
        "completion_time_p50_s": r.completion_quantile(0.5),
        "nacks_sent": r.nacks_sent,
        "nacks_suppressed": r.nacks_suppressed,
        "nacks_received": r.nacks_received,
        "status_sent": r.status_sent,
        "sim_time_s": r.sim_time_s,
        "wall_time_s": o.wall.as_secs_f64(),
        "trace_hash": r.trace_hash,
        "peak_receiver_buffer_bytes": r.per_receiver.iter().map(|p| p.peak_buffered_bytes).max().unwrap_or(0),
    })
}

fn check(o: &Outcome) -> Result<(), String> {
    let r = &o.report;
    if r.completed_receivers < r.receivers {
        return Err(format!(
            "{} of {} receivers did not complete",
            r.receivers - r.completed_receivers,
            r.receivers
        ));
    }
    if r.identical_receivers < r.receivers {
        return Err(format!(
            "{} of {} receivers' copies differ from the source",
            r.receivers - r.identical_receivers,
            r.receivers
        ));
    }
    Ok(())
}

/// `groupcast sim`.
pub fn sim(args: &SimArgs) -> Result<(), String> {
    let o = run(args, !args.json)?;
    if args.json {
        println!("{}", json(args, &o));
    } else {
        summary(args, &o);
    }
    check(&o)
}

fn summary(args: &SimArgs, o: &Outcome) {
    let r = &o.report;
    let bound = args.size as f64 / (1.0 - args.loss);
    println!(
        "{} receivers, {:.1}% loss, {} bytes: {} completed, {} byte-identical",
        r.receivers,
        args.loss * 100.0,
        args.size,
        r.completed_receivers,
        r.identical_receivers
    );
    println!(
        "needed {} symbols for {} source symbols ({:.3} transmissions per symbol), {} bytes = {:.3} x the bound size/(1-loss), headers of {} bytes per packet included",
        r.symbols_sent,
        r.source_symbols,
        r.symbols_sent as f64 / r.source_symbols.max(1) as f64,
        r.bytes_sent,
        r.bytes_sent as f64 / bound.max(1.0),
        groupcast::wire::DATA_OVERHEAD
    );
    if r.nacks_sent > 0 || r.status_sent > 0 {
        println!(
            "feedback: {} NACK packets ({:.2} per block), {} block requests suppressed, {} STATUS packets",
            r.nacks_sent,
            r.nacks_sent as f64 / blocks_of(args, o).max(1) as f64,
            r.nacks_suppressed,
            r.status_sent
        );
    }
    if let (Some(p50), Some(max)) = (r.completion_quantile(0.5), r.completion_quantile(1.0)) {
        println!(
            "completion (simulated): p50 {p50:.3} s, max {max:.3} s; wall time {:.2} s",
            o.wall.as_secs_f64()
        );
    }
}

/// Source blocks of the simulated object.
fn blocks_of(args: &SimArgs, o: &Outcome) -> u64 {
    let k = o.block_symbols as u64 * o.symbol_size as u64;
    args.size.div_ceil(k.max(1))
}

/// `groupcast demo`.
pub fn demo(args: &DemoArgs) -> Result<(), String> {
    let sim_args = SimArgs::from(args);
    println!(
        "groupcast demo: {} bytes to {} receivers, each losing {:.0}% of packets independently.",
        args.size,
        args.receivers,
        args.loss * 100.0
    );
    println!(
        "Real RaptorQ, real packets and real BLAKE3 verification, over a simulated network.\n"
    );
    let o = run(&sim_args, true)?;
    let r = &o.report;
    let k_total = r.source_symbols;
    println!(
        "{:>8}  {:>12}  {:>10}  {:>10}  {:>9}  {:>9}",
        "receiver", "complete at", "received", "needed", "overhead", "identical"
    );
    let rows: Vec<usize> = if r.per_receiver.len() <= 40 {
        (0..r.per_receiver.len()).collect()
    } else {
        // Show the slowest and fastest few of a large group.
        let mut idx: Vec<usize> = (0..r.per_receiver.len()).collect();
        idx.sort_by(|&a, &b| {
            let t = |i: usize| r.per_receiver[i].completion_time_s.unwrap_or(f64::INFINITY);
            t(a).total_cmp(&t(b))
        });
        let mut v: Vec<usize> = idx[..5].to_vec();
        v.extend_from_slice(&idx[idx.len() - 5..]);
        v
    };
    for (n, &i) in rows.iter().enumerate() {
        if r.per_receiver.len() > 40 && n == 5 {
            println!("{:>8}", "...");
        }
        let p = &r.per_receiver[i];
        println!(
            "{:>8}  {:>12}  {:>10}  {:>10}  {:>8.2}%  {:>9}",
            i,
            p.completion_time_s
                .map_or("-".to_string(), |t| format!("{t:.3} s")),
            p.symbols_accepted,
            k_total,
            (p.symbols_accepted as f64 / k_total.max(1) as f64 - 1.0) * 100.0,
            if p.identical { "yes" } else { "NO" }
        );
    }
    let bound = args.size as f64 / (1.0 - args.loss);
    println!();
    println!(
        "received: distinct symbols each receiver decoded from; needed: the object's source symbols (K); \
overhead: received/needed - 1."
    );
    println!(
        "Until the packet that completed the last receiver, the sender sent {} bytes in {} packets: \
{:.3} x the bound size/(1-loss) = {:.0} bytes (headers of {} bytes per packet included).",
        r.bytes_sent,
        r.packets_sent,
        r.bytes_sent as f64 / bound,
        bound,
        groupcast::wire::DATA_OVERHEAD
    );
    println!(
        "Simulated time {:.3} s at 1 Gbit/s; wall time {:.2} s.",
        r.sim_time_s,
        o.wall.as_secs_f64()
    );
    check(&o)?;
    println!(
        "All {} receivers hold a byte-identical, BLAKE3-verified copy.",
        r.receivers
    );
    Ok(())
}
