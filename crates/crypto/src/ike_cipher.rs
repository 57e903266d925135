//! Protection of the IKEv2 Encrypted (SK) and Encrypted Fragment (SKF) payloads
//! (RFC 7296 §3.14, RFC 5282 for AEAD, RFC 7634 for ChaCha20-Poly1305, RFC 7383).
//!
//! ```text
//! SK payload body:  IV | ciphertext( payloads | padding | pad length ) | ICV
//! non-AEAD: ICV = integ(SK_a, IKE header … end of ciphertext)      (RFC 7296 §3.14)
//! AEAD:     nonce = salt | IV, AAD = IKE header … SK payload header  (RFC 5282 §5.1)
//! ```

use crate::cipher::aes_ctr_apply;
use crate::encryption::CipherKey;
use crate::{Encryption, Error, Integrity, IntegrityKey, Rng, Secret};

/// A keyed SK-payload protector for one direction of an IKE SA (SK_ei/SK_ai or SK_er/SK_ar).
pub struct IkeSkCrypter {
    encr: Encryption,
    cipher: CipherKey,
    integ: Option<IntegrityKey>,
}

impl std::fmt::Debug for IkeSkCrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeSkCrypter")
            .field("encr", &self.encr)
            .field("integ", &self.integ.as_ref().map(|k| k.algorithm()))
            .finish_non_exhaustive()
    }
}

impl IkeSkCrypter {
    /// Keys a direction. `encr_key` is SK_e* (key and salt); `integ` and `integ_key` (SK_a*)
    /// are required for non-AEAD ciphers and must be absent for AEAD ones (RFC 7296 §3.3.2).
    pub fn new(
        encr: Encryption,
        encr_key: &Secret,
        integ: Option<Integrity>,
        integ_key: &Secret,
    ) -> Result<Self, Error> {
        if encr == Encryption::Null {
            return Err(Error::Unsupported("NULL encryption is not allowed for IKE"));
        }
        let integ = match (encr.is_aead(), integ) {
            (true, None) => None,
            (false, Some(i)) => Some(i.key(integ_key.expose())?),
            (true, Some(_)) => return Err(Error::Unsupported("AEAD cipher with integrity")),
            (false, None) => return Err(Error::Unsupported("non-AEAD cipher needs integrity")),
        };
        Ok(Self {
            encr,
            cipher: encr.key(encr_key.expose())?,
            integ,
        })
    }

    /// The encryption algorithm.
    pub fn encryption(&self) -> Encryption {
        self.encr
    }

    fn icv_len(&self) -> usize {
        match &self.integ {
            Some(i) => i.algorithm().icv_len(),
            None => self.encr.icv_len(),
        }
    }

    /// Padding added before the pad-length byte: the minimum that makes the plaintext a
    /// multiple of the block size.
    fn pad_len(&self, plaintext_len: usize) -> usize {
        let bl = self.encr.block_len();
        (bl - (plaintext_len + 1) % bl) % bl
    }

    /// Length of the SK payload body (IV, ciphertext with padding and pad length, ICV) for
    /// `plaintext_len` bytes of inner payloads. The engine writes the IKE header and the SK
    /// payload header with lengths computed from this before calling [`Self::seal`].
    pub fn encrypted_len(&self, plaintext_len: usize) -> usize {
        self.encr.iv_len() + plaintext_len + self.pad_len(plaintext_len) + 1 + self.icv_len()
    }

