//! IKE_FOLLOWUP_KE (RFC 9370 §2.2.4) in the two-peer simulation: IKE SA and Child SA rekeys
//! with ML-KEM after the CREATE_CHILD_SA; keys agree; loss, duplication, reordering and
//! flipped bytes; a spoiled link, method or KE payload answered in words; a responder whose
//! pending state times out; crossing rekeys; an optional ADDKE with a peer without it; and
//! the new SKEYSEED and KEYMAT computed here from the RFC formulas.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ferrosec_crypto::{Prf, Provider, Secret};
use ferrosec_wire::ikev2::{DhGroup, EncrId, NotifyType, PrfId, ProtocolId};
use ferrosec_wire::{IkeSpi, Spi};

use super::endpoint::Tamper;
use super::tests::rekey::converged;
use super::tests::{both_up, cfg, child_ups, failures, hmac, initiate, pair_with, prf_plus};
use super::*;
use crate::proposal::{Proposal, Selected, Transform};
use crate::retransmit::RetransmitPolicy;
use crate::sim::{Pair, Side, Verdict};
use crate::v2::endpoint::min_nonce;

const FOLLOWUP: u8 = 44;

/// An IKE proposal of X25519 plus ADDKE1 = these methods (NONE makes it optional).
fn ike_hybrid(addke: &[DhGroup]) -> Proposal {
    let mut p = ike_proposal_gcm(DhGroup::CURVE25519);
    for g in addke {
        p.transforms.push(Transform::addke(1, *g));
    }
    p
}

/// An ESP proposal with PFS group 19 and ADDKE1 = these methods (and ADDKE2 = `second`).
fn esp_hybrid(addke: &[DhGroup], second: Option<DhGroup>) -> Proposal {
    let mut p = esp_proposal_gcm();
    p.transforms.push(Transform::ke(DhGroup::ECP_256));
    for g in addke {
        p.transforms.push(Transform::addke(1, *g));
    }
    if let Some(g) = second {
        p.transforms.push(Transform::addke(2, g));
    }
    p
}

fn peer(side: Side, ike: Vec<Proposal>, esp: Vec<Proposal>) -> PeerConfig {
    let mut c = cfg(side);
    c.ike_proposals = ike;
    for pol in &mut c.policies {
        pol.proposals = esp.clone();
    }
    c
}

fn hybrid_peer(side: Side) -> PeerConfig {
    peer(
        side,
        vec![ike_hybrid(&[DhGroup::ML_KEM_768])],
        vec![esp_hybrid(&[DhGroup::ML_KEM_768], None)],
    )
}

fn up(seed: u64, a: PeerConfig, b: PeerConfig, b_config: EndpointConfig) -> Pair<Endpoint> {
    let mut p = pair_with(seed, a, b, b_config);
    initiate(&mut p);
    assert!(
        p.run_until(Duration::from_secs(10), both_up),
        "{:?} / {:?}",
        failures(&p.a),
        failures(&p.b)
    );
    p
}

/// Counts IKE_FOLLOWUP_KE messages per sender (A, B), each once however often it was sent
/// and in however many fragments, and lets `f` decide about each datagram.
fn watch(
    p: &mut Pair<Endpoint>,
    mut f: impl FnMut(Side, &mut Vec<u8>) -> Verdict + 'static,
) -> Rc<RefCell<[u32; 2]>> {
    let seen = Rc::new(RefCell::new([0u32; 2]));
    let s = Rc::clone(&seen);
    let mut messages = std::collections::HashSet::new();
    p.faults.hook = Some(Box::new(move |from, d| {
        if d.get(18) == Some(&FOLLOWUP)
            && let Some(key) = d.get(..24).map(<[u8]>::to_vec)
            && messages.insert((from, key))
        {
            s.borrow_mut()[usize::from(from == Side::B)] += 1;
        }
        f(from, d)
    }));
    seen
}

fn handle(p: &Pair<Endpoint>, side: Side) -> IkeSaHandle {
    let n = if side == Side::A { &p.a } else { &p.b };
    n.endpoint.established()[0]
}

fn first_child(p: &Pair<Endpoint>, side: Side) -> Spi {
    let n = if side == Side::A { &p.a } else { &p.b };
    n.endpoint.snapshot()[0].children[0].inbound_spi
}

fn rekeyed(n: &crate::sim::Node<Endpoint>) -> Vec<&IkeSaInfo> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed { new, .. } => Some(new),
            _ => None,
        })
        .collect()
}

