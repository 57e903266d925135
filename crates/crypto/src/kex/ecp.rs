//! ECDH on P-256/384/521 (RFC 5903: the KE data is x | y without a point-format octet) and
//! X25519 (RFC 8031), on aws-lc-rs. Private keys are drawn from the injected RNG and imported
//! with `PrivateKey::from_private_key`; when that RNG is the operating system's
//! ([`Rng::is_os_backed`]), a NIST-curve key is drawn by aws-lc instead
//! (`PrivateKey::generate`, from its own OS-seeded generator), which spares the import's check
//! of the key against its public value.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::{ActiveKeyExchange, KeyExchangeAlgorithm};
use crate::{Error, Rng, Secret, ids};

/// An ECDH group.
pub(crate) struct Ecdh {
    group: u16,
    name: &'static str,
    alg: &'static agreement::Algorithm,
    /// Scalar length in bytes.
    scalar_len: usize,
    /// Coordinate length in bytes (X25519: the whole u-coordinate).
    coord_len: usize,
    /// Mask for the first scalar byte (P-521 scalars have 521 bits).
    top_mask: u8,
    x25519: bool,
}

impl std::fmt::Debug for Ecdh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

pub(crate) static ECP_256: Ecdh = Ecdh {
    group: ids::ke::ECP_256,
    name: "ecp256",
    alg: &agreement::ECDH_P256,
    scalar_len: 32,
    coord_len: 32,
    top_mask: 0xff,
    x25519: false,
};
pub(crate) static ECP_384: Ecdh = Ecdh {
    group: ids::ke::ECP_384,
    name: "ecp384",
    alg: &agreement::ECDH_P384,
    scalar_len: 48,
    coord_len: 48,
    top_mask: 0xff,
    x25519: false,
};
pub(crate) static ECP_521: Ecdh = Ecdh {
    group: ids::ke::ECP_521,
    name: "ecp521",
    alg: &agreement::ECDH_P521,
    scalar_len: 66,
    coord_len: 66,
    top_mask: 0x01,
    x25519: false,
};
pub(crate) static X25519: Ecdh = Ecdh {
    group: ids::ke::CURVE25519,
    name: "curve25519",
    alg: &agreement::X25519,
    scalar_len: 32,
    coord_len: 32,
    top_mask: 0xff,
    x25519: true,
};

impl Ecdh {
    fn key_from_scalar(&'static self, scalar: &[u8]) -> Result<EcdhKeyExchange, Error> {
        let key = PrivateKey::from_private_key(self.alg, scalar)
            .map_err(|_| Error::InvalidKey("scalar out of range"))?;
        self.with_key(key)
    }

    /// A key drawn by aws-lc (for an OS-backed RNG, see the module documentation).
    fn generated(&'static self) -> Result<EcdhKeyExchange, Error> {
        let key = PrivateKey::generate(self.alg).map_err(|_| Error::Backend)?;
        self.with_key(key)
    }

    fn with_key(&'static self, key: PrivateKey) -> Result<EcdhKeyExchange, Error> {
        let public = key.compute_public_key().map_err(|_| Error::Backend)?;
        let bytes = public.as_ref();
        // aws-lc encodes NIST points uncompressed: 0x04 | x | y. RFC 5903 §7 drops the 0x04.
        let public = if self.x25519 {
            bytes.to_vec()
        } else {
            bytes[1..].to_vec()
        };
        Ok(EcdhKeyExchange {
            group: self,
            key,
            public,
        })
    }
}

impl KeyExchangeAlgorithm for Ecdh {
    fn group(&self) -> u16 {
        self.group
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn public_len(&self) -> usize {
        if self.x25519 {
            self.coord_len
        } else {
            2 * self.coord_len
        }
    }

    fn start(&self, rng: &mut dyn Rng) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let this: &'static Ecdh = find_static(self.group);
        // X25519 imports its scalar without a check: nothing to spare there.
        if rng.is_os_backed() && !self.x25519 {
            return Ok(Box::new(this.generated()?));
        }
        let mut scalar = Zeroizing::new(vec![0u8; self.scalar_len]);
        // Rejection sampling: scalars of 0 or ≥ n are refused by aws-lc; the chance of a retry
        // is below 2^-32 for every curve here.
        for _ in 0..64 {
            rng.fill(&mut scalar);
            scalar[0] &= self.top_mask;
            if let Ok(kx) = this.key_from_scalar(&scalar) {
                return Ok(Box::new(kx));
            }
        }
        Err(Error::Backend)
    }
}

fn find_static(group: u16) -> &'static Ecdh {
    match group {
        ids::ke::ECP_256 => &ECP_256,
        ids::ke::ECP_384 => &ECP_384,
        ids::ke::ECP_521 => &ECP_521,
        _ => &X25519,
    }
}

