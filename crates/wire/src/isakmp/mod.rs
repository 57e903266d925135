//! ISAKMP / IKEv1 messages and payloads (RFC 2408 §3, RFC 2407 §4, RFC 2409, RFC 3947,
//! draft-dukes-ike-mode-cfg).
//!
//! The header has the IKEv2 layout ([`crate::ikev2::Packet`] views both); the flags are
//! E (encryption), C (commit) and A (authentication only). When E is set everything after
//! the header is ciphertext: [`Body::Encrypted`] keeps it with the type of the first
//! encrypted payload, and after decryption [`parse_payloads_padded`] decodes the chain and
//! skips the padding that follows it (RFC 2409 §5.3, RFC 2408 §3.5).
//!
//! ISAKMP payloads have no critical bit: the octet after Next Payload is reserved.

mod consts;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use consts::{
    AhTransformId, CertEncoding, Doi, EncapsulationMode, EspTransformId, ExchangeType, GroupType,
    IdType, Ike1AuthMethod, Ike1Encr, Ike1Hash, IpcompTransformId, IpsecAttr, IpsecAuthAlg,
    IsakmpTransformId, LifeType, ModeCfgAttr, ModeCfgType, NotifyType, PayloadType, Phase1Attr,
    ProtocolId, Situation,
};

use crate::codec::{DataAttribute, Reader, Writer, len_u8, len_u16};
use crate::error::{Error, Result};
use crate::ikev2::{HEADER_LEN, Packet, RawHeader, Version};
use crate::{IkeSpi, MessageId, Spi};

/// ISAKMP header flags (RFC 2408 §3.1). Other bits are kept as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// E: the payloads are encrypted.
    pub const ENCRYPTION: u8 = 0x01;
    /// C: commit (key exchange synchronisation).
    pub const COMMIT: u8 = 0x02;
    /// A: authentication only.
    pub const AUTH_ONLY: u8 = 0x04;

    /// The E flag.
    pub fn encryption(self) -> bool {
        self.0 & Self::ENCRYPTION != 0
    }

    /// The C flag.
    pub fn commit(self) -> bool {
        self.0 & Self::COMMIT != 0
    }

    /// The A flag.
    pub fn auth_only(self) -> bool {
        self.0 & Self::AUTH_ONLY != 0
    }
}

impl core::fmt::Debug for Flags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Flags({:#04x}", self.0)?;
        for (bit, name) in [
            (Self::ENCRYPTION, " E"),
            (Self::COMMIT, " C"),
            (Self::AUTH_ONLY, " A"),
        ] {
            if self.0 & bit != 0 {
                f.write_str(name)?;
            }
        }
        f.write_str(")")
    }
}

/// The ISAKMP header fields besides Next Payload and Length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Initiator cookie.
    pub initiator_cookie: IkeSpi,
    /// Responder cookie (zero in the first message).
    pub responder_cookie: IkeSpi,
    /// Version (1.0).
    pub version: Version,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// Flags. On emit the E bit is set from the [`Body`].
    pub flags: Flags,
    /// Message ID (zero in phase 1).
    pub message_id: MessageId,
}

/// A decoded ISAKMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header.
    pub header: Header,
    /// The payloads, or the ciphertext when the E flag is set.
    pub body: Body<'a>,
}

/// The part of an ISAKMP message after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// Plaintext payloads (E flag clear).
    Plain(Vec<Payload<'a>>),
    /// Ciphertext (E flag set): decrypt, then [`parse_payloads_padded`] with
    /// `first_payload`.
    Encrypted {
        /// The header's Next Payload: the type of the first encrypted payload.
        first_payload: PayloadType,
        /// The ciphertext (including padding).
        data: &'a [u8],
    },
}

