//! Whole-packet RFC examples through the public API.
//!
//! - RFC 7634 Appendix A: an ESP packet protected with ChaCha20-Poly1305, checked through
//!   [`EspSa::seal`] / [`EspSa::open`].
//! - RFC 7634 Appendix B: an IKEv2 SK payload with ChaCha20-Poly1305, through
//!   [`IkeSkCrypter`].
//! - RFC 5903 §8.3: the 521-bit random ECP group example, through
//!   `KeyExchangeAlgorithm::start` with an RNG replaying the RFC's private values.

use ferrosec_crypto::{Encryption, EspSuite, IkeSkCrypter, Provider, Rng, Secret, ids};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

struct Replay(Vec<u8>);

impl Rng for Replay {
    fn fill(&mut self, buf: &mut [u8]) {
        assert_eq!(buf.len(), self.0.len());
        buf.copy_from_slice(&self.0);
    }
}

/// RFC 7634 Appendix A: KEYMAT 80..9f | salt a0a1a2a3, SPI 0x01020304, sequence number 5,
/// IV 1011121314151617; the plaintext is an IPv4 ICMP packet followed by the ESP trailer
/// (pad 01 02, pad length 2, next header 4).
#[test]
fn rfc7634_appendix_a_esp() {
    let suite = EspSuite::new(Encryption::ChaCha20Poly1305, None).unwrap();
    let keymat = h("80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f
                    90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f a0 a1 a2 a3");
    let sa = suite.key(&Secret::new(keymat), &Secret::default()).unwrap();
    let plaintext = h("45 00 00 54 a6 f2 00 00 40 01 e7 78 c6 33 64 05
                       c0 00 02 05 08 00 5b 7a 3a 08 00 00 55 3b ec 10
                       00 07 36 27 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13
                       14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23
                       24 25 26 27 28 29 2a 2b 2c 2d 2e 2f 30 31 32 33
                       34 35 36 37 01 02 02 04");
    let esp_packet = h("01 02 03 04 00 00 00 05 10 11 12 13 14 15 16 17
                        24 03 94 28 b9 7f 41 7e 3c 13 75 3a 4f 05 08 7b
                        67 c3 52 e6 a7 fa b1 b9 82 d4 66 ef 40 7a e5 c6
                        14 ee 80 99 d5 28 44 eb 61 aa 95 df ab 4c 02 f7
                        2a a7 1e 7c 4c 4f 64 c9 be fe 2f ac c6 38 e8 f3
                        cb ec 16 3f ac 46 9b 50 27 73 f6 fb 94 e6 64 da
                        91 65 b8 28 29 f6 41 e0 76 aa a8 26 6b 7f b0 f7
                        b1 1b 36 99 07 e1 ad 43");

    // Open: the whole packet decrypts in place to the RFC's plaintext.
    let mut pkt = esp_packet.clone();
    let r = sa.open(&mut pkt, 5, false).unwrap();
    assert_eq!(r, 16..16 + plaintext.len());
    assert_eq!(&pkt[r], &plaintext[..]);

    // Seal: the RFC's IV is not a sequence number, so seal with the IV the RFC used by giving
    // seq = 0x1011121314151617 while the header carries sequence number 5 (the AAD is taken
    // from the header, the IV from `seq`), and compare the whole packet.
    let mut out = [&esp_packet[..8], &[0u8; 8], &plaintext[..], &[0u8; 16]].concat();
    sa.seal(&mut out, 0x1011_1213_1415_1617, false).unwrap();
    assert_eq!(hex::encode(&out), hex::encode(&esp_packet));

    // Any bit flipped anywhere (header, IV, ciphertext, ICV) is refused.
    for i in 0..esp_packet.len() {
        let mut bad = esp_packet.clone();
        bad[i] ^= 0x01;
        assert!(sa.open(&mut bad, 5, false).is_err(), "byte {i}");
    }
}

/// RFC 7634 Appendix B: the IKEv2 example — IKE header and SK payload header as AAD, IV
/// 1011121314151617, inner payloads 00 00 00 0c 00 00 40 01 00 00 00 0a followed by the pad
/// length byte 00.
#[test]
fn rfc7634_appendix_b_ike() {
    let keymat = h("80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f
                    90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f a0 a1 a2 a3");
    let c = IkeSkCrypter::new(
        Encryption::ChaCha20Poly1305,
        &Secret::new(keymat),
        None,
        &Secret::default(),
    )
    .unwrap();
    let aad = h("c0 c1 c2 c3 c4 c5 c6 c7 d0 d1 d2 d3 d4 d5 d6 d7
                 2e 20 25 00 00 00 00 09 00 00 00 45 29 00 00 29");
    let inner = h("00 00 00 0c 00 00 40 01 00 00 00 0a");
    let body = h("10 11 12 13 14 15 16 17
                  61 03 94 70 1f 8d 01 7f 7c 12 92 48 89
                  6b 71 bf e2 52 36 ef d7 cd c6 70 66 90 63 15 b2");
    assert_eq!(c.encrypted_len(inner.len()), body.len());
    let sealed = c
        .seal(&mut Replay(h("10 11 12 13 14 15 16 17")), &aad, &inner)
        .unwrap();
    assert_eq!(hex::encode(&sealed), hex::encode(&body));
    assert_eq!(c.open(&aad, &body).unwrap(), inner);
}

/// RFC 5903 §8.3 (521-bit random ECP group): both key pairs from the RFC's private values,
/// the KE payloads gix | giy and grx | gry, and the shared secret girx from both sides.
#[test]
fn rfc5903_p521() {
    let kx = Provider::default().key_exchange(ids::ke::ECP_521).unwrap();
    let i = h(
        "0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A0
               95AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D4A52",
    );
    let r = h(
        "0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E
               9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB151685EB9",
    );
    let gi = h(
        "0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBE
                E1E3BF42E00B8E380AEAE57C2D107564941885942AF5A7F4601723C4195D176CED3E
                017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10A
                D8A788015AC405D7799DC75E7B7D5B6CF2261A6A7F1507438BF01BEB6CA3926F9582",
    );
    let gr = h(
        "00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A21
                9B97C356436ADC6E95BB0352F6BE64A6C2912D4EF2D0433CED2B6171640012D9460F
                015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87
                220B6536C5C408A1D2AEBB8E86D678AE49CB57091F4732296579AB44FCD17F0FC56A",
    );
    let girx = h(
        "01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04
                  D1427E73CA4BAA240A34786859810C06B3C715A3A8CC3151F2BEE417996D19F3DDEA",
    );
    let a = kx.start(&mut Replay(i)).unwrap();
    assert_eq!(hex::encode(a.public_key()), hex::encode(&gi));
    let b = kx.start(&mut Replay(r.clone())).unwrap();
    assert_eq!(hex::encode(b.public_key()), hex::encode(&gr));
    assert_eq!(a.complete(&gr).unwrap().expose(), &girx[..]);
    assert_eq!(b.complete(&gi).unwrap().expose(), &girx[..]);
    let resp = kx.respond(&mut Replay(r), &gi).unwrap();
    assert_eq!(resp.public, gr);
    assert_eq!(resp.shared.expose(), &girx[..]);
}
