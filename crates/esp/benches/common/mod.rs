//! What the ESP benchmarks share: the suites measured, SA parameters, an inner packet.

use std::net::IpAddr;

use aws_lc_rs::aead as lc;
use ferrosec_crypto::{Encryption, EspSuite, Integrity, Secret};
use ferrosec_esp::{LifetimeLimits, Path, SaParams, Selectors, Spi, TrafficSelector};

pub(crate) fn suites() -> Vec<(&'static str, EspSuite, Option<&'static lc::Algorithm>)> {
    let s = |e, i| EspSuite::new(e, i).unwrap();
    vec![
        (
            "aes128-gcm16",
            s(
                Encryption::AesGcm {
                    key_len: 16,
                    icv_len: 16,
                },
                None,
            ),
            Some(&lc::AES_128_GCM),
        ),
        (
            "aes256-gcm16",
            s(
                Encryption::AesGcm {
                    key_len: 32,
                    icv_len: 16,
                },
                None,
            ),
            Some(&lc::AES_256_GCM),
        ),
        (
            "chacha20-poly1305",
            s(Encryption::ChaCha20Poly1305, None),
            Some(&lc::CHACHA20_POLY1305),
        ),
        (
            "aes128-ccm16",
            s(
                Encryption::AesCcm {
                    key_len: 16,
                    icv_len: 16,
                },
                None,
            ),
            None,
        ),
        (
            "aes256-cbc-sha256",
            s(
                Encryption::AesCbc { key_len: 32 },
                Some(Integrity::HmacSha256_128),
            ),
            None,
        ),
    ]
}

pub(crate) fn params(suite: EspSuite, local: [u8; 4], remote: [u8; 4]) -> SaParams {
    let net = |a: [u8; 4]| TrafficSelector::from_prefix(IpAddr::from(a), 16).unwrap();
    SaParams {
        spi: Spi(0x1000),
        suite,
        encr_key: Secret::new(vec![7; suite.encr_keymat_len()]),
        integ_key: Secret::new(vec![9; suite.integ_key_len()]),
        esn: true,
        path: Path {
            local: IpAddr::from([192, 0, 2, 1]),
            remote: IpAddr::from([192, 0, 2, 2]),
            udp: None,
        },
        selectors: Selectors::new(net(local), net(remote)),
        lifetime: LifetimeLimits::default(),
    }
}

/// An IPv4 UDP packet of exactly `len` bytes from 10.0.0.1 to 10.1.0.1.
pub(crate) fn inner_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0xabu8; len];
    p[..20].fill(0);
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 1, 0, 1]);
    p[20..24].copy_from_slice(&[0x9c, 0x40, 0, 53]);
    p
}
