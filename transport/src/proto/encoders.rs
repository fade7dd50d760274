//! A bounded cache of block encoders, which the driver may build ahead.
//!
//! Building a RaptorQ encoder (the intermediate symbols of a block) costs about
//! as much as decoding the block, and the sender needs one before the first
//! repair symbol of every block. With builds handed out
//! ([`SenderConfig::encoder_threads`](super::SenderConfig) above 0), the sender
//! asks its driver for a block's encoder when it starts sending the block's
//! source symbols ([`EncoderRequest`], from `Sender::poll_encoder_request`),
//! and the driver builds it where it likes (on worker threads) and hands it
//! back (`Sender::handle_encoder`) before repair is due. If it is not back in
//! time, the sender builds it itself. Encoding is deterministic, so the
//! symbols are the same either way; only where the work is done differs. This
//! module starts no thread and never waits.
//!
//! Each request carries a claim that whoever starts the build takes first: a
//! request the sender has built itself meanwhile, or evicted, is skipped by
//! the worker that takes it later ([`EncoderRequest::build`] gives `None`).
//! On a busy host the workers fall behind the send loop, and without the
//! claim both built the same blocks: about twice the encoding work.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use groupcast_fec::{BlockEncoder, BlockInfo, Codec, Oti};

/// Which block: (object index, SBN).
pub(crate) type Key = (u32, u8);

/// A block whose encoder the sender would like built off its own thread: see
/// [`EncoderRequest::build`]. Hand the result to `Sender::handle_encoder`.
pub struct EncoderRequest {
    codec: &'static dyn Codec,
    key: Key,
    oti: Oti,
    block: BlockInfo,
    data: BlockBytes,
    claim: Claim,
}

/// Set by whoever starts a build (a worker or the sender), or by the sender
/// when it no longer wants the encoder; a build is started only by the one
/// that set it.
#[derive(Clone, Default)]
struct Claim(Arc<AtomicBool>);

impl Claim {
    /// Whether this call took the claim (it was free).
    fn take(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }

    /// Whether someone took the claim (a worker started the build, or the
    /// sender built or gave up the encoder).
    fn is_taken(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A block's bytes, shared: a range of an object held whole, or a block read
/// on its own.
#[derive(Clone)]
pub(crate) struct BlockBytes {
    buf: Arc<Vec<u8>>,
    start: usize,
    len: usize,
}

impl BlockBytes {
    /// `len` bytes of `buf` from `start` (within it).
    pub(crate) fn new(buf: Arc<Vec<u8>>, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= buf.len());
        Self { buf, start, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for EncoderRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderRequest")
            .field("object", &self.key.0)
            .field("sbn", &self.key.1)
            .finish()
    }
}

impl EncoderRequest {
    /// The block whose encoder this asks for: its object and SBN.
    pub fn block(&self) -> (crate::ObjectId, u8) {
        (crate::ObjectId(self.key.0), self.key.1)
    }

    /// Builds the encoder: CPU work (about as much as decoding the block),
    /// fit for any thread. `None`, without any work, when the sender has
    /// built it itself meanwhile or no longer wants it.
    pub fn build(self) -> Option<BuiltEncoder> {
        if !self.claim.take() {
            return None;
        }
        Some(BuiltEncoder {
            key: self.key,
            oti: self.oti,
            encoder: build(self.codec, &self.oti, &self.block, self.data.as_slice()),
        })
    }
}

/// An encoder built from an [`EncoderRequest`], for `Sender::handle_encoder`.
pub struct BuiltEncoder {
    key: Key,
    oti: Oti,
    encoder: Box<dyn BlockEncoder>,
}

impl BuiltEncoder {
    /// The object (index) whose block this encodes.
    pub(crate) fn object(&self) -> u32 {
        self.key.0
    }
}

impl std::fmt::Debug for BuiltEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltEncoder")
            .field("object", &self.key.0)
            .field("sbn", &self.key.1)
            .finish()
    }
}

fn build(
    codec: &'static dyn Codec,
    oti: &Oti,
    block: &BlockInfo,
    data: &[u8],
) -> Box<dyn BlockEncoder> {
    // Source symbols the sender copies from the block itself.
    codec
        .repair_encoder(oti, block, data)
        .expect("block data matches its OTI")
}

enum Slot {
    /// Asked of the driver, not back yet; since when the sender has waited
    /// for it, if it has.
    Requested(Claim, Option<Instant>),
    Ready(Box<dyn BlockEncoder>),
}

impl Slot {
    /// Tells a worker that has not started this build not to.
    fn release(self) {
        if let Slot::Requested(claim, _) = self {
            claim.take();
        }
    }
}

