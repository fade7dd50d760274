//! Where the sender is and what it repeats: the carousel `Cursor` (round,
//! object, window of blocks), an object's OBJECT_INFO among its DATA
//! (`InfoSchedule`), and, with lead protection, the first object (the
//! manifest) amid later ones (`LeadRepeat`). None knows packets or objects'
//! contents: the sender asks them what is due and tells them what went out.

/// The carousel's position: round, object, and the first block of the next
/// window of `interleave` blocks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cursor {
    pub(crate) round: u32,
    pub(crate) object: usize,
    pub(crate) next_first: u32,
}

/// Where [`Cursor::step`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// To the next window of the same object.
    Window,
    /// To the next object.
    Object,
    /// Past the last object: the round is over.
    End,
}

impl Cursor {
    /// Moves on from the window that started at block `first` of the
    /// current object (of `blocks` blocks), with `objects` objects in all.
    /// Past the last object the cursor points one beyond it; the caller
    /// then stays ([`Cursor::stay_at_last`]) or goes round ([`Cursor::next_round`]).
    pub(crate) fn step(
        &mut self,
        first: u32,
        blocks: u32,
        interleave: u32,
        objects: usize,
    ) -> Step {
        let next = first + interleave;
        if next < blocks {
            self.next_first = next;
            return Step::Window;
        }
        self.next_first = 0;
        self.object += 1;
        if self.object == objects {
            Step::End
        } else {
            Step::Object
        }
    }

    /// After [`Step::End`]: stay on the last object (a first pass is over).
    pub(crate) fn stay_at_last(&mut self) {
        self.object -= 1;
    }

    /// After [`Step::End`]: the next round, from the first object.
    pub(crate) fn next_round(&mut self) {
        self.object = 0;
        self.round += 1;
    }
}

/// The OBJECT_INFO schedule of the object being sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InfoSchedule {
    /// The object being opened still needs its OBJECT_INFO first.
    pending: bool,
    /// The object whose OBJECT_INFO went out last.
    object: Option<usize>,
    /// DATA packets since then.
    since: u32,
}

impl InfoSchedule {
    pub(crate) fn new() -> Self {
        Self {
            pending: true,
            object: None,
            since: 0,
        }
    }

    /// The next object opens with its OBJECT_INFO.
    pub(crate) fn open(&mut self) {
        self.pending = true;
    }

    /// Nothing is being opened (the first pass is over).
    pub(crate) fn close(&mut self) {
        self.pending = false;
    }

    /// Whether an object is being opened.
    pub(crate) fn opening(&self) -> bool {
        self.pending
    }

    /// Whether `object`'s OBJECT_INFO is due before its next DATA packet:
    /// it is being opened, another object's went out last, or `interval`
    /// DATA packets have gone since.
    pub(crate) fn due(&self, object: usize, interval: u32) -> bool {
        self.pending || self.object != Some(object) || self.since >= interval
    }

    /// `object`'s OBJECT_INFO went out.
    pub(crate) fn sent_info(&mut self, object: usize) {
        self.pending = false;
        self.object = Some(object);
        self.since = 0;
    }

    /// A DATA packet went out.
    pub(crate) fn sent_data(&mut self) {
        self.since += 1;
    }
}

/// What the next repeat of the first object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lead {
    /// Its OBJECT_INFO.
    Info,
    /// Its source symbol number `at` (counted over its blocks in order).
    Symbol(u64),
}

/// The first object's repeats amid later objects: every `interval` DATA
/// packets of theirs, its OBJECT_INFO and its next source symbol in turn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeadRepeat {
    /// DATA packets of other objects since the last repeat.
    since: u32,
    /// Whether the next repeat is the OBJECT_INFO (else a source symbol).
    info_next: bool,
    /// Source symbols repeated so far.
    cursor: u64,
}

impl LeadRepeat {
    pub(crate) fn new() -> Self {
        Self {
            since: 0,
            info_next: true,
            cursor: 0,
        }
    }

    /// Whether a repeat is due (after `interval` DATA packets of others).
    pub(crate) fn due(&self, interval: u32) -> bool {
        self.since >= interval
    }

    /// A DATA packet of a later object went out.
    pub(crate) fn sent_other(&mut self) {
        self.since += 1;
    }

    /// The next repeat, of a first object of `total` source symbols. An
    /// empty one has no symbol: each of its repeats is its OBJECT_INFO.
    pub(crate) fn next(&mut self, total: u64) -> Lead {
        if total == 0 || std::mem::replace(&mut self.info_next, false) {
            if total == 0 {
                self.since = 0;
            }
            return Lead::Info;
        }
        self.info_next = true;
        self.since = 0;
        let at = self.cursor % total;
        self.cursor += 1;
        Lead::Symbol(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_goes_window_by_window_then_object_by_object() {
        let mut c = Cursor::default();
        // Two objects: of 5 blocks (windows of 2: 0, 2, 4) and of 1 block.
        assert_eq!(c.step(0, 5, 2, 2), Step::Window);
        assert_eq!(c.next_first, 2);
        assert_eq!(c.step(2, 5, 2, 2), Step::Window);
        assert_eq!(c.step(4, 5, 2, 2), Step::Object);
        assert_eq!((c.object, c.next_first), (1, 0));
        assert_eq!(c.step(0, 1, 2, 2), Step::End);
        c.next_round();
        assert_eq!((c.round, c.object), (1, 0));
        assert_eq!(c.step(4, 5, 2, 2), Step::Object);
        assert_eq!(c.step(0, 1, 2, 2), Step::End);
        c.stay_at_last();
        assert_eq!((c.round, c.object), (1, 1));
    }

    #[test]
    fn info_opens_each_object_and_repeats_every_interval() {
        let mut s = InfoSchedule::new();
        assert!(s.opening() && s.due(0, 4));
        s.sent_info(0);
        for _ in 0..4 {
            assert!(!s.due(0, 4));
            s.sent_data();
        }
        assert!(s.due(0, 4), "after 4 DATA packets");
        assert!(s.due(1, 4), "another object's went out last");
        s.sent_info(0);
        s.open();
        assert!(s.due(0, 4));
        s.close();
        assert!(!s.opening() && !s.due(0, 4));
    }

    #[test]
    fn the_lead_repeats_info_and_symbols_in_turn() {
        let mut l = LeadRepeat::new();
        assert!(!l.due(2));
        l.sent_other();
        l.sent_other();
        assert!(l.due(2));
        let got: Vec<Lead> = (0..5).map(|_| l.next(2)).collect();
        assert_eq!(
            got,
            [
                Lead::Info,
                Lead::Symbol(0),
                Lead::Info,
                Lead::Symbol(1),
                Lead::Info
            ]
        );
        assert!(!l.due(2), "a symbol repeat starts the count again");
        // An empty first object: only OBJECT_INFO, each a repeat.
        let mut e = LeadRepeat::new();
        e.sent_other();
        assert_eq!((e.next(0), e.next(0)), (Lead::Info, Lead::Info));
        assert!(!e.due(1));
    }
}
