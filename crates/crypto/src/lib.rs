//! Cryptographic provider for ferrosec: algorithm tables chosen by negotiated IANA transform IDs,
//! IKEv1/IKEv2 key derivation, key exchange, signatures and certificate validation.
//!
//! # The shape of this crate
//!
//! The IKE engines and the ESP data plane never name a cryptographic library. They hold
//! negotiated transform IDs (plain `u16` values from the IANA registries, see [`ids`]) and ask the
//! [`Provider`] for the matching algorithm:
//!
//! | need | provider call | object |
//! |---|---|---|
//! | PRF, prf+ | [`Provider::prf`] | [`Prf`] → [`PrfKey`] |
//! | integrity (IKE SK payload, ESP, AH) | [`Provider::integrity`] | [`Integrity`] → [`IntegrityKey`] |
//! | IKEv2 SK payload protection | [`Provider::encryption`] | [`Encryption`] → [`IkeSkCrypter`] |
//! | IKEv1 phase-1/2 CBC encryption | [`Provider::encryption`] | [`Encryption::ikev1_encrypt`] |
//! | ESP packet protection | [`Provider::esp`] (IDs), [`Provider::esp_suite`] (typed) | [`EspSuite`] → [`EspSa`] |
//! | DH / ECDH / (later ML-KEM) | [`Provider::key_exchange`] | [`KeyExchangeAlgorithm`] → [`ActiveKeyExchange`] |
//! | signatures | [`sig`] | [`sig::SigningKey`], [`sig::verify`] |
//! | certificates | [`x509`] | [`x509::Certificate`], [`x509::verify_chain`] |
//!
//! Key derivation lives in [`kdf::ikev2`] and [`kdf::ikev1`].
//!
//! # Rules
//!
//! - Sans-IO: no clock, no OS randomness. Randomness comes in through [`Rng`]; time is an argument.
//! - Every secret lives in a [`Secret`] (zeroized on drop, `Debug` prints only its length).
//! - MACs and AUTH values are compared with [`ct_eq`] (constant time).
//! - Nothing derived from the network can panic: bad lengths and invalid public values are
//!   [`Error`]s.
//!
//! # Backends
//!
//! aws-lc-rs for AES-GCM (16-byte ICV), ChaCha20-Poly1305, ECDH/X25519 and signatures;
//! RustCrypto for HMAC (including MD5), AES/DES/3DES-CBC, AES-CTR, AES-CCM, truncated-ICV GCM,
//! CMAC/XCBC; crypto-bigint (constant-time Montgomery exponentiation) for the MODP groups, so
//! the crate stays free of `unsafe`. See the README for the measured reasons.

mod cipher;
pub mod crl;
mod encryption;
mod error;
mod esp;
mod hash;
pub mod ids;
mod ike_cipher;
mod integrity;
pub mod kdf;
mod kex;
mod prf;
mod provider;
mod rng;
mod rsa_raw;
mod secret;
pub mod sig;
pub mod x509;

pub use encryption::Encryption;
pub use error::Error;
pub use esp::{EspSa, EspSuite};
pub use ike_cipher::IkeSkCrypter;

pub use hash::HashAlgorithm;

pub use integrity::{Integrity, IntegrityKey};
pub use kex::{ActiveKeyExchange, KeyExchangeAlgorithm, KeyExchangeResponse};

pub use prf::{Prf, PrfKey};

pub use provider::Provider;
pub use rng::Rng;
pub use secret::{Secret, ct_eq};
