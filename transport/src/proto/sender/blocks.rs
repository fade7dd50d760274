//! The objects a sender holds and the hand-offs for their blocks: the
//! objects added, their place in the global block sequence (protocol.md
//! §13.3, Window), which are retired, the blocks of block-supplied objects
//! handed over or asked for ([`BlockRequest`]), and the block encoders
//! (built here or asked of the driver's workers). Nothing here decides what
//! to send or when: no window plan, no receiver, no pacing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use groupcast_fec::{BlockInfo, Codec, FecId, Oti, copy_source_symbol};

use super::config::{SenderError, SenderStats};
use crate::proto::ObjectId;
use crate::proto::encoders::{BlockBytes, BuiltEncoder, EncoderRequest, Encoders};
use crate::wire::{self, InfoRepr};

/// Buffers of evicted blocks kept for the driver's next reads.
const SPARE_BLOCK_BUFFERS: usize = 2;

pub(super) struct Object {
    pub(super) id: ObjectId,
    /// The whole object, or `None` when the driver supplies it block by
    /// block (`Sender::add_object_blocks`).
    pub(super) data: Option<Arc<Vec<u8>>>,
    pub(super) oti: Oti,
    pub(super) hash: [u8; 32],
    pub(super) name: String,
}

/// A block of an object added with `Sender::add_object_blocks` that the
/// sender needs: read `len` bytes at `offset` of the object and hand them to
/// `Sender::handle_block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRequest {
    /// The object.
    pub object: ObjectId,
    /// Its block.
    pub sbn: u8,
    /// The block's first byte within the object.
    pub offset: u64,
    /// The block's length in bytes.
    pub len: usize,
}

/// Blocks of block-supplied objects the sender holds: those it was handed,
/// at most `capacity`, the least recently used evicted first, and those
/// asked for and not yet handed.
struct LoadedBlocks {
    blocks: HashMap<(u32, u8), Arc<Vec<u8>>>,
    /// Least recently used first.
    order: VecDeque<(u32, u8)>,
    asked: HashSet<(u32, u8)>,
    requests: VecDeque<BlockRequest>,
    capacity: usize,
    bytes: u64,
    /// Buffers of evicted blocks nobody else held, emptied, for the driver
    /// to read the next blocks into (`Sender::take_block_buffer`).
    spare: Vec<Vec<u8>>,
}

/// The objects, their blocks and the blocks' encoders.
pub(super) struct Blocks {
    pub(super) objects: Vec<Object>,
    /// Global sequence number of each object's block 0.
    pub(super) prefix: Vec<u64>,
    /// Objects before this one are retired (`Sender::retire_before`).
    pub(super) retired: u32,
    loaded: LoadedBlocks,
    pub(super) encoders: Encoders,
    /// Whether the FEC scheme makes repair symbols (else rounds replay source).
    pub(super) repairs: bool,
}

impl Blocks {
    /// No objects; `capacity` loaded blocks at most, `cached` encoders.
    pub(super) fn new(
        codec: &'static dyn Codec,
        workers: bool,
        cached: usize,
        capacity: usize,
        repairs: bool,
    ) -> Self {
        Self {
            objects: Vec::new(),
            prefix: Vec::new(),
            retired: 0,
            loaded: LoadedBlocks {
                blocks: HashMap::new(),
                order: VecDeque::new(),
                asked: HashSet::new(),
                requests: VecDeque::new(),
                capacity,
                bytes: 0,
                spare: Vec::new(),
            },
            encoders: Encoders::new(codec, workers, cached),
            repairs,
        }
    }

    /// Adds an object after the others; its id.
    pub(super) fn push(
        &mut self,
        data: Option<Arc<Vec<u8>>>,
        oti: Oti,
        hash: [u8; 32],
        name: &str,
    ) -> ObjectId {
        let id = ObjectId(self.objects.len() as u32);
        self.prefix.push(self.total_blocks());
        self.objects.push(Object {
            id,
            hash,
            data,
            oti,
            name: name.to_owned(),
        });
        id
    }

    /// The next block asked of the driver.
    pub(super) fn poll_request(&mut self) -> Option<BlockRequest> {
        self.loaded.requests.pop_front()
    }

    /// An emptied buffer of a block let go.
    pub(super) fn take_spare(&mut self) -> Option<Vec<u8>> {
        self.loaded.spare.pop()
    }

