//! Certificate authentication (RFC 7296 §3.6–3.8, RFC 7427): what a peer configuration signs
//! with, the SIGNATURE_HASH_ALGORITHMS notify, the AUTH payload's signature formats, and the
//! checks of the peer's certificate, ID and signature, each failure in words.
//!
//! The signed octets are those of shared-key authentication (§2.15): the peer's
//! `RealMessage | Nonce | prf(SK_p, ID')`; only the operation over them differs.

use std::fmt;
use std::sync::Arc;

use ferrosec_crypto::crl::Crl;
use ferrosec_crypto::sig::{self, SignatureScheme, SigningKey};
use ferrosec_crypto::x509::{self, Certificate, ChainError, SubjectAltName};
use ferrosec_wire::ikev2::{AuthMethod, CertEncoding, IdType};

use crate::event::{AuthInfo, CertificateInfo, Failure, LocalError};
use crate::identity::Identity;

/// A private key the engine signs AUTH payloads with. Implemented by [`SigningKey`]; the
/// daemon may wrap a key it shares with its configuration.
pub trait AuthKey: Send + Sync {
    /// The schemes the key can sign with.
    fn schemes(&self) -> &[SignatureScheme];
    /// Signs `message` with `scheme`.
    fn sign(
        &self,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, ferrosec_crypto::Error>;
    /// Signs an IKEv1 HASH_I / HASH_R as it is (RFC 2409 §5.1, RFC 4754: see
    /// [`sig::PrehashedScheme`]). A key that cannot gives an error (the default).
    fn sign_prehashed(&self, hash: &[u8]) -> Result<Vec<u8>, ferrosec_crypto::Error> {
        let _ = hash;
        Err(ferrosec_crypto::Error::Unsupported(
            "this key does not sign IKEv1 hashes",
        ))
    }
}

impl AuthKey for SigningKey {
    fn schemes(&self) -> &[SignatureScheme] {
        SigningKey::schemes(self)
    }

    fn sign(
        &self,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, ferrosec_crypto::Error> {
        SigningKey::sign(self, scheme, message)
    }

    fn sign_prehashed(&self, hash: &[u8]) -> Result<Vec<u8>, ferrosec_crypto::Error> {
        SigningKey::sign_prehashed(self, hash)
    }
}

/// Certificate authentication of a peer configuration ([`crate::v2::Endpoint::set_certificates`]):
/// our key, our certificate and its intermediates (sent in this order), and the trust anchors
/// the peer's certificate must lead to.
#[derive(Clone)]
pub struct CertAuth {
    /// Our private key (that of `chain[0]`).
    pub key: Arc<dyn AuthKey>,
    /// Our certificate, then its intermediates.
    pub chain: Vec<Certificate>,
    /// The CA certificates we trust for the peer's.
    pub trust_anchors: Vec<Certificate>,
    /// The CRLs the peer's chain is checked against (`certificate.crl`): a certificate on
    /// one of its issuer fails authentication.
    pub crls: Vec<Crl>,
    /// Fetch the CRLs named by the peer certificates' distribution points
    /// ([`crate::event::Event::FetchCrl`]) when no CRL file of their issuer is configured.
    pub fetch_crls: bool,
    /// Where our DER certificate is published (hash-and-URL, RFC 7296 §3.6): sent instead
    /// of the certificate itself to a peer that announced HTTP_CERT_LOOKUP_SUPPORTED.
    pub hash_and_url: Option<String>,
    /// Fetch the peer's certificate when it sends a hash and URL: we announce
    /// HTTP_CERT_LOOKUP_SUPPORTED beside our CERTREQ, and the daemon fetches
    /// ([`crate::event::Event::FetchCertificate`]).
    pub fetch_hash_and_url: bool,
}

impl fmt::Debug for CertAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAuth")
            .field("chain", &self.chain)
            .field("trust_anchors", &self.trust_anchors)
            .field("crls", &self.crls)
            .finish_non_exhaustive()
    }
}

impl CertAuth {
    /// Our ID when none is configured: ID_DER_ASN1_DN with our certificate's subject.
    pub(crate) fn default_id(&self) -> Option<Identity> {
        self.chain
            .first()
            .map(|c| Identity::der_dn(&c.subject_der()))
    }

