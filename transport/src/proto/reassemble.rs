//! `Reassembler`: a receiver's decoded blocks put back together in memory,
//! for applications (and tests) that want whole objects rather than blocks
//! at offsets. A file receiver writes blocks where they belong instead
//! (`io::sink`).

use std::collections::HashMap;

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

/// Collects [`ReceiverEvent::BlockDecoded`] bytes per object and hands the
/// object out on [`ReceiverEvent::ObjectComplete`]; a failed object's bytes
/// are dropped. Memory is the objects in progress, each at most its size
/// (which the receiver bounds by `max_object_size`).
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: HashMap<(SessionId, ObjectId), Vec<u8>>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one receiver event; returns the object it completes, if any.
    pub fn handle(&mut self, event: ReceiverEvent) -> Option<Reassembled> {
        match event {
            ReceiverEvent::BlockDecoded {
                session,
                object,
                offset,
                data,
                ..
            } => {
                let buf = self.partial.entry((session, object)).or_default();
                let start = offset as usize;
                let end = start + data.len();
                if buf.len() < end {
                    buf.resize(end, 0);
                }
                buf[start..end].copy_from_slice(&data);
                None
            }
            ReceiverEvent::ObjectComplete {
                session,
                object,
                name,
                size,
                ..
            } => {
                let mut data = self.partial.remove(&(session, object)).unwrap_or_default();
                data.resize(size as usize, 0);
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
                self.partial.remove(&(session, object));
                None
            }
            ReceiverEvent::ObjectAnnounced { .. } => None,
        }
    }

    /// Objects in progress.
    pub fn in_progress(&self) -> usize {
        self.partial.len()
    }
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
