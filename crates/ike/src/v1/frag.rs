//! IKEv1 fragmentation as strongSwan, Cisco and PAN-OS speak it (no RFC): announced by the
//! "FRAGMENTATION" vendor ID (4048b7d56ebce88525e7de7f00d6c2d3, then four capability octets:
//! strongSwan sends 80000000, Cisco c0000000; the first 16 are compared), a whole ISAKMP
//! message (header and encrypted body as it would be sent) is cut into pieces, each sent in
//! its own unencrypted message of the same cookies with one fragment payload (type 132):
//!
//! ```text
//! ISAKMP header (next payload 132, exchange as the message's, flags 0, message ID 0)
//! 132: next 0 | reserved | length (2) | fragment ID (2) | number (1, from 1) | flags (1: last)
//!      | data
//! ```
//!
//! We fragment phase-1 messages larger than [`MAX_MESSAGE`] when the gateway allows it
//! (`fragmentation`, the default) and the peer announced the vendor ID; we reassemble what the
//! peer fragments, bounded: at most [`MAX_FRAGMENTS`] pieces of one fragment ID,
//! [`MAX_BYTES`] in all, one message at a time per SA (a new fragment ID drops the older).

use std::collections::BTreeMap;

/// The payload type of a fragment.
pub(crate) const FRAGMENT_PAYLOAD: u8 = 132;
/// The vendor ID we send (strongSwan's form).
pub(crate) const VID: [u8; 20] = [
    0x40, 0x48, 0xb7, 0xd5, 0x6e, 0xbc, 0xe8, 0x85, 0x25, 0xe7, 0xde, 0x7f, 0x00, 0xd6, 0xc2, 0xd3,
    0x80, 0x00, 0x00, 0x00,
];
/// The largest ISAKMP message we send whole: IPv6's minimum MTU less IP and UDP headers and
/// the non-ESP marker (1280 − 40 − 8 − 4), so no fragment is ever IP-fragmented.
pub(crate) const MAX_MESSAGE: usize = 1228;
/// Most fragments of one message we reassemble.
pub(crate) const MAX_FRAGMENTS: usize = 32;
/// Most bytes of one reassembled message.
pub(crate) const MAX_BYTES: usize = 64 * 1024;

/// Whether a vendor ID is the fragmentation one.
pub(crate) fn is_vid(v: &[u8]) -> bool {
    v.len() >= 16 && v[..16] == VID[..16]
}

/// `msg` (a whole ISAKMP message) as fragment messages, when it is larger than
/// [`MAX_MESSAGE`]; `None` when it goes whole.
pub(crate) fn split(msg: &[u8]) -> Option<Vec<Vec<u8>>> {
    const HDR: usize = super::HDR_LEN;
    if msg.len() <= MAX_MESSAGE || msg.len() < HDR {
        return None;
    }
    let per = MAX_MESSAGE - HDR - 8;
    let chunks: Vec<&[u8]> = msg.chunks(per).collect();
    let n = chunks.len();
    if n > MAX_FRAGMENTS {
        return None;
    }
    Some(
        chunks
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let len = HDR + 8 + data.len();
                let mut m = Vec::with_capacity(len);
                m.extend_from_slice(&msg[..16]); // cookies
                m.push(FRAGMENT_PAYLOAD);
                m.push(0x10);
                m.push(msg[18]); // exchange type
                m.push(0); // not encrypted
                m.extend_from_slice(&[0; 4]); // message ID 0
                m.extend_from_slice(&(len as u32).to_be_bytes());
                m.push(0);
                m.push(0);
                m.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
                m.extend_from_slice(&1u16.to_be_bytes());
                m.push((i + 1) as u8);
                m.push(u8::from(i + 1 == n));
                m.extend_from_slice(data);
                m
            })
            .collect(),
    )
}

/// Fragments of one message being reassembled.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    id: u16,
    parts: BTreeMap<u8, Vec<u8>>,
    last: Option<u8>,
    bytes: usize,
}

/// What a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Kept; more are missing.
    Pending,
    /// The whole message.
    Complete(Vec<u8>),
    /// Malformed, or over a bound: dropped (and the set with it when over a bound).
    Dropped,
}

