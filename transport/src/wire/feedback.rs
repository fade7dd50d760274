//! The feedback packets of the nack and hybrid modes (protocol.md §13): PROBE
//! (sender → group), NACK (receiver → feedback group) and STATUS (receiver →
//! sender).

use bitvec::prelude::{BitSlice, Lsb0};

use super::{
    CRC_LEN, HEADER_LEN, MAX_DATAGRAM, Packet, PacketType, Reader, WireError, put, read_u16,
    read_u32, read_u64,
};

/// Length of a PROBE packet.
pub const PROBE_LEN: usize = HEADER_LEN + 48 + CRC_LEN;
/// Length of a STATUS packet.
pub const STATUS_LEN: usize = HEADER_LEN + 40 + CRC_LEN;
/// Bytes of a NACK before its entries.
pub const NACK_HEADER_LEN: usize = HEADER_LEN + 12;
/// Bytes of one NACK entry before its ranges.
pub const NACK_ENTRY_LEN: usize = 12;
/// Bytes of one ESI range in a NACK entry.
pub const NACK_RANGE_LEN: usize = 8;
/// ESIs are 24-bit on the wire.
const ESI_LIMIT: u64 = 1 << 24;
/// Largest `group_log2` a PROBE may carry.
pub const MAX_GROUP_LOG2: u8 = 32;
/// Largest loss a STATUS may report, in parts per million.
pub const MAX_LOSS_PPM: u32 = 1_000_000;

/// PROBE flag: the first pass over every object is finished.
pub const PROBE_END: u8 = 0x01;
/// PROBE flag: Limit holds the window edge flow control follows; without
/// it, Limit is zero and no receiver is asked to report for lagging.
pub const PROBE_LIMIT: u8 = 0x02;
/// Largest Sample a PROBE may carry: one receiver id in 2^32 asked.
pub const MAX_SAMPLE: u8 = 32;
/// NACK entry flag: the receiver lacks the object's OBJECT_INFO.
pub const NACK_NEED_INFO: u8 = 0x01;
/// NACK entry flag, on the wire only: the entry's ESIs follow as a first
/// ESI and a bitmap, not as ranges. Emitters choose it where it is smaller;
/// [`NackEntry::ranges`] holds the ESIs as runs either way.
pub const NACK_BITMAP: u8 = 0x02;
/// Longest NACK bitmap, in bytes (8192 ESIs, at most 4096 runs: fewer than
/// the ranges one datagram can hold, so the sender's cost per NACK stays
/// bounded as before).
pub const MAX_NACK_BITMAP: usize = 1024;
/// STATUS flag: every object the sender announced is complete here.
pub const STATUS_COMPLETE: u8 = 0x01;
/// STATUS flag: `echo_us` and `hold_us` carry a PROBE timestamp.
pub const STATUS_ECHO: u8 = 0x02;
/// STATUS flag: `loss_ppm` is measured (the receiver has a loss sample);
/// without it, the STATUS says nothing of loss.
pub const STATUS_LOSS: u8 = 0x04;
/// STATUS flag (never with [`STATUS_COMPLETE`]): the window waits for the
/// receiver's own work, not for symbols: the edge's block is out to be
/// solved, or everything announced is here and the application holds the
/// window. This receiver needs no repair now, however long its window
/// stands still.
pub const STATUS_BUSY: u8 = 0x08;

/// PROBE field offsets, from the start of the datagram.
pub mod probe {
    use std::ops::Range;
    /// The sender's clock, microseconds.
    pub const TIMESTAMP: Range<usize> = 16..24;
    /// DATA packets sent so far.
    pub const SENT: Range<usize> = 24..32;
    /// GRTT, microseconds.
    pub const GRTT: Range<usize> = 32..36;
    /// Objects in the session.
    pub const OBJECTS: Range<usize> = 36..40;
    /// Progress: object.
    pub const PROGRESS_OBJECT: Range<usize> = 40..44;
    /// Progress: SBN.
    pub const PROGRESS_SBN: usize = 44;
    /// Mode.
    pub const MODE: usize = 45;
    /// Flags.
    pub const FLAGS: usize = 46;
    /// Group size, as ceil(log2(receivers + 1)).
    pub const GROUP_LOG2: usize = 47;
    /// The hop limit the sender's multicast leaves with.
    pub const HOPS: usize = 48;
    /// Which receivers are asked for a routine STATUS: log2 of the share.
    pub const SAMPLE: usize = 49;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 50..52;
    /// The first object the sender still holds (those before are retired).
    pub const RETAINED: Range<usize> = 52..56;
    /// Limit: object.
    pub const LIMIT_OBJECT: Range<usize> = 56..60;
    /// Limit: SBN.
    pub const LIMIT_SBN: usize = 60;
    /// Reserved, zero.
    pub const RESERVED2: usize = 61;
    /// The loss proactive repair is sized for, in 65536ths.
    pub const LOSS: Range<usize> = 62..64;
}