impl<'a> Message<'a> {
    /// Decodes a whole datagram. The header's Length must equal `buf.len()`.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        let packet = Packet::new_checked(buf)?;
        if packet.length() as usize != buf.len() {
            return Err(Error::TrailingData(
                "ISAKMP message (Length field shorter than datagram)",
            ));
        }
        let flags = Flags(packet.flags().0);
        let header = Header {
            initiator_cookie: packet.initiator_spi(),
            responder_cookie: packet.responder_spi(),
            version: packet.version(),
            exchange_type: ExchangeType(packet.exchange_type().0),
            flags,
            message_id: packet.message_id(),
        };
        let first = PayloadType(packet.next_payload().0);
        let rest = buf.get(HEADER_LEN..).unwrap_or(&[]);
        let body = if flags.encryption() {
            Body::Encrypted {
                first_payload: first,
                data: rest,
            }
        } else {
            Body::Plain(parse_payloads(first, rest)?)
        };
        Ok(Message { header, body })
    }

    /// Length of the encoded message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match &self.body {
                Body::Plain(p) => payloads_len(p),
                Body::Encrypted { data, .. } => data.len(),
            }
    }

    /// Encodes the message into `buf`; returns the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let (first, encrypted) = match &self.body {
            Body::Plain(p) => (first_payload_type(p), false),
            Body::Encrypted { first_payload, .. } => (*first_payload, true),
        };
        let mut flags = self.header.flags.0 & !Flags::ENCRYPTION;
        if encrypted {
            flags |= Flags::ENCRYPTION;
        }
        let mut w = Writer::new(buf);
        RawHeader {
            initiator_spi: self.header.initiator_cookie,
            responder_spi: self.header.responder_cookie,
            next_payload: first.0,
            version: self.header.version.0,
            exchange_type: self.header.exchange_type.0,
            flags,
            message_id: self.header.message_id,
        }
        .emit(&mut w, len)?;
        match &self.body {
            Body::Plain(p) => emit_chain(p, &mut w)?,
            Body::Encrypted { data, .. } => w.put(data),
        }
        w.finish()
    }

    /// Encodes the message into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }

    /// The plaintext payloads, if the body is not encrypted.
    pub fn payloads(&self) -> Option<&[Payload<'a>]> {
        match &self.body {
            Body::Plain(p) => Some(p),
            Body::Encrypted { .. } => None,
        }
    }
}

/// Decodes a payload chain that fills `buf` exactly.
pub fn parse_payloads(first: PayloadType, buf: &[u8]) -> Result<Vec<Payload<'_>>> {
    let (payloads, used) = parse_payloads_padded(first, buf)?;
    if used != buf.len() {
        return Err(Error::TrailingData("last payload"));
    }
    Ok(payloads)
}

/// Decodes a payload chain from decrypted content and returns it with the number of bytes
/// it used; the bytes after the last payload are the encryption padding.
pub fn parse_payloads_padded(first: PayloadType, buf: &[u8]) -> Result<(Vec<Payload<'_>>, usize)> {
    let mut r = Reader::new(buf);
    let mut next = first;
    let mut out = Vec::new();
    // Each payload consumes at least 4 bytes: the loop is bounded by buf.len() / 4.
    while next != PayloadType::NONE {
        let ty = next;
        next = PayloadType(r.u8("payload header")?);
        let _reserved = r.u8("payload header")?;
        let len = usize::from(r.u16("payload header")?);
        let body_len = len.checked_sub(4).ok_or(Error::BadLength("payload"))?;
        let body = r.take(body_len, "payload")?;
        out.push(Payload::parse(ty, body)?);
    }
    Ok((out, buf.len() - r.remaining()))
}

/// The type of the first payload of a chain, or NONE.
pub fn first_payload_type(payloads: &[Payload<'_>]) -> PayloadType {
    payloads
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type)
}

