//! AES-256-GCM seal + open of a 1400-byte ESP packet, N times, through the provider or through
//! aws-lc-rs directly — for counting instructions with callgrind, which is repeatable whatever
//! else the machine is doing (see the crate README, "The 10% target").
//!
//! ```text
//! cargo build --release -p ferrosec-crypto --example gcm_icount
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/gcm_icount provider 20000
//! ```
//!
//! Instructions per iteration = (count at N2 − count at N1) / (N2 − N1), which cancels start-up
//! and key setup.

use std::hint::black_box;

use aws_lc_rs::aead as lc;
use ferrosec_crypto::{Provider, Secret};

const PAYLOAD: usize = 1400;

fn provider(n: u64) {
    let suite = Provider::default().esp(20, Some(256), None).unwrap();
    let sa = suite
        .key(&Secret::from_slice(&[7; 36]), &Secret::default())
        .unwrap();
    // SPI | Seq | IV | payload | ICV
    let mut pkt = vec![0x5au8; 8 + 8 + PAYLOAD + 16];
    for seq in 1..=n {
        pkt[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        sa.seal(black_box(&mut pkt), seq, false).unwrap();
        black_box(sa.open(black_box(&mut pkt), seq, false).unwrap());
    }
}

/// The same work with aws-lc-rs alone: nonce = salt | seq, AAD = SPI | seq, tag after the
/// payload, in place.
fn direct(n: u64) {
    let key = lc::LessSafeKey::new(lc::UnboundKey::new(&lc::AES_256_GCM, &[7; 32]).unwrap());
    let salt = [7u8; 4];
    let mut pkt = vec![0x5au8; 8 + 8 + PAYLOAD + 16];
    for seq in 1..=n {
        let pkt = black_box(&mut pkt[..]);
        pkt[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        pkt[8..16].copy_from_slice(&seq.to_be_bytes());
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&salt);
        nonce[4..].copy_from_slice(&seq.to_be_bytes());
        let mut aad = [0u8; 8];
        aad.copy_from_slice(&pkt[..8]);
        let (head, rest) = pkt.split_at_mut(16);
        let (body, icv) = rest.split_at_mut(PAYLOAD);
        let tag = key
            .seal_in_place_separate_tag(
                lc::Nonce::assume_unique_for_key(nonce),
                lc::Aad::from(aad),
                body,
            )
            .unwrap();
        icv.copy_from_slice(tag.as_ref());
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&salt);
        nonce[4..].copy_from_slice(&head[8..16]);
        let mut aad = [0u8; 8];
        aad.copy_from_slice(&head[..8]);
        key.open_in_place_separate_tag(
            lc::Nonce::assume_unique_for_key(nonce),
            lc::Aad::from(aad),
            icv,
            body,
        )
        .unwrap();
        black_box(&pkt);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    match path.as_str() {
        "provider" => provider(n),
        "direct" => direct(n),
        _ => eprintln!("usage: gcm_icount provider|direct N"),
    }
}
