//! Certificate authentication in the two-peer simulation (RFC 7296 §3.6–3.8, RFC 7427): RSA
//! and ECDSA pairs, a chain through an intermediate, and each refusal in words.

use std::sync::Arc;
use std::time::Duration;

use ferrosec_crypto::sig::SigningKey;
use ferrosec_crypto::x509::Certificate;
use ferrosec_wire::ikev2::CertEncoding;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    SignatureAlgorithm,
};

use super::tests::{both_up, cfg, failures, initiate, pair_with};
use super::*;
use crate::sim::{Pair, Side, epoch};

/// 2026-01-01T00:00:00Z: the engines' wall clock.
pub(crate) const NOW: u64 = 1_767_225_600;

pub(crate) type Issuer = CertifiedIssuer<'static, KeyPair>;

pub(crate) fn ca(name: &str, alg: &'static SignatureAlgorithm) -> Issuer {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::OrganizationName, "Example");
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate_for(alg).unwrap()).unwrap()
}

pub(crate) fn intermediate(name: &str, alg: &'static SignatureAlgorithm, by: &Issuer) -> Issuer {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::OrganizationName, "Example");
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::signed_by(p, KeyPair::generate_for(alg).unwrap(), by).unwrap()
}

/// A gateway certificate `CN=<host>` with SANs `<host>.example` and its address, issued by
/// `by`; `not_after` a date (default: rcgen's far future).
pub(crate) fn leaf(
    host: &str,
    addr: &str,
    alg: &'static SignatureAlgorithm,
    by: &Issuer,
    not_after: Option<(i32, u8, u8)>,
) -> (Certificate, KeyPair) {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut p = CertificateParams::new(vec![format!("{host}.example")]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress(addr.parse().unwrap()));
    p.distinguished_name
        .push(DnType::OrganizationName, "Example");
    p.distinguished_name.push(DnType::CommonName, host);
    if let Some((y, m, d)) = not_after {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(y, m, d);
    }
    let c = p.signed_by(&key, by).unwrap();
    (Certificate::from_der(c.der()).unwrap(), key)
}

pub(crate) fn cert_of(i: &Issuer) -> Certificate {
    Certificate::from_der(i.der()).unwrap()
}

pub(crate) fn auth(chain: Vec<Certificate>, key: &KeyPair, anchors: Vec<Certificate>) -> CertAuth {
    CertAuth {
        hash_and_url: None,
        fetch_hash_and_url: false,
        key: Arc::new(SigningKey::from_der(&key.serialize_der()).unwrap()),
        chain,
        trust_anchors: anchors,
        crls: Vec::new(),
        fetch_crls: false,
    }
}

/// A pair whose gateways authenticate with `a` and `b`: with `fqdn_ids` the IDs of [`cfg`]
/// (a.example, b.example), else the certificates' subject DNs and no peer ID required.
pub(super) fn cert_pair(seed: u64, a: CertAuth, b: CertAuth, fqdn_ids: bool) -> Pair<Endpoint> {
    let (mut ca, mut cb) = (cfg(Side::A), cfg(Side::B));
    if !fqdn_ids {
        for c in [&mut ca, &mut cb] {
            c.local_id = None;
            c.peer_id = None;
        }
    }
    // Certificates, not the PSK, must be what authenticates.
    ca.psk = ferrosec_crypto::Secret::from_slice(b"unused on side a");
    let mut p = pair_with(seed, ca, cb, EndpointConfig::default());
    p.a.endpoint.set_certificates(PeerId(0), a).unwrap();
    p.b.endpoint.set_certificates(PeerId(0), b).unwrap();
    p.a.endpoint.set_wall_clock(epoch(), NOW);
    p.b.endpoint.set_wall_clock(epoch(), NOW);
    p
}

/// Both gateways' credentials under one root.
fn pki(alg: &'static SignatureAlgorithm) -> (Issuer, CertAuth, CertAuth) {
    let root = ca("Root CA", alg);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &root, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_], &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    (root, a, b)
}

