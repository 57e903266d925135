//! Negotiated transforms in the two-peer simulation: AH Child SAs (and not across a NAT),
//! extended sequence numbers, and a peer's invalid key-exchange value.

use super::*;

fn ah_proposal() -> Proposal {
    Proposal::new(
        ferrosec_wire::ikev2::ProtocolId::AH,
        vec![
            Transform::integ(ferrosec_wire::ikev2::IntegId::HMAC_SHA2_256_128),
            Transform::esn(ferrosec_wire::ikev2::EsnId::NO_ESN),
        ],
    )
}

#[test]
fn ah_child_sa_without_nat_has_integrity_keys_only() {
    let (mut a, mut b) = (cfg(Side::A), cfg(Side::B));
    set_child_proposals(&mut a, vec![ah_proposal()]);
    set_child_proposals(&mut b, vec![ah_proposal()]);
    let mut p = pair_with(41, a, b, EndpointConfig::default());
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let (ca, cb) = (child_ups(&p.a)[0], child_ups(&p.b)[0]);
    assert_eq!(ca.protocol, ferrosec_wire::ikev2::ProtocolId::AH);
    assert_eq!(ca.encr, None);
    assert_eq!(ca.integ, Some(Integrity::HmacSha256_128));
    assert!(!ca.udp_encap);
    assert_eq!(ca.inbound.integ.expose().len(), 32, "HMAC-SHA-256 key");
    assert!(ca.inbound.encr.expose().is_empty(), "AH has no cipher key");
    assert_eq!(ca.inbound, cb.outbound);
    assert_eq!(ca.outbound, cb.inbound);
    assert_ne!(ca.inbound.integ, ca.outbound.integ);
}

/// R-DP-2: with a NAT between the peers, an initiator whose only Child SA proposal is AH gives
/// up before IKE_AUTH, saying why; one that also offers ESP gets ESP (in UDP).
#[test]
fn ah_is_not_offered_across_a_nat() {
    for also_esp in [false, true] {
        let (mut a, mut b) = (cfg(Side::A), cfg(Side::B));
        b.peer_addr = Some("203.0.113.7".parse().unwrap());
        set_child_proposals(&mut a, vec![ah_proposal()]);
        set_child_proposals(&mut b, vec![ah_proposal()]);
        if also_esp {
            set_child_proposals(&mut a, vec![ah_proposal(), esp_proposal_gcm()]);
            set_child_proposals(&mut b, vec![ah_proposal(), esp_proposal_gcm()]);
        }
        let mut p = pair_with(42, a, b, EndpointConfig::default());
        p.a.nat = Some(addr("203.0.113.7:40001"));
        initiate(&mut p);
        if also_esp {
            assert!(p.run_until(Duration::from_secs(5), both_up));
            let (ca, cb) = (child_ups(&p.a)[0], child_ups(&p.b)[0]);
            assert_eq!(ca.protocol, ferrosec_wire::ikev2::ProtocolId::ESP);
            assert!(ca.udp_encap && cb.udp_encap);
            assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
        } else {
            p.run_until(Duration::from_secs(5), |p| !failures(&p.a).is_empty());
            let f = failures(&p.a);
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(f[0], (&Failure::AhWithNat, false));
            assert!(f[0].0.to_string().contains("use an ESP profile"));
            assert!(ike_ups(&p.a).is_empty() && ike_ups(&p.b).is_empty());
            assert!(child_ups(&p.b).is_empty());
            // Only IKE_SA_INIT went out: no IKE_AUTH with an AH proposal.
            assert_eq!(p.stats.sent, 2);
        }
    }
}

