//! `groupcast send` and `groupcast recv`.

use std::path::PathBuf;
use std::time::Duration;

use groupcast::SessionId;
use groupcast::io::NetConfig;
use groupcast::io::files::{receive_into, send_path};
use indicatif::{HumanBytes, ProgressStyle};

use crate::args::{RecvArgs, SendArgs};
use crate::output::{
    self, SPINNER, bar, bytes_style, human_secs, interrupted, peak_rss_bytes, write_json,
};

/// `groupcast send`.
pub fn send(args: &SendArgs) -> Result<(), String> {
    output::catch_interrupts()?;
    args.keys.one_key()?;
    let config = args.sender_config();
    if let Some(key) = &config.signing_key {
        let fp = groupcast::io::keys::fingerprint(&key.verifying_key());
        eprintln!("signing with key {fp}: receivers take only it with recv --sender-key");
    }
    let mode = config.mode;
    let deadline = args.timeout.map(|t| std::time::Instant::now() + t);
    let mut net = args.net_config();
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
    let path = args
        .path
        .as_deref()
        .expect("clap requires it without --stream");
    // The bar counts the first pass over the files' bytes (source symbols
    // sent, the manifest's included): the total the sender knows. Repair
    // after it has no total known in advance.
    let total: u64 = groupcast::io::files::collect(path)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|s| s.size)
        .sum();
    // The interface after the files are listed (a missing path is the
    // first error) and before they are hashed (which takes a while).
    groupcast::io::interface_index(&args.interface).map_err(|e| e.to_string())?;
    let symbol = u64::from(config.effective_symbol_size());
    let pb = bar(SPINNER);
    crate::log::show(&pb);
    let (stats, report) = send_path(
        &net,
        config,
        path,
        args.part_size,
        |id| {
            pb.suspend(|| {
                let id = match &args.sign {
                    Some(k) => crate::args::signed_id(id, &k.verifying_key()),
                    None => id.to_string(),
                };
                eprintln!("transfer id {id} (receivers can pin it: recv --expect {id})");
            });
            pb.set_style(bytes_style());
            pb.set_length(total);
            pb.reset_eta();
        },
        |s| {
            pb.set_position((s.source_symbols_sent * symbol).min(total));
            if mode.has_feedback() {
                pb.set_message(format!(
                    "{} · {} sent · {} receivers · {} NACKs · GRTT {:.1} ms",
                    if s.rounds_completed > 0 {
                        "repairing"
                    } else {
                        "first pass"
                    },
                    HumanBytes(s.bytes_sent),
                    s.receivers_tracked,
                    s.nacks_received,
                    s.grtt_us as f64 / 1e3,
                ));
            } else {
                pb.set_message(format!(
                    "round {} · {} sent",
                    s.rounds_completed + 1,
                    HumanBytes(s.bytes_sent)
                ));
            }
        },
        |_| interrupted() || deadline.is_some_and(|d| std::time::Instant::now() >= d),
    )
    .map_err(|e| e.to_string())?;
    pb.finish_and_clear();
    crate::log::hide();
    let timed_out = deadline.is_some_and(|d| std::time::Instant::now() >= d);
    let finished = !interrupted() && !timed_out;
    // Ids refused until the end may be receivers the sender never tracked:
    // nothing says they are complete (protocol.md §13.4, "Finish").
    let refused = mode.has_feedback() && finished && stats.receivers_left_refused > 0;
    if refused {
        eprintln!(
            "not confirmed: {} receiver id(s) were still refused at the end ({} report(s) refused in \
             all: {} with --max-receivers full, {} by --max-receivers-per-source, {} by \
             --max-receivers-per-prefix, {} by --new-receivers-per-prefix); they may lack the \
             transfer. Of those tracked ({}, {} timed out), {} stalled receiver(s) were left",
            stats.receivers_left_refused,
            stats.receivers_refused,
            stats.receivers_refused_table,
            stats.receivers_refused_source,
            stats.receivers_refused_prefix,
            stats.receivers_refused_rate,
            stats.receivers_tracked,
            stats.receivers_timed_out,
            stats.receivers_left_stalled,
        );
    } else if mode.has_feedback() && finished {
        if stats.receivers_left_stalled > 0 {
            eprintln!(
                "finished without {} stalled receiver(s) of {} tracked ({} timed out): they held \
                 the sender back without moving, or slower than --min-progress, for \
                 --stall-timeout; the others are complete",
                stats.receivers_left_stalled, stats.receivers_tracked, stats.receivers_timed_out
            );
        } else if stats.receivers_refused > 0 {
            eprintln!(
                "every receiver tracked is complete ({} tracked, {} timed out); {} report(s) of \
                 ids not tracked were refused for a while, and none was still refused at the end",
                stats.receivers_tracked, stats.receivers_timed_out, stats.receivers_refused
            );
        } else {
            eprintln!(
                "every receiver heard from is complete ({} tracked, {} timed out)",
                stats.receivers_tracked, stats.receivers_timed_out
            );
        }
    }
    eprintln!(
        "sent {} file(s), {}, in {} packets ({}) over {}{}",
        report.files,
        HumanBytes(report.file_bytes),
        stats.packets_sent,
        HumanBytes(stats.bytes_sent),
        human_secs(report.duration_s),
        if interrupted() { " (interrupted)" } else { "" }
    );
    let mut json = serde_json::json!({
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
            "peak_rss_bytes": peak_rss_bytes(),
            "cpu_s": groupcast::io::cpu_seconds(),
            "blocks_loaded": stats.blocks_loaded,
            "peak_loaded_bytes": stats.peak_loaded_bytes,
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
            "encoders_built_inline": stats.encoders_built_inline,
            "encoders_built_twice": stats.encoders_built_twice,
            "probes_sent": stats.probes_sent,
            "grtt_us": stats.grtt_us,
            "rate_bytes_per_s": stats.rate,
            "receivers_stalled": stats.receivers_stalled,
            "fallback_rounds": stats.fallback_rounds,
            "nacks_dropped_per_source": stats.nacks_dropped_per_source,
            "echoes_refused": stats.echoes_refused,
            "transfer_id": report.transfer_id.map(|i| i.to_string()),
            "finished": finished,
    });
    json["group_estimate"] = stats.group_estimate.into();
    json["report_sample"] = stats.report_sample.into();
    json["auth_packets_sent"] = stats.auth_packets_sent.into();
    // (Beyond the macro's recursion limit in one literal.)
    json["receivers_left_stalled"] = stats.receivers_left_stalled.into();
    json["receivers_refused_table"] = stats.receivers_refused_table.into();
    json["receivers_refused_source"] = stats.receivers_refused_source.into();
    json["receivers_refused_prefix"] = stats.receivers_refused_prefix.into();
    json["receivers_refused_rate"] = stats.receivers_refused_rate.into();
    json["receivers_left_refused"] = stats.receivers_left_refused.into();
    json["receiver_prefixes_heard"] = stats.receiver_prefixes_heard.into();
    write_json(&args.stats_json, json)?;
    if refused {
        return Err(format!(
            "{} receiver id(s) refused until the end: not every receiver is known to be complete",
            stats.receivers_left_refused
        ));
    }
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
    output::catch_interrupts()?;
    // --output, --timeout and --idle-timeout were checked by their parsers.
    let timeout = args.timeout;
    // The interface, before the warnings: a mistyped one is the error.
    groupcast::io::interface_index(&args.interface).map_err(|e| e.to_string())?;
    let net = args.net_config();
    // One receiver id for every transfer this run takes.
    let receiver_id = groupcast::io::random_id();
    args.check_keys()?;
    if args.follow && !args.keyed() {
        eprintln!(
            "warning: --follow replaces files with whatever later transfers on the group carry; \
without --sender-key, use it only on a group that only the sender reaches (see docs/security.md)"
        );
    }
    if args.expect.is_none() && !args.keyed() {
        eprintln!(
            "warning: no --expect ID: any host that can send to the group can impersonate the \
sender; pin the transfer with the id `groupcast id PATH` prints"
        );
    }
    let pb = bar(SPINNER);
    crate::log::show(&pb);
    let mut seen = Vec::new();
    loop {
        let (session, outcome) = recv_one(args, &net, &pb, timeout, receiver_id, &seen);
        if !args.follow {
            return outcome;
        }
        if interrupted() {
            eprintln!("stopped following the channel");
            return Ok(());
        }
        // The session bound, whatever became of it, is ignored from now on:
        // late packets of one received, and the manifest (repeated) of one
        // refused or dropped idle. The same content sent again by a new
        // session completes at once, every file kept.
        seen.extend(session);
        if let Err(e) = outcome {
            // Under --follow a transfer that fails is reported and the wait goes on.
            eprintln!("groupcast: {e}; waiting for the next transfer");
        }
        if seen.len() > 1024 {
            seen.remove(0);
        }
    }
}

