//! The IPv4 reassembler (`ferrosec_wire::ipv4frag`) with small limits, fed any packets in
//! any order with a clock that moves. Nothing may panic, at most `datagrams` are ever in
//! progress, and what comes out agrees with the counts and the limits.
//!
//! Input, read byte by byte (the input ends the run):
//! - byte 0: bits 0-1 `datagrams - 1` (1-4), bits 2-3 `max_bytes` (64, 512, 4096, 65535);
//!   the timeout is 2 s;
//! - then up to [`MAX_PACKETS`] records, each:
//!   - `ctl`: bits 0-2 the clock advance before the packet, in half seconds; bit 3 call
//!     `expire` after the packet; bits 6-7 where the packet comes from:
//!     - 0: a length byte and that many bytes follow: one IPv4 packet as received;
//!     - 1: the previous packet again;
//!     - 2: the previous packet with its fragment offset moved on by the next byte (in
//!       8-byte units), its checksum corrected: holes, adjacent pieces, many ranges;
//!     - 3: the previous packet with the next Identification, its checksum corrected: a new
//!       datagram of the same shape;
//!   - and then bit 4 sets the Total Length to the packet's length, bit 5 corrects the
//!     header checksum (after bit 4).
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ferrosec_wire::ipv4frag::{DropReason, Limits, Offer, Reassembler};
use libfuzzer_sys::fuzz_target;

/// Packets per input (more than `MAX_RANGES` pieces of one datagram fit).
const MAX_PACKETS: usize = 256;

/// One base instant for every run: the reassembler only sees differences from it.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// What `offer` said, without the borrow of the reassembler (the payload's length is all
/// that is checked of a completed datagram).
enum Outcome {
    NotFragment,
    Held,
    Complete(usize),
    Dropped(DropReason),
}

/// Writes the header checksum, if the header is all there.
fn fix_checksum(p: &mut [u8]) {
    let Some(&b0) = p.first() else { return };
    let header_len = usize::from(b0 & 0x0f) * 4;
    if header_len < 20 || header_len > p.len() {
        return;
    }
    p[10..12].fill(0);
    let sum = ferrosec_wire::checksum::checksum(&p[..header_len]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, mut rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        datagrams: usize::from(config & 3) + 1,
        max_bytes: [64, 512, 4096, 65535][usize::from((config >> 2) & 3)],
        timeout: Duration::from_secs(2),
    };
    let mut r = Reassembler::new(limits);
    assert_eq!(r.limits(), limits);
    let mut now = *EPOCH;
    let mut packet: Vec<u8> = Vec::with_capacity(255);
    let (mut completed, mut duplicates, mut malformed) = (0u64, 0u64, 0u64);
    for _ in 0..MAX_PACKETS {
        let Some((&ctl, tail)) = rest.split_first() else {
            break;
        };
        rest = tail;
        now += Duration::from_millis(500) * u32::from(ctl & 7);
        match ctl >> 6 {
            0 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let len = usize::from(len).min(tail.len());
                packet.clear();
                packet.extend_from_slice(&tail[..len]);
                rest = &tail[len..];
            }
            1 => {}
            2 => {
                let Some((&step, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                if let Some(field) = packet.get_mut(6..8) {
                    let v = u16::from_be_bytes([field[0], field[1]]);
                    let offset = (v & 0x1fff).wrapping_add(u16::from(step)) & 0x1fff;
                    field.copy_from_slice(&((v & 0xe000) | offset).to_be_bytes());
                }
                fix_checksum(&mut packet);
            }
            _ => {
                if let Some(field) = packet.get_mut(4..6) {
                    let id = u16::from_be_bytes([field[0], field[1]]).wrapping_add(1);
                    field.copy_from_slice(&id.to_be_bytes());
                }
                fix_checksum(&mut packet);
            }
        }
        if ctl & 0x10 != 0 && packet.len() >= 4 {
            let total = packet.len() as u16;
            packet[2..4].copy_from_slice(&total.to_be_bytes());
        }
        if ctl & 0x20 != 0 {
            fix_checksum(&mut packet);
        }
        let before = r.in_progress();
        let timed_out = r.stats().timed_out;
        let outcome = match r.offer(now, &packet) {
            Offer::NotFragment => Outcome::NotFragment,
            Offer::Held => Outcome::Held,
            Offer::Complete { payload, .. } => Outcome::Complete(payload.len()),
            Offer::Dropped(reason) => Outcome::Dropped(reason),
        };
        // `offer` expires old datagrams before it looks at a fragment (never for a packet it
        // drops as malformed or hands back as not a fragment).
        let expired = usize::try_from(r.stats().timed_out - timed_out).unwrap();
        match outcome {
            Outcome::NotFragment => {
                assert_eq!((expired, r.in_progress()), (0, before));
                assert!(packet.len() >= 20);
                assert_eq!(u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff, 0);
            }
            Outcome::Held => {
                // Added to a datagram, or a new one (which may have evicted the oldest).
                let now_held = r.in_progress() + expired;
                assert!(now_held == before || now_held == before + 1);
                assert!(r.in_progress() >= 1);
            }
            Outcome::Complete(len) => {
                // One fragment alone is never a whole datagram: one that was held is done.
                assert_eq!(r.in_progress() + expired + 1, before);
                assert!(len > 0 && len <= limits.max_bytes);
                assert!(len + 20 <= 65535);
                completed += 1;
            }
            Outcome::Dropped(reason) => match reason {
                DropReason::Duplicate => {
                    assert_eq!(r.in_progress() + expired, before);
                    duplicates += 1;
                }
                DropReason::Malformed | DropReason::BadChecksum | DropReason::BadFragmentLength => {
                    assert_eq!((expired, r.in_progress()), (0, before));
                    malformed += 1;
                }
                DropReason::Overlap | DropReason::TooManyRanges => {
                    assert_eq!(r.in_progress() + expired + 1, before);
                }
                // With the datagram it belongs to, if one was held.
                DropReason::TooBig => {
                    let now_held = r.in_progress() + expired;
                    assert!(now_held == before || now_held + 1 == before);
                }
                _ => unreachable!("a new DropReason: {reason:?}"),
            },
        }
        assert!(r.in_progress() <= limits.datagrams);
        if ctl & 0x08 != 0 {
            let before = r.in_progress();
            let dropped = r.expire(now);
            assert_eq!(r.in_progress() + dropped, before);
            // What is left times out later than now.
            assert!(r.next_timeout().is_none_or(|t| t >= now));
        }
        assert_eq!(r.next_timeout().is_some(), r.in_progress() > 0);
    }
    let s = r.stats();
    assert_eq!(
        (s.completed, s.duplicates, s.malformed),
        (completed, duplicates, malformed)
    );
});
