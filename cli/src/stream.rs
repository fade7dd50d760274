//! `groupcast send --stream`, `groupcast recv --stream` and `groupcast chat`:
//! the message and stream API (`groupcast::io::pubsub`) on the command line.

use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use groupcast::io::pubsub::{Endpoint, Publisher, Subscriber};

use crate::args::{ChatArgs, RecvArgs, SendArgs};
use indicatif::HumanBytes;

use crate::output::{self, SPINNER, bar, human_secs, interrupted, peak_rss_bytes, write_json};

/// `groupcast send --stream`: standard input to the channel.
pub fn send(args: &SendArgs) -> Result<(), String> {
    output::catch_interrupts()?;
    args.keys.one_key()?;
    let mode = args.mode.core();
    if !mode.has_feedback() {
        return Err(
            "--stream needs --mode hybrid or nack: without feedback nothing says when the \
             receivers have the stream, so neither memory nor the exit can be bounded"
                .into(),
        );
    }
    let timeout = args.timeout;
    let mut b = Publisher::builder(&args.channel, &args.interface)
        .port(args.port)
        .mode(mode)
        .policy(args.policy)
        .hops(args.hops_u8())
        .multicast_loop(!args.no_loop)
        .close_timeout(timeout.unwrap_or(Duration::from_secs(3600)))
        .expect_receivers(args.expect_receivers);
    b = match args.rate {
        crate::args::Pace::Bits(bits) => b.rate_bits(bits.max(8)),
        crate::args::Pace::Max => b.unpaced(),
    };
    b = b.sender_config(|c| args.apply_shared(c));
    b = b.net_config(|n| n.gso = !args.no_gso);
    let started = Instant::now();
    let publisher = b.open().map_err(|e| e.to_string())?;
    eprintln!(
        "streaming standard input as session {:016x} (receive it with recv --stream)",
        publisher.session().0
    );
    let pb = bar(SPINNER);
    crate::log::show(&pb);
    let mut stream = publisher.into_stream();
    let mut input = std::io::stdin().lock();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    let mut last = Instant::now();
    loop {
        if interrupted() {
            return Err("interrupted: the stream was not ended".into());
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            return Err("timed out before the end of the input".into());
        }
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading standard input: {e}")),
        };
        stream
            .write_all(&buf[..n])
            .map_err(|e| format!("sending the stream: {e}"))?;
        total += n as u64;
        if last.elapsed() >= Duration::from_millis(100) {
            let s = stream.stats();
            pb.set_message(format!(
                "{} read · {} sent · {} receivers · {} NACKs",
                HumanBytes(total),
                HumanBytes(s.bytes_sent),
                s.receivers_tracked,
                s.nacks_received
            ));
            pb.tick();
            last = Instant::now();
        }
    }
    pb.set_message(format!(
        "{} read · waiting for the receivers to confirm the end",
        HumanBytes(total)
    ));
    let report = stream.close().map_err(|e| e.to_string())?;
    pb.finish_and_clear();
    crate::log::hide();
    let s = &report.stats;
    let secs = started.elapsed().as_secs_f64();
    let left = s.receivers_timed_out + s.receivers_left_stalled + s.receivers_left_refused;
    eprintln!(
        "sent a stream of {} in {} packets ({}) over {}; {} receiver(s) confirmed it all{}",
        HumanBytes(total),
        s.packets_sent,
        HumanBytes(s.bytes_sent),
        human_secs(secs),
        report.receivers_confirmed,
        if left > 0 {
            format!(
                ", {left} did not ({} timed out, {} stalled, {} refused a place)",
                s.receivers_timed_out, s.receivers_left_stalled, s.receivers_left_refused
            )
        } else {
            String::new()
        },
    );
    write_json(
        &args.stats_json,
        serde_json::json!({
            "stream_bytes": total,
            "bytes_sent": s.bytes_sent,
            "packets_sent": s.packets_sent,
            "repair_symbols_sent": s.repair_symbols_sent,
            "receivers_tracked": s.receivers_tracked,
            "receivers_heard": s.receivers_heard,
            "group_estimate": s.group_estimate,
            "receivers_timed_out": s.receivers_timed_out,
            "receivers_stalled": s.receivers_stalled,
            "nacks_received": s.nacks_received,
            "confirmed": report.confirmed,
            "receivers_confirmed": report.receivers_confirmed,
            "receivers_left_stalled": s.receivers_left_stalled,
            "receivers_left_refused": s.receivers_left_refused,
            "duration_s": secs,
            "peak_rss_bytes": peak_rss_bytes(),
            "cpu_s": groupcast::io::cpu_seconds(),
        }),
    )?;
    if report.confirmed {
        Ok(())
    } else if report.receivers_confirmed < args.expect_receivers && left == 0 {
        Err(format!(
            "not confirmed: {} receiver(s) confirmed the whole stream, {} expected \
             (--expect-receivers; 0 if nobody need listen)",
            report.receivers_confirmed, args.expect_receivers
        ))
    } else {
        Err("not confirmed: not every receiver heard from confirmed the whole stream".into())
    }
}

