//! The window plan: which symbols of a window of `interleave` blocks go
//! out in what order (protocol.md §7, §13.4 "First pass" and "Proactive
//! repair"), given the loss its proactive repair must cover and the size of
//! the group. Its repair symbols' ESIs come from the repair scheduler. It
//! never reads the group or a block's bytes: what it needs of them is
//! handed in ([`Spec`], closures for the blocks held).

use std::collections::VecDeque;

use groupcast_fec::BlockInfo;

use crate::proto::encoders::BlockBytes;
use crate::proto::repair::{RepairScheduler, proactive_repair};

/// What a window is planned from.
pub(super) struct Spec {
    /// The object's id.
    pub(super) object: u32,
    /// The window's blocks.
    pub(super) blocks: Vec<BlockInfo>,
    /// The object's source blocks.
    pub(super) z: u32,
    /// The driver hands the object's blocks over one by one.
    pub(super) supplied: bool,
    /// The round (0: the first pass).
    pub(super) round: u32,
    /// Share-based repair of each block (× K): 0 with no-code replays.
    pub(super) share: f64,
    /// The FEC scheme makes repair symbols.
    pub(super) repairs: bool,
    /// The object is the first under `lead_protection`.
    pub(super) lead: bool,
    /// A single-symbol object goes out twice (`copy_single_symbol_objects`
    /// with loss reported).
    pub(super) copy_single: bool,
    /// The loss the proactive repair covers (hybrid first pass).
    pub(super) proactive: Option<f64>,
    /// Receivers tracked (at least 1).
    pub(super) group: usize,
    /// Encoder workers build the encoders.
    pub(super) workers: bool,
}

pub(super) struct Window {
    pub(super) first: u32,
    pub(super) plan: VecDeque<(u8, u32)>,
    /// Symbols of the plan passed over because the driver had not handed
    /// their block over yet, by block (`sbn - first`), in plan order; no
    /// slots for an object held whole.
    deferred: Vec<VecDeque<u32>>,
    /// The slot of `deferred` looked at first next: the blocks take turns.
    next_deferred: usize,
    /// Hybrid first pass: the proactive repair is still to be sized (from
    /// the reports in by the time the window's planned symbols are out) and
    /// planned.
    pub(super) proactive_due: bool,
    /// Proactive repair symbols already in `plan`, by block (`sbn - first`):
    /// planned with the source symbols when the window opened with loss
    /// reported, so that [`Window::plan_proactive`] adds only what later
    /// reports ask for beyond them.
    proactive_planned: Vec<u32>,
    /// How many times the plan holds each source symbol (more than once:
    /// its OBJECT_INFO goes before each copy).
    pub(super) copies: usize,
    /// The encoders its repair needs have been asked for. A hybrid first
    /// pass at zero reported loss asks for none; the first report of loss
    /// asks for them at once, while the window's source symbols go out, so
    /// that its proactive repair does not wait on builds.
    pub(super) encoders_asked: bool,
    /// Blocks whose encoders are asked for later, as the plan gets to them:
    /// (the plan's length at which to ask, SBN), latest-asked last. A
    /// staggered window asks for each block's encoder half a window before
    /// its first repair symbol rather than all at its opening, so that the
    /// encoders of the window before stay in the cache while the NACKs for
    /// its last blocks come in (see `encoder_requests`).
    encoders_due: VecDeque<(usize, u8)>,
}

/// Where [`Window::front_held`] took a symbol from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pick {
    Plan,
    Deferred(usize),
}

