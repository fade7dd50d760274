//! The feedback packets of the nack and hybrid modes (protocol.md §13): PROBE
//! (sender → group), NACK (receiver → feedback group) and STATUS (receiver →
//! sender).

use super::{CRC_LEN, HEADER_LEN, MAX_DATAGRAM, PacketType, WireError, emit_crc, emit_header};

/// Length of a PROBE packet.
pub const PROBE_LEN: usize = HEADER_LEN + 32 + CRC_LEN;
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

/// PROBE flag: the first pass over every object is finished.
pub const PROBE_END: u8 = 0x01;
/// NACK entry flag: the receiver lacks the object's OBJECT_INFO.
pub const NACK_NEED_INFO: u8 = 0x01;
/// STATUS flag: every object the sender announced is complete here.
pub const STATUS_COMPLETE: u8 = 0x01;
/// STATUS flag: `echo_us` and `hold_us` carry a PROBE timestamp.
pub const STATUS_ECHO: u8 = 0x02;

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

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
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
    /// The sender's group size estimate, as ceil(log2(receivers + 1)), at most 32.
    pub group_log2: u8,
}

impl ProbeRepr {
    pub(super) fn parse(session: u64, b: &[u8]) -> Result<Self, WireError> {
        if b.len() < 32 {
            return Err(WireError::Truncated);
        }
        if b.len() > 32 {
            return Err(WireError::Oversized);
        }
        if b[31] > 32 || b[30] & !PROBE_END != 0 {
            return Err(WireError::Reserved);
        }
        Ok(Self {
            session,
            timestamp_us: u64_at(b, 0),
            sent: u64_at(b, 8),
            grtt_us: u32_at(b, 16),
            objects: u32_at(b, 20),
            progress: (u32_at(b, 24), b[28]),
            mode: WireMode::from_u8(b[29]).ok_or(WireError::UnknownType)?,
            flags: b[30],
            group_log2: b[31],
        })
    }

    /// Writes the packet; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if buf.len() < PROBE_LEN {
            return Err(WireError::BufferTooSmall);
        }
        emit_header(buf, PacketType::Probe, self.session);
        let b = &mut buf[HEADER_LEN..];
        b[0..8].copy_from_slice(&self.timestamp_us.to_be_bytes());
        b[8..16].copy_from_slice(&self.sent.to_be_bytes());
        b[16..20].copy_from_slice(&self.grtt_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.objects.to_be_bytes());
        b[24..28].copy_from_slice(&self.progress.0.to_be_bytes());
        b[28] = self.progress.1;
        b[29] = self.mode as u8;
        b[30] = self.flags;
        b[31] = self.group_log2.min(32);
        Ok(emit_crc(buf, HEADER_LEN + 32))
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
    /// Observed loss, in parts per million.
    pub loss_ppm: u32,
    /// Observed receive rate, bytes per second.
    pub rate: u64,
    /// First block not yet decoded and handed out: (object, SBN).
    pub window: (u32, u8),
    /// [`STATUS_COMPLETE`], [`STATUS_ECHO`].
    pub flags: u8,
}

impl StatusRepr {
    pub(super) fn parse(session: u64, b: &[u8]) -> Result<Self, WireError> {
        if b.len() < 40 {
            return Err(WireError::Truncated);
        }
        if b.len() > 40 {
            return Err(WireError::Oversized);
        }
        if b[38..40] != [0, 0] || b[37] & !(STATUS_COMPLETE | STATUS_ECHO) != 0 {
            return Err(WireError::Reserved);
        }
        let loss_ppm = u32_at(b, 20);
        if loss_ppm > 1_000_000 {
            return Err(WireError::Reserved);
        }
        Ok(Self {
            session,
            receiver: u64_at(b, 0),
            echo_us: u64_at(b, 8),
            hold_us: u32_at(b, 16),
            loss_ppm,
            rate: u64_at(b, 24),
            window: (u32_at(b, 32), b[36]),
            flags: b[37],
        })
    }

