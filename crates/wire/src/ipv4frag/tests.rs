//! The reassembler's tests: fragments in every order, malformed headers, overlaps and
//! duplicates, the limits (size, table, ranges, time), and random input.

use super::*;
use crate::checksum::checksum;
use crate::ipv4::MORE_FRAGMENTS;

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const ESP: u8 = 50;

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    // Tests only: the reassembler never reads the clock, the tests make up times from here.
    Instant::now()
}

/// A deterministic xorshift64 (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// One IPv4 packet: header (with `options`, padded to 4 bytes) and `data`, flags and
/// offset (in bytes, a multiple of 8) as given, a correct checksum.
fn packet(id: u16, more: bool, offset: usize, options: &[u8], data: &[u8]) -> Vec<u8> {
    packet_from(SRC, DST, ESP, id, more, offset, options, data)
}

#[allow(clippy::too_many_arguments)]
fn packet_from(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    id: u16,
    more: bool,
    offset: usize,
    options: &[u8],
    data: &[u8],
) -> Vec<u8> {
    assert_eq!(offset % 8, 0);
    let header_len = (MIN_HEADER + options.len()).div_ceil(4) * 4;
    let total = header_len + data.len();
    let mut p = vec![0u8; header_len];
    p[0] = 0x40 | (header_len / 4) as u8;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    let flags = (offset / 8) as u16 | if more { MORE_FRAGMENTS } else { 0 };
    p[6..8].copy_from_slice(&flags.to_be_bytes());
    p[8] = 64;
    p[9] = protocol;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[MIN_HEADER..MIN_HEADER + options.len()].copy_from_slice(options);
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// Fragments a datagram carrying `payload`, cut at `cuts` (byte offsets, multiples of
/// 8, increasing, inside the payload): one packet per piece, in order.
fn fragment(id: u16, payload: &[u8], cuts: &[usize], options: &[u8]) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(payload.len());
    bounds
        .windows(2)
        .map(|w| {
            let more = w[1] < payload.len();
            packet(id, more, w[0], options, &payload[w[0]..w[1]])
        })
        .collect()
}

/// Offers `packets` in order; all but the last must be held, the last must complete
/// with `payload`.
fn deliver(r: &mut Reassembler, now: Instant, packets: &[Vec<u8>], payload: &[u8]) {
    let (last, rest) = packets.split_last().unwrap();
    for p in rest {
        assert_eq!(r.offer(now, p), Offer::Held);
    }
    match r.offer(now, last) {
        Offer::Complete {
            src,
            dst,
            protocol,
            payload: got,
        } => {
            assert_eq!((src, dst, protocol), (SRC, DST, ESP));
            assert_eq!(got, payload);
        }
        other => panic!("expected Complete, got {other:?}"),
    }
}

fn small(datagrams: usize, max_bytes: usize) -> Reassembler {
    Reassembler::new(Limits {
        datagrams,
        max_bytes,
        timeout: Duration::from_secs(30),
    })
}

#[test]
fn in_order_reversed_and_shuffled() {
    let now = t0();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let payload = rng.bytes(1000);
    let mut r = Reassembler::new(Limits::default());
    let mut completed = 0;
    for n in 2..=5usize {
        let cuts: Vec<usize> = (1..n).map(|k| k * 1000 / n / 8 * 8).collect();
        let packets = fragment(n as u16, &payload, &cuts, &[]);
        assert_eq!(packets.len(), n);
        deliver(&mut r, now, &packets, &payload);
        let reversed: Vec<_> = packets.iter().rev().cloned().collect();
        deliver(&mut r, now, &reversed, &payload);
        for _ in 0..4 {
            let mut shuffled = packets.clone();
            rng.shuffle(&mut shuffled);
            deliver(&mut r, now, &shuffled, &payload);
        }
        completed += 6;
        assert_eq!(r.in_progress(), 0);
    }
    assert_eq!(r.stats().completed, completed);
}

