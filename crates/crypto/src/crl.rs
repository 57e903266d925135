//! Certificate revocation lists (RFC 5280 §5): parsing (rustls-webpki, which also checks them
//! during chain validation, and x509-parser for the fields shown to an operator), the issuer's
//! signature, and the entry of a revoked certificate in words.
//!
//! A [`Crl`] is checked against a certificate chain by [`crate::x509::check_chain`]; that a
//! CRL is signed by a configured CA and whether it is past its nextUpdate are the caller's
//! questions ([`Crl::is_signed_by`], [`Crl::next_update`]), asked with the time it supplies.

use std::fmt;
use std::sync::Arc;

use webpki::{CertRevocationList, OwnedCertRevocationList, RevocationReason};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::Error;
use crate::x509::Certificate;

/// The largest CRL taken (a file or a fetched one): 1 MiB, some 30,000 entries.
pub const MAX_CRL_SIZE: usize = 1024 * 1024;

/// A parsed certificate revocation list (X.509 v2, with nextUpdate, not a delta CRL). Cheap to
/// clone.
#[derive(Clone)]
pub struct Crl {
    inner: Arc<Inner>,
}

struct Inner {
    der: Vec<u8>,
    webpki: CertRevocationList<'static>,
    issuer: String,
    issuer_der: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
    revoked: usize,
}

impl PartialEq for Crl {
    fn eq(&self, other: &Crl) -> bool {
        self.inner.der == other.inner.der
    }
}

impl Eq for Crl {}

impl fmt::Debug for Crl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Crl(issuer {}, {} revoked)",
            self.inner.issuer, self.inner.revoked
        )
    }
}

/// A revoked certificate's entry: when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// revocationDate, Unix seconds.
    pub date: i64,
    /// The reason code's name (RFC 5280 §5.3.1), `None` when the entry has none.
    pub reason: Option<&'static str>,
}

/// RFC 5280 §5.3.1 CRLReason names, as OpenSSL and strongSwan print them.
fn reason_name(r: RevocationReason) -> &'static str {
    match r {
        RevocationReason::Unspecified => "unspecified",
        RevocationReason::KeyCompromise => "keyCompromise",
        RevocationReason::CaCompromise => "cACompromise",
        RevocationReason::AffiliationChanged => "affiliationChanged",
        RevocationReason::Superseded => "superseded",
        RevocationReason::CessationOfOperation => "cessationOfOperation",
        RevocationReason::CertificateHold => "certificateHold",
        RevocationReason::RemoveFromCrl => "removeFromCRL",
        RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        RevocationReason::AaCompromise => "aACompromise",
    }
}

impl Crl {
    /// Parses a DER CRL (at most [`MAX_CRL_SIZE`] bytes).
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        if der.len() > MAX_CRL_SIZE {
            return Err(Error::Certificate(format!(
                "the CRL has {} bytes, more than the {MAX_CRL_SIZE} taken",
                der.len()
            )));
        }
        let parsed = match CertificateRevocationList::from_der(der) {
            Ok(([], c)) => c,
            Ok(_) => return Err(Error::Certificate("trailing data after the CRL".into())),
            Err(e) => return Err(Error::Certificate(format!("malformed CRL: {e}"))),
        };
        let owned = OwnedCertRevocationList::from_der(der)
            .map_err(|e| Error::Certificate(format!("unsupported CRL: {e}")))?;
        let tbs = &parsed.tbs_cert_list;
        Ok(Self {
            inner: Arc::new(Inner {
                der: der.to_vec(),
                webpki: CertRevocationList::Owned(owned),
                issuer: tbs.issuer.to_string(),
                issuer_der: tbs.issuer.as_raw().to_vec(),
                this_update: tbs.this_update.timestamp(),
                next_update: tbs.next_update.map(|t| t.timestamp()),
                revoked: tbs.revoked_certificates.len(),
            }),
        })
    }

    /// The CRLs of a file: every `X509 CRL` block of a PEM file, or one DER CRL.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Vec<Self>, Error> {
        if bytes.first() == Some(&0x30) {
            return Ok(vec![Self::from_der(bytes)?]);
        }
        let mut out = Vec::new();
        for p in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let p = p.map_err(|e| Error::Certificate(format!("bad PEM: {e}")))?;
            if p.label == "X509 CRL" {
                out.push(Self::from_der(&p.contents)?);
            }
        }
        Ok(out)
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }

    /// The issuer DN, human-readable (RFC 4514 style).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The issuer DN as DER.
    pub fn issuer_der(&self) -> &[u8] {
        &self.inner.issuer_der
    }

    /// thisUpdate, Unix seconds.
    pub fn this_update(&self) -> i64 {
        self.inner.this_update
    }

    /// nextUpdate, Unix seconds (always present: a CRL without it does not parse).
    pub fn next_update(&self) -> Option<i64> {
        self.inner.next_update
    }

    /// How many certificates it revokes.
    pub fn revoked_count(&self) -> usize {
        self.inner.revoked
    }

    /// Whether `ca` issued and signed it: the issuer names match and the signature verifies
    /// with the CA's key.
    pub fn is_signed_by(&self, ca: &Certificate) -> bool {
        let Ok((_, parsed)) = CertificateRevocationList::from_der(&self.inner.der) else {
            return false;
        };
        let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(ca.der()) else {
            return false;
        };
        cert.subject().as_raw() == self.inner.issuer_der.as_slice()
            && parsed.verify_signature(cert.public_key()).is_ok()
    }

    /// The entry of the certificate with this serial number (the DER INTEGER's content
    /// octets), if it revokes it.
    pub fn entry(&self, serial: &[u8]) -> Option<Revoked> {
        let e = self.inner.webpki.find_serial(serial).ok()??;
        Some(Revoked {
            date: i64::try_from(e.revocation_date.as_secs()).unwrap_or(i64::MAX),
            reason: e.reason_code.map(reason_name),
        })
    }

    /// Whether it revokes certificates of the issuer named by this DER DN.
    pub(crate) fn issued_by_name(&self, issuer_der: &[u8]) -> bool {
        self.inner.issuer_der == issuer_der
    }

    pub(crate) fn webpki(&self) -> &CertRevocationList<'static> {
        &self.inner.webpki
    }
}

/// A serial number's octets as `0a:1b:…`.
pub fn serial_hex(serial: &[u8]) -> String {
    serial
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
