//! Wycheproof signature-verification vectors through [`sig::verify`].
//!
//! Source: Project Wycheproof (C2SP/wycheproof, `testvectors_v1/`), as bundled by the
//! `wycheproof` crate 0.7 (randombit/wycheproof-rs):
//! - ECDSA: `ecdsa_secp{256,384,521}r1_sha{256,384,512}_test.json` (DER signatures, RFC 7427)
//!   and the `_p1363_` files (fixed r | s, RFC 4754);
//! - RSA PKCS#1 v1.5: `rsa_signature_{2048,3072,4096,8192}_sha{256,384,512}_test.json`;
//! - RSA-PSS: `rsa_pss_{2048,3072,4096}_sha{256,384,512}_mgf1_{32,48,64}_test.json`;
//! - Ed25519: `ed25519_test.json`.
//!
//! The public key handed to `verify` is what a certificate's subjectPublicKey holds (the
//! uncompressed point, the PKCS#1 RSAPublicKey, the 32-byte Ed25519 key). "valid" must verify,
//! "invalid" must be `Err(BadSignature)`; "acceptable" cases may go either way and are counted.

use ferrosec_crypto::Error;
use ferrosec_crypto::sig::{self, SignatureScheme as S};
use wycheproof::TestResult;

#[derive(Default, Debug, PartialEq, Eq)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    unexpected: Vec<String>,
}

impl Tally {
    fn case(&mut self, tc: usize, result: TestResult, got: Result<(), Error>) {
        match (result, got) {
            (TestResult::Valid, Ok(())) => self.valid += 1,
            (TestResult::Invalid, Err(Error::BadSignature)) => self.invalid += 1,
            (TestResult::Acceptable, Ok(()) | Err(Error::BadSignature)) => self.acceptable += 1,
            (r, g) => self
                .unexpected
                .push(format!("tc {tc}: expected {r:?}, got {g:?}")),
        }
    }

    fn check(&self, label: &str, valid: usize, invalid: usize, acceptable: usize) {
        eprintln!(
            "{label}: {} valid, {} invalid, {} acceptable, {} unexpected",
            self.valid,
            self.invalid,
            self.acceptable,
            self.unexpected.len()
        );
        assert!(
            self.unexpected.is_empty(),
            "{label}: {:#?}",
            self.unexpected
        );
        assert_eq!(
            (self.valid, self.invalid, self.acceptable),
            (valid, invalid, acceptable),
            "{label}: case counts"
        );
    }
}

fn ecdsa(name: wycheproof::ecdsa::TestName, scheme: S) -> Tally {
    let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
    let mut t = Tally::default();
    for g in &set.test_groups {
        for c in &g.tests {
            t.case(
                c.tc_id,
                c.result,
                sig::verify(scheme, &g.key.key, &c.msg, &c.sig),
            );
        }
    }
    t
}

fn rsa_pkcs1(name: wycheproof::rsa_pkcs1_verify::TestName, scheme: S) -> Tally {
    let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).unwrap();
    let mut t = Tally::default();
    for g in &set.test_groups {
        for c in &g.tests {
            t.case(
                c.tc_id,
                c.result,
                sig::verify(scheme, &g.asn_key, &c.msg, &c.sig),
            );
        }
    }
    t
}

fn rsa_pss(name: wycheproof::rsa_pss_verify::TestName, scheme: S) -> Tally {
    let set = wycheproof::rsa_pss_verify::TestSet::load(name).unwrap();
    let mut t = Tally::default();
    for g in &set.test_groups {
        for c in &g.tests {
            t.case(
                c.tc_id,
                c.result,
                sig::verify(scheme, &g.asn_key, &c.msg, &c.sig),
            );
        }
    }
    t
}

macro_rules! sig_test {
    ($fn:ident, $runner:ident, $module:ident :: $name:ident, $scheme:ident, $v:expr, $i:expr, $a:expr) => {
        #[test]
        fn $fn() {
            let t = $runner(wycheproof::$module::TestName::$name, S::$scheme);
            t.check(stringify!($name), $v, $i, $a);
        }
    };
}

