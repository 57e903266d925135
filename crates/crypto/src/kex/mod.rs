//! Key exchange: MODP Diffie-Hellman, ECDH on the NIST curves (RFC 5903 encoding), X25519
//! (RFC 8031) and the ML-KEM KEM (FIPS 203, for RFC 9370 additional key exchanges), behind
//! one trait.
//!
//! Two roles:
//! - [`KeyExchangeAlgorithm::start`] → [`ActiveKeyExchange`]: the initiator generates its key
//!   pair, sends [`ActiveKeyExchange::public_key`], and later calls
//!   [`ActiveKeyExchange::complete`] with the responder's KE data (a DH public value, or a KEM
//!   ciphertext).
//! - [`KeyExchangeAlgorithm::respond`]: the responder gets the initiator's KE data and returns
//!   its own KE data plus the shared secret in one step (DH: its public value; KEM: the
//!   encapsulation).
//!
//! Peer values are checked as RFC 6989 requires: wrong lengths, 0, 1, p-1 and values ≥ p for
//! MODP, points not on the curve for ECP, and an all-zero X25519 result are errors.

mod ecp;
mod mlkem;
mod modp;
mod primes;

use std::fmt;

use crate::{Error, Rng, Secret};

/// A key exchange method (IKEv2 transform type 4 / IKEv1 group description).
pub trait KeyExchangeAlgorithm: Send + Sync + fmt::Debug {
    /// The IANA transform ID (group number).
    fn group(&self) -> u16;

    /// A short name for logs ("modp2048", "ecp256", "curve25519").
    fn name(&self) -> &'static str;

    /// Length of the KE payload data the initiator sends.
    fn public_len(&self) -> usize;

    /// Generates a key pair (initiator; also a DH responder).
    fn start(&self, rng: &mut dyn Rng) -> Result<Box<dyn ActiveKeyExchange>, Error>;

    /// Responder: answers the initiator's KE data with this side's KE data and the shared
    /// secret. For Diffie-Hellman this is `start` followed by `complete`; a KEM encapsulates.
    fn respond(&self, rng: &mut dyn Rng, peer: &[u8]) -> Result<KeyExchangeResponse, Error> {
        let kx = self.start(rng)?;
        let shared = kx.complete(peer)?;
        Ok(KeyExchangeResponse {
            public: kx.public_key().to_vec(),
            shared,
        })
    }
}

/// The responder's side of a finished key exchange.
#[derive(Debug)]
pub struct KeyExchangeResponse {
    /// KE payload data to send back.
    pub public: Vec<u8>,
    /// The shared secret (g^ir).
    pub shared: Secret,
}

/// A key exchange in progress: holds the private key (zeroized on drop).
pub trait ActiveKeyExchange: Send + fmt::Debug {
    /// The group.
    fn group(&self) -> u16;

    /// This side's KE payload data.
    fn public_key(&self) -> &[u8];

    /// Computes the shared secret from the peer's KE data, after checking it. Not consuming,
    /// so a retransmitted or crossing exchange can reuse the same key pair.
    fn complete(&self, peer: &[u8]) -> Result<Secret, Error>;
}

/// Every key exchange this provider implements.
pub(crate) static ALL: [&dyn KeyExchangeAlgorithm; 15] = [
    &ecp::ECP_256,
    &ecp::ECP_384,
    &ecp::ECP_521,
    &ecp::X25519,
    &modp::MODP_2048,
    &modp::MODP_3072,
    &modp::MODP_4096,
    &modp::MODP_6144,
    &modp::MODP_8192,
    &modp::MODP_1536,
    &modp::MODP_1024,
    &modp::MODP_768,
    &mlkem::ML_KEM_768,
    &mlkem::ML_KEM_1024,
    &mlkem::ML_KEM_512,
];

/// Finds a key exchange by group number.
pub(crate) fn find(group: u16) -> Option<&'static dyn KeyExchangeAlgorithm> {
    ALL.iter().copied().find(|k| k.group() == group)
}
