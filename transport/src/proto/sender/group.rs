//! The group: every receiver a nack or hybrid sender knows of and what it
//! reported (protocol.md §13.3, §13.4): window edges, completion, hold
//! credit and stalls, round trips and loss; the ids a NACK bound to its
//! address before their first STATUS; and when feedback last moved
//! anything, which the fallback waits on. From them come flow control's
//! edge, the loss proactive repair is sized for, who holds the sender back,
//! and AIMD's inputs (handed back, not applied). Nothing here sends, plans
//! a window or holds an object's bytes: objects are seen only as global
//! block sequence numbers and their sizes ([`Blocks`]).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::blocks::Blocks;
use super::budget::Budget;
use super::census::Census;
use super::config::{BUSY_HOLD, SenderConfig, SenderEvent, SenderStats};
use crate::proto::feedback::{FeedbackConfig, FlowPolicy};
use crate::proto::rate::{RttFilter, average_loss};
use crate::proto::repair::RepairScheduler;
use crate::proto::roster::{Refusal, Roster, prefix_of};
use crate::wire::feedback::{STATUS_BUSY, STATUS_COMPLETE, STATUS_ECHO, STATUS_LOSS};
use crate::wire::{ReportAsk, StatusRepr};

/// PROBE timestamps remembered, so that a STATUS echo must name a recent one.
const PROBE_HISTORY: usize = 64;

/// What the sender knows of a receiver that reports.
#[derive(Clone, Copy)]
struct Tracked {
    last_heard: Instant,
    /// Global block sequence number of the receiver's window edge.
    edge: u64,
    complete: bool,
    /// Its hold credit as of `credit_at` (`FeedbackConfig::stall_timeout`):
    /// spent while it holds the sender back ([`holds_back`]), earned back
    /// as its edge moves.
    credit: Duration,
    credit_at: Instant,
    /// Out of credit: it holds nothing back.
    stalled: bool,
    /// The address its first STATUS came from, if the driver said.
    source: Option<IpAddr>,
    /// Its least recent round trips.
    rtt: RttFilter,
    /// The Timestamp its latest accepted echo named: a later echo may not
    /// name an earlier PROBE.
    echo: Option<u64>,
    /// Distinct PROBEs its accepted echoes named (at most 2): only from the
    /// second on may its samples raise the GRTT.
    echoed: u8,
    /// Its reported loss, averaged (0..=0.5): [`average_loss`].
    loss: f64,
    /// Measured loss reports (STATUS with LOSS) averaged into `loss`; none
    /// yet, it does not count in [`Group::reported_loss`].
    loss_reports: u32,
    /// `loss`'s standard deviation over √(p(1 − p)), at most: each report's
    /// 1 / √(Loss span) averaged as `loss` is (the deviation of an average
    /// of correlated estimates is at most the average of theirs); 0 for
    /// reports without a span.
    loss_sd: f64,
}

impl Tracked {
    /// Whether its loss counts: neither stalled nor complete, with a
    /// measured report.
    fn reports_loss(&self) -> bool {
        !self.stalled && !self.complete && self.loss_reports > 0
    }

    /// Averages in the Loss of `st`, if measured (STATUS with LOSS). A
    /// receiver's first STATUS comes before its first loss sample and says
    /// 0: averaged in, such reports would have the sender size its first
    /// windows' proactive repair for a third to a half of the loss.
    fn average_in(&mut self, st: &StatusRepr) {
        if st.flags & STATUS_LOSS == 0 {
            return;
        }
        let reported = (st.loss_ppm as f64 / 1e6).min(0.5);
        let sd = if st.loss_span > 0 {
            1.0 / (st.loss_span as f64).sqrt()
        } else {
            0.0
        };
        self.loss = average_loss(self.loss, self.loss_reports, reported);
        self.loss_sd = average_loss(self.loss_sd, self.loss_reports, sd);
        self.loss_reports = self.loss_reports.saturating_add(1);
    }
}

/// The hold credit that new receiver ids share: the first id heard gets all
/// of `stall_timeout`; each later one what is left here, plus what its lead
/// over the highest edge a new id was first heard at earns (at most all of
/// it), and that becomes what is left. It runs down with time while some
/// receiver that counts holds the sender back. So fresh ids, each a step
/// ahead of the last, hold the sender no longer than one id's steps could (a
/// forger's ids get little; a receiver that joins late starts with what is
/// left, all of it if nobody held the sender back so far, and once it has
/// none holds the sender only after it moves); and a sender started before
/// its receivers, with nobody to wait for, keeps the whole of it for them.
#[derive(Debug, Clone, Copy)]
struct Newcomers {
    edge: u64,
    credit: Duration,
    /// When it last ran down (the periodic check).
    at: Instant,
}

/// Ids not yet tracked bound to the address they first NACKed from: the id
/// stays bound to it, so that a forger who read it off the NACK cannot be
/// first to report under it.
#[derive(Default)]
struct NackBindings {
    ids: HashMap<u64, IpAddr>,
    /// Oldest first; at most `max_receivers`.
    order: VecDeque<u64>,
    /// Ids bound per address: at most `max_receivers_per_source`.
    per_source: HashMap<IpAddr, usize>,
    /// Ids bound per /64: at most `max_receivers_per_prefix`.
    per_prefix: HashMap<IpAddr, usize>,
}

impl NackBindings {
    /// Drops the address `receiver` was bound to, if any.
    fn forget(&mut self, receiver: u64) {
        if let Some(a) = self.ids.remove(&receiver) {
            uncount(&mut self.per_source, a);
            uncount(&mut self.per_prefix, IpAddr::V6(prefix_of(a)));
        }
    }
}

