//! The AH receive path (RFC 4302) with arbitrary input.
//!
//! Mode 0: the bytes as a whole received IP packet (IPv4 or IPv6 outer header, AH, inner packet)
//! for an HMAC-SHA-256 SA: outer header, AH header, replay and ICV checks.
//! Mode 1: the bytes as what an IPv6 raw socket hands over (AH onward): the data plane rebuilds
//! the IPv6 header the ICV covers, then verifies.
//! Mode 2: the bytes as an inner packet with a valid ICV: protect over IPv4 or IPv6 (byte 0 of
//! the rest picks), then the receiver must give it back (up to the inner header's total length)
//! or refuse only what the inner header check refuses.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrosec_esp::{
    AhInboundSa, AhOutboundSa, AhParams, DropReason, InboundSad, Integrity, LifetimeLimits, Path,
    Secret, Selectors, Spi, TrafficSelector,
};
use libfuzzer_sys::fuzz_target;

const SPI: u32 = 0x5100;

fn any() -> Selectors {
    let v4 = TrafficSelector::from_prefix(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap();
    let v6 = TrafficSelector::from_prefix(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).unwrap();
    Selectors::from_lists(&[v4, v6], &[v4, v6])
}

/// One direction's parameters; `rx` swaps the addresses (the receiver's view).
fn params(v6: bool, rx: bool) -> AhParams {
    let (mut local, mut remote): (IpAddr, IpAddr) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        )
    } else {
        (
            IpAddr::from([192, 0, 2, 1]),
            IpAddr::from([198, 51, 100, 1]),
        )
    };
    if rx {
        std::mem::swap(&mut local, &mut remote);
    }
    AhParams {
        spi: Spi(SPI),
        integrity: Integrity::HmacSha256_128,
        key: Secret::new(vec![0x33; 32]),
        esn: false,
        path: Path {
            local,
            remote,
            udp: None,
        },
        selectors: any(),
        lifetime: LifetimeLimits::default(),
    }
}

fn sad(v6: bool) -> InboundSad<AhInboundSa> {
    let mut sad = InboundSad::new();
    sad.insert(AhInboundSa::new(params(v6, true), 64).unwrap());
    sad
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let v6 = rest.first().is_some_and(|b| b >> 4 == 6);
            let _ = sad(v6).decapsulate_in_place(&mut rest.to_vec());
        }
        1 => {
            let (IpAddr::V6(src), IpAddr::V6(dst)) = (
                params(true, false).path.local,
                params(true, false).path.remote,
            ) else {
                return;
            };
            if let Some(h) = ferrosec_esp::ipv6_outer_header(src, dst, rest.len()) {
                let mut packet = [&h[..], rest].concat();
                let _ = sad(true).decapsulate_in_place(&mut packet);
            }
        }
        _ => {
            let Some((&pick, inner)) = rest.split_first() else {
                return;
            };
            let v6 = pick & 1 == 1;
            let mut out = AhOutboundSa::new(params(v6, false)).unwrap();
            let mut buf = vec![0u8; out.packet_len(inner.len())];
            let Ok(t) = out.encapsulate(inner, &mut buf) else {
                return;
            };
            let mut packet = t.packet.to_vec();
            match sad(v6).decapsulate_in_place(&mut packet) {
                Ok(d) => assert!(!d.inner.is_empty() && inner.starts_with(&packet[d.inner])),
                Err(why) => assert!(
                    matches!(why, DropReason::MalformedInner | DropReason::BadNextHeader),
                    "{why:?}"
                ),
            }
        }
    }
});
