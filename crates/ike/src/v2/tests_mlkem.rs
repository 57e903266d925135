//! ML-KEM hybrid key exchange (RFC 9370 over IKE_INTERMEDIATE, RFC 9242) in the two-peer
//! simulation: X25519 or ECP-256 in IKE_SA_INIT, ML-KEM-768/1024 in IKE_INTERMEDIATE; keys
//! agree crosswise; loss, duplication and reordering; a path that drops IP fragments, so the
//! large KE payloads go as IKE fragments; tampering; a peer without ADDKE.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ferrosec_wire::ikev2::{DhGroup, ExchangeType, PayloadType};

use super::tests::{
    assert_mirrored, both_up, cfg, child_ups, failures, ike_ups, initiate, pair_with,
};
use super::*;
use crate::proposal::{Proposal, Transform};
use crate::sim::{Pair, Side, Verdict};

/// The largest UDP payload of a 1,280-byte IPv4 packet.
const PATH: usize = 1280 - 20 - 8;

/// An IKE proposal of `group` plus ADDKE1 = the given methods (NONE makes it optional).
fn hybrid(group: DhGroup, addke: &[DhGroup]) -> Proposal {
    let mut p = ike_proposal_gcm(group);
    for g in addke {
        p.transforms.push(Transform::addke(1, *g));
    }
    p
}

fn with_ike(side: Side, proposals: Vec<Proposal>) -> PeerConfig {
    let mut c = cfg(side);
    c.ike_proposals = proposals;
    c
}

fn hybrid_pair(seed: u64, group: DhGroup, kem: DhGroup) -> Pair<Endpoint> {
    pair_with(
        seed,
        with_ike(Side::A, vec![hybrid(group, &[kem])]),
        with_ike(Side::B, vec![hybrid(group, &[kem])]),
        EndpointConfig::default(),
    )
}

/// Counts datagrams by exchange type and fragments, per side, and lets `f` decide.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    intermediate: [u32; 2],
    fragments: [u32; 2],
    largest: usize,
}

fn watch(
    p: &mut Pair<Endpoint>,
    mut f: impl FnMut(Side, &mut Vec<u8>) -> Verdict + 'static,
) -> Rc<RefCell<Seen>> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let s = Rc::clone(&seen);
    p.faults.hook = Some(Box::new(move |from, d| {
        let i = usize::from(from == Side::B);
        let mut s = s.borrow_mut();
        if d.get(18) == Some(&ExchangeType::IKE_INTERMEDIATE.0) {
            s.intermediate[i] += 1;
        }
        if d.get(16) == Some(&PayloadType::SKF.0) {
            s.fragments[i] += 1;
        }
        s.largest = s.largest.max(d.len());
        drop(s);
        f(from, d)
    }));
    seen
}

/// Both ends hold the same SK_d (snapshot fingerprints) and mirrored Child SA keys.
fn assert_keys_agree(p: &Pair<Endpoint>) {
    let (sa, sb) = (p.a.endpoint.snapshot(), p.b.endpoint.snapshot());
    assert_eq!((sa.len(), sb.len()), (1, 1));
    assert_eq!(sa[0].key_fingerprint, sb[0].key_fingerprint, "SK_d agrees");
    assert_eq!(
        sa[0].children[0].key_fingerprint,
        sb[0].children[0].peer_key_fingerprint
    );
    assert_mirrored(child_ups(&p.a)[0], child_ups(&p.b)[0]);
}

#[test]
fn x25519_plus_ml_kem_768_comes_up_with_one_intermediate_exchange_and_keys_agree() {
    let mut p = hybrid_pair(1, DhGroup::CURVE25519, DhGroup::ML_KEM_768);
    let seen = watch(&mut p, |_, _| Verdict::Deliver);
    initiate(&mut p);
    assert!(
        p.run_until(Duration::from_secs(10), both_up),
        "{:?} {:?}",
        failures(&p.a),
        failures(&p.b)
    );
    let (ia, ib) = (ike_ups(&p.a)[0].clone(), ike_ups(&p.b)[0].clone());
    assert_eq!(ia.proposal, ib.proposal);
    assert_eq!(ia.proposal.ke, Some(DhGroup::CURVE25519));
    assert_eq!(
        ia.proposal.additional().collect::<Vec<_>>(),
        [DhGroup::ML_KEM_768]
    );
    assert!(
        ia.proposal
            .to_string()
            .contains("CURVE25519/KE1_ML_KEM_768"),
        "{}",
        ia.proposal
    );
    let s = *seen.borrow();
    // One IKE_INTERMEDIATE exchange; the 1,184-byte encapsulation key fits a 1,280-byte
    // packet whole, so no fragments.
    assert_eq!(s.intermediate, [1, 1]);
    assert_eq!(s.fragments, [0, 0]);
    assert_eq!(p.stats.sent, 6, "IKE_SA_INIT, IKE_INTERMEDIATE, IKE_AUTH");
    assert_keys_agree(&p);
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
    assert_eq!(p.b.endpoint.half_open_count(), 0);
}