pub(super) fn run(p: &mut Pair<Endpoint>) {
    initiate(p);
    p.run_for(Duration::from_secs(10));
}

/// The one failure a side reports, in words.
fn failure(p: &Pair<Endpoint>, side: Side) -> (Failure, String) {
    let n = match side {
        Side::A => &p.a,
        Side::B => &p.b,
    };
    let f = failures(n);
    assert_eq!(f.len(), 1, "{f:?}");
    (f[0].0.clone(), f[0].0.to_string())
}

fn peer_ids(p: &Pair<Endpoint>) -> Vec<Identity> {
    p.a.events
        .iter()
        .chain(p.b.events.iter())
        .filter_map(|e| match e {
            Event::IkeSaUp(i) => Some(i.peer_id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn ecdsa_pair_comes_up_with_dn_ids() {
    for (seed, alg) in [
        (1, &rcgen::PKCS_ECDSA_P256_SHA256),
        (2, &rcgen::PKCS_ECDSA_P384_SHA384),
    ] {
        let (_, a, b) = pki(alg);
        let (da, db) = (a.chain[0].subject_der(), b.chain[0].subject_der());
        let mut p = cert_pair(seed, a, b, false);
        run(&mut p);
        assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));
        // Each side saw the other's subject DN as its ID.
        assert_eq!(peer_ids(&p), [Identity::der_dn(&db), Identity::der_dn(&da)]);
        assert_eq!(peer_ids(&p)[0].to_string(), "dn:\"CN=b, O=Example\"");
    }
}

#[test]
fn rsa_pair_comes_up_with_fqdn_ids_from_the_san() {
    let (_, a, b) = pki(&rcgen::PKCS_RSA_SHA256);
    let mut p = cert_pair(3, a, b, true);
    run(&mut p);
    assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));
    assert_eq!(
        peer_ids(&p),
        [Identity::fqdn("b.example"), Identity::fqdn("a.example")]
    );
}

#[test]
fn a_peer_without_signature_hash_algorithms_gets_rfc_4754_ecdsa() {
    let (_, a, b) = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let key = a.key.clone();
    let (m, sig) = certauth::sign(&*key, None, b"octets").unwrap();
    assert_eq!(m, ferrosec_wire::ikev2::AuthMethod::ECDSA_SHA256_P256);
    assert_eq!(sig.len(), 64, "fixed r|s");
    certauth::verify(m, &sig, &a.chain[0], b"octets").unwrap();
    let (m, sig) = certauth::sign(&*key, Some(&[2, 3, 4]), b"octets").unwrap();
    assert_eq!(m, ferrosec_wire::ikev2::AuthMethod::DIGITAL_SIGNATURE);
    certauth::verify(m, &sig, &a.chain[0], b"octets").unwrap();
    let e = certauth::verify(m, &sig, &b.chain[0], b"octets").unwrap_err();
    assert!(matches!(e, Failure::BadSignature { .. }), "{e}");
}

#[test]
fn a_chain_with_an_intermediate_validates() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let sub = intermediate("Sub CA", alg, &root);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &sub, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    // A sends its certificate then the intermediate; B trusts the root only.
    let a = auth(vec![ca_, cert_of(&sub)], &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(4, a.clone(), b, false);
    run(&mut p);
    assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));

    // Without the intermediate, B names the certificate and the issuer it lacks.
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &sub, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_], &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(5, a, b, false);
    run(&mut p);
    let (f, text) = failure(&p, Side::B);
    assert!(matches!(f, Failure::UntrustedIssuer { .. }), "{f:?}");
    assert!(
        text.contains("\"CN=a, O=Example\" was issued by \"CN=Sub CA, O=Example\""),
        "{text}"
    );
}