fn assert_converged(p: &Pair<Endpoint>) -> (usize, usize) {
    converged(p).unwrap_or_else(|e| panic!("{e}"))
}

/// Shared-secret bytes of each key exchange method here (X25519/ECP-256: 32, ML-KEM: 32).
fn secret_len(kes: &[DhGroup]) -> usize {
    32 * kes.len()
}

/// The newest Child SA of each side is the mirror of the other's, both name the key
/// exchanges of its keys, and both derived its KEYMAT from every shared secret
/// (g^ir | SK(1) | ...: a side that left one out would show a shorter input).
fn assert_last_children_mirror(p: &Pair<Endpoint>, kes: &[DhGroup]) {
    let (a, b) = (child_ups(&p.a), child_ups(&p.b));
    let (ca, cb) = (a[a.len() - 1], b[b.len() - 1]);
    super::tests::assert_mirrored(ca, cb);
    assert_eq!(ca.key_exchanges.as_deref(), Some(kes));
    assert_eq!(cb.key_exchanges.as_deref(), Some(kes));
    for n in [&p.a, &p.b] {
        let last = n
            .endpoint
            .kdf_inputs
            .iter()
            .rev()
            .find(|(k, _)| *k == "child");
        assert_eq!(
            last,
            Some(&("child", secret_len(kes))),
            "{:?}",
            n.endpoint.kdf_inputs
        );
    }
}

/// Both sides derived the newest IKE SA from g^ir and every additional shared secret.
fn assert_ike_secret(p: &Pair<Endpoint>, kes: &[DhGroup]) {
    for n in [&p.a, &p.b] {
        let last = n
            .endpoint
            .kdf_inputs
            .iter()
            .rev()
            .find(|(k, _)| *k == "ike");
        assert_eq!(
            last,
            Some(&("ike", secret_len(kes))),
            "{:?}",
            n.endpoint.kdf_inputs
        );
    }
}

#[test]
fn ike_sa_rekey_runs_ml_kem_in_one_ike_followup_ke_exchange_and_keys_agree() {
    let mut p = up(
        1,
        hybrid_peer(Side::A),
        hybrid_peer(Side::B),
        EndpointConfig::default(),
    );
    let seen = watch(&mut p, |_, _| Verdict::Deliver);
    let before = p.a.endpoint.snapshot()[0].key_fingerprint.clone();
    let now = p.time;
    p.a.endpoint.rekey_ike_sa(now, handle(&p, Side::A)).unwrap();
    p.run_for(Duration::from_secs(10));
    assert_eq!(*seen.borrow(), [1, 1], "one IKE_FOLLOWUP_KE exchange");
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
    let (ra, rb) = (rekeyed(&p.a), rekeyed(&p.b));
    assert_eq!((ra.len(), rb.len()), (1, 1));
    for r in [ra[0], rb[0]] {
        assert_eq!(r.proposal.ke, Some(DhGroup::CURVE25519));
        assert_eq!(
            r.proposal.additional().collect::<Vec<_>>(),
            [DhGroup::ML_KEM_768]
        );
    }
    assert_eq!(assert_converged(&p), (1, 1));
    assert_ike_secret(&p, &[DhGroup::CURVE25519, DhGroup::ML_KEM_768]);
    let after = p.a.endpoint.snapshot()[0].key_fingerprint.clone();
    assert_ne!(after, before);
    // The new IKE SA works: a Child SA rekey over it (with its own IKE_FOLLOWUP_KE).
    let now = p.time;
    let (h, c) = (handle(&p, Side::A), first_child(&p, Side::A));
    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(Duration::from_secs(10));
    assert_eq!(*seen.borrow(), [2, 2]);
    assert_eq!(assert_converged(&p), (1, 1));
    assert_last_children_mirror(&p, &[DhGroup::ECP_256, DhGroup::ML_KEM_768]);
}

#[test]
fn child_sa_rekey_runs_pfs_then_ml_kem_and_both_sides_name_them() {
    let mut p = up(
        2,
        hybrid_peer(Side::A),
        hybrid_peer(Side::B),
        EndpointConfig::default(),
    );
    // The Child SA of IKE_AUTH has no key exchange of its own.
    assert_eq!(child_ups(&p.a)[0].key_exchanges.as_deref(), Some(&[][..]));
    let seen = watch(&mut p, |_, _| Verdict::Deliver);
    let now = p.time;
    // The responder of the IKE SA rekeys this time.
    let (h, c) = (handle(&p, Side::B), first_child(&p, Side::B));
    p.b.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(Duration::from_secs(10));
    assert_eq!(*seen.borrow(), [1, 1]);
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
    assert_eq!(child_ups(&p.a).len(), 2);
    assert_last_children_mirror(&p, &[DhGroup::ECP_256, DhGroup::ML_KEM_768]);
    assert_eq!(assert_converged(&p), (1, 1));
}

