//! What the commands print and keep besides their result: progress bars,
//! spans of time for people, `--stats-json` files, the peak resident set, and
//! the interrupt flag SIGINT and SIGTERM set.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Set by SIGINT or SIGTERM: a command stops sending or receiving, then
/// reports as usual.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT and SIGTERM set the interrupt flag instead of ending the
/// process.
pub fn catch_interrupts() -> Result<(), String> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, &INTERRUPTED)
            .map_err(|e| format!("installing a signal handler: {e}"))?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM has arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

pub fn bar(template: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// A span of seconds for people, to the millisecond ("1m 23s 520ms").
pub fn human_secs(secs: f64) -> String {
    let d = Duration::try_from_secs_f64(secs).unwrap_or_default();
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// What a progress bar shows while its total is unknown: a spinner.
pub const SPINNER: &str = "{spinner} {msg} [{elapsed}]";

/// What a progress bar shows once its total (bytes) is known: the share
/// done, the throughput and the time left.
pub fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{bar:24} {percent:>3}% {binary_bytes}/{binary_total_bytes} · {binary_bytes_per_sec} · \
         ETA {eta} · {msg}",
    )
    .expect("valid template")
}

pub fn write_json(path: &Option<PathBuf>, value: serde_json::Value) -> Result<(), String> {
    if let Some(p) = path {
        std::fs::write(p, format!("{value}\n"))
            .map_err(|e| format!("writing --stats-json {}: {e}", p.display()))?;
    }
    Ok(())
}

/// This process's peak resident set (VmHWM), in bytes, or 0 if unknown.
/// Not getrusage's `ru_maxrss`: Linux carries the high-water mark of the
/// address space an exec replaced into it, so a `groupcast` started by a
/// large process would report that process's peak.
pub fn peak_rss_bytes() -> u64 {
    groupcast::io::process_status("VmHWM")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The `auth` object of a receiver's `--stats-json` (docs/cli.md).
pub fn auth_json(stats: &groupcast::ReceiverStats) -> serde_json::Value {
    let a = stats.auth;
    serde_json::json!({
        "verified": a.auths_verified,
        "refused": a.auths_refused,
        "repeated": a.auths_repeated,
        "replayed": a.replayed,
        "stale": a.auths_stale,
        "untimely": a.auths_untimely,
        "vouched": a.vouched,
        "unvouched": a.unvouched,
        "held": a.held,
        "ignored": stats.auth_ignored,
        "symbols_unvouched": stats.symbols_unvouched,
    })
}

/// The `seal` object of `recv`'s JSON stats: datagrams opened, and those
/// refused for their seal (protocol.md §16.3).
pub fn seal_json(stats: &groupcast::ReceiverStats) -> serde_json::Value {
    use groupcast::RejectReason as R;
    serde_json::json!({
        "opened": stats.opened,
        "sealed": stats.rejected(R::Sealed),
        "unsealed": stats.rejected(R::Unsealed),
        "bad_seal": stats.rejected(R::BadSeal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_styles_and_spans() {
        let bar = ProgressBar::hidden();
        bar.set_style(bytes_style());
        bar.set_style(ProgressStyle::with_template(SPINNER).unwrap());
        assert_eq!(human_secs(83.52), "1m 23s 520ms");
        assert_eq!(human_secs(0.25), "250ms");
        assert_eq!(human_secs(f64::NAN), "0s");
    }
}
