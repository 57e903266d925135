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
    Rsa(lc::RsaKeyPair),
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
            KeyInner::Rsa(_) => "rsa",
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
            KeyInner::Rsa(k) => KeyKind::Rsa {
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
                return Ok(Self {
                    inner: KeyInner::Rsa(k),
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
            KeyInner::Rsa(_) => &[
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
            KeyInner::Rsa(k) => k.public_key().as_ref().to_vec(),
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
            KeyInner::Rsa(k) => {
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