/// Two additional key exchanges (ADDKE1 ML-KEM-768, ADDKE2 ML-KEM-1024): two linked
/// IKE_FOLLOWUP_KE exchanges, each with the link of the answer before.
#[test]
fn two_additional_key_exchanges_chain_two_followups() {
    let two = |side| {
        let mut ike = ike_hybrid(&[DhGroup::ML_KEM_768]);
        ike.transforms
            .push(Transform::addke(2, DhGroup::ML_KEM_1024));
        peer(
            side,
            vec![ike],
            vec![esp_hybrid(
                &[DhGroup::ML_KEM_768],
                Some(DhGroup::ML_KEM_1024),
            )],
        )
    };
    let mut p = up(3, two(Side::A), two(Side::B), EndpointConfig::default());
    let seen = watch(&mut p, |_, _| Verdict::Deliver);
    let now = p.time;
    p.a.endpoint.rekey_ike_sa(now, handle(&p, Side::A)).unwrap();
    p.run_for(Duration::from_secs(10));
    assert_eq!(*seen.borrow(), [2, 2]);
    assert_eq!(
        rekeyed(&p.b)[0].proposal.additional().collect::<Vec<_>>(),
        [DhGroup::ML_KEM_768, DhGroup::ML_KEM_1024]
    );
    assert_ike_secret(
        &p,
        &[
            DhGroup::CURVE25519,
            DhGroup::ML_KEM_768,
            DhGroup::ML_KEM_1024,
        ],
    );
    let now = p.time;
    let (h, c) = (handle(&p, Side::A), first_child(&p, Side::A));
    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(Duration::from_secs(10));
    assert_eq!(*seen.borrow(), [4, 4]);
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
    assert_last_children_mirror(
        &p,
        &[DhGroup::ECP_256, DhGroup::ML_KEM_768, DhGroup::ML_KEM_1024],
    );
    assert_eq!(assert_converged(&p), (1, 1));
}

#[test]
fn rekeys_with_followups_survive_loss_duplication_reordering_and_flipped_bytes() {
    for seed in 0..12u64 {
        let mut p = up(
            100 + seed,
            hybrid_peer(Side::A),
            hybrid_peer(Side::B),
            EndpointConfig::default(),
        );
        p.faults.loss = 0.2;
        p.faults.duplicate = 0.2;
        p.faults.reorder = 0.3;
        p.faults.reorder_delay = Duration::from_secs(2);
        let mut n = 0u32;
        let seen = watch(&mut p, move |_, d| {
            if d.get(18) == Some(&FOLLOWUP) {
                n += 1;
                // Every seventh (a request is two fragments plus one response, so a
                // period of 3 would always hit the same one): dropped on its ICV.
                if n % 7 == 3 {
                    let last = d.len() - 1;
                    d[last] ^= 0x20;
                }
            }
            Verdict::Deliver
        });
        let now = p.time;
        let side = if seed % 2 == 0 { Side::A } else { Side::B };
        let node = if side == Side::A { &mut p.a } else { &mut p.b };
        let h = node.endpoint.established()[0];
        node.endpoint.rekey_ike_sa(now, h).unwrap();
        p.run_for(Duration::from_secs(120));
        let now = p.time;
        let (h, c) = (handle(&p, side), first_child(&p, side));
        let node = if side == Side::A { &mut p.a } else { &mut p.b };
        node.endpoint.rekey_child_sa(now, h, c).unwrap();
        p.run_for(Duration::from_secs(120));
        p.faults.loss = 0.0;
        p.faults.duplicate = 0.0;
        p.faults.reorder = 0.0;
        p.run_for(Duration::from_secs(60));
        assert!(
            seen.borrow()[0] >= 2,
            "seed {seed}: {:?}\n{:#?}\n{:#?}",
            seen.borrow(),
            p.a.events,
            p.b.events
        );
        assert!(
            failures(&p.a).is_empty() && failures(&p.b).is_empty(),
            "seed {seed}: {:?} / {:?}",
            failures(&p.a),
            failures(&p.b)
        );
        assert_eq!(rekeyed(&p.a).len(), 1, "seed {seed}");
        assert_eq!(assert_converged(&p), (1, 1), "seed {seed}");
        assert_last_children_mirror(&p, &[DhGroup::ECP_256, DhGroup::ML_KEM_768]);
    }
}

