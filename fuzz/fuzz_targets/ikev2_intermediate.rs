//! Drives the IKEv2 responder through a hybrid handshake (RFC 9370 over IKE_INTERMEDIATE, RFC
//! 9242): X25519 in IKE_SA_INIT, then ML-KEM-768 or ML-KEM-1024 in IKE_INTERMEDIATE, then
//! IKE_AUTH. An initiator A and a responder B (both ferrosec, PSK) do IKE_SA_INIT; then the
//! fuzzer's messages reach B as from A, encrypted and authenticated with A's real keys of the
//! handshake in progress (`Endpoint::export_handshake_keys`: those of IKE_SA_INIT, or those
//! after the ML-KEM exchange), whole or as IKE fragments (RFC 7383), so they get past the
//! integrity check into the reassembler, the KE payload of the additional key exchange
//! (ML-KEM encapsulation), the IntAuth chain and IKE_AUTH. A's own IKE_INTERMEDIATE request,
//! and its IKE_AUTH request once B has answered an IKE_INTERMEDIATE request (A completes the
//! exchange with that answer), are templates the fuzzer edits. Nothing may panic, and B's
//! state and output stay bounded.
//!
//! Input, read byte by byte (missing bytes read as zero):
//! - byte 0: bit 0 picks ML-KEM-1024 (its 1,568-byte encapsulation key makes A fragment its
//!   request) instead of ML-KEM-768;
//! - then the script of messages of common/ikev2_script.rs, with: `ctl` bits 0-1 picking
//!   IKE_INTERMEDIATE, IKE_AUTH, INFORMATIONAL (or the next byte), the I flag always set,
//!   `ctl` bit 7 sealing with the keys after the ML-KEM exchange (else those of
//!   IKE_SA_INIT), and A's own requests chosen by the payload type byte: even
//!   IKE_INTERMEDIATE, odd IKE_AUTH. B never holds more than the one IKE SA.
#![no_main]

#[path = "common/ikev2_script.rs"]
mod script;

use std::net::SocketAddr;

use ferrosec_crypto::IkeSkCrypter;
use ferrosec_ike::Transmit;
use ferrosec_ike::proposal::Transform;
use ferrosec_ike::v2::{self, Endpoint};
use ferrosec_wire::IkeSpi;
use ferrosec_wire::ikev2::{DhGroup, ExchangeType, Header, Packet, PayloadType};
use libfuzzer_sys::fuzz_target;
use script::{A_ADDR, B_ADDR, EPOCH, Input, Script, Template, ToB};

/// A and B after IKE_SA_INIT, with A's IKE_INTERMEDIATE request (not delivered) as the first
/// template. ML-KEM draws its randomness from aws-lc's own generator (crypto's kex/mlkem.rs),
/// so A's encapsulation key and B's ciphertext differ from run to run: A runs beside B in
/// every run, and its keys after the ML-KEM exchange and its IKE_AUTH request come from B's
/// first answer to an IKE_INTERMEDIATE request.
struct Harness {
    a: Endpoint,
    /// B, with its address and A's as A sent its IKE_INTERMEDIATE request (4500 after NAT
    /// detection).
    to_b: ToB,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    /// A's outbound keys after IKE_SA_INIT, and after the ML-KEM exchange once A has them.
    keys: Vec<IkeSkCrypter>,
    /// A's IKE_INTERMEDIATE request, and its IKE_AUTH request once A has sent it.
    templates: Vec<Template>,
}

