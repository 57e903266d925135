//! Drives the IKEv1 engine with whole messages: an initiator and a responder (both ferrosec,
//! PSK, main or aggressive mode) negotiate in memory while the fuzzer rewrites, drops or
//! replays the messages between them (encrypted ones are produced with real keys, so a
//! mutation reaches the parsers behind decryption), and then feeds its own datagrams to the
//! responder. Nothing may panic, and the engine's state stays bounded.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrosec_crypto::{Provider, Secret};
use ferrosec_ike::Ike;
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use ferrosec_ike::v1::{Engine, Mode, Settings};
use ferrosec_ike::v2::{self, ChildPolicy, PeerConfig};
use ferrosec_wire::ikev2::DhGroup;
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

fn net(s: &str) -> AddrSpec {
    let (a, l) = s.split_once('/').unwrap();
    AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
}

fn ike(peer: SocketAddr, local: &str, remote: &str, mode: Mode, seed: u64) -> (Ike, v2::PeerId) {
    let cfg = PeerConfig {
        name: "p".into(),
        peer_addr: Some(peer.ip()),
        local_id: None,
        peer_id: None,
        psk: Secret::from_slice(b"fuzzing pre-shared key"),
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
    let mut ike = Ike::new(e, Engine::new(Provider::default(), Box::new(ChaCha8Rng::seed_from_u64(seed + 1))));
    let id = ike.peers().next().unwrap().0;
    let _ = ike.serve_ikev1(id, Settings { mode, dpd: None, ike_lifetime: None });
    (ike, id)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let a_addr: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let b_addr: SocketAddr = "192.0.2.2:500".parse().unwrap();
    let mode = if ctl & 1 == 0 { Mode::Main } else { Mode::Aggressive };
    let (mut a, id) = ike(b_addr, "10.1.0.0/24", "10.2.0.0/24", mode, 1);
    let (mut b, _) = ike(a_addr, "10.2.0.0/24", "10.1.0.0/24", mode, 3);
    let mut now = Instant::now();
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
