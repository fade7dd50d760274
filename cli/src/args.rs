//! The arguments of `send`, `recv` and `chat`: their clap definitions, their
//! parsers (so that an error names the flag), and what they build for the
//! library (`SendArgs::sender_config`, `RecvArgs::receiver_config`). The
//! commands' modules take these and print; they build no configuration of
//! their own. Nothing here uses the simulator: `sim` and `demo` have theirs
//! in sim_args.rs.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use groupcast::io::NetConfig;
use groupcast::io::files::SinkConfig;
use groupcast::io::files::TransferId;
use groupcast::units::{format_size, parse_duration, parse_probability, parse_rate, parse_size};
use groupcast::{
    Aimd, Channel, FeedbackConfig, FlowPolicy, ReceiverConfig, Rounds, SenderConfig, SessionId,
};

/// Loss-recovery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Loop-and-repeat: source symbols, then rounds of fresh repair symbols; no back channel.
    Carousel,
    /// ARQ without FEC: source symbols once, then replays of the ESIs receivers report missing.
    Nack,
    /// Source symbols (plus --overhead proactive repair), then as many fresh repair symbols
    /// per block as the neediest receiver reports.
    Hybrid,
}

impl Mode {
    /// The protocol core's mode.
    pub fn core(self) -> groupcast::Mode {
        match self {
            Mode::Carousel => groupcast::Mode::Carousel,
            Mode::Nack => groupcast::Mode::Nack,
            Mode::Hybrid => groupcast::Mode::Hybrid,
        }
    }
}

