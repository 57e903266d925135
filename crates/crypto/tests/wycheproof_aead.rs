//! Wycheproof AEAD vectors through the two places the provider uses AEADs: the IKEv2 SK
//! payload ([`IkeSkCrypter`], RFC 5282) and the ESP data plane ([`EspSa`], RFC 4106 / 4309 /
//! 7634).
//!
//! Source: Project Wycheproof (C2SP/wycheproof, `testvectors_v1/aes_gcm_test.json`,
//! `aes_ccm_test.json`, `chacha20_poly1305_test.json`), as bundled by the `wycheproof` crate 0.7
//! (randombit/wycheproof-rs).
//!
//! Mapping: IPsec builds the nonce as salt | IV (GCM/ChaCha: 4 + 8 bytes, CCM: 3 + 8), the salt
//! being the tail of the keying material. So a case with a nonce of that length is keyed with
//! `key | nonce[..salt]`, and its IV is `nonce[salt..]`. Then:
//! - **ESP open** (cases whose AAD is 8 or 12 bytes, the only AADs ESP has): the packet is
//!   `SPI | Seq | IV | ct | tag` with SPI | Seq = the AAD (12 bytes: SPI | Seq-high | Seq-low,
//!   extended sequence numbers); valid cases must decrypt to exactly the plaintext, invalid
//!   ones must fail.
//! - **ESP seal** (valid cases ESP can produce: AAD of 8 bytes; 12 when Seq-high = IV[..4]):
//!   the IV is the sequence number, so seq = IV; the packet must equal IV | ct | tag.
//! - **IKE open** (every case with a non-empty ciphertext: IKE's AAD is arbitrary): body =
//!   `IV | ct | tag`; invalid cases must fail the integrity check; valid ones must pass it and
//!   then strip the RFC 7296 padding the last plaintext byte announces (a `Padding` error
//!   exactly when that pad length cannot fit — the plaintext was not an IKE payload).
//! - **IKE seal** (valid cases whose plaintext ends in 0x00, i.e. "no padding"): sealing the
//!   plaintext without that byte, with the IV from the RNG, must give IV | ct | tag.
//!
//! ICV lengths: GCM is run at 16, 12 and 8 bytes. A truncated GCM tag is the leading bytes of
//! the full tag (NIST SP 800-38D §5.2.1.2, RFC 4106 §3), so a case is valid at ICV n when its
//! full tag is valid; for an invalid (modified-tag) case the truncated tag is still wrong only
//! when the modification falls in the first n bytes — decided against aws-lc-rs's full tag for
//! the same key/nonce/AAD/plaintext (whose agreement with Wycheproof is checked at n = 16).
//! CCM binds the tag length into its first block, so CCM cases run only at their own tag
//! length. Cases whose nonce length IPsec cannot express are skipped and counted.

use std::collections::BTreeMap;

use aws_lc_rs::aead as lc;
use ferrosec_crypto::{Encryption, Error, EspSuite, IkeSkCrypter, Rng, Secret};
use wycheproof::TestResult;
use wycheproof::aead::{TestName, TestSet};

struct Replay(Vec<u8>);

impl Rng for Replay {
    fn fill(&mut self, buf: &mut [u8]) {
        assert_eq!(buf.len(), self.0.len());
        buf.copy_from_slice(&self.0);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Gcm,
    Ccm,
    ChaCha,
}

#[derive(Default, Debug)]
struct Tally {
    /// Cases run per ICV length: (valid, invalid).
    by_icv: BTreeMap<usize, (usize, usize)>,
    esp_open: usize,
    esp_seal: usize,
    ike_open: usize,
    ike_open_plaintext: usize,
    ike_seal: usize,
    skipped: BTreeMap<String, usize>,
    unexpected: Vec<String>,
}

fn encryption(f: Family, key_len: usize, icv: usize) -> Encryption {
    let key_len = key_len as u8;
    let icv_len = icv as u8;
    match f {
        Family::Gcm => Encryption::AesGcm { key_len, icv_len },
        Family::Ccm => Encryption::AesCcm { key_len, icv_len },
        Family::ChaCha => Encryption::ChaCha20Poly1305,
    }
}

/// aws-lc-rs's full GCM tag (and ciphertext) for the case, as the reference for truncations.
fn lc_gcm(key: &[u8], nonce: &[u8], aad: &[u8], pt: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let alg = match key.len() {
        16 => &lc::AES_128_GCM,
        24 => &lc::AES_192_GCM,
        _ => &lc::AES_256_GCM,
    };
    let k = lc::LessSafeKey::new(lc::UnboundKey::new(alg, key).unwrap());
    let mut buf = pt.to_vec();
    let tag = k
        .seal_in_place_separate_tag(
            lc::Nonce::try_assume_unique_for_key(nonce).unwrap(),
            lc::Aad::from(aad),
            &mut buf,
        )
        .unwrap();
    (buf, tag.as_ref().to_vec())
}

struct Case<'a> {
    tc: usize,
    key: &'a [u8],
    nonce: &'a [u8],
    aad: &'a [u8],
    pt: &'a [u8],
    ct: &'a [u8],
    tag: &'a [u8],
}

