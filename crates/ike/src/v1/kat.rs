//! Known answers for the IKEv1 key material and the CBC IV chain, from two strongSwan 5.9.8
//! gateways (`crates/ike/tests/fixtures/ikev1-main-psk*-keys.txt`, written by
//! `scripts/capture-ikev1-keys.sh`): main mode with a pre-shared key, two quick modes (the
//! first with PFS, the second without) and the informational DELETEs at the end.
//!
//! From the fixture's inputs (the pre-shared key, strongSwan's DH shared secret g^xy and its
//! quick-mode PFS secret, which no capture can give) and the captured datagrams, ferrosec's own
//! code computes SKEYID, SKEYID_d/a/e, the phase-1 key (Appendix B expansion), the first IV,
//! decrypts main-mode messages 5 and 6 (each IV the last ciphertext block of the message
//! before), computes HASH_I and HASH_R, then each quick mode's IV from the last phase-1 block
//! and its message ID, decrypts its three messages, computes HASH(1), HASH(2), HASH(3) and the
//! KEYMAT of both ESP SAs; every value is compared with what strongSwan logged, and every HASH
//! with the one inside the message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ferrosec_crypto::kdf::ikev1 as kdf;
use ferrosec_crypto::{Encryption, HashAlgorithm, Prf, Provider, Secret};
use ferrosec_wire::Spi;
use ferrosec_wire::isakmp::{ExchangeType, Payload, PayloadType, ProtocolId};

use super::payloads::{self as pl, RawPayload};
use super::phase1::new_sa;
use super::sa::{P1Algs, QmState, QuickMode, Sa};
use super::{HDR_LEN, Hdr, Mode};
use crate::identity::Identity;
use crate::proposal;
use crate::ts::TrafficSelector;
use crate::v2::{PeerConfig, PeerId, PolicyId};

/// IPsec DOI protocol number of ESP (KEYMAT's "protocol").
const ESP: u8 = 3;

/// AES-256-CBC with SHA-1: SKEYID_e (20 bytes) is shorter than the key, Appendix B expands it.
const SHA1_AES256: &str = include_str!("../../tests/fixtures/ikev1-main-psk-keys.txt");
/// AES-128-CBC with SHA-256: the key is a prefix of SKEYID_e.
const SHA256_AES128: &str = include_str!("../../tests/fixtures/ikev1-main-psk-sha256-keys.txt");

#[test]
fn kat_strongswan_main_psk_aes256_sha1() {
    check(SHA1_AES256, true);
}

#[test]
fn kat_strongswan_main_psk_aes128_sha256() {
    check(SHA256_AES128, false);
}

/// One captured datagram: its ISAKMP message (without the non-ESP marker of port 4500).
struct Dgram {
    n: usize,
    src: SocketAddr,
    dst: SocketAddr,
    hdr: Hdr,
    msg: Vec<u8>,
}

impl Dgram {
    fn body(&self) -> &[u8] {
        &self.msg[HDR_LEN..]
    }
}

/// The fixture: `key value` lines (a key may repeat, `next_iv MID HEX`), then the datagrams.
struct Fixture {
    name: String,
    values: Vec<(String, String)>,
    dgrams: Vec<Dgram>,
}

