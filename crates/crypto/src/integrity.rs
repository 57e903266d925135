//! Integrity algorithms (IKE SK payload, ESP, AH) and the MAC cores shared with the PRFs.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use cmac::Cmac;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

use crate::{Error, ids, secret::ct_eq};

/// A negotiated integrity algorithm (IKEv2 transform type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integrity {
    /// AUTH_HMAC_MD5_96 (RFC 2403).
    HmacMd5_96,
    /// AUTH_HMAC_SHA1_96 (RFC 2404).
    HmacSha1_96,
    /// AUTH_AES_XCBC_96 (RFC 3566).
    AesXcbc96,
    /// AUTH_AES_CMAC_96 (RFC 4494).
    AesCmac96,
    /// AUTH_HMAC_SHA2_256_128 (RFC 4868).
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (RFC 4868).
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (RFC 4868).
    HmacSha512_256,
}

impl Integrity {
    /// All integrity algorithms this provider implements.
    pub const ALL: [Integrity; 7] = [
        Self::HmacSha256_128,
        Self::HmacSha384_192,
        Self::HmacSha512_256,
        Self::HmacSha1_96,
        Self::AesXcbc96,
        Self::AesCmac96,
        Self::HmacMd5_96,
    ];

    /// The algorithm for an IKEv2 integrity transform ID.
    pub fn from_id(id: u16) -> Result<Self, Error> {
        use ids::integ as i;
        Ok(match id {
            i::HMAC_MD5_96 => Self::HmacMd5_96,
            i::HMAC_SHA1_96 => Self::HmacSha1_96,
            i::AES_XCBC_96 => Self::AesXcbc96,
            i::AES_CMAC_96 => Self::AesCmac96,
            i::HMAC_SHA2_256_128 => Self::HmacSha256_128,
            i::HMAC_SHA2_384_192 => Self::HmacSha384_192,
            i::HMAC_SHA2_512_256 => Self::HmacSha512_256,
            _ => return Err(Error::Unsupported("integrity transform")),
        })
    }

    /// The IKEv2 transform ID.
    pub fn id(self) -> u16 {
        use ids::integ as i;
        match self {
            Self::HmacMd5_96 => i::HMAC_MD5_96,
            Self::HmacSha1_96 => i::HMAC_SHA1_96,
            Self::AesXcbc96 => i::AES_XCBC_96,
            Self::AesCmac96 => i::AES_CMAC_96,
            Self::HmacSha256_128 => i::HMAC_SHA2_256_128,
            Self::HmacSha384_192 => i::HMAC_SHA2_384_192,
            Self::HmacSha512_256 => i::HMAC_SHA2_512_256,
        }
    }

    /// A short name for logs ("hmac-sha2-256-128").
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacMd5_96 => "hmac-md5-96",
            Self::HmacSha1_96 => "hmac-sha1-96",
            Self::AesXcbc96 => "aes-xcbc-96",
            Self::AesCmac96 => "aes-cmac-96",
            Self::HmacSha256_128 => "hmac-sha2-256-128",
            Self::HmacSha384_192 => "hmac-sha2-384-192",
            Self::HmacSha512_256 => "hmac-sha2-512-256",
        }
    }

    /// Key length in bytes (the size of SK_a* / the integrity part of KEYMAT).
    pub fn key_len(self) -> usize {
        match self {
            Self::HmacMd5_96 => 16,
            Self::HmacSha1_96 => 20,
            Self::AesXcbc96 | Self::AesCmac96 => 16,
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
        }
    }

    /// Length of the (truncated) integrity check value in bytes.
    pub fn icv_len(self) -> usize {
        match self {
            Self::HmacMd5_96 | Self::HmacSha1_96 | Self::AesXcbc96 | Self::AesCmac96 => 12,
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }

    /// Prepares a key. The key must be exactly [`Self::key_len`] bytes.
    pub fn key(self, key: &[u8]) -> Result<IntegrityKey, Error> {
        if key.len() != self.key_len() {
            return Err(Error::KeyLength {
                alg: self.name(),
                got: key.len(),
            });
        }
        let mac = MacKey::new(self.mac_alg(), key)?;
        Ok(IntegrityKey { alg: self, mac })
    }

    fn mac_alg(self) -> MacAlg {
        match self {
            Self::HmacMd5_96 => MacAlg::HmacMd5,
            Self::HmacSha1_96 => MacAlg::HmacSha1,
            Self::AesXcbc96 => MacAlg::Xcbc,
            Self::AesCmac96 => MacAlg::Cmac,
            Self::HmacSha256_128 => MacAlg::HmacSha256,
            Self::HmacSha384_192 => MacAlg::HmacSha384,
            Self::HmacSha512_256 => MacAlg::HmacSha512,
        }
    }
}

