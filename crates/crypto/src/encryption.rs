//! The negotiated encryption algorithm (IKEv2 transform type 1 / IPsec DOI ESP transform).

use crate::cipher::{AeadKey, AeadKind, AesKey, CbcKey};
use crate::{Error, Secret, ids};

/// A negotiated encryption algorithm with its key length and (for AEADs) ICV length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// ENCR_NULL (RFC 2410): ESP only, with an integrity algorithm.
    Null,
    /// ENCR_DES (CBC, RFC 2405).
    Des,
    /// ENCR_3DES (CBC, RFC 2451).
    TripleDes,
    /// ENCR_AES_CBC (RFC 3602) with a 16/24/32-byte key.
    AesCbc {
        /// Key length in bytes.
        key_len: u8,
    },
    /// ENCR_AES_CTR (RFC 3686, RFC 5930): key plus a 4-byte nonce from the keying material.
    AesCtr {
        /// Key length in bytes (without the nonce).
        key_len: u8,
    },
    /// ENCR_AES_GCM_{8,12,16} (RFC 4106, RFC 5282): key plus a 4-byte salt.
    AesGcm {
        /// Key length in bytes (without the salt).
        key_len: u8,
        /// ICV length: 8, 12 or 16.
        icv_len: u8,
    },
    /// ENCR_AES_CCM_{8,12,16} (RFC 4309, RFC 5282): key plus a 3-byte salt.
    AesCcm {
        /// Key length in bytes (without the salt).
        key_len: u8,
        /// ICV length: 8, 12 or 16.
        icv_len: u8,
    },
    /// ENCR_CHACHA20_POLY1305 (RFC 7634): 32-byte key plus a 4-byte salt.
    ChaCha20Poly1305,
}

impl Encryption {
    /// The algorithm for an IKEv2 encryption transform ID (or IKEv1 ESP transform ID, which
    /// uses the same numbers) and its Key Length attribute in bits, if present.
    ///
    /// AES needs the key length (128, 192 or 256); the fixed-key algorithms must not carry one
    /// other than their own size.
    pub fn from_id(id: u16, key_bits: Option<u16>) -> Result<Self, Error> {
        use ids::encr as e;
        let aes_len = || -> Result<u8, Error> {
            match key_bits {
                Some(128) => Ok(16),
                Some(192) => Ok(24),
                Some(256) => Ok(32),
                _ => Err(Error::Unsupported("AES key length")),
            }
        };
        let fixed = |bits: u16| -> Result<(), Error> {
            match key_bits {
                None => Ok(()),
                Some(b) if b == bits => Ok(()),
                Some(_) => Err(Error::Unsupported("key length for fixed-key cipher")),
            }
        };
        Ok(match id {
            e::NULL => {
                fixed(0)?;
                Self::Null
            }
            e::DES => {
                fixed(64)?;
                Self::Des
            }
            e::TRIPLE_DES => {
                fixed(192)?;
                Self::TripleDes
            }
            e::AES_CBC => Self::AesCbc {
                key_len: aes_len()?,
            },
            e::AES_CTR => Self::AesCtr {
                key_len: aes_len()?,
            },
            e::AES_GCM_8 => Self::AesGcm {
                key_len: aes_len()?,
                icv_len: 8,
            },
            e::AES_GCM_12 => Self::AesGcm {
                key_len: aes_len()?,
                icv_len: 12,
            },
            e::AES_GCM_16 => Self::AesGcm {
                key_len: aes_len()?,
                icv_len: 16,
            },
            e::AES_CCM_8 => Self::AesCcm {
                key_len: aes_len()?,
                icv_len: 8,
            },
            e::AES_CCM_12 => Self::AesCcm {
                key_len: aes_len()?,
                icv_len: 12,
            },
            e::AES_CCM_16 => Self::AesCcm {
                key_len: aes_len()?,
                icv_len: 16,
            },
            e::CHACHA20_POLY1305 => {
                fixed(256)?;
                Self::ChaCha20Poly1305
            }
            _ => return Err(Error::Unsupported("encryption transform")),
        })
    }

