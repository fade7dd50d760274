//! Settings shared by the feedback modes (nack and hybrid).

use std::time::Duration;

/// How a sender recovers loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Loop and repeat with fresh repair symbols every round; no back channel,
    /// and receivers stay anonymous.
    Carousel,
    /// ARQ without FEC: source symbols once, then replays of exactly the ESIs
    /// receivers report missing (the union of their reports).
    Nack,
    /// Source symbols plus an optional proactive share of repair, then as many
    /// fresh repair symbols per block as the largest need reported.
    Hybrid,
}

impl Mode {
    /// A lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Carousel => "carousel",
            Self::Nack => "nack",
            Self::Hybrid => "hybrid",
        }
    }

    /// Whether receivers report back in this mode.
    pub fn has_feedback(self) -> bool {
        !matches!(self, Self::Carousel)
    }

    /// The proactive repair share of the first round that suits the mode
    /// (`groupcast send`'s default): a carousel has no back channel, so each
    /// round carries a quarter of K in repair; nack and hybrid senders
    /// repair what receivers report, so send none up front.
    pub fn default_repair_overhead(self) -> f64 {
        match self {
            Self::Carousel => 0.25,
            Self::Nack | Self::Hybrid => 0.0,
        }
    }
}

/// Which tracked receivers pace the sender (as in Aeron's flow control).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPolicy {
    /// Never run further ahead than the slowest tracked receiver's window.
    Min,
    /// Follow the fastest tracked receiver.
    Max,
    /// Follow the n-th fastest tracked receiver: at least n keep up.
    Quorum(u32),
}

/// Additive-increase, multiplicative-decrease of the sending rate on reported loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aimd {
    /// A status reporting more loss than this (0..1) counts as congestion.
    pub loss_threshold: f64,
    /// Factor applied to the rate on congestion, at most once per GRTT. Default 0.875.
    pub decrease: f64,
    /// Bytes per second added per GRTT without congestion.
    pub increase: u64,
    /// The rate never falls below this (bytes per second).
    pub floor: u64,
}

impl Aimd {
    /// Congestion control for a sender paced at `rate` bytes per second: a
    /// cut by 1/8 on a report above `loss_threshold`, a step of rate / 50
    /// back up, never below `floor` (at most `rate`).
    pub fn for_rate(rate: u64, loss_threshold: f64, floor: u64) -> Self {
        Self {
            loss_threshold,
            decrease: 0.875,
            increase: (rate / 50).max(1),
            floor: floor.min(rate),
        }
    }

    /// The default floor for a sender paced at `rate`: a sixteenth of it.
    pub fn default_floor(rate: u64) -> u64 {
        (rate / 16).max(1)
    }
}