#[test]
fn an_untrusted_ca_is_named() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let (_, a, mut b) = pki(alg);
    b.trust_anchors = vec![cert_of(&ca("Other Root", alg))];
    let mut p = cert_pair(6, a, b, false);
    run(&mut p);
    let (f, text) = failure(&p, Side::B);
    assert_eq!(
        f,
        Failure::UntrustedIssuer {
            subject: "CN=a, O=Example".into(),
            issuer: "CN=Root CA, O=Example".into()
        }
    );
    assert!(text.contains("not one of our CA certificates"), "{text}");
    // A learns only that B refused.
    let (f, _) = failure(&p, Side::A);
    assert!(matches!(f, Failure::PeerRefused { .. }), "{f:?}");

    // The responder's certificate is checked by the initiator as well.
    let (_, mut a, b) = pki(alg);
    a.trust_anchors = vec![cert_of(&ca("Other Root", alg))];
    let mut p = cert_pair(7, a, b, false);
    run(&mut p);
    let (f, _) = failure(&p, Side::A);
    assert!(matches!(f, Failure::UntrustedIssuer { .. }), "{f:?}");
}

#[test]
fn an_expired_certificate_is_refused_with_its_date() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    // Expired 2025-06-01T00:00:00Z.
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &root, Some((2025, 6, 1)));
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_], &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(8, a, b, false);
    run(&mut p);
    let (f, text) = failure(&p, Side::B);
    assert!(matches!(f, Failure::CertificateExpired { .. }), "{f:?}");
    assert_eq!(
        text,
        "the peer's certificate \"CN=a, O=Example\" expired on 2025-06-01 00:00:00 UTC (our \
         clock says 2026-01-01 00:00:00 UTC)"
    );
    // The same certificate is good again with the clock set back: time is an input.
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &root, Some((2025, 6, 1)));
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_], &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(9, a, b, false);
    p.a.endpoint.set_wall_clock(epoch(), 1_700_000_000);
    p.b.endpoint.set_wall_clock(epoch(), 1_700_000_000);
    run(&mut p);
    assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));
}

#[test]
fn an_id_its_certificate_does_not_name_is_refused() {
    // A calls itself c.example, which its certificate does not name; B expects that.
    let mut ca = cfg(Side::A);
    ca.local_id = Some(Identity::fqdn("c.example"));
    let mut cb = cfg(Side::B);
    cb.peer_id = Some(Identity::fqdn("c.example"));
    let (_, a, b) = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut p = pair_with(10, ca, cb, EndpointConfig::default());
    p.a.endpoint.set_certificates(PeerId(0), a).unwrap();
    p.b.endpoint.set_certificates(PeerId(0), b).unwrap();
    p.a.endpoint.set_wall_clock(epoch(), NOW);
    p.b.endpoint.set_wall_clock(epoch(), NOW);
    run(&mut p);
    let (f, text) = failure(&p, Side::B);
    assert!(matches!(f, Failure::CertificateIdMismatch { .. }), "{f:?}");
    assert_eq!(
        text,
        "peer ID fqdn:c.example does not match its certificate (subject \"CN=a, O=Example\", \
         SAN fqdn:a.example, ipaddr:192.0.2.1)"
    );
}

#[test]
fn a_signature_by_another_key_is_a_bad_signature() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let (_, mut a, b) = pki(alg);
    // A presents its certificate but holds another key.
    a.key = Arc::new(
        SigningKey::from_der(&KeyPair::generate_for(alg).unwrap().serialize_der()).unwrap(),
    );
    let mut p = cert_pair(11, a, b, false);
    run(&mut p);
    let (f, text) = failure(&p, Side::B);
    assert!(matches!(f, Failure::BadSignature { .. }), "{f:?}");
    assert!(
        text.starts_with("bad signature: the peer's AUTH (ECDSA P-256 with SHA-256"),
        "{text}"
    );
    assert!(text.contains("\"CN=a, O=Example\""), "{text}");
}

#[test]
fn a_psk_peer_against_a_certificate_gateway_is_told_apart() {
    let (_, _, b) = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut p = pair_with(12, cfg(Side::A), cfg(Side::B), EndpointConfig::default());
    p.b.endpoint.set_certificates(PeerId(0), b).unwrap();
    p.b.endpoint.set_wall_clock(epoch(), NOW);
    run(&mut p);
    let (_, text) = failure(&p, Side::B);
    assert_eq!(
        text,
        "the peer authenticated with SHARED_KEY_MIC, but this gateway uses certificates"
    );
}