sig_test!(
    ecdsa_p256_der,
    ecdsa,
    ecdsa::EcdsaSecp256r1Sha256,
    EcdsaP256Sha256,
    174,
    310,
    0
);
sig_test!(
    ecdsa_p384_der,
    ecdsa,
    ecdsa::EcdsaSecp384r1Sha384,
    EcdsaP384Sha384,
    194,
    310,
    0
);
sig_test!(
    ecdsa_p521_der,
    ecdsa,
    ecdsa::EcdsaSecp521r1Sha512,
    EcdsaP521Sha512,
    232,
    310,
    0
);
sig_test!(
    ecdsa_p256_fixed,
    ecdsa,
    ecdsa::EcdsaSecp256r1Sha256P1363,
    EcdsaP256Sha256Fixed,
    173,
    89,
    0
);
sig_test!(
    ecdsa_p384_fixed,
    ecdsa,
    ecdsa::EcdsaSecp384r1Sha384P1363,
    EcdsaP384Sha384Fixed,
    193,
    87,
    0
);
sig_test!(
    ecdsa_p521_fixed,
    ecdsa,
    ecdsa::EcdsaSecp521r1Sha512P1363,
    EcdsaP521Sha512Fixed,
    231,
    87,
    0
);

sig_test!(
    rsa_2048_sha256,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa2048Sha256,
    RsaPkcs1Sha256,
    9,
    249,
    1
);
sig_test!(
    rsa_2048_sha384,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa2048Sha384,
    RsaPkcs1Sha384,
    7,
    250,
    1
);
sig_test!(
    rsa_2048_sha512,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa2048Sha512,
    RsaPkcs1Sha512,
    8,
    250,
    1
);
sig_test!(
    rsa_3072_sha256,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa3072Sha256,
    RsaPkcs1Sha256,
    8,
    250,
    1
);
sig_test!(
    rsa_3072_sha384,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa3072Sha384,
    RsaPkcs1Sha384,
    7,
    251,
    1
);
sig_test!(
    rsa_3072_sha512,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa3072Sha512,
    RsaPkcs1Sha512,
    8,
    251,
    1
);
sig_test!(
    rsa_4096_sha256,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa4096Sha256,
    RsaPkcs1Sha256,
    7,
    250,
    1
);
sig_test!(
    rsa_4096_sha384,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa4096Sha384,
    RsaPkcs1Sha384,
    7,
    251,
    1
);
sig_test!(
    rsa_4096_sha512,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa4096Sha512,
    RsaPkcs1Sha512,
    7,
    251,
    1
);
sig_test!(
    rsa_8192_sha256,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa8192Sha256,
    RsaPkcs1Sha256,
    7,
    250,
    1
);
sig_test!(
    rsa_8192_sha384,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa8192Sha384,
    RsaPkcs1Sha384,
    7,
    251,
    1
);
sig_test!(
    rsa_8192_sha512,
    rsa_pkcs1,
    rsa_pkcs1_verify::Rsa8192Sha512,
    RsaPkcs1Sha512,
    7,
    251,
    1
);

sig_test!(
    pss_2048_sha256,
    rsa_pss,
    rsa_pss_verify::RsaPss2048Sha256Mgf1SaltLen32,
    RsaPssSha256,
    63,
    45,
    0
);
sig_test!(
    pss_2048_sha384,
    rsa_pss,
    rsa_pss_verify::RsaPss2048Sha384Mgf1SaltLen48,
    RsaPssSha384,
    95,
    46,
    0
);
sig_test!(
    pss_3072_sha256,
    rsa_pss,
    rsa_pss_verify::RsaPss3072Sha256Mgf1SaltLen32,
    RsaPssSha256,
    63,
    45,
    0
);
sig_test!(
    pss_4096_sha256,
    rsa_pss,
    rsa_pss_verify::RsaPss4096Sha256Mgf1SaltLen32,
    RsaPssSha256,
    63,
    45,
    0
);
sig_test!(
    pss_4096_sha384,
    rsa_pss,
    rsa_pss_verify::RsaPss4096Sha384Mgf1SaltLen48,
    RsaPssSha384,
    95,
    46,
    0
);
sig_test!(
    pss_4096_sha512,
    rsa_pss,
    rsa_pss_verify::RsaPss4096Sha512Mgf1SaltLen64,
    RsaPssSha512,
    132,
    47,
    0
);

#[test]
fn ed25519() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut t = Tally::default();
    for g in &set.test_groups {
        for c in &g.tests {
            t.case(
                c.tc_id,
                c.result,
                sig::verify(S::Ed25519, &g.key.pk, &c.msg, &c.sig),
            );
        }
    }
    t.check("ed25519", 88, 63, 0);
}
