//! The sending side of the carousel.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcast_fec::{FecId, Oti, OtiError, codec_for, copy_source_symbol};

use super::encoders::Encoders;
use super::{ObjectId, SessionId};
use crate::wire::{
    self, DATA_OVERHEAD, DEFAULT_MAX_DATAGRAM, INFO_HEADER_LEN, InfoRepr, MAX_DATAGRAM,
    MAX_NAME_LEN, SYMBOL_ALIGNMENT,
};

/// How many times the sender goes over its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounds {
    /// Stop after this many rounds (at least 1).
    Fixed(u32),
    /// Loop and repeat until the driver stops: a carousel for late joiners.
    Unlimited,
}

/// Sender settings. Start from [`SenderConfig::default`].
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Session id stamped on every datagram.
    pub session: SessionId,
    /// Largest datagram (UDP payload) to emit. Default 1232, the IPv6 minimum MTU less headers.
    pub max_datagram: usize,
    /// Symbol size T. `None` picks the largest multiple of 4 that fits `max_datagram`.
    pub symbol_size: Option<u16>,
    /// Wanted source symbols per block (K). Default 1000.
    pub block_symbols: u32,
    /// FEC scheme. Default RaptorQ.
    pub fec: FecId,
    /// Repair share of the first round: each block sends K source symbols and
    /// ceil(K × this) fresh repair symbols. Default 0.1.
    pub repair_overhead: f64,
    /// Repair share of every later round: ceil(K × this) fresh repair symbols per
    /// block. Default 0.1. With [`FecId::NoCode`] later rounds replay every source
    /// symbol instead.
    pub round_repair: f64,
    /// Number of rounds. Default `Fixed(1)`.
    pub rounds: Rounds,
    /// Pacing rate in bytes of UDP payload per second; `None` sends unpaced.
    pub rate: Option<u64>,
    /// Token bucket depth in bytes: how far a paced sender may burst. Default 16 KiB.
    pub burst: u64,
    /// Blocks interleaved together, so a burst of loss is spread over this many
    /// blocks. Receivers buffer about this many blocks at once. Default 16.
    pub interleave: u32,
    /// An OBJECT_INFO packet is repeated after this many DATA packets. Default 64.
    pub info_interval: u32,
    /// Worker threads that build block encoders ahead of need. Default 0: each
    /// encoder is built on the calling thread at its block's first repair
    /// symbol. The datagrams are the same either way; workers only take the
    /// encoding work off the sending thread.
    pub encoder_threads: usize,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            session: SessionId(1),
            max_datagram: DEFAULT_MAX_DATAGRAM,
            symbol_size: None,
            block_symbols: 1000,
            fec: FecId::RaptorQ,
            repair_overhead: 0.1,
            round_repair: 0.1,
            rounds: Rounds::Fixed(1),
            rate: None,
            burst: 16 * 1024,
            interleave: 16,
            info_interval: 64,
            encoder_threads: 0,
        }
    }
}

impl SenderConfig {
    /// The symbol size T this configuration uses.
    pub fn effective_symbol_size(&self) -> u16 {
        self.symbol_size.unwrap_or_else(|| {
            let room = self
                .max_datagram
                .saturating_sub(DATA_OVERHEAD)
                .min(u16::MAX as usize);
            let al = SYMBOL_ALIGNMENT as usize;
            (room / al * al) as u16
        })
    }
}

/// Why a sender refused its configuration or an object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SenderError {
    /// `max_datagram` is outside what the format allows.
    #[error("max datagram {0} is outside {min}..={MAX_DATAGRAM}", min = DATA_OVERHEAD + 4)]
    MaxDatagram(usize),
    /// The symbol size does not fit a datagram or is not a multiple of the alignment.
    #[error(
        "symbol size {t} must be a non-zero multiple of {SYMBOL_ALIGNMENT} and at most {max} (max datagram less {DATA_OVERHEAD} bytes of header)"
    )]
    SymbolSize {
        /// Symbol size asked for.
        t: u16,
        /// Largest that fits.
        max: usize,
    },
    /// A share or count in the configuration is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The object cannot be described by an OTI.
    #[error("object cannot be sent: {0}")]
    Object(#[from] OtiError),
    /// The object's name is too long for an OBJECT_INFO packet.
    #[error("object name is {len} bytes; at most {max} fit")]
    NameTooLong {
        /// Length of the name.
        len: usize,
        /// Longest that fits.
        max: usize,
    },
    /// The session already holds 2^32 objects.
    #[error("too many objects in one session")]
    TooManyObjects,
}

