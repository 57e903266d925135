//! The codec error type.

use thiserror::Error;

/// Why a buffer could not be decoded or a `Repr` could not be encoded.
///
/// Every decoding failure of input from the network ends here, never in a panic. For IKE
/// the protocol layer maps all of them to `INVALID_SYNTAX` (or to a silent drop before an
/// IKE SA exists); the variants only say what was wrong, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before a fixed-size field or a region that a length field claimed.
    #[error("truncated: {0} runs past the end of the input")]
    Truncated(&'static str),
    /// A length field is smaller than the structure's minimum or disagrees with its content.
    #[error("bad length field in {0}")]
    BadLength(&'static str),
    /// A length field claims more than 64 KiB, or a `Repr` does not fit its length field.
    #[error("{0} is longer than the format allows (64 KiB limit)")]
    TooLong(&'static str),
    /// Bytes are left over after a structure that should have consumed them all.
    #[error("trailing data after {0}")]
    TrailingData(&'static str),
    /// A count field (transforms, selectors, SPIs) disagrees with what follows it.
    #[error("count field disagrees with content in {0}")]
    CountMismatch(&'static str),
    /// A structurally invalid field value.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// An IKEv2 Encrypted (SK/SKF) payload is not the last payload of its message
    /// (RFC 7296 §3.14, RFC 7383 §2.5).
    #[error("encrypted payload is not the last payload of the message")]
    SkNotLast,
    /// An Encrypted payload was found inside decrypted content.
    #[error("encrypted payload nested inside an encrypted payload")]
    NestedEncrypted,
    /// The output buffer is smaller than `buffer_len()`.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// `Result` with the codec [`enum@Error`].
pub type Result<T> = core::result::Result<T, Error>;
