//! The configuration payload (R-V2-12, RFC 7296 §2.19, §3.15) in the two-peer simulation:
//! A is the client (CFG_REQUEST), B the server with a pool.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ferrosec_crypto::Provider;
use ferrosec_wire::ikev2::NotifyType;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::tests::{child_ups, failures, ike_ups};
use super::*;
use crate::sim::{Node, Pair, Side, epoch};
use crate::ts::{AddrRange, AddrSpec, PortRange, ProxyId, TrafficSelector, TsSet};

const A: &str = "192.0.2.1:500";
const B: &str = "192.0.2.2:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn spec(s: &str) -> AddrSpec {
    let (a, l) = s.split_once('/').unwrap();
    AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
}

fn policy(local: &str, remote: &str) -> ChildPolicy {
    ChildPolicy::new(
        ProxyId {
            name: "lan".into(),
            local: spec(local),
            remote: spec(remote),
            protocol: 0,
            local_ports: PortRange::ANY,
            remote_ports: PortRange::ANY,
        }
        .to_policy(),
        vec![esp_proposal_gcm()],
    )
}

/// Client A (identity `local_id`): any local address, B's LAN 10.2.0.0/24 remote.
fn client(local_id: &str) -> PeerConfig {
    let mut c = super::tests::cfg(Side::A);
    c.local_id = Some(Identity::fqdn(local_id));
    c.policies = vec![policy("0.0.0.0/0", "10.2.0.0/24")];
    c
}

/// Server B: a dynamic peer of any identity, its LAN to any remote address.
fn server() -> PeerConfig {
    let mut c = super::tests::cfg(Side::B);
    c.peer_addr = None;
    c.peer_id = None;
    c.policies = vec![policy("10.2.0.0/16", "0.0.0.0/0")];
    c
}

