//! X.509 certificates: parsing (x509-parser) and chain validation (rustls-webpki), with the
//! time as an input (sans-IO).

use std::net::IpAddr;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::Error;
use crate::sig::KeyKind;

/// Most certificates the peer may present in a chain: the end entity plus intermediates (the
/// trust anchor is not counted). SPEC R-V2-9: chains up to 5.
pub const MAX_CHAIN_LEN: usize = 5;

/// A parsed certificate (the DER is kept; fields are read on demand).
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificate({})", self.subject())
    }
}

/// A subjectAltName entry relevant to IKE identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    /// dNSName (ID_FQDN).
    Dns(String),
    /// rfc822Name (ID_RFC822_ADDR).
    Email(String),
    /// iPAddress (ID_IPV4_ADDR / ID_IPV6_ADDR).
    Ip(IpAddr),
}

impl Certificate {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        match X509Certificate::from_der(der) {
            Ok(([], _)) => Ok(Self { der: der.to_vec() }),
            Ok(_) => Err(Error::Certificate("trailing data after certificate".into())),
            Err(e) => Err(Error::Certificate(format!("malformed certificate: {e}"))),
        }
    }

    /// Parses every CERTIFICATE block of a PEM file.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>, Error> {
        let mut out = Vec::new();
        for p in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let p = p.map_err(|e| Error::Certificate(format!("bad PEM: {e}")))?;
            if p.label == "CERTIFICATE" {
                out.push(Self::from_der(&p.contents)?);
            }
        }
        Ok(out)
    }

    /// The DER encoding (for CERT payloads).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    fn parsed(&self) -> X509Certificate<'_> {
        // Parsed successfully in the constructor.
        X509Certificate::from_der(&self.der)
            .map(|(_, c)| c)
            .expect("validated at construction")
    }

    /// The subject DN, human-readable (RFC 4514 style).
    pub fn subject(&self) -> String {
        self.parsed().subject().to_string()
    }

    /// The subject DN as DER (compare with an ID_DER_ASN1_DN identity).
    pub fn subject_der(&self) -> Vec<u8> {
        self.parsed().subject().as_raw().to_vec()
    }

    /// The subjectAltName entries usable as IKE identities.
    pub fn subject_alt_names(&self) -> Vec<SubjectAltName> {
        let c = self.parsed();
        let Ok(Some(san)) = c.subject_alternative_name() else {
            return Vec::new();
        };
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(SubjectAltName::Dns((*d).to_string())),
                GeneralName::RFC822Name(e) => Some(SubjectAltName::Email((*e).to_string())),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => <[u8; 4]>::try_from(*b)
                        .ok()
                        .map(|a| SubjectAltName::Ip(IpAddr::from(a))),
                    16 => <[u8; 16]>::try_from(*b)
                        .ok()
                        .map(|a| SubjectAltName::Ip(IpAddr::from(a))),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// The subjectPublicKey contents, for [`crate::sig::verify`].
    pub fn public_key(&self) -> Vec<u8> {
        self.parsed().public_key().subject_public_key.data.to_vec()
    }

    /// The issuer DN, human-readable (RFC 4514 style).
    pub fn issuer(&self) -> String {
        self.parsed().issuer().to_string()
    }

    /// notBefore and notAfter, in seconds since the Unix epoch.
    pub fn validity(&self) -> (i64, i64) {
        let c = self.parsed();
        let v = c.validity();
        (v.not_before.timestamp(), v.not_after.timestamp())
    }

    /// The type and size of the subject's public key.
    pub fn key_kind(&self) -> KeyKind {
        use x509_parser::public_key::PublicKey;
        let c = self.parsed();
        let spki = c.public_key();
        match spki.parsed() {
            Ok(PublicKey::RSA(k)) => KeyKind::Rsa {
                bits: u32::try_from(k.key_size()).unwrap_or(u32::MAX),
            },
            Ok(PublicKey::EC(_)) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                match curve.as_deref() {
                    Some("1.2.840.10045.3.1.7") => KeyKind::Ecdsa { curve: 256 },
                    Some("1.3.132.0.34") => KeyKind::Ecdsa { curve: 384 },
                    Some("1.3.132.0.35") => KeyKind::Ecdsa { curve: 521 },
                    Some(o) => KeyKind::Other(format!("EC on curve {o}")),
                    None => KeyKind::Other("EC without a named curve".into()),
                }
            }
            Ok(PublicKey::Unknown(_))
                if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" =>
            {
                KeyKind::Ed25519
            }
            Ok(PublicKey::DSA(_)) => KeyKind::Other("DSA".into()),
            _ => KeyKind::Other(format!(
                "public key algorithm {}",
                spki.algorithm.algorithm.to_id_string()
            )),
        }
    }

    /// Whether basicConstraints says this is a CA certificate.
    pub fn is_ca(&self) -> bool {
        self.parsed().is_ca()
    }

    /// SHA-1 of the DER subjectPublicKeyInfo: how a CERTREQ names a trust anchor (RFC 7296
    /// §3.7) and the key ID strongSwan uses.
    pub fn spki_sha1(&self) -> Vec<u8> {
        crate::HashAlgorithm::Sha1.digest(&[self.parsed().public_key().raw])
    }

    /// SHA-1 of the DER (the hash of hash-and-URL encodings, RFC 7296 §3.6).
    pub fn sha1(&self) -> Vec<u8> {
        crate::HashAlgorithm::Sha1.digest(&[&self.der])
    }

    /// Whether it may sign CRLs: no keyUsage extension, or one with cRLSign (RFC 5280
    /// §4.2.1.3, as rustls-webpki checks it).
    pub fn may_sign_crls(&self) -> bool {
        match self.parsed().key_usage() {
            Ok(Some(ku)) => ku.value.crl_sign(),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// The subjectPublicKeyInfo's AlgorithmIdentifier contents and the key's octets.
    pub(crate) fn spki_parts(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        use x509_parser::asn1_rs::{Any, FromDer as _};
        let c = self.parsed();
        let raw = c.public_key().raw;
        let (_, spki) = Any::from_der(raw).ok()?;
        let (rest, alg) = Any::from_der(spki.data).ok()?;
        let (_, key) = Any::from_der(rest).ok()?;
        let (&unused, key) = key.data.split_first()?;
        (unused == 0).then(|| (alg.data.to_vec(), key.to_vec()))
    }

    /// The serial number: the DER INTEGER's content octets (as a CRL entry names it).
    pub fn serial(&self) -> Vec<u8> {
        self.parsed().raw_serial().to_vec()
    }

    /// The issuer DN as DER.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.parsed().issuer().as_raw().to_vec()
    }

    /// The http:// URLs of its CRL distribution points (RFC 5280 §4.2.1.13), at most 4.
    pub fn crl_urls(&self) -> Vec<String> {
        use x509_parser::extensions::{DistributionPointName, ParsedExtension};
        let c = self.parsed();
        let mut out = Vec::new();
        for ext in c.extensions() {
            let ParsedExtension::CRLDistributionPoints(dps) = ext.parsed_extension() else {
                continue;
            };
            for dp in dps.iter() {
                let Some(DistributionPointName::FullName(names)) = &dp.distribution_point else {
                    continue;
                };
                for n in names {
                    if let GeneralName::URI(u) = n
                        && u.starts_with("http://")
                        && u.len() <= 1024
                        && out.len() < 4
                    {
                        out.push((*u).to_owned());
                    }
                }
            }
        }
        out
    }
}

