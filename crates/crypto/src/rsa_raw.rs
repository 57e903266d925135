//! RSA PKCS#1 v1.5 signatures of raw data ("RSA private encrypt"), as IKEv1 signs HASH_I and
//! HASH_R (RFC 2409 §5.1, method 3): the data itself, without a DigestInfo, padded with
//! EMSA-PKCS1-v1_5 type 1 and raised to d mod n:
//!
//! ```text
//! EM = 0x00 | 0x01 | 0xFF … 0xFF (at least 8) | 0x00 | data        (k octets, k = |n|)
//! S  = EM^d mod n                                                  (sign, with CRT)
//! EM = S^e mod n, compared with the expected EM as a whole           (verify)
//! ```
//!
//! AWS-LC's Rust API has no such operation and the RustCrypto `rsa` crate carries
//! RUSTSEC-2023-0071 (a variable-time division), so this is done here on crypto-bigint's
//! constant-time arithmetic, as the MODP groups are ([`crate::kex`]):
//!
//! - the private key is parsed from PKCS#1 `RSAPrivateKey` or PKCS#8 `PrivateKeyInfo` DER
//!   (two-prime only) by a strict reader of the few DER forms involved;
//! - signing uses the CRT (m1 = c^dP mod p, m2 = c^dQ mod q, h = qInv·(m1 − m2) mod p,
//!   S = m2 + h·q) with Montgomery exponentiation whose time does not depend on the exponent
//!   or the base, and constant-time reductions (crypto-bigint's `rem`, not `rem_vartime`);
//! - every signature is checked with the public exponent before it is released (S^e = EM), so
//!   a fault in one CRT half cannot leak a factor of n (the Bellcore attack);
//! - verification compares the whole recovered block with the expected one in constant time,
//!   so there is no padding parser to get wrong (no Bleichenbacher '06 forgery);
//! - the private integers (p, q, dP, dQ, qInv) are zeroized on drop. Two limits of
//!   crypto-bigint 0.6: its Montgomery parameters for p and q (`BoxedMontyParams`, built once
//!   per key) and the temporaries inside its arithmetic are freed without being wiped.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, NonZero, Odd};
use subtle::{ConstantTimeEq, ConstantTimeLess};
use zeroize::Zeroize;

use crate::Error;

/// Smallest and largest modulus accepted, in bits (as AWS-LC's RSA verification).
const MIN_BITS: u32 = 2048;
const MAX_BITS: u32 = 8192;