fn pools(prefix: u8, required: bool) -> ConfigPayload {
    ConfigPayload::Serve(AddressPools {
        ipv4: Some((Ipv4Addr::new(10, 9, 0, 0), prefix)),
        ipv6: None,
        reserved: Vec::new(),
        dns: vec![ip("10.2.0.53"), ip("fd02::53")],
        subnets: vec![(ip("10.2.0.0"), 24), (ip("fd02::"), 64)],
        required,
    })
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

/// A pair: A's peer configurations `clients` (each asking for IPv4 when `request`), B the
/// server with `cp`.
fn pair(seed: u64, clients: Vec<PeerConfig>, request: bool, cp: ConfigPayload) -> Pair<Endpoint> {
    let n = clients.len();
    let mut a = endpoint(seed * 2, clients);
    if request {
        for i in 0..n {
            a.set_config_payload(
                PeerId(i as u32),
                ConfigPayload::Request {
                    ipv4: true,
                    ipv6: false,
                },
            )
            .unwrap();
        }
    }
    let mut b = endpoint(seed * 2 + 1, vec![server()]);
    b.set_config_payload(PeerId(0), cp).unwrap();
    Pair::new(a, addr(A), b, addr(B), seed)
}

fn connect(p: &mut Pair<Endpoint>, peer: u32) -> IkeSaHandle {
    let now = p.time;
    p.a.endpoint
        .initiate(now, PeerId(peer), addr(A), addr(B))
        .unwrap()
}

fn host(a: &str) -> TsSet {
    TsSet::single(TrafficSelector::from_addrs(AddrRange::host(ip(a))))
}

fn last_config(n: &Node<Endpoint>) -> Option<VirtualConfig> {
    ike_ups(n).last().and_then(|i| i.config.as_deref().cloned())
}

fn up_count(n: &Node<Endpoint>) -> usize {
    ike_ups(n).len()
}

/// Leases of B's pool as (address, identity, SAs holding it).
fn leases(p: &Pair<Endpoint>) -> Vec<(IpAddr, String, u32)> {
    p.b.endpoint
        .address_leases(PeerId(0))
        .into_iter()
        .map(|(a, id, n)| (a, id.to_string(), n))
        .collect()
}

#[test]
fn the_server_assigns_an_address_with_dns_and_subnets_and_narrows_the_client_side() {
    let mut p = pair(1, vec![client("c1.example")], true, pools(24, false));
    connect(&mut p, 0);
    assert!(
        p.run_until(Duration::from_secs(5), |p| !child_ups(&p.a).is_empty()
            && !child_ups(&p.b).is_empty())
    );
    let got = last_config(&p.a).expect("the client got a CFG_REPLY");
    assert!(!got.assigned_by_us);
    assert_eq!(got.addresses, vec![(ip("10.9.0.1"), 32)]);
    assert_eq!(got.dns, vec![ip("10.2.0.53"), ip("fd02::53")]);
    assert_eq!(got.subnets, vec![(ip("10.2.0.0"), 24), (ip("fd02::"), 64)]);
    let gave = last_config(&p.b).expect("the server shows what it gave");
    assert!(gave.assigned_by_us);
    assert_eq!(gave.addresses, got.addresses);
    // The client's side of the Child SA is its address, as strongSwan narrows a virtual IP.
    let (a, b) = (child_ups(&p.a)[0], child_ups(&p.b)[0]);
    assert_eq!(a.local_ts, host("10.9.0.1"));
    assert_eq!(b.remote_ts, host("10.9.0.1"));
    super::tests::assert_mirrored(a, b);
    assert_eq!(
        leases(&p),
        vec![(ip("10.9.0.1"), "fqdn:c1.example".to_owned(), 1)]
    );
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
}

#[test]
fn a_second_child_sa_and_an_ike_rekey_keep_the_address() {
    let mut c = client("c1.example");
    let mut dmz = policy("0.0.0.0/0", "10.2.9.0/24");
    dmz.ts.name = "dmz".into();
    c.policies.push(dmz);
    let mut p = pair(2, vec![c], true, pools(24, false));
    let h = connect(&mut p, 0);
    assert!(p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() == 2));
    // CREATE_CHILD_SA from the client offers its address as its side.
    assert_eq!(child_ups(&p.a)[1].local_ts, host("10.9.0.1"));
    assert_eq!(child_ups(&p.b)[1].remote_ts, host("10.9.0.1"));
    let now = p.time;
    p.a.endpoint.rekey_ike_sa(now, h).unwrap();
    p.run_for(Duration::from_secs(5));
    let rekeyed =
        p.a.events
            .iter()
            .find_map(|e| match e {
                Event::IkeSaRekeyed { new, .. } => Some(new.clone()),
                _ => None,
            })
            .expect("rekeyed");
    assert_eq!(
        rekeyed.config.as_ref().unwrap().addresses,
        vec![(ip("10.9.0.1"), 32)]
    );
    // The lease moved to the new IKE SA: still held once, not released by the old SA's
    // delete.
    assert_eq!(
        leases(&p),
        vec![(ip("10.9.0.1"), "fqdn:c1.example".to_owned(), 1)]
    );
    // And a rekey of the Child SA by the server offers the client's address as the peer's
    // side.
    let spi = child_ups(&p.b)[0].inbound_spi;
    let hb = p.b.endpoint.established()[0];
    let now = p.time;
    p.b.endpoint.rekey_child_sa(now, hb, spi).unwrap();
    p.run_for(Duration::from_secs(5));
    let last = (*child_ups(&p.b).last().unwrap()).clone();
    assert_ne!(last.inbound_spi, spi);
    assert_eq!(last.remote_ts, host("10.9.0.1"));
}

#[test]
fn the_same_identity_gets_the_same_address_on_reconnect_and_re_authentication() {
    let mut p = pair(
        3,
        vec![client("c1.example"), client("c2.example")],
        true,
        pools(24, false),
    );
    let h = connect(&mut p, 0);
    assert!(p.run_until(Duration::from_secs(5), |p| up_count(&p.a) == 1));
    assert_eq!(
        last_config(&p.a).unwrap().addresses,
        vec![(ip("10.9.0.1"), 32)]
    );
    // Gone and back: the lease waited offline for the same identity, though another
    // identity connected meanwhile.
    let now = p.time;
    p.a.endpoint.delete_ike_sa(now, h).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(leases(&p)[0].2, 0, "offline after the delete");
    connect(&mut p, 1);
    assert!(p.run_until(Duration::from_secs(5), |p| up_count(&p.a) == 2));
    assert_eq!(
        last_config(&p.a).unwrap().addresses,
        vec![(ip("10.9.0.2"), 32)]
    );
    let h = connect(&mut p, 0);
    assert!(p.run_until(Duration::from_secs(5), |p| up_count(&p.a) == 3));
    assert_eq!(
        last_config(&p.a).unwrap().addresses,
        vec![(ip("10.9.0.1"), 32)]
    );
    // Re-authentication, make-before-break: the new IKE SA asks for its address and gets
    // it while the old one still holds it; after the old one goes it is held once.
    let now = p.time;
    p.a.endpoint.reauthenticate(now, h).unwrap();
    assert!(p.run_until(Duration::from_secs(10), |p| up_count(&p.a) == 4
        && p.a.endpoint.established().len() == 2));
    p.run_for(Duration::from_secs(5));
    assert_eq!(
        last_config(&p.a).unwrap().addresses,
        vec![(ip("10.9.0.1"), 32)]
    );
    assert_eq!(
        leases(&p),
        vec![
            (ip("10.9.0.1"), "fqdn:c1.example".to_owned(), 1),
            (ip("10.9.0.2"), "fqdn:c2.example".to_owned(), 1)
        ]
    );
    assert_eq!(child_ups(&p.a).last().unwrap().local_ts, host("10.9.0.1"));
}

