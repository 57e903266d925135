//! What one Child SA pair costs in memory (issue 16: a responder holds 10,000 pairs, and every
//! byte of them counts).
//!
//! The pair is built as the daemon builds it (`dataplane::DataPlane::install`): one selector
//! list pair cloned into the parameters of both SAs, AES-256-GCM, each SA boxed. Sizes are
//! checked with `size_of` (the box of each SA is that large, plus malloc's 8 bytes), the
//! sharing of the selectors by where they live. The AES-GCM contexts live in aws-lc's heap
//! and the replay bitmap in a block of its own; neither is counted here.

use std::net::IpAddr;

use ferrosec_esp::{
    InboundSa, LifetimeLimits, OutboundSa, Path, SaParams, Selectors, Spi, TrafficSelector,
    UdpEncap,
};

mod common;

/// The selectors `ike-loadgen` negotiates: one /32 on each side.
fn host(a: [u8; 4]) -> TrafficSelector {
    TrafficSelector::from_prefix(IpAddr::from(a), 32).unwrap()
}

fn pair() -> (OutboundSa, InboundSa) {
    let suite = common::gcm256();
    let (encr_key, integ_key) = common::keys(&suite, 7);
    let selectors = Selectors::new(host([10, 0, 0, 1]), host([10, 128, 0, 1]));
    let params = |spi| SaParams {
        spi: Spi(spi),
        suite,
        encr_key: encr_key.clone(),
        integ_key: integ_key.clone(),
        esn: false,
        path: Path {
            local: IpAddr::from([198, 51, 100, 1]),
            remote: IpAddr::from([192, 0, 2, 1]),
            udp: Some(UdpEncap {
                local_port: 4500,
                remote_port: 4500,
            }),
        },
        selectors: selectors.clone(),
        lifetime: LifetimeLimits::default(),
    };
    let out = OutboundSa::new(params(0x1000)).unwrap();
    let inb = InboundSa::new(params(0x2000), 1024).unwrap();
    (out, inb)
}

/// Both SAs of a pair read one copy of the selectors (one block of 96 bytes for the four
/// vectors of two before).
#[test]
fn the_sas_of_a_pair_share_their_selectors() {
    let (out, inb) = pair();
    let (o, i) = (out.selectors(), inb.selectors());
    assert_eq!(o, i);
    assert!(std::ptr::eq(o.local().as_ptr(), i.local().as_ptr()));
    assert!(std::ptr::eq(o.remote().as_ptr(), i.remote().as_ptr()));
    // One allocation: the remote selectors follow the local ones.
    assert!(std::ptr::eq(
        o.local().as_ptr_range().end,
        o.remote().as_ptr()
    ));
    assert_eq!(size_of::<Selectors>(), 24);
}

/// The SAs' own boxes (without the crypto context behind a pointer and the replay bitmap):
/// 424 and 400 bytes while each kept 128 bytes of drop counters, 48 of selector vectors and
/// 64 of lifetime limits.
#[test]
fn sa_structures_stay_small() {
    let (out, inb) = pair();
    eprintln!(
        "InboundSa {} B, OutboundSa {} B",
        size_of::<InboundSa>(),
        size_of::<OutboundSa>()
    );
    assert!(size_of::<InboundSa>() <= 240, "{}", size_of::<InboundSa>());
    assert!(
        size_of::<OutboundSa>() <= 216,
        "{}",
        size_of::<OutboundSa>()
    );
    assert_eq!(size_of_val(out.stats()), 16);
    assert_eq!(size_of_val(inb.stats()), 16);
}
