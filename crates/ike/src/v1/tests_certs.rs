//! IKEv1 signature authentication in the two-peer simulation (RFC 2409 §5.1, RFC 4754):
//! RSA and ECDSA in main and aggressive mode, and each refusal in words, with both sides'
//! values.

use std::time::Duration;

use ferrosec_wire::ikev2::{AuthMethod, IdType};
use rcgen::SignatureAlgorithm;

use super::tests::{both_up, cfg, check_crosswise, children, failures, pair_with, settings, start};
use super::{Mode, Settings};
use crate::Ike;
use crate::event::Event;
use crate::identity::Identity;
use crate::sim::{Pair, Side, epoch};
use crate::v2::tests_certs::{NOW, auth, ca, cert_of, intermediate, leaf};
use crate::v2::{CertAuth, PeerId};

/// Both gateways' credentials under one root (`CN=a` / `CN=b`, SANs a.example / b.example and
/// the addresses).
fn pki(alg: &'static SignatureAlgorithm) -> (CertAuth, CertAuth) {
    let root = ca("Root CA", alg);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &root, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    (
        auth(vec![ca_], &ka, vec![cert_of(&root)]),
        auth(vec![cb], &kb, vec![cert_of(&root)]),
    )
}

/// A pair authenticating with `a` and `b`; with `fqdn_ids` the IDs a.example / b.example
/// (matched against the SANs), else the certificates' subject DNs and no peer ID required.
fn cert_pair(seed: u64, mode: Mode, a: CertAuth, b: CertAuth, fqdn_ids: bool) -> Pair<Ike> {
    let (mut ca_, mut cb) = (cfg(Side::A), cfg(Side::B));
    if !fqdn_ids {
        for c in [&mut ca_, &mut cb] {
            c.local_id = None;
            c.peer_id = None;
        }
    }
    // The PSKs differ: only the certificates can authenticate.
    ca_.psk = ferrosec_crypto::Secret::from_slice(b"unused on side a");
    let s: Settings = settings(mode);
    with_certs(pair_with(ca_, cb, s, seed), a, b)
}

/// `p` with certificates on both sides and the engines' wall clock set.
fn with_certs(mut p: Pair<Ike>, a: CertAuth, b: CertAuth) -> Pair<Ike> {
    for (n, c) in [(&mut p.a, a), (&mut p.b, b)] {
        n.endpoint.set_certificates(PeerId(0), c).unwrap();
        n.endpoint.set_wall_clock(epoch(), NOW);
    }
    p
}

fn run(p: &mut Pair<Ike>) -> bool {
    start(p);
    p.run_until(Duration::from_secs(10), both_up)
}

fn up_info(events: &[Event]) -> Vec<&crate::event::IkeSaInfo> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaUp(i) => Some(i),
            _ => None,
        })
        .collect()
}

/// Comes up with signatures: both sides report the method and both certificates, the peer's
/// ID is its certificate's DN (or the configured FQDN), and the phase-2 keys agree.
fn comes_up(mode: Mode, alg: &'static SignatureAlgorithm, method: AuthMethod, fqdn: bool) {
    let (a, b) = pki(alg);
    let mut p = cert_pair(7, mode, a, b, fqdn);
    assert!(
        run(&mut p),
        "{mode:?} {method}: {:?} {:?}",
        failures(&p.a.events),
        failures(&p.b.events)
    );
    for (n, peer_cn) in [(&p.a, "b"), (&p.b, "a")] {
        assert!(failures(&n.events).is_empty(), "{:?}", failures(&n.events));
        let up = up_info(&n.events);
        assert_eq!(up.len(), 1);
        let i = up[0];
        assert_eq!(i.auth.local, method);
        assert_eq!(i.auth.peer, method);
        let pc = i.auth.peer_certificate.as_ref().expect("peer certificate");
        assert!(
            pc.subject.contains(&format!("CN={peer_cn}")),
            "{}",
            pc.subject
        );
        assert!(i.auth.local_certificate.is_some());
        if fqdn {
            assert_eq!(i.peer_id, Identity::fqdn(&format!("{peer_cn}.example")));
        } else {
            assert_eq!(i.peer_id.ty, IdType::DER_ASN1_DN);
            assert!(i.peer_id.to_string().contains(&format!("CN={peer_cn}")));
        }
    }
    check_crosswise(children(&p.a.events)[0], children(&p.b.events)[0]);
}

#[test]
fn rsa_main_mode_comes_up_with_dn_ids() {
    comes_up(
        Mode::Main,
        &rcgen::PKCS_RSA_SHA256,
        AuthMethod::RSA_SIG,
        false,
    );
}

#[test]
fn ecdsa_p256_main_mode_comes_up_with_fqdn_ids_from_the_sans() {
    comes_up(
        Mode::Main,
        &rcgen::PKCS_ECDSA_P256_SHA256,
        AuthMethod::ECDSA_SHA256_P256,
        true,
    );
}

