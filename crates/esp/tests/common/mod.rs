//! Helpers shared by the integration tests: suites, SA pairs and inner packets.
#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;

use ferrosec_crypto::{Encryption, Integrity};
use ferrosec_esp::{
    EspSuite, InboundSa, LifetimeLimits, OutboundSa, Path, SaParams, Secret, Selectors, Spi,
    TrafficSelector, UdpEncap,
};

pub const LOCAL_NET: [u8; 4] = [10, 0, 0, 0];
pub const REMOTE_NET: [u8; 4] = [10, 1, 0, 0];

/// Every ESP suite the crypto provider offers: AEADs alone, the rest with every integrity.
pub fn all_suites() -> Vec<EspSuite> {
    let aeads = [
        Encryption::AesGcm {
            key_len: 16,
            icv_len: 8,
        },
        Encryption::AesGcm {
            key_len: 16,
            icv_len: 12,
        },
        Encryption::AesGcm {
            key_len: 16,
            icv_len: 16,
        },
        Encryption::AesGcm {
            key_len: 24,
            icv_len: 16,
        },
        Encryption::AesGcm {
            key_len: 32,
            icv_len: 16,
        },
        Encryption::AesCcm {
            key_len: 16,
            icv_len: 8,
        },
        Encryption::AesCcm {
            key_len: 16,
            icv_len: 12,
        },
        Encryption::AesCcm {
            key_len: 32,
            icv_len: 16,
        },
        Encryption::ChaCha20Poly1305,
    ];
    let others = [
        Encryption::AesCbc { key_len: 16 },
        Encryption::AesCbc { key_len: 24 },
        Encryption::AesCbc { key_len: 32 },
        Encryption::AesCtr { key_len: 16 },
        Encryption::AesCtr { key_len: 32 },
        Encryption::TripleDes,
        Encryption::Des,
        Encryption::Null,
    ];
    let mut v: Vec<EspSuite> = aeads
        .iter()
        .map(|&e| EspSuite::new(e, None).unwrap())
        .collect();
    for e in others {
        for i in Integrity::ALL {
            v.push(EspSuite::new(e, Some(i)).unwrap());
        }
    }
    v
}

pub fn gcm256() -> EspSuite {
    EspSuite::new(
        Encryption::AesGcm {
            key_len: 32,
            icv_len: 16,
        },
        None,
    )
    .unwrap()
}

pub fn cbc_sha256() -> EspSuite {
    EspSuite::new(
        Encryption::AesCbc { key_len: 32 },
        Some(Integrity::HmacSha256_128),
    )
    .unwrap()
}

pub fn keys(suite: &EspSuite, seed: u8) -> (Secret, Secret) {
    let e: Vec<u8> = (0..suite.encr_keymat_len())
        .map(|i| seed ^ i as u8)
        .collect();
    let i: Vec<u8> = (0..suite.integ_key_len())
        .map(|i| seed.wrapping_add(i as u8))
        .collect();
    (Secret::new(e), Secret::new(i))
}

pub fn path(udp: bool) -> Path {
    Path {
        local: IpAddr::from([192, 0, 2, 1]),
        remote: IpAddr::from([198, 51, 100, 1]),
        udp: udp.then_some(UdpEncap {
            local_port: 4500,
            remote_port: 4500,
        }),
    }
}

/// Selectors for our side (`local`) and the peer's (`remote`): the IPv4 /16 and the IPv6
/// /64 `fd00:N::` where N is the second octet of the IPv4 network.
pub fn selectors(local: [u8; 4], remote: [u8; 4]) -> Selectors {
    let v6 = |net: [u8; 4]| {
        let a: std::net::Ipv6Addr = format!("fd00:{:x}::", net[1]).parse().unwrap();
        TrafficSelector::from_prefix(a.into(), 64).unwrap()
    };
    Selectors::from_lists(
        &[
            TrafficSelector::from_prefix(local.into(), 16).unwrap(),
            v6(local),
        ],
        &[
            TrafficSelector::from_prefix(remote.into(), 16).unwrap(),
            v6(remote),
        ],
    )
}

pub fn params(
    suite: EspSuite,
    spi: u32,
    esn: bool,
    sel: Selectors,
    life: LifetimeLimits,
) -> SaParams {
    let (encr_key, integ_key) = keys(&suite, spi as u8);
    SaParams {
        spi: Spi(spi),
        suite,
        encr_key,
        integ_key,
        esn,
        path: path(false),
        selectors: sel,
        lifetime: life,
    }
}

/// The sender's outbound SA and the receiver's matching inbound SA.
pub fn pair(suite: EspSuite, esn: bool, window: u32) -> (OutboundSa, InboundSa) {
    pair_with(
        suite,
        esn,
        window,
        LifetimeLimits::default(),
        LifetimeLimits::default(),
    )
}

pub fn pair_with(
    suite: EspSuite,
    esn: bool,
    window: u32,
    out_life: LifetimeLimits,
    in_life: LifetimeLimits,
) -> (OutboundSa, InboundSa) {
    let out = OutboundSa::new(params(
        suite,
        0x1000,
        esn,
        selectors(LOCAL_NET, REMOTE_NET),
        out_life,
    ))
    .unwrap();
    // The receiver's local side is the sender's remote side.
    let inb = InboundSa::new(
        params(
            suite,
            0x1000,
            esn,
            selectors(REMOTE_NET, LOCAL_NET),
            in_life,
        ),
        window,
    )
    .unwrap();
    (out, inb)
}

/// An IPv4 UDP packet with `payload` bytes of data.
pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let total = 28 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    p
}

/// An IPv6 TCP packet (20-byte TCP header) with `payload` bytes of data.
pub fn ipv6_tcp(src: &str, dst: &str, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let plen = 20 + payload;
    let mut p = vec![0u8; 40 + plen];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    p[6] = 6;
    p[7] = 64;
    let s: std::net::Ipv6Addr = src.parse().unwrap();
    let d: std::net::Ipv6Addr = dst.parse().unwrap();
    p[8..24].copy_from_slice(&s.octets());
    p[24..40].copy_from_slice(&d.octets());
    p[40..42].copy_from_slice(&sport.to_be_bytes());
    p[42..44].copy_from_slice(&dport.to_be_bytes());
    p[52] = 0x50;
    for (i, b) in p[60..].iter_mut().enumerate() {
        *b = (i * 13) as u8;
    }
    p
}

/// A packet from the sender's local network to its remote network.
pub fn outbound_packet(len_payload: usize) -> Vec<u8> {
    ipv4_udp([10, 0, 3, 4], [10, 1, 5, 6], 40000, 53, len_payload)
}
