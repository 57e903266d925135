//! The port-4500 demultiplexer and whatever it hands on: IKE (v1 or v2) or ESP.
#![no_main]

use ferrosec_wire::natt::{Datagram, demux_4500, ike_major_version};
use ferrosec_wire::{ah, esp, ikev2, isakmp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match demux_4500(data) {
        Ok(Datagram::Keepalive) => assert_eq!(data, [0xff]),
        Ok(Datagram::Ike(ike)) => {
            assert_eq!(&data[..4], [0, 0, 0, 0]);
            match ike_major_version(ike) {
                Some(2) => {
                    let _ = ikev2::Message::parse(ike);
                }
                Some(1) => {
                    let _ = isakmp::Message::parse(ike);
                }
                _ => {}
            }
        }
        Ok(Datagram::Esp(b)) => {
            let p = esp::Packet::new_checked(b).expect("demux checked the length");
            let r = esp::Repr::parse(&p).unwrap();
            assert_ne!(r.spi.0, 0);
            let _ = esp::Trailer::parse(p.payload());
        }
        Err(_) => assert!(data.len() < 8),
    }
    if let Ok(p) = ah::Packet::new_checked(data) {
        let r = ah::Repr::parse(&p).unwrap();
        assert_eq!(r.buffer_len(), p.header_len());
        let _ = (p.icv(), p.payload());
    }
});
