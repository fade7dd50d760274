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

use std::collections::VecDeque;
use std::sync::Arc;

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
    /// Builds the encoder: CPU work (about as much as decoding the block),
    /// fit for any thread.
    pub fn build(self) -> BuiltEncoder {
        BuiltEncoder {
            key: self.key,
            oti: self.oti,
            encoder: build(self.codec, &self.oti, &self.block, self.data.as_slice()),
        }
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
    /// Asked of the driver, not back yet.
    Requested,
    Ready(Box<dyn BlockEncoder>),
}

/// Encoders by block, at most `capacity` of them, oldest evicted first.
pub(crate) struct Encoders {
    codec: &'static dyn Codec,
    offload: bool,
    slots: VecDeque<(Key, Slot)>,
    requests: VecDeque<EncoderRequest>,
    capacity: usize,
}

impl Encoders {
    pub(crate) fn new(codec: &'static dyn Codec, offload: bool, capacity: usize) -> Self {
        Self {
            codec,
            offload,
            slots: VecDeque::new(),
            requests: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn position(&self, key: Key) -> Option<usize> {
        self.slots.iter().position(|(k, _)| *k == key)
    }

    fn insert(&mut self, key: Key, slot: Slot) -> usize {
        while self.slots.len() >= self.capacity {
            self.slots.pop_front();
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
        self.requests.push_back(EncoderRequest {
            codec: self.codec,
            key,
            oti: *oti,
            block: *block,
            data: data.clone(),
        });
        self.insert(key, Slot::Requested);
    }

    /// The next build to hand to the driver.
    pub(crate) fn poll_request(&mut self) -> Option<EncoderRequest> {
        self.requests.pop_front()
    }

    /// An encoder the driver built. One that is no longer wanted (evicted, or
    /// built here meanwhile), or that does not match its block, is dropped.
    pub(crate) fn handle_built(&mut self, built: BuiltEncoder, oti: Option<Oti>) {
        if oti != Some(built.oti) {
            return;
        }
        if let Some(i) = self.position(built.key)
            && matches!(self.slots[i].1, Slot::Requested)
        {
            self.slots[i].1 = Slot::Ready(built.encoder);
        }
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
            None => self.insert(key, Slot::Ready(build(self.codec, oti, block, data))),
        };
        let slot = &mut self.slots[i].1;
        if matches!(slot, Slot::Requested) {
            // Not back in time: build it here (the driver's copy is dropped).
            *slot = Slot::Ready(build(self.codec, oti, block, data));
        }
        match slot {
            Slot::Ready(enc) => enc.as_mut(),
            Slot::Requested => unreachable!("built above"),
        }
    }
}
