//! Events are never dropped (issue 11): a burst reaches the consumer whole, so the data
//! plane never keeps an SA the engine deleted. (The queue itself, with 10,000 events, is
//! tested beside it in `endpoint`: the engine keeps one IKE SA per peer and at most 128
//! Child SAs under one, so a 10,000-SA burst in the simulation needs thousands of peers.)

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use ferrosec_crypto::{Provider, Secret};
use ferrosec_wire::ikev2::DhGroup;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;
use crate::sim::{Pair, Side, epoch};
use crate::ts::{AddrRange, AddrSpec, PortRange, ProxyId};

fn peer(name: &str, peer: &str, local: &str, remote: &str) -> PeerConfig {
    let net = |s: &str| {
        let (a, l) = s.split_once('/').unwrap();
        AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
    };
    PeerConfig {
        name: name.into(),
        peer_addr: Some(peer.parse::<SocketAddr>().unwrap().ip()),
        local_id: None,
        peer_id: None,
        psk: Secret::from_slice(b"burst test key"),
        ike_proposals: vec![ike_proposal_gcm(DhGroup::ECP_256)],
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
            vec![esp_proposal_gcm()],
        )],
        liveness: None,
        nat_traversal: false,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    }
}

fn endpoint(seed: u64, p: PeerConfig) -> Endpoint {
    Endpoint::new(
        // No cookies for this burst of first contacts from one address.
        EndpointConfig {
            cookies: crate::v2::cookie::CookieConfig {
                activation_threshold: 10_000,
                max_half_open: 20_000,
                ..Default::default()
            },
            ..Default::default()
        },
        vec![p],
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
        epoch(),
    )
}

/// An IKE SA carrying 128 Child SAs (the most one IKE SA takes) is deleted by the peer:
/// the one call that handles the DELETE reports every Child SA down, once each, and the IKE
/// SA, with nothing polled in between.
#[test]
fn an_ike_sa_with_128_child_sas_goes_down_whole() {
    const CHILDREN: usize = 128;
    let (a, b) = ("192.0.2.1:500", "192.0.2.2:500");
    let (la, lb): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
    let mut p = Pair::new(
        endpoint(1, peer("to-b", b, "10.1.0.0/24", "10.2.0.0/24")),
        la,
        endpoint(2, peer("to-a", a, "10.2.0.0/24", "10.1.0.0/24")),
        lb,
        3,
    );
    let now = p.time;
    let h = p.a.endpoint.initiate(now, PeerId(0), la, lb).unwrap();
    p.run_for(Duration::from_secs(1));
    // The work queue is bounded: queue what fits, let it run, again.
    let mut asked = 1;
    for _ in 0..100 * CHILDREN {
        if asked == CHILDREN {
            break;
        }
        let now = p.time;
        match p.a.endpoint.create_child_sa(now, h, PolicyId(0)) {
            Ok(()) => asked += 1,
            Err(CommandError::Busy) => p.run_for(Duration::from_millis(100)),
            Err(e) => panic!("{e}"),
        }
    }
    p.run_for(Duration::from_secs(5));
    let up: BTreeSet<_> =
        p.a.events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaUp(c) => Some(c.inbound_spi),
                _ => None,
            })
            .collect();
    assert_eq!(up.len(), CHILDREN);
    let now = p.time;
    let hb = p.b.endpoint.established()[0];
    p.b.endpoint.delete_ike_sa(now, hb).unwrap();
    let mut requests = 0;
    while let Some(t) = p.b.endpoint.poll_transmit() {
        p.a.endpoint
            .handle_datagram(now, t.remote, t.local, &t.data);
        requests += 1;
    }
    assert_eq!(requests, 1, "one DELETE");
    let mut ike_down = 0;
    let mut child_down = BTreeSet::new();
    while let Some(e) = p.a.endpoint.poll_event() {
        match e {
            Event::IkeSaDown { .. } => ike_down += 1,
            Event::ChildSaDown { inbound_spi, .. } => {
                assert!(child_down.insert(inbound_spi), "a Child SA went down twice");
            }
            _ => {}
        }
    }
    assert_eq!(ike_down, 1);
    assert_eq!(
        child_down, up,
        "every Child SA that came up went down, once"
    );
}

/// Key export (Wireshark): both ends of an IKE SA export the same SPIs and the same four
/// keys, each side from its own role.
#[test]
fn both_ends_export_the_same_ike_sa_keys() {
    use crate::export::IkeKeyExport;
    let mut p = super::tests::pair_with(
        21,
        super::tests::cfg(Side::A),
        super::tests::cfg(Side::B),
        EndpointConfig::default(),
    );
    super::tests::initiate(&mut p);
    p.run_for(std::time::Duration::from_secs(5));
    assert!(super::tests::both_up(&mut p));
    let (a, b) = (
        p.a.endpoint.export_ike_keys(),
        p.b.endpoint.export_ike_keys(),
    );
    assert_eq!((a.len(), b.len()), (1, 1));
    let (
        IkeKeyExport::V2 {
            spi_i,
            spi_r,
            encr,
            integ,
            sk_ei,
            sk_er,
            sk_ai,
            sk_ar,
        },
        IkeKeyExport::V2 {
            spi_i: bi,
            spi_r: br,
            encr: be,
            integ: bint,
            sk_ei: b_ei,
            sk_er: b_er,
            sk_ai: b_ai,
            sk_ar: b_ar,
        },
    ) = (&a[0], &b[0])
    else {
        panic!("IKEv2 keys expected");
    };
    assert_eq!((spi_i, spi_r, encr, integ), (bi, br, be, bint));
    assert_eq!(sk_ei, b_ei);
    assert_eq!(sk_er, b_er);
    assert_eq!(sk_ai, b_ai);
    assert_eq!(sk_ar, b_ar);
    assert_ne!(sk_ei, sk_er, "each direction has its own key");
    assert_eq!(sk_ei.expose().len(), encr.keymat_len());
}
