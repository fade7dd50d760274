//! No driver parses a packet: what a datagram is, which socket it belongs
//! on, and whether its source may be answered are the core's to say
//! (`Arrival::takes`, `Receiver::handle_datagram` returning `Accepted`,
//! `Destination::Sender(session)`). The drivers (the mio and tokio socket
//! drivers, the simulator) may use the wire's size constants, nothing else
//! of it.

use std::path::Path;

/// The drivers' sources, from this crate's directory.
const DRIVERS: &[&str] = &[
    "src/io/mod.rs",
    "src/io/pubsub.rs",
    "src/io/pubsub/tokio.rs",
    "src/io/files.rs",
    "../sim/src/run.rs",
];

/// What reading a packet takes: the wire views and parsers, field offsets,
/// packet types.
const WIRE_VIEWS: &[&str] = &[
    "Packet::new",
    "new_checked",
    "Repr::parse",
    "Repr::",
    "wire::field",
    "field::",
    "PacketType",
    "from_be_bytes",
];

/// The wire items a driver may name: sizes of buffers.
const ALLOWED: &[&str] = &["wire::MAX_DATAGRAM", "wire::DEFAULT_MAX_DATAGRAM"];

#[test]
fn no_driver_parses_a_packet() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in DRIVERS {
        let text =
            std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        // The unit tests at the end of a file may build packets.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for view in WIRE_VIEWS {
                if line.contains(view) {
                    found.push(format!("{file}:{}: {view}: {line}", n + 1));
                }
            }
            if line.contains("wire::") && !ALLOWED.iter().any(|a| line.contains(a)) {
                found.push(format!("{file}:{}: {line}", n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "drivers reading packets:\n{}",
        found.join("\n")
    );
}