/// Each spoiled IKE_FOLLOWUP_KE request is answered with the notify RFC 9370 asks for, both
/// sides say what happened with both values, nothing new is made, and the rekey succeeds
/// when tried again.
#[test]
fn a_spoiled_followup_is_refused_in_words_and_the_rekey_recovers() {
    let cases = [
        (
            Tamper::Link,
            NotifyType::STATE_NOT_FOUND,
            "link data 6e6f742d6974, but we gave",
        ),
        (
            Tamper::NoLink,
            NotifyType::STATE_NOT_FOUND,
            "link data none, but we gave",
        ),
        (
            Tamper::Method,
            NotifyType::INVALID_SYNTAX,
            "KE payload of ml-kem-1024, but additional key exchange 1 was negotiated as ml-kem-768; answered INVALID_SYNTAX",
        ),
        (
            Tamper::ShortKe,
            NotifyType::INVALID_SYNTAX,
            "group 36 was rejected",
        ),
        (
            Tamper::NoKe,
            NotifyType::INVALID_SYNTAX,
            "has no KE payload for additional key exchange 1 (ml-kem-768); answered INVALID_SYNTAX",
        ),
    ];
    for (i, (tamper, notify, words)) in cases.into_iter().enumerate() {
        for child in [false, true] {
            let seed = 10 + 2 * i as u64 + u64::from(child);
            let mut p = up(
                seed,
                hybrid_peer(Side::A),
                hybrid_peer(Side::B),
                EndpointConfig::default(),
            );
            let before = p.a.endpoint.snapshot()[0].clone();
            p.a.endpoint.followup_tamper = Some(tamper);
            let now = p.time;
            let h = handle(&p, Side::A);
            if child {
                let c = first_child(&p, Side::A);
                p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
            } else {
                p.a.endpoint.rekey_ike_sa(now, h).unwrap();
            }
            p.run_for(Duration::from_secs(2));
            let ctx = format!("{tamper:?} child={child}");
            let fb = failures(&p.b);
            assert_eq!(fb.len(), 1, "{ctx}: {fb:?}");
            let text = fb[0].0.to_string();
            assert!(text.contains(words), "{ctx}: {text}");
            assert!(fb[0].1, "{ctx}: the IKE SA survives");
            let fa = failures(&p.a);
            assert!(
                matches!(fa.first().map(|f| f.0), Some(Failure::PeerRefused { notify: n }) if *n == notify),
                "{ctx}: {fa:?}"
            );
            // Nothing new, nothing pending.
            let now_a = p.a.endpoint.snapshot()[0].clone();
            assert_eq!(now_a.spi_i, before.spi_i, "{ctx}");
            assert_eq!(now_a.children.len(), 1, "{ctx}");
            assert_eq!(
                now_a.children[0].inbound_spi,
                before.children[0].inbound_spi
            );
            assert!(!p.b.endpoint.snapshot()[0].awaiting_followup, "{ctx}");
            assert_eq!(p.b.endpoint.snapshot()[0].children.len(), 1, "{ctx}");
            // STATE_NOT_FOUND: tried again after a short delay; INVALID_SYNTAX: not.
            let retry = usize::from(notify == NotifyType::STATE_NOT_FOUND);
            assert_eq!(now_a.queued, retry, "{ctx}");
            assert!(!now_a.request_in_flight, "{ctx}");
            // Tried again (STATE_NOT_FOUND) or by hand (INVALID_SYNTAX): it works.
            if notify != NotifyType::STATE_NOT_FOUND {
                let now = p.time;
                let h = handle(&p, Side::A);
                if child {
                    let c = first_child(&p, Side::A);
                    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
                } else {
                    p.a.endpoint.rekey_ike_sa(now, h).unwrap();
                }
            }
            p.run_for(Duration::from_secs(30));
            assert_eq!(assert_converged(&p), (1, 1), "{ctx}");
            if child {
                assert_eq!(child_ups(&p.a).len(), 2, "{ctx}");
                assert_last_children_mirror(&p, &[DhGroup::ECP_256, DhGroup::ML_KEM_768]);
            } else {
                assert_eq!(rekeyed(&p.a).len(), 1, "{ctx}");
            }
        }
    }
}

