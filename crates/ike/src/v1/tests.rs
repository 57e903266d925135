//! The IKEv1 engine in the two-peer simulation, through the [`crate::Ike`] facade the daemon
//! owns: main and aggressive mode, quick mode, failures in words, loss, deletes, rekeys, DPD.
//! Quick-mode rekeys, the commit bit, AH, lifetimes and reload are in `tests_quick.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use ferrosec_crypto::{Encryption, Provider, Secret};
use ferrosec_wire::ikev2::DhGroup;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::{DpdSettings, Mode, Settings};
use crate::Ike;
use crate::event::{ChildSaInfo, DownReason, Event, Failure};
use crate::identity::Identity;
use crate::sim::{Pair, Side, epoch};
use crate::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use crate::v2::{
    self, ChildPolicy, PeerConfig, SaLifetime, esp_proposal_cbc, esp_proposal_gcm, ike_proposal_cbc,
};

pub(super) const A: &str = "192.0.2.1:500";
pub(super) const B: &str = "192.0.2.2:500";

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> AddrRange {
    let (a, l) = s.split_once('/').unwrap();
    AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

pub(super) fn policy(name: &str, local: &str, remote: &str) -> ChildPolicy {
    ChildPolicy::new(
        ProxyId {
            name: name.into(),
            local: AddrSpec::Range(net(local)),
            remote: AddrSpec::Range(net(remote)),
            protocol: 0,
            local_ports: PortRange::ANY,
            remote_ports: PortRange::ANY,
        }
        .to_policy(),
        vec![esp_proposal_gcm(), esp_proposal_cbc(128)],
    )
}

/// Site A (10.1.0.0/24) and site B (10.2.0.0/24), fqdn IDs, AES-CBC phase 1.
pub(super) fn cfg(side: Side) -> PeerConfig {
    let (name, peer, local_id, peer_id, local, remote) = match side {
        Side::A => (
            "to-b",
            B,
            "a.example",
            "b.example",
            "10.1.0.0/24",
            "10.2.0.0/24",
        ),
        Side::B => (
            "to-a",
            A,
            "b.example",
            "a.example",
            "10.2.0.0/24",
            "10.1.0.0/24",
        ),
    };
    PeerConfig {
        name: name.into(),
        peer_addr: Some(addr(peer).ip()),
        local_id: Some(Identity::fqdn(local_id)),
        peer_id: Some(Identity::fqdn(peer_id)),
        psk: Secret::from_slice(b"correct horse battery staple"),
        ike_proposals: vec![
            ike_proposal_cbc(256, DhGroup::ECP_256),
            ike_proposal_cbc(128, DhGroup::MODP_2048),
        ],
        policies: vec![policy("lan", local, remote)],
        liveness: None,
        nat_traversal: true,
        restart_on_dead_peer: side == Side::A,
        strict_cookies: false,
        fragmentation: true,
    }
}

pub(super) fn settings(mode: Mode) -> Settings {
    Settings {
        mode,
        dpd: None,
        ike_lifetime: None,
    }
}

pub(super) fn ike(cfg: PeerConfig, s: Settings, seed: u64) -> Ike {
    let v2 = v2::Endpoint::new(
        v2::EndpointConfig::default(),
        vec![cfg],
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
        epoch(),
    );
    let v1 = super::Engine::new(
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(seed + 1000)),
    );
    let mut ike = Ike::new(v2, v1);
    let id = ike.peers().next().unwrap().0;
    ike.serve_ikev1(id, s).unwrap();
    ike
}

pub(super) fn pair_with(a: PeerConfig, b: PeerConfig, s: Settings, seed: u64) -> Pair<Ike> {
    Pair::new(ike(a, s, seed), addr(A), ike(b, s, seed + 1), addr(B), seed)
}

pub(super) fn pair(mode: Mode, seed: u64) -> Pair<Ike> {
    pair_with(cfg(Side::A), cfg(Side::B), settings(mode), seed)
}

pub(super) fn start(p: &mut Pair<Ike>) {
    let id = p.a.endpoint.peers().next().unwrap().0;
    let now = p.time;
    p.a.endpoint.initiate(now, id, addr(A), addr(B)).unwrap();
}