#[test]
fn an_exhausted_pool_answers_internal_address_failure_and_leases_stay_bounded() {
    // A /30 has two addresses; .2 is reserved (the tunnel interface's), so one is left.
    let cp = match pools(30, false) {
        ConfigPayload::Serve(mut p) => {
            p.reserved = vec![ip("10.9.0.2")];
            ConfigPayload::Serve(p)
        }
        other => other,
    };
    let mut p = pair(
        4,
        vec![client("c1.example"), client("c2.example")],
        true,
        cp,
    );
    let h1 = connect(&mut p, 0);
    assert!(p.run_until(Duration::from_secs(5), |p| !child_ups(&p.a).is_empty()));
    connect(&mut p, 1);
    p.run_for(Duration::from_secs(5));
    // B: the reason in words, with the pool and its size.
    let b_fail: Vec<String> = failures(&p.b).iter().map(|(f, _)| f.to_string()).collect();
    assert!(
        b_fail
            .iter()
            .any(|f| f.contains("no address for the peer fqdn:c2.example")
                && f.contains("pool 10.9.0.0/30 is exhausted: all 1 of its addresses")
                && f.contains("INTERNAL_ADDRESS_FAILURE")),
        "{b_fail:?}"
    );
    // A: refused with INTERNAL_ADDRESS_FAILURE, explained, and the useless IKE SA deleted.
    assert!(failures(&p.a).iter().any(|(f, survives)| !*survives
        && matches!(f, Failure::ChildRefused { notify, .. }
            if *notify == NotifyType::INTERNAL_ADDRESS_FAILURE)
        && f.to_string().contains("could not assign us an address")));
    assert_eq!(child_ups(&p.a).len(), 1);
    assert_eq!(p.a.endpoint.established(), vec![h1]);
    // c1 leaves; c2 tries again and gets the address, which c1 then no longer has.
    let now = p.time;
    p.a.endpoint.delete_ike_sa(now, h1).unwrap();
    p.run_for(Duration::from_secs(2));
    connect(&mut p, 1);
    assert!(p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() == 2));
    assert_eq!(
        last_config(&p.a).unwrap().addresses,
        vec![(ip("10.9.0.1"), 32)]
    );
    assert_eq!(
        leases(&p),
        vec![(ip("10.9.0.1"), "fqdn:c2.example".to_owned(), 1)]
    );
}

#[test]
fn a_server_that_requires_cp_refuses_a_peer_without_one_with_failed_cp_required() {
    let mut p = pair(5, vec![client("c1.example")], false, pools(24, true));
    connect(&mut p, 0);
    p.run_for(Duration::from_secs(5));
    assert!(child_ups(&p.a).is_empty() && child_ups(&p.b).is_empty());
    let b_fail: Vec<String> = failures(&p.b).iter().map(|(f, _)| f.to_string()).collect();
    assert!(
        b_fail.iter().any(
            |f| f.contains("sent no configuration payload") && f.contains("FAILED_CP_REQUIRED")
        ),
        "{b_fail:?}"
    );
    let a_fail: Vec<String> = failures(&p.a).iter().map(|(f, _)| f.to_string()).collect();
    assert!(
        a_fail.iter().any(|f| f.contains("FAILED_CP_REQUIRED")
            && f.contains("config-payload = { request = true }")),
        "{a_fail:?}"
    );
    // The client deleted the IKE SA it cannot use; nothing is left on either side.
    assert!(p.a.endpoint.established().is_empty());
    assert!(p.b.endpoint.established().is_empty());
    assert!(leases(&p).is_empty());
}

