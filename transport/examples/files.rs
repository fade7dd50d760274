//! Files: a file or a directory tree to every receiver, verified against a
//! manifest, placed all at once when every file has verified.
//!
//! ```sh
//! cargo run --release -p groupcast --example files -- recv release eth0 ./in
//! cargo run --release -p groupcast --example files -- send release eth0 ./release
//! ```
//!
//! `groupcast send` and `groupcast recv` are the same with every option.

use std::path::Path;
use std::time::Duration;

use groupcast::io::NetConfig;
use groupcast::io::files::{SinkConfig, receive_into, send_path};
use groupcast::io::manifest::DEFAULT_PART_SIZE;
use groupcast::{Channel, Mode, ReceiverConfig, SenderConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, channel, interface, path] = &args[..] else {
        eprintln!("usage: files send|recv CHANNEL INTERFACE PATH");
        std::process::exit(2);
    };
    let mut net = NetConfig::new(Channel::new(channel), interface);
    // Hybrid mode: receivers report, so the sender knows when they are done.
    net.feedback = true;
    match role.as_str() {
        "send" => {
            let config = SenderConfig {
                mode: Mode::Hybrid,
                repair_overhead: Mode::Hybrid.default_repair_overhead(),
                rate: Some(groupcast::DEFAULT_RATE_BITS / 8),
                ..SenderConfig::default()
            };
            let (stats, report) = send_path(
                &net,
                config,
                Path::new(path),
                DEFAULT_PART_SIZE,
                |id| eprintln!("transfer id {id}"),
                |_| {},
                |_| false,
            )?;
            eprintln!(
                "sent {} files ({} bytes) in {:.1} s; {} receiver(s) heard",
                report.files, report.file_bytes, report.duration_s, stats.receivers_heard
            );
        }
        "recv" => {
            let timeout = Some(Duration::from_secs(600));
            let (_, report, placed) = receive_into(
                &net,
                ReceiverConfig::default(),
                SinkConfig::default(),
                Path::new(path),
                timeout,
                || false,
                |_, _| {},
            )?;
            placed?;
            eprintln!("received {} files into {path}", report.files);
        }
        _ => {
            eprintln!("usage: files send|recv CHANNEL INTERFACE PATH");
            std::process::exit(2);
        }
    }
    Ok(())
}