/// Length of an encoded payload chain.
pub fn payloads_len(payloads: &[Payload<'_>]) -> usize {
    payloads.iter().map(Payload::buffer_len).sum()
}

/// Encodes a payload chain (e.g. the plaintext before encryption, without padding).
pub fn emit_payloads(payloads: &[Payload<'_>], buf: &mut [u8]) -> Result<usize> {
    let mut w = Writer::new(buf);
    emit_chain(payloads, &mut w)?;
    w.finish()
}

fn emit_chain(payloads: &[Payload<'_>], w: &mut Writer<'_>) -> Result<()> {
    let mut iter = payloads.iter().peekable();
    while let Some(p) = iter.next() {
        let next = iter.peek().map_or(PayloadType::NONE, |n| n.payload_type());
        let start = w.position();
        w.u8(next.0);
        w.u8(0);
        let at = w.begin_len16();
        p.emit_body(w)?;
        w.end_len16(at, start, "payload")?;
    }
    Ok(())
}

/// An ISAKMP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    /// SA (RFC 2408 §3.4).
    Sa(Sa<'a>),
    /// KE (§3.7): the key exchange data.
    Ke(&'a [u8]),
    /// ID (§3.8 with the IPsec DOI format of RFC 2407 §4.6.2).
    Id(Identification<'a>),
    /// CERT (§3.9).
    Cert(Certificate<'a>),
    /// CR (§3.10): the certificate type and authority.
    CertReq(Certificate<'a>),
    /// HASH (§3.11).
    Hash(&'a [u8]),
    /// SIG (§3.12).
    Signature(&'a [u8]),
    /// Nonce (§3.13).
    Nonce(&'a [u8]),
    /// N (§3.14).
    Notification(Notification<'a>),
    /// D (§3.15).
    Delete(Delete<'a>),
    /// VID (§3.16).
    VendorId(&'a [u8]),
    /// Attribute (mode config).
    Attribute(ModeCfg<'a>),
    /// NAT-D (RFC 3947 §3.2): a hash of address and port.
    NatD(&'a [u8]),
    /// NAT-OA (RFC 3947 §5.2).
    NatOa(NatOa<'a>),
    /// Any other payload type, kept opaque. `ty` should not be one of the types above.
    Unknown {
        /// The payload type.
        ty: PayloadType,
        /// The body after the generic header.
        data: &'a [u8],
    },
}

impl<'a> Payload<'a> {
    /// The payload type.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::Id(_) => PayloadType::ID,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CR,
            Payload::Hash(_) => PayloadType::HASH,
            Payload::Signature(_) => PayloadType::SIG,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notification(_) => PayloadType::NOTIFICATION,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::Attribute(_) => PayloadType::ATTRIBUTE,
            Payload::NatD(_) => PayloadType::NAT_D,
            Payload::NatOa(_) => PayloadType::NAT_OA,
            Payload::Unknown { ty, .. } => *ty,
        }
    }

    /// Parses the body of a payload of type `ty`.
    pub fn parse(ty: PayloadType, body: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let p = match ty {
            PayloadType::SA => Payload::Sa(Sa::parse(&mut r)?),
            PayloadType::KE => Payload::Ke(r.rest()),
            PayloadType::ID => Payload::Id(Identification::parse(&mut r)?),
            PayloadType::CERT => Payload::Cert(Certificate::parse(&mut r, "CERT")?),
            PayloadType::CR => Payload::CertReq(Certificate::parse(&mut r, "CR")?),
            PayloadType::HASH => Payload::Hash(r.rest()),
            PayloadType::SIG => Payload::Signature(r.rest()),
            PayloadType::NONCE => Payload::Nonce(r.rest()),
            PayloadType::NOTIFICATION => Payload::Notification(Notification::parse(&mut r)?),
            PayloadType::DELETE => Payload::Delete(Delete::parse(&mut r)?),
            PayloadType::VENDOR_ID => Payload::VendorId(r.rest()),
            PayloadType::ATTRIBUTE => Payload::Attribute(ModeCfg::parse(&mut r)?),
            PayloadType::NAT_D => Payload::NatD(r.rest()),
            PayloadType::NAT_OA => Payload::NatOa(NatOa::parse(&mut r)?),
            ty => Payload::Unknown { ty, data: r.rest() },
        };
        r.expect_empty("payload body")?;
        Ok(p)
    }

    /// Length of the payload including its 4-byte generic header.
    pub fn buffer_len(&self) -> usize {
        4 + match self {
            Payload::Sa(p) => p.buffer_len(),
            Payload::Ke(d)
            | Payload::Hash(d)
            | Payload::Signature(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d)
            | Payload::NatD(d)
            | Payload::Unknown { data: d, .. } => d.len(),
            Payload::Id(p) => 4 + p.data.len(),
            Payload::Cert(p) | Payload::CertReq(p) => 1 + p.data.len(),
            Payload::Notification(p) => 8 + p.spi.len() + p.data.len(),
            Payload::Delete(p) => 8 + p.spis.len(),
            Payload::Attribute(p) => {
                4 + p
                    .attributes
                    .iter()
                    .map(DataAttribute::buffer_len)
                    .sum::<usize>()
            }
            Payload::NatOa(p) => 4 + p.address.len(),
        }
    }

    fn emit_body(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            Payload::Sa(p) => p.emit(w)?,
            Payload::Ke(d)
            | Payload::Hash(d)
            | Payload::Signature(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d)
            | Payload::NatD(d)
            | Payload::Unknown { data: d, .. } => w.put(d),
            Payload::Id(p) => {
                w.u8(p.id_type.0);
                w.u8(p.protocol);
                w.u16(p.port);
                w.put(p.data);
            }
            Payload::Cert(p) | Payload::CertReq(p) => {
                w.u8(p.encoding.0);
                w.put(p.data);
            }
            Payload::Notification(p) => {
                w.u32(p.doi.0);
                w.u8(p.protocol.0);
                w.u8(len_u8(p.spi.len(), "Notification SPI")?);
                w.u16(p.ty.0);
                w.put(p.spi);
                w.put(p.data);
            }
            Payload::Delete(p) => {
                let num = p.num_spis()?;
                w.u32(p.doi.0);
                w.u8(p.protocol.0);
                w.u8(p.spi_size);
                w.u16(num);
                w.put(p.spis);
            }
            Payload::Attribute(p) => {
                w.u8(p.cfg_type.0);
                w.u8(0);
                w.u16(p.identifier);
                for a in &p.attributes {
                    a.emit(w)?;
                }
            }
            Payload::NatOa(p) => {
                w.u8(p.id_type.0);
                w.put(&[0; 3]);
                w.put(p.address);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// SA, Proposal, Transform

/// The SA payload (RFC 2408 §3.4, RFC 2407 §4.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sa<'a> {
    /// Domain of Interpretation.
    pub doi: Doi,
    /// The DOI-specific content.
    pub body: SaBody<'a>,
}

/// The content of an SA payload after the DOI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaBody<'a> {
    /// IPsec DOI with a situation of at most SIT_IDENTITY_ONLY: the proposals follow.
    Ipsec {
        /// Situation.
        situation: Situation,
        /// The proposals, in order. Proposals with the same number are one proposal
        /// offering several protocols (RFC 2408 §4.2).
        proposals: Vec<Proposal<'a>>,
    },
    /// Any other DOI or situation (secrecy and integrity labels), kept opaque.
    Other(&'a [u8]),
}

/// A Proposal payload inside an SA (RFC 2408 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal<'a> {
    /// Proposal #.
    pub number: u8,
    /// Protocol-Id.
    pub protocol: ProtocolId,
    /// SPI (empty or 16 bytes of cookies in phase 1, 4 bytes for AH/ESP).
    pub spi: &'a [u8],
    /// The Transform payloads.
    pub transforms: Vec<Transform<'a>>,
}

/// A Transform payload inside a Proposal (RFC 2408 §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform<'a> {
    /// Transform #.
    pub number: u8,
    /// Transform-Id ([`IsakmpTransformId`], [`EspTransformId`], [`AhTransformId`] …
    /// according to the proposal's protocol).
    pub id: u8,
    /// SA attributes ([`Phase1Attr`] in phase 1, [`IpsecAttr`] in quick mode).
    pub attributes: Vec<DataAttribute<'a>>,
}

impl<'a> Transform<'a> {
    /// The value of the TV or short TLV attribute of type `ty`.
    pub fn attribute(&self, ty: impl Into<u16>) -> Option<u64> {
        let ty = ty.into();
        self.attributes
            .iter()
            .find(|a| a.ty == ty)
            .and_then(DataAttribute::as_u64)
    }
}

impl<'a> Sa<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let doi = Doi(r.u32("SA")?);
        if doi != Doi::IPSEC {
            return Ok(Sa {
                doi,
                body: SaBody::Other(r.rest()),
            });
        }
        let mut peek = r.clone();
        let situation = Situation(peek.u32("SA situation")?);
        if situation.0 & !Situation::IDENTITY_ONLY.0 != 0 {
            return Ok(Sa {
                doi,
                body: SaBody::Other(r.rest()),
            });
        }
        *r = peek;
        let mut proposals = Vec::new();
        let mut next = if r.is_empty() {
            PayloadType::NONE
        } else {
            PayloadType::PROPOSAL
        };
        while next != PayloadType::NONE {
            if next != PayloadType::PROPOSAL {
                return Err(Error::Malformed("SA: substructure is not a Proposal"));
            }
            next = PayloadType(r.u8("proposal")?);
            let _reserved = r.u8("proposal")?;
            let len = usize::from(r.u16("proposal")?);
            let body_len = len.checked_sub(4).ok_or(Error::BadLength("proposal"))?;
            let mut p = r.sub(body_len, "proposal")?;
            proposals.push(Proposal::parse(&mut p)?);
        }
        r.expect_empty("last proposal")?;
        Ok(Sa {
            doi,
            body: SaBody::Ipsec {
                situation,
                proposals,
            },
        })
    }

    fn buffer_len(&self) -> usize {
        4 + match &self.body {
            SaBody::Ipsec { proposals, .. } => {
                4 + proposals.iter().map(Proposal::buffer_len).sum::<usize>()
            }
            SaBody::Other(d) => d.len(),
        }
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u32(self.doi.0);
        match &self.body {
            SaBody::Ipsec {
                situation,
                proposals,
            } => {
                w.u32(situation.0);
                let n = proposals.len();
                for (i, p) in proposals.iter().enumerate() {
                    let start = w.position();
                    w.u8(if i + 1 == n {
                        0
                    } else {
                        PayloadType::PROPOSAL.0
                    });
                    w.u8(0);
                    let at = w.begin_len16();
                    p.emit(w)?;
                    w.end_len16(at, start, "proposal")?;
                }
            }
            SaBody::Other(d) => w.put(d),
        }
        Ok(())
    }

    /// The proposals, for the IPsec DOI.
    pub fn proposals(&self) -> &[Proposal<'a>] {
        match &self.body {
            SaBody::Ipsec { proposals, .. } => proposals,
            SaBody::Other(_) => &[],
        }
    }
}

impl<'a> Proposal<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let number = r.u8("proposal")?;
        let protocol = ProtocolId(r.u8("proposal")?);
        let spi_size = r.u8("proposal")?;
        let num_transforms = r.u8("proposal")?;
        let spi = r.take(usize::from(spi_size), "proposal SPI")?;
        let mut transforms = Vec::new();
        let mut next = if r.is_empty() {
            PayloadType::NONE
        } else {
            PayloadType::TRANSFORM
        };
        while next != PayloadType::NONE {
            if next != PayloadType::TRANSFORM {
                return Err(Error::Malformed(
                    "proposal: substructure is not a Transform",
                ));
            }
            next = PayloadType(r.u8("transform")?);
            let _reserved = r.u8("transform")?;
            let len = usize::from(r.u16("transform")?);
            let body_len = len.checked_sub(4).ok_or(Error::BadLength("transform"))?;
            let mut t = r.sub(body_len, "transform")?;
            let number = t.u8("transform")?;
            let id = t.u8("transform")?;
            let _reserved2 = t.u16("transform")?;
            let attributes = DataAttribute::parse_all(&mut t)?;
            transforms.push(Transform {
                number,
                id,
                attributes,
            });
        }
        r.expect_empty("last transform")?;
        if transforms.len() != usize::from(num_transforms) {
            return Err(Error::CountMismatch("proposal transforms"));
        }
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }

    fn buffer_len(&self) -> usize {
        8 + self.spi.len()
            + self
                .transforms
                .iter()
                .map(|t| {
                    8 + t
                        .attributes
                        .iter()
                        .map(DataAttribute::buffer_len)
                        .sum::<usize>()
                })
                .sum::<usize>()
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.number);
        w.u8(self.protocol.0);
        w.u8(len_u8(self.spi.len(), "proposal SPI")?);
        w.u8(len_u8(self.transforms.len(), "proposal transforms")?);
        w.put(self.spi);
        let n = self.transforms.len();
        for (i, t) in self.transforms.iter().enumerate() {
            let start = w.position();
            w.u8(if i + 1 == n {
                0
            } else {
                PayloadType::TRANSFORM.0
            });
            w.u8(0);
            let at = w.begin_len16();
            w.u8(t.number);
            w.u8(t.id);
            w.u16(0);
            for a in &t.attributes {
                a.emit(w)?;
            }
            w.end_len16(at, start, "transform")?;
        }
        Ok(())
    }

    /// The SPI as an ESP/AH SPI, if it is 4 bytes long.
    pub fn child_spi(&self) -> Option<Spi> {
        <[u8; 4]>::try_from(self.spi)
            .ok()
            .map(|b| Spi(u32::from_be_bytes(b)))
    }
}

// ---------------------------------------------------------------------------------------
// ID, CERT, Notification, Delete, Attribute, NAT-OA

/// The ID payload with the IPsec DOI fields (RFC 2407 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identification<'a> {
    /// ID Type.
    pub id_type: IdType,
    /// Protocol ID (an IP protocol; zero = any).
    pub protocol: u8,
    /// Port (zero = any).
    pub port: u16,
    /// Identification Data.
    pub data: &'a [u8],
}

/// An address, subnet or range from an ID payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdAddress {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    Address(IpAddr),
    /// ID_IPV4_ADDR_SUBNET or ID_IPV6_ADDR_SUBNET: address and mask.
    Subnet(IpAddr, IpAddr),
    /// ID_IPV4_ADDR_RANGE or ID_IPV6_ADDR_RANGE: first and last address.
    Range(IpAddr, IpAddr),
}

fn v4(b: &[u8]) -> Option<IpAddr> {
    <[u8; 4]>::try_from(b)
        .ok()
        .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
}

fn v6(b: &[u8]) -> Option<IpAddr> {
    <[u8; 16]>::try_from(b)
        .ok()
        .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
}

impl<'a> Identification<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        Ok(Identification {
            id_type: IdType(r.u8("ID")?),
            protocol: r.u8("ID")?,
            port: r.u16("ID")?,
            data: r.rest(),
        })
    }

    /// The address, subnet or range, for the address ID types with data of the right
    /// length.
    pub fn address(&self) -> Option<IdAddress> {
        let d = self.data;
        match self.id_type {
            IdType::IPV4_ADDR => v4(d).map(IdAddress::Address),
            IdType::IPV6_ADDR => v6(d).map(IdAddress::Address),
            IdType::IPV4_ADDR_SUBNET | IdType::IPV4_ADDR_RANGE if d.len() == 8 => {
                let (a, b) = (v4(d.get(..4)?)?, v4(d.get(4..)?)?);
                Some(if self.id_type == IdType::IPV4_ADDR_SUBNET {
                    IdAddress::Subnet(a, b)
                } else {
                    IdAddress::Range(a, b)
                })
            }
            IdType::IPV6_ADDR_SUBNET | IdType::IPV6_ADDR_RANGE if d.len() == 32 => {
                let (a, b) = (v6(d.get(..16)?)?, v6(d.get(16..)?)?);
                Some(if self.id_type == IdType::IPV6_ADDR_SUBNET {
                    IdAddress::Subnet(a, b)
                } else {
                    IdAddress::Range(a, b)
                })
            }
            _ => None,
        }
    }
}

/// The CERT (RFC 2408 §3.9) and CR (§3.10) payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// Certificate Encoding / Type.
    pub encoding: CertEncoding,
    /// Certificate Data or Certificate Authority.
    pub data: &'a [u8],
}

impl<'a> Certificate<'a> {
    fn parse(r: &mut Reader<'a>, what: &'static str) -> Result<Self> {
        Ok(Certificate {
            encoding: CertEncoding(r.u8(what)?),
            data: r.rest(),
        })
    }
}

/// The Notification payload (RFC 2408 §3.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification<'a> {
    /// Domain of Interpretation.
    pub doi: Doi,
    /// Protocol-ID.
    pub protocol: ProtocolId,
    /// SPI (16 bytes of cookies for ISAKMP in some implementations, 4 for AH/ESP).
    pub spi: &'a [u8],
    /// Notify Message Type.
    pub ty: NotifyType,
    /// Notification Data.
    pub data: &'a [u8],
}

impl<'a> Notification<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let doi = Doi(r.u32("Notification")?);
        let protocol = ProtocolId(r.u8("Notification")?);
        let spi_size = r.u8("Notification")?;
        let ty = NotifyType(r.u16("Notification")?);
        let spi = r.take(usize::from(spi_size), "Notification SPI")?;
        Ok(Notification {
            doi,
            protocol,
            spi,
            ty,
            data: r.rest(),
        })
    }
}

