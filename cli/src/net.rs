//! `groupcast send` and `groupcast recv`.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use groupcast::io::NetConfig;
use groupcast::io::files::{SinkConfig, TransferId, receive_into, send_path};
use groupcast::{
    Channel, FeedbackConfig, FlowPolicy, ReceiverConfig, Rounds, SenderConfig, SessionId,
};
use indicatif::{ProgressBar, ProgressStyle};

use groupcast_sim::units::parse_rate;

/// Flags of `groupcast send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The file to send, or a directory: every file beneath it is sent, with its relative path.
    pub path: PathBuf,
    /// Channel name; its group address is ff1e:: followed by BLAKE3(name) (see `groupcast channel`).
    #[arg(long)]
    pub channel: String,
    /// Network interface to send on, e.g. eth0 (see `ip link`).
    #[arg(long)]
    pub interface: String,
    /// UDP port.
    #[arg(long, default_value_t = groupcast::channel::DEFAULT_PORT)]
    pub port: u16,
    /// Sending rate in bits/s of UDP payload (e.g. 100M, 1G), or `max` for unpaced.
    #[arg(long, default_value = "100M")]
    pub rate: String,
    /// Multicast hop limit: 1 stays on the link; more crosses multicast routers.
    #[arg(long, default_value_t = 1)]
    pub hops: u32,
    /// Rounds of the carousel: the first sends source symbols plus --overhead repair, each
    /// later one --round-repair fresh repair symbols per block.
    #[arg(long, default_value_t = 3, conflicts_with = "forever")]
    pub rounds: u32,
    /// Loop and repeat until interrupted (SIGINT or SIGTERM, after which the stats are still
    /// written), for receivers that join late.
    #[arg(long)]
    pub forever: bool,
    /// Loss recovery: `hybrid` (source symbols, then fresh repair for what receivers report
    /// missing), `nack` (no FEC: replays of the symbols receivers list), or `carousel` (rounds
    /// of fresh repair, no back channel). In hybrid and nack modes the sender exits by itself
    /// once every receiver it heard from is complete, and --rounds/--forever do not apply.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: crate::args::Mode,
    /// First-round repair share per block (0.25 = 25% extra symbols) [default: 0.25 in carousel
    /// mode, 0 in hybrid mode, where repair is sent on request].
    #[arg(long)]
    pub overhead: Option<f64>,
    /// Repair share of each later round.
    #[arg(long, default_value_t = 0.25)]
    pub round_repair: f64,
    /// Worker threads that build RaptorQ encoders ahead of the send loop (0 = build them on
    /// the sending thread). The packets sent are the same either way.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub encoder_threads: usize,
    /// Send from one fixed source address, and print it, so that receivers can
    /// join source-specifically with `recv --source ADDR`.
    #[arg(long)]
    pub source_specific: bool,
    /// Do not deliver the sender's packets to receivers on this same host.
    #[arg(long)]
    pub no_loop: bool,
    /// Hand each datagram to the kernel separately, without UDP segmentation offload (GSO).
    /// GSO changes nothing on the wire and turns itself off where the path cannot segment.
    #[arg(long)]
    pub no_gso: bool,
    /// Flow control (hybrid, nack): `min` never runs further ahead than the slowest receiver
    /// that reports, `max` follows the fastest, `quorum:N` the N-th fastest.
    #[arg(long, default_value = "min", value_parser = parse_policy)]
    pub policy: FlowPolicy,
    /// Flow control (hybrid, nack): how many blocks the first pass may run ahead of the
    /// window edge the policy follows.
    #[arg(long, default_value_t = 48, value_name = "BLOCKS")]
    pub flow_window: u32,
    /// Hybrid, nack: receivers tracked at once; reports from more are dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    pub max_receivers: usize,
    /// Hybrid, nack: NACK packets processed per second at most; the excess is dropped and
    /// counted.
    #[arg(long, default_value_t = 20_000)]
    pub max_nack_rate: u32,
    /// Hybrid, nack: do not finish before this many receivers have reported, so that the sender
    /// can start before its receivers (it then answers them as they join).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub min_receivers: u32,
    /// A receiver silent for this many seconds stops counting for flow control and completion.
    #[arg(long, default_value_t = 5.0)]
    pub receiver_timeout: f64,
    /// A receiver that keeps reporting but makes no progress for this many seconds stops
    /// holding back flow control and completion (a wedged receiver, or a forged one).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub stall_timeout: f64,
    /// Repair may use at most this share of the sending rate (of the measured rate with
    /// --rate max), so forged NACKs cannot amplify traffic.
    #[arg(long, default_value_t = 0.5)]
    pub repair_share: f64,
    /// Congestion control (hybrid, nack, with a --rate): a receiver reporting more loss than
    /// this share cuts the rate by 1/8, at most once per round-trip time; loss-free reports add
    /// back 1/50 of --rate per round trip (AIMD). 0 turns it off.
    #[arg(long, default_value_t = 0.3, value_name = "SHARE")]
    pub congestion_loss: f64,
    /// The floor congestion control never goes below, bits/s [default: --rate / 16].
    #[arg(long)]
    pub min_rate: Option<String>,
    /// Stop after this many seconds, finished or not (the stats are still written).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Write one JSON object of statistics to this file at the end.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
}