/// STATUS field offsets, from the start of the datagram.
pub mod status {
    use std::ops::Range;
    /// Receiver id.
    pub const RECEIVER: Range<usize> = 16..24;
    /// Echoed PROBE timestamp.
    pub const ECHO: Range<usize> = 24..32;
    /// Hold time, microseconds.
    pub const HOLD: Range<usize> = 32..36;
    /// Loss, parts per million.
    pub const LOSS: Range<usize> = 36..40;
    /// Receive rate, bytes per second.
    pub const RATE: Range<usize> = 40..48;
    /// Window: object.
    pub const WINDOW_OBJECT: Range<usize> = 48..52;
    /// Window: SBN.
    pub const WINDOW_SBN: usize = 52;
    /// Flags.
    pub const FLAGS: usize = 53;
    /// Loss span: the DATA packets a plain ratio as precise as Loss spans.
    pub const SPAN: Range<usize> = 54..56;
}

/// NACK field offsets: the fixed part from the start of the datagram, then
/// an entry's and a range's from their own start.
pub mod nack {
    use std::ops::Range;
    /// Receiver id.
    pub const RECEIVER: Range<usize> = 16..24;
    /// Number of entries.
    pub const COUNT: Range<usize> = 24..26;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 26..28;
    /// The entries: from here to the CRC trailer.
    pub const ENTRIES: usize = 28;
    /// Within an entry: object.
    pub const ENTRY_OBJECT: Range<usize> = 0..4;
    /// Within an entry: SBN.
    pub const ENTRY_SBN: usize = 4;
    /// Within an entry: flags.
    pub const ENTRY_FLAGS: usize = 5;
    /// Within an entry: number of ranges.
    pub const ENTRY_RANGES: Range<usize> = 6..8;
    /// Within an entry: symbols needed.
    pub const ENTRY_NEED: Range<usize> = 8..12;
    /// Within a range: first ESI.
    pub const RANGE_FIRST: Range<usize> = 0..4;
    /// Within a range: count.
    pub const RANGE_COUNT: Range<usize> = 4..8;
    /// A bitmap entry (flag `NACK_BITMAP`): first ESI, then the bitmap.
    pub const BITMAP_FIRST: Range<usize> = 0..4;
}

/// How the sender recovers loss, as announced in PROBE packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WireMode {
    /// ARQ: receivers list missing ESIs, the sender replays them.
    Nack = 2,
    /// Receivers report how many symbols they lack; the sender sends fresh repair.
    Hybrid = 3,
}

impl WireMode {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            2 => Some(Self::Nack),
            3 => Some(Self::Hybrid),
            _ => None,
        }
    }
}

/// Wraps a fixed-length datagram: shorter is truncated, longer is refused.
fn exact_len(len: usize, want: usize) -> Result<(), WireError> {
    match len {
        l if l < want => Err(WireError::Truncated),
        l if l > want => Err(WireError::BadLength),
        _ => Ok(()),
    }
}