#[test]
fn payload_is_mutable_and_valid_until_next_call() {
    let now = t0();
    let payload: Vec<u8> = (0..64).collect();
    let packets = fragment(7, &payload, &[32], &[]);
    let mut r = Reassembler::new(Limits::default());
    assert_eq!(r.offer(now, &packets[1]), Offer::Held);
    let Offer::Complete { payload: got, .. } = r.offer(now, &packets[0]) else {
        panic!("not complete");
    };
    got[0] ^= 0xff; // the caller may decrypt in place
    assert_eq!(got[0], 0xff);
    assert_eq!(&got[1..], &payload[1..]);
}

#[test]
fn header_options_and_padding() {
    let now = t0();
    let payload: Vec<u8> = (0..200u8).collect();
    // A 4-byte option (e.g. Router Alert, copied into every fragment) and Ethernet-style
    // padding after the Total Length.
    let mut packets = fragment(9, &payload, &[96], &[0x94, 0x04, 0, 0]);
    for p in &mut packets {
        assert_eq!(p[0], 0x46);
        p.extend_from_slice(&[0xee; 7]);
    }
    let mut r = Reassembler::new(Limits::default());
    deliver(&mut r, now, &packets, &payload);
    // Mixed header lengths within one datagram: the offsets count from after each
    // fragment's own header.
    let a = packet(10, true, 0, &[0x94, 0x04, 0, 0], &payload[..96]);
    let b = packet(10, false, 96, &[], &payload[96..]);
    deliver(&mut r, now, &[b, a], &payload);
}

#[test]
fn not_fragment() {
    let now = t0();
    let mut r = Reassembler::new(Limits::default());
    let whole = packet(1, false, 0, &[], &[1, 2, 3]);
    assert_eq!(r.offer(now, &whole), Offer::NotFragment);
    // Don't Fragment set.
    let mut df = whole.clone();
    df[6] |= 0x40;
    df[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&df[..20]);
    df[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(r.offer(now, &df), Offer::NotFragment);
    // The last fragment and a first fragment are fragments.
    assert_eq!(r.offer(now, &packet(2, false, 8, &[], &[1])), Offer::Held);
    assert_eq!(r.offer(now, &packet(3, true, 0, &[], &[1; 8])), Offer::Held);
    assert_eq!(r.in_progress(), 2);
    assert_eq!(r.stats(), Stats::default());
}

#[test]
fn malformed_headers_drop() {
    let now = t0();
    let mut r = Reassembler::new(Limits::default());
    let good = packet(1, true, 0, &[], &[5; 16]);
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    // Short: no header, and every truncation that loses part of the header.
    cases.push((Vec::new(), DropReason::Malformed));
    for n in 1..20 {
        cases.push((good[..n].to_vec(), DropReason::Malformed));
    }
    // Total length past the packet (the packet cut short in its data).
    cases.push((good[..30].to_vec(), DropReason::Malformed));
    // Re-checksummed edits: version 6, IHL 4, IHL past the total length, total length
    // shorter than the header, total length past the packet.
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = good.clone();
        f(&mut p);
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    };
    cases.push((edit(&|p| p[0] = 0x65), DropReason::Malformed));
    cases.push((edit(&|p| p[0] = 0x44), DropReason::Malformed));
    cases.push((edit(&|p| p[0] = 0x4f), DropReason::Malformed));
    cases.push((
        edit(&|p| p[2..4].copy_from_slice(&[0, 19])),
        DropReason::Malformed,
    ));
    cases.push((
        edit(&|p| p[2..4].copy_from_slice(&[0, 37])),
        DropReason::Malformed,
    ));
    // Bad checksum: a flipped bit anywhere in the header.
    for byte in 0..20 {
        let mut p = good.clone();
        p[byte] ^= 0x10;
        // Byte 0: version 5, caught first; bytes 2 and 3: total length 20 + 16 + 4096
        // or 20 + 16 + 16, past the packet. Anything else: the checksum.
        let expect = if matches!(byte, 0 | 2 | 3) {
            DropReason::Malformed
        } else {
            DropReason::BadChecksum
        };
        cases.push((p, expect));
    }
    // Fragment lengths: not a multiple of 8 before the last, empty.
    cases.push((
        packet(1, true, 0, &[], &[5; 12]),
        DropReason::BadFragmentLength,
    ));
    cases.push((packet(1, true, 8, &[], &[]), DropReason::BadFragmentLength));
    cases.push((packet(1, false, 8, &[], &[]), DropReason::BadFragmentLength));
    for (p, reason) in &cases {
        assert_eq!(r.offer(now, p), Offer::Dropped(*reason), "{p:02x?}");
    }
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.stats().malformed, cases.len() as u64);
    // A non-fragment with a bad checksum is dropped too.
    let mut whole = packet(2, false, 0, &[], &[1]);
    whole[11] ^= 1;
    assert_eq!(
        r.offer(now, &whole),
        Offer::Dropped(DropReason::BadChecksum)
    );
    // And the good packet is still accepted.
    assert_eq!(r.offer(now, &good), Offer::Held);
}