fn parse_policy(s: &str) -> Result<FlowPolicy, String> {
    match s {
        "min" => Ok(FlowPolicy::Min),
        "max" => Ok(FlowPolicy::Max),
        q => match q.strip_prefix("quorum:").map(str::parse::<u32>) {
            Some(Ok(n)) if n > 0 => Ok(FlowPolicy::Quorum(n)),
            _ => Err(format!("'{s}' is not min, max or quorum:N (N at least 1)")),
        },
    }
}

/// Flags of `groupcast recv`.
#[derive(Debug, Clone, Args)]
pub struct RecvArgs {
    /// Channel name.
    #[arg(long)]
    pub channel: String,
    /// Network interface to join the channel on.
    #[arg(long)]
    pub interface: String,
    /// Directory to write the received files into (must exist).
    #[arg(long)]
    pub output: PathBuf,
    /// UDP port.
    #[arg(long, default_value_t = groupcast::channel::DEFAULT_PORT)]
    pub port: u16,
    /// Accept packets only from this sender address (source-specific join); feedback from
    /// other receivers is still heard on the feedback group.
    #[arg(long)]
    pub source: Option<Ipv6Addr>,
    /// Accept only the transfer with this id (64 hex digits, as `groupcast id PATH` or
    /// `groupcast send` print it) and ignore every other: without it, any host on the group
    /// can impersonate the sender.
    #[arg(long, value_name = "ID")]
    pub expect: Option<TransferId>,
    /// Replace files that already exist in --output (without it, such a file is refused and
    /// the receiver exits non-zero naming it).
    #[arg(long)]
    pub overwrite: bool,
    /// Apply the manifest's permission bits as they are (without it, they are masked by the
    /// umask and never world-writable).
    #[arg(long)]
    pub keep_modes: bool,
    /// Give up after this many seconds (exit non-zero; no partial file is left under its final name).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Largest object accepted (a file, or the manifest), e.g. 4GiB; larger claims are refused
    /// before anything is allocated.
    #[arg(long, default_value = "4GiB", value_parser = groupcast_sim::units::parse_size)]
    pub max_object_size: u64,
    /// Objects decoded at once, over all sessions.
    #[arg(long, default_value_t = 16)]
    pub max_objects: usize,
    /// Blocks being decoded at once; bounds memory (see docs/protocol.md §8.2).
    #[arg(long, default_value_t = 64)]
    pub max_blocks_in_flight: usize,
    /// Hop limit of this receiver's NACKs to the feedback group (hybrid, nack); more than 1
    /// to reach a sender beyond multicast routers.
    #[arg(long, default_value_t = 1)]
    pub hops: u32,
    /// Stay silent even to a hybrid or nack sender (no NACK, no STATUS): like a carousel receiver.
    #[arg(long)]
    pub no_feedback: bool,
    /// Send NACKs to the sender alone rather than to the channel's feedback group (no
    /// suppression among receivers then).
    #[arg(long)]
    pub nack_unicast: bool,
    /// Write one JSON object of statistics to this file at the end.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
}

