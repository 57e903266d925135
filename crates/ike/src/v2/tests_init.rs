//! IKE_SA_INIT against forgery (RFC 7296 §2.21.1): an unprotected error answer may come
//! from an attacker on the path; the initiator keeps waiting for a genuine one.

use std::time::Duration;

use ferrosec_wire::ikev2::{
    ExchangeType, Flags, Header, Message, Notify, NotifyType, Packet, Payload, PayloadBody, Version,
};
use ferrosec_wire::{IkeSpi, MessageId};

use super::tests::{both_up, cfg, failures, initiate, pair_with};
use super::*;
use crate::sim::{Side, Verdict};

fn forged_error(spi_i: IkeSpi, notify: NotifyType, data: &[u8]) -> Vec<u8> {
    Message {
        header: Header {
            initiator_spi: spi_i,
            responder_spi: IkeSpi(0),
            version: Version::IKEV2,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags::new(false, true),
            message_id: MessageId(0),
        },
        payloads: vec![Payload::new(PayloadBody::Notify(Notify::new(notify, data)))],
    }
    .to_vec()
    .unwrap()
}

/// A forged NO_PROPOSAL_CHOSEN (and a forged INVALID_KE_PAYLOAD for a group we do not
/// offer) arrives before the responder's answer: the negotiation goes on and succeeds.
#[test]
fn a_forged_error_notify_does_not_kill_a_negotiation() {
    for (notify, data) in [
        (NotifyType::NO_PROPOSAL_CHOSEN, vec![]),
        (NotifyType::INVALID_KE_PAYLOAD, 2u16.to_be_bytes().to_vec()),
        (NotifyType::INVALID_SYNTAX, vec![]),
    ] {
        let mut p = pair_with(31, cfg(Side::A), cfg(Side::B), EndpointConfig::default());
        // The genuine answer takes a while (a slow responder); the forger is quick.
        p.latency = Duration::from_millis(40);
        let spi = std::rc::Rc::new(std::cell::Cell::new(None));
        let seen = spi.clone();
        p.faults.hook = Some(Box::new(move |side, data| {
            if side == Side::A
                && seen.get().is_none()
                && let Ok(pk) = Packet::new_checked(&data[..])
                && pk.exchange_type() == ExchangeType::IKE_SA_INIT
            {
                seen.set(Some(Header::parse(&pk).initiator_spi));
            }
            Verdict::Deliver
        }));
        initiate(&mut p);
        p.run_for(Duration::from_millis(1));
        let spi_i = spi.get().expect("A sent IKE_SA_INIT");
        let forged = forged_error(spi_i, notify, &data);
        let (a_addr, _) = (p.a.addr, p.b.addr);
        let now = p.time;
        p.a.endpoint.handle_datagram(now, a_addr, p.b.addr, &forged);
        assert!(
            p.run_until(Duration::from_secs(5), both_up),
            "{notify:?}: the forged answer killed the negotiation: {:?}",
            failures(&p.a)
        );
        assert!(failures(&p.a).is_empty(), "{notify:?}");
    }
}