/// A view of a PROBE datagram. Getters cannot panic once
/// [`ProbePacket::new_checked`] passed.
#[derive(Debug, Clone)]
pub struct ProbePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ProbePacket<T> {
    /// Wraps a buffer without checks; getters may then panic.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer of exactly [`PROBE_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        exact_len(buffer.as_ref().len(), PROBE_LEN)?;
        Ok(Self { buffer })
    }

    /// The sender's clock, microseconds.
    pub fn timestamp_us(&self) -> u64 {
        read_u64(self.buffer.as_ref(), probe::TIMESTAMP)
    }
    /// DATA packets sent so far.
    pub fn sent(&self) -> u64 {
        read_u64(self.buffer.as_ref(), probe::SENT)
    }
    /// GRTT, microseconds.
    pub fn grtt_us(&self) -> u32 {
        read_u32(self.buffer.as_ref(), probe::GRTT)
    }
    /// Objects in the session.
    pub fn objects(&self) -> u32 {
        read_u32(self.buffer.as_ref(), probe::OBJECTS)
    }
    /// First block whose first pass is not finished.
    pub fn progress(&self) -> (u32, u8) {
        let b = self.buffer.as_ref();
        (read_u32(b, probe::PROGRESS_OBJECT), b[probe::PROGRESS_SBN])
    }
    /// Mode byte, as sent.
    pub fn mode(&self) -> u8 {
        self.buffer.as_ref()[probe::MODE]
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[probe::FLAGS]
    }
    /// Group size, log2.
    pub fn group_log2(&self) -> u8 {
        self.buffer.as_ref()[probe::GROUP_LOG2]
    }
    /// The hop limit the sender's multicast leaves with.
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[probe::HOPS]
    }
    /// The first object the sender still holds.
    pub fn retained(&self) -> u32 {
        read_u32(self.buffer.as_ref(), probe::RETAINED)
    }
    /// Log2 of the share of receivers asked for a routine STATUS.
    pub fn sample(&self) -> u8 {
        self.buffer.as_ref()[probe::SAMPLE]
    }
    /// The window edge flow control follows (valid with [`PROBE_LIMIT`]).
    pub fn limit(&self) -> (u32, u8) {
        let b = self.buffer.as_ref();
        (read_u32(b, probe::LIMIT_OBJECT), b[probe::LIMIT_SBN])
    }
    /// The loss proactive repair is sized for, in 65536ths.
    pub fn loss(&self) -> u16 {
        read_u16(self.buffer.as_ref(), probe::LOSS)
    }
    /// Whether the reserved bytes are zero, as they must be.
    pub fn reserved_zero(&self) -> bool {
        let b = self.buffer.as_ref();
        b[probe::RESERVED].iter().all(|&b| b == 0) && b[probe::RESERVED2] == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ProbePacket<T> {
    /// Sets the timestamp.
    pub fn set_timestamp_us(&mut self, v: u64) {
        put(self.buffer.as_mut(), probe::TIMESTAMP, &v.to_be_bytes());
    }
    /// Sets the DATA count.
    pub fn set_sent(&mut self, v: u64) {
        put(self.buffer.as_mut(), probe::SENT, &v.to_be_bytes());
    }
    /// Sets the GRTT.
    pub fn set_grtt_us(&mut self, v: u32) {
        put(self.buffer.as_mut(), probe::GRTT, &v.to_be_bytes());
    }
    /// Sets the object count.
    pub fn set_objects(&mut self, v: u32) {
        put(self.buffer.as_mut(), probe::OBJECTS, &v.to_be_bytes());
    }
    /// Sets the progress point.
    pub fn set_progress(&mut self, (object, sbn): (u32, u8)) {
        let b = self.buffer.as_mut();
        put(b, probe::PROGRESS_OBJECT, &object.to_be_bytes());
        b[probe::PROGRESS_SBN] = sbn;
    }
    /// Sets the mode.
    pub fn set_mode(&mut self, mode: WireMode) {
        self.buffer.as_mut()[probe::MODE] = mode as u8;
    }
    /// Sets the flags.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[probe::FLAGS] = v;
    }
    /// Sets the group size, log2.
    pub fn set_group_log2(&mut self, v: u8) {
        self.buffer.as_mut()[probe::GROUP_LOG2] = v;
    }
    /// Sets the hop limit and clears the reserved bytes.
    pub fn set_hops(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        b[probe::HOPS] = v;
        b[probe::RESERVED].fill(0);
        b[probe::RESERVED2] = 0;
    }
    /// Sets the sample exponent.
    pub fn set_sample(&mut self, v: u8) {
        self.buffer.as_mut()[probe::SAMPLE] = v;
    }
    /// Sets the limit.
    pub fn set_limit(&mut self, (object, sbn): (u32, u8)) {
        let b = self.buffer.as_mut();
        put(b, probe::LIMIT_OBJECT, &object.to_be_bytes());
        b[probe::LIMIT_SBN] = sbn;
    }
    /// Sets the loss, in 65536ths.
    pub fn set_loss(&mut self, v: u16) {
        put(self.buffer.as_mut(), probe::LOSS, &v.to_be_bytes());
    }
    /// Sets the first object still held.
    pub fn set_retained(&mut self, v: u32) {
        put(self.buffer.as_mut(), probe::RETAINED, &v.to_be_bytes());
    }
}

