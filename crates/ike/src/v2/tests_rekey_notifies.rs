//! INITIAL_CONTACT, crossing IKE_SA_INIT, error notifies, the Child SA limit, and a Child SA
//! rekey during an IKE SA rekey, in the two-peer simulation.

use super::*;
use crate::v2::endpoint::MAX_CHILD_SAS;

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
