//! Cipher cores shared by the IKE SK payload and ESP: CBC block ciphers, AES-CTR and AEADs.
//!
//! Nonce composition (salt | explicit IV) is done by the callers in `ike_cipher` and `esp`; this
//! module only encrypts and decrypts in place into caller buffers.

#[cfg(test)]
use aes::cipher::BlockDecrypt;
use aes::cipher::{
    BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit, StreamCipher,
    block_padding::NoPadding, generic_array::GenericArray, typenum::Unsigned,
};
use aes::{Aes128, Aes192, Aes256};
use aws_lc_rs::aead as lc;
use ccm::aead::AeadInPlace;
use ccm::consts::{U8, U11, U12, U16};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;

use crate::Error;

/// A keyed CBC block cipher.
#[derive(Clone)]
pub(crate) enum CbcKey {
    Des(des::Des),
    TripleDes(des::TdesEde3),
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
}

macro_rules! each_cbc {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            CbcKey::Des($c) => $body,
            CbcKey::TripleDes($c) => $body,
            CbcKey::Aes128($c) => $body,
            CbcKey::Aes192($c) => $body,
            CbcKey::Aes256($c) => $body,
        }
    };
}

impl CbcKey {
    pub(crate) fn new_des(key: &[u8]) -> Result<Self, Error> {
        des::Des::new_from_slice(key)
            .map(Self::Des)
            .map_err(|_| Error::KeyLength {
                alg: "des-cbc",
                got: key.len(),
            })
    }

    pub(crate) fn new_3des(key: &[u8]) -> Result<Self, Error> {
        des::TdesEde3::new_from_slice(key)
            .map(Self::TripleDes)
            .map_err(|_| Error::KeyLength {
                alg: "3des-cbc",
                got: key.len(),
            })
    }

    pub(crate) fn new_aes(key: &[u8]) -> Result<Self, Error> {
        let bad = |_| Error::KeyLength {
            alg: "aes-cbc",
            got: key.len(),
        };
        match key.len() {
            16 => Aes128::new_from_slice(key).map(Self::Aes128).map_err(bad),
            24 => Aes192::new_from_slice(key).map(Self::Aes192).map_err(bad),
            32 => Aes256::new_from_slice(key).map(Self::Aes256).map_err(bad),
            n => Err(Error::KeyLength {
                alg: "aes-cbc",
                got: n,
            }),
        }
    }

    pub(crate) fn block_len(&self) -> usize {
        match self {
            Self::Des(_) | Self::TripleDes(_) => 8,
            _ => 16,
        }
    }

    /// Encrypts `buf` (a multiple of the block size) in place with `iv`.
    pub(crate) fn encrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), Error> {
        let bl = self.block_len();
        if iv.len() != bl || !buf.len().is_multiple_of(bl) {
            return Err(Error::Length(
                "CBC input is not a multiple of the block size",
            ));
        }
        let len = buf.len();
        each_cbc!(self, c => {
            cbc::Encryptor::inner_iv_slice_init(c.clone(), iv)
                .map_err(|_| Error::Length("CBC IV"))?
                .encrypt_padded_mut::<NoPadding>(buf, len)
                .map_err(|_| Error::Length("CBC buffer"))?;
        });
        Ok(())
    }

    /// Decrypts `buf` (a multiple of the block size) in place with `iv`.
    pub(crate) fn decrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), Error> {
        let bl = self.block_len();
        if iv.len() != bl || !buf.len().is_multiple_of(bl) {
            return Err(Error::Length(
                "CBC input is not a multiple of the block size",
            ));
        }
        each_cbc!(self, c => {
            cbc::Decryptor::inner_iv_slice_init(c.clone(), iv)
                .map_err(|_| Error::Length("CBC IV"))?
                .decrypt_padded_mut::<NoPadding>(buf)
                .map_err(|_| Error::Length("CBC buffer"))?;
        });
        Ok(())
    }

    /// Encrypts one block in place with the raw block cipher (used to derive unpredictable
    /// ESP CBC IVs from the sequence number, NIST SP 800-38A Appendix C).
    pub(crate) fn encrypt_block(&self, block: &mut [u8]) {
        each_cbc!(self, c => c.encrypt_block(GenericArray::from_mut_slice(block)))
    }

    #[cfg(test)]
    pub(crate) fn decrypt_block(&self, block: &mut [u8]) {
        each_cbc!(self, c => c.decrypt_block(GenericArray::from_mut_slice(block)))
    }
}

