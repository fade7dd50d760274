//! A line-based group chat on `Endpoint`: every participant both sends and
//! receives. Run it on two or more hosts of one link (or namespaces):
//!
//! ```sh
//! cargo run --release -p groupcast --example chat -- lobby eth0 alice
//! ```
//!
//! (`groupcast chat` is the same, with flags.)

use std::io::BufRead;
use std::time::Duration;

use groupcast::{Endpoint, RecvError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(channel), Some(interface)) = (args.next(), args.next()) else {
        eprintln!("usage: chat CHANNEL INTERFACE [NAME]");
        std::process::exit(2);
    };
    let name = args.next().unwrap_or_else(|| "anonymous".into());
    let endpoint = Endpoint::open(&channel, &interface)?;
    // Everyone else's lines, as they come, with control characters escaped.
    let ep = &endpoint;
    std::thread::scope(|scope| -> Result<(), Box<dyn std::error::Error>> {
        let printer = scope.spawn(move || {
            loop {
                match ep.subscriber().recv_timeout(Duration::from_millis(200)) {
                    Ok(m) => println!("{}", String::from_utf8_lossy(&m.data).escape_debug()),
                    Err(RecvError::Gap { .. }) => eprintln!("(some lines were lost)"),
                    Err(RecvError::Conflict { .. }) => eprintln!("(someone forges lines)"),
                    Err(RecvError::TimedOut) => {}
                    Err(e) => {
                        eprintln!("{e}");
                        break;
                    }
                }
            }
        });
        // Our lines, to everyone else, each sent at once.
        for line in std::io::stdin().lock().lines() {
            ep.send(format!("{name}: {}", line?).as_bytes())?;
            ep.publisher().flush();
        }
        // End of input: leave (the printer would wait for ever).
        drop(printer);
        std::process::exit(0)
    })
}
