//! Sans-IO IKE engines.
//!
//! Protocol logic here never does IO and never reads a clock or the OS random generator:
//! bytes, the time (`now: Instant`) and a random generator come in from the caller;
//! datagrams, events and deadlines come out (STYLE.md 1).
//!
//! - [`v2`]: the IKEv2 engine ([`v2::Endpoint`]).
//!
//! Building blocks, each usable and tested on its own:
//!
//! - [`ts`]: traffic selectors, narrowing, TS_UNACCEPTABLE (RFC 7296 §2.9).
//! - [`proposal`]: proposals and their selection, NO_PROPOSAL_CHOSEN in words (§3.3).
//! - [`cookie`]: stateless cookies (§2.6).
//! - [`halfopen`]: who gets half-open state under a flood: per-address and global limits,
//!   a key-exchange budget, summarised refusals.
//! - [`retransmit`]: message IDs, retransmission with back-off, the responder's response
//!   cache, liveness (§2.1–§2.4).
//! - `sim` (tests, or the `sim` feature): a two-peer network simulation.

use std::net::SocketAddr;

pub mod cookie;
pub mod halfopen;
pub mod proposal;
pub mod retransmit;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod ts;
pub mod v2;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our address (source): port 500 or 4500.
    pub local: SocketAddr,
    /// The peer's address (destination).
    pub remote: SocketAddr,
    /// The UDP payload (with the non-ESP marker on port 4500).
    pub data: Vec<u8>,
}