/// `groupcast recv --stream`: the first stream heard to standard output.
pub fn recv(args: &RecvArgs) -> Result<(), String> {
    output::catch_interrupts()?;
    args.check_keys()?;
    let timeout = args.timeout;
    let mut b = Subscriber::builder(&args.channel, &args.interface)
        .port(args.port)
        .late_join(args.late_join);
    if let Some(src) = args.source {
        b = b.source(src);
    }
    if let Some(session) = args.from {
        b = b.publisher(groupcast::SessionId(session));
    }
    b = b.net_config(|n| n.feedback_hops = args.hops);
    b = b.receiver_config(|c| {
        c.max_object_size = args.max_object_size;
        c.feedback = !args.no_feedback;
        c.nack_unicast = args.nack_unicast;
        args.apply_keys(c);
        if let Some(n) = args.decode_threads {
            c.decode_threads = n as usize;
        }
    });
    let started = Instant::now();
    let mut stream = b.open().map_err(|e| e.to_string())?.into_stream();
    stream.set_read_timeout(Some(Duration::from_millis(200)));
    let pb = bar(SPINNER);
    crate::log::show(&pb);
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    let mut last = Instant::now();
    let result = loop {
        if interrupted() {
            break Err("interrupted before the end of the stream".to_string());
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            break Err(format!(
                "timed out after {:.0} s, {total} bytes of the stream received",
                started.elapsed().as_secs_f64()
            ));
        }
        match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = out.write_all(&buf[..n]) {
                    break Err(format!("writing standard output: {e}"));
                }
                total += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => break Err(format!("receiving the stream: {e}")),
        }
        if last.elapsed() >= Duration::from_millis(100) {
            let (r, _) = stream.stats();
            pb.set_message(format!(
                "{} written · {} packets · {} NACKs sent",
                HumanBytes(total),
                r.packets_received,
                r.nacks_sent
            ));
            pb.tick();
            last = Instant::now();
        }
    };
    let flushed = out.flush();
    pb.finish_and_clear();
    crate::log::hide();
    let (r, inbox) = stream.stats();
    let secs = started.elapsed().as_secs_f64();
    write_json(
        &args.stats_json,
        serde_json::json!({
            "stream_bytes": total,
            "bytes_received": r.bytes_received,
            "packets_received": r.packets_received,
            "duplicates": r.duplicates,
            "packets_rejected": r.packets_rejected,
            "nacks_sent": r.nacks_sent,
            "status_sent": r.status_sent,
            "status_withheld": r.status_withheld,
            "status_unasked": r.status_unasked,
            "objects_completed": r.objects_completed,
            "objects_failed": r.objects_failed,
            "rejected_by_reason": r
                .rejected_by_reason()
                .map(|(reason, n)| (reason.name().to_owned(), serde_json::json!(n)))
                .collect::<serde_json::Map<_, _>>(),
            "gaps": inbox.gaps,
            "malformed": inbox.malformed,
            "stale": inbox.stale,
            "sessions_refused": inbox.sessions_refused,
            "sessions_expired": inbox.sessions_expired,
            "unstarted_expired": inbox.unstarted_expired,
            "over_budget": inbox.over_budget,
            "conflicts": inbox.conflicts,
            "auth": crate::output::auth_json(&r),
            "seal": crate::output::seal_json(&r),
            "duration_s": secs,
            "peak_rss_bytes": peak_rss_bytes(),
            "cpu_s": groupcast::io::cpu_seconds(),
        }),
    )?;
    let hint = crate::net::seal_hint(&r).or_else(|| crate::net::signing_hint(args, &r));
    result.map_err(|e| match hint {
        Some(hint) => format!("{e}; {hint}"),
        None => e,
    })?;
    flushed.map_err(|e| format!("writing standard output: {e}"))?;
    eprintln!(
        "received a stream of {}, verified, in {}{}",
        HumanBytes(total),
        human_secs(secs),
        stream
            .sender()
            .map_or(String::new(), |s| format!(" from session {:016x}", s.0))
    );
    Ok(())
}

