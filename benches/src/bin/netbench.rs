//! Network benchmark: groupcast's goodput against raw UDP, measured in one run
//! over a veth link between two network namespaces that this program creates
//! (and deletes, even on failure). Needs root and iproute2; nftables for the
//! loss case.
//!
//! ```sh
//! cargo build --release
//! cargo run --release -p groupcast-benches --bin netbench -- [--size 256MiB]
//! cargo run --release -p groupcast-benches --bin netbench -- pacing
//! ```
//!
//! `netbench tree` sends a tree of 10,000 small files and 5 large ones, and
//! one file of the same size, and prints the tree's goodput against the
//! file's.
//!
//! `netbench pacing` measures raw UDP, then the rate `groupcast send --rate R`
//! puts on the wire at 10M, 100M, 500M, 1G and 2G, against R.
//!
//! `netbench keys` sends the same file (`--size`, default 256 MiB) four times
//! in hybrid mode, at `--rate max` and at `--rate 1G`: plain, signed
//! (`--sign`), encrypted (`--key-file`) and both, and prints each one's
//! goodput, bytes on the wire and CPU per GB at each end, against the plain
//! run's at the same rate.
//!
//! Without an argument it runs:
//! 1. raw UDP: a minimal blaster sends 1232-byte datagrams to the group as fast
//!    as it can; a minimal sink counts what arrives;
//! 2. `groupcast send --rate max` of a 256 MiB random file to `groupcast recv`,
//!    at 0% and 10% random drop (nftables), in hybrid mode (the default: the
//!    sender paced by the receiver's window, repair on request) and in
//!    carousel mode (`--forever`, no back channel);
//!
//! and prints goodput / raw and goodput / (raw × (1 − p)), with each end's peak
//! RSS and CPU seconds per GB delivered (from `--stats-json`, and the raw
//! blaster's and sink's own). `--size` (bytes, or KiB, MiB, GiB; default
//! 256 MiB, or NETBENCH_SIZE) sets how much; a comma-separated list
//! (`--size 256MiB,4GiB`) runs each size in turn, and prints each size's
//! goodput at 0% drop as a ratio of the first's. `--modes hybrid` runs only
//! the modes listed. Files are written, and the copies compared, in chunks:
//! nothing holds a whole file.
//!
//! Large-file runs (4 GiB and 20 GiB, beside 256 MiB):
//!
//! ```sh
//! cargo run --release -p groupcast-benches --bin netbench -- --size 256MiB,4GiB --modes hybrid
//! cargo run --release -p groupcast-benches --bin netbench -- --size 256MiB,20GiB --modes hybrid
//! ```

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use groupcast::units::parse_size;
use socket2::{Domain, Protocol, Socket, Type};

const GROUP: &str = "ff1e::6263:6e65"; // arbitrary, inside the namespaces only
const PORT: u16 = 4243;
const DATAGRAM: usize = 1232;
const MIB: f64 = (1 << 20) as f64;

fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect(args[0]);
    assert!(st.success(), "`{}` failed", args.join(" "));
}

/// Runs a command inside a namespace.
fn sh_in(ns: &str, args: &[&str]) {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    sh(&full);
}

/// Drops `percent`% of groupcast's UDP packets arriving in `ns` (nftables numgen).
fn drop_in(ns: &str, percent: u32) {
    sh_in(ns, &["nft", "add", "table", "ip6", "gcbench"]);
    sh_in(
        ns,
        &[
            "nft",
            "add chain ip6 gcbench input { type filter hook input priority 0; }",
        ],
    );
    let rule =
        format!("add rule ip6 gcbench input udp dport 4242 numgen random mod 100 < {percent} drop");
    sh_in(ns, &["nft", &rule]);
}

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ifindex(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .expect("interface")
        .trim()
        .parse()
        .unwrap()
}

/// This process's peak RSS (VmHWM, bytes) and CPU seconds so far, as the
/// `groupcast` stats report them.
fn resources() -> (u64, f64) {
    (
        groupcast::io::process_status("VmHWM")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024),
        groupcast::io::cpu_seconds(),
    )
}

/// Raw blaster: `netbench blast IFACE BYTES`; prints "rss_bytes cpu_seconds".
fn blast_and_report(iface: &str, bytes: u64) {
    blast(iface, bytes);
    let (rss, cpu) = resources();
    println!("{rss} {cpu}");
}

