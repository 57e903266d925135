//! Signatures for IKE authentication: RSA PKCS#1 v1.5 and PSS, ECDSA P-256/384/521 (DER as in
//! RFC 7427, or fixed r|s as in RFC 4754), Ed25519 (RFC 8420), on aws-lc-rs.
//!
//! Public keys are the contents of a certificate's subjectPublicKey BIT STRING
//! ([`crate::x509::Certificate::public_key`]): an RSAPublicKey for RSA, an uncompressed point
//! for ECDSA, 32 bytes for Ed25519.
//!
//! Randomness: ECDSA nonces and PSS salts are drawn by AWS-LC's own internal generator (its API
//! accepts no caller RNG); this is the one place where the crate does not use the injected
//! [`crate::Rng`]. RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self as lc, KeyPair};

use crate::Error;

/// A signature algorithm (hash + padding/curve + encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 with SHA-1 (IKEv2 auth method 1 interop only; verification only).
    RsaPkcs1Sha1,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt.
    RsaPssSha512,
    /// ECDSA P-256 with SHA-256, DER signature (RFC 7427).
    EcdsaP256Sha256,
    /// ECDSA P-384 with SHA-384, DER signature (RFC 7427).
    EcdsaP384Sha384,
    /// ECDSA P-521 with SHA-512, DER signature (RFC 7427).
    EcdsaP521Sha512,
    /// ECDSA P-256 with SHA-256, fixed r|s (RFC 4754, IKEv2 auth method 9).
    EcdsaP256Sha256Fixed,
    /// ECDSA P-384 with SHA-384, fixed r|s (RFC 4754, auth method 10).
    EcdsaP384Sha384Fixed,
    /// ECDSA P-521 with SHA-512, fixed r|s (RFC 4754, auth method 11).
    EcdsaP521Sha512Fixed,
    /// Ed25519 (RFC 8420).
    Ed25519,
}

impl SignatureScheme {
    fn verification(self) -> &'static dyn lc::VerificationAlgorithm {
        use SignatureScheme as S;
        match self {
            S::RsaPkcs1Sha1 => &lc::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            S::RsaPkcs1Sha256 => &lc::RSA_PKCS1_2048_8192_SHA256,
            S::RsaPkcs1Sha384 => &lc::RSA_PKCS1_2048_8192_SHA384,
            S::RsaPkcs1Sha512 => &lc::RSA_PKCS1_2048_8192_SHA512,
            S::RsaPssSha256 => &lc::RSA_PSS_2048_8192_SHA256,
            S::RsaPssSha384 => &lc::RSA_PSS_2048_8192_SHA384,
            S::RsaPssSha512 => &lc::RSA_PSS_2048_8192_SHA512,
            S::EcdsaP256Sha256 => &lc::ECDSA_P256_SHA256_ASN1,
            S::EcdsaP384Sha384 => &lc::ECDSA_P384_SHA384_ASN1,
            S::EcdsaP521Sha512 => &lc::ECDSA_P521_SHA512_ASN1,
            S::EcdsaP256Sha256Fixed => &lc::ECDSA_P256_SHA256_FIXED,
            S::EcdsaP384Sha384Fixed => &lc::ECDSA_P384_SHA384_FIXED,
            S::EcdsaP521Sha512Fixed => &lc::ECDSA_P521_SHA512_FIXED,
            S::Ed25519 => &lc::ED25519,
        }
    }
}

/// Verifies `signature` over `message` with a public key (subjectPublicKey contents).
pub fn verify(
    scheme: SignatureScheme,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    lc::UnparsedPublicKey::new(scheme.verification(), public_key)
        .verify(message, signature)
        .map_err(|_| Error::BadSignature)
}

/// The type and size of a key pair: what a certificate's or a private key's public key is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA with a modulus of this many bits.
    Rsa {
        /// The modulus size in bits.
        bits: u32,
    },
    /// ECDSA on a NIST curve: 256, 384 or 521 (P-256, P-384, P-521).
    Ecdsa {
        /// The curve's size in bits.
        curve: u16,
    },
    /// Ed25519.
    Ed25519,
    /// Anything else (DSA, an unknown curve …), by its name or OID.
    Other(String),
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits}-bit"),
            KeyKind::Ecdsa { curve } => write!(f, "ECDSA P-{curve}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
            KeyKind::Other(s) => write!(f, "{s}"),
        }
    }
}