fn bar(template: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

fn write_json(path: &Option<PathBuf>, value: serde_json::Value) -> Result<(), String> {
    if let Some(p) = path {
        std::fs::write(p, format!("{value}\n"))
            .map_err(|e| format!("writing --stats-json {}: {e}", p.display()))?;
    }
    Ok(())
}

/// Set by SIGINT or SIGTERM: stop sending, then report as usual.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `groupcast send`.
pub fn send(args: &SendArgs) -> Result<(), String> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, &INTERRUPTED)
            .map_err(|e| format!("installing a signal handler: {e}"))?;
    }
    let rate = match args.rate.as_str() {
        "max" => None,
        r => Some((parse_rate(r)? / 8).max(1)),
    };
    let mode = args.mode.core();
    let overhead = args.overhead.unwrap_or(mode.default_repair_overhead());
    // The core's ranges (SenderConfig::validate), checked here to name the flag.
    let most = groupcast::MAX_REPAIR_OVERHEAD;
    if !(0.0..=most).contains(&overhead) || !(0.0..=most).contains(&args.round_repair) {
        return Err(format!(
            "--overhead and --round-repair must lie between 0 and {most}"
        ));
    }
    let most = groupcast::MAX_REPAIR_SHARE;
    if !(args.repair_share > 0.0 && args.repair_share <= most) {
        return Err(format!(
            "--repair-share must lie above 0 and at most {most}"
        ));
    }
    if !(args.receiver_timeout > 0.0 && args.receiver_timeout < 1e6) {
        return Err("--receiver-timeout must be a positive number of seconds".into());
    }
    if !(args.stall_timeout > 0.0 && args.stall_timeout < 1e6) {
        return Err("--stall-timeout must be a positive number of seconds".into());
    }
    if !(0.0..1.0).contains(&args.congestion_loss) {
        return Err("--congestion-loss must lie in 0 (off) up to below 1".into());
    }
    let floor = match &args.min_rate {
        Some(r) => Some((parse_rate(r)? / 8).max(1)),
        None => rate.map(groupcast::Aimd::default_floor),
    };
    let aimd = match (rate, floor) {
        (Some(r), Some(floor)) if args.congestion_loss > 0.0 => {
            Some(groupcast::Aimd::for_rate(r, args.congestion_loss, floor))
        }
        _ => None,
    };
    let deadline = match args.timeout {
        Some(t) if !(t > 0.0 && t < 1e9) => {
            return Err("--timeout must be a positive number of seconds".into());
        }
        Some(t) => Some(std::time::Instant::now() + Duration::from_secs_f64(t)),
        None => None,
    };
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let config = SenderConfig {
        session: SessionId::from_seed(nanos ^ u64::from(std::process::id()) << 32),
        rate,
        rounds: if args.forever {
            Rounds::Unlimited
        } else {
            Rounds::Fixed(args.rounds)
        },
        repair_overhead: overhead,
        round_repair: args.round_repair,
        mode,
        feedback: FeedbackConfig {
            policy: args.policy,
            flow_window: args.flow_window.max(1),
            min_receivers: args.min_receivers,
            max_receivers: args.max_receivers.max(1),
            max_nack_rate: args.max_nack_rate.max(1),
            receiver_timeout: Duration::from_secs_f64(args.receiver_timeout),
            stall_timeout: Duration::from_secs_f64(args.stall_timeout),
            repair_share: args.repair_share,
            aimd,
            ..FeedbackConfig::default()
        },
        encoder_threads: args.encoder_threads.min(64),
        ..SenderConfig::default()
    };
    let mut net = NetConfig::new(
        Channel::new(&args.channel).with_port(args.port),
        &args.interface,
    );
    net.hops = args.hops;
    net.multicast_loop = !args.no_loop;
    net.gso = !args.no_gso;
    net.feedback = mode.has_feedback();
    if args.source_specific {
        let src = groupcast::io::local_source(&net).map_err(|e| e.to_string())?;
        if src.is_unicast_link_local() {
            eprintln!(
                "source-specific: sending from {src}, a link-local address: receivers on this link can use \
--source {src}; beyond a router, give {} a global address",
                args.interface
            );
        } else {
            eprintln!("source-specific: sending from {src}; receivers can use --source {src}");
        }
        net.source = Some(src);
    }
    let pb = bar("{spinner} {msg} [{elapsed}]");
    crate::log::show(&pb);
    let (stats, report) = send_path(
        &net,
        config,
        &args.path,
        |id| {
            eprintln!("transfer id {id} (receivers can pin it: recv --expect {id})");
        },
        |s| {
            if mode.has_feedback() {
                pb.set_message(format!(
                    "{} · {} packets · {:.1} MB sent · {} receivers · {} NACKs · GRTT {:.1} ms",
                    if s.rounds_completed > 0 {
                        "repairing"
                    } else {
                        "first pass"
                    },
                    s.packets_sent,
                    s.bytes_sent as f64 / 1e6,
                    s.receivers_tracked,
                    s.nacks_received,
                    s.grtt_us as f64 / 1e3,
                ));
            } else {
                pb.set_message(format!(
                    "round {} · {} packets · {:.1} MB sent",
                    s.rounds_completed + 1,
                    s.packets_sent,
                    s.bytes_sent as f64 / 1e6
                ));
            }
            pb.tick();
        },
        |_| {
            INTERRUPTED.load(Ordering::Relaxed)
                || deadline.is_some_and(|d| std::time::Instant::now() >= d)
        },
    )
    .map_err(|e| e.to_string())?;
    pb.finish_and_clear();
    crate::log::hide();
    let timed_out = deadline.is_some_and(|d| std::time::Instant::now() >= d);
    let finished = !INTERRUPTED.load(Ordering::Relaxed) && !timed_out;
    if mode.has_feedback() && finished {
        eprintln!(
            "every receiver heard from is complete ({} tracked, {} timed out)",
            stats.receivers_tracked, stats.receivers_timed_out
        );
    }
    eprintln!(
        "sent {} file(s), {} bytes, in {} packets ({} bytes) over {:.2} s{}",
        report.files,
        report.file_bytes,
        stats.packets_sent,
        stats.bytes_sent,
        report.duration_s,
        if INTERRUPTED.load(Ordering::Relaxed) {
            " (interrupted)"
        } else {
            ""
        }
    );
    write_json(
        &args.stats_json,
        serde_json::json!({
            "bytes_sent": stats.bytes_sent,
            "packets_sent": stats.packets_sent,
            "source_symbols_sent": stats.source_symbols_sent,
            "repair_symbols_sent": stats.repair_symbols_sent,
            "info_packets_sent": stats.info_packets_sent,
            "rounds_completed": stats.rounds_completed,
            "files": report.files,
            "file_bytes": report.file_bytes,
            "duration_s": report.duration_s,
            "goodput_bytes_per_s": report.file_bytes as f64 / report.duration_s.max(1e-9),
            "send_backoffs": report.driver.send_backoffs,
            "gso": report.driver.gso,
            "mode": mode.name(),
            "repair_symbols": stats.repair_symbols_sent,
            "nacks_received": stats.nacks_received,
            "nacks_dropped": stats.nacks_dropped,
            "nack_entries_ignored": stats.nack_entries_ignored,
            "nack_entries_invalid": stats.nack_entries_invalid,
            "status_received": stats.status_received,
            "feedback_rejected": stats.feedback_rejected,
            "receivers_tracked": stats.receivers_tracked,
            "receivers_heard": stats.receivers_heard,
            "receivers_timed_out": stats.receivers_timed_out,
            "receivers_refused": stats.receivers_refused,
            "flow_blocked": stats.flow_blocked,
            "encoders_built_for_repair": stats.encoders_built_for_repair,
            "probes_sent": stats.probes_sent,
            "grtt_us": stats.grtt_us,
            "rate_bytes_per_s": stats.rate,
            "receivers_stalled": stats.receivers_stalled,
            "nacks_dropped_per_source": stats.nacks_dropped_per_source,
            "echoes_refused": stats.echoes_refused,
            "transfer_id": report.transfer_id.map(|i| i.to_string()),
            "finished": finished,
        }),
    )?;
    if mode.has_feedback() && timed_out {
        return Err(format!(
            "--timeout: stopped before every receiver was complete ({} tracked)",
            stats.receivers_tracked
        ));
    }
    Ok(())
}