/// Flags of `groupcast send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The file to send, or a directory: every file beneath it is sent, with its relative path.
    #[arg(required_unless_present = "stream")]
    pub path: Option<PathBuf>,
    /// Send standard input as one ordered byte stream instead of files (hybrid or nack mode),
    /// for `tar c dir | groupcast send --stream ...` and `groupcast recv --stream ... | tar x`.
    /// The stream ends at the end of the input; `send` then exits 0 once at least
    /// --expect-receivers receivers confirmed all of it and none heard from was left behind
    /// (timed out, stalled, refused a place); non-zero otherwise, or if --timeout passes first.
    /// Memory stays bounded for a stream of any length: writing waits while the slowest
    /// receiver is a window behind.
    #[arg(long, conflicts_with_all = ["path", "forever"])]
    pub stream: bool,
    /// With --stream: receivers that must confirm the whole stream for `send` to exit 0,
    /// counted once per /64 (receivers on one link count once); 0 says that nobody may be
    /// listening.
    #[arg(long, default_value_t = 1, requires = "stream", value_name = "N")]
    pub expect_receivers: u64,
    /// A file larger than this travels as several objects of this size (its parts), each
    /// verified on its own and written at its offset; the transfer id depends on it
    /// (`groupcast id --part-size`). A power of two from 4KiB to 1GiB, so that each part is a
    /// subtree of the file's BLAKE3 tree: the file is hashed once, part by part.
    #[arg(long, default_value = "64MiB", value_parser = parse_part_size, value_name = "SIZE")]
    pub part_size: u64,
    /// Channel name, 1 to 255 bytes; its group address is ff1e:: followed by BLAKE3(name) (see
    /// `groupcast channel`).
    #[arg(long, value_parser = parse_channel)]
    pub channel: String,
    /// Network interface to send on, e.g. eth0 (see `ip link`).
    #[arg(long)]
    pub interface: String,
    /// UDP port.
    #[arg(long, default_value_t = groupcast::channel::DEFAULT_PORT)]
    pub port: u16,
    /// Sending rate in bits/s of UDP payload (e.g. 100M, 1G), or `max` for unpaced.
    #[arg(long, default_value = "100M", value_parser = parse_pace)]
    pub rate: Pace,
    /// Multicast hop limit: the default crosses up to 7 multicast routers; 1 keeps the data on
    /// the link. PROBEs announce it, so receivers send their NACKs back only as far as the
    /// PROBEs really came, without a flag of their own.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=255))]
    pub hops: u32,
    /// Rounds of the carousel: the first sends source symbols plus --overhead repair, each
    /// later one --round-repair fresh repair symbols per block.
    #[arg(long, default_value_t = 3, conflicts_with = "forever",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Loop and repeat until interrupted (SIGINT or SIGTERM, after which the stats are still
    /// written), for receivers that join late.
    #[arg(long)]
    pub forever: bool,
    /// Loss recovery: `hybrid` (source symbols, then fresh repair for what receivers report
    /// missing), `nack` (no FEC: replays of the symbols receivers list), or `carousel` (rounds
    /// of fresh repair, no back channel). In hybrid and nack modes the sender exits by itself
    /// once every receiver it heard from is complete, and --rounds/--forever do not apply.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: crate::args::Mode,
    /// First-round repair share per block (0.25 = 25% extra symbols) [default: 0.25 in carousel
    /// mode, 0 in hybrid mode, where repair is sent on request].
    #[arg(long, value_parser = parse_overhead)]
    pub overhead: Option<f64>,
    /// Repair share of each later round.
    #[arg(long, default_value_t = 0.25, value_parser = parse_overhead)]
    pub round_repair: f64,
    /// Worker threads that build RaptorQ encoders ahead of the send loop, 0 to 64 (0 = build
    /// them on the sending thread). The packets sent are the same either way.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = parse_encoder_threads)]
    pub encoder_threads: usize,
    /// Send from one fixed source address, and print it, so that receivers can
    /// join source-specifically with `recv --source ADDR`.
    #[arg(long)]
    pub source_specific: bool,
    /// Do not deliver the sender's packets to receivers on this same host.
    #[arg(long)]
    pub no_loop: bool,
    /// Largest datagram (UDP payload) to send, in bytes. The default, 1232, fits the IPv6
    /// minimum MTU (1280) and so crosses any IPv6 path; 1452 fits a 1500-byte Ethernet path
    /// and carries 20% more data per packet. Every link on the way, routers' included, must
    /// carry it: IPv6 routers do not fragment.
    #[arg(long, default_value_t = groupcast::wire::DEFAULT_MAX_DATAGRAM,
          value_parser = parse_max_datagram)]
    pub max_datagram: usize,
    /// Sign everything sent with this secret key (PREFIX.key from `groupcast keygen`):
    /// receivers given its public key (`recv --sender-key PREFIX.pub`) take nothing else, so
    /// that no other host on the group can forge or modify a packet (docs/security.md).
    #[arg(long, value_parser = parse_signing_key, value_name = "FILE")]
    pub sign: Option<groupcast::proto::auth::SigningKey>,
    #[command(flatten)]
    pub keys: ChannelKeyArgs,
    /// Hand each datagram to the kernel separately, without UDP segmentation offload (GSO).
    /// GSO changes nothing on the wire and turns itself off where the path cannot segment.
    #[arg(long)]
    pub no_gso: bool,
    /// Flow control (hybrid, nack): `min` never runs further ahead than the slowest receiver
    /// that reports, `max` follows the fastest, `quorum:N` the N-th fastest.
    #[arg(long, default_value = "min", value_parser = parse_policy)]
    pub policy: FlowPolicy,
    /// Flow control (hybrid, nack): how many blocks the first pass may run ahead of the
    /// window edge the policy follows.
    #[arg(long, default_value_t = 240, value_name = "BLOCKS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub flow_window: u32,
    /// Flow control (hybrid, nack): the same bound in bytes of blocks; the smaller applies (at
    /// least one block). The default keeps each receiver's blocks ahead of its edge near 52 MB
    /// at the default block size.
    #[arg(long, default_value = "32MiB", value_parser = parse_positive_size, value_name = "SIZE")]
    pub flow_window_bytes: u64,
    /// Hybrid, nack: receivers tracked at once; reports from more are dropped and counted.
    #[arg(long, default_value_t = 10_000, value_parser = parse_count)]
    pub max_receivers: usize,
    /// Hybrid, nack: receivers tracked at once from one source address, so that one host
    /// reporting under made-up ids cannot fill --max-receivers and keep real receivers from
    /// being waited for. Raise it to run more receivers than this on one host.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = parse_count)]
    pub max_receivers_per_source: usize,
    /// Hybrid, nack: receivers tracked at once from one /64 (all link-local addresses are one
    /// /64), so that a host reporting from many addresses of the /64 it owns cannot fill
    /// --max-receivers. Raise it to run more receivers than this on one subnet.
    #[arg(long, default_value_t = 2_500, value_name = "N", value_parser = parse_count)]
    pub max_receivers_per_prefix: usize,
    /// Hybrid, nack: new receiver ids admitted per second from one /64, at most (with a burst
    /// of four seconds' worth); the others are admitted as the rate allows.
    #[arg(long, default_value_t = 256, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub new_receivers_per_prefix: u32,
    /// Hybrid, nack: NACK packets processed per second at most; the excess is dropped and
    /// counted.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_nack_rate: u32,
    /// Hybrid, nack: do not finish before receivers from this many distinct /64s have reported
    /// (all of one link's link-local addresses are one /64), so that the sender can start before
    /// its receivers (it then answers them as they join). Ids from one /64 count once: one host
    /// can forge them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub min_receivers: u32,
    /// A receiver silent this long (seconds, or a duration such as 500ms or 1m) stops counting
    /// for flow control and completion.
    #[arg(long, default_value = "5s", value_parser = parse_timeout, value_name = "DURATION")]
    pub receiver_timeout: Duration,
    /// A receiver that keeps reporting but makes no progress this long (seconds, or a duration
    /// such as 2m) stops holding back flow control and completion (a wedged receiver, or a
    /// forged one).
    #[arg(long, default_value = "30s", value_parser = parse_timeout, value_name = "DURATION")]
    pub stall_timeout: Duration,
    /// A receiver holding the sender back (a flow window behind, or unfinished after the first
    /// pass) must move its window at least this fast on average, bits/s of blocks, or it stalls
    /// too (so one that feigns progress, a step before each --stall-timeout, slows the sender to
    /// this at worst). 0: any step counts [default: --rate / 32, at most half the congestion
    /// floor; 1M with --rate max].
    #[arg(long, value_name = "RATE", value_parser = parse_min_progress)]
    pub min_progress: Option<u64>,
    /// During the first pass, repair may use at most this share of the sending rate (of the
    /// measured rate with --rate max), so forged NACKs cannot amplify traffic or starve the
    /// first pass; after it, repair may use the whole rate.
    #[arg(long, default_value_t = 0.5, value_parser = parse_repair_share)]
    pub repair_share: f64,
    /// Hybrid: no proactive repair sized from the receivers' loss reports; the first pass
    /// carries only --overhead, and NACKs ask for the rest.
    #[arg(long)]
    pub no_proactive: bool,
    /// Congestion control (hybrid, nack, with a --rate): a receiver reporting more loss than
    /// this share cuts the rate by 1/8, at most once per round-trip time; loss-free reports add
    /// back 1/50 of --rate per round trip (AIMD). 0 turns it off.
    #[arg(long, default_value_t = 0.3, value_name = "SHARE", value_parser = parse_probability)]
    pub congestion_loss: f64,
    /// The floor congestion control never goes below, bits/s [default: --rate / 16].
    #[arg(long, value_parser = parse_rate)]
    pub min_rate: Option<u64>,
    /// Stop after this long (seconds, or a duration such as 30s, 5m or 1h), finished or not
    /// (the stats are still written).
    #[arg(long, value_parser = parse_timeout, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Write one JSON object of statistics to this file at the end (its directory must exist).
    #[arg(long, value_parser = parse_new_file, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

