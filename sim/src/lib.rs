//! groupcast-sim: a deterministic discrete-event network simulator.
//!
//! It drives the *real* sans-IO [`groupcast::Sender`] and [`groupcast::Receiver`]
//! (real packets, real RaptorQ, real BLAKE3 verification) over simulated links,
//! so that results measured here are results of the protocol code itself.
//!
//! - A virtual clock and an event heap ordered by (time, sequence), so that runs
//!   are reproducible: the same seed gives the same report and trace hash.
//! - One seeded RNG per receiver link.
//! - Impairments per link: Bernoulli loss, reordering, duplication, delay and
//!   jitter; a shared bottleneck with a finite FIFO queue in front of all links.
//! - Every byte a receiver hands out is checked against the source as it is
//!   delivered, so byte-identity is verified without holding N copies.
//!
//! This crate holds network models, scenarios ([`scenario::Scenario`], from
//! flags or TOML suites) and running them; no protocol logic lives here.

pub mod analytic;
mod net;
mod run;
pub mod scenario;
pub mod suite;
pub mod units;

pub use net::{Bottleneck, Burst, LinkConfig};
pub use run::{
    Membership, ReceiverReport, SimConfig, SimError, SimReport, Simulation, carousel_overhead,
};
pub use scenario::{Outcome, Row, Scenario};
