//! Key material: pre-shared keys and manual SA keys.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Key material from the configuration (a pre-shared key, a manual-key cipher or HMAC key).
///
/// * zeroed when dropped;
/// * `Debug` and `Display` print `<redacted>`, so the key cannot reach a log, an error or a
///   `show` output by accident; `Serialize` is deliberately not implemented;
/// * `==` compares in constant time (for equal lengths).
///
/// The bytes are available through [`Secret::expose`], which the engines call when deriving keys.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret {
    bytes: Box<[u8]>,
}

impl Secret {
    /// Wrap key bytes.
    pub fn new(bytes: impl Into<Box<[u8]>>) -> Secret {
        Secret {
            bytes: bytes.into(),
        }
    }

    /// Wrap a pre-shared key given as text (its UTF-8 bytes are the key, as on a firewall).
    pub fn from_text(text: &str) -> Secret {
        Secret::new(text.as_bytes())
    }

    /// The key bytes. Call only where the key is used.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The length in bytes (not secret: a firewall shows it too).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        // The lengths are not secret; the contents are compared without early exit.
        self.bytes.len() == other.bytes.len() && bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_and_compared() {
        let s = Secret::from_text("correct horse battery staple");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s, Secret::from_text("correct horse battery staple"));
        assert_ne!(s, Secret::from_text("correct horse battery stapl"));
        assert_ne!(s, Secret::from_text("correct horse battery staplf"));
        assert_eq!(s.expose(), b"correct horse battery staple");
        assert_eq!(s.len(), 28);
    }

    #[test]
    fn zeroize_clears_bytes() {
        let mut s = Secret::new(vec![1u8, 2, 3]);
        s.zeroize();
        assert_eq!(s.expose(), &[0u8, 0, 0]);
    }
}
