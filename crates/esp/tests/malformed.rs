//! Authenticated packets with bad contents (hand-built with the crypto crate's `EspSa`, keyed
//! like the receiver), and random input that must never panic.

mod common;

use common::*;
use ferrosec_crypto::EspSuite;
use ferrosec_esp::{DropReason, Flow, InboundSa, InboundSad, OutboundSad, Spi};
use proptest::prelude::*;

/// Seals `plaintext` (payload, padding, pad length, next header) as sequence number `seq`
/// with the keys of the test SA pair.
fn forge(suite: EspSuite, seq: u32, plaintext: &[u8]) -> Vec<u8> {
    let (ek, ik) = keys(&suite, 0x00);
    let sa = suite.key(&ek, &ik).unwrap();
    let mut pkt = vec![0u8; 8 + suite.iv_len() + plaintext.len() + suite.icv_len()];
    pkt[..4].copy_from_slice(&0x1000u32.to_be_bytes());
    pkt[4..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8 + suite.iv_len()..][..plaintext.len()].copy_from_slice(plaintext);
    sa.seal(&mut pkt, u64::from(seq), false).unwrap();
    pkt
}

fn inner() -> Vec<u8> {
    // 28 bytes, as the sender of the test pair would send them.
    ipv4_udp([10, 0, 0, 1], [10, 1, 0, 1], 53, 4000, 0)
}

fn with_trailer(payload: &[u8], padding: &[u8], pad_len: u8, next: u8) -> Vec<u8> {
    let mut v = payload.to_vec();
    v.extend_from_slice(padding);
    v.push(pad_len);
    v.push(next);
    v
}

fn receiver() -> InboundSa {
    pair(gcm256(), false, 64).1
}

#[test]
fn authenticated_but_malformed_contents_are_dropped_with_their_reason() {
    let suite = gcm256();
    let mut inb = receiver();
    let ip = inner();
    let mut bad_inner = ip.clone();
    bad_inner[2..4].copy_from_slice(&200u16.to_be_bytes()); // Total Length past the end
    let cases = [
        (with_trailer(&ip, &[1, 2, 9], 3, 4), DropReason::BadPadding),
        (with_trailer(&ip, &[], 200, 4), DropReason::BadPadding),
        (with_trailer(&ip, &[1, 2], 2, 17), DropReason::BadNextHeader),
        (with_trailer(&ip, &[1, 2], 2, 41), DropReason::BadNextHeader),
        (with_trailer(&ip, &[1, 2], 2, 59), DropReason::Dummy),
        (
            with_trailer(&bad_inner, &[1, 2], 2, 4),
            DropReason::MalformedInner,
        ),
        (with_trailer(&[], &[1, 2], 2, 4), DropReason::BadNextHeader),
    ];
    for (i, (plain, reason)) in cases.iter().enumerate() {
        let mut pkt = forge(suite, i as u32 + 1, plain);
        assert_eq!(
            inb.decapsulate_in_place(&mut pkt).err(),
            Some(*reason),
            "case {i}"
        );
        assert_eq!(
            inb.replay_window().highest(),
            i as u64 + 1,
            "authenticated: window moves"
        );
    }
    assert_eq!(inb.stats().packets, 0);
}

#[test]
fn tfc_padding_after_the_inner_packet_is_removed() {
    let ip = inner();
    let mut padded = ip.clone();
    padded.extend_from_slice(&[0u8; 34]);
    let mut pkt = forge(gcm256(), 1, &with_trailer(&padded, &[1, 2], 2, 4));
    let mut inb = receiver();
    let d = inb.decapsulate_in_place(&mut pkt).unwrap();
    assert_eq!(&pkt[d.inner], &ip[..]);
    assert_eq!(inb.stats().bytes, ip.len() as u64);
}

fn database() -> InboundSad {
    let mut sad = InboundSad::new();
    sad.insert(pair(gcm256(), true, 64).1);
    let p = params(
        cbc_sha256(),
        0x2000,
        false,
        selectors(REMOTE_NET, LOCAL_NET),
        Default::default(),
    );
    sad.insert(InboundSa::new(p, 0).unwrap());
    sad
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random bytes, with or without a known SPI in front, never panic and never pass.
    #[test]
    fn random_bytes_never_decapsulate(
        spi in prop_oneof![Just(0x1000u32), Just(0x2000u32), any::<u32>()],
        body in proptest::collection::vec(any::<u8>(), 0..300),
        raw in any::<bool>(),
    ) {
        let mut sad = database();
        let mut pkt = if raw { body.clone() } else {
            let mut p = spi.to_be_bytes().to_vec();
            p.extend_from_slice(&body);
            p
        };
        prop_assert!(sad.decapsulate_in_place(&mut pkt).is_err());
        let mut dst = vec![0u8; 512];
        prop_assert!(sad.decapsulate(&body, &mut dst).is_err());
    }

    /// Any single-byte change to a valid packet is caught.
    #[test]
    fn any_modification_is_detected(idx in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let (mut out, inb) = pair(cbc_sha256(), false, 64);
        let mut sad = InboundSad::new();
        sad.insert(inb);
        let inner = outbound_packet(60);
        let mut buf = vec![0u8; 512];
        let mut pkt = out.encapsulate(&inner, &mut buf).unwrap().packet.to_vec();
        let i = idx.index(pkt.len());
        pkt[i] ^= flip;
        prop_assert!(sad.decapsulate_in_place(&mut pkt).is_err());
        // The forgery did not touch the window.
        prop_assert_eq!(sad.get(Spi(0x1000)).unwrap().replay_window().highest(), 0);
    }

    /// Random inner packets never panic the outbound side; whatever is encapsulated parses as
    /// IP and comes out unchanged on the other side when the selectors allow it.
    #[test]
    fn random_inner_packets(inner in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (out, inb) = pair(gcm256(), false, 64);
        let mut osad = OutboundSad::new();
        osad.insert(out);
        let mut isad = InboundSad::new();
        isad.insert(inb);
        let mut buf = vec![0u8; 512];
        let flow = Flow::parse(&inner);
        if let Ok(f) = &flow {
            prop_assert!(f.len <= inner.len());
        }
        match osad.encapsulate(&inner, &mut buf) {
            Ok(t) => {
                prop_assert!(flow.is_ok());
                let mut pkt = t.packet.to_vec();
                if let Ok(d) = isad.decapsulate_in_place(&mut pkt) {
                    prop_assert_eq!(&pkt[d.inner], &inner[..flow.unwrap().len]);
                }
            }
            Err(e) => prop_assert!(matches!(e, DropReason::NoSa | DropReason::MalformedInner)),
        }
    }
}