/// Something the sender wants its driver to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    /// A round over all objects finished (numbered from 1).
    RoundComplete {
        /// The round that finished.
        round: u32,
    },
    /// The last round finished; the sender has nothing more to send.
    Finished,
}

/// Counters kept by a [`Sender`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Datagrams emitted.
    pub packets_sent: u64,
    /// Bytes of UDP payload emitted.
    pub bytes_sent: u64,
    /// DATA packets carrying a source symbol.
    pub source_symbols_sent: u64,
    /// DATA packets carrying a repair symbol (or, with no-code, a replayed source symbol).
    pub repair_symbols_sent: u64,
    /// OBJECT_INFO packets emitted.
    pub info_packets_sent: u64,
    /// Rounds completed.
    pub rounds_completed: u32,
}

struct Object {
    id: ObjectId,
    data: Arc<Vec<u8>>,
    oti: Oti,
    hash: [u8; 32],
    name: String,
    /// Next fresh ESI per block.
    next_esi: Vec<u32>,
}

struct Window {
    first: u32,
    plan: VecDeque<(u8, u32)>,
}

/// The sans-IO carousel sender.
///
/// Objects are sent in rounds. In the first round each block's source symbols
/// go out, then `repair_overhead` × K fresh repair symbols; every later round
/// sends `round_repair` × K further fresh symbols. Blocks are interleaved
/// `interleave` at a time. An OBJECT_INFO packet opens each object in each round
/// and repeats every `info_interval` DATA packets.
pub struct Sender {
    config: SenderConfig,
    t: u16,
    objects: Vec<Object>,
    round: u32,
    object: usize,
    window: Option<Window>,
    encoders: Encoders,
    info_pending: bool,
    since_info: u32,
    finished: bool,
    tokens: f64,
    last: Option<Instant>,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
}

