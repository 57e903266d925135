//! IKEv1 quick mode (phase 2) in the two-peer simulation, through the [`crate::Ike`] facade:
//! rekeys make-before-break, when each side installs and switches, the commit bit, AH,
//! responder lifetimes, simultaneous rekeys and reload.

use std::time::Duration;

use ferrosec_crypto::{Encryption, Integrity};

use super::Mode;
use super::tests::{
    both_up, cfg, check_crosswise, children, failures, pair, pair_with, policy, settings, start,
};
use crate::Ike;
use crate::event::{ChildSaInfo, DownReason, Event};
use crate::sim::{Side, epoch};
use crate::v2::{SaLifetime, esp_proposal_gcm};

/// A phase-2 lifetime of 60 s: the pair is rekeyed before it ends, make-before-break (the
/// new pair up, then the switch, then the old one down), on both sides.
#[test]
fn phase_two_is_rekeyed_make_before_break() {
    let mut a = cfg(Side::A);
    let mut b = cfg(Side::B);
    for c in [&mut a, &mut b] {
        c.policies[0].lifetime = Some(SaLifetime::new(Duration::from_secs(60)));
    }
    let mut p = pair_with(a, b, settings(Mode::Main), 7);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    p.run_for(Duration::from_secs(150));
    for n in [&p.a, &p.b] {
        let ups = children(&n.events).len();
        assert!(ups >= 3, "rekeyed at least twice in 150 s: {ups}");
        let order: Vec<&str> = n
            .events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaUp(_) => Some("up"),
                Event::ChildSaRekeyed { .. } => Some("switch"),
                Event::ChildSaDown { .. } => Some("down"),
                _ => None,
            })
            .collect();
        assert_eq!(&order[..4], ["up", "up", "switch", "down"], "{order:?}");
        assert!(failures(&n.events).is_empty(), "{:?}", failures(&n.events));
    }
    // Every pair's keys agree crosswise.
    let (ca, cb) = (children(&p.a.events), children(&p.b.events));
    for a in &ca {
        let b = cb
            .iter()
            .find(|b| b.inbound_spi == a.outbound_spi)
            .expect("peer pair");
        check_crosswise(a, b);
        // Exactly one side started the quick mode that made it, and says so.
        assert_ne!(a.initiator, b.initiator, "{:?}", a.inbound_spi);
    }
    // The first pair is the one A's quick mode made.
    assert!(ca[0].initiator && !cb[0].initiator);
}

/// The quick-mode initiator of a rekey moves its outbound traffic to the new pair only when
/// the responder has installed it: the responder installs on HASH(3), one latency after the
/// initiator sent it. Switching when HASH(3) leaves would send ESP the responder drops
/// (seen against strongSwan: one ping of 700 lost). Checked over a 200 ms link.
#[test]
fn a_rekey_initiator_switches_only_after_the_responder_installed_the_pair() {
    let mut p = pair(Mode::Main, 62);
    p.latency = Duration::from_millis(200);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(10), both_up));
    let h = p.a.endpoint.established()[0];
    let old = children(&p.a.events)[0].inbound_spi;
    let now = p.time;
    p.a.endpoint.rekey_child_sa(now, h, old).unwrap();
    p.run_for(Duration::from_secs(5));
    let switch =
        p.a.events
            .iter()
            .position(|e| matches!(e, Event::ChildSaRekeyed { .. }))
            .expect("A switched");
    let Event::ChildSaRekeyed {
        new_outbound_spi, ..
    } = p.a.events[switch]
    else {
        unreachable!()
    };
    let b_up =
        p.b.events
            .iter()
            .position(|e| matches!(e, Event::ChildSaUp(c) if c.inbound_spi == new_outbound_spi))
            .expect("B installed the new pair");
    assert!(
        p.a.event_times[switch] > p.b.event_times[b_up],
        "A switched at {:?}, B installed at {:?}",
        p.a.event_times[switch] - epoch(),
        p.b.event_times[b_up] - epoch()
    );
    assert_eq!(
        p.a.event_times[switch] - p.a.event_times[switch - 1],
        super::sa::OUTBOUND_SWITCH_DELAY,
        "the switch follows the new pair's ChildSaUp by the delay: {:?}",
        &p.a.events[switch - 1..=switch]
    );
    // The old pair goes after the switch, on both sides.
    for n in [&p.a, &p.b] {
        let down = n
            .events
            .iter()
            .position(|e| matches!(e, Event::ChildSaDown { inbound_spi, .. } if *inbound_spi == old || children(&n.events)[0].inbound_spi == *inbound_spi))
            .expect("old pair down");
        let sw = n
            .events
            .iter()
            .position(|e| matches!(e, Event::ChildSaRekeyed { .. }))
            .expect("switch");
        assert!(sw < down, "{:?}", n.events);
    }
}