    /// Our CERT payloads' encodings and data: our certificate, then its intermediates. To a
    /// peer that can fetch (`peer_fetches`: it sent HTTP_CERT_LOOKUP_SUPPORTED) and with a
    /// URL configured, our certificate goes as its SHA-1 hash and URL.
    pub(crate) fn cert_payloads(&self, peer_fetches: bool) -> Vec<(CertEncoding, Vec<u8>)> {
        self.chain
            .iter()
            .enumerate()
            .map(|(i, c)| match (&self.hash_and_url, peer_fetches, i) {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-3.6
                //# Hash and URL encodings allow IKE messages to remain short by replacing
                //# long data structures with a 20-octet SHA-1 hash (see [SHA]) of the
                //# replaced value followed by a variable-length URL that resolves to the
                //# DER-encoded data structure itself.
                (Some(url), true, 0) => {
                    let mut d = c.sha1();
                    d.extend_from_slice(url.as_bytes());
                    (CertEncoding::HASH_URL_X509_CERT, d)
                }
                _ => (CertEncoding::X509_SIGNATURE, c.der().to_vec()),
            })
            .collect()
    }

    /// The CERTREQ data (§3.7): the SHA-1 of each trust anchor's subjectPublicKeyInfo.
    pub(crate) fn certreq(&self) -> Vec<u8> {
        self.trust_anchors
            .iter()
            .flat_map(|a| a.spki_sha1())
            .collect()
    }
}

//= https://www.rfc-editor.org/rfc/rfc7427#section-4
//# The Notification Data field contains the list of 16-bit hash algorithm
//# identifiers from the Hash Algorithm Identifiers of IANA's "Internet Key
//# Exchange Version 2 (IKEv2) Parameters" registry.
/// SHA2-256, SHA2-384, SHA2-512 (RFC 7427 §7).
pub(crate) const HASHES: [u16; 3] = [2, 3, 4];

/// Our SIGNATURE_HASH_ALGORITHMS notify data.
pub(crate) fn hash_notify() -> Vec<u8> {
    HASHES.iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// The peer's SIGNATURE_HASH_ALGORITHMS list.
pub(crate) fn parse_hashes(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn hash_of(s: SignatureScheme) -> u16 {
    use SignatureScheme as S;
    match s {
        S::RsaPkcs1Sha1 => 1,
        S::RsaPkcs1Sha384 | S::RsaPssSha384 | S::EcdsaP384Sha384 | S::EcdsaP384Sha384Fixed => 3,
        S::RsaPkcs1Sha512 | S::RsaPssSha512 | S::EcdsaP521Sha512 | S::EcdsaP521Sha512Fixed => 4,
        S::Ed25519 => 5,
        _ => 2,
    }
}

/// A scheme in words, for logs.
pub(crate) fn scheme_name(s: SignatureScheme) -> &'static str {
    use SignatureScheme as S;
    match s {
        S::RsaPkcs1Sha1 => "RSA PKCS#1 v1.5 with SHA-1",
        S::RsaPkcs1Sha256 => "RSA PKCS#1 v1.5 with SHA-256",
        S::RsaPkcs1Sha384 => "RSA PKCS#1 v1.5 with SHA-384",
        S::RsaPkcs1Sha512 => "RSA PKCS#1 v1.5 with SHA-512",
        S::RsaPssSha256 => "RSASSA-PSS with SHA-256",
        S::RsaPssSha384 => "RSASSA-PSS with SHA-384",
        S::RsaPssSha512 => "RSASSA-PSS with SHA-512",
        S::EcdsaP256Sha256 | S::EcdsaP256Sha256Fixed => "ECDSA P-256 with SHA-256",
        S::EcdsaP384Sha384 | S::EcdsaP384Sha384Fixed => "ECDSA P-384 with SHA-384",
        S::EcdsaP521Sha512 | S::EcdsaP521Sha512Fixed => "ECDSA P-521 with SHA-512",
        S::Ed25519 => "Ed25519",
    }
}

//= https://www.rfc-editor.org/rfc/rfc7427#appendix-A
//# This appendix lists the ASN.1 objects ... for the most common signature algorithms.
/// The DER AlgorithmIdentifier of the schemes we sign with in method 14, and accept exactly.
const ALGORITHM_IDS: [(SignatureScheme, &[u8]); 7] = [
    (
        SignatureScheme::RsaPkcs1Sha256,
        &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
            0x00,
        ],
    ),
    (
        SignatureScheme::RsaPkcs1Sha384,
        &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05,
            0x00,
        ],
    ),
    (
        SignatureScheme::RsaPkcs1Sha512,
        &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05,
            0x00,
        ],
    ),
    (
        SignatureScheme::RsaPkcs1Sha1,
        &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05,
            0x00,
        ],
    ),
    (
        SignatureScheme::EcdsaP256Sha256,
        &[
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
        ],
    ),
    (
        SignatureScheme::EcdsaP384Sha384,
        &[
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
        ],
    ),
    (
        SignatureScheme::EcdsaP521Sha512,
        &[
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
        ],
    ),
];