fn esp_open(t: &mut Tally, encr: Encryption, c: &Case<'_>, sl: usize, icv: usize, valid: bool) {
    let (hdr, seq, esn) = match c.aad.len() {
        8 => (c.aad.to_vec(), 0u64, false),
        12 => {
            let hi = u32::from_be_bytes(c.aad[4..8].try_into().unwrap());
            let lo = u32::from_be_bytes(c.aad[8..12].try_into().unwrap());
            (
                [&c.aad[..4], &c.aad[8..12]].concat(),
                (u64::from(hi) << 32) | u64::from(lo),
                true,
            )
        }
        _ => return,
    };
    let suite = EspSuite::new(encr, None).unwrap();
    let keymat = Secret::new([c.key, &c.nonce[..sl]].concat());
    let sa = suite.key(&keymat, &Secret::default()).unwrap();
    let mut pkt = [&hdr[..], &c.nonce[sl..], c.ct, &c.tag[..icv]].concat();
    match sa.open(&mut pkt, seq, esn) {
        Ok(r) if valid && &pkt[r.clone()] == c.pt => t.esp_open += 1,
        Err(Error::Integrity) if !valid => t.esp_open += 1,
        other => t.unexpected.push(format!(
            "tc {} icv {icv}: ESP open: valid={valid}, got {:?}",
            c.tc,
            other.map(|r| hex::encode(&pkt[r]))
        )),
    }
    // Seal: the IV is the sequence number, so only cases whose IV can be a sequence number
    // consistent with the AAD are producible.
    if !valid {
        return;
    }
    let iv = &c.nonce[sl..];
    let seq = u64::from_be_bytes(iv.try_into().unwrap());
    if esn && c.aad[4..8] != iv[..4] {
        return;
    }
    let mut pkt = [&hdr[..], &[0u8; 8], c.pt, &vec![0u8; icv]].concat();
    match sa.seal(&mut pkt, seq, esn) {
        Ok(()) if pkt == [&hdr[..], iv, c.ct, &c.tag[..icv]].concat() => t.esp_seal += 1,
        other => t
            .unexpected
            .push(format!("tc {} icv {icv}: ESP seal: {other:?}", c.tc)),
    }
}

fn ike(t: &mut Tally, encr: Encryption, c: &Case<'_>, sl: usize, icv: usize, valid: bool) {
    if c.ct.is_empty() {
        *t.skipped
            .entry("IKE: empty ciphertext (an SK payload has at least the pad length byte)".into())
            .or_default() += 1;
        return;
    }
    let keymat = Secret::new([c.key, &c.nonce[..sl]].concat());
    let crypter = IkeSkCrypter::new(encr, &keymat, None, &Secret::default()).unwrap();
    let body = [&c.nonce[sl..], c.ct, &c.tag[..icv]].concat();
    let got = crypter.open(c.aad, &body);
    let ok = if valid {
        let pad = usize::from(*c.pt.last().unwrap());
        if pad + 1 > c.pt.len() {
            got == Err(Error::Padding)
        } else {
            let want = &c.pt[..c.pt.len() - pad - 1];
            let ok = got.as_deref() == Ok(want);
            if ok && !want.is_empty() {
                t.ike_open_plaintext += 1;
            }
            ok
        }
    } else {
        got == Err(Error::Integrity)
    };
    if ok {
        t.ike_open += 1;
    } else {
        t.unexpected.push(format!(
            "tc {} icv {icv}: IKE open: valid={valid}, got {got:?}",
            c.tc
        ));
    }
    if valid && c.pt.last() == Some(&0) {
        let sealed = crypter.seal(
            &mut Replay(c.nonce[sl..].to_vec()),
            c.aad,
            &c.pt[..c.pt.len() - 1],
        );
        if sealed.as_deref() == Ok(&body[..]) {
            t.ike_seal += 1;
        } else {
            t.unexpected
                .push(format!("tc {} icv {icv}: IKE seal: {sealed:?}", c.tc));
        }
    }
}

