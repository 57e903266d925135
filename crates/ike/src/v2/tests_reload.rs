//! Live reload in the engine (R-OPS-4): peers removed and policies replaced while SAs run, in
//! the two-peer simulation. A removed peer's IKE SA is deleted on the other side; a peer or
//! policy that did not change keeps its SAs (same SPIs); a changed IPSec crypto profile
//! rekeys the Child SAs with the new proposals under the same IKE SA.

use std::net::SocketAddr;
use std::time::Duration;

use ferrosec_crypto::{Encryption, Provider, Secret};
use ferrosec_wire::ikev2::DhGroup;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;
use crate::sim::{Pair, epoch};
use crate::ts::{AddrRange, AddrSpec, PortRange, ProxyId};

const A: &str = "192.0.2.1:500";
const B: &str = "192.0.2.2:500";

fn policy(
    name: &str,
    local: &str,
    remote: &str,
    proposals: Vec<crate::proposal::Proposal>,
) -> ChildPolicy {
    let net = |s: &str| {
        let (a, l) = s.split_once('/').unwrap();
        AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
    };
    ChildPolicy::new(
        ProxyId {
            name: name.into(),
            local: net(local),
            remote: net(remote),
            protocol: 0,
            local_ports: PortRange::ANY,
            remote_ports: PortRange::ANY,
        }
        .to_policy(),
        proposals,
    )
}

fn peer(name: &str, addr: &str, policies: Vec<ChildPolicy>) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        peer_addr: Some(addr.parse::<SocketAddr>().unwrap().ip()),
        local_id: None,
        peer_id: None,
        psk: Secret::from_slice(b"reload test key"),
        ike_proposals: vec![ike_proposal_gcm(DhGroup::ECP_256)],
        policies,
        liveness: None,
        nat_traversal: false,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    }
}

fn with_id(mut p: PeerConfig, id: &str) -> PeerConfig {
    p.local_id = Some(Identity::fqdn(id));
    p
}

fn endpoint(seed: u64, peers: Vec<PeerConfig>) -> Endpoint {
    Endpoint::new(
        EndpointConfig::default(),
        peers,
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
        epoch(),
    )
}

/// (IKE SPIs, inbound Child SPIs) of every established SA, for "nothing changed".
fn spis(ep: &Endpoint) -> Vec<(u64, u64, Vec<u32>)> {
    ep.snapshot()
        .iter()
        .filter(|s| s.state == IkeSaState::Established)
        .map(|s| {
            (
                s.spi_i.0,
                s.spi_r.0,
                s.children.iter().map(|c| c.inbound_spi.0).collect(),
            )
        })
        .collect()
}

