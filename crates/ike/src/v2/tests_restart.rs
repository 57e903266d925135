//! A peer that restarts and loses its SAs (issue 20): how soon the tunnel is back, the hints a
//! peer gives (INVALID_IKE_SPI, INVALID_SPI) and forged ones; and how re-authentication is
//! reported (the event says so and why, the snapshot says when the next one is).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use ferrosec_wire::ikev2::{
    ExchangeType, Flags, Header, Message, Notify, Payload, PayloadBody, Version,
};
use ferrosec_wire::{IkeSpi, MessageId, Spi};

use super::*;

/// Site A with a liveness check every 5 s that negotiates again when the peer is declared
/// dead (the daemon's settings for a gateway that may initiate).
fn watchful_a() -> PeerConfig {
    let mut a = cfg(Side::A);
    a.liveness = Some(Duration::from_secs(5));
    a.restart_on_dead_peer = true;
    a
}

fn established(seed: u64) -> Pair<Endpoint> {
    let mut p = pair_with(seed, watchful_a(), cfg(Side::B), EndpointConfig::default());
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    p
}

/// Replaces B by a fresh endpoint: every SA is lost there, and it does not initiate.
fn restart_b(p: &mut Pair<Endpoint>, seed: u64) {
    p.b.endpoint = endpoint(seed, EndpointConfig::default(), cfg(Side::B));
    p.b.events.clear();
    p.b.event_times.clear();
}

/// Whether a datagram is an unprotected INVALID_IKE_SPI answer.
fn is_invalid_ike_spi(data: &[u8]) -> bool {
    Message::parse(data).is_ok_and(|m| {
        m.header.flags.response()
            && m.payloads.iter().any(|p| {
                matches!(&p.body, PayloadBody::Notify(n) if n.ty == NotifyType::INVALID_IKE_SPI)
            })
    })
}

fn hints(n: &Node<Endpoint>) -> Vec<&Hint> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::PeerHint { hint, .. } => Some(hint),
            _ => None,
        })
        .collect()
}