/// The quick-mode responder announces the pair's inbound SA before message 2 leaves (the
/// initiator may send on the pair right after HASH(3), before HASH(3) reaches us) with its
/// outbound SA deferred, and lets the outbound SA carry traffic when HASH(3) comes. Without
/// HASH(3) (lost every time) the announced pair goes down when the responder gives up.
#[test]
fn the_quick_mode_responder_takes_esp_from_message_2_and_sends_after_hash_3() {
    let mut p = pair(Mode::Main, 64);
    p.latency = Duration::from_millis(100);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(10), both_up));
    p.run_for(Duration::from_secs(1));
    let (a, b) = (children(&p.a.events)[0], children(&p.b.events)[0]);
    assert!(!a.outbound_deferred && b.outbound_deferred, "{a:?} {b:?}");
    let at = |n: &crate::sim::Node<Ike>, f: &dyn Fn(&Event) -> bool| {
        n.event_times[n.events.iter().position(f).expect("event")]
    };
    let b_up = at(&p.b, &|e| matches!(e, Event::ChildSaUp(_)));
    let a_up = at(&p.a, &|e| matches!(e, Event::ChildSaUp(_)));
    let b_out = at(
        &p.b,
        &|e| matches!(e, Event::ChildSaOutbound { inbound_spi, .. } if *inbound_spi == b.inbound_spi),
    );
    assert!(b_up < a_up, "B takes ESP before A can send it");
    assert!(a_up < b_out, "B sends only after HASH(3)");
    assert_eq!(b_out - a_up, p.latency, "HASH(3) leaves with A's ChildSaUp");

    // HASH(3) lost every time: B gives up and takes the announced pair down.
    let mut p = pair(Mode::Main, 65);
    let quick_from_a = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let q = std::rc::Rc::clone(&quick_from_a);
    p.faults.hook = Some(Box::new(move |from, d: &mut Vec<u8>| {
        if from == Side::A && d.get(18) == Some(&32) {
            q.set(q.get() + 1);
            if q.get() >= 2 {
                return crate::sim::Verdict::Drop;
            }
        }
        crate::sim::Verdict::Deliver
    }));
    start(&mut p);
    p.run_for(Duration::from_secs(300));
    let up: Vec<_> = children(&p.b.events)
        .iter()
        .map(|c| c.inbound_spi)
        .collect();
    assert_eq!(up.len(), 1, "{:?}", p.b.events);
    assert!(
        p.b.events.iter().any(|e| matches!(
            e,
            Event::ChildSaDown { inbound_spi, reason: DownReason::PeerUnreachable, .. } if *inbound_spi == up[0]
        )),
        "{:?}",
        p.b.events
    );
    assert!(
        !p.b.events
            .iter()
            .any(|e| matches!(e, Event::ChildSaOutbound { .. })),
        "never sent on"
    );
}

