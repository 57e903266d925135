//! Sans-IO ESP data plane (RFC 4303 tunnel mode, RFC 4304 ESN, RFC 3948 UDP encapsulation).
//!
//! # The shape of this crate
//!
//! Bytes in, bytes out; no sockets, no clock, no threads. A data-plane worker owns an
//! [`OutboundSad`] and an [`InboundSad`] (no lock per packet); the IKE task sends it SAs to
//! install and remove.
//!
//! | direction | call | result |
//! |---|---|---|
//! | TUN → network | [`OutboundSad::encapsulate`]`(inner, out)` | [`Transmit`]: ESP packet in `out`, SPI, [`Path`], lifetime event |
//! | network → TUN | [`InboundSad::decapsulate_in_place`]`(packet)` | [`Decapsulated`]: range of the inner packet, lifetime event |
//! | network → TUN | [`InboundSad::decapsulate`]`(src, dst)` | [`Received`]: inner packet in `dst` |
//!
//! Every refusal is a [`DropReason`]: returned to the caller, who counts it per SA (the daemon
//! does, beside its own drops), or, before an SA is known, counted per database
//! ([`InboundSad::drops`], [`OutboundSad::drops`]) — what `show vpn flow`
//! prints.
//!
//! # No outer IP header
//!
//! [`OutboundSa::encapsulate`] produces the ESP packet only: SPI, sequence number, IV,
//! ciphertext (inner packet, padding, pad length, next header) and ICV. The IO layer sends it
//! through a raw socket for IP protocol 50 or a UDP socket bound to port 4500 (when
//! [`Path::udp`] is set, RFC 3948); in both cases the kernel builds the outer IP (and UDP)
//! header, its checksum, its fragment ID and the route. Inbound, the IO layer hands over what
//! follows the outer IP header (raw socket) or the UDP payload after the non-ESP-marker demux
//! (`ferrosec_wire::natt::demux_4500`). Tunnel mode needs no checksum fix-ups for NAT-T
//! (RFC 3948 §3.1.2 only concerns transport mode). AH is different: its ICV covers the outer
//! IP header, so [`AhOutboundSa`] builds it and returns a whole IP packet (see the `ah`
//! module: sent with `IP_HDRINCL`).
//!
//! # Buffers
//!
//! No allocation per packet: encapsulation writes into the caller's buffer (size it with
//! [`OutboundSa::packet_len`]), decapsulation works in place on the receive buffer. SAs
//! allocate their replay bitmap and selector lists once, when installed.
//!
//! # Security checks, in order (inbound)
//!
//! SPI lookup, length, hard lifetime, anti-replay check (RFC 4303 §3.4.3; window of up to
//! [`replay::MAX_WINDOW`] packets, or off), ICV check and decryption, window update (only after
//! the ICV verified), padding (1, 2, 3, …), next header (4 or 41; 59 is a dummy packet and
//! discarded), inner IP header, traffic selectors (SPEC R-DP-5). TFC padding after the inner
//! packet is cut off.

mod ah;
mod lifetime;
pub mod replay;
mod sa;
mod sad;
mod selector;
mod stats;

pub use ah::{AhInboundSa, AhOutboundSa, AhParams, ipv6_outer_header};
pub use ferrosec_crypto::{EspSuite, Integrity, Secret};
pub use ferrosec_wire::Spi;
pub use lifetime::{Direction, LifetimeEvent, LifetimeKind, LifetimeLimits, LifetimeTrigger};
pub use replay::ReplayWindow;
pub use sa::{
    Decapsulated, InboundSa, OutboundSa, Path, Received, SaError, SaParams, Transmit, UdpEncap,
};
pub use sad::{InboundSad, InboundTransform, OutboundSad, OutboundTransform};
pub use selector::{Flow, Selectors, TrafficSelector};
pub use stats::{DropCounters, DropReason, SaStats};