pub(super) fn children(events: &[Event]) -> Vec<&ChildSaInfo> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaUp(c) => Some(c),
            _ => None,
        })
        .collect()
}

pub(super) fn failures(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failed {
                reason, exchange, ..
            } => Some(format!("{exchange}: {reason}")),
            _ => None,
        })
        .collect()
}

pub(super) fn both_up(p: &mut Pair<Ike>) -> bool {
    !children(&p.a.events).is_empty() && !children(&p.b.events).is_empty()
}

/// The pairs agree crosswise: SPIs, algorithms and keys.
pub(super) fn check_crosswise(a: &ChildSaInfo, b: &ChildSaInfo) {
    assert_eq!(a.inbound_spi, b.outbound_spi);
    assert_eq!(a.outbound_spi, b.inbound_spi);
    assert_eq!(a.inbound, b.outbound, "keys A<-B");
    assert_eq!(a.outbound, b.inbound, "keys A->B");
    assert_eq!(a.encr, b.encr);
    assert_eq!(a.integ, b.integ);
    assert!(!a.inbound.encr.is_empty());
    assert_eq!(a.local_ts, b.remote_ts);
    assert_eq!(a.remote_ts, b.local_ts);
}

fn come_up(mode: Mode) {
    let mut p = pair(mode, 1);
    start(&mut p);
    assert!(
        p.run_until(Duration::from_secs(5), both_up),
        "{:?} {:?}",
        p.a.events,
        p.b.events
    );
    for n in [&p.a, &p.b] {
        assert!(
            n.events.iter().any(|e| matches!(e, Event::IkeSaUp(i) if i.peer_id.ty == ferrosec_wire::ikev2::IdType::FQDN)),
            "{:?}",
            n.events
        );
        // IKEv1 authenticates with the pre-shared key only: show vpn ike-sa says psk.
        assert!(
            n.events
                .iter()
                .any(|e| matches!(e, Event::IkeSaUp(i) if i.auth == crate::event::AuthInfo::psk())),
            "{:?}",
            n.events
        );
        assert!(failures(&n.events).is_empty(), "{:?}", failures(&n.events));
        // Once established, neither side keeps what only phase 1 needed (nonces, public
        // values, the shared secret, SA and ID payloads).
        assert!(n.endpoint.v1().sa_count() >= 1);
        assert_eq!(n.endpoint.v1().phase1_material_of_established(), 0);
        // Nor room for quick modes no longer in flight, nor spare phase-2 slots.
        assert_eq!(n.endpoint.v1().spare_slots_of_established(), 0);
    }
    let (a, b) = (children(&p.a.events)[0], children(&p.b.events)[0]);
    check_crosswise(a, b);
    assert_eq!(
        a.encr,
        Some(Encryption::AesGcm {
            key_len: 32,
            icv_len: 16
        })
    );
    assert_eq!(a.integ, None);
    assert_eq!(a.local_ts.to_string(), "10.1.0.0/24");
    assert_eq!(a.remote_ts.to_string(), "10.2.0.0/24");
}

#[test]
fn main_mode_and_quick_mode_bring_up_a_pair_with_matching_keys() {
    come_up(Mode::Main);
}

#[test]
fn aggressive_mode_and_quick_mode_bring_up_a_pair_with_matching_keys() {
    come_up(Mode::Aggressive);
}

/// Main mode: 6 messages, then quick mode: 3.
#[test]
fn main_mode_takes_six_messages_and_quick_mode_three() {
    let mut p = pair(Mode::Main, 2);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.stats.sent, 9, "{:?}", p.stats);
}

#[test]
fn a_wrong_pre_shared_key_is_explained_on_both_sides() {
    let mut b = cfg(Side::B);
    b.psk = Secret::from_slice(b"another key entirely");
    let mut p = pair_with(cfg(Side::A), b, settings(Mode::Main), 3);
    start(&mut p);
    p.run_for(Duration::from_secs(10));
    assert!(children(&p.a.events).is_empty() && children(&p.b.events).is_empty());
    let fb = failures(&p.b.events);
    assert!(
        fb.iter()
            .any(|f| f.contains("main mode (phase 1)") && f.contains("pre-shared key")),
        "{fb:?}"
    );
    let fa = failures(&p.a.events);
    assert!(
        fa.iter().any(|f| f.contains("pre-shared key")),
        "the initiator says why at once, without waiting out its retransmissions: {fa:?}"
    );
}