enum KeyInner {
    /// AWS-LC's key, and ours for raw (IKEv1) signatures when it parses as two-prime RSA.
    Rsa(lc::RsaKeyPair, Option<Box<crate::rsa_raw::RsaPrivateKey>>),
    Ecdsa {
        asn1: lc::EcdsaKeyPair,
        fixed: lc::EcdsaKeyPair,
        curve: u16,
    },
    Ed25519(lc::Ed25519KeyPair),
}

/// The NIST curves: size, DER-signature and fixed-signature signing algorithms.
const EC_CURVES: [(u16, &lc::EcdsaSigningAlgorithm, &lc::EcdsaSigningAlgorithm); 3] = [
    (
        256,
        &lc::ECDSA_P256_SHA256_ASN1_SIGNING,
        &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
    ),
    (
        384,
        &lc::ECDSA_P384_SHA384_ASN1_SIGNING,
        &lc::ECDSA_P384_SHA384_FIXED_SIGNING,
    ),
    (
        521,
        &lc::ECDSA_P521_SHA512_ASN1_SIGNING,
        &lc::ECDSA_P521_SHA512_FIXED_SIGNING,
    ),
];

/// A private key for signing AUTH payloads (held inside AWS-LC, cleared on drop).
pub struct SigningKey {
    inner: KeyInner,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            KeyInner::Rsa(..) => "rsa",
            KeyInner::Ecdsa { curve: 256, .. } => "ecdsa-p256",
            KeyInner::Ecdsa { curve: 384, .. } => "ecdsa-p384",
            KeyInner::Ecdsa { .. } => "ecdsa-p521",
            KeyInner::Ed25519(_) => "ed25519",
        };
        write!(f, "SigningKey({kind})")
    }
}

