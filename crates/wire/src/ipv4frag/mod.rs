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
mod tests;