#[test]
fn a_proposal_mismatch_names_both_sides() {
    let mut b = cfg(Side::B);
    b.ike_proposals = vec![ike_proposal_cbc(256, DhGroup::MODP_3072)];
    let mut p = pair_with(cfg(Side::A), b, settings(Mode::Main), 4);
    start(&mut p);
    p.run_for(Duration::from_secs(5));
    let fb = failures(&p.b.events);
    assert!(
        fb.iter()
            .any(|f| f.contains("MODP_3072") && f.contains("ECP_256")),
        "responder names both sides: {fb:?}"
    );
    let fa = failures(&p.a.events);
    assert!(
        fa.iter().any(|f| f.contains("ECP_256")),
        "initiator names its offer: {fa:?}"
    );
}

#[test]
fn a_proxy_id_mismatch_names_both_sides() {
    let mut b = cfg(Side::B);
    b.policies = vec![policy("lan", "10.2.0.0/24", "10.1.5.0/24")];
    let mut p = pair_with(cfg(Side::A), b, settings(Mode::Main), 5);
    start(&mut p);
    p.run_for(Duration::from_secs(5));
    let fb = failures(&p.b.events);
    assert!(
        fb.iter().any(|f| f.contains("quick mode (phase 2)")
            && f.contains("Proxy ID")
            && f.contains("peer proposed local 10.1.0.0/24 remote 10.2.0.0/24")
            && f.contains("local 10.2.0.0/24 remote 10.1.5.0/24")),
        "{fb:?}"
    );
    let fa = failures(&p.a.events);
    assert!(
        fa.iter().any(|f| f.contains("lan")),
        "the initiator is told: {fa:?}"
    );
}

#[test]
fn thirty_percent_loss_and_reordering_still_bring_the_tunnel_up() {
    for seed in 10..16 {
        let mut p = pair(
            if seed % 2 == 0 {
                Mode::Main
            } else {
                Mode::Aggressive
            },
            seed,
        );
        p.faults.loss = 0.3;
        p.faults.reorder = 0.2;
        p.faults.reorder_delay = Duration::from_millis(300);
        p.faults.duplicate = 0.1;
        start(&mut p);
        let up = p.run_until(Duration::from_secs(300), both_up);
        if up {
            check_crosswise(children(&p.a.events)[0], children(&p.b.events)[0]);
        } else {
            // The initiator gave up after its retransmissions: it says so.
            assert!(
                !failures(&p.a.events).is_empty(),
                "seed {seed}: {:?}\nB: {:?}\n{:?} {:?}",
                p.a.events,
                p.b.events,
                p.stats,
                p.a.endpoint.v1()
            );
        }
    }
}

#[test]
fn deleting_the_isakmp_sa_takes_everything_down_on_both_sides() {
    let mut p = pair(Mode::Main, 6);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let h = p.a.endpoint.established()[0];
    let now = p.time;
    p.a.endpoint.delete_ike_sa(now, h).unwrap();
    p.run_for(Duration::from_secs(2));
    for n in [&p.a, &p.b] {
        assert!(
            n.events
                .iter()
                .any(|e| matches!(e, Event::ChildSaDown { .. })),
            "{:?}",
            n.events
        );
        assert!(
            n.events
                .iter()
                .any(|e| matches!(e, Event::IkeSaDown { .. })),
            "{:?}",
            n.events
        );
    }
    assert!(p.b.events.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: DownReason::PeerDelete,
            ..
        }
    )));
}

