//! Scenarios: a simulated run as a user describes it (mode, group, links,
//! object), deserialisable from TOML, with what follows from it: the
//! [`SimConfig`], the losses a receiver sees, the run itself and its report
//! row (JSON and CSV). `groupcast sim`, its scenario files ([`crate::suite`])
//! and the benchmarks all build their runs here.

use std::time::{Duration, Instant};

use groupcast::{CodecSet, FecId, Rounds, SenderConfig};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::{
    parse_burst, parse_change, parse_loss_list, parse_probability, parse_rate, parse_size,
};
use crate::{
    Bottleneck, Burst, LinkConfig, Membership, SimConfig, SimReport, Simulation, carousel_overhead,
};

/// Loss-recovery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Loop-and-repeat: source symbols, then rounds of fresh repair symbols.
    Carousel,
    /// ARQ without FEC: source symbols once, then replays of what is missing.
    Nack,
    /// Source symbols, then fresh repair symbols for what receivers report.
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

/// FEC scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fec {
    /// RaptorQ (RFC 6330).
    Raptorq,
    /// No FEC: plain replication.
    Nocode,
}

/// Which RaptorQ a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecChoice {
    /// Real RaptorQ while receivers × size is at most [`AUTO_MODEL_THRESHOLD`], the model above.
    Auto,
    /// Real RaptorQ: every block decoded, every byte checked.
    Raptorq,
    /// RaptorQ's statistics without its work (no bytes carried).
    Model,
}

/// Above this many bytes (receivers × size) [`CodecChoice::Auto`] picks the
/// model: real RaptorQ decodes at roughly 0.6 GB/s on one core, so 1 GiB
/// costs a couple of seconds.
pub const AUTO_MODEL_THRESHOLD: u64 = 1 << 30;

/// The largest object a scenario may simulate (it is held in memory).
pub const MAX_SIM_SIZE: u64 = 4 << 30;

impl CodecChoice {
    /// The codecs a run with `receivers` receivers of `size` bytes uses.
    pub fn resolve(self, receivers: usize, size: u64) -> CodecSet {
        match self {
            CodecChoice::Raptorq => CodecSet::Real,
            CodecChoice::Model => CodecSet::Model,
            CodecChoice::Auto => {
                if (receivers as u64).saturating_mul(size) <= AUTO_MODEL_THRESHOLD {
                    CodecSet::Real
                } else {
                    CodecSet::Model
                }
            }
        }
    }
}