/// One fewer of `counts[a]` (receivers or bindings of address `a`); the
/// entry goes at zero, so that the map holds only addresses in use.
fn uncount(counts: &mut HashMap<IpAddr, usize>, a: IpAddr) {
    if let Entry::Occupied(mut n) = counts.entry(a) {
        *n.get_mut() -= 1;
        if *n.get() == 0 {
            n.remove();
        }
    }
}

/// Where the first pass is, as the group's credit arithmetic needs it.
#[derive(Clone, Copy)]
pub(super) struct Position {
    /// The global block the sender has sent past (`Sender::behind_edge`):
    /// `u64::MAX` once the first pass is over.
    pub(super) behind: u64,
    /// Source blocks of every object added.
    pub(super) total: u64,
    /// Microseconds since the sender's epoch, the PROBE timestamps' clock.
    pub(super) now_us: u64,
}

/// What a STATUS accepted asks of the sender beyond the group.
#[derive(Debug, Default)]
pub(super) struct StatusOutcome {
    /// The periodic check should come by then: a receiver's little credit
    /// runs out.
    pub(super) check_by: Option<Instant>,
    /// Its receiver's first measured Loss: the window may be restaged.
    pub(super) first_loss: bool,
    /// A round trip for the GRTT, and whether it may raise it.
    pub(super) rtt: Option<(Duration, bool)>,
    /// It moved something (its window moved, it completed, or it says
    /// BUSY): a fallback round is over.
    pub(super) moved: bool,
}

/// The receivers of a nack or hybrid sender, and what they reported.
pub(super) struct Group {
    cfg: FeedbackConfig,
    /// Bytes a second of progress that earn a receiver its whole credit
    /// over `stall_timeout` (`None`: any step earns all of it).
    progress_floor: Option<u64>,
    /// Blocks the first pass may run ahead of the flow-control edge: the
    /// smaller of `flow_window` and `flow_window_bytes` in blocks of K × T.
    pub(super) flow_blocks: u64,
    receivers: HashMap<u64, Tracked>,
    /// Which new receiver ids are admitted: caps per address, per /64 and
    /// over time, and the ids refused.
    pub(super) roster: Roster,
    bindings: NackBindings,
    /// Timestamps of the latest PROBEs sent.
    probe_times: VecDeque<u64>,
    /// The highest window edge at which a receiver was declared stalled.
    stall_floor: Option<u64>,
    /// Whether, at the last periodic check, flow control's edge (by the
    /// policy) was a flow window behind the first pass: receivers a window
    /// behind then hold the sender back ([`holds_back`]).
    flow_held: bool,
    /// The hold credit new receiver ids start from (`None` before the
    /// first): [`Newcomers`].
    newcomers: Option<Newcomers>,
    /// When feedback that moves something (an accepted NACK, a STATUS whose
    /// window moved or that completed, a BUSY) last came.
    pub(super) feedback_at: Option<Instant>,
    /// When the last STATUS with BUSY came: the fallback waits
    /// `BUSY_HOLD` from it.
    pub(super) busy_at: Option<Instant>,
    /// More objects may come (`Sender::set_open`): never finished.
    pub(super) open: bool,
    /// What answers to NACKs may spend.
    pub(super) budget: Budget,
    /// Who is asked to report, and the group size estimated from it.
    pub(super) census: Census,
    /// In a sampled group, the oldest report that still counts (set at each
    /// PROBE): receivers not asked are silent by rule, so what one said
    /// longer ago than four GRTTs (at least four PROBE intervals) is no
    /// longer taken as its state (protocol.md §13.4, "Group size").
    live_from: Option<Instant>,
    /// How long a report counts in a sampled group ([`Group::live_from`]).
    live_horizon: Duration,
    /// The Sent count of the latest PROBE.
    probe_sent: u64,
}

/// Whether a receiver whose edge is `edge` holds the sender back, given
/// where the sender is (`behind`, [`Position::behind`]) and whether flow
/// control's edge is a window behind too (`held`, [`Group::flow_held`]): a
/// flow window or more behind the first pass while flow control stops the
/// pass there (under `--policy max`, a laggard does not stop it), or
/// anywhere once the pass is over (where the sender waits for it to
/// complete). One that keeps within the window, or a sender slower than
/// `min_progress` (a quiet feed), costs no credit (protocol.md §13.4,
/// "Stalls").
fn holds_back(edge: u64, behind: u64, flow_blocks: u64, held: bool) -> bool {
    (held || behind == u64::MAX) && edge.saturating_add(flow_blocks) <= behind
}

impl Group {
    /// No receivers yet, for a sender of `config` with symbols of `t` bytes.
    pub(super) fn new(config: &SenderConfig, t: u16) -> Self {
        let fb = &config.feedback;
        let block_bytes = config.block_symbols as u64 * t as u64;
        let flow_blocks = (fb.flow_window as u64).min((fb.flow_window_bytes / block_bytes).max(1));
        let progress_floor = match fb.min_progress {
            Some(0) => None,
            Some(b) => Some(b),
            None => Some(match (config.rate, &fb.aimd) {
                (Some(r), Some(a)) => (r / 32).min(a.floor / 2).max(1),
                (Some(r), None) => (r / 32).max(1),
                (None, _) => 125_000,
            }),
        };
        Self {
            cfg: fb.clone(),
            progress_floor,
            flow_blocks,
            receivers: HashMap::new(),
            roster: Roster::default(),
            bindings: NackBindings::default(),
            probe_times: VecDeque::new(),
            stall_floor: None,
            flow_held: false,
            newcomers: None,
            feedback_at: None,
            busy_at: None,
            open: false,
            budget: Budget::new(fb.max_nack_rate),
            census: Census::default(),
            live_from: None,
            live_horizon: Duration::ZERO,
            probe_sent: 0,
        }
    }