    /// Protects `plaintext` (the inner payload chain). `aad` is the message from the first byte
    /// of the IKE header through the end of the SK (or SKF) payload header, with final lengths.
    /// Returns the SK payload body, exactly [`Self::encrypted_len`] bytes. The IV comes from
    /// `rng`.
    pub fn seal(&self, rng: &mut dyn Rng, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let iv_len = self.encr.iv_len();
        let pad = self.pad_len(plaintext.len());
        let ct_len = plaintext.len() + pad + 1;
        let icv_len = self.icv_len();
        let mut out = vec![0u8; iv_len + ct_len + icv_len];
        rng.fill(&mut out[..iv_len]);
        out[iv_len..iv_len + plaintext.len()].copy_from_slice(plaintext);
        // Padding bytes are zero; the pad length byte follows (RFC 7296 §3.14).
        out[iv_len + ct_len - 1] = pad as u8;
        let (iv, rest) = out.split_at_mut(iv_len);
        let (ct, icv) = rest.split_at_mut(ct_len);
        match &self.cipher {
            CipherKey::Cbc(c) => c.encrypt(iv, ct)?,
            CipherKey::Ctr(k, nonce) => {
                let iv8: [u8; 8] = (&*iv).try_into().map_err(|_| Error::Length("IV"))?;
                aes_ctr_apply(k, nonce, &iv8, ct)
            }
            CipherKey::Aead(k, salt) => {
                let (nonce, n) = aead_nonce(self.encr, salt, iv);
                k.seal(&nonce[..n], aad, ct, icv)?;
            }
            CipherKey::Null => return Err(Error::Unsupported("NULL encryption")),
        }
        if let Some(ik) = &self.integ {
            let covered_len = iv_len + ct_len;
            let mut tag = [0u8; 64];
            let tl = ik.algorithm().icv_len();
            ik.compute(&[aad, &out[..covered_len]], &mut tag[..tl])?;
            out[covered_len..].copy_from_slice(&tag[..tl]);
        }
        Ok(out)
    }

    /// Verifies and decrypts an SK payload body (`IV | ciphertext | ICV`). `aad` is as for
    /// [`Self::seal`]. Returns the inner payload chain without padding.
    ///
    /// Every malformed input (too short, not a block multiple, bad ICV, impossible pad length)
    /// is an error.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, Error> {
        let iv_len = self.encr.iv_len();
        let icv_len = self.icv_len();
        if body.len() < iv_len + 1 + icv_len {
            return Err(Error::Length(
                "SK payload shorter than IV + pad length + ICV",
            ));
        }
        let ct_len = body.len() - iv_len - icv_len;
        if !ct_len.is_multiple_of(self.encr.block_len()) {
            return Err(Error::Length(
                "SK ciphertext is not a multiple of the block size",
            ));
        }
        let (iv, rest) = body.split_at(iv_len);
        let (ct, icv) = rest.split_at(ct_len);
        if let Some(ik) = &self.integ {
            ik.verify(&[aad, &body[..iv_len + ct_len]], icv)?;
        }
        let mut buf = ct.to_vec();
        match &self.cipher {
            CipherKey::Cbc(c) => c.decrypt(iv, &mut buf)?,
            CipherKey::Ctr(k, nonce) => aes_ctr_apply(
                k,
                nonce,
                iv.try_into().map_err(|_| Error::Length("IV"))?,
                &mut buf,
            ),
            CipherKey::Aead(k, salt) => {
                let (nonce, n) = aead_nonce(self.encr, salt, iv);
                k.open(&nonce[..n], aad, &mut buf, icv)?;
            }
            CipherKey::Null => return Err(Error::Unsupported("NULL encryption")),
        }
        let pad = usize::from(*buf.last().ok_or(Error::Padding)?);
        if pad + 1 > buf.len() {
            return Err(Error::Padding);
        }
        buf.truncate(buf.len() - pad - 1);
        Ok(buf)
    }
}