/// A keyed integrity algorithm. The keyed state is precomputed once; computing an ICV does not
/// allocate, so this is usable per packet.
#[derive(Clone)]
pub struct IntegrityKey {
    alg: Integrity,
    mac: MacKey,
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrityKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl IntegrityKey {
    /// The algorithm.
    pub fn algorithm(&self) -> Integrity {
        self.alg
    }

    /// Computes the truncated ICV over the concatenation of `parts` into `icv`, which must be
    /// exactly [`Integrity::icv_len`] bytes.
    pub fn compute(&self, parts: &[&[u8]], icv: &mut [u8]) -> Result<(), Error> {
        if icv.len() != self.alg.icv_len() {
            return Err(Error::Length("ICV buffer"));
        }
        let mut full = [0u8; 64];
        let n = self.mac.compute(parts, &mut full);
        icv.copy_from_slice(&full[..self.alg.icv_len().min(n)]);
        Ok(())
    }

    /// Verifies a received ICV in constant time.
    pub fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> Result<(), Error> {
        if icv.len() != self.alg.icv_len() {
            return Err(Error::Integrity);
        }
        let mut full = [0u8; 64];
        self.mac.compute(parts, &mut full);
        if ct_eq(&full[..icv.len()], icv) {
            Ok(())
        } else {
            Err(Error::Integrity)
        }
    }
}

/// The untruncated MAC families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacAlg {
    HmacMd5,
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
    Xcbc,
    Cmac,
}

/// A keyed MAC state (HMAC with its inner/outer pads absorbed, XCBC subkeys, CMAC subkeys).
#[derive(Clone)]
///
/// Every state is boxed: they are 100–320 bytes, and an ESP SA with an AEAD cipher has none, so
/// inline they would make every SA as large as the largest (`EspSa` went from 1,344 to 80
/// bytes). One pointer more per MAC is nothing next to the hashing.
pub(crate) enum MacKey {
    HmacMd5(Box<Hmac<Md5>>),
    HmacSha1(Box<Hmac<Sha1>>),
    HmacSha256(Box<Hmac<Sha256>>),
    HmacSha384(Box<Hmac<Sha384>>),
    HmacSha512(Box<Hmac<Sha512>>),
    Xcbc(Box<Xcbc>),
    Cmac(Box<Cmac<Aes128>>),
}

impl MacKey {
    pub(crate) fn new(alg: MacAlg, key: &[u8]) -> Result<Self, Error> {
        let bad = |_| Error::KeyLength {
            alg: "mac",
            got: key.len(),
        };
        Ok(match alg {
            MacAlg::HmacMd5 => Self::HmacMd5(Box::new(
                <Hmac<Md5> as Mac>::new_from_slice(key).map_err(bad)?,
            )),
            MacAlg::HmacSha1 => Self::HmacSha1(Box::new(
                <Hmac<Sha1> as Mac>::new_from_slice(key).map_err(bad)?,
            )),
            MacAlg::HmacSha256 => Self::HmacSha256(Box::new(
                <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(bad)?,
            )),
            MacAlg::HmacSha384 => Self::HmacSha384(Box::new(
                <Hmac<Sha384> as Mac>::new_from_slice(key).map_err(bad)?,
            )),
            MacAlg::HmacSha512 => Self::HmacSha512(Box::new(
                <Hmac<Sha512> as Mac>::new_from_slice(key).map_err(bad)?,
            )),
            MacAlg::Xcbc => Self::Xcbc(Box::new(Xcbc::new(key)?)),
            MacAlg::Cmac => Self::Cmac(Box::new(
                <Cmac<Aes128> as Mac>::new_from_slice(key).map_err(bad)?,
            )),
        })
    }