/// Raw blaster: `netbench blast IFACE BYTES`.
fn blast(iface: &str, bytes: u64) {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_multicast_if_v6(ifindex(iface)).unwrap();
    s.set_multicast_hops_v6(1).unwrap();
    let _ = s.set_send_buffer_size(8 << 20);
    let sock: UdpSocket = s.into();
    let dest = SocketAddrV6::new(GROUP.parse().unwrap(), PORT, 0, 0);
    let buf = [0x5au8; DATAGRAM];
    let n = bytes / DATAGRAM as u64;
    for _ in 0..n {
        // Blocking socket: a full buffer waits rather than drops.
        if let Err(e) = sock.send_to(&buf, dest) {
            if e.raw_os_error() == Some(105) {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                panic!("send: {e}");
            }
        }
    }
}

/// Raw sink: `netbench sink IFACE [GROUP PORT]`; prints "bytes seconds" of
/// what arrived, from the first datagram to the last.
fn sink(iface: &str, group: Ipv6Addr, port: u16) {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    let _ = s.set_recv_buffer_size(8 << 20);
    s.bind(&SocketAddrV6::new(group, port, 0, 0).into())
        .unwrap();
    s.join_multicast_v6(&group, ifindex(iface)).unwrap();
    let sock: UdpSocket = s.into();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut first = None;
    let mut last = Instant::now();
    let mut bytes = 0u64;
    while let Ok(n) = sock.recv(&mut buf) {
        last = Instant::now();
        first.get_or_insert(last);
        bytes += n as u64;
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    }
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    let (rss, cpu) = resources();
    println!("{bytes} {secs} {rss} {cpu}");
}

fn spawn(ns: &str, args: &[&str], log: &Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// `netbench tree`: a tree of 10,000 files of 1-64
/// KiB in 679 directories, modes 644, 600 and 755, plus 5 files of 32 MiB,
/// against one file of the same total size, each sent with `--rate max` in
/// hybrid mode to a receiver with a fresh output directory, twice, in
/// alternating order. The copies go to a tmpfs (/dev/shm) where there is one,
/// so that what is measured is the transport's handling of many files, not
/// the output disk: on this machine's ext4, which has no journal, creating
/// an inode scans every inode deleted in the last 60 to 360 s
/// (`recently_deleted`), and the tree's 10,000 creations then cost seconds
/// after any earlier run's clean-up. Checks that the tree
/// arrives identical (paths, contents, modes) and prints each goodput and
/// the tree's as a ratio of the one file's.
fn tree_table(a: &str, b: &str, groupcast: &Path, dir: &Path) {
    use rand::{Rng, SeedableRng};
    use std::os::unix::fs::PermissionsExt;
    let tree = dir.join("tree");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut total = 0u64;
    for i in 0..10_000u32 {
        let d = tree.join(format!("d{:02}/s{}", i % 97, i % 7));
        std::fs::create_dir_all(&d).unwrap();
        let mut data = vec![0u8; rng.random_range(1024..=65536)];
        rng.fill(&mut data[..]);
        let p = d.join(format!("f{i:05}.bin"));
        std::fs::write(&p, &data).unwrap();
        let mode = [0o644, 0o600, 0o755][i as usize % 3];
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        total += data.len() as u64;
    }
    for i in 0..5 {
        let p = tree.join(format!("large{i}.bin"));
        write_payload(&p, 32 << 20);
        total += 32 << 20;
    }
    let one = dir.join("one");
    std::fs::create_dir_all(&one).unwrap();
    write_payload(&one.join("one.bin"), total);
    sh(&["sync"]);
    let gc = groupcast.to_str().unwrap();
    let shm = Path::new("/dev/shm");
    let outs = if shm.is_dir() {
        shm.join(dir.file_name().unwrap())
    } else {
        dir.to_owned()
    };
    println!(
        "tree: {total} bytes in 10,005 files; copies under {}",
        outs.display()
    );
    let mut times: Vec<(u32, &str, f64)> = Vec::new();
    for round in 0..2u32 {
        let order = if round == 0 {
            [("one file", &one), ("tree", &tree)]
        } else {
            [("tree", &tree), ("one file", &one)]
        };
        for (what, src) in order {
            let label = format!("{}-{round}", what.replace(' ', "-"));
            let out = outs.join(format!("out-{label}"));
            std::fs::create_dir_all(&out).unwrap();
            let log = |who: &str| dir.join(format!("{who}-{label}.log"));
            let mut rx = spawn_recv(b, gc, &out, &["--timeout", "300"], &log("recv"));
            std::thread::sleep(Duration::from_millis(300));
            let started = Instant::now();
            let send_path = if what == "tree" {
                src.to_path_buf()
            } else {
                src.join("one.bin")
            };
            let mut tx = spawn(
                a,
                &[
                    gc,
                    "send",
                    send_path.to_str().unwrap(),
                    "--channel",
                    "netbench",
                    "--interface",
                    "e0",
                    "--rate",
                    "max",
                ],
                &log("send"),
            );
            let status = rx.wait().unwrap();
            let secs = started.elapsed().as_secs_f64();
            let _ = tx.wait();
            assert!(
                status.success(),
                "receiver failed: {}",
                std::fs::read_to_string(log("recv")).unwrap_or_default()
            );
            assert!(same_tree(src, &out), "{what}: the copy differs");
            times.push((round, what, secs));
            // Each copy goes once checked: on this project's VMs memory not
            // used lately comes slowly (docs/results.md), and four copies
            // left on the tmpfs would make each run slower than the one before.
            std::fs::remove_dir_all(&out).unwrap();
            sh(&["sync"]);
        }
    }
    println!();
    println!("| round | what | size | time | goodput |");
    println!("|---|---|---|---|---|");
    for (round, what, secs) in &times {
        println!(
            "| {round} | {what} | {:.1} MB | {secs:.2} s | {:.1} MB/s |",
            total as f64 / 1e6,
            total as f64 / secs / 1e6
        );
    }
    for round in 0..2 {
        let t = |w: &str| times.iter().find(|r| r.0 == round && r.1 == w).unwrap().2;
        println!(
            "round {round}: the tree goes at {:.2} x the goodput of one file",
            t("one file") / t("tree")
        );
    }
    let _ = std::fs::remove_dir_all(&outs);
}

/// Whether two trees hold the same paths, contents and modes.
fn same_tree(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let list = |root: &Path| -> Vec<(PathBuf, u32)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(root).unwrap().to_owned();
                    out.push((rel, m.permissions().mode() & 0o777));
                }
            }
        }
        out.sort();
        out
    };
    let (la, lb) = (list(a), list(b));
    la == lb
        && la
            .iter()
            .all(|(rel, _)| same_bytes(&a.join(rel), &b.join(rel)))
}

