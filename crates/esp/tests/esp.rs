//! Tunnel-mode ESP through the public API: round trips for every suite, ESN, anti-replay,
//! selectors, lifetimes, drop reasons and SA selection.

mod common;

use common::*;
use ferrosec_crypto::Encryption;
use ferrosec_esp::{
    Direction, DropReason, Flow, InboundSa, InboundSad, LifetimeKind, LifetimeLimits,
    LifetimeTrigger, OutboundSa, OutboundSad, Selectors, Spi, TrafficSelector,
};

fn send(out: &mut OutboundSa, inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; out.packet_len(inner.len())];
    let t = out.encapsulate(inner, &mut buf).unwrap();
    assert_eq!(t.packet.len(), buf.len());
    buf
}

#[test]
fn every_suite_round_trips_ipv4_and_ipv6_with_and_without_esn() {
    for suite in all_suites() {
        for esn in [false, true] {
            let (mut out, mut inb) = pair(suite, esn, 64);
            let mut sad = InboundSad::new();
            sad.insert(inb);
            let packets = [
                outbound_packet(0),
                outbound_packet(1),
                outbound_packet(13),
                outbound_packet(1372),
                ipv6_tcp("fd00::1", "fd00:1::2", 443, 50000, 0),
                ipv6_tcp("fd00::1", "fd00:1::2", 443, 50000, 1000),
            ];
            for inner in &packets {
                let mut wire = send(&mut out, inner);
                // ESP: SPI, then the sequence number, 4-byte aligned overall.
                assert_eq!(&wire[..4], &0x1000u32.to_be_bytes());
                assert_eq!(wire.len() % 4, 0, "{suite:?}");
                if suite.encr != Encryption::Null {
                    assert!(!wire.windows(inner.len()).any(|w| w == &inner[..]));
                }
                let d = sad.decapsulate_in_place(&mut wire).unwrap();
                assert_eq!(&wire[d.inner], &inner[..], "{suite:?} esn {esn}");
                assert_eq!(d.spi, Spi(0x1000));
            }
            inb = sad.remove(Spi(0x1000)).unwrap();
            assert_eq!(inb.stats().packets, packets.len() as u64);
            assert_eq!(out.stats().packets, packets.len() as u64);
            let bytes: usize = packets.iter().map(Vec::len).sum();
            assert_eq!(inb.stats().bytes, bytes as u64);
            assert_eq!(out.stats().bytes, bytes as u64);
        }
    }
}

#[test]
fn copying_decapsulate_leaves_the_source_alone() {
    let (mut out, mut inb) = pair(gcm256(), false, 64);
    let inner = outbound_packet(100);
    let wire = send(&mut out, &inner);
    let mut dst = vec![0u8; 2048];
    let r = inb.decapsulate(&wire, &mut dst).unwrap();
    assert_eq!(r.packet, &inner[..]);
    let again = send(&mut out, &inner);
    let mut small = vec![0u8; again.len() - 1];
    assert_eq!(
        inb.decapsulate(&again, &mut small).err(),
        Some(DropReason::BufferTooSmall)
    );
}

#[test]
fn encapsulate_refuses_small_buffers_and_non_ip_without_using_a_sequence_number() {
    let (mut out, _) = pair(cbc_sha256(), false, 64);
    let inner = outbound_packet(50);
    let mut small = vec![0u8; out.packet_len(inner.len()) - 1];
    assert_eq!(
        out.encapsulate(&inner, &mut small).err(),
        Some(DropReason::BufferTooSmall)
    );
    let mut buf = vec![0u8; 2048];
    assert_eq!(
        out.encapsulate(&[0x20, 1, 2], &mut buf).err(),
        Some(DropReason::MalformedInner)
    );
    assert_eq!(
        out.encapsulate(&[], &mut buf).err(),
        Some(DropReason::MalformedInner)
    );
    assert_eq!(out.sequence(), 0);
    let t = out.encapsulate(&inner, &mut buf).unwrap();
    assert_eq!(&t.packet[4..8], &1u32.to_be_bytes());
    // Only the packet sent counts (the refusals are the caller's to count).
    assert_eq!(out.stats().packets, 1);
    assert_eq!(out.stats().bytes, inner.len() as u64);
}

