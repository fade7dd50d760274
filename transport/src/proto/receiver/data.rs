//! DATA and OBJECT_INFO: symbols into blocks, blocks into objects, objects
//! verified and reported (protocol.md §8, §11). Feedback state is only
//! notified from here; what to ask for and when lives in `feedback`.

use std::time::{Duration, Instant};

use groupcast_fec::{FecId, Oti, Push};

use super::objects::{
    Coding, DECODING_HOLD, DecodeJob, Decoded, Info, Key, ObjectState, ObjectTable, Slot,
    object_state, reserve_of,
};
use super::{Admission, FailReason, Receiver, ReceiverEvent, RejectReason};
use crate::proto::{ObjectId, SessionId};
use crate::wire::{DataRepr, InfoRepr};

/// How long a solvable block waits for the few more of its symbols that
/// make its solve the cheap one (`BlockDecoder::cheap`: RaptorQ without its
/// GF(256) rows, about two thirds of the work). The symbols that follow a
/// block's K-th come within a few milliseconds at the rates where decoding
/// costs (16 blocks interleaved, 13 symbols more: 4 ms at 500 Mbit/s); a
/// PROBE (at every new window, and at the end of the first pass) ends every
/// wait at once.
const RIPEN_LIMIT: Duration = Duration::from_millis(5);

/// Blocks ripening at once, at most; more send the oldest to be solved.
const MAX_RIPENING: usize = 64;

impl Receiver {
    pub(super) fn handle_data(
        &mut self,
        now: Instant,
        d: DataRepr<'_>,
    ) -> Result<(), RejectReason> {
        self.accept_session(d.session)?;
        let key = (SessionId(d.session), ObjectId(d.object));
        if self.table.abandoned.contains(&key) {
            return Err(RejectReason::Abandoned);
        }
        // Every DATA of the session is a packet the path delivered, whether
        // or not it can be used yet: the loss estimate measures the path.
        // (Left uncounted, the DATA heard while the manifest was still
        // missing read as loss, and a 25% receiver that waited for it for
        // 260 packets made the sender size its proactive repair for 28%.)
        self.count_arrival(&d);
        if self.table.is_done(key) {
            self.count_data(now, key, &d);
            self.stats.duplicates += 1;
            // DATA of another FEC scheme or OTI under a completed id: a second
            // object under it, as an OBJECT_INFO of another hash would say.
            if self.table.bound.is_none()
                && self
                    .table
                    .done_hash
                    .get(&key)
                    .and_then(|h| h.1)
                    .is_some_and(|c| c != (d.fec, d.oti))
            {
                self.conflict(key);
            }
            return Ok(());
        }
        self.admit(key, d.oti.transfer_length(), None)?;
        if !self.table.objects.contains_key(&key)
            && matches!(self.config.admission, Admission::Manifest { .. })
            && self.table.bound.is_none()
        {
            // A candidate manifest is opened by its OBJECT_INFO, which names
            // its hash; its DATA is caught later.
            self.stats.symbols_deferred += 1;
            return Ok(());
        }
        self.open_object(now, key, d.fec, d.oti)?;
        self.count_data(now, key, &d);
        if self.ready_block(key, d.sbn, d.esi)? {
            self.offer(Some(now), key, d.sbn, d.esi, d.symbol)
        } else {
            Ok(())
        }
    }

    /// Notes a DATA packet's ESI, and readies its block for the symbol: an
    /// idle block gets a decoder if the limits on blocks in flight and on
    /// buffered bytes allow. `Ok(false)` when the symbol is not to be
    /// offered (the block is done, or the symbol deferred).
    fn ready_block(&mut self, key: Key, sbn: u8, esi: u32) -> Result<bool, RejectReason> {
        let Self {
            config,
            table: ObjectTable { objects, .. },
            in_flight,
            reserved,
            stats,
            ..
        } = self;
        let o = objects.get_mut(&key).expect("opened above");
        let top = &mut o.top_esi[sbn as usize];
        *top = (*top).max(esi.saturating_add(1));
        let slot = &mut o.slots[sbn as usize];
        if matches!(slot, Slot::Done) {
            stats.duplicates += 1;
            return Ok(false);
        }
        if matches!(slot, Slot::Idle) {
            let reserve = reserve_of(&o.oti, sbn);
            if *in_flight >= config.max_blocks_in_flight {
                stats.symbols_deferred += 1;
                return Ok(false);
            }
            if *reserved + reserve > config.max_buffered_bytes {
                stats.symbols_deferred += 1;
                stats.buffer_full += 1;
                return Ok(false);
            }
            let block = o
                .oti
                .block(sbn as u32)
                .expect("SBN validated by the parser");
            let decoder = config
                .codecs
                .codec(o.fec)
                .decoder(&o.oti, &block)
                .map_err(|_| RejectReason::InvalidOti)?;
            *slot = Slot::Active(decoder);
            *in_flight += 1;
            *reserved += reserve;
        }
        Ok(true)
    }