/// rsaEncryption (1.2.840.113549.1.1.1).
const RSA_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// A strict reader of DER TLVs: definite, minimal lengths; one tag byte.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The content of the next element, which must have tag `tag`.
    fn read(&mut self, tag: u8) -> Result<&'a [u8], Error> {
        let bad = Error::InvalidKey("malformed DER in RSA key");
        let (&t, rest) = self.0.split_first().ok_or(bad.clone())?;
        if t != tag {
            return Err(bad);
        }
        let (&l0, mut rest) = rest.split_first().ok_or(bad.clone())?;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 4 || rest.len() < n || rest[0] == 0 {
                return Err(bad);
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b));
            if len < 0x80 {
                return Err(bad);
            }
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(bad);
        }
        let (content, after) = rest.split_at(len);
        self.0 = after;
        Ok(content)
    }

    /// A non-negative INTEGER's magnitude, big-endian, without leading zero octets.
    fn uint(&mut self) -> Result<&'a [u8], Error> {
        let c = self.read(0x02)?;
        match c {
            [] => Err(Error::InvalidKey("empty INTEGER in RSA key")),
            [b, ..] if b & 0x80 != 0 => Err(Error::InvalidKey("negative INTEGER in RSA key")),
            [0, b, ..] if b & 0x80 == 0 => Err(Error::InvalidKey("non-minimal INTEGER in RSA key")),
            _ => {
                let at = c.iter().position(|b| *b != 0).unwrap_or(c.len());
                Ok(&c[at..])
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The bit length of a big-endian magnitude without leading zeros.
fn bit_len(b: &[u8]) -> u32 {
    match b.first() {
        None => 0,
        Some(f) => (b.len() as u32 - 1) * 8 + (8 - f.leading_zeros()),
    }
}

/// `bits` rounded up to whole limbs (crypto-bigint precisions).
fn limbs(bits: u32) -> u32 {
    bits.div_ceil(64).max(1) * 64
}

fn uint(b: &[u8], precision: u32) -> Result<BoxedUint, Error> {
    BoxedUint::from_be_slice(b, precision).map_err(|_| Error::InvalidKey("RSA integer too large"))
}

/// An RSA public key: modulus and public exponent.
#[derive(Clone)]
pub(crate) struct RsaPublicKey {
    /// Modulus length in octets (k).
    k: usize,
    /// Working precision: the modulus rounded up to whole limbs, at least twice the primes'.
    w: u32,
    n: BoxedUint,
    e: BoxedUint,
    e_bits: u32,
    params_n: BoxedMontyParams,
}

impl RsaPublicKey {
    fn new(n: &[u8], e: &[u8], w_at_least: u32) -> Result<Self, Error> {
        let bits = bit_len(n);
        if bits < MIN_BITS {
            return Err(Error::InvalidKey("RSA key smaller than 2048 bits"));
        }
        if bits > MAX_BITS {
            return Err(Error::InvalidKey("RSA key larger than 8192 bits"));
        }
        let e_bits = bit_len(e);
        if !(2..=64).contains(&e_bits) || e.last().is_some_and(|b| b & 1 == 0) {
            return Err(Error::InvalidKey(
                "RSA public exponent not odd, below 3 or above 64 bits",
            ));
        }
        let w = limbs(bits).max(w_at_least);
        let n = uint(n, w)?;
        let odd = Option::<Odd<BoxedUint>>::from(n.to_odd())
            .ok_or(Error::InvalidKey("RSA modulus is even"))?;
        Ok(Self {
            k: bits.div_ceil(8) as usize,
            w,
            params_n: BoxedMontyParams::new(odd),
            n,
            e: uint(e, w)?,
            e_bits,
        })
    }

    /// Parses a PKCS#1 `RSAPublicKey` (a certificate's subjectPublicKey contents).
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, Error> {
        let mut outer = Der(der);
        let mut seq = Der(outer.read(0x30)?);
        let n = seq.uint()?;
        let e = seq.uint()?;
        if !seq.is_empty() || !outer.is_empty() {
            return Err(Error::InvalidKey("trailing data in RSA public key"));
        }
        Self::new(n, e, 0)
    }

    /// The modulus length in octets (the signature's length).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.k
    }

    /// EM = 0x00 01 FF… 00 | data, `k` octets.
    fn encode(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        // RFC 8017 §9.2: at least 8 octets of 0xFF.
        if data.len() + 11 > self.k {
            return Err(Error::Length("data too long for the RSA modulus"));
        }
        let mut em = vec![0xff; self.k];
        em[0] = 0;
        em[1] = 1;
        em[self.k - data.len() - 1] = 0;
        em[self.k - data.len()..].copy_from_slice(data);
        Ok(em)
    }

    /// x^e mod n (x < n, at the working precision).
    fn public_op(&self, x: &BoxedUint) -> BoxedUint {
        BoxedMontyForm::new(x.clone(), self.params_n.clone())
            .pow_bounded_exp(&self.e, self.e_bits)
            .retrieve()
    }

    /// Verifies that `sig` is `data` signed raw (see the module documentation).
    pub(crate) fn verify(&self, data: &[u8], sig: &[u8]) -> Result<(), Error> {
        if sig.len() != self.k {
            return Err(Error::BadSignature);
        }
        let expected = self.encode(data).map_err(|_| Error::BadSignature)?;
        let s = uint(sig, self.w).map_err(|_| Error::BadSignature)?;
        if !bool::from(s.ct_lt(&self.n)) {
            return Err(Error::BadSignature);
        }
        let m = self.public_op(&s).to_be_bytes();
        let m = &m[m.len() - self.k..];
        if bool::from(m.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(Error::BadSignature)
        }
    }
}

/// A two-prime RSA private key in CRT form. The private integers are zeroized on drop.
pub(crate) struct RsaPrivateKey {
    public: RsaPublicKey,
    /// Precision of the primes and the CRT exponents.
    h: u32,
    p: BoxedUint,
    q: BoxedUint,
    dp: BoxedUint,
    dq: BoxedUint,
    qinv: BoxedUint,
    params_p: BoxedMontyParams,
    params_q: BoxedMontyParams,
}

impl Drop for RsaPrivateKey {
    fn drop(&mut self) {
        self.p.zeroize();
        self.q.zeroize();
        self.dp.zeroize();
        self.dq.zeroize();
        self.qinv.zeroize();
    }
}

impl std::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPrivateKey({} bits)", self.public.k * 8)
    }
}