/// One simulated run. Field names are `groupcast sim`'s flags (with `_` for
/// `-`); sizes and rates take units ("8MiB", "100M") as strings, and
/// `burst`, `loss_list`, `join` and `leave` take the flags' forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Loss-recovery mode.
    pub mode: Mode,
    /// Number of receivers.
    pub receivers: usize,
    /// Independent loss probability on each receiver's link.
    #[serde(deserialize_with = "probability")]
    pub loss: f64,
    /// Object size in bytes.
    #[serde(deserialize_with = "size")]
    pub size: u64,
    /// Symbol size T; by default the most that fits 1232-byte datagrams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol_size: Option<u16>,
    /// Wanted source symbols per block (K).
    pub block_symbols: u32,
    /// Sending rate, bits per second.
    #[serde(deserialize_with = "rate")]
    pub rate: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// First-round repair share per block; by default a carousel's covers
    /// K+2 symbols three standard deviations below the mean at the worst
    /// loss, and nack and hybrid send none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead: Option<f64>,
    /// Repair share of each later carousel round.
    pub round_repair: f64,
    /// Blocks interleaved together.
    pub interleave: u32,
    /// Probability that a packet is held back and overtaken.
    #[serde(deserialize_with = "probability")]
    pub reorder: f64,
    /// Probability that a packet arrives twice.
    #[serde(deserialize_with = "probability")]
    pub duplicate: f64,
    /// One-way delay of every link, milliseconds.
    pub delay_ms: f64,
    /// FEC scheme.
    pub fec: Fec,
    /// A shared bottleneck in front of every receiver, bits per second.
    #[serde(
        deserialize_with = "optional_rate",
        skip_serializing_if = "Option::is_none"
    )]
    pub bottleneck: Option<u64>,
    /// Capacity of the bottleneck's queue, bytes.
    #[serde(deserialize_with = "size")]
    pub queue: u64,
    /// Real RaptorQ or its model.
    pub codec: CodecChoice,
    /// Gilbert–Elliott burst loss: (P_ENTER, P_LEAVE).
    #[serde(
        deserialize_with = "burst",
        serialize_with = "burst_out",
        skip_serializing_if = "Option::is_none"
    )]
    pub burst: Option<(f64, f64)>,
    /// Loss per receiver, for mixed groups; receivers past its end use `loss`.
    #[serde(
        deserialize_with = "loss_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub loss_list: Option<Vec<f64>>,
    /// Loss on the shared link between the sender and all receivers.
    #[serde(deserialize_with = "probability")]
    pub upstream_loss: f64,
    /// How far a reordered packet falls back, in full datagrams at `rate`.
    pub reorder_depth: u32,
    /// Extra delay per packet, uniform from 0 to this many milliseconds.
    pub jitter_ms: f64,
    /// The last COUNT receivers join only at SECONDS.
    #[serde(
        deserialize_with = "change",
        serialize_with = "change_out",
        skip_serializing_if = "Option::is_none"
    )]
    pub join: Option<(usize, f64)>,
    /// The first COUNT receivers leave at SECONDS.
    #[serde(
        deserialize_with = "change",
        serialize_with = "change_out",
        skip_serializing_if = "Option::is_none"
    )]
    pub leave: Option<(usize, f64)>,
    /// Hybrid: spare repair symbols beyond a NACK's need.
    pub repair_margin: u32,
    /// Largest blocks each receiver decodes at once.
    pub max_blocks_in_flight: usize,
    /// Split the data into objects of at most this many blocks of K symbols
    /// each, so that blocks keep K symbols however large the data (one
    /// object has at most 256 blocks; beyond 255 × K symbols its OTI makes
    /// larger blocks instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_blocks: Option<u32>,
}

impl Default for Scenario {
    /// `groupcast sim` with no flags.
    fn default() -> Self {
        Self {
            mode: Mode::Hybrid,
            receivers: 10,
            loss: 0.1,
            size: 8 << 20,
            symbol_size: None,
            block_symbols: 1000,
            rate: 100_000_000,
            seed: 1,
            overhead: None,
            round_repair: 0.05,
            interleave: 16,
            reorder: 0.0,
            duplicate: 0.0,
            delay_ms: 10.0,
            fec: Fec::Raptorq,
            bottleneck: None,
            queue: 64 * 1024,
            codec: CodecChoice::Auto,
            burst: None,
            loss_list: None,
            upstream_loss: 0.0,
            reorder_depth: 3,
            jitter_ms: 0.0,
            join: None,
            leave: None,
            repair_margin: 2,
            max_blocks_in_flight: 256,
            split_blocks: None,
        }
    }
}

/// A finished run, with what its report row needs.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The simulator's report.
    pub report: SimReport,
    /// Wall-clock time the run took.
    pub wall: Duration,
    /// The symbol size used.
    pub symbol_size: u16,
    /// K used (clamped to RFC 6330's limit).
    pub block_symbols: u32,
    /// The codecs used.
    pub codecs: CodecSet,
}