#[test]
fn padding_aligns_to_block_and_four_bytes() {
    for suite in all_suites() {
        let (mut out, _) = pair(suite, false, 0);
        for n in 28..28 + 40 {
            let inner = outbound_packet(n - 28);
            let wire = send(&mut out, &inner);
            let enc = wire.len() - 8 - suite.iv_len() - suite.icv_len();
            assert_eq!(enc % suite.pad_align(), 0);
            // Minimal padding: less than one alignment unit.
            assert!(enc - inner.len() - 2 < suite.pad_align());
        }
    }
}

#[test]
fn esn_wraps_the_low_32_bits_and_keeps_the_high_bits_off_the_wire() {
    for suite in [gcm256(), cbc_sha256()] {
        let (mut out, mut inb) = pair(suite, true, 64);
        out.danger_set_sequence(0xffff_fffd);
        let inner = outbound_packet(10);
        for expect in [0xffff_fffe_u64, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001] {
            let mut wire = send(&mut out, &inner);
            assert_eq!(&wire[4..8], &(expect as u32).to_be_bytes());
            let d = inb.decapsulate_in_place(&mut wire).unwrap();
            assert_eq!(&wire[d.inner], &inner[..]);
            assert_eq!(inb.replay_window().highest(), expect);
        }
        assert_eq!(out.sequence(), 0x1_0000_0001);
    }
}

#[test]
fn esn_high_bits_are_authenticated() {
    // The receiver is in subspace 0; a packet sealed in subspace 1 with the same low bits is
    // reconstructed with the wrong high half and fails the ICV.
    for suite in [gcm256(), cbc_sha256()] {
        let (mut out, mut inb) = pair(suite, true, 64);
        let inner = outbound_packet(10);
        out.danger_set_sequence(99);
        let mut first = send(&mut out, &inner);
        inb.decapsulate_in_place(&mut first).unwrap();
        out.danger_set_sequence((1 << 32) + 199);
        let mut wrong = send(&mut out, &inner);
        assert_eq!(&wrong[4..8], &200u32.to_be_bytes());
        assert_eq!(
            inb.decapsulate_in_place(&mut wrong).err(),
            Some(DropReason::AuthFailed)
        );
        // The failed packet did not move the window.
        assert_eq!(inb.replay_window().highest(), 100);
    }
}

#[test]
fn sequence_space_exhaustion() {
    let inner = outbound_packet(10);
    let mut buf = vec![0u8; 256];
    let (mut out, _) = pair(gcm256(), false, 64);
    out.danger_set_sequence(u64::from(u32::MAX) - 1);
    let t = out.encapsulate(&inner, &mut buf).unwrap();
    assert_eq!(&t.packet[4..8], &u32::MAX.to_be_bytes());
    assert_eq!(
        out.encapsulate(&inner, &mut buf).err(),
        Some(DropReason::SequenceExhausted)
    );
    assert_eq!(out.stats().packets, 1);
    let (mut out, _) = pair(gcm256(), true, 64);
    out.danger_set_sequence(u64::MAX - 1);
    assert!(out.encapsulate(&inner, &mut buf).is_ok());
    assert_eq!(
        out.encapsulate(&inner, &mut buf).err(),
        Some(DropReason::SequenceExhausted)
    );
}

/// Seals `count` packets and returns them in sequence order (index 0 = seq 1).
fn sealed(out: &mut OutboundSa, count: usize) -> Vec<Vec<u8>> {
    let inner = outbound_packet(20);
    (0..count).map(|_| send(out, &inner)).collect()
}

#[test]
fn anti_replay_in_order_reordered_duplicate_and_too_old() {
    let (mut out, mut inb) = pair(gcm256(), false, 64);
    let pkts = sealed(&mut out, 200);
    let mut recv = |i: usize| inb.decapsulate_in_place(&mut pkts[i].clone()).map(|_| ());
    // In order.
    for i in 0..100 {
        assert_eq!(recv(i), Ok(()));
    }
    // Duplicate.
    assert_eq!(recv(99), Err(DropReason::Replayed));
    // Reordered within the window: 150 first, then 149 down to 101 - 63.
    assert_eq!(recv(149), Ok(()));
    for i in (100..149).rev() {
        assert_eq!(recv(i), Ok(()), "seq {}", i + 1);
    }
    // seq 150 is the top, so 87..=150 is the window: seq 87 (index 86) is its left edge and
    // was received; seq 85 (index 84) is left of it.
    assert_eq!(recv(84), Err(DropReason::TooOld));
    assert_eq!(recv(86), Err(DropReason::Replayed));
    assert_eq!(inb.stats().packets, 150);
}