#[test]
fn without_a_wall_clock_certificates_are_not_trusted() {
    let (_, a, b) = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (mut ca, mut cb) = (cfg(Side::A), cfg(Side::B));
    for c in [&mut ca, &mut cb] {
        c.local_id = None;
        c.peer_id = None;
    }
    let mut p = pair_with(13, ca, cb, EndpointConfig::default());
    p.a.endpoint.set_certificates(PeerId(0), a).unwrap();
    p.b.endpoint.set_certificates(PeerId(0), b).unwrap();
    p.a.endpoint.set_wall_clock(epoch(), NOW);
    run(&mut p);
    let (f, _) = failure(&p, Side::B);
    assert_eq!(f, Failure::Local(LocalError::NoWallClock));
}

/// Hash-and-URL (§3.6): to a peer that fetches, our certificate goes as its SHA-1 and URL
/// (the intermediates whole); to one that does not (this engine never announces
/// HTTP_CERT_LOOKUP_SUPPORTED), whole, so a pair with a URL configured still comes up.
#[test]
fn hash_and_url_is_sent_only_to_a_peer_that_fetches() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let sub = intermediate("Sub CA", alg, &root);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &sub, None);
    let url = "http://192.0.2.1:8080/a.der";
    let a = CertAuth {
        hash_and_url: Some(url.into()),
        ..auth(vec![ca_.clone(), cert_of(&sub)], &ka, vec![cert_of(&root)])
    };
    let fetching = a.cert_payloads(true);
    assert_eq!(fetching.len(), 2);
    assert_eq!(fetching[0].0, CertEncoding::HASH_URL_X509_CERT);
    assert_eq!(fetching[0].1[..20], ca_.sha1()[..]);
    assert_eq!(&fetching[0].1[20..], url.as_bytes());
    assert_eq!(
        fetching[1],
        (CertEncoding::X509_SIGNATURE, cert_of(&sub).der().to_vec())
    );
    let whole = a.cert_payloads(false);
    assert!(
        whole
            .iter()
            .all(|(e, _)| *e == CertEncoding::X509_SIGNATURE)
    );
    assert_eq!(whole[0].1, ca_.der());

    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(8, a, b, false);
    run(&mut p);
    assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));
}

/// The fetch requests a node reported so far: (IKE SA, URL).
fn fetch_requests(n: &crate::sim::Node<Endpoint>) -> Vec<(IkeSaHandle, String)> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::FetchCertificate { handle, url, .. } => Some((*handle, url.clone())),
            _ => None,
        })
        .collect()
}

/// Hash-and-URL received (§3.6): B announces HTTP_CERT_LOOKUP_SUPPORTED, A sends its
/// certificate as hash and URL, B's IKE_AUTH waits for the daemon's fetch and goes on with
/// what was fetched; what does not match the hash, or a fetch that fails, is refused in words.
#[test]
fn a_fetched_certificate_completes_the_ike_auth_and_a_wrong_one_is_refused() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &root, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let url = "http://192.0.2.1:8080/a.der";
    let a = CertAuth {
        hash_and_url: Some(url.into()),
        ..auth(vec![ca_.clone()], &ka, vec![cert_of(&root)])
    };
    let b = CertAuth {
        fetch_hash_and_url: true,
        ..auth(vec![cb.clone()], &kb, vec![cert_of(&root)])
    };
    for (seed, answer) in [
        (30u64, Ok(ca_.der().to_vec())),
        (31, Ok(cb.der().to_vec())),
        (32, Err("connection refused".to_owned())),
    ] {
        let mut p = cert_pair(seed, a.clone(), b.clone(), false);
        initiate(&mut p);
        p.run_for(Duration::from_secs(2));
        let asked = fetch_requests(&p.b);
        assert_eq!(
            asked.len(),
            1,
            "B asks for A's certificate once: {:?}",
            p.b.events
        );
        assert_eq!(asked[0].1, url);
        assert!(!both_up(&mut p), "nothing is up before the fetch");
        // A's retransmissions meanwhile do not ask again.
        p.run_for(Duration::from_secs(3));
        assert_eq!(fetch_requests(&p.b).len(), 1);
        let now = p.time;
        p.b.endpoint
            .certificate_fetched(now, asked[0].0, url, answer.clone());
        p.run_for(Duration::from_secs(5));
        match (seed, answer) {
            (30, _) => {
                assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b))
            }
            (31, _) => {
                let (f, text) = failure(&p, Side::B);
                assert!(matches!(f, Failure::CertificateFetch { .. }), "{f:?}");
                assert!(text.contains("does not match the SHA-1 hash"), "{text}");
                assert!(!both_up(&mut p));
            }
            _ => {
                let (_, text) = failure(&p, Side::B);
                assert!(
                    text.contains(&format!(
                        "could not be fetched from {url}: connection refused"
                    )),
                    "{text}"
                );
            }
        }
    }
}