/// DPD: the peer goes silent; after interval × retry the initiator declares it dead, takes
/// the SAs down and negotiates again.
#[test]
fn dpd_finds_a_dead_peer_and_starts_again() {
    let s = Settings {
        mode: Mode::Main,
        dpd: Some(DpdSettings {
            interval: Duration::from_secs(5),
            retry: 3,
        }),
        ike_lifetime: None,
    };
    let mut p = pair_with(cfg(Side::A), cfg(Side::B), s, 8);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    // Answered: nothing happens for a minute.
    p.run_for(Duration::from_secs(60));
    assert!(
        !p.a.events
            .iter()
            .any(|e| matches!(e, Event::IkeSaDown { .. }))
    );
    // B goes silent.
    p.faults.hook = Some(Box::new(|from, _| {
        if from == Side::B {
            crate::sim::Verdict::Drop
        } else {
            crate::sim::Verdict::Deliver
        }
    }));
    p.run_for(Duration::from_secs(40));
    assert!(
        p.a.events.iter().any(|e| matches!(
            e,
            Event::IkeSaDown {
                reason: DownReason::PeerUnreachable,
                ..
            }
        )),
        "{:?}",
        p.a.events
    );
    assert!(
        p.a.endpoint
            .negotiating(p.a.endpoint.peers().next().unwrap().0),
        "started again"
    );
    // Three R-U-THERE went unanswered (retry = 3), and only those count as misses (B's own
    // checks are lost on the way too, so B counts its own).
    let peer = p.a.endpoint.peers().next().unwrap().0;
    assert_eq!(p.a.endpoint.liveness_misses(), [(peer, "ikev1", 3)]);
}

/// An FQDN peer that moved (R-CFG-4), handled as IKEv2 handles it. A points B's gateway at
/// a new address while B still answers at the old one: the ISAKMP SA up stays there (SAs up
/// keep the address they run on). Then B restarts at the new address with nothing: A's DPD
/// finds the old SA dead and A negotiates again with the new address, where the tunnel comes
/// up. The link delivers only to the address a node has, so anything A sent to the old
/// address after the move is lost (and counted).
#[test]
fn a_moved_fqdn_peer_is_negotiated_with_at_its_new_address() {
    const B_NEW: &str = "192.0.2.3:500";
    let s = Settings {
        mode: Mode::Main,
        dpd: Some(DpdSettings {
            interval: Duration::from_secs(5),
            retry: 3,
        }),
        ike_lifetime: None,
    };
    let mut p = pair_with(cfg(Side::A), cfg(Side::B), s, 120);
    p.strict_addresses = true;
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let id = p.a.endpoint.peers().next().unwrap().0;
    let now = p.time;
    assert_eq!(
        p.a.endpoint
            .set_peer_address(now, id, Some(addr(B_NEW).ip())),
        Ok(Some(addr(B).ip()))
    );
    // B still answers at the old address: nothing goes down for a minute of DPD.
    p.run_for(Duration::from_secs(60));
    assert!(
        !p.a.events
            .iter()
            .any(|e| matches!(e, Event::IkeSaDown { .. } | Event::ChildSaDown { .. })),
        "{:?}",
        p.a.events
    );
    assert_eq!(p.a.endpoint.established().len(), 1);
    assert_eq!(p.stats.misaddressed, 0, "A still talks to B where B is");

    // B restarts at the new address, with no SA.
    p.b.endpoint = ike(cfg(Side::B), s, 121);
    p.b.addr = addr(B_NEW);
    let (a0, b0) = (p.a.events.len(), p.b.events.len());
    let up_at_new = |e: &Event| matches!(e, Event::IkeSaUp(i) if i.remote == addr(B_NEW));
    assert!(
        p.run_until(Duration::from_secs(90), |p| {
            p.a.events[a0..].iter().any(up_at_new)
                && !children(&p.a.events[a0..]).is_empty()
                && !children(&p.b.events[b0..]).is_empty()
        }),
        "A never negotiated with {B_NEW}: {:?}",
        &p.a.events[a0..]
    );
    let new = &p.a.events[a0..];
    let down = new.iter().position(|e| {
        matches!(
            e,
            Event::IkeSaDown {
                reason: DownReason::PeerUnreachable,
                ..
            }
        )
    });
    let up = new.iter().position(up_at_new);
    assert!(
        down.is_some() && down < up,
        "the old SA declared dead first: {new:?}"
    );
    assert!(
        !new.iter()
            .any(|e| matches!(e, Event::IkeSaUp(i) if i.remote == addr(B))),
        "nothing negotiated with the old address: {new:?}"
    );
    assert!(
        p.stats.misaddressed >= 3,
        "the unanswered R-U-THERE went to the old address: {:?}",
        p.stats
    );
    // One ISAKMP SA left, with the new address, and a pair that agrees with B's.
    assert_eq!(p.a.endpoint.established().len(), 1);
    assert_eq!(p.b.endpoint.established().len(), 1);
    let (ca, cb) = (children(new), children(&p.b.events[b0..]));
    assert_eq!((ca.len(), cb.len()), (1, 1));
    check_crosswise(ca[0], cb[0]);
}

