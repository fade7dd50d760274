//! NACKs taken in (protocol.md §13.4, "Answering NACKs"): which entries
//! are answered, and the repair they queue. Nack mode replays the symbols
//! named lost; hybrid mode sends fresh repair, whose encoders workers may
//! build while NACKs gather.

use std::time::{Duration, Instant};

use groupcast_fec::BlockInfo;

use super::blocks::Blocks;
use super::config::{SenderConfig, SenderStats};
use super::group::Group;
use crate::proto::repair::RepairScheduler;
use crate::wire::{self, NackEntry, NackRepr};

/// The parts a NACK touches.
pub(super) struct Nacks<'a> {
    pub(super) config: &'a SenderConfig,
    pub(super) blocks: &'a mut Blocks,
    pub(super) repair: &'a mut RepairScheduler,
    pub(super) group: &'a mut Group,
    pub(super) stats: &'a mut SenderStats,
    /// How long NACKs gather before their repair is queued.
    pub(super) aggregation: Duration,
    /// The receivers' average loss, for the margin of topped-up repair.
    pub(super) loss: f64,
    /// The first block whose first pass is not finished, while the first
    /// pass goes on.
    pub(super) progress: Option<(u32, u8)>,
    /// When the first pass ended, if it has.
    pub(super) pass_end: Option<Instant>,
}

impl Nacks<'_> {
    /// Queues the repair a NACK admitted asks for. Returns whether its
    /// receiver counts and still lacks something: only such a NACK
    /// restarts the linger (a forged NACK, under any id, cannot hold the
    /// sender).
    pub(super) fn handle(&mut self, now: Instant, n: &NackRepr) -> bool {
        let agg = self.aggregation;
        for e in &n.entries {
            let Some(block) = self.entry(now, e) else {
                continue;
            };
            let key = (e.object, e.sbn);
            let workers = self.config.encoder_threads > 0;
            let replays = self.config.replays();
            let may_build = self.group.budget.build.has_any();
            if !self.repair.gathering(key)
                && !replays
                && workers
                && !self.blocks.encoders.has(key)
                && may_build
            {
                // A worker builds the encoder while NACKs gather; the build is
                // charged as one on the sending thread would be. (A block not
                // handed over yet is asked for now, and built when sent.)
                if let Some(bytes) = self.blocks.block_bytes(e.object, e.sbn) {
                    let o = &self.blocks.objects[e.object as usize];
                    self.blocks.encoders.prepare(key, &o.oti, &block, &bytes);
                    self.group
                        .charge_build(self.blocks, (e.object, e.sbn), self.stats);
                }
            } else if self.blocks.objects[e.object as usize].data.is_none() {
                // Its bytes, asked for while NACKs gather.
                let _ = self.blocks.block_bytes(e.object, e.sbn);
            }
            let k = block.source_symbols;
            self.repair.request(key, k, now + agg, e.need, &e.ranges);
        }
        self.group.counts(n.receiver, now, self.pass_end)
    }

    /// The block a NACK entry asks repair of, if it is to be answered: it
    /// names a block that exists and is not retired, asks for what the block
    /// has, and the block's repair is not queued or just sent. An entry that
    /// asks for OBJECT_INFO queues it instead. Counts the entries ignored.
    fn entry(&mut self, now: Instant, e: &NackEntry) -> Option<BlockInfo> {
        let Some(o) = self.blocks.objects.get(e.object as usize) else {
            self.stats.nack_entries_invalid += 1;
            return None;
        };
        if e.object < self.blocks.retired {
            self.stats.nack_entries_ignored += 1;
            return None;
        }
        if e.flags & wire::feedback::NACK_NEED_INFO != 0 {
            self.group.budget.queue_info(e.object);
            return None;
        }
        let Some(block) = o.oti.block(e.sbn as u32) else {
            self.stats.nack_entries_invalid += 1;
            return None;
        };
        let k = block.source_symbols;
        // Replays (nack mode) name the symbols lost.
        let replays = self.config.replays();
        if (replays && e.ranges.is_empty())
            || e.ranges
                .iter()
                .any(|&(f, c)| f as u64 + c as u64 > k as u64)
            || e.need == 0
            || e.need > k
        {
            self.stats.nack_entries_invalid += 1;
            return None;
        }
        let key = (e.object, e.sbn);
        // Receivers ask only for blocks behind the first pass (the PROBE's
        // progress point); a request for one the pass has not reached is
        // forged (or follows a forged PROBE), and its answer would come
        // anyway.
        let ahead = self.progress.is_some_and(|p| key >= p);
        if ahead {
            self.stats.nack_entries_ignored += 1;
            return None;
        }
        if self.repair.answered(key, now) {
            // Hybrid: more than the repair answers is topped up at once.
            if !self.repair.top_up(key, e.need, self.loss) {
                self.stats.nack_entries_ignored += 1;
            }
            return None;
        }
        Some(block)
    }
}
