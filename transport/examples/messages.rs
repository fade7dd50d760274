//! Messages: one publisher, any number of subscribers. Run a subscriber on
//! each receiving host, then the publisher (same link, or through multicast
//! routers):
//!
//! ```sh
//! cargo run --release -p groupcast --example messages -- subscribe prices eth0
//! cargo run --release -p groupcast --example messages -- publish prices eth0
//! ```
//!
//! On one machine, run them in the two namespaces of `examples/lab.sh`
//! (README, "Try it on one machine").

use groupcast::{Publisher, Subscriber};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, channel, interface] = &args[..] else {
        eprintln!("usage: messages publish|subscribe CHANNEL INTERFACE");
        std::process::exit(2);
    };
    match role.as_str() {
        "publish" => {
            let publisher = Publisher::builder(channel, interface).open()?;
            for i in 0..1000u32 {
                // Blocks while the slowest subscriber is a window behind.
                publisher.send(format!("tick {i}").as_bytes())?;
            }
            // Waits until the subscribers confirmed every message.
            let report = publisher.close()?;
            println!(
                "sent {} messages; {} subscriber(s) confirmed them all: {}",
                report.messages, report.receivers_confirmed, report.confirmed
            );
        }
        "subscribe" => {
            let subscriber = Subscriber::builder(channel, interface).open()?;
            // Ends when the publisher closes; a gap is an error, never skipped.
            for message in &subscriber {
                let m = message?;
                println!(
                    "{} #{}: {}",
                    m.sender,
                    m.seq,
                    String::from_utf8_lossy(&m.data)
                );
            }
        }
        _ => {
            eprintln!("usage: messages publish|subscribe CHANNEL INTERFACE");
            std::process::exit(2);
        }
    }
    Ok(())
}