    /// Whether what `r` said last still counts: always in a group asked
    /// whole; in a sampled one, if said since `live_from`.
    fn live(&self, r: &Tracked) -> bool {
        self.live_from.is_none_or(|f| r.last_heard >= f)
    }

    /// The receivers whose reports count ([`Group::live`]).
    fn current(&self) -> impl Iterator<Item = &Tracked> {
        self.receivers.values().filter(|r| self.live(r))
    }

    /// The group size in a sampled group, 0 in one asked whole (where the
    /// reports are the group's).
    fn sampled_size(&self) -> usize {
        if self.census.sampling() {
            self.size() as usize
        } else {
            0
        }
    }

    /// The group size proactive repair is sized for, at least 1: the
    /// receivers tracked, or in a sampled group the estimate if larger.
    pub(super) fn repair_size(&self) -> usize {
        self.receivers.len().max(self.sampled_size()).max(1)
    }

    /// How long the sender waits for late NACKs once everyone tracked is
    /// done, with GRTT `grtt`: four GRTTs (a late receiver's NACK backoff and
    /// its repair's round trip), at least two PROBE intervals, at most
    /// `linger`. In a sampled group, the quiet completion rests on: two
    /// PROBE intervals and fourteen GRTTs (protocol.md §13.4, "Finish").
    pub(super) fn linger(&self, grtt: Duration) -> Duration {
        let fb = &self.cfg;
        if self.census.sampling() {
            return fb.probe_interval * 2 + grtt * 14;
        }
        (grtt * 4).max(fb.probe_interval * 2).min(fb.linger)
    }

    /// The group size: the census's estimate; before it has one, the
    /// receivers tracked if the group is asked whole, else 0 (unknown: the
    /// opening ramp asks a share of a group of any size).
    pub(super) fn size(&self) -> u64 {
        match self.census.estimate() {
            Some(n) => n.round() as u64,
            None if self.census.sample() > 0 => 0,
            None => self.receivers.len() as u64,
        }
    }

    /// Every tracked receiver lacks the object just added.
    pub(super) fn reopen(&mut self) {
        for r in self.receivers.values_mut() {
            r.complete = false;
        }
    }

    /// Whether `id` is tracked, unfinished and not stalled: whether its
    /// NACKs may hold the sender. In a sampled group, also any id not
    /// tracked (most receivers never report) while [`Group::unknowns_hold`].
    pub(super) fn counts(&self, id: u64, now: Instant, pass_end: Option<Instant>) -> bool {
        match self.receivers.get(&id) {
            Some(r) if self.live(r) => !r.complete && !r.stalled,
            Some(r) if r.complete || r.stalled => false,
            _ => self.unknowns_hold(now, pass_end),
        }
    }

    /// Whether, in a sampled group, receivers the sender does not track
    /// (their NACKs, the repair they queued) hold its finish: until
    /// `stall_timeout` after the first pass ended at `pass_end`, so that
    /// forged NACKs delay the finish by that much at most (protocol.md
    /// §13.4, "Finish").
    pub(super) fn unknowns_hold(&self, now: Instant, pass_end: Option<Instant>) -> bool {
        self.census.sampling() && pass_end.is_none_or(|e| now < e + self.cfg.stall_timeout)
    }

    /// Whether no tracked receiver counts: none is tracked, or every one is
    /// stalled.
    pub(super) fn nobody_counts(&self) -> bool {
        self.receivers.values().all(|r| r.stalled)
    }

    /// Whether some tracked receiver is neither complete nor stalled.
    pub(super) fn unfinished(&self) -> bool {
        self.current().any(|r| !r.complete && !r.stalled)
    }

    /// Whether every tracked receiver is complete or stalled.
    pub(super) fn all_done(&self) -> bool {
        self.current().all(|r| r.complete || r.stalled)
    }

    /// The lowest window edge of a tracked receiver that is not stalled.
    pub(super) fn lowest_edge(&self) -> Option<u64> {
        // Every tracked receiver, live or not: what a feed retires on.
        self.receivers
            .values()
            .filter(|r| !r.stalled)
            .map(|r| r.edge)
            .min()
    }

    /// The lowest window edge of an unfinished receiver that counts (0 with
    /// none): where a fallback round starts.
    pub(super) fn fallback_floor(&self) -> u64 {
        self.current()
            .filter(|r| !r.complete && !r.stalled)
            .map(|r| r.edge)
            .min()
            .unwrap_or(0)
    }

    /// The window edge flow control follows, if any receiver counts
    /// (protocol.md §13.4, "Flow control").
    pub(super) fn flow_edge(&self) -> Option<u64> {
        let mut edges = self
            .current()
            .filter(|r| !r.stalled)
            .map(|r| r.edge)
            .peekable();
        edges.peek()?;
        // Asked on every poll: only a quorum needs the edges gathered.
        Some(match self.cfg.policy {
            FlowPolicy::Min => edges.min().unwrap_or(0),
            FlowPolicy::Max => edges.max().unwrap_or(0),
            FlowPolicy::Quorum(n) => {
                let mut edges: Vec<u64> = edges.collect();
                let i = (n as usize).min(edges.len()).max(1) - 1;
                // The i-th largest edge.
                *edges.select_nth_unstable_by(i, |a, b| b.cmp(a)).1
            }
        })
    }