/// id-RSASSA-PSS (1.2.840.113549.1.1.10), as the start of an AlgorithmIdentifier's content.
const PSS_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
];
/// id-sha256/384/512 (2.16.840.1.101.3.4.2.1/2/3) without the last arc.
const SHA2_OID: [u8; 10] = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];

/// The scheme an RFC 7427 AlgorithmIdentifier names. RSASSA-PSS is recognised by its OID and
/// the hash of its parameters (the salt must then be the hash's length).
fn scheme_of_algorithm_id(alg: &[u8]) -> Option<SignatureScheme> {
    if let Some((s, _)) = ALGORITHM_IDS.iter().find(|(_, a)| *a == alg) {
        return Some(*s);
    }
    let content = alg.get(2..)?;
    if alg.first() == Some(&0x30) && content.starts_with(&PSS_OID) {
        let params = &content[PSS_OID.len()..];
        let at = params.windows(SHA2_OID.len()).position(|w| w == SHA2_OID);
        return match at.and_then(|i| params.get(i + SHA2_OID.len())) {
            Some(1) => Some(SignatureScheme::RsaPssSha256),
            Some(2) => Some(SignatureScheme::RsaPssSha384),
            Some(3) => Some(SignatureScheme::RsaPssSha512),
            // No hash parameter: the PSS default, SHA-1, which we do not accept.
            _ => None,
        };
    }
    None
}