#[test]
fn malformed_fragment_keeps_its_datagram() {
    let now = t0();
    let payload = [3u8; 48];
    let packets = fragment(4, &payload, &[16], &[]);
    let mut r = Reassembler::new(Limits::default());
    assert_eq!(r.offer(now, &packets[0]), Offer::Held);
    assert_eq!(
        r.offer(now, &packet(4, true, 16, &[], &[3; 12])),
        Offer::Dropped(DropReason::BadFragmentLength)
    );
    assert_eq!(r.in_progress(), 1);
    deliver(&mut r, now, &packets[1..], &payload);
}

#[test]
fn gap_never_completes_and_times_out() {
    let now = t0();
    let payload = [7u8; 64];
    let packets = fragment(5, &payload, &[16, 32, 48], &[]);
    let mut r = Reassembler::new(Limits::default());
    for p in [&packets[0], &packets[1], &packets[3]] {
        assert_eq!(r.offer(now, p), Offer::Held);
    }
    // Duplicates of what is held do not fill the gap.
    assert_eq!(
        r.offer(now, &packets[1]),
        Offer::Dropped(DropReason::Duplicate)
    );
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.next_timeout(), Some(now + Duration::from_secs(30)));
    assert_eq!(r.expire(now + Duration::from_secs(30)), 0);
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.expire(now + Duration::from_secs(31)), 1);
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.next_timeout(), None);
    assert_eq!(r.stats().timed_out, 1);
    assert_eq!(r.stats().completed, 0);
    // The missing piece after the timeout starts a new datagram: no completion.
    assert_eq!(
        r.offer(now + Duration::from_secs(32), &packets[2]),
        Offer::Held
    );
    assert_eq!(r.stats().completed, 0);
}

#[test]
fn offer_expires_lazily() {
    let now = t0();
    let payload = [1u8; 32];
    let packets = fragment(6, &payload, &[16], &[]);
    let mut r = Reassembler::new(Limits::default());
    assert_eq!(r.offer(now, &packets[0]), Offer::Held);
    // An unrelated fragment after the timeout drops the old datagram.
    let later = now + Duration::from_secs(40);
    assert_eq!(
        r.offer(later, &packet(99, true, 0, &[], &[0; 8])),
        Offer::Held
    );
    assert_eq!(r.stats().timed_out, 1);
    assert_eq!(r.in_progress(), 1);
    // The rest of the old datagram does not complete it.
    assert_eq!(r.offer(later, &packets[1]), Offer::Held);
    assert_eq!(r.stats().completed, 0);
    // The timer starts at the first fragment: later ones do not extend it.
    let mut r = Reassembler::new(Limits::default());
    let packets = fragment(8, &[2u8; 48], &[16, 32], &[]);
    assert_eq!(r.offer(now, &packets[0]), Offer::Held);
    assert_eq!(
        r.offer(now + Duration::from_secs(20), &packets[1]),
        Offer::Held
    );
    assert_eq!(
        r.offer(now + Duration::from_secs(31), &packets[2]),
        Offer::Held
    );
    assert_eq!(r.stats().timed_out, 1);
    // Time going backwards drops nothing and does not panic.
    assert_eq!(r.expire(now), 0);
}