    /// Whether flow control holds the first pass back before the window
    /// that starts at global block `seq` (protocol.md §13.4, "Flow
    /// control", "The first window"), `waited` after the sender's first
    /// time, with `heard` receivers heard so far.
    pub(super) fn flow_blocked(&self, seq: u64, waited: Duration, heard: u64) -> bool {
        let Some(edge) = self.flow_edge() else {
            // Nobody has reported yet. Receivers hold a bounded number of
            // blocks, so the first window waits up to `first_status_wait` for
            // a first STATUS instead of racing ahead of them (receivers that
            // never report, or none at all, then get the rest unpaced by them).
            return heard == 0 && waited < self.cfg.first_status_wait && seq >= self.flow_blocks;
        };
        seq >= edge + self.flow_blocks
    }

    /// Whether a NACK of `receiver` from `source` is taken, within the NACK
    /// rate limits, overall and per source (protocol.md §13.4, "Answering
    /// NACKs"); binds an id not yet tracked to its address.
    pub(super) fn admit_nack(
        &mut self,
        now: Instant,
        source: Option<IpAddr>,
        receiver: u64,
        stats: &mut SenderStats,
    ) -> bool {
        if let Some(src) = source
            && !self
                .budget
                .take_source_token(now, src, self.cfg.max_nack_rate_per_source)
        {
            stats.nacks_dropped_per_source += 1;
            return false;
        }
        if !self.budget.take_nack() {
            stats.nacks_dropped += 1;
            return false;
        }
        stats.nacks_received += 1;
        self.feedback_at = Some(now);
        if let Some(src) = source {
            self.on_nack_source(receiver, src);
        }
        true
    }

    /// When the next fallback round is due, once the first pass is over
    /// with no repair queued and rounds left: receivers unfinished (or none
    /// ever heard: `heard` 0), `delay` after the latest of `quiet_since`
    /// (the pass's end, the last round), and [`BUSY_HOLD`] since the last
    /// BUSY.
    pub(super) fn fallback_due(
        &self,
        quiet_since: [Option<Instant>; 2],
        delay: Duration,
        heard: u64,
    ) -> Option<Instant> {
        if heard > 0 && !self.unfinished() {
            return None;
        }
        let quiet_since = quiet_since
            .into_iter()
            .chain([self.feedback_at])
            .flatten()
            .max()?;
        let busy = self.busy_at.map(|b| b + BUSY_HOLD);
        Some((quiet_since + delay).max(busy.unwrap_or(quiet_since)))
    }

    /// Queues a fallback round at `now` (protocol.md §13.4, "Fallback"):
    /// fresh repair (nack mode: the source symbols again) for every block
    /// beyond the lowest unfinished receiver's window, `share` × K of each
    /// (at least one symbol).
    pub(super) fn queue_fallback(
        &mut self,
        now: Instant,
        share: f64,
        blocks: &Blocks,
        repair: &mut RepairScheduler,
    ) {
        let floor = self.fallback_floor();
        for (i, o) in blocks
            .objects
            .iter()
            .enumerate()
            .skip(blocks.retired as usize)
        {
            for sbn in 0..o.oti.source_blocks() {
                if blocks.prefix[i] + (sbn as u64) < floor {
                    continue;
                }
                let Some(b) = o.oti.block(sbn) else { continue };
                let k = b.source_symbols;
                let need = ((k as f64 * share).ceil() as u32).clamp(1, k);
                repair.request((o.id.0, b.sbn), k, now, need, &[(0, k)]);
            }
        }
    }

    /// Building an encoder costs CPU like sending part of its block. Builds
    /// for repair draw on their own budget, refilled like the repair budget and
    /// charged an eighth of the block each, so that NACKs spread thinly over
    /// many blocks cannot keep the sender busy rebuilding encoders.
    pub(super) fn charge_build(
        &mut self,
        blocks: &Blocks,
        (object, sbn): (u32, u8),
        stats: &mut SenderStats,
    ) {
        let len = blocks.objects[object as usize]
            .oti
            .block(sbn as u32)
            .map_or(0, |b| b.len);
        self.budget.build.spend(len as f64 / 8.0);
        stats.encoders_built_for_repair += 1;
    }

    /// Whether the group lets a sender whose first pass is over finish
    /// (protocol.md §13.4, "Finish").
    pub(super) fn may_finish(&self, stats: &SenderStats) -> bool {
        !self.open
            // Receivers from distinct /64s: one host's forged ids count once.
            && self.roster.distinct_heard() >= self.cfg.min_receivers as u64
            // Nobody ever heard: the fallback rounds go out first.
            && (stats.receivers_heard > 0
                || stats.fallback_rounds >= self.cfg.fallback_rounds as u64)
            // Repair still queued is for nobody who counts: every tracked
            // receiver is complete or stalled. (So NACKs, which anyone can
            // forge, cannot keep the sender from finishing.)
            && self.all_done()
    }

    /// The loss proactive repair is sized for (protocol.md §13.4,
    /// "Proactive repair"): [`neediest_loss`] of the receivers whose loss
    /// counts; with `first`, for a first sizing from their first reports.
    /// `None` if none has reported.
    pub(super) fn neediest_loss(&self, first: bool) -> Option<f64> {
        let counted = self.loss_reporters().map(|r| (r.loss, r.loss_sd));
        neediest_loss(counted, first, self.sampled_size())
    }

    /// The largest average loss a tracked receiver that still counts (not
    /// stalled, not complete) reports; `None` with none.
    pub(super) fn reported_loss(&self) -> Option<f64> {
        self.loss_reporters().map(|r| r.loss).reduce(f64::max)
    }

    /// Whether a receiver's loss counts and every receiver that counts has
    /// measured its loss: what restaging a window waits for.
    pub(super) fn all_measured(&self) -> bool {
        let measured = |r: &Tracked| r.stalled || r.complete || r.loss_reports > 0;
        self.loss_reporters().next().is_some() && self.current().all(measured)
    }