impl Fixture {
    fn parse(text: &str) -> Fixture {
        let mut values = Vec::new();
        let mut dgrams = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once(' ').expect("a 'key value' line");
            if key == "dgram" {
                let f: Vec<&str> = value.split(' ').collect();
                let [n, src, dst, hex] = f[..] else {
                    panic!("dgram line: {line}");
                };
                let src: SocketAddr = src.parse().unwrap();
                let dst: SocketAddr = dst.parse().unwrap();
                let mut msg = hex::decode(hex).unwrap();
                if src.port() == 4500 {
                    assert_eq!(msg[..4], [0; 4], "non-ESP marker of datagram {n}");
                    msg.drain(..4);
                }
                let hdr = Hdr::parse(&msg).unwrap_or_else(|| panic!("ISAKMP header of {n}"));
                dgrams.push(Dgram {
                    n: n.parse().unwrap(),
                    src,
                    dst,
                    hdr,
                    msg,
                });
            } else {
                values.push((key.to_owned(), value.to_owned()));
            }
        }
        let name = values
            .iter()
            .find(|(k, _)| k == "scenario")
            .map(|(_, v)| v.clone())
            .expect("scenario line");
        Fixture {
            name,
            values,
            dgrams,
        }
    }

    fn opt(&self, key: &str) -> Option<&str> {
        let mut it = self.values.iter().filter(|(k, _)| k == key);
        let v = it.next().map(|(_, v)| v.as_str());
        assert!(it.next().is_none(), "{}: {key} twice", self.name);
        v
    }

    fn get(&self, key: &str) -> &str {
        self.opt(key)
            .unwrap_or_else(|| panic!("{}: no {key}", self.name))
    }

    fn hex(&self, key: &str) -> Vec<u8> {
        hex::decode(self.get(key)).unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name))
    }

    fn hex_opt(&self, key: &str) -> Option<Vec<u8>> {
        self.opt(key).map(|v| hex::decode(v).unwrap())
    }

    /// The IVs strongSwan logged as "next IV for MID m", in log order, by message ID.
    fn next_ivs(&self) -> BTreeMap<u32, Vec<Vec<u8>>> {
        let mut out: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, v) in &self.values {
            if k == "next_iv" {
                let (mid, iv) = v.split_once(' ').unwrap();
                out.entry(mid.parse().unwrap())
                    .or_default()
                    .push(hex::decode(iv).unwrap());
            }
        }
        out
    }

    /// Panics with both values when ferrosec's differs from strongSwan's.
    fn same(&self, what: &str, ferrosec: &[u8], strongswan: &[u8]) {
        assert!(
            ferrosec == strongswan,
            "{}: {what} differs\n  ferrosec:   {} ({} bytes)\n  strongSwan: {} ({} bytes)",
            self.name,
            hex::encode(ferrosec),
            ferrosec.len(),
            hex::encode(strongswan),
            strongswan.len()
        );
    }
}

/// The payloads of a decrypted message, checked to cover it up to at most one block of
/// padding (strongSwan pads a whole block when the payloads end on a block boundary).
fn payloads<'a>(f: &Fixture, d: &Dgram, plain: &'a [u8], block: usize) -> Vec<RawPayload<'a>> {
    let ps = pl::walk(d.hdr.next, plain)
        .unwrap_or_else(|| panic!("{}: datagram {} decrypts to garbage", f.name, d.n));
    let used: usize = ps.iter().map(|p| p.whole.len()).sum();
    assert!(
        plain.len() - used <= block,
        "{}: datagram {}: {} bytes after the payloads",
        f.name,
        d.n,
        plain.len() - used
    );
    ps
}

fn body_of<'a>(ps: &[RawPayload<'a>], ty: PayloadType) -> Option<&'a [u8]> {
    ps.iter().find(|p| p.ty == ty).map(|p| p.body)
}

/// A phase-2 message's HASH payload (the first) and the bytes after it that it covers.
fn hash_and_rest<'a>(ps: &[RawPayload<'a>], plain: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let h = ps
        .first()
        .filter(|p| p.ty == PayloadType::HASH)
        .expect("HASH first");
    let used: usize = ps.iter().map(|p| p.whole.len()).sum();
    (h.body, &plain[h.whole.len()..used])
}

/// The SPI and first transform of a quick-mode SA payload.
fn qm_sa(b: &[u8]) -> (Spi, pl::QmTransform) {
    let Ok(Payload::Sa(w)) = Payload::parse(PayloadType::SA, b) else {
        panic!("quick-mode SA payload");
    };
    let p = &w.proposals()[0];
    assert_eq!(p.protocol, ProtocolId::IPSEC_ESP);
    (
        p.child_spi().unwrap(),
        pl::qm_transform(&p.transforms[0], false).unwrap(),
    )
}

fn selector(b: &[u8]) -> TrafficSelector {
    let Ok(Payload::Id(id)) = Payload::parse(PayloadType::ID, b) else {
        panic!("quick-mode ID payload");
    };
    pl::selector_of(&id).unwrap()
}

/// The payloads of a message in the clear.
fn walk_plain(d: &Dgram) -> Vec<RawPayload<'_>> {
    assert!(!d.hdr.encrypted(), "datagram {} is encrypted", d.n);
    pl::walk(d.hdr.next, d.body()).unwrap()
}

