//! IKEv2 (RFC 7296), ISAKMP/IKEv1 (RFC 2408/2407/2409), ESP (RFC 4303) and AH (RFC 4302)
//! wire formats.
//!
//! # Layout
//!
//! - [`ikev2`]: the IKE header ([`ikev2::Packet`] view, [`ikev2::Header`] repr), every
//!   payload of RFC 7296 §3 plus SKF (RFC 7383) as [`ikev2::Payload`], whole messages as
//!   [`ikev2::Message`], and the byte ranges the engine needs to protect or verify an
//!   Encrypted payload ([`ikev2::SkLayout`]).
//! - [`isakmp`]: the same for ISAKMP/IKEv1 with the IPsec DOI, NAT-T (RFC 3947) and mode
//!   config.
//! - [`esp`], [`ah`]: header views and reprs; [`esp`] also parses the decrypted trailer.
//! - [`natt`]: the UDP port 4500 demultiplexer (non-ESP marker, NAT keepalive, ESP).
//! - [`tcpencap`]: TCP encapsulation of IKE and ESP (RFC 9329): stream prefix and frames.
//! - [`ipv4`]: the IPv4 header, read and checked in one place; [`checksum`]: the Internet
//!   checksum.
//! - [`ipv4frag`]: sans-IO IPv4 reassembly, bounded, for inbound ESP from the packet ring.
//!
//! # Conventions
//!
//! Views (`Packet<T: AsRef<[u8]>>`) check their length once in `new_checked`; after that no
//! accessor can panic. `Repr` types (`Header`, `Payload`, `Message`, …) have `parse`,
//! `buffer_len` and `emit`; `emit` writes exactly `buffer_len()` bytes and reports a short
//! buffer or an unencodable repr as an [`Error`], never a panic.
//!
//! Payload reprs **borrow** from the input buffer (`&'a [u8]` for opaque data, `Vec` for
//! lists). To build a message the caller keeps the data alive for as long as the repr.
//! Parsing allocates at most one `Vec` element per 4 input bytes, and no length over
//! 64 KiB is accepted.
//!
//! Reserved fields and bits are ignored on receipt and sent as zero (RFC 7296 §2.5), so
//! parse → emit gives back the same bytes for every message whose reserved fields are
//! zero; for any input that parses, parse → emit → parse gives the same repr.
//!
//! Registries (payload types, notify types, transform IDs, …) are open newtypes with
//! named constants: unknown values survive parsing and emit unchanged.

mod codec;
mod error;
mod registry;

pub mod ah;
pub mod checksum;
pub mod esp;
pub mod ikev2;
pub mod ipv4;
pub mod ipv4frag;
pub mod isakmp;
pub mod natt;
pub mod tcpencap;

pub use codec::{AttrValue, DataAttribute};
pub use error::{Error, Result};

/// An IKE SA SPI (IKEv2) or ISAKMP cookie (IKEv1): 8 bytes, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IkeSpi(pub u64);

/// An ESP or AH SPI (RFC 4303 §2.1): 4 bytes, big-endian. Zero is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Spi(pub u32);

/// An IKE message ID (IKEv2 sequence number, IKEv1 exchange identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId(pub u32);

/// The largest IKE message length this crate accepts (a length field claiming more is an
/// error).
pub const MAX_MESSAGE_LEN: usize = 65535;
