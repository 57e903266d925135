//! `ikev2-preferred` through the facade: IKEv2 first, IKEv1 when IKE_SA_INIT is refused,
//! unanswered or answered in IKEv1; a peer that speaks IKEv2 never falls back, and a plain
//! IKEv2 gateway never does either.

use super::*;
use crate::FALLBACK_AFTER;
use crate::event::FallbackReason;
use crate::sim::Verdict;

/// A: `ikev2-preferred` (main mode as fallback).
fn preferred(seed: u64) -> Ike {
    let v2 = v2::Endpoint::new(
        v2::EndpointConfig::default(),
        vec![cfg(Side::A)],
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
        epoch(),
    );
    let v1 = crate::v1::Engine::new(
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(seed + 1000)),
    );
    let mut ike = Ike::new(v2, v1);
    let id = ike.peers().next().unwrap().0;
    ike.serve_ikev2_preferred(id, settings(Mode::Main)).unwrap();
    ike
}

/// B: IKEv2 only (no IKEv1 served).
fn v2_only(seed: u64) -> Ike {
    Ike::new(
        v2::Endpoint::new(
            v2::EndpointConfig::default(),
            vec![cfg(Side::B)],
            Provider::default(),
            Box::new(ChaCha8Rng::seed_from_u64(seed)),
            epoch(),
        ),
        crate::v1::Engine::new(
            Provider::default(),
            Box::new(ChaCha8Rng::seed_from_u64(seed + 1000)),
        ),
    )
}

fn fallbacks(events: &[Event]) -> Vec<(Option<crate::v2::IkeSaHandle>, FallbackReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::VersionFallback { to, why, .. } => Some((*to, why.clone())),
            _ => None,
        })
        .collect()
}

/// An IKEv1-only responder (strongSwan or ferrosec with `version = "ikev1"`) refuses
/// IKE_SA_INIT with NO_PROPOSAL_CHOSEN and says why in its log; the preferred initiator
/// waits for a genuine answer until its retransmission (RFC 7296 §2.21.1), then falls back
/// to main mode, which brings the tunnel up. Its IKEv2 failure is not reported as a failure.
#[test]
fn a_refusal_from_an_ikev1_only_peer_falls_back_to_main_mode() {
    let b = ike(cfg(Side::B), settings(Mode::Main), 41);
    let mut p = Pair::new(preferred(40), addr(A), b, addr(B), 40);
    start(&mut p);
    assert!(
        p.run_until(Duration::from_secs(20), both_up),
        "A {:?}\nB {:?}",
        p.a.events,
        p.b.events
    );
    let fb = fallbacks(&p.a.events);
    assert_eq!(fb.len(), 1, "{:?}", p.a.events);
    assert!(
        matches!(
            &fb[0],
            (
                Some(_),
                FallbackReason::Failed(Failure::OfferRefused(_))
                    | FallbackReason::Failed(Failure::PeerRefused { .. })
            )
        ),
        "{fb:?}"
    );
    let why = fb[0].1.to_string();
    assert!(
        why.starts_with("the peer answered IKEv2 IKE_SA_INIT with NO_PROPOSAL_CHOSEN"),
        "{why}"
    );
    assert!(
        failures(&p.a.events).is_empty(),
        "the IKEv2 attempt is not a failure: {:?}",
        failures(&p.a.events)
    );
    let h = fb[0].0.unwrap();
    assert!(
        p.a.endpoint.v1().has_sa(h),
        "the IKE SA up is the IKEv1 one"
    );
    assert_eq!(p.a.endpoint.v1().mode(h), Some(Mode::Main));
    assert_eq!(p.a.endpoint.v2().ike_sa_count(), 0, "nothing left of IKEv2");
    assert!(
        failures(&p.b.events)
            .iter()
            .any(|f| f.contains("IKE_SA_INIT") && f.contains("IKEv1 only")),
        "B explains its refusal: {:?}",
        failures(&p.b.events)
    );
    check_crosswise(children(&p.a.events)[0], children(&p.b.events)[0]);
}

/// A peer that does not answer IKEv2 at all: IKEv1 starts after [`FALLBACK_AFTER`], not
/// after the whole retransmission schedule.
#[test]
fn silence_to_ikev2_falls_back_after_the_bound() {
    let b = ike(cfg(Side::B), settings(Mode::Main), 43);
    let mut p = Pair::new(preferred(42), addr(A), b, addr(B), 42);
    // B's side drops every IKEv2 datagram it gets (major version 2 at byte 17).
    p.faults.hook = Some(Box::new(|from, d: &mut Vec<u8>| {
        if from == Side::A && d.get(17).is_some_and(|v| v >> 4 == 2) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    }));
    let t0 = p.time;
    start(&mut p);
    assert!(
        p.run_until(Duration::from_secs(30), both_up),
        "{:?}",
        p.a.events
    );
    let fb = fallbacks(&p.a.events);
    assert_eq!(fb.len(), 1, "{:?}", p.a.events);
    assert_eq!(fb[0].1, FallbackReason::NoAnswer(FALLBACK_AFTER));
    let at = p.a.event_times[p
        .a
        .events
        .iter()
        .position(|e| matches!(e, Event::VersionFallback { .. }))
        .unwrap()];
    assert_eq!(at - t0, FALLBACK_AFTER, "falls back at the bound");
    assert!(
        failures(&p.a.events).is_empty(),
        "{:?}",
        failures(&p.a.events)
    );
}

