//! Rekeys (RFC 7296 §2.8, §2.8.1, §2.8.2, §2.25) in the two-peer simulation: the shared
//! harness (holding and releasing chosen datagrams, the convergence check), IKE SA rekeys and
//! the randomized soak. The collision matrix, lifetimes and re-authentication, INITIAL_CONTACT
//! and error notifies, and make-before-break in the data plane are in the modules below.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ferrosec_wire::Spi;
use ferrosec_wire::ikev2::{Header, Packet};

use super::*;

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

#[path = "tests_rekey_collisions.rs"]
mod collisions;
#[path = "tests_rekey_data_plane.rs"]
mod data_plane;
#[path = "tests_rekey_lifetimes.rs"]
mod lifetimes;
#[path = "tests_rekey_notifies.rs"]
mod notifies;

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
