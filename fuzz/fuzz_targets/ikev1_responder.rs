//! Drives the IKEv1 engine with whole messages: an initiator and a responder (both ferrosec,
//! main or aggressive mode, PSK or signatures) negotiate in memory while the fuzzer rewrites,
//! drops or replays the messages between them (encrypted ones are produced with real keys, so
//! a mutation reaches the parsers behind decryption), and then feeds its own datagrams to the
//! responder. Nothing may panic, and the engine's state stays bounded.
//!
//! Input: a control byte (bit 0: aggressive mode, else main mode; bit 1: signature
//! authentication with ECDSA P-256 certificates, RFC 2409 §5.1 and RFC 4754, instead of the
//! PSK), then (message number, offset, xor) edits of 3 bytes each, then what is left as one
//! datagram of the fuzzer's own. The certificates are fixed files (fuzz/fixtures/ikev1-*.pem,
//! made once with `ferrosec pki`: a CA, and a and b with their addresses as SANs), so every
//! run signs and verifies the same chain.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrosec_crypto::sig::SigningKey;
use ferrosec_crypto::x509::Certificate;
use ferrosec_crypto::{Provider, Secret};
use ferrosec_ike::Ike;
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use ferrosec_ike::v1::{Engine, Mode, Settings};
use ferrosec_ike::v2::{self, CertAuth, ChildPolicy, PeerConfig};
use ferrosec_wire::ikev2::DhGroup;
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

/// 2027-01-01T00:00:00Z: inside the fixtures' validity (from 2026-12-06 for 100 years).
const NOW: u64 = 1_798_761_600;

const CA: &[u8] = include_bytes!("../fixtures/ikev1-ca.pem");

/// The credentials of side `a` or `b` (its certificate and key under the fixed CA).
fn cert_auth(side: &str) -> CertAuth {
    let (cert, key): (&[u8], &[u8]) = if side == "a" {
        (
            include_bytes!("../fixtures/ikev1-a-cert.pem"),
            include_bytes!("../fixtures/ikev1-a-key.pem"),
        )
    } else {
        (
            include_bytes!("../fixtures/ikev1-b-cert.pem"),
            include_bytes!("../fixtures/ikev1-b-key.pem"),
        )
    };
    CertAuth {
        key: std::sync::Arc::new(SigningKey::from_pem(key).expect("the fixture is a key")),
        chain: Certificate::from_pem(cert).expect("the fixture is a certificate"),
        trust_anchors: Certificate::from_pem(CA).expect("the fixture is a certificate"),
        crls: Vec::new(),
        fetch_crls: false,
        hash_and_url: None,
        fetch_hash_and_url: false,
    }
}

fn net(s: &str) -> AddrSpec {
    let (a, l) = s.split_once('/').unwrap();
    AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
}

fn ike(
    peer: SocketAddr,
    (local, remote): (&str, &str),
    mode: Mode,
    certs: Option<&str>,
    (seed, now): (u64, Instant),
) -> (Ike, v2::PeerId) {
    let cfg = PeerConfig {
        name: "p".into(),
        peer_addr: Some(peer.ip()),
        local_id: None,
        peer_id: None,
        // With certificates the PSKs differ: only the signatures can authenticate.
        psk: Secret::from_slice(match certs {
            Some("a") => b"unused pre-shared key of side a",
            _ => b"fuzzing pre-shared key",
        }),
        ike_proposals: vec![v2::ike_proposal_cbc(128, DhGroup::ECP_256)],
        policies: vec![ChildPolicy::new(
            ProxyId {
                name: "lan".into(),
                local: net(local),
                remote: net(remote),
                protocol: 0,
                local_ports: PortRange::ANY,
                remote_ports: PortRange::ANY,
            }
            .to_policy(),
            vec![v2::esp_proposal_gcm()],
        )],
        liveness: None,
        nat_traversal: true,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    };
    let e = v2::Endpoint::new(
        v2::EndpointConfig::default(),
        vec![cfg],
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
        Instant::now(),
    );
    let mut ike = Ike::new(
        e,
        Engine::new(
            Provider::default(),
            Box::new(ChaCha8Rng::seed_from_u64(seed + 1)),
        ),
    );
    let id = ike.peers().next().unwrap().0;
    let _ = ike.serve_ikev1(
        id,
        Settings {
            mode,
            dpd: None,
            ike_lifetime: None,
        },
    );
    if let Some(side) = certs {
        // The IDs are the certificates' subject DNs; only the signatures authenticate.
        ike.set_certificates(id, cert_auth(side))
            .expect("the peer exists");
        ike.set_wall_clock(now, NOW);
    }
    (ike, id)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let a_addr: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let b_addr: SocketAddr = "192.0.2.2:500".parse().unwrap();
    let mode = if ctl & 1 == 0 {
        Mode::Main
    } else {
        Mode::Aggressive
    };
    let sig = ctl & 2 != 0;
    let mut now = Instant::now();
    let nets = ("10.1.0.0/24", "10.2.0.0/24");
    let (mut a, id) = ike(b_addr, nets, mode, sig.then_some("a"), (1, now));
    let (mut b, _) = ike(a_addr, (nets.1, nets.0), mode, sig.then_some("b"), (3, now));
    let _ = a.initiate(now, id, a_addr, b_addr);
    // Edits: (message number, offset, xor) triples; message number 0xff = drop the next one.
    let mut edits = rest.chunks_exact(3);
    let mut n = 0u8;
    for _ in 0..40 {
        let mut moved = false;
        while let Some(mut t) = a.poll_transmit() {
            moved = true;
            n = n.wrapping_add(1);
            if let Some(e) = edits.next() {
                if e[0] == n && !t.data.is_empty() {
                    let i = usize::from(e[1]) % t.data.len();
                    t.data[i] ^= e[2];
                }
                if e[0] == 0xff {
                    continue;
                }
            }
            b.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            a.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        if !moved {
            now += Duration::from_secs(5);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
    }
    // Without edits the handshake is a clean one and must come up (else the fixtures or
    // the setup broke, and the fuzzer would reach nothing past authentication).
    if rest.is_empty() {
        assert_eq!(b.established().len(), 1, "a clean handshake comes up");
    }
    // Then the fuzzer's own datagrams to the responder, as from the initiator.
    let raw = edits.remainder();
    for port in [500u16, 4500] {
        let local = SocketAddr::new(b_addr.ip(), port);
        let from = SocketAddr::new(a_addr.ip(), port);
        b.handle_datagram(now, local, from, raw);
    }
    while b.poll_transmit().is_some() {}
    while b.poll_event().is_some() {}
    assert!(b.ike_sa_count() < 100);
});