/// The responder keeps its pending state only for its retransmission span: when the
/// initiator's IKE_FOLLOWUP_KE requests do not come, the state goes (and says so); a late
/// request then gets STATE_NOT_FOUND, and the initiator tries the rekey again.
#[test]
fn a_responder_drops_a_pending_followup_at_its_deadline_and_a_late_request_gets_state_not_found() {
    let short = RetransmitPolicy {
        timeout: Duration::from_secs(1),
        tries: 3,
        ..RetransmitPolicy::default()
    };
    let b_config = EndpointConfig {
        retransmit: short,
        ..EndpointConfig::default()
    };
    let mut p = up(30, hybrid_peer(Side::A), hybrid_peer(Side::B), b_config);
    let held: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let h2 = Rc::clone(&held);
    let holding = Rc::new(RefCell::new(true));
    let hold = Rc::clone(&holding);
    p.faults.hook = Some(Box::new(move |from, d| {
        if *hold.borrow() && from == Side::A && d.get(18) == Some(&FOLLOWUP) {
            h2.borrow_mut().push(d.clone());
            return Verdict::Drop;
        }
        Verdict::Deliver
    }));
    let now = p.time;
    let (h, c) = (handle(&p, Side::A), first_child(&p, Side::A));
    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(Duration::from_secs(1));
    assert!(p.b.endpoint.snapshot()[0].awaiting_followup);
    let timed_out = |p: &mut Pair<Endpoint>| {
        failures(&p.b).iter().any(|f| {
            matches!(
                f.0,
                Failure::Followup(crate::event::FollowupFailure::TimedOut { .. })
            )
        })
    };
    assert!(p.run_until(short.total() + Duration::from_secs(2), timed_out));
    let text = failures(&p.b)[0].0.to_string();
    assert!(
        text.contains("did not send IKE_FOLLOWUP_KE for additional key exchange 1 (ml-kem-768)")
            && text.contains("the pending Child SA was dropped"),
        "{text}"
    );
    assert!(
        !p.b.endpoint.snapshot()[0].awaiting_followup,
        "bounded: the state is gone"
    );
    assert_eq!(
        p.b.endpoint.snapshot()[0].children.len(),
        1,
        "nothing installed"
    );
    // A late copy of A's request: B has no state for it any more.
    *holding.borrow_mut() = false;
    // Its first transmission (all its fragments).
    let first: Vec<Vec<u8>> = {
        let h = held.borrow();
        let id = h[0][20..24].to_vec();
        h.iter()
            .filter(|d| d[20..24] == id[..])
            .take(2)
            .cloned()
            .collect()
    };
    for d in first {
        p.inject(Side::A, 500, d);
    }
    p.run_for(Duration::from_secs(1));
    let fb = failures(&p.b);
    assert!(
        fb.iter().any(|f| f.0.to_string().contains(
            "but no additional key exchange is pending here (none was negotiated, or it timed out); answered STATE_NOT_FOUND"
        )),
        "{fb:?}"
    );
    assert!(
        failures(&p.a).iter().any(|f| matches!(
            f.0,
            Failure::PeerRefused {
                notify: NotifyType::STATE_NOT_FOUND
            }
        )),
        "{:?}",
        failures(&p.a)
    );
    // A tries again after a short delay, and this time it goes through.
    p.run_for(Duration::from_secs(30));
    assert_eq!(child_ups(&p.a).len(), 2);
    assert_last_children_mirror(&p, &[DhGroup::ECP_256, DhGroup::ML_KEM_768]);
    assert_eq!(assert_converged(&p), (1, 1));
}

