//! IKE fragmentation (RFC 7383) in the two-peer simulation: a chain of five certificates
//! across a path that drops every datagram over 1,252 bytes (an IPv4 path of 1,280 bytes that
//! drops IP fragments), with fragments lost, duplicated, reordered and tampered with.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ferrosec_wire::ikev2::PayloadType;

use super::tests::{both_up, failures};
use super::tests_certs::{Issuer, auth, ca, cert_of, cert_pair, intermediate, leaf, run};
use super::*;
use crate::sim::{Pair, Side, Verdict};

/// The largest UDP payload of a 1,280-byte IPv4 packet.
const PATH: usize = 1280 - 20 - 8;

/// Offset of the IKE header's Next Payload field.
const NEXT_PAYLOAD: usize = 16;

/// Whether a datagram (port 500 in the simulation: no non-ESP marker) is an IKE fragment.
fn is_fragment(d: &[u8]) -> bool {
    d.get(NEXT_PAYLOAD) == Some(&PayloadType::SKF.0)
}

/// Both gateways' credentials: A's certificate under a root and three intermediates (a chain
/// of five, four of them sent), B's directly under the root.
fn chain_of_five(alg: &'static rcgen::SignatureAlgorithm) -> (CertAuth, CertAuth) {
    let root = ca("Root CA", alg);
    let mut issuers: Vec<Issuer> = Vec::new();
    for n in 1..=3 {
        let by = issuers.last().unwrap_or(&root);
        let next = intermediate(&format!("Intermediate CA {n}"), alg, by);
        issuers.push(next);
    }
    let (ca_, ka) = leaf("a", "192.0.2.1", alg, &issuers[2], None);
    let (cb, kb) = leaf("b", "192.0.2.2", alg, &root, None);
    let mut chain = vec![ca_];
    chain.extend(issuers.iter().rev().map(cert_of));
    (
        auth(chain, &ka, vec![cert_of(&root)]),
        auth(vec![cb], &kb, vec![cert_of(&root)]),
    )
}

/// Counts the fragments each side sends, and lets `f` decide about each datagram.
fn watch(
    p: &mut Pair<Endpoint>,
    mut f: impl FnMut(Side, &mut Vec<u8>, u32) -> Verdict + 'static,
) -> Rc<RefCell<[u32; 2]>> {
    let sent = Rc::new(RefCell::new([0u32; 2]));
    let s = Rc::clone(&sent);
    p.faults.hook = Some(Box::new(move |from, d| {
        if !is_fragment(d) {
            return f(from, d, 0);
        }
        let i = usize::from(from == Side::B);
        s.borrow_mut()[i] += 1;
        let n = s.borrow()[i];
        f(from, d, n)
    }));
    sent
}

#[test]
fn a_chain_of_five_crosses_a_path_that_drops_ip_fragments() {
    let (a, b) = chain_of_five(&rcgen::PKCS_RSA_SHA256);
    let mut p = cert_pair(1, a, b, false);
    p.mtu = PATH;
    let sent = watch(&mut p, |_, d, _| {
        assert!(d.len() <= PATH, "a datagram of {} bytes", d.len());
        Verdict::Deliver
    });
    run(&mut p);
    assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));
    let [from_a, _] = *sent.borrow();
    assert!(from_a >= 3, "A's IKE_AUTH went as {from_a} fragments");
    assert_eq!(p.stats.too_big, 0);
}

/// The same exchange without fragmentation (B does not announce it): A's IKE_AUTH does not
/// fit the path, and nothing comes up.
#[test]
fn without_fragmentation_the_same_exchange_is_lost_on_that_path() {
    let (a, b) = chain_of_five(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut p = cert_pair(2, a, b, false);
    std::sync::Arc::make_mut(p.b.endpoint.peers.get_mut(&PeerId(0)).unwrap()).fragmentation = false;
    p.mtu = PATH;
    let sent = watch(&mut p, |_, _, _| Verdict::Deliver);
    run(&mut p);
    assert!(!both_up(&mut p));
    assert_eq!(
        *sent.borrow(),
        [0, 0],
        "no fragments unless both announce them"
    );
    assert!(p.stats.too_big > 0);
}

#[test]
fn lost_duplicated_reordered_and_tampered_fragments_still_establish() {
    let (a, b) = chain_of_five(&rcgen::PKCS_ECDSA_P256_SHA256);
    for seed in 0..12 {
        let mut p = cert_pair(100 + seed, a.clone(), b.clone(), false);
        p.mtu = PATH;
        p.faults.loss = 0.15;
        p.faults.duplicate = 0.2;
        p.faults.reorder = 0.4;
        p.faults.reorder_delay = Duration::from_millis(800);
        // Every fifth fragment gets a flipped byte in its encrypted part: its ICV fails, it is
        // dropped on its own, and a retransmission of the set brings the message whole.
        let sent = watch(&mut p, |_, d, n| {
            if n > 0 && n % 5 == 0 {
                let last = d.len() - 1;
                d[last] ^= 0x40;
            }
            Verdict::Deliver
        });
        run(&mut p);
        p.run_until(Duration::from_secs(120), both_up);
        assert!(
            both_up(&mut p),
            "seed {seed}: {:?} {:?}",
            failures(&p.a),
            failures(&p.b)
        );
        assert!(failures(&p.a).is_empty() && failures(&p.b).is_empty());
        assert!(sent.borrow()[0] >= 2, "seed {seed}: fragments were sent");
    }
}

/// §2.6.1: a retransmitted fragmented request makes the responder send its fragmented answer
/// again once (on fragment 1), not once per fragment.
#[test]
fn a_retransmitted_set_is_answered_once() {
    let (a, b) = chain_of_five(&rcgen::PKCS_ECDSA_P256_SHA256);
    // B's answer is made large too: B sends A's chain back as its own (A trusts the root).
    let b = CertAuth {
        chain: {
            let mut c = b.chain.clone();
            c.extend(a.chain[1..].iter().cloned());
            c
        },
        ..b
    };
    let mut p = cert_pair(3, a, b, false);
    p.mtu = PATH;
    // B's first answer is lost whole.
    let first_answer = Rc::new(RefCell::new(None::<u32>));
    let fa = Rc::clone(&first_answer);
    let sent = watch(&mut p, move |from, d, n| {
        if from == Side::B && n > 0 {
            // Total Fragments follows the SKF generic header and Fragment Number.
            let total = u32::from(u16::from_be_bytes([d[34], d[35]]));
            fa.borrow_mut().get_or_insert(total);
            if n <= total {
                return Verdict::Drop;
            }
        }
        Verdict::Deliver
    });
    run(&mut p);
    assert!(both_up(&mut p), "{:?} {:?}", failures(&p.a), failures(&p.b));
    let total = first_answer.borrow().expect("B answered in fragments");
    assert!(total >= 2);
    let [from_a, from_b] = *sent.borrow();
    assert_eq!(from_a % 2, 0, "A sent its set twice: {from_a}");
    assert_eq!(from_b, 2 * total, "B answered each set once");
}