#[test]
fn overlaps_drop_the_datagram() {
    let now = t0();
    let payload: Vec<u8> = (0..64).collect();
    let mut r = Reassembler::new(Limits::default());
    let mut overlaps = 0;
    let mut check = |r: &mut Reassembler, first: Vec<u8>, second: Vec<u8>| {
        assert_eq!(r.offer(now, &first), Offer::Held);
        assert_eq!(r.offer(now, &second), Offer::Dropped(DropReason::Overlap));
        assert_eq!(r.in_progress(), 0);
        overlaps += 1;
        assert_eq!(r.stats().overlaps, overlaps);
    };
    // Partial overlap, both ways.
    check(
        &mut r,
        packet(1, true, 0, &[], &payload[..16]),
        packet(1, true, 8, &[], &payload[8..24]),
    );
    check(
        &mut r,
        packet(1, true, 8, &[], &payload[8..24]),
        packet(1, true, 0, &[], &payload[..16]),
    );
    // Covered, but different bytes.
    check(
        &mut r,
        packet(2, true, 0, &[], &payload[..32]),
        packet(2, true, 8, &[], &[0xaa; 8]),
    );
    // Covering more than what is held, same bytes where they meet.
    check(
        &mut r,
        packet(3, true, 8, &[], &payload[8..16]),
        packet(3, true, 0, &[], &payload[..24]),
    );
    // Two last fragments that disagree about the end.
    check(
        &mut r,
        packet(4, false, 32, &[], &payload[32..48]),
        packet(4, false, 48, &[], &payload[48..]),
    );
    // Data past the end a last fragment set.
    check(
        &mut r,
        packet(5, false, 32, &[], &payload[32..40]),
        packet(5, true, 40, &[], &payload[40..48]),
    );
    // A last fragment ending before data already held.
    check(
        &mut r,
        packet(6, true, 40, &[], &payload[40..48]),
        packet(6, false, 8, &[], &payload[8..16]),
    );
    // A last fragment repeating held bytes that came with More Fragments set.
    check(
        &mut r,
        packet(7, true, 0, &[], &payload[..16]),
        packet(7, false, 8, &[], &payload[8..16]),
    );
    // After an overlap the rest of the datagram never completes.
    let packets = fragment(8, &payload, &[16, 32], &[]);
    assert_eq!(r.offer(now, &packets[0]), Offer::Held);
    assert_eq!(
        r.offer(now, &packet(8, true, 8, &[], &payload[8..24])),
        Offer::Dropped(DropReason::Overlap)
    );
    assert_eq!(r.offer(now, &packets[1]), Offer::Held);
    assert_eq!(r.offer(now, &packets[2]), Offer::Held);
    assert_eq!(r.stats().completed, 0);
}

#[test]
fn exact_duplicates_are_ignored() {
    let now = t0();
    let payload: Vec<u8> = (0..48).collect();
    let packets = fragment(1, &payload, &[16, 32], &[]);
    let mut r = Reassembler::new(Limits::default());
    assert_eq!(r.offer(now, &packets[2]), Offer::Held);
    // The last fragment again (the end agrees) and the first twice.
    assert_eq!(
        r.offer(now, &packets[2]),
        Offer::Dropped(DropReason::Duplicate)
    );
    assert_eq!(r.offer(now, &packets[0]), Offer::Held);
    assert_eq!(
        r.offer(now, &packets[0]),
        Offer::Dropped(DropReason::Duplicate)
    );
    // A piece of held data, not a fragment seen before, same bytes: also a duplicate.
    assert_eq!(
        r.offer(now, &packet(1, true, 8, &[], &payload[8..16])),
        Offer::Dropped(DropReason::Duplicate)
    );
    assert_eq!(r.stats().duplicates, 3);
    assert_eq!(r.stats().overlaps, 0);
    deliver(&mut r, now, &packets[1..2], &payload);
}