fn ike_up_auth(n: &crate::sim::Node<Endpoint>) -> Vec<AuthInfo> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaUp(i) => Some(i.auth.clone()),
            Event::IkeSaRekeyed { new, .. } => Some(new.auth.clone()),
            _ => None,
        })
        .collect()
}

/// `show vpn ike-sa` reads the AUTH methods and both certificates off the IKE SA up event;
/// an IKE SA rekey (no new authentication) keeps them; a PSK pair says psk.
#[test]
fn the_ike_sa_up_event_says_how_each_side_authenticated() {
    use ferrosec_wire::ikev2::AuthMethod;
    let (_, a, b) = pki(&rcgen::PKCS_ECDSA_P384_SHA384);
    let not_after_b = b.chain[0].validity().1;
    let mut p = cert_pair(30, a, b, false);
    run(&mut p);
    assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));
    for (n, ours, theirs) in [
        (&p.a, "CN=a, O=Example", "CN=b, O=Example"),
        (&p.b, "CN=b, O=Example", "CN=a, O=Example"),
    ] {
        let auth = ike_up_auth(n);
        assert_eq!(auth.len(), 1, "{auth:?}");
        let auth = &auth[0];
        // Both announced SIGNATURE_HASH_ALGORITHMS: RFC 7427 both ways.
        assert_eq!(auth.local, AuthMethod::DIGITAL_SIGNATURE);
        assert_eq!(auth.peer, AuthMethod::DIGITAL_SIGNATURE);
        let local = auth.local_certificate.as_deref().unwrap();
        let peer = auth.peer_certificate.as_deref().unwrap();
        assert_eq!(local.subject, ours);
        assert_eq!(peer.subject, theirs);
        assert_eq!(peer.issuer, "CN=Root CA, O=Example");
        assert_eq!(local.issuer, "CN=Root CA, O=Example");
        assert_eq!(AuthInfo::method_name(auth.peer), "digital-signature");
    }
    assert_eq!(
        ike_up_auth(&p.a)[0]
            .peer_certificate
            .as_ref()
            .unwrap()
            .not_after,
        not_after_b
    );
    // An IKE SA rekey carries the same authentication.
    let h =
        p.a.events
            .iter()
            .find_map(|e| match e {
                Event::IkeSaUp(i) => Some(i.handle),
                _ => None,
            })
            .unwrap();
    let now = p.time;
    p.a.endpoint.rekey_ike_sa(now, h).unwrap();
    p.run_for(Duration::from_secs(5));
    let after = ike_up_auth(&p.a);
    assert_eq!(after.len(), 2, "no IkeSaRekeyed: {:?}", failures(&p.a));
    assert_eq!(after[0], after[1]);

    // A peer that does not announce SIGNATURE_HASH_ALGORITHMS gets RFC 4754 ECDSA (method
    // 10 for P-384); tested at the signing step, the name is what show prints.
    assert_eq!(
        AuthInfo::method_name(AuthMethod::ECDSA_SHA384_P384),
        "ecdsa-384"
    );
    assert_eq!(AuthInfo::method_name(AuthMethod::RSA_SIG), "rsa");

    // Pre-shared key: psk both ways, no certificates.
    let mut p = pair_with(31, cfg(Side::A), cfg(Side::B), EndpointConfig::default());
    run(&mut p);
    assert!(both_up(&mut p));
    for n in [&p.a, &p.b] {
        assert_eq!(ike_up_auth(n), [AuthInfo::psk()]);
    }
}

