//! IKEv2 payloads (RFC 7296 §3.2–§3.16, RFC 7383 §2.5).
//!
//! Every payload starts with the generic payload header (§3.2):
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Payload`] holds the critical bit and a [`PayloadBody`]. The Next Payload fields are
//! not stored: they follow from the order of the payload list, except for the Encrypted
//! payloads, whose Next Payload names the first payload *inside* the encryption
//! (§3.14) and is kept in [`Encrypted::next_payload`].

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::{DataAttribute, Reader, Writer, len_u8, len_u16};
use crate::error::{Error, Result};
use crate::ikev2::consts::{
    AuthMethod, CertEncoding, CfgAttrType, CfgType, DhGroup, EncrId, EsnId, IdType, IntegId,
    NotifyType, PayloadType, PrfId, ProtocolId, TransformAttrType, TransformType, TsType,
};
use crate::{IkeSpi, Spi};

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

/// One payload of a message: the critical bit and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The critical bit (§3.2). Senders set it to zero for payloads defined in RFC 7296;
    /// a receiver that does not understand a payload with this bit set rejects the message
    /// with UNSUPPORTED_CRITICAL_PAYLOAD. It is kept for every payload, known or not.
    pub critical: bool,
    /// The payload body.
    pub body: PayloadBody<'a>,
}

impl<'a> Payload<'a> {
    /// A non-critical payload.
    pub fn new(body: PayloadBody<'a>) -> Self {
        Payload {
            critical: false,
            body,
        }
    }

    /// The payload type this payload is sent as.
    pub fn payload_type(&self) -> PayloadType {
        self.body.payload_type()
    }

    /// Length of the payload including its generic header.
    pub fn buffer_len(&self) -> usize {
        GENERIC_HEADER_LEN + self.body.buffer_len()
    }
}

impl<'a> From<PayloadBody<'a>> for Payload<'a> {
    fn from(body: PayloadBody<'a>) -> Self {
        Payload::new(body)
    }
}

/// The body of an IKEv2 payload, by payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadBody<'a> {
    /// SA (§3.3).
    Sa(Sa<'a>),
    /// KE (§3.4).
    Ke(KeyExchange<'a>),
    /// IDi (§3.5).
    IdI(Identification<'a>),
    /// IDr (§3.5).
    IdR(Identification<'a>),
    /// CERT (§3.6).
    Cert(Certificate<'a>),
    /// CERTREQ (§3.7): the certificate encoding and the Certification Authority data.
    CertReq(Certificate<'a>),
    /// AUTH (§3.8).
    Auth(Auth<'a>),
    /// Ni, Nr (§3.9): the nonce data.
    Nonce(&'a [u8]),
    /// N (§3.10).
    Notify(Notify<'a>),
    /// D (§3.11).
    Delete(Delete<'a>),
    /// V (§3.12): the vendor ID.
    VendorId(&'a [u8]),
    /// TSi (§3.13).
    TsI(TrafficSelectors<'a>),
    /// TSr (§3.13).
    TsR(TrafficSelectors<'a>),
    /// SK (§3.14). Must be the last payload.
    Encrypted(Encrypted<'a>),
    /// SKF (RFC 7383 §2.5). Must be the last payload.
    EncryptedFragment(EncryptedFragment<'a>),
    /// CP (§3.15).
    Config(Config<'a>),
    /// EAP (§3.16): the EAP message, opaque here.
    Eap(&'a [u8]),
    /// Any other payload type, kept opaque. `ty` should not be one of the types above,
    /// or the payload parses back as that type.
    Unknown {
        /// The payload type.
        ty: PayloadType,
        /// The payload body after the generic header.
        data: &'a [u8],
    },
}

impl<'a> PayloadBody<'a> {
    /// The payload type.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            PayloadBody::Sa(_) => PayloadType::SA,
            PayloadBody::Ke(_) => PayloadType::KE,
            PayloadBody::IdI(_) => PayloadType::IDI,
            PayloadBody::IdR(_) => PayloadType::IDR,
            PayloadBody::Cert(_) => PayloadType::CERT,
            PayloadBody::CertReq(_) => PayloadType::CERTREQ,
            PayloadBody::Auth(_) => PayloadType::AUTH,
            PayloadBody::Nonce(_) => PayloadType::NONCE,
            PayloadBody::Notify(_) => PayloadType::NOTIFY,
            PayloadBody::Delete(_) => PayloadType::DELETE,
            PayloadBody::VendorId(_) => PayloadType::VENDOR_ID,
            PayloadBody::TsI(_) => PayloadType::TSI,
            PayloadBody::TsR(_) => PayloadType::TSR,
            PayloadBody::Encrypted(_) => PayloadType::SK,
            PayloadBody::EncryptedFragment(_) => PayloadType::SKF,
            PayloadBody::Config(_) => PayloadType::CP,
            PayloadBody::Eap(_) => PayloadType::EAP,
            PayloadBody::Unknown { ty, .. } => *ty,
        }
    }

    /// Whether this is an SK or SKF payload, which must come last.
    pub fn is_encrypted(&self) -> bool {
        matches!(
            self,
            PayloadBody::Encrypted(_) | PayloadBody::EncryptedFragment(_)
        )
    }

    /// Parses the body of a payload of type `ty`; `next` is the generic header's Next
    /// Payload field (kept only by the Encrypted payloads).
    pub fn parse(ty: PayloadType, next: PayloadType, body: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let out = match ty {
            PayloadType::SA => PayloadBody::Sa(Sa::parse(&mut r)?),
            PayloadType::KE => PayloadBody::Ke(KeyExchange::parse(&mut r)?),
            PayloadType::IDI => PayloadBody::IdI(Identification::parse(&mut r)?),
            PayloadType::IDR => PayloadBody::IdR(Identification::parse(&mut r)?),
            PayloadType::CERT => PayloadBody::Cert(Certificate::parse(&mut r, "CERT")?),
            PayloadType::CERTREQ => PayloadBody::CertReq(Certificate::parse(&mut r, "CERTREQ")?),
            PayloadType::AUTH => PayloadBody::Auth(Auth::parse(&mut r)?),
            PayloadType::NONCE => PayloadBody::Nonce(r.rest()),
            PayloadType::NOTIFY => PayloadBody::Notify(Notify::parse(&mut r)?),
            PayloadType::DELETE => PayloadBody::Delete(Delete::parse(&mut r)?),
            PayloadType::VENDOR_ID => PayloadBody::VendorId(r.rest()),
            PayloadType::TSI => PayloadBody::TsI(TrafficSelectors::parse(&mut r)?),
            PayloadType::TSR => PayloadBody::TsR(TrafficSelectors::parse(&mut r)?),
            PayloadType::SK => PayloadBody::Encrypted(Encrypted {
                next_payload: next,
                data: r.rest(),
            }),
            PayloadType::SKF => {
                PayloadBody::EncryptedFragment(EncryptedFragment::parse(&mut r, next)?)
            }
            PayloadType::CP => PayloadBody::Config(Config::parse(&mut r)?),
            PayloadType::EAP => PayloadBody::Eap(r.rest()),
            ty => PayloadBody::Unknown { ty, data: r.rest() },
        };
        r.expect_empty("payload body")?;
        Ok(out)
    }

    /// Length of the body (without the generic header).
    pub fn buffer_len(&self) -> usize {
        match self {
            PayloadBody::Sa(p) => p.buffer_len(),
            PayloadBody::Ke(p) => 4 + p.data.len(),
            PayloadBody::IdI(p) | PayloadBody::IdR(p) => 4 + p.data.len(),
            PayloadBody::Cert(p) | PayloadBody::CertReq(p) => 1 + p.data.len(),
            PayloadBody::Auth(p) => 4 + p.data.len(),
            PayloadBody::Nonce(d) | PayloadBody::VendorId(d) | PayloadBody::Eap(d) => d.len(),
            PayloadBody::Notify(p) => 4 + p.spi.len() + p.data.len(),
            PayloadBody::Delete(p) => 4 + p.spis.len(),
            PayloadBody::TsI(p) | PayloadBody::TsR(p) => p.buffer_len(),
            PayloadBody::Encrypted(p) => p.data.len(),
            PayloadBody::EncryptedFragment(p) => 4 + p.data.len(),
            PayloadBody::Config(p) => p.buffer_len(),
            PayloadBody::Unknown { data, .. } => data.len(),
        }
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            PayloadBody::Sa(p) => p.emit(w)?,
            PayloadBody::Ke(p) => {
                w.u16(p.group.0);
                w.u16(0);
                w.put(p.data);
            }
            PayloadBody::IdI(p) | PayloadBody::IdR(p) => {
                w.u8(p.id_type.0);
                w.put(&[0; 3]);
                w.put(p.data);
            }
            PayloadBody::Cert(p) | PayloadBody::CertReq(p) => {
                w.u8(p.encoding.0);
                w.put(p.data);
            }
            PayloadBody::Auth(p) => {
                w.u8(p.method.0);
                w.put(&[0; 3]);
                w.put(p.data);
            }
            PayloadBody::Nonce(d) | PayloadBody::VendorId(d) | PayloadBody::Eap(d) => w.put(d),
            PayloadBody::Notify(p) => {
                w.u8(p.protocol.0);
                w.u8(len_u8(p.spi.len(), "Notify SPI")?);
                w.u16(p.ty.0);
                w.put(p.spi);
                w.put(p.data);
            }
            PayloadBody::Delete(p) => p.emit(w)?,
            PayloadBody::TsI(p) | PayloadBody::TsR(p) => p.emit(w)?,
            PayloadBody::Encrypted(p) => w.put(p.data),
            PayloadBody::EncryptedFragment(p) => {
                w.u16(p.fragment_number);
                w.u16(p.total_fragments);
                w.put(p.data);
            }
            PayloadBody::Config(p) => p.emit(w)?,
            PayloadBody::Unknown { data, .. } => w.put(data),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// SA, proposals, transforms (§3.3)

/// The SA payload: a list of proposals (§3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sa<'a> {
    /// The proposals, in order.
    pub proposals: Vec<Proposal<'a>>,
}

/// A proposal substructure (§3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal<'a> {
    /// Proposal Num: 1 for the first proposal, one more for each next (responder echoes).
    pub number: u8,
    /// Protocol ID: IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// The SPI: empty for the first IKE SA, 8 bytes for an IKE SA rekey, 4 for AH/ESP.
    pub spi: &'a [u8],
    /// The transforms.
    pub transforms: Vec<Transform<'a>>,
}

/// A transform substructure (§3.3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct Transform<'a> {
    /// Transform Type.
    pub ty: TransformType,
    /// Transform ID, interpreted according to `ty` (see [`Transform::encr`] and friends).
    pub id: u16,
    /// Transform attributes (§3.3.5): in practice only Key Length.
    pub attributes: Vec<DataAttribute<'a>>,
}

impl Sa<'_> {
    fn parse<'a>(r: &mut Reader<'a>) -> Result<Sa<'a>> {
        let mut proposals = Vec::new();
        while !r.is_empty() {
            let last = r.u8("proposal")?;
            let _reserved = r.u8("proposal")?;
            let len = usize::from(r.u16("proposal")?);
            let body_len = len.checked_sub(4).ok_or(Error::BadLength("proposal"))?;
            let mut p = r.sub(body_len, "proposal")?;
            proposals.push(Proposal::parse(&mut p)?);
            let expected = if r.is_empty() { 0 } else { 2 };
            if last != expected {
                return Err(Error::Malformed("proposal Last Substruc"));
            }
        }
        Ok(Sa { proposals })
    }

    fn buffer_len(&self) -> usize {
        self.proposals.iter().map(Proposal::buffer_len).sum()
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        let n = self.proposals.len();
        for (i, p) in self.proposals.iter().enumerate() {
            let start = w.position();
            w.u8(if i + 1 == n { 0 } else { 2 });
            w.u8(0);
            let at = w.begin_len16();
            p.emit(w)?;
            w.end_len16(at, start, "proposal")?;
        }
        Ok(())
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
        while !r.is_empty() {
            let last = r.u8("transform")?;
            let _reserved = r.u8("transform")?;
            let len = usize::from(r.u16("transform")?);
            let body_len = len.checked_sub(4).ok_or(Error::BadLength("transform"))?;
            let mut t = r.sub(body_len, "transform")?;
            transforms.push(Transform::parse(&mut t)?);
            let expected = if r.is_empty() { 0 } else { 3 };
            if last != expected {
                return Err(Error::Malformed("transform Last Substruc"));
            }
        }
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

    /// Length of the proposal substructure including its 4-byte header.
    fn buffer_len(&self) -> usize {
        8 + self.spi.len()
            + self
                .transforms
                .iter()
                .map(Transform::buffer_len)
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
            w.u8(if i + 1 == n { 0 } else { 3 });
            w.u8(0);
            let at = w.begin_len16();
            t.emit(w)?;
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

    /// The SPI as an IKE SPI, if it is 8 bytes long (IKE SA rekey).
    pub fn ike_spi(&self) -> Option<IkeSpi> {
        <[u8; 8]>::try_from(self.spi)
            .ok()
            .map(|b| IkeSpi(u64::from_be_bytes(b)))
    }
}

impl<'a> Transform<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let ty = TransformType(r.u8("transform")?);
        let _reserved = r.u8("transform")?;
        let id = r.u16("transform")?;
        let attributes = DataAttribute::parse_all(r)?;
        Ok(Transform { ty, id, attributes })
    }

    fn buffer_len(&self) -> usize {
        8 + self
            .attributes
            .iter()
            .map(DataAttribute::buffer_len)
            .sum::<usize>()
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.ty.0);
        w.u8(0);
        w.u16(self.id);
        for a in &self.attributes {
            a.emit(w)?;
        }
        Ok(())
    }

    /// An encryption transform, with a Key Length attribute if `key_bits` is given.
    pub fn encr(id: EncrId, key_bits: Option<u16>) -> Self {
        let attributes = key_bits
            .map(|k| vec![DataAttribute::basic(TransformAttrType::KEY_LENGTH, k)])
            .unwrap_or_default();
        Transform {
            ty: TransformType::ENCR,
            id: id.0,
            attributes,
        }
    }

    /// A PRF transform.
    pub fn prf(id: PrfId) -> Self {
        Transform {
            ty: TransformType::PRF,
            id: id.0,
            attributes: Vec::new(),
        }
    }

    /// An integrity transform.
    pub fn integ(id: IntegId) -> Self {
        Transform {
            ty: TransformType::INTEG,
            id: id.0,
            attributes: Vec::new(),
        }
    }

    /// A key exchange (DH group) transform.
    pub fn ke(id: DhGroup) -> Self {
        Transform {
            ty: TransformType::KE,
            id: id.0,
            attributes: Vec::new(),
        }
    }

    /// A sequence numbers (ESN) transform.
    pub fn esn(id: EsnId) -> Self {
        Transform {
            ty: TransformType::ESN,
            id: id.0,
            attributes: Vec::new(),
        }
    }

    /// The Key Length attribute (in bits), if present as a TV attribute.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a.value {
            crate::AttrValue::Basic(v) if a.ty == TransformAttrType::KEY_LENGTH.0 => Some(v),
            _ => None,
        })
    }
}

impl core::fmt::Debug for Transform<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let id: &dyn core::fmt::Debug = match self.ty {
            TransformType::ENCR => &EncrId(self.id),
            TransformType::PRF => &PrfId(self.id),
            TransformType::INTEG => &IntegId(self.id),
            TransformType::KE
            | TransformType::ADDKE1
            | TransformType::ADDKE2
            | TransformType::ADDKE3
            | TransformType::ADDKE4
            | TransformType::ADDKE5
            | TransformType::ADDKE6
            | TransformType::ADDKE7 => &DhGroup(self.id),
            TransformType::ESN => &EsnId(self.id),
            _ => &self.id,
        };
        let mut d = f.debug_struct("Transform");
        d.field("ty", &self.ty).field("id", id);
        if !self.attributes.is_empty() {
            d.field("attributes", &self.attributes);
        }
        d.finish()
    }
}

// ---------------------------------------------------------------------------------------
// KE, ID, CERT, AUTH (§3.4–§3.8)

/// The KE payload (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExchange<'a> {
    /// Diffie-Hellman group (key exchange method).
    pub group: DhGroup,
    /// The key exchange data (public value).
    pub data: &'a [u8],
}

impl<'a> KeyExchange<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let group = DhGroup(r.u16("KE")?);
        let _reserved = r.u16("KE")?;
        Ok(KeyExchange {
            group,
            data: r.rest(),
        })
    }
}

/// The IDi and IDr payloads (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identification<'a> {
    /// The ID type.
    pub id_type: IdType,
    /// The identification data, interpreted according to `id_type`.
    pub data: &'a [u8],
}

impl<'a> Identification<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let id_type = IdType(r.u8("ID")?);
        let _reserved = r.take(3, "ID")?;
        Ok(Identification {
            id_type,
            data: r.rest(),
        })
    }

    /// The address of an ID_IPV4_ADDR identity.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        (self.id_type == IdType::IPV4_ADDR)
            .then(|| <[u8; 4]>::try_from(self.data).ok().map(Ipv4Addr::from))
            .flatten()
    }

    /// The address of an ID_IPV6_ADDR identity.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        (self.id_type == IdType::IPV6_ADDR)
            .then(|| <[u8; 16]>::try_from(self.data).ok().map(Ipv6Addr::from))
            .flatten()
    }
}

/// The CERT (§3.6) and CERTREQ (§3.7) payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// Certificate Encoding.
    pub encoding: CertEncoding,
    /// Certificate Data (CERT) or Certification Authority data (CERTREQ).
    pub data: &'a [u8],
}

impl<'a> Certificate<'a> {
    fn parse(r: &mut Reader<'a>, what: &'static str) -> Result<Self> {
        let encoding = CertEncoding(r.u8(what)?);
        Ok(Certificate {
            encoding,
            data: r.rest(),
        })
    }
}

/// The AUTH payload (§3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// Auth Method.
    pub method: AuthMethod,
    /// Authentication Data.
    pub data: &'a [u8],
}

impl<'a> Auth<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let method = AuthMethod(r.u8("AUTH")?);
        let _reserved = r.take(3, "AUTH")?;
        Ok(Auth {
            method,
            data: r.rest(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Notify, Delete (§3.10, §3.11)

/// The Notify payload (§3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify<'a> {
    /// Protocol ID of the SA the SPI belongs to; zero when the SPI is empty.
    pub protocol: ProtocolId,
    /// The SPI (its length is the SPI Size field).
    pub spi: &'a [u8],
    /// Notify Message Type.
    pub ty: NotifyType,
    /// Notification Data.
    pub data: &'a [u8],
}

impl<'a> Notify<'a> {
    /// A notify about the IKE SA (no SPI).
    pub fn new(ty: NotifyType, data: &'a [u8]) -> Self {
        Notify {
            protocol: ProtocolId::NONE,
            spi: &[],
            ty,
            data,
        }
    }

    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let protocol = ProtocolId(r.u8("Notify")?);
        let spi_size = r.u8("Notify")?;
        let ty = NotifyType(r.u16("Notify")?);
        let spi = r.take(usize::from(spi_size), "Notify SPI")?;
        Ok(Notify {
            protocol,
            spi,
            ty,
            data: r.rest(),
        })
    }

    /// The SPI as an ESP/AH SPI, if it is 4 bytes long.
    pub fn child_spi(&self) -> Option<Spi> {
        <[u8; 4]>::try_from(self.spi)
            .ok()
            .map(|b| Spi(u32::from_be_bytes(b)))
    }
}

/// The Delete payload (§3.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delete<'a> {
    /// Protocol ID: IKE (no SPIs), AH or ESP.
    pub protocol: ProtocolId,
    /// SPI Size: 0 for IKE, 4 for AH and ESP.
    pub spi_size: u8,
    /// The SPIs, concatenated (`spi_size` bytes each).
    pub spis: &'a [u8],
}

impl<'a> Delete<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
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
            protocol,
            spi_size,
            spis,
        })
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        let num = self.num_spis()?;
        w.u8(self.protocol.0);
        w.u8(self.spi_size);
        w.u16(num);
        w.put(self.spis);
        Ok(())
    }

    fn num_spis(&self) -> Result<u16> {
        let size = usize::from(self.spi_size);
        match (size, self.spis.len()) {
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

    /// The SPIs as ESP/AH SPIs (for 4-byte SPIs).
    pub fn child_spis(&self) -> impl Iterator<Item = Spi> + 'a {
        self.spis().filter_map(|s| {
            <[u8; 4]>::try_from(s)
                .ok()
                .map(|b| Spi(u32::from_be_bytes(b)))
        })
    }
}

// ---------------------------------------------------------------------------------------
// Traffic selectors (§3.13)

/// The TSi and TSr payloads (§3.13).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrafficSelectors<'a> {
    /// The traffic selectors.
    pub selectors: Vec<TrafficSelector<'a>>,
}

/// One traffic selector (§3.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficSelector<'a> {
    /// TS_IPV4_ADDR_RANGE.
    Ipv4(TsRange<Ipv4Addr>),
    /// TS_IPV6_ADDR_RANGE.
    Ipv6(TsRange<Ipv6Addr>),
    /// Any other TS type, kept opaque.
    Other {
        /// TS Type.
        ts_type: TsType,
        /// The octet after the type (IP Protocol ID for address ranges, reserved for
        /// TS_SECLABEL).
        second_octet: u8,
        /// Everything after the 4-byte selector header.
        data: &'a [u8],
    },
}

/// An address range with protocol and port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsRange<A> {
    /// IP Protocol ID (0 = any).
    pub ip_protocol: u8,
    /// Start Port.
    pub start_port: u16,
    /// End Port.
    pub end_port: u16,
    /// Starting Address.
    pub start: A,
    /// Ending Address.
    pub end: A,
}

impl<'a> TrafficSelectors<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let count = r.u8("TS")?;
        let _reserved = r.take(3, "TS")?;
        let mut selectors = Vec::new();
        while !r.is_empty() {
            let ts_type = TsType(r.u8("traffic selector")?);
            let second_octet = r.u8("traffic selector")?;
            let len = usize::from(r.u16("traffic selector")?);
            let body_len = len
                .checked_sub(4)
                .ok_or(Error::BadLength("traffic selector"))?;
            let mut s = r.sub(body_len, "traffic selector")?;
            let ts = match ts_type {
                TsType::IPV4_ADDR_RANGE => {
                    if body_len != 12 {
                        return Err(Error::BadLength("TS_IPV4_ADDR_RANGE"));
                    }
                    TrafficSelector::Ipv4(TsRange {
                        ip_protocol: second_octet,
                        start_port: s.u16("traffic selector")?,
                        end_port: s.u16("traffic selector")?,
                        start: Ipv4Addr::from(s.array::<4>("traffic selector")?),
                        end: Ipv4Addr::from(s.array::<4>("traffic selector")?),
                    })
                }
                TsType::IPV6_ADDR_RANGE => {
                    if body_len != 36 {
                        return Err(Error::BadLength("TS_IPV6_ADDR_RANGE"));
                    }
                    TrafficSelector::Ipv6(TsRange {
                        ip_protocol: second_octet,
                        start_port: s.u16("traffic selector")?,
                        end_port: s.u16("traffic selector")?,
                        start: Ipv6Addr::from(s.array::<16>("traffic selector")?),
                        end: Ipv6Addr::from(s.array::<16>("traffic selector")?),
                    })
                }
                ts_type => TrafficSelector::Other {
                    ts_type,
                    second_octet,
                    data: s.rest(),
                },
            };
            selectors.push(ts);
        }
        if selectors.len() != usize::from(count) {
            return Err(Error::CountMismatch("traffic selectors"));
        }
        Ok(TrafficSelectors { selectors })
    }

    fn buffer_len(&self) -> usize {
        4 + self
            .selectors
            .iter()
            .map(TrafficSelector::buffer_len)
            .sum::<usize>()
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(len_u8(self.selectors.len(), "traffic selectors")?);
        w.put(&[0; 3]);
        for ts in &self.selectors {
            let len = len_u16(ts.buffer_len(), "traffic selector")?;
            match ts {
                TrafficSelector::Ipv4(t) => {
                    w.u8(TsType::IPV4_ADDR_RANGE.0);
                    w.u8(t.ip_protocol);
                    w.u16(len);
                    w.u16(t.start_port);
                    w.u16(t.end_port);
                    w.put(&t.start.octets());
                    w.put(&t.end.octets());
                }
                TrafficSelector::Ipv6(t) => {
                    w.u8(TsType::IPV6_ADDR_RANGE.0);
                    w.u8(t.ip_protocol);
                    w.u16(len);
                    w.u16(t.start_port);
                    w.u16(t.end_port);
                    w.put(&t.start.octets());
                    w.put(&t.end.octets());
                }
                TrafficSelector::Other {
                    ts_type,
                    second_octet,
                    data,
                } => {
                    w.u8(ts_type.0);
                    w.u8(*second_octet);
                    w.u16(len);
                    w.put(data);
                }
            }
        }
        Ok(())
    }
}

impl TrafficSelector<'_> {
    /// The TS Type.
    pub fn ts_type(&self) -> TsType {
        match self {
            TrafficSelector::Ipv4(_) => TsType::IPV4_ADDR_RANGE,
            TrafficSelector::Ipv6(_) => TsType::IPV6_ADDR_RANGE,
            TrafficSelector::Other { ts_type, .. } => *ts_type,
        }
    }

    /// Length of the selector including its 4-byte header.
    pub fn buffer_len(&self) -> usize {
        match self {
            TrafficSelector::Ipv4(_) => 16,
            TrafficSelector::Ipv6(_) => 40,
            TrafficSelector::Other { data, .. } => 4 + data.len(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// SK, SKF (§3.14, RFC 7383)

/// The Encrypted and Authenticated payload (§3.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encrypted<'a> {
    /// Type of the first payload inside the encryption.
    pub next_payload: PayloadType,
    /// IV, encrypted payloads with padding and pad length, and the ICV, as one block: their
    /// split depends on the negotiated algorithms ([`crate::ikev2::SkLayout::split`]).
    pub data: &'a [u8],
}

/// The Encrypted and Authenticated Fragment payload (RFC 7383 §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedFragment<'a> {
    /// Type of the first inner payload in fragment 1; zero in the other fragments.
    pub next_payload: PayloadType,
    /// Fragment Number, starting at 1.
    pub fragment_number: u16,
    /// Total Fragments.
    pub total_fragments: u16,
    /// IV, encrypted content, padding and ICV, as for [`Encrypted::data`].
    pub data: &'a [u8],
}

impl<'a> EncryptedFragment<'a> {
    fn parse(r: &mut Reader<'a>, next: PayloadType) -> Result<Self> {
        let fragment_number = r.u16("SKF")?;
        let total_fragments = r.u16("SKF")?;
        Ok(EncryptedFragment {
            next_payload: next,
            fragment_number,
            total_fragments,
            data: r.rest(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// CP (§3.15)

/// The Configuration payload (§3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config<'a> {
    /// CFG Type.
    pub cfg_type: CfgType,
    /// The configuration attributes.
    pub attributes: Vec<CfgAttribute<'a>>,
}

/// A configuration attribute (§3.15.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfgAttribute<'a> {
    /// Attribute Type (15 bits; the reserved high bit is ignored).
    pub ty: CfgAttrType,
    /// The value (empty in a request).
    pub value: &'a [u8],
}

impl<'a> Config<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let cfg_type = CfgType(r.u8("CP")?);
        let _reserved = r.take(3, "CP")?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let ty = CfgAttrType(r.u16("CP attribute")? & 0x7fff);
            let len = r.u16("CP attribute")?;
            let value = r.take(usize::from(len), "CP attribute value")?;
            attributes.push(CfgAttribute { ty, value });
        }
        Ok(Config {
            cfg_type,
            attributes,
        })
    }

    fn buffer_len(&self) -> usize {
        4 + self
            .attributes
            .iter()
            .map(|a| 4 + a.value.len())
            .sum::<usize>()
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.cfg_type.0);
        w.put(&[0; 3]);
        for a in &self.attributes {
            if a.ty.0 > 0x7fff {
                return Err(Error::Malformed("CP attribute type above 15 bits"));
            }
            w.u16(a.ty.0);
            w.u16(len_u16(a.value.len(), "CP attribute value")?);
            w.put(a.value);
        }
        Ok(())
    }
}
