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
}
