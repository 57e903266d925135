//! Secret byte strings that are zeroized on drop and never printed.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// A secret byte string: keys, shared secrets, SKEYSEED, SK_*, KEYMAT, pre-shared keys.
///
/// The bytes are zeroized when the value is dropped; `Debug` prints only the length. Equality
/// is constant-time.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes (taking ownership, so no copy is left behind).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies bytes from a slice.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// A secret of `len` zero bytes, to be filled in place.
    pub fn zeroed(len: usize) -> Self {
        Self::new(vec![0; len])
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret bytes, mutable.
    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Splits off the first `n` bytes as a new secret; `None` if too short.
    pub fn take_prefix(&self, offset: usize, n: usize) -> Option<Secret> {
        let end = offset.checked_add(n)?;
        self.0.get(offset..end).map(Secret::from_slice)
    }

    /// The concatenation of several secrets, in one allocation of the exact size (no
    /// reallocation leaves a stale copy behind): RFC 9370's `g^ir | SK(1) | ... | SK(n)`.
    pub fn concat(parts: &[&Secret]) -> Secret {
        let mut v = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
        for p in parts {
            v.extend_from_slice(&p.0);
        }
        Secret::new(v)
    }

    /// Appends bytes (used while building prf inputs from secret parts).
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        // Reserve first so the vector never reallocates and leaves a stale copy behind.
        if self.0.capacity() - self.0.len() < bytes.len() {
            let mut bigger = Vec::with_capacity((self.0.len() + bytes.len()).max(64) * 2);
            bigger.extend_from_slice(&self.0);
            self.0.zeroize();
            *self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
    }

    /// Truncates to `len` bytes (the removed tail is zeroized).
    pub(crate) fn truncate(&mut self, len: usize) {
        if len < self.0.len() {
            self.0[len..].zeroize();
            self.0.truncate(len);
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

/// Constant-time equality of two byte strings (the lengths are not secret).
///
/// Use this for every MAC, ICV, AUTH payload and hash comparison.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_bytes() {
        let s = Secret::from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let d = format!("{s:?}");
        assert_eq!(d, "Secret(4 bytes)");
        assert!(!d.to_lowercase().contains("de"));
    }

    #[test]
    fn equality_and_ct_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert_eq!(Secret::from_slice(b"k"), Secret::from_slice(b"k"));
        assert_ne!(Secret::from_slice(b"k"), Secret::from_slice(b"j"));
    }

    #[test]
    fn extend_and_truncate() {
        let mut s = Secret::from_slice(b"ab");
        s.extend_from_slice(&[b'c'; 100]);
        assert_eq!(s.len(), 102);
        assert_eq!(&s.expose()[..3], b"abc");
        s.truncate(1);
        assert_eq!(s.expose(), b"a");
        assert_eq!(s.take_prefix(0, 1).unwrap().expose(), b"a");
        assert!(s.take_prefix(1, 1).is_none());
    }
}
