//! The object table: each object's blocks (slots), its decode jobs, its
//! verification state, and the per-session floors, completions and
//! abandonments (protocol.md §8, §11). Pure state and lookups on it: what
//! a packet does to the table lives in `data`, feedback in `feedback`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use groupcast_fec::{BlockDecoder, FecId, Oti};

use super::need::{BlockNeed, Need};
use super::{BoundObject, ReceiverConfig, RejectReason};
use crate::proto::hash::{TreeHasher, UnitCv, unit_cvs};
use crate::proto::{ObjectId, SessionId};

pub(super) enum Slot {
    Idle,
    Active(Box<dyn BlockDecoder>),
    /// Out as the [`DecodeJob`] of this ticket. `bytes` is what its decoder
    /// held when it left (still counted as buffered); `held` are symbols that
    /// arrived meanwhile, kept for a failed attempt (at most
    /// [`DECODING_HOLD`]).
    Decoding {
        ticket: u64,
        bytes: u64,
        held: Vec<(u32, Vec<u8>)>,
    },
    Done,
}

/// Symbols kept for a block while its decode job is out: a failed attempt
/// (about 1 in 100 from exactly K symbols) needs one or two more.
pub(super) const DECODING_HOLD: usize = 16;

/// A block that holds enough symbols to be solved, for the driver to run
/// ([`DecodeJob::run`], on any thread) and hand back to
/// [`Receiver::handle_decoded`](super::Receiver::handle_decoded). See [`ReceiverConfig::decode_threads`].
pub struct DecodeJob {
    pub(super) key: Key,
    pub(super) sbn: u8,
    pub(super) ticket: u64,
    pub(super) decoder: Box<dyn BlockDecoder>,
    /// The object's length, where it starts in its file (a part), and the
    /// block's offset in it, if the object is verified: the job then hashes
    /// what it decoded too.
    pub(super) hash: Option<(u64, Option<u64>, u64)>,
}

impl DecodeJob {
    /// Solves the block, and hashes it for the object's verification: CPU
    /// work (a RaptorQ decode, BLAKE3 of the block's whole 64 KiB units),
    /// fit for any thread, which the receiving thread is then spared.
    pub fn run(mut self) -> DecodedBlock {
        let decoded = self.decoder.attempt();
        let mut out = None;
        if decoded
            && let Some((len, base, offset)) = self.hash
            && let Some(data) = self.decoder.take_decoded()
        {
            let cvs = unit_cvs(len, base, offset, &data);
            out = Some((data, cvs));
        }
        DecodedBlock {
            job: self,
            decoded,
            out,
        }
    }
}

impl std::fmt::Debug for DecodeJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeJob")
            .field("object", &self.key.1.0)
            .field("sbn", &self.sbn)
            .finish()
    }
}

/// A [`DecodeJob`] that ran: decoded, or (rarely) still short of symbols.
#[derive(Debug)]
pub struct DecodedBlock {
    pub(super) job: DecodeJob,
    pub(super) decoded: bool,
    /// The block, taken out of its decoder, and its units' chaining values.
    pub(super) out: Option<Decoded>,
}

/// A decoded block's bytes and the chaining values of its whole units.
pub(super) type Decoded = (Vec<u8>, Vec<UnitCv>);

pub(super) struct Info {
    pub(super) hash: [u8; 32],
    pub(super) name: String,
}

pub(super) struct ObjectState {
    pub(super) fec: FecId,
    pub(super) oti: Oti,
    pub(super) info: Option<Info>,
    pub(super) slots: Vec<Slot>,
    /// Per block, the highest ESI seen plus one (0: none yet).
    pub(super) top_esi: Vec<u32>,
    pub(super) decoded_blocks: u32,
    pub(super) hasher: TreeHasher,
    /// Where the object starts in its file, for a part of one (its bound
    /// manifest line says): it is hashed as that subtree.
    pub(super) hash_offset: Option<u64>,
    /// Whether the codec carries data, so the object can be hashed (false
    /// only for the model codec).
    pub(super) verify: bool,
    pub(super) last_activity: Instant,
    /// Order of creation, for evicting the oldest candidate manifest.
    pub(super) created: u64,
}

impl ObjectState {
    /// Marks the object active at `now`: it goes idle `idle_timeout` later
    /// (its place in the table's `idle` order moves with it).
    pub(super) fn touch(&mut self, idle: &mut BTreeSet<(Instant, Key)>, key: Key, now: Instant) {
        if self.last_activity != now {
            idle.remove(&(self.last_activity, key));
            idle.insert((now, key));
            self.last_activity = now;
        }
    }
}

pub(super) type Key = (SessionId, ObjectId);

/// An object's FEC scheme and OTI, as its DATA carry them.
pub(super) type Coding = (FecId, Oti);

