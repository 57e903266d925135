//! IPv4 reassembly (RFC 791 §3.2) for inbound ESP taken from the packet ring.
//!
//! The data plane receives raw ESP (IP protocol 50, no NAT) from an `AF_PACKET` ring, which
//! sees packets before the kernel's IP layer: nothing has been checked and IPv4 fragments
//! arrive as they are. A peer's ESP packet larger than the path MTU arrives in fragments;
//! [`Reassembler`] puts them back together. It is the slow path, so it is built for
//! correctness and bounded memory, not speed, and it is sans-IO: the time comes in as
//! `now`, and nothing here reads a clock.
//!
//! [`Reassembler::offer`] takes one whole IPv4 packet as received (header and options
//! included; bytes past the Total Length, such as Ethernet padding, are ignored) and says
//! what became of it ([`Offer`]). Every packet offered has its header checked first
//! ([`crate::ipv4::Ipv4Header::parse`]): version 4, IHL at least 5, Total Length covering the header and within the packet, and
//! the header checksum (RFC 791 §3.1). A packet that fails is dropped as malformed, fragment
//! or not, so [`Offer::NotFragment`] also means "a well-formed IPv4 header".
//!
//! # Choices
//!
//! - **Key**: source, destination, protocol and Identification (RFC 791 §3.2).
//! - **Fragment lengths**: every fragment but the last carries a non-zero multiple of 8
//!   bytes; an empty fragment or a non-last one of another length is dropped as malformed
//!   (alone: the datagram it belongs to is kept).
//! - **Size**: a fragment whose data would end past [`Limits::max_bytes`] (counted in bytes
//!   after the IP header), or that would make the datagram longer than the 65,535 bytes
//!   IPv4 allows, is dropped with the datagram it belongs to: that datagram can never be
//!   delivered.
//! - **Overlaps** drop the whole datagram and any fragment of it held, as RFC 5722 §4
//!   requires for IPv6: reassemblers that resolve an overlap differently see different
//!   datagrams, which is how overlaps are used to slip past filters. The same goes for
//!   fragments that disagree about where the datagram ends (two last fragments with
//!   different ends, or data past the end a last fragment set).
//! - **Duplicates**: a fragment whose bytes all lie inside data already held and equal it
//!   changes nothing, so it is dropped alone ([`DropReason::Duplicate`]) and the datagram
//!   is kept (RFC 5722 erratum 3089: duplicates are ignored; a retransmitting or
//!   duplicating network must not kill reassembly). Equal bytes leave no room for the
//!   ambiguity that makes overlaps dangerous. A last fragment that repeats held data but
//!   is the first to say where the datagram ends is not a duplicate: held data that ends
//!   there came with More Fragments set, so the two disagree (an overlap).
//! - **Timeout**: a datagram is dropped once more than [`Limits::timeout`] has passed since
//!   its first fragment arrived (a fixed timer, as Linux's `ipfrag_time`; later fragments do
//!   not extend it). [`Reassembler::expire`] drops them; [`Reassembler::offer`] also does,
//!   before it looks at a fragment.
//! - **Table full**: at most [`Limits::datagrams`] datagrams are in progress; a fragment of
//!   a new datagram when all are taken evicts the oldest one (by first arrival).
//! - **Ranges**: a datagram keeps the byte ranges it has received, adjacent ranges merged,
//!   in a fixed array of [`MAX_RANGES`]; a fragment that would need one more (a datagram
//!   with that many holes) drops the datagram.
//!
//! # Memory
//!
//! Bounded by the limits, whatever arrives: each of the at most `datagrams` slots owns one
//! buffer of `min(max_bytes, 65515)` bytes, allocated when the slot is first used and
//! reused for every datagram after it, and `MAX_RANGES` ranges inline. With the defaults
//! (32 datagrams, 65,535 bytes) that is 2 MiB once all slots have been used; an ESP
//! gateway that never sees fragmented ESP larger than a few kilobytes can lower
//! `max_bytes`. Once every slot has been used, nothing is allocated per fragment. Finding a
//! datagram is a linear search of the slots (32 by default): this is the slow path.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::ipv4::{HeaderError, Ipv4Header, MIN_HEADER_LEN as MIN_HEADER};

/// The most received ranges (runs of contiguous bytes) a datagram in progress may have.
pub const MAX_RANGES: usize = 64;

/// The largest IPv4 datagram, header included (RFC 791 §3.1, Total Length is 16 bits).
const MAX_DATAGRAM: usize = 65535;