#[test]
fn anti_replay_window_4096() {
    let (mut out, mut inb) = pair(gcm256(), false, 4096);
    let pkts = sealed(&mut out, 5000);
    let mut recv = |i: usize| inb.decapsulate_in_place(&mut pkts[i].clone()).map(|_| ());
    assert_eq!(recv(4999), Ok(())); // seq 5000
    assert_eq!(recv(904), Ok(())); // seq 905 = 5000 - 4095: the window's left edge
    assert_eq!(recv(904), Err(DropReason::Replayed));
    assert_eq!(recv(903), Err(DropReason::TooOld));
    for i in (905..4999).step_by(97) {
        assert_eq!(recv(i), Ok(()));
        assert_eq!(recv(i), Err(DropReason::Replayed));
    }
}

#[test]
fn with_esn_a_packet_left_of_the_window_is_taken_for_the_next_subspace() {
    // RFC 4303 Appendix A.2: below the window the receiver assumes the sender wrapped
    // (high half + 1), so an old packet fails the ICV instead of being "too old".
    let (mut out, mut inb) = pair(gcm256(), true, 64);
    let pkts = sealed(&mut out, 200);
    assert!(inb.decapsulate_in_place(&mut pkts[199].clone()).is_ok());
    assert!(inb.decapsulate_in_place(&mut pkts[136].clone()).is_ok()); // seq 137: left edge
    assert_eq!(
        inb.decapsulate_in_place(&mut pkts[135].clone()).err(),
        Some(DropReason::AuthFailed)
    );
    assert_eq!(
        inb.decapsulate_in_place(&mut pkts[136].clone()).err(),
        Some(DropReason::Replayed)
    );
}

#[test]
fn anti_replay_off_accepts_duplicates() {
    let (mut out, mut inb) = pair(cbc_sha256(), false, 0);
    let pkts = sealed(&mut out, 3);
    for i in [2, 2, 0, 1, 0] {
        assert!(inb.decapsulate_in_place(&mut pkts[i].clone()).is_ok());
    }
    assert_eq!(inb.stats().packets, 5);
}

#[test]
fn forged_packets_do_not_move_the_window() {
    let (mut out, mut inb) = pair(gcm256(), false, 64);
    let pkts = sealed(&mut out, 3);
    let mut forged = pkts[2].clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x80;
    assert_eq!(
        inb.decapsulate_in_place(&mut forged).err(),
        Some(DropReason::AuthFailed)
    );
    assert_eq!(inb.replay_window().highest(), 0);
    assert!(inb.decapsulate_in_place(&mut pkts[2].clone()).is_ok());
    assert_eq!(inb.stats().packets, 1);
}

#[test]
fn selector_mismatch_is_dropped() {
    let (mut out, mut inb) = pair(gcm256(), false, 64);
    // Outbound SAs don't filter by themselves; the receiver checks what it decrypted.
    for inner in [
        ipv4_udp([10, 9, 0, 1], [10, 1, 0, 1], 1, 2, 10), // source outside the peer's side
        ipv4_udp([10, 0, 0, 1], [10, 9, 0, 1], 1, 2, 10), // destination outside ours
        ipv6_tcp("fd00::1", "fd00:9::1", 1, 2, 0),
    ] {
        let mut wire = send(&mut out, &inner);
        assert_eq!(
            inb.decapsulate_in_place(&mut wire).err(),
            Some(DropReason::SelectorMismatch)
        );
    }
    assert_eq!(inb.stats().packets, 0);
}