#[test]
fn a_server_without_required_serves_a_site_to_site_peer_as_before() {
    let mut p = pair(6, vec![client("c1.example")], false, pools(24, false));
    connect(&mut p, 0);
    assert!(p.run_until(Duration::from_secs(5), |p| !child_ups(&p.a).is_empty()));
    assert!(last_config(&p.a).is_none() && last_config(&p.b).is_none());
    assert_eq!(
        child_ups(&p.a)[0].local_ts,
        TsSet::single(TrafficSelector::any(false))
    );
    assert!(leases(&p).is_empty());
}

#[test]
fn an_ipv6_request_without_an_ipv6_pool_is_refused_in_words() {
    let mut p = pair(7, vec![client("c1.example")], false, pools(24, false));
    p.a.endpoint
        .set_config_payload(
            PeerId(0),
            ConfigPayload::Request {
                ipv4: false,
                ipv6: true,
            },
        )
        .unwrap();
    connect(&mut p, 0);
    p.run_for(Duration::from_secs(5));
    let b_fail: Vec<String> = failures(&p.b).iter().map(|(f, _)| f.to_string()).collect();
    assert!(
        b_fail
            .iter()
            .any(|f| f.contains("asked for an IPv6 address and config-payload has no IPv6 pool")),
        "{b_fail:?}"
    );
}

#[test]
fn an_ipv6_address_comes_from_the_ipv6_pool_with_its_prefix_and_narrows_the_selectors() {
    let mut c = client("c6.example");
    c.policies = vec![policy("::/0", "fd02::/64")];
    let mut s = server();
    s.policies = vec![policy("fd02::/64", "::/0")];
    let mut a = endpoint(16, vec![c]);
    a.set_config_payload(
        PeerId(0),
        ConfigPayload::Request {
            ipv4: false,
            ipv6: true,
        },
    )
    .unwrap();
    let mut b = endpoint(17, vec![s]);
    b.set_config_payload(
        PeerId(0),
        ConfigPayload::Serve(AddressPools {
            ipv6: Some(("fd09::".parse().unwrap(), 120)),
            dns: vec![ip("fd02::53")],
            ..AddressPools::default()
        }),
    )
    .unwrap();
    let mut p = Pair::new(a, addr(A), b, addr(B), 8);
    connect(&mut p, 0);
    assert!(
        p.run_until(Duration::from_secs(5), |p| !child_ups(&p.a).is_empty()
            && !child_ups(&p.b).is_empty())
    );
    let got = last_config(&p.a).unwrap();
    assert_eq!(got.addresses, vec![(ip("fd09::1"), 128)]);
    assert_eq!(got.dns, vec![ip("fd02::53")]);
    assert_eq!(got.addresses_text(), "fd09::1/128");
    assert_eq!(child_ups(&p.a)[0].local_ts, host("fd09::1"));
    assert_eq!(child_ups(&p.b)[0].remote_ts, host("fd09::1"));
}

#[test]
fn a_policy_of_a_family_without_an_assigned_address_is_not_asked_for_and_says_why() {
    let mut c = client("c1.example");
    let mut v6 = policy("::/0", "fd02::/64");
    v6.ts.name = "lan6".into();
    c.policies.push(v6);
    let mut p = pair(9, vec![c], true, pools(24, false));
    connect(&mut p, 0);
    assert!(p.run_until(Duration::from_secs(5), |p| !child_ups(&p.a).is_empty()));
    p.run_for(Duration::from_secs(3));
    assert_eq!(child_ups(&p.a).len(), 1, "only the IPv4 Child SA");
    let why: Vec<String> = failures(&p.a)
        .iter()
        .filter(|(_, survives)| *survives)
        .map(|(f, _)| f.to_string())
        .collect();
    assert!(
        why.iter()
            .any(|f| f.contains("proxy-id lan6 cannot be negotiated")
                && f.contains("none of the addresses the peer assigned us (10.9.0.1)")),
        "{why:?}"
    );
    assert_eq!(p.a.endpoint.established().len(), 1, "the IKE SA stays");
}