/// Two `ikev2-preferred` gateways, or a preferred one facing an IKEv2 gateway, use IKEv2.
#[test]
fn a_peer_that_speaks_ikev2_is_kept_on_ikev2() {
    let mut p = Pair::new(preferred(44), addr(A), v2_only(45), addr(B), 44);
    start(&mut p);
    assert!(
        p.run_until(Duration::from_secs(5), both_up),
        "{:?}",
        p.a.events
    );
    p.run_for(FALLBACK_AFTER + Duration::from_secs(5));
    assert!(fallbacks(&p.a.events).is_empty(), "{:?}", p.a.events);
    assert!(p.a.endpoint.v1().established().is_empty());
    assert_eq!(p.a.endpoint.v2().established().len(), 1);
    // B preferred too: IKEv2, and B answers IKEv2 although it also serves IKEv1.
    let mut b = v2_only(47);
    let id = b.peers().next().unwrap().0;
    b.serve_ikev2_preferred(id, settings(Mode::Main)).unwrap();
    let mut p = Pair::new(preferred(46), addr(A), b, addr(B), 46);
    start(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    assert!(fallbacks(&p.a.events).is_empty());
    assert_eq!(p.b.endpoint.v2().established().len(), 1);
}

/// A failure after IKE_SA_INIT (here a wrong pre-shared key in IKE_AUTH) means the peer
/// speaks IKEv2: no fallback, the failure is reported as it is.
#[test]
fn an_ikev2_authentication_failure_does_not_fall_back() {
    let mut bc = cfg(Side::B);
    bc.psk = Secret::from_slice(b"another key entirely");
    let b = Ike::new(
        v2::Endpoint::new(
            v2::EndpointConfig::default(),
            vec![bc],
            Provider::default(),
            Box::new(ChaCha8Rng::seed_from_u64(49)),
            epoch(),
        ),
        crate::v1::Engine::new(Provider::default(), Box::new(ChaCha8Rng::seed_from_u64(50))),
    );
    let mut p = Pair::new(preferred(48), addr(A), b, addr(B), 48);
    start(&mut p);
    p.run_for(FALLBACK_AFTER + Duration::from_secs(10));
    assert!(fallbacks(&p.a.events).is_empty(), "{:?}", p.a.events);
    assert!(
        failures(&p.a.events).iter().any(|f| f.contains("IKE_AUTH")),
        "{:?}",
        failures(&p.a.events)
    );
    assert_eq!(p.a.endpoint.v1().sa_count(), 0);
}

/// A plain IKEv2 gateway facing an IKEv1-only peer fails and says so; it never tries IKEv1
/// (Junos semantics).
#[test]
fn an_ikev2_gateway_never_falls_back() {
    let b = ike(cfg(Side::B), settings(Mode::Main), 52);
    let mut p = Pair::new(v2_only(51), addr(A), b, addr(B), 51);
    start(&mut p);
    p.run_for(FALLBACK_AFTER + Duration::from_secs(10));
    assert!(fallbacks(&p.a.events).is_empty());
    assert!(
        failures(&p.a.events)
            .iter()
            .any(|f| f.contains("IKE_SA_INIT") && f.contains("no proposal chosen by the peer")),
        "{:?}",
        failures(&p.a.events)
    );
    assert_eq!(p.a.endpoint.v1().sa_count(), 0);
    assert_eq!(p.b.endpoint.v1().sa_count(), 0);
}

/// RFC 2408: an IKEv1-only implementation may answer a higher major version with an ISAKMP
/// notify whose initiator cookie is our SPI: IKEv1 at once. An ISAKMP message with another
/// cookie, or from another address, changes nothing.
#[test]
fn an_ikev1_answer_to_ike_sa_init_falls_back_at_once() {
    let mut a = preferred(53);
    let id = a.peers().next().unwrap().0;
    let now = epoch();
    let h = a.initiate(now, id, addr(A), addr(B)).unwrap();
    while a.poll_transmit().is_some() {}
    let notify = |cky: u64| {
        let mut m = cky.to_be_bytes().to_vec();
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[11, 0x10, 5, 0]); // N, version 1.0, informational
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(&40u32.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 12, 0, 0, 0, 1, 1, 0, 0, 5]); // INVALID-MAJOR-VERSION
        m
    };
    a.handle_datagram(now, addr(A), addr(B), &notify(h.0.0 ^ 1));
    a.handle_datagram(now, addr(A), addr("192.0.2.99:500"), &notify(h.0.0));
    assert!(a.poll_event().is_none(), "not an answer to our request");
    assert!(a.poll_transmit().is_none());
    a.handle_datagram(now, addr(A), addr(B), &notify(h.0.0));
    let Some(Event::VersionFallback { from, to, why, .. }) = a.poll_event() else {
        panic!("a fallback");
    };
    assert_eq!((from, why), (h, FallbackReason::Ikev1Answer));
    let to = to.unwrap();
    assert!(a.v1().has_sa(to));
    let t = a.poll_transmit().expect("main mode message 1");
    assert_eq!(t.data.get(17), Some(&0x10), "IKEv1");
    assert_eq!(a.v2().ike_sa_count(), 0);
}