/// A has two gateways to B (two IKE SAs); B serves both with one configuration. Removing
/// gateway 2 on A deletes its IKE SA on B too (DELETE sent), and gateway 1's SAs keep their
/// SPIs on both sides; the removed peer's ID is not reused.
#[test]
fn removing_a_peer_deletes_its_sas_on_the_peer_and_keeps_the_others() {
    let (la, lb): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let p1 = || {
        policy(
            "one",
            "10.1.0.0/24",
            "10.2.0.0/24",
            vec![esp_proposal_gcm()],
        )
    };
    let p2 = || {
        policy(
            "two",
            "10.3.0.0/24",
            "10.4.0.0/24",
            vec![esp_proposal_gcm()],
        )
    };
    let b_side = peer(
        "to-a",
        A,
        vec![
            policy(
                "one",
                "10.2.0.0/24",
                "10.1.0.0/24",
                vec![esp_proposal_gcm()],
            ),
            policy(
                "two",
                "10.4.0.0/24",
                "10.3.0.0/24",
                vec![esp_proposal_gcm()],
            ),
        ],
    );
    let mut p = Pair::new(
        endpoint(
            1,
            vec![
                with_id(peer("gw1", B, vec![p1()]), "gw1.a.example"),
                with_id(peer("gw2", B, vec![p2()]), "gw2.a.example"),
            ],
        ),
        la,
        endpoint(2, vec![b_side]),
        lb,
        7,
    );
    let now = p.time;
    p.a.endpoint.initiate(now, PeerId(0), la, lb).unwrap();
    p.a.endpoint.initiate(now, PeerId(1), la, lb).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.a.endpoint.established().len(), 2);
    assert_eq!(p.b.endpoint.established().len(), 2);
    let gw1_a: Vec<_> = spis(&p.a.endpoint)
        .into_iter()
        .zip(p.a.endpoint.snapshot())
        .filter(|(_, s)| s.peer == PeerId(0))
        .map(|(x, _)| x)
        .collect();
    assert_eq!(gw1_a.len(), 1);
    let a_events = p.a.events.len();
    let b_events = p.b.events.len();

    let now = p.time;
    assert_eq!(p.a.endpoint.remove_peer(now, PeerId(1)), Ok(1));
    assert!(p.a.endpoint.peer(PeerId(1)).is_none());
    assert_eq!(
        p.a.endpoint.remove_peer(now, PeerId(1)),
        Err(CommandError::NoSuchPeer)
    );
    p.run_for(Duration::from_secs(2));

    // A reported the removed SA down, and only it.
    let downs_a: Vec<_> = p.a.events[a_events..]
        .iter()
        .filter(|e| matches!(e, Event::IkeSaDown { .. }))
        .collect();
    assert_eq!(downs_a.len(), 1, "{downs_a:?}");
    assert!(matches!(
        downs_a[0],
        Event::IkeSaDown { peer, reason: DownReason::LocalDelete, .. } if peer == "gw2"
    ));
    // B got the DELETE: its IKE SA for gateway 2 is gone, with the Child SA.
    let b_new = &p.b.events[b_events..];
    assert!(
        b_new.iter().any(|e| matches!(
            e,
            Event::IkeSaDown {
                reason: DownReason::PeerDelete,
                ..
            }
        )),
        "B saw no delete: {b_new:?}"
    );
    assert_eq!(
        b_new
            .iter()
            .filter(|e| matches!(e, Event::ChildSaDown { .. }))
            .count(),
        1
    );
    assert_eq!(p.b.endpoint.established().len(), 1);
    // Gateway 1 keeps its IKE SA and Child SA, same SPIs.
    assert_eq!(spis(&p.a.endpoint), gw1_a);
    assert_eq!(p.a.endpoint.established().len(), 1);

    // A new peer gets a new ID, and negotiates.
    let now = p.time;
    let id =
        p.a.endpoint
            .add_peer(with_id(peer("gw2", B, vec![p2()]), "gw2.a.example"));
    assert_eq!(id, PeerId(2), "IDs are never reused");
    p.a.endpoint.initiate(now, id, la, lb).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.a.endpoint.established().len(), 2);
    assert!(spis(&p.a.endpoint).contains(&gw1_a[0]));
}

fn encr_of_newest(events: &[Event]) -> Option<Encryption> {
    events.iter().rev().find_map(|e| match e {
        Event::ChildSaUp(c) => c.encr,
        _ => None,
    })
}