/// The Delete payload (RFC 2408 §3.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delete<'a> {
    /// Domain of Interpretation.
    pub doi: Doi,
    /// Protocol-Id.
    pub protocol: ProtocolId,
    /// SPI Size (16 for ISAKMP, 4 for AH/ESP).
    pub spi_size: u8,
    /// The SPIs, concatenated.
    pub spis: &'a [u8],
}

impl<'a> Delete<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let doi = Doi(r.u32("Delete")?);
        let protocol = ProtocolId(r.u8("Delete")?);
        let spi_size = r.u8("Delete")?;
        let num = usize::from(r.u16("Delete")?);
        let spis = r.rest();
        if spi_size == 0 && num != 0 {
            return Err(Error::CountMismatch("Delete SPIs of size zero"));
        }
        if num * usize::from(spi_size) != spis.len() {
            return Err(Error::CountMismatch("Delete SPIs"));
        }
        Ok(Delete {
            doi,
            protocol,
            spi_size,
            spis,
        })
    }

    fn num_spis(&self) -> Result<u16> {
        match (usize::from(self.spi_size), self.spis.len()) {
            (0, 0) => Ok(0),
            (0, _) => Err(Error::CountMismatch("Delete SPIs of size zero")),
            (s, l) if l.is_multiple_of(s) => len_u16(l / s, "Delete SPIs"),
            _ => Err(Error::CountMismatch("Delete SPIs")),
        }
    }

    /// Iterates over the SPIs.
    pub fn spis(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let size = usize::from(self.spi_size).max(1);
        let spis = if self.spi_size == 0 {
            &[][..]
        } else {
            self.spis
        };
        spis.chunks_exact(size)
    }
}