/// Both sides rekey the same SA at once: the four nonces decide before any IKE_FOLLOWUP_KE
/// (RFC 7296 §2.8.1/§2.8.2), only the winner's exchange goes on, and the ends converge on
/// one SA with agreeing keys; over many seeds each side wins sometimes.
#[test]
fn crossing_rekeys_with_followups_are_decided_by_the_nonces_and_never_wedge() {
    for ike in [false, true] {
        let mut winners = [0u32; 2];
        for seed in 0..16u64 {
            let mut p = up(
                200 + seed + 100 * u64::from(ike),
                hybrid_peer(Side::A),
                hybrid_peer(Side::B),
                EndpointConfig::default(),
            );
            let seen = watch(&mut p, |_, _| Verdict::Deliver);
            let now = p.time;
            let (ha, hb) = (handle(&p, Side::A), handle(&p, Side::B));
            if ike {
                p.a.endpoint.rekey_ike_sa(now, ha).unwrap();
                p.b.endpoint.rekey_ike_sa(now, hb).unwrap();
            } else {
                let (ca, cb) = (first_child(&p, Side::A), first_child(&p, Side::B));
                p.a.endpoint.rekey_child_sa(now, ha, ca).unwrap();
                p.b.endpoint.rekey_child_sa(now, hb, cb).unwrap();
            }
            p.run_for(Duration::from_secs(60));
            let ctx = format!("ike={ike} seed {seed}");
            assert_eq!(assert_converged(&p), (1, 1), "{ctx}");
            let (la, lb) = (&p.a.endpoint.collision_log, &p.b.endpoint.collision_log);
            assert_eq!((la.len(), lb.len()), (1, 1), "{ctx}: {la:?} {lb:?}");
            assert_ne!(la[0].won, lb[0].won, "{ctx}");
            for l in [&la[0], &lb[0]] {
                let ours = min_nonce(&l.ours.0, &l.ours.1);
                let theirs = min_nonce(&l.theirs.0, &l.theirs.1);
                assert_eq!(l.won, ours > theirs, "{ctx}: {l:?}");
            }
            winners[usize::from(lb[0].won)] += 1;
            // Only the winner ran its additional key exchange.
            let s = *seen.borrow();
            assert_eq!(s, [1, 1], "{ctx}: one IKE_FOLLOWUP_KE exchange");
            // The survivor is the winner's.
            let w = if la[0].won { &p.a } else { &p.b };
            let snap = w.endpoint.snapshot();
            let l = if la[0].won { &la[0] } else { &lb[0] };
            if ike {
                assert_eq!(snap[0].handle.0.0, l.survivor, "{ctx}");
                assert_eq!(rekeyed(&p.a).len(), 1, "{ctx}");
            } else {
                assert_eq!(u64::from(snap[0].children[0].inbound_spi.0), l.survivor);
                assert_last_children_mirror(&p, &[DhGroup::ECP_256, DhGroup::ML_KEM_768]);
            }
            assert!(
                failures(&p.a).is_empty() && failures(&p.b).is_empty(),
                "{ctx}: {:?} / {:?}",
                failures(&p.a),
                failures(&p.b)
            );
        }
        assert!(winners[0] > 0 && winners[1] > 0, "ike={ike}: {winners:?}");
    }
}

/// A peer's rekey that comes once our IKE_FOLLOWUP_KE exchange for the same SA has started
/// is answered TEMPORARY_FAILURE: it tries again later, finds the SA replaced, and the ends
/// converge.
#[test]
fn a_rekey_crossing_our_started_followup_gets_temporary_failure_and_converges() {
    for ike in [false, true] {
        let mut p = up(
            40 + u64::from(ike),
            hybrid_peer(Side::A),
            hybrid_peer(Side::B),
            EndpointConfig::default(),
        );
        // Hold A's IKE_FOLLOWUP_KE request until B's own rekey request has been answered.
        let held: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        let h2 = Rc::clone(&held);
        let released = Rc::new(RefCell::new(false));
        let r2 = Rc::clone(&released);
        p.faults.hook = Some(Box::new(move |from, d| {
            if !*r2.borrow() && from == Side::A && d.get(18) == Some(&FOLLOWUP) {
                h2.borrow_mut().push(d.clone());
                return Verdict::Drop;
            }
            Verdict::Deliver
        }));
        let now = p.time;
        let ha = handle(&p, Side::A);
        if ike {
            p.a.endpoint.rekey_ike_sa(now, ha).unwrap();
        } else {
            let ca = first_child(&p, Side::A);
            p.a.endpoint.rekey_child_sa(now, ha, ca).unwrap();
        }
        p.run_for(Duration::from_millis(100));
        // The request (in two IKE fragments: ML-KEM-768's key does not fit one datagram).
        assert!(!held.borrow().is_empty());
        let now = p.time;
        let hb = handle(&p, Side::B);
        if ike {
            p.b.endpoint.rekey_ike_sa(now, hb).unwrap();
        } else {
            let cb = first_child(&p, Side::B);
            p.b.endpoint.rekey_child_sa(now, hb, cb).unwrap();
        }
        p.run_for(Duration::from_millis(100));
        *released.borrow_mut() = true;
        for d in held.borrow_mut().drain(..) {
            p.inject(Side::A, 500, d);
        }
        p.run_for(Duration::from_secs(60));
        let ctx = format!("ike={ike}");
        assert!(
            failures(&p.b).iter().any(|f| matches!(
                f.0,
                Failure::PeerRefused {
                    notify: NotifyType::TEMPORARY_FAILURE
                } | Failure::ChildRefused {
                    notify: NotifyType::TEMPORARY_FAILURE,
                    ..
                }
            )) || p
                .b
                .events
                .iter()
                .all(|e| !matches!(e, Event::Failed { .. })),
            "{ctx}: {:?}",
            failures(&p.b)
        );
        assert_eq!(assert_converged(&p), (1, 1), "{ctx}");
        if ike {
            assert!(!rekeyed(&p.a).is_empty(), "{ctx}");
        } else {
            assert!(child_ups(&p.a).len() >= 2, "{ctx}");
        }
    }
}