/// Extended sequence numbers (RFC 4304, transform type 5): the initiator's order among
/// ESN and NO_ESN is taken when the responder accepts both; a side that will not do ESN gets
/// 32-bit sequence numbers; one that requires ESN against one that refuses it fails with the
/// offer in words. Both ends always agree.
#[test]
fn esn_is_negotiated_from_the_profiles() {
    use ferrosec_wire::ikev2::{EsnId, ProtocolId};
    let gcm = |esn: &[EsnId]| {
        let mut t = vec![Transform::encr(EncrId::AES_GCM_16, Some(256))];
        t.extend(esn.iter().map(|e| Transform::esn(*e)));
        vec![Proposal::new(ProtocolId::ESP, t)]
    };
    let either = [EsnId::ESN, EsnId::NO_ESN];
    for (seed, a, b, want) in [
        (40u64, &either[..], &either[..], Some(true)),
        (41, &either[..], &[EsnId::NO_ESN][..], Some(false)),
        (42, &[EsnId::NO_ESN][..], &either[..], Some(false)),
        (43, &[EsnId::ESN][..], &either[..], Some(true)),
        (44, &[EsnId::ESN][..], &[EsnId::NO_ESN][..], None),
    ] {
        let (mut ca, mut cb) = (cfg(Side::A), cfg(Side::B));
        set_child_proposals(&mut ca, gcm(a));
        set_child_proposals(&mut cb, gcm(b));
        let mut p = pair_with(seed, ca, cb, EndpointConfig::default());
        initiate(&mut p);
        p.run_for(Duration::from_secs(5));
        match want {
            Some(esn) => {
                assert!(both_up(&mut p), "seed {seed}: {:?}", p.b.events);
                let (ia, ib) = (child_ups(&p.a)[0], child_ups(&p.b)[0]);
                assert_eq!((ia.esn, ib.esn), (esn, esn), "seed {seed}");
            }
            None => {
                assert!(child_ups(&p.a).is_empty() && child_ups(&p.b).is_empty());
                let text = failures(&p.a)[0].0.to_string();
                assert!(
                    text.contains("NO_PROPOSAL_CHOSEN") && text.contains("/ESN"),
                    "{text}"
                );
            }
        }
    }
}

/// A responder's key-exchange value that is not a point of the group fails the negotiation
/// with a typed reason naming the step and the group (no catch-all string), and the log line
/// says so in words.
#[test]
fn an_invalid_peer_key_exchange_value_is_named() {
    use ferrosec_wire::ikev2::{Message, PayloadBody};
    let mut p = pair(31);
    let group = std::rc::Rc::new(std::cell::Cell::new(0u16));
    let g = group.clone();
    p.faults.hook = Some(Box::new(move |side, data| {
        let init = Packet::new_checked(&data[..]).is_ok_and(|pk| pk.exchange_type().0 == 34);
        if side == Side::B && init {
            // The KE payload's public value, found by parsing: for Curve25519 the zero point
            // (its shared secret is all zero, RFC 7748 §6.1), for the other groups every byte
            // 0xff (above the field prime of every NIST curve, and p - 1 or more for MODP).
            let range = Message::parse(data).ok().and_then(|m| {
                m.payloads.iter().find_map(|pl| match &pl.body {
                    PayloadBody::Ke(k) => {
                        g.set(k.group.0);
                        let start = k.data.as_ptr() as usize - data.as_ptr() as usize;
                        Some(start..start + k.data.len())
                    }
                    _ => None,
                })
            });
            if let Some(r) = range {
                data[r].fill(if g.get() == 31 { 0 } else { 0xff });
            }
        }
        Verdict::Deliver
    }));
    initiate(&mut p);
    p.run_for(Duration::from_secs(5));
    assert!(ike_ups(&p.a).is_empty());
    let f = failures(&p.a);
    assert_eq!(f.len(), 1, "{f:?}");
    match f[0].0 {
        Failure::Crypto(CryptoFailure::PeerKeyExchange { group: g, .. }) => {
            assert_eq!(*g, group.get());
        }
        other => panic!("not a typed key-exchange failure: {other:?}"),
    }
    let line = f[0].0.to_string();
    assert!(
        line.starts_with(&format!(
            "the peer's key exchange value for group {} was rejected",
            group.get()
        )),
        "{line}"
    );
}