/// `groupcast recv` on the benchmark's channel in `ns`, into `out`.
fn spawn_recv(ns: &str, gc: &str, out: &Path, extra: &[&str], log: &Path) -> Child {
    let mut args = vec![
        gc,
        "recv",
        "--channel",
        "netbench",
        "--interface",
        "e0",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    spawn(ns, &args, log)
}

/// `netbench keys`: one hybrid transfer of `size` bytes at `--rate max` with
/// no key, with a signing key, with a channel key, and with both; each
/// one's goodput, bytes on the wire and CPU per GB at each end, and the
/// keyed runs against the plain one (docs/results.md, "Signed and
/// encrypted channels").
fn keys_table(a: &str, b: &str, groupcast: &Path, dir: &Path, size: u64, raw: f64) {
    let gc = groupcast.to_str().unwrap();
    let signer = dir.join("signer");
    let channel_key = dir.join("channel.key");
    for args in [
        vec!["keygen", "--out", signer.to_str().unwrap()],
        vec!["keygen", "--channel-key", channel_key.to_str().unwrap()],
    ] {
        let st = Command::new(gc)
            .args(&args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "groupcast {}", args.join(" "));
    }
    let (secret, public) = (
        format!("{}.key", signer.display()),
        format!("{}.pub", signer.display()),
    );
    let key = channel_key.to_str().unwrap().to_owned();
    let file = dir.join("payload.bin");
    write_payload(&file, size);
    let max_size = format!("{}", size.max(1 << 30));
    let runs: [(&str, Vec<&str>, Vec<&str>); 4] = [
        ("plain", vec![], vec![]),
        (
            "signed",
            vec!["--sign", &secret],
            vec!["--sender-key", &public],
        ),
        (
            "encrypted",
            vec!["--key-file", &key],
            vec!["--key-file", &key],
        ),
        (
            "signed + encrypted",
            vec!["--sign", &secret, "--key-file", &key],
            vec!["--sender-key", &public, "--key-file", &key],
        ),
    ];
    for rate in ["max", "1G"] {
        keys_rows(a, b, gc, dir, &file, size, &max_size, rate, &runs);
    }
    println!("raw UDP in this run: {:.1} MB/s", raw / 1e6);
    let _ = std::fs::remove_file(&file);
}

/// One transfer per entry of `runs` at `--rate rate`, and their table.
#[allow(clippy::too_many_arguments)]
fn keys_rows(
    a: &str,
    b: &str,
    gc: &str,
    dir: &Path,
    file: &Path,
    size: u64,
    max_size: &str,
    rate: &str,
    runs: &[(&str, Vec<&str>, Vec<&str>)],
) {
    let mut rows = Vec::new();
    for (i, (name, send_keys, recv_keys)) in runs.iter().enumerate() {
        let out = dir.join(format!("out-keys{i}"));
        std::fs::create_dir_all(&out).unwrap();
        let (recv_stats, send_stats) = (
            dir.join(format!("recv-keys{i}.json")),
            dir.join(format!("send-keys{i}.json")),
        );
        let log = |who: &str| dir.join(format!("{who}-keys{i}.log"));
        let mut recv_args = vec![
            "--timeout",
            "900",
            "--max-object-size",
            max_size,
            "--stats-json",
            recv_stats.to_str().unwrap(),
        ];
        recv_args.extend_from_slice(recv_keys);
        let mut rx = spawn_recv(b, gc, &out, &recv_args, &log("recv"));
        sh(&["sync"]);
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let mut args = send_args(gc, &send_stats, file, rate);
        args.extend_from_slice(send_keys);
        let mut tx = spawn(a, &args, &log("send"));
        let status = rx.wait().unwrap();
        let secs = started.elapsed().as_secs_f64();
        let _ = tx.wait();
        assert!(
            status.success(),
            "{name}: receiver failed: {}",
            std::fs::read_to_string(log("recv")).unwrap_or_default()
        );
        assert!(
            same_bytes(&out.join("payload.bin"), file),
            "{name}: received file differs"
        );
        let (s, r) = (stats_of(&send_stats), stats_of(&recv_stats));
        let num = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        rows.push((
            *name,
            size as f64 / secs,
            num(&s, "bytes_sent"),
            num(&s, "cpu_s"),
            num(&r, "cpu_s"),
        ));
        std::fs::remove_dir_all(&out).unwrap();
    }
    let gb = size as f64 / 1e9;
    let (_, plain_goodput, plain_bytes, plain_scpu, plain_rcpu) = rows[0];
    println!();
    println!(
        "| {}, --rate {rate} | goodput | against plain | bytes on the wire | against plain \
         | sender CPU s/GB | receiver CPU s/GB | receiver's extra CPU at 1 Gbit/s |",
        shown_size(size)
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &(name, goodput, bytes, scpu, rcpu) in &rows {
        // 1 Gbit/s of goodput is 0.125 GB a second.
        let extra = (rcpu - plain_rcpu) / gb * 0.125;
        println!(
            "| {name} | {:.1} MB/s | {:+.1}% | {bytes:.0} | {:+.2}% | {:.2} ({:+.2}) | {:.2} ({:+.2}) | {:+.2} core |",
            goodput / 1e6,
            (goodput / plain_goodput - 1.0) * 100.0,
            (bytes / plain_bytes - 1.0) * 100.0,
            scpu / gb,
            (scpu - plain_scpu) / gb,
            rcpu / gb,
            (rcpu - plain_rcpu) / gb,
            extra,
        );
    }
}

/// `groupcast send FILE` on the netbench channel at `rate`, with its stats
/// written to `stats`.
fn send_args<'a>(gc: &'a str, stats: &'a Path, file: &'a Path, rate: &'a str) -> Vec<&'a str> {
    vec![
        gc,
        "send",
        "--stats-json",
        stats.to_str().unwrap(),
        file.to_str().unwrap(),
        "--channel",
        "netbench",
        "--interface",
        "e0",
        "--rate",
        rate,
    ]
}

/// A `--stats-json` file's object, or null if there is none.
fn stats_of(path: &Path) -> serde_json::Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The rates `netbench pacing` asks for, bits per second.
const PACED: [(&str, u64); 5] = [
    ("10M", 10_000_000),
    ("100M", 100_000_000),
    ("500M", 500_000_000),
    ("1G", 1_000_000_000),
    ("2G", 2_000_000_000),
];

/// `netbench pacing`: for each rate of `PACED`, one carousel pass of about
/// 1.5 s of data (2 to 192 MiB) from `groupcast send --rate R` in `a` to a raw
/// sink in `b`, which times the datagrams from the first to the last. Prints
/// the rate on the wire (UDP payload) against the asked one, and against what
/// raw UDP carried on the same link in the same run.
fn pacing_table(a: &str, b: &str, me: &Path, groupcast: &Path, dir: &Path, raw: f64) {
    let channel = groupcast::channel::Channel::new("netbench-pacing");
    let (group, port) = (channel.group().to_string(), channel.port().to_string());
    let mut rows = Vec::new();
    for (name, bits) in PACED {
        let size = (bits / 8 * 3 / 2).clamp(2 << 20, 192 << 20);
        let file = dir.join(format!("pace-{name}.bin"));
        std::fs::write(
            &file,
            groupcast_fec::pseudo_random_bytes(size as usize, bits),
        )
        .unwrap();
        let log = dir.join(format!("pace-sink-{name}.log"));
        let sink_child = spawn(
            b,
            &[me.to_str().unwrap(), "sink", "e0", &group, &port],
            &log,
        );
        std::thread::sleep(Duration::from_millis(300));
        let stats = dir.join(format!("pace-send-{name}.json"));
        let st = Command::new("ip")
            .args(["netns", "exec", a])
            .arg(groupcast)
            .args(["send"])
            .arg(&file)
            .args([
                "--channel",
                "netbench-pacing",
                "--interface",
                "e0",
                "--rate",
                name,
                "--mode",
                "carousel",
                "--rounds",
                "1",
                "--overhead",
                "0",
                "--stats-json",
            ])
            .arg(&stats)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "groupcast send --rate {name} failed");
        let out = sink_child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let bytes: f64 = it.next().unwrap().parse().unwrap();
        let secs: f64 = it.next().unwrap().parse().unwrap();
        let wire = bytes * 8.0 / secs;
        rows.push((name, bits, wire, bytes, secs));
        let _ = std::fs::remove_file(&file);
    }
    println!();
    println!("| --rate | on the wire | wire / rate | wire / raw UDP | bytes | time |");
    println!("|---|---|---|---|---|---|");
    for (name, bits, wire, bytes, secs) in rows {
        println!(
            "| {name} | {:.1} Mbit/s | {:.3} | {:.2} | {bytes:.0} | {secs:.2} s |",
            wire / 1e6,
            wire / bits as f64,
            wire / (raw * 8.0),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("blast") => return blast_and_report(&args[2], args[3].parse().unwrap()),
        Some("sink") => {
            let group = args.get(3).map_or(GROUP, |g| g.as_str());
            let port = args.get(4).map_or(PORT, |p| p.parse().unwrap());
            return sink(&args[2], group.parse().unwrap(), port);
        }
        _ => {}
    }
    let pacing = args.iter().any(|a| a == "pacing");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let groupcast = std::env::var("GROUPCAST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/groupcast"));
    assert!(
        groupcast.exists(),
        "build first: cargo build --release ({} missing)",
        groupcast.display()
    );
    let me = std::env::current_exe().unwrap();
    // `--size BYTES[,BYTES...]` (or with a KiB, MiB or GiB suffix), else
    // NETBENCH_SIZE, else 256 MiB.
    let modes: Vec<String> = args
        .iter()
        .position(|a| a == "--modes")
        .and_then(|i| args.get(i + 1))
        .map_or_else(
            || vec!["hybrid".into(), "carousel".into()],
            |m| m.split(',').map(str::to_owned).collect(),
        );
    let size_arg = args
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| std::env::var("NETBENCH_SIZE").ok());
    let sizes: Vec<u64> = match size_arg {
        Some(v) => v
            .split(',')
            .map(|s| {
                parse_size(s).unwrap_or_else(|e| {
                    eprintln!("netbench: invalid value '{s}' for '--size': {e}");
                    std::process::exit(2);
                })
            })
            .collect(),
        None => vec![256 << 20],
    };
    let size = *sizes.iter().max().expect("one size at least");

    let tag = format!("gcbench{}", std::process::id() % 100_000);
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    let guard = Namespaces(vec![a.clone(), b.clone()]);
    for ns in &guard.0 {
        sh(&["ip", "netns", "add", ns]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        sh_in(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        );
    }
    sh(&[
        "ip", "link", "add", "e0", "netns", &a, "type", "veth", "peer", "name", "e0", "netns", &b,
    ]);
    // A veth passes a GSO send to its peer whole; a real NIC sends each
    // datagram by itself. `gso_max_segs 1` makes the kernel segment first, so
    // the drop rule meets single datagrams.
    for ns in [&a, &b] {
        sh(&[
            "ip",
            "-n",
            ns,
            "link",
            "set",
            "e0",
            "gso_max_segs",
            "1",
            "up",
        ]);
    }
    std::thread::sleep(Duration::from_secs(1));
    // `--dir DIR`: where the payloads and the received copies go (default
    // the temporary directory). `/dev/shm` takes the disk out of the figures.
    let base = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(&tag);
    std::fs::create_dir_all(&dir).unwrap();

    // 1. Raw UDP.
    let me_s = me.to_str().unwrap();
    let sink_child = spawn(&b, &[me_s, "sink", "e0"], &dir.join("sink.log"));
    std::thread::sleep(Duration::from_millis(300));
    let blasted = Command::new("ip")
        .args(["netns", "exec", &a, me_s, "blast", "e0", &size.to_string()])
        .output()
        .expect("the blaster runs");
    assert!(blasted.status.success(), "the blaster failed");
    let text = String::from_utf8_lossy(&blasted.stdout).to_string();
    let mut it = text.split_whitespace();
    let blast_rss: f64 = it.next().unwrap().parse().unwrap();
    let blast_cpu: f64 = it.next().unwrap().parse().unwrap();
    let out = sink_child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let raw_bytes: f64 = it.next().unwrap().parse().unwrap();
    let raw_secs: f64 = it.next().unwrap().parse().unwrap();
    let sink_rss: f64 = it.next().unwrap().parse().unwrap();
    let sink_cpu: f64 = it.next().unwrap().parse().unwrap();
    let raw = raw_bytes / raw_secs;
    println!(
        "raw UDP, {DATAGRAM}-byte datagrams: {:.1} MB/s ({:.0} of {} bytes arrived); \
         blaster {:.1} MiB peak RSS, {:.2} CPU s; sink {:.1} MiB, {:.2} CPU s",
        raw / 1e6,
        raw_bytes,
        size,
        blast_rss / MIB,
        blast_cpu,
        sink_rss / MIB,
        sink_cpu
    );

    if pacing {
        pacing_table(&a, &b, &me, &groupcast, &dir, raw);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    if args.iter().any(|a| a == "tree") {
        tree_table(&a, &b, &groupcast, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    if args.iter().any(|a| a == "keys") {
        keys_table(&a, &b, &groupcast, &dir, size, raw);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    // 2. groupcast, each size in turn.
    let gc = groupcast.to_str().unwrap();
    let mut rows = Vec::new();
    for &size in &sizes {
        let file = dir.join("payload.bin");
        write_payload(&file, size);
        let max_size = format!("{}", size.max(1 << 30));
        for mode in &modes {
            let mode = mode.as_str();
            for loss in [0u32, 10] {
                if loss > 0 {
                    drop_in(&b, loss);
                }
                let out = dir.join(format!("out-{mode}{loss}"));
                std::fs::create_dir_all(&out).unwrap();
                let stats = dir.join(format!("recv-{mode}{loss}.json"));
                let log = |who: &str| dir.join(format!("{who}-{mode}{loss}.log"));
                let mut rx = spawn_recv(
                    &b,
                    gc,
                    &out,
                    &[
                        "--timeout",
                        "900",
                        "--max-object-size",
                        &max_size,
                        "--stats-json",
                        stats.to_str().unwrap(),
                    ],
                    &log("recv"),
                );
                // Whatever an earlier run wrote is on disk first.
                sh(&["sync"]);
                std::thread::sleep(Duration::from_millis(300));
                let started = Instant::now();
                let overhead = format!("{}", 0.05 + loss as f64 / 100.0 * 1.3);
                let send_stats = dir.join(format!("send-{mode}{loss}.json"));
                let mut args = send_args(gc, &send_stats, &file, "max");
                args.extend_from_slice(&["--mode", mode]);
                if mode == "carousel" {
                    // Loop until the receiver is done; first-round repair for the loss.
                    args.extend_from_slice(&[
                        "--forever",
                        "--overhead",
                        &overhead,
                        "--round-repair",
                        "0.1",
                    ]);
                }
                let mut tx = spawn(&a, &args, &log("send"));
                let status = rx.wait().unwrap();
                let secs = started.elapsed().as_secs_f64();
                if mode == "carousel" {
                    // SIGINT: it stops and writes its stats (`ip netns exec` execs it).
                    let _ = Command::new("kill")
                        .args(["-INT", &tx.id().to_string()])
                        .status();
                }
                let _ = tx.wait();
                assert!(
                    status.success(),
                    "receiver failed: {}",
                    std::fs::read_to_string(log("recv")).unwrap_or_default()
                );
                assert!(
                    same_bytes(&out.join("payload.bin"), &file),
                    "received file differs"
                );
                let goodput = size as f64 / secs;
                let of = |path: &Path| -> (f64, f64) {
                    let v = stats_of(path);
                    (
                        v["peak_rss_bytes"].as_f64().unwrap_or(0.0),
                        v["cpu_s"].as_f64().unwrap_or(0.0),
                    )
                };
                rows.push((size, mode, loss, goodput, secs, of(&send_stats), of(&stats)));
                std::fs::remove_dir_all(&out).unwrap();
                if loss > 0 {
                    sh_in(&b, &["nft", "delete", "table", "ip6", "gcbench"]);
                }
            }
        }
        std::fs::remove_file(&file).unwrap();
    }
    println!();
    println!(
        "| size | mode | drop | groupcast goodput | time | goodput / raw | goodput / (raw × (1 − p)) \
         | sender peak RSS | sender CPU s/GB | receiver peak RSS | receiver CPU s/GB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &(size, mode, loss, goodput, secs, (s_rss, s_cpu), (r_rss, r_cpu)) in &rows {
        let p = loss as f64 / 100.0;
        let gb = size as f64 / 1e9;
        println!(
            "| {} | {mode} | {loss}% | {:.1} MB/s | {secs:.2} s | {:.2} | {:.2} | {:.1} MiB | {:.2} | {:.1} MiB | {:.2} |",
            shown_size(size),
            goodput / 1e6,
            goodput / raw,
            goodput / (raw * (1.0 - p)),
            s_rss / MIB,
            s_cpu / gb,
            r_rss / MIB,
            r_cpu / gb,
        );
    }
    // Each size's goodput at 0% drop against the first size's, per mode.
    if sizes.len() > 1 {
        for mode in &modes {
            let at = |size: u64| {
                rows.iter()
                    .find(|r| r.0 == size && r.1 == mode.as_str() && r.2 == 0)
                    .map(|r| r.3)
            };
            if let Some(base) = at(sizes[0]) {
                for &size in &sizes[1..] {
                    if let Some(g) = at(size) {
                        println!(
                            "{mode}, 0% drop: {} goes at {:.2} x the goodput of {}",
                            shown_size(size),
                            g / base,
                            shown_size(sizes[0])
                        );
                    }
                }
            }
        }
    }
    let gb = size as f64 / 1e9;
    println!(
        "raw UDP: blaster {:.2} CPU s/GB, sink {:.2} CPU s/GB",
        blast_cpu / gb,
        sink_cpu / gb
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(guard);
}

/// "256 MiB", "4 GiB", or bytes.
fn shown_size(size: u64) -> String {
    if size >= 1 << 30 && size.is_multiple_of(1 << 30) {
        format!("{} GiB", size >> 30)
    } else if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else {
        format!("{size} B")
    }
}

/// Writes `size` pseudo-random bytes (ChaCha8, seed 7) to `path`, 8 MiB at a time.
fn write_payload(path: &Path, size: u64) {
    use rand::{Rng, SeedableRng};
    use std::io::Write;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk = vec![0u8; 8 << 20];
    let mut left = size;
    while left > 0 {
        let n = (chunk.len() as u64).min(left) as usize;
        rng.fill(&mut chunk[..n]);
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    // On disk before any run, so that its write-back does not compete with
    // the receiver's writes.
    f.get_ref().sync_all().unwrap();
}

/// Whether two files hold the same bytes, compared 8 MiB at a time.
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (Ok(mut a), Ok(mut b)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut x, mut y) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(m) => n += m,
            Err(e) => panic!("read: {e}"),
        }
    }
    n
}