fn parse_session(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s, 16)
        .map_err(|_| format!("'{s}' is not a session: 1 to 16 hex digits, as send --stream prints"))
}

fn parse_policy(s: &str) -> Result<FlowPolicy, String> {
    match s {
        "min" => Ok(FlowPolicy::Min),
        "max" => Ok(FlowPolicy::Max),
        q => match q.strip_prefix("quorum:").map(str::parse::<u32>) {
            Some(Ok(n)) if n > 0 => Ok(FlowPolicy::Quorum(n)),
            _ => Err(format!("'{s}' is not min, max or quorum:N (N at least 1)")),
        },
    }
}

/// The longest channel name accepted, in bytes. Any name maps to a group
/// (BLAKE3 of it), so the bound is for people: a name is typed, logged and
/// shown, and one longer than this is a mistake (a path or a file pasted).
pub const MAX_CHANNEL_NAME: usize = 255;

/// `--channel`: 1 to [`MAX_CHANNEL_NAME`] bytes.
pub fn parse_channel(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("a channel name needs at least one character".into())
    } else if s.len() > MAX_CHANNEL_NAME {
        Err(format!(
            "a channel name is at most {MAX_CHANNEL_NAME} bytes; this one has {}",
            s.len()
        ))
    } else {
        Ok(s.to_owned())
    }
}

/// `send --rate`: paced at a rate, or unpaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the socket takes packets.
    Max,
    /// This many bits per second of UDP payload.
    Bits(u64),
}

impl Pace {
    /// Bytes per second, `None` for unpaced.
    pub fn bytes_per_s(self) -> Option<u64> {
        match self {
            Pace::Max => None,
            Pace::Bits(b) => Some((b / 8).max(1)),
        }
    }
}

fn parse_pace(s: &str) -> Result<Pace, String> {
    if s.trim() == "max" {
        Ok(Pace::Max)
    } else {
        parse_rate(s)
            .map(Pace::Bits)
            .map_err(|e| format!("{e}, or max for unpaced"))
    }
}

/// `--min-progress` in bytes per second; 0: any step counts.
fn parse_min_progress(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        Ok(0)
    } else {
        parse_rate(s)
            .map(|b| (b / 8).max(1))
            .map_err(|e| format!("{e}, or 0 for any step"))
    }
}

/// A timeout: above zero, in seconds or with units ([`parse_duration`]).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("a timeout must be above 0".into());
    }
    Ok(d)
}

/// A size of at least one byte.
fn parse_positive_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("must be at least 1 byte".into()),
        n => Ok(n),
    }
}

/// `--part-size`: a power of two in the range the transfer takes.
pub fn parse_part_size(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    let range = groupcast::io::files::PART_SIZE_RANGE;
    if !range.contains(&n) {
        return Err(format!(
            "a part size must lie between {} and {}",
            format_size(*range.start()),
            format_size(*range.end())
        ));
    }
    if !n.is_power_of_two() {
        return Err(format!(
            "{} is not a power of two: try {} or {}",
            format_size(n),
            format_size(n.next_power_of_two() / 2),
            format_size(n.next_power_of_two())
        ));
    }
    Ok(n)
}

/// A count of at least one.
fn parse_encoder_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= 64 => Ok(n),
        _ => Err(format!("'{s}' is not a count of threads from 0 to 64")),
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a count: {e}")),
    }
}