/// salt | IV: 12 bytes for GCM/ChaCha (4 + 8), 11 for CCM (3 + 8).
///
/// The 12-byte nonce is written as one 8-byte and one 4-byte store, the widths the AEAD's
/// copy of it reads back. Written as 4 + 8 bytes (a `memcpy` of the salt's length, then the
/// IV), the first 8-byte load spans two stores, the CPU cannot forward them and waits for its
/// store buffer to drain: on the send path that buffer still holds the packet just copied
/// into a cold batch buffer. Under iperf3 through ESP in UDP that wait made `EspSa::seal`'s
/// own time 0.4–2.3 % of all CPU (a quarter of AES-GCM's); written this way, 0.17 %.
pub(crate) fn aead_nonce(encr: Encryption, salt: &[u8; 4], iv: &[u8]) -> ([u8; 12], usize) {
    let mut n = [0u8; 12];
    let sl = encr.salt_len();
    if sl == 4 {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let head = u64::from(word(salt)) | (u64::from(word(iv)) << 32);
        n[..8].copy_from_slice(&head.to_le_bytes());
        n[8..].copy_from_slice(&word(&iv[4..8]).to_le_bytes());
    } else {
        n[..sl].copy_from_slice(&salt[..sl]);
        n[sl..sl + 8].copy_from_slice(&iv[..8]);
    }
    (n, sl + 8)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn aead_nonce_is_salt_then_iv() {
        let salt = [1, 2, 3, 4];
        let iv = [5, 6, 7, 8, 9, 10, 11, 12];
        for encr in [
            Encryption::AesGcm {
                key_len: 32,
                icv_len: 16,
            },
            Encryption::ChaCha20Poly1305,
        ] {
            assert_eq!(
                aead_nonce(encr, &salt, &iv),
                ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 12)
            );
        }
        let ccm = Encryption::AesCcm {
            key_len: 16,
            icv_len: 16,
        };
        let (n, len) = aead_nonce(ccm, &salt, &iv);
        assert_eq!(&n[..len], &[1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    fn suites() -> Vec<(Encryption, Option<Integrity>)> {
        vec![
            (
                Encryption::AesCbc { key_len: 16 },
                Some(Integrity::HmacSha256_128),
            ),
            (
                Encryption::AesCbc { key_len: 32 },
                Some(Integrity::HmacSha512_256),
            ),
            (Encryption::TripleDes, Some(Integrity::HmacSha1_96)),
            (Encryption::Des, Some(Integrity::HmacMd5_96)),
            (
                Encryption::AesCtr { key_len: 24 },
                Some(Integrity::AesXcbc96),
            ),
            (
                Encryption::AesGcm {
                    key_len: 16,
                    icv_len: 8,
                },
                None,
            ),
            (
                Encryption::AesGcm {
                    key_len: 32,
                    icv_len: 16,
                },
                None,
            ),
            (
                Encryption::AesCcm {
                    key_len: 16,
                    icv_len: 12,
                },
                None,
            ),
            (Encryption::ChaCha20Poly1305, None),
        ]
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for (encr, integ) in suites() {
            let ek = Secret::from_slice(&vec![0x42; encr.keymat_len()]);
            let ik = Secret::from_slice(&vec![0x24; integ.map_or(0, |i| i.key_len())]);
            let c = IkeSkCrypter::new(encr, &ek, integ, &ik).unwrap();
            for len in [0usize, 1, 15, 16, 17, 100] {
                let pt: Vec<u8> = (0..len as u8).collect();
                let aad = b"ike header and SK header";
                let body = c.seal(&mut rng, aad, &pt).unwrap();
                assert_eq!(body.len(), c.encrypted_len(len), "{}", encr.name());
                assert_eq!(c.open(aad, &body).unwrap(), pt, "{}", encr.name());
                // Any flipped bit in IV, ciphertext or ICV, or a changed header, is rejected.
                for i in [0, body.len() / 2, body.len() - 1] {
                    let mut bad = body.clone();
                    bad[i] ^= 0x80;
                    assert!(c.open(aad, &bad).is_err(), "{} byte {i}", encr.name());
                }
                assert!(c.open(b"other header", &body).is_err());
                // Truncations never panic.
                for cut in 0..body.len() {
                    let _ = c.open(aad, &body[..cut]);
                }
            }
        }
    }

    #[test]
    fn wrong_combinations_are_refused() {
        let k = Secret::from_slice(&[0; 36]);
        assert!(
            IkeSkCrypter::new(
                Encryption::AesGcm {
                    key_len: 32,
                    icv_len: 16
                },
                &k,
                Some(Integrity::HmacSha256_128),
                &k
            )
            .is_err()
        );
        assert!(IkeSkCrypter::new(Encryption::AesCbc { key_len: 32 }, &k, None, &k).is_err());
        assert!(IkeSkCrypter::new(Encryption::Null, &k, None, &k).is_err());
    }
}