    /// The receivers whose loss counts: every tracked one whose loss
    /// [`Tracked::reports_loss`], however long ago it reported (within
    /// `receiver_timeout`), so that a receiver that said once it loses more
    /// than the rest is sized for until it goes.
    fn loss_reporters(&self) -> impl Iterator<Item = &Tracked> {
        self.receivers.values().filter(|r| r.reports_loss())
    }

    /// Remembers a PROBE's Timestamp, for the echoes that will name it, and
    /// gives what it asks of the group (protocol.md §13.3, "Who reports"):
    /// `at` is its Timestamp and Sent, and where the first pass is
    /// ([`Position::behind`]).
    pub(super) fn on_probe(
        &mut self,
        now: Instant,
        ((timestamp_us, sent), behind): ((u64, u64), u64),
        (grtt, probe_interval): (Duration, Duration),
        blocks: &Blocks,
    ) -> ReportAsk {
        if self.probe_times.len() >= PROBE_HISTORY {
            self.probe_times.pop_front();
        }
        self.probe_times.push_back(timestamp_us);
        // Answers to a PROBE come within a GRTT.
        let settle = grtt.max(Duration::from_millis(10));
        let active = sent > self.probe_sent;
        self.probe_sent = sent;
        // Asked whole, the group is the receivers tracked, at most 8 a /64,
        // so that one host's made-up ids cannot make it look sampled.
        let tracked = self.roster.capped(self.receivers.len(), 8);
        let sample = self
            .census
            .on_probe(now, timestamp_us, (settle, active), tracked);
        let horizon = (grtt * 4).max(probe_interval * 4);
        self.live_horizon = horizon;
        self.live_from = self
            .census
            .sampling()
            .then(|| now.checked_sub(horizon))
            .flatten();
        let loss = self.neediest_loss(false).unwrap_or(0.0);
        ReportAsk {
            sample,
            limit: self.limit(behind).map(|e| blocks.window_of(e)),
            loss: (loss * 65536.0).round().min(u16::MAX as f64) as u16,
        }
    }

    /// The window edge a PROBE names as its Limit, given the global block
    /// the first pass is at (`behind`, [`Position::behind`]): in a sampled
    /// group under `min`, once the pass is half a flow window in, half a
    /// flow window behind it, or flow control's edge if that is lower. A
    /// receiver behind it may soon hold the sender back, or holds it now,
    /// and reports (protocol.md §13.3, "Who reports"); the rest cannot
    /// change where flow control stops the pass. None once the pass is
    /// over. A group asked whole reports anyway.
    fn limit(&self, behind: u64) -> Option<u64> {
        // Once the pass is over, NACKs say who lacks what.
        if !self.census.sampling() || self.cfg.policy != FlowPolicy::Min || behind == u64::MAX {
            return None;
        }
        let half = behind.checked_sub(self.flow_blocks.div_ceil(2))?;
        Some(self.flow_edge().map_or(half, |e| e.min(half)))
    }

    /// Remembers the address an id not yet tracked first NACKed from. NACKs
    /// are multicast, so every host on the group reads the id in them; an id
    /// that NACKs before its first STATUS must not be claimed by the first
    /// host to forge one.
    pub(super) fn on_nack_source(&mut self, receiver: u64, src: IpAddr) {
        let b = &mut self.bindings;
        if self.receivers.contains_key(&receiver) || b.ids.contains_key(&receiver) {
            return;
        }
        // One address binds at most its share, so that a flood of NACKs
        // under made-up ids cannot push the others' bindings out.
        let prefix = IpAddr::V6(prefix_of(src));
        if b.per_source.get(&src).copied().unwrap_or(0) >= self.cfg.max_receivers_per_source
            || b.per_prefix.get(&prefix).copied().unwrap_or(0) >= self.cfg.max_receivers_per_prefix
        {
            return;
        }
        if b.order.len() >= self.cfg.max_receivers.max(1)
            && let Some(old) = b.order.pop_front()
        {
            b.forget(old);
        }
        b.ids.insert(receiver, src);
        *b.per_source.entry(src).or_default() += 1;
        *b.per_prefix.entry(prefix).or_default() += 1;
        b.order.push_back(receiver);
    }