/// `--overhead`, `--round-repair`: a repair share the sender takes.
fn parse_overhead(s: &str) -> Result<f64, String> {
    let most = groupcast::MAX_REPAIR_OVERHEAD;
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=most).contains(&v) => Ok(v),
        Ok(_) => Err(format!("must lie between 0 and {most}")),
        Err(_) => Err("not a number (0.25 for 25% extra symbols)".into()),
    }
}

/// `--repair-share`: above 0, at most the sender's bound.
fn parse_repair_share(s: &str) -> Result<f64, String> {
    let most = groupcast::MAX_REPAIR_SHARE;
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= most => Ok(v),
        Ok(_) => Err(format!("must lie above 0 and at most {most}")),
        Err(_) => Err("not a number (0.5 for half the rate)".into()),
    }
}

/// `--max-datagram`: in the range the core accepts.
fn parse_max_datagram(s: &str) -> Result<usize, String> {
    let least = groupcast::wire::DATA_OVERHEAD + groupcast::wire::SYMBOL_ALIGNMENT as usize;
    let most = groupcast::wire::MAX_DATAGRAM;
    match s.trim().parse::<usize>() {
        Ok(n) if (least..=most).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a number of bytes in {least}..={most} (1232 fits any IPv6 path, 1452 a \
             1500-byte one)"
        )),
    }
}

/// `recv --output`: an existing directory.
/// A transfer id, and the sender's public key if the id carries one.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedTransfer {
    /// The manifest's hash.
    pub id: TransferId,
    /// The key that signs the transfer.
    pub key: Option<groupcast::proto::auth::VerifyingKey>,
}

/// The id `send --sign` and `groupcast id --key` print: the transfer id, a
/// dash, and the public key's 64 hex digits.
pub fn signed_id(id: TransferId, key: &groupcast::proto::auth::VerifyingKey) -> String {
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{id}-{hex}")
}

/// `--expect`: a transfer id, or a signed transfer's id (`ID-KEY`).
fn parse_expect(s: &str) -> Result<ExpectedTransfer, String> {
    let (id, key) = match s.split_once('-') {
        Some((id, key)) => (id, Some(groupcast::io::keys::read_verifying_key_hex(key)?)),
        None => (s, None),
    };
    Ok(ExpectedTransfer {
        id: id.parse()?,
        key,
    })
}

/// `--sign`: a secret key file, read and checked now, so that an error names
/// the flag.
fn parse_signing_key(s: &str) -> Result<groupcast::proto::auth::SigningKey, String> {
    groupcast::io::keys::read_signing_key(Path::new(s))
}

/// `--sender-key`: a public key file, or the key's 64 hex digits.
pub fn parse_verifying_key(s: &str) -> Result<groupcast::proto::auth::VerifyingKey, String> {
    groupcast::io::keys::read_verifying_key(s)
}

/// A sender key as `recv --sender-key` takes it: the key, or its
/// fingerprint.
#[derive(Debug, Clone, Copy)]
pub enum SenderKey {
    /// The whole public key.
    Key(groupcast::proto::auth::VerifyingKey),
    /// Its fingerprint: the key itself comes in each AUTH.
    Fingerprint([u8; groupcast::proto::auth::FINGERPRINT_LEN]),
}

impl SenderKey {
    /// Whether `key` is this key, or has this fingerprint.
    pub fn matches(&self, key: &groupcast::proto::auth::VerifyingKey) -> bool {
        match self {
            Self::Key(k) => k == key,
            Self::Fingerprint(f) => groupcast::proto::auth::key_fingerprint(key) == *f,
        }
    }
}

/// `--sender-key`: a public key file, its 64 hex digits, or its 16-digit
/// fingerprint.
fn parse_sender_key(s: &str) -> Result<SenderKey, String> {
    match groupcast::io::keys::parse_fingerprint(s.trim()) {
        Some(f) => Ok(SenderKey::Fingerprint(f)),
        None => groupcast::io::keys::read_verifying_key(s).map(SenderKey::Key),
    }
}

fn parse_output_dir(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => Ok(path),
        Ok(_) => Err("this is a file, not a directory: give the directory to receive into".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("no such directory: create it first (mkdir -p)".into())
        }
        Err(e) => Err(format!("cannot use it as the output directory: {e}")),
    }
}

/// `--stats-json`: a file that can be created or replaced, in a directory
/// that exists.
fn parse_new_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_dir() {
        return Err("this is a directory: give a file name".into());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "directory {} does not exist: create it first",
            parent.display()
        ));
    }
    Ok(path)
}

