//! Feed frames (protocol.md §14.1): the bytes of each object of a feed.
//!
//! Every object of a feed is one frame: a batch of messages, a piece of the
//! feed's byte stream, or its end. All integers are big-endian:
//!
//! ```text
//! MESSAGES:  Kind=1 (1) | First (8) | Count (4) | Count × ( Length (4) | Length bytes )
//! STREAM:    Kind=2 (1) | Offset (8) | the stream's bytes from Offset on
//! END:       Kind=3 (1) | Stream length (8) | Messages (8)
//! ```
//!
//! [`Frame`] is a view whose getters cannot panic once
//! [`Frame::new_checked`] has passed; [`FrameRepr`] is the parsed, fully
//! validated form, with [`FrameRepr::parse`] and [`FrameRepr::emit`]. A
//! publisher fills its open frame in place: [`start_messages`] and
//! [`push_message`], closed by [`Frame::set_count`], or [`start_stream`] and
//! the stream's bytes appended.
//!
//! Nothing in this module panics on any input: every length, count, sequence
//! number and offset is checked before it meets arithmetic (protocol.md
//! §14.1).

use std::ops::Range;

use super::{put, read_u32, read_u64};

/// The Kind field (protocol.md §14.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A batch of messages.
    Messages = 1,
    /// A piece of the feed's byte stream.
    Stream = 2,
    /// The end of the feed.
    End = 3,
}

impl FrameKind {
    /// The kind a Kind byte names, if it names one.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Messages),
            2 => Some(Self::Stream),
            3 => Some(Self::End),
            _ => None,
        }
    }

    /// Bytes of the kind's fixed fields, Kind included.
    pub fn header_len(self) -> usize {
        match self {
            Self::Messages => MESSAGES_HEADER,
            Self::Stream => STREAM_HEADER,
            Self::End => END_LEN,
        }
    }
}

/// Bytes before a batch's first message: Kind, First, Count.
pub const MESSAGES_HEADER: usize = 1 + 8 + 4;
/// Bytes before each message of a batch: its Length.
pub const MESSAGE_HEADER: usize = 4;
/// Bytes before a stream piece's data: Kind, Offset.
pub const STREAM_HEADER: usize = 1 + 8;
/// An END frame's length: Kind, Stream length, Messages.
pub const END_LEN: usize = 1 + 8 + 8;
/// The longest message a batch carries: its Length field is 4 bytes.
pub const MAX_MESSAGE_LEN: usize = u32::MAX as usize;

/// Field offsets, from the start of the frame.
pub mod field {
    use std::ops::Range;
    /// Kind, in every frame.
    pub const KIND: usize = 0;
    /// MESSAGES: the sequence number of the batch's first message.
    pub const FIRST: Range<usize> = 1..9;
    /// MESSAGES: messages in the batch.
    pub const COUNT: Range<usize> = 9..13;
    /// STREAM: where the piece's bytes start in the stream.
    pub const OFFSET: Range<usize> = 1..9;
    /// END: the stream's total length.
    pub const STREAM_LEN: Range<usize> = 1..9;
    /// END: the number of messages sent.
    pub const MESSAGES: Range<usize> = 9..17;
    /// Each message of a batch: its Length, from the message's start.
    pub const LENGTH: Range<usize> = 0..4;
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Shorter than its kind's fixed fields (or empty: no Kind).
    #[error("frame truncated")]
    Truncated,
    /// A Kind other than 1, 2 or 3.
    #[error("unknown frame kind")]
    UnknownKind,
    /// An END frame of other than [`END_LEN`] bytes, or a batch whose
    /// messages run past the frame's end or stop short of it.
    #[error("frame length does not match its fields")]
    BadLength,
    /// A batch of no messages.
    #[error("batch of no messages")]
    NoMessages,
    /// First + Count, or Offset + the piece's length, past 2^64 − 1.
    #[error("sequence number or offset past 2^64 - 1")]
    Overflow,
    /// A message longer than [`MAX_MESSAGE_LEN`].
    #[error("message too long")]
    MessageTooLong,
    /// The emit buffer is too small for the frame.
    #[error("buffer too small")]
    BufferTooSmall,
}