    /// Takes in a STATUS of this session whose window is the global block
    /// `edge` (protocol.md §13.3, §13.4): binds and admits a new id, moves
    /// the receiver's edge and credit, averages its loss and checks its
    /// echo. `None` if it was refused.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_status(
        &mut self,
        now: Instant,
        source: Option<IpAddr>,
        st: &StatusRepr,
        edge: u64,
        at: Position,
        blocks: &Blocks,
        stats: &mut SenderStats,
        events: &mut VecDeque<SenderEvent>,
    ) -> Option<StatusOutcome> {
        let known = self.receivers.get(&st.receiver).copied();
        if known.is_none() && !self.admit(now, source, st.receiver, stats, events) {
            return None;
        }
        let complete = st.flags & STATUS_COMPLETE != 0 && edge >= at.total;
        // A receiver id is bound to the address it was first heard from, so
        // that a forger who read the id off a NACK cannot speak for it.
        if let Some(r) = known
            && r.source.is_some()
            && source != r.source
        {
            stats.feedback_rejected += 1;
            return None;
        }
        stats.status_received += 1;
        let mut outcome = StatusOutcome::default();
        if known.is_none_or(|r| edge > r.edge || (complete && !r.complete)) {
            self.feedback_at = Some(now);
            outcome.moved = true;
        }
        let (credit, stalled) = self.credit_for(known, edge, complete, now, at.behind, blocks);
        // A tracked receiver whose window waits for its own work (a solve,
        // its application) needs no repair: no fallback round for it. One
        // the sender no longer waits for (stalled) holds nothing off.
        if st.flags & STATUS_BUSY != 0 && known.is_some() && !complete && !stalled {
            self.feedback_at = Some(now);
            self.busy_at = Some(now);
            outcome.moved = true;
        }
        // Little credit (unstalled by a step, or new ahead of a stall): the
        // check comes when it runs out, not at the next periodic one.
        if !stalled && !complete {
            outcome.check_by = Some(now + credit.max(self.cfg.probe_interval));
        }
        let mut r = known.unwrap_or(Tracked {
            last_heard: now,
            edge,
            complete,
            credit,
            credit_at: now,
            stalled,
            source,
            rtt: RttFilter::default(),
            echo: None,
            echoed: 0,
            loss: 0.0,
            loss_reports: 0,
            loss_sd: 0.0,
        });
        (r.last_heard, r.edge, r.complete) = (now, edge, complete);
        (r.credit, r.credit_at, r.stalled) = (credit, now, stalled);
        r.average_in(st);
        outcome.first_loss = st.flags & STATUS_LOSS != 0 && r.loss_reports == 1;
        self.census.on_status();
        if st.flags & STATUS_ECHO != 0 {
            let first = r.echo != Some(st.echo_us);
            outcome.rtt = self.echo(&mut r, st, at.now_us, stats);
            if first && outcome.rtt.is_some() {
                self.census
                    .on_answer(st.receiver, st.echo_us, source.map(prefix_of));
            }
        }
        self.receivers.insert(st.receiver, r);
        stats.receivers_tracked = self.receivers.len() as u64;
        Some(outcome)
    }

    /// Admits a new receiver id (protocol.md §13.4, "Receivers admitted"),
    /// or counts why it is refused: an id first heard in a NACK is bound to
    /// that NACK's address, and caps per address, per /64 and over time
    /// keep a host reporting under made-up ids from its /64 from filling
    /// the table.
    fn admit(
        &mut self,
        now: Instant,
        source: Option<IpAddr>,
        id: u64,
        stats: &mut SenderStats,
        events: &mut VecDeque<SenderEvent>,
    ) -> bool {
        if let (Some(src), Some(&first)) = (source, self.bindings.ids.get(&id))
            && src != first
        {
            stats.feedback_rejected += 1;
            return false;
        }
        let admitted = self
            .roster
            .admit(&self.cfg, now, id, source, self.receivers.len());
        if let Err(why) = admitted {
            stats.receivers_refused += 1;
            match why {
                Refusal::Table => stats.receivers_refused_table += 1,
                Refusal::Source => stats.receivers_refused_source += 1,
                Refusal::Prefix => stats.receivers_refused_prefix += 1,
                Refusal::Rate => stats.receivers_refused_rate += 1,
            }
            // (It stays bound to its NACK's address, if any.)
            return false;
        }
        // (Its entry in the bindings' order goes when it reaches the front.)
        self.bindings.forget(id);
        stats.receiver_prefixes_heard = self.roster.prefixes_heard();
        tracing::debug!(receiver = %format_args!("{id:016x}"), "receiver joined");
        events.push_back(SenderEvent::ReceiverJoined { id });
        stats.receivers_heard += 1;
        true
    }

    /// The hold credit and stall of a receiver (`known`, or new) that
    /// reports `edge` and `complete` (protocol.md §13.4, "Stalls").
    fn credit_for(
        &mut self,
        known: Option<Tracked>,
        edge: u64,
        complete: bool,
        now: Instant,
        behind: u64,
        blocks: &Blocks,
    ) -> (Duration, bool) {
        let full = self.cfg.stall_timeout;
        match known {
            Some(r) if edge > r.edge || (complete && !r.complete) => {
                let credit = self
                    .credit_now(&r, now, behind)
                    .saturating_add(self.credit_earned(blocks, r.edge, edge))
                    .min(full);
                (credit, !complete && credit.is_zero())
            }
            Some(r) => (self.credit_now(&r, now, behind), r.stalled),
            // First heard at or behind the edge where a receiver stalled:
            // stalled from the start, until it moves (so that new ids
            // reporting the same stuck edge cannot hold the sender again).
            // Else a new id starts with the newcomers' credit ([`Newcomers`]).
            None if !complete && self.stall_floor.is_some_and(|f| edge <= f) => {
                (Duration::ZERO, true)
            }
            None if !complete => {
                let credit = match self.newcomers {
                    Some(n) => n
                        .credit
                        .saturating_add(self.credit_earned(blocks, n.edge, edge.max(n.edge)))
                        .min(full),
                    None => full,
                };
                self.newcomers = Some(Newcomers {
                    edge: self.newcomers.map_or(edge, |n| n.edge.max(edge)),
                    credit,
                    at: self.newcomers.map_or(now, |n| n.at),
                });
                (credit, credit.is_zero())
            }
            None => (full, false),
        }
    }

    /// Checks a STATUS echo (protocol.md §13.4, "GRTT"): it must name a
    /// PROBE actually sent lately, no earlier than the one this receiver's
    /// last echo named, and the hold must fit in the time since; anything
    /// else is forged or stale. The round trip, and whether it may raise
    /// the GRTT.
    fn echo(
        &self,
        r: &mut Tracked,
        st: &StatusRepr,
        now_us: u64,
        stats: &mut SenderStats,
    ) -> Option<(Duration, bool)> {
        let since = now_us.checked_sub(st.echo_us);
        if !self.probe_times.contains(&st.echo_us)
            || r.echo.is_some_and(|e| st.echo_us < e)
            || since.is_none_or(|d| (st.hold_us as u64) > d)
        {
            stats.echoes_refused += 1;
            return None;
        }
        let since = since?;
        // Queueing (in sockets, behind a decode) only adds to a sample: the
        // receiver's least over its last samples is its path, and the GRTT
        // follows the largest of those.
        let sample = Duration::from_micros(since - st.hold_us as u64);
        let least = r.rtt.sample(sample);
        if r.echo.is_none_or(|e| e != st.echo_us) {
            r.echoed = r.echoed.saturating_add(1).min(2);
        }
        r.echo = Some(st.echo_us);
        // Only a receiver that echoed two PROBEs, and that counts (neither
        // complete nor stalled), may raise the GRTT: a fresh id, or one that
        // holds nothing back, may only hold it.
        Some((least, r.echoed >= 2 && !r.complete && !r.stalled))
    }

    /// The periodic check (protocol.md §13.4, "Flow control", "Stalls"):
    /// drops receivers silent for `receiver_timeout`, then spends the
    /// credit of those that hold the sender back and declares stalled
    /// those out of it.
    pub(super) fn on_check(
        &mut self,
        now: Instant,
        behind: u64,
        stats: &mut SenderStats,
        events: &mut VecDeque<SenderEvent>,
    ) {
        self.expire(now, stats, events);
        let window = self.flow_blocks;
        // Flow control's edge a window behind: the pass is held there.
        // (Checked here, not per STATUS: the edge takes every receiver.)
        self.flow_held = self
            .flow_edge()
            .is_some_and(|e| e.saturating_add(window) <= behind);
        let flow_held = self.flow_held;
        let mut held = false;
        let (live_from, horizon) = (self.live_from, self.live_horizon);
        for (&id, r) in self.receivers.iter_mut() {
            // In a sampled group, one not asked lately is silent by rule: its
            // old report spends credit only for as long as it counted.
            // Its report counted until `horizon` after it came: that much
            // it spends, if it held the sender back.
            let counted_until = match live_from {
                Some(f) if r.last_heard < f => now.min(r.last_heard + horizon),
                _ => now,
            };
            if !r.complete && holds_back(r.edge, behind, window, flow_held) {
                let spent = counted_until.saturating_duration_since(r.credit_at);
                r.credit = r.credit.saturating_sub(spent);
                held |= !r.stalled && counted_until == now;
            }
            r.credit_at = now;
            if !r.stalled && !r.complete && r.credit.is_zero() {
                r.stalled = true;
                tracing::info!(
                    receiver = %format_args!("{id:016x}"),
                    edge = r.edge,
                    "receiver stalled: it no longer holds the sender back"
                );
                stats.receivers_stalled += 1;
                self.stall_floor = Some(self.stall_floor.map_or(r.edge, |f| f.max(r.edge)));
                events.push_back(SenderEvent::ReceiverStalled { id, edge: r.edge });
            }
        }
        if let Some(n) = &mut self.newcomers {
            if held {
                n.credit = n.credit.saturating_sub(now.saturating_duration_since(n.at));
            }
            n.at = now;
        }
    }

    /// Drops the receivers silent for `receiver_timeout`.
    fn expire(
        &mut self,
        now: Instant,
        stats: &mut SenderStats,
        events: &mut VecDeque<SenderEvent>,
    ) {
        let timeout = self.cfg.receiver_timeout;
        let dead: Vec<u64> = self
            .receivers
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.last_heard) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            tracing::info!(receiver = %format_args!("{id:016x}"), "receiver timed out");
            // One that went silent unfinished marks its edge as stuck too:
            // else ids that report once and fall silent, a new one every
            // moment, would each hold the sender for `receiver_timeout` and
            // never stall (`stall_timeout` is longer).
            if let Some(r) = self.receivers.remove(&id) {
                if !r.complete && self.live_from.is_none() {
                    self.stall_floor = Some(self.stall_floor.map_or(r.edge, |f| f.max(r.edge)));
                }
                self.roster.release(r.source);
            }
            stats.receivers_timed_out += 1;
            events.push_back(SenderEvent::ReceiverTimedOut { id });
        }
        stats.receivers_tracked = self.receivers.len() as u64;
    }

    /// What the sender left undone as it finishes: receivers stalled and
    /// not complete, and ids refused lately and never admitted since.
    pub(super) fn on_finish(&self, now: Instant, stats: &mut SenderStats) {
        stats.receivers_left_stalled = self
            .receivers
            .values()
            .filter(|r| r.stalled && !r.complete)
            .count() as u64;
        stats.receivers_left_refused = self.roster.left_refused(now, self.cfg.receiver_timeout);
    }

    /// `r`'s hold credit at `now`: what it had, less the time since, if it
    /// holds the sender back ([`holds_back`]) and is not complete.
    fn credit_now(&self, r: &Tracked, now: Instant, behind: u64) -> Duration {
        if r.complete || !holds_back(r.edge, behind, self.flow_blocks, self.flow_held) {
            return r.credit;
        }
        r.credit
            .saturating_sub(now.saturating_duration_since(r.credit_at))
    }

    /// The hold credit a receiver earns by moving its edge from block `from`
    /// to block `to` (global sequence numbers): their bytes over
    /// `min_progress`, or all of `stall_timeout` with `min_progress` 0.
    fn credit_earned(&self, blocks: &Blocks, from: u64, to: u64) -> Duration {
        let full = self.cfg.stall_timeout;
        let Some(floor) = self.progress_floor else {
            return full;
        };
        // Enough bytes for the whole credit: the count stops there, so that
        // a jump over many small objects costs no more than that.
        let cap = (floor as f64 * full.as_secs_f64()).min(u64::MAX as f64) as u64;
        let secs = blocks.bytes_between(from, to, cap) as f64 / floor as f64;
        Duration::try_from_secs_f64(secs).map_or(full, |d| d.min(full))
    }
}

