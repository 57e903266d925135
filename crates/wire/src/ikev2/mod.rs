//! IKEv2 messages and payloads (RFC 7296 §3, RFC 7383).
//!
//! # Decoding a message
//!
//! ```
//! # fn demo(datagram: &[u8]) -> Result<(), ferrosec_wire::Error> {
//! use ferrosec_wire::ikev2::{Message, PayloadBody, parse_payloads, strip_padding};
//!
//! let msg = Message::parse(datagram)?;
//! for p in &msg.payloads {
//!     if let PayloadBody::Notify(n) = &p.body {
//!         println!("{:?}", n.ty);
//!     }
//! }
//! if let Some(sk) = msg.sk_layout() {
//!     // AEAD: aad = &datagram[sk.aad()]; non-AEAD: verify the ICV over parts.signed.
//!     let parts = sk.split(16, 16)?;
//!     # let plaintext: Vec<u8> = vec![0];
//!     // ... decrypt &datagram[parts.ciphertext] into `plaintext` ...
//!     let inner = parse_payloads(sk.next_payload, strip_padding(&plaintext)?)?;
//!     # let _ = inner;
//! }
//! # Ok(()) }
//! ```
//!
//! # Building a protected message
//!
//! Emit the inner payloads with [`emit_payloads`], pad and encrypt them, and put IV,
//! ciphertext and ICV space into an [`Encrypted`] payload whose `next_payload` is the
//! first inner type. Emit the message; [`Message::sk_layout`] then gives the ranges for
//! the AAD (AEAD) or for the ICV (non-AEAD), so the ICV can be written last.

mod cfg;
mod consts;
mod header;
mod message;
mod payload;

pub use cfg::{CfgValue, ipv4_netmask};
pub use consts::{
    AuthMethod, CertEncoding, CfgAttrType, CfgType, DhGroup, EncrId, EsnId, ExchangeType, IdType,
    IntegId, NotifyType, PayloadType, PrfId, ProtocolId, TransformAttrType, TransformType, TsType,
};
pub(crate) use header::RawHeader;
pub use header::{Flags, HEADER_LEN, Header, Packet, Version};
pub use message::{
    Message, SkLayout, SkParts, emit_payloads, first_payload_type, parse_payloads, payloads_len,
    strip_padding,
};
pub use payload::{
    Auth, Certificate, CfgAttribute, Config, Delete, Encrypted, EncryptedFragment,
    GENERIC_HEADER_LEN, Identification, KeyExchange, Notify, Payload, PayloadBody, Proposal, Sa,
    TrafficSelector, TrafficSelectors, Transform, TsRange,
};