/// AH over IKEv1: a policy whose IPSec profile is AH gets an AH pair (protocol AH, no
/// cipher, integrity keys that agree crosswise).
#[test]
fn ah_over_quick_mode() {
    let ah = || {
        crate::proposal::Proposal::new(
            ferrosec_wire::ikev2::ProtocolId::AH,
            vec![
                crate::proposal::Transform::integ(ferrosec_wire::ikev2::IntegId::HMAC_SHA2_256_128),
                crate::proposal::Transform::esn(ferrosec_wire::ikev2::EsnId::NO_ESN),
            ],
        )
    };
    let (mut a, mut b) = (cfg(Side::A), cfg(Side::B));
    a.policies[0].proposals = vec![ah()];
    b.policies[0].proposals = vec![esp_proposal_gcm(), ah()];
    let mut p = pair_with(a, b, settings(Mode::Main), 66);
    start(&mut p);
    assert!(
        p.run_until(Duration::from_secs(5), both_up),
        "{:?}",
        failures(&p.a.events)
    );
    let (ca, cb) = (children(&p.a.events)[0], children(&p.b.events)[0]);
    assert_eq!(
        (ca.inbound_spi, ca.outbound_spi),
        (cb.outbound_spi, cb.inbound_spi)
    );
    assert_eq!(ca.inbound, cb.outbound);
    assert_eq!(ca.outbound, cb.inbound);
    assert_ne!(ca.inbound, ca.outbound);
    assert!(ca.inbound.encr.is_empty());
    assert_eq!(cb.protocol, ferrosec_wire::ikev2::ProtocolId::AH);
    assert_eq!(ca.protocol, ferrosec_wire::ikev2::ProtocolId::AH);
    assert_eq!(ca.encr, None);
    assert_eq!(ca.integ, Some(Integrity::HmacSha256_128));
    assert_eq!(ca.inbound.integ.len(), 32);
}

/// Lifetimes in seconds and kilobytes: A offers 1 h and 1 GiB, B allows 10 min and 100 MiB.
/// B answers with A's values and tells its own with RESPONDER-LIFETIME; both use the shorter
/// ones (the pair's lifesize, and A rekeys before 10 min are up).
#[test]
fn the_shorter_lifetimes_win_with_responder_lifetime() {
    let (mut a, mut b) = (cfg(Side::A), cfg(Side::B));
    a.policies[0].lifetime = Some(SaLifetime::new(Duration::from_secs(3600)));
    a.policies[0].lifesize = Some(1 << 30);
    b.policies[0].lifetime = Some(SaLifetime::new(Duration::from_secs(600)));
    b.policies[0].lifesize = Some(100 << 20);
    let mut p = pair_with(a, b, settings(Mode::Main), 67);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let (ca, cb) = (children(&p.a.events)[0], children(&p.b.events)[0]);
    assert_eq!(ca.lifesize, Some(100 << 20));
    assert_eq!(cb.lifesize, Some(100 << 20));
    let up = p.time;
    assert!(
        p.run_until(Duration::from_secs(600), |p| children(&p.a.events).len()
            >= 2),
        "A rekeyed within B's 10 minutes"
    );
    assert!(p.time - up < Duration::from_secs(600));
    p.run_for(Duration::from_secs(3));
    let initiator_of_rekey =
        p.a.events
            .iter()
            .any(|e| matches!(e, Event::ChildSaRekeyed { .. }));
    assert!(initiator_of_rekey, "{:?}", p.a.events);
}