/// The mode config Attribute payload (draft-dukes-ike-mode-cfg §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeCfg<'a> {
    /// Type: request, reply, set or ack.
    pub cfg_type: ModeCfgType,
    /// Identifier, echoed in the reply.
    pub identifier: u16,
    /// The attributes ([`ModeCfgAttr`] types).
    pub attributes: Vec<DataAttribute<'a>>,
}

impl<'a> ModeCfg<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let cfg_type = ModeCfgType(r.u8("Attribute payload")?);
        let _reserved = r.u8("Attribute payload")?;
        let identifier = r.u16("Attribute payload")?;
        let attributes = DataAttribute::parse_all(r)?;
        Ok(ModeCfg {
            cfg_type,
            identifier,
            attributes,
        })
    }
}

/// The NAT-OA payload (RFC 3947 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatOa<'a> {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    pub id_type: IdType,
    /// The original address.
    pub address: &'a [u8],
}

impl<'a> NatOa<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let id_type = IdType(r.u8("NAT-OA")?);
        let _reserved = r.take(3, "NAT-OA")?;
        Ok(NatOa {
            id_type,
            address: r.rest(),
        })
    }

    /// The address, if it has the length its type says.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.id_type {
            IdType::IPV4_ADDR => v4(self.address),
            IdType::IPV6_ADDR => v6(self.address),
            _ => None,
        }
    }
}