/// The loss the neediest of a group probably has, from each receiver's
/// average loss p and its deviation factor s (`Tracked::loss_sd`): the
/// largest of p − (E(G) − 1)·σ (at most p), where E(G) is the expected
/// largest of G standard normal draws (one σ stays for the estimate's own
/// error), G the receivers given, and σ the smaller of s·√(p(1 − p))
/// (what the reports' spans allow, at most) and the standard deviation of
/// the G losses (what the group's reports show: the sender's average of a
/// receiver's reports is steadier than the reports, and by the spans alone
/// the correction would take 1000 receivers at 10% for 9.2%, and their
/// blocks to NACKs). Each p is an estimate: at G = 1000, 25% loss and a span
/// of 2000 DATA, the largest of the raw estimates runs 3.2 standard
/// deviations (3 points of loss) high, and proactive repair sized from it
/// overshoots the ideal code by 5%. The z of
/// [`crate::proto::repair::proactive_repair`] then covers the worst of the
/// group's draws of each block. `None` without receivers (protocol.md
/// §13.4, "Proactive repair").
///
/// With `first` (a first sizing that a later one tops up, from receivers'
/// first reports: `Sender::restage_window`), no σ stays, and σ is what
/// the spans allow alone: for a report or two they are exact, and the
/// spread of a few reports is itself noise (of three receivers at 10%, a
/// close three would have a window restaged for 11.4%).
fn neediest_loss(
    counted: impl Iterator<Item = (f64, f64)>,
    first: bool,
    group: usize,
) -> Option<f64> {
    let all: Vec<(f64, f64)> = counted.collect();
    let g = all.len() as f64;
    let mean = all.iter().map(|r| r.0).sum::<f64>() / g;
    let spread = if first {
        f64::INFINITY
    } else if all.len() > 1 {
        (all.iter().map(|r| (r.0 - mean).powi(2)).sum::<f64>() / (g - 1.0)).sqrt()
    } else {
        0.0
    };
    // One standard deviation stays, for the estimate's own error.
    let kept = if first { 0.0 } else { 1.0 };
    // In a sampled group the reports are a sample: the neediest is the
    // largest of the whole group's draws.
    let e = (expected_max_normal(all.len().max(group)) - kept).max(0.0);
    all.iter()
        .map(|&(p, s)| {
            let sd = (s * (p * (1.0 - p)).max(0.0).sqrt()).min(spread);
            (p - e * sd).max(0.0)
        })
        .reduce(f64::max)
}

