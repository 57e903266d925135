//! Finite-field Diffie-Hellman over the MODP groups, with crypto-bigint's constant-time
//! Montgomery exponentiation (no `unsafe`, no variable-time arithmetic on secrets).

use std::sync::OnceLock;

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use zeroize::Zeroize;

use super::{ActiveKeyExchange, KeyExchangeAlgorithm, primes};
use crate::{Error, Rng, Secret, ids};

/// A MODP group: prime (hex), size, and the private exponent length.
pub(crate) struct Modp {
    group: u16,
    name: &'static str,
    prime_hex: &'static str,
    bits: u32,
    /// Private exponent bits: at least twice the group's estimated strength (RFC 3526 §8),
    /// rounded up to 64 bits. Short exponents make the exponentiation cheaper at no loss of
    /// security for these safe-prime groups.
    exp_bits: u32,
    params: OnceLock<BoxedMontyParams>,
}

impl std::fmt::Debug for Modp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

macro_rules! modp {
    ($name:ident, $group:expr, $s:expr, $hex:expr, $bits:expr, $exp:expr) => {
        pub(crate) static $name: Modp = Modp {
            group: $group,
            name: $s,
            prime_hex: $hex,
            bits: $bits,
            exp_bits: $exp,
            params: OnceLock::new(),
        };
    };
}

modp!(
    MODP_768,
    ids::ke::MODP_768,
    "modp768",
    primes::MODP_768,
    768,
    256
);
modp!(
    MODP_1024,
    ids::ke::MODP_1024,
    "modp1024",
    primes::MODP_1024,
    1024,
    256
);
modp!(
    MODP_1536,
    ids::ke::MODP_1536,
    "modp1536",
    primes::MODP_1536,
    1536,
    256
);
modp!(
    MODP_2048,
    ids::ke::MODP_2048,
    "modp2048",
    primes::MODP_2048,
    2048,
    256
);
modp!(
    MODP_3072,
    ids::ke::MODP_3072,
    "modp3072",
    primes::MODP_3072,
    3072,
    320
);
modp!(
    MODP_4096,
    ids::ke::MODP_4096,
    "modp4096",
    primes::MODP_4096,
    4096,
    384
);
modp!(
    MODP_6144,
    ids::ke::MODP_6144,
    "modp6144",
    primes::MODP_6144,
    6144,
    448
);
modp!(
    MODP_8192,
    ids::ke::MODP_8192,
    "modp8192",
    primes::MODP_8192,
    8192,
    512
);

impl Modp {
    fn prime(&self) -> BoxedUint {
        BoxedUint::from_be_hex(self.prime_hex, self.bits).expect("valid prime constant")
    }

    fn params(&self) -> &BoxedMontyParams {
        self.params.get_or_init(|| {
            let p = Odd::new(self.prime()).expect("MODP primes are odd");
            BoxedMontyParams::new(p)
        })
    }

    fn byte_len(&self) -> usize {
        (self.bits / 8) as usize
    }

    /// base^exp mod p, as a big-endian string of exactly len(p) bytes (RFC 7296 §2.14 pads
    /// g^ir to the length of the modulus).
    fn pow(&self, base: &BoxedUint, exp: &BoxedUint) -> Secret {
        let b = BoxedMontyForm::new(base.clone(), self.params().clone());
        let r = b.pow_bounded_exp(exp, self.exp_bits).retrieve();
        let mut bytes = r.to_be_bytes().into_vec();
        let out = Secret::from_slice(&bytes[bytes.len() - self.byte_len()..]);
        bytes.zeroize();
        out
    }

    fn generate(&'static self, exp_bytes: &mut [u8]) -> Result<ModpKeyExchange, Error> {
        // Force a non-zero exponent by setting the top bit (the exponent then has exactly
        // exp_bits bits).
        exp_bytes[0] |= 0x80;
        let x = BoxedUint::from_be_slice(exp_bytes, self.exp_bits).map_err(|_| Error::Backend)?;
        exp_bytes.zeroize();
        let g = BoxedUint::from_be_slice(&[2], self.bits).map_err(|_| Error::Backend)?;
        let public = self.pow(&g, &x).expose().to_vec();
        Ok(ModpKeyExchange {
            group: self,
            x,
            public,
        })
    }
}

impl KeyExchangeAlgorithm for Modp {
    fn group(&self) -> u16 {
        self.group
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn public_len(&self) -> usize {
        self.byte_len()
    }

    fn start(&self, rng: &mut dyn Rng) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut buf = vec![0u8; (self.exp_bits / 8) as usize];
        rng.fill(&mut buf);
        let this: &'static Modp = match self.group {
            ids::ke::MODP_768 => &MODP_768,
            ids::ke::MODP_1024 => &MODP_1024,
            ids::ke::MODP_1536 => &MODP_1536,
            ids::ke::MODP_2048 => &MODP_2048,
            ids::ke::MODP_3072 => &MODP_3072,
            ids::ke::MODP_4096 => &MODP_4096,
            ids::ke::MODP_6144 => &MODP_6144,
            _ => &MODP_8192,
        };
        Ok(Box::new(this.generate(&mut buf)?))
    }
}

/// A MODP private exponent and public value.
pub(crate) struct ModpKeyExchange {
    group: &'static Modp,
    x: BoxedUint,
    public: Vec<u8>,
}

impl Drop for ModpKeyExchange {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl std::fmt::Debug for ModpKeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModpKeyExchange")
            .field("group", &self.group.name)
            .finish_non_exhaustive()
    }
}