    /// Writes the packet; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if buf.len() < STATUS_LEN {
            return Err(WireError::BufferTooSmall);
        }
        emit_header(buf, PacketType::Status, self.session);
        let b = &mut buf[HEADER_LEN..];
        b[0..8].copy_from_slice(&self.receiver.to_be_bytes());
        b[8..16].copy_from_slice(&self.echo_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.hold_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.loss_ppm.min(1_000_000).to_be_bytes());
        b[24..32].copy_from_slice(&self.rate.to_be_bytes());
        b[32..36].copy_from_slice(&self.window.0.to_be_bytes());
        b[36] = self.window.1;
        b[37] = self.flags;
        b[38..40].fill(0);
        Ok(emit_crc(buf, HEADER_LEN + 40))
    }
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
        NACK_ENTRY_LEN + self.ranges.len() * NACK_RANGE_LEN
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
    pub(super) fn parse(session: u64, b: &[u8]) -> Result<Self, WireError> {
        if b.len() < 12 {
            return Err(WireError::Truncated);
        }
        let count = u16_at(b, 8) as usize;
        if b[10..12] != [0, 0] {
            return Err(WireError::Reserved);
        }
        if count > MAX_NACK_ENTRIES {
            return Err(WireError::Oversized);
        }
        let mut entries = Vec::with_capacity(count);
        let mut at = 12;
        for _ in 0..count {
            if b.len() < at + NACK_ENTRY_LEN {
                return Err(WireError::Truncated);
            }
            let object = u32_at(b, at);
            let sbn = b[at + 4];
            let flags = b[at + 5];
            if flags & !NACK_NEED_INFO != 0 {
                return Err(WireError::Reserved);
            }
            let nranges = u16_at(b, at + 6) as usize;
            let need = u32_at(b, at + 8);
            at += NACK_ENTRY_LEN;
            let end = at + nranges * NACK_RANGE_LEN;
            if b.len() < end {
                return Err(WireError::Truncated);
            }
            let mut ranges = Vec::with_capacity(nranges);
            let mut total = 0u64;
            while at < end {
                let first = u32_at(b, at);
                let n = u32_at(b, at + 4);
                if n == 0 || first as u64 + n as u64 > ESI_LIMIT {
                    return Err(WireError::EsiOutOfRange);
                }
                total += n as u64;
                ranges.push((first, n));
                at += NACK_RANGE_LEN;
            }
            if nranges > 0 && total != need as u64 {
                return Err(WireError::EsiOutOfRange);
            }
            entries.push(NackEntry {
                object,
                sbn,
                flags,
                need,
                ranges,
            });
        }
        if at != b.len() {
            return Err(WireError::Oversized);
        }
        Ok(Self {
            session,
            receiver: u64_at(b, 0),
            entries,
        })
    }

    /// Bytes the packet takes.
    pub fn buffer_len(&self) -> usize {
        NACK_HEADER_LEN + self.entries.iter().map(NackEntry::wire_len).sum::<usize>() + CRC_LEN
    }

    /// Writes the packet; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        if buf.len() < len || len > MAX_DATAGRAM {
            return Err(WireError::BufferTooSmall);
        }
        if self.entries.len() > MAX_NACK_ENTRIES {
            return Err(WireError::Oversized);
        }
        emit_header(buf, PacketType::Nack, self.session);
        let b = &mut buf[HEADER_LEN..];
        b[0..8].copy_from_slice(&self.receiver.to_be_bytes());
        b[8..10].copy_from_slice(&(self.entries.len() as u16).to_be_bytes());
        b[10..12].fill(0);
        let mut at = 12;
        for e in &self.entries {
            b[at..at + 4].copy_from_slice(&e.object.to_be_bytes());
            b[at + 4] = e.sbn;
            b[at + 5] = e.flags;
            b[at + 6..at + 8].copy_from_slice(&(e.ranges.len() as u16).to_be_bytes());
            b[at + 8..at + 12].copy_from_slice(&e.need.to_be_bytes());
            at += NACK_ENTRY_LEN;
            for &(first, n) in &e.ranges {
                b[at..at + 4].copy_from_slice(&first.to_be_bytes());
                b[at + 4..at + 8].copy_from_slice(&n.to_be_bytes());
                at += NACK_RANGE_LEN;
            }
        }
        Ok(emit_crc(buf, HEADER_LEN + at))
    }
}