/// A PROBE: the sender's clock, progress and GRTT estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRepr {
    /// Session.
    pub session: u64,
    /// The sender's clock in microseconds, echoed in STATUS.
    pub timestamp_us: u64,
    /// DATA packets sent so far in the session, for receivers' loss estimates.
    pub sent: u64,
    /// The sender's group round-trip time estimate, in microseconds.
    pub grtt_us: u32,
    /// Objects in the session (ids 0..objects).
    pub objects: u32,
    /// First block whose first-pass transmission is not finished: (object, SBN).
    pub progress: (u32, u8),
    /// Recovery mode.
    pub mode: WireMode,
    /// [`PROBE_END`] or 0.
    pub flags: u8,
    /// The sender's group size estimate, as ceil(log2(receivers + 1)), at most
    /// [`MAX_GROUP_LOG2`].
    pub group_log2: u8,
    /// The hop limit the sender's multicast leaves with (at least 1), so
    /// that receivers can send feedback as far as it came.
    pub hops: u8,
    /// The first object the sender still holds, at most `objects`: it
    /// answers nothing for the objects before (a feed's retired objects,
    /// protocol.md §14.2; 0 in a file transfer).
    pub retained: u32,
    /// Who is asked to report, and against what (protocol.md §13.3).
    pub ask: ReportAsk,
}

/// What a PROBE asks of the group's STATUS (protocol.md §13.3, "Who
/// reports"): a sample of receivers reports routinely; the others only to
/// say what may change the sender's decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportAsk {
    /// Receivers asked for a routine STATUS: those [`sampled`] at this
    /// exponent, one in 2^`sample` (0: all of them), at most [`MAX_SAMPLE`].
    pub sample: u8,
    /// The window edge flow control follows (flag [`PROBE_LIMIT`]): a
    /// receiver whose window is behind it reports.
    pub limit: Option<(u32, u8)>,
    /// The loss proactive repair is sized for, in 65536ths (0: none known):
    /// a receiver whose loss is surely higher reports.
    pub loss: u16,
}

/// Whether `receiver` is among those a PROBE of `timestamp_us` asks for a
/// routine STATUS at exponent `sample` (protocol.md §13.3, "Who reports"):
/// the top `sample` bits of splitmix64(receiver XOR timestamp) are zero.
pub fn sampled(receiver: u64, timestamp_us: u64, sample: u8) -> bool {
    match sample {
        0 => true,
        s if s >= 64 => false,
        s => groupcast_fec::splitmix64(receiver ^ timestamp_us) >> (64 - s as u32) == 0,
    }
}

impl ProbeRepr {
    /// Validates a PROBE's fields.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        session: u64,
        p: &ProbePacket<&T>,
    ) -> Result<Self, WireError> {
        let mode = WireMode::from_u8(p.mode()).ok_or(WireError::UnknownMode)?;
        if !p.reserved_zero() {
            return Err(WireError::Reserved);
        }
        let r = Self {
            session,
            timestamp_us: p.timestamp_us(),
            sent: p.sent(),
            grtt_us: p.grtt_us(),
            objects: p.objects(),
            progress: p.progress(),
            mode,
            flags: p.flags(),
            group_log2: p.group_log2(),
            hops: p.hops(),
            retained: p.retained(),
            ask: ReportAsk {
                sample: p.sample(),
                limit: (p.flags() & PROBE_LIMIT != 0).then(|| p.limit()),
                loss: p.loss(),
            },
        };
        r.check()?;
        if r.ask.limit.is_none() && p.limit() != (0, 0) {
            return Err(WireError::Reserved);
        }
        Ok(r)
    }

    fn check(&self) -> Result<(), WireError> {
        if self.flags & !(PROBE_END | PROBE_LIMIT) != 0 {
            return Err(WireError::UnknownFlags);
        }
        if (self.flags & PROBE_LIMIT != 0) != self.ask.limit.is_some() {
            return Err(WireError::UnknownFlags);
        }
        if self.group_log2 > MAX_GROUP_LOG2
            || self.hops == 0
            || self.retained > self.objects
            || self.ask.sample > MAX_SAMPLE
        {
            return Err(WireError::OutOfRange);
        }
        Ok(())
    }

    /// Writes the fields into a view of [`PROBE_LEN`] bytes, refusing what
    /// [`ProbeRepr::parse`] would.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut ProbePacket<T>,
    ) -> Result<(), WireError> {
        self.check()?;
        p.set_timestamp_us(self.timestamp_us);
        p.set_sent(self.sent);
        p.set_grtt_us(self.grtt_us);
        p.set_objects(self.objects);
        p.set_progress(self.progress);
        p.set_mode(self.mode);
        p.set_flags(self.flags);
        p.set_group_log2(self.group_log2);
        p.set_hops(self.hops);
        p.set_retained(self.retained);
        p.set_sample(self.ask.sample);
        p.set_limit(self.ask.limit.unwrap_or((0, 0)));
        p.set_loss(self.ask.loss);
        Ok(())
    }

    /// Writes the whole datagram into `buf` and returns its length.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let buf = buf.get_mut(..PROBE_LEN).ok_or(WireError::BufferTooSmall)?;
        self.emit(&mut ProbePacket::new_unchecked(&mut *buf))?;
        seal(buf, PacketType::Probe, self.session);
        Ok(PROBE_LEN)
    }
}

