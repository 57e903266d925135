//! Reassembly of IKE fragments (RFC 7383 §2.6).
//!
//! Each fragment has been verified and decrypted on its own before it comes here
//! ([`crate::v2::protect::IkeKeys::open_fragment`]), so only the peer can fill a set. One set
//! is kept per direction of an IKE SA (the peer's request being reassembled and the response
//! to our request), bounded in fragments ([`MAX_FRAGMENTS`]) and bytes
//! ([`MAX_REASSEMBLED`]); it lives as long as its message is the current one (a set for
//! another Message ID replaces it) and goes with the IKE SA.

use ferrosec_wire::MessageId;
use ferrosec_wire::ikev2::PayloadType;

use super::protect::{MAX_FRAGMENTS, OpenedFragment};

/// The most bytes of decrypted content one reassembled message may have (a chain of five
/// RSA-4096 certificates and an IKE_AUTH around it fit several times).
pub(crate) const MAX_REASSEMBLED: usize = 64 * 1024;

/// What adding a fragment gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// Kept (or a duplicate, ignored); more are missing.
    Incomplete,
    /// The last missing fragment: the first inner payload type and the whole content.
    Complete(PayloadType, Vec<u8>),
    /// Refused, with the reason (the set in progress, if any, is unchanged unless said).
    Refused(&'static str),
}

#[derive(Debug)]
struct Set {
    id: MessageId,
    total: u16,
    first: PayloadType,
    pieces: Vec<Option<Vec<u8>>>,
    have: u16,
    bytes: usize,
}

/// The sets in progress of one IKE SA: the peer's request and the response to ours.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    sets: [Option<Box<Set>>; 2],
}