#[test]
fn ecdsa_p384_main_mode_comes_up() {
    comes_up(
        Mode::Main,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        AuthMethod::ECDSA_SHA384_P384,
        false,
    );
}

#[test]
fn rsa_aggressive_mode_comes_up() {
    comes_up(
        Mode::Aggressive,
        &rcgen::PKCS_RSA_SHA256,
        AuthMethod::RSA_SIG,
        true,
    );
}

#[test]
fn ecdsa_aggressive_mode_comes_up() {
    comes_up(
        Mode::Aggressive,
        &rcgen::PKCS_ECDSA_P256_SHA256,
        AuthMethod::ECDSA_SHA256_P256,
        false,
    );
}

/// A chain through an intermediate: the intermediate travels as a second CERT payload.
#[test]
fn a_chain_through_an_intermediate_comes_up() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let sub = intermediate("Sub CA", alg, &root);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &sub, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_, cert_of(&sub)], &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(8, Mode::Main, a, b, false);
    assert!(
        run(&mut p),
        "{:?} {:?}",
        failures(&p.a.events),
        failures(&p.b.events)
    );
}

/// Runs a pair that must fail; the responder's (B's) failures.
fn refused(mut p: Pair<Ike>) -> (Vec<String>, Vec<String>) {
    start(&mut p);
    p.run_for(Duration::from_secs(10));
    assert!(children(&p.a.events).is_empty() && children(&p.b.events).is_empty());
    (failures(&p.a.events), failures(&p.b.events))
}

#[test]
fn an_untrusted_ca_is_explained_with_both_names() {
    let alg = &rcgen::PKCS_RSA_SHA256;
    let (a, _) = pki(alg);
    // B trusts another root: A's certificate leads nowhere.
    let other = ca("Other CA", alg);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &other, None);
    let b = auth(vec![cb], &kb, vec![cert_of(&other)]);
    let (_, fb) = refused(cert_pair(9, Mode::Main, a, b, false));
    assert!(
        fb.iter().any(|f| f.contains("main mode (phase 1)")
            && f.contains("not trusted")
            && f.contains("CN=a")
            && f.contains("CN=Root CA")),
        "{fb:?}"
    );
}

#[test]
fn an_expired_certificate_is_explained_with_the_dates() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &root, Some((2025, 6, 30)));
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_], &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let (_, fb) = refused(cert_pair(10, Mode::Main, a, b, false));
    assert!(
        fb.iter().any(|f| f.contains("expired on 2025-06-30")
            && f.contains("our clock says 2026-01-01")
            && f.contains("CN=a")),
        "{fb:?}"
    );
}

#[test]
fn an_id_its_certificate_does_not_vouch_for_is_explained() {
    // A calls itself x.example, which its certificate (a.example) does not name; B expects it.
    let mut ca_ = cfg(Side::A);
    ca_.local_id = Some(Identity::fqdn("x.example"));
    let mut cb = cfg(Side::B);
    cb.peer_id = Some(Identity::fqdn("x.example"));
    let (a, b) = pki(&rcgen::PKCS_RSA_SHA256);
    let p = with_certs(pair_with(ca_, cb, settings(Mode::Main), 11), a, b);
    let (_, fb) = refused(p);
    assert!(
        fb.iter().any(
            |f| f.contains("peer ID fqdn:x.example does not match its certificate")
                && f.contains("CN=a")
                && f.contains("fqdn:a.example")
        ),
        "{fb:?}"
    );
}

#[test]
fn a_configured_peer_id_other_than_the_presented_one_is_explained() {
    // B expects a DN that A's certificate does not have.
    let mut ca_ = cfg(Side::A);
    ca_.local_id = None;
    ca_.peer_id = None;
    let mut cb = cfg(Side::B);
    cb.local_id = None;
    cb.peer_id = Some(Identity::dn_text("O=Example, CN=someone-else"));
    let (a, b) = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let p = with_certs(pair_with(ca_, cb, settings(Mode::Main), 12), a, b);
    let (_, fb) = refused(p);
    assert!(
        fb.iter().any(|f| f.contains("peer ID mismatch")
            && f.contains("CN=a")
            && f.contains("someone-else")),
        "{fb:?}"
    );
}

#[test]
fn a_signature_by_another_key_is_a_bad_signature() {
    let alg = &rcgen::PKCS_RSA_SHA256;
    let root = ca("Root CA", alg);
    let (ca_, _) = leaf("a", "192.0.2.1", alg, &root, None);
    let (_, wrong_key) = leaf("a2", "192.0.2.1", alg, &root, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_], &wrong_key, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let (_, fb) = refused(cert_pair(13, Mode::Main, a, b, false));
    assert!(
        fb.iter().any(|f| f.contains("bad signature")
            && f.contains("RSA signatures (3)")
            && f.contains("CN=a")),
        "{fb:?}"
    );
}