fn check(text: &str, expect_expansion: bool) {
    let f = Fixture::parse(text);
    let main: Vec<&Dgram> = f
        .dgrams
        .iter()
        .filter(|d| d.hdr.exchange == ExchangeType::IDENTITY_PROTECTION)
        .collect();
    assert_eq!(main.len(), 6, "{}: main-mode messages", f.name);

    // Messages 1-4 in the clear: SAi_b, the chosen transform, KE and nonces, the cookies.
    let m1 = walk_plain(main[0]);
    let m2 = walk_plain(main[1]);
    let m3 = walk_plain(main[2]);
    let m4 = walk_plain(main[3]);
    let sa_i_b = body_of(&m1, PayloadType::SA).unwrap().to_vec();
    let Ok(Payload::Sa(answer)) =
        Payload::parse(PayloadType::SA, body_of(&m2, PayloadType::SA).unwrap())
    else {
        panic!("SA of message 2");
    };
    let t = pl::phase1_transform(&answer.proposals()[0].transforms[0]).unwrap();
    let (g_xi, ni) = (
        body_of(&m3, PayloadType::KE).unwrap(),
        body_of(&m3, PayloadType::NONCE).unwrap(),
    );
    let (g_xr, nr) = (
        body_of(&m4, PayloadType::KE).unwrap(),
        body_of(&m4, PayloadType::NONCE).unwrap(),
    );
    let (cky_i, cky_r) = (main[0].hdr.cky_i, main[1].hdr.cky_r);
    // What tshark dissected agrees with what we walked.
    f.same("CKY-I", &cky_i.0.to_be_bytes(), &f.hex("cky_i"));
    f.same("CKY-R", &cky_r.0.to_be_bytes(), &f.hex("cky_r"));
    f.same("Ni_b", ni, &f.hex("ni"));
    f.same("Nr_b", nr, &f.hex("nr"));
    f.same("g^xi", g_xi, &f.hex("g_xi"));
    f.same("g^xr", g_xr, &f.hex("g_xr"));

    // The algorithms, as phase1::set_algs takes them.
    let encr = Encryption::from_id(
        ferrosec_crypto::ids::ikev1::ike_encr_to_v2(t.encr).unwrap(),
        t.key_len,
    )
    .unwrap();
    let hash = HashAlgorithm::from_ikev1(t.hash).unwrap();
    let prf = Prf::from_hash(hash);
    let prop = pl::phase1_as_proposal(&t).unwrap();
    let selected = proposal::select(&[(1, prop.clone())], &[prop], Default::default()).unwrap();

    // The initiator's SA record as the engine keeps it.
    let cfg = PeerConfig {
        name: f.name.clone(),
        peer_addr: Some(main[0].dst.ip()),
        local_id: Some(Identity::fqdn(f.get("id_i"))),
        peer_id: Some(Identity::fqdn(f.get("id_r"))),
        psk: Secret::from_slice(f.get("psk").as_bytes()),
        ike_proposals: Vec::new(),
        policies: Vec::new(),
        liveness: None,
        nat_traversal: true,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    };
    let mut sa: Sa = new_sa(
        PeerId(1),
        Arc::new(cfg),
        None,
        Mode::Main,
        true,
        cky_i,
        cky_r,
        main[0].src,
        main[0].dst,
        crate::sim::epoch(),
    );
    sa.sa_i_b = sa_i_b.clone();
    sa.algs = Some(P1Algs {
        wire: t,
        selected,
        encr,
        hash,
        prf,
    });
    sa.g_xi = g_xi.to_vec();
    sa.g_xr = g_xr.to_vec();
    sa.ni = ni.to_vec();
    sa.nr = nr.to_vec();
    // g^xy: strongSwan's DH secret (its private value is not in the capture).
    sa.g_xy = Some(Secret::new(f.hex("g_xy")));
    sa.derive_keys().unwrap();

    // SKEYID, SKEYID_d, SKEYID_a as the SA keeps them; SKEYID_e (not kept) from the KDF.
    let keys = sa.keys.as_ref().unwrap();
    f.same("SKEYID", keys.skeyid.expose(), &f.hex("skeyid"));
    f.same("SKEYID_d", keys.skeyid_d.expose(), &f.hex("skeyid_d"));
    f.same("SKEYID_a", keys.skeyid_a.expose(), &f.hex("skeyid_a"));
    let skeyid = kdf::skeyid_psk(prf, &Secret::from_slice(f.get("psk").as_bytes()), ni, nr);
    let p1 = kdf::Phase1Keys::derive(
        prf,
        skeyid,
        &f.hex("g_xy"),
        &cky_i.0.to_be_bytes(),
        &cky_r.0.to_be_bytes(),
    );
    f.same("SKEYID_e", p1.skeyid_e.expose(), &f.hex("skeyid_e"));
    let ka = f.hex("ka");
    assert_eq!(ka.len(), encr.key_len(), "{}: key length", f.name);
    assert_eq!(
        p1.skeyid_e.len() < ka.len(),
        expect_expansion,
        "{}: Appendix B expansion exercised",
        f.name
    );
    f.same(
        "the phase-1 encryption key (kdf::encryption_key)",
        kdf::encryption_key(prf, &p1.skeyid_e, encr.key_len()).expose(),
        &ka,
    );
    f.same(
        "the phase-1 encryption key of the SA (Ka)",
        keys.enc.expose(),
        &ka,
    );
    f.same(
        "the first phase-1 IV, hash(g^xi | g^xr)",
        &sa.iv,
        &f.hex("iv_p1"),
    );

    let ivs = f.next_ivs();
    let logged = |mid: u32| ivs.get(&mid).cloned().unwrap_or_default();
    let block = encr.block_len();

    // Message 5 (IDii, HASH_I) with the first IV; message 6 (IDir, HASH_R) with the last block
    // of message 5; phase 1 ends with the last block of message 6.
    let (plain5, iv5) = sa.decrypt(&sa.iv, main[4].body()).unwrap();
    f.same(
        "the IV after message 5 (its last block)",
        &iv5,
        &main[4].body()[main[4].body().len() - block..],
    );
    let p5 = payloads(&f, main[4], &plain5, block);
    let (idi_b, hash_i) = (
        body_of(&p5, PayloadType::ID).unwrap(),
        body_of(&p5, PayloadType::HASH).unwrap(),
    );
    f.same(
        "HASH_I data (g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)",
        &[
            g_xi,
            g_xr,
            &cky_i.0.to_be_bytes(),
            &cky_r.0.to_be_bytes(),
            &sa_i_b,
            idi_b,
        ]
        .concat(),
        &f.hex("hash_i_data"),
    );
    let ours = sa.phase1_hash(true, idi_b).unwrap();
    f.same("HASH_I (strongSwan's log)", ours.expose(), &f.hex("hash_i"));
    f.same("HASH_I (message 5)", ours.expose(), hash_i);
    let (plain6, iv6) = sa.decrypt(&iv5, main[5].body()).unwrap();
    let p6 = payloads(&f, main[5], &plain6, block);
    let (idr_b, hash_r) = (
        body_of(&p6, PayloadType::ID).unwrap(),
        body_of(&p6, PayloadType::HASH).unwrap(),
    );
    f.same(
        "HASH_R data (g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)",
        &[
            g_xr,
            g_xi,
            &cky_r.0.to_be_bytes(),
            &cky_i.0.to_be_bytes(),
            &sa_i_b,
            idr_b,
        ]
        .concat(),
        &f.hex("hash_r_data"),
    );
    let ours = sa.phase1_hash(false, idr_b).unwrap();
    f.same("HASH_R (strongSwan's log)", ours.expose(), &f.hex("hash_r"));
    f.same("HASH_R (message 6)", ours.expose(), hash_r);
    // strongSwan's "next IV for MID 0": after message 5, after message 6.
    let mm_ivs = logged(0);
    assert_eq!(mm_ivs.len(), 2, "{}: phase-1 IVs logged", f.name);
    f.same("the IV after message 5", &iv5, &mm_ivs[0]);
    f.same(
        "the IV after message 6 (the last phase-1 block)",
        &iv6,
        &mm_ivs[1],
    );
    sa.iv = iv6;

    // Quick modes, in the order of their first message.
    let mut qm_mids: Vec<u32> = Vec::new();
    for d in f
        .dgrams
        .iter()
        .filter(|d| d.hdr.exchange == ExchangeType::QUICK)
    {
        if !qm_mids.contains(&d.hdr.mid) {
            qm_mids.push(d.hdr.mid);
        }
    }
    assert_eq!(qm_mids.len(), 2, "{}: quick modes", f.name);
    let mut pfs_seen = [false; 2];
    for (k, &mid) in qm_mids.iter().enumerate() {
        let qm = format!("qm{}", k + 1);
        let what = |s: &str| format!("quick mode {} (M-ID {mid:#010x}): {s}", k + 1);
        assert_eq!(
            f.get(&format!("{qm}.mid")),
            mid.to_string(),
            "{}: {qm}.mid",
            f.name
        );
        let ms: Vec<&Dgram> = f
            .dgrams
            .iter()
            .filter(|d| d.hdr.exchange == ExchangeType::QUICK && d.hdr.mid == mid)
            .collect();
        assert_eq!(ms.len(), 3, "{}: {}", f.name, what("messages"));
        assert!(ms.iter().all(|d| d.hdr.encrypted()));
        let mid_b = mid.to_be_bytes();

        // IV: hash(last phase-1 block | M-ID), then each message's last block.
        let iv0 = sa.phase2_iv(mid);
        let (plain1, iv1) = sa.decrypt(&iv0, ms[0].body()).unwrap();
        let (plain2, iv2) = sa.decrypt(&iv1, ms[1].body()).unwrap();
        let (plain3, iv3) = sa.decrypt(&iv2, ms[2].body()).unwrap();
        let chain = [iv0, iv1, iv2, iv3];
        let qm_ivs = logged(mid);
        assert_eq!(qm_ivs.len(), 4, "{}: {}", f.name, what("IVs logged"));
        for (i, (ours, theirs)) in chain.iter().zip(&qm_ivs).enumerate() {
            let s = if i == 0 {
                "the IV, hash(last phase-1 block | M-ID)".to_owned()
            } else {
                format!("the IV after message {i}")
            };
            f.same(&what(&s), ours, theirs);
        }

        // HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ])
        let q1 = payloads(&f, ms[0], &plain1, block);
        let (h1, rest1) = hash_and_rest(&q1, &plain1);
        let ours = sa.hash_a(&[&mid_b, rest1]).unwrap();
        f.same(
            &what("HASH(1) (strongSwan's log)"),
            ours.expose(),
            &f.hex(&format!("{qm}.hash1")),
        );
        f.same(&what("HASH(1) (message 1)"), ours.expose(), h1);
        let ni_q = body_of(&q1, PayloadType::NONCE).unwrap();
        let ke_i = body_of(&q1, PayloadType::KE);
        let (spi_i, _) = qm_sa(body_of(&q1, PayloadType::SA).unwrap());
        let ids: Vec<&[u8]> = q1
            .iter()
            .filter(|p| p.ty == PayloadType::ID)
            .map(|p| p.body)
            .collect();
        assert_eq!(ids.len(), 2, "{}: {}", f.name, what("IDci/IDcr"));

        // HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ])
        let q2 = payloads(&f, ms[1], &plain2, block);
        let (h2, rest2) = hash_and_rest(&q2, &plain2);
        let ours = sa.hash_a(&[&mid_b, ni_q, rest2]).unwrap();
        f.same(
            &what("HASH(2) (strongSwan's log)"),
            ours.expose(),
            &f.hex(&format!("{qm}.hash2")),
        );
        f.same(&what("HASH(2) (message 2)"), ours.expose(), h2);
        let nr_q = body_of(&q2, PayloadType::NONCE).unwrap();
        let ke_r = body_of(&q2, PayloadType::KE);
        let (spi_r, chosen) = qm_sa(body_of(&q2, PayloadType::SA).unwrap());

        // HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
        let q3 = payloads(&f, ms[2], &plain3, block);
        assert_eq!(
            q3.len(),
            1,
            "{}: {}",
            f.name,
            what("message 3 holds HASH(3) only")
        );
        let ours = sa.hash_a(&[&[0], &mid_b, ni_q, nr_q]).unwrap();
        f.same(
            &what("HASH(3) (strongSwan's log)"),
            ours.expose(),
            &f.hex(&format!("{qm}.hash3")),
        );
        f.same(&what("HASH(3) (message 3)"), ours.expose(), q3[0].body);

        // PFS: both KE payloads or neither, and strongSwan's shared secret when they are there.
        assert_eq!(
            ke_i.is_some(),
            ke_r.is_some(),
            "{}: {}",
            f.name,
            what("KE payloads")
        );
        let g_qm = f.hex_opt(&format!("{qm}.g_qm"));
        assert_eq!(
            ke_i.is_some(),
            g_qm.is_some(),
            "{}: {}",
            f.name,
            what("PFS secret logged")
        );
        pfs_seen[k] = g_qm.is_some();
        let g: &[u8] = g_qm.as_deref().unwrap_or(&[]);
        // strongSwan's KEYMAT seeds: [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b, the initiator's
        // (outbound) SA is the one whose SPI the responder chose.
        let spi_bytes = |s: Spi| s.0.to_be_bytes();
        f.same(
            &what("KEYMAT seed of the responder's SPI"),
            &[g, &[ESP], &spi_bytes(spi_r), ni_q, nr_q].concat(),
            &f.hex(&format!("{qm}.seed_i")),
        );
        f.same(
            &what("KEYMAT seed of the initiator's SPI"),
            &[g, &[ESP], &spi_bytes(spi_i), ni_q, nr_q].concat(),
            &f.hex(&format!("{qm}.seed_r")),
        );

        // KEYMAT of both SAs through the SA's own path (Sa::keymat), lengths as quick::install.
        let suite = Provider::default()
            .esp(
                u16::from(chosen.encr),
                chosen.key_len,
                chosen
                    .auth
                    .and_then(ferrosec_crypto::ids::ikev1::auth_to_v2_integ),
            )
            .unwrap();
        let (el, il) = (suite.encr_keymat_len(), suite.integ_key_len());
        let q = QuickMode {
            mid,
            state: QmState::I1,
            policy: PolicyId(1),
            iv: chain[3].clone(),
            ni: ni_q.to_vec(),
            nr: nr_q.to_vec(),
            spi_in: spi_i,
            spi_out: spi_r,
            kx: None,
            g_qm: g_qm.clone().map(Secret::new),
            offered: Vec::new(),
            chosen: Some(chosen),
            local_ts: selector(ids[0]),
            remote_ts: selector(ids[1]),
            rekey_of: None,
            retx: None,
            request_digest: Vec::new(),
            commit: false,
        };
        let out = sa.keymat(&q, q.spi_out, ESP, el + il).unwrap();
        let inb = sa.keymat(&q, q.spi_in, ESP, el + il).unwrap();
        let i_keys = [
            f.hex(&format!("{qm}.encr_i")),
            f.hex(&format!("{qm}.integ_i")),
        ]
        .concat();
        let r_keys = [
            f.hex(&format!("{qm}.encr_r")),
            f.hex(&format!("{qm}.integ_r")),
        ]
        .concat();
        f.same(
            &what(&format!(
                "KEYMAT of SPI {:08x} (initiator -> responder: encryption | integrity)",
                spi_r.0
            )),
            out.expose(),
            &i_keys,
        );
        f.same(
            &what(&format!(
                "KEYMAT of SPI {:08x} (responder -> initiator: encryption | integrity)",
                spi_i.0
            )),
            inb.expose(),
            &r_keys,
        );
    }
    assert_eq!(
        pfs_seen,
        [true, false],
        "{}: PFS in the first quick mode only",
        f.name
    );

    // Informational exchanges (the DELETEs): IV hash(last phase-1 block | M-ID),
    // HASH = prf(SKEYID_a, M-ID | payloads after HASH).
    let info: Vec<&Dgram> = f
        .dgrams
        .iter()
        .filter(|d| d.hdr.exchange == ExchangeType::INFORMATIONAL)
        .collect();
    assert!(!info.is_empty(), "{}: informational messages", f.name);
    let mut matched = 0;
    for d in info {
        let mid = d.hdr.mid;
        let iv = sa.phase2_iv(mid);
        if let Some(l) = ivs.get(&mid) {
            f.same(&format!("informational M-ID {mid:#010x}: IV"), &iv, &l[0]);
        }
        let (plain, _) = sa.decrypt(&iv, d.body()).unwrap();
        let ps = payloads(&f, d, &plain, block);
        let (h, rest) = hash_and_rest(&ps, &plain);
        let ours = sa.hash_a(&[&mid.to_be_bytes(), rest]).unwrap();
        f.same(
            &format!("informational M-ID {mid:#010x}: HASH (message)"),
            ours.expose(),
            h,
        );
        if let Some((key, _)) = f
            .values
            .iter()
            .find(|(k, v)| k.ends_with(".mid") && k.starts_with("info") && *v == mid.to_string())
        {
            let hk = key.replace(".mid", ".hash");
            f.same(
                &format!("informational M-ID {mid:#010x}: HASH (strongSwan's log)"),
                ours.expose(),
                &f.hex(&hk),
            );
            matched += 1;
        }
    }
    let logged_info = f
        .values
        .iter()
        .filter(|(k, _)| k.starts_with("info") && k.ends_with(".hash"))
        .count();
    assert_eq!(
        matched, logged_info,
        "{}: every logged informational HASH has its message",
        f.name
    );
}