impl Harness {
    fn new(kem: DhGroup) -> Self {
        let now = *EPOCH;
        let mut ike = v2::ike_proposal_gcm(DhGroup::CURVE25519);
        ike.transforms.push(Transform::addke(1, kem));
        let (mut a, mut b) = script::pair(ike, vec![v2::esp_proposal_gcm()]);
        let peer = a.peers().next().unwrap().0;
        a.initiate(now, peer, A_ADDR.parse().unwrap(), B_ADDR.parse().unwrap())
            .expect("initiate");
        let t = a.poll_transmit().expect("IKE_SA_INIT request");
        b.handle_datagram(now, t.remote, t.local, &t.data);
        let t = b.poll_transmit().expect("IKE_SA_INIT response");
        a.handle_datagram(now, t.remote, t.local, &t.data);
        assert_eq!(b.ike_sa_count(), 1, "B answered the IKE_SA_INIT request");
        let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let (mut b_addr, mut a_addr) = (t.local, t.remote);
        while let Some(t) = a.poll_transmit() {
            (b_addr, a_addr) = (t.remote, t.local);
            sent.push((t.local, t.data.to_vec()));
        }
        let (spi_i, spi_r, keys) = script::a_keys(a.export_handshake_keys());
        let template = script::open_request(&sent, &keys);
        assert_eq!(
            template.first,
            PayloadType::KE,
            "IKE_INTERMEDIATE carries the KE"
        );
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        Harness {
            a,
            to_b: ToB {
                b,
                now,
                b_addr,
                a_addr,
                // IKE_SA_INIT was 0.
                next_id: 1,
            },
            spi_i,
            spi_r,
            keys: vec![keys],
            templates: vec![template],
        }
    }

    /// A's IKE_AUTH request, once A has completed the ML-KEM exchange and sent it.
    fn take_a_auth(&mut self) {
        let mut sent = Vec::new();
        while let Some(t) = self.a.poll_transmit() {
            sent.push((t.local, t.data.to_vec()));
        }
        while self.a.poll_event().is_some() {}
        let Some((local, first)) = sent.first() else {
            return;
        };
        let Ok(p) = Packet::new_checked(script::ike_part(*local, first)) else {
            return;
        };
        if Header::parse(&p).exchange_type != ExchangeType::IKE_AUTH {
            return;
        }
        let (_, _, keys) = script::a_keys(self.a.export_handshake_keys());
        let template = script::open_request(&sent, &keys);
        self.keys.push(keys);
        self.templates.push(template);
    }
}

impl Script for Harness {
    const EXCHANGES: [ExchangeType; 3] = [
        ExchangeType::IKE_INTERMEDIATE,
        ExchangeType::IKE_AUTH,
        ExchangeType::INFORMATIONAL,
    ];

    fn to_b(&mut self) -> &mut ToB {
        &mut self.to_b
    }
    fn spis(&self) -> (IkeSpi, IkeSpi) {
        (self.spi_i, self.spi_r)
    }
    fn initiator_flag(_ctl: u8) -> bool {
        true
    }
    /// The keys after the ML-KEM exchange when A has them, else those of IKE_SA_INIT.
    fn keys_for(&self, ctl: u8) -> usize {
        usize::from(ctl >> 7).min(self.keys.len() - 1)
    }
    fn keys(&self, index: usize) -> &IkeSkCrypter {
        &self.keys[index]
    }
    fn template(&self, pick: u8) -> &Template {
        &self.templates[usize::from(pick & 1).min(self.templates.len() - 1)]
    }
    /// B's answer to an IKE_INTERMEDIATE request: A completes the ML-KEM exchange with it
    /// (once), and its keys and IKE_AUTH request become ours.
    fn on_b_sent(&mut self, h: &Header, t: &Transmit) {
        if h.flags.response()
            && h.exchange_type == ExchangeType::IKE_INTERMEDIATE
            && self.keys.len() == 1
        {
            self.a
                .handle_datagram(self.to_b.now, t.remote, t.local, &t.data);
            self.take_a_auth();
        }
    }
    /// Nothing here makes B hold a second IKE SA (no IKE_SA_INIT, no rekey of an SA that is
    /// not up yet).
    fn check(&mut self, _sent: usize) {
        let n = self.to_b.b.ike_sa_count();
        assert!(n <= 1, "IKE SAs: {n}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let kem = if input.u8() & 1 == 0 {
        DhGroup::ML_KEM_768
    } else {
        DhGroup::ML_KEM_1024
    };
    let mut h = Harness::new(kem);
    script::run(input, &mut h);
});