#[test]
fn rsa_against_ecdsa_names_both_methods() {
    let (a, _) = pki(&rcgen::PKCS_RSA_SHA256);
    let (_, b) = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, fb) = refused(cert_pair(14, Mode::Main, a, b, false));
    assert!(
        fb.iter().any(
            |f| f.contains("offers IKEv1 authentication by RSA signatures (3)")
                && f.contains("ECDSA P-256 signatures (9)")
        ),
        "{fb:?}"
    );
}

#[test]
fn a_pre_shared_key_peer_against_certificates_names_both_methods() {
    let (_, b) = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut p = pair_with(cfg(Side::A), cfg(Side::B), settings(Mode::Main), 15);
    p.b.endpoint.set_certificates(PeerId(0), b).unwrap();
    p.b.endpoint.set_wall_clock(epoch(), NOW);
    let (_, fb) = refused(p);
    assert!(
        fb.iter()
            .any(|f| f.contains("pre-shared key (1)") && f.contains("ECDSA P-256")),
        "{fb:?}"
    );
}

/// The initiator refuses the responder's message 6 (its certificate expired): it says why,
/// and the responder, which counted its SA up when it sent message 6, is told and deletes it.
#[test]
fn the_initiator_refusing_message_6_deletes_the_sa_on_the_responder() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &root, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, Some((2025, 12, 31)));
    let a = auth(vec![ca_], &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(16, Mode::Main, a, b, false);
    start(&mut p);
    p.run_for(Duration::from_secs(10));
    let fa = failures(&p.a.events);
    assert!(
        fa.iter()
            .any(|f| f.contains("CN=b") && f.contains("expired on 2025-12-31")),
        "{fa:?}"
    );
    assert!(up_info(&p.a.events).is_empty());
    let b_up = up_info(&p.b.events).len();
    let b_down =
        p.b.events
            .iter()
            .filter(|e| matches!(e, Event::IkeSaDown { .. }))
            .count();
    assert_eq!(b_up, b_down, "{:?}", p.b.events);
    assert!(children(&p.b.events).is_empty());
}

/// A chain of five (the gateway and three intermediates under the root) on both sides.
fn chains_of_five(alg: &'static SignatureAlgorithm) -> (CertAuth, CertAuth) {
    let root = ca("Root CA", alg);
    let mut out = Vec::new();
    for (host, addr) in [("a", "192.0.2.1"), ("b", "192.0.2.2")] {
        let mut issuers = Vec::new();
        for n in 1..=3 {
            let next = intermediate(
                &format!("Intermediate {host}{n}"),
                alg,
                issuers.last().unwrap_or(&root),
            );
            issuers.push(next);
        }
        let (c, k) = leaf(host, addr, alg, &issuers[2], None);
        let mut chain = vec![c];
        chain.extend(issuers.iter().rev().map(cert_of));
        out.push(auth(chain, &k, vec![cert_of(&root)]));
    }
    let b = out.pop().unwrap();
    (out.pop().unwrap(), b)
}

/// A path that drops every datagram above 1280 bytes of IP (as one dropping IP fragments does).
const PATH: usize = 1280 - 20 - 8;

/// IKEv1 fragmentation (the FRAGMENTATION vendor ID, payload 132): chains of five RSA
/// certificates cross a path that drops IP fragments, both ways, in main and aggressive mode;
/// no datagram exceeds the path.
#[test]
fn chains_of_five_cross_a_path_that_drops_ip_fragments_in_fragments() {
    for (seed, mode) in [(20, Mode::Main), (21, Mode::Aggressive)] {
        let (a, b) = chains_of_five(&rcgen::PKCS_RSA_SHA256);
        let mut p = cert_pair(seed, mode, a, b, false);
        p.mtu = PATH;
        assert!(
            run(&mut p),
            "{mode:?}: {:?} {:?} {:?}",
            failures(&p.a.events),
            failures(&p.b.events),
            p.stats
        );
        assert_eq!(p.stats.too_big, 0, "{mode:?}");
        check_crosswise(children(&p.a.events)[0], children(&p.b.events)[0]);
    }
}

/// The control: B does not allow fragmentation, so neither side fragments, the large messages
/// do not fit the path, and nothing comes up.
#[test]
fn without_fragmentation_chains_of_five_are_lost_on_that_path() {
    let (a, b) = chains_of_five(&rcgen::PKCS_RSA_SHA256);
    let (mut ca_, mut cb) = (cfg(Side::A), cfg(Side::B));
    for c in [&mut ca_, &mut cb] {
        c.local_id = None;
        c.peer_id = None;
    }
    cb.fragmentation = false;
    let mut p = with_certs(pair_with(ca_, cb, settings(Mode::Main), 22), a, b);
    p.mtu = PATH;
    start(&mut p);
    p.run_for(Duration::from_secs(10));
    assert!(children(&p.a.events).is_empty());
    assert!(p.stats.too_big > 0);
}
