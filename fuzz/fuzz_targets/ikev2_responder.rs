//! Drives the IKEv2 responder with whole protected messages: an initiator A and a responder
//! B (both ferrosec, PSK) bring an IKE SA up in memory, then the fuzzer's messages go to B
//! as from A, encrypted and authenticated with A's real SK_ei/SK_ai (taken with
//! `Endpoint::export_ike_keys`), so they reach past the integrity check into the fragment
//! reassembler (RFC 7383) and the exchange handlers. Nothing may panic, and B's state and
//! output stay bounded.
//!
//! Input, read byte by byte (missing bytes read as zero):
//! - byte 0: bit 0 picks AES-GCM or AES-CBC/HMAC for the IKE SA; bit 1 makes A a client
//!   that asks for an address with a configuration payload (R-V2-12) and B the server that
//!   hands it out of a pool (10.1.0.0/24), so that B's Child SA selectors are narrowed to it;
//! - then the script of messages of common/ikev2_script.rs, with: `ctl` bits 0-1 picking
//!   INFORMATIONAL, CREATE_CHILD_SA, IKE_AUTH (or the next byte), `ctl` bit 7 clearing the
//!   I flag, and A's own requests (`TEMPLATES`, chosen by the payload type byte modulo 4):
//!   rekey the Child SA, rekey the IKE SA, a new Child SA, delete the Child SA. B may hold
//!   one new IKE SA per message (an IKE SA rekey) besides A's.
#![no_main]

#[path = "common/ikev2_script.rs"]
mod script;

use std::sync::LazyLock;

use ferrosec_crypto::IkeSkCrypter;
use ferrosec_ike::v2::{self, Endpoint};
use ferrosec_wire::IkeSpi;
use ferrosec_wire::ikev2::{DhGroup, ExchangeType};
use libfuzzer_sys::fuzz_target;
use script::{A_ADDR, B_ADDR, EPOCH, Input, Script, Template, ToB};

/// A and B with an IKE SA (and its Child SA) up between them, B's address and A's as A
/// sent last (port 4500 after NAT detection), and A's outbound crypter with the SPIs.
struct Up {
    a: Endpoint,
    to_b: ToB,
    send: IkeSkCrypter,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
}

fn handshake(gcm: bool, cp: bool) -> Up {
    let ike = if gcm {
        v2::ike_proposal_gcm(DhGroup::CURVE25519)
    } else {
        v2::ike_proposal_cbc(256, DhGroup::CURVE25519)
    };
    let (mut a, mut b) = script::pair(ike, vec![v2::esp_proposal_gcm(), v2::esp_proposal_cbc(128)]);
    if cp {
        let peer = a.peers().next().unwrap().0;
        a.set_config_payload(
            peer,
            v2::ConfigPayload::Request {
                ipv4: true,
                ipv6: false,
            },
        )
        .expect("client");
        let peer = b.peers().next().unwrap().0;
        b.set_config_payload(
            peer,
            v2::ConfigPayload::Serve(v2::AddressPools {
                ipv4: Some(("10.1.0.0".parse().unwrap(), 24)),
                dns: vec!["10.2.0.53".parse().unwrap()],
                subnets: vec![("10.2.0.0".parse().unwrap(), 24)],
                ..Default::default()
            }),
        )
        .expect("server");
    }
    let now = *EPOCH;
    let (a_addr, b_addr) = (A_ADDR.parse().unwrap(), B_ADDR.parse().unwrap());
    let peer = a.peers().next().unwrap().0;
    a.initiate(now, peer, a_addr, b_addr).expect("initiate");
    let (mut to_b, mut from_a) = (b_addr, a_addr);
    for _ in 0..8 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            (to_b, from_a) = (t.remote, t.local);
            b.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            a.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        if !moved {
            break;
        }
    }
    assert_eq!(a.established().len(), 1, "A is up");
    assert_eq!(b.established().len(), 1, "B is up");
    let (spi_i, spi_r, send) = script::a_keys(a.export_ike_keys());
    Up {
        a,
        to_b: ToB {
            b,
            now,
            b_addr: to_b,
            a_addr: from_a,
            // IKE_SA_INIT was 0, IKE_AUTH 1.
            next_id: 2,
        },
        send,
        spi_i,
        spi_r,
    }
}

/// A's own requests after the handshake (rekey the Child SA, rekey the IKE SA, a second
/// Child SA, delete the Child SA), decrypted, each from a fresh pair. The setup is
/// deterministic, so they name the same SPIs and nonces as the pair of every run, and B
/// would accept them: the fuzzer mutates them to go deeper than raw bytes would.
fn templates(gcm: bool) -> Vec<Template> {
    let now = *EPOCH;
    (0..4)
        .map(|command| {
            let mut up = handshake(gcm, false);
            let h = up.a.established()[0];
            let child = up.a.snapshot()[0].children[0].clone();
            match command {
                0 => up.a.rekey_child_sa(now, h, child.inbound_spi),
                1 => up.a.rekey_ike_sa(now, h),
                2 => up.a.create_child_sa(now, h, child.policy),
                _ => up.a.delete_child_sa(now, h, child.inbound_spi),
            }
            .expect("A's command");
            let t = up.a.poll_transmit().expect("A's request");
            script::open_request(&[(t.local, t.data)], &up.send)
        })
        .collect()
}

static TEMPLATES: LazyLock<[Vec<Template>; 2]> =
    LazyLock::new(|| [templates(true), templates(false)]);

/// B after the handshake, as the script drives it.
struct Responder {
    to_b: ToB,
    send: IkeSkCrypter,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    templates: &'static [Template],
}

impl Script for Responder {
    const EXCHANGES: [ExchangeType; 3] = [
        ExchangeType::INFORMATIONAL,
        ExchangeType::CREATE_CHILD_SA,
        ExchangeType::IKE_AUTH,
    ];

    fn to_b(&mut self) -> &mut ToB {
        &mut self.to_b
    }
    fn spis(&self) -> (IkeSpi, IkeSpi) {
        (self.spi_i, self.spi_r)
    }
    fn initiator_flag(ctl: u8) -> bool {
        ctl & 0x80 == 0
    }
    fn keys_for(&self, _ctl: u8) -> usize {
        0
    }
    fn keys(&self, _index: usize) -> &IkeSkCrypter {
        &self.send
    }
    fn template(&self, pick: u8) -> &Template {
        &self.templates[usize::from(pick) % self.templates.len()]
    }
    // B holds A's IKE SA and at most one new one per message (an IKE SA rekey).
    fn check(&mut self, sent: usize) {
        let n = self.to_b.b.ike_sa_count();
        assert!(n <= 1 + sent, "IKE SAs: {n}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let first = input.u8();
    let gcm = first & 1 == 0;
    let cp = first & 2 != 0;
    let templates = &TEMPLATES[usize::from(!gcm)];
    let Up {
        to_b,
        send,
        spi_i,
        spi_r,
        ..
    } = handshake(gcm, cp);
    let mut responder = Responder {
        to_b,
        send,
        spi_i,
        spi_r,
        templates,
    };
    script::run(input, &mut responder);
});