/// The receiver's object table, apart from its feedback state, so that one
/// session's feedback (`SessionFb`) can be changed while what the receiver
/// lacks is read: no re-lookup of the session is needed.
#[derive(Default)]
pub(super) struct ObjectTable {
    pub(super) objects: HashMap<Key, ObjectState>,
    pub(super) completed: HashSet<Key>,
    /// Per session, the object before which every one is done: completed in
    /// a row from object 0, or skipped ([`Receiver::skip_before`](super::Receiver::skip_before)). With the
    /// stamp of its last move, to evict the stalest past [`MAX_FLOORS`], and
    /// whether the session is never to be reported complete (objects lost,
    /// [`Receiver::skip_lost`](super::Receiver::skip_lost), or a conflict): such an entry gives way only
    /// to another such, so that fresh sessions cannot push the mark out.
    pub(super) floors: HashMap<SessionId, (u32, u64, bool)>,
    /// The objects of the bound manifest, once [`Receiver::bind`](super::Receiver::bind) was called.
    pub(super) bound: Option<HashMap<ObjectId, BoundObject>>,
    /// Each object in progress by when it was last heard from: the first
    /// goes idle first (a timer per object, kept in order).
    pub(super) idle: BTreeSet<(Instant, Key)>,
    /// Objects the application gave up ([`Receiver::abandon`](super::Receiver::abandon)), oldest
    /// first, at most `completed_history`: never taken again, never
    /// reported complete.
    pub(super) abandoned: HashSet<Key>,
    pub(super) abandoned_order: VecDeque<Key>,
    /// The hash, FEC scheme and OTI of each object completed lately (the
    /// last `completed_history`), to tell a second object under its id.
    pub(super) done_hash: HashMap<Key, ([u8; 32], Option<Coding>)>,
    pub(super) done_order: VecDeque<Key>,
    /// Where a floor goes that has no room ([`ObjectTable::floor_entry`]).
    pub(super) spare: (u32, u64, bool),
}

/// Sessions whose floor ([`ObjectTable::floors`]) is kept at once.
pub(super) const MAX_FLOORS: usize = 1024;

impl ObjectTable {
    /// Whether any object of `session` was heard: the receiver holds or
    /// completed some, or its floor is above 0.
    pub(super) fn heard_of(&self, session: SessionId) -> bool {
        self.floor(session) > 0
            || self.objects.keys().any(|k| k.0 == session)
            || self.completed.iter().any(|k| k.0 == session)
    }

    /// How many objects the bound manifest's session has (its highest
    /// object, plus one), if a manifest is bound.
    pub(super) fn bound_objects(&self) -> Option<u32> {
        self.bound
            .as_ref()
            .map(|b| b.keys().map(|o| o.0 + 1).max().unwrap_or(0))
    }

    /// Whether an object is done: completed, or below its session's floor.
    pub(super) fn is_done(&self, key: Key) -> bool {
        self.floor(key.0) > key.1.0 || self.completed.contains(&key)
    }

    pub(super) fn floor(&self, session: SessionId) -> u32 {
        self.floors.get(&session).map_or(0, |f| f.0)
    }

    /// Raises `session`'s floor to at least `to`, then past every object
    /// completed in a row from there (which `completed` then need not hold).
    pub(super) fn raise_floor(&mut self, session: SessionId, to: u32, stamp: u64) {
        let mut at = self.floor(session).max(to);
        // Object ids end at u32::MAX: its completion stays in `completed`.
        while at < u32::MAX && self.completed.remove(&(session, ObjectId(at))) {
            at += 1;
        }
        if at == 0 {
            return;
        }
        let f = self.floor_entry(session, stamp, false);
        f.0 = at;
        f.1 = stamp;
    }

    /// `session`'s floor entry, made if missing: past [`MAX_FLOORS`] the
    /// stalest entry that is not lossy gives way, or (for a `lossy` one, if
    /// every entry is) the stalest lossy one. A plain entry with no room
    /// left is kept apart and forgotten (its completions stay in
    /// `completed`).
    pub(super) fn floor_entry(
        &mut self,
        session: SessionId,
        stamp: u64,
        lossy: bool,
    ) -> &mut (u32, u64, bool) {
        if !self.floors.contains_key(&session) && self.floors.len() >= MAX_FLOORS {
            let stalest = |want: bool| {
                self.floors
                    .iter()
                    .filter(|(_, f)| f.2 == want)
                    .min_by_key(|(_, f)| f.1)
                    .map(|(s, _)| *s)
            };
            match stalest(false).or_else(|| if lossy { stalest(true) } else { None }) {
                Some(s) => {
                    self.floors.remove(&s);
                }
                None => {
                    self.spare = (0, stamp, false);
                    return &mut self.spare;
                }
            }
        }
        self.floors.entry(session).or_insert((0, stamp, false))
    }