impl SigningKey {
    /// Loads the private key of a PEM file: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE
    /// KEY`) or SEC1 (`EC PRIVATE KEY`); other blocks (certificates, `EC PARAMETERS`) are
    /// skipped. The decoded DER is zeroed once the key is inside AWS-LC.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let mut encrypted = false;
        for p in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let Ok(mut p) = p else {
                return Err(Error::InvalidKey("malformed PEM"));
            };
            let key = match p.label.as_str() {
                "PRIVATE KEY" | "RSA PRIVATE KEY" => Some(Self::from_der(&p.contents)),
                "EC PRIVATE KEY" => Some(Self::from_sec1_der(&p.contents)),
                "ENCRYPTED PRIVATE KEY" => {
                    encrypted = true;
                    None
                }
                _ => None,
            };
            zeroize::Zeroize::zeroize(&mut p.contents);
            if let Some(key) = key {
                return key;
            }
        }
        Err(Error::InvalidKey(if encrypted {
            "the key is encrypted (ENCRYPTED PRIVATE KEY)"
        } else {
            "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block"
        }))
    }

    /// Loads a SEC1 (RFC 5915) `ECPrivateKey` DER key on P-256, P-384 or P-521.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, Error> {
        for (curve, a, f) in EC_CURVES {
            if let (Ok(asn1), Ok(fixed)) = (
                lc::EcdsaKeyPair::from_private_key_der(a, der),
                lc::EcdsaKeyPair::from_private_key_der(f, der),
            ) {
                return Ok(Self {
                    inner: KeyInner::Ecdsa { asn1, fixed, curve },
                });
            }
        }
        Err(Error::InvalidKey(
            "malformed EC private key, or not on P-256, P-384 or P-521",
        ))
    }

    /// The key's type and size.
    pub fn kind(&self) -> KeyKind {
        match &self.inner {
            KeyInner::Rsa(k, _) => KeyKind::Rsa {
                bits: u32::try_from(k.public_modulus_len() * 8).unwrap_or(u32::MAX),
            },
            KeyInner::Ecdsa { curve, .. } => KeyKind::Ecdsa { curve: *curve },
            KeyInner::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// Loads a PKCS#8 (or, for RSA, PKCS#1) DER private key of any supported type.
    /// An RSA key below 2048 or above 8192 bits is refused with a reason saying so.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        match lc::RsaKeyPair::from_pkcs8(der).or_else(|_| lc::RsaKeyPair::from_der(der)) {
            Ok(k) => {
                let raw = crate::rsa_raw::RsaPrivateKey::from_der(der)
                    .ok()
                    .map(Box::new);
                return Ok(Self {
                    inner: KeyInner::Rsa(k, raw),
                });
            }
            Err(e) if e.description_() == "TooSmall" => {
                return Err(Error::InvalidKey("RSA key smaller than 2048 bits"));
            }
            Err(e) if e.description_() == "TooLarge" => {
                return Err(Error::InvalidKey("RSA key larger than 8192 bits"));
            }
            Err(_) => {}
        }
        for (curve, a, f) in EC_CURVES {
            if let (Ok(asn1), Ok(fixed)) = (
                lc::EcdsaKeyPair::from_pkcs8(a, der),
                lc::EcdsaKeyPair::from_pkcs8(f, der),
            ) {
                return Ok(Self {
                    inner: KeyInner::Ecdsa { asn1, fixed, curve },
                });
            }
        }
        if let Ok(k) = lc::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(Self {
                inner: KeyInner::Ed25519(k),
            });
        }
        Err(Error::InvalidKey("unsupported or malformed private key"))
    }

    /// The schemes this key can sign with.
    pub fn schemes(&self) -> &'static [SignatureScheme] {
        use SignatureScheme as S;
        match &self.inner {
            KeyInner::Rsa(..) => &[
                S::RsaPkcs1Sha256,
                S::RsaPkcs1Sha384,
                S::RsaPkcs1Sha512,
                S::RsaPssSha256,
                S::RsaPssSha384,
                S::RsaPssSha512,
            ],
            KeyInner::Ecdsa { curve: 256, .. } => &[S::EcdsaP256Sha256, S::EcdsaP256Sha256Fixed],
            KeyInner::Ecdsa { curve: 384, .. } => &[S::EcdsaP384Sha384, S::EcdsaP384Sha384Fixed],
            KeyInner::Ecdsa { .. } => &[S::EcdsaP521Sha512, S::EcdsaP521Sha512Fixed],
            KeyInner::Ed25519(_) => &[S::Ed25519],
        }
    }

    /// The public key (subjectPublicKey contents), to compare with the certificate.
    pub fn public_key(&self) -> Vec<u8> {
        match &self.inner {
            KeyInner::Rsa(k, _) => k.public_key().as_ref().to_vec(),
            KeyInner::Ecdsa { asn1, .. } => asn1.public_key().as_ref().to_vec(),
            KeyInner::Ed25519(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `message` (the IKE signed octets; the hash is part of the scheme).
    pub fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, Error> {
        use SignatureScheme as S;
        if !self.schemes().contains(&scheme) {
            return Err(Error::InvalidKey("key cannot sign with this scheme"));
        }
        // The message is hashed here and the digest signed: aws-lc-rs's `sign` takes a
        // `SecureRandom` that only the OS generator implements (and ignores it), while
        // `sign_digest` takes none.
        let hash = match scheme {
            S::RsaPkcs1Sha384 | S::RsaPssSha384 | S::EcdsaP384Sha384 | S::EcdsaP384Sha384Fixed => {
                &digest::SHA384
            }
            S::RsaPkcs1Sha512 | S::RsaPssSha512 | S::EcdsaP521Sha512 | S::EcdsaP521Sha512Fixed => {
                &digest::SHA512
            }
            _ => &digest::SHA256,
        };
        let d = digest::digest(hash, message);
        match &self.inner {
            KeyInner::Rsa(k, _) => {
                let pad: &'static dyn lc::RsaEncoding = match scheme {
                    S::RsaPkcs1Sha256 => &lc::RSA_PKCS1_SHA256,
                    S::RsaPkcs1Sha384 => &lc::RSA_PKCS1_SHA384,
                    S::RsaPkcs1Sha512 => &lc::RSA_PKCS1_SHA512,
                    S::RsaPssSha256 => &lc::RSA_PSS_SHA256,
                    S::RsaPssSha384 => &lc::RSA_PSS_SHA384,
                    _ => &lc::RSA_PSS_SHA512,
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign_digest(pad, &d, &mut sig)
                    .map_err(|_| Error::Backend)?;
                Ok(sig)
            }
            KeyInner::Ecdsa { asn1, fixed, .. } => {
                let k = if matches!(
                    scheme,
                    S::EcdsaP256Sha256Fixed | S::EcdsaP384Sha384Fixed | S::EcdsaP521Sha512Fixed
                ) {
                    fixed
                } else {
                    asn1
                };
                Ok(k.sign_digest(&d)
                    .map_err(|_| Error::Backend)?
                    .as_ref()
                    .to_vec())
            }
            KeyInner::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// The signature of an IKEv1 phase-1 exchange over its HASH_I or HASH_R (RFC 2409 §5.1): the
/// hash value itself is what is signed, as strongSwan, Cisco and others do it.
///
/// - RSA (authentication method 3): EMSA-PKCS1-v1_5 type-1 padding of the hash *without* a
///   DigestInfo, raised to d ("RSA private encrypt", on crypto-bigint: see the `rsa_raw` module).
/// - ECDSA (methods 9/10/11, RFC 4754): ECDSA with the hash as the digest (no second hash),
///   the signature as fixed-width r | s. A hash shorter than the curve's is left-padded with
///   zeros and a longer one cut to its leftmost octets: both give ECDSA the same integer e
///   (FIPS 186-4 §6.4), so a SHA-1 or SHA-384 HASH_I signs as it does in OpenSSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrehashedScheme {
    /// RSA, raw PKCS#1 v1.5 type 1.
    RsaPkcs1,
    /// ECDSA on P-256, P-384 or P-521 (the curve's size in bits), fixed r | s.
    Ecdsa(u16),
}

impl PrehashedScheme {
    /// The scheme of a key of this kind, if it has one.
    pub fn for_key(kind: &KeyKind) -> Option<Self> {
        match kind {
            KeyKind::Rsa { .. } => Some(Self::RsaPkcs1),
            KeyKind::Ecdsa { curve } if matches!(curve, 256 | 384 | 521) => {
                Some(Self::Ecdsa(*curve))
            }
            _ => None,
        }
    }
}

/// The curve's fixed-signature algorithms and the length of the digest AWS-LC pairs it with.
fn ec_prehashed(
    curve: u16,
) -> Option<(
    &'static lc::EcdsaVerificationAlgorithm,
    &'static digest::Algorithm,
)> {
    Some(match curve {
        256 => (&lc::ECDSA_P256_SHA256_FIXED, &digest::SHA256),
        384 => (&lc::ECDSA_P384_SHA384_FIXED, &digest::SHA384),
        521 => (&lc::ECDSA_P521_SHA512_FIXED, &digest::SHA512),
        _ => return None,
    })
}

/// `hash` as a digest of `alg`'s length with the same ECDSA integer: left-padded with zeros,
/// or cut to its leftmost octets (see [`PrehashedScheme`]).
fn as_digest(hash: &[u8], alg: &'static digest::Algorithm) -> Result<digest::Digest, Error> {
    let len = alg.output_len();
    let mut d = vec![0u8; len];
    if hash.len() >= len {
        d.copy_from_slice(&hash[..len]);
    } else {
        d[len - hash.len()..].copy_from_slice(hash);
    }
    digest::Digest::import_less_safe(&d, alg).map_err(|_| Error::Backend)
}

impl SigningKey {
    /// The IKEv1 signature scheme of this key, if it has one.
    pub fn prehashed_scheme(&self) -> Option<PrehashedScheme> {
        PrehashedScheme::for_key(&self.kind())
    }

    /// Whether [`SigningKey::sign_prehashed`] works with this key: ECDSA always; RSA when the
    /// key parsed as a two-prime PKCS#1 / PKCS#8 key for the raw signer.
    pub fn signs_prehashed(&self) -> bool {
        matches!(
            &self.inner,
            KeyInner::Rsa(_, Some(_)) | KeyInner::Ecdsa { .. }
        )
    }

    /// Signs an IKEv1 HASH_I / HASH_R as it is (see [`PrehashedScheme`]).
    pub fn sign_prehashed(&self, hash: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.inner {
            KeyInner::Rsa(_, Some(raw)) => raw.sign(hash),
            KeyInner::Rsa(_, None) => Err(Error::InvalidKey(
                "this RSA key's encoding cannot be used for IKEv1 signatures (not a two-prime \
                 PKCS#1 or PKCS#8 RSA key)",
            )),
            KeyInner::Ecdsa { fixed, curve, .. } => {
                let (_, alg) = ec_prehashed(*curve).ok_or(Error::Unsupported("curve"))?;
                Ok(fixed
                    .sign_digest(&as_digest(hash, alg)?)
                    .map_err(|_| Error::Backend)?
                    .as_ref()
                    .to_vec())
            }
            KeyInner::Ed25519(_) => Err(Error::Unsupported(
                "Ed25519 has no IKEv1 authentication method",
            )),
        }
    }
}

/// Verifies an IKEv1 signature over HASH_I / HASH_R (see [`PrehashedScheme`]) with a public
/// key (subjectPublicKey contents).
pub fn verify_prehashed(
    scheme: PrehashedScheme,
    public_key: &[u8],
    hash: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    match scheme {
        PrehashedScheme::RsaPkcs1 => {
            crate::rsa_raw::RsaPublicKey::from_der(public_key)?.verify(hash, signature)
        }
        PrehashedScheme::Ecdsa(curve) => {
            let (v, alg) = ec_prehashed(curve).ok_or(Error::Unsupported("curve"))?;
            lc::UnparsedPublicKey::new(v, public_key)
                .verify_digest(&as_digest(hash, alg)?, signature)
                .map_err(|_| Error::BadSignature)
        }
    }
}

#[cfg(test)]
mod prehashed_tests {
    use super::*;

    fn key(alg: &'static rcgen::SignatureAlgorithm) -> SigningKey {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
        SigningKey::from_pem(kp.serialize_pem().as_bytes()).unwrap()
    }

    /// ECDSA over a hash of the curve's own length is the ECDSA signature of a message with
    /// that digest: AWS-LC's normal verification accepts it; other lengths round-trip.
    #[test]
    fn ecdsa_prehashed_matches_normal_ecdsa_and_round_trips() {
        for (alg, curve, h) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, 256, &digest::SHA256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, 384, &digest::SHA384),
        ] {
            let k = key(alg);
            let scheme = k.prehashed_scheme().unwrap();
            assert_eq!(scheme, PrehashedScheme::Ecdsa(curve));
            let msg = b"HASH_I input";
            let d = digest::digest(h, msg);
            let sig = k.sign_prehashed(d.as_ref()).unwrap();
            let normal = if curve == 256 {
                SignatureScheme::EcdsaP256Sha256Fixed
            } else {
                SignatureScheme::EcdsaP384Sha384Fixed
            };
            verify(normal, &k.public_key(), msg, &sig).unwrap();
            verify_prehashed(scheme, &k.public_key(), d.as_ref(), &sig).unwrap();
            for len in [20usize, 32, 48, 64] {
                let hash = vec![0x5a; len];
                let s = k.sign_prehashed(&hash).unwrap();
                verify_prehashed(scheme, &k.public_key(), &hash, &s).unwrap();
                let mut other = hash.clone();
                other[len - 1] ^= 1;
                // Bits beyond the curve's size are not signed (ECDSA truncation).
                let covered = len * 8 <= curve as usize;
                assert_eq!(
                    verify_prehashed(scheme, &k.public_key(), &other, &s).is_err(),
                    covered,
                    "P-{curve}, {len}-octet hash"
                );
            }
        }
    }

    /// RSA from rcgen's PKCS#8 PEM: the raw signature verifies with the certificate key form
    /// (RSAPublicKey) and is refused for another hash.
    #[test]
    fn rsa_prehashed_round_trip() {
        let k = key(&rcgen::PKCS_RSA_SHA256);
        assert_eq!(k.prehashed_scheme(), Some(PrehashedScheme::RsaPkcs1));
        let h = [9u8; 20];
        let s = k.sign_prehashed(&h).unwrap();
        verify_prehashed(PrehashedScheme::RsaPkcs1, &k.public_key(), &h, &s).unwrap();
        assert_eq!(
            verify_prehashed(PrehashedScheme::RsaPkcs1, &k.public_key(), &[8u8; 20], &s),
            Err(Error::BadSignature)
        );
    }
}