    /// Takes a block handed over, if it was asked for and is of the
    /// block's length, evicting the least recently used past `capacity`.
    pub(super) fn handle_block(
        &mut self,
        object: ObjectId,
        sbn: u8,
        data: Vec<u8>,
        stats: &mut SenderStats,
    ) -> Result<(), SenderError> {
        let key = (object.0, sbn);
        let want = self
            .objects
            .get(object.0 as usize)
            .and_then(|o| o.oti.block(sbn as u32))
            .map(|b| b.len as usize);
        let loaded = &mut self.loaded;
        if !loaded.asked.contains(&key) || want != Some(data.len()) {
            return Err(SenderError::Config(
                "a block handed over that was not asked for, or of the wrong length",
            ));
        }
        loaded.asked.remove(&key);
        while loaded.blocks.len() >= loaded.capacity {
            let Some(old) = loaded.order.pop_front() else {
                break;
            };
            if let Some(b) = loaded.blocks.remove(&old) {
                loaded.bytes -= b.len() as u64;
                if loaded.spare.len() < SPARE_BLOCK_BUFFERS
                    && let Ok(mut buf) = Arc::try_unwrap(b)
                {
                    buf.clear();
                    loaded.spare.push(buf);
                }
            }
        }
        loaded.bytes += data.len() as u64;
        stats.loaded_bytes = loaded.bytes;
        stats.peak_loaded_bytes = stats.peak_loaded_bytes.max(loaded.bytes);
        stats.blocks_loaded += 1;
        loaded.blocks.insert(key, Arc::new(data));
        loaded.order.push_back(key);
        Ok(())
    }

    /// A block's bytes if the sender holds them (touching it in the cache of
    /// loaded blocks); if not, asks the driver for them, once.
    pub(super) fn block_bytes(&mut self, object: u32, sbn: u8) -> Option<BlockBytes> {
        if object < self.retired {
            return None;
        }
        let o = self.objects.get(object as usize)?;
        let block = o.oti.block(sbn as u32)?;
        if let Some(d) = &o.data {
            return Some(BlockBytes::new(
                Arc::clone(d),
                block.offset as usize,
                block.len as usize,
            ));
        }
        let key = (object, sbn);
        let loaded = &mut self.loaded;
        if let Some(b) = loaded.blocks.get(&key) {
            if let Some(i) = loaded.order.iter().rposition(|k| *k == key)
                && i + 1 != loaded.order.len()
            {
                loaded.order.remove(i);
                loaded.order.push_back(key);
            }
            return Some(BlockBytes::new(Arc::clone(b), 0, b.len()));
        }
        if loaded.asked.insert(key) {
            loaded.requests.push_back(BlockRequest {
                object: ObjectId(object),
                sbn,
                offset: block.offset,
                len: block.len as usize,
            });
        }
        None
    }

    /// Drops what is held of the objects before `upto`.
    pub(super) fn retire_before(&mut self, upto: u32, stats: &mut SenderStats) {
        for o in &mut self.objects[self.retired as usize..upto as usize] {
            o.data = None;
        }
        self.retired = upto;
        let loaded = &mut self.loaded;
        loaded.blocks.retain(|k, b| {
            let keep = k.0 >= upto;
            if !keep {
                loaded.bytes -= b.len() as u64;
            }
            keep
        });
        loaded.order.retain(|k| k.0 >= upto);
        loaded.asked.retain(|k| k.0 >= upto);
        loaded.requests.retain(|r| r.object.0 >= upto);
        stats.loaded_bytes = loaded.bytes;
    }

    /// Source blocks of every object added, in the sequence STATUS windows
    /// and flow control count in.
    pub(super) fn total_blocks(&self) -> u64 {
        self.prefix.last().copied().unwrap_or(0)
            + self
                .objects
                .last()
                .map_or(0, |o| o.oti.source_blocks() as u64)
    }

    /// The global block sequence number of a STATUS window (object, SBN):
    /// past every block for an object not added.
    pub(super) fn edge_of(&self, (object, sbn): (u32, u8)) -> u64 {
        match self.prefix.get(object as usize) {
            Some(&p) => {
                p + (sbn as u64).min(self.objects[object as usize].oti.source_blocks() as u64)
            }
            None => self.total_blocks(),
        }
    }

    /// The window (object, SBN) of the global block `edge`, as a STATUS
    /// names it: the inverse of [`Blocks::edge_of`]; (objects, 0) past
    /// every block.
    pub(super) fn window_of(&self, edge: u64) -> (u32, u8) {
        let i = self.prefix.partition_point(|&p| p <= edge);
        match i.checked_sub(1) {
            Some(j) if edge - self.prefix[j] < self.objects[j].oti.source_blocks() as u64 => {
                (j as u32, (edge - self.prefix[j]) as u8)
            }
            _ => (self.objects.len() as u32, 0),
        }
    }

    /// The first object not wholly below the global block `edge`.
    pub(super) fn first_not_below(&self, edge: u64) -> u32 {
        let i = self.prefix.partition_point(|&p| p < edge);
        // `prefix[i - 1] < edge <= prefix[i]`: object i - 1 is wholly below
        // only if it ends at or before the edge.
        let first = match i.checked_sub(1) {
            Some(j) if self.prefix[j] + self.objects[j].oti.source_blocks() as u64 > edge => j,
            _ => i,
        };
        first as u32
    }

