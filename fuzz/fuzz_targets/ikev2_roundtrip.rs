//! IKEv2 decode -> emit -> decode must give the same message, and emit is canonical.
#![no_main]

use ferrosec_wire::ikev2::{
    CfgValue, Message, Payload, PayloadBody, PayloadType, emit_payloads, parse_payloads,
    payloads_len,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let bytes = m.to_vec().expect("a parsed message must emit");
        assert_eq!(bytes.len(), m.buffer_len());
        let again = Message::parse(&bytes).expect("emitted message must parse");
        assert_eq!(again, m);
        assert_eq!(again.to_vec().unwrap(), bytes);
        cfg_values_round_trip(&m.payloads);
        if let Some(l) = m.sk_layout() {
            assert!(l.data.end <= bytes.len());
            let _ = l.split(16, 16);
        }
    }
    // The inner chain of an SK payload: first byte is the first payload type.
    if let Some((&first, rest)) = data.split_first()
        && let Ok(p) = parse_payloads(PayloadType(first), rest)
    {
        let mut buf = vec![0; payloads_len(&p)];
        emit_payloads(&p, &mut buf).expect("a parsed chain must emit");
        assert_eq!(parse_payloads(PayloadType(first), &buf).unwrap(), p);
        cfg_values_round_trip(&p);
    }
});

/// Every CP attribute whose value reads as its type says writes back the same bytes.
fn cfg_values_round_trip(payloads: &[Payload<'_>]) {
    for p in payloads {
        if let PayloadBody::Config(c) = &p.body {
            for a in &c.attributes {
                if let Ok(v) = CfgValue::parse(a.ty, a.value) {
                    assert!(v.fits(a.ty));
                    assert_eq!(v.to_vec().expect("a read value must write"), a.value);
                }
            }
        }
    }
}
