//! A byte stream: standard input of the sender becomes standard output of
//! every receiver, in order, verified, ending when the sender's input ends.
//!
//! ```sh
//! cargo run --release -p groupcast --example stream -- recv logs eth0 > copy.log
//! cargo run --release -p groupcast --example stream -- send logs eth0 < app.log
//! ```

use std::io::{Read, Write};

use groupcast::{Publisher, Subscriber};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, channel, interface] = &args[..] else {
        eprintln!("usage: stream send|recv CHANNEL INTERFACE");
        std::process::exit(2);
    };
    match role.as_str() {
        "send" => {
            let mut stream = Publisher::builder(channel, interface).open()?.into_stream();
            std::io::copy(&mut std::io::stdin().lock(), &mut stream)?;
            // Marks the end and waits for the receivers to confirm it all.
            let report = stream.close()?;
            eprintln!(
                "sent {} bytes; confirmed: {}",
                report.stream_len, report.confirmed
            );
        }
        "recv" => {
            // The first publisher heard from its first byte; `read` returns 0
            // at the end of its stream, and a gap is an error.
            let mut stream = Subscriber::builder(channel, interface)
                .open()?
                .into_stream();
            let mut buf = vec![0u8; 64 << 10];
            let mut out = std::io::stdout().lock();
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
            out.flush()?;
        }
        _ => {
            eprintln!("usage: stream send|recv CHANNEL INTERFACE");
            std::process::exit(2);
        }
    }
    Ok(())
}
