//! Logging to stderr (`tracing`), below the progress bar: `-v`, `-vv`, `-q`,
//! or `RUST_LOG` (for example `RUST_LOG=groupcast=debug`), which wins.

use std::io::Write;
use std::sync::Mutex;

use indicatif::ProgressBar;

/// The progress bar on screen, if any: log lines are written while it is
/// hidden, so that they do not tear it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Lets log lines pass above `bar` while it is shown.
pub fn show(bar: &ProgressBar) {
    if let Ok(mut b) = BAR.lock() {
        *b = Some(bar.clone());
    }
}

/// The bar is gone.
pub fn hide() {
    if let Ok(mut b) = BAR.lock() {
        *b = None;
    }
}

struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Starts logging: `RUST_LOG` if set, else warnings (`-q`: errors only;
/// `-v`: groupcast's info, such as the session lock and stalled receivers;
/// `-vv`: debug, such as every object completed and refusals).
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,groupcast=info",
        (false, _) => "warn,groupcast=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