fn ike_down_reasons(n: &Node<Endpoint>) -> Vec<&DownReason> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDown { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

/// The virtual time of A's `n`-th ChildSaUp (0 = first).
fn child_up_at(p: &Pair<Endpoint>, n: usize) -> Option<Instant> {
    p.a.events
        .iter()
        .zip(&p.a.event_times)
        .filter(|(e, _)| matches!(e, Event::ChildSaUp(_)))
        .nth(n)
        .map(|(_, t)| *t)
}

/// Restarts B `after` into the established pair and returns the outage: from the restart
/// to A's new Child SA (B installed it before answering). `silent`: B drops requests for IKE
/// SAs it does not know, as strongSwan 5.9 does (no INVALID_IKE_SPI answer).
fn outage(seed: u64, after: Duration, silent: bool) -> (Duration, Pair<Endpoint>) {
    let mut p = established(seed);
    if silent {
        p.faults.hook = Some(Box::new(|side, data| {
            if side == Side::B && is_invalid_ike_spi(data) {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        }));
    }
    p.run_for(after);
    restart_b(&mut p, seed + 1000);
    let restarted = p.time;
    assert!(
        p.run_until(Duration::from_secs(120), |p| child_up_at(p, 1).is_some()
            && !child_ups(&p.b).is_empty()),
        "seed {seed}: no new Child SA"
    );
    let took = child_up_at(&p, 1).unwrap() - restarted;
    (took, p)
}

/// A peer that restarts and answers our liveness check with INVALID_IKE_SPI (as this engine
/// does): the check goes on a short schedule, the IKE SA is declared dead ≈ 4 s after the
/// first hint, and a new one comes up at once. Worst case over the phase of the restart in
/// the 5 s check cycle: the interval, plus ≈ 4 s, plus one negotiation.
#[test]
fn a_restarted_peer_that_says_invalid_ike_spi_is_back_within_ten_seconds() {
    let mut worst = Duration::ZERO;
    for (i, ms) in (0..5000).step_by(500).enumerate() {
        let (took, p) = outage(300 + i as u64, Duration::from_millis(3000 + ms), false);
        worst = worst.max(took);
        assert!(
            took <= Duration::from_secs(10),
            "restart at +{ms} ms: {took:?}"
        );
        // What A reported: the hint once, then the SA down as lost, then a new one.
        assert_eq!(hints(&p.a).len(), 1, "{:?}", hints(&p.a));
        assert!(matches!(hints(&p.a)[0], Hint::InvalidIkeSpi { .. }));
        assert_eq!(ike_down_reasons(&p.a), [&DownReason::PeerLostSa]);
        assert!(
            child_downs(&p.a)
                .iter()
                .all(|(_, _, r)| *r == DownReason::PeerLostSa)
        );
        assert_eq!(ike_ups(&p.a).len(), 2);
        assert_eq!(p.a.endpoint.established().len(), 1);
        assert_eq!(p.b.endpoint.established().len(), 1);
    }
    eprintln!("worst outage with INVALID_IKE_SPI answers: {worst:?}");
}

/// A peer that restarts and stays silent (strongSwan 5.9 drops requests for IKE SAs it does
/// not know): the liveness schedule alone finds it dead, 18 s after the first unanswered
/// check, at most 23 s after the restart, and a new IKE SA comes up at once.
#[test]
fn a_silently_restarted_peer_is_found_dead_by_the_schedule_within_24_seconds() {
    let mut worst = Duration::ZERO;
    for (i, ms) in (0..5000).step_by(500).enumerate() {
        let (took, p) = outage(400 + i as u64, Duration::from_millis(3000 + ms), true);
        worst = worst.max(took);
        assert!(
            took >= Duration::from_secs(18) && took <= Duration::from_secs(24),
            "restart at +{ms} ms: {took:?}"
        );
        assert!(hints(&p.a).is_empty());
        assert_eq!(ike_down_reasons(&p.a), [&DownReason::PeerUnreachable]);
    }
    eprintln!("worst outage with a silent peer: {worst:?}");
}

/// Every liveness check that goes unanswered is counted, once, for the peer configuration
/// (the metrics' liveness misses): as many as A sent to a silent B before declaring it dead.
#[test]
fn unanswered_liveness_checks_are_counted() {
    let mut p = established(77);
    p.run_for(Duration::from_secs(30));
    assert!(
        p.a.endpoint.liveness_misses().is_empty(),
        "answered ones are no misses"
    );
    let sent = Rc::new(Cell::new(0u64));
    let s = sent.clone();
    p.faults.hook = Some(Box::new(move |from, data| {
        if from == Side::B {
            return Verdict::Drop;
        }
        let informational = ferrosec_wire::ikev2::Packet::new_checked(&data[..])
            .is_ok_and(|pk| pk.exchange_type() == ExchangeType::INFORMATIONAL);
        if informational {
            s.set(s.get() + 1);
        }
        Verdict::Deliver
    }));
    p.run_for(Duration::from_secs(60));
    assert_eq!(ike_down_reasons(&p.a), [&DownReason::PeerUnreachable]);
    assert!(sent.get() >= 3, "{} checks", sent.get());
    let misses: Vec<(PeerId, u64)> =
        p.a.endpoint
            .liveness_misses()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
    assert_eq!(misses, [(PeerId(0), sent.get())]);
    assert!(p.b.endpoint.liveness_misses().is_empty());
}

/// What an attacker on the path sees of A's requests (message IDs), and a switch that holds
/// back B's messages.
struct Tap {
    requests: Rc<RefCell<Vec<MessageId>>>,
    mute_b: Rc<Cell<bool>>,
}

fn tap(p: &mut Pair<Endpoint>) -> Tap {
    let requests = Rc::new(RefCell::new(Vec::new()));
    let mute_b = Rc::new(Cell::new(false));
    let (r, m) = (requests.clone(), mute_b.clone());
    p.faults.hook = Some(Box::new(move |side, data| {
        if let Ok(pk) = Packet::new_checked(&data[..]) {
            let h = Header::parse(&pk);
            if side == Side::A && !h.flags.response() {
                r.borrow_mut().push(h.message_id);
            }
        }
        // (The forgeries are injected "from B" too: they pass.)
        if side == Side::B && m.get() && !is_invalid_ike_spi(data) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    }));
    Tap { requests, mute_b }
}

/// An unprotected INVALID_IKE_SPI "from B" answering A's request `id` on the SA (spi_i,
/// spi_r).
fn forged(spi_i: IkeSpi, spi_r: IkeSpi, id: MessageId) -> Vec<u8> {
    Message {
        header: Header {
            initiator_spi: spi_i,
            responder_spi: spi_r,
            version: Version::IKEV2,
            exchange_type: ExchangeType::INFORMATIONAL,
            flags: Flags::new(false, true),
            message_id: id,
        },
        payloads: vec![Payload::new(PayloadBody::Notify(Notify::new(
            NotifyType::INVALID_IKE_SPI,
            &[],
        )))],
    }
    .to_vec()
    .unwrap()
}

/// §2.21.4: an unprotected INVALID_IKE_SPI is a hint, never a proof. A forgery with another
/// message ID or other SPIs is ignored, even while B's answers are held back for 15 s (less
/// than the 18 s the schedule allows); one with the right ID and SPIs only makes A retransmit
/// sooner, and B's genuine answer keeps the SA.
#[test]
fn a_forged_invalid_ike_spi_does_not_kill_the_sa() {
    let mut p = established(500);
    let t = tap(&mut p);
    let snap = p.a.endpoint.snapshot()[0].clone();
    let (spi_i, spi_r) = (snap.spi_i, snap.spi_r);
    // B is silent for 15 s; A's check is in flight, and forgeries with every wrong ID near
    // the right one, and with the right ID but wrong SPIs, arrive every 250 ms.
    t.mute_b.set(true);
    let until = p.time + Duration::from_secs(15);
    while p.time < until {
        p.run_for(Duration::from_millis(250));
        let Some(id) = t.requests.borrow().last().copied() else {
            continue;
        };
        for wrong in [id.0.wrapping_sub(1), id.0 + 1, id.0 + 2, 0] {
            p.inject(Side::B, 500, forged(spi_i, spi_r, MessageId(wrong)));
        }
        p.inject(Side::B, 500, forged(spi_i, IkeSpi(spi_r.0 ^ 1), id));
        p.inject(Side::B, 500, forged(IkeSpi(spi_i.0 ^ 1), spi_r, id));
    }
    t.mute_b.set(false);
    p.run_for(Duration::from_secs(30));
    assert!(hints(&p.a).is_empty(), "{:?}", hints(&p.a));
    assert!(downs(&p.a).is_empty(), "{:?}", downs(&p.a));
    assert_eq!(p.a.endpoint.established().len(), 1);
    // The right ID and SPIs, racing B's genuine answer: reported, and the SA stays.
    let before = t.requests.borrow().len();
    assert!(
        p.run_until(Duration::from_secs(10), |_| t.requests.borrow().len()
            > before)
    );
    let id = *t.requests.borrow().last().unwrap();
    p.inject(Side::B, 500, forged(spi_i, spi_r, id));
    p.run_for(Duration::from_secs(60));
    assert_eq!(hints(&p.a), [&Hint::InvalidIkeSpi { message_id: id }]);
    assert!(downs(&p.a).is_empty(), "{:?}", downs(&p.a));
    assert_eq!(assert_both_one(&p), 1);
}

fn assert_both_one(p: &Pair<Endpoint>) -> usize {
    assert_eq!(p.a.endpoint.established().len(), 1);
    assert_eq!(p.b.endpoint.established().len(), 1);
    assert_eq!(p.a.endpoint.snapshot()[0].children.len(), 1);
    1
}

/// A protected INVALID_SPI (RFC 7296 §3.10.1) names our outbound SPI: the peer has no such
/// Child SA, so A deletes the pair (both sides report it down). One naming no SA of ours
/// changes nothing.
#[test]
fn a_protected_invalid_spi_deletes_the_pair_it_names() {
    let mut p = established(501);
    let hb = p.b.endpoint.established()[0];
    let now = p.time;
    p.b.endpoint
        .send_notify_request(
            now,
            hb,
            NotifyType::INVALID_SPI,
            &0x0bad_0bad_u32.to_be_bytes(),
        )
        .unwrap();
    p.run_for(Duration::from_secs(2));
    assert!(hints(&p.a).is_empty());
    assert!(child_downs(&p.a).is_empty());
    // B's inbound SPI is A's outbound.
    let b_inbound = child_ups(&p.b)[0].inbound_spi;
    let a_inbound = child_ups(&p.a)[0].inbound_spi;
    let now = p.time;
    // The public command the daemon uses when its data plane drops ESP with an unknown SPI.
    p.b.endpoint.report_invalid_spi(now, hb, b_inbound).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(hints(&p.a), [&Hint::InvalidSpi { spi: b_inbound }]);
    assert_eq!(
        child_downs(&p.a),
        [(a_inbound, b_inbound, DownReason::LocalDelete)]
    );
    assert_eq!(
        child_downs(&p.b),
        [(b_inbound, a_inbound, DownReason::PeerDelete)]
    );
    assert!(p.a.endpoint.snapshot()[0].children.is_empty());
    assert!(
        downs(&p.a)
            .iter()
            .all(|e| !matches!(e, Event::IkeSaDown { .. }))
    );
}

/// An unprotected INVALID_SPI or INVALID_IKE_SPI request with our IKE SPIs starts one
/// liveness check (not one per message), and changes nothing else.
#[test]
fn an_unprotected_invalid_spi_starts_one_liveness_check() {
    let mut p = established(502);
    let t = tap(&mut p);
    let snap = p.a.endpoint.snapshot()[0].clone();
    let sent = t.requests.borrow().len();
    let spi = Spi(0x1234_5678).0.to_be_bytes();
    for ty in [NotifyType::INVALID_SPI, NotifyType::INVALID_IKE_SPI] {
        for _ in 0..20 {
            let msg = Message {
                header: Header {
                    initiator_spi: snap.spi_i,
                    responder_spi: snap.spi_r,
                    version: Version::IKEV2,
                    exchange_type: ExchangeType::INFORMATIONAL,
                    flags: Flags::new(false, false),
                    message_id: MessageId(0),
                },
                payloads: vec![Payload::new(PayloadBody::Notify(Notify::new(ty, &spi)))],
            };
            p.inject(Side::B, 500, msg.to_vec().unwrap());
        }
        p.run_for(Duration::from_millis(100));
    }
    // One check per burst (each answered before the next burst), none per message.
    assert_eq!(t.requests.borrow().len() - sent, 2);
    assert_eq!(hints(&p.a).len(), 2);
    assert!(matches!(
        hints(&p.a)[0],
        Hint::Unprotected {
            notify: NotifyType::INVALID_SPI
        }
    ));
    assert!(downs(&p.a).is_empty());
    assert_eq!(assert_both_one(&p), 1);
}

// ---------------------------------------------------------------------------------------
// Re-authentication as the operator sees it (issue 20, part 4)

fn ike_rekeyed(n: &Node<Endpoint>) -> Vec<(IkeSaHandle, IkeSaInfo)> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed { old, new } => Some((*old, new.clone())),
            _ => None,
        })
        .collect()
}

