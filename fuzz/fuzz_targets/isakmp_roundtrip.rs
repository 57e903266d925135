//! ISAKMP decode -> emit -> decode must give the same message, and emit is canonical.
#![no_main]

use ferrosec_wire::isakmp::{
    Message, PayloadType, emit_payloads, parse_payloads, parse_payloads_padded, payloads_len,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let bytes = m.to_vec().expect("a parsed message must emit");
        assert_eq!(bytes.len(), m.buffer_len());
        let again = Message::parse(&bytes).expect("emitted message must parse");
        assert_eq!(again, m);
        assert_eq!(again.to_vec().unwrap(), bytes);
    }
    if let Some((&first, rest)) = data.split_first()
        && let Ok((p, used)) = parse_payloads_padded(PayloadType(first), rest)
    {
        assert!(used <= rest.len());
        let mut buf = vec![0; payloads_len(&p)];
        emit_payloads(&p, &mut buf).expect("a parsed chain must emit");
        assert_eq!(parse_payloads(PayloadType(first), &buf).unwrap(), p);
    }
});