impl Scenario {
    /// Checks what the types do not; each message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.receivers == 0 {
            return Err("--receivers must be at least 1".into());
        }
        if self.size > MAX_SIM_SIZE {
            return Err(format!(
                "--size {} is above the simulator's limit of 4 GiB (the object is held in memory)",
                self.size
            ));
        }
        if !(0.0..=60_000.0).contains(&self.delay_ms) {
            return Err("--delay-ms must lie between 0 and 60000".into());
        }
        if !(0.0..=60_000.0).contains(&self.jitter_ms) {
            return Err("--jitter-ms must lie between 0 and 60000".into());
        }
        for (flag, change) in [("--join", self.join), ("--leave", self.leave)] {
            if let Some((n, _)) = change
                && n > self.receivers
            {
                return Err(format!(
                    "{flag} names {n} receivers but there are only {}",
                    self.receivers
                ));
            }
        }
        if self.max_blocks_in_flight == 0 {
            return Err("--max-blocks-in-flight must be at least 1".into());
        }
        if self.split_blocks.is_some_and(|b| !(1..=256).contains(&b)) {
            return Err("--split-blocks must lie between 1 and 256".into());
        }
        Ok(())
    }

    /// K as used: clamped to RFC 6330's limit.
    pub fn effective_block_symbols(&self) -> u32 {
        self.block_symbols
            .clamp(1, groupcast_fec::MAX_SOURCE_SYMBOLS_PER_BLOCK)
    }

    /// The sender's configuration.
    pub fn sender(&self) -> SenderConfig {
        let block_symbols = self.effective_block_symbols();
        let overhead = self.overhead.unwrap_or_else(|| match self.mode {
            Mode::Carousel => carousel_overhead(self.worst_loss(), block_symbols),
            Mode::Nack | Mode::Hybrid => 0.0,
        });
        SenderConfig {
            session: groupcast::SessionId::from_seed(self.seed),
            symbol_size: self.symbol_size,
            block_symbols,
            fec: match self.fec {
                Fec::Raptorq => FecId::RaptorQ,
                Fec::Nocode => FecId::NoCode,
            },
            repair_overhead: overhead,
            round_repair: self.round_repair,
            rounds: Rounds::Unlimited,
            rate: Some((self.rate / 8).max(1)),
            interleave: self.interleave,
            mode: self.mode.core(),
            feedback: groupcast::FeedbackConfig {
                repair_margin: self.repair_margin,
                ..groupcast::FeedbackConfig::default()
            },
            ..SenderConfig::default()
        }
    }

    /// The simulator's configuration.
    pub fn sim_config(&self) -> SimConfig {
        let sender = self.sender();
        let datagram_time = sender.max_datagram as f64 / sender.rate.unwrap_or(1) as f64;
        let mut membership = Vec::new();
        if let Some((n, t)) = self.join {
            membership.push(Membership {
                first: self.receivers - n.min(self.receivers),
                count: n,
                join: Duration::from_secs_f64(t),
                leave: None,
            });
        }
        if let Some((n, t)) = self.leave {
            membership.push(Membership {
                first: 0,
                count: n,
                join: Duration::ZERO,
                leave: Some(Duration::from_secs_f64(t)),
            });
        }
        SimConfig {
            receivers: self.receivers,
            link: LinkConfig {
                loss: self.loss,
                burst: self
                    .burst
                    .map(|(p_enter, p_leave)| Burst { p_enter, p_leave }),
                reorder: self.reorder,
                reorder_delay: Duration::from_secs_f64(datagram_time * self.reorder_depth as f64),
                duplicate: self.duplicate,
                delay: Duration::from_secs_f64(self.delay_ms / 1000.0),
                jitter: Duration::from_secs_f64(self.jitter_ms / 1000.0),
            },
            receiver_loss: self.loss_list.clone().unwrap_or_default(),
            upstream_loss: self.upstream_loss,
            membership,
            codecs: self.codecs(),
            receiver: groupcast::ReceiverConfig {
                max_blocks_in_flight: self.max_blocks_in_flight,
                ..groupcast::ReceiverConfig::default()
            },
            bottleneck: self.bottleneck.map(|b| Bottleneck {
                rate: (b / 8).max(1),
                queue_bytes: self.queue,
            }),
            seed: self.seed,
            sender,
            ..SimConfig::default()
        }
    }

    /// The codecs the run uses.
    pub fn codecs(&self) -> CodecSet {
        self.codec.resolve(self.receivers, self.size)
    }

    /// The data: `size` bytes drawn from `seed`, as the objects it is sent
    /// in ([`Scenario::split_blocks`]), each filled straight from the one
    /// stream (the pieces are whole 4-byte words but the last, so they are
    /// the bytes of one unsplit fill), without a second copy of the data.
    pub fn objects(&self, symbol_size: u16) -> Vec<Vec<u8>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        self.piece_sizes(symbol_size)
            .into_iter()
            .map(|len| {
                let mut data = vec![0u8; len as usize];
                rng.fill(&mut data[..]);
                data
            })
            .collect()
    }

    /// Runs the scenario; `progress(simulated seconds, receivers complete,
    /// packets sent)` is called now and then.
    pub fn run(&self, progress: impl FnMut(f64, usize, u64)) -> Result<Outcome, String> {
        self.validate()?;
        let config = self.sim_config();
        let symbol_size = config.sender.effective_symbol_size();
        let codecs = config.codecs;
        let mut sim = Simulation::new(config).map_err(|e| e.to_string())?;
        let objects = self.objects(symbol_size);
        let single = objects.len() == 1;
        for (n, data) in objects.into_iter().enumerate() {
            let name = if single {
                "demo.bin".to_string()
            } else {
                format!("demo{n}.bin")
            };
            sim.add_object(data, &name);
        }
        let started = Instant::now();
        let report = sim.run(progress).map_err(|e| e.to_string())?;
        Ok(Outcome {
            report,
            wall: started.elapsed(),
            symbol_size,
            block_symbols: self.effective_block_symbols(),
            codecs,
        })
    }

    /// The loss a receiver sees on average: its link's (burst included) and
    /// the shared upstream link's, averaged over the group.
    pub fn mean_loss(&self) -> f64 {
        let list = self.loss_list.as_deref().unwrap_or(&[]);
        let n = self.receivers.max(1);
        let listed: f64 = list.iter().take(n).map(|&p| self.link_loss(p)).sum();
        let rest = n.saturating_sub(list.len()) as f64 * self.link_loss(self.loss);
        let per_link = (listed + rest) / n as f64;
        1.0 - (1.0 - per_link) * (1.0 - self.upstream_loss)
    }

    /// The loss of the worst receiver's path, for sizing a carousel's first round.
    pub fn worst_loss(&self) -> f64 {
        let worst = self
            .loss_list
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .copied()
            .fold(self.loss, f64::max);
        1.0 - (1.0 - self.link_loss(worst)) * (1.0 - self.upstream_loss)
    }

    fn link_loss(&self, p: f64) -> f64 {
        match self.burst {
            Some((p_enter, p_leave)) => Burst { p_enter, p_leave }.mean_loss(p),
            None => p,
        }
    }

    /// The size of each object the data is sent in: one of `size` bytes, or
    /// pieces of [`Scenario::split_blocks`] blocks of K symbols and the rest.
    fn piece_sizes(&self, symbol_size: u16) -> Vec<u64> {
        let piece = self.split_blocks.map(|b| {
            (b as u64 * self.effective_block_symbols() as u64 * symbol_size as u64).max(1)
        });
        match piece {
            Some(piece) if self.size > piece => {
                let mut sizes = vec![piece; (self.size / piece) as usize];
                if !self.size.is_multiple_of(piece) {
                    sizes.push(self.size % piece);
                }
                sizes
            }
            _ => vec![self.size],
        }
    }

    /// Source blocks of the simulated objects, as their OTIs partition them:
    /// at most 255 per object, larger than K beyond that (RFC 6330 §4.4.1.2).
    pub fn blocks(&self, o: &Outcome) -> u64 {
        self.piece_sizes(o.symbol_size)
            .into_iter()
            .map(|size| {
                groupcast_fec::Oti::for_object(
                    size,
                    o.symbol_size,
                    o.block_symbols,
                    groupcast::wire::SYMBOL_ALIGNMENT,
                )
                .map_or(0, |oti| oti.source_blocks() as u64)
            })
            .sum()
    }

    /// The run's report row (the keys of `groupcast sim --json`).
    pub fn row(&self, o: &Outcome) -> Row {
        let r = &o.report;
        let all_done = r.completed_receivers + r.left_receivers == r.receivers;
        Row {
            block_symbols: o.block_symbols,
            bound_bytes: self.size as f64 / (1.0 - self.mean_loss()),
            burst: self.burst.map(|(a, b)| [a, b]),
            bytes_sent: r.bytes_sent,
            bytes_sent_total: r.bytes_sent_total,
            bytes_verified: r.bytes_verified,
            codec: o.codecs.name(),
            completed_receivers: r.completed_receivers,
            completion_time_max_s: if all_done {
                r.completion_quantile(1.0)
            } else {
                None
            },
            completion_time_p50_s: r.completion_quantile(0.5),
            completion_time_p99_s: r.completion_quantile(0.99),
            deliveries: r.deliveries,
            identical_receivers: r.identical_receivers,
            interleave: self.interleave,
            left_receivers: r.left_receivers,
            loss: self.loss,
            mean_loss: self.mean_loss(),
            mode: self.mode.core().name(),
            nacks_received: r.nacks_received,
            nacks_sent: r.nacks_sent,
            nacks_suppressed: r.nacks_suppressed,
            packets_sent: r.packets_sent,
            peak_receiver_buffer_bytes: r.peak_receiver_buffer_bytes(),
            receivers: r.receivers,
            repair_symbols: r.repair_symbols,
            seed: self.seed,
            sim_time_s: r.sim_time_s,
            size: self.size,
            source_symbols: r.source_symbols,
            status_sent: r.status_sent,
            status_unasked: r.status_unasked,
            status_received: r.status_received,
            group_estimate: r.group_estimate,
            feedback_per_data_packet: (r.status_received + r.nacks_received) as f64
                / r.symbols_sent_total.max(1) as f64,
            symbol_size: o.symbol_size,
            symbols_sent: r.symbols_sent,
            symbols_sent_total: r.symbols_sent_total,
            trace_hash: r.trace_hash.clone(),
            transmissions_per_symbol: r.transmissions_per_symbol(),
            upstream_loss: self.upstream_loss,
            wall_time_s: o.wall.as_secs_f64(),
        }
    }
}