/// The responder side of a moved peer: B knows A at an old address, so A's main mode from
/// its real one is for no gateway of B's and nothing comes up; once B points the gateway at
/// A's address (its name resolved anew), A's next attempt comes up.
#[test]
fn an_ikev1_peer_pointed_at_its_new_address_is_recognized_there() {
    let mut bc = cfg(Side::B);
    bc.peer_addr = Some("192.0.2.99".parse().unwrap());
    let mut p = pair_with(cfg(Side::A), bc, settings(Mode::Main), 122);
    start(&mut p);
    p.run_for(Duration::from_secs(5));
    assert!(
        p.b.endpoint.established().is_empty(),
        "B answered a peer it does not know there: {:?}",
        p.b.events
    );
    let id = p.b.endpoint.peers().next().unwrap().0;
    let now = p.time;
    assert_eq!(
        p.b.endpoint.set_peer_address(now, id, Some(addr(A).ip())),
        Ok(Some("192.0.2.99".parse().unwrap()))
    );
    let a_id = p.a.endpoint.peers().next().unwrap().0;
    let now = p.time;
    let h = p.a.endpoint.initiate(now, a_id, addr(A), addr(B)).unwrap();
    assert!(
        p.run_until(Duration::from_secs(60), both_up),
        "{:?} {:?}",
        failures(&p.a.events),
        failures(&p.b.events)
    );
    assert!(p.a.endpoint.established().contains(&h));
    assert_eq!(p.b.endpoint.established().len(), 1);
}

/// A phase-1 lifetime: the initiator negotiates a new ISAKMP SA before the old one ends;
/// the phase-2 pairs move to it (no ChildSaDown) and the old one goes.
#[test]
fn phase_one_rekey_keeps_the_phase_two_pairs() {
    let s = Settings {
        mode: Mode::Main,
        dpd: None,
        ike_lifetime: Some(SaLifetime::new(Duration::from_secs(120))),
    };
    let mut p = pair_with(cfg(Side::A), cfg(Side::B), s, 9);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    p.run_for(Duration::from_secs(200));
    for n in [&p.a, &p.b] {
        assert!(
            n.events
                .iter()
                .any(|e| matches!(e, Event::IkeSaRekeyed { .. })),
            "{:?}",
            n.events
        );
        assert!(
            !n.events
                .iter()
                .any(|e| matches!(e, Event::ChildSaDown { .. } | Event::IkeSaDown { .. })),
            "{:?}",
            n.events
        );
        assert_eq!(n.endpoint.established().len(), 1);
    }
    // Still usable: a new pair can be made on the new ISAKMP SA.
    let h = p.a.endpoint.established()[0];
    let c = children(&p.a.events)[0].inbound_spi;
    let now = p.time;
    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
    let before = children(&p.b.events).len();
    assert!(
        p.run_until(Duration::from_secs(5), |p| children(&p.b.events).len()
            > before)
    );
}

/// Failures read the same for both versions.
#[test]
fn failure_texts_name_the_ikev1_exchange() {
    let f = Failure::AuthFailed;
    let e = crate::event::Exchange::V1(ferrosec_wire::isakmp::ExchangeType::IDENTITY_PROTECTION);
    assert_eq!(
        format!("{e}: {f}").split(':').next(),
        Some("main mode (phase 1)")
    );
}

