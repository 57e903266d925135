//! Pseudorandom functions and prf+ (RFC 7296 §2.13).

use crate::integrity::{MacAlg, MacKey, Xcbc};
use crate::{Error, HashAlgorithm, Secret, ids};

/// A negotiated pseudorandom function (IKEv2 transform type 2; in IKEv1 the HMAC of the
/// negotiated hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_MD5.
    HmacMd5,
    /// PRF_HMAC_SHA1.
    HmacSha1,
    /// PRF_HMAC_SHA2_256.
    HmacSha256,
    /// PRF_HMAC_SHA2_384.
    HmacSha384,
    /// PRF_HMAC_SHA2_512.
    HmacSha512,
    /// PRF_AES128_XCBC (RFC 4434).
    Aes128Xcbc,
    /// PRF_AES128_CMAC (RFC 4615).
    Aes128Cmac,
}

impl Prf {
    /// All PRFs this provider implements, strongest first.
    pub const ALL: [Prf; 7] = [
        Self::HmacSha256,
        Self::HmacSha384,
        Self::HmacSha512,
        Self::HmacSha1,
        Self::Aes128Xcbc,
        Self::Aes128Cmac,
        Self::HmacMd5,
    ];

    /// The PRF for an IKEv2 PRF transform ID.
    pub fn from_id(id: u16) -> Result<Self, Error> {
        use ids::prf as p;
        Ok(match id {
            p::HMAC_MD5 => Self::HmacMd5,
            p::HMAC_SHA1 => Self::HmacSha1,
            p::HMAC_SHA2_256 => Self::HmacSha256,
            p::HMAC_SHA2_384 => Self::HmacSha384,
            p::HMAC_SHA2_512 => Self::HmacSha512,
            p::AES128_XCBC => Self::Aes128Xcbc,
            p::AES128_CMAC => Self::Aes128Cmac,
            _ => return Err(Error::Unsupported("PRF transform")),
        })
    }

    /// The HMAC PRF of an IKEv1 hash (RFC 2409 §4: "the HMAC version of the negotiated hash").
    pub fn from_hash(hash: HashAlgorithm) -> Self {
        match hash {
            HashAlgorithm::Md5 => Self::HmacMd5,
            HashAlgorithm::Sha1 => Self::HmacSha1,
            HashAlgorithm::Sha256 => Self::HmacSha256,
            HashAlgorithm::Sha384 => Self::HmacSha384,
            HashAlgorithm::Sha512 => Self::HmacSha512,
        }
    }

    /// The IKEv2 transform ID.
    pub fn id(self) -> u16 {
        use ids::prf as p;
        match self {
            Self::HmacMd5 => p::HMAC_MD5,
            Self::HmacSha1 => p::HMAC_SHA1,
            Self::HmacSha256 => p::HMAC_SHA2_256,
            Self::HmacSha384 => p::HMAC_SHA2_384,
            Self::HmacSha512 => p::HMAC_SHA2_512,
            Self::Aes128Xcbc => p::AES128_XCBC,
            Self::Aes128Cmac => p::AES128_CMAC,
        }
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacMd5 => "prf-hmac-md5",
            Self::HmacSha1 => "prf-hmac-sha1",
            Self::HmacSha256 => "prf-hmac-sha2-256",
            Self::HmacSha384 => "prf-hmac-sha2-384",
            Self::HmacSha512 => "prf-hmac-sha2-512",
            Self::Aes128Xcbc => "prf-aes128-xcbc",
            Self::Aes128Cmac => "prf-aes128-cmac",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::HmacMd5 | Self::Aes128Xcbc | Self::Aes128Cmac => 16,
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
            Self::HmacSha384 => 48,
            Self::HmacSha512 => 64,
        }
    }

    /// The preferred key length in bytes: the length of SK_d, SK_pi and SK_pr (RFC 7296 §2.13).
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Xcbc | Self::Aes128Cmac => 16,
            other => other.output_len(),
        }
    }

    /// True for PRFs with a fixed 128-bit key (XCBC, CMAC). For these, RFC 7296 §2.14 keys
    /// SKEYSEED with the first 64 bits of Ni and of Nr.
    pub fn has_fixed_key(self) -> bool {
        matches!(self, Self::Aes128Xcbc | Self::Aes128Cmac)
    }

    /// The HMAC hash for HMAC PRFs.
    pub fn hash(self) -> Option<HashAlgorithm> {
        match self {
            Self::HmacMd5 => Some(HashAlgorithm::Md5),
            Self::HmacSha1 => Some(HashAlgorithm::Sha1),
            Self::HmacSha256 => Some(HashAlgorithm::Sha256),
            Self::HmacSha384 => Some(HashAlgorithm::Sha384),
            Self::HmacSha512 => Some(HashAlgorithm::Sha512),
            Self::Aes128Xcbc | Self::Aes128Cmac => None,
        }
    }

    /// Keys the PRF once, for repeated use (prf+ and AUTH computation reuse the keyed state).
    pub fn key(self, key: &[u8]) -> PrfKey {
        let mac = match self {
            Self::HmacMd5 => hmac_key(MacAlg::HmacMd5, key),
            Self::HmacSha1 => hmac_key(MacAlg::HmacSha1, key),
            Self::HmacSha256 => hmac_key(MacAlg::HmacSha256, key),
            Self::HmacSha384 => hmac_key(MacAlg::HmacSha384, key),
            Self::HmacSha512 => hmac_key(MacAlg::HmacSha512, key),
            // RFC 4434 §2: shorter keys are zero-padded, longer keys are first run through
            // AES-XCBC-PRF-128 with a zero key.
            Self::Aes128Xcbc => {
                let mut k = [0u8; 16];
                if key.len() <= 16 {
                    k[..key.len()].copy_from_slice(key);
                } else {
                    k = xcbc_zero_key().mac(&[key]);
                }
                MacKey::Xcbc(Box::new(Xcbc::new(&k).unwrap_or_else(|_| unreachable!())))
            }
            // RFC 4615 §3: any key that is not 128 bits is first run through AES-CMAC with a
            // zero key.
            Self::Aes128Cmac => {
                let k: [u8; 16] = if key.len() == 16 {
                    key.try_into().unwrap_or([0; 16])
                } else {
                    let z =
                        MacKey::new(MacAlg::Cmac, &[0u8; 16]).unwrap_or_else(|_| unreachable!());
                    let mut out = [0u8; 64];
                    z.compute(&[key], &mut out);
                    out[..16].try_into().unwrap_or([0; 16])
                };
                MacKey::new(MacAlg::Cmac, &k).unwrap_or_else(|_| unreachable!())
            }
        };
        PrfKey { prf: self, mac }
    }

    /// prf(key, parts[0] | parts[1] | …).
    pub fn compute(self, key: &[u8], parts: &[&[u8]]) -> Secret {
        self.key(key).compute(parts)
    }

    /// prf+(key, seed) of RFC 7296 §2.13, truncated to `len` bytes. The seed is the
    /// concatenation of `seed`.
    ///
    /// Errors if `len` needs more than 255 iterations.
    pub fn prf_plus(self, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Secret, Error> {
        self.key(key).prf_plus(seed, len)
    }
}