/// How much the reassembler holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Datagrams in progress at once (a value of 0 is taken as 1). Default 32.
    pub datagrams: usize,
    /// The largest reassembled datagram, counted in bytes after the IP header (a datagram
    /// is also never longer than IPv4's 65,535 bytes, header included). Default 65535.
    pub max_bytes: usize,
    /// How long a datagram may take from its first fragment on. Default 30 s (RFC 791's
    /// suggestion, the Linux `ipfrag_time` default).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            datagrams: 32,
            max_bytes: 65535,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What the reassembler has seen, counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams reassembled and handed out.
    pub completed: u64,
    /// Datagrams dropped because they were not complete within the timeout.
    pub timed_out: u64,
    /// Datagrams dropped to make room for a new one when the table was full.
    pub evicted: u64,
    /// Datagrams dropped because fragments overlapped or disagreed about the end.
    pub overlaps: u64,
    /// Fragments (and their datagrams) dropped because the datagram would be too big.
    pub too_big: u64,
    /// Datagrams dropped because they had [`MAX_RANGES`] ranges and needed another.
    pub too_many_ranges: u64,
    /// Duplicate fragments dropped (their datagrams kept).
    pub duplicates: u64,
    /// Packets dropped for a bad header or a bad fragment length ([`DropReason::Malformed`],
    /// [`DropReason::BadChecksum`], [`DropReason::BadFragmentLength`]).
    pub malformed: u64,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a well-formed IPv4 header: shorter than 20 bytes, version not 4, IHL below 5,
    /// Total Length shorter than the header or longer than the packet.
    Malformed,
    /// The header checksum is wrong.
    BadChecksum,
    /// An empty fragment, or one other than the last whose length is not a multiple of 8.
    BadFragmentLength,
    /// The fragment overlaps data held for its datagram, or disagrees with it about where
    /// the datagram ends; the datagram was dropped.
    Overlap,
    /// The fragment repeats data already held, byte for byte; the datagram is kept.
    Duplicate,
    /// The datagram would be longer than the limit or than IPv4 allows; it was dropped.
    TooBig,
    /// The datagram would need more than [`MAX_RANGES`] ranges; it was dropped.
    TooManyRanges,
}

/// What became of a packet offered to the reassembler.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<'a> {
    /// Not a fragment (More Fragments clear and offset 0), with a well-formed header and a
    /// correct checksum: the caller handles it as it is.
    NotFragment,
    /// Stored; the datagram is not complete yet.
    Held,
    /// The datagram is complete: its source, destination, protocol, and the payload after
    /// the IP header (mutable, so the caller can decrypt it in place). Valid until the
    /// next call.
    Complete {
        /// The source address.
        src: Ipv4Addr,
        /// The destination address.
        dst: Ipv4Addr,
        /// The IP protocol (50 for ESP).
        protocol: u8,
        /// The reassembled payload.
        payload: &'a mut [u8],
    },
    /// Dropped, with the reason.
    Dropped(DropReason),
}

/// Reassembles fragmented IPv4 datagrams, within [`Limits`]. See the module docs.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    /// The payload a datagram may have: `min(max_bytes, 65535 - 20)`; each slot's buffer.
    capacity: usize,
    /// At most `limits.datagrams`, added as needed and never removed.
    slots: Vec<Slot>,
    in_progress: usize,
    stats: Stats,
}

impl Reassembler {
    /// A reassembler with nothing in progress. Nothing is allocated until the first
    /// fragment arrives.
    pub fn new(limits: Limits) -> Self {
        let limits = Limits {
            datagrams: limits.datagrams.max(1),
            ..limits
        };
        Reassembler {
            limits,
            capacity: limits.max_bytes.min(MAX_DATAGRAM - MIN_HEADER),
            slots: Vec::new(),
            in_progress: 0,
            stats: Stats::default(),
        }
    }