/// Control characters of a hostile peer's line, shown escaped.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `groupcast chat`: lines from standard input to everyone on the channel,
/// everyone else's lines to standard output.
pub fn chat(args: &ChatArgs) -> Result<(), String> {
    let key = args.keys.one_key()?;
    let (senders, prints) = crate::args::split_sender_keys(&args.sender_key);
    if senders.len().max(prints.len()) > groupcast::proto::auth::MAX_KEYS {
        return Err(format!(
            "chat takes at most {} --sender-key of each kind",
            groupcast::proto::auth::MAX_KEYS
        ));
    }
    let sign = args.sign.clone();
    let endpoint = Endpoint::open_with(
        Publisher::builder(&args.channel, &args.interface)
            .port(args.port)
            .hops(args.hops)
            .rate_bits(10_000_000)
            .close_timeout(Duration::from_secs(2))
            .sender_config(|c| {
                c.channel_key = key;
                c.signing_key = sign;
            }),
        Subscriber::builder(&args.channel, &args.interface)
            .port(args.port)
            .receiver_config(|c| {
                c.channel_keys = args.keys.channel_keys();
                c.sender_keys = senders;
                c.sender_fingerprints = prints;
            }),
    )
    .map_err(|e| e.to_string())?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{:04x}", endpoint.publisher().session().0 & 0xffff));
    eprintln!(
        "chatting on '{}' as {name}: type a line and press enter; end of input (Ctrl-D) leaves",
        args.channel
    );
    let leaving = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (ep, leaving) = (&endpoint, &leaving);
        scope.spawn(move || {
            use groupcast::io::pubsub::RecvError;
            while !leaving.load(Ordering::Relaxed) {
                match ep.subscriber().recv_timeout(Duration::from_millis(200)) {
                    Ok(m) => println!("{}", printable(&m.data)),
                    Err(RecvError::Gap { sender, .. }) => {
                        eprintln!("(some lines of {sender} were lost)")
                    }
                    Err(RecvError::Conflict { sender, .. }) => {
                        eprintln!(
                            "(someone is forging lines under {sender}: its lines cannot \
                             be trusted)"
                        )
                    }
                    Err(RecvError::TimedOut) => {}
                    Err(e) => {
                        eprintln!("groupcast: {e}");
                        break;
                    }
                }
            }
        });
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if ep.send(format!("{name}: {line}").as_bytes()).is_err() {
                break;
            }
            ep.publisher().flush();
        }
        leaving.store(true, Ordering::Relaxed);
        Ok::<(), String>(())
    })?;
    endpoint.close().map_err(|e| e.to_string())?;
    Ok(())
}