/// A keyed AES block cipher of any key size.
#[derive(Clone)]
pub(crate) enum AesKey {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

impl AesKey {
    pub(crate) fn new(key: &[u8]) -> Result<Self, Error> {
        let bad = |_| Error::KeyLength {
            alg: "aes",
            got: key.len(),
        };
        match key.len() {
            16 => Aes128::new_from_slice(key).map(Self::A128).map_err(bad),
            24 => Aes192::new_from_slice(key).map(Self::A192).map_err(bad),
            32 => Aes256::new_from_slice(key).map(Self::A256).map_err(bad),
            n => Err(Error::KeyLength { alg: "aes", got: n }),
        }
    }

    fn encrypt_block(&self, b: &mut [u8; 16]) {
        let g = GenericArray::from_mut_slice(b);
        match self {
            Self::A128(c) => c.encrypt_block(g),
            Self::A192(c) => c.encrypt_block(g),
            Self::A256(c) => c.encrypt_block(g),
        }
    }

    /// XORs the CTR keystream (32-bit big-endian counter in the last 4 bytes of `block0`)
    /// into `buf`.
    fn ctr32(&self, block0: &[u8; 16], buf: &mut [u8]) {
        let iv = GenericArray::from_slice(block0);
        match self {
            Self::A128(c) => {
                ctr::Ctr32BE::<Aes128>::from_core(ctr::CtrCore::inner_iv_init(c.clone(), iv))
                    .apply_keystream(buf)
            }
            Self::A192(c) => {
                ctr::Ctr32BE::<Aes192>::from_core(ctr::CtrCore::inner_iv_init(c.clone(), iv))
                    .apply_keystream(buf)
            }
            Self::A256(c) => {
                ctr::Ctr32BE::<Aes256>::from_core(ctr::CtrCore::inner_iv_init(c.clone(), iv))
                    .apply_keystream(buf)
            }
        }
    }
}

/// AES-CTR as used by IPsec (RFC 3686 §4): counter block = nonce(4) | IV(8) | counter(4),
/// the counter starting at 1.
pub(crate) fn aes_ctr_apply(key: &AesKey, nonce: &[u8; 4], iv: &[u8; 8], buf: &mut [u8]) {
    let mut block0 = [0u8; 16];
    block0[..4].copy_from_slice(nonce);
    block0[4..12].copy_from_slice(iv);
    block0[12..].copy_from_slice(&1u32.to_be_bytes());
    key.ctr32(&block0, buf);
}

/// The AEAD constructions: the nonce is always given whole (GCM/ChaCha: 12 bytes =
/// salt(4) | IV(8); CCM: 11 bytes = salt(3) | IV(8)).
pub(crate) enum AeadKey {
    /// aws-lc-rs: AES-GCM with a 16-byte tag, ChaCha20-Poly1305.
    Lc(lc::LessSafeKey),
    /// AES-GCM with a truncated (8 or 12 byte) tag: AES-CTR + GHASH (NIST SP 800-38D §7).
    GcmSoft {
        aes: Box<AesKey>,
        h: [u8; 16],
        tag_len: usize,
    },
    /// AES-CCM (RFC 4309 / NIST SP 800-38C) with an 11-byte nonce.
    Ccm(CcmKey),
}

macro_rules! ccm_variants {
    ($($name:ident = $aes:ty, $tag:ty;)*) => {
        #[allow(clippy::enum_variant_names)]
        pub(crate) enum CcmKey { $($name(Box<ccm::Ccm<$aes, $tag, U11>>),)* }
        impl CcmKey {
            fn new(key: &[u8], tag_len: usize) -> Result<Self, Error> {
                let bad = |_| Error::KeyLength { alg: "aes-ccm", got: key.len() };
                $(
                    if key.len() == <$aes as aes::cipher::KeySizeUser>::key_size()
                        && tag_len == <$tag as Unsigned>::USIZE
                    {
                        return Ok(Self::$name(Box::new(
                            <ccm::Ccm<$aes, $tag, U11> as KeyInit>::new_from_slice(key).map_err(bad)?,
                        )));
                    }
                )*
                Err(Error::KeyLength { alg: "aes-ccm", got: key.len() })
            }
            fn seal(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &mut [u8]) -> Result<(), Error> {
                match self {
                    $(Self::$name(c) => {
                        let t = c
                            .encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
                            .map_err(|_| Error::Backend)?;
                        tag.copy_from_slice(&t);
                    })*
                }
                Ok(())
            }
            fn open(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), Error> {
                match self {
                    $(Self::$name(c) => c
                        .decrypt_in_place_detached(
                            GenericArray::from_slice(nonce),
                            aad,
                            buf,
                            GenericArray::from_slice(tag),
                        )
                        .map_err(|_| Error::Integrity),)*
                }
            }
        }
    };
}

ccm_variants! {
    Ccm128x8 = Aes128, U8;
    Ccm128x12 = Aes128, U12;
    Ccm128x16 = Aes128, U16;
    Ccm192x8 = Aes192, U8;
    Ccm192x12 = Aes192, U12;
    Ccm192x16 = Aes192, U16;
    Ccm256x8 = Aes256, U8;
    Ccm256x12 = Aes256, U12;
    Ccm256x16 = Aes256, U16;
}

/// Which AEAD family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AeadKind {
    Gcm,
    Ccm,
    ChaCha20Poly1305,
}

