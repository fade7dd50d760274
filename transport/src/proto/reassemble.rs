//! `Reassembler`: a receiver's decoded blocks put back together in memory,
//! for applications (and tests) that want whole objects rather than blocks
//! at offsets. A file receiver writes blocks where they belong instead
//! (`io::sink`).
//!
//! Blocks are not verified until their object completes (the receiver
//! checks the object's BLAKE3 hash as a whole), so what a reassembler holds
//! is whatever the network sent: it keeps only the blocks that arrived, each
//! as it came, never a buffer of the size an OBJECT_INFO or OTI claims, and
//! counts what it holds per session so that its owner can bound it
//! ([`Reassembler::held_bytes`], [`Reassembler::drop_object`]).

use std::collections::{BTreeMap, HashMap};

use super::{ObjectId, ReceiverEvent, SessionId};

/// A whole object, verified by the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// Its session.
    pub session: SessionId,
    /// Its object id.
    pub object: ObjectId,
    /// Its name, from OBJECT_INFO.
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// One object's blocks so far, by offset.
#[derive(Debug, Default)]
struct Partial {
    blocks: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
}

/// Collects [`ReceiverEvent::BlockDecoded`] bytes per object and hands the
/// object out on [`ReceiverEvent::ObjectComplete`]; a failed object's bytes
/// are dropped. Memory is the blocks that arrived of objects in progress
/// ([`Reassembler::held_bytes`]): nothing is allocated for a block that did
/// not come, whatever size the object claims.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: HashMap<(SessionId, ObjectId), Partial>,
    per_session: HashMap<SessionId, usize>,
    held: usize,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one receiver event; returns the object it completes, if any.
    /// A completion whose blocks do not tile the object (a block beyond its
    /// size, or one missing) hands out nothing: the receiver emits a
    /// completion only after every block decoded and the hash matched, so
    /// that happens only after [`Reassembler::drop_object`].
    pub fn handle(&mut self, event: ReceiverEvent) -> Option<Reassembled> {
        match event {
            ReceiverEvent::BlockDecoded {
                session,
                object,
                offset,
                data,
                ..
            } => {
                let len = data.len();
                let p = self.partial.entry((session, object)).or_default();
                let old = p.blocks.insert(offset, data).map_or(0, |b| b.len());
                p.bytes = p.bytes - old + len;
                self.release(session, old);
                self.held += len;
                *self.per_session.entry(session).or_default() += len;
                None
            }
            ReceiverEvent::ObjectComplete {
                session,
                object,
                name,
                size,
                ..
            } => {
                let p = self.take(session, object).unwrap_or_default();
                let data = tile(p, size)?;
                Some(Reassembled {
                    session,
                    object,
                    name,
                    data,
                })
            }
            ReceiverEvent::ObjectFailed {
                session, object, ..
            } => {
                self.take(session, object);
                None
            }
            ReceiverEvent::ObjectAnnounced { .. } => None,
        }
    }

    /// Drops what is held of one object (its owner's budget is spent).
    pub fn drop_object(&mut self, session: SessionId, object: ObjectId) {
        self.take(session, object);
    }

    /// Objects in progress.
    pub fn in_progress(&self) -> usize {
        self.partial.len()
    }

    /// Bytes of blocks held, over all objects.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Bytes of blocks held of `session`'s objects.
    pub fn held_of(&self, session: SessionId) -> usize {
        self.per_session.get(&session).copied().unwrap_or(0)
    }

    fn take(&mut self, session: SessionId, object: ObjectId) -> Option<Partial> {
        let p = self.partial.remove(&(session, object))?;
        self.release(session, p.bytes);
        Some(p)
    }

    fn release(&mut self, session: SessionId, bytes: usize) {
        self.held -= bytes;
        if let Some(n) = self.per_session.get_mut(&session) {
            *n -= bytes;
            if *n == 0 {
                self.per_session.remove(&session);
            }
        }
    }
}

/// The object's bytes from its blocks, which must lie end to end from 0 to
/// `size`; `None` if they do not.
fn tile(p: Partial, size: u64) -> Option<Vec<u8>> {
    if u64::try_from(p.bytes).ok()? != size {
        return None;
    }
    let mut data = Vec::with_capacity(p.bytes);
    for (offset, block) in p.blocks {
        if offset != data.len() as u64 {
            return None;
        }
        data.extend_from_slice(&block);
    }
    Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailReason;

    fn block(object: u32, offset: u64, data: &[u8]) -> ReceiverEvent {
        ReceiverEvent::BlockDecoded {
            session: SessionId(1),
            object: ObjectId(object),
            offset,
            sbn: 0,
            data: data.to_vec(),
        }
    }

    fn complete(object: u32, size: u64) -> ReceiverEvent {
        ReceiverEvent::ObjectComplete {
            session: SessionId(1),
            object: ObjectId(object),
            size,
            hash: [0; 32],
            name: format!("o{object}"),
        }
    }

    #[test]
    fn blocks_in_any_order_make_the_object_and_failures_are_dropped() {
        let mut r = Reassembler::new();
        assert_eq!(r.handle(block(0, 3, b"def")), None);
        assert_eq!(r.handle(block(1, 0, b"xx")), None);
        assert_eq!(r.handle(block(0, 0, b"abc")), None);
        assert_eq!(r.in_progress(), 2);
        let done = r.handle(complete(0, 6)).unwrap();
        assert_eq!((done.name.as_str(), &done.data[..]), ("o0", &b"abcdef"[..]));
        let failed = ReceiverEvent::ObjectFailed {
            session: SessionId(1),
            object: ObjectId(1),
            reason: FailReason::Idle,
        };
        assert_eq!(r.handle(failed), None);
        assert_eq!(r.in_progress(), 0);
        // An empty object completes with no block.
        assert_eq!(r.handle(complete(2, 0)).unwrap().data, Vec::<u8>::new());
    }
}