    /// The bytes of the blocks with global sequence numbers `from..to`, each
    /// block of an object counted as its share of the object (F / Z), or
    /// some number of them at least `cap`.
    pub(super) fn bytes_between(&self, from: u64, to: u64, cap: u64) -> u64 {
        let mut bytes = 0u64;
        let mut i = self
            .prefix
            .partition_point(|&p| p <= from)
            .saturating_sub(1);
        while let (Some(&start), Some(o)) = (self.prefix.get(i), self.objects.get(i)) {
            if start >= to || bytes >= cap {
                break;
            }
            let z = o.oti.source_blocks() as u64;
            let (a, b) = (from.max(start), to.min(start + z));
            if b > a && z > 0 {
                bytes = bytes.saturating_add(
                    ((o.oti.transfer_length() as u128 * (b - a) as u128) / z as u128) as u64,
                );
            }
            i += 1;
        }
        bytes
    }

    /// The blocks `first..first + interleave` of `object` (those it has).
    pub(super) fn window_blocks(
        &self,
        object: usize,
        first: u32,
        interleave: u32,
    ) -> Vec<BlockInfo> {
        let oti = &self.objects[object].oti;
        let last = (first + interleave).min(oti.source_blocks());
        (first..last).filter_map(|s| oti.block(s)).collect()
    }

    /// Asks for the encoder of block `sbn` of `object`. A block not handed
    /// over yet asks for its encoder on arrival instead.
    pub(super) fn ask_encoder(&mut self, object: usize, sbn: u8) {
        if let Some(bytes) = self.block_bytes(object as u32, sbn) {
            let o = &self.objects[object];
            if let Some(b) = o.oti.block(sbn as u32) {
                self.encoders.prepare((o.id.0, sbn), &o.oti, &b, &bytes);
            }
        }
    }

    /// Whether sending this symbol means building the block's encoder first.
    pub(super) fn needs_build(&self, object: u32, sbn: u8, esi: u32) -> bool {
        let o = &self.objects[object as usize];
        self.repairs
            && o.oti
                .block(sbn as u32)
                .is_some_and(|b| esi >= b.source_symbols)
            && !self.encoders.has((o.id.0, sbn))
    }

    /// Whether sending this repair symbol may wait for the block's encoder
    /// (a block of at least `COSTLY_BLOCK_SYMBOLS` source symbols, with
    /// `wait` on) if a worker is building it: building it here too would
    /// double the work (on a busy host the workers fall behind the sending
    /// thread, and then the two built nearly every encoder twice). The
    /// block's key if so.
    pub(super) fn may_wait_for_encoder(
        &self,
        wait: bool,
        (object, sbn, esi): (u32, u8, u32),
    ) -> Option<(u32, u8)> {
        let o = &self.objects[object as usize];
        // A small block builds in microseconds: building it again here
        // costs less than the hand-over back from a worker.
        let costly = o.oti.block(sbn as u32).is_some_and(|b| {
            esi >= b.source_symbols && b.source_symbols >= crate::proto::COSTLY_BLOCK_SYMBOLS
        });
        (self.repairs && wait && costly).then_some((o.id.0, sbn))
    }

    /// The next encoder build for the driver's workers.
    pub(super) fn poll_encoder_request(&mut self) -> Option<EncoderRequest> {
        self.encoders.poll_request()
    }

    /// An encoder a worker built.
    pub(super) fn handle_encoder(&mut self, built: BuiltEncoder) {
        let oti = self.objects.get(built.object() as usize).map(|o| o.oti);
        self.encoders.handle_built(built, oti);
    }

    /// Writes a DATA packet of session and scheme `ids`, symbol `esi` of
    /// block `sbn` of `object`, from `bytes`, the block's, and counts it.
    pub(super) fn write_data(
        &mut self,
        (session, fec): (u64, FecId),
        (object, sbn, esi): (usize, u8, u32),
        replay: bool,
        bytes: &BlockBytes,
        buf: &mut [u8],
        stats: &mut SenderStats,
    ) -> usize {
        let o = &self.objects[object];
        let block = o.oti.block(sbn as u32).expect("planned block exists");
        let mut packet = wire::data::start_data(buf, session, o.id.0, fec, &o.oti, sbn, esi);
        let out = packet.symbol_mut();
        let data = bytes.as_slice();
        if esi < block.source_symbols {
            copy_source_symbol(data, esi, out);
        } else {
            let encoders = &mut self.encoders;
            encoders
                .get((o.id.0, sbn), &o.oti, &block, data)
                .write_symbol(esi, out)
                .expect("ESI and length are in range");
            stats.encoders_built_inline = encoders.built_here;
            stats.encoders_built_twice = encoders.built_twice;
        }
        // A source symbol sent again (a no-code replay) repairs loss, so it
        // counts as repair.
        if esi < block.source_symbols && !replay {
            stats.source_symbols_sent += 1;
        } else {
            stats.repair_symbols_sent += 1;
        }
        wire::data::finish_data(packet)
    }

    /// Writes the OBJECT_INFO of `object`, of session and scheme `ids`.
    pub(super) fn write_info(
        &self,
        (session, fec): (u64, FecId),
        object: usize,
        buf: &mut [u8],
    ) -> usize {
        let o = &self.objects[object];
        let info = InfoRepr {
            session,
            object: o.id.0,
            fec,
            oti: o.oti,
            hash: o.hash,
            name: &o.name,
        };
        info.write(buf).expect("name length checked in add_object")
    }
}