    /// Computes the full MAC into `out` (at least 64 bytes) and returns its length.
    pub(crate) fn compute(&self, parts: &[&[u8]], out: &mut [u8]) -> usize {
        fn run<M: Mac + Clone>(m: &M, parts: &[&[u8]], out: &mut [u8]) -> usize {
            let mut m = m.clone();
            for p in parts {
                m.update(p);
            }
            let tag = m.finalize().into_bytes();
            out[..tag.len()].copy_from_slice(&tag);
            tag.len()
        }
        match self {
            Self::HmacMd5(m) => run(m.as_ref(), parts, out),
            Self::HmacSha1(m) => run(m.as_ref(), parts, out),
            Self::HmacSha256(m) => run(m.as_ref(), parts, out),
            Self::HmacSha384(m) => run(m.as_ref(), parts, out),
            Self::HmacSha512(m) => run(m.as_ref(), parts, out),
            Self::Cmac(m) => run(m.as_ref(), parts, out),
            Self::Xcbc(x) => {
                out[..16].copy_from_slice(&x.mac(parts));
                16
            }
        }
    }
}

/// AES-XCBC-MAC (RFC 3566 §4) over a 128-bit key.
#[derive(Clone)]
pub(crate) struct Xcbc {
    k1: Aes128,
    k2: [u8; 16],
    k3: [u8; 16],
}

impl Xcbc {
    pub(crate) fn new(key: &[u8]) -> Result<Self, Error> {
        let k = Aes128::new_from_slice(key).map_err(|_| Error::KeyLength {
            alg: "aes-xcbc",
            got: key.len(),
        })?;
        let derive = |c: u8| {
            let mut b = GenericArray::from([c; 16]);
            k.encrypt_block(&mut b);
            <[u8; 16]>::from(b)
        };
        let k1 = Aes128::new(&derive(0x01).into());
        Ok(Self {
            k1,
            k2: derive(0x02),
            k3: derive(0x03),
        })
    }