#[test]
fn unknown_spi_and_truncated_are_counted_by_the_database() {
    let (mut out, inb) = pair(gcm256(), false, 64);
    let mut sad = InboundSad::new();
    sad.insert(inb);
    let wire = send(&mut out, &outbound_packet(10));
    let mut other = wire.clone();
    other[3] ^= 1;
    assert_eq!(
        sad.decapsulate_in_place(&mut other).err(),
        Some(DropReason::UnknownSpi)
    );
    assert_eq!(
        sad.decapsulate_in_place(&mut wire[..7].to_vec()).err(),
        Some(DropReason::Truncated)
    );
    // Long enough for the header but not for IV + ICV: the SA refuses it (the caller
    // counts that), the database does not count it again.
    assert_eq!(
        sad.decapsulate_in_place(&mut wire[..20].to_vec()).err(),
        Some(DropReason::Truncated)
    );
    assert_eq!(sad.drops().get(DropReason::UnknownSpi), 1);
    assert_eq!(sad.drops().get(DropReason::Truncated), 1);
    assert_eq!(sad.get(Spi(0x1000)).unwrap().stats().packets, 0);
}

#[test]
fn every_truncation_of_a_valid_packet_is_dropped() {
    for suite in [gcm256(), cbc_sha256()] {
        let (mut out, mut inb) = pair(suite, true, 64);
        let wire = send(&mut out, &outbound_packet(40));
        for cut in 0..wire.len() {
            assert!(inb.decapsulate_in_place(&mut wire[..cut].to_vec()).is_err());
        }
        assert!(inb.decapsulate_in_place(&mut wire.clone()).is_ok());
    }
}

#[test]
fn udp_encapsulation_is_reported_in_the_transmit_path() {
    let suite = gcm256();
    let mut p = params(
        suite,
        0x2000,
        false,
        selectors(LOCAL_NET, REMOTE_NET),
        LifetimeLimits::default(),
    );
    p.path = path(true);
    let mut out = OutboundSa::new(p).unwrap();
    let mut buf = vec![0u8; 256];
    let t = out.encapsulate(&outbound_packet(10), &mut buf).unwrap();
    assert_eq!(t.path.udp.map(|u| u.remote_port), Some(4500));
    // Non-ESP marker safety: an ESP packet never starts with four zero bytes.
    assert_ne!(&t.packet[..4], &[0, 0, 0, 0]);
    let raw = out.path().outer_overhead();
    assert_eq!(raw, 28);
}

#[test]
fn max_inner_len_fits_the_path_mtu_exactly() {
    for suite in all_suites() {
        let (out, _) = pair(suite, false, 64);
        for mtu in [576usize, 1280, 1400, 1500, 9000] {
            let n = out.max_inner_len(mtu);
            assert!(out.packet_len(n) + out.path().outer_overhead() <= mtu);
            assert!(out.packet_len(n + 1) + out.path().outer_overhead() > mtu);
        }
    }
}

#[test]
fn lifetime_packet_limits_raise_soft_then_hard_then_drop() {
    let limits = LifetimeLimits {
        soft_packets: Some(3),
        hard_packets: Some(5),
        ..Default::default()
    };
    let (mut out, mut inb) = pair_with(gcm256(), false, 64, limits, limits);
    let inner = outbound_packet(10);
    let mut buf = vec![0u8; 256];
    let mut out_events = vec![];
    let mut in_events = vec![];
    for _ in 0..5 {
        let t = out.encapsulate(&inner, &mut buf).unwrap();
        let mut wire = t.packet.to_vec();
        out_events.push(t.event);
        in_events.push(inb.decapsulate_in_place(&mut wire).unwrap().event);
    }
    for (events, dir) in [
        (&out_events, Direction::Outbound),
        (&in_events, Direction::Inbound),
    ] {
        let kinds: Vec<_> = events
            .iter()
            .map(|e| e.map(|e| (e.kind, e.trigger)))
            .collect();
        assert_eq!(
            kinds,
            vec![
                None,
                None,
                Some((LifetimeKind::Soft, LifetimeTrigger::Packets)),
                None,
                Some((LifetimeKind::Hard, LifetimeTrigger::Packets)),
            ]
        );
        assert!(
            events
                .iter()
                .flatten()
                .all(|e| e.direction == dir && e.spi == Spi(0x1000))
        );
    }
    assert!(out.is_expired() && inb.is_expired());
    assert_eq!(
        out.encapsulate(&inner, &mut buf).err(),
        Some(DropReason::Expired)
    );
    assert_eq!(out.stats().packets, 5);
}

