//! `groupcast sim` and `groupcast demo`.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use groupcast::{FecId, Rounds, SenderConfig};
use groupcast_sim::{
    Burst, LinkConfig, Membership, SimConfig, SimReport, Simulation, carousel_overhead,
};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};

use crate::units::{
    LossList, parse_burst, parse_change, parse_loss_list, parse_probability, parse_rate, parse_size,
};

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

/// Which RaptorQ the simulation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecChoice {
    /// Real RaptorQ while receivers × size is at most 1 GiB, the model above.
    Auto,
    /// Real RaptorQ: every block decoded, every byte checked.
    Raptorq,
    /// RaptorQ's statistics without its work: decoding fails at K+h symbols with probability
    /// 256^-(h+1); no bytes are carried, so byte identity is not checked.
    Model,
}

/// Above this many bytes (receivers × size) `--codec auto` picks the model:
/// real RaptorQ decodes at roughly 0.6 GB/s on one core, so 1 GiB costs a
/// couple of seconds.
pub const AUTO_MODEL_THRESHOLD: u64 = 1 << 30;

impl CodecChoice {
    /// The codecs a run with `receivers` receivers of `size` bytes uses.
    pub fn resolve(self, receivers: usize, size: u64) -> groupcast::CodecSet {
        match self {
            CodecChoice::Raptorq => groupcast::CodecSet::Real,
            CodecChoice::Model => groupcast::CodecSet::Model,
            CodecChoice::Auto => {
                if (receivers as u64).saturating_mul(size) <= AUTO_MODEL_THRESHOLD {
                    groupcast::CodecSet::Real
                } else {
                    groupcast::CodecSet::Model
                }
            }
        }
    }
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
    /// Codec: real RaptorQ, or its statistical model for large runs; auto picks the model when
    /// receivers × size exceeds 1 GiB.
    #[arg(long, value_enum, default_value = "auto")]
    pub codec: CodecChoice,
    /// Gilbert–Elliott burst loss on every receiver's link, as P_ENTER,P_LEAVE: before each
    /// packet the link turns bad with probability P_ENTER and good again with P_LEAVE; every
    /// packet is lost while bad, and --loss applies while good. Bursts last 1/P_LEAVE packets.
    #[arg(long, value_parser = parse_burst, value_name = "P_ENTER,P_LEAVE")]
    pub burst: Option<(f64, f64)>,
    /// Loss per receiver for mixed groups: comma-separated probabilities, each optionally
    /// repeated with xN (e.g. 0.01x900,0.2x100). Receivers past the list's end use --loss.
    #[arg(long, value_parser = parse_loss_list, value_name = "LIST")]
    pub loss_list: Option<LossList>,
    /// Loss on the shared link between the sender and all receivers (the root of a tree): a
    /// packet lost there is lost to everyone; feedback to the sender crosses it too.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub upstream_loss: f64,
    /// How far a reordered packet falls back: it is held for the time this many full datagrams
    /// take at --rate, so about as many packets overtake it.
    #[arg(long, default_value_t = 3)]
    pub reorder_depth: u32,
    /// Extra delay per packet, drawn uniformly from 0 to this many milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub jitter_ms: f64,
    /// The last COUNT receivers join only at SECONDS of simulated time.
    #[arg(long, value_parser = parse_change, value_name = "COUNT@SECONDS")]
    pub join: Option<(usize, f64)>,
    /// The first COUNT receivers leave at SECONDS of simulated time, complete or not; the
    /// run then waits only for the others.
    #[arg(long, value_parser = parse_change, value_name = "COUNT@SECONDS")]
    pub leave: Option<(usize, f64)>,
    /// Hybrid: spare repair symbols sent beyond a NACK's need, at most one per 50 symbols of
    /// the block (on top of the need's expected loss at the receivers' average loss rate).
    #[arg(long, default_value_t = 2)]
    pub repair_margin: u32,
    /// Largest blocks each receiver decodes at once (memory per receiver).
    #[arg(long, default_value_t = 64)]
    pub max_blocks_in_flight: usize,
    /// Run every scenario of a TOML suite file instead (see docs/cli.md): each [[run]] table
    /// sets flags of this command by their long names, and array values expand into one run
    /// per combination. Flags given on the command line are the defaults.
    #[arg(long, value_name = "FILE.toml")]
    pub scenario: Option<std::path::PathBuf>,
    /// Print one JSON object with the results instead of a summary (one line per run).
    #[arg(long)]
    pub json: bool,
    /// Print CSV instead of a summary: a header, then one row per run.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
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
            codec: CodecChoice::Raptorq,
            burst: None,
            loss_list: None,
            upstream_loss: 0.0,
            reorder_depth: 3,
            jitter_ms: 0.0,
            join: None,
            leave: None,
            max_blocks_in_flight: 64,
            repair_margin: 2,
            scenario: None,
            json: false,
            csv: false,
        }
    }
}