    /// The full 128-bit MAC of the concatenation of `parts` (RFC 3566 §4, steps 1–6).
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        let mut e = [0u8; 16];
        let mut buf = [0u8; 16];
        let mut filled = 0usize;
        // A block is processed only once more data follows it: the last block is special.
        for part in parts {
            let mut p: &[u8] = part;
            while !p.is_empty() {
                if filled == 16 {
                    self.absorb(&mut e, &buf);
                    filled = 0;
                }
                let n = (16 - filled).min(p.len());
                buf[filled..filled + n].copy_from_slice(&p[..n]);
                filled += n;
                p = &p[n..];
            }
        }
        let (last, key) = if filled == 16 {
            (buf, &self.k2)
        } else {
            let mut padded = [0u8; 16];
            padded[..filled].copy_from_slice(&buf[..filled]);
            padded[filled] = 0x80;
            (padded, &self.k3)
        };
        let mut block = [0u8; 16];
        for i in 0..16 {
            block[i] = last[i] ^ e[i] ^ key[i];
        }
        let mut b = GenericArray::from(block);
        self.k1.encrypt_block(&mut b);
        b.into()
    }

    fn absorb(&self, e: &mut [u8; 16], m: &[u8; 16]) {
        let mut block = [0u8; 16];
        for i in 0..16 {
            block[i] = e[i] ^ m[i];
        }
        let mut b = GenericArray::from(block);
        self.k1.encrypt_block(&mut b);
        *e = b.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// RFC 3566 §4.6 test cases 1–6 (AES-XCBC-MAC-96 and the full 128-bit MAC).
    #[test]
    fn rfc3566_xcbc() {
        let key = h("000102030405060708090a0b0c0d0e0f");
        let msg: Vec<u8> = (0u8..=0x21).collect();
        let cases: [(usize, &str); 6] = [
            (0, "75f0251d528ac01c4573dfd584d79f29"),
            (3, "5b376580ae2f19afe7219ceef172756f"),
            (16, "d2a246fa349b68a79998a4394ff7a263"),
            (20, "47f51b4564966215b8985c63055ed308"),
            (32, "f54f0ec8d2b9f3d36807734bd5283fd4"),
            (34, "becbb3bccdb518a30677d5481fb6b4d8"),
        ];
        let x = Xcbc::new(&key).unwrap();
        let ik = Integrity::AesXcbc96.key(&key).unwrap();
        for (len, want) in cases {
            let m = &msg[..len];
            assert_eq!(hex::encode(x.mac(&[m])), want, "len {len}");
            // Split input gives the same answer.
            let (a, b) = m.split_at(len / 3);
            assert_eq!(hex::encode(x.mac(&[a, b])), want, "split len {len}");
            let mut icv = [0u8; 12];
            ik.compute(&[m], &mut icv).unwrap();
            assert_eq!(hex::encode(icv), want[..24]);
            ik.verify(&[a, b], &icv).unwrap();
        }
    }

    /// RFC 3566 §4.6 test case 7: a 1000-byte message of zeros.
    #[test]
    fn rfc3566_xcbc_1000_bytes() {
        let key = h("000102030405060708090a0b0c0d0e0f");
        let x = Xcbc::new(&key).unwrap();
        assert_eq!(
            hex::encode(x.mac(&[&[0u8; 1000]])),
            "f0dafee895db30253761103b5d84528f"
        );
    }

    /// RFC 4494 §4 test vectors (AES-CMAC-96), built on RFC 4493 §4 examples.
    #[test]
    fn rfc4494_cmac_96() {
        let key = h("2b7e1516 28aed2a6 abf71588 09cf4f3c");
        let m = h(
            "6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51
                   30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710",
        );
        let cases: [(usize, &str); 4] = [
            (0, "bb1d6929e95937287fa37d12"),
            (16, "070a16b46b4d4144f79bdd9d"),
            (40, "dfa66747de9ae63030ca3261"),
            (64, "51f0bebf7e3b9d92fc497417"),
        ];
        let k = Integrity::AesCmac96.key(&key).unwrap();
        for (len, want) in cases {
            let mut icv = [0u8; 12];
            k.compute(&[&m[..len]], &mut icv).unwrap();
            assert_eq!(hex::encode(icv), want, "len {len}");
        }
    }

    /// RFC 4231 §4.3 test case 2 (key "Jefe") through the truncating integrity wrappers of RFC
    /// 4868 (§2.7.2.x use the same inputs), plus RFC 2202 §2/§3 test case 2 for MD5/SHA-1
    /// (RFC 2202 keys are shorter than the IPsec key size, so those go through MacKey directly).
    #[test]
    fn hmac_truncations() {
        let data = b"what do ya want for nothing?";
        let cases = [
            (MacAlg::HmacMd5, "750c783e6ab0b503eaa86e310a5db738"),
            (MacAlg::HmacSha1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            (
                MacAlg::HmacSha256,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                MacAlg::HmacSha384,
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
            ),
            (
                MacAlg::HmacSha512,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (alg, want) in cases {
            let k = MacKey::new(alg, b"Jefe").unwrap();
            let mut out = [0u8; 64];
            let n = k.compute(&[b"what do ya", b" want for nothing?"], &mut out);
            assert_eq!(hex::encode(&out[..n]), want, "{alg:?}");
            assert_eq!(&data[..], b"what do ya want for nothing?");
        }
    }

    /// RFC 4868 §2.7.2.1 test case AUTH256-1 (key 0x0b×32, "Hi There") → first 128 bits.
    #[test]
    fn rfc4868_auth_vectors() {
        let k = Integrity::HmacSha256_128.key(&[0x0b; 32]).unwrap();
        let mut icv = [0u8; 16];
        k.compute(&[b"Hi There"], &mut icv).unwrap();
        assert_eq!(hex::encode(icv), "198a607eb44bfbc69903a0f1cf2bbdc5");
        k.verify(&[b"Hi There"], &icv).unwrap();
        icv[0] ^= 1;
        assert_eq!(k.verify(&[b"Hi There"], &icv), Err(Error::Integrity));
        assert_eq!(k.verify(&[b"Hi There"], &icv[..15]), Err(Error::Integrity));

        // AUTH384-1: key 0x0b×48.
        let k = Integrity::HmacSha384_192.key(&[0x0b; 48]).unwrap();
        let mut icv = [0u8; 24];
        k.compute(&[b"Hi There"], &mut icv).unwrap();
        assert_eq!(
            hex::encode(icv),
            "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973"
        );

        // AUTH512-1: key 0x0b×64.
        let k = Integrity::HmacSha512_256.key(&[0x0b; 64]).unwrap();
        let mut icv = [0u8; 32];
        k.compute(&[b"Hi There"], &mut icv).unwrap();
        assert_eq!(
            hex::encode(icv),
            "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8"
        );
    }

    #[test]
    fn ids_round_trip_and_wrong_key_length() {
        for a in Integrity::ALL {
            assert_eq!(Integrity::from_id(a.id()).unwrap(), a);
            assert!(a.key(&vec![0; a.key_len() + 1]).is_err());
        }
        assert!(Integrity::from_id(999).is_err());
    }
}