    /// Offers one symbol to a block that is active (or out to decode).
    /// `now` is `None` for symbols offered again after a failed attempt: the
    /// block then goes out again at once, without ripening.
    pub(super) fn offer(
        &mut self,
        now: Option<Instant>,
        key: Key,
        sbn: u8,
        esi: u32,
        symbol: &[u8],
    ) -> Result<(), RejectReason> {
        let offload = self.config.decode_threads > 0;
        let ripen = self.config.ripen;
        let Self {
            table: ObjectTable { objects, .. },
            stats,
            ..
        } = self;
        let Some(o) = objects.get_mut(&key) else {
            return Ok(());
        };
        let t = o.oti.symbol_size() as usize;
        let slot = &mut o.slots[sbn as usize];
        let decoder = match slot {
            Slot::Active(decoder) => decoder,
            Slot::Decoding { held, .. } => {
                if symbol.len() != t {
                    return Err(RejectReason::SymbolLength);
                }
                if held.len() < DECODING_HOLD && held.iter().all(|h| h.0 != esi) {
                    held.push((esi, symbol.to_vec()));
                    stats.buffered_bytes += t as u64;
                    stats.symbols_accepted += 1;
                } else {
                    stats.duplicates += 1;
                }
                return Ok(());
            }
            Slot::Idle | Slot::Done => {
                stats.duplicates += 1;
                return Ok(());
            }
        };
        let before = decoder.buffered_bytes() as u64;
        let pushed = if offload {
            decoder.store(esi, symbol)
        } else {
            decoder.push(esi, symbol)
        };
        let push = pushed.map_err(|e| match e {
            groupcast_fec::FecError::SymbolLength { .. } => RejectReason::SymbolLength,
            _ => RejectReason::EsiOutOfRange,
        })?;
        let after = decoder.buffered_bytes() as u64;
        stats.buffered_bytes = stats.buffered_bytes - before + after;
        match push {
            Push::Stored => stats.symbols_accepted += 1,
            Push::Duplicate | Push::AlreadyDecoded => stats.duplicates += 1,
            Push::Ready => {
                stats.symbols_accepted += 1;
                // Solvable, but more of the block's symbols are likely on
                // their way, and with a few more the solve is cheaper: it
                // ripens until then, until the next PROBE (which follows
                // every window and the first pass's end), or for
                // RIPEN_LIMIT at most.
                let ripens = now.is_some()
                    && ripen
                    && !decoder.cheap()
                    && o.oti
                        .block(sbn as u32)
                        .is_some_and(|b| b.source_symbols >= crate::proto::COSTLY_BLOCK_SYMBOLS);
                self.solvable(now.filter(|_| ripens), key, sbn);
            }
            Push::Decoded => {
                stats.symbols_accepted += 1;
                self.block_decoded(key, sbn, None);
            }
        }
        Ok(())
    }

    /// A block that became solvable: it ripens from `ripen_from`, if given
    /// (the oldest ripening block goes to be solved if too many ripen), or
    /// goes to be solved now.
    fn solvable(&mut self, ripen_from: Option<Instant>, key: Key, sbn: u8) {
        let Some(now) = ripen_from else {
            self.ship(key, sbn);
            return;
        };
        if !self.ripening.iter().any(|r| (r.0, r.1) == (key, sbn)) {
            if self.ripening.len() >= MAX_RIPENING {
                let (k, s, _) = self.ripening.remove(0);
                self.ship(k, s);
            }
            self.ripening.push((key, sbn, now + RIPEN_LIMIT));
        }
    }