/// A view of a STATUS datagram. Getters cannot panic once
/// [`StatusPacket::new_checked`] passed.
#[derive(Debug, Clone)]
pub struct StatusPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> StatusPacket<T> {
    /// Wraps a buffer without checks; getters may then panic.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer of exactly [`STATUS_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        exact_len(buffer.as_ref().len(), STATUS_LEN)?;
        Ok(Self { buffer })
    }

    /// Receiver id.
    pub fn receiver(&self) -> u64 {
        read_u64(self.buffer.as_ref(), status::RECEIVER)
    }
    /// Echoed PROBE timestamp.
    pub fn echo_us(&self) -> u64 {
        read_u64(self.buffer.as_ref(), status::ECHO)
    }
    /// Hold time.
    pub fn hold_us(&self) -> u32 {
        read_u32(self.buffer.as_ref(), status::HOLD)
    }
    /// Loss, ppm.
    pub fn loss_ppm(&self) -> u32 {
        read_u32(self.buffer.as_ref(), status::LOSS)
    }
    /// Receive rate.
    pub fn rate(&self) -> u64 {
        read_u64(self.buffer.as_ref(), status::RATE)
    }
    /// Window edge.
    pub fn window(&self) -> (u32, u8) {
        let b = self.buffer.as_ref();
        (read_u32(b, status::WINDOW_OBJECT), b[status::WINDOW_SBN])
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[status::FLAGS]
    }
    /// Loss span.
    pub fn loss_span(&self) -> u16 {
        read_u16(self.buffer.as_ref(), status::SPAN)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> StatusPacket<T> {
    /// Sets the receiver id.
    pub fn set_receiver(&mut self, v: u64) {
        put(self.buffer.as_mut(), status::RECEIVER, &v.to_be_bytes());
    }
    /// Sets the echoed timestamp.
    pub fn set_echo_us(&mut self, v: u64) {
        put(self.buffer.as_mut(), status::ECHO, &v.to_be_bytes());
    }
    /// Sets the hold time.
    pub fn set_hold_us(&mut self, v: u32) {
        put(self.buffer.as_mut(), status::HOLD, &v.to_be_bytes());
    }
    /// Sets the loss.
    pub fn set_loss_ppm(&mut self, v: u32) {
        put(self.buffer.as_mut(), status::LOSS, &v.to_be_bytes());
    }
    /// Sets the rate.
    pub fn set_rate(&mut self, v: u64) {
        put(self.buffer.as_mut(), status::RATE, &v.to_be_bytes());
    }
    /// Sets the window edge.
    pub fn set_window(&mut self, (object, sbn): (u32, u8)) {
        let b = self.buffer.as_mut();
        put(b, status::WINDOW_OBJECT, &object.to_be_bytes());
        b[status::WINDOW_SBN] = sbn;
    }
    /// Sets the flags.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[status::FLAGS] = v;
    }
    /// Sets the loss span.
    pub fn set_loss_span(&mut self, v: u16) {
        put(self.buffer.as_mut(), status::SPAN, &v.to_be_bytes());
    }
}

