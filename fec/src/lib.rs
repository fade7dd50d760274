//! Forward error correction for groupcast.
//!
//! This crate holds codecs only: it turns an object into source blocks
//! ([`Oti`], [`BlockInfo`]) and each block into an endless stream of encoding
//! symbols ([`BlockEncoder`]), and it rebuilds blocks from symbols that arrive
//! in any order ([`BlockDecoder`]). It knows nothing of packets, sockets or time.
//!
//! Two codecs carry data, both behind the object-safe [`Codec`] trait:
//! - [`RaptorQ`]: RFC 6330 through the `raptorq` crate's per-block API. A block
//!   yields its K source symbols, then fresh repair symbols on demand, up to the
//!   24-bit ESI space.
//! - [`NoCode`]: replication, no FEC. A block needs every one of its source
//!   symbols. It is the baseline for NACK/ARQ.
//!
//! A third, the probabilistic [`Model`] codec, serves the simulator of large
//! groups: it decides when a block decodes from RaptorQ's measured statistics
//! and carries no data.
//!
//! Every input that can come from the network is validated here before it
//! reaches `raptorq`, which panics on wrong symbol lengths, out-of-range ESIs
//! and malformed OTIs.
//!
//! ```
//! use groupcast_fec::{codec_for, FecId, Oti};
//!
//! let object: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
//! let oti = Oti::for_object(object.len() as u64, 1200, 40, 4).unwrap();
//! let codec = codec_for(FecId::RaptorQ);
//! let block = oti.block(0).unwrap();
//! let data = &object[block.range()];
//! let mut enc = codec.encoder(&oti, &block, data).unwrap();
//! let mut dec = codec.decoder(&oti, &block).unwrap();
//! let mut symbol = vec![0; oti.symbol_size() as usize];
//! // Skip the first 10 source symbols, and make up with repair symbols.
//! for esi in (10..block.source_symbols).chain(block.source_symbols..block.source_symbols + 12) {
//!     enc.write_symbol(esi, &mut symbol).unwrap();
//!     dec.push(esi, &symbol).unwrap();
//!     if dec.is_decoded() {
//!         break;
//!     }
//! }
//! assert_eq!(dec.take_decoded().unwrap(), data);
//! ```

mod codec;
mod model;
mod nocode;
mod oti;
mod raptorq_codec;

pub use codec::{
    BlockDecoder, BlockEncoder, Codec, FecError, FecId, Push, codec_for, copy_source_symbol,
};
pub use model::{CodecSet, Model, model_failure_probability, pseudo_random_bytes, splitmix64};
pub use nocode::NoCode;
pub use oti::{
    BlockInfo, MAX_ESI, MAX_SOURCE_BLOCKS, MAX_SOURCE_SYMBOLS_PER_BLOCK, MAX_TRANSFER_LENGTH,
    OTI_LEN, Oti, OtiError,
};
pub use raptorq_codec::{CHEAP_MARGIN, RaptorQ, raptorq_cheap_symbols, raptorq_hdpc_symbols};
