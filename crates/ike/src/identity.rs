//! IKE identities (RFC 7296 §3.5, RFC 2407 §4.6.2): what a gateway calls itself and expects
//! of its peer, the same for both IKE versions.

use std::fmt;
use std::net::IpAddr;

use ferrosec_wire::ikev2::IdType;

/// An IKE identity (RFC 7296 §3.5): type and data.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// ID Type.
    pub ty: IdType,
    /// Identification Data.
    pub data: Vec<u8>,
}

impl Identity {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    pub fn addr(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Identity {
                ty: IdType::IPV4_ADDR,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => Identity {
                ty: IdType::IPV6_ADDR,
                data: a.octets().to_vec(),
            },
        }
    }

    /// ID_FQDN.
    pub fn fqdn(name: &str) -> Self {
        Identity {
            ty: IdType::FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    /// ID_RFC822_ADDR (user FQDN).
    pub fn ufqdn(name: &str) -> Self {
        Identity {
            ty: IdType::RFC822_ADDR,
            data: name.as_bytes().to_vec(),
        }
    }

    /// ID_KEY_ID.
    pub fn key_id(id: &[u8]) -> Self {
        Identity {
            ty: IdType::KEY_ID,
            data: id.to_vec(),
        }
    }

    /// ID_DER_ASN1_DN (the DER encoding of a distinguished name).
    pub fn der_dn(der: &[u8]) -> Self {
        Identity {
            ty: IdType::DER_ASN1_DN,
            data: der.to_vec(),
        }
    }

    /// ID_DER_ASN1_DN written as text (`C=CH, O=Example, CN=gw`): for an expected peer ID
    /// only, compared by [`Identity::matches`] with the DER the peer sends (never sent).
    pub fn dn_text(name: &str) -> Self {
        Identity {
            ty: IdType::DER_ASN1_DN,
            data: name.as_bytes().to_vec(),
        }
    }

    /// Whether the `presented` identity is the one this (expected) identity names: the same
    /// type and data, or for distinguished names the same name however it is encoded (the
    /// expected one may be DER or text, see [`Identity::dn_text`]).
    pub fn matches(&self, presented: &Identity) -> bool {
        if self == presented {
            return true;
        }
        if self.ty != IdType::DER_ASN1_DN || presented.ty != IdType::DER_ASN1_DN {
            return false;
        }
        let ours = ferrosec_crypto::x509::dn_to_string(&self.data)
            .or_else(|| std::str::from_utf8(&self.data).ok().map(str::to_owned));
        match (ours, ferrosec_crypto::x509::dn_to_string(&presented.data)) {
            (Some(a), Some(b)) => dn_eq(&a, &b),
            _ => false,
        }
    }

    /// The ID payload body without the generic header (IDx' of §2.15): type, three
    /// reserved octets, data.
    pub(crate) fn payload_body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.data.len());
        v.extend_from_slice(&[self.ty.0, 0, 0, 0]);
        v.extend_from_slice(&self.data);
        v
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ty {
            IdType::IPV4_ADDR => match <[u8; 4]>::try_from(self.data.as_slice()) {
                Ok(b) => write!(f, "ipaddr:{}", std::net::Ipv4Addr::from(b)),
                Err(_) => write!(f, "ipaddr:(malformed)"),
            },
            IdType::IPV6_ADDR => match <[u8; 16]>::try_from(self.data.as_slice()) {
                Ok(b) => write!(f, "ipaddr:{}", std::net::Ipv6Addr::from(b)),
                Err(_) => write!(f, "ipaddr:(malformed)"),
            },
            IdType::FQDN => write!(f, "fqdn:{}", String::from_utf8_lossy(&self.data)),
            IdType::RFC822_ADDR => write!(f, "ufqdn:{}", String::from_utf8_lossy(&self.data)),
            IdType::DER_ASN1_DN => match ferrosec_crypto::x509::dn_to_string(&self.data) {
                Some(dn) => write!(f, "dn:\"{dn}\""),
                None => write!(f, "dn:\"{}\"", String::from_utf8_lossy(&self.data)),
            },
            ty => {
                write!(f, "{ty}:")?;
                for b in &self.data {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Two DNs in text (RFC 4514 style) name the same: the same attributes in the same order,
/// types compared without case, blanks around separators ignored.
pub(crate) fn dn_eq(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> Vec<(String, String)> {
        s.split([',', '/'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_uppercase(), v.trim().to_owned()),
                None => (String::new(), p.to_owned()),
            })
            .collect()
    }
    norm(a) == norm(b)
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
