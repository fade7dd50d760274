//! The arguments of `sim` and `demo`: their clap definitions and the
//! simulator's scenario they describe (`SimArgs::scenario`).

use clap::{Args, ValueEnum};
use groupcast::units::{parse_rate, parse_size};
use groupcast_sim::Scenario;
use groupcast_sim::scenario;
use groupcast_sim::units::{
    LossList, parse_burst, parse_change, parse_loss_list, parse_probability,
};

use crate::args::Mode;

/// The simulator's mode of a `--mode`.
fn scenario_mode(mode: Mode) -> scenario::Mode {
    match mode {
        Mode::Carousel => scenario::Mode::Carousel,
        Mode::Nack => scenario::Mode::Nack,
        Mode::Hybrid => scenario::Mode::Hybrid,
    }
}

/// FEC scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fec {
    /// RaptorQ (RFC 6330).
    Raptorq,
    /// No FEC: plain replication, a carousel of source symbols.
    Nocode,
}

/// Which RaptorQ the simulation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecChoice {
    /// Real RaptorQ while receivers × size is at most 1 GiB, the model above.
    Auto,
    /// Real RaptorQ: every block decoded, every byte checked.
    Raptorq,
    /// RaptorQ's statistics without its work: decoding fails at K+h symbols with probability
    /// 256^-(h+1); no bytes are carried, so byte identity is not checked.
    Model,
}

/// Flags of `groupcast sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Loss-recovery mode.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: Mode,
    /// Number of receivers.
    #[arg(long, default_value_t = 10)]
    pub receivers: usize,
    /// Independent loss probability on each receiver's link, 0 to below 1.
    #[arg(long, default_value = "0.1", value_parser = parse_probability)]
    pub loss: f64,
    /// Object size, e.g. 32MiB, 100MB or 4096.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub size: u64,
    /// Symbol size T in bytes (a multiple of 4); default: the most that fits 1232-byte datagrams (1188).
    #[arg(long)]
    pub symbol_size: Option<u16>,
    /// Wanted source symbols per block (K).
    #[arg(long, default_value_t = 1000)]
    pub block_symbols: u32,
    /// Sending rate in bits/s, e.g. 100M or 1G (simulated time only).
    #[arg(long, default_value = "100M", value_parser = parse_rate)]
    pub rate: u64,
    /// Seed of every random choice: the same seed gives the same result.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First-round repair share per block; default in carousel mode: enough for K+2 symbols
    /// three standard deviations below the mean at --loss; in hybrid mode 0 (repair on
    /// request); nack mode sends none.
    #[arg(long)]
    pub overhead: Option<f64>,
    /// Repair share of each later carousel round.
    #[arg(long, default_value_t = 0.05)]
    pub round_repair: f64,
    /// Blocks interleaved together.
    #[arg(long, default_value_t = 16)]
    pub interleave: u32,
    /// Probability that a packet is held back and overtaken (reordering).
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub reorder: f64,
    /// Probability that a packet arrives twice.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub duplicate: f64,
    /// One-way delay of every link, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub delay_ms: f64,
    /// FEC scheme.
    #[arg(long, value_enum, default_value = "raptorq")]
    pub fec: Fec,
    /// A shared bottleneck in front of every receiver, in bits/s (e.g. 50M); its
    /// FIFO queue drops at the tail.
    #[arg(long, value_parser = parse_rate)]
    pub bottleneck: Option<u64>,
    /// Capacity of the bottleneck's queue, e.g. 64KiB.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub queue: u64,
    /// Codec: real RaptorQ, or its statistical model for large runs; auto picks the model when
    /// receivers × size exceeds 1 GiB.
    #[arg(long, value_enum, default_value = "auto")]
    pub codec: CodecChoice,
    /// Gilbert–Elliott burst loss on every receiver's link, as P_ENTER,P_LEAVE: before each
    /// packet the link turns bad with probability P_ENTER and good again with P_LEAVE; every
    /// packet is lost while bad, and --loss applies while good. Bursts last 1/P_LEAVE packets.
    #[arg(long, value_parser = parse_burst, value_name = "P_ENTER,P_LEAVE")]
    pub burst: Option<(f64, f64)>,
    /// Loss per receiver for mixed groups: comma-separated probabilities, each optionally
    /// repeated with xN (e.g. 0.01x900,0.2x100). Receivers past the list's end use --loss.
    #[arg(long, value_parser = parse_loss_list, value_name = "LIST")]
    pub loss_list: Option<LossList>,
    /// Loss on the shared link between the sender and all receivers (the root of a tree): a
    /// packet lost there is lost to everyone; feedback to the sender crosses it too.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub upstream_loss: f64,
    /// How far a reordered packet falls back: it is held for the time this many full datagrams
    /// take at --rate, so about as many packets overtake it.
    #[arg(long, default_value_t = 3)]
    pub reorder_depth: u32,
    /// Extra delay per packet, drawn uniformly from 0 to this many milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub jitter_ms: f64,
    /// The last COUNT receivers join only at SECONDS of simulated time.
    #[arg(long, value_parser = parse_change, value_name = "COUNT@SECONDS")]
    pub join: Option<(usize, f64)>,
    /// The first COUNT receivers leave at SECONDS of simulated time, complete or not; the
    /// run then waits only for the others.
    #[arg(long, value_parser = parse_change, value_name = "COUNT@SECONDS")]
    pub leave: Option<(usize, f64)>,
    /// Hybrid: spare repair symbols sent beyond a NACK's need, at most one per 50 symbols of
    /// the block (on top of the need's expected loss at the receivers' average loss rate, and one
    /// standard deviation of it).
    #[arg(long, default_value_t = 2)]
    pub repair_margin: u32,
    /// Largest blocks each receiver decodes at once (memory per receiver).
    #[arg(long, default_value_t = 256)]
    pub max_blocks_in_flight: usize,
    /// Split the object into objects of at most N blocks of --block-symbols each, so that
    /// blocks keep K symbols however large the object (one object has at most 256 blocks;
    /// beyond 255 × K symbols its blocks grow instead).
    #[arg(long, value_name = "N")]
    pub split_blocks: Option<u32>,
    /// Run every scenario of a TOML suite file instead (see docs/cli.md): each [[run]] table
    /// sets flags of this command by their long names, and array values expand into one run
    /// per combination. Flags given on the command line are the defaults.
    #[arg(long, value_name = "FILE.toml")]
    pub scenario: Option<std::path::PathBuf>,
    /// Print one JSON object with the results instead of a summary (one line per run).
    #[arg(long)]
    pub json: bool,
    /// Print CSV instead of a summary: a header, then one row per run.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