impl Reassembly {
    /// Adds a verified fragment of the request (`response` false) or response with Message
    /// ID `id`.
    pub(crate) fn add(&mut self, response: bool, id: MessageId, f: OpenedFragment) -> Added {
        //= https://www.rfc-editor.org/rfc/rfc7383#section-2.6
        //# the receiver MUST check that the Fragment Number is not zero and not greater
        //# than the Total Fragments
        if f.number == 0 || f.total == 0 || f.number > f.total {
            return Added::Refused("fragment number out of range");
        }
        if f.total > MAX_FRAGMENTS {
            return Added::Refused("too many fragments");
        }
        let slot = &mut self.sets[usize::from(response)];
        match slot {
            Some(set) if set.id == id && f.total < set.total => {
                //= https://www.rfc-editor.org/rfc/rfc7383#section-2.6
                //# If the Total Fragments field is less than the value of this field in
                //# the already received fragments of the same message, then the receiver
                //# MUST discard the received fragment.
                return Added::Refused("fewer total fragments than the set in progress");
            }
            // The sender fragmented the message anew with more (smaller) fragments, or a
            // set for another message: start over.
            Some(set) if set.id == id && f.total == set.total => {}
            _ => {
                *slot = Some(Box::new(Set {
                    id,
                    total: f.total,
                    first: PayloadType::NONE,
                    pieces: (0..f.total).map(|_| None).collect(),
                    have: 0,
                    bytes: 0,
                }))
            }
        }
        let Some(set) = slot.as_deref_mut() else {
            return Added::Incomplete;
        };
        let i = usize::from(f.number - 1);
        if set.pieces.get(i).is_some_and(Option::is_some) {
            // A duplicate (a retransmission of the whole set): nothing new.
            return Added::Incomplete;
        }
        if set.bytes + f.data.len() > MAX_REASSEMBLED {
            *slot = None;
            return Added::Refused("reassembled message too large");
        }
        if f.number == 1 {
            set.first = f.next;
        }
        set.bytes += f.data.len();
        set.have += 1;
        set.pieces[i] = Some(f.data);
        if set.have < set.total {
            return Added::Incomplete;
        }
        let Some(set) = slot.take() else {
            return Added::Incomplete;
        };
        let mut whole = Vec::with_capacity(set.bytes);
        for p in set.pieces.into_iter().flatten() {
            whole.extend_from_slice(&p);
        }
        Added::Complete(set.first, whole)
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.sets.iter().flatten().map(|s| s.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(number: u16, total: u16, data: &[u8]) -> OpenedFragment {
        OpenedFragment {
            number,
            total,
            next: if number == 1 {
                PayloadType::IDI
            } else {
                PayloadType::NONE
            },
            data: data.to_vec(),
        }
    }

    #[test]
    fn fragments_in_any_order_with_duplicates_make_the_message_once() {
        let mut r = Reassembly::default();
        let id = MessageId(1);
        assert_eq!(r.add(false, id, frag(3, 3, b"ghi")), Added::Incomplete);
        assert_eq!(r.add(false, id, frag(1, 3, b"abc")), Added::Incomplete);
        assert_eq!(
            r.add(false, id, frag(3, 3, b"XXX")),
            Added::Incomplete,
            "duplicate"
        );
        assert_eq!(
            r.add(false, id, frag(2, 3, b"def")),
            Added::Complete(PayloadType::IDI, b"abcdefghi".to_vec())
        );
        assert_eq!(r.held(), 0, "the set is gone once complete");
        assert_eq!(r.add(false, id, frag(2, 3, b"def")), Added::Incomplete);
    }

    #[test]
    fn requests_and_responses_are_reassembled_apart() {
        let mut r = Reassembly::default();
        assert_eq!(
            r.add(false, MessageId(4), frag(1, 2, b"rq")),
            Added::Incomplete
        );
        assert_eq!(
            r.add(true, MessageId(4), frag(2, 2, b"2")),
            Added::Incomplete
        );
        assert_eq!(
            r.add(true, MessageId(4), frag(1, 2, b"1")),
            Added::Complete(PayloadType::IDI, b"12".to_vec())
        );
        assert_eq!(
            r.add(false, MessageId(4), frag(2, 2, b"-2")),
            Added::Complete(PayloadType::IDI, b"rq-2".to_vec())
        );
    }

    #[test]
    fn bad_numbers_are_refused() {
        let mut r = Reassembly::default();
        let id = MessageId(1);
        for (n, t) in [(0, 2), (3, 2), (1, 0), (1, MAX_FRAGMENTS + 1)] {
            assert!(
                matches!(r.add(false, id, frag(n, t, b"x")), Added::Refused(_)),
                "{n}/{t}"
            );
        }
        assert_eq!(r.held(), 0);
    }

    /// §2.6: more total fragments (the sender re-fragmented smaller) restart the set; fewer
    /// are refused.
    #[test]
    fn a_changed_total_restarts_or_is_refused() {
        let mut r = Reassembly::default();
        let id = MessageId(2);
        assert_eq!(r.add(false, id, frag(1, 2, b"big-")), Added::Incomplete);
        assert_eq!(r.add(false, id, frag(1, 3, b"ab")), Added::Incomplete);
        assert!(matches!(
            r.add(false, id, frag(2, 2, b"one")),
            Added::Refused(_)
        ));
        assert_eq!(r.add(false, id, frag(2, 3, b"cd")), Added::Incomplete);
        assert_eq!(
            r.add(false, id, frag(3, 3, b"ef")),
            Added::Complete(PayloadType::IDI, b"abcdef".to_vec())
        );
    }

    #[test]
    fn a_set_for_another_message_replaces_the_old_one() {
        let mut r = Reassembly::default();
        assert_eq!(
            r.add(false, MessageId(1), frag(1, 2, b"old")),
            Added::Incomplete
        );
        assert_eq!(
            r.add(false, MessageId(2), frag(2, 2, b"new")),
            Added::Incomplete
        );
        assert_eq!(r.held(), 3);
        assert_eq!(
            r.add(false, MessageId(2), frag(1, 2, b"NEW")),
            Added::Complete(PayloadType::IDI, b"NEWnew".to_vec())
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Reassembly::default();
        let id = MessageId(1);
        let big = vec![0u8; MAX_REASSEMBLED / 2 + 1];
        assert_eq!(r.add(false, id, frag(1, 3, &big)), Added::Incomplete);
        assert!(matches!(
            r.add(false, id, frag(2, 3, &big)),
            Added::Refused(_)
        ));
        assert_eq!(r.held(), 0, "the oversized set is dropped whole");
    }
}