impl Window {
    /// Plans the window that starts at block `first`: its source symbols
    /// (round 0, or every round without repair symbols), in copies where
    /// protection asks, and its repair. With the encoders its repair needs
    /// to be asked for now, also the SBNs of those asked for later instead
    /// (`Some`).
    pub(super) fn build(
        first: u32,
        s: &Spec,
        repair: &mut RepairScheduler,
    ) -> (Window, Option<Vec<u8>>) {
        let blocks = &s.blocks;
        let send_source = s.round == 0 || !s.repairs;
        let copies = Self::copies(s);
        // Share-based repair of each block (and the first object's lead
        // protection), planned after the source symbols, round-robin.
        let shared: Vec<u32> = blocks
            .iter()
            .map(|b| {
                let k = b.source_symbols;
                (k as f64 * s.share).ceil() as u32 + if s.lead { k.div_ceil(2) + 3 } else { 0 }
            })
            .collect();
        // A hybrid first pass with loss reported plans its proactive repair
        // (and the share-based) with the source symbols, each block's whole
        // run staggered (see `plan_staggered_window`).
        let proactive_planned: Vec<u32> = match s.proactive {
            Some(loss) if send_source && s.repairs && copies == 1 => blocks
                .iter()
                .zip(&shared)
                .map(|(b, &sent)| {
                    proactive_repair(b.source_symbols, loss, s.group).saturating_sub(sent)
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut plan = VecDeque::new();
        let mut encoders_due = VecDeque::new();
        let sized_repair;
        if proactive_planned.iter().any(|&n| n > 0) {
            let counts: Vec<u32> = shared
                .iter()
                .zip(&proactive_planned)
                .map(|(a, b)| a + b)
                .collect();
            sized_repair = true;
            plan_staggered_window(repair, s.object, blocks, &counts, &mut plan);
            if s.workers {
                encoders_due = encoder_requests(blocks, &plan);
            }
        } else {
            if send_source {
                plan_source(blocks, copies, &mut plan);
            }
            sized_repair = s.repairs && shared.iter().any(|&n| n > 0);
            if s.repairs {
                plan_fresh_repair(repair, s.object, blocks, &shared, &mut plan);
            }
        }
        let mut window = Window {
            first,
            plan,
            deferred: vec![VecDeque::new(); if s.supplied { blocks.len() } else { 0 }],
            next_deferred: 0,
            proactive_due: s.repairs && s.proactive.is_some(),
            proactive_planned,
            copies,
            encoders_asked: !s.repairs,
            encoders_due,
        };
        // Encoders ahead for the proactive repair too, once losses are known
        // (or, failing that, as soon as they are: `Sender::handle_status`).
        let lossy = s.proactive.is_some_and(|p| p > 0.0);
        if !(s.repairs && (s.share > 0.0 || sized_repair || lossy)) {
            return (window, None);
        }
        window.encoders_asked = true;
        let len = window.plan.len();
        while window.encoders_due.front().is_some_and(|d| d.0 >= len) {
            window.encoders_due.pop_front();
        }
        let later = window.later_encoders();
        (window, Some(later))
    }

    /// How many times the window's plan holds each source symbol: without
    /// repair symbols, the first object's protection is two more copies of
    /// its source symbols; a single-symbol object goes twice where asked.
    fn copies(s: &Spec) -> usize {
        let single = s.z == 1 && s.blocks.first().is_some_and(|b| b.source_symbols == 1);
        if !s.repairs && s.lead {
            3
        } else if single && s.round == 0 && s.copy_single {
            2
        } else {
            1
        }
    }

    /// Whether symbols are left to send, planned or passed over.
    pub(super) fn pending(&self) -> bool {
        !self.plan.is_empty() || self.deferred.iter().any(|d| !d.is_empty())
    }

    /// The SBNs whose encoders are asked for as the plan gets to them.
    pub(super) fn later_encoders(&self) -> Vec<u8> {
        self.encoders_due.iter().map(|d| d.1).collect()
    }

    /// Whether block `sbn`'s encoder waits for the plan to get to it.
    pub(super) fn asks_later(&self, sbn: u8) -> bool {
        self.encoders_due.iter().any(|d| d.1 == sbn)
    }

    /// The SBNs whose encoders the plan has got to (see
    /// [`Window::encoders_due`]), no longer due.
    pub(super) fn take_due_encoders(&mut self) -> Vec<u8> {
        let len = self.plan.len();
        let mut due = Vec::new();
        while let Some(&(at, sbn)) = self.encoders_due.front() {
            if len > at {
                break;
            }
            self.encoders_due.pop_front();
            due.push(sbn);
        }
        due
    }

    /// The window's next symbol whose block the sender holds (`held` gives
    /// its bytes, or asks for them), and where it is taken from. Symbols of
    /// blocks the driver has not handed over yet are passed over into
    /// `deferred`, up to `interleave` of them a call, so that the pass goes
    /// on from the blocks held while the driver reads the rest, instead of
    /// idling, and losing its pacing, for each read; once their block is
    /// in, passed-over symbols go first, the blocks taking turns. `None` if
    /// nothing within reach is held.
    pub(super) fn front_held(
        &mut self,
        interleave: u32,
        mut held: impl FnMut(u8) -> Option<BlockBytes>,
    ) -> Option<(u8, u32, BlockBytes, Pick)> {
        let slots = self.deferred.len();
        let start = self.next_deferred;
        for k in 0..slots {
            let slot = (start + k) % slots;
            let Some(&esi) = self.deferred[slot].front() else {
                continue;
            };
            let sbn = (self.first as usize + slot) as u8;
            if let Some(bytes) = held(sbn) {
                self.next_deferred = (slot + 1) % slots;
                return Some((sbn, esi, bytes, Pick::Deferred(slot)));
            }
        }
        for _ in 0..=interleave.max(1) {
            let (sbn, esi) = *self.plan.front()?;
            if let Some(bytes) = held(sbn) {
                return Some((sbn, esi, bytes, Pick::Plan));
            }
            let slot = (sbn as u32).checked_sub(self.first)? as usize;
            let deferred = self.deferred.get_mut(slot)?;
            deferred.push_back(esi);
            self.plan.pop_front();
        }
        None
    }

    /// Takes the symbol [`Window::front_held`] gave off the plan.
    pub(super) fn take(&mut self, pick: Pick) {
        match pick {
            Pick::Plan => self.plan.pop_front().map(|_| ()),
            Pick::Deferred(slot) => self.deferred[slot].pop_front().map(|_| ()),
        };
    }

    /// Whether the window may be restaged ([`Window::restage`]): it plans
    /// repair at its end, none is planned yet, its source symbols go once,
    /// and every symbol still to go is in the plan.
    pub(super) fn may_restage(&self, repairs: bool) -> bool {
        repairs
            && self.proactive_due
            && !self.proactive_planned.iter().any(|&n| n > 0)
            && self.copies == 1
            && !self.plan.is_empty()
            && !self.deferred.iter().any(|d| !d.is_empty())
    }

    /// Restages a window that opened before any loss was measured, once the
    /// receivers have measured theirs, for `loss` (protocol.md §13.4,
    /// "Proactive repair"). Such a window sends its source symbols
    /// interleaved over its blocks and sizes its proactive repair once they
    /// are out, so that every block becomes decodable in its last few
    /// milliseconds; in a transfer of one window (5 MB at 50 Mbit/s to
    /// three receivers on two shared cores) their decodes then crowded into
    /// its tail. What is left of each block's symbols becomes its run, with
    /// the proactive repair the loss now reported asks for (as when a window
    /// opens with loss reported), and the runs are laid out as
    /// [`plan_staggered_window`] does. The window's end still tops the
    /// repair up for the reports in by then ([`Window::plan_proactive`]).
    pub(super) fn restage(
        &mut self,
        blocks: &[BlockInfo],
        (loss, group, share): (f64, usize, f64),
        object: u32,
        repair: &mut RepairScheduler,
    ) {
        let counts = proactive_counts(blocks, loss, group, share, &[]);
        if counts.iter().all(|&n| n == 0) {
            return;
        }
        let first = self.first;
        let mut runs = vec![Vec::new(); blocks.len()];
        for &(sbn, esi) in &self.plan {
            let Some(run) = (sbn as u32)
                .checked_sub(first)
                .and_then(|i| runs.get_mut(i as usize))
            else {
                return;
            };
            run.push(esi);
        }
        for ((run, b), &count) in runs.iter_mut().zip(blocks).zip(&counts) {
            let k = b.source_symbols;
            run.extend((0..count).map(|_| repair.fresh_esi((object, b.sbn), k)));
        }
        tracing::debug!(first, loss, group, "window restaged");
        let mut plan = VecDeque::new();
        lay_out_staggered(blocks, &runs, &mut plan);
        self.plan = plan;
        self.proactive_planned = counts;
    }

    /// Plans the window's proactive repair once its planned symbols are out:
    /// for each block, what [`proactive_repair`] gives for `loss` (`None`:
    /// none) in a group of `group`, less the share-based (`share` × K) and
    /// proactive repair already planned, as fresh symbols, staggered.
    pub(super) fn plan_proactive(
        &mut self,
        blocks: &[BlockInfo],
        (loss, group, share): (Option<f64>, usize, f64),
        object: u32,
        repair: &mut RepairScheduler,
    ) {
        self.proactive_due = false;
        // Planned once per window: what went with the source symbols is not
        // needed after this.
        let planned = std::mem::take(&mut self.proactive_planned);
        let Some(loss) = loss else {
            return;
        };
        tracing::debug!(first = self.first, loss, group, "proactive repair sized");
        let counts = proactive_counts(blocks, loss, group, share, &planned);
        let mut plan = VecDeque::new();
        plan_staggered_repair(repair, object, blocks, &counts, &mut plan);
        self.plan = plan;
    }
}

/// Plans the source symbols of `blocks`, `copies` times over, interleaved:
/// symbol i of each block, then i + 1.
fn plan_source(blocks: &[BlockInfo], copies: usize, plan: &mut VecDeque<(u8, u32)>) {
    let max_k = blocks.iter().map(|b| b.source_symbols).max().unwrap_or(0);
    for i in (0..max_k).cycle().take(max_k as usize * copies) {
        for b in blocks {
            if i < b.source_symbols {
                plan.push_back((b.sbn, i));
            }
        }
    }
}

/// Queues `counts[i]` fresh repair symbols of each block, staggered: the
/// i-th of the window's n blocks spreads its symbols evenly over the first
/// (i + 1) / n of the repair, so that the blocks become decodable one after
/// another rather than all at its end. (Interleaved evenly, every block
/// completed with the window's last symbol, and the receivers' decoders
/// all started then: on a host whose cores are shared, the last window's
/// decodes were most of a transfer's tail.) Each block's symbols still
/// spread over a span, and every block's over the first 1/n, so a burst
/// still falls on several blocks.
fn plan_staggered_repair(
    repair: &mut RepairScheduler,
    object: u32,
    blocks: &[BlockInfo],
    counts: &[u32],
    plan: &mut VecDeque<(u8, u32)>,
) {
    let n = blocks.len().max(1) as f64;
    let mut slots: Vec<(f64, usize, u8, u32)> =
        Vec::with_capacity(counts.iter().sum::<u32>() as usize);
    for (i, (b, &count)) in blocks.iter().zip(counts).enumerate() {
        let span = (i + 1) as f64 / n;
        for j in 0..count {
            let at = (j + 1) as f64 / count as f64 * span;
            let esi = repair.fresh_esi((object, b.sbn), b.source_symbols);
            slots.push((at, i, b.sbn, esi));
        }
    }
    slots.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    plan.extend(slots.into_iter().map(|(_, _, sbn, esi)| (sbn, esi)));
}

/// Plans a hybrid first pass's window with its repair: each block's run is
/// its source symbols, then `counts[i]` fresh repair symbols. The first half
/// of every run goes out interleaved over the blocks (the window's first
/// half), then the blocks' second halves one block after another, so that
/// block i of n becomes decodable at about 1/2 + (i + 1) / 2n of the window.
/// (Source symbols interleaved over the whole window, with the repair after
/// them, made every block decodable in the window's last few milliseconds:
/// with three receivers on two shared cores, the last window's decodes were
/// 50-80 ms of a 1 s transfer's tail.) A burst in the first half is spread
/// over every block; one in the second falls on one or two, and NACKs
/// repair what the proactive repair does not cover.
fn plan_staggered_window(
    repair: &mut RepairScheduler,
    object: u32,
    blocks: &[BlockInfo],
    counts: &[u32],
    plan: &mut VecDeque<(u8, u32)>,
) {
    let runs: Vec<Vec<u32>> = blocks
        .iter()
        .zip(counts)
        .map(|(b, &count)| {
            let k = b.source_symbols;
            (0..k)
                .chain((0..count).map(|_| repair.fresh_esi((object, b.sbn), k)))
                .collect()
        })
        .collect();
    lay_out_staggered(blocks, &runs, plan);
}

/// The proactive repair each of `blocks` still needs for `loss` in a group of
/// `group` ([`crate::proto::repair::proactive_repair`]), less what it was planned
/// already: its share-based repair (`share` × K) and `planned[i]` (none
/// where `planned` is shorter).
fn proactive_counts(
    blocks: &[BlockInfo],
    loss: f64,
    group: usize,
    share: f64,
    planned: &[u32],
) -> Vec<u32> {
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let k = b.source_symbols;
            let sent = (k as f64 * share).ceil() as u32 + planned.get(i).copied().unwrap_or(0);
            proactive_repair(k, loss, group).saturating_sub(sent)
        })
        .collect()
}

/// Lays each block's run (`runs[i]`, the ESIs of `blocks[i]` in order) onto
/// `plan` as [`plan_staggered_window`] does: the first half of every run
/// interleaved over the blocks, then the second halves one block after
/// another.
fn lay_out_staggered(blocks: &[BlockInfo], runs: &[Vec<u32>], plan: &mut VecDeque<(u8, u32)>) {
    let mut first: Vec<(f64, usize, u32)> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let half = run.len().div_ceil(2);
        for (j, &esi) in run[..half].iter().enumerate() {
            first.push(((j + 1) as f64 / half as f64, i, esi));
        }
    }
    first.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    plan.extend(first.into_iter().map(|(_, i, esi)| (blocks[i].sbn, esi)));
    for (b, run) in blocks.iter().zip(runs) {
        let half = run.len().div_ceil(2);
        plan.extend(run[half..].iter().map(|&esi| (b.sbn, esi)));
    }
}