/// Flags of `groupcast chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Channel name, 1 to 255 bytes: everyone on the same channel and interface chats together.
    #[arg(long, value_parser = parse_channel)]
    pub channel: String,
    /// Network interface to chat on, e.g. eth0 (see `ip link`).
    #[arg(long)]
    pub interface: String,
    /// The name your lines go out under [default: a short id of your session].
    #[arg(long)]
    pub name: Option<String>,
    /// UDP port.
    #[arg(long, default_value_t = groupcast::channel::DEFAULT_PORT)]
    pub port: u16,
    /// Multicast hop limit: the default crosses up to 7 multicast routers; 1 keeps the lines on
    /// the link.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=255))]
    pub hops: u8,
    #[command(flatten)]
    pub keys: ChannelKeyArgs,
    /// Sign your lines with this secret key (`groupcast keygen --out PREFIX`): those who chat
    /// with `--sender-key` and its public key take them, and nothing forged in your name.
    #[arg(long, value_parser = parse_signing_key, value_name = "FILE")]
    pub sign: Option<groupcast::proto::auth::SigningKey>,
    /// Print only lines signed with this key (a PREFIX.pub file, its 64 hex digits, or its
    /// fingerprint), up to 4 times: the people you chat with. Lines of anyone else are dropped.
    #[arg(long, value_parser = parse_sender_key, value_name = "KEY", action = clap::ArgAction::Append)]
    pub sender_key: Vec<SenderKey>,
}

/// The keys and fingerprints of a list of `--sender-key`s.
pub fn split_sender_keys(
    keys: &[SenderKey],
) -> (
    Vec<groupcast::proto::auth::VerifyingKey>,
    Vec<[u8; groupcast::proto::auth::FINGERPRINT_LEN]>,
) {
    let (mut whole, mut prints) = (Vec::new(), Vec::new());
    for k in keys {
        match k {
            SenderKey::Key(k) => whole.push(*k),
            SenderKey::Fingerprint(f) => prints.push(*f),
        }
    }
    (whole, prints)
}