fn run(name: TestName, family: Family) -> Tally {
    let set = TestSet::load(name).unwrap();
    let mut t = Tally::default();
    let sl = encryption(family, 16, 16).salt_len();
    for g in &set.test_groups {
        for w in &g.tests {
            let c = Case {
                tc: w.tc_id,
                key: &w.key,
                nonce: &w.nonce,
                aad: &w.aad,
                pt: &w.pt,
                ct: &w.ct,
                tag: &w.tag,
            };
            if c.nonce.len() != sl + 8 {
                *t.skipped
                    .entry(format!(
                        "nonce of {} bits (IPsec: salt | 64-bit IV)",
                        g.nonce_size
                    ))
                    .or_default() += 1;
                continue;
            }
            let mut ran = false;
            for icv in [16, 12, 8] {
                if family != Family::Gcm && c.tag.len() != icv {
                    continue;
                }
                if c.tag.len() != g.tag_size / 8 || c.tag.len() < icv {
                    // A tag of the wrong size for its group (a malformed-tag case): only
                    // meaningful as "must fail" at the full length, handled below.
                    continue;
                }
                ran = true;
                let wy_valid = w.result == TestResult::Valid;
                let valid = if family == Family::Gcm {
                    let (ref_ct, ref_tag) = lc_gcm(c.key, c.nonce, c.aad, c.pt);
                    let ref_valid = ref_ct == c.ct && ref_tag[..icv] == c.tag[..icv];
                    if icv == 16 && ref_valid != wy_valid {
                        t.unexpected
                            .push(format!("tc {}: aws-lc reference disagrees", c.tc));
                    }
                    if icv == 16 { wy_valid } else { ref_valid }
                } else {
                    wy_valid
                };
                let e = t.by_icv.entry(icv).or_default();
                if valid {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
                let encr = encryption(family, c.key.len(), icv);
                esp_open(&mut t, encr, &c, sl, icv, valid);
                ike(&mut t, encr, &c, sl, icv, valid);
            }
            if !ran {
                *t.skipped
                    .entry(format!(
                        "tag of {} bits (IPsec ICV: 64, 96 or 128)",
                        c.tag.len() * 8
                    ))
                    .or_default() += 1;
            }
        }
    }
    t
}

/// Expected counts: per ICV (icv, valid, invalid), then ESP open, ESP seal, IKE open, IKE seal.
type Counts<'a> = (&'a [(usize, usize, usize)], usize, usize, usize, usize);

fn report(label: &str, t: &Tally, want: Counts<'_>) {
    eprintln!(
        "{label}: per ICV (valid, invalid) {:?}; ESP open {}, ESP seal {}, IKE open {} ({} with plaintext compared), IKE seal {}; skipped {:?}; {} unexpected",
        t.by_icv,
        t.esp_open,
        t.esp_seal,
        t.ike_open,
        t.ike_open_plaintext,
        t.ike_seal,
        t.skipped,
        t.unexpected.len()
    );
    assert!(t.unexpected.is_empty(), "{label}: {:#?}", t.unexpected);
    let by_icv: Vec<_> = t.by_icv.iter().map(|(&i, &(v, n))| (i, v, n)).collect();
    assert_eq!(
        (&by_icv[..], t.esp_open, t.esp_seal, t.ike_open, t.ike_seal),
        want,
        "{label}: case counts"
    );
}

#[test]
fn aes_gcm() {
    let t = run(TestName::AesGcm, Family::Gcm);
    report(
        "aes_gcm_test.json",
        &t,
        (
            &[(8, 149, 48), (12, 137, 60), (16, 116, 81)],
            15,
            15,
            579,
            3,
        ),
    );
}

#[test]
fn aes_ccm() {
    let t = run(TestName::AesCcm, Family::Ccm);
    // Wycheproof has 11-byte nonces only with 16-byte tags (6 cases per key size).
    report("aes_ccm_test.json", &t, (&[(16, 18, 0)], 9, 9, 12, 0));
}

#[test]
fn chacha20_poly1305() {
    let t = run(TestName::ChaCha20Poly1305, Family::ChaCha);
    report(
        "chacha20_poly1305_test.json",
        &t,
        (&[(16, 256, 60)], 47, 45, 294, 0),
    );
}