/// One transfer of `groupcast recv`: the session bound, if any, and whether
/// its transfer was received and placed.
fn recv_one(
    args: &RecvArgs,
    net: &NetConfig,
    pb: &indicatif::ProgressBar,
    timeout: Option<Duration>,
    receiver_id: u64,
    seen: &[SessionId],
) -> (Option<SessionId>, Result<(), String>) {
    match recv_transfer(args, net, pb, timeout, receiver_id, seen) {
        Ok((session, outcome)) => (session, outcome),
        Err(e) => (None, Err(e)),
    }
}

/// [`recv_one`]; the error of the outer result is a local failure, before or
/// after the transfer.
fn recv_transfer(
    args: &RecvArgs,
    net: &NetConfig,
    pb: &indicatif::ProgressBar,
    timeout: Option<Duration>,
    receiver_id: u64,
    seen: &[SessionId],
) -> Result<(Option<SessionId>, Result<(), String>), String> {
    let sink_config = args.sink_config();
    let receiver_config = args.receiver_config(receiver_id, seen);
    let stop = interrupted;
    // A spinner until a manifest is bound, then a bar over its files' bytes.
    pb.set_style(ProgressStyle::with_template(SPINNER).expect("valid template"));
    pb.set_position(0);
    let mut bound = None;
    let result = receive_into(
        net,
        receiver_config,
        sink_config,
        args.output.as_deref().expect("checked in recv"),
        timeout,
        stop,
        |r, sink| {
            let s = r.stats();
            if sink.bound().is_some() && bound != sink.bound() {
                bound = sink.bound();
                pb.set_style(bytes_style());
                pb.set_length(sink.entries().map(|e| e.size).sum());
                pb.reset_eta();
            }
            if bound.is_some() {
                pb.set_position(sink.bytes_written);
                pb.set_message(format!(
                    "{} of {} files verified · {} received",
                    sink.verified(),
                    sink.files(),
                    HumanBytes(s.bytes_received)
                ));
            } else {
                pb.set_message(format!(
                    "waiting for a manifest · {} packets",
                    s.packets_received
                ));
                pb.tick();
            }
        },
    );
    if !args.follow {
        pb.finish_and_clear();
        crate::log::hide();
    }
    let (stats, report, outcome) = result.map_err(|e| e.to_string())?;
    let outcome =
        outcome.map_err(
            |e| match seal_hint(&stats).or_else(|| signing_hint(args, &stats)) {
                Some(hint) => format!("{e}; {hint}"),
                None => e,
            },
        );
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    if outcome.is_ok() {
        eprintln!(
            "received {} file(s), {}, verified, in {}{}",
            report.files,
            HumanBytes(report.file_bytes),
            human_secs(report.duration_s),
            if report.files_kept > 0 {
                format!(" ({} identical already, kept)", report.files_kept)
            } else {
                String::new()
            },
        );
        if report.parts_resumed > 0 {
            eprintln!(
                "resumed {} part(s), {}, verified from an earlier run: not received again",
                report.parts_resumed,
                HumanBytes(report.bytes_resumed)
            );
        }
        // (Under --follow, a transfer that changed nothing runs no command.)
        if let (Some(cmd), Some(id)) = (&args.exec, report.transfer_id)
            && !(args.follow && report.changed.is_empty())
        {
            let output = args.output.as_deref().expect("checked in recv");
            run_exec(cmd, id, output, &report);
        }
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
    let mut json = serde_json::json!({
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
            "nacks_unanswered": stats.nacks_unanswered,
            "feedback_expired": stats.feedback_expired,
            "buffer_full": stats.buffer_full,
            "peak_rss_bytes": peak_rss_bytes(),
            "cpu_s": groupcast::io::cpu_seconds(),
            "blocks_decoded": stats.blocks_decoded,
            "decode_retries": stats.decode_retries,
            "files": report.files,
            "files_kept": report.files_kept,
            "parts_resumed": report.parts_resumed,
            "bytes_resumed": report.bytes_resumed,
            "file_bytes": report.file_bytes,
            "duration_s": report.duration_s,
            "complete": outcome.is_ok(),
            "probes_received": stats.probes_received,
            "nacks_sent": stats.nacks_sent,
            "nacks_suppressed": stats.nacks_suppressed,
            "nacks_heard": stats.nacks_heard,
            "status_sent": stats.status_sent,
            "status_withheld": stats.status_withheld,
            "feedback_dropped": report.driver.feedback_dropped,
    });
    json["status_unasked"] = stats.status_unasked.into();
    json["auth"] = crate::output::auth_json(&stats);
    json["seal"] = crate::output::seal_json(&stats);
    // (Beyond the macro's recursion limit in one literal.)
    json["files_changed"] = report.changed.len().into();
    json["idle_dropped"] = report.idle_dropped.into();
    write_json(&args.stats_json, json)?;
    Ok((report.session, outcome))
}

/// `recv --exec CMD`: runs CMD with `sh -c` after a transfer placed whole,
/// with the transfer in its environment; GROUPCAST_CHANGED names a file
/// (private, removed once CMD returns) listing the paths placed, relative to
/// the output directory, one a line (a manifest's paths hold no control
/// character). A failure is reported, not fatal.
fn run_exec(
    cmd: &str,
    id: groupcast::io::manifest::TransferId,
    output: &std::path::Path,
    report: &groupcast::io::files::TransferReport,
) {
    let list: String = report.changed.iter().map(|p| format!("{p}\n")).collect();
    let changed = match changed_list(&list) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("warning: --exec '{cmd}' not run: writing the list of changed paths: {e}");
            return;
        }
    };
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("GROUPCAST_TRANSFER_ID", id.to_string())
        .env("GROUPCAST_OUTPUT", output)
        .env("GROUPCAST_FILES", report.files.to_string())
        .env("GROUPCAST_FILES_KEPT", report.files_kept.to_string())
        .env("GROUPCAST_CHANGED", &changed)
        .status();
    let _ = std::fs::remove_file(&changed);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("warning: --exec '{cmd}' exited with {s}"),
        Err(e) => eprintln!("warning: --exec '{cmd}' could not run: {e}"),
    }
}