/// A view of a frame's fields.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks; getters may then panic. Use
    /// [`Frame::new_checked`] on untrusted input.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`Frame::check`].
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let f = Self { buffer };
        f.check()?;
        Ok(f)
    }

    /// Checks the Kind, and that the kind's fixed fields are there (an END
    /// frame: exactly). After it succeeds no getter can panic.
    pub fn check(&self) -> Result<(), FrameError> {
        let b = self.buffer.as_ref();
        let kind = b.first().ok_or(FrameError::Truncated)?;
        let kind = FrameKind::from_u8(*kind).ok_or(FrameError::UnknownKind)?;
        if b.len() < kind.header_len() {
            return Err(FrameError::Truncated);
        }
        if kind == FrameKind::End && b.len() != END_LEN {
            return Err(FrameError::BadLength);
        }
        Ok(())
    }

    /// The Kind, if it names one.
    pub fn kind(&self) -> Option<FrameKind> {
        FrameKind::from_u8(self.buffer.as_ref()[field::KIND])
    }

    /// MESSAGES: First.
    pub fn first(&self) -> u64 {
        read_u64(self.buffer.as_ref(), field::FIRST)
    }

    /// MESSAGES: Count.
    pub fn count(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::COUNT)
    }

    /// STREAM: Offset.
    pub fn offset(&self) -> u64 {
        read_u64(self.buffer.as_ref(), field::OFFSET)
    }

    /// END: Stream length.
    pub fn stream_len(&self) -> u64 {
        read_u64(self.buffer.as_ref(), field::STREAM_LEN)
    }

    /// END: Messages.
    pub fn messages(&self) -> u64 {
        read_u64(self.buffer.as_ref(), field::MESSAGES)
    }

    /// Where the bytes after the fixed fields lie: a batch's messages, a
    /// piece's data, nothing after an END.
    fn payload_range(&self) -> Range<usize> {
        let len = self.buffer.as_ref().len();
        let header = self.kind().map_or(len, FrameKind::header_len);
        header.min(len)..len
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// The bytes after the fixed fields: a batch's messages (each its
    /// Length, then its bytes), a piece's data, nothing after an END.
    pub fn payload(&self) -> &'a [u8] {
        let r = self.payload_range();
        &self.buffer.as_ref()[r]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the Kind.
    pub fn set_kind(&mut self, kind: FrameKind) {
        self.buffer.as_mut()[field::KIND] = kind as u8;
    }

    /// MESSAGES: sets First.
    pub fn set_first(&mut self, first: u64) {
        put(self.buffer.as_mut(), field::FIRST, &first.to_be_bytes());
    }

    /// MESSAGES: sets Count (closing a batch filled by [`push_message`]).
    pub fn set_count(&mut self, count: u32) {
        put(self.buffer.as_mut(), field::COUNT, &count.to_be_bytes());
    }

    /// STREAM: sets Offset.
    pub fn set_offset(&mut self, offset: u64) {
        put(self.buffer.as_mut(), field::OFFSET, &offset.to_be_bytes());
    }

    /// END: sets Stream length.
    pub fn set_stream_len(&mut self, stream_len: u64) {
        put(
            self.buffer.as_mut(),
            field::STREAM_LEN,
            &stream_len.to_be_bytes(),
        );
    }

    /// END: sets Messages.
    pub fn set_messages(&mut self, messages: u64) {
        put(
            self.buffer.as_mut(),
            field::MESSAGES,
            &messages.to_be_bytes(),
        );
    }

    /// The bytes after the fixed fields, to write.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let r = self.payload_range();
        &mut self.buffer.as_mut()[r]
    }
}

/// A MESSAGES frame's batch, checked: at least one message, First + Count
/// within 2^64 − 1, and messages that fill the frame exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    first: u64,
    count: u32,
    body: &'a [u8],
}

impl<'a> Batch<'a> {
    /// `count` messages numbered from `first`, as `body` holds them (each
    /// its Length, then its bytes), checked as [`FrameRepr::parse`] checks.
    pub fn new(first: u64, count: u32, body: &'a [u8]) -> Result<Self, FrameError> {
        if count == 0 {
            return Err(FrameError::NoMessages);
        }
        first
            .checked_add(u64::from(count))
            .ok_or(FrameError::Overflow)?;
        let mut messages = Messages {
            rest: body,
            left: count,
        };
        for _ in 0..count {
            messages.next().ok_or(FrameError::BadLength)?;
        }
        if !messages.rest.is_empty() {
            return Err(FrameError::BadLength);
        }
        Ok(Self { first, count, body })
    }

    /// The sequence number of the first message.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Messages in the batch, at least one.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The sequence number after the batch's last message: First + Count.
    pub fn after(&self) -> u64 {
        // Checked when the batch was made: it does not saturate.
        self.first.saturating_add(u64::from(self.count))
    }