    /// The transform ID and key length attribute (bits) to put in a proposal.
    pub fn id(self) -> (u16, Option<u16>) {
        use ids::encr as e;
        let bits = |l: u8| Some(u16::from(l) * 8);
        match self {
            Self::Null => (e::NULL, None),
            Self::Des => (e::DES, None),
            Self::TripleDes => (e::TRIPLE_DES, None),
            Self::AesCbc { key_len } => (e::AES_CBC, bits(key_len)),
            Self::AesCtr { key_len } => (e::AES_CTR, bits(key_len)),
            Self::AesGcm { key_len, icv_len } => (
                match icv_len {
                    8 => e::AES_GCM_8,
                    12 => e::AES_GCM_12,
                    _ => e::AES_GCM_16,
                },
                bits(key_len),
            ),
            Self::AesCcm { key_len, icv_len } => (
                match icv_len {
                    8 => e::AES_CCM_8,
                    12 => e::AES_CCM_12,
                    _ => e::AES_CCM_16,
                },
                bits(key_len),
            ),
            Self::ChaCha20Poly1305 => (e::CHACHA20_POLY1305, None),
        }
    }

    /// A short name for logs ("aes-256-gcm-16").
    pub fn name(self) -> String {
        match self {
            Self::Null => "null".into(),
            Self::Des => "des-cbc".into(),
            Self::TripleDes => "3des-cbc".into(),
            Self::AesCbc { key_len } => format!("aes-{}-cbc", u32::from(key_len) * 8),
            Self::AesCtr { key_len } => format!("aes-{}-ctr", u32::from(key_len) * 8),
            Self::AesGcm { key_len, icv_len } => {
                format!("aes-{}-gcm-{}", u32::from(key_len) * 8, icv_len)
            }
            Self::AesCcm { key_len, icv_len } => {
                format!("aes-{}-ccm-{}", u32::from(key_len) * 8, icv_len)
            }
            Self::ChaCha20Poly1305 => "chacha20-poly1305".into(),
        }
    }

    /// True for combined-mode (AEAD) algorithms, which take no integrity transform.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            Self::AesGcm { .. } | Self::AesCcm { .. } | Self::ChaCha20Poly1305
        )
    }

    /// Cipher key length in bytes, without salt/nonce.
    pub fn key_len(self) -> usize {
        match self {
            Self::Null => 0,
            Self::Des => 8,
            Self::TripleDes => 24,
            Self::AesCbc { key_len }
            | Self::AesCtr { key_len }
            | Self::AesGcm { key_len, .. }
            | Self::AesCcm { key_len, .. } => usize::from(key_len),
            Self::ChaCha20Poly1305 => 32,
        }
    }

    /// Salt (nonce) bytes taken from the keying material after the key.
    pub fn salt_len(self) -> usize {
        match self {
            Self::AesCtr { .. } | Self::AesGcm { .. } | Self::ChaCha20Poly1305 => 4,
            Self::AesCcm { .. } => 3,
            _ => 0,
        }
    }

    /// Bytes of keying material per direction: key + salt (the size of SK_ei, or of the
    /// encryption part of Child SA KEYMAT).
    pub fn keymat_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// Length of the IV carried in each message or packet.
    pub fn iv_len(self) -> usize {
        match self {
            Self::Null => 0,
            Self::Des | Self::TripleDes => 8,
            Self::AesCbc { .. } => 16,
            _ => 8,
        }
    }

    /// Block size that the plaintext (with padding) must be a multiple of; 1 for stream and
    /// AEAD modes.
    pub fn block_len(self) -> usize {
        match self {
            Self::Des | Self::TripleDes => 8,
            Self::AesCbc { .. } => 16,
            _ => 1,
        }
    }

    /// AEAD ICV length (0 for non-AEAD algorithms).
    pub fn icv_len(self) -> usize {
        match self {
            Self::AesGcm { icv_len, .. } | Self::AesCcm { icv_len, .. } => usize::from(icv_len),
            Self::ChaCha20Poly1305 => 16,
            _ => 0,
        }
    }

    /// Keys the algorithm. `keymat` is [`Self::keymat_len`] bytes: key then salt.
    pub(crate) fn key(self, keymat: &[u8]) -> Result<CipherKey, Error> {
        if keymat.len() != self.keymat_len() {
            return Err(Error::KeyLength {
                alg: "encryption keymat",
                got: keymat.len(),
            });
        }
        let (key, salt) = keymat.split_at(self.key_len());
        let mut s = [0u8; 4];
        s[..salt.len()].copy_from_slice(salt);
        Ok(match self {
            Self::Null => CipherKey::Null,
            Self::Des => CipherKey::Cbc(Box::new(CbcKey::new_des(key)?)),
            Self::TripleDes => CipherKey::Cbc(Box::new(CbcKey::new_3des(key)?)),
            Self::AesCbc { .. } => CipherKey::Cbc(Box::new(CbcKey::new_aes(key)?)),
            Self::AesCtr { .. } => CipherKey::Ctr(Box::new(AesKey::new(key)?), s),
            Self::AesGcm { icv_len, .. } => {
                CipherKey::Aead(AeadKey::new(AeadKind::Gcm, key, icv_len.into())?, s)
            }
            Self::AesCcm { icv_len, .. } => {
                CipherKey::Aead(AeadKey::new(AeadKind::Ccm, key, icv_len.into())?, s)
            }
            Self::ChaCha20Poly1305 => {
                CipherKey::Aead(AeadKey::new(AeadKind::ChaCha20Poly1305, key, 16)?, s)
            }
        })
    }

    /// IKEv1: encrypts `buf` (a multiple of the block size) in place in CBC mode with `iv`
    /// (RFC 2409 Appendix B; the engine keeps the IV chain: the next IV is the last
    /// ciphertext block).
    pub fn ikev1_encrypt(self, key: &Secret, iv: &[u8], buf: &mut [u8]) -> Result<(), Error> {
        match self.key(key.expose())? {
            CipherKey::Cbc(c) => c.encrypt(iv, buf),
            _ => Err(Error::Unsupported("IKEv1 needs a CBC cipher")),
        }
    }

    /// IKEv1: decrypts `buf` in place in CBC mode with `iv`.
    pub fn ikev1_decrypt(self, key: &Secret, iv: &[u8], buf: &mut [u8]) -> Result<(), Error> {
        match self.key(key.expose())? {
            CipherKey::Cbc(c) => c.decrypt(iv, buf),
            _ => Err(Error::Unsupported("IKEv1 needs a CBC cipher")),
        }
    }
}

