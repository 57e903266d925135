//! Wycheproof ECDH and X25519 vectors through the provider's key exchange API.
//!
//! Source: Project Wycheproof (C2SP/wycheproof, `testvectors_v1/`), as bundled by the
//! `wycheproof` crate 0.7 (randombit/wycheproof-rs): `ecdh_secp{256,384,521}r1_ecpoint_test.json`
//! (raw X9.62 points), `ecdh_secp{256,384,521}r1_test.json` (SubjectPublicKeyInfo) and
//! `x25519_test.json`.
//!
//! Every case goes through [`KeyExchangeAlgorithm::start`] with an RNG that replays the
//! Wycheproof private key, then [`ActiveKeyExchange::complete`] with the peer value converted
//! to the IKEv2 encoding (RFC 5903 §7: x | y, no point-format octet; RFC 8031: the 32-byte
//! u-coordinate), and again through [`KeyExchangeAlgorithm::respond`]. Rules:
//! - "valid" must give exactly the expected shared secret;
//! - "invalid" must be an `Err(InvalidPublicValue)` — never a panic, never a secret;
//! - "acceptable" (X25519 twist / non-canonical / low-order points, BER-level oddities in the
//!   SubjectPublicKeyInfo) must either be refused or give the expected secret; X25519 cases
//!   whose result is all zero must be refused (RFC 7748 §6.1, RFC 8031 §2.3 / RFC 6989).
//! - Cases whose encoding IKE cannot express at all (compressed points, the empty encoding)
//!   are skipped and counted, with the reason.

use std::collections::BTreeMap;

use ferrosec_crypto::{Error, KeyExchangeAlgorithm, Provider, Rng, ids};
use wycheproof::TestResult;

/// Replays fixed bytes (the Wycheproof private key) as the "random" scalar.
struct Replay(Vec<u8>);

impl Rng for Replay {
    fn fill(&mut self, buf: &mut [u8]) {
        assert_eq!(buf.len(), self.0.len(), "scalar length");
        buf.copy_from_slice(&self.0);
    }
}

#[derive(Default, Debug)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable_ok: usize,
    acceptable_refused: usize,
    skipped: BTreeMap<&'static str, usize>,
    unexpected: Vec<String>,
}

/// Left-pads or strips leading zeros so the scalar has exactly `len` bytes.
fn fit_scalar(raw: &[u8], len: usize) -> Option<Vec<u8>> {
    let first = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    let s = &raw[first..];
    if s.len() > len {
        return None;
    }
    let mut v = vec![0u8; len - s.len()];
    v.extend_from_slice(s);
    Some(v)
}