/// The commit bit (RFC 2408 §3.1): a responder that sets it in quick-mode message 2 sends
/// CONNECTED in a fourth message after HASH(3); the initiator installs the pair's inbound SA
/// at once but sends on it only after CONNECTED, for a first pair and for a rekey (where it
/// replaces the 1 s switch delay). Without CONNECTED the initiator deletes the pair after its
/// retransmission time and says why.
#[test]
fn the_commit_bit_holds_outbound_traffic_until_connected() {
    let mut p = pair(Mode::Main, 68);
    p.latency = Duration::from_millis(50);
    p.b.endpoint.set_ikev1_commit_bit(true);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    p.run_for(Duration::from_secs(1));
    let a = children(&p.a.events)[0].clone();
    assert!(a.outbound_deferred, "A waits for CONNECTED");
    let at = |n: &crate::sim::Node<Ike>, f: &dyn Fn(&Event) -> bool| {
        n.event_times[n.events.iter().position(f).expect("event")]
    };
    let a_up = at(&p.a, &|e| matches!(e, Event::ChildSaUp(_)));
    let a_out = at(
        &p.a,
        &|e| matches!(e, Event::ChildSaOutbound { inbound_spi, .. } if *inbound_spi == a.inbound_spi),
    );
    assert_eq!(a_out - a_up, 2 * p.latency, "HASH(3) there, CONNECTED back");
    assert!(failures(&p.a.events).is_empty());
    // A rekey: the switch waits for CONNECTED, not for the fixed delay.
    let h = p.a.endpoint.established()[0];
    let now = p.time;
    p.a.endpoint.rekey_child_sa(now, h, a.inbound_spi).unwrap();
    p.run_for(Duration::from_secs(5));
    let new_up =
        p.a.events
            .iter()
            .rposition(|e| matches!(e, Event::ChildSaUp(_)))
            .unwrap();
    let switch =
        p.a.events
            .iter()
            .position(|e| matches!(e, Event::ChildSaRekeyed { .. }))
            .expect("switched");
    assert_eq!(
        p.a.event_times[switch] - p.a.event_times[new_up],
        2 * p.latency
    );

    // CONNECTED lost (B's second quick-mode message dropped every time).
    let mut p = pair(Mode::Main, 69);
    p.b.endpoint.set_ikev1_commit_bit(true);
    let quick_from_b = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let q = std::rc::Rc::clone(&quick_from_b);
    p.faults.hook = Some(Box::new(move |from, d: &mut Vec<u8>| {
        if from == Side::B && d.get(18) == Some(&32) {
            q.set(q.get() + 1);
            if q.get() >= 2 {
                return crate::sim::Verdict::Drop;
            }
        }
        crate::sim::Verdict::Deliver
    }));
    start(&mut p);
    p.run_for(Duration::from_secs(300));
    assert!(
        !p.a.events
            .iter()
            .any(|e| matches!(e, Event::ChildSaOutbound { .. })),
        "never sent on"
    );
    let fa = failures(&p.a.events);
    assert!(
        fa.iter()
            .any(|f| f.contains("commit bit") && f.contains("CONNECTED") && f.contains("lan")),
        "{fa:?}"
    );
    assert!(p.a.events.iter().any(|e| matches!(
        e,
        Event::ChildSaDown {
            reason: DownReason::LocalDelete,
            ..
        }
    )));
}

/// Both sides rekey the same phase-2 pair at the same moment (IKEv1 has no collision rule):
/// two new pairs come up, each side switches to one that the other has, the old pair goes on
/// both sides, and every pair left agrees crosswise.
#[test]
fn simultaneous_phase_two_rekeys_leave_matching_pairs() {
    // Latencies below, near and above the initiator's 1 s switch delay: every order of
    // HASH(3)s and switches.
    for ms in [5, 50, 400, 700, 1500] {
        let mut p = pair(Mode::Main, 94 + ms);
        p.latency = Duration::from_millis(ms);
        start(&mut p);
        assert!(p.run_until(Duration::from_secs(60), both_up));
        // The responder records its pair when HASH(3) arrives, a latency after its ChildSaUp.
        p.run_for(Duration::from_millis(3 * ms) + Duration::from_secs(1));
        let old_a = children(&p.a.events)[0].inbound_spi;
        let old_b = children(&p.b.events)[0].inbound_spi;
        let (ha, hb) = (p.a.endpoint.established()[0], p.b.endpoint.established()[0]);
        let now = p.time;
        p.a.endpoint.rekey_child_sa(now, ha, old_a).unwrap();
        p.b.endpoint.rekey_child_sa(now, hb, old_b).unwrap();
        p.run_for(Duration::from_secs(60));
        for (n, old) in [(&p.a, old_a), (&p.b, old_b)] {
            assert!(failures(&n.events).is_empty(), "{:?}", failures(&n.events));
            assert!(
                n.events.iter().any(
                    |e| matches!(e, Event::ChildSaDown { inbound_spi, .. } if *inbound_spi == old)
                ),
                "the old pair is gone: {:?}",
                n.events
            );
            assert_eq!(
                children(&n.events).len(),
                3,
                "the first pair and two rekeys"
            );
        }
        // The pairs still up on each side: the ones not reported down.
        let up = |n: &crate::sim::Node<Ike>| -> Vec<(ferrosec_wire::Spi, ferrosec_wire::Spi)> {
            children(&n.events)
                .iter()
                .filter(|c| {
                    !n.events.iter().any(|e| {
                        matches!(e, Event::ChildSaDown { inbound_spi, .. } if *inbound_spi == c.inbound_spi)
                    })
                })
                .map(|c| (c.inbound_spi, c.outbound_spi))
                .collect()
        };
        let (ua, ub) = (up(&p.a), up(&p.b));
        assert!(!ua.is_empty(), "{:?}", p.a.events);
        let mut mirrored: Vec<_> = ub.iter().map(|(i, o)| (*o, *i)).collect();
        mirrored.sort();
        let mut ua_sorted = ua.clone();
        ua_sorted.sort();
        assert_eq!(ua_sorted, mirrored, "the same pairs on both sides");
        // Each side's last switch names a pair the other side has.
        for (n, other) in [(&p.a, &ub), (&p.b, &ua)] {
            let last = n.events.iter().rev().find_map(|e| match e {
                Event::ChildSaRekeyed {
                    new_outbound_spi, ..
                } => Some(*new_outbound_spi),
                _ => None,
            });
            let last = last.expect("switched");
            assert!(other.iter().any(|(i, _)| *i == last), "{last:?} {other:?}");
        }
    }
}