/// An ECDH private key (held inside AWS-LC, which clears it on free) and public value.
pub(crate) struct EcdhKeyExchange {
    group: &'static Ecdh,
    key: PrivateKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for EcdhKeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdhKeyExchange")
            .field("group", &self.group.name)
            .finish_non_exhaustive()
    }
}

impl ActiveKeyExchange for EcdhKeyExchange {
    fn group(&self) -> u16 {
        self.group.group
    }

    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn complete(&self, peer: &[u8]) -> Result<Secret, Error> {
        let g = self.group;
        let shared = if g.x25519 {
            if peer.len() != g.coord_len {
                return Err(Error::InvalidPublicValue(
                    "X25519 public value has the wrong length",
                ));
            }
            agreement::agree(
                &self.key,
                UnparsedPublicKey::new(g.alg, peer),
                Error::InvalidPublicValue("X25519 public value rejected"),
                |s| Ok(Secret::from_slice(s)),
            )?
        } else {
            if peer.len() != 2 * g.coord_len {
                return Err(Error::InvalidPublicValue(
                    "ECP public value has the wrong length",
                ));
            }
            // RFC 6989 §2.3: the point must be on the curve; aws-lc checks this when parsing
            // the uncompressed point (and rejects the point at infinity).
            let mut point = Vec::with_capacity(1 + peer.len());
            point.push(0x04);
            point.extend_from_slice(peer);
            agreement::agree(
                &self.key,
                UnparsedPublicKey::new(g.alg, &point),
                Error::InvalidPublicValue("ECP point is not on the curve"),
                |s| Ok(Secret::from_slice(s)),
            )?
        };
        // RFC 8031 §2.3 / RFC 7748 §6.1: an all-zero X25519 result means a low-order point.
        // Only for X25519: on the NIST curves the shared secret is the x-coordinate of a point
        // that aws-lc has checked is on the curve and not infinity, and x = 0 is a legitimate
        // x-coordinate (Wycheproof ecdh_secp256r1 "EdgeCaseSharedSecret", tcId 3).
        if g.x25519 && shared.expose().iter().all(|&b| b == 0) {
            return Err(Error::InvalidPublicValue("all-zero shared secret"));
        }
        Ok(shared)
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// RFC 5903 §8.1 (256-bit random ECP group): both directions.
    #[test]
    fn rfc5903_p256() {
        let i = ECP_256
            .key_from_scalar(&h(
                "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
            ))
            .unwrap();
        let r = ECP_256
            .key_from_scalar(&h(
                "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
            ))
            .unwrap();
        assert_eq!(
            hex::encode_upper(i.public_key()),
            "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180\
             5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"
        );
        assert_eq!(
            hex::encode_upper(r.public_key()),
            "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63\
             56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"
        );
        let want = "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE";
        assert_eq!(
            hex::encode_upper(i.complete(r.public_key()).unwrap().expose()),
            want
        );
        assert_eq!(
            hex::encode_upper(r.complete(i.public_key()).unwrap().expose()),
            want
        );
    }

    /// RFC 5903 §8.2 (384-bit random ECP group), initiator side.
    #[test]
    fn rfc5903_p384() {
        let i = ECP_384
            .key_from_scalar(&h(
                "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655\
                             E35B538041E649EE3FAEF896783AB194",
            ))
            .unwrap();
        assert_eq!(
            hex::encode_upper(i.public_key()),
            "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6\
             DE3AC808ACB4BDB4C88732AEE95F41AA9482ED1FC0EEB9CAFC4984625CCFC23F\
             65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C"
        );
        let gr = h(
            "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D\
                    0D1AC43A0336DEF96FDA41D0774A3571DCFBEC7AACF3196472169E838430367F\
                    66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
        );
        assert_eq!(
            hex::encode_upper(i.complete(&gr).unwrap().expose()),
            "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4\
             D603135569B9E9D09CF5D4A270F59746"
        );
    }

    /// P-521 known answer from aws-lc-rs's own agreement tests (`agreement_tests.rs`,
    /// `test_agreement_ecdh_p521`), in RFC 5903 encoding.
    #[test]
    fn p521_known_answer() {
        let i = ECP_521
            .key_from_scalar(&h(
                "00df14b1f1432a7b0fb053965fd8643afee26b2451ecb6a8a53a655d5fbe16e4c64c\
                             e8647225eb11e7fdcb23627471dffc5c2523bd2ae89957cba3a57a23933e5a78",
            ))
            .unwrap();
        assert_eq!(
            hex::encode(i.public_key()),
            "004e8583bbbb2ecd93f0714c332dff5ab3bc6396e62f3c560229664329baa5138c3bb1c36428abd4e2\
             3d17fcb7a2cfcc224b2e734c8941f6f121722d7b6b9415457601cf0874f204b0363f020864672fadbf\
             87c8811eb147758b254b74b14fae742159f0f671a018212bbf25b8519e126d4cad778cfff50d288fd3\
             9ceb0cac635b175ec0"
        );
        let peer = h(
            "01a32099b02c0bd85371f60b0dd20890e6c7af048c8179890fda308b359dbbc2b7a832bb8c65\
                      26c4af99a7ea3f0b3cb96ae1eb7684132795c478ad6f962e4a6f446d017627357b39e9d7632a\
                      1370b3e93c1afb5c851b910eb4ead0c9d387df67cde85003e0e427552f1cd09059aad0262e23\
                      5cce5fba8cedc4fdc1463da76dcd4b6d1a46",
        );
        assert_eq!(
            hex::encode(i.complete(&peer).unwrap().expose()),
            "01aaf24e5d47e4080c18c55ea35581cd8da30f1a079565045d2008d51b12d0abb4411cda7a0785b15d\
             149ed301a3697062f42da237aa7f07e0af3fd00eb1800d9c41"
        );
    }

    /// RFC 7748 §6.1 (X25519 Diffie-Hellman).
    #[test]
    fn rfc7748_x25519() {
        let a = X25519
            .key_from_scalar(&h(
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            ))
            .unwrap();
        let b = X25519
            .key_from_scalar(&h(
                "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
            ))
            .unwrap();
        assert_eq!(
            hex::encode(a.public_key()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        assert_eq!(
            hex::encode(b.public_key()),
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
        );
        let want = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        assert_eq!(
            hex::encode(a.complete(b.public_key()).unwrap().expose()),
            want
        );
        assert_eq!(
            hex::encode(b.complete(a.public_key()).unwrap().expose()),
            want
        );
    }

    #[test]
    fn invalid_peer_values_are_errors() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for g in [&ECP_256, &ECP_384, &ECP_521] {
            let a = g.start(&mut rng).unwrap();
            let b = g.respond(&mut rng, a.public_key()).unwrap();
            assert_eq!(a.complete(&b.public).unwrap(), b.shared);
            let n = g.public_len();
            // Not on the curve: flip a bit of y.
            let mut off = b.public.clone();
            off[n - 1] ^= 1;
            // (0, 0) and all-ones are not points; wrong lengths; a 0x04-prefixed point.
            let prefixed = [&[4u8][..], &b.public].concat();
            for bad in [
                off,
                vec![0; n],
                vec![0xff; n],
                vec![1; n - 1],
                prefixed,
                vec![],
            ] {
                assert!(
                    matches!(a.complete(&bad), Err(Error::InvalidPublicValue(_))),
                    "{} accepted {}",
                    g.name,
                    hex::encode(&bad)
                );
            }
        }
        // X25519 low-order points give an all-zero secret (RFC 7748 §6.1): rejected.
        let a = X25519.start(&mut rng).unwrap();
        let mut one = vec![0u8; 32];
        one[0] = 1;
        for bad in [vec![0u8; 32], one, vec![0u8; 31]] {
            assert!(matches!(
                a.complete(&bad),
                Err(Error::InvalidPublicValue(_))
            ));
        }
    }

    /// A seeded generator that claims to be the operating system's.
    struct ClaimsOs(ChaCha20Rng);

    impl Rng for ClaimsOs {
        fn fill(&mut self, buf: &mut [u8]) {
            rand_core::RngCore::fill_bytes(&mut self.0, buf)
        }
        fn is_os_backed(&self) -> bool {
            true
        }
    }

    /// With a deterministic generator every key follows from the seed; with an OS-backed one a
    /// NIST-curve key is aws-lc's own (two generators with the same seed give two keys), and
    /// it agrees with an imported key both ways. X25519 keeps the injected scalar.
    #[test]
    fn os_backed_generators_let_aws_lc_draw_nist_keys() {
        for g in [&ECP_256, &ECP_384, &ECP_521, &X25519] {
            let start = |rng: &mut dyn Rng| g.start(rng).unwrap();
            let seeded = |n| ChaCha20Rng::seed_from_u64(n);
            let a = start(&mut seeded(1));
            assert_eq!(
                a.public_key(),
                start(&mut seeded(1)).public_key(),
                "{g:?}: a deterministic generator decides the key"
            );
            let b = start(&mut ClaimsOs(seeded(2)));
            let b2 = start(&mut ClaimsOs(seeded(2)));
            assert_eq!(
                b.public_key() == b2.public_key(),
                g.x25519,
                "{g:?}: only X25519 takes the scalar from an OS-backed generator"
            );
            assert_eq!(b.public_key().len(), g.public_len());
            assert_eq!(
                a.complete(b.public_key()).unwrap().expose(),
                b.complete(a.public_key()).unwrap().expose(),
                "{g:?}: both sides agree"
            );
        }
    }
}