#[test]
fn lifetime_byte_limits() {
    let inner = outbound_packet(72); // 100 bytes
    let limits = LifetimeLimits {
        soft_bytes: Some(250),
        hard_bytes: Some(400),
        ..Default::default()
    };
    let (mut out, mut inb) = pair_with(cbc_sha256(), false, 64, limits, limits);
    let mut buf = vec![0u8; 512];
    let mut got = vec![];
    for _ in 0..4 {
        let t = out.encapsulate(&inner, &mut buf).unwrap();
        let e = t.event;
        let mut wire = t.packet.to_vec();
        let d = inb.decapsulate_in_place(&mut wire).unwrap();
        assert_eq!(d.event.map(|e| e.kind), e.map(|e| e.kind));
        got.push(e.map(|e| (e.kind, e.trigger)));
    }
    assert_eq!(
        got,
        vec![
            None,
            None,
            Some((LifetimeKind::Soft, LifetimeTrigger::Bytes)),
            Some((LifetimeKind::Hard, LifetimeTrigger::Bytes)),
        ]
    );
    assert_eq!(
        out.encapsulate(&inner, &mut buf).err(),
        Some(DropReason::Expired)
    );
    // The inbound SA refuses more, too (a copy of a valid packet from a twin SA).
    let (mut twin, _) = pair(cbc_sha256(), false, 64);
    twin.danger_set_sequence(10);
    let mut late = send(&mut twin, &inner);
    assert_eq!(
        inb.decapsulate_in_place(&mut late).err(),
        Some(DropReason::Expired)
    );
}

/// The daemon hands SAs to its workers in a `Box`: the databases keep that allocation (no copy
/// into the table), and still take a bare SA.
#[test]
fn databases_keep_a_boxed_sa_where_it_is() {
    let (out, inb) = pair(gcm256(), false, 64);
    let (inb, out) = (Box::new(inb), Box::new(out));
    let (in_at, out_at) = (&*inb as *const InboundSa, &*out as *const OutboundSa);
    let mut isad = InboundSad::new();
    let mut osad = OutboundSad::new();
    assert!(isad.insert_boxed(inb).is_none());
    assert!(osad.insert_boxed(out).is_none());
    assert!(std::ptr::eq(isad.get(Spi(0x1000)).unwrap(), in_at));
    assert!(std::ptr::eq(osad.get(Spi(0x1000)).unwrap(), out_at));
    assert!(std::ptr::eq(isad.iter().next().unwrap(), in_at));
    assert!(std::ptr::eq(osad.iter().next().unwrap(), out_at));
    // A bare SA with the same SPI replaces the boxed one and hands it back.
    let (out2, inb2) = pair(gcm256(), false, 64);
    assert_eq!(isad.insert(inb2).map(|old| old.spi()), Some(Spi(0x1000)));
    assert_eq!(osad.insert(out2).map(|old| old.spi()), Some(Spi(0x1000)));
    assert_eq!((isad.len(), osad.len()), (1, 1));
}

#[test]
fn outbound_database_selects_by_selector_and_prefers_the_newest() {
    let suite = gcm256();
    let mut sad = OutboundSad::new();
    let a = params(
        suite,
        0xa,
        false,
        selectors(LOCAL_NET, REMOTE_NET),
        LifetimeLimits::default(),
    );
    let b = params(
        suite,
        0xb,
        false,
        selectors(LOCAL_NET, [10, 2, 0, 0]),
        LifetimeLimits::default(),
    );
    sad.insert(OutboundSa::new(a).unwrap());
    sad.insert(OutboundSa::new(b).unwrap());
    let mut buf = vec![0u8; 256];
    let to_1 = ipv4_udp([10, 0, 0, 1], [10, 1, 0, 1], 1, 2, 10);
    let to_2 = ipv4_udp([10, 0, 0, 1], [10, 2, 0, 1], 1, 2, 10);
    let to_3 = ipv4_udp([10, 0, 0, 1], [10, 3, 0, 1], 1, 2, 10);
    assert_eq!(sad.encapsulate(&to_1, &mut buf).unwrap().spi, Spi(0xa));
    assert_eq!(sad.encapsulate(&to_2, &mut buf).unwrap().spi, Spi(0xb));
    assert_eq!(
        sad.encapsulate(&to_3, &mut buf).err(),
        Some(DropReason::NoSa)
    );
    assert_eq!(
        sad.encapsulate(&[1, 2, 3], &mut buf).err(),
        Some(DropReason::MalformedInner)
    );
    assert_eq!(sad.drops().get(DropReason::NoSa), 1);
    // A rekeyed SA for the same selectors takes over; removing it falls back to the old one.
    let limits = LifetimeLimits {
        hard_packets: Some(1),
        ..Default::default()
    };
    let c = params(suite, 0xc, false, selectors(LOCAL_NET, REMOTE_NET), limits);
    sad.insert(OutboundSa::new(c).unwrap());
    assert_eq!(sad.encapsulate(&to_1, &mut buf).unwrap().spi, Spi(0xc));
    // 0xc is now expired (hard limit 1 packet): the lookup skips it.
    assert_eq!(sad.encapsulate(&to_1, &mut buf).unwrap().spi, Spi(0xa));
    assert_eq!(sad.len(), 3);
    assert!(sad.remove(Spi(0xa)).is_some());
    assert_eq!(
        sad.encapsulate(&to_1, &mut buf).err(),
        Some(DropReason::NoSa)
    );
    assert_eq!(sad.get(Spi(0xb)).unwrap().stats().packets, 1);
}