    /// The limits in force (`datagrams` at least 1).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `packet` is one whole IPv4 packet as received (header included, maybe with
    /// options). Returns what became of it.
    pub fn offer(&mut self, now: Instant, packet: &[u8]) -> Offer<'_> {
        let frag = match parse(packet) {
            Ok(Some(frag)) => frag,
            Ok(None) => return Offer::NotFragment,
            Err(reason) => {
                self.stats.malformed += 1;
                return Offer::Dropped(reason);
            }
        };
        self.expire(now);
        let found = self.slots.iter().position(|s| s.key == Some(frag.key));
        // At most 8191 * 8 + 65535: no overflow.
        let end = frag.offset + frag.data.len();
        if end > self.limits.max_bytes || end + frag.header_len > MAX_DATAGRAM {
            if let Some(i) = found {
                self.free(i);
            }
            self.stats.too_big += 1;
            return Offer::Dropped(DropReason::TooBig);
        }
        let i = match found {
            Some(i) => i,
            None => self.claim(now, frag.key),
        };
        let Some(slot) = self.slots.get_mut(i) else {
            // `i` came from `position` or `claim`: always a slot.
            return Offer::Dropped(DropReason::TooBig);
        };
        match slot.add(&frag, end) {
            Ok(None) => Offer::Held,
            Err(DropReason::Duplicate) => {
                self.stats.duplicates += 1;
                Offer::Dropped(DropReason::Duplicate)
            }
            Err(reason) => {
                match reason {
                    DropReason::Overlap => self.stats.overlaps += 1,
                    DropReason::TooManyRanges => self.stats.too_many_ranges += 1,
                    _ => self.stats.too_big += 1,
                }
                self.free(i);
                Offer::Dropped(reason)
            }
            Ok(Some(total)) => {
                self.free(i);
                self.stats.completed += 1;
                let Some(payload) = self.slots.get_mut(i).and_then(|s| s.buf.get_mut(..total))
                else {
                    // `total` was checked against the buffer in `add`.
                    return Offer::Dropped(DropReason::TooBig);
                };
                Offer::Complete {
                    src: frag.key.src,
                    dst: frag.key.dst,
                    protocol: frag.key.protocol,
                    payload,
                }
            }
        }
    }

    /// Drops datagrams older than the timeout (the caller calls it now and then; `offer`
    /// also expires lazily). Returns how many were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        for i in 0..self.slots.len() {
            let expired = self.slots.get(i).is_some_and(|s| {
                s.key.is_some() && now.saturating_duration_since(s.started) > self.limits.timeout
            });
            if expired {
                self.free(i);
                dropped += 1;
            }
        }
        self.stats.timed_out += dropped as u64;
        dropped
    }

    /// How many datagrams are in progress.
    pub fn in_progress(&self) -> usize {
        self.in_progress
    }

    /// When the oldest datagram in progress times out, if any is (for the caller's timer:
    /// `expire` at or after this drops it).
    pub fn next_timeout(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.key.is_some())
            .map(|s| s.started)
            .min()
            .and_then(|t| t.checked_add(self.limits.timeout))
    }

    /// The counts so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// A slot for a new datagram: a free one, a new one while there are fewer than the
    /// limit, or else the oldest in progress, evicted.
    fn claim(&mut self, now: Instant, key: Key) -> usize {
        let i = if let Some(i) = self.slots.iter().position(|s| s.key.is_none()) {
            i
        } else if self.slots.len() < self.limits.datagrams {
            self.slots.push(Slot::new(self.capacity, now));
            self.slots.len() - 1
        } else {
            let oldest = self
                .slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.started)
                .map_or(0, |(i, _)| i);
            self.free(oldest);
            self.stats.evicted += 1;
            oldest
        };
        if let Some(slot) = self.slots.get_mut(i) {
            slot.start(key, now);
            self.in_progress += 1;
        }
        i
    }

    /// Marks slot `i` free (its buffer stays allocated for the next datagram).
    fn free(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i)
            && slot.key.take().is_some()
        {
            self.in_progress -= 1;
        }
    }
}

/// What identifies a datagram (RFC 791 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    id: u16,
}

/// A fragment whose header has been checked.
#[derive(Debug)]
struct Fragment<'a> {
    key: Key,
    header_len: usize,
    /// In bytes.
    offset: usize,
    more: bool,
    data: &'a [u8],
}

/// Checks the header of `packet` ([`Ipv4Header::parse`]): `Ok(None)` for a packet that is
/// not a fragment, `Ok(Some(_))` for a fragment with a usable length.
fn parse(packet: &[u8]) -> Result<Option<Fragment<'_>>, DropReason> {
    let h = Ipv4Header::parse(packet).map_err(|e| match e {
        HeaderError::Checksum => DropReason::BadChecksum,
        _ => DropReason::Malformed,
    })?;
    if !h.is_fragment() {
        return Ok(None);
    }
    let Some(data) = packet.get(h.payload_range()) else {
        // `parse` checked the Total Length against the packet.
        return Err(DropReason::Malformed);
    };
    if data.is_empty() || (h.more_fragments && data.len() % 8 != 0) {
        return Err(DropReason::BadFragmentLength);
    }
    Ok(Some(Fragment {
        key: Key {
            src: h.src,
            dst: h.dst,
            protocol: h.protocol,
            id: h.id,
        },
        header_len: h.header_len,
        offset: h.fragment_offset,
        more: h.more_fragments,
        data,
    }))
}