#[test]
fn too_big_drops() {
    let now = t0();
    let mut r = small(4, 64);
    let payload = [9u8; 64];
    // Exactly the limit completes.
    deliver(&mut r, now, &fragment(1, &payload, &[32], &[]), &payload);
    // One piece past it: dropped, with what was held of its datagram.
    assert_eq!(
        r.offer(now, &packet(2, true, 0, &[], &[0; 32])),
        Offer::Held
    );
    assert_eq!(
        r.offer(now, &packet(2, false, 64, &[], &[0; 1])),
        Offer::Dropped(DropReason::TooBig)
    );
    assert_eq!(r.in_progress(), 0);
    assert_eq!(
        r.offer(now, &packet(3, true, 56, &[], &[0; 16])),
        Offer::Dropped(DropReason::TooBig)
    );
    assert_eq!(r.stats().too_big, 2);
    assert_eq!(r.in_progress(), 0);
    // With the default limit, the IPv4 maximum: offset 65512 + 3 bytes + 20-byte header
    // is 65535 and allowed; 4 bytes is one too many, and so is 3 behind a 24-byte header.
    let mut r = Reassembler::new(Limits::default());
    assert_eq!(
        r.offer(now, &packet(4, false, 65512, &[], &[0; 3])),
        Offer::Held
    );
    assert_eq!(
        r.offer(now, &packet(5, false, 65512, &[], &[0; 4])),
        Offer::Dropped(DropReason::TooBig)
    );
    assert_eq!(
        r.offer(now, &packet(6, false, 65512, &[1, 1, 1, 1], &[0; 3])),
        Offer::Dropped(DropReason::TooBig)
    );
    assert_eq!(r.stats().too_big, 2);
}

#[test]
fn largest_datagram_completes() {
    let now = t0();
    let mut rng = Rng(77);
    let payload = rng.bytes(65515);
    let cuts: Vec<usize> = (1..45).map(|k| k * 1480).collect();
    let mut packets = fragment(1, &payload, &cuts, &[]);
    rng.shuffle(&mut packets);
    let mut r = Reassembler::new(Limits::default());
    deliver(&mut r, now, &packets, &payload);
}

#[test]
fn table_full_evicts_the_oldest() {
    let now = t0();
    let mut r = small(2, 1024);
    let payload: Vec<u8> = (0..32).collect();
    let p: Vec<Vec<Vec<u8>>> = (1..=3)
        .map(|id| fragment(id, &payload, &[16], &[]))
        .collect();
    assert_eq!(r.offer(now, &p[0][0]), Offer::Held);
    assert_eq!(r.offer(now + Duration::from_secs(1), &p[1][0]), Offer::Held);
    // The table is full: the oldest (id 1) goes.
    assert_eq!(r.offer(now + Duration::from_secs(2), &p[2][0]), Offer::Held);
    assert_eq!(r.in_progress(), 2);
    assert_eq!(r.stats().evicted, 1);
    let t = now + Duration::from_secs(3);
    deliver(&mut r, t, &p[1][1..], &payload);
    deliver(&mut r, t, &p[2][1..], &payload);
    // Id 1's second half now starts a new datagram, which never completes.
    assert_eq!(r.offer(t, &p[0][1]), Offer::Held);
    assert_eq!(r.stats().completed, 2);
    assert_eq!(r.stats().evicted, 1);
    // The limit holds whatever arrives.
    for id in 100..200 {
        r.offer(t, &packet(id, true, 0, &[], &[0; 8]));
        assert!(r.in_progress() <= 2);
    }
    assert_eq!(r.stats().evicted, 1 + 99);
}

#[test]
fn zero_datagrams_is_one() {
    let now = t0();
    let mut r = small(0, 1024);
    assert_eq!(r.limits().datagrams, 1);
    let payload = [4u8; 16];
    deliver(&mut r, now, &fragment(1, &payload, &[8], &[]), &payload);
}