#[test]
fn zero_spi_and_bad_keys_are_refused_at_install() {
    let mut p = params(
        gcm256(),
        1,
        false,
        selectors(LOCAL_NET, REMOTE_NET),
        LifetimeLimits::default(),
    );
    p.spi = Spi(0);
    assert!(OutboundSa::new(p.clone()).is_err());
    p.spi = Spi(1);
    p.encr_key = ferrosec_esp::Secret::from_slice(&[0; 5]);
    let e = OutboundSa::new(p).unwrap_err();
    assert!(e.to_string().contains("cannot key"));
}

/// With many SAs the outbound database answers from a flow cache: whatever SAs come, go or
/// expire, the SA it picks for a packet is the one the plain scan (`lookup`) names.
#[test]
fn outbound_flow_cache_always_agrees_with_the_scan() {
    let suite = gcm256();
    let mut sad = OutboundSad::new();
    let mut buf = vec![0u8; 256];
    // A small deterministic generator (no clock, no OS randomness).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut spi = 0x100u32;
    let mut live: Vec<u32> = Vec::new();
    let (mut hits, mut checks) = (0, 0);
    for round in 0..6000 {
        // Mostly packets, so cached choices live long enough for their SAs to expire.
        match if round < 12 { 0 } else { next(40) } {
            // Install an SA for one remote /24 out of 16 (overlapping the /16 ones), with a
            // packet limit now and then so that some expire while cached.
            0 | 1 => {
                spi += 1;
                let remote = [10, 1 + next(2) as u8, next(8) as u8, 0];
                let mut sel = selectors(LOCAL_NET, remote);
                if next(2) == 0 {
                    let mut r = sel.remote().to_vec();
                    r[0] = TrafficSelector::from_prefix(remote.into(), 24).unwrap();
                    sel = Selectors::from_lists(sel.local(), &r);
                }
                let limits = LifetimeLimits {
                    hard_packets: (next(3) == 0).then_some(1 + next(4)),
                    ..Default::default()
                };
                sad.insert(OutboundSa::new(params(suite, spi, false, sel, limits)).unwrap());
                live.push(spi);
            }
            2 if !live.is_empty() => {
                let i = next(live.len() as u64) as usize;
                sad.remove(Spi(live.swap_remove(i)));
            }
            _ => {
                let dst = [10, 1 + next(2) as u8, next(8) as u8, 1 + next(2) as u8];
                let pkt = ipv4_udp([10, 0, 0, 1], dst, 1000 + next(2) as u16, 53, 10);
                let flow = Flow::parse(&pkt).unwrap();
                let expected = sad.lookup(&flow);
                let got = match sad.encapsulate(&pkt, &mut buf) {
                    Ok(t) => Some(t.spi),
                    Err(DropReason::NoSa) => None,
                    Err(e) => panic!("round {round}: {e:?}"),
                };
                assert_eq!(got, expected, "round {round}, {} SAs", sad.len());
                checks += 1;
                if sad.len() >= 8 && got.is_some() {
                    hits += 1;
                }
            }
        }
    }
    // The scenario did reach the cached regime and chose SAs there.
    assert!(
        checks > 1500 && hits > 500,
        "checks {checks}, with 8+ SAs {hits}"
    );
}