fn hmac_key(alg: MacAlg, key: &[u8]) -> MacKey {
    // HMAC accepts keys of any length (RFC 2104 §2), so this cannot fail.
    MacKey::new(alg, key).unwrap_or_else(|_| unreachable!())
}

fn xcbc_zero_key() -> Xcbc {
    Xcbc::new(&[0u8; 16]).unwrap_or_else(|_| unreachable!())
}

/// A keyed PRF.
#[derive(Clone)]
pub struct PrfKey {
    prf: Prf,
    mac: MacKey,
}

impl std::fmt::Debug for PrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrfKey")
            .field("prf", &self.prf)
            .finish_non_exhaustive()
    }
}

impl PrfKey {
    /// The PRF.
    pub fn prf(&self) -> Prf {
        self.prf
    }

    /// prf(key, concatenation of `parts`).
    pub fn compute(&self, parts: &[&[u8]]) -> Secret {
        let mut out = Secret::zeroed(64);
        let n = self.mac.compute(parts, out.expose_mut());
        out.truncate(n);
        out
    }

    /// prf+(key, seed) truncated to `len` bytes (RFC 7296 §2.13):
    /// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
    pub fn prf_plus(&self, seed: &[&[u8]], len: usize) -> Result<Secret, Error> {
        let out_len = self.prf.output_len();
        if len > 255 * out_len {
            return Err(Error::Length("prf+ output longer than 255 blocks"));
        }
        let mut out = Secret::new(Vec::with_capacity(len + out_len));
        let mut t = Secret::default();
        let mut counter = 1u8;
        while out.len() < len {
            let c = [counter];
            let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
            parts.push(t.expose());
            parts.extend_from_slice(seed);
            parts.push(&c);
            let next = self.compute(&parts);
            drop(parts);
            out.extend_from_slice(next.expose());
            t = next;
            counter = counter.wrapping_add(1);
        }
        out.truncate(len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// RFC 4231 §4.2–§4.8 test cases 1, 2, 3, 4, 6 and 7 for HMAC-SHA-256/384/512 (case 5 is
    /// a truncation test, covered by the integrity tests).
    #[test]
    fn rfc4231() {
        struct Case {
            key: Vec<u8>,
            data: Vec<u8>,
            sha256: &'static str,
            sha512: &'static str,
        }
        let cases = [
            Case {
                key: vec![0x0b; 20],
                data: b"Hi There".to_vec(),
                sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                sha512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                         daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            },
            Case {
                key: b"Jefe".to_vec(),
                data: b"what do ya want for nothing?".to_vec(),
                sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                sha512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                         9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            },
            Case {
                key: vec![0xaa; 20],
                data: vec![0xdd; 50],
                sha256: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                sha512: "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39\
                         bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
            },
            Case {
                key: (1u8..=0x19).collect(),
                data: vec![0xcd; 50],
                sha256: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                sha512: "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db\
                         a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
            },
            Case {
                key: vec![0xaa; 131],
                data: b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                sha512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                         6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            assert_eq!(
                hex::encode(Prf::HmacSha256.compute(&c.key, &[&c.data]).expose()),
                c.sha256,
                "case {i}"
            );
            assert_eq!(
                hex::encode(Prf::HmacSha512.compute(&c.key, &[&c.data]).expose()),
                c.sha512,
                "case {i}"
            );
        }
        // RFC 4231 §4.3 (test case 2) HMAC-SHA-384.
        assert_eq!(
            hex::encode(
                Prf::HmacSha384
                    .compute(b"Jefe", &[b"what do ya want for nothing?"])
                    .expose()
            ),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649"
        );
    }

    /// RFC 2202 §2 and §3, test cases 1 and 3 (HMAC-MD5, HMAC-SHA-1).
    #[test]
    fn rfc2202() {
        assert_eq!(
            hex::encode(Prf::HmacMd5.compute(&[0x0b; 16], &[b"Hi There"]).expose()),
            "9294727a3638bb1c13f48ef8158bfc9d"
        );
        assert_eq!(
            hex::encode(Prf::HmacMd5.compute(&[0xaa; 16], &[&[0xdd; 50]]).expose()),
            "56be34521d144c88dbb8c733f0e8b3f6"
        );
        assert_eq!(
            hex::encode(Prf::HmacSha1.compute(&[0x0b; 20], &[b"Hi There"]).expose()),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex::encode(Prf::HmacSha1.compute(&[0xaa; 20], &[&[0xdd; 50]]).expose()),
            "125d7342b9ac11cd91a39af48aa17b4f63f175d3"
        );
    }

    /// RFC 4434 §4: AES-XCBC-PRF-128 with 16-, 10- and 18-byte keys.
    #[test]
    fn rfc4434_xcbc_prf() {
        let msg: Vec<u8> = (0u8..=0x13).collect();
        let cases = [
            (
                "000102030405060708090a0b0c0d0e0f",
                "47f51b4564966215b8985c63055ed308",
            ),
            ("00010203040506070809", "0fa087af7d866e7653434e602fdde835"),
            (
                "000102030405060708090a0b0c0d0e0fedcb",
                "8cd3c93ae598a9803006ffb67c40e9e4",
            ),
        ];
        for (key, want) in cases {
            assert_eq!(
                hex::encode(Prf::Aes128Xcbc.compute(&h(key), &[&msg]).expose()),
                want,
                "key {key}"
            );
        }
    }

    /// RFC 4615 §4: AES-CMAC-PRF-128 with 18-, 16- and 10-byte keys.
    #[test]
    fn rfc4615_cmac_prf() {
        let msg: Vec<u8> = (0u8..=0x13).collect();
        let cases = [
            (
                "000102030405060708090a0b0c0d0e0fedcb",
                "84a348a4a45d235babfffc0d2b4da09a",
            ),
            (
                "000102030405060708090a0b0c0d0e0f",
                "980ae87b5f4c9c5214f5b6a8455e4c2d",
            ),
            ("00010203040506070809", "290d9e112edb09ee141fcf64c0b72f3d"),
        ];
        for (key, want) in cases {
            assert_eq!(
                hex::encode(Prf::Aes128Cmac.compute(&h(key), &[&msg]).expose()),
                want,
                "key {key}"
            );
        }
    }

    #[test]
    fn prf_plus_is_the_iterated_prf() {
        // prf+ defined from the PRF itself (RFC 7296 §2.13), checked block by block.
        let key = b"key";
        let seed = b"seed";
        let out = Prf::HmacSha1
            .prf_plus(key, &[&seed[..2], &seed[2..]], 50)
            .unwrap();
        let t1 = Prf::HmacSha1.compute(key, &[seed, &[1]]);
        let t2 = Prf::HmacSha1.compute(key, &[t1.expose(), seed, &[2]]);
        let t3 = Prf::HmacSha1.compute(key, &[t2.expose(), seed, &[3]]);
        let want = [t1.expose(), t2.expose(), &t3.expose()[..10]].concat();
        assert_eq!(out.expose(), &want[..]);
        assert!(Prf::HmacSha1.prf_plus(key, &[seed], 255 * 20).is_ok());
        assert!(Prf::HmacSha1.prf_plus(key, &[seed], 255 * 20 + 1).is_err());
    }

    #[test]
    fn ids_round_trip() {
        for p in Prf::ALL {
            assert_eq!(Prf::from_id(p.id()).unwrap(), p);
        }
        assert!(Prf::from_id(3).is_err());
    }
}