#[test]
fn interleaved_datagrams_complete() {
    let now = t0();
    let mut rng = Rng(5);
    let a = rng.bytes(300);
    let b = rng.bytes(500);
    let pa = fragment(0x1234, &a, &[104, 208], &[]);
    let pb = fragment(0x1235, &b, &[96, 200, 400], &[]);
    // Same ID and addresses, other protocol: a separate datagram.
    let pc: Vec<Vec<u8>> = [(true, 0, &a[..104]), (false, 104, &a[104..])]
        .iter()
        .map(|&(more, off, d)| packet_from(SRC, DST, 17, 0x1234, more, off, &[], d))
        .collect();
    let mut r = Reassembler::new(Limits::default());
    for p in [&pa[0], &pb[3], &pc[0], &pb[0], &pa[2], &pb[1]] {
        assert_eq!(r.offer(now, p), Offer::Held);
    }
    assert_eq!(r.in_progress(), 3);
    deliver(&mut r, now, &pa[1..2], &a);
    deliver(&mut r, now, &pb[2..3], &b);
    match r.offer(now, &pc[1]) {
        Offer::Complete {
            protocol, payload, ..
        } => {
            assert_eq!(protocol, 17);
            assert_eq!(payload, &a[..]);
        }
        other => panic!("{other:?}"),
    }
    // Other source addresses are other datagrams too.
    let other = Ipv4Addr::new(192, 0, 2, 2);
    let q = packet_from(other, DST, ESP, 1, true, 0, &[], &[0; 8]);
    let s = packet_from(SRC, DST, ESP, 1, false, 8, &[], &[0; 8]);
    assert_eq!(r.offer(now, &q), Offer::Held);
    assert_eq!(r.offer(now, &s), Offer::Held);
    assert_eq!(r.in_progress(), 2);
}

#[test]
fn too_many_ranges_drop() {
    let now = t0();
    let mut r = Reassembler::new(Limits::default());
    // Every other 8-byte block: 64 separate ranges are held, the 65th is one too many.
    for k in 0..MAX_RANGES {
        assert_eq!(
            r.offer(now, &packet(1, true, 16 * k, &[], &[1; 8])),
            Offer::Held
        );
    }
    assert_eq!(
        r.offer(now, &packet(1, true, 16 * MAX_RANGES, &[], &[1; 8])),
        Offer::Dropped(DropReason::TooManyRanges)
    );
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.stats().too_many_ranges, 1);
    // Filling a hole merges ranges: with 64 held, a fragment that joins two is fine,
    // and the datagram completes once all holes are filled.
    let payload = [1u8; 16 * MAX_RANGES];
    for k in 0..MAX_RANGES {
        assert_eq!(
            r.offer(now, &packet(2, true, 16 * k, &[], &[1; 8])),
            Offer::Held
        );
    }
    for k in 0..MAX_RANGES - 1 {
        assert_eq!(
            r.offer(now, &packet(2, true, 16 * k + 8, &[], &[1; 8])),
            Offer::Held
        );
    }
    let last = packet(2, false, 16 * MAX_RANGES - 8, &[], &[1; 8]);
    deliver(&mut r, now, &[last], &payload);
}

#[test]
fn no_allocation_once_warm() {
    let now = t0();
    let mut rng = Rng(11);
    let mut r = small(3, 4096);
    // Warm every slot.
    for id in 0..3 {
        r.offer(now, &packet(id, true, 0, &[], &[0; 8]));
    }
    assert_eq!(r.slots.len(), 3);
    let before: Vec<(*const u8, usize)> = r
        .slots
        .iter()
        .map(|s| (s.buf.as_ptr(), s.buf.capacity()))
        .collect();
    let slots_capacity = r.slots.capacity();
    for id in 3..300u16 {
        let len = 9 + rng.below(4096 - 8);
        let payload = rng.bytes(len);
        let cuts: Vec<usize> = (8..payload.len()).step_by(512).collect();
        let mut packets = fragment(id, &payload, &cuts, &[]);
        rng.shuffle(&mut packets);
        deliver(&mut r, now, &packets, &payload);
    }
    let after: Vec<(*const u8, usize)> = r
        .slots
        .iter()
        .map(|s| (s.buf.as_ptr(), s.buf.capacity()))
        .collect();
    assert_eq!(before, after);
    assert_eq!(r.slots.capacity(), slots_capacity);
    assert_eq!(r.slots.len(), 3);
}