/// When to ask for each block's encoder in a staggered window's `plan`
/// ([`plan_staggered_window`]): half a window (the first half's length)
/// before the block's first repair symbol, as (the plan's length then, SBN),
/// in the order asked. All at the window's opening, the window's requests
/// would evict the window before's encoders from the cache (it holds one window
/// and four blocks) while NACKs for its last blocks were still to come, and
/// those would be built again; asked this way, the blocks of the window before
/// leave it one by one over the first half, and the one worker builds them
/// in the order needed, each with half a window to spare.
fn encoder_requests(blocks: &[BlockInfo], plan: &VecDeque<(u8, u32)>) -> VecDeque<(usize, u8)> {
    let total = plan.len();
    let base = blocks.first().map_or(0, |b| b.sbn as usize);
    let mut runs = vec![0usize; blocks.len()];
    let mut first_repair: Vec<Option<usize>> = vec![None; blocks.len()];
    for (i, &(sbn, esi)) in plan.iter().enumerate() {
        let Some(slot) = (sbn as usize).checked_sub(base) else {
            continue;
        };
        let (Some(b), Some(run), Some(f)) = (
            blocks.get(slot),
            runs.get_mut(slot),
            first_repair.get_mut(slot),
        ) else {
            continue;
        };
        *run += 1;
        if f.is_none() && esi >= b.source_symbols {
            *f = Some(i);
        }
    }
    // The first half: half of every block's run.
    let lead: usize = runs.iter().map(|r| r.div_ceil(2)).sum();
    let mut due: Vec<(usize, u8)> = blocks
        .iter()
        .zip(first_repair)
        .filter_map(|(b, f)| f.map(|at| (total - at.saturating_sub(lead), b.sbn)))
        .collect();
    due.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    due.into()
}