/// How long the sender waits for a build a worker has started before it
/// builds the encoder itself: a build takes a few milliseconds; a worker
/// gone quiet must not stall the sender.
pub(crate) const MAX_BUILD_WAIT: Duration = Duration::from_millis(50);

/// Encoders by block, at most `capacity` of them, oldest evicted first.
pub(crate) struct Encoders {
    codec: &'static dyn Codec,
    offload: bool,
    slots: VecDeque<(Key, Slot)>,
    requests: VecDeque<EncoderRequest>,
    capacity: usize,
    /// Encoders built on the sending thread ([`Encoders::get`]).
    pub(crate) built_here: u64,
    /// Of those, builds a worker had already started: done twice.
    pub(crate) built_twice: u64,
}

impl Encoders {
    pub(crate) fn new(codec: &'static dyn Codec, offload: bool, capacity: usize) -> Self {
        Self {
            codec,
            offload,
            slots: VecDeque::new(),
            requests: VecDeque::new(),
            capacity: capacity.max(1),
            built_here: 0,
            built_twice: 0,
        }
    }

    fn position(&self, key: Key) -> Option<usize> {
        self.slots.iter().position(|(k, _)| *k == key)
    }

    fn insert(&mut self, key: Key, slot: Slot) -> usize {
        while self.slots.len() >= self.capacity {
            if let Some((_, slot)) = self.slots.pop_front() {
                slot.release();
            }
        }
        self.slots.push_back((key, slot));
        self.slots.len() - 1
    }

    /// Whether the block's encoder is built or asked for.
    pub(crate) fn has(&self, key: Key) -> bool {
        self.position(key).is_some()
    }

    /// Asks the driver for a block's encoder, if builds are handed out and the
    /// encoder is neither built nor asked for.
    pub(crate) fn prepare(&mut self, key: Key, oti: &Oti, block: &BlockInfo, data: &BlockBytes) {
        if !self.offload || self.position(key).is_some() {
            return;
        }
        let claim = Claim::default();
        self.requests.push_back(EncoderRequest {
            codec: self.codec,
            key,
            oti: *oti,
            block: *block,
            data: data.clone(),
            claim: claim.clone(),
        });
        self.insert(key, Slot::Requested(claim, None));
    }

    /// The next build to hand to the driver.
    /// (Requests whose encoder was evicted, or built here, before they went
    /// out are not handed out at all.)
    pub(crate) fn poll_request(&mut self) -> Option<EncoderRequest> {
        while let Some(req) = self.requests.pop_front() {
            if !req.claim.is_taken() {
                return Some(req);
            }
        }
        None
    }

    /// An encoder the driver built. One that is no longer wanted (evicted, or
    /// built here meanwhile), or that does not match its block, is dropped.
    pub(crate) fn handle_built(&mut self, built: BuiltEncoder, oti: Option<Oti>) {
        if oti != Some(built.oti) {
            return;
        }
        if let Some(i) = self.position(built.key)
            && matches!(self.slots[i].1, Slot::Requested(..))
        {
            self.slots[i].1 = Slot::Ready(built.encoder);
        }
    }

    /// Whether a worker is building the block's encoder now (it took the
    /// request and has not handed the encoder back), and until when the
    /// sender waits for it rather than build it a second time itself: at
    /// most [`MAX_BUILD_WAIT`] from the first time it asked at or after
    /// `now`. `None`: nobody is building it, or the wait is over.
    pub(crate) fn building_elsewhere(&mut self, key: Key, now: Instant) -> Option<Instant> {
        let i = self.position(key)?;
        let Slot::Requested(claim, waited) = &mut self.slots[i].1 else {
            return None;
        };
        if !claim.is_taken() {
            return None;
        }
        let until = *waited.get_or_insert(now) + MAX_BUILD_WAIT;
        (now < until).then_some(until)
    }

    /// The block's encoder: the one the driver built, or one built here now.
    pub(crate) fn get(
        &mut self,
        key: Key,
        oti: &Oti,
        block: &BlockInfo,
        data: &[u8],
    ) -> &mut dyn BlockEncoder {
        let i = match self.position(key) {
            Some(i) => i,
            None => {
                self.built_here += 1;
                self.insert(key, Slot::Ready(build(self.codec, oti, block, data)))
            }
        };
        let slot = &mut self.slots[i].1;
        if let Slot::Requested(claim, _) = slot {
            // Not back in time: build it here. A worker that has not started
            // it skips it; one that has builds it for nothing.
            self.built_here += 1;
            if !claim.take() {
                self.built_twice += 1;
            }
            *slot = Slot::Ready(build(self.codec, oti, block, data));
        }
        match slot {
            Slot::Ready(enc) => enc.as_mut(),
            Slot::Requested(..) => unreachable!("built above"),
        }
    }
}