#[test]
fn random_splits_in_random_order_give_back_the_payload() {
    let now = t0();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut r = small(8, 65535);
    let mut completed = 0;
    for round in 0..2000u16 {
        // At least 9 bytes: two 8-byte blocks, so there is somewhere to cut.
        let len = 9 + rng.below(if round % 50 == 0 { 20000 } else { 3000 });
        let payload = rng.bytes(len);
        let blocks = len.div_ceil(8);
        let pieces = 2 + rng.below(6).min(blocks.saturating_sub(1));
        let mut cuts: Vec<usize> = (0..pieces - 1)
            .map(|_| 8 * (1 + rng.below(blocks - 1)))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let options: &[u8] = match rng.below(3) {
            0 => &[],
            1 => &[0x94, 0x04, 0, 0],
            _ => &[1; 40],
        };
        let mut packets = fragment(round, &payload, &cuts, options);
        rng.shuffle(&mut packets);
        // Sometimes a duplicate of a fragment already delivered, sometimes padding.
        if rng.below(4) == 0 {
            let k = rng.below(packets.len() - 1);
            let dup = packets[k].clone();
            packets.insert(k + 1 + rng.below(packets.len() - k - 1), dup);
        }
        if rng.below(4) == 0 {
            let k = rng.below(packets.len());
            packets[k].extend_from_slice(&[0; 6]);
        }
        let mut done = false;
        for (k, p) in packets.iter().enumerate() {
            match r.offer(now, p) {
                Offer::Complete { payload: got, .. } => {
                    assert!(!done && got == &payload[..], "round {round}");
                    assert_eq!(k, packets.len() - 1, "round {round}: early");
                    done = true;
                }
                Offer::Held | Offer::Dropped(DropReason::Duplicate) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert!(done, "round {round}: not complete");
        completed += 1;
        assert_eq!(r.in_progress(), 0);
    }
    assert_eq!(r.stats().completed, completed);
    assert_eq!(r.stats().overlaps + r.stats().malformed, 0);
}

#[test]
fn random_garbage_stays_within_limits() {
    let now = t0();
    let mut rng = Rng(3);
    let mut r = small(4, 256);
    let mut t = now;
    for _ in 0..20000 {
        // Mostly valid headers with random flags, offsets and lengths, few IDs.
        let more = rng.below(2) == 0;
        let offset = 8 * rng.below(24);
        let n = if rng.below(2) == 0 {
            8 * rng.below(10)
        } else {
            rng.below(80)
        };
        let data = rng.bytes(n);
        let mut p = packet(rng.below(6) as u16, more, offset, &[], &data);
        if rng.below(10) == 0 {
            let k = rng.below(p.len());
            p[k] ^= 1 << rng.below(8);
        }
        if rng.below(10) == 0 {
            p.truncate(rng.below(p.len() + 1));
        }
        t += Duration::from_millis(rng.below(200) as u64);
        let _ = r.offer(t, &p);
        assert!(r.in_progress() <= 4);
        for s in &r.slots {
            assert!(s.len <= MAX_RANGES);
            assert!(s.ranges().windows(2).all(|w| w[0].end < w[1].start));
            assert!(s.ranges().iter().all(|g| g.start < g.end && g.end <= 256));
        }
    }
    let s = r.stats();
    assert!(s.completed > 0 && s.overlaps > 0 && s.malformed > 0 && s.too_big > 0);
}
