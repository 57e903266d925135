//! Rekeys, lifetimes, collisions (RFC 7296 §2.8.1, §2.8.2, §2.25), re-authentication,
//! INITIAL_CONTACT and error notifies, in the two-peer simulation; and the randomized soak.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ferrosec_wire::Spi;
use ferrosec_wire::ikev2::{Header, Packet};

use super::*;
use crate::v2::endpoint::{MAX_CHILD_SAS, min_nonce};

/// Long enough for every retransmission, Rekeyed-SA timeout and cleanup to be over.
const SETTLE: Duration = Duration::from_secs(1200);

/// Which message of the link a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sel {
    from: Side,
    exchange: u8,
    response: bool,
    /// The n-th such message (0 = first) counted from when the rule is installed.
    nth: usize,
}

const CCS: u8 = 36;
const INFO: u8 = 37;

/// Holds selected datagrams until released (or forever: a drop).
#[derive(Default)]
struct Holder {
    rules: Vec<Sel>,
    seen: Vec<(Side, u8, bool)>,
    held: Vec<(Sel, Side, Vec<u8>)>,
}

fn classify(data: &[u8]) -> Option<(u8, bool)> {
    let pk = Packet::new_checked(data).ok()?;
    let h = Header::parse(&pk);
    Some((h.exchange_type.0, h.flags.response()))
}

fn install(p: &mut Pair<Endpoint>, rules: &[Sel]) -> Rc<RefCell<Holder>> {
    let h = Rc::new(RefCell::new(Holder {
        rules: rules.to_vec(),
        ..Holder::default()
    }));
    let h2 = h.clone();
    p.faults.hook = Some(Box::new(move |side, data| {
        let Some((ex, r)) = classify(data) else {
            return Verdict::Deliver;
        };
        let mut h = h2.borrow_mut();
        let n = h
            .seen
            .iter()
            .filter(|(s, e, rr)| *s == side && *e == ex && *rr == r)
            .count();
        h.seen.push((side, ex, r));
        let hit = h
            .rules
            .iter()
            .copied()
            .find(|s| s.from == side && s.exchange == ex && s.response == r && s.nth == n);
        match hit {
            Some(sel) => {
                h.held.push((sel, side, data.clone()));
                Verdict::Drop
            }
            None => Verdict::Deliver,
        }
    }));
    h
}

/// Releases the held datagram `sel` (if it was held).
fn release(p: &mut Pair<Endpoint>, h: &Rc<RefCell<Holder>>, sel: Sel) -> bool {
    let got = {
        let mut h = h.borrow_mut();
        h.held
            .iter()
            .position(|(s, _, _)| *s == sel)
            .map(|i| h.held.remove(i))
    };
    match got {
        Some((_, side, data)) => {
            p.inject(side, 500, data);
            true
        }
        None => false,
    }
}

fn established_pair(seed: u64, a: PeerConfig, b: PeerConfig, b_inits: bool) -> Pair<Endpoint> {
    let mut p = pair_with(seed, a, b, EndpointConfig::default());
    let now = p.time;
    if b_inits {
        p.b.endpoint
            .initiate(now, PeerId(0), addr(B), addr(A))
            .unwrap();
    } else {
        p.a.endpoint
            .initiate(now, PeerId(0), addr(A), addr(B))
            .unwrap();
    }
    assert!(p.run_until(Duration::from_secs(5), both_up));
    p
}

fn handle(n: &Node<Endpoint>) -> IkeSaHandle {
    n.endpoint.established()[0]
}

fn first_child(n: &Node<Endpoint>) -> ferrosec_wire::Spi {
    n.endpoint.snapshot()[0].children[0].inbound_spi
}

/// Both ends have the same IKE and Child SAs with the same keys, all idle and installed,
/// and nothing else (no half-open SAs, no queued or pending work). Returns
/// (IKE SAs, Child SAs).
pub(crate) fn converged(p: &Pair<Endpoint>) -> Result<(usize, usize), String> {
    let (sa, sb) = (p.a.endpoint.snapshot(), p.b.endpoint.snapshot());
    let key = |s: &IkeSaSnapshot| (s.spi_i, s.spi_r);
    let mut ka: Vec<_> = sa.iter().map(key).collect();
    let mut kb: Vec<_> = sb.iter().map(key).collect();
    ka.sort();
    kb.sort();
    if ka != kb {
        return Err(format!("IKE SAs differ:\n a {sa:#?}\n b {sb:#?}"));
    }
    let mut children = 0;
    for x in &sa {
        let y = sb.iter().find(|y| key(y) == key(x)).unwrap();
        for s in [x, y] {
            if s.state != IkeSaState::Established
                || s.request_in_flight
                || s.queued != 0
                || !s.announced
                || s.awaiting_followup
            {
                return Err(format!("IKE SA not idle/established: {s:#?}"));
            }
        }
        if x.key_fingerprint != y.key_fingerprint || x.initiator == y.initiator {
            return Err(format!("IKE SA keys or roles differ: {x:#?} {y:#?}"));
        }
        if x.children.len() != y.children.len() {
            return Err(format!("children differ: {x:#?} {y:#?}"));
        }
        for c in &x.children {
            let Some(d) = y
                .children
                .iter()
                .find(|d| d.inbound_spi == c.outbound_spi && d.outbound_spi == c.inbound_spi)
            else {
                return Err(format!("child {c:?} has no mirror at b: {y:#?}"));
            };
            if c.state != ChildState::Installed || d.state != ChildState::Installed {
                return Err(format!("child not installed: {c:?} {d:?}"));
            }
            if c.key_fingerprint != d.peer_key_fingerprint {
                return Err(format!("child keys differ: {c:?} {d:?}"));
            }
        }
        children += x.children.len();
    }
    Ok((sa.len(), children))
}