/// ADDKE offered as optional (`none` in the list) to a peer without RFC 9370: the rekeys
/// run without IKE_FOLLOWUP_KE and keys agree; a required one fails in words.
#[test]
fn optional_addke_falls_back_for_rekeys_with_a_peer_without_it() {
    let optional = |side| {
        peer(
            side,
            vec![ike_hybrid(&[DhGroup::ML_KEM_768, DhGroup::NONE])],
            vec![esp_hybrid(&[DhGroup::ML_KEM_768, DhGroup::NONE], None)],
        )
    };
    let plain = |side| {
        let mut esp = esp_proposal_gcm();
        esp.transforms.push(Transform::ke(DhGroup::ECP_256));
        peer(side, vec![ike_proposal_gcm(DhGroup::CURVE25519)], vec![esp])
    };
    let mut p = up(
        50,
        optional(Side::A),
        plain(Side::B),
        EndpointConfig::default(),
    );
    let seen = watch(&mut p, |_, _| Verdict::Deliver);
    let now = p.time;
    p.a.endpoint.rekey_ike_sa(now, handle(&p, Side::A)).unwrap();
    p.run_for(Duration::from_secs(10));
    let now = p.time;
    let (h, c) = (handle(&p, Side::A), first_child(&p, Side::A));
    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(Duration::from_secs(10));
    assert_eq!(*seen.borrow(), [0, 0]);
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
    assert_eq!(rekeyed(&p.a)[0].proposal.additional().count(), 0);
    assert_last_children_mirror(&p, &[DhGroup::ECP_256]);
    assert_eq!(assert_converged(&p), (1, 1));

    // Required on the Child SA only (the IKE SA is classic): the Child SA rekey is refused,
    // the old pair stays.
    let required = |side| {
        peer(
            side,
            vec![ike_proposal_gcm(DhGroup::CURVE25519)],
            vec![esp_hybrid(&[DhGroup::ML_KEM_768], None)],
        )
    };
    let mut b = plain(Side::B);
    // B accepts the IKE_AUTH Child SA (KE transforms are left out there) but not the rekey.
    b.policies[0].proposals = vec![{
        let mut esp = esp_proposal_gcm();
        esp.transforms.push(Transform::ke(DhGroup::ECP_256));
        esp
    }];
    let mut p = up(51, required(Side::A), b, EndpointConfig::default());
    let now = p.time;
    let (h, c) = (handle(&p, Side::A), first_child(&p, Side::A));
    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(Duration::from_secs(10));
    let fb = failures(&p.b);
    assert!(
        fb.iter()
            .any(|f| f.0.to_string().contains("KE1_ML_KEM_768")),
        "{fb:?}"
    );
    let fa = failures(&p.a);
    assert!(
        fa.iter()
            .any(|f| f.0.to_string().contains("NO_PROPOSAL_CHOSEN")),
        "{fa:?}"
    );
    assert_eq!(p.a.endpoint.snapshot()[0].children.len(), 1);
    assert_eq!(child_ups(&p.a).len(), 1);
}

// ---------------------------------------------------------------------------------------
// Known answers

fn ike_selected() -> Selected {
    let mut addke = [DhGroup::NONE; 7];
    addke[0] = DhGroup::ML_KEM_768;
    addke[1] = DhGroup::ML_KEM_1024;
    Selected {
        number: 1,
        protocol: ProtocolId::IKE,
        spi: Vec::new(),
        encr: Some((EncrId::AES_GCM_16, Some(256))),
        prf: Some(PrfId::HMAC_SHA2_256),
        integ: None,
        ke: Some(DhGroup::CURVE25519),
        addke,
        esn: None,
    }
}