    /// Sends the ripening blocks whose wait ends by `until` (all of them
    /// with `None`) to be solved now.
    pub(super) fn ship_ripening(&mut self, until: Option<Instant>) {
        while let Some(i) = self
            .ripening
            .iter()
            .position(|r| until.is_none_or(|t| r.2 <= t))
        {
            let (key, sbn, _) = self.ripening.remove(i);
            self.ship(key, sbn);
        }
    }

    /// Hands a block that holds enough symbols out to a decode job, if it is
    /// still active and undecoded.
    pub(super) fn ship(&mut self, key: Key, sbn: u8) {
        self.ripening.retain(|r| (r.0, r.1) != (key, sbn));
        let Self {
            table: ObjectTable { objects, .. },
            jobs,
            tickets,
            ..
        } = self;
        let Some(o) = objects.get_mut(&key) else {
            return;
        };
        let (verify, oti, base) = (o.verify, o.oti, o.hash_offset);
        let Some(slot) = o.slots.get_mut(sbn as usize) else {
            return;
        };
        let bytes = match slot {
            Slot::Active(decoder) if !decoder.is_decoded() => decoder.buffered_bytes() as u64,
            _ => return,
        };
        *tickets += 1;
        let ticket = *tickets;
        let Slot::Active(decoder) = std::mem::replace(
            slot,
            Slot::Decoding {
                ticket,
                bytes,
                held: Vec::new(),
            },
        ) else {
            unreachable!("slot is active here")
        };
        // A verified object's block is hashed by its job too.
        let hash = verify
            .then(|| oti.block(sbn as u32))
            .flatten()
            .map(|b| (oti.transfer_length(), base, b.offset));
        jobs.push_back(DecodeJob {
            key,
            sbn,
            ticket,
            decoder,
            hash,
        });
    }

    /// A block's decoder (active in its slot) has decoded: hands the block
    /// out, hashes it (with what a decode job computed of it, `out`),
    /// releases the decoder, and completes the object if it was the last.
    pub(super) fn block_decoded(&mut self, key: Key, sbn: u8, out: Option<Decoded>) {
        let Self {
            table: ObjectTable { objects, .. },
            in_flight,
            reserved,
            events,
            stats,
            ..
        } = self;
        let Some(o) = objects.get_mut(&key) else {
            return;
        };
        let slot = &mut o.slots[sbn as usize];
        let Slot::Active(decoder) = slot else {
            return;
        };
        let held = decoder.buffered_bytes() as u64;
        let (data, cvs) = match out {
            Some(out) => out,
            None => (
                decoder.take_decoded().expect("decoded just now"),
                Vec::new(),
            ),
        };
        // The decoder is released; only its output lives on, in the event.
        stats.buffered_bytes -= held.min(stats.buffered_bytes);
        *slot = Slot::Done;
        *in_flight -= 1;
        *reserved -= reserve_of(&o.oti, sbn);
        stats.blocks_decoded += 1;
        o.decoded_blocks += 1;
        let block = o
            .oti
            .block(sbn as u32)
            .expect("SBN validated by the parser");
        if o.verify {
            let hb = o.hasher.buffered_bytes() as u64;
            o.hasher.write_with(block.offset, &data, &cvs);
            let ha = o.hasher.buffered_bytes() as u64;
            stats.buffered_bytes = stats.buffered_bytes - hb + ha;
        }
        events.push_back(ReceiverEvent::BlockDecoded {
            session: key.0,
            object: key.1,
            offset: block.offset,
            sbn,
            data,
        });
        self.try_complete(key);
    }