/// NAT-T (RFC 3947): the initiator behind a NAT. NAT-D finds it, IKE floats to port 4500
/// after the key exchange, the pair is UDP-encapsulated on both sides.
#[test]
fn nat_traversal_detects_the_nat_and_floats_to_4500() {
    for mode in [Mode::Main, Mode::Aggressive] {
        let mut b = cfg(Side::B);
        b.peer_addr = None;
        let mut p = pair_with(cfg(Side::A), b, settings(mode), 20);
        p.a.nat = Some(addr("203.0.113.7:40001"));
        start(&mut p);
        assert!(
            p.run_until(Duration::from_secs(5), both_up),
            "{mode}: {:?} {:?}",
            p.a.events,
            p.b.events
        );
        let (a, b) = (children(&p.a.events)[0], children(&p.b.events)[0]);
        check_crosswise(a, b);
        assert!(a.udp_encap && b.udp_encap, "{mode}");
        assert_eq!(a.remote.port(), 4500, "{mode}");
        assert_eq!(a.local.port(), 4500, "{mode}");
        assert_eq!(b.local.port(), 4500, "{mode}");
        assert_ne!(b.remote.port(), 500, "{mode}: B answers the NAT's mapping");
        let ia = p.a.events.iter().find_map(|e| match e {
            Event::IkeSaUp(i) => Some(i.nat),
            _ => None,
        });
        assert_eq!(ia, Some((true, false)), "{mode}");
    }
}

/// Without a NAT, IKE stays on port 500 and ESP is not encapsulated.
#[test]
fn without_a_nat_ike_stays_on_500() {
    let mut p = pair(Mode::Main, 21);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let a = children(&p.a.events)[0];
    assert!(!a.udp_encap);
    assert_eq!(a.remote.port(), 500);
}

mod fallback;

/// A peer that restarted starts main mode with INITIAL-CONTACT: the SAs we still hold with
/// it go at once (no DELETE: it has nothing to delete), reported as such, and the new
/// ISAKMP SA comes up as a new one (not as a rekey that adopts stale phase-2 SAs). Our own
/// phase-1 rekey sends no INITIAL-CONTACT, so the peer keeps our phase-2 SAs.
#[test]
fn initial_contact_from_a_restarted_peer_clears_its_stale_sas() {
    let mut p = pair(Mode::Main, 60);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let old_child = children(&p.a.events)[0].inbound_spi;
    let old_ike = p.a.endpoint.established()[0];
    // Our own phase-1 rekey: no INITIAL-CONTACT, B keeps its phase-2 SAs.
    let now = p.time;
    p.a.endpoint.rekey_ike_sa(now, old_ike).unwrap();
    p.run_for(Duration::from_secs(3));
    assert!(
        !p.b.events.iter().any(|e| matches!(
            e,
            Event::ChildSaDown {
                reason: DownReason::PeerInitialContact,
                ..
            }
        )),
        "{:?}",
        p.b.events
    );
    let ike_now = p.a.endpoint.established();
    assert_eq!(ike_now.len(), 1, "{:?}", p.a.endpoint.v1());
    // B restarts with nothing and initiates.
    p.b.endpoint = ike(cfg(Side::B), settings(Mode::Main), 61);
    p.b.events.clear();
    p.a.events.clear();
    let id = p.b.endpoint.peers().next().unwrap().0;
    let now = p.time;
    p.b.endpoint.initiate(now, id, addr(B), addr(A)).unwrap();
    assert!(
        p.run_until(Duration::from_secs(5), both_up),
        "{:?}",
        p.a.events
    );
    let downs: Vec<_> =
        p.a.events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaDown {
                    inbound_spi,
                    reason,
                    ..
                } => Some((*inbound_spi, reason.clone())),
                _ => None,
            })
            .collect();
    assert_eq!(
        downs,
        [(old_child, DownReason::PeerInitialContact)],
        "{:?}",
        p.a.events
    );
    assert!(p.a.events.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            handle,
            reason: DownReason::PeerInitialContact,
            ..
        } if *handle == ike_now[0]
    )));
    assert!(
        p.a.events.iter().any(|e| matches!(e, Event::IkeSaUp(_))),
        "a new SA, not a rekey: {:?}",
        p.a.events
    );
    assert_eq!(p.a.endpoint.established().len(), 1);
    assert!(
        !p.a.events
            .iter()
            .any(|e| matches!(e, Event::IkeSaRekeyed { .. })),
        "{:?}",
        p.a.events
    );
}

