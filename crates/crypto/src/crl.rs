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

    /// Whether `ca` issued and signed it ([`Crl::check_signed_by`]).
    pub fn is_signed_by(&self, ca: &Certificate) -> bool {
        self.check_signed_by(ca).is_ok()
    }

    /// That `ca` issued and signed it, as chain validation will check it: the issuer names
    /// match, the CA's keyUsage (when present) allows cRLSign, and the signature verifies
    /// with the CA's key by one of rustls-webpki's algorithms (SHA-2; a SHA-1 signed CRL is
    /// refused here rather than failing every validation later). Else why not, in words.
    pub fn check_signed_by(&self, ca: &Certificate) -> Result<(), String> {
        if ca.subject_der() != self.inner.issuer_der {
            return Err(format!(
                "it was issued by \"{}\", not by \"{}\"",
                self.inner.issuer,
                ca.subject()
            ));
        }
        if !ca.may_sign_crls() {
            return Err(format!(
                "the keyUsage of the CA certificate \"{}\" does not include cRLSign",
                ca.subject()
            ));
        }
        let (tbs, alg, sig) = signed_parts(&self.inner.der)
            .ok_or_else(|| "its signature is not well-formed DER".to_owned())?;
        let (key_alg, key) = ca
            .spki_parts()
            .ok_or_else(|| "the CA's public key is not well-formed DER".to_owned())?;
        let algorithm = webpki::ALL_VERIFICATION_ALGS
            .iter()
            .find(|a| {
                a.signature_alg_id().as_ref() == alg && a.public_key_alg_id().as_ref() == key_alg
            })
            .ok_or_else(|| {
                "it is signed with an algorithm not accepted for this CA's key (RSA PKCS#1 or \
                 PSS, ECDSA, Ed25519, with SHA-2)"
                    .to_owned()
            })?;
        algorithm
            .verify_signature(&key, tbs, sig)
            .map_err(|_| "its signature does not verify with the CA's key".to_owned())
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

/// The signed TBS (whole, with its header), the signature AlgorithmIdentifier's contents and
/// the signature of a signed DER structure (`SEQUENCE { tbs, algorithm, BIT STRING }`).
fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    use x509_parser::asn1_rs::{Any, FromDer as _};
    let (_, outer) = Any::from_der(der).ok()?;
    let content = outer.data;
    let (rest, _) = Any::from_der(content).ok()?;
    let tbs = content.get(..content.len() - rest.len())?;
    let (rest, alg) = Any::from_der(rest).ok()?;
    let (_, sig) = Any::from_der(rest).ok()?;
    // A BIT STRING of whole octets.
    let (&unused, sig) = sig.data.split_first()?;
    (unused == 0).then_some((tbs, alg.data, sig))
}

/// A serial number as `0a:1b:…`, the way OpenSSL and strongSwan show it: the value's octets,
/// without the leading zero octet DER puts before a first octet of 0x80 or more (a serial
/// starting d1:… was shown as 00:d1:…, which matched neither).
pub fn serial_hex(serial: &[u8]) -> String {
    let first = serial
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    serial[first..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::serial_hex;

    /// Serials read as OpenSSL prints them (`openssl x509 -serial`), which interop 48 compares
    /// with the log: DER's sign octet is not part of the number.
    #[test]
    fn serials_are_shown_without_the_der_sign_octet() {
        assert_eq!(serial_hex(&[0x00, 0xd1, 0xea, 0x0f]), "d1:ea:0f");
        assert_eq!(serial_hex(&[0x7f, 0x00, 0x01]), "7f:00:01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "");
    }
}
