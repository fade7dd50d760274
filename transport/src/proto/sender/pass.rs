//! The carousel or first pass: where it is (object, window, round), the
//! window open, the encoders and blocks it asks for, and when OBJECT_INFO
//! is due (protocol.md §13.4, "First pass"). It never reads the group: the
//! loss a window's proactive repair covers is handed in.

use super::blocks::Blocks;
use super::config::{LEAD_INFO_INTERVAL, SenderConfig};
use super::window::{Spec, Window};
use crate::proto::ObjectId;
use crate::proto::repair::RepairScheduler;
use crate::proto::schedule::{Cursor, InfoSchedule, LeadRepeat};

/// What the group asks of a window's proactive repair.
#[derive(Debug, Clone, Copy)]
pub(super) struct Demand {
    /// The loss the proactive repair covers (hybrid first pass), if any.
    pub(super) loss: Option<f64>,
    /// Receivers tracked, at least 1.
    pub(super) group: usize,
}

/// Where the carousel or first pass is.
pub(super) struct Pass {
    pub(super) cursor: Cursor,
    /// The window being sent, if one is open.
    pub(super) window: Option<Window>,
    /// When the object being sent repeats its OBJECT_INFO.
    pub(super) info: InfoSchedule,
    /// The first object's repeats amid later ones
    /// ([`SenderConfig::lead_protection`]).
    pub(super) lead: LeadRepeat,
}

impl Pass {
    pub(super) fn new() -> Self {
        Self {
            cursor: Cursor::default(),
            window: None,
            info: InfoSchedule::new(),
            lead: LeadRepeat::new(),
        }
    }

    /// (object, SBN) of the first block whose pass is not finished, while
    /// the pass goes on.
    pub(super) fn progress(&self) -> (u32, u8) {
        let first = self
            .window
            .as_ref()
            .map_or(self.cursor.next_first, |w| w.first);
        (self.cursor.object as u32, first.min(255) as u8)
    }

    /// Resumes the pass at `object`, the first of the objects added since
    /// it ended.
    pub(super) fn resume_at(&mut self, object: usize) {
        self.cursor.object = object;
        self.cursor.next_first = 0;
        self.info.open();
    }

    /// A block handed over: a window that wants its encoders asks for this
    /// one now.
    pub(super) fn on_block(&self, object: ObjectId, sbn: u8, interleave: u32, blocks: &mut Blocks) {
        if self.window.as_ref().is_some_and(|w| {
            w.encoders_asked
                && (w.first..w.first + interleave).contains(&(sbn as u32))
                && !w.asks_later(sbn)
        }) && self.cursor.object == object.0 as usize
        {
            blocks.ask_encoder(self.cursor.object, sbn);
        }
    }

    /// Whether `object`'s OBJECT_INFO goes before its next symbol.
    pub(super) fn wants_info(&self, object: usize, config: &SenderConfig) -> bool {
        let interval = if object == 0 && config.lead_protection {
            LEAD_INFO_INTERVAL.min(config.info_interval)
        } else if object == self.cursor.object
            && self.window.as_ref().is_some_and(|w| w.copies == 2)
        {
            // A copied single-symbol object: its OBJECT_INFO before each copy.
            1
        } else {
            config.info_interval
        };
        self.info.due(object, interval)
    }

    /// Opens the window that starts at block `first` of the current object:
    /// plans it, asks for the encoders it needs now and for its blocks.
    /// `lossy`: some receiver reported loss.
    pub(super) fn open_window(
        &mut self,
        first: u32,
        (config, blocks, repair): (&SenderConfig, &mut Blocks, &mut RepairScheduler),
        demand: Demand,
        lossy: bool,
    ) {
        let round = self.cursor.round;
        let object = self.cursor.object;
        let share = if round == 0 {
            config.repair_overhead
        } else {
            config.round_repair
        };
        let o = &blocks.objects[object];
        let spec = Spec {
            object: o.id.0,
            blocks: blocks.window_blocks(object, first, config.interleave),
            z: o.oti.source_blocks(),
            supplied: o.data.is_none(),
            round,
            // Replays (nack mode) make no repair symbols.
            share: if config.replays() { 0.0 } else { share },
            repairs: blocks.repairs,
            lead: object == 0 && config.lead_protection,
            copy_single: config.copy_single_symbol_objects && lossy,
            proactive: demand.loss,
            group: demand.group,
            workers: config.encoder_threads > 0,
        };
        let (window, ask) = Window::build(first, &spec, repair);
        self.window = Some(window);
        if let Some(later) = ask {
            let send_source = round == 0 || !blocks.repairs;
            self.prepare_encoders(config, blocks, (first, send_source), &later);
        }
        self.prefetch_blocks(config, blocks);
    }