impl ActiveKeyExchange for ModpKeyExchange {
    fn group(&self) -> u16 {
        self.group.group
    }

    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn complete(&self, peer: &[u8]) -> Result<Secret, Error> {
        let g = self.group;
        if peer.len() != g.byte_len() {
            return Err(Error::InvalidPublicValue(
                "MODP public value has the wrong length",
            ));
        }
        let y = BoxedUint::from_be_slice(peer, g.bits)
            .map_err(|_| Error::InvalidPublicValue("MODP public value"))?;
        // RFC 6989 §2.1: 1 < y < p-1. The public value is not secret, so ordinary comparisons
        // are fine.
        let one = BoxedUint::one_with_precision(g.bits);
        let p_minus_1 = g.prime().wrapping_sub(&one);
        if y <= one || y >= p_minus_1 {
            return Err(Error::InvalidPublicValue(
                "MODP public value outside 1 < y < p-1",
            ));
        }
        Ok(g.pow(&y, &self.x))
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn all() -> [&'static Modp; 8] {
        [
            &MODP_768, &MODP_1024, &MODP_1536, &MODP_2048, &MODP_3072, &MODP_4096, &MODP_6144,
            &MODP_8192,
        ]
    }

    /// The primes are what the RFCs say: n bits, the top and bottom 64 bits all ones (the
    /// construction of RFC 2409 §6 / RFC 3526), and 2^(p-1) = 1 (mod p). A single wrong digit
    /// fails the Fermat test with overwhelming probability.
    #[test]
    fn primes_are_well_formed() {
        for g in all() {
            let p = g.prime();
            assert_eq!(p.bits(), g.bits, "{}", g.name);
            let b = p.to_be_bytes();
            assert!(
                b[..8].iter().all(|&x| x == 0xff) && b[b.len() - 8..].iter().all(|&x| x == 0xff)
            );
            let one = BoxedUint::one_with_precision(g.bits);
            let two = BoxedUint::from_be_slice(&[2], g.bits).unwrap();
            let e = p.wrapping_sub(&one);
            let r = BoxedMontyForm::new(two, g.params().clone())
                .pow(&e)
                .retrieve();
            assert_eq!(r, one, "Fermat test failed for {}", g.name);
        }
    }

    /// The group-1 and group-2 primes also appear verbatim in RFC 7296 Appendix B.
    #[test]
    fn rfc7296_appendix_b_primes() {
        let g1 = "FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74 \
                  020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437 \
                  4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A63A3620 FFFFFFFF FFFFFFFF";
        assert_eq!(primes::MODP_768, g1.replace(' ', "").to_lowercase());
        let g2_tail = "A637ED6B 0BFF5CB6 F406B7ED EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 \
                       ECE65381 FFFFFFFF FFFFFFFF";
        assert!(primes::MODP_1024.ends_with(&g2_tail.replace(' ', "").to_lowercase()));
    }

    /// Known answers from plain arithmetic with a fixed exponent x = 2^255 + 6 (the top bit is
    /// forced): 4^x = (2^x)^2, and (p-2)^x = (-2)^x = 2^x because x is even.
    #[test]
    fn arithmetic_known_answers() {
        let g = &MODP_2048;
        // x = 2^255 + 6 (top bit forced, low byte 6).
        let mut e = vec![0u8; 32];
        e[31] = 6;
        let kx = g.generate(&mut e).unwrap();
        // y = 4 = 2^2 → y^x = 2^(2x) = (g^x)^2: compare with squaring the public value.
        let mut four = vec![0u8; 256];
        four[255] = 4;
        let s = kx.complete(&four).unwrap();
        let pubv = BoxedUint::from_be_slice(kx.public_key(), 2048).unwrap();
        let sq = BoxedMontyForm::new(pubv, g.params().clone())
            .square()
            .retrieve();
        assert_eq!(s.expose(), &sq.to_be_bytes()[..]);
        // (p-2)^x = (-2)^x = 2^x for even x: equals the public value.
        let one = BoxedUint::one_with_precision(2048);
        let pm2 = g.prime().wrapping_sub(&one).wrapping_sub(&one);
        let s2 = kx.complete(&pm2.to_be_bytes()).unwrap();
        assert_eq!(s2.expose(), kx.public_key());
    }

    #[test]
    fn agreement_and_rfc6989_checks() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for g in [&MODP_768, &MODP_1024, &MODP_1536, &MODP_2048] {
            let a = g.start(&mut rng).unwrap();
            let resp = g.respond(&mut rng, a.public_key()).unwrap();
            assert_eq!(resp.public.len(), g.byte_len());
            assert_eq!(a.complete(&resp.public).unwrap(), resp.shared);
            assert_eq!(resp.shared.len(), g.byte_len());

            let n = g.byte_len();
            let p = g.prime().to_be_bytes().into_vec();
            let one = BoxedUint::one_with_precision(g.bits);
            let pm1 = g.prime().wrapping_sub(&one).to_be_bytes().into_vec();
            let mut v1 = vec![0u8; n];
            v1[n - 1] = 1;
            for bad in [
                vec![0u8; n],
                v1,
                pm1,
                p.clone(),
                vec![0xff; n],
                vec![2u8; n - 1],
                vec![2u8; n + 1],
                vec![],
            ] {
                assert!(
                    matches!(a.complete(&bad), Err(Error::InvalidPublicValue(_))),
                    "{} accepted a bad value of length {}",
                    g.name,
                    bad.len()
                );
            }
        }
    }
}