impl Outcome {
    /// Whether every receiver that stayed completed, byte-identical.
    pub fn check(&self) -> Result<(), String> {
        let r = &self.report;
        let expected = r.receivers - r.left_receivers;
        if r.completed_receivers < expected {
            return Err(format!(
                "{} of {} receivers did not complete",
                expected - r.completed_receivers,
                expected
            ));
        }
        if r.identical_receivers < r.completed_receivers {
            return Err(format!(
                "{} of {} receivers' copies differ from the source",
                r.completed_receivers - r.identical_receivers,
                r.completed_receivers
            ));
        }
        Ok(())
    }
}

/// One run's results, as `groupcast sim --json` prints them (keys in
/// alphabetical order).
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct Row {
    pub block_symbols: u32,
    pub bound_bytes: f64,
    pub burst: Option<[f64; 2]>,
    pub bytes_sent: u64,
    pub bytes_sent_total: u64,
    pub bytes_verified: bool,
    pub codec: &'static str,
    pub completed_receivers: usize,
    pub completion_time_max_s: Option<f64>,
    pub completion_time_p50_s: Option<f64>,
    pub completion_time_p99_s: Option<f64>,
    pub deliveries: u64,
    pub identical_receivers: usize,
    pub interleave: u32,
    pub left_receivers: usize,
    pub loss: f64,
    pub mean_loss: f64,
    pub mode: &'static str,
    pub nacks_received: u64,
    pub nacks_sent: u64,
    pub nacks_suppressed: u64,
    pub packets_sent: u64,
    pub peak_receiver_buffer_bytes: u64,
    pub receivers: usize,
    pub repair_symbols: u64,
    pub seed: u64,
    pub sim_time_s: f64,
    pub size: u64,
    pub source_symbols: u64,
    pub status_sent: u64,
    pub status_unasked: u64,
    pub status_received: u64,
    pub group_estimate: u64,
    pub feedback_per_data_packet: f64,
    pub symbol_size: u16,
    pub symbols_sent: u64,
    pub symbols_sent_total: u64,
    pub trace_hash: String,
    pub transmissions_per_symbol: f64,
    pub upstream_loss: f64,
    pub wall_time_s: f64,
}