/// Our AUTH: method 14 with the first scheme of our key whose hash the peer announced
/// (PKCS#1 v1.5 before PSS, which not every peer verifies); a peer that announced nothing
/// gets RFC 4754 ECDSA (methods 9/10/11) or, for RSA, method 14 with SHA-256.
pub(crate) fn sign(
    key: &dyn AuthKey,
    peer_hashes: Option<&[u16]>,
    octets: &[u8],
) -> Result<(AuthMethod, Vec<u8>), Failure> {
    use SignatureScheme as S;
    let schemes = key.schemes();
    let fixed = |s: &S| {
        matches!(
            s,
            S::EcdsaP256Sha256Fixed | S::EcdsaP384Sha384Fixed | S::EcdsaP521Sha512Fixed
        )
    };
    let pss = |s: &S| matches!(s, S::RsaPssSha256 | S::RsaPssSha384 | S::RsaPssSha512);
    let sign_err = |e: ferrosec_crypto::Error| Failure::Local(LocalError::Sign(e.to_string()));
    let digital = |s: S| -> Result<(AuthMethod, Vec<u8>), Failure> {
        let alg = ALGORITHM_IDS
            .iter()
            .find(|(x, _)| *x == s)
            .map(|(_, a)| *a)
            .ok_or_else(|| Failure::Local(LocalError::Sign(format!("{s:?} in method 14"))))?;
        let sig = key.sign(s, octets).map_err(sign_err)?;
        //= https://www.rfc-editor.org/rfc/rfc7427#section-3
        //# ASN.1 Length (1 octet) | AlgorithmIdentifier ASN.1 object | Signature Value
        let mut out = Vec::with_capacity(1 + alg.len() + sig.len());
        out.push(u8::try_from(alg.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(alg);
        out.extend_from_slice(&sig);
        Ok((AuthMethod::DIGITAL_SIGNATURE, out))
    };
    match peer_hashes {
        Some(h) if !h.is_empty() => {
            let pick = schemes
                .iter()
                .filter(|s| !fixed(s) && !pss(s))
                .chain(schemes.iter().filter(|s| pss(s)))
                .find(|s| h.contains(&hash_of(**s)) && HASHES.contains(&hash_of(**s)));
            match pick {
                Some(s) => digital(*s),
                None => Err(Failure::Local(LocalError::Sign(format!(
                    "the peer accepts hash algorithms {h:?} only (RFC 7427 IDs), none of which \
                     our key signs with"
                )))),
            }
        }
        _ => {
            if let Some(s) = schemes.iter().find(|s| fixed(s)) {
                let method = match s {
                    S::EcdsaP256Sha256Fixed => AuthMethod::ECDSA_SHA256_P256,
                    S::EcdsaP384Sha384Fixed => AuthMethod::ECDSA_SHA384_P384,
                    _ => AuthMethod::ECDSA_SHA512_P521,
                };
                return Ok((method, key.sign(*s, octets).map_err(sign_err)?));
            }
            match schemes.iter().find(|s| !pss(s)) {
                Some(s) => digital(*s),
                None => Err(Failure::Local(LocalError::Sign(
                    "the key has no scheme usable without SIGNATURE_HASH_ALGORITHMS".into(),
                ))),
            }
        }
    }
}

/// Checks the peer's AUTH signature with its certificate's public key: method 14 (RFC 7427,
/// SHA-2 only), 1 (RSA PKCS#1 v1.5, SHA-1 as deployed, or SHA-256), 9/10/11 (RFC 4754).
pub(crate) fn verify(
    method: AuthMethod,
    data: &[u8],
    cert: &Certificate,
    octets: &[u8],
) -> Result<(), Failure> {
    use SignatureScheme as S;
    let (schemes, sig): (Vec<S>, &[u8]) = match method {
        AuthMethod::DIGITAL_SIGNATURE => {
            let n = usize::from(*data.first().ok_or_else(|| {
                Failure::UnsupportedSignature("empty Digital Signature AUTH data".into())
            })?);
            let (Some(alg), Some(sig)) = (data.get(1..1 + n), data.get(1 + n..)) else {
                return Err(Failure::UnsupportedSignature(
                    "truncated AlgorithmIdentifier in Digital Signature AUTH data".into(),
                ));
            };
            let s = scheme_of_algorithm_id(alg).ok_or_else(|| {
                Failure::UnsupportedSignature(format!(
                    "signature algorithm {} (RFC 7427 AlgorithmIdentifier) is not one we accept \
                     (RSA PKCS#1 v1.5 or PSS, ECDSA, with SHA-256/384/512)",
                    hex(alg)
                ))
            })?;
            if hash_of(s) == 1 {
                return Err(Failure::UnsupportedSignature(
                    "the peer signed with SHA-1, which we did not announce and do not accept"
                        .into(),
                ));
            }
            (vec![s], sig)
        }
        AuthMethod::RSA_SIG => (vec![S::RsaPkcs1Sha1, S::RsaPkcs1Sha256], data),
        AuthMethod::ECDSA_SHA256_P256 => (vec![S::EcdsaP256Sha256Fixed], data),
        AuthMethod::ECDSA_SHA384_P384 => (vec![S::EcdsaP384Sha384Fixed], data),
        AuthMethod::ECDSA_SHA512_P521 => (vec![S::EcdsaP521Sha512Fixed], data),
        AuthMethod::SHARED_KEY_MIC => {
            return Err(Failure::AuthMethodMismatch {
                got: method,
                expected: "certificates",
            });
        }
        m => {
            return Err(Failure::UnsupportedSignature(format!(
                "AUTH method {m} is not supported"
            )));
        }
    };
    let pk = cert.public_key();
    if schemes
        .iter()
        .any(|s| sig::verify(*s, &pk, octets, sig).is_ok())
    {
        return Ok(());
    }
    Err(Failure::BadSignature {
        subject: cert.subject(),
        scheme: format!(
            "{}, AUTH method {method}, certificate key {}",
            scheme_name(schemes[0]),
            cert.key_kind()
        ),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The peer's certificates from its CERT payloads (X.509 signature encoding only): the first
/// is its own, the others intermediates.
pub(crate) fn peer_chain(ders: &[&[u8]]) -> Result<(Certificate, Vec<Certificate>), Failure> {
    let mut certs = ders.iter().map(|d| {
        Certificate::from_der(d).map_err(|e| Failure::CertificateInvalid {
            subject: "(unparsable CERT payload)".into(),
            reason: e.to_string(),
        })
    });
    let Some(ee) = certs.next() else {
        return Err(Failure::NoPeerCertificate);
    };
    Ok((ee?, certs.collect::<Result<Vec<_>, _>>()?))
}

/// The peer's chain to one of our anchors, at `now` (Unix seconds), against `crls` (the
/// configured and the fetched).
pub(crate) fn check_chain(
    auth: &CertAuth,
    ee: &Certificate,
    intermediates: &[Certificate],
    crls: &[Crl],
    now: u64,
) -> Result<(), Failure> {
    x509::check_chain(ee, intermediates, &auth.trust_anchors, crls, now).map_err(|e| match e {
        e @ ChainError::Revoked { .. } => Failure::CertificateRevoked(e.to_string()),
        ChainError::UntrustedIssuer { subject, issuer } => {
            Failure::UntrustedIssuer { subject, issuer }
        }
        ChainError::Expired {
            subject,
            not_after,
            now,
        } => Failure::CertificateExpired {
            subject,
            not_after,
            now,
        },
        ChainError::NotYetValid {
            subject,
            not_before,
            now,
        } => Failure::CertificateNotYetValid {
            subject,
            not_before,
            now,
        },
        ChainError::TooLong { len } => Failure::ChainTooLong {
            subject: ee.subject(),
            len,
        },
        ChainError::Invalid { subject, reason } => Failure::CertificateInvalid { subject, reason },
    })
}

/// How both sides authenticated, for the IKE SA's events: our method and certificate (with
/// certificates configured), the peer's method and the certificate it signed with.
pub(crate) fn auth_info(
    ours: Option<&CertAuth>,
    local: AuthMethod,
    peer: AuthMethod,
    peer_certificate: Option<&Certificate>,
) -> AuthInfo {
    AuthInfo {
        local,
        peer,
        local_certificate: ours
            .and_then(|c| c.chain.first())
            .map(|c| Arc::new(CertificateInfo::of(c))),
        peer_certificate: peer_certificate.map(|c| Arc::new(CertificateInfo::of(c))),
    }
}

/// Whether the certificate vouches for `id`: its subject DN (ID_DER_ASN1_DN), or a
/// subjectAltName of the ID's kind (FQDN, RFC822 address, IP address).
pub(crate) fn check_id(id: &Identity, cert: &Certificate) -> Result<(), Failure> {
    let sans = cert.subject_alt_names();
    let ok = match id.ty {
        IdType::DER_ASN1_DN => {
            id.data == cert.subject_der()
                || x509::dn_to_string(&id.data)
                    .is_some_and(|s| crate::identity::dn_eq(&s, &cert.subject()))
        }
        IdType::FQDN => sans.iter().any(|s| match s {
            SubjectAltName::Dns(d) => d.as_bytes().eq_ignore_ascii_case(&id.data),
            _ => false,
        }),
        IdType::RFC822_ADDR => sans.iter().any(|s| match s {
            SubjectAltName::Email(e) => e.as_bytes().eq_ignore_ascii_case(&id.data),
            _ => false,
        }),
        IdType::IPV4_ADDR | IdType::IPV6_ADDR => sans.iter().any(|s| match s {
            SubjectAltName::Ip(a) => Identity::addr(*a) == *id,
            _ => false,
        }),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(Failure::CertificateIdMismatch {
        id: id.clone(),
        subject: cert.subject(),
        sans: sans
            .iter()
            .map(|s| match s {
                SubjectAltName::Dns(d) => format!("fqdn:{d}"),
                SubjectAltName::Email(e) => format!("ufqdn:{e}"),
                SubjectAltName::Ip(a) => format!("ipaddr:{a}"),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_identifiers_round_trip() {
        for (s, a) in ALGORITHM_IDS {
            assert_eq!(scheme_of_algorithm_id(a), Some(s));
        }
        // RFC 7427 A.4.3: RSASSA-PSS with SHA-256 (salt 32).
        let pss: [u8; 67] = [
            0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30,
            0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
            0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
            0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
            0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
        ];
        assert_eq!(
            scheme_of_algorithm_id(&pss),
            Some(SignatureScheme::RsaPssSha256)
        );
        assert_eq!(scheme_of_algorithm_id(&[0x30, 0x00]), None);
    }

    #[test]
    fn dn_text_compares_loosely() {
        use crate::identity::dn_eq;
        assert!(dn_eq(
            "C=CH, O=strongSwan, CN=moon",
            "c=CH,O=strongSwan,  CN = moon"
        ));
        assert!(!dn_eq("C=CH, CN=moon", "C=CH, CN=sun"));
    }
}