struct Outcome {
    report: SimReport,
    wall: Duration,
    symbol_size: u16,
    block_symbols: u32,
    codecs: groupcast::CodecSet,
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
    if !(0.0..=60_000.0).contains(&args.jitter_ms) {
        return Err("--jitter-ms must lie between 0 and 60000".into());
    }
    for (flag, change) in [("--join", args.join), ("--leave", args.leave)] {
        if let Some((n, _)) = change
            && n > args.receivers
        {
            return Err(format!(
                "{flag} names {n} receivers but there are only {}",
                args.receivers
            ));
        }
    }
    if args.max_blocks_in_flight == 0 {
        return Err("--max-blocks-in-flight must be at least 1".into());
    }
    let block_symbols = args
        .block_symbols
        .clamp(1, groupcast_fec::MAX_SOURCE_SYMBOLS_PER_BLOCK);
    let overhead = args.overhead.unwrap_or_else(|| match args.mode {
        Mode::Carousel => carousel_overhead(worst_loss(args), block_symbols),
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
        feedback: groupcast::FeedbackConfig {
            repair_margin: args.repair_margin,
            ..groupcast::FeedbackConfig::default()
        },
        ..SenderConfig::default()
    };
    let symbol_size = sender.effective_symbol_size();
    let codecs = args.codec.resolve(args.receivers, args.size);
    let datagram_time = sender.max_datagram as f64 / sender.rate.unwrap_or(1) as f64;
    let mut membership = Vec::new();
    if let Some((n, t)) = args.join {
        membership.push(Membership {
            first: args.receivers - n,
            count: n,
            join: Duration::from_secs_f64(t),
            leave: None,
        });
    }
    if let Some((n, t)) = args.leave {
        membership.push(Membership {
            first: 0,
            count: n,
            join: Duration::ZERO,
            leave: Some(Duration::from_secs_f64(t)),
        });
    }
    let mut sim = Simulation::new(SimConfig {
        receivers: args.receivers,
        link: LinkConfig {
            loss: args.loss,
            burst: args
                .burst
                .map(|(p_enter, p_leave)| Burst { p_enter, p_leave }),
            reorder: args.reorder,
            reorder_delay: Duration::from_secs_f64(datagram_time * args.reorder_depth as f64),
            duplicate: args.duplicate,
            delay: Duration::from_secs_f64(args.delay_ms / 1000.0),
            jitter: Duration::from_secs_f64(args.jitter_ms / 1000.0),
        },
        receiver_loss: args.loss_list.clone().map(|l| l.0).unwrap_or_default(),
        upstream_loss: args.upstream_loss,
        membership,
        codecs,
        receiver: groupcast::ReceiverConfig {
            max_blocks_in_flight: args.max_blocks_in_flight,
            ..groupcast::ReceiverConfig::default()
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
        codecs,
    })
}

/// The loss a receiver sees on average: its link's (burst included) and the
/// shared upstream link's, averaged over the group.
fn mean_loss(args: &SimArgs) -> f64 {
    let link = |p: f64| match args.burst {
        Some((p_enter, p_leave)) => Burst { p_enter, p_leave }.mean_loss(p),
        None => p,
    };
    let list = args.loss_list.as_ref().map_or(&[][..], |l| &l.0[..]);
    let n = args.receivers.max(1);
    let listed: f64 = list.iter().take(n).map(|&p| link(p)).sum();
    let rest = n.saturating_sub(list.len()) as f64 * link(args.loss);
    let per_link = (listed + rest) / n as f64;
    1.0 - (1.0 - per_link) * (1.0 - args.upstream_loss)
}

/// The loss of the worst receiver's path, for sizing a carousel's first round.
fn worst_loss(args: &SimArgs) -> f64 {
    let worst = args
        .loss_list
        .as_ref()
        .map_or(&[][..], |l| &l.0[..])
        .iter()
        .copied()
        .fold(args.loss, f64::max);
    let link = match args.burst {
        Some((p_enter, p_leave)) => Burst { p_enter, p_leave }.mean_loss(worst),
        None => worst,
    };
    1.0 - (1.0 - link) * (1.0 - args.upstream_loss)
}

fn json(args: &SimArgs, o: &Outcome) -> serde_json::Value {
    let r = &o.report;
    let bound = args.size as f64 / (1.0 - mean_loss(args));
    let all_done = r.completed_receivers + r.left_receivers == r.receivers;
    serde_json::json!({
        "mode": args.mode.name(),
        "codec": o.codecs.name(),
        "receivers": r.receivers,
        "loss": args.loss,
        "burst": args.burst.map(|(a, b)| vec![a, b]),
        "upstream_loss": args.upstream_loss,
        "mean_loss": mean_loss(args),
        "size": args.size,
        "symbol_size": o.symbol_size,
        "block_symbols": o.block_symbols,
        "interleave": args.interleave,
        "seed": args.seed,
        "completed_receivers": r.completed_receivers,
        "identical_receivers": r.identical_receivers,
        "left_receivers": r.left_receivers,
        "bytes_verified": r.bytes_verified,
        "source_symbols": r.source_symbols,
        "symbols_sent": r.symbols_sent,
        "repair_symbols": r.repair_symbols,
        "transmissions_per_symbol": r.transmissions_per_symbol(),
        "packets_sent": r.packets_sent,
        "bytes_sent": r.bytes_sent,
        "symbols_sent_total": r.symbols_sent_total,
        "bytes_sent_total": r.bytes_sent_total,
        "bound_bytes": bound,
        "completion_time_max_s": if all_done { r.completion_quantile(1.0) } else { None },
        "completion_time_p50_s": r.completion_quantile(0.5),
        "completion_time_p99_s": r.completion_quantile(0.99),
        "nacks_sent": r.nacks_sent,
        "nacks_suppressed": r.nacks_suppressed,
        "nacks_received": r.nacks_received,
        "status_sent": r.status_sent,
        "sim_time_s": r.sim_time_s,
        "wall_time_s": o.wall.as_secs_f64(),
        "deliveries": r.deliveries,
        "trace_hash": r.trace_hash,
        "peak_receiver_buffer_bytes": r.peak_receiver_buffer_bytes(),
    })
}

/// The columns of `--csv`, in order: JSON keys, plus the scenario's name.
const CSV_COLUMNS: &[&str] = &[
    "scenario",
    "mode",
    "codec",
    "receivers",
    "loss",
    "burst",
    "upstream_loss",
    "mean_loss",
    "size",
    "symbol_size",
    "block_symbols",
    "interleave",
    "seed",
    "completed_receivers",
    "identical_receivers",
    "left_receivers",
    "source_symbols",
    "symbols_sent",
    "repair_symbols",
    "transmissions_per_symbol",
    "bytes_sent",
    "bound_bytes",
    "completion_time_p50_s",
    "completion_time_p99_s",
    "completion_time_max_s",
    "nacks_sent",
    "nacks_suppressed",
    "status_sent",
    "peak_receiver_buffer_bytes",
    "sim_time_s",
    "wall_time_s",
    "trace_hash",
];

fn csv_row(v: &serde_json::Value) -> String {
    CSV_COLUMNS
        .iter()
        .map(|k| match &v[*k] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(";"),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn check(o: &Outcome) -> Result<(), String> {
    let r = &o.report;
    let expected = r.receivers - r.left_receivers;
    if r.completed_receivers < expected {
        return Err(format!(
            "{} of {} receivers did not complete",
            expected - r.completed_receivers,
            expected
        ));
    }
    if r.identical_receivers < r.completed_receivers {
        return Err(format!(
            "{} of {} receivers' copies differ from the source",
            r.completed_receivers - r.identical_receivers,
            r.completed_receivers
        ));
    }
    Ok(())
}

/// `groupcast sim`.
pub fn sim(args: &SimArgs) -> Result<(), String> {
    if let Some(path) = &args.scenario {
        return suite(args, path);
    }
    let o = run(args, !(args.json || args.csv))?;
    if args.json {
        println!("{}", json(args, &o));
    } else if args.csv {
        println!("{}", CSV_COLUMNS.join(","));
        println!("{}", csv_row(&json(args, &o)));
    } else {
        summary(args, &o);
    }
    check(&o)
}

/// The flags given to `groupcast sim` on the command line, less the ones that
/// choose output: the defaults of a scenario file's runs.
fn command_line_flags() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip_while(|a| a != "sim").skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" | "--csv" => {}
            "--scenario" => {
                args.next();
            }
            _ if a.starts_with("--scenario=") => {}
            _ => out.push(a),
        }
    }
    out
}

/// `groupcast sim --scenario FILE.toml`: every run of a suite, one output
/// line (or summary) per run.
fn suite(base: &SimArgs, path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read scenario file {}: {e}", path.display()))?;
    let runs = crate::suite::expand(&text, &command_line_flags())
        .map_err(|e| format!("scenario file {}: {e}", path.display()))?;
    if base.csv {
        println!("{}", CSV_COLUMNS.join(","));
    }
    let mut failures = Vec::new();
    for (i, (name, args)) in runs.iter().enumerate() {
        if !(base.json || base.csv) {
            println!("== run {}/{}: {name}", i + 1, runs.len());
        }
        let o = run(args, false)?;
        let mut v = json(args, &o);
        v["scenario"] = name.clone().into();
        if base.json {
            println!("{v}");
        } else if base.csv {
            println!("{}", csv_row(&v));
        } else {
            summary(args, &o);
        }
        if let Err(e) = check(&o) {
            failures.push(format!("{name}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} runs failed:\n  {}",
            failures.len(),
            runs.len(),
            failures.join("\n  ")
        ))
    }
}

fn summary(args: &SimArgs, o: &Outcome) {
    let r = &o.report;
    let loss = mean_loss(args);
    let bound = args.size as f64 / (1.0 - loss);
    let checked = if r.bytes_verified {
        "byte-identical"
    } else {
        "whole (model codec: bytes not checked)"
    };
    println!(
        "{} receivers, {:.1}% mean loss, {} bytes, {} mode, {} codec: {} completed, {} {checked}{}",
        r.receivers,
        loss * 100.0,
        args.size,
        args.mode.name(),
        o.codecs.name(),
        r.completed_receivers,
        r.identical_receivers,
        if r.left_receivers > 0 {
            format!(", {} left early", r.left_receivers)
        } else {
            String::new()
        }
    );
    println!(
        "needed {} symbols for {} source symbols ({:.3} transmissions per symbol), {} bytes = {:.3} x the bound size/(1-loss), headers of {} bytes per packet included",
        r.symbols_sent,
        r.source_symbols,
        r.transmissions_per_symbol(),
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
    if let (Some(p50), Some(p99), Some(max)) = (
        r.completion_quantile(0.5),
        r.completion_quantile(0.99),
        r.completion_quantile(1.0),
    ) {
        println!(
            "completion (simulated): p50 {p50:.3} s, p99 {p99:.3} s, max {max:.3} s; wall time {:.2} s",
            o.wall.as_secs_f64()
        );
    }
}

/// Source blocks of the simulated object, as its OTI partitions it: at most
/// 255, larger than `--block-symbols` beyond that (RFC 6330 §4.4.1.2).
fn blocks_of(args: &SimArgs, o: &Outcome) -> u64 {
    groupcast_fec::Oti::for_object(
        args.size,
        o.symbol_size,
        o.block_symbols,
        groupcast::wire::SYMBOL_ALIGNMENT,
    )
    .map_or(0, |oti| oti.source_blocks() as u64)
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