impl Sender {
    /// Checks the configuration and makes an idle sender.
    pub fn new(config: SenderConfig) -> Result<Self, SenderError> {
        if !(DATA_OVERHEAD + 4..=MAX_DATAGRAM).contains(&config.max_datagram) {
            return Err(SenderError::MaxDatagram(config.max_datagram));
        }
        let t = config.effective_symbol_size();
        let max_t = config.max_datagram - DATA_OVERHEAD;
        if t == 0 || t as usize > max_t || !t.is_multiple_of(SYMBOL_ALIGNMENT as u16) {
            return Err(SenderError::SymbolSize { t, max: max_t });
        }
        if !(0.0..=1000.0).contains(&config.repair_overhead)
            || !(0.0..=1000.0).contains(&config.round_repair)
        {
            return Err(SenderError::Config("repair shares must lie in 0..=1000"));
        }
        if config.block_symbols == 0 || config.interleave == 0 || config.info_interval == 0 {
            return Err(SenderError::Config(
                "block_symbols, interleave and info_interval must be at least 1",
            ));
        }
        if config.rounds == Rounds::Fixed(0) {
            return Err(SenderError::Config("rounds must be at least 1"));
        }
        if config.rate == Some(0) {
            return Err(SenderError::Config("rate must be above 0"));
        }
        let tokens = config.burst.max(config.max_datagram as u64) as f64;
        // With workers, the next window's encoders are built while this
        // window's are in use.
        let cached = config.interleave as usize * if config.encoder_threads > 0 { 2 } else { 1 };
        Ok(Self {
            encoders: Encoders::new(config.fec, config.encoder_threads, cached),
            t,
            config,
            objects: Vec::new(),
            round: 0,
            object: 0,
            window: None,
            info_pending: true,
            since_info: 0,
            finished: false,
            tokens,
            last: None,
            events: VecDeque::new(),
            stats: SenderStats::default(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// The symbol size T in use.
    pub fn symbol_size(&self) -> u16 {
        self.t
    }

    /// Queues an object for sending, under `name` (a file name, or empty).
    pub fn add_object(
        &mut self,
        data: impl Into<Arc<Vec<u8>>>,
        name: &str,
    ) -> Result<ObjectId, SenderError> {
        let data = data.into();
        let hash = *blake3::hash(&data).as_bytes();
        self.add_object_hashed(data, hash, name)
    }

    /// Like [`Sender::add_object`], for a caller that has already computed
    /// `hash`, the BLAKE3 hash of `data` (for example while reading it).
    /// Receivers verify it: a wrong hash makes every receiver fail the object.
    pub fn add_object_hashed(
        &mut self,
        data: impl Into<Arc<Vec<u8>>>,
        hash: [u8; 32],
        name: &str,
    ) -> Result<ObjectId, SenderError> {
        let data = data.into();
        let max_name =
            (self.config.max_datagram - INFO_HEADER_LEN - wire::CRC_LEN).min(MAX_NAME_LEN);
        if name.len() > max_name {
            return Err(SenderError::NameTooLong {
                len: name.len(),
                max: max_name,
            });
        }
        let id = u32::try_from(self.objects.len()).map_err(|_| SenderError::TooManyObjects)?;
        let oti = Oti::for_object(
            data.len() as u64,
            self.t,
            self.config.block_symbols,
            SYMBOL_ALIGNMENT,
        )?;
        let next_esi = oti.blocks().map(|b| b.source_symbols).collect();
        self.objects.push(Object {
            id: ObjectId(id),
            hash,
            data,
            oti,
            name: name.to_owned(),
            next_esi,
        });
        self.finished = false;
        Ok(ObjectId(id))
    }

    /// The OTI chosen for an object.
    pub fn object_oti(&self, id: ObjectId) -> Option<Oti> {
        self.objects.get(id.0 as usize).map(|o| o.oti)
    }

    /// Whether the last round has been sent.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Counters so far.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }

    /// Advances the clock; the sender has no timers of its own besides pacing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refill(now);
    }

    /// When the sender next wants `poll_transmit` called: now, if it has tokens;
    /// later, if pacing holds it back; `None` if unpaced or idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished || self.objects.is_empty() {
            return None;
        }
        let rate = self.config.rate? as f64;
        let last = self.last?;
        if self.tokens > 0.0 {
            Some(last)
        } else {
            Some(last + Duration::from_secs_f64(-self.tokens / rate + 1e-9))
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    fn refill(&mut self, now: Instant) {
        if let (Some(rate), Some(last)) = (self.config.rate, self.last) {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            let cap = self.config.burst.max(self.config.max_datagram as u64) as f64;
            self.tokens = (self.tokens + dt * rate as f64).min(cap);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }

    /// Writes the next datagram into `buf` and returns its length, or `None` if
    /// the sender is finished, idle, or held back by pacing.
    ///
    /// # Panics
    /// If `buf` is shorter than `max_datagram` (API misuse).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        assert!(
            buf.len() >= self.config.max_datagram,
            "poll_transmit needs a buffer of at least max_datagram bytes"
        );
        if self.finished || self.objects.is_empty() {
            return None;
        }
        self.refill(now);
        if self.config.rate.is_some() && self.tokens <= 0.0 {
            return None;
        }
        let len = self.next_packet(buf)?;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        if self.config.rate.is_some() {
            self.tokens -= len as f64;
        }
        Some(len)
    }

    fn next_packet(&mut self, buf: &mut [u8]) -> Option<usize> {
        // Bounded: each pass either emits or advances the cursor, and a round
        // over objects that all have data emits something.
        loop {
            if self.info_pending {
                self.info_pending = false;
                self.since_info = 0;
                let o = &self.objects[self.object];
                let info = InfoRepr {
                    session: self.config.session.0,
                    object: o.id.0,
                    fec: self.config.fec,
                    oti: o.oti,
                    hash: o.hash,
                    name: &o.name,
                };
                let len = info.emit(buf).expect("name length checked in add_object");
                self.stats.info_packets_sent += 1;
                return Some(len);
            }
            if self.window.is_none() {
                self.window = Some(self.build_window(0));
            }
            let window = self.window.as_mut().expect("just built");
            if !window.plan.is_empty() && self.since_info >= self.config.info_interval {
                // Repeat the OBJECT_INFO, but only ahead of more DATA.
                self.info_pending = true;
                continue;
            }
            if let Some((sbn, esi)) = window.plan.pop_front() {
                let len = self.emit_data(sbn, esi, buf);
                self.since_info += 1;
                return Some(len);
            }
            if !self.advance() {
                return None;
            }
        }
    }

    /// Moves to the next window, object or round. Returns false once finished.
    fn advance(&mut self) -> bool {
        let first = self.window.take().map_or(0, |w| w.first);
        let z = self.objects[self.object].oti.source_blocks();
        let next = first + self.config.interleave;
        if next < z {
            self.window = Some(self.build_window(next));
            return true;
        }
        self.object += 1;
        self.info_pending = true;
        if self.object == self.objects.len() {
            self.object = 0;
            self.round += 1;
            self.stats.rounds_completed = self.round;
            self.events
                .push_back(SenderEvent::RoundComplete { round: self.round });
            if self.config.rounds == Rounds::Fixed(self.round) {
                self.finished = true;
                self.events.push_back(SenderEvent::Finished);
                return false;
            }
        }
        true
    }

    fn build_window(&mut self, first: u32) -> Window {
        let round = self.round;
        let fec = self.config.fec;
        let share = if round == 0 {
            self.config.repair_overhead
        } else {
            self.config.round_repair
        };
        let o = &mut self.objects[self.object];
        let z = o.oti.source_blocks();
        let last = (first + self.config.interleave).min(z);
        let blocks: Vec<_> = (first..last).filter_map(|s| o.oti.block(s)).collect();
        let mut plan = VecDeque::new();
        let send_source = round == 0 || fec == FecId::NoCode;
        if send_source {
            let max_k = blocks.iter().map(|b| b.source_symbols).max().unwrap_or(0);
            for i in 0..max_k {
                for b in &blocks {
                    if i < b.source_symbols {
                        plan.push_back((b.sbn, i));
                    }
                }
            }
        }
        if fec == FecId::RaptorQ {
            let limit = codec_for(fec).esi_limit(0);
            let counts: Vec<u32> = blocks
                .iter()
                .map(|b| (b.source_symbols as f64 * share).ceil() as u32)
                .collect();
            let max_n = counts.iter().copied().max().unwrap_or(0);
            for i in 0..max_n {
                for (b, &n) in blocks.iter().zip(&counts) {
                    if i < n {
                        let next = &mut o.next_esi[b.sbn as usize];
                        plan.push_back((b.sbn, *next));
                        *next += 1;
                        if *next >= limit {
                            *next = b.source_symbols;
                        }
                    }
                }
            }
        }
        if fec == FecId::RaptorQ && share > 0.0 {
            let object = o.id.0;
            let ahead = if send_source {
                last
            } else {
                (last + self.config.interleave).min(z)
            };
            for sbn in first..ahead {
                if let Some(b) = o.oti.block(sbn) {
                    self.encoders.prepare((object, b.sbn), &o.oti, &b, &o.data);
                }
            }
        }
        Window { first, plan }
    }

    fn emit_data(&mut self, sbn: u8, esi: u32, buf: &mut [u8]) -> usize {
        let o = &self.objects[self.object];
        let block = o.oti.block(sbn as u32).expect("planned block exists");
        let sym = wire::data::emit_data_header(
            buf,
            self.config.session.0,
            o.id.0,
            self.config.fec,
            &o.oti,
            sbn,
            esi,
        );
        let out = &mut buf[sym];
        let data = &o.data[block.range()];
        if esi < block.source_symbols {
            copy_source_symbol(data, esi, out);
        } else {
            self.encoders
                .get((o.id.0, sbn), &o.oti, &block, &o.data)
                .write_symbol(esi, out)
                .expect("ESI and length are in range");
        }
        // A source symbol sent again in a later round (no-code replay) repairs
        // loss, so it counts as repair.
        if esi < block.source_symbols && self.round == 0 {
            self.stats.source_symbols_sent += 1;
        } else {
            self.stats.repair_symbols_sent += 1;
        }
        wire::data::finish_data(buf, &o.oti)
    }
}
