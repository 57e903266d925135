//! The rekey collision matrix (RFC 7296 §2.8.1, §2.8.2, §2.25): simultaneous and crossing
//! rekeys and deletes of Child and IKE SAs, with chosen messages held, released late or lost.

use super::*;
use crate::v2::endpoint::min_nonce;

// ---------------------------------------------------------------------------------------
// The collision matrix

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    RekeyChild,
    RekeyIke,
    DeleteChild,
    DeleteIke,
    CreateChild,
}

/// What must hold at the end besides convergence.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expect {
    ike_sas: usize,
    children: usize,
    /// The surviving IKE SA is not the original one.
    new_ike: bool,
    /// A collision (child or IKE) was decided: `Some(true)` on both sides with opposite
    /// results, `Some(false)` on one side only (the other learnt it from the winner's
    /// delete of the old SA); `None`: no collision.
    collision: Option<bool>,
}

pub(super) struct Case {
    pub(super) name: &'static str,
    /// The IKE SA's original initiator is B.
    pub(super) b_inits: bool,
    pub(super) ops: &'static [(Side, Op)],
    /// Held datagrams, released in this order after everything else settled for 1 s.
    pub(super) hold: Vec<Sel>,
    /// Held datagrams never released (lost).
    pub(super) drop: Vec<Sel>,
    pub(super) expect: Expect,
}

pub(super) const fn ex(
    ike_sas: usize,
    children: usize,
    new_ike: bool,
    collision: Option<bool>,
) -> Expect {
    Expect {
        ike_sas,
        children,
        new_ike,
        collision,
    }
}

pub(super) const BOTH_REKEY_CHILD: &[(Side, Op)] = &[(SA, Op::RekeyChild), (SB, Op::RekeyChild)];
const BOTH_REKEY_IKE: &[(Side, Op)] = &[(SA, Op::RekeyIke), (SB, Op::RekeyIke)];

pub(super) fn cases() -> Vec<Case> {
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

pub(super) fn run_case(c: &Case, seed: u64) -> Result<Pair<Endpoint>, String> {
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