/// RFC 3706: R-U-THERE only when idle. While ESP keeps arriving (the daemon reports it once
/// a second), A sends no DPD at all; once the traffic stops, DPD runs again.
#[test]
fn dpd_stays_quiet_while_esp_arrives() {
    let s = Settings {
        mode: Mode::Main,
        dpd: Some(DpdSettings {
            interval: Duration::from_secs(2),
            retry: 3,
        }),
        ike_lifetime: None,
    };
    let mut p = pair_with(cfg(Side::A), cfg(Side::B), s, 63);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    p.run_for(Duration::from_secs(1));
    let h = p.a.endpoint.established()[0];
    let hb = p.b.endpoint.established()[0];
    let sent = |p: &Pair<Ike>| p.stats.sent;
    let before = sent(&p);
    for _ in 0..30 {
        let now = p.time;
        p.a.endpoint.traffic_seen(now, h);
        p.b.endpoint.traffic_seen(now, hb);
        p.run_for(Duration::from_secs(1));
    }
    assert_eq!(sent(&p), before, "no R-U-THERE in 30 s of traffic");
    p.run_for(Duration::from_secs(10));
    assert!(sent(&p) > before, "idle again: DPD runs");
    assert!(
        !p.a.events
            .iter()
            .any(|e| matches!(e, Event::IkeSaDown { .. }))
    );
}

/// Every ID type of R-CFG-4 that a pre-shared key can use travels in main mode (encrypted)
/// and aggressive mode (in clear): addresses (IPv4), user FQDNs, key IDs; and a peer whose ID
/// is not the expected one is refused with both IDs named.
#[test]
fn ipaddr_ufqdn_and_keyid_identities() {
    let ids = [
        (Identity::addr(addr(A).ip()), Identity::addr(addr(B).ip())),
        (
            Identity::ufqdn("vpn@a.example"),
            Identity::ufqdn("vpn@b.example"),
        ),
        (
            Identity::key_id(b"site-a-key"),
            Identity::key_id(b"\x01\x02site-b"),
        ),
    ];
    for (n, (ia, ib)) in ids.into_iter().enumerate() {
        for mode in [Mode::Main, Mode::Aggressive] {
            let (mut a, mut b) = (cfg(Side::A), cfg(Side::B));
            a.local_id = Some(ia.clone());
            a.peer_id = Some(ib.clone());
            b.local_id = Some(ib.clone());
            b.peer_id = Some(ia.clone());
            let mut p = pair_with(a, b, settings(mode), 70 + n as u64);
            start(&mut p);
            assert!(
                p.run_until(Duration::from_secs(5), both_up),
                "{ia} / {ib} in {mode:?}: {:?}",
                failures(&p.b.events)
            );
            let seen = p.b.events.iter().find_map(|e| match e {
                Event::IkeSaUp(i) => Some(i.peer_id.clone()),
                _ => None,
            });
            assert_eq!(seen, Some(ia.clone()));
        }
    }
    // B expects another user FQDN: refused, both named.
    let (mut a, mut b) = (cfg(Side::A), cfg(Side::B));
    a.local_id = Some(Identity::ufqdn("vpn@a.example"));
    b.peer_id = Some(Identity::ufqdn("ops@a.example"));
    let mut p = pair_with(a, b, settings(Mode::Main), 80);
    start(&mut p);
    p.run_for(Duration::from_secs(5));
    let fb = failures(&p.b.events);
    assert!(
        fb.iter()
            .any(|f| f.contains("vpn@a.example") && f.contains("ops@a.example")),
        "{fb:?}"
    );
}

/// A responder whose peer stops half-way (here: everything from A after main-mode message 1
/// is lost) drops the half-open SA after 30 s and says where the peer stopped.
#[test]
fn a_responder_left_half_way_says_where() {
    let mut p = pair(Mode::Main, 81);
    let from_a = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let n = std::rc::Rc::clone(&from_a);
    p.faults.hook = Some(Box::new(move |from, _d: &mut Vec<u8>| {
        if from == Side::A {
            n.set(n.get() + 1);
            if n.get() >= 2 {
                return crate::sim::Verdict::Drop;
            }
        }
        crate::sim::Verdict::Deliver
    }));
    start(&mut p);
    p.run_for(Duration::from_secs(40));
    let fb = failures(&p.b.events);
    assert!(
        fb.iter().any(|f| f.starts_with("main mode (phase 1)")
            && f.contains("message 3 (KE, nonce)")
            && f.contains("192.0.2.1")),
        "{fb:?}"
    );
    assert_eq!(p.b.endpoint.v1().sa_count(), 0);
}