/// ECP-256 + ML-KEM-1024 over a path that drops anything over 1,252 bytes: the 1,568-byte
/// encapsulation key and ciphertext only get through as IKE fragments (RFC 7383).
#[test]
fn ecp256_plus_ml_kem_1024_crosses_a_small_path_as_ike_fragments() {
    let mut p = hybrid_pair(2, DhGroup::ECP_256, DhGroup::ML_KEM_1024);
    p.mtu = PATH;
    let seen = watch(&mut p, |_, d| {
        assert!(d.len() <= PATH, "a datagram of {} bytes", d.len());
        Verdict::Deliver
    });
    initiate(&mut p);
    assert!(
        p.run_until(Duration::from_secs(10), both_up),
        "{:?} {:?}",
        failures(&p.a),
        failures(&p.b)
    );
    let s = *seen.borrow();
    assert!(s.fragments[0] >= 2 && s.fragments[1] >= 2, "{s:?}");
    assert!(s.intermediate[0] >= 2, "KEi went as fragments: {s:?}");
    assert_eq!(p.stats.too_big, 0);
    assert_eq!(
        ike_ups(&p.a)[0].proposal.additional().collect::<Vec<_>>(),
        [DhGroup::ML_KEM_1024]
    );
    assert_keys_agree(&p);
}

/// Without fragmentation the same path loses the IKE_INTERMEDIATE request: nothing comes up,
/// and the initiator says it gave up in IKE_INTERMEDIATE.
#[test]
fn without_fragmentation_ml_kem_1024_is_lost_on_that_path() {
    let mut a = with_ike(
        Side::A,
        vec![hybrid(DhGroup::ECP_256, &[DhGroup::ML_KEM_1024])],
    );
    a.fragmentation = false;
    let b = with_ike(
        Side::B,
        vec![hybrid(DhGroup::ECP_256, &[DhGroup::ML_KEM_1024])],
    );
    let mut p = pair_with(3, a, b, EndpointConfig::default());
    p.mtu = PATH;
    initiate(&mut p);
    p.run_for(Duration::from_secs(300));
    assert!(!both_up(&mut p));
    assert!(p.stats.too_big > 0);
    let fa = failures(&p.a);
    assert!(
        p.a.events.iter().any(|e| matches!(
            e,
            Event::Failed { exchange, .. } if exchange.to_string().contains("IKE_INTERMEDIATE")
        )),
        "{fa:?}"
    );
}

#[test]
fn hybrid_establishment_survives_loss_duplication_reordering_and_tampering() {
    for seed in 0..16 {
        let mut p = hybrid_pair(100 + seed, DhGroup::CURVE25519, DhGroup::ML_KEM_768);
        p.mtu = PATH;
        p.faults.loss = 0.15;
        p.faults.duplicate = 0.15;
        p.faults.reorder = 0.3;
        p.faults.reorder_delay = Duration::from_secs(2);
        // Every fourth IKE_INTERMEDIATE datagram gets a flipped byte in its encrypted part:
        // dropped on its ICV, recovered by retransmission.
        let mut n = 0u32;
        let _seen = watch(&mut p, move |_, d| {
            if d.get(18) == Some(&ExchangeType::IKE_INTERMEDIATE.0) {
                n += 1;
                if n.is_multiple_of(4) {
                    let last = d.len() - 1;
                    d[last] ^= 0x40;
                }
            }
            Verdict::Deliver
        });
        initiate(&mut p);
        let done = p.run_until(Duration::from_secs(300), both_up);
        p.run_for(Duration::from_secs(60));
        assert!(done, "seed {seed}: {:?} / {:?}", p.a.events, p.b.events);
        assert_eq!(ike_ups(&p.a).len(), 1, "seed {seed}");
        assert_eq!(ike_ups(&p.b).len(), 1, "seed {seed}");
        assert!(failures(&p.a).is_empty(), "seed {seed}: {:?}", p.a.events);
        assert!(failures(&p.b).is_empty(), "seed {seed}: {:?}", p.b.events);
        assert_keys_agree(&p);
        assert_eq!(p.b.endpoint.ike_sa_count(), 1, "seed {seed}: no leaked SA");
    }
}

