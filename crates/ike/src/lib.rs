//! Sans-IO IKE engines.
//!
//! Protocol logic here never does IO and never reads a clock or the OS random generator:
//! bytes, the time (`now: Instant`) and a random generator come in from the caller;
//! datagrams, events and deadlines come out (STYLE.md 1).
//!
//! - [`Ike`]: the one type the daemon owns: routes a datagram to IKEv1 or IKEv2 by its major
//!   version, merges their events, one command surface.
//! - [`v2`]: the IKEv2 engine ([`v2::Endpoint`]).
//! - [`v1`]: the IKEv1 engine ([`v1::Engine`]): main, aggressive and quick mode.
//!
//! Building blocks, each usable and tested on its own:
//!
//! - [`ts`]: traffic selectors, narrowing, TS_UNACCEPTABLE (RFC 7296 §2.9).
//! - [`proposal`]: proposals and their selection, NO_PROPOSAL_CHOSEN in words (§3.3).
//! - [`halfopen`]: who gets half-open state under a flood: per-address and global limits,
//!   a key-exchange budget, summarised refusals.
//! - [`event`]: the events and failures both engines report.
//! - `table`: the IKE SA table of both engines, with a deadline queue and indexes.
//! - [`identity`]: IKE identities (RFC 7296 §3.5, RFC 2407 §4.6.2).
//! - [`retransmit`]: message IDs, retransmission with back-off, the responder's response
//!   cache, liveness (§2.1–§2.4).
//! - `sim` (tests, or the `sim` feature): a two-peer network simulation.
//!
//! # Layout of an engine
//!
//! [`v2::Endpoint`] is an SA table and a core. It routes each datagram by its header
//! ([`v2`]'s `endpoint/dispatch.rs`) to the handlers of one exchange, each in a file of its
//! own that holds both roles: IKE_SA_INIT (with cookies and half-open admission), IKE_AUTH,
//! CREATE_CHILD_SA for Child SAs and for the IKE SA, INFORMATIONAL; timers, commands, the
//! `show` snapshot and the tombstones of deleted SAs beside them. A handler is a method of
//! the core that takes its own SA, lent in place from the table; work that reaches other SAs
//! comes back to the endpoint as an action, carried out as soon as the handler returns. An
//! IKE SA's requests run one at a time from its work queue; the SA table keeps a deadline
//! queue and indexes (per peer, per identity, per address for half-open SAs) so that no
//! event costs a walk over every SA. Peers and their policies are named by [`v2::PeerId`] and
//! [`v2::PolicyId`], assigned once and never reused, and each policy (one proxy ID of one
//! tunnel) carries its own IPSec proposals and lifetime. [`v1::Engine`] has the same shape
//! (its exchanges borrow a `Ctx`) over the same table.
//!
//! The building blocks above are version-neutral, and so are [`event`] (what the daemon
//! consumes: SAs up and down, failures in plain words and typed reasons) and [`identity`].

use std::net::SocketAddr;

pub mod event;
pub mod export;
mod facade;
pub mod halfopen;
pub mod identity;
pub mod proposal;
pub mod retransmit;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod table;
pub mod ts;
pub mod v1;
pub mod v2;

pub use facade::{FALLBACK_AFTER, Ike};

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