/// Received bytes `start..end` of a datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
}

/// One datagram in progress, or a free slot (`key` is `None`) keeping its buffer.
#[derive(Debug)]
struct Slot {
    key: Option<Key>,
    /// When its first fragment arrived.
    started: Instant,
    /// The end of the datagram, once its last fragment has arrived.
    total: Option<usize>,
    /// The first `len` are in use: sorted, disjoint, never adjacent (merged).
    ranges: [Range; MAX_RANGES],
    len: usize,
    /// The payload so far, at its offsets; as long as the largest datagram allowed.
    buf: Vec<u8>,
}

impl Slot {
    fn new(capacity: usize, now: Instant) -> Self {
        Slot {
            key: None,
            started: now,
            total: None,
            ranges: [Range::default(); MAX_RANGES],
            len: 0,
            buf: vec![0; capacity],
        }
    }

    fn start(&mut self, key: Key, now: Instant) {
        self.key = Some(key);
        self.started = now;
        self.total = None;
        self.len = 0;
    }

    /// The ranges in use.
    fn ranges(&self) -> &[Range] {
        self.ranges.get(..self.len).unwrap_or_default()
    }

    /// Adds `frag` (whose data ends at `end`, within the buffer). `Ok(Some(total))` once
    /// the datagram is complete; an error other than `Duplicate` means the datagram must
    /// be dropped.
    fn add(&mut self, frag: &Fragment<'_>, end: usize) -> Result<Option<usize>, DropReason> {
        let start = frag.offset;
        let held_end = self.ranges().last().map_or(0, |r| r.end);
        // Fragments must agree about where the datagram ends.
        match (self.total, frag.more) {
            (Some(total), true) if end > total => return Err(DropReason::Overlap),
            (Some(total), false) if end != total => return Err(DropReason::Overlap),
            (None, false) if held_end > end => return Err(DropReason::Overlap),
            _ => {}
        }
        let first_after = self.ranges().partition_point(|r| r.end <= start);
        if let Some(r) = self.ranges().get(first_after).copied()
            && r.start < end
        {
            // An overlap, unless it repeats held bytes (and adds nothing: a last fragment
            // that sets the end adds something).
            let covered = r.start <= start && end <= r.end;
            let same = self.buf.get(start..end) == Some(frag.data);
            let adds_end = !frag.more && self.total.is_none();
            return Err(if covered && same && !adds_end {
                DropReason::Duplicate
            } else {
                DropReason::Overlap
            });
        }
        self.insert(first_after, Range { start, end })?;
        let Some(dst) = self.buf.get_mut(start..end) else {
            return Err(DropReason::TooBig);
        };
        dst.copy_from_slice(frag.data);
        if !frag.more {
            self.total = Some(end);
        }
        Ok(match (self.total, self.ranges()) {
            (Some(total), [only]) if only.start == 0 && only.end == total => Some(total),
            _ => None,
        })
    }

    /// Inserts `new`, which overlaps none of the ranges, at `i` (the first range after it),
    /// merging it with the ranges it touches.
    fn insert(&mut self, i: usize, new: Range) -> Result<(), DropReason> {
        let n = self.len;
        let left = i
            .checked_sub(1)
            .filter(|&l| self.ranges().get(l).is_some_and(|r| r.end == new.start));
        let right = Some(i).filter(|&r| self.ranges().get(r).is_some_and(|r| r.start == new.end));
        match (left, right) {
            (Some(l), Some(r)) => {
                let end = self.ranges[r].end;
                self.ranges[l].end = end;
                self.ranges.copy_within(r + 1..n, r);
                self.len -= 1;
            }
            (Some(l), None) => self.ranges[l].end = new.end,
            (None, Some(r)) => self.ranges[r].start = new.start,
            (None, None) => {
                if n >= MAX_RANGES || i > n {
                    return Err(DropReason::TooManyRanges);
                }
                self.ranges.copy_within(i..n, i + 1);
                self.ranges[i] = new;
                self.len += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// The RFC 1071 checksum of `header` (its checksum field zero).
    fn checksum(header: &[u8]) -> u16 {
        let mut sum: u32 = header
            .chunks(2)
            .map(|w| (u32::from(w[0]) << 8) | u32::from(*w.get(1).unwrap_or(&0)))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
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
}