/// Flags of `groupcast demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of receivers.
    #[arg(long, default_value_t = 20)]
    pub receivers: usize,
    /// Independent loss probability per receiver, 0 to below 1.
    #[arg(long, default_value = "0.1", value_parser = parse_probability)]
    pub loss: f64,
    /// Object size, e.g. 32MiB or 100MB.
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    pub size: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl From<&DemoArgs> for SimArgs {
    fn from(d: &DemoArgs) -> Self {
        SimArgs {
            mode: Mode::Carousel,
            receivers: d.receivers,
            loss: d.loss,
            size: d.size,
            symbol_size: None,
            block_symbols: 1000,
            rate: 1_000_000_000,
            seed: d.seed,
            overhead: None,
            round_repair: 0.05,
            interleave: 16,
            reorder: 0.0,
            duplicate: 0.0,
            delay_ms: 10.0,
            fec: Fec::Raptorq,
            bottleneck: None,
            queue: 64 * 1024,
            codec: CodecChoice::Raptorq,
            burst: None,
            loss_list: None,
            upstream_loss: 0.0,
            reorder_depth: 3,
            jitter_ms: 0.0,
            join: None,
            leave: None,
            max_blocks_in_flight: 256,
            split_blocks: None,
            repair_margin: 2,
            scenario: None,
            json: false,
            csv: false,
        }
    }
}

impl SimArgs {
    /// The scenario these flags describe.
    pub fn scenario(&self) -> Scenario {
        Scenario {
            mode: scenario_mode(self.mode),
            receivers: self.receivers,
            loss: self.loss,
            size: self.size,
            symbol_size: self.symbol_size,
            block_symbols: self.block_symbols,
            rate: self.rate,
            seed: self.seed,
            overhead: self.overhead,
            round_repair: self.round_repair,
            interleave: self.interleave,
            reorder: self.reorder,
            duplicate: self.duplicate,
            delay_ms: self.delay_ms,
            fec: match self.fec {
                Fec::Raptorq => scenario::Fec::Raptorq,
                Fec::Nocode => scenario::Fec::Nocode,
            },
            bottleneck: self.bottleneck,
            queue: self.queue,
            codec: match self.codec {
                CodecChoice::Auto => scenario::CodecChoice::Auto,
                CodecChoice::Raptorq => scenario::CodecChoice::Raptorq,
                CodecChoice::Model => scenario::CodecChoice::Model,
            },
            burst: self.burst,
            loss_list: self.loss_list.clone().map(|l| l.0),
            upstream_loss: self.upstream_loss,
            reorder_depth: self.reorder_depth,
            jitter_ms: self.jitter_ms,
            join: self.join,
            leave: self.leave,
            repair_margin: self.repair_margin,
            max_blocks_in_flight: self.max_blocks_in_flight,
            split_blocks: self.split_blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Sim {
        #[command(flatten)]
        args: SimArgs,
    }

    /// The flags' defaults are the scenario's: they live in one place
    /// (`Scenario::default`), and this holds the two equal.
    #[test]
    fn flag_defaults_are_the_scenario_defaults() {
        let sim = Sim::try_parse_from(["sim"]).unwrap();
        assert_eq!(sim.args.scenario(), Scenario::default());
    }
}