#[test]
fn a_certificate_not_yet_valid_is_refused_with_its_dates() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "a");
    params.not_before = rcgen::date_time_ymd(2026, 3, 1);
    params.not_after = rcgen::date_time_ymd(2027, 3, 1);
    let ca_ = Certificate::from_der(params.signed_by(&key, &root).unwrap().der()).unwrap();
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_], &key, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(32, a, b, false);
    run(&mut p);
    let (f, text) = failure(&p, Side::B);
    assert!(matches!(f, Failure::CertificateNotYetValid { .. }), "{f:?}");
    assert_eq!(
        text,
        "the peer's certificate \"CN=a\" is not valid before 2026-03-01 00:00:00 UTC (our clock \
         says 2026-01-01 00:00:00 UTC)"
    );
}

/// R-V2-9: at most 5 certificates (the peer's own and 4 intermediates); a sixth is refused
/// in words that say what to change.
#[test]
fn a_chain_longer_than_five_is_refused_and_says_so() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let mut issuers = vec![intermediate("Sub 1", alg, &root)];
    for i in 2..=5 {
        let next = intermediate(&format!("Sub {i}"), alg, issuers.last().unwrap());
        issuers.push(next);
    }
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, issuers.last().unwrap(), None);
    let mut chain = vec![ca_];
    chain.extend(issuers.iter().rev().map(cert_of));
    assert_eq!(chain.len(), 6);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(chain, &ka, vec![cert_of(&root)]);
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(33, a, b, false);
    run(&mut p);
    let (f, text) = failure(&p, Side::B);
    assert_eq!(
        f,
        Failure::ChainTooLong {
            subject: "CN=a, O=Example".into(),
            len: 6
        }
    );
    assert_eq!(
        text,
        "the peer's certificate \"CN=a, O=Example\" came with a chain of 6 certificates (its own \
         and 5 intermediates); at most 5 are accepted: the peer must send fewer intermediates \
         (never the root CA)"
    );
}

