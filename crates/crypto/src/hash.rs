//! Plain hash functions (IKEv1 IVs, NAT detection, hash-and-URL, RFC 7427 signatures).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::ids;

/// A hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// MD5 (IKEv1 legacy only).
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The hash for an IKEv1 hash attribute value (RFC 2409 Appendix A).
    pub fn from_ikev1(id: u16) -> Option<Self> {
        use ids::ikev1::hash as h;
        match id {
            h::MD5 => Some(Self::Md5),
            h::SHA1 => Some(Self::Sha1),
            h::SHA2_256 => Some(Self::Sha256),
            h::SHA2_384 => Some(Self::Sha384),
            h::SHA2_512 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// Hashes the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Self::Md5 => run::<Md5>(parts),
            Self::Sha1 => run::<Sha1>(parts),
            Self::Sha256 => run::<Sha256>(parts),
            Self::Sha384 => run::<Sha384>(parts),
            Self::Sha512 => run::<Sha512>(parts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2 Appendix B.1 / RFC 1321 §A.5: the hashes of "abc".
    #[test]
    fn abc() {
        let cases = [
            (HashAlgorithm::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (
                HashAlgorithm::Sha1,
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                HashAlgorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ];
        for (h, want) in cases {
            assert_eq!(hex::encode(h.digest(&[b"a", b"bc"])), want, "{h:?}");
            assert_eq!(h.digest(&[b"abc"]).len(), h.output_len());
        }
    }
}