    /// Whether the window open may be restaged ([`Window::may_restage`]).
    pub(super) fn may_restage(&self, repairs: bool) -> bool {
        self.window.as_ref().is_some_and(|w| w.may_restage(repairs))
    }

    /// Restages the window open for `loss` ([`Window::restage`]).
    pub(super) fn restage(
        &mut self,
        (config, blocks, repair): (&SenderConfig, &Blocks, &mut RepairScheduler),
        loss: f64,
        group: usize,
    ) {
        let object = self.cursor.object;
        let Some(w) = self.window.as_mut() else {
            return;
        };
        let window = blocks.window_blocks(object, w.first, config.interleave);
        let sizing = (loss, group, config.repair_overhead);
        let id = blocks.objects[object].id.0;
        w.restage(&window, sizing, id, repair);
    }

    /// Plans the window's proactive repair, for the loss now reported
    /// ([`Window::plan_proactive`]).
    pub(super) fn plan_proactive(
        &mut self,
        (config, blocks, repair): (&SenderConfig, &Blocks, &mut RepairScheduler),
        demand: Demand,
    ) {
        let object = self.cursor.object;
        let Some(w) = self.window.as_mut() else {
            return;
        };
        let sizing = (demand.loss, demand.group, config.repair_overhead);
        let window = blocks.window_blocks(object, w.first, config.interleave);
        let id = blocks.objects[object].id.0;
        w.plan_proactive(&window, sizing, id, repair);
    }

    /// Asks for the encoders of the window's blocks that the plan has got to.
    pub(super) fn ask_due_encoders(&mut self, blocks: &mut Blocks) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        for sbn in w.take_due_encoders() {
            blocks.ask_encoder(self.cursor.object, sbn);
        }
    }

    /// Asks for the encoders of the window's blocks (see
    /// `Window::encoders_asked`).
    pub(super) fn prepare_window_encoders(&mut self, config: &SenderConfig, blocks: &mut Blocks) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        w.encoders_asked = true;
        let first = w.first;
        let later = w.later_encoders();
        let send_source = self.cursor.round == 0 || !blocks.repairs;
        self.prepare_encoders(config, blocks, (first, send_source), &later);
    }

    /// Asks for the encoders of the blocks of the window that starts at
    /// `first` of the current object, and of the next window too when this
    /// one sends repair only (no `send_source`: its symbols go out faster
    /// than a build); but not those of `later`, asked for as the plan gets
    /// to them.
    fn prepare_encoders(
        &self,
        config: &SenderConfig,
        blocks: &mut Blocks,
        (first, send_source): (u32, bool),
        later: &[u8],
    ) {
        let object = self.cursor.object;
        let z = blocks.objects[object].oti.source_blocks();
        let last = (first + config.interleave).min(z);
        let ahead = if send_source {
            last
        } else {
            (last + config.interleave).min(z)
        };
        for sbn in first..ahead {
            if !later.contains(&(sbn as u8)) {
                blocks.ask_encoder(object, sbn as u8);
            }
        }
    }

    /// Asks for the blocks of the window and the first 4 of the next (for
    /// objects the driver supplies block by block), so that they are in by
    /// the time they are sent.
    fn prefetch_blocks(&self, config: &SenderConfig, blocks: &mut Blocks) {
        let Some(first) = self.window.as_ref().map(|w| w.first) else {
            return;
        };
        let object = self.cursor.object;
        if blocks.objects[object].data.is_some() {
            return;
        }
        let z = blocks.objects[object].oti.source_blocks();
        let end = (first + config.interleave + 4).min(z);
        for sbn in first..end {
            let _ = blocks.block_bytes(object as u32, sbn as u8);
        }
    }
}