impl RsaPrivateKey {
    /// Parses a PKCS#1 `RSAPrivateKey` or a PKCS#8 `PrivateKeyInfo` holding one. The key is
    /// checked (n = p·q, a trial signature verified) before it is returned.
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, Error> {
        let mut outer = Der(der);
        let mut seq = Der(outer.read(0x30)?);
        let version = seq.uint()?;
        if seq.0.first() == Some(&0x30) {
            // PKCS#8: version 0 or 1, AlgorithmIdentifier, OCTET STRING, optional attributes
            // and public key (ignored).
            if version.len() > 1 || version.first().is_some_and(|v| *v > 1) {
                return Err(Error::InvalidKey("unknown PKCS#8 version"));
            }
            let mut alg = Der(seq.read(0x30)?);
            if alg.read(0x06)? != RSA_OID {
                return Err(Error::InvalidKey("PKCS#8 key is not rsaEncryption"));
            }
            return Self::from_pkcs1(seq.read(0x04)?);
        }
        Self::from_pkcs1(der)
    }

    fn from_pkcs1(der: &[u8]) -> Result<Self, Error> {
        let mut outer = Der(der);
        let mut seq = Der(outer.read(0x30)?);
        if !seq.uint()?.is_empty() {
            return Err(Error::InvalidKey(
                "multi-prime RSA keys (RSAPrivateKey version 1) are not supported",
            ));
        }
        let n = seq.uint()?;
        let e = seq.uint()?;
        let _d = seq.uint()?;
        let p = seq.uint()?;
        let q = seq.uint()?;
        let dp = seq.uint()?;
        let dq = seq.uint()?;
        let qinv = seq.uint()?;
        if !seq.is_empty() || !outer.is_empty() {
            return Err(Error::InvalidKey("trailing data in RSA private key"));
        }
        let h = limbs(bit_len(p).max(bit_len(q)));
        let public = RsaPublicKey::new(n, e, 2 * h)?;
        let bad = || Error::InvalidKey("inconsistent RSA private key");
        let odd = |x: &BoxedUint| Option::<Odd<BoxedUint>>::from(x.to_odd()).ok_or_else(bad);
        let (p, q) = (uint(p, h)?, uint(q, h)?);
        let (params_p, params_q) = (
            BoxedMontyParams::new(odd(&p)?),
            BoxedMontyParams::new(odd(&q)?),
        );
        let key = Self {
            h,
            dp: uint(dp, h)?,
            dq: uint(dq, h)?,
            qinv: uint(qinv, h)?,
            p,
            q,
            params_p,
            params_q,
            public,
        };
        // w >= 2h, so p·q (2h) widens to the modulus' precision.
        if !bool::from(key.p.mul(&key.q).widen(key.public.w).ct_eq(&key.public.n)) {
            return Err(bad());
        }
        key.sign(&[0x42; 32]).map_err(|_| bad())?;
        Ok(key)
    }

    /// The public half.
    #[cfg(test)]
    pub(crate) fn public(&self) -> &RsaPublicKey {
        &self.public
    }

