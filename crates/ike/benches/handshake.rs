//! A whole IKEv2 handshake (IKE_SA_INIT and IKE_AUTH with the first Child SA, both ends in one
//! process over the simulated link, `sim`): the CPU of both peers per IKE SA, with a
//! pre-shared key, RSA-2048 certificates and ECDSA P-256 certificates (chain validation with
//! rustls-webpki, RFC 7427 signatures), and P-256 with a CRL of 1,000 entries checked on each
//! side. Group 19 and AES-256-GCM throughout.
//!
//! Run: `cargo bench -p ferrosec-ike --features sim --bench handshake -- --warm-up-time 1
//! --measurement-time 5`.
//!
//! 2026-12-06, this machine (2 cores shared with other builds, load 6): PSK 0.39 ms,
//! RSA-2048 2.19 ms, ECDSA P-256 1.19 ms, ECDSA P-256 with a 1,000-entry CRL on each side
//! 1.62 ms per handshake (both peers; 4 datagrams each: no IKE fragmentation needed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrosec_crypto::crl::Crl;
use ferrosec_crypto::sig::SigningKey;
use ferrosec_crypto::x509::Certificate;
use ferrosec_crypto::{Provider, Secret};
use ferrosec_ike::sim::{Pair, epoch};
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use ferrosec_ike::v2::{
    CertAuth, ChildPolicy, Endpoint, EndpointConfig, Event, Identity, PeerConfig, PeerId,
    esp_proposal_gcm, ike_proposal_gcm,
};
use ferrosec_wire::ikev2::DhGroup;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    IsCa, KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams, SerialNumber,
    SignatureAlgorithm, date_time_ymd,
};

/// 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn peer(name: &str, peer: &str, local: &str, remote: &str, psk: bool) -> PeerConfig {
    let range = |p: &str| {
        let (a, l) = p.split_once('/').unwrap();
        AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
    };
    let policy = ProxyId {
        name: "lan".into(),
        local: range(local),
        remote: range(remote),
        protocol: 0,
        local_ports: PortRange::ANY,
        remote_ports: PortRange::ANY,
    }
    .to_policy();
    PeerConfig {
        name: name.into(),
        peer_addr: Some(addr(peer).ip()),
        local_id: psk.then(|| Identity::fqdn(&format!("{name}.example"))),
        peer_id: None,
        psk: Secret::from_slice(b"correct horse battery staple"),
        ike_proposals: vec![ike_proposal_gcm(DhGroup::ECP_256)],
        policies: vec![ChildPolicy::new(policy, vec![esp_proposal_gcm()])],
        liveness: None,
        nat_traversal: true,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    }
}

/// Both sides' certificate material under one root; with `crl_entries`, each side holds a
/// CRL of the root with that many (other) certificates revoked.
fn pki(alg: &'static SignatureAlgorithm, crl_entries: u64) -> (CertAuth, CertAuth) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "Bench Root");
    let root = CertifiedIssuer::self_signed(p, KeyPair::generate_for(alg).unwrap()).unwrap();
    let anchor = Certificate::from_der(root.der()).unwrap();
    let crls = if crl_entries == 0 {
        Vec::new()
    } else {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2025, 12, 1),
            next_update: date_time_ymd(2026, 2, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: (0..crl_entries)
                .map(|i| RevokedCertParams {
                    serial_number: SerialNumber::from(1_000_000 + i),
                    revocation_time: date_time_ymd(2025, 12, 2),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        vec![Crl::from_der(params.signed_by(&root).unwrap().der()).unwrap()]
    };
    let side = |cn: &str| {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut p = CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &root).unwrap();
        CertAuth {
            key: Arc::new(SigningKey::from_der(&key.serialize_der()).unwrap()),
            chain: vec![Certificate::from_der(cert.der()).unwrap()],
            trust_anchors: vec![anchor.clone()],
            crls: crls.clone(),
            fetch_crls: false,
            hash_and_url: None,
            fetch_hash_and_url: false,
        }
    };
    (side("a"), side("b"))
}

/// One handshake to both Child SAs up; the bytes that crossed the link.
fn handshake(seed: u64, certs: Option<&(CertAuth, CertAuth)>) -> u64 {
    let (a_addr, b_addr) = (addr("192.0.2.1:500"), addr("192.0.2.2:500"));
    let psk = certs.is_none();
    let endpoint = |s: u64, cfg: PeerConfig| {
        Endpoint::new(
            EndpointConfig::default(),
            vec![cfg],
            Provider::default(),
            Box::new(ChaCha8Rng::seed_from_u64(s)),
            epoch(),
        )
    };
    let mut a = endpoint(
        seed * 2,
        peer("a", "192.0.2.2:500", "10.1.0.0/24", "10.2.0.0/24", psk),
    );
    let mut b = endpoint(
        seed * 2 + 1,
        peer("b", "192.0.2.1:500", "10.2.0.0/24", "10.1.0.0/24", psk),
    );
    if let Some((ca, cb)) = certs {
        a.set_certificates(PeerId(0), ca.clone()).unwrap();
        b.set_certificates(PeerId(0), cb.clone()).unwrap();
        a.set_wall_clock(epoch(), NOW);
        b.set_wall_clock(epoch(), NOW);
    }
    let mut p = Pair::new(a, a_addr, b, b_addr, seed);
    let now = p.time;
    p.a.endpoint
        .initiate(now, PeerId(0), a_addr, b_addr)
        .unwrap();
    let up = |p: &mut Pair<Endpoint>| {
        [&p.a.events, &p.b.events]
            .iter()
            .all(|ev| ev.iter().any(|e| matches!(e, Event::ChildSaUp(_))))
    };
    assert!(p.run_until(Duration::from_secs(5), up), "{:?}", p.b.events);
    p.stats.sent
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ikev2-handshake");
    let rsa = pki(&rcgen::PKCS_RSA_SHA256, 0);
    let p256 = pki(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let p256_crl = pki(&rcgen::PKCS_ECDSA_P256_SHA256, 1000);
    let cases: [(&str, Option<&(CertAuth, CertAuth)>); 4] = [
        ("psk", None),
        ("rsa-2048", Some(&rsa)),
        ("ecdsa-p256", Some(&p256)),
        ("ecdsa-p256+crl-1000", Some(&p256_crl)),
    ];
    for (name, certs) in cases {
        // IKE_SA_INIT and IKE_AUTH; with certificates the IKE_AUTH may go in fragments.
        eprintln!("{name}: {} datagrams", handshake(1, certs));
        let mut seed = 1;
        g.bench_function(name, |b| {
            b.iter(|| {
                seed += 1;
                handshake(seed, certs)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