/// The columns of `--csv`, in order: [`Row`]'s keys, plus the scenario's name.
pub const CSV_COLUMNS: &[&str] = &[
    "scenario",
    "mode",
    "codec",
    "receivers",
    "loss",
    "burst",
    "upstream_loss",
    "mean_loss",
    "size",
    "symbol_size",
    "block_symbols",
    "interleave",
    "seed",
    "completed_receivers",
    "identical_receivers",
    "left_receivers",
    "source_symbols",
    "symbols_sent",
    "repair_symbols",
    "transmissions_per_symbol",
    "bytes_sent",
    "bound_bytes",
    "completion_time_p50_s",
    "completion_time_p99_s",
    "completion_time_max_s",
    "nacks_sent",
    "nacks_suppressed",
    "status_sent",
    "status_received",
    "group_estimate",
    "feedback_per_data_packet",
    "peak_receiver_buffer_bytes",
    "sim_time_s",
    "wall_time_s",
    "trace_hash",
];

/// A row (as JSON, with a `scenario` name or none) as a CSV line of
/// [`CSV_COLUMNS`], without its line break: fields quoted as RFC 4180 says
/// (a name holding a comma, a quote or a line break is one quoted field).
/// Lists are joined with `;`.
pub fn csv_row(v: &serde_json::Value) -> String {
    let fields = CSV_COLUMNS.iter().map(|k| match &v[*k] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    });
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // (Writing into a Vec cannot fail.)
    w.write_record(fields).expect("writing into memory");
    let mut line =
        String::from_utf8(w.into_inner().expect("writing into memory")).expect("fields are UTF-8");
    line.pop();
    line
}