/// A STATUS: one receiver's window, loss, rate and RTT echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRepr {
    /// Session.
    pub session: u64,
    /// The reporting receiver's id.
    pub receiver: u64,
    /// Timestamp of the latest PROBE heard (valid with [`STATUS_ECHO`]).
    pub echo_us: u64,
    /// Microseconds between hearing that PROBE and sending this.
    pub hold_us: u32,
    /// Observed loss, in parts per million, at most [`MAX_LOSS_PPM`].
    pub loss_ppm: u32,
    /// How precise `loss_ppm` is (with [`STATUS_LOSS`]): the DATA packets
    /// over which a plain ratio of lost to sent would be as precise (its
    /// effective sample size), saturating; 0 when unknown.
    pub loss_span: u16,
    /// Observed receive rate, bytes per second.
    pub rate: u64,
    /// First block not yet decoded and handed out: (object, SBN).
    pub window: (u32, u8),
    /// [`STATUS_COMPLETE`], [`STATUS_ECHO`], [`STATUS_LOSS`],
    /// [`STATUS_BUSY`].
    pub flags: u8,
}

impl StatusRepr {
    /// Validates a STATUS's fields.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        session: u64,
        p: &StatusPacket<&T>,
    ) -> Result<Self, WireError> {
        let r = Self {
            session,
            receiver: p.receiver(),
            echo_us: p.echo_us(),
            hold_us: p.hold_us(),
            loss_ppm: p.loss_ppm(),
            loss_span: p.loss_span(),
            rate: p.rate(),
            window: p.window(),
            flags: p.flags(),
        };
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<(), WireError> {
        if self.flags & !(STATUS_COMPLETE | STATUS_ECHO | STATUS_LOSS | STATUS_BUSY) != 0 {
            return Err(WireError::UnknownFlags);
        }
        if self.loss_ppm > MAX_LOSS_PPM {
            return Err(WireError::OutOfRange);
        }
        Ok(())
    }

    /// Writes the fields into a view of [`STATUS_LEN`] bytes, refusing what
    /// [`StatusRepr::parse`] would.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut StatusPacket<T>,
    ) -> Result<(), WireError> {
        self.check()?;
        p.set_receiver(self.receiver);
        p.set_echo_us(self.echo_us);
        p.set_hold_us(self.hold_us);
        p.set_loss_ppm(self.loss_ppm);
        p.set_rate(self.rate);
        p.set_window(self.window);
        p.set_flags(self.flags);
        p.set_loss_span(self.loss_span);
        Ok(())
    }

    /// Writes the whole datagram into `buf` and returns its length.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let buf = buf.get_mut(..STATUS_LEN).ok_or(WireError::BufferTooSmall)?;
        self.emit(&mut StatusPacket::new_unchecked(&mut *buf))?;
        seal(buf, PacketType::Status, self.session);
        Ok(STATUS_LEN)
    }
}

/// Writes the common header and the checksum around a body already written.
fn seal(buf: &mut [u8], ty: PacketType, session: u64) {
    let mut p = Packet::new_unchecked(buf);
    p.set_header(ty, session);
    p.fill_checksum();
}

/// One block's request in a NACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackEntry {
    /// Object.
    pub object: u32,
    /// Block.
    pub sbn: u8,
    /// [`NACK_NEED_INFO`] or 0.
    pub flags: u8,
    /// Symbols the receiver lacks: in nack mode the ESIs listed in `ranges`
    /// (their total); in hybrid mode the count of fresh symbols it needs.
    pub need: u32,
    /// Missing ESIs as (first, count) runs (nack mode); empty in hybrid mode.
    pub ranges: Vec<(u32, u32)>,
}

impl NackEntry {
    /// Bytes this entry takes on the wire.
    pub fn wire_len(&self) -> usize {
        NACK_ENTRY_LEN
            + self
                .bitmap_bytes()
                .map_or(self.ranges.len() * NACK_RANGE_LEN, |b| 4 + b)
    }

    /// The bitmap's length in bytes, if the entry goes out as a bitmap: its
    /// ranges are canonical (sorted, with a gap between any two, so that the
    /// bitmap reads back as the same runs) and the bitmap form is smaller.
    fn bitmap_bytes(&self) -> Option<usize> {
        let (&(first, _), &(last, n)) = (self.ranges.first()?, self.ranges.last()?);
        let canonical = self
            .ranges
            .windows(2)
            .all(|w| (w[0].0 as u64 + w[0].1 as u64) < w[1].0 as u64);
        let span = (last as u64 + n as u64).checked_sub(first as u64)?;
        let bytes = span.div_ceil(8) as usize;
        (canonical && bytes <= MAX_NACK_BITMAP && 4 + bytes < self.ranges.len() * NACK_RANGE_LEN)
            .then_some(bytes)
    }