/// Reads one DER TLV: (tag, contents, rest).
fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&l0, mut rest) = rest.split_first()?;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let v = rest[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        rest = &rest[n..];
        v
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subjectPublicKey BIT STRING contents of a SubjectPublicKeyInfo (None if the DER is too
/// broken to find it), and whether the curve is given by explicit parameters.
fn spki_point(der: &[u8]) -> Option<(Vec<u8>, bool)> {
    let (t, spki, _) = der_tlv(der)?;
    if t != 0x30 {
        return None;
    }
    let (_, alg, rest) = der_tlv(spki)?;
    let (t, bits, _) = der_tlv(rest)?;
    if t != 0x03 || bits.first() != Some(&0) {
        return None;
    }
    // AlgorithmIdentifier { id-ecPublicKey, parameters }: a named curve is an OID (tag 6);
    // explicit parameters are a SEQUENCE.
    let (_, _oid, params) = der_tlv(alg)?;
    let explicit = params.first() != Some(&0x06);
    Some((bits[1..].to_vec(), explicit))
}

/// Runs one case; `peer` is already in IKE encoding.
#[allow(clippy::too_many_arguments)]
fn run_case(
    kx: &'static dyn KeyExchangeAlgorithm,
    scalar_len: usize,
    tc: usize,
    private: &[u8],
    peer: &[u8],
    shared: &[u8],
    result: TestResult,
    t: &mut Tally,
) {
    let Some(scalar) = fit_scalar(private, scalar_len) else {
        t.unexpected
            .push(format!("tc {tc}: private key longer than the scalar"));
        return;
    };
    let a = match kx.start(&mut Replay(scalar.clone())) {
        Ok(a) => a,
        Err(e) => {
            t.unexpected
                .push(format!("tc {tc}: private key refused: {e}"));
            return;
        }
    };
    let got = a.complete(peer);
    let responded = kx.respond(&mut Replay(scalar), peer);
    // The responder path must agree with the initiator path.
    match (&got, &responded) {
        (Ok(s), Ok(r)) if s == &r.shared => {}
        (Err(e1), Err(e2)) if e1 == e2 => {}
        _ => t
            .unexpected
            .push(format!("tc {tc}: start/complete and respond disagree")),
    }
    let zero = shared.iter().all(|&b| b == 0);
    match (result, got) {
        (TestResult::Valid, Ok(s)) if s.expose() == shared => t.valid += 1,
        (TestResult::Invalid, Err(Error::InvalidPublicValue(_))) => t.invalid += 1,
        (TestResult::Acceptable, Ok(s)) if !zero && s.expose() == shared => t.acceptable_ok += 1,
        (TestResult::Acceptable, Err(Error::InvalidPublicValue(_))) => t.acceptable_refused += 1,
        (r, g) => t.unexpected.push(format!(
            "tc {tc}: expected {r:?} (shared {}), got {:?}",
            hex::encode(shared),
            g.map(|s| hex::encode(s.expose()))
        )),
    }
}

fn curve(group: u16) -> (&'static dyn KeyExchangeAlgorithm, usize) {
    let kx = Provider::default().key_exchange(group).unwrap();
    let scalar_len = match group {
        ids::ke::ECP_256 | ids::ke::CURVE25519 => 32,
        ids::ke::ECP_384 => 48,
        _ => 66,
    };
    (kx, scalar_len)
}

/// Converts an X9.62 point to the RFC 5903 encoding: the uncompressed form loses its 0x04
/// octet (the remainder is passed on whatever its length, so a truncated or overlong point is
/// the peer's error to be caught); compressed and empty encodings have no IKE form.
fn ike_point(x962: &[u8]) -> Result<&[u8], &'static str> {
    match x962.first() {
        Some(4) => Ok(&x962[1..]),
        Some(2 | 3) => Err("compressed point (RFC 5903 carries only x | y)"),
        Some(_) => Err("unknown point format octet"),
        None => Err("empty encoding"),
    }
}

fn ecdh(name: wycheproof::ecdh::TestName, group: u16) -> Tally {
    let (kx, scalar_len) = curve(group);
    let set = wycheproof::ecdh::TestSet::load(name).unwrap();
    let mut t = Tally::default();
    for g in &set.test_groups {
        for c in &g.tests {
            let x962 = match g.encoding {
                wycheproof::ecdh::EcdhEncoding::EcPoint => Some((c.public_key.to_vec(), false)),
                wycheproof::ecdh::EcdhEncoding::Asn1 => spki_point(&c.public_key),
            };
            let Some((x962, explicit)) = x962 else {
                *t.skipped
                    .entry("BER/malformed SubjectPublicKeyInfo (an ASN.1 wrapper IKE does not use)")
                    .or_default() += 1;
                continue;
            };
            if explicit {
                // The case is about the curve parameters in the certificate-style wrapper
                // (order, cofactor, prime); IKE names the group by number and sends the point.
                *t.skipped
                    .entry("explicit curve parameters (IKE negotiates the group by number)")
                    .or_default() += 1;
                continue;
            }
            match ike_point(&x962) {
                Ok(peer) => run_case(
                    kx,
                    scalar_len,
                    c.tc_id,
                    &c.private_key,
                    peer,
                    &c.shared_secret,
                    c.result,
                    &mut t,
                ),
                Err(why) => *t.skipped.entry(why).or_default() += 1,
            }
        }
    }
    t
}

fn check(label: &str, t: &Tally, valid: usize, invalid: usize, acceptable: usize, skipped: usize) {
    eprintln!(
        "{label}: {} valid, {} invalid, {} acceptable accepted, {} acceptable refused, skipped {:?}, {} unexpected",
        t.valid,
        t.invalid,
        t.acceptable_ok,
        t.acceptable_refused,
        t.skipped,
        t.unexpected.len()
    );
    assert!(t.unexpected.is_empty(), "{label}: {:#?}", t.unexpected);
    assert_eq!(
        (
            t.valid,
            t.invalid,
            t.acceptable_ok + t.acceptable_refused,
            t.skipped.values().sum::<usize>()
        ),
        (valid, invalid, acceptable, skipped),
        "{label}: case counts"
    );
}

// Counts per file: (valid, invalid, acceptable, skipped), which together are the file's
// numberOfTests.
macro_rules! ecdh_test {
    ($fn:ident, $name:ident, $group:ident, $v:expr, $i:expr, $a:expr, $s:expr) => {
        #[test]
        fn $fn() {
            let t = ecdh(wycheproof::ecdh::TestName::$name, ids::ke::$group);
            check(stringify!($name), &t, $v, $i, $a, $s);
        }
    };
}

ecdh_test!(
    ecdh_p256_ecpoint,
    EcdhSecp256r1Ecpoint,
    ECP_256,
    330,
    16,
    0,
    9
);
ecdh_test!(
    ecdh_p384_ecpoint,
    EcdhSecp384r1Ecpoint,
    ECP_384,
    771,
    16,
    0,
    3
);
ecdh_test!(
    ecdh_p521_ecpoint,
    EcdhSecp521r1Ecpoint,
    ECP_521,
    632,
    16,
    0,
    13
);
ecdh_test!(ecdh_p256_spki, EcdhSecp256r1, ECP_256, 330, 37, 99, 146);
ecdh_test!(ecdh_p384_spki, EcdhSecp384r1, ECP_384, 771, 37, 99, 140);
ecdh_test!(ecdh_p521_spki, EcdhSecp521r1, ECP_521, 632, 37, 96, 151);

#[test]
fn x25519() {
    let (kx, scalar_len) = curve(ids::ke::CURVE25519);
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
    let mut t = Tally::default();
    for g in &set.test_groups {
        for c in &g.tests {
            run_case(
                kx,
                scalar_len,
                c.tc_id,
                &c.private_key,
                &c.public_key,
                &c.shared_secret,
                c.result,
                &mut t,
            );
        }
    }
    check("x25519", &t, 264, 0, 254, 0);
    // Every refused "acceptable" X25519 case is a low-order point (all-zero result).
    assert_eq!(t.acceptable_refused, 31);
}