    /// Signs `data` raw: EMSA-PKCS1-v1_5 type 1 of the data itself, raised to d (CRT), checked
    /// with e before it is returned.
    pub(crate) fn sign(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let pk = &self.public;
        let em = pk.encode(data)?;
        let w = pk.w;
        let c = uint(&em, w)?;
        let nz = |x: &BoxedUint| Option::<NonZero<BoxedUint>>::from(NonZero::new(x.clone()));
        let (Some(p_w), Some(q_w), Some(p_h)) =
            (nz(&self.p.widen(w)), nz(&self.q.widen(w)), nz(&self.p))
        else {
            return Err(Error::Backend);
        };
        // c mod p and c mod q (constant-time division), at the primes' precision.
        let mut cp = c.rem(&p_w).shorten(self.h);
        let mut cq = c.rem(&q_w).shorten(self.h);
        let m1 = BoxedMontyForm::new(cp.clone(), self.params_p.clone()).pow(&self.dp);
        let mut m2 = BoxedMontyForm::new(cq.clone(), self.params_q.clone())
            .pow(&self.dq)
            .retrieve();
        cp.zeroize();
        cq.zeroize();
        // h = qInv · (m1 − m2) mod p; m2 may exceed p when q > p.
        let mut m2p = m2.rem(&p_h);
        let mut qinv = self.qinv.rem(&p_h);
        let diff = m1.sub(&BoxedMontyForm::new(m2p.clone(), self.params_p.clone()));
        let mut hh = diff
            .mul(&BoxedMontyForm::new(qinv.clone(), self.params_p.clone()))
            .retrieve();
        m2p.zeroize();
        qinv.zeroize();
        // S = m2 + h·q < n.
        let mut hq = hh.mul(&self.q);
        let wide = w.max(hq.bits_precision());
        let s = hq.widen(wide).wrapping_add(&m2.widen(wide));
        hh.zeroize();
        hq.zeroize();
        m2.zeroize();
        let s = if s.bits_precision() > w {
            s.shorten(w)
        } else {
            s
        };
        // Fault check: release S only if S^e mod n gives EM back.
        if !bool::from(s.ct_lt(&pk.n)) || !bool::from(pk.public_op(&s).ct_eq(&c)) {
            return Err(Error::Backend);
        }
        let out = s.to_be_bytes();
        Ok(out[out.len() - pk.k..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{self as lc, KeyPair};

    /// The DigestInfo of SHA-256 (RFC 8017 §9.2 note 1).
    const SHA256_DIGEST_INFO: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];

    fn digest_info(msg: &[u8]) -> Vec<u8> {
        let mut v = SHA256_DIGEST_INFO.to_vec();
        v.extend_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg).as_ref());
        v
    }