/// Live reload over IKEv1 (R-OPS-4), through the facade: a changed IPSec profile (the same
/// proxy ID, AES-CBC first) rekeys the phase-2 pair under the same ISAKMP SA with the new
/// proposals; removing the peer deletes the ISAKMP SA on the other side (Delete
/// notification) and forgets the peer in both engines.
#[test]
fn a_reload_rekeys_phase_two_with_new_proposals_and_a_removed_peer_is_deleted_on_the_peer() {
    let mut p = pair(Mode::Main, 11);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let id = p.a.endpoint.peers().next().unwrap().0;
    let h = p.a.endpoint.established()[0];
    let first = children(&p.a.events)[0].inbound_spi;

    // The same policies: nothing to do.
    let now = p.time;
    let same = vec![policy("lan", "10.1.0.0/24", "10.2.0.0/24")];
    let u = p.a.endpoint.update_policies(now, id, same).unwrap();
    assert_eq!(u.unchanged.len(), 1);
    assert!(u.rekeyed.is_empty() && u.removed.is_empty() && u.added.is_empty());

    // AES-128-CBC first (B accepts it): rekeyed under the same ISAKMP SA.
    let mut changed = policy("lan", "10.1.0.0/24", "10.2.0.0/24");
    changed.proposals.reverse();
    let a_before = p.a.events.len();
    let now = p.time;
    let u =
        p.a.endpoint
            .update_policies(now, id, vec![changed])
            .unwrap();
    assert_eq!(u.rekeyed.len(), 1);
    assert_eq!(u.rekeyed[0].1, 1, "one phase-2 pair rekeyed: {u:?}");
    p.run_for(Duration::from_secs(3));
    let new: Vec<&ChildSaInfo> = children(&p.a.events[a_before..]);
    assert_eq!(new.len(), 1, "{:?}", &p.a.events[a_before..]);
    assert_eq!(new[0].encr, Some(Encryption::AesCbc { key_len: 16 }));
    assert_eq!(new[0].integ, Some(Integrity::HmacSha256_128));
    assert_ne!(new[0].inbound_spi, first);
    assert_eq!(p.a.endpoint.established(), vec![h], "the same ISAKMP SA");
    assert!(
        failures(&p.a.events).is_empty(),
        "{:?}",
        failures(&p.a.events)
    );

    // The peer removed: the ISAKMP SA is deleted on B too, and A forgets the peer.
    let b_before = p.b.events.len();
    let now = p.time;
    assert_eq!(p.a.endpoint.remove_peer(now, id), Ok(1));
    assert!(p.a.endpoint.peers().next().is_none());
    assert!(p.a.endpoint.established().is_empty());
    assert!(!p.a.endpoint.v1().serves(id));
    p.run_for(Duration::from_secs(2));
    assert!(
        p.b.events[b_before..].iter().any(|e| matches!(
            e,
            Event::IkeSaDown {
                reason: DownReason::PeerDelete,
                ..
            }
        )),
        "{:?}",
        &p.b.events[b_before..]
    );
    assert!(p.b.endpoint.established().is_empty());
}