/// The expected largest of `n` independent standard normal draws,
/// interpolated in ln n between computed points (0 for n ≤ 1).
fn expected_max_normal(n: usize) -> f64 {
    const POINTS: [(f64, f64); 13] = [
        (1.0, 0.0),
        (2.0, 0.5642),
        (3.0, 0.8463),
        (5.0, 1.1630),
        (10.0, 1.5388),
        (20.0, 1.8675),
        (50.0, 2.2491),
        (100.0, 2.5076),
        (1000.0, 3.2414),
        (10_000.0, 3.8516),
        (20_000.0, 4.0188),
        (50_000.0, 4.2305),
        (100_000.0, 4.3843),
    ];
    let x = (n.max(1) as f64).ln();
    let mut prev = POINTS[0];
    for &(m, e) in &POINTS[1..] {
        if (n as f64) <= m {
            let (a, b) = (prev.0.ln(), m.ln());
            return prev.1 + (e - prev.1) * (x - a) / (b - a);
        }
        prev = (m, e);
    }
    prev.1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected largest of n standard normals, between its table's
    /// points, stays within 0.02 of the integral (2.746 at 200, 3.037 at
    /// 500, 3.435 at 2000), and grows with n.
    #[test]
    fn the_expected_largest_normal_interpolates_the_integral() {
        for (n, e) in [
            (1, 0.0),
            (4, 1.0294),
            (200, 2.746),
            (500, 3.0367),
            (2000, 3.4353),
        ] {
            let got = expected_max_normal(n);
            assert!((got - e).abs() < 0.02, "n = {n}: {got}, not {e}");
        }
        let mut last = -1.0;
        for n in [0, 1, 2, 7, 30, 300, 3000, 30_000, 1_000_000] {
            assert!(expected_max_normal(n) >= last, "{n}");
            last = expected_max_normal(n);
        }
        // No receivers, no loss to size for; a lone report is taken as is.
        assert_eq!(neediest_loss(std::iter::empty(), false, 0), None);
        assert_eq!(
            neediest_loss([(0.2, 0.05)].into_iter(), false, 1),
            Some(0.2)
        );
    }

    /// A first sizing (receivers' first reports, topped up later) keeps no
    /// σ for the estimate's error and takes σ from the spans alone: three
    /// reports that happen to lie close together are still each a ratio over
    /// 1000 DATA, and their largest runs 0.85 σ high. The window's end keeps
    /// the σ (for three receivers, E(3) − 1 < 0: the largest as it is).
    #[test]
    fn a_first_sizing_takes_the_noise_off_whatever_the_spread() {
        let s = 1.0 / 1000f64.sqrt();
        let close = [(0.100, s), (0.101, s), (0.102, s)];
        let first = neediest_loss(close.into_iter(), true, 3).unwrap();
        let sd = s * (0.102f64 * 0.898).sqrt();
        let e3 = expected_max_normal(3);
        assert!((first - (0.102 - e3 * sd)).abs() < 1e-9, "{first}");
        assert_eq!(neediest_loss(close.into_iter(), false, 3), Some(0.102));
    }
}