    /// The messages, in order, each with its sequence number.
    pub fn messages(&self) -> impl Iterator<Item = (u64, &'a [u8])> + use<'a> {
        (self.first..).zip(Messages {
            rest: self.body,
            left: self.count,
        })
    }
}

/// The messages of a batch body, each its Length then its bytes; ends early
/// where a Length runs past the body.
struct Messages<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Messages<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        let (len, rest) = self.rest.split_first_chunk::<MESSAGE_HEADER>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (msg, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        Some(msg)
    }
}

/// A STREAM frame's piece, checked: Offset + its length within 2^64 − 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    offset: u64,
    data: &'a [u8],
}

impl<'a> Piece<'a> {
    /// The stream's bytes `data` from `offset` on, checked as
    /// [`FrameRepr::parse`] checks.
    pub fn new(offset: u64, data: &'a [u8]) -> Result<Self, FrameError> {
        u64::try_from(data.len())
            .ok()
            .and_then(|len| offset.checked_add(len))
            .ok_or(FrameError::Overflow)?;
        Ok(Self { offset, data })
    }

    /// Where the bytes start in the stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Where the bytes end in the stream: Offset + their length.
    pub fn end(&self) -> u64 {
        // Checked when the piece was made: it does not saturate.
        self.offset.saturating_add(self.data.len() as u64)
    }
}

/// A parsed, validated frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRepr<'a> {
    /// A batch of messages.
    Messages(Batch<'a>),
    /// A piece of the stream.
    Stream(Piece<'a>),
    /// The end of the feed.
    End {
        /// The stream's total length.
        stream_len: u64,
        /// Messages sent.
        messages: u64,
    },
}

impl<'a> FrameRepr<'a> {
    /// Parses and validates a frame (protocol.md §14.1): its Kind and fixed
    /// fields ([`Frame::check`]), then a batch's messages or a piece's
    /// length. Never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let f = Frame::new_checked(bytes)?;
        match f.kind().ok_or(FrameError::UnknownKind)? {
            FrameKind::Messages => {
                Batch::new(f.first(), f.count(), f.payload()).map(Self::Messages)
            }
            FrameKind::Stream => Piece::new(f.offset(), f.payload()).map(Self::Stream),
            FrameKind::End => Ok(Self::End {
                stream_len: f.stream_len(),
                messages: f.messages(),
            }),
        }
    }

    /// The frame's kind.
    pub fn kind(&self) -> FrameKind {
        match self {
            Self::Messages(_) => FrameKind::Messages,
            Self::Stream(_) => FrameKind::Stream,
            Self::End { .. } => FrameKind::End,
        }
    }

    /// Bytes [`FrameRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::Messages(b) => MESSAGES_HEADER + b.body.len(),
            Self::Stream(p) => STREAM_HEADER + p.data.len(),
            Self::End { .. } => END_LEN,
        }
    }

    /// Writes the frame into `buf` and returns its length. (A frame can only
    /// be made checked, so it is one [`FrameRepr::parse`] takes.)
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, FrameError> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(FrameError::BufferTooSmall)?;
        self.write(buf);
        Ok(len)
    }

    /// The frame's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0; self.buffer_len()];
        self.write(&mut buf);
        buf
    }

    /// Writes the frame into `buf`, exactly [`FrameRepr::buffer_len`] bytes.
    fn write(&self, buf: &mut [u8]) {
        let mut f = Frame::new_unchecked(buf);
        f.set_kind(self.kind());
        match self {
            Self::Messages(b) => {
                f.set_first(b.first);
                f.set_count(b.count);
                f.payload_mut().copy_from_slice(b.body);
            }
            Self::Stream(p) => {
                f.set_offset(p.offset);
                f.payload_mut().copy_from_slice(p.data);
            }
            Self::End {
                stream_len,
                messages,
            } => {
                f.set_stream_len(*stream_len);
                f.set_messages(*messages);
            }
        }
    }
}

/// Starts a MESSAGES frame at the end of `out` (a publisher's open frame,
/// empty): its fixed fields, First `first` and Count 0. [`push_message`]
/// appends its messages and [`Frame::set_count`] closes it.
pub fn start_messages(out: &mut Vec<u8>, first: u64) {
    let at = out.len();
    out.resize(at + MESSAGES_HEADER, 0);
    let mut f = Frame::new_unchecked(&mut out[at..]);
    f.set_kind(FrameKind::Messages);
    f.set_first(first);
    f.set_count(0);
}

/// Appends one message to an open MESSAGES frame: its Length, then its
/// bytes. Refuses one longer than [`MAX_MESSAGE_LEN`], appending nothing.
pub fn push_message(out: &mut Vec<u8>, msg: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(msg.len()).map_err(|_| FrameError::MessageTooLong)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    Ok(())
}

