//! The crate's error type.

/// Everything that can go wrong in a cryptographic operation.
///
/// None of these carry secret material. The IKE engine maps them to a wire decision
/// (`AUTHENTICATION_FAILED`, `INVALID_SYNTAX`, `INVALID_KE_PAYLOAD`, a silent drop …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The transform ID (or key length) is not one this provider implements.
    #[error("unsupported algorithm: {0}")]
    Unsupported(&'static str),
    /// A key had the wrong length for its algorithm.
    #[error("invalid key length for {alg}: got {got} bytes")]
    KeyLength {
        /// The algorithm.
        alg: &'static str,
        /// The length received.
        got: usize,
    },
    /// An input buffer had an impossible length (not a multiple of the block size, shorter than
    /// IV + ICV, …).
    #[error("invalid length: {0}")]
    Length(&'static str),
    /// An integrity check value or AEAD tag did not verify.
    #[error("integrity check failed")]
    Integrity,
    /// Padding after decryption was malformed.
    #[error("invalid padding")]
    Padding,
    /// The peer's key exchange public value was rejected (RFC 6989 checks, wrong length, point
    /// not on the curve, all-zero X25519 result).
    #[error("invalid key exchange public value: {0}")]
    InvalidPublicValue(&'static str),
    /// A key exchange was used in the wrong order (e.g. a KEM ciphertext given to the responder).
    #[error("key exchange misuse: {0}")]
    KeyExchange(&'static str),
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A private or public key could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A certificate could not be parsed or did not validate.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The backend failed for a reason it does not explain.
    #[error("cryptographic backend failure")]
    Backend,
}
