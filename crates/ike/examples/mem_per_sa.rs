//! Heap bytes per established responder IKE SA (with its first Child SA pair).
//!
//! One responder [`Endpoint`] configured like `bench/handshake.sh`'s ferrosec responder
//! (dynamic peer, AES-256-GCM, PRF-HMAC-SHA2-256, group 19, lifetimes 8 h / 1 h) answers N
//! initiators driven in-process (shards of 256 peer configurations, each SA with its own
//! identity and /32 selector, as `ike-loadgen` does). At the end the initiators are dropped,
//! the responder's transmit and event queues drained, and the responder is leaked on purpose,
//! so that what a heap profiler reports as live at exit is the responder with its N SAs:
//!
//! ```text
//! cargo build --release -p ferrosec-ike --example mem_per_sa
//! heaptrack $CARGO_TARGET_DIR/release/examples/mem_per_sa 2000 --nat
//! heaptrack_print -f heaptrack.mem_per_sa.*.zst -l 1   # "leaked" / N = bytes per SA
//! ```
//!
//! (or `valgrind --tool=dhat`, whose "At t-end" is the same).
//!
//! # Results (2026-11-22, release build, `2000 --nat`; live heap, malloc's ~16 B per block
//! not included)
//!
//! | | bytes per SA | blocks per SA |
//! |---|---|---|
//! | before (545e08b) | 8,710 | 17.6 |
//! | after | 1,649 | 10.6 |
//!
//! Before: the `SaTable` B-tree nodes holding 3,488-byte `IkeSa` values inline, 5,040 (of
//! which 2,768 `IkeKeys` with two keyed `IkeSkCrypter`s, and B-tree slack); the two
//! crypters' AES-GCM contexts in aws-lc, 1,180; the Child SA vector at `push`'s capacity of
//! four 352-byte records, 1,410; the copy of `ChildSaInfo` in the record (keys, selectors),
//! ~200; `by_identity` (HashMap + one BTreeSet node per identity), ~270; cached IKE_AUTH
//! response, 225; `init_index`/`init_rev`, 164; timers, 84; IKE keys, 168 in 5 blocks.
//!
//! After: `IkeSa` boxed, 610; cached IKE_AUTH response, 225 (needed: retransmitted
//! requests); keys in one block, 135 + SK_d 32; `by_identity`, ~150; the one Child SA
//! record, 103; `init_index`/`init_rev`, 164; timers, 84; the peer identity, 15. At 10,000
//! SAs: 1,559 B (hash tables at a different load); without `--nat` the same as with it. The IKE_SA_INIT messages and
//! nonces were already dropped on establishment.
//!
//! `--nat`: the initiators pose as NATed (NAT_DETECTION_SOURCE_IP does not match), so the
//! responder moves to port 4500, as with `ike-loadgen --nat`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrosec_crypto::{Provider, Secret};
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId, TsPolicy};
use ferrosec_ike::v2::{
    ChildPolicy, Endpoint, EndpointConfig, Event, Identity, Lifetimes, PeerConfig, PeerId,
    SaLifetime, esp_proposal_gcm, ike_proposal_gcm,
};
use ferrosec_wire::ikev2::DhGroup;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

const SHARD: usize = 256;
const RESPONDER: &str = "198.51.100.1:500";

fn lifetimes() -> Lifetimes {
    Lifetimes {
        ike: Some(SaLifetime::new(Duration::from_secs(8 * 3600))),
        reauth_multiple: None,
    }
}

/// The policy with its Child SA proposal and lifetime (1 h).
fn child_policy(ts: TsPolicy) -> ChildPolicy {
    ChildPolicy::new(ts, vec![esp_proposal_gcm()])
        .with_lifetime(Some(SaLifetime::new(Duration::from_secs(3600))))
}

fn net(a: [u8; 4], len: u8) -> AddrRange {
    AddrRange::from_prefix(IpAddr::V4(Ipv4Addr::from(a)), len).unwrap()
}

fn responder(now: Instant) -> Endpoint {
    let policy = ProxyId {
        name: "lan".into(),
        local: AddrSpec::Range(net([10, 2, 0, 0], 24)),
        remote: AddrSpec::Range(net([10, 128, 0, 0], 9)),
        protocol: 0,
        local_ports: PortRange::ANY,
        remote_ports: PortRange::ANY,
    }
    .to_policy();
    let peer = PeerConfig {
        name: "lg".into(),
        peer_addr: None,
        local_id: Some(Identity::fqdn("b.bench.test")),
        peer_id: None,
        psk: Secret::from_slice(b"ferrosec-bench-psk"),
        ike_proposals: vec![ike_proposal_gcm(DhGroup::ECP_256)],
        policies: vec![child_policy(policy)],
        liveness: None,
        nat_traversal: true,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    };
    let mut ep = Endpoint::new(
        EndpointConfig::default(),
        vec![peer],
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(1)),
        now,
    );
    ep.set_lifetimes(PeerId(0), lifetimes()).unwrap();
    ep
}