/// Flags of `groupcast recv`.
#[derive(Debug, Clone, Args)]
pub struct RecvArgs {
    /// Channel name, 1 to 255 bytes.
    #[arg(long, value_parser = parse_channel)]
    pub channel: String,
    /// Network interface to join the channel on.
    #[arg(long)]
    pub interface: String,
    /// Directory to write the received files into (must exist).
    #[arg(long, required_unless_present = "stream", value_parser = parse_output_dir, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Receive a `send --stream` instead of files: the stream of the session --from names, or
    /// else the first stream heard from its first byte, is written to standard output, in order
    /// and verified; `recv` exits 0 at its end. Progress and logs go to standard error. A part
    /// the receiver could not get (it joined too late, or fell behind what the sender keeps)
    /// ends it non-zero, never silently. Without --from, any host on the group can be the
    /// first to send a stream (docs/security.md).
    #[arg(long, conflicts_with_all = ["output", "follow", "exec", "expect"])]
    pub stream: bool,
    /// With --stream: take only this session's stream (the 16 hex digits `send --stream`
    /// prints); other sessions' packets are refused and get no feedback.
    #[arg(long, requires = "stream", value_parser = parse_session, value_name = "SESSION")]
    pub from: Option<u64>,
    /// Take only what the sender holding this key signed (`send --sign`): the PREFIX.pub file
    /// `groupcast keygen` wrote, its 64 hex digits, or its 16-digit fingerprint (which pins
    /// 64 bits of the key, read from the signed lists themselves). Every packet waits until a
    /// signed list names it; forged or modified ones are dropped and counted
    /// (docs/security.md). Given up to 4 times, any of the keys is taken: the sender's, and
    /// the one it will rotate to.
    #[arg(long, value_parser = parse_sender_key, value_name = "KEY", action = clap::ArgAction::Append)]
    pub sender_key: Vec<SenderKey>,
    #[command(flatten)]
    pub keys: ChannelKeyArgs,
    /// With --stream: take a stream first heard past its start (it began before this receiver
    /// joined) from where it is, instead of passing it over (or, with --from, failing).
    #[arg(long, requires = "stream")]
    pub late_join: bool,
    /// UDP port.
    #[arg(long, default_value_t = groupcast::channel::DEFAULT_PORT)]
    pub port: u16,
    /// Accept packets only from this sender address (source-specific join); feedback from
    /// other receivers is still heard on the feedback group.
    #[arg(long)]
    pub source: Option<Ipv6Addr>,
    /// Accept only the transfer with this id (64 hex digits, as `groupcast id PATH` or
    /// `groupcast send` print it) and ignore every other: without it, any host on the group
    /// can impersonate the sender.
    /// A signed transfer's id (`send --sign` and `groupcast id --key` print it: the 64 hex
    /// digits, a dash, and the sender's public key) pins the sender's key too, as
    /// --sender-key does.
    #[arg(long, value_name = "ID", value_parser = parse_expect)]
    pub expect: Option<ExpectedTransfer>,
    /// Replace files that already exist in --output (without it, such a file is refused and
    /// the receiver exits non-zero naming it). A file identical to the manifest's (same size
    /// and BLAKE3) is kept as it is and not received, either way.
    #[arg(long)]
    pub overwrite: bool,
    /// Keep receiving: after each transfer, wait for the next one on the channel (the sessions
    /// already bound are ignored). Files whose hash already matches are kept as they are and
    /// not received, so an update costs only what changed, and the same content sent again
    /// completes at once. Implies --overwrite for files that changed. As without it, a
    /// transfer is placed only whole; one refused, or idle for --idle-timeout, is dropped.
    /// Stops at SIGINT or SIGTERM (exit 0); --timeout then bounds the wait for each transfer.
    #[arg(long)]
    pub follow: bool,
    /// Run this shell command after each transfer placed whole (under --follow, each that
    /// changed a file), with GROUPCAST_TRANSFER_ID, GROUPCAST_OUTPUT, GROUPCAST_FILES,
    /// GROUPCAST_FILES_KEPT and GROUPCAST_CHANGED (a file listing the paths placed, relative to
    /// --output, one a line; removed once CMD returns) in its environment. A failing command
    /// is reported, not fatal.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Drop a transfer whose sender makes no progress this long (seconds, or a duration such
    /// as 30s or 5m: no new block, no file verified), placing none of its files: plain recv
    /// exits non-zero, --follow waits for the next transfer and ignores that session from then
    /// on.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_timeout)]
    pub idle_timeout: Duration,
    /// Apply the manifest's permission bits as they are (without it, they are masked by the
    /// umask and never world-writable).
    #[arg(long)]
    pub keep_modes: bool,
    /// Give up after this long (seconds, or a duration such as 30s, 5m or 1h; exit non-zero: a
    /// transfer is placed only whole, so none of its files is placed).
    #[arg(long, value_parser = parse_timeout, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Largest object accepted (a file, or the manifest), e.g. 4GiB; larger claims are refused
    /// before anything is allocated.
    #[arg(long, default_value = "4GiB", value_parser = parse_size)]
    pub max_object_size: u64,
    /// Objects decoded at once, over all sessions.
    #[arg(long, default_value_t = 16, value_parser = parse_count)]
    pub max_objects: usize,
    /// Blocks being decoded at once; bounds memory (see docs/protocol.md §8.2).
    #[arg(long, default_value_t = 256, value_parser = parse_count)]
    pub max_blocks_in_flight: usize,
    /// Worker threads that solve RaptorQ blocks, so that the receiving thread keeps draining
    /// the socket meanwhile (0 = decode on the receiving thread) [default: the available
    /// parallelism, at most 8]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=64))]
    pub decode_threads: Option<u32>,
    /// Hop limit of this receiver's NACKs to the feedback group (hybrid, nack) [default: as far
    /// as the sender's PROBEs came: the hop limit they announce, less the one they arrive
    /// with, plus 1; at most 32]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=255))]
    pub hops: Option<u32>,
    /// Stay silent even to a hybrid or nack sender (no NACK, no STATUS): like a carousel receiver.
    #[arg(long)]
    pub no_feedback: bool,
    /// Send NACKs to the sender alone rather than to the channel's feedback group (no
    /// suppression among receivers then).
    #[arg(long)]
    pub nack_unicast: bool,
    /// Write one JSON object of statistics to this file at the end (its directory must exist).
    #[arg(long, value_parser = parse_new_file, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

impl SendArgs {
    /// The sender's configuration for `send PATH` (files). The flags' values
    /// were checked by their parsers, in the core's ranges
    /// (`SenderConfig::validate`), so that errors name the flag.
    pub fn sender_config(&self) -> SenderConfig {
        let rate = self.rate.bytes_per_s();
        let mode = self.mode.core();
        let floor = match self.min_rate {
            Some(r) => Some((r / 8).max(1)),
            None => rate.map(Aimd::default_floor),
        };
        let aimd = match (rate, floor) {
            (Some(r), Some(floor)) if self.congestion_loss > 0.0 => {
                Some(Aimd::for_rate(r, self.congestion_loss, floor))
            }
            _ => None,
        };
        let mut config = SenderConfig {
            session: SessionId(groupcast::io::random_id()),
            hops: self.hops_u8(),
            rate,
            rounds: if self.forever {
                Rounds::Unlimited
            } else {
                Rounds::Fixed(self.rounds)
            },
            repair_overhead: self.overhead.unwrap_or(mode.default_repair_overhead()),
            round_repair: self.round_repair,
            mode,
            feedback: FeedbackConfig {
                policy: self.policy,
                flow_window: self.flow_window,
                flow_window_bytes: self.flow_window_bytes,
                max_nack_rate: self.max_nack_rate,
                repair_share: self.repair_share,
                proactive: !self.no_proactive,
                aimd,
                ..FeedbackConfig::default()
            },
            wait_for_encoders: true,
            ..SenderConfig::default()
        };
        self.apply_shared(&mut config);
        config
    }

    /// Sets what `send PATH` and `send --stream` take from the same flags
    /// alike: who is admitted and for how long, the encoder threads and the
    /// datagram size.
    pub fn apply_shared(&self, c: &mut SenderConfig) {
        c.feedback.min_receivers = self.min_receivers;
        c.feedback.max_receivers = self.max_receivers;
        c.feedback.max_receivers_per_source = self.max_receivers_per_source;
        c.feedback.max_receivers_per_prefix = self.max_receivers_per_prefix;
        c.feedback.new_receivers_per_prefix = self.new_receivers_per_prefix;
        c.feedback.receiver_timeout = self.receiver_timeout;
        c.feedback.stall_timeout = self.stall_timeout;
        c.feedback.min_progress = self.min_progress;
        c.encoder_threads = self.encoder_threads;
        c.max_datagram = self.max_datagram;
        c.signing_key = self.sign.clone();
        c.channel_key = self.keys.channel_keys().into_iter().next();
    }