    /// Whether the object may be received at all: listed by the bound
    /// manifest with this size (and `hash`, from an OBJECT_INFO), or allowed
    /// by the admission in force.
    pub(super) fn admit(
        &self,
        key: Key,
        size: u64,
        info: Option<(&[u8; 32], &str)>,
    ) -> Result<(), RejectReason> {
        if let Some(bound) = &self.table.bound {
            let Some(b) = bound.get(&key.1) else {
                return Err(RejectReason::UnexpectedObject);
            };
            if b.size != size || info.is_some_and(|(h, n)| *h != b.hash || n != b.name) {
                return Err(RejectReason::ManifestMismatch);
            }
            return Ok(());
        }
        match self.config.admission {
            Admission::Open => Ok(()),
            Admission::Manifest { expect, max_size } => {
                if key.1 != ObjectId(0) {
                    // Not refused: the manifest may simply not be here yet.
                    return Err(RejectReason::AwaitingManifest);
                }
                if size > max_size {
                    return Err(RejectReason::ObjectTooLarge);
                }
                if let (Some(want), Some((h, _))) = (expect, info)
                    && *h != want
                {
                    return Err(RejectReason::WrongTransfer);
                }
                Ok(())
            }
        }
    }

    /// Finds or opens the state of an object, enforcing the limits. Under
    /// [`Admission::Manifest`], a new candidate beyond `max_sessions` evicts
    /// the oldest.
    pub(super) fn open_object(
        &mut self,
        now: Instant,
        key: Key,
        fec: FecId,
        oti: Oti,
    ) -> Result<&mut ObjectState, RejectReason> {
        if !self.table.objects.contains_key(&key) {
            if oti.transfer_length() > self.config.max_object_size {
                return Err(RejectReason::ObjectTooLarge);
            }
            let largest = oti.max_block_symbols() as u64 * oti.symbol_size() as u64;
            if largest > self.config.max_block_bytes {
                return Err(RejectReason::BlockTooLarge);
            }
            let candidates = matches!(self.config.admission, Admission::Manifest { .. })
                && self.table.bound.is_none();
            if candidates && self.table.objects.len() >= self.config.max_sessions.max(1) {
                let oldest = self
                    .table
                    .objects
                    .iter()
                    .min_by_key(|(_, o)| o.created)
                    .map(|(k, _)| *k);
                if let Some(old) = oldest {
                    self.stats.candidates_evicted += 1;
                    self.fail(old, FailReason::Evicted);
                }
            }
            if self.table.objects.len() >= self.config.max_objects {
                return Err(RejectReason::TooManyObjects);
            }
        }
        let prefill = self
            .table
            .bound
            .as_ref()
            .and_then(|b| b.get(&key.1))
            .map(|b| Info {
                hash: b.hash,
                name: b.name.clone(),
            });
        self.created += 1;
        object_state(
            &mut self.table,
            &self.config,
            now,
            key,
            fec,
            oti,
            prefill,
            self.created,
        )
    }

    pub(super) fn handle_info(
        &mut self,
        now: Instant,
        i: InfoRepr<'_>,
    ) -> Result<(), RejectReason> {
        self.accept_session(i.session)?;
        let key = (SessionId(i.session), ObjectId(i.object));
        if let Some(f) = self.fb.sessions.get_mut(&key.0) {
            f.earn();
        }
        if self.table.abandoned.contains(&key) {
            return Err(RejectReason::Abandoned);
        }
        // A bound manifest fixes each object's hash: there, another one is
        // a `manifest_mismatch`, refused below.
        if self.table.bound.is_none()
            && self
                .table
                .done_hash
                .get(&key)
                .is_some_and(|h| h.0 != i.hash)
        {
            self.conflict(key);
            return Err(RejectReason::InfoMismatch);
        }
        if self.table.is_done(key) {
            return Ok(());
        }
        self.admit(key, i.oti.transfer_length(), Some((&i.hash, i.name)))?;
        let o = self.open_object(now, key, i.fec, i.oti)?;
        match &o.info {
            Some(info) if info.hash != i.hash || info.name != i.name => {
                return Err(RejectReason::InfoMismatch);
            }
            Some(_) => {}
            None => {
                o.info = Some(Info {
                    hash: i.hash,
                    name: i.name.to_owned(),
                });
                self.events.push_back(ReceiverEvent::ObjectAnnounced {
                    session: key.0,
                    object: key.1,
                    size: i.oti.transfer_length(),
                    name: i.name.to_owned(),
                });
                // The OBJECT_INFO we lacked, for an object the sender is past:
                // the answer to a NEED_INFO, as repair DATA is to a NACK
                // (`count_data`), so our NACKs are heard.
                if let Some(f) = self.fb.sessions.get_mut(&key.0)
                    && key.1.0 < f.progress.0
                {
                    f.nack.unanswered = None;
                }
            }
        }
        self.stats.info_received += 1;
        self.try_complete(key);
        Ok(())
    }