/// A requires ML-KEM-768, B has no ADDKE: no proposal, and both say so naming the ADDKE
/// transform; the other way round too.
#[test]
fn required_ml_kem_against_a_peer_without_it_fails_in_words() {
    let plain = || vec![ike_proposal_gcm(DhGroup::CURVE25519)];
    let req = || vec![hybrid(DhGroup::CURVE25519, &[DhGroup::ML_KEM_768])];
    let mut p = pair_with(
        4,
        with_ike(Side::A, req()),
        with_ike(Side::B, plain()),
        EndpointConfig::default(),
    );
    initiate(&mut p);
    p.run_for(Duration::from_secs(10));
    assert!(!both_up(&mut p));
    let fb = failures(&p.b)[0].0.to_string();
    assert_eq!(
        fb,
        "no proposal chosen: peer offered IKE: AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE25519/\
         KE1_ML_KEM_768; we accept IKE: AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE25519"
    );
    let fa = failures(&p.a)[0].0.to_string();
    assert!(
        fa.contains("we offered IKE: AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE25519/KE1_ML_KEM_768"),
        "{fa}"
    );

    let mut p = pair_with(
        5,
        with_ike(Side::A, plain()),
        with_ike(Side::B, req()),
        EndpointConfig::default(),
    );
    initiate(&mut p);
    p.run_for(Duration::from_secs(10));
    assert!(!both_up(&mut p));
    let fb = failures(&p.b)[0].0.to_string();
    assert!(
        fb.contains("we accept IKE: AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE25519/KE1_ML_KEM_768"),
        "{fb}"
    );
}

/// ML-KEM offered as optional (ADDKE1 = ML-KEM-768 or NONE): with a peer without ADDKE the
/// SA comes up classically in four messages; with a hybrid peer it is used.
#[test]
fn optional_ml_kem_falls_back_to_a_peer_without_it_and_is_used_with_one_that_has_it() {
    let opt = || {
        vec![hybrid(
            DhGroup::CURVE25519,
            &[DhGroup::ML_KEM_768, DhGroup::NONE],
        )]
    };
    let mut p = pair_with(
        6,
        with_ike(Side::A, opt()),
        with_ike(Side::B, vec![ike_proposal_gcm(DhGroup::CURVE25519)]),
        EndpointConfig::default(),
    );
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(10), both_up));
    assert_eq!(p.stats.sent, 4);
    assert_eq!(ike_ups(&p.a)[0].proposal.additional().count(), 0);
    assert_keys_agree(&p);

    let mut p = pair_with(
        7,
        with_ike(Side::A, opt()),
        with_ike(
            Side::B,
            vec![hybrid(DhGroup::CURVE25519, &[DhGroup::ML_KEM_768])],
        ),
        EndpointConfig::default(),
    );
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(10), both_up));
    assert_eq!(p.stats.sent, 6);
    assert_eq!(
        ike_ups(&p.b)[0].proposal.additional().collect::<Vec<_>>(),
        [DhGroup::ML_KEM_768]
    );
    assert_keys_agree(&p);
}

/// The hybrid SA works afterwards: a Child SA rekey and an IKE SA rekey (which leaves ADDKE
/// out, no IKE_FOLLOWUP_KE yet, and chains the hybrid SK_d) both complete, and keys still
/// agree.
#[test]
fn a_hybrid_ike_sa_rekeys_and_keys_still_agree() {
    let mut p = hybrid_pair(8, DhGroup::CURVE25519, DhGroup::ML_KEM_768);
    let h = initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(10), both_up));
    let before = p.a.endpoint.snapshot()[0].key_fingerprint.clone();
    let now = p.time;
    p.a.endpoint.rekey_ike_sa(now, h).unwrap();
    p.run_for(Duration::from_secs(10));
    assert!(
        p.a.events
            .iter()
            .any(|e| matches!(e, Event::IkeSaRekeyed { .. })),
        "{:?}",
        p.a.events
    );
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
    let (sa, sb) = (p.a.endpoint.snapshot(), p.b.endpoint.snapshot());
    assert_eq!(sa.len(), 1);
    assert_eq!(sa[0].key_fingerprint, sb[0].key_fingerprint);
    assert_ne!(sa[0].key_fingerprint, before);
}

/// Re-authentication of a hybrid IKE SA (a new IKE SA from IKE_SA_INIT) runs the ML-KEM
/// exchange again: the new SA has it, its keys agree and differ from the old ones.
#[test]
fn re_authentication_of_a_hybrid_sa_runs_ml_kem_again() {
    let mut p = hybrid_pair(10, DhGroup::CURVE25519, DhGroup::ML_KEM_768);
    let seen = watch(&mut p, |_, _| Verdict::Deliver);
    let h = initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(10), both_up));
    let before = p.a.endpoint.snapshot()[0].key_fingerprint.clone();
    let now = p.time;
    p.a.endpoint.reauthenticate(now, h).unwrap();
    p.run_for(Duration::from_secs(10));
    let ups = ike_ups(&p.a);
    assert_eq!(ups.len(), 2, "{:?}", p.a.events);
    assert!(ups[1].reauth.is_some());
    assert_eq!(
        ups[1].proposal.additional().collect::<Vec<_>>(),
        [DhGroup::ML_KEM_768]
    );
    assert_eq!(
        seen.borrow().intermediate,
        [2, 2],
        "one IKE_INTERMEDIATE per IKE SA"
    );
    assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
    let (sa, sb) = (p.a.endpoint.snapshot(), p.b.endpoint.snapshot());
    assert_eq!((sa.len(), sb.len()), (1, 1), "the old SA is gone");
    assert_eq!(sa[0].key_fingerprint, sb[0].key_fingerprint);
    assert_ne!(sa[0].key_fingerprint, before);
}