fn reauth_lifetimes(multiple: u32) -> Lifetimes {
    Lifetimes {
        ike: Some(SaLifetime::new(Duration::from_secs(3600))),
        reauth_multiple: Some(multiple),
    }
}

/// `authentication-multiple = 1`: every IKE lifetime ends in a re-authentication. The new
/// IKE SA's IkeSaUp says it is one, which SA it replaces and why; the snapshot and the events
/// carry the time of the next one (the rekey time, as every rekey re-authenticates).
#[test]
fn a_reauthentication_says_so_and_why_and_when_the_next_is() {
    let mut p = pair(510);
    p.a.endpoint
        .set_lifetimes(PeerId(0), reauth_lifetimes(1))
        .unwrap();
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let first = ike_ups(&p.a)[0].clone();
    assert_eq!(first.reauth, None);
    let snap = p.a.endpoint.snapshot()[0].clone();
    assert!(snap.rekey_at.is_some());
    assert_eq!(snap.reauth_at, snap.rekey_at);
    assert_eq!(first.reauth_at, snap.rekey_at);
    let due = snap.reauth_at.unwrap();
    p.run_until_time(due + Duration::from_secs(30));
    let ups = ike_ups(&p.a);
    assert_eq!(ups.len(), 2, "a second IKE SA from IKE_SA_INIT");
    assert_eq!(
        ups[1].reauth,
        Some(Reauthentication {
            replaces: first.handle,
            reason: ReauthReason::AuthenticationMultiple { multiple: 1 },
        })
    );
    assert!(ups[1].reauth_at.is_some_and(|t| t > due));
    assert_eq!(p.a.endpoint.snapshot().len(), 1, "the old IKE SA is gone");
    assert_eq!(
        ReauthReason::AuthenticationMultiple { multiple: 1 }.to_string(),
        "authentication-multiple 1 reached: 1 IKE SA lifetime(s) since the last authentication"
    );
    // The responder cannot know it is a re-authentication (§2.8.3: a new IKE SA).
    assert!(ike_ups(&p.b).iter().all(|u| u.reauth.is_none()));
    assert!(ike_rekeyed(&p.a).is_empty());
}