impl AeadKey {
    pub(crate) fn new(kind: AeadKind, key: &[u8], tag_len: usize) -> Result<Self, Error> {
        match kind {
            AeadKind::Gcm => {
                let alg = match key.len() {
                    16 => &lc::AES_128_GCM,
                    24 => &lc::AES_192_GCM,
                    32 => &lc::AES_256_GCM,
                    n => {
                        return Err(Error::KeyLength {
                            alg: "aes-gcm",
                            got: n,
                        });
                    }
                };
                if tag_len == 16 {
                    let k = lc::UnboundKey::new(alg, key).map_err(|_| Error::Backend)?;
                    Ok(Self::Lc(lc::LessSafeKey::new(k)))
                } else if tag_len == 8 || tag_len == 12 {
                    let aes = AesKey::new(key)?;
                    let mut h = [0u8; 16];
                    aes.encrypt_block(&mut h);
                    Ok(Self::GcmSoft {
                        aes: Box::new(aes),
                        h,
                        tag_len,
                    })
                } else {
                    Err(Error::Unsupported("GCM tag length"))
                }
            }
            AeadKind::Ccm => Ok(Self::Ccm(CcmKey::new(key, tag_len)?)),
            AeadKind::ChaCha20Poly1305 => {
                if tag_len != 16 {
                    return Err(Error::Unsupported("ChaCha20-Poly1305 tag length"));
                }
                let k = lc::UnboundKey::new(&lc::CHACHA20_POLY1305, key).map_err(|_| {
                    Error::KeyLength {
                        alg: "chacha20-poly1305",
                        got: key.len(),
                    }
                })?;
                Ok(Self::Lc(lc::LessSafeKey::new(k)))
            }
        }
    }

    /// Encrypts `buf` in place and writes the tag (exactly the tag length) into `tag`.
    pub(crate) fn seal(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), Error> {
        match self {
            Self::Lc(k) => {
                let n = lc::Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Backend)?;
                let t = k
                    .seal_in_place_separate_tag(n, lc::Aad::from(aad), buf)
                    .map_err(|_| Error::Backend)?;
                tag.copy_from_slice(t.as_ref());
                Ok(())
            }
            Self::GcmSoft { aes, h, tag_len } => {
                let j0 = gcm_j0(nonce)?;
                aes.ctr32(&inc32(&j0), buf);
                let full = gcm_tag(aes, h, &j0, aad, buf);
                tag.copy_from_slice(&full[..*tag_len]);
                Ok(())
            }
            Self::Ccm(c) => c.seal(nonce, aad, buf, tag),
        }
    }

    /// Verifies `tag` and decrypts `buf` in place. On failure `buf` is left unspecified and
    /// must be discarded.
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Error> {
        match self {
            Self::Lc(k) => {
                let n = lc::Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Backend)?;
                k.open_in_place_separate_tag(n, lc::Aad::from(aad), tag, buf)
                    .map(|_| ())
                    .map_err(|_| Error::Integrity)
            }
            Self::GcmSoft { aes, h, tag_len } => {
                if tag.len() != *tag_len {
                    return Err(Error::Integrity);
                }
                let j0 = gcm_j0(nonce)?;
                let full = gcm_tag(aes, h, &j0, aad, buf);
                if !crate::ct_eq(&full[..*tag_len], tag) {
                    return Err(Error::Integrity);
                }
                aes.ctr32(&inc32(&j0), buf);
                Ok(())
            }
            Self::Ccm(c) => c.open(nonce, aad, buf, tag),
        }
    }
}