    /// What parse refuses: unknown flags, more ranges than the count field
    /// holds, an empty range or one past 2^24, ranges that do not add up to
    /// the need.
    fn check(&self) -> Result<(), WireError> {
        if self.flags & !NACK_NEED_INFO != 0 {
            return Err(WireError::UnknownFlags);
        }
        if self.ranges.len() > u16::MAX as usize {
            return Err(WireError::TooManyEntries);
        }
        let mut total = 0u64;
        for &(first, n) in &self.ranges {
            if n == 0 || first as u64 + n as u64 > ESI_LIMIT {
                return Err(WireError::BadRange);
            }
            total += n as u64;
        }
        if !self.ranges.is_empty() && total != self.need as u64 {
            return Err(WireError::BadRange);
        }
        Ok(())
    }
}

/// The ESIs of a bitmap entry, as runs: bit i (least significant first in
/// each byte) set means ESI `first` + i. Only the canonical form passes: bit
/// 0 set, the last byte not zero, and every ESI below 2^24 (`bad_range`).
fn read_bitmap(first: u32, bitmap: &[u8]) -> Result<Vec<(u32, u32)>, WireError> {
    let bits = BitSlice::<u8, Lsb0>::from_slice(bitmap);
    let last = bits.last_one().ok_or(WireError::BadRange)?;
    if !bits[0] || bitmap[bitmap.len() - 1] == 0 || first as u64 + last as u64 >= ESI_LIMIT {
        return Err(WireError::BadRange);
    }
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for i in bits.iter_ones() {
        let esi = first + i as u32;
        match runs.last_mut() {
            Some((f, n)) if *f + *n == esi => *n += 1,
            _ => runs.push((esi, 1)),
        }
    }
    Ok(runs)
}

/// A view of a NACK datagram's fixed part; its entries are read through a
/// [`Reader`] (they vary in length). Getters cannot panic once
/// [`NackPacket::new_checked`] passed.
#[derive(Debug, Clone)]
pub struct NackPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NackPacket<T> {
    /// Wraps a buffer without checks; getters may then panic.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds the fixed part and a trailer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < NACK_HEADER_LEN + CRC_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Receiver id.
    pub fn receiver(&self) -> u64 {
        read_u64(self.buffer.as_ref(), nack::RECEIVER)
    }
    /// Number of entries.
    pub fn count(&self) -> u16 {
        read_u16(self.buffer.as_ref(), nack::COUNT)
    }
    /// The reserved bytes, which must be zero.
    pub fn reserved(&self) -> u16 {
        read_u16(self.buffer.as_ref(), nack::RESERVED)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> NackPacket<&'a T> {
    /// The entries' bytes.
    pub fn entries(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        &b[nack::ENTRIES..b.len() - CRC_LEN]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NackPacket<T> {
    /// Sets the receiver id.
    pub fn set_receiver(&mut self, v: u64) {
        put(self.buffer.as_mut(), nack::RECEIVER, &v.to_be_bytes());
    }
    /// Sets the entry count and clears the reserved bytes.
    pub fn set_count(&mut self, v: u16) {
        let b = self.buffer.as_mut();
        put(b, nack::COUNT, &v.to_be_bytes());
        b[nack::RESERVED].fill(0);
    }
    /// The entries' bytes, to be written.
    pub fn entries_mut(&mut self) -> &mut [u8] {
        let b = self.buffer.as_mut();
        let end = b.len() - CRC_LEN;
        &mut b[nack::ENTRIES..end]
    }
}

/// A NACK: one receiver's requests for one or more blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackRepr {
    /// Session.
    pub session: u64,
    /// The requesting receiver's id.
    pub receiver: u64,
    /// Requests, one per block.
    pub entries: Vec<NackEntry>,
}

/// Most entries one NACK may carry (bounds a parse's allocation).
pub const MAX_NACK_ENTRIES: usize = 512;

impl NackRepr {
    /// Validates a NACK: its fixed part, then each entry through a cursor
    /// that refuses to read past the end.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        session: u64,
        p: &NackPacket<&T>,
    ) -> Result<Self, WireError> {
        if p.reserved() != 0 {
            return Err(WireError::Reserved);
        }
        let count = p.count() as usize;
        if count > MAX_NACK_ENTRIES {
            return Err(WireError::TooManyEntries);
        }
        let mut r = Reader::new(p.entries());
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let e = r.take(NACK_ENTRY_LEN)?;
            let n = read_u16(e, nack::ENTRY_RANGES) as usize;
            let flags = e[nack::ENTRY_FLAGS];
            let ranges = if flags & NACK_BITMAP != 0 {
                // n bitmap bytes after the first ESI.
                if n > MAX_NACK_BITMAP {
                    return Err(WireError::TooManyEntries);
                }
                let body = r.take(4 + n)?;
                read_bitmap(read_u32(body, nack::BITMAP_FIRST), &body[4..])?
            } else {
                r.take(n * NACK_RANGE_LEN)?
                    .chunks_exact(NACK_RANGE_LEN)
                    .map(|c| {
                        (
                            read_u32(c, nack::RANGE_FIRST),
                            read_u32(c, nack::RANGE_COUNT),
                        )
                    })
                    .collect()
            };
            let entry = NackEntry {
                object: read_u32(e, nack::ENTRY_OBJECT),
                sbn: e[nack::ENTRY_SBN],
                flags: flags & !NACK_BITMAP,
                need: read_u32(e, nack::ENTRY_NEED),
                ranges,
            };
            entry.check()?;
            entries.push(entry);
        }
        if !r.is_empty() {
            return Err(WireError::BadLength);
        }
        Ok(Self {
            session,
            receiver: p.receiver(),
            entries,
        })
    }