impl Reassembly {
    /// Takes the body of a fragment message (after the ISAKMP header).
    pub(crate) fn add(&mut self, body: &[u8]) -> Outcome {
        let Some(h) = body.get(..8) else {
            return Outcome::Dropped;
        };
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if h[0] != 0 || len < 8 || len > body.len() {
            return Outcome::Dropped;
        }
        let id = u16::from_be_bytes([h[4], h[5]]);
        let (num, last) = (h[6], h[7] & 1 != 0);
        let data = &body[8..len];
        if num == 0 || usize::from(num) > MAX_FRAGMENTS || data.is_empty() {
            return Outcome::Dropped;
        }
        if id != self.id || self.parts.is_empty() {
            *self = Reassembly {
                id,
                ..Default::default()
            };
        }
        if self.parts.contains_key(&num) || self.last.is_some_and(|l| num > l) {
            return Outcome::Pending;
        }
        if last && self.parts.keys().any(|k| *k > num) {
            *self = Reassembly::default();
            return Outcome::Dropped;
        }
        if self.bytes + data.len() > MAX_BYTES {
            *self = Reassembly::default();
            return Outcome::Dropped;
        }
        self.bytes += data.len();
        self.parts.insert(num, data.to_vec());
        if last {
            self.last = Some(num);
        }
        match self.last {
            Some(l) if self.parts.len() == usize::from(l) => {
                let whole: Vec<u8> = std::mem::take(&mut self.parts)
                    .into_values()
                    .flatten()
                    .collect();
                *self = Reassembly::default();
                Outcome::Complete(whole)
            }
            _ => Outcome::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: usize) -> Vec<u8> {
        let mut m: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        m[18] = 2;
        m[24..28].copy_from_slice(&(len as u32).to_be_bytes());
        m
    }

    #[test]
    fn small_messages_go_whole_large_ones_split_and_reassemble_in_any_order() {
        assert_eq!(split(&msg(MAX_MESSAGE)), None);
        let m = msg(7000);
        let mut frags = split(&m).unwrap();
        assert!(frags.len() >= 6);
        for f in &frags {
            assert!(f.len() <= MAX_MESSAGE);
            assert_eq!(f[16], FRAGMENT_PAYLOAD);
            assert_eq!(f[18], 2);
            assert_eq!(
                u32::from_be_bytes(f[24..28].try_into().unwrap()) as usize,
                f.len()
            );
        }
        frags.reverse();
        frags.insert(2, frags[3].clone()); // a duplicate
        let mut r = Reassembly::default();
        let mut out = None;
        for f in &frags {
            match r.add(&f[28..]) {
                Outcome::Complete(w) => out = Some(w),
                Outcome::Pending => {}
                Outcome::Dropped => panic!("dropped"),
            }
        }
        assert_eq!(out.unwrap(), m);
    }

    proptest::proptest! {
        /// Any sequence of fragment bodies: no panic, what is held stays within the bounds,
        /// and a completed message is at most MAX_BYTES.
        #[test]
        fn arbitrary_fragments_stay_bounded(frags in proptest::collection::vec(
            (0u16..3, 0u8..40, proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..3000)),
            0..80,
        )) {
            let mut r = Reassembly::default();
            for (id, num, last, data) in frags {
                let mut f = vec![0, 0];
                f.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
                f.extend_from_slice(&id.to_be_bytes());
                f.push(num);
                f.push(u8::from(last));
                f.extend_from_slice(&data);
                if let Outcome::Complete(w) = r.add(&f) {
                    proptest::prop_assert!(w.len() <= MAX_BYTES);
                }
                proptest::prop_assert!(r.bytes <= MAX_BYTES);
                proptest::prop_assert!(r.parts.len() <= MAX_FRAGMENTS);
            }
        }
    }

    #[test]
    fn bounds_and_malformed_fragments_are_refused() {
        let mut r = Reassembly::default();
        assert_eq!(r.add(&[0; 7]), Outcome::Dropped);
        // Fragment number 0, and one beyond the bound.
        assert_eq!(r.add(&[0, 0, 0, 9, 0, 1, 0, 0, 1]), Outcome::Dropped);
        assert_eq!(r.add(&[0, 0, 0, 9, 0, 1, 33, 0, 1]), Outcome::Dropped);
        // A length beyond the body.
        assert_eq!(r.add(&[0, 0, 0, 20, 0, 1, 1, 0, 1]), Outcome::Dropped);
        // Too many bytes: 32 fragments of 4 KiB exceed 64 KiB.
        let mut r = Reassembly::default();
        let mut dropped = false;
        for n in 1..=32u8 {
            let mut f = vec![0, 0];
            f.extend_from_slice(&(8u16 + 4096).to_be_bytes());
            f.extend_from_slice(&[0, 7, n, 0]);
            f.extend_from_slice(&[0xaa; 4096]);
            if r.add(&f) == Outcome::Dropped {
                dropped = true;
                break;
            }
        }
        assert!(dropped);
        // A "last" fragment below ones already held is inconsistent.
        let mut r = Reassembly::default();
        let f = |n: u8, last: u8| {
            let mut v = vec![0, 0, 0, 9, 0, 1, n, last];
            v.push(n);
            v
        };
        assert_eq!(r.add(&f(3, 0)), Outcome::Pending);
        assert_eq!(r.add(&f(2, 1)), Outcome::Dropped);
        // A new fragment ID starts over.
        let mut r = Reassembly::default();
        assert_eq!(r.add(&f(1, 0)), Outcome::Pending);
        let mut g = f(2, 1);
        g[5] = 2;
        assert_eq!(r.add(&g), Outcome::Pending);
    }
}
