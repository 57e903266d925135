//! The ESP receive path with arbitrary input, before and after authentication.
//!
//! Mode 0: the bytes as an ESP packet for an AES-GCM SA (header, replay and ICV checks).
//! Mode 1: the bytes as the *plaintext* (inner packet, padding, pad length, next header) of a
//! NULL/HMAC-SHA-256 SA, with a valid ICV computed here, so that everything after the ICV check
//! (padding, next header, inner IP header, selector check) sees fuzzer-chosen content.
//! Mode 2: the bytes as an inner packet: encapsulate, then decapsulate must give them back (up to
//! the inner header's total length) or refuse only a malformed inner header.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrosec_crypto::Encryption;
use ferrosec_esp::{
    DropReason, EspSuite, InboundSad, Integrity, LifetimeLimits, OutboundSa, Path, SaParams,
    Secret, Selectors, Spi, TrafficSelector,
};
use libfuzzer_sys::fuzz_target;

const SPI: u32 = 0x1000;

fn v4_any() -> TrafficSelector {
    TrafficSelector::from_prefix(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap()
}

fn v6_any() -> TrafficSelector {
    TrafficSelector::from_prefix(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).unwrap()
}

fn params(suite: EspSuite) -> SaParams {
    let any = || Selectors::from_lists(&[v4_any(), v6_any()], &[v4_any(), v6_any()]);
    SaParams {
        spi: Spi(SPI),
        encr_key: Secret::new(vec![0x11; suite.encr_keymat_len()]),
        integ_key: Secret::new(vec![0x22; suite.integ_key_len()]),
        suite,
        esn: false,
        path: Path {
            local: IpAddr::from([192, 0, 2, 1]),
            remote: IpAddr::from([198, 51, 100, 1]),
            udp: None,
        },
        selectors: any(),
        lifetime: LifetimeLimits::default(),
    }
}

fn sad(suite: EspSuite) -> InboundSad {
    let mut sad = InboundSad::new();
    sad.insert(ferrosec_esp::InboundSa::new(params(suite), 64).unwrap());
    sad
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let gcm = EspSuite::new(
                Encryption::AesGcm {
                    key_len: 16,
                    icv_len: 16,
                },
                None,
            )
            .unwrap();
            let mut packet = rest.to_vec();
            let _ = sad(gcm).decapsulate_in_place(&mut packet);
        }
        1 => {
            let suite = EspSuite::new(Encryption::Null, Some(Integrity::HmacSha256_128)).unwrap();
            let mut packet = Vec::with_capacity(rest.len() + 24);
            packet.extend_from_slice(&SPI.to_be_bytes());
            packet.extend_from_slice(&1u32.to_be_bytes());
            packet.extend_from_slice(rest);
            let key = Integrity::HmacSha256_128.key(&[0x22; 32]).unwrap();
            let mut icv = [0u8; 16];
            key.compute(&[&packet], &mut icv).unwrap();
            packet.extend_from_slice(&icv);
            let _ = sad(suite).decapsulate_in_place(&mut packet);
        }
        _ => {
            let gcm = EspSuite::new(
                Encryption::AesGcm {
                    key_len: 32,
                    icv_len: 16,
                },
                None,
            )
            .unwrap();
            let mut out = OutboundSa::new(params(gcm)).unwrap();
            let mut buf = vec![0u8; out.packet_len(rest.len())];
            if out.encapsulate(rest, &mut buf).is_ok() {
                // The sender does not vet the inner packet beyond its IP version and length (the
                // kernel only writes IP packets to a TUN device); the receiver checks the inner
                // header. Our own packet must come back whole or fail only that check.
                match sad(gcm).decapsulate_in_place(&mut buf) {
                    // Bytes past the inner header's total length are TFC padding and are cut off.
                    Ok(d) => assert!(!d.inner.is_empty() && rest.starts_with(&buf[d.inner])),
                    Err(why) => assert_eq!(why, DropReason::MalformedInner),
                }
            }
        }
    }
});