/// A value given either in its flag's text form or as TOML's own type.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOr<T> {
    Text(String),
    Value(T),
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match TextOr::<u64>::deserialize(d)? {
        TextOr::Text(s) => parse_size(&s).map_err(serde::de::Error::custom),
        TextOr::Value(v) => Ok(v),
    }
}

fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match TextOr::<u64>::deserialize(d)? {
        TextOr::Text(s) => parse_rate(&s).map_err(serde::de::Error::custom),
        TextOr::Value(v) => parse_rate(&v.to_string()).map_err(serde::de::Error::custom),
    }
}

fn optional_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    rate(d).map(Some)
}

fn probability<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let p = match TextOr::<f64>::deserialize(d)? {
        TextOr::Text(s) => s,
        TextOr::Value(v) => v.to_string(),
    };
    parse_probability(&p).map_err(serde::de::Error::custom)
}

fn burst<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(f64, f64)>, D::Error> {
    let text = match TextOr::<[f64; 2]>::deserialize(d)? {
        TextOr::Text(s) => s,
        TextOr::Value([a, b]) => format!("{a},{b}"),
    };
    parse_burst(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn burst_out<S: Serializer>(v: &Option<(f64, f64)>, s: S) -> Result<S::Ok, S::Error> {
    v.map(|(a, b)| [a, b]).serialize(s)
}

fn loss_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    let text = match TextOr::<Vec<f64>>::deserialize(d)? {
        TextOr::Text(s) => s,
        TextOr::Value(v) => v
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
    };
    parse_loss_list(&text)
        .map(|l| Some(l.0))
        .map_err(serde::de::Error::custom)
}

fn change<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(usize, f64)>, D::Error> {
    let s = String::deserialize(d)?;
    parse_change(&s).map(Some).map_err(serde::de::Error::custom)
}

fn change_out<S: Serializer>(v: &Option<(usize, f64)>, s: S) -> Result<S::Ok, S::Error> {
    v.map(|(n, t)| format!("{n}@{t}")).serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_forms_and_toml_types_both_deserialise() {
        let s: Scenario = toml::from_str(
            "size = \"256KiB\"\nrate = 50_000_000\nburst = \"0.01,0.2\"\n\
             loss_list = [0.1, 0.2]\njoin = \"5@0.5\"\nloss = 0\nmode = \"nack\"",
        )
        .unwrap();
        assert_eq!((s.size, s.rate, s.loss), (256 << 10, 50_000_000, 0.0));
        assert_eq!(s.burst, Some((0.01, 0.2)));
        assert_eq!(s.loss_list, Some(vec![0.1, 0.2]));
        assert_eq!((s.join, s.mode), (Some((5, 0.5)), Mode::Nack));
        // And what serialises comes back the same.
        let value = toml::Value::try_from(&s).unwrap();
        assert_eq!(value.try_into::<Scenario>().unwrap(), s);
    }

    #[test]
    fn split_objects_are_the_bytes_of_one_unsplit_fill() {
        let s = Scenario {
            size: 10_000 + 3,
            block_symbols: 10,
            split_blocks: Some(2),
            ..Scenario::default()
        };
        let pieces = s.objects(64);
        assert_eq!(pieces.len(), 8, "7 pieces of 1280 bytes and the rest");
        let whole = Scenario {
            split_blocks: None,
            ..s.clone()
        }
        .objects(64);
        assert_eq!(whole.len(), 1);
        assert_eq!(pieces.concat(), whole[0]);
    }

    #[test]
    fn bad_values_name_the_problem() {
        let err = |t: &str| toml::from_str::<Scenario>(t).unwrap_err().to_string();
        assert!(err("loss = 3").contains("below 1"));
        assert!(err("los = 0.1").contains("unknown field `los`"));
        assert!(err("burst = \"0.1,0\"").contains("never ends"));
        assert!(err("size = \"12 parsecs\"").contains("unknown size unit"));
        let s = Scenario {
            receivers: 5,
            join: Some((6, 1.0)),
            ..Scenario::default()
        };
        assert!(
            s.validate()
                .unwrap_err()
                .contains("--join names 6 receivers")
        );
    }

    /// A name with a comma and a quote stays one field (RFC 4180), so every
    /// row has the header's columns.
    #[test]
    fn csv_rows_quote_names() {
        let mut v = serde_json::json!({"mode": "hybrid", "receivers": 3, "burst": [0.1, 0.5]});
        v["scenario"] = "loss=0.1, \"bursty\" links".into();
        let line = csv_row(&v);
        assert!(
            line.starts_with("\"loss=0.1, \"\"bursty\"\" links\",hybrid,,3,,0.1;0.5,"),
            "{line}"
        );
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let record = r.records().next().unwrap().unwrap();
        assert_eq!(record.len(), CSV_COLUMNS.len());
        assert_eq!(&record[0], "loss=0.1, \"bursty\" links");
        assert_eq!(&record[3], "3");
        // Plain names stay unquoted.
        v["scenario"] = "plain".into();
        assert!(csv_row(&v).starts_with("plain,hybrid,"));
    }
}