/// A keyed cipher with its salt.
///
/// The block cipher key schedules are boxed (976 bytes with both AES backends' round keys):
/// inline they made every AEAD SA that large too. AEAD keys stay inline (40 bytes; aws-lc
/// keeps its context behind a pointer anyway).
pub(crate) enum CipherKey {
    Null,
    Cbc(Box<CbcKey>),
    /// AES-CTR key and the 4-byte nonce of RFC 3686.
    Ctr(Box<AesKey>, [u8; 4]),
    /// AEAD key and its salt (4 bytes for GCM/ChaCha, first 3 bytes for CCM).
    Aead(AeadKey, [u8; 4]),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let all = [
            Encryption::Null,
            Encryption::Des,
            Encryption::TripleDes,
            Encryption::AesCbc { key_len: 16 },
            Encryption::AesCbc { key_len: 24 },
            Encryption::AesCbc { key_len: 32 },
            Encryption::AesCtr { key_len: 16 },
            Encryption::AesGcm {
                key_len: 16,
                icv_len: 8,
            },
            Encryption::AesGcm {
                key_len: 32,
                icv_len: 12,
            },
            Encryption::AesGcm {
                key_len: 32,
                icv_len: 16,
            },
            Encryption::AesCcm {
                key_len: 16,
                icv_len: 8,
            },
            Encryption::AesCcm {
                key_len: 16,
                icv_len: 16,
            },
            Encryption::ChaCha20Poly1305,
        ];
        for e in all {
            let (id, bits) = e.id();
            assert_eq!(Encryption::from_id(id, bits).unwrap(), e, "{}", e.name());
            assert!(e.key(&vec![0; e.keymat_len() + 1]).is_err());
        }
        assert!(Encryption::from_id(ids::encr::AES_CBC, None).is_err());
        assert!(Encryption::from_id(ids::encr::AES_CBC, Some(100)).is_err());
        assert!(Encryption::from_id(ids::encr::TRIPLE_DES, Some(128)).is_err());
        assert!(Encryption::from_id(1, None).is_err());
        assert_eq!(
            Encryption::AesGcm {
                key_len: 32,
                icv_len: 16
            }
            .keymat_len(),
            36
        );
        assert_eq!(
            Encryption::AesCcm {
                key_len: 16,
                icv_len: 8
            }
            .keymat_len(),
            19
        );
    }
}