    /// Whether `session` is never to be reported complete.
    pub(super) fn is_lossy(&self, session: SessionId) -> bool {
        self.floors.get(&session).is_some_and(|f| f.2)
    }
    /// What this receiver lacks of one block (or of an object's info), if
    /// anything, ignoring holdoffs.
    pub(super) fn need_of(&self, session: SessionId, object: u32, sbn: u8) -> Option<Need> {
        let key = (session, ObjectId(object));
        if self.is_done(key) {
            return None;
        }
        let Some(o) = self.objects.get(&key) else {
            return Some(Need::Info { object });
        };
        if o.info.is_none() && o.decoded_blocks == o.oti.source_blocks() {
            return Some(Need::Info { object });
        }
        let block = o.oti.block(sbn as u32)?;
        let k = block.source_symbols;
        let (need, ranges) = match &o.slots[sbn as usize] {
            // Out to decode: it holds enough, and says so if it did not.
            Slot::Done | Slot::Decoding { .. } => return None,
            Slot::Idle => (
                k,
                if o.fec == FecId::NoCode {
                    vec![(0, k)]
                } else {
                    Vec::new()
                },
            ),
            Slot::Active(d) => match d.missing() {
                Some(r) => (r.iter().map(|x| x.1).sum(), r),
                None => (d.needed(), Vec::new()),
            },
        };
        (need > 0).then_some(Need::Block(BlockNeed {
            object,
            sbn,
            need,
            ranges,
            k,
            sent: o.top_esi[sbn as usize],
        }))
    }

    /// Whether the block at `at` (an [`ObjectTable::edge`]) is out to be
    /// solved: it holds all the symbols it needs, and waits for this
    /// receiver's CPU alone.
    pub(super) fn solving(&self, session: SessionId, at: (u32, u8)) -> bool {
        self.objects
            .get(&(session, ObjectId(at.0)))
            .and_then(|o| o.slots.get(at.1 as usize))
            .is_some_and(|s| matches!(s, Slot::Decoding { .. }))
    }

    /// (object, SBN) of this receiver's window edge: the first block not yet
    /// decoded and handed out.
    pub(super) fn edge(&self, session: SessionId, objects: u32) -> (u32, u8) {
        for object in self.floor(session)..objects {
            let key = (session, ObjectId(object));
            if self.is_done(key) {
                continue;
            }
            return match self.objects.get(&key) {
                Some(o) => {
                    let sbn = o
                        .slots
                        .iter()
                        .position(|s| !matches!(s, Slot::Done))
                        .unwrap_or(0);
                    (object, sbn.min(255) as u8)
                }
                None => (object, 0),
            };
        }
        (objects, 0)
    }
}

/// Bytes a block in flight may hold at most: its source symbols in place,
/// fewer than K repair symbols beside them, and two partial hash units.
pub(super) fn reserve_of(oti: &Oti, sbn: u8) -> u64 {
    let k = oti.block(sbn as u32).map_or(0, |b| b.source_symbols) as u64;
    2 * k * oti.symbol_size() as u64 + 2 * super::hash::UNIT
}

/// Finds or opens the state of an object, enforcing the limits.
#[allow(clippy::too_many_arguments)]
pub(super) fn object_state<'a>(
    table: &'a mut ObjectTable,
    config: &ReceiverConfig,
    now: Instant,
    key: Key,
    fec: FecId,
    oti: Oti,
    info: Option<Info>,
    created: u64,
) -> Result<&'a mut ObjectState, RejectReason> {
    let ObjectTable {
        objects,
        idle,
        bound,
        ..
    } = table;
    let o = match objects.entry(key) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(v) => {
            idle.insert((now, key));
            let verify = config.codecs.codec(fec).carries_data();
            // (Bound lines passed `subtree_fits` for their size, which the
            // OTI must match to get here.)
            let hash_offset = bound
                .as_ref()
                .and_then(|b| b.get(&key.1))
                .filter(|b| b.size == oti.transfer_length())
                .and_then(|b| b.hash_offset);
            v.insert(ObjectState {
                fec,
                oti,
                created,
                info,
                slots: (0..oti.source_blocks()).map(|_| Slot::Idle).collect(),
                top_esi: vec![0; oti.source_blocks() as usize],
                decoded_blocks: 0,
                // Without data there is nothing to hash, and no per-unit state to hold.
                hasher: if verify {
                    TreeHasher::new_at(oti.transfer_length(), hash_offset)
                } else {
                    TreeHasher::new(0)
                },
                hash_offset,
                verify,
                last_activity: now,
            })
        }
    };
    if o.oti != oti || o.fec != fec {
        return Err(RejectReason::OtiMismatch);
    }
    o.touch(idle, key, now);
    Ok(o)
}
