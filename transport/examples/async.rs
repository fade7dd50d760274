//! Messages under tokio (cargo feature `tokio`): the publisher's `send` and
//! `close` are futures, and the subscriber's messages a `futures` Stream.
//!
//! ```sh
//! cargo run --release -p groupcast --features tokio --example async -- subscribe news eth0
//! cargo run --release -p groupcast --features tokio --example async -- publish news eth0
//! ```

use std::future::poll_fn;
use std::pin::Pin;

use futures_core::Stream;
use groupcast::{Publisher, Subscriber};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, channel, interface] = &args[..] else {
        eprintln!("usage: async publish|subscribe CHANNEL INTERFACE");
        std::process::exit(2);
    };
    match role.as_str() {
        "publish" => {
            let publisher = Publisher::builder(channel, interface).open_async()?;
            for i in 0..1000u32 {
                publisher.send(format!("news {i}").as_bytes()).await?;
            }
            let report = publisher.close().await?;
            println!(
                "sent {} messages; confirmed: {}",
                report.messages, report.confirmed
            );
        }
        "subscribe" => {
            let subscriber = Subscriber::builder(channel, interface).open_async()?;
            // With futures' or tokio-stream's StreamExt: `messages.next().await`.
            let mut messages = subscriber.messages();
            while let Some(m) = poll_fn(|cx| Pin::new(&mut messages).poll_next(cx)).await {
                let m = m?;
                println!(
                    "{} #{}: {}",
                    m.sender,
                    m.seq,
                    String::from_utf8_lossy(&m.data)
                );
            }
        }
        _ => {
            eprintln!("usage: async publish|subscribe CHANNEL INTERFACE");
            std::process::exit(2);
        }
    }
    Ok(())
}