/// Extended key usage policy for IKE (RFC 4945 §5.1.3.12): no EKU, or one of serverAuth,
/// clientAuth, ipsecIKE or anyExtendedKeyUsage.
struct IkeEku;

const EKU_OK: [&[u8]; 4] = [
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01], // id-kp-serverAuth
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02], // id-kp-clientAuth
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11], // id-kp-ipsecIKE
    &[0x55, 0x1d, 0x25, 0x00],                         // anyExtendedKeyUsage
];

impl ExtendedKeyUsageValidator for IkeEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut any = false;
        for id in iter {
            let id = id?;
            any = true;
            if EKU_OK.iter().any(|ok| webpki::KeyPurposeId::new(ok) == id) {
                return Ok(());
            }
        }
        // The context variant needs webpki-internal data; the plain variant carries the same
        // meaning.
        #[allow(deprecated)]
        let not_found = webpki::Error::RequiredEkuNotFound;
        if any { Err(not_found) } else { Ok(()) }
    }
}

/// Why a chain did not validate ([`check_chain`]), with what an operator needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// More certificates than [`MAX_CHAIN_LEN`].
    #[error("chain of {len} certificates exceeds {MAX_CHAIN_LEN}")]
    TooLong {
        /// How many were presented (end entity and intermediates).
        len: usize,
    },
    /// A certificate of the chain has expired.
    #[error("certificate \"{subject}\" expired on {} (now {})", fmt_utc(*.not_after), fmt_utc(*.now))]
    Expired {
        /// Its subject.
        subject: String,
        /// Its notAfter (Unix seconds).
        not_after: i64,
        /// The time it was checked at (Unix seconds).
        now: i64,
    },
    /// A certificate of the chain is not valid yet.
    #[error("certificate \"{subject}\" is not valid before {} (now {})", fmt_utc(*.not_before), fmt_utc(*.now))]
    NotYetValid {
        /// Its subject.
        subject: String,
        /// Its notBefore (Unix seconds).
        not_before: i64,
        /// The time it was checked at (Unix seconds).
        now: i64,
    },
    /// The chain ends at an issuer that is neither a trust anchor nor a presented intermediate.
    #[error(
        "certificate \"{subject}\" was issued by \"{issuer}\", which is not a trusted CA (and \
         no intermediate certificate for it was sent)"
    )]
    UntrustedIssuer {
        /// The subject of the last certificate that could be placed.
        subject: String,
        /// The issuer that was not found.
        issuer: String,
    },
    /// A certificate of the chain is on its issuer's CRL.
    #[error(
        "{role} \"{subject}\" serial {} revoked by \"{issuer}\" on {}{}",
        crate::crl::serial_hex(serial),
        fmt_utc(*.date),
        reason.map(|r| format!(" (reason {r})")).unwrap_or_default()
    )]
    Revoked {
        /// `peer certificate` or `intermediate certificate`.
        role: &'static str,
        /// Its subject.
        subject: String,
        /// Its serial number's octets.
        serial: Vec<u8>,
        /// The CRL's issuer.
        issuer: String,
        /// The revocation date (Unix seconds).
        date: i64,
        /// The CRL entry's reason code, by name.
        reason: Option<&'static str>,
    },
    /// Any other reason (bad signature in the chain, key usage, SHA-1 …), as the validator
    /// words it.
    #[error("certificate \"{subject}\" does not validate: {reason}")]
    Invalid {
        /// The end entity's subject.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// Which certificate of `path` (the end entity first) a CRL revokes, in words.
fn revoked(path: &[&Certificate], crls: &[crate::crl::Crl]) -> Option<ChainError> {
    path.iter().enumerate().find_map(|(i, c)| {
        let (issuer, serial) = (c.issuer_der(), c.serial());
        crls.iter()
            .filter(|crl| crl.issued_by_name(&issuer))
            .find_map(|crl| {
                let e = crl.entry(&serial)?;
                Some(ChainError::Revoked {
                    role: if i == 0 {
                        "peer certificate"
                    } else {
                        "intermediate certificate"
                    },
                    subject: c.subject(),
                    serial: serial.clone(),
                    issuer: crl.issuer().to_owned(),
                    date: e.date,
                    reason: e.reason,
                })
            })
    })
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn fmt_utc(secs: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A DER distinguished name (an ID_DER_ASN1_DN identity's data) as text (RFC 4514 style), or
/// `None` when it does not parse.
pub fn dn_to_string(der: &[u8]) -> Option<String> {
    match x509_parser::x509::X509Name::from_der(der) {
        Ok(([], n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Validates `end_entity` up to one of `trust_anchors` through `intermediates`, at
/// `now_unix_secs` (seconds since the Unix epoch, supplied by the caller). Signatures in the
/// chain may be RSA (PKCS#1, PSS), ECDSA or Ed25519 with SHA-2; SHA-1 signed certificates are
/// refused. The path may have at most [`MAX_CHAIN_LEN`] certificates below the anchor.
pub fn verify_chain(
    end_entity: &Certificate,
    intermediates: &[Certificate],
    trust_anchors: &[Certificate],
    now_unix_secs: u64,
) -> Result<(), Error> {
    check_chain(end_entity, intermediates, trust_anchors, &[], now_unix_secs)
        .map_err(|e| Error::Certificate(e.to_string()))
}

/// [`verify_chain`] with revocation and the reason typed: which certificate expired and when,
/// which issuer is missing, which certificate a CRL revokes.
///
/// Revocation (RFC 5280 §6.3) is rustls-webpki's, for the end entity and every intermediate:
/// a certificate on a CRL of its issuer (whose signature webpki checks with the issuer's key)
/// fails; a certificate for which no CRL is given passes (strongSwan's default policy, not
/// "strict"), and so does one checked against a CRL past its nextUpdate (strongSwan uses a
/// stale CRL too; whoever loaded it warns).
pub fn check_chain(
    end_entity: &Certificate,
    intermediates: &[Certificate],
    trust_anchors: &[Certificate],
    crls: &[crate::crl::Crl],
    now_unix_secs: u64,
) -> Result<(), ChainError> {
    if intermediates.len() + 1 > MAX_CHAIN_LEN {
        return Err(ChainError::TooLong {
            len: intermediates.len() + 1,
        });
    }
    let now = i64::try_from(now_unix_secs).unwrap_or(i64::MAX);
    // The path the issuer names give, from the end entity up, as far as it goes through the
    // intermediates: the dates of each, and where it leaves the presented certificates.
    let mut path = vec![end_entity];
    while path.len() <= MAX_CHAIN_LEN {
        let last = path[path.len() - 1].parsed();
        let issuer = last.issuer().as_raw();
        if trust_anchors
            .iter()
            .any(|a| a.parsed().subject().as_raw() == issuer)
        {
            break;
        }
        let Some(next) = intermediates
            .iter()
            .find(|c| c.parsed().subject().as_raw() == issuer && !path.contains(c))
        else {
            return Err(ChainError::UntrustedIssuer {
                subject: last.subject().to_string(),
                issuer: last.issuer().to_string(),
            });
        };
        path.push(next);
    }
    for c in &path {
        let (not_before, not_after) = c.validity();
        if now > not_after {
            return Err(ChainError::Expired {
                subject: c.subject(),
                not_after,
                now,
            });
        }
        if now < not_before {
            return Err(ChainError::NotYetValid {
                subject: c.subject(),
                not_before,
                now,
            });
        }
    }
    let invalid = |reason: String| ChainError::Invalid {
        subject: end_entity.subject(),
        reason,
    };
    let anchor_ders: Vec<CertificateDer<'_>> = trust_anchors
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let anchors = anchor_ders
        .iter()
        .map(|d| {
            webpki::anchor_from_trusted_cert(d)
                .map_err(|e| invalid(format!("bad trust anchor: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let ee_der = CertificateDer::from(end_entity.der.as_slice());
    let ee = EndEntityCert::try_from(&ee_der)
        .map_err(|e| invalid(format!("bad end-entity certificate: {e}")))?;
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().map(|c| c.webpki()).collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
        .ok()
        .map(|b| {
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                .build()
        });
    let verified = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        UnixTime::since_unix_epoch(Duration::from_secs(now_unix_secs)),
        IkeEku,
        revocation,
        None,
    );
    let path = match verified {
        Ok(p) => p,
        Err(webpki::Error::CertRevoked) => {
            return Err(revoked(&path, crls)
                .unwrap_or_else(|| invalid("a certificate of the chain is revoked".into())));
        }
        Err(e) => return Err(invalid(e.to_string())),
    };
    let len = path.intermediate_certificates().count() + 1;
    if len > MAX_CHAIN_LEN {
        return Err(ChainError::TooLong { len });
    }
    Ok(())
}