/// A CRL of `by` revoking `revoked` (keyCompromise on 2025-12-02), next update 2026-02-01.
fn crl_of(by: &Issuer, revoked: &[&Certificate]) -> ferrosec_crypto::crl::Crl {
    use rcgen::{
        CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams,
        SerialNumber, date_time_ymd,
    };
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(2025, 12, 1),
        next_update: date_time_ymd(2026, 2, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|c| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&c.serial()),
                revocation_time: date_time_ymd(2025, 12, 2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    ferrosec_crypto::crl::Crl::from_der(params.signed_by(by).unwrap().der()).unwrap()
}

/// Revocation (RFC 5280 §6.3): B holds its CA's CRL; A's certificate on it fails the IKE_AUTH
/// with the certificate, serial, CRL issuer, date and reason in B's words, and A hears
/// AUTHENTICATION_FAILED. The same CRL not listing A lets it in; the initiator checks the
/// responder's certificate against its CRLs as well.
#[test]
fn a_revoked_peer_certificate_fails_authentication_with_the_reason() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root = ca("Root CA", alg);
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &root, None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_.clone()], &ka, vec![cert_of(&root)]);
    let b = CertAuth {
        crls: vec![crl_of(&root, &[&ca_])],
        ..auth(vec![cb.clone()], &kb, vec![cert_of(&root)])
    };
    let mut p = cert_pair(40, a.clone(), b, false);
    run(&mut p);
    let (f, text) = failure(&p, Side::B);
    assert!(matches!(f, Failure::CertificateRevoked(_)), "{f:?}");
    let serial = ferrosec_crypto::crl::serial_hex(&ca_.serial());
    assert_eq!(
        text,
        format!(
            "peer certificate \"CN=a, O=Example\" serial {serial} revoked by \"CN=Root CA, \
             O=Example\" on 2025-12-02 00:00:00 UTC (reason keyCompromise)"
        )
    );
    let (f, _) = failure(&p, Side::A);
    assert!(matches!(f, Failure::PeerRefused { .. }), "{f:?}");

    // A CRL of the same CA that revokes someone else: up.
    let (other, _) = leaf("c", "192.0.2.3", alg, &root, None);
    let b = CertAuth {
        crls: vec![crl_of(&root, &[&other])],
        ..auth(vec![cb.clone()], &kb, vec![cert_of(&root)])
    };
    let mut p = cert_pair(41, a.clone(), b, false);
    run(&mut p);
    assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));

    // The initiator refuses a revoked responder.
    let a = CertAuth {
        crls: vec![crl_of(&root, &[&cb])],
        ..a
    };
    let b = auth(vec![cb], &kb, vec![cert_of(&root)]);
    let mut p = cert_pair(42, a, b, false);
    run(&mut p);
    let (f, text) = failure(&p, Side::A);
    assert!(matches!(f, Failure::CertificateRevoked(_)), "{f:?}");
    assert!(
        text.starts_with("peer certificate \"CN=b, O=Example\""),
        "{text}"
    );
}

/// A gateway certificate like [`leaf`]'s that names a CRL distribution point.
fn leaf_with_cdp(host: &str, addr: &str, by: &Issuer, url: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(vec![format!("{host}.example")]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress(addr.parse().unwrap()));
    p.distinguished_name
        .push(DnType::OrganizationName, "Example");
    p.distinguished_name.push(DnType::CommonName, host);
    p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec![url.to_owned()],
    }];
    let c = p.signed_by(&key, by).unwrap();
    (Certificate::from_der(c.der()).unwrap(), key)
}

/// The CRL fetch requests a node reported so far: (IKE SA, URL).
fn crl_requests(n: &crate::sim::Node<Endpoint>) -> Vec<(IkeSaHandle, String)> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::FetchCrl { handle, url, .. } => Some((*handle, url.clone())),
            _ => None,
        })
        .collect()
}