    pub(super) fn try_complete(&mut self, key: Key) {
        let Some(o) = self.table.objects.get(&key) else {
            return;
        };
        if o.decoded_blocks < o.oti.source_blocks() {
            return;
        }
        let Some(info) = &o.info else {
            return;
        };
        if o.verify {
            let Some(hash) = o.hasher.finish() else {
                return;
            };
            if hash != info.hash {
                self.fail(key, FailReason::HashMismatch);
                return;
            }
        }
        let o = self.remove(key).expect("present");
        let info = o.info.expect("checked above");
        self.record_complete(
            key,
            o.oti.transfer_length(),
            info.hash,
            info.name,
            Some((o.fec, o.oti)),
        );
    }

    /// Remembers a verified object as complete and says so.
    pub(super) fn record_complete(
        &mut self,
        key: Key,
        size: u64,
        hash: [u8; 32],
        name: String,
        coding: Option<Coding>,
    ) {
        tracing::debug!(
            session = %format_args!("{:016x}", key.0.0),
            object = key.1.0,
            size,
            name = %name.escape_debug(),
            "object complete"
        );
        self.stats.objects_completed += 1;
        if self.completed_order.len() >= self.config.completed_history.max(1)
            && let Some(old) = self.completed_order.pop_front()
        {
            self.table.completed.remove(&old);
        }
        self.table.completed.insert(key);
        self.completed_order.push_back(key);
        if self.table.done_order.len() >= self.config.completed_history.max(1)
            && let Some(old) = self.table.done_order.pop_front()
        {
            self.table.done_hash.remove(&old);
        }
        if self.table.done_hash.insert(key, (hash, coding)).is_none() {
            self.table.done_order.push_back(key);
        }
        if key.1.0 == self.table.floor(key.0) {
            self.table.raise_floor(key.0, key.1.0, self.created);
        }
        if let Some(f) = self.fb.sessions.get_mut(&key.0) {
            f.on_complete(key.1.0, self.now);
        }
        self.events.push_back(ReceiverEvent::ObjectComplete {
            session: key.0,
            object: key.1,
            size,
            hash,
            name,
        });
    }

    /// Two objects under one id (`FailReason::Conflict`): said once per
    /// object; the session is never reported complete from then on.
    pub(super) fn conflict(&mut self, key: Key) {
        self.table.done_hash.remove(&key);
        self.mark_lossy(key.0);
        tracing::warn!(
            session = %format_args!("{:016x}", key.0.0),
            object = key.1.0,
            "two different objects under one id: one of them is forged"
        );
        self.events.push_back(ReceiverEvent::ObjectFailed {
            session: key.0,
            object: key.1,
            reason: FailReason::Conflict,
        });
    }

    pub(super) fn remove(&mut self, key: Key) -> Option<ObjectState> {
        let o = self.table.objects.remove(&key)?;
        self.table.idle.remove(&(o.last_activity, key));
        let mut freed = o.hasher.buffered_bytes() as u64;
        for (sbn, slot) in o.slots.iter().enumerate() {
            let held = match slot {
                Slot::Active(d) => d.buffered_bytes() as u64,
                // Its job comes back to no object, and is dropped.
                Slot::Decoding { bytes, held, .. } => {
                    bytes + held.iter().map(|h| h.1.len() as u64).sum::<u64>()
                }
                Slot::Idle | Slot::Done => continue,
            };
            freed += held;
            self.in_flight -= 1;
            self.reserved -= reserve_of(&o.oti, sbn as u8);
        }
        self.stats.buffered_bytes -= freed.min(self.stats.buffered_bytes);
        Some(o)
    }

    pub(super) fn fail(&mut self, key: Key, reason: FailReason) {
        if self.remove(key).is_some() {
            tracing::debug!(
                session = %format_args!("{:016x}", key.0.0),
                object = key.1.0,
                ?reason,
                "object failed"
            );
            self.stats.objects_failed += 1;
            self.events.push_back(ReceiverEvent::ObjectFailed {
                session: key.0,
                object: key.1,
                reason,
            });
        }
    }
}