/// A dynamic gateway (no peer address, any ID) serves many sites: a second site's main mode
/// (with INITIAL-CONTACT, its first contact) is neither a rekey of the first site's SA nor a
/// reason to drop it, and a half-open SA of a third site survives both.
#[test]
fn a_dynamic_gateway_keeps_each_sites_sas_apart() {
    const A2: &str = "192.0.2.3:500";
    let mut bc = cfg(Side::B);
    bc.peer_addr = None;
    bc.peer_id = None;
    let mut p = pair_with(cfg(Side::A), bc, settings(Mode::Main), 90);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let first = children(&p.b.events)[0].inbound_spi;
    // The same gateway B now meets a second site, A2, with another address and ID.
    let b = std::mem::replace(
        &mut p.b.endpoint,
        ike(cfg(Side::B), settings(Mode::Main), 91),
    );
    let mut a2c = cfg(Side::A);
    a2c.local_id = Some(Identity::fqdn("a2.example"));
    let mut q = Pair::new(ike(a2c, settings(Mode::Main), 92), addr(A2), b, addr(B), 93);
    q.time = p.time;
    let id = q.a.endpoint.peers().next().unwrap().0;
    let now = q.time;
    q.a.endpoint.initiate(now, id, addr(A2), addr(B)).unwrap();
    assert!(
        q.run_until(Duration::from_secs(5), both_up),
        "{:?}",
        q.b.events
    );
    assert!(
        q.b.events.iter().any(|e| matches!(e, Event::IkeSaUp(_))),
        "a new IKE SA, not a rekey: {:?}",
        q.b.events
    );
    assert!(
        !q.b.events.iter().any(|e| matches!(
            e,
            Event::IkeSaRekeyed { .. } | Event::IkeSaDown { .. } | Event::ChildSaDown { .. }
        )),
        "the first site's SAs are untouched: {:?}",
        q.b.events
    );
    assert_eq!(q.b.endpoint.established().len(), 2);
    assert_ne!(children(&q.b.events)[0].inbound_spi, first);
}

/// The SA table's deadline queue and half-open count (table.rs) stay what a walk over every
/// SA gives, through loss, retransmissions, both rekeys, DPD and deletes, checked after every
/// step of the simulation on both sides.
#[test]
fn the_deadline_queue_matches_a_walk_at_every_step() {
    for (seed, mode) in [(60, Mode::Main), (61, Mode::Aggressive)] {
        let s = Settings {
            mode,
            dpd: Some(DpdSettings {
                interval: Duration::from_secs(10),
                retry: 3,
            }),
            ike_lifetime: Some(SaLifetime::new(Duration::from_secs(90))),
        };
        let mut p = pair_with(cfg(Side::A), cfg(Side::B), s, seed);
        p.faults.loss = 0.15;
        p.faults.reorder = 0.2;
        p.faults.reorder_delay = Duration::from_millis(300);
        start(&mut p);
        let end = p.time + Duration::from_secs(400);
        let mid = p.time + Duration::from_secs(200);
        let mut deleted = false;
        let mut steps = 0;
        while p.time < end && steps < 20_000 {
            if !p.step(end) {
                break;
            }
            steps += 1;
            p.a.endpoint.v1_mut().assert_tables_consistent();
            p.b.endpoint.v1_mut().assert_tables_consistent();
            if !deleted && p.time >= mid {
                // Take the ISAKMP SA down from A: deletes on both sides.
                deleted = true;
                let h = p.a.endpoint.established()[0];
                let now = p.time;
                p.a.endpoint.delete_ike_sa(now, h).unwrap();
            }
        }
        let rekeyed =
            p.a.events
                .iter()
                .any(|e| matches!(e, Event::IkeSaRekeyed { .. }));
        let down =
            p.b.events
                .iter()
                .any(|e| matches!(e, Event::IkeSaDown { .. }));
        assert!(
            steps > 30 && rekeyed && deleted && down,
            "the simulation ran ({steps} steps), rekeyed {rekeyed}, deleted {deleted}, down {down}"
        );
    }
}