/// RFC 9242 §3: a responder that picks an ADDKE transform but does not announce
/// INTERMEDIATE_EXCHANGE_SUPPORTED gets no IKE_INTERMEDIATE: the initiator gives up and says
/// which notify was missing.
#[test]
fn an_answer_with_addke_but_without_intermediate_support_is_refused() {
    use ferrosec_wire::ikev2::{Message, NotifyType, PayloadBody};
    let mut p = hybrid_pair(11, DhGroup::CURVE25519, DhGroup::ML_KEM_768);
    let seen = watch(&mut p, |from, d| {
        if from == Side::B && d.get(18) == Some(&ExchangeType::IKE_SA_INIT.0) {
            let msg = Message::parse(d).unwrap();
            let stripped = Message {
                header: msg.header,
                payloads: msg
                    .payloads
                    .iter()
                    .filter(|p| {
                        !matches!(&p.body, PayloadBody::Notify(n)
                            if n.ty == NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED)
                    })
                    .cloned()
                    .collect(),
            };
            *d = stripped.to_vec().unwrap();
        }
        Verdict::Deliver
    });
    initiate(&mut p);
    p.run_for(Duration::from_secs(10));
    assert!(!both_up(&mut p));
    assert_eq!(seen.borrow().intermediate, [0, 0]);
    let f = failures(&p.a);
    assert!(
        matches!(
            f.first().map(|x| x.0),
            Some(Failure::PeerMisbehaved {
                what: Malformed::Missing("INTERMEDIATE_EXCHANGE_SUPPORTED"),
                ..
            })
        ),
        "{f:?}"
    );
}

/// After IKE_SA_INIT the initiator's SA is not established, so the key export for Wireshark
/// leaves it out; the handshake export has its keys, and they open its IKE_INTERMEDIATE
/// request (with the ML-KEM KE payload inside): what the fuzzer
/// (fuzz/fuzz_targets/ikev2_intermediate.rs) relies on to seal its own.
#[test]
fn handshake_keys_open_the_ike_intermediate_request_before_the_sa_is_up() {
    use ferrosec_crypto::IkeSkCrypter;
    use ferrosec_wire::ikev2::Message;

    use crate::export::IkeKeyExport;

    let mut p = hybrid_pair(6, DhGroup::CURVE25519, DhGroup::ML_KEM_768);
    initiate(&mut p);
    let now = p.time;
    let init = p.a.endpoint.poll_transmit().expect("IKE_SA_INIT");
    p.b.endpoint
        .handle_datagram(now, init.remote, init.local, &init.data);
    let resp = p.b.endpoint.poll_transmit().expect("its response");
    p.a.endpoint
        .handle_datagram(now, resp.remote, resp.local, &resp.data);
    let req = p.a.endpoint.poll_transmit().expect("IKE_INTERMEDIATE");
    assert!(p.a.endpoint.export_ike_keys().is_empty(), "not established");
    let mut keys = p.a.endpoint.export_handshake_keys();
    assert_eq!(keys.len(), 1);
    let Some(IkeKeyExport::V2 {
        encr,
        integ,
        sk_ei,
        sk_ai,
        ..
    }) = keys.pop()
    else {
        panic!("an IKEv2 SA");
    };
    let raw = match req.local.port() {
        NATT_PORT => &req.data[4..],
        _ => &req.data[..],
    };
    let msg = Message::parse(raw).unwrap();
    assert_eq!(msg.header.exchange_type, ExchangeType::IKE_INTERMEDIATE);
    let layout = msg.sk_layout().unwrap();
    assert_eq!(layout.next_payload, PayloadType::KE);
    let plain = IkeSkCrypter::new(encr, &sk_ei, integ, &sk_ai)
        .unwrap()
        .open(&raw[layout.aad()], &raw[layout.data.clone()])
        .expect("the exported keys open it");
    // KE header (4) + group (2) + reserved (2) + the 1,184-byte encapsulation key.
    assert_eq!(plain.len(), 8 + 1184);
}