/// `authentication-multiple = 2`: the first lifetime rekeys, the second re-authenticates.
/// The next re-authentication is estimated a rekey period after the rekey time, then is the
/// rekey time of the rekeyed SA; a re-authentication by command says so.
#[test]
fn the_next_reauthentication_counts_the_rekeys_before_it() {
    let mut p = pair(511);
    p.a.endpoint
        .set_lifetimes(PeerId(0), reauth_lifetimes(2))
        .unwrap();
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let snap = p.a.endpoint.snapshot()[0].clone();
    let period = Duration::from_secs(3600 - 360);
    assert_eq!(snap.reauth_at, Some(snap.rekey_at.unwrap() + period));
    p.run_until_time(snap.rekey_at.unwrap() + Duration::from_secs(30));
    let rekeyed = ike_rekeyed(&p.a);
    assert_eq!(rekeyed.len(), 1, "first a rekey");
    assert_eq!(rekeyed[0].1.reauth, None);
    let snap = p.a.endpoint.snapshot()[0].clone();
    assert_eq!(snap.reauth_at, snap.rekey_at);
    assert_eq!(rekeyed[0].1.reauth_at, snap.rekey_at);
    // By command.
    let h = p.a.endpoint.established()[0];
    let now = p.time;
    p.a.endpoint.reauthenticate(now, h).unwrap();
    p.run_for(Duration::from_secs(10));
    let ups = ike_ups(&p.a);
    assert_eq!(ups.len(), 2);
    assert_eq!(
        ups[1].reauth.map(|r| (r.replaces, r.reason)),
        Some((h, ReauthReason::Command))
    );
    // A fresh count: the rekey first, then the re-authentication.
    let snap = p.a.endpoint.snapshot()[0].clone();
    assert_eq!(snap.reauth_at, Some(snap.rekey_at.unwrap() + period));
}