    /// Bytes the packet takes.
    pub fn buffer_len(&self) -> usize {
        NACK_HEADER_LEN + self.entries.iter().map(NackEntry::wire_len).sum::<usize>() + CRC_LEN
    }

    /// Writes the fields into a view of exactly [`NackRepr::buffer_len`]
    /// bytes, refusing what [`NackRepr::parse`] would.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut NackPacket<T>,
    ) -> Result<(), WireError> {
        if self.entries.len() > MAX_NACK_ENTRIES {
            return Err(WireError::TooManyEntries);
        }
        for e in &self.entries {
            e.check()?;
        }
        if p.buffer.as_ref().len() != self.buffer_len() {
            return Err(WireError::BufferTooSmall);
        }
        p.set_receiver(self.receiver);
        p.set_count(self.entries.len() as u16);
        let mut out = p.entries_mut();
        for e in &self.entries {
            let (head, rest) = out.split_at_mut(NACK_ENTRY_LEN);
            put(head, nack::ENTRY_OBJECT, &e.object.to_be_bytes());
            head[nack::ENTRY_SBN] = e.sbn;
            put(head, nack::ENTRY_NEED, &e.need.to_be_bytes());
            out = rest;
            if let Some(bytes) = e.bitmap_bytes() {
                head[nack::ENTRY_FLAGS] = e.flags | NACK_BITMAP;
                put(head, nack::ENTRY_RANGES, &(bytes as u16).to_be_bytes());
                let (body, rest) = out.split_at_mut(4 + bytes);
                let first = e.ranges[0].0;
                put(body, nack::BITMAP_FIRST, &first.to_be_bytes());
                let bits = BitSlice::<u8, Lsb0>::from_slice_mut(&mut body[4..]);
                bits.fill(false);
                for &(f, n) in &e.ranges {
                    let at = (f - first) as usize;
                    bits[at..at + n as usize].fill(true);
                }
                out = rest;
                continue;
            }
            head[nack::ENTRY_FLAGS] = e.flags;
            put(
                head,
                nack::ENTRY_RANGES,
                &(e.ranges.len() as u16).to_be_bytes(),
            );
            for &(first, n) in &e.ranges {
                let (run, rest) = out.split_at_mut(NACK_RANGE_LEN);
                put(run, nack::RANGE_FIRST, &first.to_be_bytes());
                put(run, nack::RANGE_COUNT, &n.to_be_bytes());
                out = rest;
            }
        }
        Ok(())
    }

    /// Writes the whole datagram into `buf` and returns its length.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        if len > MAX_DATAGRAM {
            return Err(WireError::Oversized);
        }
        let buf = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        self.emit(&mut NackPacket::new_unchecked(&mut *buf))?;
        seal(buf, PacketType::Nack, self.session);
        Ok(len)
    }
}