/// A changed IPSec crypto profile (the same proxy IDs, other proposals) rekeys the policy's
/// Child SAs under the same IKE SA with the new proposals; an unchanged policy keeps its
/// Child SA and SPIs; a removed policy's Child SA is deleted on the peer; an added one can
/// be negotiated at once.
#[test]
fn replacing_policies_rekeys_the_changed_deletes_the_removed_and_keeps_the_rest() {
    let (la, lb): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let gcm = || vec![esp_proposal_gcm()];
    let cbc = || vec![esp_proposal_cbc(128)];
    let a_pols = |changed: fn() -> Vec<crate::proposal::Proposal>| {
        vec![
            policy("keep", "10.1.0.0/24", "10.2.0.0/24", gcm()),
            policy("change", "10.3.0.0/24", "10.4.0.0/24", changed()),
            policy("drop", "10.5.0.0/24", "10.6.0.0/24", gcm()),
        ]
    };
    let b_pols = |changed: fn() -> Vec<crate::proposal::Proposal>| {
        vec![
            policy("keep", "10.2.0.0/24", "10.1.0.0/24", gcm()),
            policy("change", "10.4.0.0/24", "10.3.0.0/24", changed()),
            policy("drop", "10.6.0.0/24", "10.5.0.0/24", gcm()),
        ]
    };
    let mut p = Pair::new(
        endpoint(3, vec![peer("to-b", B, a_pols(gcm))]),
        la,
        endpoint(4, vec![peer("to-a", A, b_pols(gcm))]),
        lb,
        9,
    );
    let now = p.time;
    let h = p.a.endpoint.initiate(now, PeerId(0), la, lb).unwrap();
    // The engine makes a Child SA for every policy of the peer.
    p.run_for(Duration::from_secs(2));
    let before = p.a.endpoint.snapshot();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].children.len(), 3);
    let spi_of = |snap: &[IkeSaSnapshot], pol: PolicyId| -> Vec<u32> {
        snap[0]
            .children
            .iter()
            .filter(|c| c.policy == pol)
            .map(|c| c.inbound_spi.0)
            .collect()
    };
    let keep_spi = spi_of(&before, PolicyId(0));
    let change_spi = spi_of(&before, PolicyId(1));

    // B first: its rekey offers AES-CBC only, which A (not reloaded yet) refuses; the old
    // pair stays.
    let now = p.time;
    let mut new_b = b_pols(cbc);
    new_b.remove(2);
    let ub = p.b.endpoint.update_policies(now, PeerId(0), new_b).unwrap();
    assert_eq!(ub.unchanged, vec![PolicyId(0)]);
    assert_eq!(ub.rekeyed, vec![(PolicyId(1), 1)]);
    assert_eq!(ub.removed, vec![(PolicyId(2), 1)]);
    assert!(ub.added.is_empty());
    p.run_for(Duration::from_secs(2));
    let mid = p.a.endpoint.snapshot();
    assert_eq!(
        spi_of(&mid, PolicyId(1)),
        change_spi,
        "refused rekey: old pair stays"
    );
    assert!(
        spi_of(&mid, PolicyId(2)).is_empty(),
        "B deleted the dropped policy's pair"
    );

    // Then A, with an added policy: the rekey goes through with AES-CBC.
    let now = p.time;
    let mut new_a = a_pols(cbc);
    new_a.remove(2);
    new_a.push(policy("new", "10.7.0.0/24", "10.8.0.0/24", gcm()));
    let ua = p.a.endpoint.update_policies(now, PeerId(0), new_a).unwrap();
    assert_eq!(ua.unchanged, vec![PolicyId(0)]);
    assert_eq!(ua.rekeyed, vec![(PolicyId(1), 1)]);
    assert_eq!(ua.removed, vec![(PolicyId(2), 0)], "gone already");
    assert_eq!(ua.added, vec![PolicyId(3)], "a new ID");
    let a_events = p.a.events.len();
    p.run_for(Duration::from_secs(2));
    assert!(matches!(
        encr_of_newest(&p.a.events[a_events..]),
        Some(Encryption::AesCbc { key_len: 16 })
    ));
    let after = p.a.endpoint.snapshot();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].handle, before[0].handle, "the same IKE SA");
    assert_eq!(
        spi_of(&after, PolicyId(0)),
        keep_spi,
        "unchanged policy, same SPI"
    );
    let changed = spi_of(&after, PolicyId(1));
    assert_eq!(changed.len(), 1);
    assert_ne!(changed, change_spi, "rekeyed");
    // The added policy negotiates: B has no such policy yet, so it is refused, and the IKE
    // SA survives that.
    let now = p.time;
    p.a.endpoint.create_child_sa(now, h, PolicyId(3)).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.a.endpoint.established().len(), 1);
    assert!(spi_of(&p.a.endpoint.snapshot(), PolicyId(3)).is_empty());
    assert_eq!(spi_of(&p.a.endpoint.snapshot(), PolicyId(0)), keep_spi);
}

/// An FQDN peer re-resolved to a new address (R-CFG-4): B knows A at an old address, so A's
/// IKE_SA_INIT from its real one matches no configuration and nothing comes up; once B points
/// the peer at A's address, the next attempt comes up. A peer ID that does not exist is
/// refused.
#[test]
fn a_peer_pointed_at_its_new_address_is_recognized_there() {
    let (la, lb): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let a_side = peer(
        "to-b",
        B,
        vec![policy(
            "one",
            "10.1.0.0/24",
            "10.2.0.0/24",
            vec![esp_proposal_gcm()],
        )],
    );
    let b_side = peer(
        "to-a",
        "192.0.2.99:500",
        vec![policy(
            "one",
            "10.2.0.0/24",
            "10.1.0.0/24",
            vec![esp_proposal_gcm()],
        )],
    );
    let mut p = Pair::new(
        endpoint(1, vec![a_side]),
        la,
        endpoint(2, vec![b_side]),
        lb,
        3,
    );
    let now = p.time;
    p.a.endpoint.initiate(now, PeerId(0), la, lb).unwrap();
    p.run_for(Duration::from_secs(5));
    assert!(
        p.b.endpoint.established().is_empty(),
        "B answered a peer it does not know there"
    );
    assert!(p.a.endpoint.established().is_empty());

    let old = p.b.endpoint.set_peer_address(PeerId(0), Some(la.ip()));
    assert_eq!(old, Ok(Some("192.0.2.99".parse().unwrap())));
    assert_eq!(
        p.b.endpoint.set_peer_address(PeerId(7), Some(la.ip())),
        Err(CommandError::NoSuchPeer)
    );
    let now = p.time;
    p.a.endpoint.initiate(now, PeerId(0), la, lb).unwrap();
    p.run_for(Duration::from_secs(5));
    assert_eq!(p.a.endpoint.established().len(), 1);
    assert_eq!(p.b.endpoint.established().len(), 1);
    assert_eq!(
        p.b.endpoint.peer(PeerId(0)).unwrap().peer_addr,
        Some(la.ip())
    );
}