fn assert_converged(p: &Pair<Endpoint>) -> (usize, usize) {
    match converged(p) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------------------
// IKE SA rekey

fn ike_rekeyed(n: &Node<Endpoint>) -> Vec<(IkeSaHandle, IkeSaInfo)> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed { old, new } => Some((*old, new.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn ike_sa_rekey_moves_children_and_deletes_the_old_sa() {
    for b_inits in [false, true] {
        for rekeyer in [Side::A, Side::B] {
            let mut p = established_pair(40, cfg(Side::A), cfg(Side::B), b_inits);
            let before = p.a.endpoint.snapshot()[0].clone();
            let child_a = child_ups(&p.a)[0].clone();
            let now = p.time;
            let h = handle(p.node(rekeyer));
            p.node(rekeyer).endpoint.rekey_ike_sa(now, h).unwrap();
            p.run_for(SETTLE);
            assert_eq!(assert_converged(&p), (1, 1));
            let after = p.a.endpoint.snapshot()[0].clone();
            assert_ne!((after.spi_i, after.spi_r), (before.spi_i, before.spi_r));
            assert_ne!(after.key_fingerprint, before.key_fingerprint);
            // The rekey initiator is the new SA's initiator (§2.18).
            assert_eq!(after.initiator, rekeyer == Side::A);
            // The Child SA moved unchanged.
            assert_eq!(after.children[0].inbound_spi, child_a.inbound_spi);
            for (n, side) in [(&p.a, Side::A), (&p.b, Side::B)] {
                let r = ike_rekeyed(n);
                assert_eq!(r.len(), 1, "{:?}", n.events);
                assert_eq!(r[0].1.handle, n.endpoint.established()[0]);
                // The event says which side started the rekey (the daemon's metrics count it).
                assert_eq!(r[0].1.initiator, rekeyer == side);
                assert!(downs(n).is_empty(), "no SA went down: {:?}", downs(n));
                assert_eq!(child_ups(n).len(), 1);
            }
            // The old handle still reaches the SA.
            let now = p.time;
            let old = before.handle; // A's handle from before the rekey
            p.a.endpoint.check_liveness(now, old).unwrap();
            // And the new SA works: a Child SA rekey over it.
            let h = handle(&p.a);
            let c = first_child(&p.a);
            p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
            p.run_for(SETTLE);
            assert_eq!(assert_converged(&p), (1, 1));
            assert_ne!(first_child(&p.a), c);
        }
    }
}

/// `ChildSaInfo::initiator` names the side that started the exchange that made the pair:
/// the IKE SA's initiator for the pair of IKE_AUTH, the rekey's initiator for a rekeyed pair,
/// whichever side started the IKE SA.
#[test]
fn child_sa_info_names_the_side_that_started_the_exchange() {
    for b_inits in [false, true] {
        let mut p = established_pair(44, cfg(Side::A), cfg(Side::B), b_inits);
        assert_eq!(child_ups(&p.a)[0].initiator, !b_inits);
        assert_eq!(child_ups(&p.b)[0].initiator, b_inits);
        for (rekeyer, n) in [(Side::A, 2), (Side::B, 3)] {
            let now = p.time;
            let (h, c) = (handle(p.node(rekeyer)), first_child(p.node(rekeyer)));
            p.node(rekeyer).endpoint.rekey_child_sa(now, h, c).unwrap();
            p.run_for(SETTLE);
            assert_eq!(assert_converged(&p), (1, 1));
            let (ua, ub) = (child_ups(&p.a), child_ups(&p.b));
            assert_eq!((ua.len(), ub.len()), (n, n));
            assert_eq!(ua[n - 1].initiator, rekeyer == Side::A);
            assert_eq!(ub[n - 1].initiator, rekeyer == Side::B);
        }
    }
}

#[test]
fn ike_sa_rekey_keys_follow_rfc_7296_2_18() {
    // Both ends derive the same keys (fingerprints of SK_d) and they differ from a fresh
    // derivation: checked by two rekeys in a row giving three distinct fingerprints.
    let mut p = established_pair(41, cfg(Side::A), cfg(Side::B), false);
    let mut prints = vec![p.a.endpoint.snapshot()[0].key_fingerprint.clone()];
    for _ in 0..2 {
        let now = p.time;
        let h = handle(&p.a);
        p.a.endpoint.rekey_ike_sa(now, h).unwrap();
        p.run_for(SETTLE);
        assert_converged(&p);
        prints.push(p.a.endpoint.snapshot()[0].key_fingerprint.clone());
    }
    prints.dedup();
    assert_eq!(prints.len(), 3);
}

#[test]
fn ike_sa_rekey_invalid_ke_is_retried_with_the_requested_group() {
    // B accepts only the CBC/P-256 proposal; A's first guess is Curve25519.
    let mut b = cfg(Side::B);
    b.ike_proposals.remove(0);
    let mut p = established_pair(42, cfg(Side::A), b, false);
    let sizes = Rc::new(RefCell::new(0usize));
    let s2 = sizes.clone();
    p.faults.hook = Some(Box::new(move |_, data| {
        if classify(data) == Some((CCS, false)) {
            *s2.borrow_mut() += 1;
        }
        Verdict::Deliver
    }));
    let now = p.time;
    let h = handle(&p.a);
    p.a.endpoint.rekey_ike_sa(now, h).unwrap();
    p.run_for(SETTLE);
    assert_eq!(assert_converged(&p), (1, 1));
    assert_eq!(*sizes.borrow(), 2, "first try, then the retry with P-256");
    assert_eq!(ike_rekeyed(&p.a)[0].1.proposal.ke, Some(DhGroup::ECP_256));
    assert!(failures(&p.a).is_empty());
}

#[test]
fn child_rekey_invalid_ke_is_retried_with_the_requested_group() {
    let mut a = cfg(Side::A);
    set_child_proposals(
        &mut a,
        vec![
            {
                let mut x = esp_proposal_gcm();
                x.transforms.push(Transform::ke(DhGroup::ECP_256));
                x
            },
            {
                let mut x = esp_proposal_gcm();
                x.transforms.push(Transform::ke(DhGroup::CURVE25519));
                x
            },
        ],
    );
    let b = with_pfs(cfg(Side::B), DhGroup::CURVE25519);
    let mut p = established_pair(43, a, b, false);
    let now = p.time;
    let (h, c) = (handle(&p.a), first_child(&p.a));
    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(SETTLE);
    assert_eq!(assert_converged(&p), (1, 1));
    assert_ne!(first_child(&p.a), c);
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
}

// ---------------------------------------------------------------------------------------
// The collision matrix

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    RekeyChild,
    RekeyIke,
    DeleteChild,
    DeleteIke,
    CreateChild,
}

/// What must hold at the end besides convergence.
#[derive(Debug, Clone, Copy)]
struct Expect {
    ike_sas: usize,
    children: usize,
    /// The surviving IKE SA is not the original one.
    new_ike: bool,
    /// A collision (child or IKE) was decided: `Some(true)` on both sides with opposite
    /// results, `Some(false)` on one side only (the other learnt it from the winner's
    /// delete of the old SA); `None`: no collision.
    collision: Option<bool>,
}

struct Case {
    name: &'static str,
    /// The IKE SA's original initiator is B.
    b_inits: bool,
    ops: &'static [(Side, Op)],
    /// Held datagrams, released in this order after everything else settled for 1 s.
    hold: Vec<Sel>,
    /// Held datagrams never released (lost).
    drop: Vec<Sel>,
    expect: Expect,
}

const fn ex(ike_sas: usize, children: usize, new_ike: bool, collision: Option<bool>) -> Expect {
    Expect {
        ike_sas,
        children,
        new_ike,
        collision,
    }
}

use Side::{A as SA, B as SB};

const fn q(from: Side, exchange: u8, nth: usize) -> Sel {
    Sel {
        from,
        exchange,
        response: false,
        nth,
    }
}

const fn r(from: Side, exchange: u8, nth: usize) -> Sel {
    Sel {
        from,
        exchange,
        response: true,
        nth,
    }
}

const BOTH_REKEY_CHILD: &[(Side, Op)] = &[(SA, Op::RekeyChild), (SB, Op::RekeyChild)];
const BOTH_REKEY_IKE: &[(Side, Op)] = &[(SA, Op::RekeyIke), (SB, Op::RekeyIke)];

fn cases() -> Vec<Case> {
    let child_c = ex(1, 1, false, Some(true));
    let ike_c = ex(1, 1, true, Some(true));
    let ike_1 = ex(1, 1, true, Some(false));
    vec![
        // --- Simultaneous Child SA rekey (§2.8.1).
        Case {
            name: "child: simultaneous, A initiator",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![],
            drop: vec![],
            expect: child_c,
        },
        Case {
            name: "child: simultaneous, B initiator",
            b_inits: true,
            ops: BOTH_REKEY_CHILD,
            hold: vec![],
            drop: vec![],
            expect: child_c,
        },
        Case {
            name: "child: A's response delayed",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![r(SB, CCS, 0)],
            drop: vec![],
            expect: child_c,
        },
        Case {
            name: "child: B's response delayed",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![r(SA, CCS, 0)],
            drop: vec![],
            expect: child_c,
        },
        Case {
            name: "child: both responses delayed",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![r(SA, CCS, 0), r(SB, CCS, 0)],
            drop: vec![],
            expect: child_c,
        },
        Case {
            name: "child: responses delayed, released in the other order",
            b_inits: true,
            ops: BOTH_REKEY_CHILD,
            hold: vec![r(SB, CCS, 0), r(SA, CCS, 0)],
            drop: vec![],
            expect: child_c,
        },
        // A's request arrives after B's rekey finished (and B's delete of the old SA).
        Case {
            name: "child: A's request delayed past B's rekey",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![q(SA, CCS, 0)],
            drop: vec![],
            expect: ex(1, 1, false, None),
        },
        Case {
            name: "child: B's request delayed past A's rekey",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![q(SB, CCS, 0)],
            drop: vec![],
            expect: ex(1, 1, false, None),
        },
        Case {
            name: "child: A's request and B's delete delayed",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![q(SA, CCS, 0), q(SB, INFO, 0)],
            drop: vec![],
            expect: ex(1, 1, false, None),
        },
        Case {
            name: "child: A's request lost, retransmitted",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![],
            drop: vec![q(SA, CCS, 0)],
            expect: ex(1, 1, false, None),
        },
        Case {
            name: "child: B's response lost, retransmitted",
            b_inits: true,
            ops: BOTH_REKEY_CHILD,
            hold: vec![],
            drop: vec![r(SB, CCS, 0)],
            expect: child_c,
        },
        Case {
            name: "child: winner's delete before loser's response",
            b_inits: false,
            ops: BOTH_REKEY_CHILD,
            hold: vec![r(SA, CCS, 0), r(SB, CCS, 0)],
            drop: vec![],
            expect: child_c,
        },
        // --- Child rekey crossing a delete of the same Child SA.
        Case {
            name: "child rekey A x child delete B",
            b_inits: false,
            ops: &[(SA, Op::RekeyChild), (SB, Op::DeleteChild)],
            hold: vec![],
            drop: vec![],
            expect: ex(1, 0, false, None),
        },
        Case {
            name: "child rekey B x child delete A",
            b_inits: false,
            ops: &[(SB, Op::RekeyChild), (SA, Op::DeleteChild)],
            hold: vec![],
            drop: vec![],
            expect: ex(1, 0, false, None),
        },
        Case {
            name: "child rekey x delete, delete response delayed",
            b_inits: false,
            ops: &[(SA, Op::RekeyChild), (SB, Op::DeleteChild)],
            hold: vec![r(SA, INFO, 0)],
            drop: vec![],
            expect: ex(1, 0, false, None),
        },
        Case {
            name: "child rekey x delete, rekey request delayed",
            b_inits: false,
            ops: &[(SA, Op::RekeyChild), (SB, Op::DeleteChild)],
            hold: vec![q(SA, CCS, 0)],
            drop: vec![],
            expect: ex(1, 0, false, None),
        },
        // B is deleting the pair when A's rekey arrives: TEMPORARY_FAILURE, then the delete.
        Case {
            name: "child rekey x delete, delete request delayed",
            b_inits: false,
            ops: &[(SA, Op::RekeyChild), (SB, Op::DeleteChild)],
            hold: vec![q(SB, INFO, 0)],
            drop: vec![],
            expect: ex(1, 0, false, None),
        },
        Case {
            name: "child rekey x delete, delete request lost",
            b_inits: true,
            ops: &[(SA, Op::RekeyChild), (SB, Op::DeleteChild)],
            hold: vec![],
            drop: vec![q(SB, INFO, 0)],
            expect: ex(1, 0, false, None),
        },
        // The DELETE of the old pair arrives before the CREATE_CHILD_SA response.
        Case {
            name: "child rekey: delete of the old pair before the response",
            b_inits: false,
            ops: &[(SA, Op::RekeyChild)],
            hold: vec![r(SB, CCS, 0)],
            drop: vec![],
            expect: ex(1, 1, false, None),
        },
        Case {
            name: "child rekey: response lost",
            b_inits: false,
            ops: &[(SA, Op::RekeyChild)],
            hold: vec![],
            drop: vec![r(SB, CCS, 0)],
            expect: ex(1, 1, false, None),
        },
        // --- Child rekey vs IKE rekey / IKE delete (TEMPORARY_FAILURE, §2.25.2).
        Case {
            name: "child rekey A x IKE rekey B",
            b_inits: false,
            ops: &[(SA, Op::RekeyChild), (SB, Op::RekeyIke)],
            hold: vec![],
            drop: vec![],
            expect: ex(1, 1, true, None),
        },
        Case {
            name: "child rekey B x IKE rekey A",
            b_inits: true,
            ops: &[(SB, Op::RekeyChild), (SA, Op::RekeyIke)],
            hold: vec![],
            drop: vec![],
            expect: ex(1, 1, true, None),
        },
        Case {
            name: "child create A x IKE rekey B",
            b_inits: false,
            ops: &[(SA, Op::CreateChild), (SB, Op::RekeyIke)],
            hold: vec![],
            drop: vec![],
            expect: ex(1, 2, true, None),
        },
        Case {
            name: "child rekey A x IKE delete B",
            b_inits: false,
            ops: &[(SA, Op::RekeyChild), (SB, Op::DeleteIke)],
            hold: vec![],
            drop: vec![],
            expect: ex(0, 0, false, None),
        },
        Case {
            name: "child rekey B x IKE delete A",
            b_inits: true,
            ops: &[(SB, Op::RekeyChild), (SA, Op::DeleteIke)],
            hold: vec![],
            drop: vec![],
            expect: ex(0, 0, false, None),
        },
        // --- Simultaneous IKE SA rekey (§2.8.2).
        Case {
            name: "ike: simultaneous, A initiator",
            b_inits: false,
            ops: BOTH_REKEY_IKE,
            hold: vec![],
            drop: vec![],
            expect: ike_c,
        },
        Case {
            name: "ike: simultaneous, B initiator",
            b_inits: true,
            ops: BOTH_REKEY_IKE,
            hold: vec![],
            drop: vec![],
            expect: ike_c,
        },
        Case {
            name: "ike: A's response delayed",
            b_inits: false,
            ops: BOTH_REKEY_IKE,
            hold: vec![r(SB, CCS, 0)],
            drop: vec![],
            expect: ike_c,
        },
        // The winner's delete of the old SA overtakes the loser's response: only one decides.
        Case {
            name: "ike: B's response delayed",
            b_inits: false,
            ops: BOTH_REKEY_IKE,
            hold: vec![r(SA, CCS, 0)],
            drop: vec![],
            expect: ike_1,
        },
        Case {
            name: "ike: both responses delayed",
            b_inits: true,
            ops: BOTH_REKEY_IKE,
            hold: vec![r(SA, CCS, 0), r(SB, CCS, 0)],
            drop: vec![],
            expect: ike_1,
        },
        Case {
            name: "ike: A's request delayed past B's rekey",
            b_inits: false,
            ops: BOTH_REKEY_IKE,
            hold: vec![q(SA, CCS, 0)],
            drop: vec![],
            expect: ex(1, 1, true, None),
        },
        Case {
            name: "ike: B's request delayed past A's rekey",
            b_inits: true,
            ops: BOTH_REKEY_IKE,
            hold: vec![q(SB, CCS, 0)],
            drop: vec![],
            expect: ex(1, 1, true, None),
        },
        Case {
            name: "ike: A's request lost",
            b_inits: false,
            ops: BOTH_REKEY_IKE,
            hold: vec![],
            drop: vec![q(SA, CCS, 0)],
            expect: ex(1, 1, true, None),
        },
        Case {
            name: "ike: both responses lost, retransmitted",
            b_inits: false,
            ops: BOTH_REKEY_IKE,
            hold: vec![],
            drop: vec![r(SA, CCS, 0), r(SB, CCS, 0)],
            expect: ike_c,
        },
        Case {
            name: "ike: delete of the old SA before the response",
            b_inits: false,
            ops: &[(SA, Op::RekeyIke)],
            hold: vec![r(SB, CCS, 0)],
            drop: vec![],
            expect: ex(1, 1, true, None),
        },
        // --- IKE rekey crossing an IKE delete.
        Case {
            name: "ike rekey A x IKE delete B",
            b_inits: false,
            ops: &[(SA, Op::RekeyIke), (SB, Op::DeleteIke)],
            hold: vec![],
            drop: vec![],
            expect: ex(0, 0, false, None),
        },
        Case {
            name: "ike rekey B x IKE delete A",
            b_inits: true,
            ops: &[(SB, Op::RekeyIke), (SA, Op::DeleteIke)],
            hold: vec![],
            drop: vec![],
            expect: ex(0, 0, false, None),
        },
        Case {
            name: "ike rekey x IKE delete, delete delayed",
            b_inits: false,
            ops: &[(SA, Op::RekeyIke), (SB, Op::DeleteIke)],
            hold: vec![q(SB, INFO, 0)],
            drop: vec![],
            expect: ex(0, 0, false, None),
        },
        // --- Deletes crossing deletes (§1.4.1).
        Case {
            name: "child delete x child delete",
            b_inits: false,
            ops: &[(SA, Op::DeleteChild), (SB, Op::DeleteChild)],
            hold: vec![],
            drop: vec![],
            expect: ex(1, 0, false, None),
        },
        Case {
            name: "IKE delete x IKE delete",
            b_inits: false,
            ops: &[(SA, Op::DeleteIke), (SB, Op::DeleteIke)],
            hold: vec![],
            drop: vec![],
            expect: ex(0, 0, false, None),
        },
    ]
}

fn run_case(c: &Case, seed: u64) -> Result<Pair<Endpoint>, String> {
    let mut p = established_pair(seed, cfg(Side::A), cfg(Side::B), c.b_inits);
    let mut rules = c.hold.clone();
    rules.extend_from_slice(&c.drop);
    let holder = install(&mut p, &rules);
    let now = p.time;
    for (side, op) in c.ops {
        let n = p.node(*side);
        let h = n.endpoint.established()[0];
        let child = n.endpoint.snapshot()[0].children[0].inbound_spi;
        let e = &mut n.endpoint;
        let r = match op {
            Op::RekeyChild => e.rekey_child_sa(now, h, child),
            Op::RekeyIke => e.rekey_ike_sa(now, h),
            Op::DeleteChild => e.delete_child_sa(now, h, child),
            Op::DeleteIke => e.delete_ike_sa(now, h),
            Op::CreateChild => e.create_child_sa(now, h, PolicyId(0)),
        };
        r.map_err(|e| format!("{op:?}: {e}"))?;
    }
    p.run_for(Duration::from_secs(1));
    for sel in &c.hold {
        if !release(&mut p, &holder, *sel) {
            return Err(format!("{sel:?} was never sent"));
        }
        p.run_for(Duration::from_secs(1));
    }
    p.run_for(SETTLE);
    let (ike, children) = converged(&p)?;
    let e = c.expect;
    if (ike, children) != (e.ike_sas, e.children) {
        return Err(format!(
            "expected {} IKE SAs and {} Child SAs, got {ike} and {children}",
            e.ike_sas, e.children
        ));
    }
    if ike > 0 {
        let orig = ike_ups(&p.a)[0].spi_i;
        let now_spi = p.a.endpoint.snapshot()[0].spi_i;
        if (orig != now_spi) != e.new_ike {
            return Err(format!("new IKE SA expected: {}", e.new_ike));
        }
    }
    let (la, lb) = (&p.a.endpoint.collision_log, &p.b.endpoint.collision_log);
    match e.collision {
        Some(true) => {
            if la.len() != 1 || lb.len() != 1 || la[0].won == lb[0].won {
                return Err(format!("collision decisions: a {la:?} b {lb:?}"));
            }
        }
        Some(false) => {
            if la.len() + lb.len() != 1 {
                return Err(format!("collision decisions: a {la:?} b {lb:?}"));
            }
        }
        None => {
            if !la.is_empty() || !lb.is_empty() {
                return Err(format!("unexpected collision: a {la:?} b {lb:?}"));
            }
        }
    }
    for l in la.iter().chain(lb.iter()) {
        // §2.8.1: the exchange with the lowest of the four nonces loses.
        let ours = min_nonce(&l.ours.0, &l.ours.1);
        let theirs = min_nonce(&l.theirs.0, &l.theirs.1);
        if l.won != (ours > theirs) {
            return Err(format!("wrong winner: {l:?}"));
        }
    }
    // The survivor is the one the winner's exchange created.
    if let (Some(w), Some(_)) = (la.iter().chain(lb.iter()).find(|l| l.won), e.collision) {
        let winner = if la.first().is_some_and(|l| l.won) {
            &p.a
        } else {
            &p.b
        };
        let snap = winner.endpoint.snapshot();
        let ok = if w.ike {
            snap[0].handle.0.0 == w.survivor
        } else {
            u64::from(snap[0].children[0].inbound_spi.0) == w.survivor
        };
        if !ok {
            return Err(format!("survivor is not the winner's: {w:?} {snap:#?}"));
        }
    }
    Ok(p)
}

#[test]
fn rekey_collision_matrix() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut errors = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        if let Err(e) = run_case(c, 500 + i as u64) {
            errors.push(format!("{}: {e}", c.name));
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {} cases failed:\n{}",
        errors.len(),
        cases.len(),
        errors.join("\n\n")
    );
}

/// The simultaneous cases over many seeds: each of the four nonces is the lowest in some
/// run, and the right side wins every time.
#[test]
fn simultaneous_rekeys_cover_all_four_lowest_nonce_positions() {
    for ops in [BOTH_REKEY_CHILD, BOTH_REKEY_IKE] {
        let mut positions = [false; 4];
        for seed in 0..40 {
            let c = Case {
                name: "simultaneous",
                b_inits: seed % 2 == 1,
                ops,
                hold: vec![],
                drop: vec![],
                expect: ex(1, 1, ops == BOTH_REKEY_IKE, Some(true)),
            };
            let p = run_case(&c, 900 + seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let l = &p.a.endpoint.collision_log[0];
            let four = [&l.ours.0, &l.ours.1, &l.theirs.0, &l.theirs.1];
            let lowest = (0..4).min_by_key(|&i| four[i]).unwrap();
            positions[lowest] = true;
        }
        assert_eq!(positions, [true; 4], "{ops:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Randomized soak

/// One seeded scenario: establish, then both sides issue rekeys, creates and deletes at
/// random times over a lossy, duplicating, reordering link; then the link heals and the
/// ends must agree on every SA and key with nothing left over.
fn soak_one(seed: u64) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut p = pair(seed);
    let b_inits = rng.next_u32() % 2 == 0;
    let now = p.time;
    if b_inits {
        p.b.endpoint
            .initiate(now, PeerId(0), addr(B), addr(A))
            .unwrap();
    } else {
        p.a.endpoint
            .initiate(now, PeerId(0), addr(A), addr(B))
            .unwrap();
    }
    if !p.run_until(Duration::from_secs(30), both_up) {
        return Err("not established".into());
    }
    p.faults.loss = 0.1;
    p.faults.duplicate = 0.1;
    p.faults.reorder = 0.2;
    p.faults.reorder_delay = Duration::from_millis(500);
    let actions = 2 + rng.next_u32() % 6;
    for _ in 0..actions {
        p.run_for(Duration::from_millis(u64::from(rng.next_u32() % 3000)));
        let side = if rng.next_u32() % 2 == 0 {
            Side::A
        } else {
            Side::B
        };
        let now = p.time;
        let n = p.node(side);
        let snap = n.endpoint.snapshot();
        let Some(sa) = snap.iter().find(|s| s.state == IkeSaState::Established) else {
            continue;
        };
        let h = sa.handle;
        let child = sa.children.first().map(|c| c.inbound_spi);
        let e = &mut n.endpoint;
        // Errors (SA gone, busy) are fine: the point is what the engine does with them.
        let pick = rng.next_u32() % 20;
        let _ = match pick {
            0..=6 => child.map(|c| e.rekey_child_sa(now, h, c)),
            7..=11 => Some(e.rekey_ike_sa(now, h)),
            12..=14 => Some(e.create_child_sa(now, h, PolicyId(0))),
            15..=17 => child.map(|c| e.delete_child_sa(now, h, c)),
            18 => Some(e.check_liveness(now, h)),
            _ => Some(e.delete_ike_sa(now, h)),
        };
        // The SA table's indexes agree with a walk over its SAs after every step.
        p.a.endpoint.assert_tables_consistent();
        p.b.endpoint.assert_tables_consistent();
    }
    p.run_for(Duration::from_secs(5));
    p.faults = Default::default();
    p.run_for(SETTLE);
    converged(&p).map(|_| ())?;
    // No half-open or connecting SAs, and the event queues were drained by the harness.
    for n in [&p.a, &p.b] {
        if n.endpoint.half_open_count() != 0 {
            return Err("half-open SA left".into());
        }
    }
    Ok(())
}

#[test]
fn soak_random_rekeys_and_deletes_under_loss_and_reordering() {
    let seeds: u64 = std::env::var("FERROSEC_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut failed = Vec::new();
    for seed in 0..seeds {
        if let Err(e) = soak_one(seed) {
            failed.push(format!("seed {seed}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {seeds} seeds failed; first:\n{}",
        failed.len(),
        failed
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// Lifetimes, re-authentication, INITIAL_CONTACT, crossing IKE_SA_INIT, error notifies

/// Sets the IKE SA lifetime and re-authentication of peer 0, and the Child SA lifetime of
/// each of its policies (seconds).
fn set_lifetimes(ep: &mut Endpoint, ike: Option<u64>, child: Option<u64>, reauth: Option<u32>) {
    ep.set_lifetimes(
        PeerId(0),
        Lifetimes {
            ike: ike.map(|s| SaLifetime::new(Duration::from_secs(s))),
            reauth_multiple: reauth,
        },
    )
    .unwrap();
    for pol in &mut std::sync::Arc::make_mut(ep.peers.get_mut(&PeerId(0)).unwrap()).policies {
        pol.lifetime = child.map(|s| SaLifetime::new(Duration::from_secs(s)));
    }
}

fn rekeys_by(n: &Node<Endpoint>) -> (usize, usize) {
    let ike = ike_rekeyed(n).iter().filter(|(_, i)| i.initiator).count();
    let child = n
        .events
        .iter()
        .filter(|e| matches!(e, Event::ChildSaRekeyed { .. }))
        .count();
    (ike, child)
}

#[test]
fn lifetimes_rekey_before_expiry_and_the_shorter_side_starts() {
    // A: IKE 1 h, Child 20 min; B: IKE 2 h, Child 40 min. Over 3 hours A starts every
    // rekey, nothing expires, and make-before-break keeps a Child SA installed throughout.
    let mut p = pair(60);
    set_lifetimes(&mut p.a.endpoint, Some(3600), Some(1200), None);
    set_lifetimes(&mut p.b.endpoint, Some(7200), Some(2400), None);
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let t0 = p.time;
    let snap = p.a.endpoint.snapshot();
    let soft = snap[0].children[0].rekey_at.unwrap() - t0;
    // lifetime − margin − jitter ≤ soft ≤ lifetime − margin (10 % each).
    assert!(
        soft >= Duration::from_secs(960) && soft <= Duration::from_secs(1080),
        "{soft:?}"
    );
    assert_eq!(snap[0].expires_at.unwrap() - t0, Duration::from_secs(3600));
    for _ in 0..(3 * 3600 / 60) {
        p.run_for(Duration::from_secs(60));
        assert!(
            p.a.endpoint
                .snapshot()
                .iter()
                .any(|s| !s.children.is_empty()),
            "a Child SA is always installed"
        );
    }
    p.run_for(Duration::from_secs(5));
    assert_eq!(assert_converged(&p), (1, 1));
    let (ike_a, child_a) = rekeys_by(&p.a);
    assert!(ike_a >= 3, "A rekeyed the IKE SA {ike_a} times");
    assert!(child_a >= 9, "A's Child SA rekeys {child_a}");
    // B never started one: its new SAs always came from A first.
    assert_eq!(
        ike_rekeyed(&p.b)
            .iter()
            .filter(|(_, i)| i.initiator)
            .count(),
        0
    );
    for n in [&p.a, &p.b] {
        assert!(
            !n.events
                .iter()
                .any(|e| matches!(e, Event::ChildSaExpired { .. } | Event::IkeSaDown { .. })),
            "nothing expired"
        );
    }
    // Every rekey: the new pair is up before the old one goes (make-before-break).
    for n in [&p.a, &p.b] {
        for (i, e) in n.events.iter().enumerate() {
            if let Event::ChildSaDown { inbound_spi, .. } = e {
                let rekeyed_at = n.events.iter().position(|x| {
                    matches!(x, Event::ChildSaRekeyed { old_inbound_spi, .. } if old_inbound_spi == inbound_spi)
                });
                assert!(
                    rekeyed_at.is_some_and(|r| r < i),
                    "{e:?} before its replacement"
                );
            }
        }
    }
}

#[test]
fn lifetime_jitter_comes_from_the_rng() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..8 {
        let mut p = pair(70 + seed);
        set_lifetimes(&mut p.a.endpoint, Some(3600), Some(1200), None);
        initiate(&mut p);
        assert!(p.run_until(Duration::from_secs(5), both_up));
        let s = p.a.endpoint.snapshot();
        seen.insert(s[0].rekey_at.unwrap() - p.time);
    }
    assert!(seen.len() >= 7, "{seen:?}");
}

#[test]
fn child_hard_lifetime_expires_when_rekey_is_refused() {
    // B refuses every CREATE_CHILD_SA (PFS mismatch), so A's Child SA reaches its hard
    // limit: the data plane is told at once, then the pair is deleted on both sides.
    let a = with_pfs(cfg(Side::A), DhGroup::ECP_256);
    let mut p = pair_with(61, a, cfg(Side::B), EndpointConfig::default());
    set_lifetimes(&mut p.a.endpoint, None, Some(600), None);
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let c = child_ups(&p.a)[0].clone();
    p.run_for(Duration::from_secs(599));
    assert!(
        !p.a.events
            .iter()
            .any(|e| matches!(e, Event::ChildSaExpired { .. }))
    );
    p.run_for(Duration::from_secs(10));
    let expired = p.a.events.iter().position(
        |e| matches!(e, Event::ChildSaExpired { inbound_spi, .. } if *inbound_spi == c.inbound_spi),
    );
    let down =
        p.a.events
            .iter()
            .position(|e| matches!(e, Event::ChildSaDown { .. }));
    assert!(
        expired.is_some() && down.is_some() && expired < down,
        "{:?}",
        p.a.events
    );
    assert_eq!(child_downs(&p.b).len(), 1);
    assert_eq!(assert_converged(&p), (1, 0));
}

#[test]
fn ike_hard_lifetime_deletes_the_ike_sa() {
    // No margin: the rekey deadline is the hard one, which wins: the SA is deleted.
    let mut p = pair(62);
    p.a.endpoint
        .set_lifetimes(
            PeerId(0),
            Lifetimes {
                ike: Some(SaLifetime {
                    lifetime: Duration::from_secs(100),
                    margin: Duration::ZERO,
                    jitter: Duration::ZERO,
                }),
                ..Lifetimes::default()
            },
        )
        .unwrap();
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    // soft == hard: the hard limit wins and the SA is deleted rather than rekeyed.
    p.run_for(Duration::from_secs(110));
    assert_eq!(assert_converged(&p), (0, 0));
    assert!(ike_rekeyed(&p.a).is_empty());
}

#[test]
fn reauthentication_makes_a_new_ike_sa_then_deletes_the_old() {
    let mut a = cfg(Side::A);
    let mut b = cfg(Side::B);
    a.policies.push(policy("dmz", "10.1.9.0/24", "10.2.9.0/24"));
    b.policies.push(policy("dmz", "10.2.9.0/24", "10.1.9.0/24"));
    let mut p = pair_with(63, a, b, EndpointConfig::default());
    // Re-authenticate at every second IKE lifetime: rekey once, then re-authenticate.
    set_lifetimes(&mut p.a.endpoint, Some(3600), None, Some(2));
    initiate(&mut p);
    assert!(
        p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() == 2
            && child_ups(&p.b).len() == 2)
    );
    let first = ike_ups(&p.a)[0].clone();
    p.run_for(Duration::from_secs(3600));
    assert_eq!(ike_rekeyed(&p.a).len(), 1, "first a rekey");
    assert_eq!(ike_ups(&p.a).len(), 1);
    p.run_for(Duration::from_secs(3600));
    assert_eq!(assert_converged(&p), (1, 2));
    // A second IKE_SA_INIT/IKE_AUTH: new IKE SA and new Child SAs for both policies, the
    // old IKE SA deleted after them.
    let ups = ike_ups(&p.a);
    assert_eq!(ups.len(), 2);
    assert_ne!(ups[1].spi_i, first.spi_i);
    assert_eq!(child_ups(&p.a).len(), 4);
    let idx =
        |n: &Node<Endpoint>, f: &dyn Fn(&Event) -> bool| n.events.iter().rposition(f).unwrap();
    for n in [&p.a, &p.b] {
        let last_up = idx(n, &|e| matches!(e, Event::ChildSaUp(_)));
        let old_down = idx(n, &|e| matches!(e, Event::IkeSaDown { .. }));
        assert!(
            last_up < old_down,
            "new Child SAs before the old IKE SA goes"
        );
    }
    // No INITIAL_CONTACT on a re-authentication: B did not tear anything down early.
    assert_eq!(
        downs(&p.b)
            .iter()
            .filter(|e| matches!(
                e,
                Event::IkeSaDown {
                    reason: DownReason::PeerDelete,
                    ..
                }
            ))
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Per-tunnel crypto (issue 11): each policy's Child SAs use its own proposals and lifetime

/// ESP AES-128-CBC with HMAC-SHA2-256-128 and PFS with P-256.
fn cbc_pfs() -> Proposal {
    let mut x = esp_proposal_cbc(128);
    x.transforms.push(Transform::ke(DhGroup::ECP_256));
    x
}

/// Two tunnels of one gateway: `cbc` (10.x.9.0/24) and `gcm` (10.x.0.0/24), in that order.
/// `strict`: each with its own IPSec crypto profile, AES-128-CBC/SHA-256 with PFS for 30 min
/// and AES-256-GCM for 1 h; otherwise both accept either, with no lifetime.
fn two_tunnels(side: Side, strict: bool) -> PeerConfig {
    let mut c = cfg(side);
    let (l, r) = match side {
        Side::A => ("10.1", "10.2"),
        Side::B => ("10.2", "10.1"),
    };
    let ts = |name: &str, net: &str| {
        ts_policy(name, &format!("{l}.{net}.0/24"), &format!("{r}.{net}.0/24"))
    };
    let lenient = vec![esp_proposal_gcm(), cbc_pfs()];
    let life = |m: u64| Some(SaLifetime::new(Duration::from_secs(m * 60)));
    c.policies = if strict {
        vec![
            ChildPolicy::new(ts("cbc", "9"), vec![cbc_pfs()]).with_lifetime(life(30)),
            ChildPolicy::new(ts("gcm", "0"), vec![esp_proposal_gcm()]).with_lifetime(life(60)),
        ]
    } else {
        vec![
            ChildPolicy::new(ts("cbc", "9"), lenient.clone()),
            ChildPolicy::new(ts("gcm", "0"), lenient),
        ]
    };
    c
}

/// Every Child SA came up with the algorithms of its own tunnel's profile.
fn assert_own_algorithms(n: &Node<Endpoint>) {
    for c in child_ups(n) {
        let want = match c.policy.as_str() {
            "cbc" => (
                Some(Encryption::AesCbc { key_len: 16 }),
                Some(Integrity::HmacSha256_128),
            ),
            "gcm" => (
                Some(Encryption::AesGcm {
                    key_len: 32,
                    icv_len: 16,
                }),
                None,
            ),
            other => panic!("policy {other}"),
        };
        assert_eq!((c.encr, c.integ), want, "Child SA of {}", c.policy);
    }
}

/// The policy name of the Child SA pair with this inbound SPI.
fn policy_of(n: &Node<Endpoint>, inbound: Spi) -> String {
    child_ups(n)
        .iter()
        .find(|c| c.inbound_spi == inbound)
        .map(|c| c.policy.clone())
        .unwrap()
}

/// Policies whose Child SA `n` rekeyed (in order).
fn rekeyed_policies(n: &Node<Endpoint>) -> Vec<String> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaRekeyed {
                old_inbound_spi, ..
            } => Some(policy_of(n, *old_inbound_spi)),
            _ => None,
        })
        .collect()
}

#[test]
fn each_tunnel_uses_its_own_ipsec_profile_and_lifetime() {
    // A has a profile per tunnel; B accepts either profile on both tunnels. With one set of
    // proposals per gateway (the profiles merged, the shortest lifetime taken), the gcm
    // tunnel came up with CBC when A initiated (A offered CBC first for it) and the cbc
    // tunnel with GCM when B did (A selected from every tunnel's proposals), and both
    // tunnels were rekeyed every 30 minutes.
    for a_initiates in [true, false] {
        let role = if a_initiates {
            "A initiates"
        } else {
            "B initiates"
        };
        let mut p = pair_with(
            90,
            two_tunnels(Side::A, true),
            two_tunnels(Side::B, false),
            EndpointConfig::default(),
        );
        let now = p.time;
        if a_initiates {
            p.a.endpoint
                .initiate(now, PeerId(0), addr(A), addr(B))
                .unwrap();
        } else {
            p.b.endpoint
                .initiate(now, PeerId(0), addr(B), addr(A))
                .unwrap();
        }
        assert!(
            p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() == 2
                && child_ups(&p.b).len() == 2),
            "{role}: {:?}",
            failures(&p.a)
        );
        for n in [&p.a, &p.b] {
            assert_own_algorithms(n);
        }
        let mut policies: Vec<String> = child_ups(&p.a).iter().map(|c| c.policy.clone()).collect();
        policies.sort();
        assert_eq!(policies, ["cbc", "gcm"], "{role}");
        // A's Child SAs expire by their own tunnel's lifetime, on the virtual clock.
        let snap = p.a.endpoint.snapshot();
        for c in &snap[0].children {
            let (name, life) = [("cbc", 1800), ("gcm", 3600)][c.policy.0 as usize];
            let left = c.expires_at.unwrap() - p.time;
            assert!(
                left <= Duration::from_secs(life) && left > Duration::from_secs(life - 5),
                "{role}: {name} expires in {left:?}"
            );
            let soft = c.rekey_at.unwrap() - p.time;
            assert!(
                soft <= Duration::from_secs(life * 9 / 10)
                    && soft > Duration::from_secs(life * 8 / 10 - 5),
                "{role}: {name} rekeyed in {soft:?}"
            );
        }
        // 35 minutes: only the cbc tunnel was rekeyed (by A), still with CBC and PFS.
        p.run_for(Duration::from_secs(35 * 60));
        assert_eq!(rekeyed_policies(&p.a), ["cbc"], "{role}");
        // 65 minutes: the gcm tunnel too, with GCM; the cbc one once more (the two fall due
        // between 48 and 54 minutes, in either order).
        p.run_for(Duration::from_secs(30 * 60));
        let mut rekeyed = rekeyed_policies(&p.a);
        rekeyed.sort();
        assert_eq!(rekeyed, ["cbc", "cbc", "gcm"], "{role}");
        for n in [&p.a, &p.b] {
            assert_own_algorithms(n);
            assert!(
                !n.events
                    .iter()
                    .any(|e| matches!(e, Event::ChildSaExpired { .. })),
                "{role}: nothing expired"
            );
        }
        // B rekeys the cbc tunnel offering GCM first: A, the responder, selects from the cbc
        // tunnel's profile only.
        let b_cbc = p.b.endpoint.snapshot()[0]
            .children
            .iter()
            .find(|c| c.policy == PolicyId(0) && c.state == ChildState::Installed)
            .map(|c| c.inbound_spi)
            .unwrap();
        let h = handle(&p.b);
        let now = p.time;
        let before = rekeyed_policies(&p.b).len();
        p.b.endpoint.rekey_child_sa(now, h, b_cbc).unwrap();
        p.run_for(Duration::from_secs(5));
        assert_eq!(rekeyed_policies(&p.b)[before..], ["cbc"], "{role}");
        for n in [&p.a, &p.b] {
            assert_own_algorithms(n);
        }
        assert!(
            failures(&p.a).is_empty() && failures(&p.b).is_empty(),
            "{role}"
        );
        assert_eq!(assert_converged(&p), (1, 2), "{role}");
    }
}

#[test]
fn a_child_sa_refused_by_its_tunnels_profile_says_which() {
    // A offers AES-256-GCM for the cbc tunnel; B's cbc tunnel takes only CBC (B's gcm
    // tunnel would take GCM, but the traffic selectors are the cbc tunnel's).
    let mut a = two_tunnels(Side::A, true);
    a.policies[0].proposals = vec![esp_proposal_gcm()];
    let b = two_tunnels(Side::B, true);
    let mut p = pair_with(91, a, b, EndpointConfig::default());
    initiate(&mut p);
    p.run_for(Duration::from_secs(5));
    let fb = failures(&p.b);
    assert_eq!(fb.len(), 1, "{fb:?}");
    let (f, survives) = fb[0];
    assert!(survives);
    assert!(
        matches!(f, Failure::ChildNoProposalChosen { policy, also, .. } if policy == "cbc" && also.is_empty()),
        "{f:?}"
    );
    let text = f.to_string();
    assert!(
        text.starts_with("the IPSec crypto profile of cbc refused the Child SA")
            && text.contains("peer offered ESP: AES_GCM_16_256")
            && text.contains("we accept ESP: AES_CBC_128"),
        "{text}"
    );
    // The IKE SA and the gcm tunnel's Child SA are up.
    assert_eq!(child_ups(&p.a).len(), 1);
    assert_eq!(child_ups(&p.a)[0].policy, "gcm");
}

#[test]
fn initial_contact_deletes_stale_sas_of_a_rebooted_peer() {
    let mut p = pair(64);
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let old_b = handle(&p.b);
    // A "reboots": a fresh endpoint with no SAs starts again.
    p.a.endpoint = endpoint(6400, EndpointConfig::default(), cfg(Side::A));
    p.a.events.clear();
    p.a.event_times.clear();
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), |p| !child_ups(&p.a).is_empty()));
    p.run_for(Duration::from_secs(5));
    assert!(!p.b.endpoint.established().contains(&old_b));
    assert!(
        downs(&p.b)
            .iter()
            .any(|e| matches!(e, Event::IkeSaDown { handle, .. } if *handle == old_b))
    );
    assert_eq!(assert_converged(&p), (1, 1));
}

#[test]
fn no_initial_contact_without_a_reboot_keeps_the_other_sa() {
    // Control for the test above: a second IKE SA from a peer that still has its first
    // (no INITIAL_CONTACT) leaves the first alone.
    let mut p = pair(65);
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    p.run_for(Duration::from_secs(1));
    initiate(&mut p);
    p.run_for(Duration::from_secs(10));
    assert_eq!(assert_converged(&p), (2, 2));
}

#[test]
fn crossing_ike_sa_init_leaves_exactly_one_ike_sa() {
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..12 {
        let mut p = pair(80 + seed);
        let now = p.time;
        p.a.endpoint
            .initiate(now, PeerId(0), addr(A), addr(B))
            .unwrap();
        p.b.endpoint
            .initiate(now, PeerId(0), addr(B), addr(A))
            .unwrap();
        p.run_for(SETTLE);
        assert_eq!(assert_converged(&p), (1, 1), "seed {seed}");
        outcomes.insert(p.a.endpoint.snapshot()[0].initiator);
        // The duplicate was deleted by its initiator, and both ends reported it.
        assert_eq!(ike_ups(&p.a).len(), 2);
        assert_eq!(
            downs(&p.a)
                .iter()
                .filter(|e| matches!(e, Event::IkeSaDown { .. }))
                .count(),
            1
        );
    }
    assert_eq!(
        outcomes.len(),
        2,
        "either side's SA may survive, by the nonces"
    );
}

#[test]
fn initiator_tells_the_responder_when_its_auth_fails() {
    // B identifies itself by its address while A expects "b.example": B has accepted A and
    // established the IKE SA, A rejects B, says AUTHENTICATION_FAILED in an INFORMATIONAL
    // (§2.21.2), and B drops the SA instead of keeping it until a liveness check fails.
    let mut b = cfg(Side::B);
    b.local_id = None;
    let mut p = pair_with(66, cfg(Side::A), b, EndpointConfig::default());
    initiate(&mut p);
    p.run_for(Duration::from_secs(5));
    assert!(matches!(failures(&p.a)[0].0, Failure::IdMismatch { .. }));
    assert!(failures(&p.b).iter().any(|(f, _)| {
        **f == Failure::PeerRefused {
            notify: NotifyType::AUTHENTICATION_FAILED,
        }
    }));
    assert_eq!(p.b.endpoint.ike_sa_count(), 0);
    assert_eq!(p.a.endpoint.ike_sa_count(), 0);
    assert!(
        downs(&p.b)
            .iter()
            .any(|e| matches!(e, Event::IkeSaDown { .. }))
    );
}

fn raw_request(spi_i: u64, spi_r: u64, version: u8, exchange: u8) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&spi_i.to_be_bytes());
    m.extend_from_slice(&spi_r.to_be_bytes());
    m.extend_from_slice(&[0, version, exchange, 0x08]);
    m.extend_from_slice(&7u32.to_be_bytes());
    m.extend_from_slice(&28u32.to_be_bytes());
    m
}

fn notifies_from(p: &mut Pair<Endpoint>, side: Side) -> Rc<RefCell<Vec<Vec<u8>>>> {
    let v = Rc::new(RefCell::new(Vec::new()));
    let v2 = v.clone();
    p.faults.hook = Some(Box::new(move |s, data| {
        if s == side {
            v2.borrow_mut().push(data.clone());
        }
        Verdict::Deliver
    }));
    let _ = side;
    v
}

#[test]
fn invalid_ike_spi_and_invalid_major_version_are_answered_and_rate_limited() {
    let mut p = pair(67);
    let sent = notifies_from(&mut p, Side::B);
    // A request for an IKE SA B does not know.
    p.inject(Side::A, 500, raw_request(0x1111, 0x2222, 0x20, 37));
    p.run_for(Duration::from_millis(100));
    {
        let s = sent.borrow();
        assert_eq!(s.len(), 1);
        let m = ferrosec_wire::ikev2::Message::parse(&s[0]).unwrap();
        assert_eq!(m.header.initiator_spi.0, 0x1111);
        assert_eq!(m.header.message_id.0, 7);
        assert!(m.header.flags.response());
        assert!(
            matches!(&m.payloads[0].body, PayloadBody::Notify(n) if n.ty == NotifyType::INVALID_IKE_SPI)
        );
    }
    // A response for an unknown SA is never answered.
    let mut resp = raw_request(0x1111, 0x2222, 0x20, 37);
    resp[19] = 0x20;
    p.inject(Side::A, 500, resp);
    // IKEv3: INVALID_MAJOR_VERSION carrying version 2.0.
    p.inject(Side::A, 500, raw_request(0x3333, 0, 0x30, 34));
    p.run_for(Duration::from_millis(100));
    {
        let s = sent.borrow();
        assert_eq!(s.len(), 2);
        let m = ferrosec_wire::ikev2::Message::parse(&s[1]).unwrap();
        assert!(
            matches!(&m.payloads[0].body, PayloadBody::Notify(n) if n.ty == NotifyType::INVALID_MAJOR_VERSION && n.data == [0x20])
        );
    }
    // A flood gets at most 10 answers per second.
    for i in 0..100u64 {
        p.inject(Side::A, 500, raw_request(0x4000 + i, 0x5, 0x20, 37));
    }
    p.run_for(Duration::from_millis(100));
    assert_eq!(sent.borrow().len(), 10);
    assert_eq!(p.b.endpoint.ike_sa_count(), 0);
}

use ferrosec_wire::ikev2::PayloadBody;

#[test]
fn rejected_child_answer_is_deleted_at_the_peer() {
    // An IKE_AUTH answer A cannot accept: A offers GCM and CBC, B picks CBC, and A's
    // configuration loses CBC while IKE_AUTH is in flight (as after a reload).
    let mut a = cfg(Side::A);
    let mut b = cfg(Side::B);
    set_child_proposals(&mut a, vec![esp_proposal_gcm(), esp_proposal_cbc(128)]);
    set_child_proposals(&mut b, vec![esp_proposal_cbc(128)]);
    let mut p = pair_with(68, a, b, EndpointConfig::default());
    initiate(&mut p);
    p.run_for(Duration::from_millis(25));
    // IKE_AUTH is on its way with both proposals; now A only accepts GCM.
    set_child_proposals(
        std::sync::Arc::make_mut(p.a.endpoint.peers.get_mut(&PeerId(0)).unwrap()),
        vec![esp_proposal_gcm()],
    );
    p.run_for(Duration::from_secs(5));
    assert_eq!(child_ups(&p.b).len(), 1, "B installed its answer");
    assert!(child_ups(&p.a).is_empty(), "A rejected it");
    assert!(matches!(failures(&p.a)[0].0, Failure::BadAnswer(_)));
    assert_eq!(child_downs(&p.b).len(), 1, "and had B delete it");
    assert_eq!(assert_converged(&p), (1, 0));
}

#[test]
fn no_additional_sas_beyond_the_limit() {
    let mut p = pair(69);
    let h = initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    for _ in 0..MAX_CHILD_SAS + 2 {
        let now = p.time;
        p.a.endpoint.create_child_sa(now, h, PolicyId(0)).unwrap();
        p.run_for(Duration::from_millis(50));
    }
    assert_eq!(child_ups(&p.b).len(), MAX_CHILD_SAS);
    assert!(failures(&p.a).iter().any(|(f, s)| *s
        && matches!(
            **f,
            Failure::ChildRefused {
                notify: NotifyType::NO_ADDITIONAL_SAS,
                ..
            }
        )));
}

#[test]
fn child_rekey_during_an_ike_rekey_gets_temporary_failure_and_is_retried() {
    // B's IKE rekey request is held, so B is rekeying the IKE SA while A asks to rekey a
    // Child SA: B answers TEMPORARY_FAILURE (§2.25.2) and A retries after a random delay,
    // by then on the new IKE SA.
    let mut p = established_pair(90, cfg(Side::A), cfg(Side::B), false);
    let holder = install(&mut p, &[q(SB, CCS, 0)]);
    let now = p.time;
    let hb = handle(&p.b);
    p.b.endpoint.rekey_ike_sa(now, hb).unwrap();
    p.run_for(Duration::from_millis(100));
    let (ha, c) = (handle(&p.a), first_child(&p.a));
    let now = p.time;
    p.a.endpoint.rekey_child_sa(now, ha, c).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(first_child(&p.a), c, "refused for now");
    assert_eq!(child_ups(&p.a).len(), 1);
    assert!(
        p.a.endpoint.snapshot()[0].queued > 0,
        "the retry is scheduled"
    );
    assert!(release(&mut p, &holder, q(SB, CCS, 0)));
    p.run_for(SETTLE);
    assert_eq!(assert_converged(&p), (1, 1));
    assert_ne!(first_child(&p.a), c, "retried and done");
    assert_eq!(ike_rekeyed(&p.a).len(), 1);
}

// ---------------------------------------------------------------------------------------
// Make-before-break in the data plane (R-V2-10)

/// How long a data plane takes to install an SA after the IKE message that makes it: an ESP
/// packet that arrives together with that message is handled first.
const INSTALL_LAG: Duration = Duration::from_millis(1);

/// The inbound SAs a node's data plane has, from its events: SPI → (installed, removed).
fn inbound_sas(n: &Node<Endpoint>) -> BTreeMap<u32, (Instant, Option<Instant>)> {
    assert_eq!(n.events.len(), n.event_times.len());
    let mut m = BTreeMap::new();
    for (e, t) in n.events.iter().zip(&n.event_times) {
        match e {
            Event::ChildSaUp(i) => {
                m.entry(i.inbound_spi.0).or_insert((*t, None));
            }
            Event::ChildSaDown { inbound_spi, .. } => {
                if let Some((_, gone)) = m.get_mut(&inbound_spi.0) {
                    gone.get_or_insert(*t);
                }
            }
            _ => {}
        }
    }
    m
}

/// Models both data planes from the events, with ESP delivered after the link latency:
/// every outbound switch of one side ([`Event::ChildSaRekeyed`]) must find the new SPI
/// installed at the peer when the first packet on it arrives, and the old SPI still
/// installed there when the last packet on it arrives. Returns (switches checked, what went
/// wrong).
fn data_plane_violations(p: &Pair<Endpoint>) -> (usize, Vec<String>) {
    let lat = p.latency;
    let mut switches = 0;
    let mut bad = Vec::new();
    for (name, x, y) in [("A", &p.a, &p.b), ("B", &p.b, &p.a)] {
        let peer_in = inbound_sas(y);
        let outbound_of = |inbound: Spi| {
            x.events.iter().find_map(|e| match e {
                Event::ChildSaUp(i) if i.inbound_spi == inbound => Some(i.outbound_spi),
                _ => None,
            })
        };
        for (e, t) in x.events.iter().zip(&x.event_times) {
            let Event::ChildSaRekeyed {
                old_inbound_spi,
                new_outbound_spi,
                ..
            } = e
            else {
                continue;
            };
            switches += 1;
            let at = *t - epoch();
            // The first packet on the new SA arrives at t + latency.
            match peer_in.get(&new_outbound_spi.0) {
                Some((up, _)) if *up + INSTALL_LAG <= *t + lat => {}
                Some((up, _)) => bad.push(format!(
                    "{name} sends on 0x{:08x} from {at:?}, the peer installs it at {:?}",
                    new_outbound_spi.0,
                    *up - epoch()
                )),
                None => bad.push(format!(
                    "{name} sends on 0x{:08x} from {at:?}, the peer never installs it",
                    new_outbound_spi.0
                )),
            }
            if let Some((_, Some(gone))) = peer_in.get(&new_outbound_spi.0)
                && *gone < *t + lat
            {
                bad.push(format!(
                    "{name} switches to 0x{:08x} at {at:?}, gone at the peer before",
                    new_outbound_spi.0
                ));
            }
            // The last packet on the old SA arrives just before t + latency.
            let old_out = outbound_of(*old_inbound_spi).expect("old pair was up");
            if let Some((_, Some(gone))) = peer_in.get(&old_out.0)
                && *gone < *t + lat
            {
                bad.push(format!(
                    "{name} sends on 0x{:08x} until {at:?}, the peer removes it at {:?}",
                    old_out.0,
                    *gone - epoch()
                ));
            }
        }
    }
    (switches, bad)
}

fn rekeyed_events(n: &Node<Endpoint>) -> usize {
    n.events
        .iter()
        .filter(|e| matches!(e, Event::ChildSaRekeyed { .. }))
        .count()
}

/// One Child SA rekey started by `by`, with `rules` holding datagrams (dropped for good).
fn rekey_with(seed: u64, by: Side, rules: &[Sel]) -> Pair<Endpoint> {
    let mut p = established_pair(seed, cfg(Side::A), cfg(Side::B), false);
    let _holder = install(&mut p, rules);
    let now = p.time;
    let n = p.node(by);
    let (h, c) = (handle(n), first_child(n));
    n.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(SETTLE);
    p
}

#[test]
fn rekey_responder_switches_outbound_only_after_the_initiator_installed() {
    for by in [Side::A, Side::B] {
        let p = rekey_with(1300, by, &[]);
        assert_eq!(assert_converged(&p), (1, 1));
        let (n, bad) = data_plane_violations(&p);
        assert_eq!(n, 2, "both sides switched once");
        assert!(bad.is_empty(), "rekey by {by:?}: {bad:#?}");
        // The responder's switch comes with the initiator's DELETE: right before the
        // ChildSaDown of the old pair, both at the same instant.
        let resp = match by {
            Side::A => &p.b,
            Side::B => &p.a,
        };
        let i = resp
            .events
            .iter()
            .position(|e| matches!(e, Event::ChildSaRekeyed { .. }))
            .unwrap();
        assert!(matches!(
            resp.events[i + 1],
            Event::ChildSaDown {
                reason: DownReason::PeerDelete,
                ..
            }
        ));
        assert_eq!(resp.event_times[i], resp.event_times[i + 1]);
    }
}

#[test]
fn rekey_with_lost_response_or_delete_loses_no_packet() {
    // The response lost once (the initiator installs the new pair only after its
    // retransmission), or the DELETE lost once (the responder waits for the retransmission).
    for (by, rule) in [
        (Side::A, r(SB, CCS, 0)),
        (Side::B, r(SA, CCS, 0)),
        (Side::A, q(SA, INFO, 0)),
        (Side::B, q(SB, INFO, 0)),
    ] {
        let p = rekey_with(1310, by, &[rule]);
        assert_eq!(assert_converged(&p), (1, 1));
        let (n, bad) = data_plane_violations(&p);
        assert_eq!(n, 2);
        assert!(bad.is_empty(), "rekey by {by:?}, {rule:?} lost: {bad:#?}");
    }
}

#[test]
fn rekey_responder_switches_after_the_retransmission_time_without_a_delete() {
    // The initiator's DELETE never arrives: the responder switches at its fallback deadline,
    // before any ChildSaDown, and meanwhile keeps sending on the old pair.
    let mut p = established_pair(1320, cfg(Side::A), cfg(Side::B), false);
    let _holder = install(&mut p, &(0..8).map(|n| q(SA, INFO, n)).collect::<Vec<_>>());
    let now = p.time;
    let (h, c) = (handle(&p.a), first_child(&p.a));
    p.a.endpoint.rekey_child_sa(now, h, c).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(rekeyed_events(&p.a), 1);
    assert_eq!(rekeyed_events(&p.b), 0, "no switch without proof");
    let total = EndpointConfig::default().retransmit.total();
    p.run_for(total);
    assert_eq!(rekeyed_events(&p.b), 1, "the fallback switched");
    assert!(
        !p.b.events
            .iter()
            .any(|e| matches!(e, Event::ChildSaDown { .. })),
        "the old pair stays until its delete"
    );
    let (_, bad) = data_plane_violations(&p);
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn rekey_collisions_lose_no_packet() {
    // Every case of the collision matrix, and the simultaneous rekeys over many seeds.
    let mut checked = 0;
    let mut errors = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        let p = run_case(c, 500 + i as u64).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let (n, bad) = data_plane_violations(&p);
        checked += n;
        if !bad.is_empty() {
            errors.push(format!("{}: {bad:?}", c.name));
        }
    }
    for seed in 0..40 {
        let c = Case {
            name: "simultaneous",
            b_inits: seed % 2 == 1,
            ops: BOTH_REKEY_CHILD,
            hold: vec![],
            drop: vec![],
            expect: ex(1, 1, false, Some(true)),
        };
        let p = run_case(&c, 900 + seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let (n, bad) = data_plane_violations(&p);
        checked += n;
        if !bad.is_empty() {
            errors.push(format!("simultaneous seed {seed}: {bad:?}"));
        }
    }
    assert!(checked >= 80, "{checked} switches");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Timers at scale

/// The earliest deadline of an SA as the snapshot shows it (lifetimes only: no request in
/// flight, no liveness checks configured).
fn snapshot_deadline(s: &IkeSaSnapshot) -> Option<Instant> {
    let children = s.children.iter().flat_map(|c| [c.rekey_at, c.expires_at]);
    [s.rekey_at, s.expires_at]
        .into_iter()
        .chain(children)
        .flatten()
        .min()
}

#[test]
fn handle_timeout_visits_only_the_sas_that_are_due() {
    const N: usize = 1000;
    let mut p = pair(1400);
    set_lifetimes(&mut p.b.endpoint, Some(3600), Some(1200), None);
    for i in 0..N {
        initiate(&mut p);
        assert!(
            p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() > i),
            "SA {i}"
        );
    }
    p.run_for(Duration::from_secs(1));
    let b = &mut p.b.endpoint;
    assert_eq!(b.established().len(), N);
    let snap = b.snapshot();
    let t = snap.iter().filter_map(snapshot_deadline).min().unwrap();
    // Never later than the first SA deadline (the cookie secret rotation may come first).
    assert!(b.poll_timeout().unwrap() <= t);
    let due = snap
        .iter()
        .filter(|s| snapshot_deadline(s).is_some_and(|d| d <= t))
        .count();
    assert_eq!(due, 1, "jitter spreads the deadlines");
    // Nothing due yet: nothing visited.
    let before = b.timeout_visits;
    b.handle_timeout(t - Duration::from_millis(1));
    assert_eq!(b.timeout_visits, before);
    // One SA due among N idle ones: one visited (not N), and it moved on (rekeying).
    b.handle_timeout(t);
    assert_eq!(b.timeout_visits - before, 1);
    assert!(b.poll_transmit().is_some(), "the due SA sent its rekey");
    let visited = b.timeout_visits;
    b.handle_timeout(t);
    assert_eq!(b.timeout_visits, visited, "nothing due any more at t");
}