fn initiators(n: usize, now: Instant) -> Vec<Endpoint> {
    (0..n)
        .step_by(SHARD)
        .map(|lo| {
            let peers = (lo..(lo + SHARD).min(n))
                .map(|k| {
                    let host = u32::from(Ipv4Addr::new(10, 128, 0, 1)) + k as u32;
                    let policy = ProxyId {
                        name: "lan".into(),
                        local: AddrSpec::Range(AddrRange::host(IpAddr::V4(host.into()))),
                        remote: AddrSpec::Range(net([10, 2, 0, 0], 24)),
                        protocol: 0,
                        local_ports: PortRange::ANY,
                        remote_ports: PortRange::ANY,
                    }
                    .to_policy();
                    PeerConfig {
                        name: format!("lg{k}"),
                        peer_addr: Some(RESPONDER.parse::<SocketAddr>().unwrap().ip()),
                        local_id: Some(Identity::fqdn(&format!("i{k}.bench.test"))),
                        peer_id: None,
                        psk: Secret::from_slice(b"ferrosec-bench-psk"),
                        ike_proposals: vec![ike_proposal_gcm(DhGroup::ECP_256)],
                        policies: vec![child_policy(policy)],
                        liveness: None,
                        nat_traversal: true,
                        restart_on_dead_peer: false,
                        strict_cookies: false,
                        fragmentation: true,
                    }
                })
                .collect();
            let mut ep = Endpoint::new(
                EndpointConfig::default(),
                peers,
                Provider::default(),
                Box::new(ChaCha8Rng::seed_from_u64(1000 + lo as u64)),
                now,
            );
            let ids: Vec<PeerId> = ep.peers().map(|(id, _)| id).collect();
            for id in ids {
                ep.set_lifetimes(id, lifetimes()).unwrap();
            }
            ep
        })
        .collect()
}

/// The address initiator `k` claims as its own (with `nat`, a private one).
fn claimed(k: usize, nat: bool) -> SocketAddr {
    let host = 1 + (k % 16) as u8;
    let ip = if nat {
        Ipv4Addr::new(192, 0, 2, host)
    } else {
        Ipv4Addr::new(198, 51, 100, 100 + host)
    };
    SocketAddr::new(ip.into(), 500 + ((k / 16) % 4096) as u16)
}

/// What the responder sees for an address an initiator claims, and back.
fn translate(a: SocketAddr, to_real: bool) -> SocketAddr {
    let IpAddr::V4(ip) = a.ip() else {
        unreachable!()
    };
    let [x, y, z, h] = ip.octets();
    let ip = match ((x, y, z), to_real) {
        ((192, 0, 2), true) => Ipv4Addr::new(198, 51, 100, 100 + h),
        ((198, 51, 100), false) => Ipv4Addr::new(192, 0, 2, h - 100),
        _ => ip,
    };
    SocketAddr::new(ip.into(), a.port())
}

/// SPIi of an IKE message (after the non-ESP marker on port 4500).
fn spi_i(t: &ferrosec_ike::Transmit) -> [u8; 8] {
    let off = if t.local.port() == 4500 { 4 } else { 0 };
    t.data[off..off + 8].try_into().unwrap()
}

fn main() {
    let mut n = 2000usize;
    let mut nat = false;
    for a in std::env::args().skip(1) {
        if a == "--nat" {
            nat = true;
        } else {
            n = a.parse().expect("N or --nat");
        }
    }
    // The engine's only time for the whole run (nothing here waits for a deadline).
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let resp_addr: SocketAddr = RESPONDER.parse().unwrap();

    let mut resp = responder(now);
    let mut inis = initiators(n, now);
    let mut shard_of = std::collections::HashMap::new();
    let mut up = 0usize;
    let mut child_up = 0usize;
    // Start with 128 in flight, as the load generator does.
    let mut next = 0usize;
    let mut rounds = 0;
    while child_up < n {
        rounds += 1;
        assert!(rounds < 100_000, "stuck: {child_up} of {n} up");
        while next < n && next - child_up < 128 {
            inis[next / SHARD]
                .initiate(
                    now,
                    PeerId((next % SHARD) as u32),
                    claimed(next, nat),
                    resp_addr,
                )
                .unwrap();
            next += 1;
        }
        for (s, ep) in inis.iter_mut().enumerate() {
            while let Some(t) = ep.poll_transmit() {
                shard_of.insert(spi_i(&t), s);
                let from = if nat {
                    translate(t.local, true)
                } else {
                    t.local
                };
                resp.handle_datagram(now, t.remote, from, &t.data);
            }
            while ep.poll_event().is_some() {}
        }
        while let Some(t) = resp.poll_transmit() {
            let s = shard_of[&spi_i(&t)];
            let to = if nat {
                translate(t.remote, false)
            } else {
                t.remote
            };
            inis[s].handle_datagram(now, to, t.local, &t.data);
        }
        while let Some(e) = resp.poll_event() {
            match e {
                Event::IkeSaUp(_) => up += 1,
                Event::ChildSaUp(_) => child_up += 1,
                _ => {}
            }
        }
    }
    drop(inis);
    while resp.poll_transmit().is_some() {}
    while resp.poll_event().is_some() {}
    assert_eq!(resp.ike_sa_count(), n);
    println!("N={n} nat={nat} ike_up={up} child_up={child_up}");
    // Left allocated on purpose: a heap profiler's "leaked" (live at exit) is then the
    // responder with its N SAs.
    std::mem::forget(resp);
}