/// `groupcast recv`.
pub fn recv(args: &RecvArgs) -> Result<(), String> {
    if !args.output.is_dir() {
        return Err(format!(
            "--output {} is not a directory",
            args.output.display()
        ));
    }
    let timeout = match args.timeout {
        Some(t) if !(t > 0.0 && t < 1e9) => {
            return Err("--timeout must be a positive number of seconds".into());
        }
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    let mut net = NetConfig::new(
        Channel::new(&args.channel).with_port(args.port),
        &args.interface,
    );
    net.source = args.source;
    let pb = bar("{spinner} {msg} [{elapsed}]");
    crate::log::show(&pb);
    net.feedback = !args.no_feedback;
    net.hops = args.hops;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    if args.expect.is_none() {
        eprintln!(
            "warning: no --expect ID: any host that can send to the group can impersonate the \
sender; pin the transfer with the id `groupcast id PATH` prints"
        );
    }
    let sink_config = SinkConfig {
        overwrite: args.overwrite,
        keep_modes: args.keep_modes,
        expect: args.expect,
        max_file_size: args.max_object_size,
        check_space: true,
    };
    let receiver_config = ReceiverConfig {
        id: SessionId::from_seed(nanos ^ u64::from(std::process::id()) << 40).0,
        feedback: !args.no_feedback,
        nack_unicast: args.nack_unicast,
        max_object_size: args.max_object_size,
        max_objects: args.max_objects.max(1),
        max_blocks_in_flight: args.max_blocks_in_flight.max(1),
        ..ReceiverConfig::default()
    };
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, &INTERRUPTED)
            .map_err(|e| format!("installing a signal handler: {e}"))?;
    }
    let stop = || INTERRUPTED.load(Ordering::Relaxed);
    let result = receive_into(
        &net,
        receiver_config,
        sink_config,
        &args.output,
        timeout,
        stop,
        |r, sink| {
            let s = r.stats();
            pb.set_message(format!(
                "{} of {} files · {} packets · {:.1} MB written",
                sink.completed(),
                if sink.bound().is_some() {
                    sink.files().to_string()
                } else {
                    "?".to_string()
                },
                s.packets_received,
                sink.bytes_written as f64 / 1e6
            ));
            pb.tick();
        },
    );
    pb.finish_and_clear();
    crate::log::hide();
    let (stats, report, outcome) = result.map_err(|e| e.to_string())?;
    if outcome.is_ok() {
        eprintln!(
            "received {} file(s), {} bytes, verified, in {:.2} s",
            report.files, report.file_bytes, report.duration_s
        );
    }
    let refused: serde_json::Map<String, serde_json::Value> = report
        .refused
        .iter()
        .map(|(r, n)| (r.name().to_string(), (*n).into()))
        .collect();
    let by_reason: serde_json::Map<String, serde_json::Value> = stats
        .rejected_by_reason()
        .map(|(r, n)| (r.name().to_string(), n.into()))
        .collect();
    write_json(
        &args.stats_json,
        serde_json::json!({
            "bytes_received": stats.bytes_received,
            "packets_received": stats.packets_received,
            "duplicates": stats.duplicates,
            "packets_rejected": stats.packets_rejected,
            "rejected_by_reason": by_reason,
            "symbols_accepted": stats.symbols_accepted,
            "symbols_deferred": stats.symbols_deferred,
            "objects_completed": stats.objects_completed,
            "objects_failed": stats.objects_failed,
            "peak_buffered_bytes": stats.peak_buffered_bytes,
            "foreign_source": report.driver.foreign_source,
            "wrong_socket": report.driver.wrong_socket,
            "status_unaddressed": report.driver.status_unaddressed,
            "objects_refused": report.refused.iter().map(|r| r.1).sum::<u64>(),
            "refused_by_reason": refused,
            "refused_files": report.refused_files.iter().map(|(p, why)| serde_json::json!({"path": p, "why": why})).collect::<Vec<_>>(),
            "transfer_id": report.transfer_id.map(|i| i.to_string()),
            "candidates_evicted": stats.candidates_evicted,
            "awaiting_manifest": stats.awaiting_manifest,
            "suppressions_doubted": stats.suppressions_doubted,
            "feedback_expired": stats.feedback_expired,
            "buffer_full": stats.buffer_full,
            "peak_rss_bytes": peak_rss_bytes(),
            "files": report.files,
            "file_bytes": report.file_bytes,
            "duration_s": report.duration_s,
            "complete": outcome.is_ok(),
            "probes_received": stats.probes_received,
            "nacks_sent": stats.nacks_sent,
            "nacks_suppressed": stats.nacks_suppressed,
            "nacks_heard": stats.nacks_heard,
            "status_sent": stats.status_sent,
            "feedback_dropped": report.driver.feedback_dropped,
        }),
    )?;
    outcome
}

/// This process's peak resident set (VmHWM), in bytes, or 0 if unknown.
fn peak_rss_bytes() -> u64 {
    groupcast::io::process_status("VmHWM")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `groupcast id`: the transfer id `groupcast send PATH` would announce.
pub fn id(path: &std::path::Path) -> Result<(), String> {
    let id = groupcast::io::files::transfer_id(path).map_err(|e| e.to_string())?;
    println!("{id}");
    Ok(())
}