fn gcm_j0(nonce: &[u8]) -> Result<[u8; 16], Error> {
    if nonce.len() != 12 {
        return Err(Error::Length("GCM nonce"));
    }
    let mut j0 = [0u8; 16];
    j0[..12].copy_from_slice(nonce);
    j0[15] = 1;
    Ok(j0)
}

fn inc32(j0: &[u8; 16]) -> [u8; 16] {
    let mut b = *j0;
    let c = u32::from_be_bytes([b[12], b[13], b[14], b[15]]).wrapping_add(1);
    b[12..].copy_from_slice(&c.to_be_bytes());
    b
}

/// T = E_K(J0) xor GHASH_H(A | pad | C | pad | len(A) | len(C)) (SP 800-38D §7.1 steps 5–6).
fn gcm_tag(aes: &AesKey, h: &[u8; 16], j0: &[u8; 16], aad: &[u8], ct: &[u8]) -> [u8; 16] {
    let mut g = GHash::new(GenericArray::from_slice(h));
    g.update_padded(aad);
    g.update_padded(ct);
    let mut lens = [0u8; 16];
    lens[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
    lens[8..].copy_from_slice(&((ct.len() as u64) * 8).to_be_bytes());
    g.update(&[GenericArray::from(lens)]);
    let s = g.finalize();
    let mut ek = *j0;
    aes.encrypt_block(&mut ek);
    let mut t = [0u8; 16];
    for i in 0..16 {
        t[i] = ek[i] ^ s[i];
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// The GCM specification (McGrew & Viega, "The Galois/Counter Mode of Operation"),
    /// Appendix B, test cases 3 and 4 (AES-128, 96-bit IV).
    #[test]
    fn gcm_spec_cases_3_and_4_all_tag_lengths() {
        let key = h("feffe9928665731c6d6a8f9467308308");
        let iv = h("cafebabefacedbaddecaf888");
        let p = h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let c = h(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                   21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        );
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let tag = "5bc94fbc3221a5db94fae95ae7121a47";
        for tag_len in [8, 12, 16] {
            let k = AeadKey::new(AeadKind::Gcm, &key, tag_len).unwrap();
            let mut buf = p.clone();
            let mut t = vec![0u8; tag_len];
            k.seal(&iv, &aad, &mut buf, &mut t).unwrap();
            assert_eq!(hex::encode(&buf), hex::encode(&c), "tag_len {tag_len}");
            assert_eq!(hex::encode(&t), tag[..tag_len * 2], "tag_len {tag_len}");
            k.open(&iv, &aad, &mut buf, &t).unwrap();
            assert_eq!(buf, p);
            // Tampering is detected.
            let mut bad = c.clone();
            bad[0] ^= 1;
            assert_eq!(k.open(&iv, &aad, &mut bad, &t), Err(Error::Integrity));
            let mut buf = c.clone();
            assert_eq!(k.open(&iv, &aad[1..], &mut buf, &t), Err(Error::Integrity));
        }
        // Test case 3: no AAD, 64-byte plaintext.
        let p3 = h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                    1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        );
        for tag_len in [12, 16] {
            let k = AeadKey::new(AeadKind::Gcm, &key, tag_len).unwrap();
            let mut buf = p3.clone();
            let mut t = vec![0u8; tag_len];
            k.seal(&iv, &[], &mut buf, &mut t).unwrap();
            assert_eq!(
                hex::encode(&t),
                "4d5c2af327cd64a62cf35abd2ba6fab4"[..tag_len * 2]
            );
            assert_eq!(&buf[..60], &c[..]);
        }
    }

    /// GCM spec Appendix B test case 16 (AES-256, 96-bit IV, with AAD) through aws-lc-rs and
    /// through the soft path with a 12-byte tag.
    #[test]
    fn gcm_spec_case_16_aes256() {
        let key = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let iv = h("cafebabefacedbaddecaf888");
        let p = h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let c = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                 8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
        for tag_len in [12, 16] {
            let k = AeadKey::new(AeadKind::Gcm, &key, tag_len).unwrap();
            let mut buf = p.clone();
            let mut t = vec![0u8; tag_len];
            k.seal(&iv, &aad, &mut buf, &mut t).unwrap();
            assert_eq!(hex::encode(&buf), c.replace(['\\', ' ', '\n'], ""));
            assert_eq!(
                hex::encode(&t),
                "76fc6ece0f4e1768cddf8853bb2d551b"[..tag_len * 2]
            );
        }
    }

    /// RFC 3602 §4, cases 1–4 (AES-128-CBC).
    #[test]
    fn rfc3602_aes_cbc() {
        let cases = [
            (
                "06a9214036b8a15b512e03d534120006",
                "3dafba429d9eb430b422da802c9fac41",
                "53696e676c6520626c6f636b206d7367",
                "e353779c1079aeb82708942dbe77181a",
            ),
            (
                "c286696d887c9aa0611bbb3e2025a45a",
                "562e17996d093d28ddb3ba695a2e6f58",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
            ),
            (
                "6c3ea0477630ce21a2ce334aa746c2cd",
                "c782dc4c098c66cbd9cd27d825682c81",
                "5468697320697320612034382d62797465206d657373616765202865786163746c7920332041455320626c6f636b7329",
                "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5021c19216bad525c8579695d83ba2684",
            ),
            (
                "56e47a38c5598974bc46903dba290349",
                "8ce82eefbea0da3c44699ed7db51b7d9",
                "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
                "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
            ),
        ];
        for (key, iv, p, c) in cases {
            let k = CbcKey::new_aes(&h(key)).unwrap();
            let mut buf = h(p);
            k.encrypt(&h(iv), &mut buf).unwrap();
            assert_eq!(hex::encode(&buf), c);
            k.decrypt(&h(iv), &mut buf).unwrap();
            assert_eq!(hex::encode(&buf), p);
        }
        let k = CbcKey::new_aes(&[0; 16]).unwrap();
        assert!(k.encrypt(&[0; 16], &mut [0; 15]).is_err());
        assert!(k.decrypt(&[0; 8], &mut [0; 16]).is_err());
    }

    /// NIST SP 800-67 / FIPS 46 known answers: DES with the classic "Now is the time for all "
    /// example (key 0123456789abcdef, ECB), and 3DES from SP 800-67 Rev. 2 Appendix B's sample.
    #[test]
    fn des_and_3des_known_answers() {
        let k = CbcKey::new_des(&h("0123456789abcdef")).unwrap();
        let mut b = h("4e6f772069732074");
        k.encrypt_block(&mut b);
        assert_eq!(hex::encode(&b), "3fa40e8a984d4815");
        k.decrypt_block(&mut b);
        assert_eq!(b, b"Now is t");
        // CBC of one block with a zero IV equals the block cipher.
        let mut c = h("4e6f772069732074");
        k.encrypt(&[0; 8], &mut c).unwrap();
        assert_eq!(hex::encode(&c), "3fa40e8a984d4815");

        let k3 = CbcKey::new_3des(&h("0123456789abcdef23456789abcdef01456789abcdef0123")).unwrap();
        let mut b = b"The qufck brown fox jump".to_vec();
        k3.encrypt(&[0; 8], &mut b[..8]).unwrap();
        assert_eq!(hex::encode(&b[..8]), "a826fd8ce53b855f");
        assert!(CbcKey::new_3des(&[0; 16]).is_err());
    }

    /// RFC 3686 §6, test vectors 1 and 2 (AES-128-CTR).
    #[test]
    fn rfc3686_aes_ctr() {
        let k = AesKey::new(&h("ae6852f8121067cc4bf7a5765577f39e")).unwrap();
        let mut buf = b"Single block msg".to_vec();
        aes_ctr_apply(&k, &[0, 0, 0, 0x30], &[0; 8], &mut buf);
        assert_eq!(hex::encode(&buf), "e4095d4fb7a7b3792d6175a3261311b8");

        let k = AesKey::new(&h("7e24067817fae0d743d6ce1f32539163")).unwrap();
        let mut buf: Vec<u8> = (0u8..0x20).collect();
        aes_ctr_apply(
            &k,
            &h("006cb6db").try_into().unwrap(),
            &h("c0543b59da48d90b").try_into().unwrap(),
            &mut buf,
        );
        assert_eq!(
            hex::encode(&buf),
            "5104a106168a72d9790d41ee8edad388eb2e1efc46da57c8fce630df9141be28"
        );
    }

    /// RFC 7539 / RFC 8439 §2.8.2 AEAD test vector (ChaCha20-Poly1305).
    #[test]
    fn rfc8439_chacha20_poly1305() {
        let key = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce = h("070000004041424344454647");
        let aad = h("50515253c0c1c2c3c4c5c6c7");
        let p = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let k = AeadKey::new(AeadKind::ChaCha20Poly1305, &key, 16).unwrap();
        let mut buf = p.to_vec();
        let mut tag = [0u8; 16];
        k.seal(&nonce, &aad, &mut buf, &mut tag).unwrap();
        assert_eq!(hex::encode(&buf[..16]), "d31a8d34648e60db7b86afbc53ef7ec2");
        assert_eq!(hex::encode(&buf[buf.len() - 2..]), "6116");
        assert_eq!(hex::encode(tag), "1ae10b594f09e26a7e902ecbd0600691");
        k.open(&nonce, &aad, &mut buf, &tag).unwrap();
        assert_eq!(&buf[..], &p[..]);
    }

    /// AES-256-CCM with an 11-byte nonce (the RFC 4309 salt | IV layout) and 8- and 12-byte
    /// tags: NIST ACVP-Server `gen-val/json-files/ACVP-AES-CCM-1.0/internalProjection.json`,
    /// "DecryptionVerification" groups tgId 733 (tagLen 64; tcId 7295–7303) and tgId 735
    /// (tagLen 96; tcId 7314–7323). `ct` is ciphertext | tag; `pass` is ACVP's `testPassed`.
    #[test]
    fn acvp_ccm_11_byte_nonce_tags_8_and_12() {
        // (tcId, tag bytes, pass, key, iv, aad, pt, ct)
        type Case = (
            u32,
            usize,
            bool,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
        );
        #[rustfmt::skip]
        let cases: [Case; 19] = [
            (7295, 8, true, "6C30910AD8552920699D461AA58CDF7828D407F11C1279B9A28C7ED34DFA5E62", "A07706FE46A109D1A0C5B5", "9F8E99D61E03662B66A5482797B328A92C91C01CBAA38127DDBCB32744FCB010", "D5480D0755E5872F3519C2895919927D1AEE042F039BFE7A38E6EF60845F392C", "2B0E38F9EC7BA7ECD20FE184BAACF0C963EE395A3611E8204A828AA070454F14FE5289B8B4F18942"),
            (7296, 8, true, "B441E90EF937E33FC2477D772095048BBAED55267ACF5FCEF64560C4413E5AF9", "CFAD52AD9BB8D151AD7342", "CEE869D2E99BA8B3371B1EE4E74C29E0017B127B98017FA65AF0006BFA61E133", "102214ABE6ABEDC020DBB0929DA3970E60FA10ABA68365C9ECCFB9E6F8041B73", "AA119008DB1673B986B13AE5017EC0D9BA39E7FF0C7C49807CC0D46005E574CAC0333CE559D6B871"),
            (7297, 8, true, "CBA35E4DC0A43E186FC8AB65A4CDEEA47622B60DFCC6982959C76ABB1FE450EA", "E8105973E264CA0FEEDD72", "4A590B40AC13C8308AFBF4CB0B06C67D0774873F97C9854A3BBE0030AC813C54", "FC6D5339DF3523E6BA7E03ED116920DE9E83AE5FD9D9E01EDD3D83E38AF99672", "605248625FE98D9BBD93D5EB505616FC9AD0D63F21C89613928099122B6DACDF2F9C275389475019"),
            (7298, 8, true, "05169407A2B51BFEC304C863AF1B935D76D8F7E58356C9535EF6239AFFCDCE33", "B226C394BB3F630C0D9E5C", "EB87D71E12CCE9472650B2BE56546D7E0009C96A338E6C74064D6E32E09193FC", "973D880764C34629C615EAC50684BAB7553E31DA40359A8E1EF8CBE9DEE113AE", "CC04392E4BDFF9C9052E71602FBD2933E5E989E89F105BFC3C0B1FA6FBFAB1675F86D50E193AA786"),
            (7299, 8, true, "1382094CD17AE530DC9342038DA9118BED02DEBAE15F01232FC93123262F5B6F", "BDC2AD3B9F7A2863785BC5", "DF6D7211C59F665E1B4C7F19E2F7B63EF552C72CAB64FBF93F108AE3861B4C49", "AEF2A50ACBFD8DC241FCAB4BE0F2776DC3A057BEE70AB8B98DD44A5F3D262D88", "45D9FBA2CC377E11C6A36EBF32CA70BDB79DE958646A0C527A0A54FCCA629C3C899AD25416EF3C2B"),
            (7300, 8, true, "A4809239A202ECBE226E7C619ADFB88A47DC58B710319B1FEB4393D9C155F5A2", "4F3AFAAB80804D752BB305", "A0343809F9662D030A8C1B8DB1A091ED03338726840209811701BC128B39C234", "E59CE83AA248986A4349F3CF6F263D3E5A42A26BCE99A28DBA34823B6C2F0815", "2E346E98EA0267714F5920A2AC03587885A8C10ADD7715DFB096C8389A3948D15D2F8D45C4A72BA1"),
            (7301, 8, true, "A4121DA446DD89019BF15A193715907FE06129E8118CEF031AAEB934F650A6B1", "E8637946CBD35338046581", "BDCEC4AB8D2825828FE7DDE57667DCABF5B4B55606A8CB32FFC6085AA576A25B", "1FDFE0C27EA76A848E872E4BEB7D27FF00CAA3DFB6856085D59B4BB0611788C9", "C926C3E4FAC4492DF65CD3AED471C27F6B2B73583B69CCCBDC0DA26C8C25A6C4D73461FBAEAA0875"),
            (7302, 8, false, "AEAF756CCC8DAFC52CC34CB8FC62A6F3E22053BA3F73498EFBC408D834761703", "C4DAD86CA0DC0DF40EF879", "23F50517D42C44C1C5C499188EF77A286E4A53B73992A4F7BCDFF8424F870596", "F28E069DAFC118960AC779DF52D59C747810840B12EB08B44D252DE524B98CA5", "87CBA1A54A713A5892F52A2FD57C13B6F1BE9476B241E3C97AB9EEDAD23E75713C46975E15904984"),
            (7303, 8, true, "54D92A770F413D553989D9809F85D5140201713D01875248EAAD9F2A992F6C23", "D2D8CAC0E6096A14EC4926", "D4C5EE0A98ED85F4DB33781E729D5DED44F5E249F7ACE4D449EC40804C968F50", "784B69AA5EEE41F2899716A31BC2775F11A399800FC171BD8488665134C7ED50", "B14E7F64217442E9BD3E1BC21614E718FD0C06DAF77E678961DDEB165EE0C92B331CD601FA519812"),
            (7314, 12, true, "8E9A70544E176B24101E676208797840E883F638DFC4EBCA4F207172528189E0", "54B135EB147A88EDE0585C", "D38E64C65F9615E08235515AFAD159062D706A793F09FD3EDA95624622A028EF", "A11277B71A7EE53C5B7FECDA1F01555C87CC0976C1F96F05518BD23354C6A4FD", "E70064064AB15A288F807E4D99A745573BC02745505A8F60C97291DC843CB5F1E20F32275A525D1B9DE76E33"),
            (7315, 12, false, "AB7BF6E67C88133853C68DF618776D0CD658D00E1BBC16DD707346924FEB7AA7", "EA598EF8C8C70EC879816A", "897EA545C78F578DB1119AE78AF6BE7F1797B419A880814C6010AFDC4547AC64", "9F99F9BA6DE707AD5463687AC8CA013F5A16FA43202003A43563CD8336679CBC", "37029E4E9FFA89F2C85801E93288D7FFE594C64DAC16015E8DC43210B99CCF3D969AC902CF973A48AF77145F"),
            (7316, 12, false, "81B555B9F38527D4EB1F85075FCA11741E25729B0EB0D5B60534C41E51E60A2C", "C9C60908F8BC5502A1FF1C", "55C119B7C823D09BF12F1F604C413EF77CFAEBA7BBFC60B2B18390B8A39E8483", "C25C2AC425A1B52A3EAC355880CB3ECD160E3B0DCEC179AC7A7B5AA8B0668020", "D20DD146841BF0E59C2F9F930ECF1562CF817F180D6142EC828C6514177E3E0DE9292E95D5CCACCDF0A761A2"),
            (7317, 12, true, "3D04BE4985F8A58B04CDB35DB1196D29958987C0E8CDF226887A8BAC28145A0C", "C1E3D6297DE89ECCE3BBD7", "DAEFF040F7BDA4051190ED673FF593069C0F8C593AEEB4841AC80CC8B910E6D6", "979FCEF2445D95507AF8B4C8E76B51B52911B226EF53760BF702A61B492084B8", "C130537F575EA4C5AFE63EC9DD8980BEE78093FBB4F9AA3F3D2D71909D07D9AC26332F293196110051858475"),
            (7318, 12, false, "44228289C97DF71A9F0FCE00D66C127A6C9AE3A2EA9755B1194FAD1D156FD921", "AD526474CFE1986546C8FB", "71F84398D3359DDAEF52332F8F853026FBCFC9529A5C204DB10324D6A1413643", "9B328D5F2C6FBFB9442BCD995F6BB321ECF7083E67632DD182AEF988373B456D", "5012D91F953A2F538A183B25878CE0F3011B132794B70EE858FA0A2DC4FF01607705D29E9728825A32405D87"),
            (7319, 12, true, "D8165C754B107958DFF8CC841EE4ADB4A53C6C97D424DF8010B606213C03AE4D", "881E2B2F6FDDE40FC5572A", "F2B53ED7C02CA63FAA4BC8249A6AF5A7E323B6804C4E2942B44167CCF14B7206", "D06C0EEF68E7A339891F96E6082FE1359119E7BD132896E706C55CEE49037876", "F0BDB6B8D3E5BBCA66D84D06EB00C231353DA272AB2695758BF472B7724A6BF42E05E16C139729D505E67A66"),
            (7320, 12, false, "EDEA149545C35B9A01720056B8ABF0F920DFE4829B3CF1D0B0A461403305BD43", "E9EDE14BDE213B8688A419", "D75F12D7E5595BDD824F07BB1B5F9DE598044A433670BF7D8B074552E6C1B66B", "8D286B6E84272536685CF25DB99D85AD1F554143CC3142585899BD6BF9C4F7F3", "45771F8908FBF2DA6319B0DF8223FD49A31F7238830ED4A93254140A966FF42B9E23D5D086A4A656D869CB20"),
            (7321, 12, true, "74E9EC2973582E2CE09F2A5BCF8C4843C15643526EEDF3639AFEDBD324B93369", "C68E7D44037210A8B5C3BA", "514744D0B1AD8D8FB4780976718A83A4F8D8933EF66732F2222B7AE5920DF1C7", "5237BF3A65ECD128E57BDEBB29297B20D797C9DB1F15F134245216448113A8BF", "B655ED37C74739726C5368280A684DF7FFD83FCF641FAAAC6F0E85E2EB2D66AC0E0F327B351428C9CB2151E2"),
            (7322, 12, false, "B2A91DD56C47B4E1E1317B76DEFFD36134CE9CF47C6786B21FD6B5C33CE65C74", "87A7230B9508247F3AD0CB", "BAF33E590F4E6223B0B4DD944A696E0F5B052AF98CFE8167C47DD28A49E71C3A", "03DC803A26B1A1263D6384C139C7F9C159440BDBAED4A833E343870D6DF24465", "C3F1EC77D15938C1F86B5D7A8AB2DB994A35855C00C790B5448D6E8908D073ACA82D6C898EFF7175D94A0617"),
            (7323, 12, false, "3898C84DC1A24277A1B661D1124F6ED14BC1250E0CB7953656C705E705AB9DBC", "A14F1355DD255EF70BA134", "FEFA90ACECC91A6DD87EFD6E080563A58E09E65BAB95447701B36519433ECF93", "7DA794E5D3FF263F514B8729D8A5DB5BC52B0A95C81EDBCD7E9B4CE8E193C229", "8B8BC6A89535DCB84F8FE2FF99F2A41491ED20077BB3CDED90D4BB09E136FEA7FF12083BDDC7BBB6430893F0"),
        ];
        let (mut valid, mut invalid) = (0, 0);
        for (tc, tag_len, pass, key, iv, aad, pt, ct) in cases {
            let (key, nonce, aad, pt, ct) = (h(key), h(iv), h(aad), h(pt), h(ct));
            let k = AeadKey::new(AeadKind::Ccm, &key, tag_len).unwrap();
            let (body, tag) = ct.split_at(ct.len() - tag_len);
            let mut buf = body.to_vec();
            let opened = k.open(&nonce, &aad, &mut buf, tag);
            if pass {
                assert_eq!(opened, Ok(()), "tc {tc}");
                assert_eq!(buf, pt, "tc {tc}: plaintext");
                let mut sealed = pt.clone();
                let mut t = vec![0u8; tag_len];
                k.seal(&nonce, &aad, &mut sealed, &mut t).unwrap();
                assert_eq!([sealed, t].concat(), ct, "tc {tc}: ciphertext | tag");
                valid += 1;
            } else {
                assert_eq!(opened, Err(Error::Integrity), "tc {tc}");
                invalid += 1;
            }
        }
        assert_eq!((valid, invalid), (12, 7));
    }
}