/// Writes `list` to a new file of the temporary directory, created
/// exclusively (so never through a name someone else made), readable by
/// this user only: its path.
fn changed_list(list: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut last = None;
    for attempt in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "groupcast-changed-{}-{nanos:09}-{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(list.as_bytes())?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("an attempt was made"))
}

/// `groupcast id`: the transfer id `groupcast send PATH` would announce.
pub fn id(
    path: &std::path::Path,
    part_size: u64,
    key: Option<&groupcast::proto::auth::VerifyingKey>,
) -> Result<(), String> {
    let id = groupcast::io::files::transfer_id(path, part_size).map_err(|e| e.to_string())?;
    match key {
        Some(k) => println!("{}", crate::args::signed_id(id, k)),
        None => println!("{id}"),
    }
    Ok(())
}

/// Why a receiver opened nothing, if that is why: the channel is encrypted
/// and it has no key, or another key; or it has a key and the sender none.
pub fn seal_hint(stats: &groupcast::ReceiverStats) -> Option<String> {
    use groupcast::RejectReason as R;
    if stats.opened > 0 {
        return None;
    }
    if stats.rejected(R::Sealed) > 0 {
        Some(
            "the channel is encrypted: give its key with --key-file FILE (or \
             --passphrase-file FILE)"
                .into(),
        )
    } else if stats.rejected(R::BadSeal) > 0 {
        Some(format!(
            "{} packets were sealed under another channel key: --key-file is not the \
             sender's key",
            stats.rejected(R::BadSeal)
        ))
    } else if stats.rejected(R::Unsealed) > 0 {
        Some(
            "packets came unencrypted, and a receiver with a channel key takes nothing \
             unencrypted: the sender has no --key-file"
                .into(),
        )
    } else {
        None
    }
}

/// Why a receiver with `--sender-key` took nothing, if that is why: the
/// sender signs with another key, or does not sign.
pub fn signing_hint(args: &RecvArgs, stats: &groupcast::ReceiverStats) -> Option<String> {
    let a = stats.auth;
    (args.keyed() && a.auths_verified == 0).then_some(())?;
    if a.auths_untimely > 0 && a.auths_refused == 0 {
        Some(format!(
            "{} signed lists (AUTH) were signed more than {} s away from this host's clock: \
             an old session replayed, or the sender's clock and this one disagree",
            a.auths_untimely,
            groupcast::proto::auth::AUTH_MAX_AGE.as_secs()
        ))
    } else if a.auths_refused > 0 {
        Some(format!(
            "no signed list (AUTH) verified under the sender key given ({} refused): the sender \
             signs with another key, or its AUTH packets were lost and others forged",
            a.auths_refused
        ))
    } else if a.held + a.unvouched > 0 {
        Some(
            "packets came, but no signed list (AUTH): the sender does not sign (send --sign)"
                .into(),
        )
    } else {
        None
    }
}