    /// `--hops`, in the range its parser allows (1 to 255).
    pub fn hops_u8(&self) -> u8 {
        u8::try_from(self.hops).unwrap_or(u8::MAX)
    }

    /// The sockets' configuration for `send PATH` (without `--source-specific`'s
    /// address, which needs the interface).
    pub fn net_config(&self) -> NetConfig {
        let mut net = NetConfig::new(
            Channel::new(&self.channel).with_port(self.port),
            &self.interface,
        );
        net.hops = self.hops;
        net.multicast_loop = !self.no_loop;
        net.gso = !self.no_gso;
        net.feedback = self.mode.core().has_feedback();
        net
    }
}

impl RecvArgs {
    /// The sender's key: `--sender-key`, or the one a signed `--expect` id
    /// carries (`recv` refuses the two if they differ).
    pub fn sender_keys(&self) -> Vec<groupcast::proto::auth::VerifyingKey> {
        let (mut keys, _) = split_sender_keys(&self.sender_key);
        if let Some(k) = self.expect.and_then(|e| e.key)
            && !keys.contains(&k)
        {
            keys.push(k);
        }
        keys
    }

    /// The fingerprints given as `--sender-key`.
    pub fn sender_fingerprints(&self) -> Vec<[u8; groupcast::proto::auth::FINGERPRINT_LEN]> {
        split_sender_keys(&self.sender_key).1
    }

    /// Whether a sender key or fingerprint pins what is taken.
    pub fn keyed(&self) -> bool {
        !self.sender_key.is_empty() || self.expect.is_some_and(|e| e.key.is_some())
    }

    /// Sets the keys of a receiver's configuration: the sender keys and
    /// fingerprints, and the channel keys.
    pub fn apply_keys(&self, c: &mut ReceiverConfig) {
        c.sender_keys = self.sender_keys();
        c.sender_fingerprints = self.sender_fingerprints();
        c.channel_keys = self.keys.channel_keys();
    }

    /// Refuses keys that cannot all be meant: a signed `--expect` id whose
    /// key is not among `--sender-key`, or more keys of a kind than a
    /// receiver takes.
    pub fn check_keys(&self) -> Result<(), String> {
        if let Some(k) = self.expect.and_then(|e| e.key)
            && !self.sender_key.is_empty()
            && !self.sender_key.iter().any(|g| g.matches(&k))
        {
            return Err("the key in the --expect id is not among --sender-key: give it too".into());
        }
        let max = groupcast::proto::auth::MAX_KEYS;
        if self.sender_keys().len() > max || self.sender_fingerprints().len() > max {
            return Err(format!("a receiver takes at most {max} sender keys"));
        }
        self.keys.few_keys()
    }

    /// The receiver's configuration for one transfer of `recv --output`:
    /// `id` for every transfer of the run, `refused` the sessions already
    /// taken (`--follow`).
    pub fn receiver_config(&self, id: u64, refused: &[SessionId]) -> ReceiverConfig {
        let mut c = ReceiverConfig {
            id,
            feedback: !self.no_feedback,
            nack_unicast: self.nack_unicast,
            max_object_size: self.max_object_size,
            max_objects: self.max_objects,
            max_blocks_in_flight: self.max_blocks_in_flight,
            decode_threads: self.decode_threads(),
            ripen: true,
            refused_sessions: refused.to_vec(),
            ..ReceiverConfig::default()
        };
        self.apply_keys(&mut c);
        c
    }

    /// What `recv --output` checks and keeps of the files.
    pub fn sink_config(&self) -> SinkConfig {
        SinkConfig {
            overwrite: self.overwrite || self.follow,
            keep_modes: self.keep_modes,
            expect: self.expect.as_ref().map(|e| e.id),
            max_file_size: self.max_object_size,
            check_space: true,
            idle_timeout: Some(self.idle_timeout),
            ..SinkConfig::default()
        }
    }

    /// The sockets' configuration for `recv`.
    pub fn net_config(&self) -> NetConfig {
        let mut net = NetConfig::new(
            Channel::new(&self.channel).with_port(self.port),
            &self.interface,
        );
        net.source = self.source;
        net.feedback = !self.no_feedback;
        net.feedback_hops = self.hops;
        net
    }