/// `crl-fetch` (RFC 5280 §4.2.1.13): A's certificate names a distribution point; B's
/// IKE_AUTH waits for the daemon's fetch. A CRL of A's CA that revokes A fails the
/// authentication with the reason, and is kept: the next IKE_AUTH is refused without asking
/// again. A fetch that fails, a CRL signed by another key, or garbage: the certificate is
/// accepted (strongSwan's default policy) and `crl_fetched` says why the CRL is not used; a
/// failure is not asked again at once either.
#[test]
fn a_crl_from_the_distribution_point_is_fetched_before_the_ike_auth_goes_on() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let url = "http://192.0.2.80/root.crl";
    let root = ca("Root CA", alg);
    let (ca_, ka) = leaf_with_cdp("a", "192.0.2.1", &root, url);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = auth(vec![ca_.clone()], &ka, vec![cert_of(&root)]);
    let b = CertAuth {
        fetch_crls: true,
        ..auth(vec![cb], &kb, vec![cert_of(&root)])
    };
    let revoking = crl_of(&root, &[&ca_]).der().to_vec();
    let forged = crl_of(&ca("Root CA", alg), &[&ca_]).der().to_vec();
    type Answer = Result<Vec<u8>, String>;
    let cases: [(u64, Answer, &str); 4] = [
        (50, Ok(revoking), ""),
        (51, Err("connection refused".into()), "connection refused"),
        (52, Ok(forged), "is not signed by \"CN=Root CA, O=Example\""),
        (53, Ok(b"not a CRL".to_vec()), "malformed CRL"),
    ];
    for (seed, answer, why) in cases {
        let mut p = cert_pair(seed, a.clone(), b.clone(), false);
        initiate(&mut p);
        p.run_for(Duration::from_secs(2));
        let asked = crl_requests(&p.b);
        assert_eq!(asked.len(), 1, "{:?}", p.b.events);
        assert_eq!(asked[0].1, url);
        assert!(!both_up(&mut p), "nothing is up before the fetch");
        p.run_for(Duration::from_secs(2));
        assert_eq!(
            crl_requests(&p.b).len(),
            1,
            "retransmissions do not ask again"
        );
        let now = p.time;
        let got = p.b.endpoint.crl_fetched(now, asked[0].0, url, answer);
        p.run_for(Duration::from_secs(5));
        if seed == 50 {
            let crl = got.unwrap();
            assert_eq!(crl.revoked_count(), 1);
            let (f, text) = failure(&p, Side::B);
            assert!(matches!(f, Failure::CertificateRevoked(_)), "{f:?}");
            assert!(text.contains("reason keyCompromise"), "{text}");
            assert_eq!(p.b.endpoint.fetched_crls().len(), 1);
        } else {
            let e = got.unwrap_err();
            assert!(e.contains(why), "{e}");
            assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));
            assert!(p.b.endpoint.fetched_crls().is_empty());
        }
        // The next IKE_AUTH does not ask again: the CRL is held, or the failure is recent.
        let before = failures(&p.b).len();
        initiate(&mut p);
        p.run_for(Duration::from_secs(10));
        assert_eq!(crl_requests(&p.b).len(), 1, "seed {seed}: {:?}", p.b.events);
        if seed == 50 {
            let f = failures(&p.b);
            assert_eq!(f.len(), before + 1, "{f:?}");
            assert!(
                matches!(f[before].0, Failure::CertificateRevoked(_)),
                "{f:?}"
            );
        }
    }
}

/// A certificate that comes as hash and URL names its distribution point only once fetched:
/// B fetches the certificate, then its CRL, then decides (revoked: refused with the reason).
#[test]
fn the_distribution_point_of_a_certificate_fetched_by_hash_and_url_is_fetched_too() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let (cert_url, crl_url) = ("http://192.0.2.1:8080/a.der", "http://192.0.2.80/root.crl");
    let root = ca("Root CA", alg);
    let (ca_, ka) = leaf_with_cdp("a", "192.0.2.1", &root, crl_url);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let a = CertAuth {
        hash_and_url: Some(cert_url.into()),
        ..auth(vec![ca_.clone()], &ka, vec![cert_of(&root)])
    };
    let b = CertAuth {
        fetch_hash_and_url: true,
        fetch_crls: true,
        ..auth(vec![cb], &kb, vec![cert_of(&root)])
    };
    let mut p = cert_pair(60, a, b, false);
    initiate(&mut p);
    p.run_for(Duration::from_secs(2));
    let asked = fetch_requests(&p.b);
    assert_eq!(asked.len(), 1, "{:?}", p.b.events);
    assert!(crl_requests(&p.b).is_empty(), "the CDP is not known yet");
    let now = p.time;
    p.b.endpoint
        .certificate_fetched(now, asked[0].0, cert_url, Ok(ca_.der().to_vec()));
    p.run_for(Duration::from_secs(1));
    let crls = crl_requests(&p.b);
    assert_eq!(crls.len(), 1, "{:?}", p.b.events);
    assert_eq!(crls[0].1, crl_url);
    assert!(!both_up(&mut p), "still waiting for the CRL");
    let now = p.time;
    let revoking = crl_of(&root, &[&ca_]).der().to_vec();
    p.b.endpoint
        .crl_fetched(now, crls[0].0, crl_url, Ok(revoking))
        .unwrap();
    p.run_for(Duration::from_secs(5));
    let (f, _) = failure(&p, Side::B);
    assert!(matches!(f, Failure::CertificateRevoked(_)), "{f:?}");
}