/// Feedback settings of a sender in nack or hybrid mode.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackConfig {
    /// GRTT assumed until receivers' echoes measure it. Default 50 ms.
    pub initial_grtt: Duration,
    /// GRTT estimates are clamped to this range. Default 1 ms..=10 s.
    pub min_grtt: Duration,
    /// Most GRTT the sender will assume. Default 10 s.
    pub max_grtt: Duration,
    /// How often a PROBE goes out. Default 25 ms.
    pub probe_interval: Duration,
    /// NACKs for a block are gathered for this share of the GRTT before the
    /// sender replies. Default 0.5.
    pub aggregation: f64,
    /// After everyone tracked is complete, the sender waits for late NACKs
    /// for four GRTTs (at least two `probe_interval`s), but at most this long,
    /// before it finishes. Default 500 ms.
    pub linger: Duration,
    /// The sender does not finish before receivers from this many distinct
    /// /64s have reported (ever), so that it can be started before its
    /// receivers; ids from one /64, which one host can forge, count once
    /// (receivers heard without a source address count one each). Default 0.
    pub min_receivers: u32,
    /// A tracked receiver silent for this long stops counting. Default 5 s.
    pub receiver_timeout: Duration,
    /// A tracked receiver that is not complete and holds the sender back (a
    /// flow window or more behind its first pass, or anywhere once the pass
    /// is over) spends *hold credit*: it starts with this much, loses it as
    /// time passes while it holds the sender back, and earns it back as its
    /// edge moves, at `min_progress` (never above this). With
    /// none left it is *stalled*: it stops holding back flow control and
    /// completion until its edge moves again. So a receiver whose edge does
    /// not move for this long stalls, and so does one that moves slower than
    /// `min_progress` on average, however it times its steps. A receiver first
    /// heard at or behind the edge where one stalled starts stalled; other
    /// new ids start with what is left of a credit they share (the first
    /// gets all of it), plus what their lead earns: protocol.md §13.4.
    /// Default 30 s.
    pub stall_timeout: Duration,
    /// The slowest progress, in bytes of blocks per second, that earns a
    /// receiver holding the sender back the time it takes: a block of B bytes
    /// earns B / `min_progress` of hold credit (`stall_timeout`). So a receiver,
    /// real or forged, that feigns progress (one step before each
    /// `stall_timeout`) slows the sender to `min_progress` at worst, instead
    /// of holding it `stall_timeout` per step. `None` (the default): a 32nd
    /// of the pacing rate, and at most half congestion control's floor (so
    /// that receivers keeping up with a sender at its floor earn more than
    /// they spend), or 125,000 (1 Mbit/s) unpaced. `Some(0)`: any step
    /// restores the whole credit (a receiver that moves at all is waited
    /// for).
    pub min_progress: Option<u64>,
    /// Flow-control policy. Default [`FlowPolicy::Min`].
    pub policy: FlowPolicy,
    /// How many blocks the sender may run ahead of the policy's window edge.
    /// Default 240: with the default interleave of 16, the receivers' default
    /// `max_blocks_in_flight` of 256 is never exceeded, and small blocks
    /// (100 symbols of 64 bytes: 1.5 MB, 150 ms at 80 Mbit/s) still span
    /// several repair rounds, so that the first pass never waits on one.
    pub flow_window: u32,
    /// The same bound in bytes, of blocks of `block_symbols` × T: the window
    /// is the smaller of the two, and at least one block. Default 32 MiB,
    /// 28 blocks of the default K and T, so that a receiver holds at most
    /// 44 such blocks ahead of its edge (about 52 MB) and stays within
    /// 128 MiB of RSS. (At 48 such blocks, 64 held, receivers starved of CPU
    /// at 10% loss reached 130-143 MiB for a 512 MiB file.) Small blocks keep
    /// `flow_window`, so that the window spans a round trip.
    pub flow_window_bytes: u64,
    /// How long the first pass waits, after the flow window's blocks (the
    /// smaller of `flow_window` and `flow_window_bytes`), for the first
    /// STATUS of any receiver before going on without flow control. Default
    /// 250 ms (five initial GRTTs).
    pub first_status_wait: Duration,
    /// While the first pass lasts, repair is capped at this share of the
    /// sending rate (unpaced senders: of their measured rate), so forged or
    /// buggy NACKs cannot amplify traffic or starve first-pass data. After
    /// it, repair may use the whole rate. Default 0.5.
    pub repair_share: f64,
    /// Hybrid mode: spare fresh repair symbols sent beyond the largest need
    /// reported for a block, for the repair's own loss and RaptorQ's rare
    /// failure at exactly K. Blocks of 50 symbols or more get at most one per
    /// whole 50 (so 2 from k = 100) plus need × p / (1 − p) and one standard
    /// deviation of it, √(need × p) / (1 − p), rounded up, for the
    /// receivers' average reported loss p; smaller blocks get no spare
    /// symbol and that expected loss rounded, since to a block of 7 one spare
    /// symbol is 14% more. Default 2. Each spare symbol saves NACK rounds
    /// (NACKs and latency) but costs bandwidth: at 1000 receivers and 1% loss
    /// with k = 100, margins of 0, 1, 2 and 3 gave E\[M\] 1.058, 1.064, 1.071,
    /// 1.073 (ideal code: 1.056) and 8.7, 4.0, 2.7, 1.5 NACKs per block
    /// (before the deviation term).
    pub repair_margin: u32,
    /// Hybrid mode: size each block's first-pass repair from the loss that
    /// receivers report, so that the neediest probably needs no NACK (the
    /// rule is in protocol.md §13.4). Default true.
    pub proactive: bool,
    /// The loss assumed for proactive repair before any receiver has
    /// reported. Default 0.
    pub loss_prior: f64,
    /// After the first pass, with no feedback that moves anything for 20
    /// GRTTs (at least 500 ms) while receivers are unfinished or none was ever
    /// heard, the sender sends a round of fresh repair (`round_repair` × K of
    /// each block) at half the rate; at most this many. Default 10; 0 turns
    /// the fallback off.
    pub fallback_rounds: u32,
    /// Rate adaptation; `None` keeps the configured rate. Default `None`.
    pub aimd: Option<Aimd>,
    /// Receivers tracked at once; reports from further receivers are dropped
    /// and counted. Default 10 000.
    pub max_receivers: usize,
    /// Receivers tracked at once from one source address (when the driver
    /// gives addresses), so that one host sending STATUS under made-up ids
    /// cannot fill `max_receivers` and keep real receivers from being
    /// tracked, and so from being waited for. Default 64.
    pub max_receivers_per_source: usize,
    /// Receivers tracked at once from one /64 (when the driver gives
    /// addresses; an IPv4 address is its own /64, and every link-local
    /// address is in fe80::/64), so that a host sending STATUS from many
    /// addresses of the /64 it owns holds at most this share of
    /// `max_receivers`, and receivers from other /64s are still tracked.
    /// Default 2 500, a quarter of `max_receivers`' default.
    pub max_receivers_per_prefix: usize,
    /// New receiver ids admitted per second from one /64, at most (a token
    /// bucket holding four seconds' worth), so that ids that time out and
    /// come back as new ones, or fresh ids each sent once, cannot churn the
    /// table. Reports of ids beyond it are dropped and counted, and the ids
    /// are admitted once the bucket allows. Default 256.
    pub new_receivers_per_prefix: u32,
    /// NACK packets processed per second, at most; the excess is dropped and
    /// counted. Default 20 000.
    pub max_nack_rate: u32,
    /// NACK packets processed per second from one source address, at most,
    /// so that a flood from one host does not use up `max_nack_rate` for
    /// everyone. Default 2 000.
    pub max_nack_rate_per_source: u32,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            initial_grtt: Duration::from_millis(50),
            min_grtt: Duration::from_millis(1),
            max_grtt: Duration::from_secs(10),
            probe_interval: Duration::from_millis(25),
            aggregation: 0.5,
            linger: Duration::from_millis(500),
            min_receivers: 0,
            receiver_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(30),
            min_progress: None,
            policy: FlowPolicy::Min,
            flow_window: 240,
            flow_window_bytes: 32 << 20,
            first_status_wait: Duration::from_millis(250),
            repair_share: 0.5,
            repair_margin: 2,
            proactive: true,
            fallback_rounds: 10,
            loss_prior: 0.0,
            aimd: None,
            max_receivers: 10_000,
            max_receivers_per_source: 64,
            max_receivers_per_prefix: 2_500,
            new_receivers_per_prefix: 256,
            max_nack_rate: 20_000,
            max_nack_rate_per_source: 2_000,
        }
    }
}