    /// `--decode-threads`, by default the available parallelism, at most 8.
    pub fn decode_threads(&self) -> usize {
        self.decode_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            |n| n as usize,
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Send {
        #[command(flatten)]
        args: SendArgs,
    }

    #[derive(Parser)]
    struct Recv {
        #[command(flatten)]
        args: RecvArgs,
    }

    /// The duration flags' defaults are the library's.
    #[test]
    fn duration_defaults_are_the_library_defaults() {
        let send = Send::try_parse_from(["send", "f", "--channel", "c", "--interface", "i"])
            .unwrap()
            .args;
        let feedback = groupcast::FeedbackConfig::default();
        assert_eq!(send.receiver_timeout, feedback.receiver_timeout);
        assert_eq!(send.stall_timeout, feedback.stall_timeout);
        assert_eq!(send.rate, Pace::Bits(100_000_000));
        let dir = std::env::temp_dir();
        let recv = Recv::try_parse_from([
            "recv",
            "--channel",
            "c",
            "--interface",
            "i",
            "--output",
            dir.to_str().unwrap(),
        ])
        .unwrap()
        .args;
        assert_eq!(
            recv.idle_timeout,
            groupcast::io::files::DEFAULT_IDLE_TIMEOUT
        );
    }

    #[test]
    fn paces_and_timeouts() {
        assert_eq!(parse_pace("max"), Ok(Pace::Max));
        assert_eq!(parse_pace("1G"), Ok(Pace::Bits(1_000_000_000)));
        assert_eq!(Pace::Bits(100_000_000).bytes_per_s(), Some(12_500_000));
        assert_eq!(parse_min_progress("0"), Ok(0));
        assert_eq!(parse_min_progress("8M"), Ok(1_000_000));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_timeout("0").is_err());
        assert_eq!(parse_part_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_encoder_threads("64"), Ok(64));
        assert!(parse_encoder_threads("65").unwrap_err().contains("0 to 64"));
        assert!(
            parse_part_size("2GiB")
                .unwrap_err()
                .contains("between 4 KiB and 1 GiB")
        );
        assert_eq!(
            parse_channel(&"a".repeat(MAX_CHANNEL_NAME)).map(|c| c.len()),
            Ok(255)
        );
    }
}

/// `groupcast keygen`.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct KeygenArgs {
    /// Write a signing key pair as PREFIX.key (the secret key, mode 600: give it to `send
    /// --sign`) and PREFIX.pub (the public key: give it to receivers, `recv --sender-key`).
    /// Existing files are never replaced.
    #[arg(long, value_name = "PREFIX")]
    pub out: Option<PathBuf>,
    /// Write a new channel key to FILE (mode 600), for `--key-file FILE` on the sender and on
    /// every receiver: it encrypts the channel. Give it to every member over a channel you
    /// trust; an existing file is never replaced.
    #[arg(long, value_name = "FILE")]
    pub channel_key: Option<PathBuf>,
}

/// The channel key of an encrypted channel (docs/security.md), the same on
/// every side.
#[derive(Args, Debug, Clone, Default)]
pub struct ChannelKeyArgs {
    /// Encrypt the channel: every packet is sealed (ChaCha20-Poly1305) under the channel key in
    /// FILE (`groupcast keygen --channel-key FILE`, mode 600), and only holders of the same key
    /// read it. Every side of the channel needs the same key; a receiver without it takes
    /// nothing. A sender seals under one key; `recv` takes up to 4 (the one in use, and the
    /// one the sender will rotate to: docs/security.md).
    #[arg(long, value_parser = parse_channel_key, value_name = "FILE",
          action = clap::ArgAction::Append)]
    pub key_file: Vec<groupcast::proto::auth::ChannelKey>,
    /// Encrypt the channel under a key stretched (Argon2id) from the passphrase on the first
    /// line of FILE (mode 600, at least 12 bytes), as --key-file does. A key file is stronger
    /// than any passphrase a person remembers.
    #[arg(long, value_parser = parse_passphrase_file, value_name = "FILE")]
    pub passphrase_file: Option<groupcast::proto::auth::ChannelKey>,
}

impl ChannelKeyArgs {
    /// The channel keys given: the key files', then the passphrase's.
    pub fn channel_keys(&self) -> Vec<groupcast::proto::auth::ChannelKey> {
        let mut keys = self.key_file.clone();
        keys.extend(self.passphrase_file.clone());
        keys
    }

    /// For a side that seals (`send`, `chat`): the one key, if any; more
    /// than one is refused.
    pub fn one_key(&self) -> Result<Option<groupcast::proto::auth::ChannelKey>, String> {
        let mut keys = self.channel_keys();
        if keys.len() > 1 {
            return Err(
                "a sender seals under one channel key: give one --key-file or \
                        --passphrase-file (receivers take several, to rotate)"
                    .into(),
            );
        }
        Ok(keys.pop())
    }

    /// For a receiving side: at most [`MAX_KEYS`] keys.
    ///
    /// [`MAX_KEYS`]: groupcast::proto::auth::MAX_KEYS
    pub fn few_keys(&self) -> Result<(), String> {
        let (n, max) = (self.channel_keys().len(), groupcast::proto::auth::MAX_KEYS);
        if n > max {
            return Err(format!("{n} channel keys: a receiver takes at most {max}"));
        }
        Ok(())
    }
}

/// `--key-file`: a channel key file, read and checked now.
fn parse_channel_key(s: &str) -> Result<groupcast::proto::auth::ChannelKey, String> {
    groupcast::io::keys::read_channel_key(Path::new(s))
}

/// `--passphrase-file`: a passphrase, read and stretched now.
fn parse_passphrase_file(s: &str) -> Result<groupcast::proto::auth::ChannelKey, String> {
    groupcast::io::keys::read_passphrase_file(Path::new(s))
}