/// Starts a STREAM frame at the end of `out` (a publisher's open frame,
/// empty): its fixed fields, Offset `offset`. The stream's bytes follow.
pub fn start_stream(out: &mut Vec<u8>, offset: u64) {
    let at = out.len();
    out.resize(at + STREAM_HEADER, 0);
    let mut f = Frame::new_unchecked(&mut out[at..]);
    f.set_kind(FrameKind::Stream);
    f.set_offset(offset);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// protocol.md §14.1's example batch: the messages `hi` and `there`,
    /// the feed's messages 5 and 6.
    const HI_THERE: [u8; 28] = [
        0x01, 0, 0, 0, 0, 0, 0, 0, 0x05, 0, 0, 0, 0x02, 0, 0, 0, 0x02, b'h', b'i', 0, 0, 0, 0x05,
        b't', b'h', b'e', b'r', b'e',
    ];

    #[test]
    fn frames_built_in_place_parse_back_and_emit_the_same_bytes() {
        let mut open = Vec::new();
        start_messages(&mut open, 5);
        push_message(&mut open, b"hi").unwrap();
        push_message(&mut open, b"there").unwrap();
        Frame::new_unchecked(&mut open[..]).set_count(2);
        assert_eq!(open, HI_THERE);
        let FrameRepr::Messages(b) = FrameRepr::parse(&open).unwrap() else {
            panic!("a batch")
        };
        let got: Vec<(u64, &[u8])> = b.messages().collect();
        assert_eq!(got, [(5, &b"hi"[..]), (6, &b"there"[..])]);
        assert_eq!(b.after(), 7);
        assert_eq!(FrameRepr::Messages(b).to_vec(), open);

        let mut piece = Vec::new();
        start_stream(&mut piece, 1000);
        piece.extend_from_slice(b"abc");
        let r = FrameRepr::parse(&piece).unwrap();
        assert!(matches!(r, FrameRepr::Stream(p) if p.offset() == 1000 && p.end() == 1003));
        let mut buf = [0u8; 64];
        assert_eq!(r.emit(&mut buf), Ok(piece.len()));
        assert_eq!(&buf[..piece.len()], &piece[..]);
        assert_eq!(r.emit(&mut buf[..5]), Err(FrameError::BufferTooSmall));

        let end = FrameRepr::End {
            stream_len: 0,
            messages: 7,
        };
        let bytes = end.to_vec();
        assert_eq!(bytes.len(), END_LEN);
        assert_eq!(bytes[0], 3);
        assert_eq!(bytes[END_LEN - 1], 7);
        assert_eq!(FrameRepr::parse(&bytes), Ok(end));
    }

    #[test]
    fn every_malformed_frame_is_refused_with_its_reason() {
        let batch = |first: u64, count: u32, body: &[u8]| {
            let mut v = vec![1];
            v.extend_from_slice(&first.to_be_bytes());
            v.extend_from_slice(&count.to_be_bytes());
            v.extend_from_slice(body);
            v
        };
        let one = [0, 0, 0, 1, b'x'];
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (vec![], FrameError::Truncated),
            (vec![0], FrameError::UnknownKind),
            (vec![4, 0, 0], FrameError::UnknownKind),
            (vec![1; 12], FrameError::Truncated),
            (vec![2; 8], FrameError::Truncated),
            (vec![3; 16], FrameError::Truncated),
            (vec![3; 18], FrameError::BadLength),
            (batch(0, 0, &[]), FrameError::NoMessages),
            (batch(u64::MAX, 1, &one), FrameError::Overflow),
            (batch(0, 2, &one), FrameError::BadLength),
            (batch(0, u32::MAX, &one), FrameError::BadLength),
            (batch(0, 1, &[0, 0, 0, 2, b'x']), FrameError::BadLength),
            (batch(0, 1, &[0, 0, 0, 0, b'x']), FrameError::BadLength),
            (batch(0, 1, &[0, 0, 0]), FrameError::BadLength),
        ];
        for (bytes, why) in cases {
            assert_eq!(FrameRepr::parse(&bytes), Err(why), "{bytes:?}");
        }
        let mut piece = vec![2];
        piece.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(
            FrameRepr::parse(&piece).is_ok(),
            "an empty piece at the last offset"
        );
        piece.push(0);
        assert_eq!(FrameRepr::parse(&piece), Err(FrameError::Overflow));
        assert!(FrameRepr::parse(&batch(u64::MAX - 1, 1, &one)).is_ok());
    }
}