/// RFC 9370 §2.2.4 for an IKE SA rekey, from fixed inputs: SKEYSEED = prf(SK_d (old),
/// g^ir (new) | SK(1) | SK(2) | Ni | Nr), then the seven keys from prf+(SKEYSEED, Ni | Nr |
/// SPIi | SPIr). Leaving a secret out, swapping their order or the nonces fails it.
#[test]
fn ike_rekey_skeyseed_with_additional_secrets_matches_the_rfc_9370_formula() {
    use crate::v2::protect::IkeKeys;
    let p = Provider::default();
    let sel = ike_selected();
    let (ni0, nr0) = ([0x01u8; 32], [0x02u8; 32]);
    let (spi_i0, spi_r0) = (IkeSpi(1), IkeSpi(2));
    let old = IkeKeys::derive(
        &p,
        &sel,
        &Secret::from_slice(&[0x03; 32]),
        &ni0,
        &nr0,
        spi_i0,
        spi_r0,
        true,
    )
    .unwrap();
    let (ni, nr) = ([0x11u8; 32], [0x22u8; 40]);
    let (spi_i, spi_r) = (IkeSpi(0x0102_0304_0506_0708), IkeSpi(0x1112_1314_1516_1718));
    let g_ir = [0x33u8; 32];
    let sk1 = [0x44u8; 32];
    let sk2 = [0x55u8; 32];
    let joined = Secret::concat(&[
        &Secret::from_slice(&g_ir),
        &Secret::from_slice(&sk1),
        &Secret::from_slice(&sk2),
    ]);
    let new = IkeKeys::derive_rekey(&p, &sel, &old, &joined, &ni, &nr, spi_i, spi_r, true).unwrap();
    let seed = hmac(old.sk_d.expose(), &[&g_ir, &sk1, &sk2, &ni, &nr]);
    let s = [
        &ni[..],
        &nr[..],
        &spi_i.0.to_be_bytes(),
        &spi_r.0.to_be_bytes(),
    ]
    .concat();
    let km = prf_plus(&seed, &s, 32 + 36 + 36 + 32 + 32);
    assert_eq!(new.sk_d.expose(), &km[..32], "SK_d");
    assert_eq!(new.sk_pi(), &km[104..136], "SK_pi");
    assert_eq!(new.sk_pr(), &km[136..168], "SK_pr");
    // Not the RFC 7296 rekey without the additional secrets, nor another order.
    let classic = hmac(old.sk_d.expose(), &[&g_ir, &ni, &nr]);
    assert_ne!(prf_plus(&classic, &s, 32), new.sk_d.expose());
    let swapped = hmac(old.sk_d.expose(), &[&g_ir, &sk2, &sk1, &ni, &nr]);
    assert_ne!(prf_plus(&swapped, &s, 32), new.sk_d.expose());
}

/// RFC 9370 §2.2.4 for a Child SA: KEYMAT = prf+(SK_d, g^ir (new) | SK(1) | Ni | Nr), keys
/// taken initiator-to-responder first (RFC 7296 §2.17); checked on the engine's own
/// derivation (`child_info`) against this computation.
#[test]
fn child_keymat_with_an_additional_secret_matches_the_rfc_9370_formula() {
    use ferrosec_crypto::kdf::ikev2::ChildSaKeys;
    let sk_d = Secret::from_slice(&[0x66; 32]);
    let (ni, nr) = ([0x77u8; 32], [0x88u8; 32]);
    let g_ir = [0x99u8; 32];
    let sk1 = [0xaau8; 32];
    let joined = Secret::concat(&[&Secret::from_slice(&g_ir), &Secret::from_slice(&sk1)]);
    // AES-256-GCM: 36 bytes per direction (key and salt), no integrity key.
    let k = ChildSaKeys::derive(
        Prf::HmacSha256,
        &sk_d,
        Some(joined.expose()),
        &ni,
        &nr,
        36,
        0,
    )
    .unwrap();
    let km = prf_plus(sk_d.expose(), &[&g_ir[..], &sk1, &ni, &nr].concat(), 72);
    assert_eq!(k.encr_i.expose(), &km[..36]);
    assert_eq!(k.encr_r.expose(), &km[36..72]);
    let without = prf_plus(sk_d.expose(), &[&g_ir[..], &ni, &nr].concat(), 36);
    assert_ne!(k.encr_i.expose(), &without[..]);
}
