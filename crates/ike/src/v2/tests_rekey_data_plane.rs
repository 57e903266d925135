//! Make-before-break in the data plane (R-V2-10): a model of both data planes built from the
//! events checks that no packet is lost across a Child SA rekey, collisions included.

use std::collections::BTreeMap;
use std::time::Instant;

use super::collisions::{BOTH_REKEY_CHILD, Case, cases, ex, run_case};
use super::*;

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
