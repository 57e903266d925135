//! Malformed input: every case is a clean error, never a panic.

use ferrosec_wire::Error;
use ferrosec_wire::ikev2::{Message, PayloadType, parse_payloads};

/// An IKE header with the given next payload and a Length field equal to 28 + body.len().
fn msg(next: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x11; 16];
    v.extend_from_slice(&[next, 0x20, 35, 0x08, 0, 0, 0, 1]);
    v.extend_from_slice(&((28 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn set_len(v: &mut [u8], len: u32) {
    v[24..28].copy_from_slice(&len.to_be_bytes());
}

/// A valid message: Nonce (4 bytes) then Vendor ID (2 bytes).
fn valid() -> Vec<u8> {
    msg(40, &[43, 0, 0, 8, 1, 2, 3, 4, 0, 0, 0, 6, 0xaa, 0xbb])
}

#[test]
fn the_valid_base_message_parses() {
    let v = valid();
    let m = Message::parse(&v).unwrap();
    assert_eq!(m.payloads.len(), 2);
}

#[test]
fn every_truncation_is_an_error() {
    let v = valid();
    for n in 0..v.len() {
        assert!(
            Message::parse(&v[..n]).is_err(),
            "prefix of {n} bytes parsed"
        );
    }
}

#[test]
fn header_shorter_than_28_bytes() {
    assert_eq!(
        Message::parse(&[0u8; 27]),
        Err(Error::Truncated("IKE header"))
    );
}

#[test]
fn length_field_overruns_the_datagram() {
    let mut v = valid();
    let n = v.len() as u32;
    set_len(&mut v, n + 1);
    assert_eq!(Message::parse(&v), Err(Error::Truncated("IKE message")));
}

#[test]
fn length_field_underruns_the_datagram() {
    let mut v = valid();
    let n = v.len() as u32;
    set_len(&mut v, n - 1);
    assert!(matches!(Message::parse(&v), Err(Error::TrailingData(_))));
    set_len(&mut v, 27);
    assert_eq!(Message::parse(&v), Err(Error::BadLength("IKE header")));
}

#[test]
fn length_field_claiming_more_than_64k() {
    let mut v = valid();
    set_len(&mut v, 65536);
    assert_eq!(
        Message::parse(&v),
        Err(Error::TooLong("IKE message length"))
    );
    set_len(&mut v, u32::MAX);
    assert_eq!(
        Message::parse(&v),
        Err(Error::TooLong("IKE message length"))
    );
}

#[test]
fn payload_length_overruns_the_message() {
    let v = msg(40, &[0, 0, 0, 9, 1, 2, 3, 4]);
    assert_eq!(Message::parse(&v), Err(Error::Truncated("payload")));
    // The maximal u16 payload length in a short message.
    let v = msg(40, &[0, 0, 0xff, 0xff, 1, 2, 3, 4]);
    assert_eq!(Message::parse(&v), Err(Error::Truncated("payload")));
}

#[test]
fn payload_length_underruns_the_payload() {
    // Nonce length 6 but 8 bytes follow and the chain says it is the last payload.
    let v = msg(40, &[0, 0, 0, 6, 1, 2, 3, 4]);
    assert_eq!(Message::parse(&v), Err(Error::TrailingData("last payload")));
}

#[test]
fn zero_length_payload() {
    for len in 0..4u8 {
        let v = msg(40, &[0, 0, 0, len]);
        assert_eq!(
            Message::parse(&v),
            Err(Error::BadLength("payload")),
            "length {len}"
        );
    }
}

#[test]
fn zero_length_body_below_a_payloads_minimum() {
    // A KE payload of 4 bytes (no DH group field) and an ID payload without its type.
    assert_eq!(
        Message::parse(&msg(34, &[0, 0, 0, 4])),
        Err(Error::Truncated("KE"))
    );
    assert_eq!(
        Message::parse(&msg(35, &[0, 0, 0, 4])),
        Err(Error::Truncated("ID"))
    );
    assert_eq!(
        Message::parse(&msg(41, &[0, 0, 0, 4])),
        Err(Error::Truncated("Notify"))
    );
}

#[test]
fn chain_ends_early() {
    // The Nonce says a Vendor ID follows, but the message ends.
    let v = msg(40, &[43, 0, 0, 8, 1, 2, 3, 4]);
    assert_eq!(Message::parse(&v), Err(Error::Truncated("payload header")));
    // Only part of the next generic header.
    let v = msg(40, &[43, 0, 0, 8, 1, 2, 3, 4, 0, 0]);
    assert_eq!(Message::parse(&v), Err(Error::Truncated("payload header")));
}

#[test]
fn chain_runs_past_the_message() {
    // Next Payload NONE, but bytes follow.
    let v = msg(40, &[0, 0, 0, 8, 1, 2, 3, 4, 43, 0, 0, 4]);
    assert_eq!(Message::parse(&v), Err(Error::TrailingData("last payload")));
}

#[test]
fn sk_not_last() {
    // SK (next = IDi) followed by a Vendor ID.
    let v = msg(46, &[35, 0, 0, 8, 9, 9, 9, 9, 0, 0, 0, 6, 1, 2]);
    assert_eq!(Message::parse(&v), Err(Error::SkNotLast));
    // SKF likewise.
    let v = msg(53, &[35, 0, 0, 12, 0, 1, 0, 2, 9, 9, 9, 9, 0, 0, 0, 4]);
    assert_eq!(Message::parse(&v), Err(Error::SkNotLast));
}

#[test]
fn sk_last_is_fine_even_after_other_payloads() {
    let v = msg(41, &[46, 0, 0, 8, 0, 0, 0x40, 0x06, 35, 0, 0, 6, 1, 2]);
    let m = Message::parse(&v).unwrap();
    assert_eq!(m.sk_layout().unwrap().next_payload, PayloadType::IDI);
}

#[test]
fn encrypted_inside_decrypted_content() {
    let inner = [35, 0, 0, 6, 1, 2];
    assert_eq!(
        parse_payloads(PayloadType::SK, &inner),
        Err(Error::NestedEncrypted)
    );
    // An ID payload whose Next Payload is SK.
    let inner = [46, 0, 0, 8, 2, 0, 0, 0, 0, 0, 0, 5, 1];
    assert_eq!(
        parse_payloads(PayloadType::IDI, &inner),
        Err(Error::NestedEncrypted)
    );
}

#[test]
fn sa_substructure_errors() {
    // Proposal length 3 (< 4).
    let sa = [0, 0, 0, 12, 0, 0, 0, 3, 1, 1, 0, 0];
    assert_eq!(
        Message::parse(&msg(33, &sa)),
        Err(Error::BadLength("proposal"))
    );
    // Proposal claims 2 transforms, holds none.
    let sa = [0, 0, 0, 12, 0, 0, 0, 8, 1, 1, 0, 2];
    assert_eq!(
        Message::parse(&msg(33, &sa)),
        Err(Error::CountMismatch("proposal transforms"))
    );
    // Proposal's SPI size runs past the proposal.
    let sa = [0, 0, 0, 12, 0, 0, 0, 8, 1, 3, 4, 0];
    assert_eq!(
        Message::parse(&msg(33, &sa)),
        Err(Error::Truncated("proposal SPI"))
    );
    // Last Substruc says "more" but this is the last proposal.
    let sa = [0, 0, 0, 12, 2, 0, 0, 8, 1, 1, 0, 0];
    assert_eq!(
        Message::parse(&msg(33, &sa)),
        Err(Error::Malformed("proposal Last Substruc"))
    );
    // A transform attribute whose TLV length runs past the transform.
    let sa = [
        0, 0, 0, 24, 0, 0, 0, 20, 1, 1, 0, 1, //
        0, 0, 0, 12, 1, 0, 0, 12, 0, 14, 0, 9,
    ];
    assert_eq!(
        Message::parse(&msg(33, &sa)),
        Err(Error::Truncated("data attribute value"))
    );
}

#[test]
fn ts_errors() {
    // TS count 2, one selector.
    let ts = [
        0, 0, 0, 24, 2, 0, 0, 0, 7, 0, 0, 16, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255,
    ];
    assert_eq!(
        Message::parse(&msg(44, &ts)),
        Err(Error::CountMismatch("traffic selectors"))
    );
    // IPv4 selector with selector length 20.
    let ts = [
        0, 0, 0, 28, 1, 0, 0, 0, 7, 0, 0, 20, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255, 0, 0,
        0, 0,
    ];
    assert_eq!(
        Message::parse(&msg(44, &ts)),
        Err(Error::BadLength("TS_IPV4_ADDR_RANGE"))
    );
    // Selector length 2.
    let ts = [0, 0, 0, 12, 1, 0, 0, 0, 7, 0, 0, 2];
    assert_eq!(
        Message::parse(&msg(44, &ts)),
        Err(Error::BadLength("traffic selector"))
    );
}

#[test]
fn delete_count_errors() {
    // 2 SPIs of 4 bytes announced, 4 bytes present.
    let d = [0, 0, 0, 12, 3, 4, 0, 2, 1, 2, 3, 4];
    assert_eq!(
        Message::parse(&msg(42, &d)),
        Err(Error::CountMismatch("Delete SPIs"))
    );
    let d = [0, 0, 0, 8, 1, 0, 0, 2];
    assert_eq!(
        Message::parse(&msg(42, &d)),
        Err(Error::CountMismatch("Delete SPIs of size zero"))
    );
}

#[test]
fn notify_spi_size_overrun() {
    let n = [0, 0, 0, 10, 3, 8, 0x40, 0x09, 1, 2];
    assert_eq!(
        Message::parse(&msg(41, &n)),
        Err(Error::Truncated("Notify SPI"))
    );
}

#[test]
fn many_tiny_payloads_are_bounded_by_the_message() {
    // 16000 Vendor ID payloads of 4 bytes each: parses, one Vec entry per 4 bytes.
    let n = 16000;
    let mut body = Vec::new();
    for i in 0..n {
        body.extend_from_slice(&[if i + 1 == n { 0 } else { 43 }, 0, 0, 4]);
    }
    let big = msg(43, &body);
    let m = Message::parse(&big).unwrap();
    assert_eq!(m.payloads.len(), n);
    // One more payload goes past 64 KiB.
    body.extend_from_slice(&[0; 4 * 400]);
    assert!(Message::parse(&msg(43, &body)).is_err());
}