    /// A normal RSASSA-PKCS1-v1_5 SHA-256 signature is the raw signature of DigestInfo | hash:
    /// ours must equal AWS-LC's, byte for byte, for keys of several sizes (PKCS#8 and PKCS#1).
    #[test]
    fn raw_signature_of_digest_info_equals_aws_lc_pkcs1_sha256() {
        for size in [
            aws_lc_rs::rsa::KeySize::Rsa2048,
            aws_lc_rs::rsa::KeySize::Rsa3072,
            aws_lc_rs::rsa::KeySize::Rsa4096,
        ] {
            let kp = aws_lc_rs::rsa::KeyPair::generate(size).unwrap();
            let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&kp).unwrap();
            let ours = RsaPrivateKey::from_der(pkcs8.as_ref()).unwrap();
            let lc_key = lc::RsaKeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let public = RsaPublicKey::from_der(lc_key.public_key().as_ref()).unwrap();
            assert_eq!(public.len(), lc_key.public_modulus_len());
            for i in 0..4u8 {
                let msg = vec![i; 17 * usize::from(i) + 3];
                let mut theirs = vec![0; lc_key.public_modulus_len()];
                lc_key
                    .sign_digest(
                        &lc::RSA_PKCS1_SHA256,
                        &aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &msg),
                        &mut theirs,
                    )
                    .unwrap();
                let sig = ours.sign(&digest_info(&msg)).unwrap();
                assert_eq!(sig, theirs, "{size:?} message {i}");
                public.verify(&digest_info(&msg), &sig).unwrap();
                lc::UnparsedPublicKey::new(
                    &lc::RSA_PKCS1_2048_8192_SHA256,
                    lc_key.public_key().as_ref(),
                )
                .verify(&msg, &sig)
                .unwrap();
            }
        }
    }

    /// The same key as PKCS#1 `RSAPrivateKey` (the OCTET STRING inside the PKCS#8).
    #[test]
    fn pkcs1_and_pkcs8_give_the_same_key() {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&kp).unwrap();
        let mut d = Der(pkcs8.as_ref());
        let mut seq = Der(d.read(0x30).unwrap());
        seq.uint().unwrap();
        seq.read(0x30).unwrap();
        let pkcs1 = seq.read(0x04).unwrap();
        let a = RsaPrivateKey::from_der(pkcs8.as_ref()).unwrap();
        let b = RsaPrivateKey::from_der(pkcs1).unwrap();
        let h = [7u8; 20];
        assert_eq!(a.sign(&h).unwrap(), b.sign(&h).unwrap());
        // A changed prime is refused at load.
        let mut bad = pkcs1.to_vec();
        let l = bad.len();
        bad[l - 300] ^= 1;
        assert!(RsaPrivateKey::from_der(&bad).is_err());
    }

    /// IKEv1 form: the raw hash (no DigestInfo) verifies; any other data, a changed bit of the
    /// signature, a wrong length or a value ≥ n does not.
    #[test]
    fn raw_hash_signature_round_trip_and_rejections() {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&kp).unwrap();
        let key = RsaPrivateKey::from_der(pkcs8.as_ref()).unwrap();
        let pk = key.public().clone();
        for len in [16usize, 20, 32, 48, 64] {
            let h: Vec<u8> = (0..len as u8).collect();
            let s = key.sign(&h).unwrap();
            assert_eq!(s.len(), 256);
            pk.verify(&h, &s).unwrap();
            let mut h2 = h.clone();
            h2[0] ^= 1;
            assert_eq!(pk.verify(&h2, &s), Err(Error::BadSignature));
            assert_eq!(pk.verify(&h[1..], &s), Err(Error::BadSignature));
            let mut s2 = s.clone();
            s2[100] ^= 0x10;
            assert_eq!(pk.verify(&h, &s2), Err(Error::BadSignature));
            assert_eq!(pk.verify(&h, &s[1..]), Err(Error::BadSignature));
            assert_eq!(pk.verify(&h, &[0xff; 256]), Err(Error::BadSignature));
        }
        // Too long for the padding.
        assert!(key.sign(&[0; 246]).is_err());
        assert!(key.sign(&[0; 245]).is_ok());
    }

    /// Wycheproof RSASSA-PKCS1-v1_5 SHA-256/384/512 vectors through the raw verification of
    /// DigestInfo | hash: every valid signature verifies, every invalid one is refused.
    #[test]
    fn wycheproof_pkcs1_through_raw_verify() {
        use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
        use wycheproof::{HashFunction, TestResult};
        let prefix = |h: HashFunction| -> Option<(Vec<u8>, &'static aws_lc_rs::digest::Algorithm)> {
            use aws_lc_rs::digest as d;
            let (oid_last, alg, len) = match h {
                HashFunction::Sha2_256 => (1u8, &d::SHA256, 32u8),
                HashFunction::Sha2_384 => (2, &d::SHA384, 48),
                HashFunction::Sha2_512 => (3, &d::SHA512, 64),
                _ => return None,
            };
            let v = vec![
                0x30,
                17 + len,
                0x30,
                0x0d,
                0x06,
                0x09,
                0x60,
                0x86,
                0x48,
                0x01,
                0x65,
                0x03,
                0x04,
                0x02,
                oid_last,
                0x05,
                0x00,
                0x04,
                len,
            ];
            Some((v, alg))
        };
        let mut checked = 0;
        for name in [
            TestName::Rsa2048Sha256,
            TestName::Rsa3072Sha384,
            TestName::Rsa4096Sha512,
        ] {
            let set = TestSet::load(name).unwrap();
            for g in set.test_groups {
                let Some((pre, alg)) = prefix(g.hash) else {
                    continue;
                };
                let Ok(pk) = RsaPublicKey::from_der(&g.asn_key) else {
                    continue;
                };
                for t in g.tests {
                    let mut data = pre.clone();
                    data.extend_from_slice(aws_lc_rs::digest::digest(alg, &t.msg).as_ref());
                    let ok = pk.verify(&data, &t.sig).is_ok();
                    match t.result {
                        TestResult::Valid => assert!(ok, "tc {} {}", t.tc_id, t.comment),
                        TestResult::Invalid => assert!(!ok, "tc {} {}", t.tc_id, t.comment),
                        TestResult::Acceptable => {}
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn der_reader_is_strict() {
        // Long form for a short length, leading zero in a length, negative and non-minimal
        // INTEGERs.
        assert!(Der(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).read(0x30).is_err());
        assert!(Der(&[0x30, 0x82, 0x00, 0x80]).read(0x30).is_err());
        assert!(Der(&[0x02, 0x01, 0x80]).uint().is_err());
        assert!(Der(&[0x02, 0x02, 0x00, 0x01]).uint().is_err());
        assert_eq!(Der(&[0x02, 0x02, 0x00, 0x80]).uint().unwrap(), &[0x80]);
        assert!(Der(&[0x02, 0x05, 0x01]).uint().is_err());
        assert!(RsaPublicKey::from_der(&[0x30, 0x00]).is_err());
    }
}