/// Plans `counts[i]` fresh repair symbols of each of `blocks` (of `object`)
/// onto `plan`, round-robin over the blocks, so that a burst of loss is
/// spread over them: a window's share-based repair.
fn plan_fresh_repair(
    repair: &mut RepairScheduler,
    object: u32,
    blocks: &[BlockInfo],
    counts: &[u32],
    plan: &mut VecDeque<(u8, u32)>,
) {
    for i in 0..counts.iter().copied().max().unwrap_or(0) {
        for (b, &n) in blocks.iter().zip(counts) {
            if i < n {
                plan.push_back((b.sbn, repair.fresh_esi((object, b.sbn), b.source_symbols)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Staggered proactive repair: each block's symbols come in ESI order,
    /// block i's last one by (i + 1) / n of the plan, so the blocks become
    /// decodable one after another; and every block has symbols in the first
    /// part of the plan (a burst there falls on all of them).
    #[test]
    fn proactive_repair_is_staggered_across_the_window() {
        let blocks: Vec<BlockInfo> = (0..4u8)
            .map(|sbn| BlockInfo {
                sbn,
                source_symbols: 100,
                offset: 0,
                len: 0,
            })
            .collect();
        let counts = [20u32; 4];
        let mut repair = RepairScheduler::new(false, 1 << 20, 2);
        let mut plan = VecDeque::new();
        plan_staggered_repair(&mut repair, 0, &blocks, &counts, &mut plan);
        assert_eq!(plan.len(), 80);
        let plan: Vec<(u8, u32)> = plan.into_iter().collect();
        let last: Vec<usize> = (0..4u8)
            .map(|sbn| plan.iter().rposition(|&(b, _)| b == sbn).unwrap())
            .collect();
        assert!(last.windows(2).all(|w| w[0] < w[1]), "{last:?}");
        assert!(last[0] < 40, "block 0 complete early: {last:?}");
        assert_eq!(last[3], 79);
        for sbn in 0..4u8 {
            let esis: Vec<u32> = plan.iter().filter(|p| p.0 == sbn).map(|p| p.1).collect();
            assert_eq!(esis, (100..120).collect::<Vec<_>>(), "fresh, in order");
            assert!(plan[..20].iter().any(|p| p.0 == sbn), "block {sbn} early");
        }
    }
}
